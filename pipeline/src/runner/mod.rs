//! The runner: runs every component of a pipeline as a task and moves records between them
//! through the log.
//!
//! It is the only code that touches the log and the store on the components' behalf, so the
//! guarantees of DESIGN.md hold here, once:
//!
//! - a source's batch is appended (durable) before its cursor is committed, and the source is
//!   told only after that;
//! - an operator's outputs are appended before its state changes and input offsets are
//!   committed, together, in one store transaction; output records get a deterministic
//!   `weir-id` header derived from their input, so a replay is recognisable downstream;
//! - a sink's offset moves only over records the destination acknowledged or that went to `dlq`;
//! - rejected input goes to `dlq` with the reason and the original bytes, and the stage goes on;
//! - a stage that fails fatally stops alone; the others carry on;
//! - with `--until-idle --drain`, an operator whose input ended (and every stage upstream's with
//!   it) gets `Operator::end_of_input`, committed through the same path as a batch, before the
//!   stages downstream end.
//!
//! Stages read from the log at their own pace, so a slow sink builds lag on disk, not in memory.

mod deliver;
mod metrics;
mod replay;
mod stages;
mod state;
mod worker;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use weir_schemas::component::{Operator, Partitioning, Sink, Source, StateKeyFn};

use crate::config::{PipelineConfig, Role, DLQ_TOPIC};
use crate::log::{Log, LogError};
use crate::store::{Store, StoreError};
pub use worker::{Worker, WorkerError};

/// Why `drain` is refused without `until_idle`, in one line.
pub const DRAIN_NEEDS_UNTIL_IDLE: &str = "--drain needs --until-idle: it ends the input of a bounded run (every open \
     window fires), which would make the later events of a continuous run late";

/// Records read per batch by operators and sinks.
pub const READ_BATCH: usize = 1000;

/// Errors that stop a whole run (a stage's own failure stops only that stage).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The pipeline does not fit together (found once its components are built).
    #[error("{0}")]
    Config(String),
    /// The store was built by another worker assignment, so its state and offsets cover other
    /// partitions than this worker's.
    #[error(
        "the store {} was built by worker {recorded}, not {requested}: its state and offsets cover worker \
         {recorded}'s partitions. Run it with --worker {recorded} again; or, to change the workers, stop every \
         worker, delete each worker's store.redb and start them all with the new --worker, so that every stage \
         rebuilds its state by replaying its partitions from the log (sources start without a cursor)",
        store.display()
    )]
    WorkerMismatch {
        /// The store's file.
        store: std::path::PathBuf,
        /// The assignment it was built by.
        recorded: String,
        /// The assignment asked for.
        requested: Worker,
    },
}

/// A built component, ready to run.
pub enum Component {
    /// A source.
    Source(Box<dyn Source>),
    /// A source that receives pushed events on Weir's HTTP server.
    PushSource(Box<dyn Source>, crate::server::Endpoint),
    /// An operator.
    Operator(Box<dyn Operator>),
    /// A sink.
    Sink(Box<dyn Sink>),
}

/// Counters and status of one stage, shared between its task and the summary.
#[derive(Debug)]
pub struct StageProgress {
    /// Records read (operators, sinks) or received (sources).
    pub records_in: AtomicU64,
    /// Records appended to the output topic (sources, operators) or delivered (sinks).
    pub records_out: AtomicU64,
    /// Records sent to `dlq`.
    pub dead_lettered: AtomicU64,
    /// Retries after retryable errors (the runner's).
    pub retries: AtomicU64,
    /// Sources: bytes of the raw records appended.
    pub bytes_in: AtomicU64,
    /// Sources: requests the source itself retried (inside its polls).
    pub source_retries: AtomicU64,
    /// Sources: the event time (ms) the cursor has reached; `i64::MIN` when unknown.
    pub cursor_time_ms: AtomicI64,
    /// Sinks: calls to the destination (`deliver`), and their total duration in µs.
    pub deliver_calls: AtomicU64,
    /// See `deliver_calls`.
    pub deliver_micros: AtomicU64,
    /// Records on the stage's inputs not committed yet, as last measured.
    pub lag: AtomicU64,
    /// Set once the stage will produce nothing more in this run.
    pub done: AtomicBool,
    /// Set (before `done`) when the stage ended because it had read everything it ever will:
    /// a source that finished (or went idle, with `--until-idle`), a consuming stage whose
    /// inputs were read to their end after every stage writing them ended so — not a stage
    /// that failed or was stopped. Only below such stages does `--drain` end an operator's
    /// input. A source another worker runs counts as ended (see `RunOptions::drain`).
    pub input_ended: AtomicBool,
    /// Why the stage stopped, if it failed.
    pub failure: Mutex<Option<String>>,
}

