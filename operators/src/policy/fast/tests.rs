//! The compiled way against the interpreter: same verdicts, subjects and operator output.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::{json, Value as JsonValue};
use weir_schemas::component::{MemoryState, Operator, Output, State};
use weir_schemas::events::EnrichedEvent;
use weir_schemas::record::{Record, StoredRecord};

use super::super::bench::{enriched_event, policy_text};
use super::super::eval::{condition_holds, subject_value, Activation};
use super::super::rules::{load_sources, PolicySet};
use super::super::testing::enriched_from_test;
use super::super::udf::Udfs;
use super::super::violations::OPEN_TABLE;
use super::super::Policy;
use super::SubjectPlan;

/// The example policies and the benchmark's 50 rules, as one set.
fn policy_set() -> PolicySet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies");
    let mut sources: Vec<(PathBuf, String)> = super::super::rules::policy_files(&dir)
        .expect("examples/policies lists")
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("readable policy file");
            (path, text)
        })
        .collect();
    sources.push((dir.join("zz_bench.toml"), policy_text(50)));
    sources.sort();
    load_sources(&sources, &Udfs::none()).expect("the examples and the bench rules load")
}

fn encode(enriched: &EnrichedEvent) -> Vec<u8> {
    weir_schemas::encode(enriched).expect("an enriched event encodes")
}

/// Checks every compiled condition and subject against CEL on one event; returns how many
/// verdicts the compiled way was sure of.
fn check_event(set: &PolicySet, enriched: &EnrichedEvent) -> usize {
    let bytes = encode(enriched);
    let fast = set.fast();
    let mut decoded = fast.decode_enriched(&bytes).expect("the fast path decodes a current EnrichedEvent");
    assert!(fast.decode_event(&mut decoded), "the fast path decodes the typed event of {enriched:?}");
    let vars = decoded.vars();
    let activation = Activation::new(enriched);
    let scope = activation.scope(set.root());
    let mut sure = 0;
    let mut memo = fast.guard_memo();
    for (index, rule) in set.rules.iter().enumerate() {
        let interpreted = condition_holds(&rule.condition, &scope);
        if fast.excluded(index, &vars, &mut memo) {
            // A guard shows the condition false: CEL must say so too, even where it errs on
            // another conjunct.
            sure += 1;
            assert_eq!(interpreted, Ok(false), "rule {} excluded by a guard on {enriched:?}", rule.id);
        }
        if let Some(compiled) = fast.condition(index) {
            // Not sure (`None`): the interpreter decides, whatever it says.
            if let Some(holds) = compiled.holds(&vars) {
                sure += 1;
                assert_eq!(Ok(holds), interpreted, "rule {} on {enriched:?}", rule.id);
            }
        }
        let subject = match fast.subject(index) {
            SubjectPlan::Default => fast.default_subject(&vars),
            SubjectPlan::Compiled(compiled) => compiled.subject(&vars),
            SubjectPlan::Interpreted => None,
        };
        if let Some(subject) = subject {
            let expected = match &rule.subject {
                Some(program) => subject_value(program, &scope).expect("a subject CEL evaluates"),
                None => activation.default_subject(),
            };
            assert_eq!(subject.map(Cow::into_owned), expected, "subject of rule {} on {enriched:?}", rule.id);
        }
    }
    sure
}

#[test]
fn most_rules_compile() {
    let set = policy_set();
    let compiled = (0..set.rules.len()).filter(|&i| set.fast().condition(i).is_some()).count();
    let bench = set.rules.iter().enumerate().filter(|(_, r)| r.id.starts_with("bench-"));
    assert!(bench.clone().all(|(i, _)| set.fast().condition(i).is_some()), "every bench rule compiles");
    assert!(
        bench.clone().all(|(i, _)| !matches!(set.fast().subject(i), SubjectPlan::Interpreted)),
        "every bench subject compiles"
    );
    assert!(compiled > set.rules.len() / 2, "{compiled} of {} rules compile", set.rules.len());
}

