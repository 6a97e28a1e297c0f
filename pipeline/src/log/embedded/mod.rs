//! The embedded log: topics as directories of append-only segment files on this machine.
//!
//! Layout under the data directory:
//!
//! ```text
//! log/<topic>/<partition>/<base offset, 20 digits>.log        record batches (see batch.rs)
//!                                               .index      offset → byte position (sparse)
//!                                               .timeindex  event time → offset (sparse)
//! log/.lock                                                 held by the one process writing
//! ```
//!
//! Durability follows [`FsyncPolicy`]: `always` syncs every append before acknowledging it;
//! `interval` acknowledges once the batch is written to the OS (it survives the process being
//! killed) and syncs every `fsync_interval_ms` (an OS crash or power loss may lose up to that
//! much); `never` leaves syncing to the OS. Whatever the policy, a segment is synced when it is
//! sealed, and [`Log::flush`] syncs everything appended so far.
//!
//! One process writes a data directory at a time (a lock file enforces it); others may open it
//! read-only to consume, and then never truncate or rewrite anything.

mod batch;
mod partition;
mod segment;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use weir_schemas::Record;

use self::partition::Partition;
use super::{validate_topic_name, AppendAck, Log, LogError, PartitionOffsets, ReadBatch, TopicInfo};

/// When appended data is synced to disk.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Sync every append before acknowledging it.
    Always,
    /// Acknowledge once written to the OS; sync every `fsync_interval_ms`.
    #[default]
    Interval,
    /// Never sync explicitly.
    Never,
}

/// Settings of the embedded log (the `[log]` table of a pipeline config).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// When appends are synced to disk.
    pub fsync: FsyncPolicy,
    /// How often the `interval` policy syncs, in milliseconds.
    pub fsync_interval_ms: u64,
    /// A segment is sealed and a new one started past this size.
    pub segment_bytes: u64,
    /// A segment is sealed once it is this old (by its last write), if set.
    pub segment_ms: Option<u64>,
    /// Bytes of batches between two index entries.
    pub index_interval_bytes: u64,
    /// Oldest segments are deleted while a partition holds more than this, if set.
    pub retention_bytes: Option<u64>,
    /// Segments last written longer ago than this are deleted, if set.
    pub retention_ms: Option<u64>,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            fsync: FsyncPolicy::Interval,
            fsync_interval_ms: 1000,
            segment_bytes: 128 * 1024 * 1024,
            segment_ms: None,
            index_interval_bytes: 4096,
            retention_bytes: None,
            retention_ms: Some(7 * 24 * 3600 * 1000),
        }
    }
}

/// The largest segment size: index positions are 32-bit.
pub const MAX_SEGMENT_BYTES: u64 = 1 << 30;

impl EmbeddedConfig {
    /// Checks the settings; returns what is wrong with which key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.segment_bytes < 1024 || self.segment_bytes > MAX_SEGMENT_BYTES {
            return Err((
                "segment_bytes",
                format!("must be between 1024 and {MAX_SEGMENT_BYTES}, got {}", self.segment_bytes),
            ));
        }
        if self.fsync == FsyncPolicy::Interval && self.fsync_interval_ms == 0 {
            return Err(("fsync_interval_ms", "must be at least 1 with fsync = \"interval\"".into()));
        }
        if self.index_interval_bytes == 0 {
            return Err(("index_interval_bytes", "must be at least 1".into()));
        }
        Ok(())
    }
}

type PartitionRef = Arc<Mutex<Partition>>;

struct Inner {
    root: PathBuf,
    config: EmbeddedConfig,
    read_only: bool,
    topics: RwLock<BTreeMap<String, Vec<PartitionRef>>>,
    /// Held for the life of a writable log: one writer per data directory.
    _lock: Option<File>,
}

/// The embedded log backend.
#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
    /// Shared with the maintenance thread (writable logs only): true once the last handle is
    /// dropped. The thread works only while holding it, so after the last handle's drop the
    /// thread holds no reference to `inner`, and the log (its lock file included) is closed when
    /// the drop returns — a reopen right after never finds it still locked.
    stopped: Arc<Mutex<bool>>,
}

