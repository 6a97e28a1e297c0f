//! Tests of the aggregate operator: configuration, each window kind, watermarks and lateness,
//! thresholds, the digest preset, bad input, and restarts at every point of a run (outputs
//! identical to an uninterrupted run, byte for byte).

use std::collections::BTreeMap;

use weir_schemas::component::{MemoryState, Operator, Output, State};
use weir_schemas::events::{Decision, PolicyDecision, Violation, ViolationStatus, WindowAggregate, WindowKind};
use weir_schemas::record::{Record, StoredRecord};

use super::{violation_key, Aggregate, AggregateConfig, AggregateConfigError, ALERTS_OUTPUT, ID_HEADER, LATE_OUTPUT};

const MIN: i64 = 60_000;

/// A PolicyDecision for `user` at `time`, with optional service and violation subjects.
fn decision(uid: &str, time: i64, verdict: Decision, user: &str, service: Option<&str>, violators: &[&str]) -> Record {
    let mut labels = BTreeMap::from([("user".to_string(), user.to_string())]);
    if let Some(service) = service {
        labels.insert("service".to_string(), service.to_string());
    }
    let violations = violators
        .iter()
        .map(|subject| Violation {
            violation_key: format!("k-{subject}"),
            rule_id: "r".into(),
            rule_description: "d".into(),
            severity_id: 3,
            status: ViolationStatus::Open,
            first_seen: time,
            last_seen: time,
            subject: subject.to_string(),
            event_uid: uid.to_string(),
            labels: BTreeMap::new(),
            summary: "s".into(),
        })
        .collect();
    let value = PolicyDecision {
        decision_uid: format!("d-{uid}"),
        event_uid: uid.to_string(),
        time,
        decision: verdict,
        policy_set_version: "v1".into(),
        matched_rules: Vec::new(),
        severity_id: 0,
        labels,
        violations,
    };
    Record::new(time, weir_schemas::encode(&value).expect("a PolicyDecision encodes"))
}

/// A denial by `user` at `time`.
fn deny(user: &str, time: i64) -> Record {
    decision(&format!("{user}@{time}"), time, Decision::Deny, user, None, &[])
}

fn config(toml_text: &str) -> AggregateConfig {
    toml::from_str(toml_text).expect("the test config parses")
}

fn operator(toml_text: &str) -> Aggregate {
    Aggregate::new("agg", &config(toml_text)).expect("the test config is valid")
}

/// An operator with its state, fed one record at a time.
struct Run {
    op: Aggregate,
    state: MemoryState,
    offset: u64,
}

impl Run {
    fn new(toml_text: &str) -> Run {
        Run { op: operator(toml_text), state: MemoryState::default(), offset: 0 }
    }

    fn push(&mut self, record: Record) -> Output {
        let input = StoredRecord { topic: "decisions".into(), partition: 0, offset: self.offset, record };
        self.offset += 1;
        let mut out = Output::default();
        self.op.process(&input, &mut self.state, &mut out).expect("bad input is rejected, not an error");
        out
    }

    /// Pushes every record and returns the decoded aggregates emitted.
    fn push_all(&mut self, records: impl IntoIterator<Item = Record>) -> Vec<WindowAggregate> {
        records.into_iter().flat_map(|r| aggregates(&self.push(r))).collect()
    }
}

fn aggregates(out: &Output) -> Vec<WindowAggregate> {
    out.records.iter().map(|r| weir_schemas::decode(&r.value).expect("aggregates decode")).collect()
}

fn alerts(out: &Output) -> Vec<Violation> {
    out.side
        .iter()
        .filter(|(side, _)| side == ALERTS_OUTPUT)
        .map(|(_, r)| weir_schemas::decode(&r.value).expect("alerts decode"))
        .collect()
}

/// (window start, window end, key, metric, count) of each aggregate.
fn summary(aggregates: &[WindowAggregate]) -> Vec<(i64, i64, String, String, i64)> {
    aggregates.iter().map(|a| (a.window_start, a.window_end, a.key.clone(), a.metric.clone(), a.count)).collect()
}

const COUNT_PER_USER: &str = r#"
window = { kind = "tumbling", size_ms = 60000 }
key = "labels.user"
metrics = [{ kind = "count" }]
"#;

#[test]
fn the_documented_config_shapes_parse() {
    let full = config(
        r#"
window = { kind = "hopping", size_ms = 900000, slide_ms = 60000 }
key = "labels.user"
filter = { decision = "DENY" }
metrics = [
  { kind = "count" },
  { kind = "sum", field = "severity_id" },
  { kind = "distinct_count", field = "violations[].subject" },
  { kind = "top_k", field = "labels.service", k = 5, name = "top.services" },
  { kind = "count", name = "reviews", filter = { decision = ["REVIEW", "DENY"] } },
]
out_of_orderness_ms = 5000
allowed_lateness_ms = 60000
missing_key = "reject"
time_field = "time"
threshold = { metric = "count", above = 5, rule_id = "too-many-denials", severity = "high" }
"#,
    );
    let op = Aggregate::new("denials", &full).expect("valid");
    assert_eq!(op.side_outputs(), vec![LATE_OUTPUT.to_string(), ALERTS_OUTPUT.to_string()]);
    let digest = config("preset = \"daily_digest\"\nservices_field = \"labels.app\"\ntop_k = 3\n");
    assert_eq!(Aggregate::new("digest", &digest).expect("valid").side_outputs(), vec![LATE_OUTPUT.to_string()]);
    let session = config("window = { kind = \"session\", gap_ms = 1000 }\nmetrics = [{ kind = \"count\" }]\n");
    Aggregate::new("s", &session).expect("valid");
}

