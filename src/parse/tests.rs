//! Tests of [`parse_file`](super::parse_file) on whole rule files written here.

#![allow(clippy::unwrap_used)]

use super::*;

/// Parses `text` and leaves out the lint findings (tested in `lint.rs`): what reading reports.
fn parse(text: &str) -> ParsedFile {
    without_lints(parse_file(text.as_bytes(), &Limits::default()))
}

fn without_lints(mut parsed: ParsedFile) -> ParsedFile {
    parsed.problems.retain(|p| !lint::CODES.contains(&p.code));
    parsed
}

/// The only rule of a file that must parse without problems.
fn one_rule(text: &str) -> Rule {
    let parsed = parse(text);
    assert_eq!(parsed.problems, vec![], "{text}");
    assert_eq!(parsed.rules.len(), 1, "{parsed:?}");
    parsed.rules.into_iter().next().unwrap()
}

/// The only rule of a file, with the (line, code) of every problem it was read with.
fn rule_with(text: &str) -> (Rule, Vec<(Option<u32>, Code)>) {
    let parsed = parse(text);
    assert_eq!(parsed.rules.len(), 1, "{parsed:?}");
    let problems = parsed.problems.iter().map(|p| (p.line, p.code)).collect();
    (parsed.rules.into_iter().next().unwrap(), problems)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

const MINIMAL: &str = "title: Minimal\nlogsource:\n    product: windows\ndetection:\n    sel:\n        EventID: 1\n    condition: sel\n";

#[test]
fn single_rule() {
    let rule = one_rule(MINIMAL);
    assert_eq!(rule.index, 0);
    assert_eq!(rule.line, 1);
    assert_eq!(rule.kind, RuleKind::Detection);
    assert_eq!(rule.title, "Minimal");
    assert_eq!(
        rule.logsource,
        LogSource {
            product: Some("windows".into()),
            ..LogSource::default()
        }
    );
}

#[test]
fn all_fields() {
    let text = r#"title: '  All Fields  '
id: 5f1e8a2c-0000-4000-8000-000000000001
name: all_fields
status: test
description: |
    Detects everything.
    Twice.
references:
    - https://example.com/a
    - https://example.com/b
author: Jane Doe, John Roe
date: 2024-01-01
modified: 2022/08/28
tags:
    - attack.execution
    - attack.t1059.001
related:
    - id: 00000000-0000-4000-8000-000000000002
      type: derived
    - id: 00000000-0000-4000-8000-000000000003
      type: obsolete
logsource:
    category: process_creation
    product: windows
    service: sysmon
detection:
    sel:
        Image|endswith: '\cmd.exe'
    condition: sel
falsepositives:
    - Admins
    - Scripts
level: high
"#;
    let rule = one_rule(text);
    let expected = Rule {
        index: 0,
        line: 1,
        kind: RuleKind::Detection,
        id: Some("5f1e8a2c-0000-4000-8000-000000000001".into()),
        name: Some("all_fields".into()),
        title: "All Fields".into(),
        tags: strings(&["attack.execution", "attack.t1059.001"]),
        level: Some("high".into()),
        status: Some("test".into()),
        details: Body::new(Details {
            description: Some("Detects everything.\nTwice.".into()),
            references: strings(&["https://example.com/a", "https://example.com/b"]),
            date: Some("2024-01-01".into()),
            modified: Some("2022/08/28".into()),
            author: Some("Jane Doe, John Roe".into()),
            falsepositives: strings(&["Admins", "Scripts"]),
        }),
        logsource: LogSource {
            category: Some("process_creation".into()),
            product: Some("windows".into()),
            service: Some("sysmon".into()),
        },
        related: vec![
            RelatedRule {
                id: "00000000-0000-4000-8000-000000000002".into(),
                kind: "derived".into(),
            },
            RelatedRule {
                id: "00000000-0000-4000-8000-000000000003".into(),
                kind: "obsolete".into(),
            },
        ],
        correlates: vec![],
    };
    assert_eq!(rule, expected);
}

#[test]
fn missing_null_and_empty_fields_are_none_or_empty() {
    let rule = one_rule(
        "title: T\ndescription: '   '\nauthor:\nlevel: ~\ntags: []\nfalsepositives:\ndetection: {}\n",
    );
    let d = rule.details.get().into_owned();
    assert_eq!(
        (rule.id, rule.name, d.description, d.author, rule.level),
        (None, None, None, None, None)
    );
    assert_eq!((d.date, d.modified, rule.status), (None, None, None));
    assert!(rule.tags.is_empty() && d.references.is_empty() && d.falsepositives.is_empty());
    assert!(rule.related.is_empty() && rule.correlates.is_empty());
    assert_eq!(rule.logsource, LogSource::default());
}

#[test]
fn description_is_trimmed() {
    let rule =
        one_rule("title: T\ndescription: >\n    Folded text\n    on two lines.\n\ndetection: {}\n");
    assert_eq!(
        rule.details.get().description.as_deref(),
        Some("Folded text on two lines.")
    );
    let rule = one_rule("title: \"\\tT \"\ndescription: \"  Quoted\\n\"\ndetection: {}\n");
    assert_eq!(rule.title, "T");
    assert_eq!(rule.details.get().description.as_deref(), Some("Quoted"));
}

#[test]
fn falsepositives_string_or_list() {
    let (rule, problems) = rule_with("title: T\nfalsepositives: Unknown\ndetection: {}\n");
    assert_eq!(rule.details.get().falsepositives, strings(&["Unknown"]));
    assert_eq!(problems, vec![(Some(2), Code::CoercedType)]);
    let rule =
        one_rule("title: T\nfalsepositives:\n  - A\n  -\n  - ''\n  - ' B '\ndetection: {}\n");
    assert_eq!(rule.details.get().falsepositives, strings(&["A", "B"]));
    let rule = one_rule("title: T\nfalsepositives: ''\ndetection: {}\n");
    assert!(rule.details.get().falsepositives.is_empty());
}

#[test]
fn references_are_deduplicated_in_order() {
    let text = "title: T\nreferences:\n  - https://b\n  - https://a\n  - https://b\n  - ' https://a'\n  - https://c\ndetection: {}\n";
    assert_eq!(
        one_rule(text).details.get().references,
        strings(&["https://b", "https://a", "https://c"])
    );
    let (rule, problems) = rule_with("title: T\nreferences: https://x\ndetection: {}\n");
    assert_eq!(rule.details.get().references, strings(&["https://x"]));
    assert_eq!(problems, vec![(Some(2), Code::CoercedType)]);
}

#[test]
fn plain_scalars_are_taken_as_written() {
    let text = "title: 1.10\nid: 0x1F\nauthor: yes\nlevel: True\ndate: 2024-01-01\nmodified: 2022/08/28\ntags: [1e3, false]\ndetection: {}\n";
    let (rule, problems) = rule_with(text);
    // Every coerced field is reported at its line: title, id, tags item 1 and level (`yes` is a
    // string in YAML 1.2).
    let coerced = |line| (Some(line), Code::CoercedType);
    assert_eq!(
        problems,
        vec![coerced(1), coerced(2), coerced(7), coerced(4)]
    );
    assert_eq!(rule.title, "1.10");
    assert_eq!(rule.id.as_deref(), Some("0x1F"));
    assert_eq!(rule.details.get().author.as_deref(), Some("yes"));
    assert_eq!(rule.level.as_deref(), Some("True"));
    assert_eq!(rule.details.get().date.as_deref(), Some("2024-01-01"));
    assert_eq!(rule.details.get().modified.as_deref(), Some("2022/08/28"));
    assert_eq!(rule.tags, strings(&["1e3", "false"]));
}

#[test]
fn collection_global_and_repeat() {
    let text = "\
action: global
title: Global Title
tags:
    - attack.t1
logsource:
    product: windows
detection:
    condition: sel
---
id: first
logsource:
    service: security
detection:
    sel:
        EventID: 1
---
action: repeat
id: repeated
logsource:
    service: system
---
action: reset
---
title: After Reset
detection:
    sel:
        EventID: 3
";
    let parsed = parse(text);
    assert_eq!(parsed.problems, vec![]);
    let got: Vec<_> = parsed
        .rules
        .iter()
        .map(|r| {
            (
                r.index,
                r.line,
                r.title.as_str(),
                r.id.as_deref(),
                r.logsource.clone(),
                r.tags.clone(),
            )
        })
        .collect();
    let source = |product: Option<&str>, service: &str| LogSource {
        category: None,
        product: product.map(Into::into),
        service: Some(service.into()),
    };
    assert_eq!(
        got,
        vec![
            (
                1,
                10,
                "Global Title",
                Some("first"),
                source(Some("windows"), "security"),
                strings(&["attack.t1"])
            ),
            (
                2,
                17,
                "Global Title",
                Some("repeated"),
                source(Some("windows"), "system"),
                strings(&["attack.t1"])
            ),
            (4, 24, "After Reset", None, LogSource::default(), vec![]),
        ]
    );
}

#[test]
fn collection_global_wins_over_document_as_in_pysigma() {
    let text = "action: global\nlevel: high\n---\ntitle: T\nlevel: low\ndetection: {}\n";
    let parsed = parse(text);
    assert_eq!(parsed.rules.len(), 1);
    assert_eq!(parsed.rules[0].level.as_deref(), Some("high"));
}

#[test]
fn collection_bad_action_is_a_problem() {
    let text = "action: repeat\ntitle: T\ndetection: {}\n---\naction: include\n---\ntitle: U\ndetection: {}\n";
    let parsed = parse(text);
    assert_eq!(parsed.rules.len(), 1);
    assert_eq!(parsed.rules[0].title, "U");
    let lines: Vec<_> = parsed.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![Some(1), Some(5)], "{:?}", parsed.problems);
}

