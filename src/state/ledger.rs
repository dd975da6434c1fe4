//! The UUID ledger: the uuids given to rules that have no usable `id` of their own, for sources whose
//! history cannot give them.
//!
//! A derived uuid depends on the path the rule's file first had on the source's history (see
//! "Identity" in [`crate::state`]). When that history is shallow or was rewritten, it does not reach
//! back far enough, and the ledger stands in: it remembers each id-less value's source, path, document
//! index, uuid and content hash. When the next build meets a rule without a usable id,
//! [`Lookup::remembered`] looks, in order, for the path git's rename detection says the file came from (a
//! rename, even with edits; it wins over a rule that left the same path), else the same source, path and
//! index (an edit in place), then the same content at a path that no longer exists (a move git did not
//! pair up). The first hit keeps its uuid. These are the rules the history walk applies commit by
//! commit ([`crate::diff`]), applied here between the built commits.

use std::collections::{BTreeMap, BTreeSet};

use foldhash::{HashMap, HashMapExt, HashSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One remembered value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub uuid: Uuid,
    /// Hex SHA-256 of the rule file's bytes when the uuid was recorded.
    pub content: String,
}

/// Source name → `path#index` → entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub sources: BTreeMap<String, BTreeMap<String, Entry>>,
    /// Sources whose history was rewritten (force-pushed) while this ledger followed them: their
    /// uuids come from the ledger from then on, since the new history no longer gives the ones
    /// already published.
    pub rewritten: BTreeSet<String>,
}

fn slot(path: &str, index: u32) -> String {
    format!("{path}#{index}")
}

/// Looks up remembered uuids for one source's new commit.
#[derive(Debug)]
pub struct Lookup<'a> {
    entries: Option<&'a BTreeMap<String, Entry>>,
    /// New path → old path, from git's rename detection.
    renames: &'a HashMap<String, String>,
    /// (content, index) → uuid, for entries whose path is gone from the new commit.
    orphans: HashMap<(&'a str, u32), Uuid>,
}

impl Ledger {
    /// Prepares lookups for `source`, whose new commit holds `paths`.
    pub fn lookup<'a>(
        &'a self,
        source: &str,
        paths: &HashSet<&str>,
        renames: &'a HashMap<String, String>,
    ) -> Lookup<'a> {
        let entries = self.sources.get(source);
        let mut orphans = HashMap::new();
        for (key, entry) in entries.into_iter().flatten() {
            if let Some((path, index)) = key.rsplit_once('#')
                && !paths.contains(path)
                && let Ok(index) = index.parse()
            {
                orphans
                    .entry((entry.content.as_str(), index))
                    .or_insert(entry.uuid);
            }
        }
        Lookup {
            entries,
            renames,
            orphans,
        }
    }

    /// Records the uuid of a value without its own id.
    /// Forgets what is recorded for the files at `paths` of `source`.
    pub fn forget(&mut self, source: &str, paths: &[String]) {
        let Some(entries) = self.sources.get_mut(source) else {
            return;
        };
        for path in paths {
            let prefix = format!("{path}#");
            let gone: Vec<String> = entries
                .range(prefix.clone()..)
                .map(|(k, _)| k)
                .take_while(|k| k.starts_with(&prefix))
                .filter(|k| k.rsplit_once('#').is_some_and(|(p, _)| p == path))
                .cloned()
                .collect();
            for k in gone {
                entries.remove(&k);
            }
        }
        if entries.is_empty() {
            self.sources.remove(source);
        }
    }

    pub fn record(&mut self, source: &str, path: &str, index: u32, uuid: Uuid, content: &str) {
        self.sources.entry(source.to_string()).or_default().insert(
            slot(path, index),
            Entry {
                uuid,
                content: content.to_string(),
            },
        );
    }
}

impl Lookup<'_> {
    /// The uuid remembered for document `index` of `path` (whose bytes hash to `content`), if any.
    pub fn remembered(&self, path: &str, index: u32, content: &str) -> Option<Uuid> {
        let entries = self.entries?;
        // A file renamed onto a path that another rule left takes its own history, not the path's.
        match self.renames.get(path) {
            Some(old) => entries.get(&slot(old, index)),
            None => entries.get(&slot(path, index)),
        }
        .map(|e| e.uuid)
        .or_else(|| self.orphans.get(&(content, index)).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_renames_and_moves_keep_their_uuid() {
        let mut ledger = Ledger::default();
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        ledger.record("s", "edited.yml", 0, a, "h1");
        ledger.record("s", "renamed.yml", 1, b, "h2");
        ledger.record("s", "moved.yml", 0, c, "h3");
        let renames =
            HashMap::from_iter([("new/renamed.yml".to_string(), "renamed.yml".to_string())]);
        let paths = HashSet::from_iter(["edited.yml", "new/renamed.yml", "elsewhere/moved.yml"]);
        let look = ledger.lookup("s", &paths, &renames);
        assert_eq!(look.remembered("edited.yml", 0, "changed"), Some(a));
        assert_eq!(
            look.remembered("new/renamed.yml", 1, "changed too"),
            Some(b)
        );
        assert_eq!(look.remembered("elsewhere/moved.yml", 0, "h3"), Some(c));
        assert_eq!(
            look.remembered("elsewhere/moved.yml", 1, "h3"),
            None,
            "index matters"
        );
        assert_eq!(look.remembered("brand-new.yml", 0, "h4"), None);
        assert_eq!(
            ledger
                .lookup("other", &paths, &renames)
                .remembered("edited.yml", 0, "h1"),
            None
        );
    }
}
