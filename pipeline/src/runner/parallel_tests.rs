//! Partition-parallel workers: two workers sharing one embedded log, each with its own store,
//! end with the same topics as one worker, and each partition is consumed by exactly one of them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;
use weir_connectors::batch::RawBatch;
use weir_schemas::component::*;

use super::*;
use crate::config::PipelineConfig;
use crate::log::embedded::{EmbeddedConfig, EmbeddedLog};

const PARTITIONS: u32 = 4;
const USERS: usize = 40;
/// Event time of the first System Log event: 2024-05-02T00:00:00Z.
const START_MS: i64 = 1_714_608_000_000;
/// The aggregates' out-of-orderness: longer than the events span, so that no window fires and
/// no event is late before the final events of the second phase (see `flush_events`).
const OUT_OF_ORDERNESS_MS: i64 = 86_400_000;

/// Hands over its batches, then finishes.
struct Batches(VecDeque<SourceBatch>);

#[async_trait]
impl Source for Batches {
    async fn open(&mut self, _: Option<String>) -> Result<(), ComponentError> {
        Ok(())
    }
    async fn poll(&mut self) -> Result<SourcePoll, ComponentError> {
        Ok(self.0.pop_front().map_or(SourcePoll::Finished, SourcePoll::Batch))
    }
}

fn config(policies: &Path) -> PipelineConfig {
    let text = format!(
        r#"
[log]
partitions = {PARTITIONS}

[sources.okta]
type = "test"

[operators.events]
type = "normalize"
inputs = ["okta"]

[operators.enriched]
type = "enrich"
inputs = ["events"]

[operators.decisions]
type = "policy"
inputs = ["enriched"]
policies = "{policies}"
reload_interval_ms = 0

[operators.per_decision]
type = "aggregate"
inputs = ["decisions"]
window = {{ kind = "tumbling", size_ms = 900000 }}
out_of_orderness_ms = {OUT_OF_ORDERNESS_MS}
key = "decision"
metrics = [{{ kind = "count" }}]

[operators.per_user]
type = "aggregate"
inputs = ["enriched"]
window = {{ kind = "tumbling", size_ms = 900000 }}
out_of_orderness_ms = {OUT_OF_ORDERNESS_MS}
key = "user_context.uid"
metrics = [{{ kind = "count" }}]
"#,
        policies = policies.display()
    );
    PipelineConfig::parse(Path::new("workers.toml"), &text, &|_| None).unwrap()
}

/// The config's operators, built.
fn operators(config: &PipelineConfig) -> BTreeMap<String, Component> {
    let operators = config.components.iter().filter(|spec| spec.role == crate::config::Role::Operator);
    operators.map(|spec| (spec.name.clone(), crate::components::build(spec, config).unwrap())).collect()
}

/// Raw Okta records keyed by user, so that they spread over every partition of `raw.okta`.
fn keyed(mut batch: SourceBatch, keys: Vec<String>) -> SourceBatch {
    for (record, key) in batch.records.iter_mut().zip(keys) {
        record.key = Some(key.into_bytes());
    }
    batch
}

/// Users `u % 4 == 3` sign in with their login only (no Okta id): their events are keyed by
/// login, not by the uid their snapshot is keyed by, so the context they are enriched with lies in
/// another partition, often another worker's (the GlobalKTable case).
fn by_login(user: usize) -> bool {
    user % 4 == 3
}

fn sign_in(batch: &mut RawBatch, keys: &mut Vec<String>, id: &str, user: usize, time_ms: i64, success: bool) {
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(time_ms as i128 * 1_000_000).unwrap();
    let login = format!("user{user}@example.com");
    let mut actor = serde_json::json!({"id": format!("00u{user}"), "alternateId": login, "type": "User"});
    if by_login(user) {
        actor.as_object_mut().unwrap().remove("id");
    }
    let event = serde_json::json!({
        "uuid": id,
        "published": time.format(&time::format_description::well_known::Rfc3339).unwrap(),
        "eventType": "user.session.start",
        "severity": "INFO",
        "actor": actor,
        "outcome": {"result": if success { "SUCCESS" } else { "FAILURE" }},
        "client": {"ipAddress": "192.0.2.1"}
    });
    batch.event(id, Some(time_ms), event.to_string().as_bytes());
    keys.push(if by_login(user) { login } else { format!("00u{user}") });
}

