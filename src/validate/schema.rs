//! misp-galaxy's JSON schemas (`schema_clusters.json`, `schema_galaxies.json`) as code: this module
//! owns the structural rules a cluster or galaxy file must meet (required keys, value types,
//! `additionalProperties: false` at cluster, value and galaxy level, `uniqueItems`, `value` required
//! in each `values` item, the typed `meta` keys), judged with draft 7 semantics as Python's
//! `jsonschema.Draft7Validator` applies them. The schemas are fixed upstream, so they are written out
//! here rather than loaded and interpreted at run time.
//!
//! The `related` entry of the cluster schema puts `properties` on an array, where draft 7 ignores
//! them: only "an array of objects" is enforced, as `jsonschema` does.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use serde_json::{Map, Value};

use super::py::{equality_key, is_schema_integer};
use super::value_label;

/// The JSON type a schema property asks for.
#[derive(Clone, Copy, Debug)]
enum Kind {
    String,
    Integer,
    Boolean,
    Object,
    /// An array whose items are strings, all distinct.
    UniqueStrings,
}

const CLUSTER_REQUIRED: &[&str] = &[
    "description",
    "type",
    "version",
    "name",
    "uuid",
    "values",
    "authors",
    "source",
    "category",
];

/// Cluster keys other than `values` (checked on its own) and `authors`.
const CLUSTER_PROPERTIES: &[(&str, Kind)] = &[
    ("description", Kind::String),
    ("type", Kind::String),
    ("version", Kind::Integer),
    ("name", Kind::String),
    ("uuid", Kind::String),
    ("source", Kind::String),
    ("category", Kind::String),
    ("authors", Kind::UniqueStrings),
];

/// Value keys other than `related` and `meta` (checked on their own).
const VALUE_PROPERTIES: &[(&str, Kind)] = &[
    ("description", Kind::String),
    ("value", Kind::String),
    ("uuid", Kind::String),
    ("revoked", Kind::Boolean),
];
const VALUE_KEYS: &[&str] = &["description", "value", "uuid", "revoked", "related", "meta"];

/// `meta` allows any key; these have a fixed type.
const META_PROPERTIES: &[(&str, Kind)] = &[
    ("type", Kind::UniqueStrings),
    ("complexity", Kind::String),
    ("effectiveness", Kind::String),
    ("country", Kind::String),
    ("possible_issues", Kind::String),
    ("colour", Kind::String),
    ("motive", Kind::String),
    ("impact", Kind::String),
    ("refs", Kind::UniqueStrings),
    ("synonyms", Kind::UniqueStrings),
    ("status", Kind::String),
    ("date", Kind::String),
    ("encryption", Kind::String),
    ("extensions", Kind::UniqueStrings),
    ("ransomnotes", Kind::UniqueStrings),
    ("official-refs", Kind::UniqueStrings),
];

const GALAXY_REQUIRED: &[&str] = &["description", "type", "version", "name", "uuid"];
const GALAXY_PROPERTIES: &[(&str, Kind)] = &[
    ("description", Kind::String),
    ("type", Kind::String),
    ("version", Kind::Integer),
    ("name", Kind::String),
    ("icon", Kind::String),
    ("uuid", Kind::String),
    ("namespace", Kind::String),
    ("kill_chain_order", Kind::Object),
];

/// Checks `cluster` against `schema_clusters.json`; one line per violation.
pub(crate) fn check_cluster(cluster: &Value, problems: &mut Vec<String>) {
    let at = |path: &str, what: String| format!("schema: cluster: {path}: {what}");
    let Some(obj) = cluster.as_object() else {
        problems.push(at(
            "top level",
            format!("must be an object, found {}", kind_of(cluster)),
        ));
        return;
    };
    let known: Vec<&str> = CLUSTER_PROPERTIES
        .iter()
        .map(|(k, _)| *k)
        .chain(["values"])
        .collect();
    for key in unexpected_keys(obj, &known) {
        problems.push(at("top level", format!("key {key:?} is not allowed")));
    }
    for &(key, kind) in CLUSTER_PROPERTIES {
        if let Some(v) = obj.get(key) {
            check_kind(v, kind, &mut |what| problems.push(at(key, what)));
        }
    }
    if let Some(values) = obj.get("values") {
        match values.as_array() {
            Some(items) => check_values(items, problems),
            None => problems.push(at(
                "values",
                format!("must be an array, found {}", kind_of(values)),
            )),
        }
    }
    for key in missing_keys(obj, CLUSTER_REQUIRED) {
        problems.push(at("top level", format!("required key {key:?} is missing")));
    }
}