#[test]
fn compiled_rules_agree_with_cel_on_the_examples_tests_and_bench_events() {
    let set = policy_set();
    let mut sure = 0;
    for rule in &set.rules {
        for test in &rule.tests {
            let enriched = enriched_from_test(&test.input).expect("an inline test input builds");
            sure += check_event(&set, &enriched);
        }
    }
    for i in 0..400 {
        sure += check_event(&set, &enriched_event(i));
    }
    assert!(sure > 1000, "only {sure} compiled verdicts were sure");
}

fn pick<T: Clone + std::fmt::Debug + 'static>(items: &'static [T]) -> impl Strategy<Value = T> {
    proptest::sample::select(items)
}

fn optional(items: &'static [&'static str]) -> impl Strategy<Value = JsonValue> {
    prop_oneof![Just(JsonValue::Null), pick(items).prop_map(|s| json!(s))]
}

/// Test inputs (see `testing`) mixing the values the example and bench rules look for.
fn inputs() -> impl Strategy<Value = JsonValue> {
    let user = prop_oneof![
        Just(JsonValue::Null),
        (
            pick(&["", "00u00001", "00u00040"]),
            optional(&["ACTIVE", "SUSPENDED", "DEPROVISIONED", "DEACTIVATED"]),
            optional(&["dept-0", "dept-3", "Engineering", "Finance", "Legal"]),
            proptest::sample::subsequence(&["everyone", "crown-admins-1", "crown-jewel-admins"][..], 0..=3),
        )
            .prop_map(|(uid, status, department, groups)| {
                json!({ "uid": uid, "status": status, "department": department, "groups": groups })
            }),
    ];
    let device = prop_oneof![
        Just(JsonValue::Null),
        (pick(&["", "dev-1"]), optional(&["7.1", "7.12", "7.9", "6"]), any::<Option<bool>>(), any::<Option<bool>>())
            .prop_map(|(uid, agent, crown, compliant)| {
                json!({ "uid": uid, "agent_version": agent, "crown_jewel": crown, "compliant": compliant })
            }),
    ];
    let asset = prop_oneof![
        Just(JsonValue::Null),
        (pick(&["", "arn:aws:s3:::b"]), optional(&["crown-jewel", "public"])).prop_map(|(uid, class)| {
            let tags = match class {
                JsonValue::Null => json!({}),
                c => json!({ "classification": c }),
            };
            json!({ "uid": uid, "tags": tags })
        }),
    ];
    const NAMES: &[&str] = &["", "alice", "ChatGPT", "ChatGPT Enterprise", "Claude", "GitHub Copilot", "Cursor"];
    let name = || pick(NAMES);
    let event = prop_oneof![
        (pick(&[6001, 4002]), optional(&["Generative AI", "Cloud Storage"]), name(), any::<bool>()).prop_map(
            |(class, category, name, has_app)| {
                let app = if has_app { json!({ "name": name, "category": category }) } else { JsonValue::Null };
                json!({ "class_uid": class, "app": app, "user": { "uid": name, "name": name } })
            }
        ),
        (optional(&["SUCCESS", "FAILURE"]), pick(&["vendor-0", "vendor-1", "okta"]), name()).prop_map(
            |(outcome, vendor, name)| {
                json!({ "class_uid": 3002, "outcome": outcome, "metadata": { "vendor_name": vendor },
                        "actor": { "uid": name, "name": name } })
            }
        ),
        (any::<Option<bool>>(), optional(&["7.1", "7.13", "7.14", "8.0"]), pick(&["", "dev-2"])).prop_map(
            |(rfm, agent, uid)| {
                json!({ "class_uid": 5001, "reduced_functionality_mode": rfm,
                        "device": { "uid": uid, "agent_version": agent } })
            }
        ),
        (
            pick(&["PutBucketAcl", "PutBucketPolicy", "DeleteBucketEncryption", "GetObject", "DeletePublicAccessBlock"]),
            optional(&["region-0", "region-1"]),
            optional(&["{\"x\":\"AllUsers\"}", "0.0.0.0/0", "{}"]),
            proptest::sample::subsequence(&["arn:1", "arn:2"][..], 0..=2),
            name(),
        )
            .prop_map(|(operation, region, request, resources, name)| {
                let resources: Vec<JsonValue> = resources.iter().map(|uid| json!({ "uid": uid, "tags": {} })).collect();
                json!({ "class_uid": 6003, "api": { "operation": operation }, "cloud": { "provider": "aws", "region": region },
                        "request_data": request, "resources": resources, "actor": { "user": { "name": name } } })
            }),
    ];
    (event, user, device, asset, proptest::sample::subsequence(&["user", "device"][..], 0..=2)).prop_map(
        |(event, user, device, asset, missing)| {
            json!({ "event": event, "user": user, "device": device, "asset": asset, "missing": missing })
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn compiled_rules_agree_with_cel_on_generated_events(input in inputs()) {
        let set = policy_set();
        let enriched = enriched_from_test(&input).expect("a generated input builds");
        check_event(&set, &enriched);
    }
}

/// Runs `events` through an operator, returning every output byte and the final state.
/// Every output's bytes, and the open violations' table entries (key, value).
type Outcome = (Vec<Vec<u8>>, Vec<(Vec<u8>, Vec<u8>)>);

fn run(policy: &mut Policy, events: &[EnrichedEvent]) -> Outcome {
    let mut state = MemoryState::default();
    let mut out = Output::default();
    let mut bytes = Vec::new();
    for (i, enriched) in events.iter().enumerate() {
        out.clear();
        let input = StoredRecord {
            topic: "enriched".into(),
            partition: 0,
            offset: i as u64,
            record: Record::new(enriched.time, encode(enriched)),
        };
        policy.process(&input, &mut state, &mut out).expect("processing never fails on these events");
        for record in out.records.iter().chain(out.side.iter().map(|(_, r)| r)) {
            bytes.push(record.value.clone());
            bytes.push(record.key.clone().unwrap_or_default());
        }
        bytes.extend(out.rejected.iter().map(|r| format!("{r:?}").into_bytes()));
    }
    let mut open = Vec::new();
    state.scan(OPEN_TABLE, &mut |k, v| open.push((k.to_vec(), v.to_vec()))).expect("state scans");
    (bytes, open)
}

#[test]
fn the_operator_gives_the_same_bytes_both_ways() {
    let events: Vec<EnrichedEvent> = (0..3000).map(enriched_event).collect();
    let mut compiled = Policy::from_set(policy_set());
    let mut interpreted = Policy::from_set(policy_set());
    interpreted.compiled = false;
    let (compiled_out, compiled_state) = run(&mut compiled, &events);
    let (interpreted_out, interpreted_state) = run(&mut interpreted, &events);
    assert_eq!(compiled_out.len(), interpreted_out.len());
    assert!(compiled_out == interpreted_out, "the outputs differ");
    assert_eq!(compiled_state, interpreted_state);
    assert!(!compiled_state.is_empty(), "some violations stay open");
}

#[test]
fn the_encoder_knows_the_current_schemas() {
    use weir_schemas::events::{PolicyDecision, Violation};
    use weir_schemas::AvroRecord;
    assert_eq!(
        (format!("{:016x}", PolicyDecision::fingerprint()), format!("{:016x}", Violation::fingerprint())),
        (
            format!("{:016x}", super::encode::DECISION_FINGERPRINT),
            format!("{:016x}", super::encode::VIOLATION_FINGERPRINT)
        ),
        "a schema changed: check fast/encode.rs against it and update the fingerprints"
    );
    assert!(super::encode::Encoder::new().is_some());
}

fn violations() -> impl Strategy<Value = weir_schemas::events::Violation> {
    use weir_schemas::events::{Violation, ViolationStatus};
    (
        ".{0,40}",
        "[a-z.-]{1,20}",
        any::<i32>(),
        0..3u8,
        any::<i64>(),
        any::<i64>(),
        proptest::collection::btree_map("[a-z]{0,5}", ".{0,8}", 0..3),
        ".{0,30}",
    )
        .prop_map(|(text, rule_id, severity_id, status, first_seen, last_seen, labels, summary)| Violation {
            violation_key: text.clone(),
            rule_id,
            rule_description: text.clone(),
            severity_id,
            status: [ViolationStatus::Open, ViolationStatus::Updated, ViolationStatus::Resolved][usize::from(status)],
            first_seen,
            last_seen,
            subject: text.chars().rev().collect(),
            event_uid: text,
            labels,
            summary,
        })
}

proptest! {
    #[test]
    fn the_encoder_writes_what_apache_avro_writes(
        uid in ".{0,40}",
        time in any::<i64>(),
        decision in 0..3u8,
        matched in proptest::collection::vec("[a-z.-]{0,12}", 0..4),
        severity_id in any::<i32>(),
        labels in proptest::collection::btree_map(".{0,6}", ".{0,6}", 0..4),
        changes in proptest::collection::vec(violations(), 0..3),
    ) {
        use weir_schemas::events::{Decision, PolicyDecision};
        let encoder = super::encode::Encoder::new().expect("the current schemas");
        for v in &changes {
            prop_assert_eq!(encoder.violation(v), weir_schemas::encode(v).expect("encodes"));
        }
        let decision = PolicyDecision {
            decision_uid: format!("{uid}/0123456789ab"),
            event_uid: uid,
            time,
            decision: [Decision::Allow, Decision::Deny, Decision::Review][usize::from(decision)],
            policy_set_version: "ab".repeat(32),
            matched_rules: matched,
            severity_id,
            labels,
            violations: changes,
        };
        prop_assert_eq!(encoder.decision(&decision), weir_schemas::encode(&decision).expect("encodes"));
    }
}

/// Guards where another conjunct errs: CEL's `&&` is false when either side is false, so a rule
/// a guard rules out is false however its other conjuncts fare, and the operator's output is the
/// same both ways.
#[test]
fn guards_agree_with_cel_when_other_conjuncts_err() {
    let text = r#"
[[rules]]
id = "g1"
description = "error on the left"
owner = "o"
condition = "user.no_such_field == 'x' && user.department == 'Finance'"
decision = "deny"
severity = "high"

[[rules]]
id = "g2"
description = "error on the right"
owner = "o"
condition = "event.app.category in ['Generative AI', 'Chat'] && size(user.no_such_field) > 0"
decision = "review"
severity = "medium"

[[rules]]
id = "g3"
description = "a guard on null"
owner = "o"
condition = "user.title == null && user.department == 'Legal'"
decision = "deny"
severity = "low"
"#;
    let set = || load_sources(&[(PathBuf::from("guards.toml"), text.to_string())], &Udfs::none()).expect("loads");
    let events: Vec<EnrichedEvent> = [
        json!({ "class_uid": 6001, "event": { "app": { "name": "Box", "category": "Cloud Storage" } },
                "user": { "uid": "u1", "department": "Engineering" } }),
        json!({ "class_uid": 6001, "event": { "app": { "name": "Claude", "category": "Generative AI" } },
                "user": { "uid": "u2", "department": "Finance" } }),
        json!({ "class_uid": 6001, "event": { "app": { "name": "Claude", "category": null } },
                "user": { "uid": "u3", "department": "Legal" } }),
        json!({ "class_uid": 6001, "event": { "app": null }, "user": null }),
    ]
    .iter()
    .map(|input| enriched_from_test(input).expect("a test input builds"))
    .collect();
    let set_once = set();
    let mut excluded = 0;
    for enriched in &events {
        let bytes = encode(enriched);
        let fast = set_once.fast();
        let mut decoded = fast.decode_enriched(&bytes).expect("decodes");
        assert!(fast.decode_event(&mut decoded));
        let vars = decoded.vars();
        let activation = Activation::new(enriched);
        let scope = activation.scope(set_once.root());
        let mut memo = fast.guard_memo();
        for (index, rule) in set_once.rules.iter().enumerate() {
            if fast.excluded(index, &vars, &mut memo) {
                excluded += 1;
                assert_eq!(condition_holds(&rule.condition, &scope), Ok(false), "rule {} on {enriched:?}", rule.id);
            }
        }
    }
    assert!(excluded >= 4, "only {excluded} verdicts were ruled out by guards");
    let mut compiled = Policy::from_set(set());
    let mut interpreted = Policy::from_set(set());
    interpreted.compiled = false;
    assert_eq!(run(&mut compiled, &events), run(&mut interpreted, &events));
    assert_eq!(compiled.stats().rejected, interpreted.stats().rejected);
}
