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
//! - a stage that fails fatally stops alone; the others carry on.
//!
//! Stages read from the log at their own pace, so a slow sink builds lag on disk, not in memory.

mod deliver;
mod metrics;
mod replay;
mod stages;
mod state;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use weir_schemas::component::{Operator, Sink, Source};

use crate::config::{PipelineConfig, Role, DLQ_TOPIC};
use crate::log::{Log, LogError};
use crate::store::{Store, StoreError};

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

    /// Records a failure that stops this stage.
    pub fn fail(&self, message: String) {
        let message = (self.redact)(&message);
        tracing::error!(stage = %self.name, error = %message, "stage stopped");
        *self.progress.failure.lock().expect("failure lock poisoned") = Some(message);
    }
}

/// Runs a pipeline until shutdown (or, with `until_idle`, until it has nothing left to do).
pub async fn run(
    config: &PipelineConfig,
    components: BTreeMap<String, Component>,
    log: Arc<dyn Log>,
    store: Arc<Store>,
    options: RunOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<Vec<StageSummary>, RunError> {
    // Topics that already exist keep their partition count; `[log] partitions` applies to new ones.
    let mut topic_partitions = BTreeMap::new();
    let mut side_topics = Vec::new();
    for (name, component) in &components {
        if let Component::Operator(operator) = component {
            side_topics.extend(operator.side_outputs().into_iter().map(|side| format!("{name}.{side}")));
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
    let topics = std::iter::once(DLQ_TOPIC.to_string())
        .chain(config.components.iter().filter_map(|c| c.output_topic()))
        .chain(side_topics);
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
    let mut endpoints = Vec::new();
    let mut components = components;
    for (name, component) in std::mem::take(&mut components) {
        match component {
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
            let stages: Vec<(String, &'static str, String, Arc<StageProgress>)> = config
                .components
                .iter()
                .map(|c| (c.name.clone(), role_name(c.role), c.type_name.clone(), progress[c.name.as_str()].clone()))
                .collect();
            let render = Arc::new(move || metrics::render(&stages, stages::now_ms()));
            // Lag needs the log and the store: measured now and then, not on each scrape.
            let (config, log, store, partitions) =
                (config.clone(), log.clone(), store.clone(), topic_partitions.clone());
            let progress = progress.iter().map(|(name, p)| (name.to_string(), p.clone())).collect::<Vec<_>>();
            let mut stop = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    for (name, p) in &progress {
                        let Some(spec) = config.component(name) else { continue };
                        if let Ok(lag) = stage_lag(&config, spec, log.as_ref(), &store, &partitions).await {
                            p.lag.store(lag, Ordering::Relaxed);
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
    for spec in &config.components {
        let Some(component) = components.remove(&spec.name) else { continue };
        let inputs = spec
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
        let route = crate::components::route_filter(spec, config).map_err(|e| RunError::Config(e.to_string()))?;
        let context = StageContext {
            name: spec.name.clone(),
            role: spec.role,
            log: log.clone(),
            store: store.clone(),
            topic_partitions: topic_partitions.clone(),
            progress: progress[spec.name.as_str()].clone(),
            inputs,
            output_topic: spec.output_topic(),
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
    for spec in &config.components {
        let p = &progress[spec.name.as_str()];
        let lag = stage_lag(config, spec, log.as_ref(), &store, &topic_partitions).await?;
        summaries.push(StageSummary {
            name: spec.name.clone(),
            role: role_name(spec.role),
            type_name: spec.type_name.clone(),
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

/// Records on a stage's inputs it has not committed yet.
async fn stage_lag(
    config: &PipelineConfig,
    spec: &crate::config::ComponentSpec,
    log: &dyn Log,
    store: &Store,
    topic_partitions: &BTreeMap<String, u32>,
) -> Result<u64, RunError> {
    let mut lag = 0;
    for input in &spec.inputs {
        let topic = config.input_topic(input).expect("inputs were checked when the config was parsed");
        for partition in 0..topic_partitions.get(&topic).copied().unwrap_or(0) {
            let end = log.offsets(&topic, partition).await?.end;
            let committed = store.offset(&spec.name, &topic, partition)?.unwrap_or(0);
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
mod tests;
