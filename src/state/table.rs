//! The value table: what the last build chose for each value, so that the next one merges, relates
//! and formats only the values of the files that changed, and copies the rest.
//!
//! The merge and relate stages are global: a rule's uuid depends on which ids and uuids other rules
//! have, its title on which titles earlier rules took, its links on which rules have the ids and
//! names it points to. A table row is one value of the cluster file last written, in file order,
//! with the uuid and title it got and where its text is ([`Row`]); its [`Mark`]s are everything else
//! the merge and relate looked up for it or could look up against it. A change is **isolated** when
//! no key of a value it removes or adds is a key of a value it keeps ([`Kept::clash`]):
//!
//! | key (a [`Mark`] kind, or the row's own field) | of a value | a clash: the other side has it as |
//! |---|---|---|
//! | uuid, and `Id` marks: the `id` it claimed, the uuid its identity gave it, its derived uuid | every value | a uuid, an `Id` mark or a dropped rule's id |
//! | title key (lower-cased final title), `Title` marks (titles it tried and found taken) | every value | a title key or a `Title` mark |
//! | `Name` marks (correlation `name`) | values with one | a `Name` mark or a `Ref` mark |
//! | `Ref` marks (ids and names its `related` and `correlates` point to) | values with them | a claimed id, a uuid or a `Name` mark |
//! | dropped rules' ids ([`Table::dropped`]) | files with one | a uuid or an `Id` mark |
//!
//! Without a shared key, every lookup the merge made for a kept value finds what it found last time,
//! so the kept values keep their uuids, titles, links and texts, and the changed files' values are
//! what merging them alone gives (each lookup they make against a kept value is answered from the
//! table: [`Kept::outside_id`], [`Kept::outside_name`]). Keys are hashed to 128 bits (uuids are
//! their own), so a clash by accident is as likely as a uuid collision; a clash only costs time (the
//! build merges every value, as it always did).
//!
//! The table is kept in `sources.bin` with the cluster file's checksum: it is used only when that
//! file is still the one it describes. What it does not cover, the build checks before using it:
//! the build key must differ only in the sources' commits, the history walks must have extended the
//! previous ones (so that unchanged paths have their last change and origin), and no source's
//! identities come from the ledger.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use std::collections::BTreeMap;

use crate::emit::{Placed, Span, TextHash, ValueKey};
use crate::hash::Bytes;
use crate::merge::{Value, derived_uuid, parse_id};

/// A 128-bit key: a uuid as it is, anything else hashed (XXH3-128 of a tag byte and the text).
pub type Key = Bytes<16>;

/// The key of a uuid.
pub fn id_key(u: Uuid) -> Key {
    Bytes(*u.as_bytes())
}

/// XXH3-128 of a tag byte and text parts, each after its length.
fn hashed(tag: u8, parts: &[&str]) -> Key {
    let mut buf = Vec::with_capacity(64);
    buf.push(tag);
    for p in parts {
        buf.extend_from_slice(&(p.len() as u64).to_le_bytes());
        buf.extend_from_slice(p.as_bytes());
    }
    Bytes(twox_hash::XxHash3_128::oneshot(&buf).to_be_bytes())
}

/// The key of a rule file: its source's name and its path.
pub fn file_key(source: &str, path: &str) -> Key {
    hashed(b'f', &[source, path])
}

/// The key of a lower-cased title.
fn title_key(lower: &str) -> Key {
    hashed(b't', &[lower])
}

/// The key of a correlation name.
fn name_key(name: &str) -> Key {
    hashed(b'n', &[name])
}

/// One value of the cluster file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// [`file_key`] of the file the value comes from.
    pub file: Key,
    pub uuid: Uuid,
    /// Its final title (what the file is sorted by, with the uuid).
    pub title: String,
    /// The key of the title, lower-cased.
    pub title_key: Key,
    /// Whether the uuid is the rule's own `id`.
    pub own_id: bool,
    /// Its [`crate::emit::value_key`], and its text's length and hash.
    pub key: ValueKey,
    pub len: usize,
    pub hash: TextHash,
}

/// What a value's choices depend on besides its uuid and final title (see the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MarkKind {
    Id,
    Title,
    Name,
    /// A name this value is the first to have (what a correlation by that name links to).
    NameHolder,
    Ref,
}

