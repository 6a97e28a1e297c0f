//! One partition of a topic: a directory of segments, the newest of which takes appends.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use weir_schemas::{Record, StoredRecord};

use super::batch;
use super::segment::{ReadLimit, Segment};
use super::{EmbeddedConfig, FsyncPolicy, MAX_SEGMENT_BYTES};
use crate::log::{AppendAck, LogError, PartitionOffsets};

/// About how many bytes of keys and values one read returns at most, so that a batch of large
/// records cannot exhaust memory (at least one record is always returned).
pub const READ_MAX_BYTES: usize = 16 * 1024 * 1024;

/// A partition's segments, oldest first; the last one is active.
#[derive(Debug)]
pub struct Partition {
    dir: PathBuf,
    segments: Vec<Segment>,
    /// Appended since the last sync (the `interval` policy's flusher looks at it).
    pub dirty: bool,
    encode_buf: Vec<u8>,
}

impl Partition {
    /// Opens (or creates) the partition in `dir`, recovering the active segment.
    pub fn open(dir: PathBuf, config: &EmbeddedConfig, read_only: bool) -> Result<Partition, LogError> {
        if !read_only {
            fs::create_dir_all(&dir).map_err(|e| LogError::io(format!("creating {}", dir.display()), e))?;
        }
        let mut bases = segment_bases(&dir)?;
        bases.sort_unstable();
        let interval = config.index_interval_bytes;
        let mut segments = Vec::with_capacity(bases.len().max(1));
        for (i, &base) in bases.iter().enumerate() {
            let segment = match bases.get(i + 1) {
                Some(&next) => Segment::open_sealed(&dir, base, next, interval, read_only)?,
                None => Segment::recover_active(&dir, base, interval, read_only)?,
            };
            segments.push(segment);
        }
        if segments.is_empty() {
            if read_only {
                return Err(LogError::io(format!("opening {}", dir.display()), std::io::ErrorKind::NotFound.into()));
            }
            segments.push(Segment::create(&dir, 0)?);
        }
        Ok(Partition { dir, segments, dirty: false, encode_buf: Vec::new() })
    }

    /// The offsets held.
    pub fn offsets(&self) -> PartitionOffsets {
        let start = self.segments.first().map_or(0, |s| s.base_offset);
        let end = self.active().next_offset;
        PartitionOffsets { start, end }
    }

    fn active(&self) -> &Segment {
        self.segments.last().expect("a partition always has an active segment")
    }

    /// Appends a batch and applies the fsync policy.
    pub fn append(&mut self, records: &[Record], config: &EmbeddedConfig) -> Result<AppendAck, LogError> {
        let base_offset = self.active().next_offset;
        self.encode_buf.clear();
        batch::encode(base_offset, records, &mut self.encode_buf).map_err(LogError::TooLarge)?;
        let batch_len = self.encode_buf.len() as u64;
        if batch_len > MAX_SEGMENT_BYTES {
            return Err(LogError::TooLarge(format!(
                "a batch of {batch_len} bytes is larger than the {MAX_SEGMENT_BYTES}-byte limit"
            )));
        }
        let active = self.active();
        let too_old = config.segment_ms.is_some_and(|ms| {
            active.size > 0
                && active
                    .modified()
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_millis(ms))
        });
        if active.size > 0 && (active.size + batch_len > config.segment_bytes || too_old) {
            self.roll(config)?;
        }
        let active = self.segments.last_mut().expect("active segment");
        active.append(&self.encode_buf, config.index_interval_bytes)?;
        match config.fsync {
            FsyncPolicy::Always => active.sync()?,
            FsyncPolicy::Interval | FsyncPolicy::Never => self.dirty = true,
        }
        Ok(AppendAck { base_offset, last_offset: base_offset + records.len() as u64 - 1 })
    }

    /// Seals the active segment (synced whatever the policy, so a sealed segment is always whole
    /// on disk and `flush` need only sync the active one), starts a new one and applies retention.
    fn roll(&mut self, config: &EmbeddedConfig) -> Result<(), LogError> {
        let active = self.segments.last_mut().expect("active segment");
        active.seal()?;
        let next = active.next_offset;
        self.segments.push(Segment::create(&self.dir, next)?);
        sync_dir(&self.dir)?;
        self.dirty = false;
        self.apply_retention(config)?;
        Ok(())
    }

    /// Deletes the oldest sealed segments while the partition is over its size limit or they are
    /// older than the age limit (by when they were last written). The active segment stays.
    pub fn apply_retention(&mut self, config: &EmbeddedConfig) -> Result<usize, LogError> {
        let mut deleted = 0;
        while self.segments.len() > 1 {
            let total: u64 = self.segments.iter().map(|s| s.size).sum();
            let oldest = &self.segments[0];
            let over_size = config.retention_bytes.is_some_and(|limit| total > limit);
            let over_age = match config.retention_ms {
                Some(ms) => oldest.modified()?.elapsed().unwrap_or_default().gt(&Duration::from_millis(ms)),
                None => false,
            };
            if !(over_size || over_age) {
                break;
            }
            let segment = self.segments.remove(0);
            tracing::info!(dir = %self.dir.display(), base_offset = segment.base_offset, "retention: deleting segment");
            segment.delete(&self.dir)?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Reads up to `max` records (and about [`READ_MAX_BYTES`] of them) from `from`.
    pub fn read(&self, topic: &str, partition: u32, from: u64, max: usize) -> Result<Vec<StoredRecord>, LogError> {
        let offsets = self.offsets();
        if from < offsets.start {
            return Err(LogError::OffsetOutOfRange {
                topic: topic.into(),
                partition,
                requested: from,
                start: offsets.start,
            });
        }
        let mut out = Vec::new();
        let mut limit = ReadLimit::new(max, READ_MAX_BYTES);
        let first = self.segments.partition_point(|s| s.base_offset <= from).saturating_sub(1);
        let mut next = from;
        for segment in &self.segments[first..] {
            if limit.reached() || next >= offsets.end {
                break;
            }
            segment.read(next, &mut limit, topic, partition, &mut out)?;
            next = out.last().map_or(segment.next_offset, |r| r.offset + 1).max(next);
        }
        Ok(out)
    }

    /// The first offset with an event time at or after `timestamp_ms`.
    pub fn offset_for_time(&self, timestamp_ms: i64) -> Result<Option<u64>, LogError> {
        for segment in &self.segments {
            if let Some(offset) = segment.offset_for_time(timestamp_ms)? {
                return Ok(Some(offset));
            }
        }
        Ok(None)
    }

    /// A handle for syncing the active segment outside the partition's lock.
    pub fn sync_handle(&self) -> Result<std::fs::File, LogError> {
        self.active().log_handle()
    }

    /// How many segments the partition has.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

/// The base offsets of the segment files in `dir`.
fn segment_bases(dir: &Path) -> Result<Vec<u64>, LogError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LogError::io(format!("listing {}", dir.display()), e)),
    };
    let mut bases = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
            continue;
        };
        match stem.parse::<u64>() {
            Ok(base) if stem.len() == 20 => bases.push(base),
            _ => {
                tracing::warn!(file = %entry.path().display(), "ignoring a file that is not a segment")
            }
        }
    }
    Ok(bases)
}

/// Syncs a directory so that files created or deleted in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<(), LogError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io(format!("syncing directory {}", dir.display()), e))
}
