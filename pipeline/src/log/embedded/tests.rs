//! Tests of the embedded log: appends, reads, seeks, retention, recovery and corruption.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use proptest::prelude::*;
use weir_schemas::Record;

use super::segment::paths;
use super::{EmbeddedConfig, EmbeddedLog, FsyncPolicy};
use crate::log::LogError;

fn small_segments() -> EmbeddedConfig {
    EmbeddedConfig { segment_bytes: 1024, index_interval_bytes: 100, fsync: FsyncPolicy::Never, ..Default::default() }
}

fn record(i: u64) -> Record {
    Record::new(1_000 + i as i64, format!("value-{i}").into_bytes())
        .with_key(format!("k{i}"))
        .with_header("n", i.to_string())
}

fn append_n(log: &EmbeddedLog, topic: &str, n: u64, per_batch: u64) {
    let mut i = 0;
    while i < n {
        let batch: Vec<Record> = (i..(i + per_batch).min(n)).map(record).collect();
        let ack = log.append_blocking(topic, 0, &batch).unwrap();
        assert_eq!(ack.base_offset, i);
        i += batch.len() as u64;
        assert_eq!(ack.last_offset, i - 1);
    }
}

fn read_all(log: &EmbeddedLog, topic: &str, from: u64) -> Vec<(u64, Record)> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let batch = log.read_blocking(topic, 0, next, 7).unwrap();
        if batch.records.is_empty() {
            return out;
        }
        next = batch.next_offset;
        out.extend(batch.records.into_iter().map(|r| (r.offset, r.record)));
    }
}

/// A log with topic `t` holding 20 records in batches of 5, closed; returns its directory and
/// its active segment file.
fn closed_log_of_20_records() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap();
    log.ensure_topic_blocking("t", 1).unwrap();
    append_n(&log, "t", 20, 5);
    drop(log);
    let path = active_segment_path(dir.path(), "t");
    (dir, path)
}

fn active_segment_path(dir: &Path, topic: &str) -> std::path::PathBuf {
    let partition = dir.join("log").join(topic).join("0");
    let mut logs: Vec<_> = std::fs::read_dir(&partition)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

#[test]
fn appends_read_back_across_segments_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), small_segments()).unwrap();
    log.ensure_topic_blocking("t", 1).unwrap();
    append_n(&log, "t", 200, 3);
    assert!(log.segment_count("t", 0).unwrap() > 5, "small segments roll");
    let expected: Vec<(u64, Record)> = (0..200).map(|i| (i, record(i))).collect();
    assert_eq!(read_all(&log, "t", 0), expected);
    assert_eq!(read_all(&log, "t", 150), expected[150..].to_vec());
    drop(log);

    let log = EmbeddedLog::open(dir.path(), small_segments()).unwrap();
    assert_eq!(read_all(&log, "t", 0), expected);
    append_n_from(&log, 200, 10);
    assert_eq!(log.offsets_blocking("t", 0).unwrap().end, 210);
}

fn append_n_from(log: &EmbeddedLog, from: u64, n: u64) {
    let batch: Vec<Record> = (from..from + n).map(record).collect();
    assert_eq!(log.append_blocking("t", 0, &batch).unwrap().base_offset, from);
}

#[test]
fn seeks_by_event_time() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), small_segments()).unwrap();
    log.ensure_topic_blocking("t", 1).unwrap();
    // Timestamps 1000, 1001, ... with one late record in the middle.
    append_n(&log, "t", 100, 4);
    log.append_blocking("t", 0, &[Record::new(500, b"late".to_vec())]).unwrap();
    let offset_for = |ts| log.partition("t", 0).unwrap().lock().unwrap().offset_for_time(ts).unwrap();
    assert_eq!(offset_for(0), Some(0));
    assert_eq!(offset_for(1_050), Some(50));
    assert_eq!(offset_for(1_099), Some(99));
    assert_eq!(offset_for(1_100), None);
}

#[test]
fn a_second_writer_is_refused_and_readers_share() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), small_segments()).unwrap();
    log.ensure_topic_blocking("t", 1).unwrap();
    append_n(&log, "t", 10, 10);
    assert!(matches!(EmbeddedLog::open(dir.path(), small_segments()), Err(LogError::Locked(_))));
    let reader = EmbeddedLog::open_read_only(dir.path()).unwrap();
    assert_eq!(read_all(&reader, "t", 0).len(), 10);
    assert!(matches!(reader.append_blocking("t", 0, &[record(0)]), Err(LogError::ReadOnly)));
}