#[test]
fn correlation_rule() {
    let text = "title: Many failures\nname: many_failures\ncorrelation:\n    type: event_count\n    rules:\n        - failed_logon\n        - 5f1e8a2c-0000-4000-8000-000000000001\n    group-by:\n        - User\n    timespan: 5m\n    condition:\n        gte: 10\n";
    let rule = one_rule(text);
    assert_eq!(rule.kind, RuleKind::Correlation);
    assert_eq!(rule.name.as_deref(), Some("many_failures"));
    assert_eq!(
        rule.correlates,
        strings(&["failed_logon", "5f1e8a2c-0000-4000-8000-000000000001"])
    );
    let (rule, problems) = rule_with("title: C\ncorrelation:\n    rules: single_rule\n");
    assert_eq!(rule.correlates, strings(&["single_rule"]));
    assert_eq!(problems, vec![(Some(3), Code::CoercedType)]);
}

#[test]
fn filter_rule() {
    let text = "title: Filter Admins\nid: 6f1e8a2c-0000-4000-8000-000000000001\nlogsource:\n    product: windows\nfilter:\n    rules:\n        - 5f1e8a2c-0000-4000-8000-000000000001\n    selection:\n        User: admin\n    condition: not selection\n";
    let rule = one_rule(text);
    assert_eq!(rule.kind, RuleKind::Filter);
    assert!(rule.correlates.is_empty());
}

