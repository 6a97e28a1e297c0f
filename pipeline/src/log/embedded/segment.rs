//! One segment of a partition: a `.log` file of record batches, with its `.index` (offset →
//! byte position) and `.timeindex` (event time → offset) beside it.
//!
//! Index entries are sparse: one per `index_interval_bytes` of batches. Both indexes are derived
//! data. The active (last) segment's indexes are rebuilt from the log on open; a sealed segment's
//! are loaded, checked, and rebuilt if they do not match the log.
//!
//! Recovery of the active segment: every batch is read and its CRC checked. A partial last batch
//! (a torn tail, left by a crash in the middle of a write) is cut off with a warning. A bad batch
//! with valid data after it is corruption, and opening fails with the file and byte position.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use weir_schemas::{Record, StoredRecord};

use super::batch::{self, BatchFault, BatchHeader, HEADER_LEN};
use crate::log::LogError;

/// How much a read fetches from disk at once.
const READ_CHUNK: usize = 256 * 1024;

/// A sparse index entry: the batch starting at `position` holds offset `base + rel_offset`, and
/// every record before it in the segment has an event time of at most `max_ts_before`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct IndexEntry {
    rel_offset: u32,
    position: u32,
    max_ts_before: i64,
}

/// A segment file and its indexes.
#[derive(Debug)]
pub struct Segment {
    /// Offset of the first record.
    pub base_offset: u64,
    /// One past the offset of the last record.
    pub next_offset: u64,
    /// Bytes of valid batches.
    pub size: u64,
    /// Largest event time held, `i64::MIN` when empty.
    pub max_timestamp: i64,
    log_path: PathBuf,
    log: File,
    index: Vec<IndexEntry>,
    /// The index files, open for appending while this is the active segment.
    index_writers: Option<(File, File)>,
    bytes_since_index: u64,
    /// Why the segment takes no more appends, after a failed write.
    failed: Option<String>,
}

/// Paths of a segment's three files.
pub fn paths(dir: &Path, base_offset: u64) -> [PathBuf; 3] {
    let stem = format!("{base_offset:020}");
    ["log", "index", "timeindex"].map(|ext| dir.join(format!("{stem}.{ext}")))
}

impl Segment {
    /// Creates a new, empty active segment.
    pub fn create(dir: &Path, base_offset: u64) -> Result<Segment, LogError> {
        let [log_path, index_path, time_path] = paths(dir, base_offset);
        let log = open_append(&log_path, true)?;
        let mut segment = Segment::empty(base_offset, log_path, log);
        segment.index_writers = Some((open_append(&index_path, true)?, open_append(&time_path, true)?));
        Ok(segment)
    }

    /// A segment over `log` before any of its batches has been read.
    fn empty(base_offset: u64, log_path: PathBuf, log: File) -> Segment {
        Segment {
            base_offset,
            next_offset: base_offset,
            size: 0,
            max_timestamp: i64::MIN,
            log_path,
            log,
            index: Vec::new(),
            index_writers: None,
            bytes_since_index: 0,
            failed: None,
        }
    }

    /// Opens the active segment: checks every batch, cuts a torn tail (unless read-only) and
    /// rebuilds the indexes.
    pub fn recover_active(
        dir: &Path,
        base_offset: u64,
        index_interval: u64,
        read_only: bool,
    ) -> Result<Segment, LogError> {
        let [log_path, index_path, time_path] = paths(dir, base_offset);
        let log = if read_only { open_read(&log_path)? } else { open_append(&log_path, false)? };
        let mut segment = Segment::empty(base_offset, log_path, log);
        let file_len = file_len(&segment.log, &segment.log_path)?;
        let end = segment.scan(0, file_len, Some(index_interval))?;
        if let Some(torn) = end.torn {
            let dropped = file_len - end.position;
            if read_only {
                tracing::debug!(file = %segment.log_path.display(), position = end.position, "reading up to an incomplete tail");
            } else {
                tracing::warn!(
                    file = %segment.log_path.display(),
                    position = end.position,
                    dropped_bytes = dropped,
                    "truncating a torn tail ({torn}); it was never acknowledged as durable"
                );
                segment
                    .log
                    .set_len(end.position)
                    .map_err(|e| LogError::io(format!("truncating {}", segment.log_path.display()), e))?;
                segment
                    .log
                    .sync_all()
                    .map_err(|e| LogError::io(format!("syncing {}", segment.log_path.display()), e))?;
            }
        }
        if !read_only {
            let mut index_file = open_truncate(&index_path)?;
            let mut time_file = open_truncate(&time_path)?;
            let (index_bytes, time_bytes) = encode_index(&segment.index);
            write_all(&mut index_file, &index_path, &index_bytes)?;
            write_all(&mut time_file, &time_path, &time_bytes)?;
            segment.index_writers = Some((index_file, time_file));
        }
        Ok(segment)
    }

