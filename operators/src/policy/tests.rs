//! Tests of the policy operator: loading and its errors, reloads, decisions, the violation
//! lifecycle across restarts, determinism, UDFs over the ABI, and the example policies.

use std::path::{Path, PathBuf};

use serde_json::{json, Value as JsonValue};
use weir_schemas::component::{MemoryState, Operator, Output, State};
use weir_schemas::events::{Decision, EnrichedEvent, PolicyDecision, Violation, ViolationStatus};
use weir_schemas::record::{Record, StoredRecord};

use super::rules::{load_sources, PolicyLoadError};
use super::testing::enriched_from_test;
use super::udf::{self, ArgType, Datum, FfiArrays, RunResult, Udf, Udfs};
use super::violations::{violation_key, OPEN_TABLE};
use super::*;

/// A policy directory holding `files` (name, text).
fn policy_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write policy file");
    }
    dir
}

fn config(dir: &Path) -> PolicyConfig {
    PolicyConfig { policies: dir.to_path_buf(), reload_interval_ms: 0, udfs: Vec::new() }
}

fn load_error(files: &[(&str, &str)]) -> PolicyLoadError {
    let dir = policy_dir(files);
    Policy::new(config(dir.path())).expect_err("the set must not load")
}

/// An input record holding the enriched event a test-style object describes.
fn input(event: JsonValue, offset: u64) -> StoredRecord {
    let enriched = enriched_from_test(&event).expect("valid test event");
    let value = weir_schemas::encode(&enriched).expect("encodes");
    StoredRecord { topic: "enriched".into(), partition: 0, offset, record: Record::new(enriched.time, value) }
}

fn run(policy: &mut Policy, state: &mut MemoryState, record: &StoredRecord) -> Output {
    let mut out = Output::default();
    policy.process(record, state, &mut out).expect("process never fails on input");
    out
}

fn decision_of(out: &Output) -> PolicyDecision {
    assert_eq!(out.records.len(), 1, "one decision per input: {out:?}");
    weir_schemas::decode(&out.records[0].value).expect("a PolicyDecision")
}

fn side_violations(out: &Output) -> Vec<Violation> {
    out.side
        .iter()
        .map(|(side, record)| {
            assert_eq!(side, VIOLATIONS_OUTPUT);
            let v: Violation = weir_schemas::decode(&record.value).expect("a Violation");
            assert_eq!(record.key.as_deref(), Some(v.violation_key.as_bytes()), "keyed by violation key");
            v
        })
        .collect()
}

const RULES: &str = r#"
[[rules]]
id = "b.review"
description = "Suspended user activity"
owner = "secops"
classes = [6001]
condition = 'user != null && user.status == "SUSPENDED"'
decision = "review"
severity = "medium"
labels = { team = "identity", route = "ticket" }

[[rules]]
id = "a.deny"
description = "Unapproved AI service"
owner = "secops"
classes = [6001]
condition = 'event.app != null && event.app.name == "ChatGPT"'
decision = "deny"
severity = "high"
labels = { team = "ai", control = "AI-1" }

[[rules]]
id = "c.allow"
description = "Known good"
owner = "secops"
condition = 'class_uid == 6001'
decision = "allow"
severity = "informational"

[[rules]]
id = "d.cloud"
description = "Cloud only"
owner = "secops"
classes = [6003]
condition = 'true'
decision = "deny"
severity = "critical"
"#;

fn app_event(uid: &str, user: &str, status: &str, app: &str, time: i64) -> JsonValue {
    json!({
        "class_uid": 6001,
        "event_uid": uid,
        "time": time,
        "event": { "app": { "name": app }, "user": { "uid": user } },
        "user": { "uid": user, "status": status },
    })
}

#[test]
fn toml_syntax_errors_name_file_and_line() {
    let e = load_error(&[("a.toml", "[[rules]]\nid = \"x\"\ndescription = \n")]);
    assert_eq!(e.problems.len(), 1, "{e}");
    let p = &e.problems[0];
    assert!(p.file.ends_with("a.toml"), "{e}");
    assert_eq!(p.line, Some(3), "{e}");
}

#[test]
fn bad_rules_are_reported_with_their_line_and_reason() {
    let text = r#"
[[rules]]
id = "r1"
description = "d"
owner = "o"
classes = [6001, 9999]
condition = "true"
decision = "block"
severity = "severe"
"#;
    let e = load_error(&[("bad.toml", text)]);
    let found: Vec<(Option<usize>, &str)> = e.problems.iter().map(|p| (p.line, p.reason.as_str())).collect();
    assert!(found.iter().any(|(l, r)| *l == Some(8) && r.contains("unknown decision \"block\"")), "{e}");
    assert!(found.iter().any(|(l, r)| *l == Some(9) && r.contains("unknown severity \"severe\"")), "{e}");
    assert!(found.iter().any(|(l, r)| *l == Some(6) && r.contains("class 9999")), "{e}");
    assert!(e.to_string().contains("bad.toml:8: rule `r1`: unknown decision"), "{e}");
}

