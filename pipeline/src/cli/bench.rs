//! `weir bench log`: append then read N records of a given size, and report the rates as JSON.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use weir_schemas::Record;

use super::log::FsyncArg;
use crate::log::embedded::{EmbeddedConfig, EmbeddedLog};

/// `weir bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Append and read back records on the embedded log.
    Log(LogBenchArgs),
    /// Push events through a keyed one-minute count window (in-process, no log).
    Aggregate(AggregateBenchArgs),
    /// Look up identities in the enrichment tables (in-process, no log).
    Enrich(EnrichBenchArgs),
    /// Decide enriched events against a generated rule set (in-process, no log).
    Policy(PolicyBenchArgs),
}

/// `weir bench policy`.
#[derive(Debug, Args)]
pub struct PolicyBenchArgs {
    /// Events to decide.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Rules in the set.
    #[arg(long, default_value_t = 50)]
    pub rules: usize,
}

/// `weir bench enrich`.
#[derive(Debug, Args)]
pub struct EnrichBenchArgs {
    /// Identities loaded into the tables.
    #[arg(long, default_value_t = 1_000_000)]
    pub identities: usize,
    /// Lookups to time (by uid, login and email).
    #[arg(long, default_value_t = 3_000_000)]
    pub lookups: usize,
}

/// `weir bench aggregate`.
#[derive(Debug, Args)]
pub struct AggregateBenchArgs {
    /// Events to aggregate.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = 10_000)]
    pub keys: usize,
}

/// `weir bench log`.
#[derive(Debug, Args)]
pub struct LogBenchArgs {
    /// Records to append and read.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Records per append.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Fsync policy.
    #[arg(long, value_enum, default_value_t = FsyncArg::Interval)]
    pub fsync: FsyncArg,
}

/// Runs a benchmark. The log benchmark works in a fresh directory under the data directory,
/// removed afterwards; the operator benchmarks run in memory.
pub fn run(command: &BenchCommand, data_dir: &Path) -> anyhow::Result<()> {
    match command {
        BenchCommand::Log(args) => bench_log(args, data_dir),
        BenchCommand::Policy(args) => {
            let report = weir_operators::policy::bench::run(args.events, args.rules);
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        BenchCommand::Enrich(args) => {
            let report = weir_operators::enrich::bench::run(args.identities, args.lookups);
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        BenchCommand::Aggregate(args) => {
            let report = weir_operators::aggregate::bench::run(args.events, args.keys.max(1));
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
    }
}

fn bench_log(args: &LogBenchArgs, data_dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("bench-log-")
        .tempdir_in(data_dir)
        .context("creating the benchmark directory")?;
    let config = EmbeddedConfig { fsync: args.fsync.into(), retention_ms: None, ..EmbeddedConfig::default() };
    let log = EmbeddedLog::open(dir.path(), config)?;
    log.ensure_topic_blocking("bench", 1)?;
    let batch_len = args.batch.max(1);
    // Distinct values, so compression or deduplication could never flatter the figure.
    let batch: Vec<Record> = (0..batch_len)
        .map(|i| {
            let mut value = vec![b'x'; args.size];
            let tag = i.to_le_bytes();
            let n = tag.len().min(args.size);
            value[..n].copy_from_slice(&tag[..n]);
            Record::new(i as i64, value)
        })
        .collect();

    let started = Instant::now();
    let mut appended = 0u64;
    while appended < args.records {
        let n = (args.records - appended).min(batch_len as u64) as usize;
        log.append_blocking("bench", 0, &batch[..n])?;
        appended += n as u64;
    }
    log.flush_blocking()?;
    let append_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut read = 0u64;
    let mut bytes = 0u64;
    while read < args.records {
        let batch = log.read_blocking("bench", 0, read, 10_000)?;
        if batch.records.is_empty() {
            anyhow::bail!("read stopped at offset {read} of {}", args.records);
        }
        read += batch.records.len() as u64;
        bytes += batch.records.iter().map(|r| r.record.value.len() as u64).sum::<u64>();
    }
    let read_secs = started.elapsed().as_secs_f64();
    let payload_mb = (args.records * args.size as u64) as f64 / 1e6;
    let report = json!({
        "records": args.records,
        "record_bytes": args.size,
        "batch": batch_len,
        "fsync": format!("{:?}", args.fsync).to_lowercase(),
        "append": {
            "seconds": round(append_secs),
            "records_per_s": round(args.records as f64 / append_secs),
            "mb_per_s": round(payload_mb / append_secs),
        },
        "read": {
            "seconds": round(read_secs),
            "records_per_s": round(read as f64 / read_secs),
            "mb_per_s": round(bytes as f64 / 1e6 / read_secs),
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
