//! Diff: what changed in a source since the state, when each rule file last changed, and where each
//! rule file first appeared.
//!
//! This stage owns the questions that make a build incremental and its identities reproducible:
//!
//! - **History** ([`walk`]): on the built branch's first-parent history, the newest commit that changed
//!   each rule file (the default permalink target: a commit that does not touch a rule does not change its
//!   value), the *content clock* (the version base of the output) and each rule file's *origin*, the path
//!   its file had when it first appeared (see [`crate::state`], "Identity"). A clean build walks the whole
//!   first-parent history once; later builds walk only the commits since the last built one, and fall back
//!   to a full walk when that commit is not on the new first-parent history (a rewritten history). With a
//!   shallow history the oldest available commit stands in for the rest.
//! - **Renames since the last build** ([`renames`]): the tree of the last built commit against the new
//!   one, with git's rename detection, for the UUID ledger, which gives identities when the history
//!   cannot (a shallow or rewritten history).
//!
//! The walk compares trees the way `git log --first-parent --name-only` does: entry lists are merged in
//! git's order, sub-trees with the same id on both sides are skipped unread, folders the filter cannot
//! match are never entered, and each commit's tree is read once. Rename detection (which reads blobs)
//! runs only on commits that change at least two rule files, one of which could be a rename's target
//! and another its source, and only over the rule files that commit changed.
//!
//! The content clock is a pure function of the history: over the first-parent commits that changed any
//! rule file (oldest first), `clock = max(committer time, previous clock + 1)`. It therefore rises with
//! every commit that changes rules, even when two commits share a timestamp, and an incremental build
//! computes exactly what a clean build of the same commit computes. Origins are likewise computed commit
//! by commit, oldest first, so an incremental walk extends exactly what a full walk computes.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt, HashSet};

use git2::{Delta, DiffFindOptions, DiffOptions, Oid, Repository};
use serde::{Deserialize, Serialize};

use crate::config::PathFilter;
use crate::hash::{GitId, git_id};
use crate::sources::RuleFile;

/// What the history walk remembers between runs, per source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// The commit the walk ended at (the built commit).
    pub tip: String,
    /// The content clock at `tip`.
    pub clock: i64,
    /// Rule file path → id of the newest first-parent commit that changed it.
    #[serde(deserialize_with = "crate::sorted::map")]
    pub last_change: BTreeMap<String, GitId>,
    /// Rule file path → the path its file had when it first appeared on the first-parent history, for
    /// the files that were renamed or moved since (a file never renamed is its own origin, not listed).
    #[serde(deserialize_with = "crate::sorted::map")]
    pub origins: BTreeMap<String, String>,
    /// The walk stopped at the edge of a shallow history: origins are only as old as that edge.
    pub shallow: bool,
}

impl History {
    /// The path `path`'s file had when it first appeared (itself when it was never renamed).
    pub fn origin<'a>(&'a self, path: &'a str) -> &'a str {
        self.origins.get(path).map_or(path, String::as_str)
    }
}

/// How [`walk`] got its answer, for `--verbose` and for choosing where identities come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// The tip is the one already walked.
    Unchanged,
    /// Walked only the new commits since the last built one.
    Incremental { commits: usize },
    /// Walked the whole first-parent history (no usable previous walk).
    Full { commits: usize },
    /// Walked the whole first-parent history because the previous tip is not on it: the history was
    /// rewritten (a force-push) since the last build.
    Rewritten { commits: usize },
}

/// A rule path a commit changed: its blob before (`None`: added) and after (`None`: deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub old: Option<Oid>,
    pub new: Option<Oid>,
}

