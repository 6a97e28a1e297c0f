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
    }
}
