//! Collections: Sigma v1 rule collections, the `action: global` / `reset` / `repeat` documents of a
//! multi-document rule file, resolved exactly as pySigma's `SigmaCollection.from_dicts` does.
//!
//! Fed the mapping documents of a file in order, it returns for each the merged mapping to read as a
//! rule (or nothing, for `global` and `reset`):
//!
//! - no `action` (or `action: null`): the document with the current global document deep-merged into
//!   it. As in pySigma (`deep_dict_update(rule, global_rule)`), where both have the same key, mappings
//!   merge recursively and otherwise **the global document's value wins**. The merged document becomes
//!   the "previous rule".
//! - `action: global`: replaces the global document (a later `global` does not accumulate onto an
//!   earlier one) and becomes the previous rule.
//! - `action: reset`: clears the global document.
//! - `action: repeat`: the previous rule with this document deep-merged over it (here this document's
//!   values win); the result becomes the previous rule. As in pySigma, when the previous rule is the
//!   global document itself (a `repeat` right after `global`), the global document is what changes,
//!   so later documents see the repeated fields too.
//! - any other action, or `repeat` with no previous rule: an error for that document.
//!
//! The `action` key is removed from every document before merging; it is never part of a rule.

use std::collections::HashMap;

use super::yaml::{Map, Node};

/// The state of a collection between its documents.
#[derive(Debug, Default)]
pub(crate) struct Collection {
    global: Map,
    previous: Previous,
    /// Nodes in `global` and in the previous rule, kept up to date so that [`Collection::copies`] costs
    /// nothing: a file of many documents under a large `global` must not count it again each time.
    global_size: usize,
    previous_size: usize,
}

/// pySigma's `prev_rule`.
#[derive(Debug, Default)]
enum Previous {
    #[default]
    None,
    /// The global document itself (pySigma's `prev_rule = global_rule` shares the dict).
    Global,
    Rule(Map),
}

impl Collection {
    /// About how many nodes taking `document` copies (at most twice its merged size; its own loading
    /// is already paid for): what a file's budget is charged before [`Collection::next`] runs.
    pub(crate) fn copies(&self, document: &Map) -> usize {
        let own = map_size(document);
        match document.get("action") {
            None | Some(Node::Null) => 2 * (own + self.global_size),
            Some(Node::Str(action)) if action == "repeat" => 2 * (own + self.previous_size),
            // `reset` right after `global` keeps a copy of it as the previous rule; `global` moves.
            Some(Node::Str(action))
                if action == "reset" && matches!(self.previous, Previous::Global) =>
            {
                self.global_size
            }
            Some(_) => 0,
        }
    }

    /// Takes the next mapping document of the file; returns the mapping to read as a rule, if any.
    pub(crate) fn next(&mut self, mut document: Map) -> Result<Option<Map>, String> {
        let own = map_size(&document);
        match document.remove("action") {
            None | Some(Node::Null) => {
                deep_update(&mut document, &self.global);
                self.previous = Previous::Rule(document.clone());
                self.previous_size = own + self.global_size;
                Ok(Some(document))
            }
            Some(Node::Str(action)) if action == "global" => {
                self.global = document;
                self.previous = Previous::Global;
                (self.global_size, self.previous_size) = (own, own);
                Ok(None)
            }
            Some(Node::Str(action)) if action == "reset" => {
                if matches!(self.previous, Previous::Global) {
                    self.previous = Previous::Rule(self.global.clone());
                }
                self.global = Map::default();
                self.global_size = 0;
                Ok(None)
            }
            Some(Node::Str(action)) if action == "repeat" => {
                self.previous_size += own;
                if matches!(self.previous, Previous::Global) {
                    self.global_size += own;
                }
                let previous = match &mut self.previous {
                    Previous::None => {
                        return Err("`action: repeat` has no previous rule to repeat".to_owned());
                    }
                    Previous::Global => &mut self.global,
                    Previous::Rule(rule) => rule,
                };
                deep_update(previous, &document);
                Ok(Some(previous.clone()))
            }
            Some(Node::Str(action)) => Err(format!("unknown Sigma collection action `{action}`")),
            Some(Node::Plain(action)) => Err(format!("unknown Sigma collection action `{action}`")),
            Some(other) => Err(format!("`action` must be a string, not {}", other.kind())),
        }
    }
}

/// The nodes of a mapping, its own included.
fn map_size(map: &Map) -> usize {
    1 + map
        .iter()
        .map(|(key, value)| key.size() + value.size())
        .sum::<usize>()
}