#[test]
fn a_torn_tail_is_cut_off_on_open() {
    for tail in [&b"\x05\x00"[..], &[0u8; 300][..], &[0xAB; 40][..]] {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap();
        log.ensure_topic_blocking("t", 1).unwrap();
        append_n(&log, "t", 20, 5);
        drop(log);
        let path = active_segment_path(dir.path(), "t");
        let good_len = std::fs::metadata(&path).unwrap().len();
        OpenOptions::new().append(true).open(&path).unwrap().write_all(tail).unwrap();

        let log = EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len, "tail of {} bytes cut", tail.len());
        assert_eq!(read_all(&log, "t", 0).len(), 20);
        assert_eq!(log.append_blocking("t", 0, &[record(20)]).unwrap().base_offset, 20);
    }
}

#[test]
fn a_half_written_last_batch_is_cut_off() {
    let (dir, path) = closed_log_of_20_records();
    let len = std::fs::metadata(&path).unwrap().len();
    OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 10).unwrap();
    let log = EmbeddedLog::open(dir.path(), EmbeddedConfig::default()).unwrap();
    assert_eq!(read_all(&log, "t", 0).len(), 15, "the last batch of 5 was torn");
}

#[test]
fn corruption_in_the_middle_of_the_active_segment_fails_the_open_with_file_and_position() {
    let (dir, path) = closed_log_of_20_records();
    flip_byte(&path, 60);
    match EmbeddedLog::open(dir.path(), EmbeddedConfig::default()) {
        Err(LogError::Corrupt { file, position, reason }) => {
            assert_eq!(file, path);
            assert_eq!(position, 0, "the first batch holds byte 60");
            assert!(reason.contains("CRC32C"), "{reason}");
        }
        Err(other) => panic!("expected corruption, got {other}"),
        Ok(_) => panic!("corruption went unnoticed"),
    }
    // The bytes after the damaged batch are still there: nothing was truncated.
    assert!(std::fs::metadata(&path).unwrap().len() > 60);
}

#[test]
fn a_damaged_length_field_is_corruption_not_a_torn_tail() {
    let (dir, path) = closed_log_of_20_records();
    let len = std::fs::metadata(&path).unwrap().len();
    // The first batch's length (bytes 8..12, outside its CRC) now claims to run past the end.
    flip_byte(&path, 11);
    match EmbeddedLog::open(dir.path(), EmbeddedConfig::default()) {
        Err(LogError::Corrupt { position: 0, reason, .. }) => {
            assert!(reason.contains("a valid batch follows"), "{reason}")
        }
        Err(other) => panic!("expected corruption, got {other}"),
        Ok(_) => panic!("acknowledged batches after a damaged length were cut off as a torn tail"),
    }
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len, "nothing was truncated");
}

#[test]
fn a_damaged_base_offset_in_a_sealed_segment_is_an_error_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), small_segments()).unwrap();
    log.ensure_topic_blocking("t", 1).unwrap();
    append_n(&log, "t", 100, 2);
    drop(log);
    let first = paths(&dir.path().join("log/t/0"), 0)[0].clone();
    flip_byte(&first, 7); // high byte of the first batch's base offset: outside the CRC
    let log = EmbeddedLog::open(dir.path(), small_segments()).unwrap();
    let err = log.read_blocking("t", 0, 0, 10).unwrap_err();
    assert!(err.to_string().contains("where offset 0 was expected"), "{err}");
    assert!(log.partition("t", 0).unwrap().lock().unwrap().offset_for_time(0).is_err());
}

#[test]
fn opening_read_only_never_writes() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), small_segments()).unwrap();
    log.ensure_topic_blocking("t", 1).unwrap();
    append_n(&log, "t", 100, 2);
    drop(log);
    let [_, index, _] = paths(&dir.path().join("log/t/0"), 0);
    std::fs::remove_file(&index).unwrap();
    let reader = EmbeddedLog::open_read_only(dir.path()).unwrap();
    assert_eq!(read_all(&reader, "t", 0).len(), 100);
    assert!(!index.exists(), "a read-only open rebuilt the index in memory only");
}

#[test]
fn corruption_in_a_sealed_segment_is_an_error_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), small_segments()).unwrap();
    log.ensure_topic_blocking("t", 1).unwrap();
    append_n(&log, "t", 100, 2);
    drop(log);
    let first = paths(&dir.path().join("log/t/0"), 0)[0].clone();
    flip_byte(&first, 20);
    let log = EmbeddedLog::open(dir.path(), small_segments()).unwrap();
    let err = log.read_blocking("t", 0, 0, 10).unwrap_err();
    assert!(matches!(&err, LogError::Corrupt { file, position: 0, .. } if *file == first), "{err}");
    let message = err.to_string();
    assert!(message.contains("00000000000000000000.log") && message.contains("byte 0"), "{message}");
}

