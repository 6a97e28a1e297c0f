//! The runner with test components: delivery retries, dead letters, panics, `--until-idle`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::watch;
use weir_schemas::component::*;
use weir_schemas::{Record, StoredRecord};

use super::*;
use crate::config::PipelineConfig;
use crate::log::embedded::{EmbeddedConfig, EmbeddedLog};

/// Hands out `n` records, then finishes.
struct Numbers(u64);

#[async_trait]
impl Source for Numbers {
    async fn open(&mut self, cursor: Option<String>) -> Result<(), ComponentError> {
        if cursor.is_some() {
            self.0 = 0; // everything was handed over already
        }
        Ok(())
    }
    async fn poll(&mut self) -> Result<SourcePoll, ComponentError> {
        if self.0 == 0 {
            return Ok(SourcePoll::Finished);
        }
        let records = (0..self.0).map(|i| Record::new(i as i64, i.to_string().into_bytes())).collect();
        self.0 = 0;
        Ok(SourcePoll::Batch(SourceBatch { records, rejected: Vec::new(), cursor: Some("end".into()) }))
    }
}

/// Passes records through; panics on the value `panic_on`.
struct PassThrough {
    panic_on: Option<&'static [u8]>,
}

impl Operator for PassThrough {
    fn process(&mut self, input: &StoredRecord, _: &mut dyn State, out: &mut Output) -> Result<(), ComponentError> {
        if Some(input.record.value.as_slice()) == self.panic_on {
            panic!("test operator panics on purpose");
        }
        out.emit(Record::new(input.record.timestamp_ms, input.record.value.clone()));
        Ok(())
    }
}

/// Refuses value "3" for good, asks for "5" to be retried once (reporting it twice), takes the rest.
#[derive(Clone, Default)]
struct Picky {
    delivered: Arc<Mutex<Vec<Vec<u8>>>>,
    retried: Arc<Mutex<bool>>,
}

#[async_trait]
impl Sink for Picky {
    async fn deliver(&mut self, batch: &[StoredRecord]) -> Result<Vec<RecordFailure>, ComponentError> {
        let mut failures = Vec::new();
        for (index, record) in batch.iter().enumerate() {
            match record.record.value.as_slice() {
                b"3" => failures.push(RecordFailure { index, retryable: false, reason: "refused".into() }),
                b"5" if !*self.retried.lock().unwrap() => {
                    *self.retried.lock().unwrap() = true;
                    let failure = RecordFailure { index, retryable: true, reason: "busy".into() };
                    failures.extend([failure.clone(), failure]);
                }
                value => self.delivered.lock().unwrap().push(value.to_vec()),
            }
        }
        Ok(failures)
    }
}

const CONFIG: &str = r#"
[sources.numbers]
type = "test"

[operators.pass]
type = "test"
inputs = ["numbers"]

[sinks.picky]
type = "test"
inputs = ["pass"]
"#;

async fn run_pipeline(dir: &Path, operator: PassThrough, sink: Picky) -> Vec<StageSummary> {
    let config = PipelineConfig::parse(Path::new("test.toml"), CONFIG, &|_| None).unwrap();
    let mut components = BTreeMap::new();
    components.insert("numbers".to_string(), Component::Source(Box::new(Numbers(8))));
    components.insert("pass".to_string(), Component::Operator(Box::new(operator)));
    components.insert("picky".to_string(), Component::Sink(Box::new(sink)));
    let log = EmbeddedLog::open(dir, EmbeddedConfig::default()).unwrap();
    let store = Store::open(dir).unwrap();
    let (_stop, shutdown) = watch::channel(false);
    let options = RunOptions { until_idle: true, ..RunOptions::default() };
    run(&config, components, Arc::new(log), Arc::new(store), options, shutdown).await.unwrap()
}

#[tokio::test]
async fn retries_what_may_succeed_and_dead_letters_what_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Picky::default();
    let summaries = run_pipeline(dir.path(), PassThrough { panic_on: None }, sink.clone()).await;
    let mut delivered = sink.delivered.lock().unwrap().clone();
    delivered.sort();
    let expected: Vec<Vec<u8>> = [0, 1, 2, 4, 5, 6, 7].iter().map(|i: &i32| i.to_string().into_bytes()).collect();
    assert_eq!(delivered, expected);
    let picky = summaries.iter().find(|s| s.name == "picky").unwrap();
    assert_eq!((picky.records_in, picky.records_out, picky.dead_lettered, picky.lag), (8, 7, 1, 0));
    assert!(picky.retries >= 1);
    assert!(summaries.iter().all(|s| s.failure.is_none()), "{summaries:?}");

    let log = EmbeddedLog::open_read_only(dir.path()).unwrap();
    let letters = log.read_blocking("dlq", 0, 0, 10).unwrap().records;
    assert_eq!(letters.len(), 1);
    let letter: weir_schemas::events::DeadLetter = weir_schemas::decode(&letters[0].record.value).unwrap();
    assert_eq!(
        (letter.component.as_str(), letter.reason.as_str(), letter.original.as_slice()),
        ("picky", "refused", &b"3"[..])
    );
    let id = String::from_utf8(letters[0].record.header("weir-id").unwrap().to_vec()).unwrap();
    assert_eq!(id, "picky/raw.numbers/0/3/0/dlq/0", "the dead letter's id names the stage and the input's id");
}

#[tokio::test]
async fn a_panicking_stage_fails_alone_and_until_idle_still_ends() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Picky::default();
    let summaries = run_pipeline(dir.path(), PassThrough { panic_on: Some(b"2") }, sink.clone()).await;
    let pass = summaries.iter().find(|s| s.name == "pass").unwrap();
    assert!(pass.failure.as_deref().unwrap_or_default().contains("panicked"), "{pass:?}");
    assert_eq!(pass.lag, 8, "nothing of the batch that panicked was committed");
    let numbers = summaries.iter().find(|s| s.name == "numbers").unwrap();
    assert_eq!(numbers.failure, None);
    assert!(sink.delivered.lock().unwrap().is_empty());
}

#[tokio::test]
async fn outputs_of_an_uncommitted_batch_are_not_appended_twice_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    run_pipeline(dir.path(), PassThrough { panic_on: None }, Picky::default()).await;
    // Pretend the operator crashed after appending the outputs of inputs 4..8 but before
    // committing them: roll its committed input offset and produced mark back to 4.
    {
        let store = Store::open(dir.path()).unwrap();
        let mut checkpoint = crate::store::Checkpoint { consumer: "pass".into(), ..Default::default() };
        checkpoint.offsets.insert(("raw.numbers".into(), 0), 4);
        checkpoint.produced.insert(("pass".into(), 0), 4);
        store.commit(&checkpoint).unwrap();
    }
    let summaries = run_pipeline(dir.path(), PassThrough { panic_on: None }, Picky::default()).await;
    let pass = summaries.iter().find(|s| s.name == "pass").unwrap();
    assert_eq!((pass.records_in, pass.lag), (4, 0), "the uncommitted inputs were processed again");

    let log = EmbeddedLog::open_read_only(dir.path()).unwrap();
    let outputs = log.read_blocking("pass", 0, 0, 100).unwrap().records;
    let values: Vec<&[u8]> = outputs.iter().map(|r| r.record.value.as_slice()).collect();
    let expected: Vec<String> = (0..8).map(|i| i.to_string()).collect();
    assert_eq!(values, expected.iter().map(|s| s.as_bytes()).collect::<Vec<_>>(), "each output once, in order");
}