#[test]
fn cel_errors_point_at_the_line_inside_the_condition() {
    let text = "[[rules]]\nid = \"r\"\ndescription = \"d\"\nowner = \"o\"\ncondition = '''\nuser != null\n  && user.status == \n'''\ndecision = \"deny\"\nseverity = \"low\"\n";
    let e = load_error(&[("cel.toml", text)]);
    assert_eq!(e.problems.len(), 1, "{e}");
    let p = &e.problems[0];
    assert!(p.reason.contains("condition does not compile"), "{e}");
    assert!(p.line == Some(7) || p.line == Some(8), "the error is on the second line of the expression: {e}");

    let text = "[[rules]]\nid = \"r\"\ndescription = \"d\"\nowner = \"o\"\ncondition = 'evnt.app != null'\ndecision = \"deny\"\nseverity = \"low\"\n";
    let e = load_error(&[("var.toml", text)]);
    assert_eq!(e.problems[0].line, Some(5), "{e}");
    assert!(e.problems[0].reason.contains("unknown variable `evnt`"), "{e}");

    // Comprehension variables are not unknown.
    let ok = "[[rules]]\nid = \"r\"\ndescription = \"d\"\nowner = \"o\"\ncondition = 'missing.exists(m, m.startsWith(\"user:\"))'\ndecision = \"deny\"\nseverity = \"low\"\n";
    let dir = policy_dir(&[("ok.toml", ok)]);
    Policy::new(config(dir.path())).expect("loads");
}

#[test]
fn duplicate_ids_across_files_name_both_places() {
    let rule = "[[rules]]\nid = \"same\"\ndescription = \"d\"\nowner = \"o\"\ncondition = \"true\"\ndecision = \"deny\"\nseverity = \"low\"\n";
    let e = load_error(&[("a.toml", rule), ("b.toml", &format!("\n\n{rule}"))]);
    assert_eq!(e.problems.len(), 1, "{e}");
    let p = &e.problems[0];
    assert!(p.file.ends_with("b.toml"), "{e}");
    assert_eq!(p.line, Some(4), "{e}");
    assert!(p.reason.contains("duplicate rule id `same`") && p.reason.contains("a.toml:2"), "{e}");
}

#[test]
fn bad_test_events_and_empty_directories_are_errors() {
    let text = "[[rules]]\nid = \"r\"\ndescription = \"d\"\nowner = \"o\"\ncondition = \"true\"\ndecision = \"deny\"\nseverity = \"low\"\n\n[[rules.tests]]\nexpect = true\nevent = { class_uid = 6001, usr = {} }\n";
    let e = load_error(&[("t.toml", text)]);
    assert_eq!(e.problems[0].line, Some(9), "{e}");
    assert!(e.problems[0].reason.contains("unknown key `usr`"), "{e}");
    let e = load_error(&[("notes.txt", "not a policy")]);
    assert!(e.to_string().contains("no *.toml, *.yaml or *.yml policy files"), "{e}");
}

#[test]
fn precedence_matched_rules_severity_and_labels() {
    let dir = policy_dir(&[("rules.toml", RULES)]);
    let mut policy = Policy::new(config(dir.path())).expect("loads");
    let mut state = MemoryState::default();

    // Both the review and the deny rule match, and the all-classes allow rule.
    let out = run(&mut policy, &mut state, &input(app_event("e1", "u1", "SUSPENDED", "ChatGPT", 10), 0));
    let d = decision_of(&out);
    assert_eq!(d.decision, Decision::Deny);
    assert_eq!(d.matched_rules, vec!["a.deny", "b.review", "c.allow"], "sorted ids");
    assert_eq!(d.severity_id, 4, "high");
    // `team` clashes: the rule whose id sorts first (a.deny) wins.
    assert_eq!(d.labels.get("team").map(String::as_str), Some("ai"));
    assert_eq!(d.labels.get("route").map(String::as_str), Some("ticket"));
    assert_eq!(d.labels.get("control").map(String::as_str), Some("AI-1"));
    assert_eq!(d.policy_set_version, policy.policy_set().version);
    assert_eq!(d.decision_uid, format!("e1/{}", &policy.policy_set().version[..12]));
    assert_eq!(d.time, 10);
    assert_eq!(d.violations.len(), 2, "deny and review open violations, allow does not");

    // Only review and allow.
    let d = decision_of(&run(&mut policy, &mut state, &input(app_event("e2", "u2", "SUSPENDED", "Box", 11), 1)));
    assert_eq!(d.decision, Decision::Review);
    assert_eq!(d.matched_rules, vec!["b.review", "c.allow"]);

    // Only allow.
    let d = decision_of(&run(&mut policy, &mut state, &input(app_event("e3", "u3", "ACTIVE", "Box", 12), 2)));
    assert_eq!(d.decision, Decision::Allow);
    assert_eq!(d.matched_rules, vec!["c.allow"]);
    assert_eq!(d.severity_id, 1);
    assert!(d.violations.is_empty());

    // Nothing matches (class 3002: only the all-classes rule applies, and it checks 6001).
    let auth = json!({"class_uid": 3002, "event_uid": "e4", "event": {"actor": {"uid": "u4"}}});
    let d = decision_of(&run(&mut policy, &mut state, &input(auth, 3)));
    assert_eq!(d.decision, Decision::Allow);
    assert!(d.matched_rules.is_empty());
    assert_eq!(d.severity_id, 0);
    assert!(d.labels.is_empty());
}

#[test]
fn rules_only_run_on_their_classes() {
    let dir = policy_dir(&[("rules.toml", RULES)]);
    let policy = Policy::new(config(dir.path())).expect("loads");
    let set = policy.policy_set();
    let ids = |class| set.rules_for(class).iter().map(|&i| set.rules[i].id.as_str()).collect::<Vec<_>>();
    assert_eq!(ids(6001), vec!["a.deny", "b.review", "c.allow"]);
    assert_eq!(ids(6003), vec!["c.allow", "d.cloud"]);
    assert_eq!(ids(3002), vec!["c.allow"]);
}