impl Default for StageProgress {
    fn default() -> Self {
        StageProgress {
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            source_retries: AtomicU64::new(0),
            cursor_time_ms: AtomicI64::new(i64::MIN),
            deliver_calls: AtomicU64::new(0),
            deliver_micros: AtomicU64::new(0),
            lag: AtomicU64::new(0),
            done: AtomicBool::new(false),
            input_ended: AtomicBool::new(false),
            failure: Mutex::new(None),
        }
    }
}

impl StageProgress {
    /// Every retry: the runner's and the source's own.
    pub fn all_retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed) + self.source_retries.load(Ordering::Relaxed)
    }
}

/// One stage's line in the end-of-run summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageSummary {
    /// Component name.
    pub name: String,
    /// source, operator or sink.
    pub role: &'static str,
    /// Its type.
    pub type_name: String,
    /// Records in.
    pub records_in: u64,
    /// Records out.
    pub records_out: u64,
    /// Records dead-lettered.
    pub dead_lettered: u64,
    /// Retries.
    pub retries: u64,
    /// Records on its inputs it has not committed yet.
    pub lag: u64,
    /// Why it failed, if it did.
    pub failure: Option<String>,
}

/// Sets a stage's `done` flag when dropped; records a panic as the stage's failure.
struct DoneGuard(Arc<StageProgress>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut failure = self.0.failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            failure.get_or_insert_with(|| "the stage panicked (a bug: please report it)".to_string());
        }
        self.0.done.store(true, Ordering::SeqCst);
    }
}

/// How to run.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Stop once every source is drained and every stage has caught up.
    pub until_idle: bool,
    /// With `until_idle` only (a bounded run: a replay or a backfill): once an operator has
    /// caught up and every stage upstream ended by reaching the end of its input, call its
    /// [`Operator::end_of_input`] (an aggregate fires every open window) and commit what it
    /// emits like a batch, before the stages downstream end. Never in a continuous run: the
    /// later events of those windows would be late. With several workers each worker ends the
    /// input of its own operators, over its own partitions' state, once its own stages caught
    /// up with what is on the log when they look (a source another worker runs counts as
    /// ended): drain only once every worker's input is on the log (docs/WORKERS.md).
    pub drain: bool,
    /// Which share of the partitions this process works on.
    pub worker: Worker,
}

/// What every stage task gets.
#[derive(Clone)]
pub(crate) struct StageContext {
    pub name: String,
    pub role: Role,
    pub log: Arc<dyn Log>,
    pub store: Arc<Store>,
    /// Partitions of every topic the pipeline reads or writes.
    pub topic_partitions: Arc<BTreeMap<String, u32>>,
    pub progress: Arc<StageProgress>,
    /// Inputs: (topic, the progress of every stage that writes it).
    pub inputs: Vec<(String, Vec<Arc<StageProgress>>)>,
    /// Reads every partition of its inputs (an operator with global tables), not only the
    /// worker's own; the others' records only update its tables.
    pub all_partitions: bool,
    pub output_topic: Option<String>,
    /// A sink's route: only matching records are delivered.
    pub route: Option<Arc<weir_operators::aggregate::Filter>>,
    pub shutdown: watch::Receiver<bool>,
    pub options: RunOptions,
    pub redact: Arc<dyn Fn(&str) -> String + Send + Sync>,
}

impl StageContext {
    /// How many partitions a topic of this pipeline has.
    pub fn partitions(&self, topic: &str) -> u32 {
        self.topic_partitions.get(topic).copied().unwrap_or(1)
    }

    /// Whether a shutdown was asked for.
    pub fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Sleeps, waking early on shutdown; returns false if shutting down.
    pub async fn sleep(&mut self, duration: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(duration) => !self.stopping(),
            _ = self.shutdown.changed() => false,
        }
    }

    /// Whether every stage writing this stage's inputs is done.
    pub fn upstream_done(&self) -> bool {
        self.inputs.iter().all(|(_, writers)| writers.iter().all(|w| w.done.load(Ordering::SeqCst)))
    }

    /// Whether every stage writing this stage's inputs ended by reaching the end of its own
    /// input (see [`StageProgress::input_ended`]).
    pub fn upstream_ended(&self) -> bool {
        self.inputs.iter().all(|(_, writers)| writers.iter().all(|w| w.input_ended.load(Ordering::SeqCst)))
    }

    /// Records a failure that stops this stage.
    pub fn fail(&self, message: String) {
        let message = (self.redact)(&message);
        tracing::error!(stage = %self.name, error = %message, "stage stopped");
        *self.progress.failure.lock().expect("failure lock poisoned") = Some(message);
    }
}