/// pySigma's `deep_dict_update(dest, src)`: every key of `src` is set in `dest`; where `src`'s value is a
/// mapping it is merged into `dest`'s value recursively (a `dest` value that is not a mapping counts as
/// empty), otherwise it replaces `dest`'s value. New keys go last, existing keys keep their place.
pub(crate) fn deep_update(dest: &mut Map, src: &Map) {
    let mut positions: HashMap<Node, usize> = dest
        .iter()
        .enumerate()
        .map(|(i, (key, _))| (key.clone(), i))
        .collect();
    for (key, value) in src.iter() {
        let existing = positions.get(key).copied().and_then(|i| dest.value_mut(i));
        match (existing, value) {
            (Some(Node::Map(dest_map)), Node::Map(src_map)) => deep_update(dest_map, src_map),
            (Some(slot), value) => *slot = value.clone(),
            (None, value) => {
                positions.insert(key.clone(), dest.len());
                dest.push(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn s(text: &str) -> Node {
        Node::Str(text.to_owned())
    }

    #[test]
    fn deep_update_merges_mappings_and_replaces_the_rest() {
        let mut dest = Map::from([
            ("a", s("1")),
            ("m", Node::Map(Map::from([("x", s("dx")), ("y", s("dy"))]))),
            ("l", Node::Seq(vec![s("d")])),
            ("n", s("scalar")),
        ]);
        let src = Map::from([
            ("m", Node::Map(Map::from([("y", s("sy")), ("z", s("sz"))]))),
            ("l", Node::Seq(vec![s("s")])),
            ("n", Node::Map(Map::from([("k", s("v"))]))),
            ("b", s("2")),
        ]);
        deep_update(&mut dest, &src);
        let expected = Map::from([
            ("a", s("1")),
            (
                "m",
                Node::Map(Map::from([("x", s("dx")), ("y", s("sy")), ("z", s("sz"))])),
            ),
            ("l", Node::Seq(vec![s("s")])),
            ("n", Node::Map(Map::from([("k", s("v"))]))),
            ("b", s("2")),
        ]);
        assert_eq!(dest, expected);
    }

    #[test]
    fn global_values_win_over_the_document_as_in_pysigma() {
        let mut c = Collection::default();
        assert_eq!(
            c.next(Map::from([("action", s("global")), ("level", s("high"))])),
            Ok(None)
        );
        let rule = c
            .next(Map::from([("level", s("low")), ("x", s("1"))]))
            .unwrap()
            .unwrap();
        assert_eq!(rule, Map::from([("level", s("high")), ("x", s("1"))]));
    }

    #[test]
    fn repeat_right_after_global_changes_the_global() {
        let mut c = Collection::default();
        c.next(Map::from([("action", s("global")), ("g", s("1"))]))
            .unwrap();
        let repeated = c
            .next(Map::from([("action", s("repeat")), ("r", s("2"))]))
            .unwrap()
            .unwrap();
        assert_eq!(repeated, Map::from([("g", s("1")), ("r", s("2"))]));
        let next = c.next(Map::from([("x", s("3"))])).unwrap().unwrap();
        assert_eq!(
            next,
            Map::from([("x", s("3")), ("g", s("1")), ("r", s("2"))])
        );
    }

    #[test]
    fn reset_keeps_the_previous_rule() {
        let mut c = Collection::default();
        c.next(Map::from([("action", s("global")), ("g", s("1"))]))
            .unwrap();
        c.next(Map::from([("action", s("reset"))])).unwrap();
        let repeated = c
            .next(Map::from([("action", s("repeat")), ("r", s("2"))]))
            .unwrap()
            .unwrap();
        assert_eq!(repeated, Map::from([("g", s("1")), ("r", s("2"))]));
        assert_eq!(
            c.next(Map::from([("x", s("3"))])).unwrap().unwrap(),
            Map::from([("x", s("3"))])
        );
    }

    #[test]
    fn bad_actions() {
        let mut c = Collection::default();
        assert!(c.next(Map::from([("action", s("repeat"))])).is_err());
        assert!(c.next(Map::from([("action", s("include"))])).is_err());
        assert!(c.next(Map::from([("action", Node::Seq(vec![]))])).is_err());
        assert_eq!(
            c.next(Map::from([("action", Node::Null)])),
            Ok(Some(Map::default()))
        );
    }
}