#[test]
fn bad_configs_say_what_is_wrong() {
    let error = |text: &str| Aggregate::new("a", &config(text)).err().expect("invalid");
    assert_eq!(error("metrics = [{ kind = \"count\" }]"), AggregateConfigError::MissingWindow);
    assert_eq!(error("window = { kind = \"tumbling\", size_ms = 10 }"), AggregateConfigError::MissingMetrics);
    assert_eq!(
        error("window = { kind = \"tumbling\", size_ms = 10 }\nmetrics = [{ kind = \"count\" }, { kind = \"count\" }]"),
        AggregateConfigError::DuplicateMetric("count".into())
    );
    assert!(matches!(
        error("window = { kind = \"tumbling\", size_ms = 10 }\nkey = \"violations[].subject\"\nmetrics = [{ kind = \"count\" }]"),
        AggregateConfigError::BadPath { .. }
    ));
    assert!(matches!(
        error("window = { kind = \"hopping\", size_ms = 10, slide_ms = 20 }\nmetrics = [{ kind = \"count\" }]"),
        AggregateConfigError::BadWindow(_)
    ));
    assert!(matches!(
        error("window = { kind = \"tumbling\", size_ms = 0 }\nmetrics = [{ kind = \"count\" }]"),
        AggregateConfigError::BadWindow(_)
    ));
    assert_eq!(
        error(
            "window = { kind = \"tumbling\", size_ms = 10 }\nmetrics = [{ kind = \"top_k\", field = \"a\", k = 3 }]\n\
             threshold = { metric = \"top_k\", above = 1, rule_id = \"r\" }"
        ),
        AggregateConfigError::ThresholdMetric("top_k".into())
    );
    assert_eq!(
        error(
            "window = { kind = \"tumbling\", size_ms = 10 }\nmetrics = [{ kind = \"count\" }]\n\
             threshold = { metric = \"count\", above = 1, rule_id = \"r\", severity = \"dire\" }"
        ),
        AggregateConfigError::UnknownSeverity("dire".into())
    );
    assert_eq!(
        error("preset = \"daily_digest\"\nmetrics = [{ kind = \"count\" }]"),
        AggregateConfigError::PresetWithMetrics
    );
    assert_eq!(
        error("window = { kind = \"tumbling\", size_ms = 10 }\nmetrics = [{ kind = \"count\" }]\ntop_k = 3"),
        AggregateConfigError::PresetOnly("top_k")
    );
    // Unknown keys are refused by serde, at any level.
    assert!(toml::from_str::<AggregateConfig>("windw = 1").is_err());
    assert!(toml::from_str::<AggregateConfig>("window = { kind = \"tumbling\", size_ms = 1, gap_ms = 2 }").is_err());
    assert!(toml::from_str::<AggregateConfig>("metrics = [{ kind = \"count\", field = \"x\" }]").is_err());
}

#[test]
fn tumbling_windows_fire_when_the_watermark_passes_their_end() {
    let mut run = Run::new(COUNT_PER_USER);
    let mut emitted = run.push_all([deny("bob", 1_000), deny("alice", 2_000), deny("bob", 59_999)]);
    assert!(emitted.is_empty(), "nothing fires before the watermark reaches the window end");
    let out = run.push(deny("alice", MIN));
    assert_eq!(out.records.len(), 2);
    // Ordered by key; keyed by the group key; timestamped at the window's last millisecond.
    assert_eq!(out.records[0].key.as_deref(), Some(&b"alice"[..]));
    assert_eq!(out.records[0].timestamp_ms, MIN - 1);
    assert_eq!(out.records[0].header(ID_HEADER), Some(&b"agg/0/60000/count/1/alice"[..]));
    emitted.extend(aggregates(&out));
    assert_eq!(
        summary(&emitted),
        vec![(0, MIN, "alice".into(), "count".into(), 1), (0, MIN, "bob".into(), "count".into(), 2)]
    );
    let first = &emitted[0];
    assert_eq!(first.operator, "agg");
    assert_eq!(first.window_kind, WindowKind::Tumbling);
    assert_eq!(first.value, None);
    assert_eq!(first.late_events, 0);
    assert_eq!(first.emitted_at, MIN, "emitted_at is the watermark, not the wall clock");
    assert_eq!(run.op.open_windows(), 1, "fired windows without lateness are purged at once");
    let stats = run.op.stats();
    assert_eq!((stats.events, stats.aggregated, stats.fired, stats.late), (4, 4, 2, 0));
}

#[test]
fn events_within_the_out_of_orderness_count_in_their_window() {
    let mut run = Run::new(&format!("{COUNT_PER_USER}out_of_orderness_ms = 5000\n"));
    let emitted = run.push_all([deny("a", 59_000), deny("a", 61_000), deny("a", 58_000), deny("a", 64_999)]);
    assert!(emitted.is_empty(), "the watermark is 59,999: window [0, 60000) is still open");
    let emitted = run.push_all([deny("a", 65_000)]);
    assert_eq!(summary(&emitted), vec![(0, MIN, "a".into(), "count".into(), 2)]);
    assert_eq!(emitted[0].emitted_at, MIN);
    assert_eq!(run.op.stats().late, 0);
}

#[test]
fn hopping_windows_count_an_event_in_each_window_holding_it() {
    let mut run = Run::new(
        "window = { kind = \"hopping\", size_ms = 10000, slide_ms = 5000 }\nkey = \"labels.user\"\nmetrics = [{ kind = \"count\" }]\n",
    );
    let emitted = run.push_all([deny("a", 7_000), deny("a", 12_000), deny("a", 30_000)]);
    assert_eq!(
        summary(&emitted),
        vec![
            (0, 10_000, "a".into(), "count".into(), 1),
            (5_000, 15_000, "a".into(), "count".into(), 2),
            (10_000, 20_000, "a".into(), "count".into(), 1),
        ]
    );
    assert!(emitted.iter().all(|a| a.window_kind == WindowKind::Hopping));
}

#[test]
fn session_windows_grow_and_merge_per_key() {
    let mut run = Run::new(
        "window = { kind = \"session\", gap_ms = 10000 }\nkey = \"labels.user\"\nmetrics = [{ kind = \"count\" }]\n\
         out_of_orderness_ms = 100000\n",
    );
    // a: [0, 10000) and [15000, 25000), then 8000 bridges them: [0, 25000). b: its own session.
    // a at 35000 touches nothing ([35000, 45000)); at 45000 it touches that session's end and joins it.
    let emitted = run.push_all([
        deny("a", 0),
        deny("a", 15_000),
        deny("b", 5_000),
        deny("a", 8_000),
        deny("a", 35_000),
        deny("a", 45_000),
    ]);
    assert!(emitted.is_empty());
    let emitted = run.push_all([deny("z", 200_000)]);
    assert_eq!(
        summary(&emitted),
        vec![
            (5_000, 15_000, "b".into(), "count".into(), 1),
            (0, 25_000, "a".into(), "count".into(), 3),
            (35_000, 55_000, "a".into(), "count".into(), 2),
        ]
    );
    assert!(emitted.iter().all(|a| a.window_kind == WindowKind::Session));
}