/// The suffix of the internal topic (and stage) that repartitions an operator's input by its
/// state key when several workers share the pipeline.
pub const REPARTITION_SUFFIX: &str = ".repartition";

/// A stage as this worker runs it: a component of the config, or the internal stage that
/// repartitions an operator's input.
struct StagePlan {
    name: String,
    role: Role,
    type_name: String,
    /// The topics it reads, with the progress of every stage that writes them.
    inputs: Vec<(String, Vec<Arc<StageProgress>>)>,
    output_topic: Option<String>,
    /// Reads every partition of its inputs (global tables), not only this worker's.
    all_partitions: bool,
    progress: Arc<StageProgress>,
    /// False for a source on a worker other than 0: it does not run here.
    runs: bool,
    /// For the internal stage `<operator>.repartition`: the operator's state key.
    repartition_by: Option<StateKeyFn>,
}

/// What measuring a stage's lag needs, without borrowing the config.
#[derive(Clone)]
struct LagSpec {
    name: String,
    topics: Vec<String>,
    all_partitions: bool,
    progress: Arc<StageProgress>,
}

/// Refuses a store built by another worker assignment: its state and offsets cover other
/// partitions. Records the assignment of a new store.
fn check_worker_assignment(store: &Store, worker: Worker) -> Result<(), RunError> {
    let recorded = store.claim_worker_assignment(&worker.to_string(), &Worker::SOLE.to_string())?;
    if recorded != worker.to_string() {
        return Err(RunError::WorkerMismatch { store: store.path().to_path_buf(), recorded, requested: worker });
    }
    Ok(())
}

