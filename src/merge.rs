//! Merge: many sources' rules become one list of galaxy values with unique uuids and unique titles.
//!
//! This stage owns identity. Input is every parsed rule of every source in a fixed order (source order,
//! then path, then document index); output is one [`Value`] per rule with:
//!
//! - a **uuid**: the rule's `id` in canonical lower case when it is a valid UUID and no earlier rule has
//!   it; otherwise the uuid its identity gives it (derived from the path its file first had on the
//!   history, or remembered by the ledger; see "Identity" in [`crate::state`]), otherwise a
//!   deterministic UUIDv5 derived from the galaxy uuid, the source name, the path and the document index
//!   ([`derived_uuid`]). Never a placeholder string.
//! - a **title** that MISP can store and that no other value has case-insensitively (MISP matches values
//!   by their text, ignoring case): the first rule keeps its title, later ones get ` (file name)`, then
//!   ` (source:path#index)` appended. `"` becomes `'`, 4-byte characters become U+FFFD, and a title whose
//!   tag `misp-galaxy:TYPE="VALUE"` would pass 255 characters is shortened with `…`.
//!
//! Every such change is reported as a warning on the rule's file and line.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::sync::Arc;

use uuid::Uuid;

use crate::config::RuleFilter;
use crate::findings::{Code, Finding};
use crate::hash::Digest;
use crate::parse::{Rule, RuleKind};
use crate::sources::LinkRev;

/// MISP's tag column width: `misp-galaxy:TYPE="VALUE"` must fit.
pub const MAX_TAG_CHARS: usize = 255;

/// A parsed rule with where it came from, ready for merging.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Index of its source in the configuration.
    pub source: usize,
    /// Path in the source repository.
    pub path: String,
    /// The rule, boxed: candidates and values are moved and sorted by the 100,000, and a Vec of
    /// them holds a pointer each, not the record (the candidates' and values' Vecs are alive
    /// together during the merge: 40 MB less at 100k rules).
    pub rule: Box<Rule>,
    /// The revision the rule file's web link names, if the source has web links (the link is made
    /// when the value is formatted).
    pub link: Option<LinkRev>,
    /// The uuid its identity gives this rule when that is not the one derived from its path (its file
    /// was renamed on the history, or the ledger remembers it), used when it has no valid id of its own.
    pub remembered: Option<Uuid>,
    /// The key of the parse record the rule comes from (what its value's key starts from).
    pub record: Digest,
}

/// A galaxy value: a rule with its final uuid and title.
#[derive(Debug, Clone)]
pub struct Value {
    pub uuid: Uuid,
    /// Unique (case-insensitively) and storable by MISP.
    pub title: String,
    pub source: usize,
    pub path: String,
    /// The rule, whose own `title` has moved to [`Value::title`] (it is empty here).
    pub rule: Box<Rule>,
    /// See [`Candidate::link`].
    pub link: Option<LinkRev>,
    /// The key of the parse record the rule comes from.
    pub record: Digest,
    /// Whether the uuid is the rule's own `id`; false for derived or remembered uuids.
    pub own_id: bool,
    /// Where the value came from, when the galaxy says so (meta `source`, `source-url`).
    pub provenance: Option<Arc<Provenance>>,
    /// What the merge considered for this value besides what it chose.
    pub notes: MergeNotes,
}

/// What the merge considered for a value besides the uuid and title it chose: with these, a later
/// build can tell whether a change elsewhere could have changed its choices (see
/// [`crate::state::table`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeNotes {
    /// The uuid its identity gave it ([`Candidate::remembered`]).
    pub remembered: Option<Uuid>,
    /// The lower-cased titles it tried and found taken, in order (empty for almost every value).
    pub taken_titles: Vec<String>,
}

/// What the merge gives: the values, and the rules it dropped for an id that a source of higher
/// precedence has.
#[derive(Debug, Default)]
pub struct Merged {
    pub values: Vec<Value>,
    /// Source index, path and the id, per dropped rule.
    pub dropped: Vec<(usize, String, Uuid)>,
}

