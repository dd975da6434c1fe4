//! YAML documents: splits a file's text into YAML documents and loads each one into a [`Node`] tree.
//!
//! This file owns everything that touches `yaml_serde`. It loads each document in two steps:
//!
//! 1. Every document is deserialized into a [`Node`] tree with our own visitor, which rejects duplicate
//!    mapping keys at the duplicate key's own line and rejects YAML tags other than the standard ones
//!    (`!foo bar`), as PyYAML's `safe_load` does.
//! 2. `yaml_serde` reads plain scalars such as `1.10`, `0x1F` or `True` as numbers and booleans, which
//!    loses how they were written. When a document has such a scalar outside `detection` and `filter`
//!    (where nothing is read as text), it is read a second time, guided by the first tree, asking for
//!    each of those scalars as a string: that yields the text as written.
//!
//! Then YAML 1.1 merge keys (`<<: *anchor`) are applied, as PyYAML does and `yaml_serde` does not.
//!
//! The first YAML error `yaml_serde` itself reports (syntax error, unknown anchor, recursion limit, …)
//! ends the file: after such an error libyaml does not resume at the next document (its iterator
//! would repeat the error forever or, after an unknown anchor, panic on the half-read document), so
//! the documents that follow are not read. Errors from our own visitor (duplicate keys, tags) leave
//! the stream intact, and only that document is lost.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::findings::Code;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One YAML node, as loaded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Node {
    /// `~`, `null`, or nothing at all.
    Null,
    /// A scalar that YAML reads as a string: quoted, a block scalar, or plain text that is not a null,
    /// a boolean or a number. Dates such as `2024-01-01` are strings here (YAML 1.2 has no timestamps).
    Str(String),
    /// A plain scalar that YAML reads as a boolean or a number. Its text is as written once the
    /// document has been read a second time (see the module docs); before that, and for mapping keys,
    /// it is the value's canonical form (`0x1F` → `31`).
    Plain(String),
    Seq(Vec<Node>),
    Map(Map),
}

impl Node {
    /// What kind of node this is, for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Str(_) => "a string",
            Node::Plain(_) => "a number or boolean",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
        }
    }

    /// How many nodes the tree holds, itself included.
    pub(crate) fn size(&self) -> usize {
        match self {
            Node::Null | Node::Str(_) | Node::Plain(_) => 1,
            Node::Seq(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            Node::Map(map) => {
                1 + map
                    .iter()
                    .map(|(key, value)| key.size() + value.size())
                    .sum::<usize>()
            }
        }
    }

    /// Whether the tree holds a [`Node::Plain`] scalar anywhere.
    fn has_plain(&self) -> bool {
        match self {
            Node::Null | Node::Str(_) => false,
            Node::Plain(_) => true,
            Node::Seq(items) => items.iter().any(Node::has_plain),
            Node::Map(map) => map.iter().any(|(_, value)| value.has_plain()),
        }
    }
}

/// A YAML mapping: its entries in document order, keys unique.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Map {
    entries: Vec<(Node, Node)>,
    /// When the text repeats a key (the last value wins, in the first one's place): for each entry of
    /// the text in order, the entry it was loaded into, or `None` for a value a later one replaced.
    /// Empty when no key repeats.
    order: Vec<Option<usize>>,
}

impl Map {
    /// The value of a string key.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        self.position(key)
            .and_then(|i| self.entries.get(i))
            .map(|(_, value)| value)
    }

    /// Removes a string key, returning its value.
    pub(crate) fn remove(&mut self, key: &str) -> Option<Node> {
        self.position(key).map(|i| self.entries.remove(i).1)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &(Node, Node)> {
        self.entries.iter()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut (Node, Node)> {
        self.entries.iter_mut()
    }

    fn into_entries(self) -> Vec<(Node, Node)> {
        self.entries
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Appends an entry whose key is known not to be present.
    pub(crate) fn push(&mut self, key: Node, value: Node) {
        self.entries.push((key, value));
    }

    /// The value at entry `index`, for updating in place.
    pub(crate) fn value_mut(&mut self, index: usize) -> Option<&mut Node> {
        self.entries.get_mut(index).map(|(_, value)| value)
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|(k, _)| matches!(k, Node::Str(s) if s == key))
    }
}

impl<const N: usize> From<[(&str, Node); N]> for Map {
    fn from(entries: [(&str, Node); N]) -> Self {
        Map {
            entries: entries
                .into_iter()
                .map(|(k, v)| (Node::Str(k.to_owned()), v))
                .collect(),
            order: Vec::new(),
        }
    }
}

/// A document that could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct YamlError {
    /// 1-based line, where `yaml_serde` knows it.
    pub line: Option<u32>,
    pub message: String,
    /// What kind of problem it is.
    pub code: Code,
    /// Whether the error ends the file: no later document can be read.
    pub fatal: bool,
}