#[test]
fn violations_open_update_and_resolve_across_a_restart() {
    let dir = policy_dir(&[("rules.toml", RULES)]);
    let mut policy = Policy::new(config(dir.path())).expect("loads");
    let mut state = MemoryState::default();
    policy.restore(&state).expect("restore");

    let out = run(&mut policy, &mut state, &input(app_event("e1", "u1", "ACTIVE", "ChatGPT", 100), 0));
    let opened = side_violations(&out);
    assert_eq!(opened.len(), 1);
    let v = &opened[0];
    assert_eq!((v.rule_id.as_str(), v.status, v.subject.as_str()), ("a.deny", ViolationStatus::Open, "u1"));
    assert_eq!((v.first_seen, v.last_seen, v.event_uid.as_str()), (100, 100, "e1"));
    assert_eq!(v.violation_key, violation_key("a.deny", "u1"));
    assert_eq!(v.severity_id, 4);
    assert_eq!(decision_of(&out).violations, opened, "the decision carries the same violations");
    assert!(state.get(OPEN_TABLE, v.violation_key.as_bytes()).expect("get").is_some());

    let out = run(&mut policy, &mut state, &input(app_event("e2", "u1", "ACTIVE", "ChatGPT", 200), 1));
    let updated = side_violations(&out);
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0].status, ViolationStatus::Updated);
    assert_eq!((updated[0].first_seen, updated[0].last_seen), (100, 200));
    assert_eq!(updated[0].violation_key, v.violation_key);

    // Another user's event neither updates nor resolves u1's violation.
    let out = run(&mut policy, &mut state, &input(app_event("e3", "u2", "ACTIVE", "Box", 250), 2));
    assert!(side_violations(&out).is_empty());

    // Restart: a new operator, restored from the committed state.
    let mut restarted = Policy::new(config(dir.path())).expect("loads");
    restarted.restore(&state).expect("restore");
    assert_eq!(restarted.open_violations(), 1);
    let out = run(&mut restarted, &mut state, &input(app_event("e4", "u1", "ACTIVE", "Box", 300), 3));
    let resolved = side_violations(&out);
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    let r = &resolved[0];
    assert_eq!(r.status, ViolationStatus::Resolved);
    assert_eq!((r.first_seen, r.last_seen, r.event_uid.as_str()), (100, 300, "e4"));
    assert_eq!(r.violation_key, v.violation_key);
    assert_eq!(decision_of(&out).decision, Decision::Allow);
    assert!(state.get(OPEN_TABLE, v.violation_key.as_bytes()).expect("get").is_none());
    assert_eq!(restarted.open_violations(), 0);

    // Resolved means the next match opens a new violation under the same key.
    let out = run(&mut restarted, &mut state, &input(app_event("e5", "u1", "ACTIVE", "ChatGPT", 400), 4));
    let again = side_violations(&out);
    assert_eq!((again[0].status, again[0].first_seen), (ViolationStatus::Open, 400));
    assert_eq!(again[0].violation_key, v.violation_key);
}

#[test]
fn describe_state_shows_an_open_violation() {
    let dir = policy_dir(&[("rules.toml", RULES)]);
    let mut policy = Policy::new(config(dir.path())).expect("loads");
    let mut state = MemoryState::default();
    let t = 1_718_000_000_000;
    run(&mut policy, &mut state, &input(app_event("e1", "u1", "ACTIVE", "ChatGPT", t), 0));
    let key = violation_key("a.deny", "u1");
    let value = state.get(OPEN_TABLE, key.as_bytes()).expect("get").expect("open");

    let shown = policy.describe_state(OPEN_TABLE, key.as_bytes(), &value).expect("describes it");
    assert_eq!((shown["rule_id"].as_str(), shown["subject"].as_str()), (Some("a.deny"), Some("u1")));
    assert_eq!(shown["first_seen"], json!({ "ms": t, "utc": "2024-06-10T06:13:20Z" }));
    assert_eq!(shown["event_uid"], "e1");
    assert_eq!(policy.describe_state(OPEN_TABLE, key.as_bytes(), b"{not json"), None);
    assert_eq!(policy.describe_state("other", key.as_bytes(), &value), None);
}

#[test]
fn violation_keys_are_stable() {
    // A golden value: the key must never change, or every open ticket would be duplicated.
    assert_eq!(violation_key("a.deny", "u1"), violation_key("a.deny", "u1"));
    assert_eq!(violation_key("a.deny", "u1").len(), 32);
    assert_eq!(violation_key("a.deny", "u1"), "15ecb8f7caa298317cf6d67674611e97");
    assert_ne!(violation_key("a.deny", "u1"), violation_key("a.deny", "u2"));
    assert_ne!(violation_key("a.den", "yu1"), violation_key("a.deny", "u1"), "fields are separated");

    // The key does not depend on the policy-set version.
    let dir = policy_dir(&[("rules.toml", RULES)]);
    let mut policy = Policy::new(config(dir.path())).expect("loads");
    let extra = format!("{RULES}\n[[rules]]\nid = \"z\"\ndescription = \"d\"\nowner = \"o\"\ncondition = \"false\"\ndecision = \"deny\"\nseverity = \"low\"\n");
    let dir2 = policy_dir(&[("rules.toml", &extra)]);
    let mut other = Policy::new(config(dir2.path())).expect("loads");
    assert_ne!(policy.policy_set().version, other.policy_set().version);
    let record = input(app_event("e1", "u1", "ACTIVE", "ChatGPT", 1), 0);
    let a = side_violations(&run(&mut policy, &mut MemoryState::default(), &record));
    let b = side_violations(&run(&mut other, &mut MemoryState::default(), &record));
    assert_eq!(a[0].violation_key, b[0].violation_key);
}

