//! The contracts between components (sources, operators, sinks) and the runner.
//!
//! Components never touch the log. The runner reads their inputs, appends their outputs, persists
//! cursors, offsets and state, and only then tells a component that its work is committed. That is
//! how DESIGN.md's guarantees hold in one place:
//!
//! - a [`Source`] hands over a batch with the cursor that follows it; the runner appends the batch,
//!   waits until it is durable, persists the cursor and only then calls [`Source::committed`];
//! - an [`Operator`] turns input records into output records and keyed state changes; the runner
//!   commits state and input offsets together, after the outputs are durable;
//! - a [`Sink`] says which records the destination acknowledged; the runner commits the sink's
//!   offset only over acknowledged or dead-lettered records.

use std::time::Duration;

use async_trait::async_trait;

use crate::record::{Record, StoredRecord};

/// How bad a component error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Worth trying again later (a timeout, a 5xx, a 429).
    Retryable,
    /// Trying again will not help (bad credentials, bad configuration): stop this component.
    Fatal,
}

/// An error a component reports to the runner. The message must never contain a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ComponentError {
    /// Whether the runner should retry or stop the component.
    pub kind: ErrorKind,
    /// What went wrong, where and why, in one line.
    pub message: String,
}

impl ComponentError {
    /// A retryable error.
    pub fn retryable(message: impl Into<String>) -> Self {
        ComponentError { kind: ErrorKind::Retryable, message: message.into() }
    }

    /// A fatal error.
    pub fn fatal(message: impl Into<String>) -> Self {
        ComponentError { kind: ErrorKind::Fatal, message: message.into() }
    }
}

/// Input that a component could not process. The runner writes it to the `dlq` topic with the
/// component's name and the input's position, and carries on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// Why it was rejected: what, where and why, without secrets.
    pub reason: String,
    /// The original bytes, exactly as received.
    pub original: Vec<u8>,
}

/// A batch from a source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceBatch {
    /// Records for the source's raw topic (`raw.<name>`).
    pub records: Vec<Record>,
    /// Input the source could not turn into records.
    pub rejected: Vec<Rejected>,
    /// The cursor that follows this batch: where to resume once it is durable.
    pub cursor: Option<String>,
}

/// What a source has for the runner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourcePoll {
    /// New records.
    Batch(SourceBatch),
    /// Nothing new now: poll again after this delay. `weir run --until-idle` stops the source here.
    Idle(Duration),
    /// A finite source that has delivered everything it ever will.
    Finished,
}

/// What a source knows for its metrics beyond what the runner counts itself (records, bytes,
/// dead letters, the runner's own retries).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Requests the source sent again after a retryable failure inside its polls, so far.
    pub retries: u64,
    /// How far the source has read, as event time (ms since the Unix epoch): `now - cursor_time`
    /// is its lag. `None` when it does not know.
    pub cursor_time_ms: Option<i64>,
}

/// A source connector: pulls or receives vendor events.
#[async_trait]
pub trait Source: Send {
    /// Called once before the first poll, with the cursor last committed (None on first start).
    async fn open(&mut self, committed_cursor: Option<String>) -> Result<(), ComponentError>;

    /// The next batch, or why there is none.
    async fn poll(&mut self) -> Result<SourcePoll, ComponentError>;

    /// The last batch polled is durable on the log and its cursor is persisted.
    async fn committed(&mut self, _cursor: Option<&str>) -> Result<(), ComponentError> {
        Ok(())
    }

    /// Its metrics so far (read by the runner after every poll).
    fn stats(&self) -> SourceStats {
        SourceStats::default()
    }
}

/// Keyed state an operator reads and changes while it processes input. Changes are buffered by
/// the runner and committed in the same transaction as the input offsets, so after a crash the
/// state always matches the offsets it was built from.
pub trait State {
    /// The value under `key` in `table`.
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, ComponentError>;
    /// Sets the value under `key` in `table`.
    fn put(&mut self, table: &str, key: &[u8], value: Vec<u8>);
    /// Removes `key` from `table`.
    fn delete(&mut self, table: &str, key: &[u8]);
    /// Calls `each(key, value)` for every entry of `table`, in key order (committed entries with
    /// this batch's changes applied).
    fn scan(&self, table: &str, each: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), ComponentError>;
}