/// A key the text repeats outside the metadata fields (where the last value wins): the keys leading
/// to its mapping from the document's root, and the key itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Duplicate {
    pub path: Vec<String>,
    pub key: String,
}

/// One YAML document of a file: its 0-based index and its tree, or why it could not be loaded.
#[derive(Debug)]
pub(crate) struct Document {
    pub index: usize,
    pub node: Result<Node, YamlError>,
    /// Keys repeated outside the metadata fields, in the order met.
    pub duplicates: Vec<Duplicate>,
}

/// The top-level fields that are a rule's metadata: a repeated key in them (or below them) makes the
/// rule ambiguous. Everything else (`detection`, custom fields) takes the last value, as PyYAML does.
const METADATA: &[&str] = &[
    "title",
    "id",
    "name",
    "description",
    "references",
    "tags",
    "date",
    "modified",
    "author",
    "level",
    "status",
    "falsepositives",
    "logsource",
    "related",
    "action",
];

/// Whether a repeated `key` in the mapping at `path` (keys from the root) is in the metadata.
fn is_metadata(path: &[String], key: &Node) -> bool {
    let name = |node: &Node| match node {
        Node::Str(s) => Some(s.clone()),
        _ => None,
    };
    match path.first() {
        None => name(key).is_some_and(|k| METADATA.contains(&k.as_str())),
        Some(top) if METADATA.contains(&top.as_str()) => true,
        Some(top) => {
            top == "correlation" && path.len() == 1 && name(key).as_deref() == Some("rules")
        }
    }
}

/// What a file may load: nodes and scalar bytes, aliases expanded, shared by its documents.
#[derive(Debug)]
pub(crate) struct Budget {
    nodes: Cell<usize>,
    text: Cell<usize>,
    /// How deep lists and mappings may nest.
    depth: usize,
}

impl Budget {
    pub(crate) fn new(nodes: usize, text: usize, depth: usize) -> Self {
        Budget {
            nodes: Cell::new(nodes),
            text: Cell::new(text),
            depth,
        }
    }

    /// Takes `nodes` nodes (without text) from the budget; `false` when the budget is spent.
    pub(crate) fn take_nodes(&self, nodes: usize) -> bool {
        match self.nodes.get().checked_sub(nodes) {
            Some(left) => {
                self.nodes.set(left);
                true
            }
            None => false,
        }
    }

    /// How deep lists and mappings may nest.
    pub(crate) fn depth(&self) -> usize {
        self.depth
    }

    /// Whether `nodes` nodes and `text` bytes of scalar are left.
    pub(crate) fn fits(&self, nodes: usize, text: usize) -> bool {
        nodes <= self.nodes.get() && text <= self.text.get()
    }

    /// Takes `nodes` nodes and `text` bytes of scalar at once; `false` (taking nothing) when they
    /// are not left.
    pub(crate) fn take_all(&self, nodes: usize, text: usize) -> bool {
        if !self.fits(nodes, text) {
            return false;
        }
        self.nodes.set(self.nodes.get() - nodes);
        self.text.set(self.text.get() - text);
        true
    }

    /// Takes one node with `text` bytes of scalar; `false` when the budget is spent.
    pub(crate) fn take(&self, text: usize) -> bool {
        let (nodes, left) = (self.nodes.get(), self.text.get());
        if nodes == 0 || left < text {
            return false;
        }
        self.nodes.set(nodes - 1);
        self.text.set(left - text);
        true
    }
}