/// Git's tree order: names compared bytewise, a tree's name as if it ended in `/`.
fn git_order(a: &[u8], a_tree: bool, b: &[u8], b_tree: bool) -> Ordering {
    let n = a.len().min(b.len());
    match a[..n].cmp(&b[..n]) {
        Ordering::Equal => {
            let end = |name: &[u8], tree: bool| match name.get(n) {
                Some(&c) => c,
                None if tree => b'/',
                None => 0,
            };
            end(a, a_tree)
                .cmp(&end(b, b_tree))
                .then(a.len().cmp(&b.len()))
        }
        o => o,
    }
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
    let mut trees = Trees::default();
    compare_trees(
        repo,
        Some(&old_tree),
        Some(&new_tree),
        "",
        filter,
        &mut trees,
        &mut out,
    )?;
    Ok(out.into_iter().map(|c| (c.path, c.new)).collect())
}

/// Sub-trees of a commit's parent read while comparing the two, kept for the next comparison down the
/// first-parent line, where that parent is the newer side: each tree is read (and inflated) once.
#[derive(Default)]
struct Trees<'r> {
    /// The older side's sub-trees of the previous comparison.
    last: HashMap<Oid, git2::Tree<'r>>,
    /// The older side's sub-trees of this one.
    this: HashMap<Oid, git2::Tree<'r>>,
}

impl<'r> Trees<'r> {
    /// The sub-tree `id`, on the older (`older`) or newer side of the comparison.
    fn get(
        &mut self,
        repo: &'r Repository,
        id: Oid,
        older: bool,
    ) -> Result<git2::Tree<'r>, git2::Error> {
        let tree = match self.last.get(&id).or_else(|| self.this.get(&id)) {
            Some(t) => t.clone(),
            None => repo.find_tree(id)?,
        };
        if older {
            self.this.insert(id, tree.clone());
        }
        Ok(tree)
    }

    /// Moves on to the next comparison.
    fn next(&mut self) {
        self.last = std::mem::take(&mut self.this);
    }
}

/// Appends the rule files that differ between two trees (either may be absent) to `out`, in path
/// order. Entries are merged in git's order; equal entries (same name, kind and id) are skipped, so an
/// unchanged sub-tree is never read.
fn compare_trees<'r>(
    repo: &'r Repository,
    old: Option<&git2::Tree<'r>>,
    new: Option<&git2::Tree<'r>>,
    dir: &str,
    filter: &PathFilter,
    trees: &mut Trees<'r>,
    out: &mut Vec<Change>,
) -> Result<(), git2::Error> {
    let len = |t: Option<&git2::Tree<'_>>| t.map_or(0, |t| t.len());
    let (old_len, new_len) = (len(old), len(new));
    let (mut i, mut j) = (0, 0);
    let is_tree = |e: &git2::TreeEntry<'_>| e.kind() == Some(git2::ObjectType::Tree);
    while i < old_len || j < new_len {
        let o = old.and_then(|t| t.get(i)).filter(|_| i < old_len);
        let n = new.and_then(|t| t.get(j)).filter(|_| j < new_len);
        let order = match (&o, &n) {
            (Some(a), Some(b)) => git_order(a.name_bytes(), is_tree(a), b.name_bytes(), is_tree(b)),
            (Some(_), None) => Ordering::Less,
            (None, _) => Ordering::Greater,
        };
        let (o, n) = match order {
            Ordering::Less => {
                i += 1;
                (o, None)
            }
            Ordering::Greater => {
                j += 1;
                (None, n)
            }
            Ordering::Equal => {
                i += 1;
                j += 1;
                if o.as_ref().map(|e| e.id()) == n.as_ref().map(|e| e.id()) {
                    continue;
                }
                (o, n)
            }
        };
        let entry = o.as_ref().or(n.as_ref()).expect("one side has the entry");
        let Ok(name) = std::str::from_utf8(entry.name_bytes()) else {
            continue;
        };
        let tree = is_tree(entry);
        if tree {
            let prefix = format!("{dir}{name}/");
            if filter.may_contain(&prefix) {
                let old_sub = o
                    .as_ref()
                    .map(|e| trees.get(repo, e.id(), true))
                    .transpose()?;
                let new_sub = n
                    .as_ref()
                    .map(|e| trees.get(repo, e.id(), false))
                    .transpose()?;
                compare_trees(
                    repo,
                    old_sub.as_ref(),
                    new_sub.as_ref(),
                    &prefix,
                    filter,
                    trees,
                    out,
                )?;
            }
        } else if entry.kind() == Some(git2::ObjectType::Blob) {
            let path = format!("{dir}{name}");
            if filter.matches(&path) {
                out.push(Change {
                    path,
                    old: o.as_ref().map(|e| e.id()),
                    new: n.as_ref().map(|e| e.id()),
                });
            }
        }
    }
    Ok(())
}