/// The source of a value, as its meta shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// The source's configured name.
    pub source: String,
    /// The repository's web page, where known.
    pub url: Option<String>,
}

/// The deterministic uuid of a rule without a usable `id`.
pub fn derived_uuid(galaxy: Uuid, source: &str, path: &str, index: u32) -> Uuid {
    Uuid::new_v5(&galaxy, format!("{source}\0{path}\0{index}").as_bytes())
}

/// Parses a rule `id` as a UUID in its hyphenated form (any case).
pub fn parse_id(id: &str) -> Option<Uuid> {
    (id.len() == 36).then(|| Uuid::try_parse(id).ok()).flatten()
}

/// How one source takes part in the merge.
#[derive(Debug, Clone, Default)]
pub struct SourcePolicy {
    /// Higher wins when two sources have a rule with the same id; ties go to the source listed first.
    pub priority: i32,
    /// Which of its rules become values.
    pub rules: RuleFilter,
}

/// Whether `rule` passes `filter`: each non-empty list must hold the rule's value for that field.
pub fn accepts(filter: &RuleFilter, rule: &Rule) -> bool {
    let pass = |allowed: &[String], value: Option<&str>| {
        allowed.is_empty() || value.is_some_and(|v| allowed.iter().any(|a| a == v))
    };
    let l = &rule.logsource;
    pass(&filter.status, rule.status.as_deref())
        && pass(&filter.level, rule.level.as_deref())
        && pass(&filter.product, l.product.as_deref())
        && pass(&filter.category, l.category.as_deref())
        && pass(&filter.service, l.service.as_deref())
}

