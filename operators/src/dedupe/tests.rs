//! Tests of the dedupe operator: repeats within and after the window, key sources, records
//! without a key, purging by watermark, and restarts.

use weir_schemas::component::{MemoryState, Operator, Output, State};
use weir_schemas::record::{Record, StoredRecord};

use super::{Dedupe, DedupeConfig, DedupeConfigError, DedupeMissingKey};

fn config(toml_text: &str) -> DedupeConfig {
    toml::from_str(toml_text).expect("the test config parses")
}

struct Run {
    op: Dedupe,
    state: MemoryState,
    offset: u64,
}

impl Run {
    fn new(toml_text: &str) -> Run {
        Run { op: Dedupe::new(&config(toml_text)).expect("valid"), state: MemoryState::default(), offset: 0 }
    }

    fn push(&mut self, record: Record) -> Output {
        let input = StoredRecord { topic: "events".into(), partition: 0, offset: self.offset, record };
        self.offset += 1;
        let mut out = Output::default();
        self.op.process(&input, &mut self.state, &mut out).expect("bad input is rejected, not an error");
        out
    }

    /// Whether the record was passed through unchanged.
    fn passes(&mut self, record: Record) -> bool {
        let out = self.push(record.clone());
        match out.records.as_slice() {
            [] => false,
            [passed] => {
                assert_eq!(passed, &record, "passed through unchanged");
                true
            }
            more => panic!("{} records out for one in", more.len()),
        }
    }
}

