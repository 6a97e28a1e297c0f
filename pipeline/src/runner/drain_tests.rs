//! `--until-idle --drain`: the end of input of a bounded run fires an aggregate's open windows
//! once, in a committed transaction, before the sink downstream ends; a second drain emits
//! nothing; a crash between the drain's outputs and its commit changes no byte of the output.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::watch;
use weir_operators::aggregate::{Aggregate, AggregateConfig};
use weir_schemas::component::*;
use weir_schemas::events::WindowAggregate;
use weir_schemas::{Record, StoredRecord};

use super::*;
use crate::config::PipelineConfig;
use crate::log::embedded::{EmbeddedConfig, EmbeddedLog};

/// Hands out one record per event time (its value is the time), then finishes; each run of a
/// test gives it only what is new.
struct Events(Vec<i64>);

#[async_trait]
impl Source for Events {
    async fn open(&mut self, _: Option<String>) -> Result<(), ComponentError> {
        Ok(())
    }
    async fn poll(&mut self) -> Result<SourcePoll, ComponentError> {
        if self.0.is_empty() {
            return Ok(SourcePoll::Finished);
        }
        let records = self.0.drain(..).map(|t| Record::new(t, t.to_string().into_bytes())).collect();
        Ok(SourcePoll::Batch(SourceBatch { records, rejected: Vec::new(), cursor: Some("end".into()) }))
    }
}

/// Keeps what it is given.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<WindowAggregate>>>);

#[async_trait]
impl Sink for Capture {
    async fn deliver(&mut self, batch: &[StoredRecord]) -> Result<Vec<RecordFailure>, ComponentError> {
        let mut kept = self.0.lock().unwrap();
        kept.extend(batch.iter().map(|r| weir_schemas::decode::<WindowAggregate>(&r.record.value).unwrap()));
        Ok(Vec::new())
    }
}

/// Passes records through, or fails on every record when `fail`.
struct PassThrough {
    fail: bool,
}

impl Operator for PassThrough {
    fn process(&mut self, input: &StoredRecord, _: &mut dyn State, out: &mut Output) -> Result<(), ComponentError> {
        if self.fail {
            return Err(ComponentError::fatal("fails on purpose"));
        }
        out.emit(Record::new(input.record.timestamp_ms, input.record.value.clone()));
        Ok(())
    }
}

const MIN: i64 = 60_000;

/// Counts per minute, by record time.
fn aggregate() -> Aggregate {
    let config: AggregateConfig =
        toml::from_str("window = { kind = \"tumbling\", size_ms = 60000 }\nmetrics = [{ kind = \"count\" }]\n")
            .unwrap();
    Aggregate::new("counts", &config).unwrap()
}

/// events → counts (aggregate) → out (sink); with `pass`: events → pass → counts → out.
fn config(pass: bool) -> PipelineConfig {
    let input = if pass { "pass" } else { "events" };
    let text = format!(
        r#"
[sources.events]
type = "test"

[operators.pass]
type = "test"
inputs = ["events"]

[operators.counts]
type = "test"
inputs = ["{input}"]

[sinks.out]
type = "test"
inputs = ["counts"]
"#
    );
    PipelineConfig::parse(Path::new("test.toml"), &text, &|_| None).unwrap()
}

/// One `--until-idle` run over the store and log in `dir`; returns what the sink received.
async fn run_once(dir: &Path, times: &[i64], drain: bool, failing_pass: bool) -> Vec<WindowAggregate> {
    let config = config(failing_pass);
    let sink = Capture::default();
    let mut components = BTreeMap::new();
    components.insert("events".to_string(), Component::Source(Box::new(Events(times.to_vec()))));
    components.insert("pass".to_string(), Component::Operator(Box::new(PassThrough { fail: failing_pass })));
    components.insert("counts".to_string(), Component::Operator(Box::new(aggregate())));
    components.insert("out".to_string(), Component::Sink(Box::new(sink.clone())));
    let log = EmbeddedLog::open(dir, EmbeddedConfig::default()).unwrap();
    let store = Store::open(dir).unwrap();
    let (_stop, shutdown) = watch::channel(false);
    let options = RunOptions { until_idle: true, drain, ..RunOptions::default() };
    let summaries = run(&config, components, Arc::new(log), Arc::new(store), options, shutdown).await.unwrap();
    let failed: Vec<&StageSummary> = summaries.iter().filter(|s| s.failure.is_some()).collect();
    assert_eq!(failed.len(), usize::from(failing_pass), "{summaries:?}");
    let delivered = sink.0.lock().unwrap().clone();
    delivered
}

/// Every record of the aggregate's topic, as bytes: (key, timestamp, headers, value).
type TopicBytes = Vec<(Option<Vec<u8>>, i64, Vec<(String, Vec<u8>)>, Vec<u8>)>;

fn topic_bytes(dir: &Path) -> TopicBytes {
    let log = EmbeddedLog::open_read_only(dir).unwrap();
    let records = log.read_blocking("counts", 0, 0, 1000).unwrap().records;
    records.into_iter().map(|r| (r.record.key, r.record.timestamp_ms, r.record.headers, r.record.value)).collect()
}