    /// Opens a sealed segment that should end right before `next_base`. Its indexes are loaded
    /// if they check out, otherwise rebuilt; the batches after the last index entry are read to
    /// find the largest event time and to check the segment ends where the next one begins.
    pub fn open_sealed(
        dir: &Path,
        base_offset: u64,
        next_base: u64,
        index_interval: u64,
        read_only: bool,
    ) -> Result<Segment, LogError> {
        let [log_path, index_path, time_path] = paths(dir, base_offset);
        let log = open_read(&log_path)?;
        let size = file_len(&log, &log_path)?;
        let mut segment = Segment::empty(base_offset, log_path, log);
        match load_index(&index_path, &time_path, size) {
            Some(index) if !index.is_empty() => {
                let last = *index.last().expect("not empty");
                segment.index = index;
                segment.next_offset = base_offset + u64::from(last.rel_offset);
                segment.size = u64::from(last.position);
                segment.max_timestamp = last.max_ts_before;
                let end = segment.scan(u64::from(last.position), size, None)?;
                if let Some(torn) = end.torn {
                    return Err(
                        segment.corrupt(end.position, format!("sealed segment ends in an incomplete batch: {torn}"))
                    );
                }
            }
            _ => {
                if size > 0 {
                    tracing::warn!(file = %index_path.display(), "index missing or inconsistent with its segment; rebuilding it");
                }
                let end = segment.scan(0, size, Some(index_interval))?;
                if let Some(torn) = end.torn {
                    return Err(
                        segment.corrupt(end.position, format!("sealed segment ends in an incomplete batch: {torn}"))
                    );
                }
                if read_only {
                    return segment.check_ends_at(next_base);
                }
                let (index_bytes, time_bytes) = encode_index(&segment.index);
                fs::write(&index_path, index_bytes)
                    .map_err(|e| LogError::io(format!("writing {}", index_path.display()), e))?;
                fs::write(&time_path, time_bytes)
                    .map_err(|e| LogError::io(format!("writing {}", time_path.display()), e))?;
            }
        }
        segment.check_ends_at(next_base)
    }

    /// Checks that a sealed segment ends right before the next one begins.
    fn check_ends_at(self, next_base: u64) -> Result<Segment, LogError> {
        if self.next_offset != next_base {
            return Err(self.corrupt(
                self.size,
                format!("segment ends at offset {} but the next segment starts at {next_base}", self.next_offset),
            ));
        }
        Ok(self)
    }

