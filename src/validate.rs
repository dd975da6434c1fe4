//! Validate: judges a cluster/galaxy pair as misp-galaxy's CI and MISP itself do. This module owns
//! `sigma-galaxy validate`: it is the Rust twin of `tools/validate_galaxy.py` and must reach the
//! same verdict on every pair, reporting one line per problem, in a fixed order:
//!
//! 1. the JSON parses (as UTF-8), else one `json:` line for that file;
//! 2. both files meet misp-galaxy's schemas (`schema:`, see the `schema` submodule);
//! 3. both files are byte-identical to [`to_misp_json`] of their content (`format:`);
//! 4. the pair shares `type` and file name (`pair:`);
//! 5. PyMISPGalaxies would load them (`pymispgalaxies:`): a galaxy needs `icon` and must survive
//!    its round trip (a present but empty `namespace`/`kill_chain_order` does not); every `value` is
//!    non-empty and unique ignoring case; the cluster has at least one value;
//! 6. `version` is a positive signed 32-bit integer, uuids parse (`uuid:`), value uuids are
//!    canonical lower case and unique;
//! 7. per value: MISP's limits (`misp:` tag `misp-galaxy:TYPE="VALUE"` at most 255 characters, no
//!    `"` in a value, no 4-byte UTF-8 character anywhere in it), `meta:` values are a string or a list
//!    of non-empty strings, `related:` entries have a parsable `dest-uuid` and a `type`.
//!
//! Python's own semantics (lenient `uuid.UUID` parsing, so a cluster or galaxy uuid in upper case or
//! braces passes as it does there; truthiness; `len` in code points) live in the `py` submodule.
//! Deliberate difference: the format check compares bytes, so CRLF line ends are a problem here
//! while the script, reading in text mode, lets them pass. Not covered: the script's
//! `--known-clusters` cross-file uuid check.

mod py;
mod schema;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;

use serde_json::{Map, Value};

use crate::emit::json::to_misp_json;

/// MISP stores a galaxy's `version` in a signed 32-bit column.
const MAX_VERSION: i64 = 2_147_483_647;
/// MISP's tag name column holds this many characters.
const MAX_TAG_CHARS: usize = 255;
/// Value names longer than this are cut in messages.
const LABEL_CHARS: usize = 60;

/// Checks a cluster/galaxy pair; returns one line per problem (empty: valid).
///
/// Errors only when a file cannot be read at all; JSON that does not parse is a problem line.
pub fn validate_pair(cluster: &Path, galaxy: &Path) -> std::io::Result<Vec<String>> {
    validate_pair_with(cluster, galaxy, false)
}