/// (window start, count, `emitted_at`) of each aggregate.
fn windows(aggregates: &[WindowAggregate]) -> Vec<(i64, i64, i64)> {
    aggregates.iter().map(|a| (a.window_start, a.count, a.emitted_at)).collect()
}

fn decoded(bytes: &TopicBytes) -> Vec<WindowAggregate> {
    bytes.iter().map(|(.., value)| weir_schemas::decode(value).unwrap()).collect()
}

/// Three minutes of events: the first two windows fire on their own, the last stays open.
const TIMES: [i64; 8] = [0, 25_000, 50_000, 75_000, 100_000, 125_000, 150_000, 175_000];

#[tokio::test]
async fn the_last_window_fires_only_with_drain_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let delivered = run_once(dir.path(), &TIMES, false, false).await;
    let fired = vec![(0, 3, 75_000), (MIN, 2, 125_000)];
    assert_eq!(windows(&delivered), fired, "without --drain the last window waits for later events");
    assert_eq!(windows(&decoded(&topic_bytes(dir.path()))), fired);

    // --drain over the same store: the last window fires, and the sink receives it in this run.
    let delivered = run_once(dir.path(), &[], true, false).await;
    assert_eq!(windows(&delivered), vec![(2 * MIN, 3, 175_000)], "emitted_at = the latest event time");
    let after_drain = topic_bytes(dir.path());
    assert_eq!(windows(&decoded(&after_drain)), [fired.clone(), vec![(2 * MIN, 3, 175_000)]].concat());
    let id = after_drain[2].2.iter().find(|(name, _)| name == "weir-id").unwrap();
    assert_eq!(id.1, b"counts/120000/180000/count/1/", "the id of a normal first firing");

    // A second drain emits nothing more.
    assert!(run_once(dir.path(), &[], true, false).await.is_empty());
    assert!(topic_bytes(dir.path()) == after_drain);

    // The same bytes as a run that drains from the start.
    let fresh = tempfile::tempdir().unwrap();
    run_once(fresh.path(), &TIMES, true, false).await;
    assert!(topic_bytes(fresh.path()) == after_drain);

    // After the drain an event is late: nothing fires, it goes to `counts.late`.
    assert!(run_once(dir.path(), &[200_000, 400_000], true, false).await.is_empty());
    assert!(topic_bytes(dir.path()) == after_drain);
    let log = EmbeddedLog::open_read_only(dir.path()).unwrap();
    assert_eq!(log.read_blocking("counts.late", 0, 0, 10).unwrap().records.len(), 2);
}

#[tokio::test]
async fn a_crash_between_the_drains_outputs_and_its_commit_changes_no_byte() {
    // With TIMES, windows fired before the drain; with one minute of events, the drain's outputs
    // are the first the aggregate ever appends (so its topic has no produced mark before).
    for times in [&TIMES[..], &TIMES[..3]] {
        let clean = tempfile::tempdir().unwrap();
        run_once(clean.path(), times, true, false).await;
        let expected = topic_bytes(clean.path());

        let crashed = tempfile::tempdir().unwrap();
        run_once(crashed.path(), times, false, false).await;
        let before_drain = std::fs::read(crashed.path().join("store.redb")).unwrap();
        run_once(crashed.path(), &[], true, false).await;
        assert!(topic_bytes(crashed.path()) == expected);
        // The crash: the drain's outputs are on the log, its commit is not in the store.
        std::fs::write(crashed.path().join("store.redb"), before_drain).unwrap();
        assert!(!input_ended(crashed.path()), "the restored store is the one before the drain");
        let delivered = run_once(crashed.path(), &[], true, false).await;
        assert!(input_ended(crashed.path()), "the drain ran again after the restart, and was committed");
        // The sink's offset went back too: it delivers again what is past it, the drain's record once.
        assert_eq!(delivered.len(), 1, "{} events: the drain's outputs were not appended twice", times.len());
        let got = topic_bytes(crashed.path());
        assert_eq!(got.len(), expected.len(), "{} windows: the drain's outputs were not appended twice", times.len());
        assert!(got == expected, "the same bytes as a clean run");
    }
}

/// Whether the aggregate's committed state says its input ended.
fn input_ended(dir: &Path) -> bool {
    let store = Store::open(dir).unwrap();
    let mut aggregate = aggregate();
    aggregate.restore(&super::state::StateOverlay::new(&store, "counts")).unwrap();
    aggregate.input_ended()
}

#[tokio::test]
async fn no_drain_below_a_stage_that_failed() {
    let dir = tempfile::tempdir().unwrap();
    // `pass` fails: its input never reaches the aggregate, whose input did not end.
    assert!(run_once(dir.path(), &TIMES, true, true).await.is_empty());
    assert!(topic_bytes(dir.path()).is_empty());
    assert!(!input_ended(dir.path()), "the aggregate's input was not ended");
}

#[tokio::test]
async fn drain_without_until_idle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(false);
    let log = EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (_stop, shutdown) = watch::channel(false);
    let options = RunOptions { drain: true, ..RunOptions::default() };
    let error = run(&config, BTreeMap::new(), Arc::new(log), Arc::new(store), options, shutdown).await.unwrap_err();
    assert_eq!(error.to_string(), DRAIN_NEEDS_UNTIL_IDLE);
}