#[test]
fn output_is_deterministic() {
    let dir = policy_dir(&[("rules.toml", RULES)]);
    let records: Vec<StoredRecord> = (0..20)
        .map(|i| {
            let user = format!("u{}", i % 3);
            let status = if i % 4 == 0 { "SUSPENDED" } else { "ACTIVE" };
            let app = if i % 2 == 0 { "ChatGPT" } else { "Box" };
            input(app_event(&format!("e{i}"), &user, status, app, i), i as u64)
        })
        .collect();
    let run_all = || {
        let mut policy = Policy::new(config(dir.path())).expect("loads");
        let mut state = MemoryState::default();
        let outputs: Vec<Output> = records.iter().map(|r| run(&mut policy, &mut state, r)).collect();
        let outputs: Vec<_> = outputs.into_iter().map(|o| (o.records, o.side, o.rejected)).collect();
        (outputs, state)
    };
    let (first, state1) = run_all();
    let (second, state2) = run_all();
    assert_eq!(first, second, "byte-identical outputs");
    assert_eq!(state1, state2, "identical state");
}

#[test]
fn bad_input_is_rejected_without_changing_state() {
    let dir = policy_dir(&[("rules.toml", RULES)]);
    let mut policy = Policy::new(config(dir.path())).expect("loads");
    let mut state = MemoryState::default();
    let garbage =
        StoredRecord { topic: "enriched".into(), partition: 0, offset: 0, record: Record::new(0, b"{}".to_vec()) };
    let out = run(&mut policy, &mut state, &garbage);
    assert!(out.records.is_empty());
    assert_eq!(out.rejected.len(), 1);
    assert!(out.rejected[0].reason.contains("not an EnrichedEvent"), "{}", out.rejected[0].reason);
    assert_eq!(out.rejected[0].original, b"{}");

    // A valid envelope whose typed event is corrupt: rejected once a rule reads `event`, and the
    // violation the suspended-user rule (which does not read it) would open is not kept.
    let mut enriched: EnrichedEvent =
        enriched_from_test(&app_event("e1", "u1", "SUSPENDED", "ChatGPT", 1)).expect("valid");
    enriched.event.truncate(12);
    let value = weir_schemas::encode(&enriched).expect("encodes");
    let record =
        StoredRecord { topic: "enriched".into(), partition: 0, offset: 1, record: Record::new(1, value.clone()) };
    let out = run(&mut policy, &mut state, &record);
    assert!(out.records.is_empty() && out.side.is_empty());
    assert_eq!(out.rejected.len(), 1);
    assert!(
        out.rejected[0].reason.contains("e1") && out.rejected[0].reason.contains("cannot be decoded"),
        "{}",
        out.rejected[0].reason
    );
    assert_eq!(out.rejected[0].original, value);
    assert!(state.tables.is_empty(), "no state change: {:?}", state.tables.keys().collect::<Vec<_>>());
    assert_eq!(policy.stats().rejected, 2);
}

#[test]
fn rule_errors_count_as_no_match() {
    let text = "[[rules]]\nid = \"r\"\ndescription = \"d\"\nowner = \"o\"\ncondition = 'event.app.name == \"ChatGPT\"'\ndecision = \"deny\"\nseverity = \"low\"\n\n[[rules]]\nid = \"s\"\ndescription = \"d\"\nowner = \"o\"\ncondition = '1 + 1'\ndecision = \"deny\"\nseverity = \"low\"\n";
    let dir = policy_dir(&[("e.toml", text)]);
    let mut policy = Policy::new(config(dir.path())).expect("loads");
    let event = json!({"class_uid": 6001, "event_uid": "e1", "event": {"user": {"uid": "u"}}});
    let d = decision_of(&run(&mut policy, &mut MemoryState::default(), &input(event, 0)));
    assert_eq!(d.decision, Decision::Allow);
    assert!(d.matched_rules.is_empty());
    assert_eq!(policy.stats().rule_errors, 2, "null app, and a condition that is not a bool");
}

#[test]
fn subjects_default_to_the_user_and_fall_back_to_the_event() {
    let text = "[[rules]]\nid = \"r\"\ndescription = \"d\"\nowner = \"o\"\ncondition = 'true'\ndecision = \"review\"\nseverity = \"low\"\n\n[[rules]]\nid = \"s\"\ndescription = \"d\"\nowner = \"o\"\ncondition = 'true'\nsubject = 'event.device.uid'\ndecision = \"review\"\nseverity = \"low\"\n";
    let dir = policy_dir(&[("s.toml", text)]);
    let mut policy = Policy::new(config(dir.path())).expect("loads");
    let subjects = |policy: &mut Policy, event: JsonValue| {
        let out = run(policy, &mut MemoryState::default(), &input(event, 0));
        side_violations(&out).into_iter().map(|v| (v.rule_id, v.subject)).collect::<Vec<_>>()
    };
    // User context first.
    let got = subjects(
        &mut policy,
        json!({"class_uid": 5001, "event_uid": "e1", "event": {"device": {"uid": "d1"}}, "user": {"uid": "u9"}}),
    );
    assert_eq!(got, vec![("r".to_string(), "u9".to_string()), ("s".to_string(), "d1".to_string())]);
    // Then the event's actor.
    let got = subjects(
        &mut policy,
        json!({"class_uid": 3002, "event_uid": "e2", "event": {"actor": {"uid": "00u1", "name": "jo"}}}),
    );
    assert_eq!(got[0], ("r".to_string(), "00u1".to_string()));
    // Nobody to name: the event itself; the explicit subject evaluates to null: the event too.
    let got = subjects(&mut policy, json!({"class_uid": 5001, "event_uid": "e3", "event": {"device": {}}}));
    assert_eq!(got, vec![("r".to_string(), "event:e3".to_string()), ("s".to_string(), "event:e3".to_string())]);
}