impl Drop for EmbeddedLog {
    fn drop(&mut self) {
        // This handle and the maintenance thread's: the last handle is going.
        if Arc::strong_count(&self.stopped) == 2 {
            *self.stopped.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        }
    }
}

impl EmbeddedLog {
    /// Opens (or creates) the log under `data_dir/log`, recovering every partition.
    pub fn open(data_dir: &Path, config: EmbeddedConfig) -> Result<EmbeddedLog, LogError> {
        Self::open_mode(data_dir, config, false)
    }

    /// Opens the log for reading only, beside a process that may be writing it.
    pub fn open_read_only(data_dir: &Path) -> Result<EmbeddedLog, LogError> {
        Self::open_mode(data_dir, EmbeddedConfig::default(), true)
    }

    fn open_mode(data_dir: &Path, config: EmbeddedConfig, read_only: bool) -> Result<EmbeddedLog, LogError> {
        let root = data_dir.join("log");
        let lock = if read_only {
            None
        } else {
            fs::create_dir_all(&root).map_err(|e| LogError::io(format!("creating {}", root.display()), e))?;
            let lock_path = root.join(".lock");
            let file =
                File::create(&lock_path).map_err(|e| LogError::io(format!("creating {}", lock_path.display()), e))?;
            match file.try_lock() {
                Ok(()) => Some(file),
                Err(fs::TryLockError::WouldBlock) => return Err(LogError::Locked(data_dir.to_path_buf())),
                Err(fs::TryLockError::Error(e)) => {
                    return Err(LogError::io(format!("locking {}", lock_path.display()), e))
                }
            }
        };
        let mut topics = BTreeMap::new();
        let entries = match fs::read_dir(&root) {
            Ok(entries) => entries
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| LogError::io(format!("listing {}", root.display()), e))?,
            Err(e) if read_only && e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(LogError::io(format!("listing {}", root.display()), e)),
        };
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.path().is_dir() {
                continue;
            }
            if validate_topic_name(&name).is_err() {
                tracing::warn!(dir = %entry.path().display(), "ignoring a directory that is not a topic");
                continue;
            }
            let partitions = open_topic(&entry.path(), &config, read_only)?;
            topics.insert(name, partitions);
        }
        let inner = Arc::new(Inner { root, config, read_only, topics: RwLock::new(topics), _lock: lock });
        let stopped = Arc::new(Mutex::new(false));
        if !read_only {
            spawn_maintenance(Arc::downgrade(&inner), stopped.clone());
        }
        Ok(EmbeddedLog { inner, stopped })
    }

    fn partition(&self, topic: &str, partition: u32) -> Result<PartitionRef, LogError> {
        let topics = self.inner.topics.read().expect("topics lock poisoned");
        let partitions = topics.get(topic).ok_or_else(|| LogError::UnknownTopic(topic.to_string()))?;
        partitions.get(partition as usize).cloned().ok_or_else(|| LogError::UnknownPartition {
            topic: topic.to_string(),
            partition,
            partitions: partitions.len() as u32,
        })
    }

    /// Applies retention to every partition now; returns how many segments were deleted.
    pub fn apply_retention(&self) -> Result<usize, LogError> {
        apply_retention(&self.inner)
    }

    /// How many segments a partition has (for tests and `weir log topics`).
    pub fn segment_count(&self, topic: &str, partition: u32) -> Result<usize, LogError> {
        Ok(self.partition(topic, partition)?.lock().expect("partition lock poisoned").segment_count())
    }

    /// Synchronous append, for callers outside an async runtime (the benchmark, `log produce`).
    pub fn append_blocking(&self, topic: &str, partition: u32, records: &[Record]) -> Result<AppendAck, LogError> {
        if self.inner.read_only {
            return Err(LogError::ReadOnly);
        }
        if records.is_empty() {
            return Err(LogError::TooLarge("an empty batch cannot be appended".into()));
        }
        let partition = self.partition(topic, partition)?;
        let mut partition = partition.lock().expect("partition lock poisoned");
        partition.append(records, &self.inner.config)
    }

    /// Synchronous read.
    pub fn read_blocking(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max_records: usize,
    ) -> Result<ReadBatch, LogError> {
        let records = self.partition(topic, partition)?.lock().expect("partition lock poisoned").read(
            topic,
            partition,
            from,
            max_records,
        )?;
        let next_offset = records.last().map_or(from, |r| r.offset + 1);
        Ok(ReadBatch { records, next_offset })
    }

    /// Synchronous topic creation.
    pub fn ensure_topic_blocking(&self, name: &str, partitions: u32) -> Result<TopicInfo, LogError> {
        validate_topic_name(name)?;
        if let Some(existing) = self.inner.topics.read().expect("topics lock poisoned").get(name) {
            return Ok(TopicInfo { name: name.to_string(), partitions: existing.len() as u32 });
        }
        if self.inner.read_only {
            return Err(LogError::UnknownTopic(name.to_string()));
        }
        if partitions == 0 {
            return Err(LogError::InvalidTopicName { name: name.into(), why: "a topic needs at least one partition" });
        }
        let mut topics = self.inner.topics.write().expect("topics lock poisoned");
        if let Some(existing) = topics.get(name) {
            return Ok(TopicInfo { name: name.to_string(), partitions: existing.len() as u32 });
        }
        // Build the topic under a temporary name and rename it into place, so a crash never
        // leaves a topic with some of its partitions.
        let staging = self.inner.root.join(format!(".new-{name}"));
        let _ = fs::remove_dir_all(&staging);
        for p in 0..partitions {
            let dir = staging.join(p.to_string());
            fs::create_dir_all(&dir).map_err(|e| LogError::io(format!("creating {}", dir.display()), e))?;
        }
        let dir = self.inner.root.join(name);
        fs::rename(&staging, &dir).map_err(|e| LogError::io(format!("creating {}", dir.display()), e))?;
        partition::sync_dir(&self.inner.root)?;
        topics.insert(name.to_string(), open_topic(&dir, &self.inner.config, false)?);
        Ok(TopicInfo { name: name.to_string(), partitions })
    }

    /// Syncs every partition that has unsynced appends.
    pub fn flush_blocking(&self) -> Result<(), LogError> {
        flush_dirty(&self.inner)
    }

    /// Offsets of a partition.
    pub fn offsets_blocking(&self, topic: &str, partition: u32) -> Result<PartitionOffsets, LogError> {
        Ok(self.partition(topic, partition)?.lock().expect("partition lock poisoned").offsets())
    }
}