    /// Reads batches from `position` to `file_len`, checking each, and extends the segment's
    /// offsets, size, event times and (when `index_interval` is set) its index with them.
    fn scan(&mut self, mut position: u64, file_len: u64, index_interval: Option<u64>) -> Result<ScanEnd, LogError> {
        let (log, path) = (self.log_handle()?, self.log_path.clone());
        let mut reader = ChunkReader::new(&log, &path, file_len);
        loop {
            if position >= file_len {
                return Ok(ScanEnd { position, torn: None });
            }
            let fault = match reader.batch_at(position) {
                Ok(bytes) => match batch::check(bytes) {
                    Ok(header) => Ok(header),
                    Err(BatchFault::Truncated) => Err("the batch runs past the end of the file".to_string()),
                    Err(BatchFault::Invalid(reason)) => Err(reason),
                },
                Err(Fault::Truncated) => Err("the batch header runs past the end of the file".to_string()),
                Err(Fault::Io(e)) => return Err(e),
            };
            let header = match fault {
                Ok(header) => header,
                // A crash in the middle of a write leaves a bad batch with nothing valid after
                // it. A bad batch followed by a valid one is damage to acknowledged data: never
                // cut it off, even when its (unchecksummed) length claims to run past the end.
                Err(reason) => match valid_batch_after(&log, &path, position, file_len, self.next_offset)? {
                    None => return Ok(ScanEnd { position, torn: Some(reason) }),
                    Some(next) => {
                        return Err(self.corrupt(position, format!("{reason}; a valid batch follows at byte {next}")))
                    }
                },
            };
            if header.base_offset != self.next_offset {
                return Err(self.corrupt(
                    position,
                    format!(
                        "batch starts at offset {} where offset {} was expected",
                        header.base_offset, self.next_offset
                    ),
                ));
            }
            if let Some(interval) = index_interval {
                self.maybe_index(&header, interval);
            }
            self.extend(&header);
            position += header.total_len();
        }
    }

    /// Adds an index entry for a batch about to be placed at `self.size` if one is due; returns
    /// it so the caller can persist it.
    fn maybe_index(&mut self, header: &BatchHeader, interval: u64) -> Option<IndexEntry> {
        if !self.index.is_empty() && self.bytes_since_index < interval {
            return None;
        }
        let entry = IndexEntry {
            rel_offset: (header.base_offset - self.base_offset) as u32,
            position: self.size as u32,
            max_ts_before: self.max_timestamp,
        };
        self.index.push(entry);
        self.bytes_since_index = 0;
        Some(entry)
    }

    fn extend(&mut self, header: &BatchHeader) {
        self.size += header.total_len();
        self.bytes_since_index += header.total_len();
        self.next_offset = header.last_offset() + 1;
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
    }

    /// Appends one encoded batch (already numbered from `self.next_offset`). If a write fails, the
    /// segment takes no more appends: reopening the log recovers it (the partial batch is a torn
    /// tail, and the indexes are rebuilt).
    pub fn append(&mut self, bytes: &[u8], index_interval: u64) -> Result<(), LogError> {
        if let Some(failure) = &self.failed {
            return Err(LogError::io(
                format!(
                    "{} took no more appends after a failed write ({failure}); reopen the log to recover",
                    self.log_path.display()
                ),
                std::io::ErrorKind::Other.into(),
            ));
        }
        let header = BatchHeader::parse(bytes);
        debug_assert_eq!(header.base_offset, self.next_offset);
        let result = self.write_batch(bytes, &header, index_interval);
        if let Err(e) = &result {
            self.failed = Some(e.to_string());
            // Best effort: leave the file as it was; recovery on open handles what remains.
            let _ = self.log.set_len(self.size);
        }
        result
    }

    fn write_batch(&mut self, bytes: &[u8], header: &BatchHeader, index_interval: u64) -> Result<(), LogError> {
        if let Some(entry) = self.maybe_index(header, index_interval) {
            let (index_bytes, time_bytes) = encode_index(std::slice::from_ref(&entry));
            let (index_file, time_file) = self.index_writers.as_mut().ok_or(LogError::ReadOnly)?;
            let [_, index_path, time_path] = paths(self.log_path.parent().unwrap_or(Path::new(".")), self.base_offset);
            write_all(index_file, &index_path, &index_bytes)?;
            write_all(time_file, &time_path, &time_bytes)?;
        }
        write_all(&mut self.log, &self.log_path, bytes)?;
        self.extend(header);
        Ok(())
    }

    /// Flushes the segment's data to disk.
    pub fn sync(&self) -> Result<(), LogError> {
        self.log.sync_data().map_err(|e| LogError::io(format!("syncing {}", self.log_path.display()), e))
    }

    /// A handle to the log file, for syncing without holding the partition's lock.
    pub fn log_handle(&self) -> Result<File, LogError> {
        self.log
            .try_clone()
            .map_err(|e| LogError::io(format!("duplicating the handle of {}", self.log_path.display()), e))
    }