#[test]
fn retention_by_size_deletes_the_oldest_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig { retention_bytes: Some(3000), ..small_segments() };
    let log = EmbeddedLog::open(dir.path(), config).unwrap();
    log.ensure_topic_blocking("t", 1).unwrap();
    append_n(&log, "t", 300, 3);
    let offsets = log.offsets_blocking("t", 0).unwrap();
    assert!(offsets.start > 0, "old segments were deleted");
    assert_eq!(offsets.end, 300);
    assert!(matches!(log.read_blocking("t", 0, 0, 1), Err(LogError::OffsetOutOfRange { .. })));
    let kept = read_all(&log, "t", offsets.start);
    assert_eq!(kept.len() as u64, 300 - offsets.start);
    assert_eq!(kept[0], (offsets.start, record(offsets.start)));
}

#[test]
fn retention_by_age_deletes_segments_last_written_long_ago() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), small_segments()).unwrap();
    log.ensure_topic_blocking("t", 1).unwrap();
    append_n(&log, "t", 100, 2);
    let segments = log.segment_count("t", 0).unwrap();
    drop(log);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let config = EmbeddedConfig { retention_ms: Some(10), ..small_segments() };
    let log = EmbeddedLog::open(dir.path(), config).unwrap();
    assert_eq!(log.apply_retention().unwrap(), segments - 1, "all but the active segment");
    assert_eq!(log.offsets_blocking("t", 0).unwrap().end, 100);
}

#[test]
fn a_lost_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), small_segments()).unwrap();
    log.ensure_topic_blocking("t", 1).unwrap();
    append_n(&log, "t", 100, 2);
    drop(log);
    let [_, index, time] = paths(&dir.path().join("log/t/0"), 0);
    std::fs::remove_file(index).unwrap();
    std::fs::write(time, b"garbage").unwrap();
    let log = EmbeddedLog::open(dir.path(), small_segments()).unwrap();
    assert_eq!(read_all(&log, "t", 0).len(), 100);
    assert_eq!(read_all(&log, "t", 37)[0].0, 37);
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0xFF;
    std::fs::write(path, bytes).unwrap();
}

#[derive(Clone, Debug)]
enum Op {
    Append(Vec<(i64, Vec<u8>)>),
    Read(u64, usize),
    Seek(i64),
    Reopen,
    Retention,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec((0i64..1000, prop::collection::vec(any::<u8>(), 0..200)), 1..8).prop_map(Op::Append),
        2 => (0u64..400, 1usize..50).prop_map(|(o, n)| Op::Read(o, n)),
        1 => (0i64..1100).prop_map(Op::Seek),
        1 => Just(Op::Reopen),
        1 => Just(Op::Retention),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The log behaves like a vector of records whose front retention may cut.
    #[test]
    fn behaves_like_a_vector(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let config = EmbeddedConfig { retention_bytes: Some(4000), ..small_segments() };
        let mut log = EmbeddedLog::open(dir.path(), config.clone()).unwrap();
        log.ensure_topic_blocking("t", 1).unwrap();
        let mut model: Vec<Record> = Vec::new();
        for op in ops {
            match op {
                Op::Append(records) => {
                    let records: Vec<Record> = records.into_iter().map(|(ts, v)| Record::new(ts, v)).collect();
                    let ack = log.append_blocking("t", 0, &records).unwrap();
                    prop_assert_eq!(ack.base_offset, model.len() as u64);
                    model.extend(records);
                }
                Op::Read(from, max) => {
                    let start = log.offsets_blocking("t", 0).unwrap().start;
                    match log.read_blocking("t", 0, from, max) {
                        Ok(batch) => {
                            prop_assert!(from >= start);
                            let expected: Vec<(u64, Record)> = model.iter().cloned().enumerate().map(|(i, r)| (i as u64, r)).skip(from as usize).take(max).collect();
                            let got: Vec<(u64, Record)> = batch.records.into_iter().map(|r| (r.offset, r.record)).collect();
                            prop_assert_eq!(got, expected);
                        }
                        Err(LogError::OffsetOutOfRange { .. }) => prop_assert!(from < start),
                        Err(e) => return Err(TestCaseError::fail(e.to_string())),
                    }
                }
                Op::Seek(ts) => {
                    let start = log.offsets_blocking("t", 0).unwrap().start as usize;
                    let expected = model.iter().enumerate().skip(start).find(|(_, r)| r.timestamp_ms >= ts).map(|(i, _)| i as u64);
                    let got = log.partition("t", 0).unwrap().lock().unwrap().offset_for_time(ts).unwrap();
                    prop_assert_eq!(got, expected);
                }
                Op::Reopen => {
                    drop(log);
                    log = EmbeddedLog::open(dir.path(), config.clone()).unwrap();
                }
                Op::Retention => {
                    log.apply_retention().unwrap();
                }
            }
            let offsets = log.offsets_blocking("t", 0).unwrap();
            prop_assert_eq!(offsets.end, model.len() as u64);
        }
    }
}