/// A [`MarkKind`] key of the value with uuid `of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Mark {
    pub of: Uuid,
    pub kind: MarkKind,
    pub key: Key,
}

/// The value table of a cluster file (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// The checksum of the cluster file described; empty: no table.
    pub cluster: String,
    pub rows: Vec<Row>,
    /// Sorted; few: most values have none.
    pub marks: Vec<Mark>,
    /// Per rule dropped for an id that a source of higher precedence has: its file and the id.
    pub dropped: Vec<(Key, Key)>,
}

/// The rows and marks of `values` placed in a file as `placed` says (in file order), and the drops
/// `dropped` (source index, path, id), with `sources` the source names by index.
pub fn table_of(
    values: &[Value],
    placed: &[Placed],
    dropped: &[(usize, String, Uuid)],
    sources: &[String],
    galaxy: Uuid,
) -> Table {
    let rows = placed
        .iter()
        .map(|&(i, key, span)| {
            let v = &values[i];
            Row {
                file: file_key(&sources[v.source], &v.path),
                uuid: v.uuid,
                title: v.title.clone(),
                title_key: title_key(&v.title.to_lowercase()),
                own_id: v.own_id,
                key,
                len: span.len,
                hash: span.hash,
            }
        })
        .collect();
    let mut marks = Vec::new();
    let mut names: HashSet<&str> = HashSet::new();
    // In value order: the first value with a name holds it, as in relate.
    for v in values {
        let mut mark = |kind, key| {
            marks.push(Mark {
                of: v.uuid,
                kind,
                key,
            })
        };
        if !v.own_id {
            let claimed = v.rule.id.as_deref().and_then(parse_id);
            let derived = derived_uuid(galaxy, &sources[v.source], &v.path, v.rule.index);
            for u in [claimed, v.notes.remembered, Some(derived)]
                .into_iter()
                .flatten()
            {
                if u != v.uuid {
                    mark(MarkKind::Id, id_key(u));
                }
            }
        }
        for t in &v.notes.taken_titles {
            mark(MarkKind::Title, title_key(t));
        }
        if let Some(name) = v.rule.name.as_deref() {
            let kind = match names.insert(name) {
                true => MarkKind::NameHolder,
                false => MarkKind::Name,
            };
            mark(kind, name_key(name));
        }
        for rel in &v.rule.related {
            if let Some(id) = parse_id(&rel.id) {
                mark(MarkKind::Ref, id_key(id));
            }
        }
        for target in &v.rule.correlates {
            if let Some(id) = parse_id(target) {
                mark(MarkKind::Ref, id_key(id));
            }
            mark(MarkKind::Ref, name_key(target));
        }
    }
    marks.sort_unstable();
    marks.dedup();
    let mut dropped: Vec<(Key, Key)> = dropped
        .iter()
        .map(|(s, path, id)| (file_key(&sources[*s], path), id_key(*id)))
        .collect();
    dropped.sort_unstable();
    Table {
        cluster: String::new(),
        rows,
        marks,
        dropped,
    }
}

/// Why a change is not isolated: the kind of key it shares with a value it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clash {
    /// A uuid or an id.
    Id,
    Title,
    /// A correlation name, or an id or name that a kept value links to.
    Link,
}

impl Clash {
    /// What the clash is, as a sentence's object.
    pub fn what(self) -> &'static str {
        match self {
            Clash::Id => "a uuid or id",
            Clash::Title => "a title (ignoring case)",
            Clash::Link => "an id or name that a rule links to",
        }
    }
}

/// The keys of the values a change keeps, to check the values it removes and adds against.
#[derive(Debug, Default)]
struct Keys {
    ids: HashSet<Key>,
    titles: HashSet<Key>,
    names: HashSet<Key>,
    refs: HashSet<Key>,
}