/// The rule files of commit `new`, from those of commit `old` (path → blob id, as the state keeps
/// them) and the differences between the two trees: the cost follows the change, not the repository.
pub fn update_files(
    repo: &Repository,
    old: &str,
    old_files: &mut BTreeMap<String, GitId>,
    new: Oid,
    filter: &PathFilter,
) -> Result<Vec<RuleFile>, git2::Error> {
    let changed = changed_files(repo, Oid::from_str(old)?, new, filter)?;
    // The old list is updated in place and taken (its 100k paths are not copied).
    for (path, blob) in changed {
        match blob {
            Some(blob) => old_files.insert(path, git_id(blob)),
            None => old_files.remove(&path),
        };
    }
    std::mem::take(old_files)
        .into_iter()
        .map(|(path, blob)| {
            Ok(RuleFile {
                path,
                blob: Oid::from_bytes(&blob.0)?,
            })
        })
        .collect()
}

/// One first-parent commit that changed rule files, as the walk saw it.
struct Step {
    id: Oid,
    parent: Option<Oid>,
    changes: Vec<Change>,
}

/// Walks the first-parent history of `tip` to find, for every path in `files`, the newest commit that
/// changed it, its origin, and the content clock. `previous` is the last walk's result for the same
/// filter, which the new one extends (taken, not copied: 100k paths at 100k rules).
///
/// Also returns the rule paths the walked commits changed (sorted, each once): after an
/// [`Walk::Incremental`] or [`Walk::Unchanged`] walk, every other path has the blob, last change and
/// origin it had at the previous tip.
pub fn walk(
    repo: &Repository,
    tip: Oid,
    files: &[RuleFile],
    filter: &PathFilter,
    previous: Option<History>,
) -> Result<(History, Walk, Vec<String>), git2::Error> {
    // `files` is sorted by path, as the maps below are: membership is a binary search, and the maps
    // are pruned to it in one pass side by side.
    let is_file = |path: &str| {
        files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .is_ok()
    };
    let shallow = repo.is_shallow();
    let tip_hex = tip.to_string();
    // A walk made on another depth of history has other origins: walk again.
    let previous = match previous.filter(|p| p.shallow == shallow) {
        Some(prev) if prev.tip == tip_hex && covers(&prev.last_change, files) => {
            return Ok((prev, Walk::Unchanged, Vec::new()));
        }
        other => other,
    };
    let stop = previous.as_ref().and_then(|p| Oid::from_str(&p.tip).ok());
    // The newest commit of this walk that changed each file, for the files it changed.
    let mut found: BTreeMap<String, GitId> = BTreeMap::new();
    // Committer times of commits that changed rule files, newest first.
    let mut touching: Vec<i64> = Vec::new();
    // The commits that changed rule files, newest first.
    let mut steps: Vec<Step> = Vec::new();
    let mut commit = repo.find_commit(tip)?;
    let mut tree = commit.tree()?;
    let mut trees = Trees::default();
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
        let parent_tree = parent.as_ref().map(|p| p.tree()).transpose()?;
        let mut changes = Vec::new();
        compare_trees(
            repo,
            parent_tree.as_ref(),
            Some(&tree),
            "",
            filter,
            &mut trees,
            &mut changes,
        )?;
        trees.next();
        if !changes.is_empty() {
            touching.push(commit.time().seconds());
            let id = git_id(commit.id());
            for c in &changes {
                if !found.contains_key(&c.path) && is_file(&c.path) {
                    found.insert(c.path.clone(), id);
                }
            }
            steps.push(Step {
                id: commit.id(),
                parent: parent.as_ref().map(|p| p.id()),
                changes,
            });
        }
        match (parent, parent_tree) {
            (Some(p), Some(t)) => {
                commit = p;
                tree = t;
            }
            _ => {
                // The root, or the edge of a shallow history: what is left was last changed here or
                // before, and this is the oldest commit we have.
                let root = git_id(commit.id());
                for f in files {
                    found.entry(f.path.clone()).or_insert(root);
                }
                break;
            }
        }
    }

    let (base_clock, mut last_change, mut origins, how) = match (reached_stop, previous) {
        (true, Some(prev)) => (
            Some(prev.clock),
            prev.last_change,
            prev.origins,
            Walk::Incremental { commits },
        ),
        (false, Some(_)) => (
            None,
            BTreeMap::new(),
            BTreeMap::new(),
            Walk::Rewritten { commits },
        ),
        _ => (
            None,
            BTreeMap::new(),
            BTreeMap::new(),
            Walk::Full { commits },
        ),
    };
    last_change.extend(found);
    // Paths not changed since the previous tip keep their commit; a path that the previous walk did
    // not know (and that no new commit touched) cannot happen for the same filter, but if it does the
    // safe answer is a full walk.
    if reached_stop && !covers(&last_change, files) {
        return walk(repo, tip, files, filter, None);
    }
    for step in steps.iter().rev() {
        follow_origins(repo, step, &mut origins)?;
    }
    let mut touched: Vec<String> = steps
        .iter()
        .flat_map(|s| s.changes.iter().map(|c| c.path.clone()))
        .collect();
    touched.sort_unstable();
    touched.dedup();
    retain_files(&mut last_change, files);
    retain_files(&mut origins, files);
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
            origins,
            shallow,
        },
        how,
        touched,
    ))
}