fn open_topic(dir: &Path, config: &EmbeddedConfig, read_only: bool) -> Result<Vec<PartitionRef>, LogError> {
    let mut numbers = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| LogError::io(format!("listing {}", dir.display()), e))? {
        let entry = entry.map_err(|e| LogError::io(format!("listing {}", dir.display()), e))?;
        if let Some(n) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) {
            numbers.push(n);
        }
    }
    numbers.sort_unstable();
    if numbers.iter().enumerate().any(|(i, &n)| i as u32 != n) || numbers.is_empty() {
        return Err(LogError::Corrupt {
            file: dir.to_path_buf(),
            position: 0,
            reason: format!("partition directories are not 0..n: found {numbers:?}"),
        });
    }
    numbers
        .into_iter()
        .map(|n| Partition::open(dir.join(n.to_string()), config, read_only).map(|p| Arc::new(Mutex::new(p))))
        .collect()
}

fn flush_dirty(inner: &Inner) -> Result<(), LogError> {
    let partitions: Vec<PartitionRef> =
        inner.topics.read().expect("topics lock poisoned").values().flatten().cloned().collect();
    for partition in partitions {
        // Sync a duplicate handle outside the lock, so appends go on while the disk works.
        let handle = {
            let mut p = partition.lock().expect("partition lock poisoned");
            if !p.dirty {
                continue;
            }
            p.dirty = false;
            p.sync_handle()?
        };
        if let Err(e) = handle.sync_data() {
            partition.lock().expect("partition lock poisoned").dirty = true;
            return Err(LogError::io("syncing a segment", e));
        }
    }
    Ok(())
}