fn check_values(items: &[Value], problems: &mut Vec<String>) {
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let label = value_label(item, i);
        let mut at = |field: &str, what: String| {
            if field.is_empty() {
                problems.push(format!("schema: cluster: {label}: {what}"));
            } else {
                problems.push(format!("schema: cluster: {label}: {field}: {what}"));
            }
        };
        match first_seen.entry(equality_key(item)) {
            Entry::Occupied(first) => {
                at(
                    "",
                    format!("is identical to values/{} (uniqueItems)", first.get()),
                );
            }
            Entry::Vacant(slot) => {
                slot.insert(i);
            }
        }
        let Some(obj) = item.as_object() else {
            at("", format!("must be an object, found {}", kind_of(item)));
            continue;
        };
        for key in unexpected_keys(obj, VALUE_KEYS) {
            at("", format!("key {key:?} is not allowed"));
        }
        for &(key, kind) in VALUE_PROPERTIES {
            if let Some(v) = obj.get(key) {
                check_kind(v, kind, &mut |what| at(key, what));
            }
        }
        if let Some(related) = obj.get("related") {
            match related.as_array() {
                Some(entries) => {
                    for (j, entry) in entries.iter().enumerate() {
                        if !entry.is_object() {
                            at(
                                &format!("related/{j}"),
                                format!("must be an object, found {}", kind_of(entry)),
                            );
                        }
                    }
                }
                None => at(
                    "related",
                    format!("must be an array, found {}", kind_of(related)),
                ),
            }
        }
        if let Some(meta) = obj.get("meta") {
            match meta.as_object() {
                Some(meta) => {
                    for &(key, kind) in META_PROPERTIES {
                        if let Some(v) = meta.get(key) {
                            check_kind(v, kind, &mut |what| at(&format!("meta {key:?}"), what));
                        }
                    }
                }
                None => at(
                    "meta",
                    format!("must be an object, found {}", kind_of(meta)),
                ),
            }
        }
        if !obj.contains_key("value") {
            at("", "required key \"value\" is missing".to_string());
        }
    }
}

/// Checks `galaxy` against `schema_galaxies.json`; one line per violation.
pub(crate) fn check_galaxy(galaxy: &Value, problems: &mut Vec<String>) {
    let at = |path: &str, what: String| format!("schema: galaxy: {path}: {what}");
    let Some(obj) = galaxy.as_object() else {
        problems.push(at(
            "top level",
            format!("must be an object, found {}", kind_of(galaxy)),
        ));
        return;
    };
    let known: Vec<&str> = GALAXY_PROPERTIES.iter().map(|(k, _)| *k).collect();
    for key in unexpected_keys(obj, &known) {
        problems.push(at("top level", format!("key {key:?} is not allowed")));
    }
    for &(key, kind) in GALAXY_PROPERTIES {
        if let Some(v) = obj.get(key) {
            check_kind(v, kind, &mut |what| problems.push(at(key, what)));
        }
    }
    for key in missing_keys(obj, GALAXY_REQUIRED) {
        problems.push(at("top level", format!("required key {key:?} is missing")));
    }
}