/// Whether `map` has every path of `files` (both sorted by path: one pass side by side).
fn covers<V>(map: &BTreeMap<String, V>, files: &[RuleFile]) -> bool {
    let mut keys = map.keys().peekable();
    files.iter().all(|f| {
        while keys.next_if(|k| k.as_str() < f.path.as_str()).is_some() {}
        keys.next_if(|k| **k == f.path).is_some()
    })
}

/// Keeps the entries of `map` whose path is one of `files` (both sorted by path: one pass).
fn retain_files<V>(map: &mut BTreeMap<String, V>, files: &[RuleFile]) {
    let mut i = 0;
    map.retain(|path, _| {
        while files
            .get(i)
            .is_some_and(|f| f.path.as_str() < path.as_str())
        {
            i += 1;
        }
        files.get(i).is_some_and(|f| f.path == *path)
    });
}

/// Carries the origins of the rule files over one commit (see [`crate::state`], "Identity"). A file
/// (new, or rewritten: a move onto a path another file left) with exactly the bytes of a rule file the
/// commit deleted takes that file's origin (exact moves are paired first, in path order, as git pairs
/// them first); then a file git's rename detection (with
/// broken rewrites, over the other changes) says was renamed from another rule file takes that file's
/// origin; a file that was there before keeps its own; any other new file is its own origin.
fn follow_origins(
    repo: &Repository,
    step: &Step,
    origins: &mut BTreeMap<String, String>,
) -> Result<(), git2::Error> {
    // Former contents of the deleted paths, in path order.
    let mut left: HashMap<Oid, std::collections::VecDeque<&str>> = HashMap::new();
    for c in &step.changes {
        if let (Some(old), None) = (c.old, c.new) {
            left.entry(old).or_default().push_back(&c.path);
        }
    }
    // New path → old path: exact moves, to a new path or onto one another file left.
    let mut renamed: HashMap<String, String> = HashMap::new();
    for c in &step.changes {
        if let Some(new) = c.new
            && let Some(from) = left.get_mut(&new).and_then(|q| q.pop_front())
        {
            renamed.insert(c.path.clone(), from.to_string());
        }
    }
    let paired: HashSet<&str> = renamed
        .iter()
        .flat_map(|(to, from)| [to.as_str(), from.as_str()])
        .collect();
    let rest: Vec<&Change> = step
        .changes
        .iter()
        .filter(|c| !paired.contains(c.path.as_str()))
        .collect();
    if let (true, Some(parent)) = (may_rename(&rest), step.parent) {
        let paths: Vec<&str> = rest.iter().map(|c| c.path.as_str()).collect();
        renamed.extend(rule_renames(repo, parent, step.id, &paths)?);
    }
    let origin_of = |p: &str| origins.get(p).cloned().unwrap_or_else(|| p.to_string());
    let mut updates: Vec<(&str, Option<String>)> = Vec::new();
    for c in &step.changes {
        let origin = match (c.old, c.new) {
            (_, None) => None,
            _ if renamed.contains_key(&c.path) => Some(origin_of(&renamed[&c.path])),
            (Some(_), Some(_)) => continue,
            (None, Some(_)) => Some(c.path.clone()),
        };
        updates.push((&c.path, origin));
    }
    for (path, origin) in updates {
        match origin {
            Some(o) if o != path => origins.insert(path.to_string(), o),
            _ => origins.remove(path),
        };
    }
    Ok(())
}