    /// Seals the segment: its data and indexes are synced and no longer written.
    pub fn seal(&mut self) -> Result<(), LogError> {
        self.sync()?;
        if let Some((index_file, time_file)) = self.index_writers.take() {
            for file in [index_file, time_file] {
                file.sync_data()
                    .map_err(|e| LogError::io(format!("syncing the indexes of {}", self.log_path.display()), e))?;
            }
        }
        Ok(())
    }

    /// Deletes the segment's files.
    pub fn delete(self, dir: &Path) -> Result<(), LogError> {
        for path in paths(dir, self.base_offset) {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io(format!("deleting {}", path.display()), e)),
            }
        }
        Ok(())
    }

    /// When the segment file was last written.
    pub fn modified(&self) -> Result<std::time::SystemTime, LogError> {
        self.log
            .metadata()
            .and_then(|m| m.modified())
            .map_err(|e| LogError::io(format!("reading the metadata of {}", self.log_path.display()), e))
    }

    /// Reads records from offset `from` (within this segment) into `out`, until `out` holds
    /// `max` records or the segment ends.
    pub fn read(
        &self,
        from: u64,
        limit: &mut ReadLimit,
        topic: &str,
        partition: u32,
        out: &mut Vec<StoredRecord>,
    ) -> Result<(), LogError> {
        let (mut position, mut expected) = self.position_for(from);
        let mut reader = ChunkReader::new(&self.log, &self.log_path, self.size);
        while position < self.size && !limit.reached() {
            let bytes = self.batch_at(&mut reader, position, expected)?;
            let header = BatchHeader::parse(bytes);
            expected = header.last_offset() + 1;
            if header.last_offset() >= from {
                let mut decode_result = Ok(());
                batch::decode(bytes, |offset, record: Record| {
                    if offset >= from && !limit.reached() {
                        limit.take(&record);
                        out.push(StoredRecord { topic: topic.to_string(), partition, offset, record });
                    }
                })
                .unwrap_or_else(|e| decode_result = Err(e));
                decode_result.map_err(|reason| self.corrupt(position, reason))?;
            }
            position += header.total_len();
        }
        Ok(())
    }

    /// The first offset in this segment whose event time is at or after `timestamp_ms`.
    pub fn offset_for_time(&self, timestamp_ms: i64) -> Result<Option<u64>, LogError> {
        if self.max_timestamp < timestamp_ms {
            return Ok(None);
        }
        let start = self.index.partition_point(|e| e.max_ts_before < timestamp_ms).saturating_sub(1);
        let (mut position, mut expected) = self
            .index
            .get(start)
            .map_or((0, self.base_offset), |e| (u64::from(e.position), self.base_offset + u64::from(e.rel_offset)));
        let mut reader = ChunkReader::new(&self.log, &self.log_path, self.size);
        while position < self.size {
            let bytes = self.batch_at(&mut reader, position, expected)?;
            let header = BatchHeader::parse(bytes);
            expected = header.last_offset() + 1;
            if header.max_timestamp >= timestamp_ms {
                let mut found = None;
                batch::timestamps(bytes, |offset, ts| {
                    if found.is_none() && ts >= timestamp_ms {
                        found = Some(offset);
                    }
                })
                .map_err(|reason| self.corrupt(position, reason))?;
                if found.is_some() {
                    return Ok(found);
                }
            }
            position += header.total_len();
        }
        Ok(None)
    }

    /// The position of the batch holding `offset` or of an earlier one, and that batch's first
    /// offset.
    fn position_for(&self, offset: u64) -> (u64, u64) {
        let rel = offset.saturating_sub(self.base_offset);
        let at = self.index.partition_point(|e| u64::from(e.rel_offset) <= rel);
        at.checked_sub(1).map_or((0, self.base_offset), |i| {
            (u64::from(self.index[i].position), self.base_offset + u64::from(self.index[i].rel_offset))
        })
    }

    /// The checked batch at `position`, which must start at offset `expected`.
    fn batch_at<'r>(&self, reader: &'r mut ChunkReader, position: u64, expected: u64) -> Result<&'r [u8], LogError> {
        let bytes = self.checked_batch(reader, position)?;
        let base = BatchHeader::parse(bytes).base_offset;
        if base != expected {
            return Err(
                self.corrupt(position, format!("batch starts at offset {base} where offset {expected} was expected"))
            );
        }
        Ok(bytes)
    }

    fn checked_batch<'r>(&self, reader: &'r mut ChunkReader, position: u64) -> Result<&'r [u8], LogError> {
        let bytes = match reader.batch_at(position) {
            Ok(bytes) => bytes,
            Err(Fault::Truncated) => {
                return Err(self.corrupt(position, "batch runs past the end of the segment".into()))
            }
            Err(Fault::Io(e)) => return Err(e),
        };
        match batch::check(bytes) {
            Ok(_) => Ok(bytes),
            Err(BatchFault::Truncated) => Err(self.corrupt(position, "batch runs past the end of the segment".into())),
            Err(BatchFault::Invalid(reason)) => Err(self.corrupt(position, reason)),
        }
    }

    fn corrupt(&self, position: u64, reason: String) -> LogError {
        LogError::Corrupt { file: self.log_path.clone(), position, reason }
    }
}