#[test]
fn non_rule_documents_are_skipped_silently() {
    for text in [
        "",
        "# just a comment\n",
        "- a\n- b\n",
        "plain text\n",
        "title: T\ndetection: {}\n---\n---\nfoo: bar\n",
    ] {
        let parsed = parse(text);
        assert_eq!(parsed.problems, vec![], "{text:?}");
        assert!(parsed.rules.len() <= 1, "{text:?}");
    }
}

#[test]
fn half_rules_are_reported_and_skipped() {
    for (text, code, line) in [
        (
            "title: No Detection\nlogsource: {}\n",
            Code::MissingDetection,
            1,
        ),
        ("detection: {}\n", Code::MissingTitle, 1),
        ("---\ntitle: ''\ndetection: {}\n", Code::MissingTitle, 2),
        ("title:\ncorrelation: {}\n", Code::MissingTitle, 1),
    ] {
        let parsed = parse(text);
        assert!(parsed.rules.is_empty(), "{text:?}");
        let found: Vec<_> = parsed.problems.iter().map(|p| (p.code, p.line)).collect();
        assert_eq!(found, [(code, Some(line))], "{text:?}");
    }
}

#[test]
fn malformed_yaml_reports_the_line() {
    let parsed = parse("title: T\ndetection:\n    sel: [1, 2\n    condition: sel\n");
    assert!(parsed.rules.is_empty());
    assert_eq!(parsed.problems.len(), 1);
    assert_eq!(parsed.problems[0].line, Some(4), "{:?}", parsed.problems);
    let parsed = parse("title: T\n  bad: indent\ndetection: {}\n");
    assert_eq!(parsed.problems.len(), 1);
    assert_eq!(parsed.problems[0].line, Some(2), "{:?}", parsed.problems);
}

