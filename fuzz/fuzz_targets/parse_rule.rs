//! Rule parse and map: any bytes as a rule file, read within the default limits and within tight
//! ones; every rule kept respects the field length and merges into storable values. Whatever the
//! block YAML loader accepts, it loads as `yaml_serde` does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigma_galaxy::merge::{self, Candidate};
use sigma_galaxy::parse::{self, Limits};

/// libFuzzer's panic hook aborts on every panic, even one the parser catches (it turns the panics
/// `yaml_serde` has on some malformed documents into a finding): back to the default hook, so only
/// a panic that escapes the code under test is a crash.
static DEFAULT_HOOK: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    DEFAULT_HOOK.call_once(|| drop(std::panic::take_hook()));
    parse::check_block_loader(data);
    let tight = Limits {
        file_size: 1 << 16,
        nesting_depth: 8,
        yaml_nodes: 2_000,
        yaml_text: 1 << 16,
        field_length: 64,
    };
    for limits in [Limits::default(), tight] {
        let parsed = parse::parse_file(data, &limits);
        for rule in &parsed.rules {
            let details = rule.details.get();
            for text in [&details.description, &details.author, &rule.id, &details.date]
                .into_iter()
                .flatten()
            {
                assert!(text.len() <= limits.field_length);
            }
            assert!(!rule.title.is_empty());
        }
        let candidates = parsed
            .rules
            .into_iter()
            .map(|rule| Candidate {
                source: 0,
                path: "rule.yml".into(),
                rule: Box::new(rule),
                link: None,
                remembered: None,
                record: Default::default(),
            })
            .collect();
        let mut warnings = Vec::new();
        let values = merge::merge(
            candidates,
            &["src".to_string()],
            &[],
            uuid::Uuid::nil(),
            "sigma-rules",
            true,
            &mut warnings,
        )
        .values;
        for v in &values {
            assert!(!v.title.is_empty());
            assert!(!v.title.chars().any(char::is_control));
        }
    }
});