#[test]
fn late_events_within_the_allowed_lateness_fire_the_window_again() {
    let mut run = Run::new(&format!("{COUNT_PER_USER}allowed_lateness_ms = 10000\n"));
    let emitted = run.push_all([deny("a", 10_000), deny("a", 61_000)]);
    assert_eq!(summary(&emitted), vec![(0, MIN, "a".into(), "count".into(), 1)]);
    // Late but within the lateness: the window fires again at once, with the update.
    let out = run.push(deny("a", 20_000));
    assert_eq!(summary(&aggregates(&out)), vec![(0, MIN, "a".into(), "count".into(), 2)]);
    assert_eq!(out.records[0].header(ID_HEADER), Some(&b"agg/0/60000/count/2/a"[..]), "a new firing, a new id");
    assert_eq!(aggregates(&out)[0].emitted_at, 61_000);
    assert!(out.side.is_empty());
    // The watermark passes end + lateness: the window is gone; an event for it now is late.
    assert!(run.push_all([deny("a", 75_000)]).is_empty());
    let late = deny("a", 30_000);
    let out = run.push(late.clone());
    assert!(out.records.is_empty());
    assert_eq!(out.side, vec![(LATE_OUTPUT.to_string(), late)], "the late event goes out unchanged");
    assert_eq!(run.op.stats().late, 1);
    // The key's next result reports it, once.
    let emitted = run.push_all([deny("a", 125_000)]);
    assert_eq!(summary(&emitted), vec![(MIN, 2 * MIN, "a".into(), "count".into(), 2)]);
    assert_eq!(emitted[0].late_events, 1);
    let emitted = run.push_all([deny("a", 190_000)]);
    assert_eq!(emitted[0].late_events, 0);
}

#[test]
fn a_late_event_opens_a_missing_window_that_is_still_within_its_lateness() {
    let mut run = Run::new(&format!("{COUNT_PER_USER}allowed_lateness_ms = 30000\n"));
    run.push_all([deny("a", 61_000)]);
    let emitted = run.push_all([deny("b", 50_000)]);
    assert_eq!(summary(&emitted), vec![(0, MIN, "b".into(), "count".into(), 1)]);
    assert_eq!(emitted[0].emitted_at, 61_000);
}

const DENIALS: &str = r#"
window = { kind = "tumbling", size_ms = 900000 }
key = "labels.user"
filter = { decision = "DENY" }
metrics = [{ kind = "count" }]
allowed_lateness_ms = 600000
threshold = { metric = "count", above = 5, rule_id = "too-many-denials", severity = "high" }
"#;

#[test]
fn a_threshold_alerts_once_per_window_with_a_stable_key() {
    let mut run = Run::new(DENIALS);
    let mut records = Vec::new();
    for i in 0..6 {
        records.push(deny("alice", i * 1000));
    }
    for i in 0..5 {
        records.push(deny("bob", i * 1000));
    }
    records.push(decision("allowed", 500, Decision::Allow, "bob", None, &[]));
    let mut outs: Vec<Output> = records.into_iter().map(|r| run.push(r)).collect();
    outs.push(run.push(deny("carol", 900_000)));
    let all_alerts: Vec<Violation> = outs.iter().flat_map(alerts).collect();
    assert_eq!(all_alerts.len(), 1, "only alice is above 5 denials");
    let alert = &all_alerts[0];
    assert_eq!(alert.subject, "alice");
    assert_eq!(alert.rule_id, "too-many-denials");
    assert_eq!(alert.severity_id, 4);
    assert_eq!(alert.status, ViolationStatus::Open);
    assert_eq!((alert.first_seen, alert.last_seen), (0, 5_000));
    assert_eq!(alert.event_uid, "alice@5000");
    assert_eq!(alert.violation_key, violation_key("agg", "too-many-denials", "alice", 0));
    let counts = summary(&aggregates(outs.last().expect("pushed")));
    assert_eq!(
        counts,
        vec![(0, 900_000, "alice".into(), "count".into(), 6), (0, 900_000, "bob".into(), "count".into(), 5)]
    );
    // A late denial re-fires both windows; alice already alerted, bob now crosses the threshold.
    let out = run.push(deny("alice", 10_000));
    assert!(alerts(&out).is_empty(), "alice's window alerted already");
    let out = run.push(deny("bob", 10_000));
    let bob = alerts(&out);
    assert_eq!(bob.len(), 1);
    assert_eq!(bob[0].violation_key, violation_key("agg", "too-many-denials", "bob", 0));
    assert_eq!(run.op.stats().alerts, 2);
    // The same input gives the same key in another run.
    let mut again = Run::new(DENIALS);
    let replayed: Vec<Violation> = (0..6)
        .map(|i| deny("alice", i * 1000))
        .chain([deny("carol", 900_000)])
        .flat_map(|r| alerts(&again.push(r)))
        .collect();
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].violation_key, alert.violation_key);
}

#[test]
fn the_daily_digest_counts_verdicts_and_ranks_services_and_violators() {
    let mut run = Run::new("preset = \"daily_digest\"\ntop_k = 2\n");
    let day = 86_400_000;
    let emitted = run.push_all([
        decision("1", 1_000, Decision::Allow, "u1", Some("github"), &[]),
        decision("2", 2_000, Decision::Deny, "u2", Some("github"), &["mallory", "eve"]),
        decision("3", 3_000, Decision::Deny, "u3", Some("slack"), &["mallory"]),
        decision("4", 4_000, Decision::Review, "u4", Some("s3"), &["eve", "mallory"]),
        decision("5", 5_000, Decision::Allow, "u5", None, &[]),
        decision("6", day + 1, Decision::Allow, "u6", Some("github"), &[]),
    ]);
    let by_metric: BTreeMap<&str, &WindowAggregate> = emitted.iter().map(|a| (a.metric.as_str(), a)).collect();
    let names: Vec<&str> = emitted.iter().map(|a| a.metric.as_str()).collect();
    assert_eq!(
        names,
        vec!["total", "decisions.ALLOW", "decisions.DENY", "decisions.REVIEW", "top.services", "top.violators"]
    );
    assert!(emitted.iter().all(|a| (a.window_start, a.window_end, a.key.as_str()) == (0, day, "")));
    assert_eq!(by_metric["total"].count, 5);
    assert_eq!(by_metric["decisions.ALLOW"].count, 2);
    assert_eq!(by_metric["decisions.DENY"].count, 2);
    assert_eq!(by_metric["decisions.REVIEW"].count, 1);
    let top = |metric: &str| -> Vec<(String, i64)> {
        by_metric[metric].top.iter().map(|t| (t.item.clone(), t.count)).collect()
    };
    assert_eq!(top("top.services"), vec![("github".into(), 2), ("s3".into(), 1)], "ties broken by name");
    assert_eq!(top("top.violators"), vec![("mallory".into(), 3), ("eve".into(), 2)]);
}

