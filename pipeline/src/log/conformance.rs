//! The conformance suite of the [`Log`] trait: what every backend must do, checked the same way
//! for each. The embedded backend runs it in `cargo test`; another backend gets the same checks
//! by calling [`check_all`] with a way to open it.
//!
//! Every check uses its own topics (named after `prefix`), so a suite can run against a shared
//! cluster.

use std::future::Future;
use std::pin::Pin;

use weir_schemas::Record;

use super::{Log, LogError};

/// Opens (or reopens) the backend under test: the restart check drops the client and opens a
/// new one on the same data.
pub type Open<'a> = &'a (dyn Fn() -> Pin<Box<dyn Future<Output = Result<Box<dyn Log>, LogError>> + Send>> + Sync);

/// Records appended by the backlog check.
pub const BACKLOG: u64 = 1_000_000;

fn record(i: u64) -> Record {
    Record::new(1_000_000 + i as i64, i.to_le_bytes().to_vec()).with_key(format!("k{}", i % 7))
}

/// Runs every check; returns the first failure as a message naming the check.
pub async fn check_all(open: Open<'_>, prefix: &str, backlog: u64) -> Result<(), String> {
    let log = open().await.map_err(|e| format!("opening the backend: {e}"))?;
    append_read_and_offsets(log.as_ref(), &format!("{prefix}.basic")).await.map_err(|e| format!("append/read: {e}"))?;
    seek_by_time(log.as_ref(), &format!("{prefix}.seek")).await.map_err(|e| format!("seek by time: {e}"))?;
    every_offset_once(log.as_ref(), &format!("{prefix}.backlog"), backlog)
        .await
        .map_err(|e| format!("backlog of {backlog}: {e}"))?;
    drop(log);
    restart_keeps_everything(open, &format!("{prefix}.basic")).await.map_err(|e| format!("client restart: {e}"))?;
    Ok(())
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Batches appended after the server came back, by [`producer_retry_across_restart`].
const BATCHES_AFTER_RESTART: usize = 20;

/// Batches [`producer_retry_across_restart`] appends at most, so a restart that never finishes
/// fails the check instead of filling memory.
const MAX_RESTART_BATCHES: usize = 50_000;

/// Records per batch in [`producer_retry_across_restart`].
const RESTART_BATCH: u64 = 200;

/// Appends batches while `restart` restarts the server under the log (for a cluster: the SPU
/// leading the partition), and goes on for [`BATCHES_AFTER_RESTART`] batches once it is back.
/// Every append must be acknowledged (the backend retries what fails while the server is away),
/// and every acknowledged batch must read back in order from the offsets its acknowledgement
/// gave. A produce retried after the server wrote it but before it answered may leave records
/// twice (appends to a cluster are at-least-once): the check allows repeats within a batch's
/// range, never a missing or foreign record.
pub async fn producer_retry_across_restart(
    log: &dyn Log,
    topic: &str,
    restart: Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>,
) -> Result<RestartReport, String> {
    log.ensure_topic(topic, 1).await.map_err(|e| e.to_string())?;
    let restarted = std::sync::atomic::AtomicBool::new(false);
    let appending = async {
        let mut acked = Vec::new();
        let mut longest = std::time::Duration::ZERO;
        let mut after_restart = 0;
        let mut i = 0;
        while after_restart < BATCHES_AFTER_RESTART {
            // Read before appending: a batch counts as "after" only if it started after.
            let counts = restarted.load(std::sync::atomic::Ordering::SeqCst);
            let batch: Vec<Record> = (i..i + RESTART_BATCH).map(|n| record(10_000_000 + n)).collect();
            let started = std::time::Instant::now();
            let ack = log.append(topic, 0, &batch).await.map_err(|e| format!("append {} failed: {e}", acked.len()))?;
            longest = longest.max(started.elapsed());
            acked.push((ack, batch));
            i += RESTART_BATCH;
            if counts {
                after_restart += 1;
            }
            ensure!(
                acked.len() < MAX_RESTART_BATCHES,
                "the restart did not finish within {MAX_RESTART_BATCHES} batches"
            );
            // Let the restart run even if appends never wait (the embedded log's do not).
            tokio::task::yield_now().await;
        }
        Ok::<_, String>((acked, longest))
    };
    let restarting = async {
        let result = restart.await;
        restarted.store(true, std::sync::atomic::Ordering::SeqCst);
        result
    };
    let (acked, restarted_ok) = tokio::join!(appending, restarting);
    restarted_ok.map_err(|e| format!("restarting the server: {e}"))?;
    let (acked, longest_append) = acked?;
    for (n, (ack, batch)) in acked.iter().enumerate() {
        ensure!(ack.last_offset >= ack.base_offset, "batch {n} acked {ack:?}");
        let len = (ack.last_offset - ack.base_offset + 1) as usize;
        ensure!(len >= batch.len(), "batch {n} of {} records acked only {len} offsets", batch.len());
        let read = log.read(topic, 0, ack.base_offset, len).await.map_err(|e| e.to_string())?;
        ensure!(read.records.len() == len, "batch {n}: read {} of its {len} offsets", read.records.len());
        let mut wanted = batch.iter().peekable();
        for stored in &read.records {
            ensure!(
                batch.contains(&stored.record),
                "batch {n}: offset {} holds a record not in the batch",
                stored.offset
            );
            if wanted.peek() == Some(&&stored.record) {
                wanted.next();
            }
        }
        ensure!(
            wanted.peek().is_none(),
            "batch {n}: its records are not all there, in order, from offset {}",
            ack.base_offset
        );
    }
    let records = acked.len() as u64 * RESTART_BATCH;
    let offsets = acked.last().map_or(0, |(ack, _)| ack.last_offset + 1);
    Ok(RestartReport { batches: acked.len(), records, repeated: offsets.saturating_sub(records), longest_append })
}

/// What [`producer_retry_across_restart`] saw, for the test to print.
#[derive(Clone, Copy, Debug)]
pub struct RestartReport {
    /// Batches appended and acknowledged.
    pub batches: usize,
    /// Records in them.
    pub records: u64,
    /// Offsets taken beyond `records`: records a retried produce left twice.
    pub repeated: u64,
    /// The longest any append took (one that waited out the restart).
    pub longest_append: std::time::Duration,
}

async fn append_read_and_offsets(log: &dyn Log, topic: &str) -> Result<(), String> {
    let info = log.ensure_topic(topic, 2).await.map_err(|e| e.to_string())?;
    ensure!(info.partitions == 2, "created with {} partitions, asked for 2", info.partitions);
    let again = log.ensure_topic(topic, 5).await.map_err(|e| e.to_string())?;
    ensure!(again.partitions == 2, "ensure_topic changed an existing topic to {} partitions", again.partitions);
    let batch: Vec<Record> = (0..10).map(record).collect();
    let ack = log.append(topic, 1, &batch).await.map_err(|e| e.to_string())?;
    ensure!((ack.base_offset, ack.last_offset) == (0, 9), "first append acked {ack:?}");
    let ack = log.append(topic, 1, &batch[..3]).await.map_err(|e| e.to_string())?;
    ensure!((ack.base_offset, ack.last_offset) == (10, 12), "second append acked {ack:?}");
    let offsets = log.offsets(topic, 1).await.map_err(|e| e.to_string())?;
    ensure!((offsets.start, offsets.end) == (0, 13), "offsets {offsets:?}");
    let empty = log.offsets(topic, 0).await.map_err(|e| e.to_string())?;
    ensure!((empty.start, empty.end) == (0, 0), "untouched partition has offsets {empty:?}");
    let read = log.read(topic, 1, 8, 4).await.map_err(|e| e.to_string())?;
    let got: Vec<(u64, Record)> = read.records.into_iter().map(|r| (r.offset, r.record)).collect();
    let expected = vec![(8, record(8)), (9, record(9)), (10, record(0)), (11, record(1))];
    ensure!(got == expected, "read from 8 returned {got:?}");
    ensure!(read.next_offset == 12, "next offset {}", read.next_offset);
    let at_end = log.read(topic, 1, 13, 10).await.map_err(|e| e.to_string())?;
    ensure!(at_end.records.is_empty(), "reading at the end returned records");
    ensure!(log.read("no.such.topic", 0, 0, 1).await.is_err(), "reading a missing topic succeeded");
    ensure!(log.append(topic, 7, &batch).await.is_err(), "appending to a missing partition succeeded");
    let topics = log.topics().await.map_err(|e| e.to_string())?;
    ensure!(topics.iter().any(|t| t.name == topic), "topics() misses {topic}");
    Ok(())
}

async fn seek_by_time(log: &dyn Log, topic: &str) -> Result<(), String> {
    log.ensure_topic(topic, 1).await.map_err(|e| e.to_string())?;
    // Event times are not in offset order: 100, 300, 200, 400.
    let records: Vec<Record> = [100, 300, 200, 400].iter().map(|&t| Record::new(t, b"x".to_vec())).collect();
    log.append(topic, 0, &records).await.map_err(|e| e.to_string())?;
    for (time, expected) in [(0, Some(0)), (150, Some(1)), (250, Some(1)), (301, Some(3)), (401, None)] {
        let got = log.offset_for_time(topic, 0, time).await.map_err(|e| e.to_string())?;
        ensure!(got == expected, "first offset at or after {time}: got {got:?}, expected {expected:?}");
    }
    Ok(())
}

async fn every_offset_once(log: &dyn Log, topic: &str, count: u64) -> Result<(), String> {
    log.ensure_topic(topic, 1).await.map_err(|e| e.to_string())?;
    let mut appended = 0;
    while appended < count {
        let batch: Vec<Record> = (appended..(appended + 5000).min(count)).map(record).collect();
        log.append(topic, 0, &batch).await.map_err(|e| e.to_string())?;
        appended += batch.len() as u64;
    }
    let mut next = 0;
    while next < count {
        let batch = log.read(topic, 0, next, 10_000).await.map_err(|e| e.to_string())?;
        ensure!(!batch.records.is_empty(), "read stopped at {next}");
        for r in &batch.records {
            ensure!(r.offset == next, "offset {} where {next} was expected", r.offset);
            ensure!(r.record == record(next), "record {next} came back different");
            next += 1;
        }
    }
    let end = log.offsets(topic, 0).await.map_err(|e| e.to_string())?.end;
    ensure!(end == count, "end offset {end} after {count} records");
    Ok(())
}

async fn restart_keeps_everything(open: Open<'_>, topic: &str) -> Result<(), String> {
    let log = open().await.map_err(|e| format!("reopening: {e}"))?;
    let offsets = log.offsets(topic, 1).await.map_err(|e| e.to_string())?;
    ensure!(offsets.end == 13, "after a restart the partition ends at {}", offsets.end);
    let read = log.read(topic, 1, 0, 100).await.map_err(|e| e.to_string())?;
    ensure!(read.records.len() == 13 && read.records[12].record == record(2), "records changed across a restart");
    let ack = log.append(topic, 1, &[record(99)]).await.map_err(|e| e.to_string())?;
    ensure!(ack.base_offset == 13, "append after a restart got offset {}", ack.base_offset);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::log::embedded::{EmbeddedConfig, EmbeddedLog};

    #[tokio::test]
    async fn the_embedded_backend_conforms() {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let open = {
            let dir = dir.clone();
            move || {
                let path = dir.path().to_path_buf();
                Box::pin(async move {
                    let log: Box<dyn Log> = Box::new(EmbeddedLog::open(&path, EmbeddedConfig::default())?);
                    Ok(log)
                }) as Pin<Box<dyn Future<Output = Result<Box<dyn Log>, LogError>> + Send>>
            }
        };
        check_all(&open, "conformance", BACKLOG).await.unwrap();
        // The embedded log has no server to restart: this runs the check's reading side.
        let log = open().await.unwrap();
        producer_retry_across_restart(log.as_ref(), "conformance.restart", Box::pin(async { Ok(()) })).await.unwrap();
    }
}