/// [`validate_pair`], accepting a `version` in each value when `value_versions` (as
/// `build --value-versions` writes them: MISP reads them, misp-galaxy's schema forbids them). Each
/// must then be a positive signed 32-bit integer no greater than the cluster's version
/// (`value version:`); the other checks see the values without it.
pub fn validate_pair_with(
    cluster: &Path,
    galaxy: &Path,
    value_versions: bool,
) -> std::io::Result<Vec<String>> {
    let cluster_bytes = std::fs::read(cluster)?;
    let galaxy_bytes = std::fs::read(galaxy)?;
    let mut problems = Vec::new();

    let c = parse("cluster", cluster, &cluster_bytes, &mut problems);
    let g = parse("galaxy", galaxy, &galaxy_bytes, &mut problems);

    if let Some(c) = &c {
        if value_versions {
            let mut without = c.clone();
            check_value_versions(&mut without, &mut problems);
            schema::check_cluster(&without, &mut problems);
        } else {
            schema::check_cluster(c, &mut problems);
        }
    }
    if let Some(g) = &g {
        schema::check_galaxy(g, &mut problems);
    }
    if let Some(c) = &c {
        check_format("cluster", cluster, &cluster_bytes, c, &mut problems);
    }
    if let Some(g) = &g {
        check_format("galaxy", galaxy, &galaxy_bytes, g, &mut problems);
    }

    let c = c.as_ref().and_then(Value::as_object);
    let g = g.as_ref().and_then(Value::as_object);
    if let (Some(c), Some(g)) = (c, g) {
        let (ct, gt) = (c.get("type"), g.get("type"));
        if ct.map(py::equality_key) != gt.map(py::equality_key) {
            problems.push(format!(
                "pair: cluster type {} differs from galaxy type {}",
                shown(ct),
                shown(gt)
            ));
        }
    }
    if cluster.file_name() != galaxy.file_name() {
        problems.push(format!(
            "pair: file names differ ({} vs {}); misp-galaxy pairs clusters/X.json with galaxies/X.json",
            file_name(cluster),
            file_name(galaxy)
        ));
    }

    if let Some(g) = g {
        check_galaxy_load(g, &mut problems);
    }
    if let Some(c) = c {
        check_cluster_load(c, &mut problems);
        let version = c.get("version");
        let version_ok = version
            .and_then(Value::as_i64)
            .is_some_and(|v| (1..=MAX_VERSION).contains(&v));
        if !version_ok {
            problems.push(format!(
                "version: cluster version {} is not a positive signed 32-bit integer",
                shown(version)
            ));
        }
    }
    for (role, obj) in [("cluster", c), ("galaxy", g)] {
        if let Some(obj) = obj {
            let uuid = obj.get("uuid");
            if uuid
                .and_then(Value::as_str)
                .and_then(py::parse_uuid)
                .is_none()
            {
                problems.push(format!("uuid: {role} uuid {} does not parse", shown(uuid)));
            }
        }
    }
    if let Some(c) = c {
        check_values(c, &mut problems);
    }
    Ok(problems)
}

/// Checks each value's own `version` and removes it from `cluster`.
fn check_value_versions(cluster: &mut Value, problems: &mut Vec<String>) {
    let cluster_version = cluster.get("version").and_then(Value::as_i64);
    let Some(values) = cluster.get_mut("values").and_then(Value::as_array_mut) else {
        return;
    };
    for (i, v) in values.iter_mut().enumerate() {
        let label = value_label(v, i);
        let Some(version) = v.as_object_mut().and_then(|o| o.remove("version")) else {
            continue;
        };
        let ok = version.as_i64().filter(|n| (1..=MAX_VERSION).contains(n));
        match (ok, cluster_version) {
            (None, _) => problems.push(format!(
                "value version: {label}: {version} is not a positive signed 32-bit integer"
            )),
            (Some(n), Some(c)) if n > c => problems.push(format!(
                "value version: {label}: {n} is greater than the cluster version {c}"
            )),
            _ => {}
        }
    }
}

/// Decodes and parses one file; a failure is a problem line and `None`.
fn parse(role: &str, path: &Path, bytes: &[u8], problems: &mut Vec<String>) -> Option<Value> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            problems.push(format!(
                "json: {role} file {} is not UTF-8: {e}",
                path.display()
            ));
            return None;
        }
    };
    match serde_json::from_str(text) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(format!(
                "json: {role} file {} does not parse: {e}",
                path.display()
            ));
            None
        }
    }
}

/// The file must be exactly what misp-galaxy's formatter writes for its content.
fn check_format(role: &str, path: &Path, bytes: &[u8], value: &Value, problems: &mut Vec<String>) {
    let expected = to_misp_json(value);
    if bytes == expected.as_bytes() {
        return;
    }
    // Both are UTF-8 here (the file parsed); find the first line that differs, for the reader.
    let actual = String::from_utf8_lossy(bytes);
    let mut actual_lines = actual.split('\n');
    let mut expected_lines = expected.split('\n');
    let mut line = 1;
    while actual_lines.next() == expected_lines.next() {
        line += 1;
    }
    problems.push(format!(
        "format: {role} file {} is not in misp-galaxy formatting (indent 2, sorted keys, UTF-8, \
         final newline); first difference on line {line}",
        path.display()
    ));
}