/// Okta users, some suspended: the context, in a phase of its own so that every worker has
/// applied all of it before the events come, whichever partitions they are in.
fn users() -> SourceBatch {
    let mut batch = RawBatch::new("okta", "okta");
    let mut keys = Vec::new();
    for u in 0..USERS {
        let user = serde_json::json!({
            "id": format!("00u{u}"), "status": if u % 7 == 0 { "SUSPENDED" } else { "ACTIVE" },
            "lastUpdated": "2024-01-01T00:00:00.000Z",
            "profile": {"login": format!("user{u}@example.com"), "email": format!("user{u}@example.com"),
                        "department": if u % 2 == 0 { "Engineering" } else { "Sales" }},
            "_groups": ["Everyone"]
        });
        batch.event(&format!("user-{u}"), None, user.to_string().as_bytes());
        keys.push(format!("00u{u}"));
    }
    keyed(batch.finish("users".into()), keys)
}

/// The users' sign-ins over 40 minutes. All of one user's events share a partition, so the
/// violations they open and update come out the same whichever way stages interleave partitions.
fn sign_ins() -> SourceBatch {
    let mut batch = RawBatch::new("okta", "okta");
    let mut keys = Vec::new();
    for i in 0..2400 {
        sign_in(&mut batch, &mut keys, &format!("first-{i}"), i % USERS, START_MS + i as i64 * 1000, i % 5 != 0);
    }
    keyed(batch.finish("sign-ins".into()), keys)
}

/// One successful and one failed sign-in per user, a day later than the rest: they move every
/// aggregate's watermark (per worker: each one's own keys) past every earlier window, which then
/// fire, with the same watermark in both runs.
fn flush_events() -> SourceBatch {
    let mut batch = RawBatch::new("okta", "okta");
    let mut keys = Vec::new();
    for u in 0..USERS {
        for success in [true, false] {
            let id = format!("flush-{u}-{success}");
            sign_in(&mut batch, &mut keys, &id, u, START_MS + 2 * OUT_OF_ORDERNESS_MS, success);
        }
    }
    keyed(batch.finish("flush".into()), keys)
}

/// One `--until-idle` run of `worker` over `store`, its source giving `batches`.
async fn run_worker(
    config: &PipelineConfig,
    log: Arc<dyn Log>,
    store: Arc<Store>,
    worker: Worker,
    batches: VecDeque<SourceBatch>,
    drain: bool,
) -> Result<Vec<StageSummary>, RunError> {
    let mut components = operators(config);
    components.insert("okta".to_string(), Component::Source(Box::new(Batches(batches))));
    let (_stop, shutdown) = watch::channel(false);
    let options = RunOptions { until_idle: true, drain, worker };
    run(config, components, log, store, options, shutdown).await
}

/// Runs every worker concurrently until idle, again and again until a round in which no stage
/// of any worker read anything: a worker's `--until-idle` ends when its own stages caught up,
/// while another worker's may still be writing.
async fn run_settled(config: &PipelineConfig, log: &Arc<dyn Log>, stores: &[(Worker, Arc<Store>)], batch: SourceBatch) {
    let mut batch = Some(batch);
    for round in 0.. {
        assert!(round < 50, "the workers did not settle");
        let runs = stores.iter().map(|(worker, store)| {
            let batches = if worker.runs_sources() { batch.take().into_iter().collect() } else { VecDeque::new() };
            run_worker(config, log.clone(), store.clone(), *worker, batches, false)
        });
        let summaries: Vec<StageSummary> =
            futures_util::future::join_all(runs).await.into_iter().flat_map(Result::unwrap).collect();
        assert!(summaries.iter().all(|s| s.failure.is_none()), "{summaries:#?}");
        if round > 0 && summaries.iter().all(|s| s.records_in == 0) {
            return;
        }
    }
}