#[test]
fn reload_keeps_the_previous_set_when_a_file_is_bad() {
    let dir = policy_dir(&[("rules.toml", RULES)]);
    let mut policy = Policy::new(config(dir.path())).expect("loads");
    let first = policy.policy_set().version.clone();
    assert_eq!(policy.reload_now(), Ok(false), "nothing changed");

    // A bad file: rejected with file and line, the old set keeps deciding.
    std::fs::write(dir.path().join("broken.toml"), "[[rules]]\nid = \"x\"\ndecision = \"deny\"\nbogus = 1\n")
        .expect("write");
    let e = policy.reload_now().expect_err("bad file");
    assert!(e.problems[0].file.ends_with("broken.toml") && e.problems[0].line.is_some(), "{e}");
    assert_eq!(policy.policy_set().version, first);
    assert_eq!(policy.stats().failed_reloads, 1);
    let d = decision_of(&run(
        &mut policy,
        &mut MemoryState::default(),
        &input(app_event("e1", "u1", "ACTIVE", "ChatGPT", 1), 0),
    ));
    assert_eq!(d.policy_set_version, first);
    assert_eq!(d.decision, Decision::Deny);
    // The same bad content is not loaded (nor logged) again.
    assert_eq!(policy.reload_now(), Ok(false));

    // Fixed: the new set loads and decides from the next event on.
    std::fs::remove_file(dir.path().join("broken.toml")).expect("remove");
    std::fs::write(dir.path().join("rules.toml"), RULES.replace("\"ChatGPT\"", "\"Gemini\"")).expect("write");
    assert_eq!(policy.reload_now(), Ok(true));
    let second = policy.policy_set().version.clone();
    assert_ne!(second, first);
    let d = decision_of(&run(
        &mut policy,
        &mut MemoryState::default(),
        &input(app_event("e1", "u1", "ACTIVE", "ChatGPT", 1), 0),
    ));
    assert_eq!((d.policy_set_version.as_str(), d.decision), (second.as_str(), Decision::Allow));
    assert_eq!(policy.stats().reloads, 1);
}

#[test]
fn process_checks_for_changes_on_its_interval() {
    let dir = policy_dir(&[("rules.toml", RULES)]);
    let mut policy = Policy::new(PolicyConfig { reload_interval_ms: 1, ..config(dir.path()) }).expect("loads");
    let first = policy.policy_set().version.clone();
    std::fs::write(dir.path().join("more.toml"), "# no rules yet\n").expect("write");
    std::thread::sleep(std::time::Duration::from_millis(5));
    let d = decision_of(&run(
        &mut policy,
        &mut MemoryState::default(),
        &input(app_event("e1", "u1", "ACTIVE", "Box", 1), 0),
    ));
    assert_ne!(d.policy_set_version, first, "reloaded before deciding");
}

#[test]
fn version_hashes_names_and_contents() {
    let a = load_sources(&[(PathBuf::from("a.toml"), "# x\n".into())], &Udfs::none()).expect("loads");
    let b = load_sources(&[(PathBuf::from("b.toml"), "# x\n".into())], &Udfs::none()).expect("loads");
    let c = load_sources(&[(PathBuf::from("a.toml"), "# y\n".into())], &Udfs::none()).expect("loads");
    let a2 = load_sources(&[(PathBuf::from("/elsewhere/a.toml"), "# x\n".into())], &Udfs::none()).expect("loads");
    assert_eq!(a.version.len(), 64);
    assert_ne!(a.version, b.version);
    assert_ne!(a.version, c.version);
    assert_eq!(a.version, a2.version, "the directory does not matter, only names and contents");
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies")
}

#[test]
fn example_policies_pass_their_inline_tests() {
    let report = test_policies(&examples_dir(), &Udfs::none()).unwrap_or_else(|e| panic!("examples load:\n{e}"));
    println!("{report}");
    assert!(report.ok(), "{report}");
    assert!(report.untested.is_empty(), "{report}");
    assert!(report.to_string().ends_with(&format!("{} passed, 0 failed", report.passed)), "{report}");
    let set = load_dir(&examples_dir(), &Udfs::none()).expect("loads");
    assert!(set.rules.len() >= 10);
    for rule in &set.rules {
        assert!(rule.tests.iter().any(|t| t.expect), "{}: needs a test that matches", rule.id);
        assert!(rule.tests.iter().any(|t| !t.expect), "{}: needs a test that does not match", rule.id);
    }
    let files: Vec<String> = set.files.iter().filter_map(|f| f.file_name()?.to_str().map(String::from)).collect();
    for seed in
        ["shadow_ai.toml", "inactive_users.yaml", "device_compliance.toml", "crown_jewels.toml", "cloud_changes.toml"]
    {
        assert!(files.iter().any(|f| f == seed), "{seed} missing from {files:?}");
    }
}

#[test]
fn failing_inline_tests_are_reported() {
    let text = "[[rules]]\nid = \"r\"\ndescription = \"d\"\nowner = \"o\"\nclasses = [6001]\ncondition = 'user != null && user.department == \"Finance\"'\ndecision = \"deny\"\nseverity = \"low\"\n\n[[rules.tests]]\nname = \"wrong expectation\"\nexpect = true\nevent = { class_uid = 6001, user = { uid = \"u\", department = \"Sales\" } }\n\n[[rules.tests]]\nexpect = true\nevent = '{\"class_uid\": 6001, \"user\": {\"uid\": \"u\", \"department\": \"Finance\"}}'\n\n[[rules.tests]]\nexpect = true\nevent = { class_uid = 6001, event = { nonsense = 1 } }\n\n[[rules.tests]]\nexpect = true\nevent = { class_uid = 3002, user = { uid = \"u\", department = \"Finance\" } }\n";
    let dir = policy_dir(&[("t.toml", text)]);
    let report = test_policies(dir.path(), &Udfs::none()).expect("loads");
    assert_eq!((report.passed, report.failed), (1, 3), "{report}");
    assert_eq!(report.results[0].test, "wrong expectation");
    assert_eq!(report.results[0].location, format!("{}:10", dir.path().join("t.toml").display()));
    assert_eq!(report.results[0].matched, Some(false));
    assert!(report.results[2].detail.as_deref().unwrap_or_default().contains("nonsense"), "{report}");
    assert!(report.results[3].detail.as_deref().unwrap_or_default().contains("does not run on class 3002"), "{report}");
    assert!(report.to_string().ends_with("1 passed, 3 failed"), "{report}");
}