/// A JSON event with an id at `time`, keyed and with a header, to check they pass unchanged.
fn event(id: &str, time: i64) -> Record {
    Record::new(time, format!(r#"{{"metadata": {{"uid": "{id}"}}, "n": {time}}}"#).into_bytes())
        .with_key("actor")
        .with_header("weir-id", format!("src/{id}"))
        .with_header("other", "x")
}

const BY_UID: &str = "key = \"metadata.uid\"\nwindow_ms = 10000\n";

#[test]
fn repeats_within_the_window_are_dropped_and_later_ones_pass() {
    let mut run = Run::new(BY_UID);
    assert!(run.passes(event("a", 1_000)));
    assert!(!run.passes(event("a", 1_000)), "an exact repeat");
    assert!(run.passes(event("b", 2_000)), "another key");
    assert!(!run.passes(event("a", 10_999)), "still within 10 s of the first");
    assert!(run.passes(event("a", 11_000)), "10 s after the first: a new occurrence");
    assert!(!run.passes(event("a", 5_000)), "within 10 s of the new first, before it");
    let stats = run.op.stats();
    assert_eq!((stats.events, stats.passed, stats.dropped), (6, 3, 3));
}

#[test]
fn the_weir_id_header_or_the_record_key_can_be_the_key() {
    let mut run = Run::new("key = \"@weir-id\"\nwindow_ms = 10000\n");
    assert!(run.passes(event("a", 0)));
    assert!(!run.passes(event("a", 1)));
    assert!(run.passes(Record::new(2, b"not even json".to_vec())), "no header: passed by default");
    assert_eq!(run.op.stats().missing_key, 1);
    let mut run = Run::new("key = \"@key\"\nwindow_ms = 10000\n");
    assert!(run.passes(event("a", 0)));
    assert!(!run.passes(event("b", 1)), "same record key");
}

#[test]
fn records_without_a_key_pass_drop_or_reject_per_config() {
    let keyless = || Record::new(1, br#"{"metadata": {}}"#.to_vec());
    let mut pass = Run::new(BY_UID);
    assert!(pass.passes(keyless()));
    assert!(pass.passes(keyless()));
    let mut drop = Run::new(&format!("{BY_UID}missing_key = \"drop\"\n"));
    assert!(!drop.passes(keyless()));
    assert_eq!(drop.op.stats().missing_key, 1);
    let mut reject = Run::new(&format!("{BY_UID}missing_key = \"reject\"\n"));
    let out = reject.push(keyless());
    assert_eq!(out.rejected.len(), 1);
    assert!(out.rejected[0].reason.contains("key `metadata.uid` is missing"), "{}", out.rejected[0].reason);
    assert_eq!(Run::new(BY_UID).push(Record::new(1, b"junk".to_vec())).rejected.len(), 1, "undecodable value");
    let out = Run::new(BY_UID).push(Record::new(1, br#"{"metadata": {"uid": [1]}}"#.to_vec()));
    assert!(out.rejected[0].reason.contains("not a scalar"));
}

#[test]
fn keys_are_forgotten_once_the_watermark_passes_their_window() {
    let mut run = Run::new(&format!("{BY_UID}out_of_orderness_ms = 2000\n"));
    for i in 0..100 {
        run.push(event(&format!("k{i}"), i * 1_000));
    }
    // The watermark is 97,000: keys first seen at or before 87,000 are forgotten.
    assert_eq!(run.op.remembered(), 12);
    let seen = run.state.tables.keys().filter(|(t, _)| t == "seen").count();
    assert_eq!(seen, 12, "state holds what memory holds");
    // A forgotten key coming back late cannot be recognised: passed, and counted.
    assert!(run.passes(event("k3", 3_500)));
    assert_eq!(run.op.stats().passed_late, 1);
    // A remembered one still is.
    assert!(!run.passes(event("k95", 95_500)));
}

#[test]
fn a_time_field_gives_the_event_time() {
    let mut run = Run::new(&format!("{BY_UID}time_field = \"n\"\n"));
    let at = |time: i64, n: i64| Record::new(time, format!(r#"{{"metadata": {{"uid": "a"}}, "n": {n}}}"#).into_bytes());
    assert!(run.passes(at(0, 1_000)));
    assert!(!run.passes(at(999_999, 2_000)), "the field's time, not the record's");
    assert!(run.passes(at(0, 20_000)));
}

#[test]
fn bad_configs_are_refused() {
    let error = |text: &str| Dedupe::new(&config(text)).err().expect("invalid");
    assert_eq!(error("key = \"a\"\nwindow_ms = 0"), DedupeConfigError::BadWindow);
    assert!(matches!(error("key = \"a..b\"\nwindow_ms = 1"), DedupeConfigError::BadPath { .. }));
    assert!(matches!(error("key = \"a[].b\"\nwindow_ms = 1"), DedupeConfigError::BadPath { .. }));
    assert!(toml::from_str::<DedupeConfig>("key = \"a\"\nwindow_ms = 1\nwindow = 2").is_err());
    assert_eq!(config("key = \"a\"\nwindow_ms = 1").missing_key, DedupeMissingKey::Pass);
}

#[test]
fn a_restart_at_any_point_passes_and_drops_exactly_as_an_uninterrupted_run() {
    let inputs: Vec<Record> = (0..120i64).map(|i| event(&format!("k{}", i % 9), i * 700 - (i % 4) * 900)).collect();
    let cfg = format!("{BY_UID}out_of_orderness_ms = 1500\n");
    let run_all = |from: usize, op: &mut Dedupe, state: &mut MemoryState, upto: usize| -> Vec<Record> {
        let mut passed = Vec::new();
        for (offset, record) in inputs.iter().enumerate().take(upto).skip(from) {
            let input = StoredRecord { topic: "e".into(), partition: 0, offset: offset as u64, record: record.clone() };
            let mut out = Output::default();
            op.process(&input, state, &mut out).expect("processes");
            passed.extend(out.records);
        }
        passed
    };
    let fresh = || Dedupe::new(&config(&cfg)).expect("valid");
    let mut state = MemoryState::default();
    let expected = run_all(0, &mut fresh(), &mut state, inputs.len());
    assert!(expected.len() > 20 && expected.len() < 100, "{} passed", expected.len());
    for committed in 0..=inputs.len() {
        let mut op = fresh();
        let mut state = MemoryState::default();
        let mut got = run_all(0, &mut op, &mut state, committed);
        let snapshot = state.clone();
        // Some uncommitted progress, lost in the crash.
        run_all(committed, &mut op, &mut state, committed + 5);
        let mut restarted = fresh();
        let mut state = snapshot;
        restarted.restore(&state).expect("restores");
        got.extend(run_all(committed, &mut restarted, &mut state, inputs.len()));
        assert!(got == expected, "a crash after {committed} inputs differs");
    }
}

#[test]
fn describe_state_shows_seen_keys_and_the_clock() {
    let mut run = Run::new(BY_UID);
    assert!(run.passes(event("a", 1_000)));
    assert!(!run.passes(event("a", 2_000)));
    let seen = run.state.get("seen", b"a").expect("get").expect("remembered");
    let shown = run.op.describe_state("seen", b"a", &seen).expect("describes it");
    assert_eq!(shown["key"], "a");
    assert_eq!(shown["first_seen"], serde_json::json!({ "ms": 1_000, "utc": "1970-01-01T00:00:01Z" }));
    assert_eq!(shown["window_end"]["ms"], 11_000);

    let clock = run.state.get("meta", b"clock").expect("get").expect("stored");
    let shown = run.op.describe_state("meta", b"clock", &clock).expect("describes it");
    assert_eq!(shown["max_event_time"]["ms"], 2_000);
    assert_eq!((shown["stats"]["passed"].as_u64(), shown["stats"]["dropped"].as_u64()), (Some(1), Some(1)));
    assert_eq!(run.op.describe_state("seen", b"a", &[1, 2]), None, "damaged");
    assert_eq!(run.op.describe_state("meta", b"other", &clock), None);
}

#[test]
fn with_several_workers_the_input_is_partitioned_by_the_dedupe_key() {
    use weir_schemas::component::Partitioning;
    let key_of = |toml_text: &str, record: &Record| match Run::new(toml_text).op.partitioning() {
        Partitioning::ByStateKey(key) => Some(key(record)),
        _ => None,
    };
    let record = Record::new(1, br#"{"user": "ada", "n": 1}"#.to_vec()).with_key(b"input".to_vec());
    let path = "key = \"user\"\nwindow_ms = 1000";
    assert_eq!(key_of(path, &record), Some(Some(b"ada".to_vec())), "a path: repartitioned by its text");
    let other = Record::new(2, br#"{"user": "ada", "n": 2}"#.to_vec()).with_key(b"elsewhere".to_vec());
    assert_eq!(key_of(path, &other), key_of(path, &record), "the same key meets on the same partition");
    assert_eq!(key_of(path, &Record::new(1, b"{}".to_vec())), Some(None), "no key: partition 0");
    let by_id = record.clone().with_header("weir-id", "id-1");
    assert_eq!(key_of("key = \"@weir-id\"\nwindow_ms = 1000", &by_id), Some(Some(b"id-1".to_vec())));
    assert_eq!(key_of("key = \"@key\"\nwindow_ms = 1000", &record), None, "@key: partitioned so already");
}