/// State held in memory: for tests, benchmarks and tools that run an operator without a store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryState {
    /// (table, key) → value.
    pub tables: std::collections::BTreeMap<(String, Vec<u8>), Vec<u8>>,
}

impl State for MemoryState {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, ComponentError> {
        Ok(self.tables.get(&(table.to_string(), key.to_vec())).cloned())
    }

    fn put(&mut self, table: &str, key: &[u8], value: Vec<u8>) {
        self.tables.insert((table.to_string(), key.to_vec()), value);
    }

    fn delete(&mut self, table: &str, key: &[u8]) {
        self.tables.remove(&(table.to_string(), key.to_vec()));
    }

    fn scan(&self, table: &str, each: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), ComponentError> {
        for ((t, key), value) in self.tables.range((table.to_string(), Vec::new())..) {
            if t != table {
                break;
            }
            each(key, value);
        }
        Ok(())
    }
}

/// What an operator produced for one input record.
#[derive(Debug, Default)]
pub struct Output {
    /// Records for the operator's output topic.
    pub records: Vec<Record>,
    /// Records for side outputs: (side output name, record); the topic is `<operator>.<side>`.
    pub side: Vec<(String, Record)>,
    /// Input the operator could not process.
    pub rejected: Vec<Rejected>,
}

impl Output {
    /// Emits a record on the output topic.
    pub fn emit(&mut self, record: Record) {
        self.records.push(record);
    }

    /// Emits a record on a side output (one the operator lists in [`Operator::side_outputs`]).
    pub fn emit_side(&mut self, side: &str, record: Record) {
        self.side.push((side.to_string(), record));
    }

    /// Sends the input to the dead-letter topic with a reason.
    pub fn reject(&mut self, reason: impl Into<String>, original: &[u8]) {
        self.rejected.push(Rejected { reason: reason.into(), original: original.to_vec() });
    }

    /// Empties the output for reuse.
    pub fn clear(&mut self) {
        self.records.clear();
        self.side.clear();
        self.rejected.clear();
    }
}

/// A function giving the key an operator keeps a record's state by (see
/// [`Partitioning::ByStateKey`]); `None` sends the record to partition 0.
pub type StateKeyFn = std::sync::Arc<dyn Fn(&Record) -> Option<Vec<u8>> + Send + Sync>;

/// How an operator's state relates to the partitioning of its input, which tells the runner how
/// to spread it over partition-parallel workers (`weir run --worker I/N`, each worker owning the
/// partitions `p % N == I`). With one worker every partition is owned and this changes nothing.
#[derive(Clone, Default)]
pub enum Partitioning {
    /// Stateless, or state kept by the input record's key: each worker processes the partitions
    /// it owns and nothing else. The default.
    #[default]
    ByRecordKey,
    /// Lookup tables that every worker needs whole, as Kafka Streams' GlobalKTable: each worker
    /// reads every partition, hands the records of partitions it does not own to
    /// [`Operator::apply_context`] (update the tables, emit nothing) and processes its own.
    GlobalTables,
    /// State kept by a key computed from the record, not by its record key: the runner first
    /// re-appends the input keyed by this function to the internal topic
    /// `<operator>.repartition` (as Kafka Streams' repartition topics), and the operator reads
    /// its own partitions of that, so every key's records meet on one worker.
    ByStateKey(StateKeyFn),
}

impl std::fmt::Debug for Partitioning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Partitioning::ByRecordKey => "ByRecordKey",
            Partitioning::GlobalTables => "GlobalTables",
            Partitioning::ByStateKey(_) => "ByStateKey",
        })
    }
}