#[test]
fn duplicate_key_reports_its_line() {
    // Outside the metadata: kept, the last value wins, both lines named.
    let parsed = parse("title: T\ndescription: a\ndetection:\n    sel: 1\n    sel: 2\n");
    assert_eq!(parsed.rules.len(), 1);
    assert_eq!(parsed.problems.len(), 1);
    assert_eq!(parsed.problems[0].line, Some(5));
    assert_eq!(parsed.problems[0].code, Code::DuplicateDetectionKey);
    assert!(
        parsed.problems[0]
            .message
            .contains("duplicate key `detection.sel` (lines 4 and 5)"),
        "{}",
        parsed.problems[0].message
    );
    // In the metadata: the rule is ambiguous and skipped.
    for text in [
        "title: T\ndetection: {}\ntitle: U\n",
        "title: T\ndetection: {}\nlogsource:\n  product: a\n  product: b\n",
    ] {
        let parsed = parse(text);
        assert!(parsed.rules.is_empty(), "{text}");
        let problems: Vec<_> = parsed.problems.iter().map(|p| (p.line, p.code)).collect();
        let line = u32::try_from(text.lines().count()).unwrap();
        assert_eq!(problems, vec![(Some(line), Code::DuplicateKey)], "{text}");
    }
}

#[test]
fn non_utf8_reports_the_line_of_the_first_bad_byte() {
    let parsed = parse_file(
        b"title: T\ndescription: caf\xe9\ndetection: {}\n\xff\n",
        &Limits::default(),
    );
    assert!(parsed.rules.is_empty());
    assert_eq!(parsed.problems.len(), 1);
    assert_eq!(parsed.problems[0].line, Some(2));
    assert_eq!(
        parse_file(b"\xff\xfet\0i\0", &Limits::default()).problems[0].line,
        Some(1)
    );
}

#[test]
fn wrong_field_type_reports_the_line_of_the_key() {
    let cases: [(&str, u32); 6] = [
        ("title: T\ndetection: {}\ntags:\n    a: b\n", 3),
        ("title: [T]\ndetection: {}\n", 1),
        (
            "title: T\ndetection: {}\nlogsource:\n    product: windows\n    category:\n        - a\n",
            5,
        ),
        ("title: T\ndetection: {}\nlogsource: windows\n", 3),
        ("title: T\ndetection: {}\nauthor:\n    - A\n    - B\n", 3),
        ("title: T\ndetection: {}\nrelated:\n    - id: x\n", 3),
    ];
    for (text, line) in cases {
        let parsed = parse(text);
        assert!(parsed.rules.is_empty(), "{text}");
        assert_eq!(parsed.problems.len(), 1, "{text}");
        assert_eq!(
            parsed.problems[0].line,
            Some(line),
            "{text}: {:?}",
            parsed.problems
        );
    }
}

#[test]
fn wrong_field_type_from_a_global_document_reports_its_line() {
    let text = "action: global\ntitle: T\nauthor:\n    x: y\n---\ndetection: {}\n";
    let parsed = parse(text);
    assert_eq!(
        parsed.problems.iter().map(|p| p.line).collect::<Vec<_>>(),
        vec![Some(3)]
    );
}