/// Runs a pipeline until shutdown (or, with `until_idle`, until it has nothing left to do), as
/// the worker `options.worker`: its stages read only the partitions that worker owns (see
/// docs/WORKERS.md); sources run on worker 0 only.
pub async fn run(
    config: &PipelineConfig,
    components: BTreeMap<String, Component>,
    log: Arc<dyn Log>,
    store: Arc<Store>,
    options: RunOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<Vec<StageSummary>, RunError> {
    if options.drain && !options.until_idle {
        return Err(RunError::Config(DRAIN_NEEDS_UNTIL_IDLE.to_string()));
    }
    let worker = options.worker;
    check_worker_assignment(&store, worker)?;
    // Topics that already exist keep their partition count; `[log] partitions` applies to new ones.
    let mut topic_partitions = BTreeMap::new();
    let mut side_topics = Vec::new();
    let mut partitionings = BTreeMap::new();
    for (name, component) in &components {
        if let Component::Operator(operator) = component {
            side_topics.extend(operator.side_outputs().into_iter().map(|side| format!("{name}.{side}")));
            partitionings.insert(name.clone(), operator.partitioning());
        }
    }
    for spec in &config.components {
        for input in &spec.inputs {
            if config.component(input).is_none() && input != DLQ_TOPIC && !side_topics.contains(input) {
                return Err(RunError::Config(format!(
                    "{}: {}: `{input}` is not a side output of its operator",
                    config.path.display(),
                    spec.key("inputs")
                )));
            }
        }
    }
    // One worker holds every key already; several need each keyed operator's input re-keyed.
    let repartitioned: BTreeMap<String, StateKeyFn> = partitionings
        .iter()
        .filter_map(|(name, partitioning)| match partitioning {
            Partitioning::ByStateKey(key) if worker.count() > 1 => Some((name.clone(), key.clone())),
            _ => None,
        })
        .collect();
    let topics = std::iter::once(DLQ_TOPIC.to_string())
        .chain(config.components.iter().filter_map(|c| c.output_topic()))
        .chain(side_topics)
        .chain(repartitioned.keys().map(|name| format!("{name}{REPARTITION_SUFFIX}")));
    for topic in topics {
        let info = log.ensure_topic(&topic, config.log.partitions).await?;
        if info.partitions != config.log.partitions {
            tracing::warn!(
                topic = %topic, partitions = info.partitions, configured = config.log.partitions,
                "the topic exists with another partition count; keeping it"
            );
        }
        topic_partitions.insert(topic, info.partitions);
    }
    let topic_partitions = Arc::new(topic_partitions);
    let progress: BTreeMap<&str, Arc<StageProgress>> =
        config.components.iter().map(|c| (c.name.as_str(), Arc::new(StageProgress::default()))).collect();
    // Everything but the sinks that read `dlq` may write to it (operators may not read it).
    let dlq_writers: Vec<Arc<StageProgress>> = config
        .components
        .iter()
        .filter(|c| !c.inputs.iter().any(|i| i == DLQ_TOPIC))
        .map(|c| progress[c.name.as_str()].clone())
        .collect();

    let mut plans = Vec::new();
    for spec in &config.components {
        let inputs: Vec<(String, Vec<Arc<StageProgress>>)> = spec
            .inputs
            .iter()
            .map(|input| {
                let topic = config.input_topic(input).expect("inputs were checked when the config was parsed");
                let writers = match config.writer_of(input) {
                    _ if input == DLQ_TOPIC => dlq_writers.clone(),
                    Some(writer) => vec![progress[writer.name.as_str()].clone()],
                    None => unreachable!("inputs were checked above"),
                };
                (topic, writers)
            })
            .collect();
        let stage_progress = progress[spec.name.as_str()].clone();
        let runs = spec.role != Role::Source || worker.runs_sources();
        if !runs {
            stage_progress.input_ended.store(true, Ordering::SeqCst);
            stage_progress.done.store(true, Ordering::SeqCst);
        }
        let mut plan = StagePlan {
            name: spec.name.clone(),
            role: spec.role,
            type_name: spec.type_name.clone(),
            inputs,
            output_topic: spec.output_topic(),
            all_partitions: matches!(partitionings.get(&spec.name), Some(Partitioning::GlobalTables)),
            progress: stage_progress,
            runs,
            repartition_by: None,
        };
        if let Some(key) = repartitioned.get(&spec.name) {
            let name = format!("{}{REPARTITION_SUFFIX}", spec.name);
            let repartition = StagePlan {
                name: name.clone(),
                role: Role::Operator,
                type_name: "repartition".to_string(),
                inputs: std::mem::take(&mut plan.inputs),
                output_topic: Some(name.clone()),
                all_partitions: false,
                progress: Arc::new(StageProgress::default()),
                runs: true,
                repartition_by: Some(key.clone()),
            };
            plan.inputs = vec![(name, vec![repartition.progress.clone()])];
            plans.push(repartition);
        }
        plans.push(plan);
    }
    warn_of_idle_topics(&plans, worker, &topic_partitions);
    let lag_specs: Vec<LagSpec> = plans
        .iter()
        .map(|plan| LagSpec {
            name: plan.name.clone(),
            topics: plan.inputs.iter().map(|(topic, _)| topic.clone()).collect(),
            all_partitions: plan.all_partitions,
            progress: plan.progress.clone(),
        })
        .collect();

    let mut endpoints = Vec::new();
    let mut components = components;
    for (name, component) in std::mem::take(&mut components) {
        match component {
            // A push source not run by this worker (see `Worker::runs_sources`) takes no pushes.
            Component::PushSource(..) if !worker.runs_sources() => {}
            Component::PushSource(source, endpoint) => {
                endpoints.push(endpoint);
                components.insert(name, Component::Source(source));
            }
            other => {
                components.insert(name, other);
            }
        }
    }
    let server = match &config.server {
        Some(server) => {
            let stages: Vec<(String, &'static str, String, Arc<StageProgress>)> = plans
                .iter()
                .map(|p| (p.name.clone(), role_name(p.role), p.type_name.clone(), p.progress.clone()))
                .collect();
            let render = Arc::new(move || metrics::render(&stages, stages::now_ms()));
            // Lag needs the log and the store: measured now and then, not on each scrape.
            let (lag_specs, log, store, partitions) =
                (lag_specs.clone(), log.clone(), store.clone(), topic_partitions.clone());
            let mut stop = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    for spec in &lag_specs {
                        if let Ok(lag) = stage_lag(spec, worker, log.as_ref(), &store, &partitions).await {
                            spec.progress.lag.store(lag, Ordering::Relaxed);
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(LAG_EVERY) => {}
                        _ = stop.changed() => return,
                    }
                }
            });
            let handle = crate::server::start(server.listen, endpoints, render, shutdown.clone())
                .await
                .map_err(|e| RunError::Config(format!("[server] cannot listen on {}: {e}", server.listen)))?;
            Some(handle)
        }
        None if !endpoints.is_empty() => {
            return Err(RunError::Config(format!(
                "source {} receives pushed events but the config has no [server] table to receive them on",
                endpoints[0].source
            )))
        }
        None => None,
    };
    let secrets = config.secrets.clone();
    let redact: Arc<dyn Fn(&str) -> String + Send + Sync> =
        Arc::new(move |text: &str| crate::config::redact(text, &secrets));

    let mut tasks = tokio::task::JoinSet::new();
    for plan in &plans {
        if !plan.runs {
            continue;
        }
        let component = match &plan.repartition_by {
            Some(key) => Component::Operator(Box::new(worker::Repartition::new(key.clone()))),
            None => match components.remove(&plan.name) {
                Some(component) => component,
                None => continue,
            },
        };
        let route = match config.component(&plan.name) {
            Some(spec) => crate::components::route_filter(spec, config).map_err(|e| RunError::Config(e.to_string()))?,
            None => None,
        };
        let context = StageContext {
            name: plan.name.clone(),
            role: plan.role,
            log: log.clone(),
            store: store.clone(),
            topic_partitions: topic_partitions.clone(),
            progress: plan.progress.clone(),
            inputs: plan.inputs.clone(),
            all_partitions: plan.all_partitions,
            output_topic: plan.output_topic.clone(),
            route: route.map(Arc::new),
            shutdown: shutdown.clone(),
            options,
            redact: redact.clone(),
        };
        tasks.spawn(async move {
            // Marks the stage done however it ends, a panic included, so downstream stages and
            // `--until-idle` never wait for it forever.
            let _done = DoneGuard(context.progress.clone());
            match component {
                Component::Source(source) | Component::PushSource(source, _) => {
                    stages::run_source(context, source).await
                }
                Component::Operator(operator) => stages::run_operator(context, operator).await,
                Component::Sink(sink) => stages::run_sink(context, sink).await,
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined {
            tracing::error!(error = %e, "a stage task ended abnormally");
        }
    }
    log.flush().await?;
    if let Some(server) = server {
        server.abort();
    }

    let mut summaries = Vec::new();
    for (plan, lag_spec) in plans.iter().zip(&lag_specs) {
        let p = &plan.progress;
        let lag = stage_lag(lag_spec, worker, log.as_ref(), &store, &topic_partitions).await?;
        summaries.push(StageSummary {
            name: plan.name.clone(),
            role: role_name(plan.role),
            type_name: plan.type_name.clone(),
            records_in: p.records_in.load(Ordering::SeqCst),
            records_out: p.records_out.load(Ordering::SeqCst),
            dead_lettered: p.dead_lettered.load(Ordering::SeqCst),
            retries: p.all_retries(),
            lag,
            failure: p.failure.lock().expect("failure lock poisoned").clone(),
        });
    }
    Ok(summaries)
}

/// Warns, once per topic, when this worker owns no partition of a topic one of its stages reads:
/// there are more workers than partitions, and this worker stays idle on it.
fn warn_of_idle_topics(plans: &[StagePlan], worker: Worker, topic_partitions: &BTreeMap<String, u32>) {
    let mut warned = std::collections::BTreeSet::new();
    for plan in plans.iter().filter(|plan| plan.runs && !plan.all_partitions) {
        for (topic, _) in &plan.inputs {
            let partitions = topic_partitions.get(topic).copied().unwrap_or(1);
            if worker.partitions_of(partitions).next().is_none() && warned.insert(topic.clone()) {
                tracing::warn!(
                    topic = %topic, partitions, worker = %worker,
                    "this worker owns no partition of the topic (more workers than partitions): \
                     its stages stay idle on it; give the topic at least as many partitions as there are workers"
                );
            }
        }
    }
}

/// The partitions of `topic` a stage of this worker reads: its own, or all for global tables.
pub(crate) fn read_partitions(worker: Worker, all_partitions: bool, partitions: u32) -> Vec<u32> {
    if all_partitions {
        (0..partitions).collect()
    } else {
        worker.partitions_of(partitions).collect()
    }
}

/// Records on the partitions a stage reads that it has not committed yet.
async fn stage_lag(
    spec: &LagSpec,
    worker: Worker,
    log: &dyn Log,
    store: &Store,
    topic_partitions: &BTreeMap<String, u32>,
) -> Result<u64, RunError> {
    let mut lag = 0;
    for topic in &spec.topics {
        let partitions = topic_partitions.get(topic).copied().unwrap_or(0);
        for partition in read_partitions(worker, spec.all_partitions, partitions) {
            let end = log.offsets(topic, partition).await?.end;
            let committed = store.offset(&spec.name, topic, partition)?.unwrap_or(0);
            lag += end.saturating_sub(committed);
        }
    }
    Ok(lag)
}

/// How often `/metrics`' lag figures are measured.
const LAG_EVERY: Duration = Duration::from_secs(5);

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Source => "source",
        Role::Operator => "operator",
        Role::Sink => "sink",
    }
}

#[cfg(test)]
mod drain_tests;
#[cfg(test)]
mod parallel_tests;
#[cfg(test)]
mod tests;