/// Merges candidates (in source, path, index order) into values.
///
/// `sources` are the source names, by index, and `policies` their priorities and rule filters (a
/// source without one takes the default: priority 0, every rule); `kind` is the galaxy type (for the
/// tag length limit); `filters` keeps Sigma filter rules.
///
/// Sources are taken in precedence order (priority, then list order): a rule whose `id` a source of
/// higher precedence already has is dropped (an override, as a fork listed before its upstream
/// overrides it), while a second rule with the same id in the same source gets a derived uuid.
pub fn merge(
    mut candidates: Vec<Candidate>,
    sources: &[String],
    policies: &[SourcePolicy],
    galaxy: Uuid,
    kind: &str,
    filters: bool,
    warnings: &mut Vec<Finding>,
) -> Merged {
    let default_policy = SourcePolicy::default();
    let policy = |source: usize| policies.get(source).unwrap_or(&default_policy);
    // The rules kept, and their own ids where valid UUIDs, found in one pass: it reads each rule once
    // (100k rules do not stay in cache from one pass to the next).
    let mut ids: Vec<Option<Uuid>> = Vec::with_capacity(candidates.len());
    candidates.retain(|c| {
        let keep = (c.rule.kind != RuleKind::Filter || filters)
            && accepts(&policy(c.source).rules, &c.rule);
        if keep {
            ids.push(c.rule.id.as_deref().and_then(parse_id));
        }
        keep
    });
    // Precedence: higher priority first, then list order; within a source, path and index order
    // (the order they come in, so sorting is needed only when priorities reorder the sources).
    let rank = |c: &Candidate| (std::cmp::Reverse(policy(c.source).priority), c.source);
    if !candidates.is_sorted_by_key(rank) {
        let mut both: Vec<(Candidate, Option<Uuid>)> = candidates.into_iter().zip(ids).collect();
        both.sort_by_key(|(c, _)| rank(c));
        (candidates, ids) = both.into_iter().unzip();
    }
    let n = candidates.len();
    let mut used: HashSet<Uuid> = HashSet::with_capacity(n);
    // The first rule with each id: the index of its value.
    let mut first_with_id: HashMap<Uuid, usize> = HashMap::with_capacity(n);
    let mut values: Vec<Value> = Vec::with_capacity(n);
    let mut dropped = Vec::new();
    // Where a value came from, as findings name it.
    let file_of = |v: &Value| format!("{}:{}", sources[v.source], v.path);

    // Rules with their own valid ids claim them first, so that a derived or remembered uuid can never
    // take an id that a later rule states explicitly.
    let mut claimed: HashSet<Uuid> = HashSet::with_capacity(n);
    claimed.extend(ids.iter().flatten());

    for (c, own) in candidates.into_iter().zip(ids) {
        let source = &sources[c.source];
        let warn = |warnings: &mut Vec<Finding>, code: Code, message: String| {
            warnings.push(Finding::new(
                source,
                &c.path,
                Some(c.rule.line),
                code,
                message,
            ));
        };
        if let (Some(id), None) = (c.rule.id.as_deref(), own) {
            warn(
                warnings,
                Code::InvalidId,
                format!("id {id:?} is not a UUID; a derived uuid is used"),
            );
        }
        if let Some(first) = own.and_then(|u| first_with_id.get(&u)).map(|&i| &values[i])
            && first.source != c.source
        {
            // (Titles are as the rules have them until all values are made.)
            let (first_file, first_title) = (file_of(first), &first.title);
            let (code, what) = if first_title.to_lowercase() == c.rule.title.to_lowercase() {
                (Code::OverriddenRule, String::new())
            } else {
                (
                    Code::OverriddenRuleTitle,
                    format!(" (titled {first_title:?} there)"),
                )
            };
            warn(
                warnings,
                code,
                format!(
                    "id {} is also the id of {first_file}{what}, which takes precedence; this rule is dropped",
                    own.map(|u| u.to_string()).unwrap_or_default()
                ),
            );
            if let Some(id) = own {
                dropped.push((c.source, c.path.clone(), id));
            }
            continue;
        }
        let (uuid, own_id) = match own {
            Some(u) if used.insert(u) => {
                first_with_id.insert(u, values.len());
                (u, true)
            }
            _ => {
                if let Some(u) = own {
                    let first = first_with_id
                        .get(&u)
                        .map_or_else(String::new, |&i| file_of(&values[i]));
                    warn(
                        warnings,
                        Code::DuplicateId,
                        format!("id {u} is already used by {first}; a derived uuid is used"),
                    );
                }
                let mut u = c
                    .remembered
                    .filter(|r| !used.contains(r) && !claimed.contains(r))
                    .unwrap_or_else(|| derived_uuid(galaxy, source, &c.path, c.rule.index));
                // A derived uuid colliding with anything is astronomically unlikely, but must not
                // produce two values with one uuid.
                let mut salt = 0u32;
                while used.contains(&u) || claimed.contains(&u) {
                    salt += 1;
                    u = Uuid::new_v5(&u, &salt.to_be_bytes());
                }
                used.insert(u);
                (u, false)
            }
        };
        // The title moves to the value: nothing reads the rule's own after this.
        let mut rule = c.rule;
        let title = std::mem::take(&mut rule.title);
        values.push(Value {
            uuid,
            title,
            source: c.source,
            path: c.path,
            rule,
            link: c.link,
            record: c.record,
            own_id,
            provenance: None,
            notes: MergeNotes {
                remembered: c.remembered,
                taken_titles: Vec::new(),
            },
        });
    }
    make_titles_storable(&mut values, sources, kind, warnings);
    Merged { values, dropped }
}