/// How much one read may still return: a number of records and, so that large records cannot
/// exhaust memory, a number of bytes (the record that crosses it is still returned).
#[derive(Clone, Copy, Debug)]
pub struct ReadLimit {
    records: usize,
    bytes: usize,
}

impl ReadLimit {
    /// Up to `records` records and about `bytes` bytes of keys and values.
    pub fn new(records: usize, bytes: usize) -> Self {
        ReadLimit { records, bytes }
    }

    /// Whether nothing more may be returned.
    pub fn reached(&self) -> bool {
        self.records == 0 || self.bytes == 0
    }

    fn take(&mut self, record: &Record) {
        self.records -= 1;
        let size = record.value.len() + record.key.as_ref().map_or(0, Vec::len);
        self.bytes = self.bytes.saturating_sub(size.max(1));
    }
}

/// Where a scan stopped, and whether it stopped at a torn tail (and why).
struct ScanEnd {
    position: u64,
    torn: Option<String>,
}

enum Fault {
    Truncated,
    Io(LogError),
}

/// Reads whole batches at given positions of a file, a chunk at a time.
struct ChunkReader<'a> {
    file: &'a File,
    path: &'a Path,
    len: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a> ChunkReader<'a> {
    fn new(file: &'a File, path: &'a Path, len: u64) -> Self {
        ChunkReader { file, path, len, buf: Vec::new(), buf_start: 0 }
    }

    /// The bytes of the batch at `position`, as far as the file holds them (the batch may be
    /// cut short; `batch::check` tells).
    fn batch_at(&mut self, position: u64) -> Result<&[u8], Fault> {
        if position + HEADER_LEN as u64 > self.len {
            return Err(Fault::Truncated);
        }
        self.fill(position, HEADER_LEN)?;
        let header_at = (position - self.buf_start) as usize;
        let header = BatchHeader::parse(&self.buf[header_at..]);
        let total = header.total_len().min(self.len - position) as usize;
        self.fill(position, total)?;
        let at = (position - self.buf_start) as usize;
        Ok(&self.buf[at..at + total])
    }

    /// Makes sure `buf` holds `len` bytes from `position`.
    fn fill(&mut self, position: u64, len: usize) -> Result<(), Fault> {
        let buf_end = self.buf_start + self.buf.len() as u64;
        if position >= self.buf_start && position + len as u64 <= buf_end {
            return Ok(());
        }
        let want = len.max(READ_CHUNK).min((self.len - position) as usize).max(len);
        self.buf.resize(want, 0);
        self.buf_start = position;
        self.file
            .read_exact_at(&mut self.buf, position)
            .map_err(|e| Fault::Io(LogError::io(format!("reading {} at byte {position}", self.path.display()), e)))
    }
}