fn apply_retention(inner: &Inner) -> Result<usize, LogError> {
    let partitions: Vec<PartitionRef> =
        inner.topics.read().expect("topics lock poisoned").values().flatten().cloned().collect();
    let mut deleted = 0;
    for partition in partitions {
        deleted += partition.lock().expect("partition lock poisoned").apply_retention(&inner.config)?;
    }
    Ok(deleted)
}

/// How often retention is applied besides at every segment roll, so quiet topics age out too.
const RETENTION_CHECK: Duration = Duration::from_secs(60);

/// The background thread of a writable log: syncs every `fsync_interval_ms` under the `interval`
/// policy, and applies retention every minute. It ends when the last handle is dropped
/// (`stopped`), and it works only while holding `stopped`, so it never keeps the log open past
/// that drop.
fn spawn_maintenance(inner: Weak<Inner>, stopped: Arc<Mutex<bool>>) {
    let Some(policy) = inner.upgrade().map(|inner| (inner.config.fsync, inner.config.fsync_interval_ms)) else {
        return;
    };
    let tick = match policy {
        (FsyncPolicy::Interval, interval_ms) => Duration::from_millis(interval_ms),
        _ => Duration::from_secs(1),
    };
    let spawned = std::thread::Builder::new().name("weir-log-maintenance".into()).spawn(move || {
        let mut since_retention = Duration::ZERO;
        loop {
            std::thread::sleep(tick);
            since_retention += tick;
            let stopped = stopped.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if *stopped {
                return;
            }
            let Some(inner) = inner.upgrade() else { return };
            if policy.0 == FsyncPolicy::Interval {
                if let Err(e) = flush_dirty(&inner) {
                    tracing::error!(error = %e, "periodic fsync failed; will retry");
                }
            }
            if since_retention >= RETENTION_CHECK {
                since_retention = Duration::ZERO;
                if let Err(e) = apply_retention(&inner) {
                    tracing::error!(error = %e, "applying retention failed; will retry");
                }
            }
            // `inner` goes before `stopped` is released.
            drop(inner);
            drop(stopped);
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the log's maintenance thread: no periodic fsync or retention");
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.read_only && self.config.fsync != FsyncPolicy::Never {
            if let Err(e) = flush_dirty(self) {
                tracing::error!(error = %e, "final fsync failed");
            }
        }
    }
}

#[async_trait]
impl Log for EmbeddedLog {
    async fn ensure_topic(&self, name: &str, partitions: u32) -> Result<TopicInfo, LogError> {
        self.ensure_topic_blocking(name, partitions)
    }

    async fn topic(&self, name: &str) -> Result<Option<TopicInfo>, LogError> {
        let topics = self.inner.topics.read().expect("topics lock poisoned");
        Ok(topics.get(name).map(|p| TopicInfo { name: name.to_string(), partitions: p.len() as u32 }))
    }

    async fn topics(&self) -> Result<Vec<TopicInfo>, LogError> {
        let topics = self.inner.topics.read().expect("topics lock poisoned");
        Ok(topics.iter().map(|(name, p)| TopicInfo { name: name.clone(), partitions: p.len() as u32 }).collect())
    }

    async fn append(&self, topic: &str, partition: u32, records: &[Record]) -> Result<AppendAck, LogError> {
        self.append_blocking(topic, partition, records)
    }

    async fn read(&self, topic: &str, partition: u32, from: u64, max_records: usize) -> Result<ReadBatch, LogError> {
        self.read_blocking(topic, partition, from, max_records)
    }

    async fn offsets(&self, topic: &str, partition: u32) -> Result<PartitionOffsets, LogError> {
        self.offsets_blocking(topic, partition)
    }

    async fn offset_for_time(&self, topic: &str, partition: u32, timestamp_ms: i64) -> Result<Option<u64>, LogError> {
        self.partition(topic, partition)?.lock().expect("partition lock poisoned").offset_for_time(timestamp_ms)
    }

    async fn flush(&self) -> Result<(), LogError> {
        self.flush_blocking()
    }
}

#[cfg(test)]
mod tests;