/// What PyMISPGalaxies' `Galaxy(dict)` needs beyond the schema, and its round trip `to_dict()`.
fn check_galaxy_load(g: &Map<String, Value>, problems: &mut Vec<String>) {
    if !g.contains_key("icon") {
        problems.push(
            "pymispgalaxies: galaxy has no \"icon\"; PyMISPGalaxies cannot load it".to_string(),
        );
    }
    for key in ["namespace", "kill_chain_order"] {
        if g.get(key).is_some_and(|v| !py::truthy(v)) {
            problems.push(format!(
                "pymispgalaxies: galaxy {key:?} is empty; PyMISPGalaxies drops it, so the galaxy \
                 does not survive its round trip"
            ));
        }
    }
}

/// What PyMISPGalaxies' `Cluster(dict, skip_duplicates=False)` needs beyond the schema: every
/// `value` non-empty, no two values equal ignoring case, and (the script's rule) at least one value.
fn check_cluster_load(c: &Map<String, Value>, problems: &mut Vec<String>) {
    let Some(values) = c.get("values").and_then(Value::as_array) else {
        return;
    };
    if values.is_empty() {
        problems.push("pymispgalaxies: cluster has no values".to_string());
    }
    let mut first_by_lower: HashMap<String, usize> = HashMap::new();
    for (i, v) in values.iter().enumerate() {
        let Some(name) = v.get("value") else {
            continue;
        };
        if !py::truthy(name) {
            problems.push(format!(
                "pymispgalaxies: {}: \"value\" is empty; PyMISPGalaxies rejects the cluster",
                value_label(v, i)
            ));
        }
        let Some(name) = name.as_str() else {
            continue;
        };
        match first_by_lower.entry(name.to_lowercase()) {
            Entry::Occupied(first) => {
                let first = *first.get();
                problems.push(format!(
                    "pymispgalaxies: {}: duplicates {} ignoring case; PyMISPGalaxies rejects \
                     (or silently merges) duplicate values",
                    value_label(v, i),
                    value_label(&values[first], first)
                ));
            }
            Entry::Vacant(slot) => {
                slot.insert(i);
            }
        }
    }
}

/// The script's per-value checks: uuid, MISP limits, meta and related.
fn check_values(c: &Map<String, Value>, problems: &mut Vec<String>) {
    let Some(values) = c.get("values").and_then(Value::as_array) else {
        return;
    };
    let type_text = match c.get("type") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => "None".to_string(),
        Some(other) => other.to_string(),
    };
    let mut seen: HashMap<u128, usize> = HashMap::new();
    for (i, v) in values.iter().enumerate() {
        let Some(obj) = v.as_object() else {
            continue;
        };
        let label = value_label(v, i);
        let name = obj.get("value").and_then(Value::as_str).unwrap_or("");

        let uuid = obj.get("uuid");
        match uuid.and_then(Value::as_str).and_then(py::parse_uuid) {
            None => problems.push(format!(
                "uuid: {label}: uuid {} does not parse",
                shown(uuid)
            )),
            Some(u) => {
                let canonical = py::canonical_uuid(u);
                if uuid.and_then(Value::as_str) != Some(canonical.as_str()) {
                    problems.push(format!(
                        "uuid: {label}: uuid {} is not in canonical lower-case form {canonical}",
                        shown(uuid)
                    ));
                }
                match seen.entry(u) {
                    Entry::Occupied(first) => problems.push(format!(
                        "uuid: {label}: duplicate uuid {canonical} (also {})",
                        value_label(&values[*first.get()], *first.get())
                    )),
                    Entry::Vacant(slot) => {
                        slot.insert(i);
                    }
                }
            }
        }

        let tag_chars =
            "misp-galaxy:".len() + py::py_len(&type_text) + "=\"\"".len() + py::py_len(name);
        if tag_chars > MAX_TAG_CHARS {
            problems.push(format!(
                "misp: {label}: tag misp-galaxy:{type_text}=\"…\" is {tag_chars} characters, MISP \
                 stores at most {MAX_TAG_CHARS}"
            ));
        }
        if name.contains('"') {
            problems.push(format!(
                "misp: {label}: value contains '\"', which breaks MISP machine tags"
            ));
        }
        if let Some(ch) = first_astral_char(v) {
            problems.push(format!(
                "misp: {label}: has a 4-byte UTF-8 character (U+{:04X}), which MISP (utf8mb3) \
                 cannot store",
                u32::from(ch)
            ));
        }

        if let Some(meta) = obj.get("meta").and_then(Value::as_object) {
            for (key, mv) in meta {
                let ok = match mv {
                    Value::String(_) => true,
                    Value::Array(items) => items
                        .iter()
                        .all(|item| item.as_str().is_some_and(|s| !s.is_empty())),
                    _ => false,
                };
                if !ok {
                    problems.push(format!(
                        "meta: {label}: meta {key:?} must be a string or a list of non-empty \
                         strings, found {}",
                        shown(Some(mv))
                    ));
                }
            }
        }

        if let Some(related) = obj.get("related").and_then(Value::as_array) {
            for (j, rel) in related.iter().enumerate() {
                let dest = rel.get("dest-uuid");
                if dest
                    .and_then(Value::as_str)
                    .and_then(py::parse_uuid)
                    .is_none()
                {
                    problems.push(format!(
                        "related: {label}: related/{j} dest-uuid {} does not parse",
                        shown(dest)
                    ));
                }
                if !rel.get("type").is_some_and(py::truthy) {
                    problems.push(format!("related: {label}: related/{j} has no type"));
                }
            }
        }
    }
}