/// Iterates the documents of a YAML text. Ends after the first fatal error.
pub(crate) struct Documents<'a> {
    text: &'a str,
    stream: yaml_serde::Deserializer<'a>,
    next_index: usize,
    done: bool,
    budget: &'a Budget,
    /// The index of the first document not to read at all (see [`documents`]).
    stop_at: Option<usize>,
    /// The second reader (see the module docs) and the index of the next document it would yield.
    rereader: Option<(yaml_serde::Deserializer<'a>, usize)>,
}

impl fmt::Debug for Documents<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Documents")
            .field("next_index", &self.next_index)
            .field("done", &self.done)
            .finish()
    }
}

/// The documents of `text` (which must not start with a byte order mark), loaded within `budget`.
pub(crate) fn documents<'a>(text: &'a str, budget: &'a Budget) -> Documents<'a> {
    Documents {
        text,
        stream: yaml_serde::Deserializer::from_str(text),
        next_index: 0,
        done: false,
        budget,
        stop_at: None,
        rereader: None,
    }
}

impl Documents<'_> {
    /// Ends the documents before document `index`, which is not handed to `yaml_serde` at all: a
    /// node with a tag `yaml_serde` does not know, holding an unknown alias, makes it panic (found by
    /// fuzzing), and a document cannot be skipped without being read.
    pub(crate) fn stop_at(mut self, index: Option<usize>) -> Self {
        self.stop_at = index;
        self
    }
}

impl Iterator for Documents<'_> {
    type Item = Document;

    fn next(&mut self) -> Option<Document> {
        // A YAML stream cannot hold more documents than bytes (plus the empty one); this bound only
        // guards against a `yaml_serde` iterator that never ends.
        if self.done || self.next_index > self.text.len() || self.stop_at == Some(self.next_index) {
            return None;
        }
        let document = self.stream.next()?;
        let index = self.next_index;
        self.next_index += 1;
        let ctx = Ctx {
            own_error: Cell::new(None),
            budget: self.budget,
            depth: Cell::new(0),
            path: RefCell::new(Vec::new()),
            duplicates: RefCell::new(Vec::new()),
        };
        // `yaml_serde` panics on some malformed documents (an unknown alias inside broken nested flow
        // collections, found by fuzzing): that document, and the rest of the file, are then lost
        // with a finding instead of the whole run.
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            NodeSeed {
                ctx: &ctx,
                keys: None,
            }
            .deserialize(document)
        }));
        let Ok(loaded) = loaded else {
            self.done = true;
            return Some(Document {
                index,
                node: Err(YamlError {
                    line: None,
                    message: "the YAML parser failed on this document (malformed nesting)".into(),
                    code: Code::InvalidYaml,
                    fatal: true,
                }),
                duplicates: Vec::new(),
            });
        };
        let node = match loaded {
            Ok(mut node) => {
                if needs_text_as_written(&node) {
                    self.reread(index, &mut node);
                }
                merge_keys(&mut node);
                Ok(node)
            }
            Err(error) => {
                let own = ctx.own_error.get();
                let fatal = own.is_none();
                self.done = fatal;
                let message = error.to_string();
                // `yaml_serde`'s own guards: nesting past 128 levels, aliases repeated too often.
                let limit = message.starts_with("recursion limit exceeded")
                    || message.starts_with("repetition limit exceeded");
                let code = match own {
                    Some(code) => code,
                    None if limit => Code::LimitExceeded,
                    None => Code::InvalidYaml,
                };
                Err(YamlError {
                    line: error_line(&error),
                    message,
                    code,
                    fatal,
                })
            }
        };
        Some(Document {
            index,
            node,
            duplicates: ctx.duplicates.into_inner(),
        })
    }
}

impl Documents<'_> {
    /// Reads document `index` a second time to replace the canonical text of its plain scalars with
    /// their text as written. Leaves `node` unchanged if that fails (it cannot, for a document that
    /// loaded once).
    fn reread(&mut self, index: usize, node: &mut Node) {
        let (stream, next) = self
            .rereader
            .get_or_insert_with(|| (yaml_serde::Deserializer::from_str(self.text), 0));
        let Some(skip) = index.checked_sub(*next) else {
            return;
        };
        let Some(document) = stream.nth(skip) else {
            return;
        };
        *next = index + 1;
        let mut written = node.clone();
        if Fill(&mut written).deserialize(document).is_ok() {
            *node = written;
        }
    }
}

