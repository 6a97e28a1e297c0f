//! Crash safety of the log: `weir log produce` killed with SIGKILL at random moments, many times;
//! every offset it printed as durable must be readable afterwards, in order, without gaps or
//! garbage.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use weir_pipeline::log::embedded::{EmbeddedConfig, EmbeddedLog};

use crate::common::*;

fn end_offset(data: &std::path::Path) -> u64 {
    // Opening for writing runs recovery (torn-tail truncation) exactly as the next producer would.
    let log = EmbeddedLog::open(data, EmbeddedConfig::default()).unwrap();
    log.ensure_topic_blocking("t", 1).unwrap();
    log.offsets_blocking("t", 0).unwrap().end
}

#[test]
fn killed_producers_never_lose_a_durable_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let mut rng = Rng(seed());
    let mut max_durable: Option<u64> = None;
    for round in 0..25 {
        let start = end_offset(data);
        if let Some(durable) = max_durable {
            assert!(start > durable, "round {round}: offset {durable} was printed durable but the log ends at {start}");
        }
        let mut child = weir(data)
            .args(["log", "produce", "t"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                // Each value names the offset it will get, so the check below can spot any gap,
                // reordering or stray bytes. At most 20,000 lines a round keeps the test quick.
                let mut line = String::new();
                for i in start..start + 20_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    line.clear();
                    line.push_str(&format!("{{\"i\":{i},\"pad\":\"{}\"}}\n", "x".repeat((i % 50) as usize)));
                    if stdin.write_all(line.as_bytes()).is_err() {
                        break;
                    }
                }
            })
        };
        let reader = {
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                let mut last = None;
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let offset: u64 = line.strip_prefix("durable ").expect("only `durable N` lines").parse().unwrap();
                    last = Some(offset);
                }
                last
            })
        };
        std::thread::sleep(Duration::from_millis(rng.below(120)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        if let Some(last) = reader.join().unwrap() {
            max_durable = Some(max_durable.map_or(last, |m: u64| m.max(last)));
        }
    }
    let end = end_offset(data);
    let durable = max_durable.expect("some batch became durable in 25 rounds");
    assert!(end > durable, "offset {durable} was printed durable but the log ends at {end}");

    let log = EmbeddedLog::open_read_only(data).unwrap();
    let mut next = 0;
    while next < end {
        let batch = log.read_blocking("t", 0, next, 5000).unwrap();
        assert!(!batch.records.is_empty(), "read stopped at {next} of {end}");
        for record in batch.records {
            assert_eq!(record.offset, next, "offsets are dense");
            let value: serde_json::Value = serde_json::from_slice(&record.record.value)
                .unwrap_or_else(|e| panic!("garbage at offset {next}: {e}"));
            assert_eq!(value["i"], next, "record at offset {next} is the one written for it");
            next += 1;
        }
    }
}