#[test]
fn bad_document_does_not_kill_the_others() {
    let text = "\
title: First
detection: {}
---
title: Second
tags:
    nested: mapping
detection: {}
---
title: Third
detection:
    a: 1
    a: 2
---
title: Fourth
detection: {}
---
title: Fifth
bad: [unclosed
";
    let parsed = parse(text);
    let titles: Vec<_> = parsed
        .rules
        .iter()
        .map(|r| (r.index, r.line, r.title.as_str()))
        .collect();
    assert_eq!(
        titles,
        vec![(0, 1, "First"), (2, 9, "Third"), (3, 14, "Fourth")]
    );
    let lines: Vec<_> = parsed.problems.iter().map(|p| p.line).collect();
    assert_eq!(
        lines,
        vec![Some(5), Some(12), Some(18)],
        "{:?}",
        parsed.problems
    );
}

#[test]
fn byte_order_mark_is_fine() {
    let mut bytes = "\u{feff}".as_bytes().to_vec();
    bytes.extend_from_slice(MINIMAL.as_bytes());
    let parsed = without_lints(parse_file(&bytes, &Limits::default()));
    assert_eq!(parsed.problems, vec![]);
    assert_eq!(parsed.rules.len(), 1);
    assert_eq!(parsed.rules[0].line, 1);
}

#[test]
fn leading_document_marker_moves_the_start_line() {
    let rule = one_rule("---\ntitle: T\ndetection: {}\n");
    assert_eq!((rule.index, rule.line), (0, 2));
}

#[test]
fn hostile_inputs_do_not_panic() {
    let deep = format!(
        "title: T\ndetection: {}{}\n",
        "[".repeat(500),
        "]".repeat(500)
    );
    let laughs = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    for text in [
        deep.as_str(),
        laughs,
        "a: *unknown\n---\nb: 1\n",
        "title: T\ndetection: !custom {}\n---\ntitle: U\ndetection: {}\n",
        "? [complex, key]\n: value\n",
        "\0",
        "---\n...\n---\n...\n",
        "%YAML 1.1\n---\ntitle: T\ndetection: {}\n",
        "title: T\ndetection: {}\n\u{2028}\n",
    ] {
        let _ = parse(text);
    }
    // An unsafe tag ends the file (see `unsafe_tags_are_named_and_end_the_file`).
    let parsed = parse("title: U\ndetection: {}\n---\ntitle: T\ndetection: !custom {}\n");
    assert_eq!(parsed.rules.len(), 1);
    assert_eq!(parsed.problems.len(), 1);
}

fn codes(parsed: &ParsedFile) -> Vec<(Option<u32>, Code)> {
    parsed.problems.iter().map(|p| (p.line, p.code)).collect()
}

#[test]
fn unsafe_tags_are_named_and_end_the_file() {
    let text = "title: A\ndetection: {}\n---\ntitle: B\ndetection:\n  x: !!python/object/apply:os.system [ls]\n---\ntitle: C\ndescription: '!!python/object'\ndetection: {}\n";
    let parsed = parse(text);
    let titles: Vec<_> = parsed.rules.iter().map(|r| r.title.as_str()).collect();
    assert_eq!(titles, vec!["A"]);
    assert_eq!(codes(&parsed), vec![(Some(6), Code::UnsafeYamlTag)]);
    assert!(
        parsed.problems[0]
            .message
            .contains("`!!python/object/apply:os.system`: only plain YAML is read (the rest"),
        "{:?}",
        parsed.problems
    );
    // Found by fuzzing: a tag yaml_serde does not know on a node holding an unknown alias made
    // yaml_serde panic. The document is never handed to it.
    for text in [
        "title: T\ndetection: {a: [[[[1]]]], b: !x [1, *x]}\n",
        "b: !x {a: *x}\n",
    ] {
        let parsed = parse(text);
        assert_eq!(parsed.problems.len(), 1, "{parsed:?}");
        assert_eq!(parsed.problems[0].code, Code::UnsafeYamlTag);
    }
}

#[test]
fn limits_are_reported_not_read() {
    let limits = Limits {
        file_size: 100,
        ..Limits::default()
    };
    let big = format!(
        "title: T\ndescription: {}\ndetection: {{}}\n",
        "x".repeat(100)
    );
    let parsed = without_lints(parse_file(big.as_bytes(), &limits));
    assert!(parsed.rules.is_empty());
    assert_eq!(codes(&parsed), vec![(Some(1), Code::LimitExceeded)]);
    // Flow nesting: stopped by the scan, at the line of the bracket too many.
    let deep = format!("title: T\ndetection:\n  x: {}\n", "[".repeat(500_000));
    let parsed = parse(&deep);
    assert_eq!(codes(&parsed), vec![(Some(3), Code::LimitExceeded)]);
    // Block nesting: stopped while loading.
    let mut block = String::from("title: T\ndetection:\n");
    for depth in 1..100 {
        block.push_str(&format!("{}k{depth}:\n", " ".repeat(depth)));
    }
    let parsed = parse(&block);
    assert!(parsed.rules.is_empty());
    assert_eq!(codes(&parsed), vec![(Some(66), Code::LimitExceeded)]);
}

#[test]
fn alias_bombs_stop_at_the_budget() {
    let mut text = String::from("title: T\ndetection:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        text.push_str(&format!(
            "  a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 10].join(", ")
        ));
    }
    let parsed = parse(&text);
    assert!(parsed.rules.is_empty());
    assert_eq!(parsed.problems.len(), 1);
    assert_eq!(parsed.problems[0].code, Code::LimitExceeded);
}