/// Whether a document has plain non-string scalars where rule fields are read as text: anywhere but
/// under `detection` and `filter`.
fn needs_text_as_written(node: &Node) -> bool {
    let Node::Map(map) = node else {
        return false;
    };
    map.iter().any(|(key, value)| {
        !matches!(key, Node::Str(k) if k == "detection" || k == "filter") && value.has_plain()
    })
}

/// Applies YAML 1.1 merge keys as PyYAML does: in a mapping, `<<: *anchor` (or a list of anchors) adds
/// the keys of the merged mapping(s) the mapping does not have itself; among a list of mappings the
/// first one that has a key wins. A `<<` whose value is not a mapping or a list of mappings stays as
/// an ordinary key.
fn merge_keys(node: &mut Node) {
    match node {
        Node::Seq(items) => items.iter_mut().for_each(merge_keys),
        Node::Map(map) => {
            for (_, value) in map.iter_mut() {
                merge_keys(value);
            }
            let sources = match map.get("<<") {
                Some(Node::Map(source)) => vec![source.clone()],
                Some(Node::Seq(items)) if items.iter().all(|item| matches!(item, Node::Map(_))) => {
                    items
                        .iter()
                        .filter_map(|item| match item {
                            Node::Map(source) => Some(source.clone()),
                            _ => None,
                        })
                        .collect()
                }
                _ => return,
            };
            map.remove("<<");
            map.order.clear();
            let mut present: HashSet<Node> = map.iter().map(|(key, _)| key.clone()).collect();
            for (key, value) in sources.into_iter().flat_map(Map::into_entries) {
                if present.insert(key.clone()) {
                    map.push(key, value);
                }
            }
        }
        Node::Null | Node::Str(_) | Node::Plain(_) => {}
    }
}

fn error_line(error: &yaml_serde::Error) -> Option<u32> {
    error
        .location()
        .and_then(|l| u32::try_from(l.line()).ok())
        .filter(|&line| line > 0)
}

/// What loading one document shares between its nodes.
struct Ctx<'a> {
    /// Set when the error is our own (not `yaml_serde`'s): what kind it is.
    own_error: Cell<Option<Code>>,
    budget: &'a Budget,
    /// How deep the node being loaded is nested.
    depth: Cell<usize>,
    /// The keys from the root to the mapping being loaded.
    path: RefCell<Vec<String>>,
    duplicates: RefCell<Vec<Duplicate>>,
}

/// Loads one node. `keys` is set when the node is a mapping key: the keys already seen in that
/// mapping (with their entries), to reject a repeated metadata key where it is written.
struct NodeSeed<'a> {
    ctx: &'a Ctx<'a>,
    keys: Option<&'a HashMap<Node, usize>>,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = Node;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl NodeSeed<'_> {
    fn inner(&self) -> NodeSeed<'_> {
        NodeSeed {
            ctx: self.ctx,
            keys: None,
        }
    }

    fn own<E: de::Error>(&self, code: Code, message: fmt::Arguments<'_>) -> E {
        self.ctx.own_error.set(Some(code));
        E::custom(message)
    }

    /// Takes a node of `text` bytes from the budget.
    fn take<E: de::Error>(&self, text: usize) -> Result<(), E> {
        if self.ctx.budget.take(text) {
            Ok(())
        } else {
            Err(self.own(
                Code::LimitExceeded,
                format_args!(
                    "the file loads more YAML nodes or text than the limits allow (aliases expanded)"
                ),
            ))
        }
    }

    /// Returns the loaded scalar node, or an error if it is a repeated metadata key. Erring here,
    /// inside `deserialize_any`, makes `yaml_serde` attach the key's own position to the error.
    fn done<E: de::Error>(self, node: Node) -> Result<Node, E> {
        let text = match &node {
            Node::Str(s) | Node::Plain(s) => s.len(),
            _ => 0,
        };
        self.take(text)?;
        self.checked(node)
    }

    fn checked<E: de::Error>(self, node: Node) -> Result<Node, E> {
        match self.keys {
            Some(keys)
                if keys.contains_key(&node) && is_metadata(&self.ctx.path.borrow(), &node) =>
            {
                Err(self.own(
                    Code::DuplicateKey,
                    format_args!("duplicate key {}", describe_key(&node)),
                ))
            }
            _ => Ok(node),
        }
    }

    /// Enters a list or mapping: one level deeper.
    fn enter<E: de::Error>(&self) -> Result<(), E> {
        self.take(0)?;
        let depth = self.ctx.depth.get() + 1;
        if depth > self.ctx.budget.depth {
            return Err(self.own(
                Code::LimitExceeded,
                format_args!(
                    "lists and mappings nest deeper than {} levels",
                    self.ctx.budget.depth
                ),
            ));
        }
        self.ctx.depth.set(depth);
        Ok(())
    }

    fn leave(&self) {
        self.ctx.depth.set(self.ctx.depth.get().saturating_sub(1));
    }
}