#[test]
fn sum_distinct_count_and_top_k() {
    let mut run = Run::new(
        r#"
window = { kind = "tumbling", size_ms = 60000 }
metrics = [
  { kind = "sum", field = "severity_id", name = "severity" },
  { kind = "distinct_count", field = "labels.user", name = "users" },
  { kind = "top_k", field = "labels.user", k = 2, name = "top.users", filter = { decision = "DENY" } },
]
"#,
    );
    let mut with_severity = |uid: &str, time: i64, verdict: Decision, user: &str, severity: i32| {
        let mut value: PolicyDecision =
            weir_schemas::decode(&decision(uid, time, verdict, user, None, &[]).value).expect("decodes");
        value.severity_id = severity;
        run.push(Record::new(time, weir_schemas::encode(&value).expect("encodes")))
    };
    with_severity("1", 1, Decision::Deny, "a", 3);
    with_severity("2", 2, Decision::Deny, "b", 4);
    with_severity("3", 3, Decision::Allow, "c", 1);
    with_severity("4", 4, Decision::Deny, "b", 0);
    let out = with_severity("5", MIN, Decision::Allow, "z", 0);
    let emitted = aggregates(&out);
    assert_eq!(emitted.len(), 3);
    assert_eq!((emitted[0].metric.as_str(), emitted[0].value, emitted[0].count), ("severity", Some(8.0), 4));
    assert_eq!((emitted[1].metric.as_str(), emitted[1].value), ("users", Some(3.0)));
    assert_eq!(out.records[0].key, None, "a global aggregate is unkeyed");
    let top: Vec<(String, i64)> = emitted[2].top.iter().map(|t| (t.item.clone(), t.count)).collect();
    assert_eq!(top, vec![("b".into(), 2), ("a".into(), 1)]);
    assert_eq!(emitted[2].count, 3, "count is the events the metric covered (its filter's)");
    assert_eq!(emitted[2].value, None);
}