fn check_kind(v: &Value, kind: Kind, report: &mut dyn FnMut(String)) {
    let ok = match kind {
        Kind::String => v.is_string(),
        Kind::Integer => is_schema_integer(v),
        Kind::Boolean => v.is_boolean(),
        Kind::Object => v.is_object(),
        Kind::UniqueStrings => {
            let Some(items) = v.as_array() else {
                report(format!("must be an array of strings, found {}", kind_of(v)));
                return;
            };
            for (i, item) in items.iter().enumerate() {
                if !item.is_string() {
                    report(format!(
                        "item {i} must be a string, found {}",
                        kind_of(item)
                    ));
                }
            }
            let mut seen: HashMap<String, usize> = HashMap::new();
            for (i, item) in items.iter().enumerate() {
                match seen.entry(equality_key(item)) {
                    Entry::Occupied(first) => {
                        report(format!(
                            "item {i} repeats item {} (uniqueItems)",
                            first.get()
                        ));
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(i);
                    }
                }
            }
            return;
        }
    };
    if !ok {
        let wanted = match kind {
            Kind::String => "a string",
            Kind::Integer => "an integer",
            Kind::Boolean => "a boolean",
            Kind::Object => "an object",
            Kind::UniqueStrings => "an array of strings",
        };
        report(format!("must be {wanted}, found {}", kind_of(v)));
    }
}

fn unexpected_keys<'a>(obj: &'a Map<String, Value>, allowed: &[&str]) -> Vec<&'a str> {
    let mut keys: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    keys.sort_unstable();
    keys
}

fn missing_keys<'a>(obj: &Map<String, Value>, required: &[&'a str]) -> Vec<&'a str> {
    required
        .iter()
        .copied()
        .filter(|k| !obj.contains_key(*k))
        .collect()
}

/// The JSON type of `v`, for messages.
pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster_problems(v: &Value) -> Vec<String> {
        let mut p = Vec::new();
        check_cluster(v, &mut p);
        p
    }

    fn galaxy_problems(v: &Value) -> Vec<String> {
        let mut p = Vec::new();
        check_galaxy(v, &mut p);
        p
    }

    fn cluster() -> Value {
        json!({
            "authors": ["a"], "category": "rules", "description": "d", "name": "n",
            "source": "s", "type": "t", "uuid": "u", "version": 1,
            "values": [{"value": "v", "meta": {"refs": ["r"], "other": 5}, "related": [{}]}]
        })
    }

    #[test]
    fn valid_documents_pass() {
        assert_eq!(cluster_problems(&cluster()), Vec::<String>::new());
        let g = json!({"description": "d", "type": "t", "version": 1.0, "name": "n", "uuid": "u"});
        assert_eq!(galaxy_problems(&g), Vec::<String>::new());
    }

    #[test]
    fn related_items_must_be_objects_only() {
        let mut c = cluster();
        c["values"][0]["related"] = json!([{"dest-uuid": 5, "anything": true}, "x"]);
        assert_eq!(
            cluster_problems(&c),
            [
                "schema: cluster: value \"v\" (values/0): related/1: must be an object, found a string"
            ]
        );
    }

    #[test]
    fn meta_typed_keys_are_checked() {
        let mut c = cluster();
        c["values"][0]["meta"] = json!({"country": ["FR"], "synonyms": ["a", "a"], "refs": [1]});
        assert_eq!(
            cluster_problems(&c),
            [
                "schema: cluster: value \"v\" (values/0): meta \"country\": must be a string, found an array",
                "schema: cluster: value \"v\" (values/0): meta \"refs\": item 0 must be a string, found an integer",
                "schema: cluster: value \"v\" (values/0): meta \"synonyms\": item 1 repeats item 0 (uniqueItems)",
            ]
        );
    }

    #[test]
    fn non_object_top_level_is_one_problem() {
        assert_eq!(
            cluster_problems(&json!([])),
            ["schema: cluster: top level: must be an object, found an array"]
        );
        assert_eq!(
            galaxy_problems(&json!("x")),
            ["schema: galaxy: top level: must be an object, found a string"]
        );
    }

    #[test]
    fn boolean_is_not_an_integer() {
        let mut c = cluster();
        c["version"] = json!(true);
        assert_eq!(
            cluster_problems(&c),
            ["schema: cluster: version: must be an integer, found a boolean"]
        );
    }
}