impl Keys {
    fn of_rows<'r>(rows: impl Iterator<Item = &'r Row>, n: usize) -> Keys {
        let mut k = Keys {
            ids: HashSet::with_capacity(n),
            titles: HashSet::with_capacity(n),
            ..Keys::default()
        };
        for r in rows {
            k.ids.insert(id_key(r.uuid));
            k.titles.insert(r.title_key);
        }
        k
    }

    fn add_mark(&mut self, m: &Mark) {
        let set = match m.kind {
            MarkKind::Id => &mut self.ids,
            MarkKind::Title => &mut self.titles,
            MarkKind::Name | MarkKind::NameHolder => &mut self.names,
            MarkKind::Ref => &mut self.refs,
        };
        set.insert(m.key);
    }

    /// Whether the row `r` of the other side shares a key with these.
    fn row_clash(&self, r: &Row) -> Option<Clash> {
        let id = id_key(r.uuid);
        if self.ids.contains(&id) {
            return Some(Clash::Id);
        }
        if r.own_id && self.refs.contains(&id) {
            return Some(Clash::Link);
        }
        if self.titles.contains(&r.title_key) {
            return Some(Clash::Title);
        }
        None
    }

    /// Whether the mark `m` of the other side shares a key with these.
    fn mark_clash(&self, m: &Mark) -> Option<Clash> {
        match m.kind {
            MarkKind::Id if self.ids.contains(&m.key) => Some(Clash::Id),
            // (A derived or remembered uuid is never a link target: checked all the same.)
            MarkKind::Id if self.refs.contains(&m.key) => Some(Clash::Link),
            MarkKind::Title if self.titles.contains(&m.key) => Some(Clash::Title),
            MarkKind::Name | MarkKind::NameHolder
                if self.names.contains(&m.key) || self.refs.contains(&m.key) =>
            {
                Some(Clash::Link)
            }
            _ => None,
        }
    }
}

/// The table split by a change: the rows it keeps (file order) and what a build needs to merge the
/// changed files' values alone.
#[derive(Debug)]
pub struct Kept<'t> {
    pub table: &'t Table,
    /// By row: whether the change removes it (its file changed).
    pub removed: Vec<bool>,
    /// The uuids of the removed rows.
    removed_uuids: HashSet<Uuid>,
    keys: Keys,
    /// Uuids of kept values that have them as their own id: what a link by id finds.
    own_ids: HashSet<Uuid>,
    /// Correlation names of kept values that hold them → their uuid.
    holders: HashMap<Key, Uuid>,
}

impl Table {
    /// Where each row's text is in the file it describes, by value key: the texts follow each other
    /// from `start`, `separator` bytes apart.
    pub fn spans(&self, start: usize, separator: usize) -> BTreeMap<ValueKey, Span> {
        let mut at = start;
        let mut spans: Vec<(ValueKey, Span)> = Vec::with_capacity(self.rows.len());
        for r in &self.rows {
            spans.push((
                r.key,
                Span {
                    at,
                    len: r.len,
                    hash: r.hash,
                },
            ));
            at += r.len + separator;
        }
        crate::hash::sort_by_id(&mut spans, |(key, _)| key);
        spans.into_iter().collect()
    }

    /// Splits the table by the files a change touches (by [`file_key`]).
    pub fn keep<'t>(&'t self, touched: &HashSet<Key>) -> Kept<'t> {
        let removed: Vec<bool> = self
            .rows
            .iter()
            .map(|r| touched.contains(&r.file))
            .collect();
        let removed_uuids: HashSet<Uuid> = self
            .rows
            .iter()
            .zip(&removed)
            .filter(|(_, gone)| **gone)
            .map(|(r, _)| r.uuid)
            .collect();
        let kept_rows = || self.rows.iter().zip(&removed).filter(|(_, g)| !**g);
        let mut keys = Keys::of_rows(kept_rows().map(|(r, _)| r), self.rows.len());
        let mut own_ids = HashSet::with_capacity(self.rows.len());
        own_ids.extend(kept_rows().filter(|(r, _)| r.own_id).map(|(r, _)| r.uuid));
        let mut holders = HashMap::new();
        for m in self.marks.iter().filter(|m| !removed_uuids.contains(&m.of)) {
            keys.add_mark(m);
            if m.kind == MarkKind::NameHolder {
                holders.insert(m.key, m.of);
            }
        }
        for (file, id) in &self.dropped {
            if !touched.contains(file) {
                keys.ids.insert(*id);
            }
        }
        Kept {
            table: self,
            removed,
            removed_uuids,
            keys,
            own_ids,
            holders,
        }
    }
}

