//! The log: durable, ordered, partitioned topics of records.
//!
//! [`Log`] is the one interface every stage of Weir goes through (via the runner). It has two
//! backends: [`embedded`] (segment files on this machine, the default) and [`fluvio`] (a Fluvio
//! cluster, `backend = "fluvio"`); docs/LOG.md says what each guarantees. The trait is shaped
//! after what both can promise:
//!
//! - offsets within a partition are dense and start at 0; [`Log::append`] returns the offsets it
//!   gave the batch and returns only once the batch is durable under the configured fsync policy
//!   (embedded) or acknowledged by the partition's leader (Fluvio, where a produce whose answer
//!   was lost is looked for on the partition before it is sent again);
//! - [`Log::read`] returns records in offset order, never skips one and never returns one twice;
//! - [`Log::offset_for_time`] finds the first record whose event time is at or after a timestamp.
//!
//! Consumer offsets are not kept here: they live in the [`crate::store`] together with operator
//! state, so the two are always committed in one transaction.

pub mod conformance;
pub mod embedded;
pub mod fluvio;

use std::path::PathBuf;

use async_trait::async_trait;
use weir_schemas::{Record, StoredRecord};

/// What a topic looks like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic's name.
    pub name: String,
    /// How many partitions it has.
    pub partitions: u32,
}

/// The offsets a partition holds: `start..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// The oldest offset still held (retention removes older ones).
    pub start: u64,
    /// The offset the next appended record will get.
    pub end: u64,
}

/// The offsets an append gave its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendAck {
    /// The offset of the first record of the batch.
    pub base_offset: u64,
    /// The offset of the last record of the batch.
    pub last_offset: u64,
}

/// Records read from a partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadBatch {
    /// The records, in offset order, without gaps.
    pub records: Vec<StoredRecord>,
    /// The offset to read from next.
    pub next_offset: u64,
}

/// Errors of the log. Every message says what, where and why.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A topic that does not exist.
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    /// A partition the topic does not have.
    #[error("topic `{topic}` has {partitions} partition(s); there is no partition {partition}")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many the topic has.
        partitions: u32,
    },
    /// A name that cannot be a topic.
    #[error("invalid topic name `{name}`: {why}")]
    InvalidTopicName {
        /// The name given.
        name: String,
        /// Why it is invalid.
        why: &'static str,
    },
    /// A read below what retention kept.
    #[error("offset {requested} of {topic}/{partition} is no longer held (retention); the oldest is {start}")]
    OffsetOutOfRange {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The offset asked for.
        requested: u64,
        /// The oldest offset still held.
        start: u64,
    },
    /// Bytes on disk that are not what was written.
    #[error("corrupt log data in {} at byte {position}: {reason}", file.display())]
    Corrupt {
        /// The segment or index file.
        file: PathBuf,
        /// The byte position in it.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// A record too large for the log's format.
    #[error("record too large: {0}")]
    TooLarge(String),
    /// Another process holds the data directory.
    #[error("data directory {} is in use by another weir process", .0.display())]
    Locked(PathBuf),
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, and on which file.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A backend that is read-only was asked to write.
    #[error("the log was opened read-only")]
    ReadOnly,
    /// A log cluster (Fluvio) that could not be reached, or that refused a request.
    #[error("log cluster at {endpoint}: {context}: {reason}")]
    Remote {
        /// The cluster's address as configured.
        endpoint: String,
        /// What was being done, on which topic and partition.
        context: String,
        /// What went wrong.
        reason: String,
    },
}

impl LogError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LogError::Io { context: context.into(), source }
    }
}

/// A durable, partitioned log of records.
#[async_trait]
pub trait Log: Send + Sync {
    /// Creates the topic with this many partitions if it does not exist; returns it either way.
    async fn ensure_topic(&self, name: &str, partitions: u32) -> Result<TopicInfo, LogError>;

    /// The topic, if it exists.
    async fn topic(&self, name: &str) -> Result<Option<TopicInfo>, LogError>;

    /// Every topic, sorted by name.
    async fn topics(&self) -> Result<Vec<TopicInfo>, LogError>;

    /// Appends a batch to one partition; returns once the batch is durable (see the fsync policy).
    async fn append(&self, topic: &str, partition: u32, records: &[Record]) -> Result<AppendAck, LogError>;

    /// Reads up to `max_records` records from `from`, in offset order. Reading at the end returns
    /// an empty batch.
    async fn read(&self, topic: &str, partition: u32, from: u64, max_records: usize) -> Result<ReadBatch, LogError>;

    /// The offsets the partition holds.
    async fn offsets(&self, topic: &str, partition: u32) -> Result<PartitionOffsets, LogError>;

    /// The first offset whose record has an event time at or after `timestamp_ms`, if any.
    async fn offset_for_time(&self, topic: &str, partition: u32, timestamp_ms: i64) -> Result<Option<u64>, LogError>;

    /// Makes everything appended so far durable on disk, whatever the fsync policy.
    async fn flush(&self) -> Result<(), LogError>;
}

/// The partition a key goes to: stable across runs, machines and versions.
pub fn partition_for_key(key: Option<&[u8]>, partitions: u32) -> u32 {
    match key {
        Some(key) if partitions > 1 => crc32c::crc32c(key) % partitions,
        _ => 0,
    }
}

/// Checks a topic name: 1–249 of `[A-Za-z0-9._-]`, not `.` or `..` (as Kafka).
pub fn validate_topic_name(name: &str) -> Result<(), LogError> {
    let why = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > 249 {
        Some("it is longer than 249 characters")
    } else if name == "." || name == ".." {
        Some("`.` and `..` are reserved")
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        Some("only letters, digits, `.`, `_` and `-` are allowed")
    } else {
        None
    };
    match why {
        Some(why) => Err(LogError::InvalidTopicName { name: name.to_string(), why }),
        None => Ok(()),
    }
}