/// An Arroyo-style `__run` linked into the test binary, as `local_udf` builds them: it
/// concatenates a string and an i64, and panics (as a UDF can) on "boom".
extern "C-unwind" fn concat_run(args: FfiArrays) -> RunResult {
    // SAFETY: the host built `args` with FfiArrays::from_vec.
    let arrays = unsafe { args.into_vec() };
    // SAFETY: each pair is a valid array and schema this side now owns.
    let datums: Vec<Result<Datum, String>> = arrays.into_iter().map(|pair| unsafe { udf::import(pair) }).collect();
    let result = std::panic::catch_unwind(|| match (&datums[0], &datums[1]) {
        (Ok(Datum::Utf8(s)), _) if s == "boom" => panic!("boom"),
        (Ok(Datum::Utf8(s)), Ok(Datum::Int(i, ArgType::I64))) => Datum::Utf8(format!("{s}-{i}")),
        (Ok(Datum::Null(_)), _) => Datum::Null(ArgType::String),
        other => Datum::Utf8(format!("unexpected {other:?}")),
    });
    match result {
        Ok(datum) => RunResult::Ok(udf::export(&datum)),
        Err(_) => RunResult::Err,
    }
}

#[test]
fn udfs_are_called_from_rules_over_the_abi() {
    let udfs = Udfs::from_udfs(vec![Udf::local("tag", Some(vec![ArgType::String, ArgType::I64]), concat_run)]);
    let text = "[[rules]]\nid = \"u\"\ndescription = \"d\"\nowner = \"o\"\ncondition = 'tag(user.uid, class_uid) == \"u1-6001\"'\ndecision = \"deny\"\nseverity = \"low\"\n\n[[rules]]\nid = \"v\"\ndescription = \"d\"\nowner = \"o\"\ncondition = 'tag(user.department, 1) == null'\ndecision = \"review\"\nseverity = \"low\"\n\n[[rules]]\nid = \"w\"\ndescription = \"d\"\nowner = \"o\"\ncondition = 'tag(\"boom\", 1) == \"x\"'\ndecision = \"review\"\nseverity = \"low\"\n";
    let dir = policy_dir(&[("udf.toml", text)]);
    let mut policy = Policy::with_udfs(config(dir.path()), udfs).expect("loads");
    let d = decision_of(&run(
        &mut policy,
        &mut MemoryState::default(),
        &input(app_event("e1", "u1", "ACTIVE", "Box", 1), 0),
    ));
    assert_eq!(d.matched_rules, vec!["u", "v"], "a string and an int in, a string out; a null through");
    assert_eq!(policy.stats().rule_errors, 1, "the panicking UDF is an evaluation error, not a crash");
}

#[test]
fn udf_values_cross_the_abi_unchanged() {
    for datum in [
        Datum::Bool(true),
        Datum::Bool(false),
        Datum::Int(-7, ArgType::I32),
        Datum::Int(i64::MIN, ArgType::I64),
        Datum::UInt(u64::from(u32::MAX), ArgType::U32),
        Datum::UInt(u64::MAX, ArgType::U64),
        Datum::Float(1.5, ArgType::F32),
        Datum::Float(-0.25, ArgType::F64),
        Datum::Utf8(String::new()),
        Datum::Utf8("héllo wörld, longer than eight bytes".into()),
        Datum::Binary(vec![0, 1, 2, 255]),
        Datum::Null(ArgType::I64),
        Datum::Null(ArgType::String),
    ] {
        // SAFETY: export builds a valid array that import then owns and releases.
        let back = unsafe { udf::import(udf::export(&datum)) };
        assert_eq!(back, Ok(datum));
    }
    let int = cel::common::types::CelInt::from(5);
    assert_eq!(Datum::from_val(&int, Some(ArgType::I32)), Ok(Datum::Int(5, ArgType::I32)));
    assert_eq!(Datum::from_val(&int, Some(ArgType::F64)), Ok(Datum::Float(5.0, ArgType::F64)));
    let big = cel::common::types::CelInt::from(i64::MAX);
    assert!(Datum::from_val(&big, Some(ArgType::I32)).is_err());
    let null = cel::common::types::CelNull;
    assert!(Datum::from_val(&null, None).is_err(), "a null needs a declared type");
}

#[test]
fn udf_libraries_that_cannot_be_loaded_are_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("libnothere.so");
    let e = Udfs::load(&[UdfSpec::Path(missing.clone())]).expect_err("missing");
    assert_eq!(e.problems[0].file, missing);
    let not_a_library = dir.path().join("libfake.so");
    std::fs::write(&not_a_library, b"not an ELF file").expect("write");
    let e = Udfs::load(&[UdfSpec::Path(not_a_library.clone())]).expect_err("not a library");
    assert!(e.problems[0].reason.contains("cannot load the UDF library"), "{e}");
    let bad_name = UdfSpec::Table { path: not_a_library, name: Some("not-an-ident".into()), args: None };
    let e = Udfs::load(&[bad_name]).expect_err("bad name");
    assert!(e.problems[0].reason.contains("not a CEL identifier"), "{e}");
}