/// Whether git's rename detection could pair two of a commit's changes, so is worth running (it reads
/// blobs). A rename needs a target (added, or rewritten in place) and another path as its source
/// (deleted, or rewritten): a commit that only adds, only deletes or edits one file has none. Without
/// a deletion, a commit is taken as adds and edits unless a file now has exactly another's former
/// content (paths swapped or rotated, a copy of a rewritten file); git could also pair a file rewritten
/// beyond recognition with an edited copy of it there, which is left to the ledger.
fn may_rename(changes: &[&Change]) -> bool {
    let target = changes.iter().any(|c| c.new.is_some());
    let source = changes.iter().any(|c| c.old.is_some());
    if changes.len() < 2 || !target || !source {
        return false;
    }
    if changes.iter().any(|c| c.new.is_none()) {
        return true;
    }
    let before: HashSet<Oid> = changes.iter().filter_map(|c| c.old).collect();
    changes
        .iter()
        .any(|c| c.new.is_some_and(|n| before.contains(&n)))
}

/// Git's rename detection (renames, broken rewrites) between a commit and its parent, over the given
/// rule paths only: new path → old path.
fn rule_renames(
    repo: &Repository,
    parent: Oid,
    commit: Oid,
    paths: &[&str],
) -> Result<HashMap<String, String>, git2::Error> {
    let old_tree = repo.find_commit(parent)?.tree()?;
    let new_tree = repo.find_commit(commit)?.tree()?;
    let mut opts = DiffOptions::new();
    opts.disable_pathspec_match(true);
    for p in paths {
        opts.pathspec(p);
    }
    let mut diff = repo.diff_tree_to_tree(Some(&old_tree), Some(&new_tree), Some(&mut opts))?;
    renamed_deltas(&mut diff, |_| true)
}

/// The renamed deltas of a diff after git's rename detection with broken rewrites (a file renamed
/// onto a path that another file left, or two files swapping paths, is the rename it is, not an edit of
/// that path): new path → old path, for new paths `keep` accepts.
fn renamed_deltas(
    diff: &mut git2::Diff<'_>,
    keep: impl Fn(&str) -> bool,
) -> Result<HashMap<String, String>, git2::Error> {
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
        if keep(to) {
            out.insert(to.to_string(), from.to_string());
        }
    }
    Ok(out)
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
    renamed_deltas(&mut diff, |to| filter.matches(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_order_puts_a_tree_after_a_name_that_extends_it_with_a_lower_byte() {
        // `a.yml` < `a/` < `a0` in git's order (trees sort as if they ended in `/`).
        assert_eq!(git_order(b"a.yml", false, b"a", true), Ordering::Less);
        assert_eq!(git_order(b"a", true, b"a0", false), Ordering::Less);
        assert_eq!(git_order(b"a", false, b"a", true), Ordering::Less);
        assert_eq!(git_order(b"a", true, b"a", true), Ordering::Equal);
        assert_eq!(git_order(b"b", false, b"a", false), Ordering::Greater);
    }
}