impl Kept<'_> {
    /// Whether the removed rows or the changed files' table `new` share a key with the kept rows
    /// (`touched`: the changed files, as given to [`Table::keep`]).
    pub fn clash(&self, new: &Table, touched: &HashSet<Key>) -> Option<Clash> {
        let old = self.table;
        let removed_rows = old.rows.iter().zip(&self.removed).filter(|(_, g)| **g);
        let removed_marks = old
            .marks
            .iter()
            .filter(|m| self.removed_uuids.contains(&m.of));
        let removed_drops = old.dropped.iter().filter(|(f, _)| touched.contains(f));
        let drop_clash = |id: &Key| {
            (self.keys.ids.contains(id) || self.keys.refs.contains(id)).then_some(Clash::Id)
        };
        removed_rows
            .map(|(r, _)| r)
            .chain(&new.rows)
            .find_map(|r| self.keys.row_clash(r))
            .or_else(|| {
                removed_marks
                    .chain(&new.marks)
                    .find_map(|m| self.keys.mark_clash(m))
            })
            .or_else(|| {
                removed_drops
                    .chain(&new.dropped)
                    .find_map(|(_, id)| drop_clash(id))
            })
    }

    /// Whether the change removes the value with this uuid.
    pub fn is_removed(&self, uuid: Uuid) -> bool {
        self.removed_uuids.contains(&uuid)
    }

    /// What a link by rule id to a kept value finds: the id itself, when a kept value has it.
    pub fn outside_id(&self, id: Uuid) -> Option<Uuid> {
        self.own_ids.contains(&id).then_some(id)
    }

    /// What a correlation by name finds among the kept values.
    pub fn outside_name(&self, name: &str) -> Option<Uuid> {
        self.holders.get(&name_key(name)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::{Candidate, merge};
    use crate::parse::Rule;

    const GALAXY: Uuid = Uuid::from_u128(7);

    /// The table of the values that merging `rules` (path, title, id) gives, in merge order.
    fn table(rules: &[(&str, &str, Option<Uuid>)]) -> Table {
        let candidates = rules
            .iter()
            .map(|&(path, title, id)| Candidate {
                source: 0,
                path: path.into(),
                rule: Box::new(Rule {
                    id: id.map(|u| u.to_string()),
                    ..Rule::titled(title)
                }),
                link: None,
                remembered: None,
                record: Default::default(),
            })
            .collect();
        let names = ["s".to_string()];
        let merged = merge(candidates, &names, &[], GALAXY, "k", false, &mut Vec::new());
        let placed: Vec<Placed> = (0..merged.values.len())
            .map(|i| (i, Default::default(), Default::default()))
            .collect();
        table_of(&merged.values, &placed, &merged.dropped, &names, GALAXY)
    }

    fn files(paths: &[&str]) -> HashSet<Key> {
        paths.iter().map(|p| file_key("s", p)).collect()
    }

    #[test]
    fn a_change_clashes_exactly_when_it_shares_a_key_with_a_kept_value() {
        let (x, y) = (Uuid::from_u128(1), Uuid::from_u128(2));
        // b.yml took "T (b.yml)" because a.yml had "T": removing a.yml changes b's title.
        let old = table(&[
            ("a.yml", "T", Some(x)),
            ("b.yml", "t", None),
            ("c.yml", "U", None),
        ]);
        let touched = files(&["a.yml"]);
        let kept = old.keep(&touched);
        assert_eq!(kept.clash(&table(&[]), &touched), Some(Clash::Title));
        // Editing c.yml to a title nobody has touches nothing else.
        let touched = files(&["c.yml"]);
        let kept = old.keep(&touched);
        assert_eq!(kept.clash(&table(&[("c.yml", "V", None)]), &touched), None);
        // Giving c.yml a.yml's id, or a.yml's title in other case, does.
        assert_eq!(
            kept.clash(&table(&[("c.yml", "V", Some(x))]), &touched),
            Some(Clash::Id)
        );
        assert_eq!(
            kept.clash(&table(&[("c.yml", "t (B.YML)", None)]), &touched),
            Some(Clash::Title)
        );
        // A new id is no clash; a kept value's own id is what a link by id finds.
        assert_eq!(
            kept.clash(&table(&[("c.yml", "V", Some(y))]), &touched),
            None
        );
        assert_eq!(kept.outside_id(x), Some(x));
        assert_eq!(kept.outside_id(y), None);
    }
}
