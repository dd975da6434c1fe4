//! Collection merge: the input split at NUL bytes into up to eight rule files of two sources, parsed
//! and merged with the default policies; titles come out unique ignoring case, storable and free of
//! hidden characters, uuids unique.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use sigma_galaxy::merge::{self, Candidate};
use sigma_galaxy::parse::{self, Limits};

/// libFuzzer's panic hook aborts on every panic, even one the parser catches (it turns the panics
/// `yaml_serde` has on some malformed documents into a finding): back to the default hook, so only
/// a panic that escapes the code under test is a crash.
static DEFAULT_HOOK: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    DEFAULT_HOOK.call_once(|| drop(std::panic::take_hook()));
    let mut candidates = Vec::new();
    for (i, file) in data.split(|&b| b == 0).take(8).enumerate() {
        for rule in parse::parse_file(file, &Limits::default()).rules {
            candidates.push(Candidate {
                source: i % 2,
                path: format!("dir/{}.yml", i / 2),
                rule: Box::new(rule),
                link: None,
                remembered: None,
                record: Default::default(),
            });
        }
    }
    candidates.sort_by(|a, b| (a.source, &a.path).cmp(&(b.source, &b.path)));
    let mut warnings = Vec::new();
    let values = merge::merge(
        candidates,
        &["a".to_string(), "b".to_string()],
        &[],
        uuid::Uuid::nil(),
        "sigma-rules",
        false,
        &mut warnings,
    )
    .values;
    let mut titles = HashSet::new();
    let mut uuids = HashSet::new();
    for v in &values {
        assert!(titles.insert(v.title.to_lowercase()), "{:?}", v.title);
        assert!(uuids.insert(v.uuid));
        assert!(!v.title.contains('"'));
        assert!(!v.title.chars().any(|c| c.is_control() || c.len_utf8() == 4));
        assert!(!v.title.contains(['\u{202E}', '\u{200B}', '\u{2066}']));
    }
});