fn describe_key(key: &Node) -> String {
    match key {
        Node::Str(s) | Node::Plain(s) => format!("`{s}`"),
        other => other.kind().to_owned(),
    }
}

/// A key as one step of a [`Duplicate`] path.
fn key_name(key: &Node) -> String {
    match key {
        Node::Str(s) | Node::Plain(s) => s.clone(),
        other => other.kind().to_owned(),
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_> {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        self.done(Node::Plain(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        self.done(Node::Plain(v.to_string()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
        self.done(Node::Plain(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        self.done(Node::Plain(v.to_string()))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        self.done(Node::Plain(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        self.done(Node::Plain(v.to_string()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        self.done(Node::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        self.done(Node::Str(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        self.done(Node::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        self.done(Node::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        let node = self.inner().deserialize(deserializer)?;
        self.checked(node)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        self.enter()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.inner())? {
            items.push(item);
        }
        self.leave();
        self.checked(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Node, A::Error> {
        self.enter()?;
        let mut seen: HashMap<Node, usize> = HashMap::new();
        let mut map = Map::default();
        loop {
            let key_seed = NodeSeed {
                ctx: self.ctx,
                keys: Some(&seen),
            };
            let Some(key) = access.next_key_seed(key_seed)? else {
                break;
            };
            self.ctx.path.borrow_mut().push(key_name(&key));
            let value = access.next_value_seed(self.inner());
            self.ctx.path.borrow_mut().pop();
            let value = value?;
            match seen.get(&key).copied() {
                Some(at) => {
                    // The last value wins, in the first one's place (a Python dict).
                    if map.order.is_empty() {
                        map.order = (0..map.len()).map(Some).collect();
                    }
                    if let Some(slot) = map.order.iter_mut().rev().find(|o| **o == Some(at)) {
                        *slot = None;
                    }
                    map.order.push(Some(at));
                    if let Some(slot) = map.value_mut(at) {
                        *slot = value;
                    }
                    self.ctx.duplicates.borrow_mut().push(Duplicate {
                        path: self.ctx.path.borrow().clone(),
                        key: key_name(&key),
                    });
                }
                None => {
                    seen.insert(key.clone(), map.len());
                    if !map.order.is_empty() {
                        map.order.push(Some(map.len()));
                    }
                    map.push(key, value);
                }
            }
        }
        self.leave();
        self.checked(Node::Map(map))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Node, A::Error> {
        // `yaml_serde` hands a node with a non-standard tag (`!foo bar`) over as an enum.
        let (tag, _) = data.variant::<String>()?;
        Err(self.own(
            Code::UnsafeYamlTag,
            format_args!("unsupported YAML tag `!{tag}`"),
        ))
    }
}

/// Walks a document again alongside its first tree, reading every [`Node::Plain`] scalar as a string.
struct Fill<'a>(&'a mut Node);

impl<'de> DeserializeSeed<'de> for Fill<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        match self.0 {
            Node::Plain(text) => {
                *text = deserializer.deserialize_str(TextVisitor)?;
                Ok(())
            }
            Node::Seq(items) => deserializer.deserialize_seq(FillSeq(items)),
            Node::Map(map) => deserializer.deserialize_map(FillMap(map)),
            Node::Null | Node::Str(_) => deserializer.deserialize_ignored_any(IgnoredAny).map(drop),
        }
    }
}

struct TextVisitor;

impl Visitor<'_> for TextVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
}

struct FillSeq<'a>(&'a mut Vec<Node>);

impl<'de> Visitor<'de> for FillSeq<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the same list as before")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        for item in self.0.iter_mut() {
            if seq.next_element_seed(Fill(item))?.is_none() {
                return Err(de::Error::custom("the document changed between readings"));
            }
        }
        Ok(())
    }
}

struct FillMap<'a>(&'a mut Map);

impl<'de> Visitor<'de> for FillMap<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the same mapping as before")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<(), A::Error> {
        if !self.0.order.is_empty() {
            // A key the text repeats: only the value that was kept is filled.
            let order = self.0.order.clone();
            for slot in order {
                if access.next_key::<IgnoredAny>()?.is_none() {
                    return Err(de::Error::custom("the document changed between readings"));
                }
                match slot.and_then(|at| self.0.value_mut(at)) {
                    Some(value) => access.next_value_seed(Fill(value))?,
                    None => access.next_value::<IgnoredAny>().map(drop)?,
                }
            }
            return Ok(());
        }
        for (_, value) in self.0.iter_mut() {
            if access.next_key::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom("the document changed between readings"));
            }
            access.next_value_seed(Fill(value))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn load(text: &str) -> Vec<Result<Node, YamlError>> {
        let budget = Budget::new(usize::MAX, usize::MAX, 128);
        documents(text, &budget).map(|d| d.node).collect()
    }

    fn s(text: &str) -> Node {
        Node::Str(text.to_owned())
    }

    #[test]
    fn plain_scalars_keep_their_text_when_rule_fields_have_them() {
        let docs = load(
            "a: 1.10\nb: 0x1F\nc: True\nd: 2024-01-01\ne: ~\n---\ntitle: t\ndetection:\n  x: 0x1F\n",
        );
        let Ok(Node::Map(map)) = &docs[0] else {
            panic!("{docs:?}")
        };
        assert_eq!(map.get("a"), Some(&Node::Plain("1.10".into())));
        assert_eq!(map.get("b"), Some(&Node::Plain("0x1F".into())));
        assert_eq!(map.get("c"), Some(&Node::Plain("True".into())));
        assert_eq!(map.get("d"), Some(&s("2024-01-01")));
        assert_eq!(map.get("e"), Some(&Node::Null));
        // Plain scalars only under `detection` do not make the document be read twice.
        let Ok(Node::Map(map)) = &docs[1] else {
            panic!("{docs:?}")
        };
        let Some(Node::Map(detection)) = map.get("detection") else {
            panic!()
        };
        assert_eq!(detection.get("x"), Some(&Node::Plain("31".into())));
    }

    #[test]
    fn rereading_follows_aliases_and_later_documents() {
        let docs = load("a: 1\n---\nx: &n 1.50\ny: [*n, {z: 0o7}]\n");
        let Ok(Node::Map(map)) = &docs[1] else {
            panic!("{docs:?}")
        };
        assert_eq!(map.get("x"), Some(&Node::Plain("1.50".into())));
        let expected = Node::Seq(vec![
            Node::Plain("1.50".into()),
            Node::Map(Map::from([("z", Node::Plain("0o7".into()))])),
        ]);
        assert_eq!(map.get("y"), Some(&expected));
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_unless_metadata() {
        let budget = Budget::new(usize::MAX, usize::MAX, 128);
        let docs: Vec<Document> = documents(
            "a: 1\nb:\n  c: 1\n  d: 2\n  c: 0x3\n---\ntitle: 1\ntitle: 2\n",
            &budget,
        )
        .collect();
        let Ok(Node::Map(map)) = &docs[0].node else {
            panic!("{docs:?}")
        };
        let Some(Node::Map(b)) = map.get("b") else {
            panic!()
        };
        // The first key's place, the last value, as written.
        let keys: Vec<_> = b.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(
            keys,
            vec![
                (s("c"), Node::Plain("0x3".into())),
                (s("d"), Node::Plain("2".into()))
            ]
        );
        assert_eq!(
            docs[0].duplicates,
            vec![Duplicate {
                path: vec!["b".into()],
                key: "c".into()
            }]
        );
        let Err(error) = &docs[1].node else {
            panic!("{docs:?}")
        };
        assert_eq!(
            (error.line, error.code, error.fatal),
            (Some(8), Code::DuplicateKey, false)
        );
    }

    #[test]
    fn numeric_duplicate_keys_compare_by_value() {
        let budget = Budget::new(usize::MAX, usize::MAX, 128);
        let docs: Vec<Document> = documents("1: a\n0x1: b\n", &budget).collect();
        assert_eq!(docs[0].duplicates.len(), 1, "{docs:?}");
    }

    #[test]
    fn budget_and_depth_stop_loading() {
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n";
        let budget = Budget::new(5_000, usize::MAX, 128);
        let docs: Vec<Document> = documents(bomb, &budget).collect();
        assert!(
            matches!(&docs[0].node, Err(e) if e.code == Code::LimitExceeded && !e.fatal),
            "{docs:?}"
        );
        let budget = Budget::new(usize::MAX, usize::MAX, 3);
        let docs: Vec<Document> = documents("a:\n  b:\n    c: [d]\n", &budget).collect();
        assert!(
            matches!(&docs[0].node, Err(e) if e.code == Code::LimitExceeded && e.line == Some(3)),
            "{docs:?}"
        );
    }

    #[test]
    fn syntax_error_ends_the_file() {
        let docs = load("a: 1\n---\nb: [1, 2\nc: 3\n---\nx: 1\n");
        assert_eq!(docs.len(), 2);
        let Err(error) = &docs[1] else {
            panic!("{docs:?}")
        };
        assert!(error.fatal);
        assert_eq!(error.line, Some(4));
    }

    #[test]
    fn unknown_anchor_ends_the_file_without_panicking() {
        let docs = load("a: *x\nb: 1\n---\nc: 1\n");
        assert_eq!(docs.len(), 1);
        assert!(
            matches!(&docs[0], Err(e) if e.fatal && e.line == Some(1)),
            "{docs:?}"
        );
    }

    #[test]
    fn custom_tags_are_rejected_but_do_not_end_the_file() {
        let docs = load("a: 1\nb: !foo bar\n---\nc: !!str 12\n");
        assert!(
            matches!(&docs[0], Err(e) if !e.fatal && e.line == Some(2)),
            "{docs:?}"
        );
        let Ok(Node::Map(map)) = &docs[1] else {
            panic!("{docs:?}")
        };
        assert_eq!(map.get("c"), Some(&s("12")));
    }

    #[test]
    fn merge_keys_are_applied() {
        let text = "base: &b {a: 1, b: 2}\nother: &o {b: 3, c: 4}\none:\n  <<: *b\n  a: own\nmany:\n  <<: [*o, *b]\nodd:\n  <<: text\n";
        let docs = load(text);
        let Ok(Node::Map(map)) = &docs[0] else {
            panic!("{docs:?}")
        };
        let Some(Node::Map(one)) = map.get("one") else {
            panic!()
        };
        assert_eq!(one.get("a"), Some(&s("own")));
        assert_eq!(one.get("b"), Some(&Node::Plain("2".into())));
        assert_eq!(one.get("<<"), None);
        let Some(Node::Map(many)) = map.get("many") else {
            panic!()
        };
        assert_eq!(many.get("b"), Some(&Node::Plain("3".into())));
        assert_eq!(many.get("a"), Some(&Node::Plain("1".into())));
        let Some(Node::Map(odd)) = map.get("odd") else {
            panic!()
        };
        assert_eq!(odd.get("<<"), Some(&s("text")));
    }

    #[test]
    fn empty_text_is_one_null_document() {
        assert_eq!(load(""), vec![Ok(Node::Null)]);
        assert_eq!(load("# only a comment\n"), vec![Ok(Node::Null)]);
    }
}