#[test]
fn bad_input_is_rejected_without_changing_the_windows() {
    let mut run = Run::new(
        r#"
window = { kind = "tumbling", size_ms = 60000 }
key = "labels.user"
metrics = [{ kind = "sum", field = "labels.user" }]
"#,
    );
    let before = run.state.clone();
    let out = run.push(Record::new(5, b"\xc3\x01garbage".to_vec()));
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].original, b"\xc3\x01garbage");
    let out = run.push(Record::new(5, b"not json".to_vec()));
    assert_eq!(out.rejected.len(), 1);
    let out = run.push(deny("alice", 5));
    assert_eq!(out.rejected.len(), 1, "a string is not a number to sum");
    assert!(out.rejected[0].reason.contains("not a number"), "{}", out.rejected[0].reason);
    assert_eq!(run.op.open_windows(), 0);
    let panes = |s: &MemoryState| s.tables.keys().filter(|(t, _)| t == "pane").count();
    assert_eq!(panes(&run.state), panes(&before));
    assert_eq!(run.op.stats().rejected, 3);
    // JSON objects work too, and a time_field may be RFC 3339.
    let mut json = Run::new(
        "window = { kind = \"tumbling\", size_ms = 60000 }\nkey = \"user\"\ntime_field = \"at\"\nmetrics = [{ kind = \"count\" }]\n",
    );
    json.push(Record::new(0, br#"{"user": "a", "at": "1970-01-01T00:00:01Z"}"#.to_vec()));
    let out = json.push(Record::new(0, br#"{"user": "b", "at": 60000}"#.to_vec()));
    assert_eq!(summary(&aggregates(&out)), vec![(0, MIN, "a".into(), "count".into(), 1)]);
    let out = json.push(Record::new(0, br#"{"user": "b", "at": true}"#.to_vec()));
    assert!(out.rejected[0].reason.contains("time_field `at` is a boolean"), "{}", out.rejected[0].reason);
    let out = json.push(Record::new(0, br#"{"user": {"x": 1}, "at": 1}"#.to_vec()));
    assert!(out.rejected[0].reason.contains("not a scalar"), "{}", out.rejected[0].reason);
    let out = json.push(Record::new(i64::MAX, br#"{"user": "a"}"#.to_vec()));
    assert_eq!(out.rejected.len(), 1, "time_field missing");
}

#[test]
fn events_without_a_key_are_skipped_rejected_or_grouped_per_config() {
    let event = || Record::new(1, br#"{"other": 1}"#.to_vec());
    let mut skip = Run::new(COUNT_PER_USER);
    assert!(skip.push(event()).rejected.is_empty());
    assert_eq!(skip.op.stats().missing_key, 1);
    assert_eq!(skip.op.open_windows(), 0);
    let mut reject = Run::new(&format!("{COUNT_PER_USER}missing_key = \"reject\"\n"));
    assert_eq!(reject.push(event()).rejected.len(), 1);
    let mut empty = Run::new(&format!("{COUNT_PER_USER}missing_key = \"empty\"\n"));
    empty.push(event());
    let emitted = empty.push_all([Record::new(MIN, br#"{"labels": {"user": "x"}}"#.to_vec())]);
    assert_eq!(summary(&emitted), vec![(0, MIN, "".into(), "count".into(), 1)]);
}

#[test]
fn windows_are_purged_so_state_stays_bounded() {
    let mut run = Run::new(&format!("{COUNT_PER_USER}allowed_lateness_ms = 60000\n"));
    for i in 0..2_000 {
        run.push(deny(&format!("user-{}", i % 50), i * 1_000));
    }
    // Windows still open or within their lateness: the current minute and the one before.
    assert!(run.op.open_windows() <= 100, "{} windows held", run.op.open_windows());
    let panes = run.state.tables.keys().filter(|(t, _)| t == "pane").count();
    assert_eq!(panes, run.op.open_windows(), "state holds exactly the windows memory does");
}

#[test]
fn a_state_built_with_another_shape_is_refused() {
    let mut run = Run::new(COUNT_PER_USER);
    run.push(deny("a", 1));
    let mut other = operator(
        "window = { kind = \"tumbling\", size_ms = 1000 }\nkey = \"labels.user\"\nmetrics = [{ kind = \"count\" }]\n",
    );
    let error = other.restore(&run.state).expect_err("another window size");
    assert!(error.message.contains("another window, key or metrics"), "{}", error.message);
    // A threshold or lateness change keeps the state.
    operator(&format!("{COUNT_PER_USER}allowed_lateness_ms = 5\n")).restore(&run.state).expect("compatible");
}

/// Everything an output holds, as comparable bytes.
type Emitted = Vec<(String, Option<Vec<u8>>, i64, Vec<(String, Vec<u8>)>, Vec<u8>)>;

fn emitted(out: &Output) -> Emitted {
    let flat =
        |side: &str, r: &Record| (side.to_string(), r.key.clone(), r.timestamp_ms, r.headers.clone(), r.value.clone());
    let mut all: Emitted = out.records.iter().map(|r| flat("", r)).collect();
    all.extend(out.side.iter().map(|(side, r)| flat(side, r)));
    all.extend(out.rejected.iter().map(|r| ("dlq".to_string(), None, 0, Vec::new(), r.original.clone())));
    all
}

/// A pseudo-random but fixed stream: several users, verdicts, services and violators, event
/// times mostly increasing with jitter, some far behind (late) — exercises every path.
fn stream(n: usize) -> Vec<Record> {
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        seed >> 33
    };
    let mut time = 0i64;
    (0..n)
        .map(|i| {
            time += (next() % 20_000) as i64;
            let jitter = match next() % 10 {
                0 => 200_000,
                1 | 2 => 30_000,
                _ => 0,
            };
            let at = (time - jitter).max(0);
            let user = format!("u{}", next() % 5);
            let verdict = [Decision::Allow, Decision::Deny, Decision::Deny, Decision::Review][(next() % 4) as usize];
            let service = ["github", "slack", "s3"][(next() % 3) as usize];
            let violators: &[&str] = match next() % 3 {
                0 => &["mallory"],
                1 => &["eve", "mallory"],
                _ => &[],
            };
            if next() % 40 == 0 {
                return Record::new(at, b"junk".to_vec());
            }
            decision(&format!("e{i}"), at, verdict, &user, Some(service), violators)
        })
        .collect()
}

const RESTART_CONFIGS: &[&str] = &[
    r#"
window = { kind = "tumbling", size_ms = 60000 }
key = "labels.user"
filter = { decision = ["DENY", "REVIEW"] }
metrics = [
  { kind = "count" },
  { kind = "top_k", field = "labels.service", k = 2 },
  { kind = "distinct_count", field = "violations[].subject" },
  { kind = "sum", field = "severity_id" },
]
out_of_orderness_ms = 10000
allowed_lateness_ms = 40000
threshold = { metric = "count", above = 1, rule_id = "busy" }
"#,
    r#"
window = { kind = "session", gap_ms = 25000 }
key = "labels.user"
metrics = [{ kind = "count" }, { kind = "top_k", field = "violations[].subject", k = 3 }]
out_of_orderness_ms = 5000
allowed_lateness_ms = 30000
threshold = { metric = "count", above = 2, rule_id = "long-session" }
"#,
    r#"
window = { kind = "hopping", size_ms = 90000, slide_ms = 30000 }
metrics = [{ kind = "count" }, { kind = "distinct_count", field = "labels.user" }]
allowed_lateness_ms = 20000
"#,
    "preset = \"daily_digest\"\nwindow = { kind = \"tumbling\", size_ms = 300000 }\n",
];

fn uninterrupted(config: &str, inputs: &[Record]) -> (Emitted, MemoryState) {
    let mut op = operator(config);
    let mut state = MemoryState::default();
    op.restore(&state).expect("empty state restores");
    let mut all = Emitted::new();
    for (offset, record) in inputs.iter().enumerate() {
        let input = StoredRecord { topic: "t".into(), partition: 0, offset: offset as u64, record: record.clone() };
        let mut out = Output::default();
        op.process(&input, &mut state, &mut out).expect("processes");
        all.extend(emitted(&out));
    }
    (all, state)
}

#[test]
fn replaying_the_same_input_gives_byte_identical_output() {
    let inputs = stream(400);
    for config in RESTART_CONFIGS {
        let (first, first_state) = uninterrupted(config, &inputs);
        let (second, second_state) = uninterrupted(config, &inputs);
        assert!(first.len() > 10, "the stream exercises the config: {} outputs", first.len());
        assert_eq!(first, second);
        assert_eq!(first_state, second_state);
    }
}

#[test]
fn the_stream_exercises_late_refires_and_alerts() {
    let inputs = stream(400);
    let mut run = Run::new(RESTART_CONFIGS[0]);
    for record in inputs {
        run.push(record);
    }
    let stats = run.op.stats();
    assert!(stats.late > 0 && stats.refired > 0 && stats.alerts > 0 && stats.rejected > 0, "{stats:?}");
}

/// A crash after `committed` inputs, with `lost` more processed but never committed: the state
/// is the committed snapshot, a new operator restores from it and the input resumes after the
/// committed offset. The committed outputs plus the replay's must equal an uninterrupted run.
fn crash_and_resume(config: &str, inputs: &[Record], committed: usize, lost: usize) -> Emitted {
    let mut op = operator(config);
    let mut state = MemoryState::default();
    op.restore(&state).expect("restores");
    let mut all = Emitted::new();
    let mut snapshot = None;
    for (offset, record) in inputs.iter().enumerate().take(committed + lost) {
        if offset == committed {
            snapshot = Some(state.clone());
        }
        let input = StoredRecord { topic: "t".into(), partition: 0, offset: offset as u64, record: record.clone() };
        let mut out = Output::default();
        op.process(&input, &mut state, &mut out).expect("processes");
        if offset < committed {
            all.extend(emitted(&out));
        }
    }
    let mut state = snapshot.unwrap_or(state);
    drop(op);
    let mut restarted = operator(config);
    restarted.restore(&state).expect("restores");
    for (offset, record) in inputs.iter().enumerate().skip(committed) {
        let input = StoredRecord { topic: "t".into(), partition: 0, offset: offset as u64, record: record.clone() };
        let mut out = Output::default();
        restarted.process(&input, &mut state, &mut out).expect("processes");
        all.extend(emitted(&out));
    }
    all
}

#[test]
fn a_restart_at_any_point_gives_the_outputs_of_an_uninterrupted_run() {
    let inputs = stream(150);
    for config in RESTART_CONFIGS {
        let (expected, _) = uninterrupted(config, &inputs);
        for committed in 0..=inputs.len() {
            let lost = committed % 7;
            let resumed = crash_and_resume(config, &inputs, committed, lost);
            assert!(resumed == expected, "config {config}: a crash after {committed} inputs (+{lost} lost) differs");
        }
    }
}

#[test]
fn restore_drops_uncommitted_memory() {
    // The runner calls restore() after dropping an uncommitted batch: memory must go back to the
    // committed state even though the operator saw more.
    let inputs = stream(120);
    let config = RESTART_CONFIGS[0];
    let (expected, _) = uninterrupted(config, &inputs);
    let mut op = operator(config);
    let mut committed = MemoryState::default();
    let mut all = Emitted::new();
    for (batch_no, batch) in inputs.chunks(16).enumerate() {
        let base = batch_no * 16;
        for attempt in 0..2 {
            let mut overlay = committed.clone();
            let mut outs = Emitted::new();
            for (i, record) in batch.iter().enumerate() {
                let input =
                    StoredRecord { topic: "t".into(), partition: 0, offset: (base + i) as u64, record: record.clone() };
                let mut out = Output::default();
                op.process(&input, &mut overlay, &mut out).expect("processes");
                outs.extend(emitted(&out));
            }
            if attempt == 0 {
                // A retryable failure: nothing of the batch is committed.
                op.restore(&committed).expect("restores");
            } else {
                committed = overlay;
                all.extend(outs);
            }
        }
    }
    assert!(all == expected);
}

#[test]
fn the_state_holds_only_the_documented_tables() {
    // The layout state.rs documents: meta, pane, item and late only.
    let (_, state) = uninterrupted(RESTART_CONFIGS[0], &stream(200));
    let tables: std::collections::BTreeSet<&str> = state.tables.keys().map(|(t, _)| t.as_str()).collect();
    assert!(tables.iter().all(|t| ["meta", "pane", "item", "late"].contains(t)), "{tables:?}");
    let mut clock = None;
    state
        .scan("meta", &mut |k, v| {
            if k == b"clock" {
                clock = Some(v.to_vec())
            }
        })
        .expect("scans");
    assert!(clock.is_some());
}

/// The documented semantics computed naively: every event in arrival order, the watermark after
/// it, each window it falls in counted unless `end + lateness <= watermark` at its arrival.
/// Returns (final counts of the windows the watermark closed, late events).
fn reference_counts(
    inputs: &[Record],
    windows: &[(i64, i64)],
    ooo: i64,
    lateness: i64,
) -> (BTreeMap<(i64, String), i64>, u64) {
    let (size, slide) = windows[0];
    let mut counts: BTreeMap<(i64, String), i64> = BTreeMap::new();
    let mut late = 0;
    let mut max_time = i64::MIN;
    for record in inputs {
        let Ok(value) = weir_schemas::decode::<PolicyDecision>(&record.value) else { continue };
        let watermark = max_time.saturating_sub(ooo);
        let t = record.timestamp_ms;
        max_time = max_time.max(t);
        if !matches!(value.decision, Decision::Deny | Decision::Review) {
            continue;
        }
        let user = value.labels["user"].clone();
        let mut counted = false;
        let mut start = t - t.rem_euclid(slide);
        while start > t - size {
            if start + size + lateness > watermark {
                *counts.entry((start, user.clone())).or_insert(0) += 1;
                counted = true;
            }
            start -= slide;
        }
        if !counted {
            late += 1;
        }
    }
    let watermark = max_time.saturating_sub(ooo);
    counts.retain(|(start, _), _| start + size <= watermark);
    (counts, late)
}

#[test]
fn final_results_match_a_reference_model_of_the_semantics() {
    let inputs = stream(600);
    for (window, ooo, lateness) in
        [("tumbling\", size_ms = 60000", 10_000, 40_000), ("hopping\", size_ms = 90000, slide_ms = 30000", 0, 20_000)]
    {
        let config = format!(
            "window = {{ kind = \"{window} }}\nkey = \"labels.user\"\nfilter = {{ decision = [\"DENY\", \"REVIEW\"] }}\n\
             metrics = [{{ kind = \"count\" }}]\nout_of_orderness_ms = {ooo}\nallowed_lateness_ms = {lateness}\n"
        );
        let (size, slide) = if window.starts_with("tumbling") { (60_000, 60_000) } else { (90_000, 30_000) };
        let (expected, expected_late) = reference_counts(&inputs, &[(size, slide)], ooo, lateness);
        let mut run = Run::new(&config);
        let mut last: BTreeMap<(i64, String), i64> = BTreeMap::new();
        let mut late_reported = 0;
        for record in inputs.clone() {
            for aggregate in aggregates(&run.push(record)) {
                assert_eq!(aggregate.window_end - aggregate.window_start, size);
                late_reported += aggregate.late_events;
                last.insert((aggregate.window_start, aggregate.key), aggregate.count);
            }
        }
        // Windows the watermark has not closed yet have not been emitted.
        let watermark = run.op.watermark();
        assert!(last.keys().all(|(start, _)| start + size <= watermark));
        assert_eq!(last, expected, "{window}: the latest result of each window is its final count");
        assert_eq!(run.op.stats().late, expected_late);
        assert!(expected_late > 0 && late_reported > 0 && late_reported <= expected_late as i64);
    }
}

#[test]
fn a_late_event_can_merge_into_a_fired_session_and_fire_it_again() {
    let mut run = Run::new(
        "window = { kind = \"session\", gap_ms = 10000 }\nkey = \"labels.user\"\nmetrics = [{ kind = \"count\" }]\n\
         allowed_lateness_ms = 30000\n",
    );
    let emitted = run.push_all([deny("a", 0), deny("a", 5_000), deny("z", 20_000)]);
    assert_eq!(summary(&emitted), vec![(0, 15_000, "a".into(), "count".into(), 2)]);
    // Late (the watermark is 20000) but within the lateness, and within the gap of the session:
    // the merged session [0, 19000) fires again at once.
    let out = run.push(deny("a", 9_000));
    assert_eq!(summary(&aggregates(&out)), vec![(0, 19_000, "a".into(), "count".into(), 3)]);
    assert_eq!(out.records[0].header(ID_HEADER), Some(&b"agg/0/19000/count/2/a"[..]));
    // Grown past the watermark, the session waits for it again.
    let out = run.push(deny("a", 12_000));
    assert!(out.records.is_empty(), "[0, 22000) ends after the watermark (20000)");
    let emitted = run.push_all([deny("z", 40_000)]);
    assert_eq!(
        summary(&emitted),
        vec![(0, 22_000, "a".into(), "count".into(), 4), (20_000, 30_000, "z".into(), "count".into(), 1)]
    );
}

#[test]
fn the_lateness_boundary_is_exact() {
    let config = format!("{COUNT_PER_USER}allowed_lateness_ms = 10000\n");
    // Watermark 69,999: window [0, 60000) still takes late events.
    let mut run = Run::new(&config);
    run.push_all([deny("a", 10_000), deny("a", 69_999)]);
    let out = run.push(deny("a", 59_999));
    assert_eq!(summary(&aggregates(&out)), vec![(0, MIN, "a".into(), "count".into(), 2)]);
    // Watermark 70,000 = end + lateness: the window is gone and the event is late.
    let mut run = Run::new(&config);
    run.push_all([deny("a", 10_000), deny("a", 70_000)]);
    let out = run.push(deny("a", 59_999));
    assert!(out.records.is_empty());
    assert_eq!(out.side.len(), 1);
    assert_eq!(run.op.stats().late, 1);
}

#[test]
fn the_bench_hook_reports_a_rate() {
    let report = super::bench::run(30_000, 10_000);
    println!("{report}");
    assert_eq!(report["events"], 30_000);
    assert_eq!(report["keys"], 10_000);
    assert!(report["events_per_sec"].as_f64().is_some_and(|r| r > 0.0), "{report}");
    // 30 s of events in 1-minute windows: nothing has closed yet, 10,000 keys are open.
    assert_eq!(report["open_windows"], 10_000);
}

#[test]
fn describe_state_shows_panes_items_and_the_clock() {
    let mut run = Run::new(
        r#"
window = { kind = "tumbling", size_ms = 60000 }
key = "labels.user"
metrics = [{ kind = "count", name = "denials" }, { kind = "top_k", field = "labels.service", k = 3, name = "top" }]
"#,
    );
    for time in [MIN + 1, MIN + 2] {
        run.push(decision(&format!("e{time}"), time, Decision::Deny, "ada", Some("chatgpt"), &[]));
    }
    let entry = |table: &str| {
        let ((_, key), value) = run.state.tables.iter().find(|((t, _), _)| t == table).expect("an entry");
        run.op.describe_state(table, key, value).expect("describes its own entries")
    };

    let pane = entry("pane");
    assert_eq!((pane["group"].as_str(), pane["events"].as_u64()), (Some("ada"), Some(2)));
    assert_eq!(pane["start"], serde_json::json!({ "ms": MIN, "utc": "1970-01-01T00:01:00Z" }));
    assert_eq!(
        (pane["metrics"][0]["metric"].as_str(), pane["metrics"][0]["events"].as_u64()),
        (Some("denials"), Some(2))
    );
    let item = entry("item");
    assert_eq!(
        (item["metric"].as_str(), item["item"].as_str(), item["count"].as_u64()),
        (Some("top"), Some("chatgpt"), Some(2))
    );
    let clock = run.state.get("meta", b"clock").expect("get").expect("stored");
    let clock = run.op.describe_state("meta", b"clock", &clock).expect("describes it");
    assert_eq!((clock["max_event_time"]["ms"].as_i64(), clock["stats"]["events"].as_u64()), (Some(MIN + 2), Some(2)));
    assert_eq!(run.op.describe_state("pane", b"bad key", &[1]), None, "damaged");
    assert_eq!(run.op.describe_state("other", b"clock", &[]), None, "not its table");
}

/// Ends the input of `op`; returns what it emitted.
fn end_input(op: &mut Aggregate, state: &mut MemoryState) -> Output {
    let mut out = Output::default();
    op.end_of_input(state, &mut out).expect("the end of input is not an error");
    out
}

/// The state's entries of `table`.
fn entries(state: &MemoryState, table: &str) -> usize {
    state.tables.keys().filter(|(t, _)| t == table).count()
}

#[test]
fn the_end_of_input_fires_every_open_window_once_then_every_later_event_is_late() {
    let mut run = Run::new(&format!("{COUNT_PER_USER}allowed_lateness_ms = 120000\n"));
    let fired = run.push_all([deny("bob", 1_000), deny("alice", 2_000), deny("bob", 61_000), deny("carol", 70_000)]);
    assert_eq!(
        summary(&fired),
        vec![(0, MIN, "alice".into(), "count".into(), 1), (0, MIN, "bob".into(), "count".into(), 1)]
    );
    assert_eq!(run.op.open_windows(), 4, "two fired windows kept for their lateness, two open");

    let out = end_input(&mut run.op, &mut run.state);
    // Only the windows that had not fired; ordered by end, start, key; the ids of a first firing.
    assert_eq!(
        summary(&aggregates(&out)),
        vec![(MIN, 2 * MIN, "bob".into(), "count".into(), 1), (MIN, 2 * MIN, "carol".into(), "count".into(), 1)]
    );
    let ids: Vec<&[u8]> = out.records.iter().map(|r| r.header(ID_HEADER).expect("an id")).collect();
    assert_eq!(ids, vec![&b"agg/60000/120000/count/1/bob"[..], &b"agg/60000/120000/count/1/carol"[..]]);
    assert_eq!(out.records[0].key.as_deref(), Some(&b"bob"[..]));
    assert_eq!(out.records[0].timestamp_ms, 2 * MIN - 1);
    assert!(aggregates(&out).iter().all(|a| a.emitted_at == 70_000), "emitted_at = the latest event time");
    assert!(out.side.is_empty() && out.rejected.is_empty());
    assert_eq!(run.op.open_windows(), 0);
    assert_eq!((entries(&run.state, "pane"), entries(&run.state, "item")), (0, 0), "every window purged");
    assert_eq!(run.op.watermark(), i64::MAX);
    assert_eq!(run.op.stats().fired, 4);

    // A second end of input (a second drain) emits nothing and changes nothing.
    let before = run.state.clone();
    let out = end_input(&mut run.op, &mut run.state);
    assert!(out.records.is_empty() && out.side.is_empty());
    assert_eq!(run.state, before);
    // So does one after a restart from the committed state.
    let mut restarted = operator(&format!("{COUNT_PER_USER}allowed_lateness_ms = 120000\n"));
    restarted.restore(&run.state).expect("restores");
    assert!(end_input(&mut restarted, &mut run.state).records.is_empty());

    // After the end every event is late, even one far ahead: it goes to `late`, counted.
    for event in [deny("bob", 119_000), deny("dave", 10 * MIN)] {
        let out = run.push(event.clone());
        assert!(out.records.is_empty());
        assert_eq!(out.side, vec![(LATE_OUTPUT.to_string(), event)]);
    }
    assert_eq!(run.op.stats().late, 2);
    assert_eq!((run.op.open_windows(), entries(&run.state, "pane")), (0, 0));
    assert_eq!(run.op.watermark(), i64::MAX, "the watermark never comes back");
}

#[test]
fn the_end_of_input_fires_open_hopping_and_session_windows() {
    let mut hopping = Run::new(
        "window = { kind = \"hopping\", size_ms = 10000, slide_ms = 5000 }\nkey = \"labels.user\"\nmetrics = [{ kind = \"count\" }]\n",
    );
    let fired = hopping.push_all([deny("a", 7_000), deny("a", 12_000)]);
    assert_eq!(summary(&fired), vec![(0, 10_000, "a".into(), "count".into(), 1)]);
    let out = end_input(&mut hopping.op, &mut hopping.state);
    assert_eq!(
        summary(&aggregates(&out)),
        vec![(5_000, 15_000, "a".into(), "count".into(), 2), (10_000, 20_000, "a".into(), "count".into(), 1)]
    );
    assert!(aggregates(&out).iter().all(|a| a.window_kind == WindowKind::Hopping && a.emitted_at == 12_000));
    assert_eq!(entries(&hopping.state, "pane"), 0);

    let mut session = Run::new(
        "window = { kind = \"session\", gap_ms = 10000 }\nkey = \"labels.user\"\nmetrics = [{ kind = \"count\" }]\n\
         out_of_orderness_ms = 100000\n",
    );
    assert!(session.push_all([deny("a", 0), deny("b", 5_000), deny("a", 8_000), deny("a", 35_000)]).is_empty());
    let out = end_input(&mut session.op, &mut session.state);
    assert_eq!(
        summary(&aggregates(&out)),
        vec![
            (5_000, 15_000, "b".into(), "count".into(), 1),
            (0, 18_000, "a".into(), "count".into(), 2),
            (35_000, 45_000, "a".into(), "count".into(), 1),
        ]
    );
    assert!(aggregates(&out).iter().all(|a| a.window_kind == WindowKind::Session));
    assert_eq!(entries(&session.state, "pane"), 0);
    let late = session.push(deny("a", 40_000));
    assert_eq!(late.side.len(), 1, "a session would have taken it; after the end it is late");
}

/// Drops `emitted_at` from every aggregate record of `all`, re-encoding the rest unchanged.
fn without_emitted_at(all: Emitted) -> Emitted {
    all.into_iter()
        .map(|(side, key, ts, headers, value)| match weir_schemas::decode::<WindowAggregate>(&value) {
            Ok(mut aggregate) if side.is_empty() => {
                aggregate.emitted_at = 0;
                (side, key, ts, headers, weir_schemas::encode(&aggregate).expect("encodes"))
            }
            _ => (side, key, ts, headers, value),
        })
        .collect()
}

#[test]
fn the_end_of_input_fires_like_a_far_later_event_and_replays_identically() {
    let inputs = stream(400);
    for config in RESTART_CONFIGS {
        let (_, committed) = uninterrupted(config, &inputs);
        let mut op = operator(config);
        op.restore(&committed).expect("restores");
        let mut drained = committed.clone();
        let out = end_input(&mut op, &mut drained);
        assert!(!out.records.is_empty(), "config {config}: the stream leaves windows open");
        assert_eq!(entries(&drained, "pane") + entries(&drained, "item"), 0, "config {config}");

        // What normal firing gives when an event far ahead moves the watermark past every window:
        // the same records, in the same order, with the same ids (only `emitted_at` differs).
        let (mut far, _) = uninterrupted(config, &inputs);
        let pushed = far.len();
        let (with_far, _) = uninterrupted(config, &[inputs.clone(), vec![deny("zz", 1 << 50)]].concat());
        far = with_far.into_iter().skip(pushed).collect();
        assert!(without_emitted_at(emitted(&out)) == without_emitted_at(far), "config {config}");

        // A crash after the outputs, before their commit: restored from the committed state, the
        // end of input emits the same bytes and leaves the same state.
        let mut replayed_state = committed.clone();
        let mut restarted = operator(config);
        restarted.restore(&replayed_state).expect("restores");
        let replay = end_input(&mut restarted, &mut replayed_state);
        assert!(emitted(&replay) == emitted(&out), "config {config}: the replay differs");
        assert_eq!(replayed_state, drained);

        // Every later event is late (unless the filter leaves it out or it does not decode).
        let mut run = Run { op: restarted, state: drained, offset: inputs.len() as u64 };
        let before = run.op.stats();
        let outs: Vec<Output> = stream(40).into_iter().map(|r| run.push(r)).collect();
        assert!(outs.iter().all(|o| o.records.is_empty()), "config {config}: nothing fires after the end");
        let late = outs.iter().flat_map(|o| &o.side).filter(|(side, _)| side == LATE_OUTPUT).count() as u64;
        let after = run.op.stats();
        assert!(late > 0, "config {config}");
        assert_eq!(after.late - before.late, late);
        let left_out = (after.filtered_out + after.rejected) - (before.filtered_out + before.rejected);
        assert_eq!(late + left_out, 40, "config {config}: every event not left out is late");
        assert_eq!((after.aggregated, run.op.open_windows()), (before.aggregated, 0));
    }
}
