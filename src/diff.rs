//! Diff: what changed in a source since the state, and when each rule file last changed.
//!
//! This stage owns the two questions that make a build incremental:
//!
//! - **Renames since the last build** ([`renames`]): the tree of the last built commit against the new
//!   one, with git's rename detection, so an id-less rule keeps its uuid when its file moves. When the old
//!   commit is gone (a force-push, a garbage-collected mirror), there is nothing to diff and the content
//!   hash still catches exact moves.
//! - **History** ([`walk`]): on the built branch's first-parent history, the newest commit that changed
//!   each rule file (the default permalink target: a commit that does not touch a rule does not change its
//!   value), and the *content clock*, the version base of the output. A clean build walks the whole
//!   first-parent history once; later builds walk only the commits since the last built one, and fall back
//!   to a full walk when that commit is not on the new first-parent history. With a shallow history the
//!   oldest available commit stands in for the rest.
//!
//! The content clock is a pure function of the history: over the first-parent commits that changed any
//! rule file (oldest first), `clock = max(committer time, previous clock + 1)`. It therefore rises with
//! every commit that changes rules, even when two commits share a timestamp, and an incremental build
//! computes exactly what a clean build of the same commit computes.

use std::collections::{BTreeMap, HashMap, HashSet};

use git2::{Delta, DiffFindOptions, Oid, Repository};
use serde::{Deserialize, Serialize};

use crate::config::PathFilter;
use crate::sources::RuleFile;

/// What the history walk remembers between runs, per source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// The commit the walk ended at (the built commit).
    pub tip: String,
    /// The content clock at `tip`.
    pub clock: i64,
    /// Rule file path → id of the newest first-parent commit that changed it.
    pub last_change: BTreeMap<String, String>,
}

/// How [`walk`] got its answer, for `--verbose`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// The tip is the one already walked.
    Unchanged,
    /// Walked only the new commits since the last built one.
    Incremental { commits: usize },
    /// Walked the whole first-parent history (no usable previous walk).
    Full { commits: usize },
}

/// Rule paths changed between two trees (added, modified, deleted), without renames.
///
/// Sub-trees with the same id on both sides are skipped without being read, so the cost is
/// proportional to the change, not to the repository.
fn changed_paths(
    repo: &Repository,
    old: Option<&git2::Tree<'_>>,
    new: Option<&git2::Tree<'_>>,
    filter: &PathFilter,
) -> Result<Vec<String>, git2::Error> {
    let mut out = Vec::new();
    compare_trees(repo, old, new, "", filter, &mut out)?;
    Ok(out.into_iter().map(|(path, _)| path).collect())
}

/// Rule files that differ between two commits: path and the blob it has in `new` (`None`: gone).
///
/// With the previous commit's file list, this gives the new list without reading the whole tree.
pub fn changed_files(
    repo: &Repository,
    old: Oid,
    new: Oid,
    filter: &PathFilter,
) -> Result<Vec<(String, Option<Oid>)>, git2::Error> {
    let old_tree = repo.find_commit(old)?.tree()?;
    let new_tree = repo.find_commit(new)?.tree()?;
    let mut out = Vec::new();
    compare_trees(repo, Some(&old_tree), Some(&new_tree), "", filter, &mut out)?;
    Ok(out)
}

fn compare_trees(
    repo: &Repository,
    old: Option<&git2::Tree<'_>>,
    new: Option<&git2::Tree<'_>>,
    dir: &str,
    filter: &PathFilter,
    out: &mut Vec<(String, Option<Oid>)>,
) -> Result<(), git2::Error> {
    let entries = |t: Option<&git2::Tree<'_>>| -> HashMap<Vec<u8>, (Oid, bool)> {
        t.map(|t| {
            t.iter()
                .map(|e| {
                    let is_tree = e.kind() == Some(git2::ObjectType::Tree);
                    (e.name_bytes().to_vec(), (e.id(), is_tree))
                })
                .collect()
        })
        .unwrap_or_default()
    };
    let (old_entries, new_entries) = (entries(old), entries(new));
    let mut names: Vec<&Vec<u8>> = old_entries.keys().chain(new_entries.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let (o, n) = (old_entries.get(name), new_entries.get(name));
        if o == n {
            continue;
        }
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        let path = format!("{dir}{name}");
        let sub = |e: Option<&(Oid, bool)>| -> Result<Option<git2::Tree<'_>>, git2::Error> {
            match e {
                Some((id, true)) => repo.find_tree(*id).map(Some),
                _ => Ok(None),
            }
        };
        let (old_sub, new_sub) = (sub(o)?, sub(n)?);
        if old_sub.is_some() || new_sub.is_some() {
            let prefix = format!("{path}/");
            if filter.may_contain(&prefix) {
                compare_trees(
                    repo,
                    old_sub.as_ref(),
                    new_sub.as_ref(),
                    &prefix,
                    filter,
                    out,
                )?;
            }
        }
        let blob_changed = matches!(o, Some((_, false))) || matches!(n, Some((_, false)));
        if blob_changed && filter.matches(&path) {
            let blob = match n {
                Some((id, false)) => Some(*id),
                _ => None,
            };
            out.push((path, blob));
        }
    }
    Ok(())
}