/// The position of the first valid batch after `position` numbered above `expected`, if any:
/// every byte position is tried, so a damaged length field cannot hide the batches after it.
fn valid_batch_after(
    file: &File,
    path: &Path,
    position: u64,
    file_len: u64,
    expected: u64,
) -> Result<Option<u64>, LogError> {
    let start = position + 1;
    if start + HEADER_LEN as u64 > file_len {
        return Ok(None);
    }
    let mut tail = vec![0u8; (file_len - start) as usize];
    file.read_exact_at(&mut tail, start)
        .map_err(|e| LogError::io(format!("reading {} at byte {start}", path.display()), e))?;
    for at in 0..=tail.len() - HEADER_LEN {
        let header = BatchHeader::parse(&tail[at..]);
        // Cheap filters first: a plausible offset and a length that fits.
        if header.base_offset <= expected || header.base_offset - expected > u64::from(u32::MAX) {
            continue;
        }
        if (header.length as usize) < HEADER_LEN - batch::PREFIX_LEN
            || at as u64 + header.total_len() > tail.len() as u64
        {
            continue;
        }
        if batch::check(&tail[at..at + header.total_len() as usize]).is_ok() {
            return Ok(Some(start + at as u64));
        }
    }
    Ok(None)
}

fn encode_index(entries: &[IndexEntry]) -> (Vec<u8>, Vec<u8>) {
    let mut index = Vec::with_capacity(entries.len() * 8);
    let mut time = Vec::with_capacity(entries.len() * 12);
    for entry in entries {
        index.extend_from_slice(&entry.rel_offset.to_le_bytes());
        index.extend_from_slice(&entry.position.to_le_bytes());
        time.extend_from_slice(&entry.max_ts_before.to_le_bytes());
        time.extend_from_slice(&entry.rel_offset.to_le_bytes());
    }
    (index, time)
}

/// Loads a sealed segment's indexes; `None` when missing or inconsistent.
fn load_index(index_path: &Path, time_path: &Path, log_len: u64) -> Option<Vec<IndexEntry>> {
    let index = fs::read(index_path).ok()?;
    let time = fs::read(time_path).ok()?;
    if index.len() % 8 != 0 || time.len() % 12 != 0 || index.len() / 8 != time.len() / 12 {
        return None;
    }
    let mut entries: Vec<IndexEntry> = Vec::with_capacity(index.len() / 8);
    for (i, t) in index.chunks_exact(8).zip(time.chunks_exact(12)) {
        let entry = IndexEntry {
            rel_offset: u32::from_le_bytes(i[0..4].try_into().ok()?),
            position: u32::from_le_bytes(i[4..8].try_into().ok()?),
            max_ts_before: i64::from_le_bytes(t[0..8].try_into().ok()?),
        };
        let time_rel = u32::from_le_bytes(t[8..12].try_into().ok()?);
        let ordered = entries.last().is_none_or(|prev| {
            prev.rel_offset < entry.rel_offset
                && prev.position < entry.position
                && prev.max_ts_before <= entry.max_ts_before
        });
        if time_rel != entry.rel_offset || u64::from(entry.position) >= log_len.max(1) || !ordered {
            return None;
        }
        entries.push(entry);
    }
    let starts_at_zero = entries.first().is_none_or(|e| e.rel_offset == 0 && e.position == 0);
    starts_at_zero.then_some(entries)
}

fn open_append(path: &Path, create_new: bool) -> Result<File, LogError> {
    let mut options = OpenOptions::new();
    options.read(true).append(true);
    if create_new {
        options.create_new(true);
    }
    options.open(path).map_err(|e| LogError::io(format!("opening {}", path.display()), e))
}

fn open_truncate(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| LogError::io(format!("opening {}", path.display()), e))
}

fn open_read(path: &Path) -> Result<File, LogError> {
    File::open(path).map_err(|e| LogError::io(format!("opening {}", path.display()), e))
}

fn file_len(file: &File, path: &Path) -> Result<u64, LogError> {
    file.metadata().map(|m| m.len()).map_err(|e| LogError::io(format!("reading the size of {}", path.display()), e))
}

fn write_all(file: &mut File, path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    file.write_all(bytes).map_err(|e| LogError::io(format!("writing {}", path.display()), e))
}