#[test]
fn long_texts_are_cut_at_a_character_boundary() {
    let limits = Limits {
        field_length: 100,
        ..Limits::default()
    };
    let text = format!(
        "title: T\ndescription: {}\nreferences:\n  - https://{}\ndetection: {{}}\n",
        "é".repeat(80),
        "a".repeat(200)
    );
    let parsed = without_lints(parse_file(text.as_bytes(), &limits));
    assert_eq!(
        codes(&parsed),
        vec![(Some(2), Code::FieldTooLong), (Some(3), Code::FieldTooLong)]
    );
    let rule = &parsed.rules[0];
    let details = rule.details.get();
    let description = details.description.as_deref().unwrap();
    assert!(description.len() <= 100, "{}", description.len());
    assert!(description.ends_with(CUT_MARKER));
    assert!(description.starts_with(&"é".repeat(40)));
    assert!(rule.details.get().references[0].len() <= 100);
}

#[test]
fn every_shape_parses_in_linear_work() {
    // The scan looks at each byte once and stops early on deep nesting.
    for shape in ["[", "{a: ", "- ", "a: &x\n"] {
        let text = shape.repeat(1_000_000 / shape.len());
        let found = scan::scan(&text, 64);
        assert!(found.bytes <= text.len(), "{shape:?}");
        let _ = parse(&text);
    }
    let deep = "[".repeat(1_000_000);
    assert!(scan::scan(&deep, 64).bytes <= 65);
}

#[test]
fn a_large_global_document_is_charged_for_every_rule_it_is_merged_into() {
    // 20,000 global keys merged into 20,000 documents would copy 400 million nodes.
    let mut text = String::from("action: global\n");
    for i in 0..20_000 {
        text.push_str(&format!("k{i}: v\n"));
    }
    for i in 0..20_000 {
        text.push_str(&format!("---\ntitle: R{i}\ndetection: {{}}\n"));
    }
    let parsed = parse(&text);
    // The default budget of 200,000 nodes holds a few merged rules, then each document is refused.
    assert!(parsed.rules.len() < 10, "{}", parsed.rules.len());
    assert_eq!(parsed.problems.len(), 20_000 - parsed.rules.len());
    assert!(
        parsed
            .problems
            .iter()
            .all(|p| p.code == Code::LimitExceeded)
    );
}

#[test]
fn many_repeated_keys_are_counted_after_the_first_ten() {
    let mut text = String::from("title: T\ndetection:\n");
    for i in 0..1_000 {
        text.push_str(&format!("  k: {i}\n"));
    }
    let parsed = parse(&text);
    assert_eq!(parsed.rules.len(), 1);
    assert_eq!(parsed.problems.len(), 11);
    assert!(
        parsed.problems[10]
            .message
            .starts_with("989 more duplicate keys"),
        "{}",
        parsed.problems[10].message
    );
}

/// Inputs on which `yaml_serde` itself panicked (found by fuzzing in CI): the file is reported and
/// parsing goes on with the next file.
#[test]
fn documents_that_make_yaml_serde_panic_are_reported_not_fatal() {
    for bytes in [
        include_bytes!("crashes/crash-60ac389e20efc618ba6a150f89629892e5bdd3c8").as_slice(),
        include_bytes!("crashes/crash-782ff48e4f4d8fee2ea1e93e5966ee18db4489ad"),
        include_bytes!("crashes/crash-958a4c6b17148a3717cc03c36c23dd5202621c63"),
    ] {
        // Tight limits, as the fuzz target uses: a limit hit inside the document is what leads
        // `yaml_serde` to its panic.
        let tight = Limits {
            file_size: 1 << 16,
            nesting_depth: 8,
            yaml_nodes: 2_000,
            yaml_text: 1 << 16,
            field_length: 64,
        };
        for limits in [Limits::default(), tight] {
            let parsed = parse_file(bytes, &limits);
            assert!(parsed.rules.is_empty());
            assert!(!parsed.problems.is_empty(), "{parsed:?}");
        }
    }
}