/// Makes every title storable by MISP and unique case-insensitively, in value order.
fn make_titles_storable(
    values: &mut [Value],
    sources: &[String],
    kind: &str,
    warnings: &mut Vec<Finding>,
) {
    let budget = MAX_TAG_CHARS - format!("misp-galaxy:{kind}=\"\"").chars().count();
    // Lower-cased title → the source of the value that has it.
    let mut taken: HashMap<String, usize> = HashMap::with_capacity(values.len());
    for v in values.iter_mut() {
        let source = &sources[v.source];
        let mut notes = Vec::new();
        // Almost every title is storable as it is: kept, not copied.
        let as_is = storable_as_is(&v.title, budget);
        let mut title = match as_is {
            true => std::mem::take(&mut v.title),
            false => {
                let mut title = storable(&v.title, &mut notes);
                if title.is_empty() {
                    // Nothing visible was left: the file's name stands in.
                    let file = v.path.rsplit('/').next().unwrap_or(&v.path);
                    title = storable(file, &mut Vec::new());
                }
                shorten(&title, budget, &mut notes)
            }
        };
        let mut key = title.to_lowercase();
        if let Some(&holder) = taken.get(&key) {
            let file = v.path.rsplit('/').next().unwrap_or(&v.path);
            // Across sources the suffix names this value's source; within one, its file.
            let first = if holder == v.source {
                format!(" ({file})")
            } else {
                format!(" ({source})")
            };
            let mut candidates = [first, format!(" ({source}:{}#{})", v.path, v.rule.index)]
                .into_iter()
                .map(|suffix| {
                    let room = budget.saturating_sub(suffix.chars().count());
                    format!("{}{suffix}", shorten(&title, room, &mut Vec::new()))
                });
            let mut tried = vec![key];
            let unique = candidates
                .find(|t| {
                    let k = t.to_lowercase();
                    let free = !taken.contains_key(&k);
                    if !free {
                        tried.push(k);
                    }
                    free
                })
                .unwrap_or_else(|| format!("{title} ({})", v.uuid));
            v.notes.taken_titles = tried;
            notes.push((
                Code::DuplicateTitle,
                format!(
                    "title {title:?} is already used by another rule (MISP ignores case); renamed to {unique:?}"
                ),
            ));
            title = unique;
            key = title.to_lowercase();
        }
        taken.insert(key, v.source);
        for (code, n) in notes {
            warnings.push(Finding::new(source, &v.path, Some(v.rule.line), code, n));
        }
        v.title = title;
    }
}

/// Whether `title` is stored as it is: not empty, nothing hidden ([`is_hidden`]), no `"`, no 4-byte
/// character and at most `budget` characters. An ASCII title (nearly every one) is judged byte by
/// byte: its only hidden characters are the ASCII controls, and its characters are its bytes.
fn storable_as_is(title: &str, budget: usize) -> bool {
    if title.is_empty() {
        return false;
    }
    if title.is_ascii() {
        return title.len() <= budget && !title.bytes().any(|b| b.is_ascii_control() || b == b'"');
    }
    !title
        .chars()
        .any(|c| is_hidden(c) || c == '"' || c.len_utf8() == 4)
        && title.chars().count() <= budget
}

/// Whether `c` is invisible or reorders text around it: bidirectional controls (U+202A–U+202E,
/// U+2066–U+2069, the marks U+200E, U+200F, U+061C), zero-width characters (U+200B–U+200D, U+2060,
/// U+FEFF, U+180E, U+00AD) and the other control characters (Unicode `Cc`, line and paragraph
/// separators).
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
            | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{180E}' | '\u{00AD}'
            | '\u{2028}' | '\u{2029}')
}

/// Replaces what MISP cannot store in a title, or should not show: hidden characters ([`is_hidden`]:
/// whitespace ones become a space, the others are removed, spaces are then collapsed), `"` (breaks
/// machine tags) and 4-byte UTF-8 characters.
fn storable(title: &str, notes: &mut Vec<(Code, String)>) -> String {
    let mut out = title.to_owned();
    if let Some(hidden) = out.chars().find(|&c| is_hidden(c)) {
        let visible: String = out
            .chars()
            .filter_map(|c| match c {
                c if c.is_whitespace() && is_hidden(c) => Some(' '),
                c if is_hidden(c) => None,
                c => Some(c),
            })
            .collect();
        out = visible.split_whitespace().collect::<Vec<_>>().join(" ");
        notes.push((
            Code::TitleControlChar,
            format!(
                "title has control, bidirectional or zero-width characters (first U+{:04X}), which can disguise it; removed",
                u32::from(hidden)
            ),
        ));
    }
    let before = out.clone();
    out = out.replace('"', "'");
    let title = before.as_str();
    if out != title {
        notes.push((
            Code::TitleQuote,
            "title contains '\"', which breaks MISP tags; replaced with \"'\"".into(),
        ));
    }
    if out.chars().any(|c| c.len_utf8() == 4) {
        out = out
            .chars()
            .map(|c| if c.len_utf8() == 4 { '\u{FFFD}' } else { c })
            .collect();
        notes.push((
            Code::TitleFourByteChar,
            "title has 4-byte UTF-8 characters, which MISP cannot store; replaced".into(),
        ));
    }
    out
}