#[test]
fn config_parses_both_udf_forms() {
    let config: PolicyConfig = toml::from_str(
        "policies = \"examples/policies\"\nudfs = [\"udfs/libshadow_ai.so\", { path = \"udfs/libver.so\", name = \"version_lt\", args = [\"string\", \"string\"] }]\n",
    )
    .expect("parses");
    assert_eq!(config.reload_interval_ms, 2000);
    assert_eq!(config.udfs[0], UdfSpec::Path("udfs/libshadow_ai.so".into()));
    assert_eq!(
        config.udfs[1],
        UdfSpec::Table {
            path: "udfs/libver.so".into(),
            name: Some("version_lt".into()),
            args: Some(vec![ArgType::String, ArgType::String])
        }
    );
    assert!(toml::from_str::<PolicyConfig>("policies = \"p\"\nreload = 1\n").is_err(), "unknown keys are errors");
}

#[test]
fn side_outputs_are_declared() {
    let dir = policy_dir(&[("rules.toml", RULES)]);
    let policy = Policy::new(config(dir.path())).expect("loads");
    assert_eq!(policy.side_outputs(), vec!["violations".to_string()]);
}

#[test]
fn bench_runs_and_decides_every_event() {
    let report = super::bench::run(200, 50, false);
    assert_eq!(report["events"], 200, "{report}");
    assert_eq!(report["decisions"], 200, "{report}");
    assert_eq!(report["rejected"], 0, "{report}");
    assert!(report["events_per_sec"].as_f64().is_some_and(|r| r > 0.0), "{report}");
}

#[test]
#[ignore = "benchmark: cargo test -p weir-operators --release bench_policy -- --ignored --nocapture"]
fn bench_policy() {
    let report = super::bench::run(200_000, 50, false);
    println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
}