/// The first character above U+FFFF in any key or string of `v`.
fn first_astral_char(v: &Value) -> Option<char> {
    let astral = |s: &str| s.chars().find(|&ch| u32::from(ch) > 0xFFFF);
    match v {
        Value::String(s) => astral(s),
        Value::Array(items) => items.iter().find_map(first_astral_char),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, item)| astral(k).or_else(|| first_astral_char(item))),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

/// Names a cluster value in messages: `value "TEXT" (values/I)`, the text cut to a readable length.
fn value_label(v: &Value, index: usize) -> String {
    match v.get("value").and_then(Value::as_str) {
        Some(name) if py::py_len(name) > LABEL_CHARS => {
            let cut: String = name.chars().take(LABEL_CHARS).collect();
            format!("value {cut:?}… (values/{index})")
        }
        Some(name) => format!("value {name:?} (values/{index})"),
        None => format!("values/{index}"),
    }
}

/// A JSON value (or its absence) for messages.
fn shown(v: Option<&Value>) -> String {
    match v {
        None => "(missing)".to_string(),
        Some(v) => {
            let text = v.to_string();
            if py::py_len(&text) > LABEL_CHARS {
                let cut: String = text.chars().take(LABEL_CHARS).collect();
                format!("{cut}…")
            } else {
                text
            }
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    const CLUSTER_UUID: &str = "9cf7cd2e-d5f1-48c4-9909-7896ba1c96b2";
    const UUID_A: &str = "20f0ee37-5942-4e45-b7d5-c5b5db9df5cd";
    const UUID_B: &str = "9efb1ea7-c37b-4595-9640-b7680cd84279";

    /// One fixture pair: file contents and file names, and the problems it must produce, each
    /// given as a fragment of its line (in order).
    #[derive(Debug)]
    pub(crate) struct Case {
        pub name: &'static str,
        pub cluster_file: &'static str,
        pub galaxy_file: &'static str,
        pub cluster: Vec<u8>,
        pub galaxy: Vec<u8>,
        pub expected: Vec<&'static str>,
    }

    fn valid_cluster() -> Value {
        json!({
            "authors": ["Sigma rule authors"],
            "category": "rules",
            "description": "MISP galaxy cluster based on Sigma Rules.",
            "name": "Sigma-Rules",
            "source": "https://github.com/SigmaHQ/sigma",
            "type": "sigma-rules",
            "uuid": CLUSTER_UUID,
            "version": 20_240_717,
            "values": [
                {
                    "description": "Detects something — with non-ASCII text: é, 中文.",
                    "meta": {
                        "author": "someone",
                        "falsepositive": ["Legitimate use"],
                        "refs": ["https://example.org/a"],
                        "tags": ["attack.persistence"],
                        "empty": []
                    },
                    "related": [{
                        "dest-uuid": UUID_B,
                        "tags": ["estimative-language:likelihood-probability=\"almost-certain\""],
                        "type": "related-to"
                    }],
                    "uuid": UUID_A,
                    "value": "CurrentVersion Autorun Keys Modification"
                },
                {"uuid": UUID_B, "value": "Second rule"}
            ]
        })
    }

    fn valid_galaxy() -> Value {
        json!({
            "description": "Sigma Rules are used to detect suspicious behaviors",
            "icon": "link",
            "name": "Sigma-Rules",
            "namespace": "misp",
            "type": "sigma-rules",
            "uuid": CLUSTER_UUID,
            "version": 1
        })
    }

    fn bytes(v: &Value) -> Vec<u8> {
        to_misp_json(v).into_bytes()
    }

    fn case(name: &'static str, c: Value, g: Value, expected: Vec<&'static str>) -> Case {
        Case {
            name,
            cluster_file: "sigma-rules.json",
            galaxy_file: "sigma-rules.json",
            cluster: bytes(&c),
            galaxy: bytes(&g),
            expected,
        }
    }

    fn with_cluster(edit: impl FnOnce(&mut Value)) -> Value {
        let mut c = valid_cluster();
        edit(&mut c);
        c
    }

    fn with_galaxy(edit: impl FnOnce(&mut Value)) -> Value {
        let mut g = valid_galaxy();
        edit(&mut g);
        g
    }

    fn with_value(edit: impl FnOnce(&mut Value)) -> Value {
        with_cluster(|c| edit(&mut c["values"][0]))
    }

    /// Every check's broken pair (and the valid one, expecting nothing).
    pub(crate) fn cases() -> Vec<Case> {
        let mut cases = vec![
            case("valid", valid_cluster(), valid_galaxy(), vec![]),
            case(
                "valid_lenient_galaxy_uuid",
                valid_cluster(),
                with_galaxy(|g| g["uuid"] = json!(format!("{{{}}}", CLUSTER_UUID.to_uppercase()))),
                vec![],
            ),
            case(
                "valid_tag_of_255_chars",
                with_value(|v| v["value"] = json!("x".repeat(255 - 15 - "sigma-rules".len()))),
                valid_galaxy(),
                vec![],
            ),
            case(
                "schema_missing_cluster_key",
                with_cluster(|c| {
                    c.as_object_mut().map(|o| o.remove("category"));
                }),
                valid_galaxy(),
                vec!["schema: cluster: top level: required key \"category\" is missing"],
            ),
            case(
                "schema_wrong_type",
                with_cluster(|c| c["source"] = json!(["a"])),
                valid_galaxy(),
                vec!["schema: cluster: source: must be a string, found an array"],
            ),
            case(
                "schema_extra_cluster_key",
                with_cluster(|c| c["extra"] = json!("x")),
                valid_galaxy(),
                vec!["schema: cluster: top level: key \"extra\" is not allowed"],
            ),
            case(
                "schema_extra_value_key",
                with_value(|v| v["Value"] = json!("x")),
                valid_galaxy(),
                vec![
                    "schema: cluster: value \"CurrentVersion Autorun Keys Modification\" (values/0): key \"Value\" is not allowed",
                ],
            ),
            case(
                "schema_extra_galaxy_key",
                valid_cluster(),
                with_galaxy(|g| g["colour"] = json!("red")),
                vec!["schema: galaxy: top level: key \"colour\" is not allowed"],
            ),
            case(
                "schema_missing_galaxy_key",
                valid_cluster(),
                with_galaxy(|g| {
                    g.as_object_mut().map(|o| o.remove("description"));
                }),
                vec!["schema: galaxy: top level: required key \"description\" is missing"],
            ),
            case(
                "schema_authors_not_unique",
                with_cluster(|c| c["authors"] = json!(["a", "b", "a"])),
                valid_galaxy(),
                vec!["schema: cluster: authors: item 2 repeats item 0 (uniqueItems)"],
            ),
            case(
                "schema_refs_not_unique",
                with_value(|v| v["meta"]["refs"] = json!(["r", "r"])),
                valid_galaxy(),
                vec!["meta \"refs\": item 1 repeats item 0 (uniqueItems)"],
            ),
            case(
                "schema_value_required",
                with_cluster(|c| {
                    c["values"][1] = json!({"uuid": UUID_B, "description": "no value"})
                }),
                valid_galaxy(),
                vec!["schema: cluster: values/1: required key \"value\" is missing"],
            ),
            case(
                "schema_related_item_not_object",
                with_value(|v| v["related"] = json!(["related-to"])),
                valid_galaxy(),
                vec![
                    "schema: cluster: value \"CurrentVersion Autorun Keys Modification\" (values/0): related/0: must be an object, found a string",
                    "related: value \"CurrentVersion Autorun Keys Modification\" (values/0): related/0 dest-uuid (missing) does not parse",
                    "related: value \"CurrentVersion Autorun Keys Modification\" (values/0): related/0 has no type",
                ],
            ),
            case(
                "pair_type_differs",
                valid_cluster(),
                with_galaxy(|g| g["type"] = json!("sigma")),
                vec!["pair: cluster type \"sigma-rules\" differs from galaxy type \"sigma\""],
            ),
            Case {
                galaxy_file: "sigma.json",
                ..case(
                    "pair_file_name_differs",
                    valid_cluster(),
                    valid_galaxy(),
                    vec!["pair: file names differ (sigma-rules.json vs sigma.json)"],
                )
            },
            case(
                "pymisp_galaxy_without_icon",
                valid_cluster(),
                with_galaxy(|g| {
                    g.as_object_mut().map(|o| o.remove("icon"));
                }),
                vec!["pymispgalaxies: galaxy has no \"icon\""],
            ),
            case(
                "pymisp_galaxy_empty_namespace",
                valid_cluster(),
                with_galaxy(|g| g["namespace"] = json!("")),
                vec!["pymispgalaxies: galaxy \"namespace\" is empty"],
            ),
            case(
                "pymisp_empty_value",
                with_cluster(|c| c["values"][1]["value"] = json!("")),
                valid_galaxy(),
                vec!["pymispgalaxies: value \"\" (values/1): \"value\" is empty"],
            ),
            case(
                "pymisp_duplicate_value_ignoring_case",
                with_cluster(|c| {
                    c["values"][1]["value"] = json!("currentversion autorun keys MODIFICATION")
                }),
                valid_galaxy(),
                vec![
                    "pymispgalaxies: value \"currentversion autorun keys MODIFICATION\" (values/1): duplicates value \"CurrentVersion Autorun Keys Modification\" (values/0) ignoring case",
                ],
            ),
            case(
                "cluster_without_values",
                with_cluster(|c| c["values"] = json!([])),
                valid_galaxy(),
                vec!["pymispgalaxies: cluster has no values"],
            ),
            case(
                "version_zero",
                with_cluster(|c| c["version"] = json!(0)),
                valid_galaxy(),
                vec!["version: cluster version 0 is not a positive signed 32-bit integer"],
            ),
            case(
                "version_too_large",
                with_cluster(|c| c["version"] = json!(2_147_483_648_i64)),
                valid_galaxy(),
                vec!["version: cluster version 2147483648 is not a positive signed 32-bit integer"],
            ),
            case(
                "version_float",
                with_cluster(|c| c["version"] = json!(3.0)),
                valid_galaxy(),
                vec!["version: cluster version 3.0 is not a positive signed 32-bit integer"],
            ),
            case(
                "cluster_uuid_does_not_parse",
                with_cluster(|c| c["uuid"] = json!("9cf7cd2e-d5f1-48c4-9909")),
                with_galaxy(|g| g["uuid"] = json!("9cf7cd2e-d5f1-48c4-9909")),
                vec![
                    "uuid: cluster uuid \"9cf7cd2e-d5f1-48c4-9909\" does not parse",
                    "uuid: galaxy uuid \"9cf7cd2e-d5f1-48c4-9909\" does not parse",
                ],
            ),
            case(
                "value_uuid_does_not_parse",
                with_value(|v| v["uuid"] = json!("not-a-uuid")),
                valid_galaxy(),
                vec![
                    "uuid: value \"CurrentVersion Autorun Keys Modification\" (values/0): uuid \"not-a-uuid\" does not parse",
                ],
            ),
            case(
                "value_uuid_missing",
                with_value(|v| {
                    v.as_object_mut().map(|o| o.remove("uuid"));
                }),
                valid_galaxy(),
                vec![
                    "uuid: value \"CurrentVersion Autorun Keys Modification\" (values/0): uuid (missing) does not parse",
                ],
            ),
            case(
                "value_uuid_not_canonical",
                with_value(|v| v["uuid"] = json!(UUID_A.to_uppercase())),
                valid_galaxy(),
                vec![
                    "uuid: value \"CurrentVersion Autorun Keys Modification\" (values/0): uuid \"20F0EE37-5942-4E45-B7D5-C5B5DB9DF5CD\" is not in canonical lower-case form",
                ],
            ),
            case(
                "value_uuid_duplicate",
                with_cluster(|c| c["values"][1]["uuid"] = json!(UUID_A)),
                valid_galaxy(),
                vec![
                    "uuid: value \"Second rule\" (values/1): duplicate uuid 20f0ee37-5942-4e45-b7d5-c5b5db9df5cd",
                ],
            ),
            case(
                "meta_value_types",
                with_value(|v| {
                    v["meta"]["level"] = json!(3);
                    v["meta"]["tags"] = json!(["attack.t1", ""]);
                }),
                valid_galaxy(),
                vec![
                    "meta: value \"CurrentVersion Autorun Keys Modification\" (values/0): meta \"level\" must be a string or a list of non-empty strings, found 3",
                    "meta: value \"CurrentVersion Autorun Keys Modification\" (values/0): meta \"tags\" must be a string or a list of non-empty strings",
                ],
            ),
            case(
                "related_dest_uuid_does_not_parse",
                with_value(|v| v["related"][0]["dest-uuid"] = json!("T1547.001")),
                valid_galaxy(),
                vec![
                    "related: value \"CurrentVersion Autorun Keys Modification\" (values/0): related/0 dest-uuid \"T1547.001\" does not parse",
                ],
            ),
            case(
                "related_without_type",
                with_value(|v| v["related"][0]["type"] = json!("")),
                valid_galaxy(),
                vec![
                    "related: value \"CurrentVersion Autorun Keys Modification\" (values/0): related/0 has no type",
                ],
            ),
            case(
                "tag_too_long",
                with_value(|v| v["value"] = json!("é".repeat(255 - 15 - "sigma-rules".len() + 1))),
                valid_galaxy(),
                vec!["is 256 characters, MISP stores at most 255"],
            ),
            case(
                "quote_in_value",
                with_value(|v| v["value"] = json!("Say \"hi\"")),
                valid_galaxy(),
                vec!["misp: value \"Say \\\"hi\\\"\" (values/0): value contains '\"'"],
            ),
            case(
                "four_byte_character",
                with_value(|v| v["meta"]["author"] = json!("someone 😀")),
                valid_galaxy(),
                vec![
                    "misp: value \"CurrentVersion Autorun Keys Modification\" (values/0): has a 4-byte UTF-8 character (U+1F600)",
                ],
            ),
        ];

        let mut raw = |name, cluster: Vec<u8>, galaxy: Vec<u8>, expected| {
            cases.push(Case {
                name,
                cluster_file: "sigma-rules.json",
                galaxy_file: "sigma-rules.json",
                cluster,
                galaxy,
                expected,
            });
        };
        // "icon" moved before "description".
        let unsorted = to_misp_json(&valid_galaxy())
            .replacen("  \"icon\": \"link\",\n", "", 1)
            .replacen("{\n", "{\n  \"icon\": \"link\",\n", 1);
        raw(
            "format_unsorted_keys",
            bytes(&valid_cluster()),
            unsorted.into_bytes(),
            vec!["format: galaxy file"],
        );
        let mut no_newline = bytes(&valid_galaxy());
        no_newline.pop();
        raw(
            "format_no_final_newline",
            bytes(&valid_cluster()),
            no_newline,
            vec!["format: galaxy file"],
        );
        raw(
            "format_ascii_escapes",
            bytes(&valid_cluster())
                .iter()
                .fold(Vec::new(), |mut out, &b| {
                    if b == 0xC3 {
                        // The "é" (C3 A9) of the description, escaped as Python's ensure_ascii would.
                        out.extend_from_slice(b"\\u00e9");
                    } else if b != 0xA9 {
                        out.push(b);
                    }
                    out
                }),
            bytes(&valid_galaxy()),
            vec!["format: cluster file"],
        );
        raw(
            "format_indent_4",
            to_misp_json(&valid_cluster())
                .lines()
                .map(|line| {
                    let body = line.trim_start_matches(' ');
                    format!("{}{body}\n", " ".repeat(2 * (line.len() - body.len())))
                })
                .collect::<String>()
                .into_bytes(),
            bytes(&valid_galaxy()),
            vec!["format: cluster file"],
        );
        raw(
            "json_does_not_parse",
            b"{\"values\": [".to_vec(),
            bytes(&valid_galaxy()),
            vec!["json: cluster file"],
        );
        raw(
            "json_not_utf8",
            bytes(&valid_cluster()),
            [
                &bytes(&valid_galaxy())[..10],
                &b"\xff\xfe"[..],
                &bytes(&valid_galaxy())[10..],
            ]
            .concat(),
            vec!["json: galaxy file"],
        );
        cases
    }

    /// Writes a case to `dir/clusters/` and `dir/galaxies/`, returning the two paths.
    pub(crate) fn write_case(dir: &Path, case: &Case) -> (std::path::PathBuf, std::path::PathBuf) {
        let clusters = dir.join("clusters");
        let galaxies = dir.join("galaxies");
        std::fs::create_dir_all(&clusters).expect("mkdir clusters");
        std::fs::create_dir_all(&galaxies).expect("mkdir galaxies");
        let c = clusters.join(case.cluster_file);
        let g = galaxies.join(case.galaxy_file);
        std::fs::write(&c, &case.cluster).expect("write cluster");
        std::fs::write(&g, &case.galaxy).expect("write galaxy");
        (c, g)
    }

    fn run(case: &Case) -> Vec<String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, g) = write_case(dir.path(), case);
        validate_pair(&c, &g).expect("readable")
    }

    #[test]
    fn every_case_reports_exactly_its_problems() {
        for case in cases() {
            let problems = run(&case);
            assert_eq!(
                problems.len(),
                case.expected.len(),
                "{}: got {problems:#?}",
                case.name
            );
            for (line, fragment) in problems.iter().zip(&case.expected) {
                assert!(
                    line.contains(fragment),
                    "{}: {line:?} lacks {fragment:?}; all: {problems:#?}",
                    case.name
                );
            }
        }
    }

    #[test]
    fn valid_pair_has_no_problems() {
        let valid = cases().into_iter().next().expect("valid case first");
        assert_eq!(valid.name, "valid");
        assert_eq!(run(&valid), Vec::<String>::new());
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.json");
        assert!(validate_pair(&missing, &missing).is_err());
    }

    #[test]
    fn crlf_line_ends_are_a_format_problem() {
        let valid = cases().into_iter().next().expect("valid case first");
        let crlf = String::from_utf8(valid.galaxy.clone())
            .expect("utf-8")
            .replace('\n', "\r\n")
            .into_bytes();
        let problems = run(&Case {
            galaxy: crlf,
            ..valid
        });
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].contains("first difference on line 1"),
            "{problems:#?}"
        );
    }

    #[test]
    fn problems_are_deterministic() {
        let broken = Case {
            name: "many",
            cluster_file: "a.json",
            galaxy_file: "b.json",
            cluster: bytes(&json!({
                "values": [{"value": "x", "z": 1, "a": 2, "meta": {"b": 1, "a": 2}}, {"value": "X"}],
                "extra2": 1, "extra1": 1
            })),
            galaxy: bytes(&json!({"namespace": "", "kill_chain_order": {}, "k": 1, "j": 2})),
            expected: vec![],
        };
        let first = run(&broken);
        assert!(first.len() > 10, "{first:#?}");
        for _ in 0..5 {
            assert_eq!(run(&broken), first);
        }
    }
}