/// The rule files of commit `new`, from those of commit `old` (path → blob id, as the state keeps
/// them) and the differences between the two trees: the cost follows the change, not the repository.
pub fn update_files(
    repo: &Repository,
    old: &str,
    old_files: &BTreeMap<String, String>,
    new: Oid,
    filter: &PathFilter,
) -> Result<Vec<RuleFile>, git2::Error> {
    let mut files: BTreeMap<String, Oid> = old_files
        .iter()
        .map(|(path, blob)| Ok((path.clone(), Oid::from_str(blob)?)))
        .collect::<Result<_, git2::Error>>()?;
    for (path, blob) in changed_files(repo, Oid::from_str(old)?, new, filter)? {
        match blob {
            Some(blob) => files.insert(path, blob),
            None => files.remove(&path),
        };
    }
    Ok(files
        .into_iter()
        .map(|(path, blob)| RuleFile { path, blob })
        .collect())
}

/// Walks the first-parent history of `tip` to find, for every path in `files`, the newest commit that
/// changed it, and the content clock. `previous` is the last walk's result for the same filter.
pub fn walk(
    repo: &Repository,
    tip: Oid,
    files: &[String],
    filter: &PathFilter,
    previous: Option<&History>,
) -> Result<(History, Walk), git2::Error> {
    let tip_hex = tip.to_string();
    if let Some(prev) = previous
        && prev.tip == tip_hex
        && files.iter().all(|f| prev.last_change.contains_key(f))
    {
        return Ok((prev.clone(), Walk::Unchanged));
    }
    let stop = previous.and_then(|p| Oid::from_str(&p.tip).ok());
    let mut unresolved: HashSet<&str> = files.iter().map(String::as_str).collect();
    let mut found: HashMap<String, String> = HashMap::new();
    // Committer times of commits that changed rule files, newest first.
    let mut touching: Vec<i64> = Vec::new();
    let mut commit = repo.find_commit(tip)?;
    let mut reached_stop = false;
    let mut commits = 0;
    let mut oldest = commit.time().seconds();
    loop {
        if Some(commit.id()) == stop {
            reached_stop = true;
            break;
        }
        commits += 1;
        oldest = commit.time().seconds();
        let parent = commit.parent(0).ok();
        let tree = commit.tree()?;
        let parent_tree = parent.as_ref().map(|p| p.tree()).transpose()?;
        let changed = changed_paths(repo, parent_tree.as_ref(), Some(&tree), filter)?;
        if !changed.is_empty() {
            touching.push(commit.time().seconds());
        }
        for path in changed {
            if unresolved.remove(path.as_str()) {
                found.insert(path, commit.id().to_string());
            }
        }
        match parent {
            Some(p) => commit = p,
            None => {
                // The root, or the edge of a shallow history: what is left was last changed here or
                // before, and this is the oldest commit we have.
                for path in unresolved.drain() {
                    found.insert(path.to_string(), commit.id().to_string());
                }
                break;
            }
        }
    }

    let (base_clock, mut last_change, how) = match (reached_stop, previous) {
        (true, Some(prev)) => (
            Some(prev.clock),
            prev.last_change.clone(),
            Walk::Incremental { commits },
        ),
        _ => (None, BTreeMap::new(), Walk::Full { commits }),
    };
    if reached_stop {
        // Paths not changed since the previous tip keep their commit; a path that the previous walk did
        // not know (and that no new commit touched) cannot happen for the same filter, but if it does the
        // safe answer is a full walk.
        if unresolved.iter().any(|p| !last_change.contains_key(*p)) {
            return walk(repo, tip, files, filter, None);
        }
    }
    last_change.retain(|path, _| files.binary_search(path).is_ok());
    last_change.extend(found);
    let mut clock = base_clock;
    for &t in touching.iter().rev() {
        clock = Some(clock.map_or(t, |c| t.max(c + 1)));
    }
    let clock = match clock {
        Some(c) => c,
        // No commit ever changed a rule file (an empty selection): the oldest commit's time, which
        // a later incremental walk keeps, so both agree.
        None => oldest,
    };
    Ok((
        History {
            tip: tip_hex,
            clock,
            last_change,
        },
        how,
    ))
}

/// Rule files renamed (or copied) between two commits: new path → old path, by git's rename detection.
pub fn renames(
    repo: &Repository,
    old: Oid,
    new: Oid,
    filter: &PathFilter,
) -> Result<HashMap<String, String>, git2::Error> {
    let old_tree = repo.find_commit(old)?.tree()?;
    let new_tree = repo.find_commit(new)?.tree()?;
    let mut diff = repo.diff_tree_to_tree(Some(&old_tree), Some(&new_tree), None)?;
    // Breaking rewrites lets a file renamed onto a path that another file left (or two files swapping
    // paths) be seen as the rename it is, not as an edit of that path.
    diff.find_similar(Some(
        DiffFindOptions::new().renames(true).break_rewrites(true),
    ))?;
    let mut out = HashMap::new();
    for delta in diff.deltas() {
        if delta.status() != Delta::Renamed {
            continue;
        }
        let (Some(from), Some(to)) = (
            delta.old_file().path().and_then(|p| p.to_str()),
            delta.new_file().path().and_then(|p| p.to_str()),
        ) else {
            continue;
        };
        if filter.matches(to) {
            out.insert(to.to_string(), from.to_string());
        }
    }
    Ok(out)
}