/// Shortens `title` to at most `max` characters, ending in `…`.
fn shorten(title: &str, max: usize, notes: &mut Vec<(Code, String)>) -> String {
    if title.chars().count() <= max {
        return title.to_string();
    }
    notes.push((
        Code::TitleTooLong,
        format!("title is too long for MISP's {MAX_TAG_CHARS}-character tag; shortened"),
    ));
    let mut s: String = title.chars().take(max.saturating_sub(1)).collect();
    s.truncate(s.trim_end().len());
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const GALAXY: Uuid = Uuid::from_u128(0x9cf7cd2e_d5f1_48c4_9909_7896ba1c96b2);

    proptest::proptest! {
        /// The byte-wise judgement of ASCII titles is the character-wise one: ASCII strings with
        /// any control character, `"` or DEL, other strings, budgets around their length.
        #[test]
        fn ascii_titles_are_judged_as_every_title_is(
            title in proptest::prop_oneof![
                proptest::string::string_regex("[\\x00-\\x7f]{0,12}").expect("a regex"),
                proptest::string::string_regex(".{0,12}").expect("a regex"),
            ],
            slack in 0usize..4,
        ) {
            let budget = (title.chars().count() + slack).saturating_sub(2);
            let by_chars = !title.is_empty()
                && !title.chars().any(|c| is_hidden(c) || c == '"' || c.len_utf8() == 4)
                && title.chars().count() <= budget;
            proptest::prop_assert_eq!(storable_as_is(&title, budget), by_chars);
        }
    }

    fn rule(title: &str, id: Option<&str>, index: u32) -> Rule {
        Rule {
            index,
            id: id.map(str::to_string),
            ..Rule::titled(title)
        }
    }

    fn cand(path: &str, r: Rule) -> Candidate {
        Candidate {
            source: 0,
            path: path.into(),
            rule: Box::new(r),
            link: None,
            remembered: None,
            record: Digest::default(),
        }
    }

    fn run(cands: Vec<Candidate>) -> (Vec<Value>, Vec<Finding>) {
        let mut w = Vec::new();
        let v = merge(
            cands,
            &["src".into()],
            &[],
            GALAXY,
            "sigma-rules",
            false,
            &mut w,
        )
        .values;
        (v, w)
    }

    const ID: &str = "DC5C24AF-6995-49B2-86EB-A9FF62199E82";

    #[test]
    fn own_ids_are_lower_cased() {
        let (v, w) = run(vec![cand("a.yml", rule("A", Some(ID), 0))]);
        assert_eq!(v[0].uuid.to_string(), ID.to_lowercase());
        assert!(v[0].own_id);
        assert!(w.is_empty());
    }

    #[test]
    fn missing_and_bad_ids_get_derived_uuids() {
        let (v, w) = run(vec![
            cand("a.yml", rule("A", None, 0)),
            cand("b.yml", rule("B", Some("No established id"), 0)),
        ]);
        assert_eq!(v[0].uuid, derived_uuid(GALAXY, "src", "a.yml", 0));
        assert_eq!(v[1].uuid, derived_uuid(GALAXY, "src", "b.yml", 0));
        assert_ne!(v[0].uuid, v[1].uuid);
        assert_eq!(v[0].uuid.get_version_num(), 5);
        assert_eq!(w.len(), 1);
        assert!(w[0].message.contains("not a UUID"));
    }

    #[test]
    fn duplicate_ids_keep_the_first_and_warn() {
        let (v, w) = run(vec![
            cand("a.yml", rule("A", Some(ID), 0)),
            cand("b.yml", rule("B", Some(ID), 0)),
            cand("b.yml", rule("C", Some(ID), 1)),
        ]);
        assert_eq!(v[0].uuid.to_string(), ID.to_lowercase());
        assert_eq!(v[1].uuid, derived_uuid(GALAXY, "src", "b.yml", 0));
        assert_eq!(v[2].uuid, derived_uuid(GALAXY, "src", "b.yml", 1));
        assert_eq!(w.len(), 2);
        assert!(w[0].message.contains("already used by src:a.yml"));
    }

    #[test]
    fn remembered_uuids_win_over_derived_but_not_over_ids() {
        let remembered = Uuid::from_u128(42);
        let mut c = cand("moved.yml", rule("A", None, 0));
        c.remembered = Some(remembered);
        let mut d = cand("x.yml", rule("B", None, 0));
        d.remembered = Some(Uuid::from_u128(7));
        let (v, _) = run(vec![
            c,
            d,
            cand("y.yml", rule("C", Some(&Uuid::from_u128(7).to_string()), 0)),
        ]);
        assert_eq!(v[0].uuid, remembered);
        assert_eq!(v[1].uuid, derived_uuid(GALAXY, "src", "x.yml", 0));
        assert_eq!(v[2].uuid, Uuid::from_u128(7));
    }

    #[test]
    fn case_insensitive_title_collisions_get_the_file_name() {
        let (v, w) = run(vec![
            cand("dir/a.yml", rule("Same Title", None, 0)),
            cand("dir/b.yml", rule("same title", None, 0)),
            cand("other/b.yml", rule("SAME TITLE", None, 0)),
        ]);
        assert_eq!(v[0].title, "Same Title");
        assert_eq!(v[1].title, "same title (b.yml)");
        assert_eq!(v[2].title, "SAME TITLE (src:other/b.yml#0)");
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn quotes_four_byte_characters_and_long_titles_are_made_storable() {
        let long = "x".repeat(300);
        let (v, w) = run(vec![
            cand("a.yml", rule("The \"Cryptography\" Namespace", None, 0)),
            cand("b.yml", rule("Emoji 😀 use", None, 0)),
            cand("c.yml", rule(&long, None, 0)),
        ]);
        assert_eq!(v[0].title, "The 'Cryptography' Namespace");
        assert_eq!(v[1].title, "Emoji \u{FFFD} use");
        let tag = format!("misp-galaxy:sigma-rules=\"{}\"", v[2].title);
        assert_eq!(tag.chars().count(), MAX_TAG_CHARS);
        assert!(v[2].title.ends_with('…'));
        assert_eq!(w.len(), 3);
    }

    #[test]
    fn hidden_characters_are_removed_reported_and_the_result_stays_unique() {
        let (v, w) = run(vec![
            cand("a.yml", rule("Invoice gpj.exe", None, 0)),
            cand("b.yml", rule("Invoice \u{202E}gpj.exe", None, 0)),
            cand(
                "c.yml",
                rule("Zero\u{200B}\u{2066}Width\tand\u{0007}bell", None, 0),
            ),
            cand("d.yml", rule("\u{200B}\u{202E}", None, 0)),
        ]);
        let titles: Vec<&str> = v.iter().map(|v| v.title.as_str()).collect();
        assert_eq!(
            titles,
            vec![
                "Invoice gpj.exe",
                "Invoice gpj.exe (b.yml)",
                "ZeroWidth andbell",
                "d.yml"
            ]
        );
        let codes: Vec<(&str, Code)> = w.iter().map(|f| (f.path.as_str(), f.code)).collect();
        assert_eq!(
            codes,
            vec![
                ("b.yml", Code::TitleControlChar),
                ("b.yml", Code::DuplicateTitle),
                ("c.yml", Code::TitleControlChar),
                ("d.yml", Code::TitleControlChar),
            ]
        );
        assert!(w[0].message.contains("U+202E"), "{}", w[0].message);
    }

    #[test]
    fn filters_are_skipped_unless_asked_for() {
        let mut f = rule("F", None, 0);
        f.kind = RuleKind::Filter;
        let (v, _) = run(vec![cand("f.yml", f.clone())]);
        assert!(v.is_empty());
        let mut w = Vec::new();
        let v = merge(
            vec![cand("f.yml", f)],
            &["src".into()],
            &[],
            GALAXY,
            "t",
            true,
            &mut w,
        )
        .values;
        assert_eq!(v.len(), 1);
    }

    fn in_source(source: usize, path: &str, r: Rule) -> Candidate {
        Candidate {
            source,
            ..cand(path, r)
        }
    }

    #[test]
    fn the_source_of_higher_precedence_overrides_an_id() {
        let names = ["fork".to_string(), "upstream".to_string()];
        let run = |policies: &[SourcePolicy]| {
            let mut w = Vec::new();
            let v = merge(
                vec![
                    in_source(0, "a.yml", rule("Same", Some(ID), 0)),
                    in_source(0, "b.yml", rule("Fork Only", None, 0)),
                    in_source(1, "a.yml", rule("same", Some(ID), 0)),
                    in_source(1, "c.yml", rule("Renamed Upstream", Some(ID), 0)),
                ],
                &names,
                policies,
                GALAXY,
                "t",
                false,
                &mut w,
            )
            .values;
            (v, w)
        };
        let (v, w) = run(&[]);
        let kept: Vec<(usize, &str)> = v.iter().map(|v| (v.source, v.title.as_str())).collect();
        assert_eq!(kept, [(0, "Same"), (0, "Fork Only")]);
        let codes: Vec<(Code, &str)> = w.iter().map(|f| (f.code, f.path.as_str())).collect();
        assert_eq!(
            codes,
            [
                (Code::OverriddenRule, "a.yml"),
                (Code::OverriddenRuleTitle, "c.yml")
            ]
        );
        assert!(w.iter().all(|f| f.source == "upstream"));
        // A priority reorders without reordering the list.
        let upstream_first = [
            SourcePolicy::default(),
            SourcePolicy {
                priority: 1,
                ..SourcePolicy::default()
            },
        ];
        let (v, w) = run(&upstream_first);
        let kept: Vec<(usize, &str)> = v.iter().map(|v| (v.source, v.title.as_str())).collect();
        assert_eq!(
            kept,
            [(1, "same"), (1, "Renamed Upstream"), (0, "Fork Only")]
        );
        assert_eq!(v[1].uuid, derived_uuid(GALAXY, "upstream", "c.yml", 0));
        let codes: Vec<Code> = w.iter().map(|f| f.code).collect();
        assert_eq!(codes, [Code::DuplicateId, Code::OverriddenRule]);
    }

    #[test]
    fn titles_clashing_across_sources_name_the_source() {
        let names = ["public".to_string(), "private".to_string()];
        let mut w = Vec::new();
        let v = merge(
            vec![
                in_source(0, "x/a.yml", rule("Clash", None, 0)),
                in_source(1, "y/a.yml", rule("CLASH", None, 0)),
                in_source(1, "z/a.yml", rule("clash", None, 0)),
            ],
            &names,
            &[],
            GALAXY,
            "t",
            false,
            &mut w,
        )
        .values;
        let titles: Vec<&str> = v.iter().map(|v| v.title.as_str()).collect();
        assert_eq!(
            titles,
            ["Clash", "CLASH (private)", "clash (private:z/a.yml#0)"]
        );
    }

    #[test]
    fn rule_filters_select_by_status_level_and_logsource() {
        let filter = RuleFilter {
            status: vec!["stable".into(), "test".into()],
            level: vec!["high".into()],
            product: vec!["windows".into()],
            ..RuleFilter::default()
        };
        let mut r = rule("R", None, 0);
        r.status = Some("test".into());
        r.level = Some("high".into());
        r.logsource.product = Some("windows".into());
        assert!(accepts(&filter, &r));
        assert!(accepts(&RuleFilter::default(), &Rule::titled("no fields")));
        for change in [
            |r: &mut Rule| r.status = Some("experimental".into()),
            |r: &mut Rule| r.level = None,
            |r: &mut Rule| r.logsource.product = Some("linux".into()),
        ] {
            let mut other = r.clone();
            change(&mut other);
            assert!(!accepts(&filter, &other), "{other:?}");
        }
    }
}