/// A stateful stream operator.
///
/// Must be deterministic: the same input and state give the same output (no wall clock, no
/// hash-map iteration order, no randomness), so a replay after a crash produces the same records.
pub trait Operator: Send {
    /// Rebuilds any in-memory view of the state (caches, indexes) from the committed state. The
    /// runner calls it before the first record and again whenever it drops an uncommitted batch
    /// (after a retryable error), so memory never runs ahead of what is committed.
    fn restore(&mut self, _state: &dyn State) -> Result<(), ComponentError> {
        Ok(())
    }

    /// Processes one input record. Bad input is rejected through `out`, not returned as an error;
    /// an error stops the operator (fatal) or retries the batch (retryable).
    fn process(&mut self, input: &StoredRecord, state: &mut dyn State, out: &mut Output) -> Result<(), ComponentError>;

    /// How its state follows the partitioning of its input (see [`Partitioning`]).
    fn partitioning(&self) -> Partitioning {
        Partitioning::ByRecordKey
    }

    /// With [`Partitioning::GlobalTables`]: applies what a record of a partition another worker
    /// processes says to the lookup tables, emitting and rejecting nothing (the owner does). The
    /// changes are committed with the input offsets like those of [`Operator::process`].
    fn apply_context(&mut self, _input: &StoredRecord, _state: &mut dyn State) -> Result<(), ComponentError> {
        Ok(())
    }

    /// The input has ended for good: emit what is held back waiting for more input (an
    /// aggregate's open windows: its watermark goes to +infinity, as at the end of a bounded
    /// stream in Flink). The default emits nothing.
    ///
    /// Called only by `weir run --until-idle --drain` (never by a continuous run: later input
    /// would then find its windows gone), once per run, after the operator's inputs were read
    /// to their end and every stage upstream ended the same way (not by failure or shutdown),
    /// and before the stages downstream finish, so they read what it emits. With several
    /// workers, each worker calls it on its own operator, over the state of its own partitions.
    ///
    /// It must keep the guarantees of [`Operator::process`]: its outputs (records for which it
    /// sets no `weir-id` get `<stage>/end-of-input/<n>`), its rejections and its state changes
    /// are committed together in one transaction, like a processed batch. So it must be
    /// deterministic, and it must record in `state` that the input ended: called again after
    /// that was committed (a second drain), it emits nothing new; called again after a crash
    /// between its outputs and their commit (the runner restores, then calls it again), it
    /// emits the same records with the same ids, which the runner does not append twice.
    fn end_of_input(&mut self, _state: &mut dyn State, _out: &mut Output) -> Result<(), ComponentError> {
        Ok(())
    }

    /// Names of the side outputs it may emit to (each becomes the topic `<operator>.<name>`).
    fn side_outputs(&self) -> Vec<String> {
        Vec::new()
    }

    /// A readable form of one of its state entries (for `weir state get`), or `None` when the
    /// table is not its own or the bytes do not decode.
    fn describe_state(&self, _table: &str, _key: &[u8], _value: &[u8]) -> Option<serde_json::Value> {
        None
    }
}

/// Why the destination did not take one record of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordFailure {
    /// Index of the record in the batch given to [`Sink::deliver`].
    pub index: usize,
    /// Retry it later (true), or dead-letter it (false).
    pub retryable: bool,
    /// What the destination said, without secrets.
    pub reason: String,
}

/// A sink: delivers records to a destination.
#[async_trait]
pub trait Sink: Send {
    /// Delivers a batch. Returns once the destination acknowledged every record not listed as
    /// failed. An `Err` applies to the whole batch: retryable (try it all again) or fatal.
    async fn deliver(&mut self, batch: &[StoredRecord]) -> Result<Vec<RecordFailure>, ComponentError>;

    /// How many deliveries the runner may have in flight at once (`request.concurrency`). With
    /// more than one, the runner splits each batch by record key over this sink and its
    /// [`Sink::fork`]s, so records of one key keep their order.
    fn concurrency(&self) -> usize {
        1
    }

    /// Another handle on the same destination that shares this one's rate limit, circuit
    /// breaker and `Retry-After` holds; `None` if the sink cannot deliver concurrently.
    fn fork(&self) -> Option<Box<dyn Sink>> {
        None
    }
}