/// Every record of a topic, all partitions: (partition, key, weir-id, value), sorted.
async fn records(log: &dyn Log, topic: &str) -> Vec<(u32, Option<Vec<u8>>, Vec<u8>, Vec<u8>)> {
    let mut all = Vec::new();
    for partition in 0..PARTITIONS {
        let mut next = 0;
        loop {
            let batch = log.read(topic, partition, next, 10_000).await.unwrap();
            if batch.records.is_empty() {
                break;
            }
            for stored in batch.records {
                let id = stored.record.header("weir-id").unwrap_or_default().to_vec();
                all.push((partition, stored.record.key, id, stored.record.value));
            }
            next = batch.next_offset;
        }
    }
    all.sort();
    all
}

/// Runs the phases, one after the other, with `workers` workers over a fresh log in `dir`; returns the log and
/// each worker's store.
async fn run_with(dir: &Path, workers: u32, phases: &[SourceBatch]) -> (Arc<dyn Log>, Vec<(Worker, Arc<Store>)>) {
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies");
    let config = config(&policies);
    let log: Arc<dyn Log> = Arc::new(EmbeddedLog::open(&dir.join("log"), EmbeddedConfig::default()).unwrap());
    let stores: Vec<(Worker, Arc<Store>)> = (0..workers)
        .map(|i| (Worker::new(i, workers).unwrap(), Arc::new(Store::open(&dir.join(format!("store{i}"))).unwrap())))
        .collect();
    for batch in phases {
        run_settled(&config, &log, &stores, batch.clone()).await;
    }
    (log, stores)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_over_disjoint_partitions_produce_what_one_worker_does() {
    let dir = tempfile::tempdir().unwrap();
    // Built once: raw records carry the time they were received.
    let phases = [users(), sign_ins(), flush_events()];
    let (one, _) = run_with(&dir.path().join("one"), 1, &phases).await;
    let (two, stores) = run_with(&dir.path().join("two"), 2, &phases).await;

    for topic in ["raw.okta", "events", "enriched", "decisions", "decisions.violations", "per_decision", "per_user"] {
        let expected = records(one.as_ref(), topic).await;
        let got = records(two.as_ref(), topic).await;
        assert!(!expected.is_empty(), "one worker produced nothing on {topic}");
        assert_eq!(got.len(), expected.len(), "{topic}: record count with two workers");
        assert!(got == expected, "{topic}: the records of two workers differ from those of one");
    }
    assert!(records(two.as_ref(), "dlq").await.is_empty());
    let enriched = records(one.as_ref(), "enriched").await;
    let joined = enriched.iter().filter(|r| r.1.as_deref().is_some_and(|key| key.starts_with(b"00u"))).count();
    assert_eq!(joined, enriched.len(), "every event found its user, those keyed by login too");
    let decisions: BTreeSet<Vec<u8>> =
        records(one.as_ref(), "per_decision").await.into_iter().filter_map(|r| r.1).collect();
    assert!(decisions.len() >= 2, "the decisions aggregate has several keys: {decisions:?}");

    // Each partition of each input is consumed by exactly one worker, to its end; the enrich
    // stage reads every partition on both (global tables).
    let mut consumed: BTreeMap<(String, String, u32), Vec<u32>> = BTreeMap::new();
    for (worker, store) in &stores {
        for (consumer, topic, partition, offset) in store.offsets().unwrap() {
            if consumer.ends_with("#produced") {
                continue;
            }
            let end = two.offsets(&topic, partition).await.unwrap().end;
            assert_eq!(offset, end, "worker {worker}: {consumer} on {topic}/{partition} did not catch up");
            consumed.entry((consumer, topic, partition)).or_default().push(worker.index());
        }
    }
    let stages = [
        "events",
        "enriched",
        "decisions",
        "per_decision.repartition",
        "per_decision",
        "per_user.repartition",
        "per_user",
    ];
    for stage in stages {
        let of_stage: Vec<_> = consumed.iter().filter(|((consumer, ..), _)| consumer == stage).collect();
        assert!(!of_stage.is_empty(), "{stage} consumed nothing");
        for ((_, topic, partition), workers) in of_stage {
            let expected = if stage == "enriched" { vec![0, 1] } else { vec![partition % 2] };
            assert_eq!(workers, &expected, "{stage} on {topic}/{partition}");
        }
    }
    for (topic, consumer) in
        [("raw.okta", "events"), ("decisions", "per_decision.repartition"), ("enriched", "decisions")]
    {
        for partition in 0..PARTITIONS {
            assert!(two.offsets(topic, partition).await.unwrap().end > 0, "{topic}/{partition} is empty: a weak test");
            assert!(consumed.contains_key(&(consumer.to_string(), topic.to_string(), partition)));
        }
    }
}

#[tokio::test]
async fn a_store_refuses_another_worker_assignment() {
    let dir = tempfile::tempdir().unwrap();
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies");
    let config = config(&policies);
    let log: Arc<dyn Log> = Arc::new(EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap());
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let run_as = |worker: Worker| run_worker(&config, log.clone(), store.clone(), worker, VecDeque::new(), false);
    run_as(Worker::new(1, 2).unwrap()).await.unwrap();
    run_as(Worker::new(1, 2).unwrap()).await.unwrap();
    let error = run_as(Worker::SOLE).await.unwrap_err();
    assert!(matches!(error, RunError::WorkerMismatch { ref recorded, .. } if recorded == "1/2"), "{error}");
    let message = error.to_string();
    assert!(message.contains("not 0/1") && message.contains("--worker 1/2"), "{message}");
}

/// Ends every worker's input (`--until-idle --drain`), once all of them have settled.
async fn drain_all(log: &Arc<dyn Log>, stores: &[(Worker, Arc<Store>)]) {
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies");
    let config = config(&policies);
    let runs = stores
        .iter()
        .map(|(worker, store)| run_worker(&config, log.clone(), store.clone(), *worker, VecDeque::new(), true));
    let summaries: Vec<StageSummary> =
        futures_util::future::join_all(runs).await.into_iter().flat_map(Result::unwrap).collect();
    assert!(summaries.iter().all(|s| s.failure.is_none()), "{summaries:#?}");
}

/// `records`, with each aggregate's `emitted_at` (the latest event time its worker saw, for the
/// windows a drain fires) set to 0.
async fn aggregates_but_emitted_at(log: &dyn Log, topic: &str) -> Vec<(u32, Option<Vec<u8>>, Vec<u8>, Vec<u8>)> {
    let mut all = records(log, topic).await;
    for (.., value) in &mut all {
        let mut aggregate: weir_schemas::events::WindowAggregate = weir_schemas::decode(value).unwrap();
        aggregate.emitted_at = 0;
        *value = weir_schemas::encode(&aggregate).unwrap();
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_worker_drains_its_own_windows_and_together_they_fire_what_one_worker_does() {
    let dir = tempfile::tempdir().unwrap();
    let phases = [users(), sign_ins(), flush_events()];
    let (one, one_stores) = run_with(&dir.path().join("one"), 1, &phases).await;
    let (two, two_stores) = run_with(&dir.path().join("two"), 2, &phases).await;
    let before = records(one.as_ref(), "per_user").await.len();
    drain_all(&one, &one_stores).await;
    drain_all(&two, &two_stores).await;
    assert!(records(one.as_ref(), "per_user").await.len() > before, "the drain fired the flush events' windows");
    for topic in ["per_decision", "per_user"] {
        let expected = aggregates_but_emitted_at(one.as_ref(), topic).await;
        let got = aggregates_but_emitted_at(two.as_ref(), topic).await;
        assert_eq!(got.len(), expected.len(), "{topic}: record count with two workers");
        assert!(got == expected, "{topic}: the drained records of two workers differ from those of one");
    }
    // A second drain on each worker fires nothing more.
    let after = records(two.as_ref(), "per_user").await.len();
    drain_all(&two, &two_stores).await;
    assert_eq!(records(two.as_ref(), "per_user").await.len(), after);
}