#[test]
fn the_lazy_event_view_supports_what_rules_use() {
    let enriched = enriched_from_test(&json!({
        "class_uid": 6003,
        "event": {
            "api": {"operation": "PutBucketAcl"},
            "cloud": {"provider": "aws"},
            "resources": [{"uid": "arn:a", "tags": {"env": "prod"}}, {"uid": "arn:b", "tags": {}}],
            "unmapped": {"x": "1", "y": "2"},
        },
    }))
    .expect("valid");
    let set = load_sources(&[(PathBuf::from("x.toml"), String::new())], &Udfs::none()).expect("loads");
    let activation = super::eval::Activation::new(&enriched);
    let scope = activation.scope(set.root());
    let env = cel::Env::stdlib();
    let eval = |expr: &str| {
        let program = env.compile(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        super::eval::condition_holds(&program, &scope)
    };
    for expr in [
        "event.api.operation == 'PutBucketAcl'",
        "event['api']['operation'] == 'PutBucketAcl'",
        "has(event.api.service) && event.api.service == null",
        "!has(event.nope)",
        "'x' in event.unmapped && !('z' in event.unmapped)",
        "size(event.unmapped) == 2 && event.unmapped.size() == 2",
        "event.unmapped.exists(k, k == 'y') && event.unmapped.all(k, k in ['x', 'y'])",
        "event.resources.size() == 2 && event.resources[1].uid == 'arn:b'",
        "event.resources.exists(r, 'env' in r.tags && r.tags.env == 'prod')",
        "event.resources.map(r, r.uid) == ['arn:a', 'arn:b']",
        "event.error_code == null && event.src_endpoint == null && event.api != null && null != event.api",
        "event.class_uid == 6003 && class_uid == 6003 && event.time == 0",
        "type(event.api) == map && type(event.resources) == list",
    ] {
        assert_eq!(eval(expr), Ok(true), "{expr}");
    }
    assert!(eval("event.nope == 1").is_err(), "a missing field is an error, as in a map");
    assert!(eval("event.src_endpoint.ip == 'x'").is_err(), "selecting on null is an error");
}

#[test]
fn rules_can_opt_out_of_auto_resolution() {
    let text = RULES.replace("severity = \"high\"", "severity = \"high\"\nauto_resolve = false");
    let dir = policy_dir(&[("rules.toml", &text)]);
    let mut policy = Policy::new(config(dir.path())).expect("loads");
    let mut state = MemoryState::default();
    let opened =
        side_violations(&run(&mut policy, &mut state, &input(app_event("e1", "u1", "ACTIVE", "ChatGPT", 1), 0)));
    assert_eq!(opened[0].status, ViolationStatus::Open);
    let out = run(&mut policy, &mut state, &input(app_event("e2", "u1", "ACTIVE", "Box", 2), 1));
    assert!(side_violations(&out).is_empty(), "a harmless event does not resolve it");
    assert!(state.get(OPEN_TABLE, opened[0].violation_key.as_bytes()).expect("get").is_some());
    let again =
        side_violations(&run(&mut policy, &mut state, &input(app_event("e3", "u1", "ACTIVE", "ChatGPT", 3), 2)));
    assert_eq!((again[0].status, again[0].first_seen), (ViolationStatus::Updated, 1));
}

#[test]
fn context_maps_iterate_in_key_order() {
    let enriched = enriched_from_test(&json!({
        "class_uid": 6003,
        "event": {"api": {"operation": "x"}, "cloud": {"provider": "aws"}},
        "asset": {"uid": "arn:x", "tags": {"c": "3", "a": "1", "b": "2"}},
        "user": {"uid": "u1", "groups": ["g2", "g1"]},
    }))
    .expect("valid");
    let set = load_sources(&[(PathBuf::from("x.toml"), String::new())], &Udfs::none()).expect("loads");
    let activation = super::eval::Activation::new(&enriched);
    let scope = activation.scope(set.root());
    let env = cel::Env::stdlib();
    for expr in [
        "asset.tags.map(k, k) == ['a', 'b', 'c']",
        "user.groups == ['g2', 'g1'] && user.status == null && user.uid == 'u1'",
        "device == null && missing == []",
        "asset.public == null && asset.tags.b == '2'",
    ] {
        let program = env.compile(expr).expect("compiles");
        assert_eq!(super::eval::condition_holds(&program, &scope), Ok(true), "{expr}");
    }
}

/// The fixture UDF library: `WEIR_UDF_FIXTURE` when set, else built from
/// `operators/tests/udf_fixture` with `arroyo-udf-plugin`, as for Arroyo.
fn fixture_library() -> PathBuf {
    if let Ok(path) = std::env::var("WEIR_UDF_FIXTURE") {
        return path.into();
    }
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = crate_dir.join("../target/udf_fixture");
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--release", "--manifest-path"])
        .arg(crate_dir.join("tests/udf_fixture/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the UDF fixture builds");
    let name = format!("{}approved_ai{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    target.join("release").join(name)
}

#[test]
#[ignore = "builds arrow 51 from crates.io (~3 min; CI runs it): cargo test -p weir-operators a_real_arroyo_udf -- --ignored"]
fn a_real_arroyo_udf_library() {
    let library = fixture_library();
    let spec = UdfSpec::Table {
        path: library.clone(),
        name: Some("ai_approval".into()),
        args: Some(vec![ArgType::String, ArgType::String]),
    };
    let udfs = Udfs::load(&[spec]).expect("the cdylib loads");
    let text = "[[rules]]\nid = \"shadow-ai\"\ndescription = \"d\"\nowner = \"o\"\nclasses = [6001]\ncondition = 'ai_approval(event.app.name, user.department) != \"approved\"'\nsubject = 'ai_approval(event.app.name, user.department)'\ndecision = \"review\"\nseverity = \"medium\"\n";
    let dir = policy_dir(&[("udf.toml", text)]);
    let mut policy = Policy::with_udfs(config(dir.path()), udfs).expect("loads");
    let event = |app: &str, department: JsonValue| json!({"class_uid": 6001, "event_uid": app, "event": {"app": {"name": app}}, "user": {"uid": "u1", "department": department}});
    let mut state = MemoryState::default();
    let out = run(&mut policy, &mut state, &input(event("Claude", json!("Marketing")), 0));
    assert_eq!(decision_of(&out).matched_rules, vec!["shadow-ai"]);
    assert_eq!(side_violations(&out)[0].subject, "unapproved:Claude", "the UDF's string result");
    let out = run(&mut policy, &mut state, &input(event("Cursor", json!("Engineering")), 1));
    assert!(decision_of(&out).matched_rules.is_empty());
    // A null argument: the UDF's non-nullable parameter makes the result null.
    let out = run(&mut policy, &mut state, &input(event("Cursor", JsonValue::Null), 2));
    assert_eq!(decision_of(&out).matched_rules, vec!["shadow-ai"], "null != \"approved\"");
    assert_eq!(policy.stats().rule_errors, 0);
    for i in 0..10_000 {
        // Many calls: no leak or double free across the boundary shows up as a crash here.
        let d = decision_of(&run(&mut policy, &mut state, &input(event("Gemini", json!("Sales")), 3 + i)));
        assert_eq!(d.matched_rules.len(), 1);
    }
}

#[test]
fn yaml_policy_files_load_with_their_tests_and_report_lines() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let yaml = r#"rules:
  - id: yaml.suspended-sign-in
    description: Suspended user signs in
    owner: secops@example.com
    classes: [3002]
    condition: |
      user != null
        && user.status == "SUSPENDED"
    decision: deny
    severity: high
    labels: { team: identity }
    tests:
      - name: suspended
        expect: true
        event: { class_uid: 3002, user: { uid: u1, status: SUSPENDED } }
      - expect: false
        event: '{"class_uid": 3002, "user": {"uid": "u1", "status": "ACTIVE"}}'
"#;
    std::fs::write(dir.path().join("identity.yaml"), yaml).expect("write");
    let set = load_dir(dir.path(), &Udfs::none()).expect("the YAML file loads");
    let rule = set.rule("yaml.suspended-sign-in").expect("the rule is loaded");
    assert_eq!((rule.line, rule.tests.len(), rule.tests[0].line, rule.tests[1].line), (2, 2, 13, 16));
    assert!(testing::run_tests(&set).ok(), "its inline tests pass");

    // A bad value names its line; a CEL error the line inside the block scalar.
    let bad = yaml.replace("decision: deny", "decision: block").replace("&& user.status", "&& user.status ==");
    std::fs::write(dir.path().join("identity.yaml"), bad).expect("write");
    let problems = load_dir(dir.path(), &Udfs::none()).expect_err("bad values are errors").problems;
    let lines: Vec<Option<usize>> = problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![Some(9), Some(8)], "{problems:?}");
    assert!(problems[0].reason.contains("unknown decision \"block\""), "{problems:?}");

    // Syntax errors and unknown keys name the line too.
    std::fs::write(dir.path().join("identity.yaml"), "rules:\n  - id: x\n    colour: red\n").expect("write");
    let problems = load_dir(dir.path(), &Udfs::none()).expect_err("unknown keys are errors").problems;
    assert_eq!(problems[0].line, Some(3), "{problems:?}");
    assert!(problems[0].reason.contains("unknown field `colour`"), "{problems:?}");
    std::fs::write(dir.path().join("identity.yaml"), "rules:\n  - id: [x\n").expect("write");
    let problems = load_dir(dir.path(), &Udfs::none()).expect_err("bad YAML is an error").problems;
    assert!(problems[0].line.is_some() && problems[0].file.ends_with("identity.yaml"), "{problems:?}");
}
