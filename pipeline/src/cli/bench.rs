//! `weir bench log`: append then read N records of a given size, and report the rates as JSON.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use weir_schemas::Record;

use super::log::FsyncArg;
use crate::log::embedded::{EmbeddedConfig, EmbeddedLog};
use crate::log::fluvio::{FluvioCompression, FluvioConfig, FluvioLog};
use crate::log::Log;

/// `weir bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Append and read back records on the embedded log (or a Fluvio cluster with --fluvio).
    Log(LogBenchArgs),
    /// Push events through a keyed one-minute count window (in-process, no log).
    Aggregate(AggregateBenchArgs),
    /// Look up identities in the enrichment tables (in-process, no log).
    Enrich(EnrichBenchArgs),
    /// Decide enriched events against a generated rule set (in-process, no log).
    Policy(PolicyBenchArgs),
    /// Deliver events through the Splunk HEC sink to a local receiver on 127.0.0.1.
    Hec(HecBenchArgs),
}

/// `weir bench hec`.
#[derive(Debug, Args)]
pub struct HecBenchArgs {
    /// Events to deliver.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Events per request.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Gzip request bodies.
    #[arg(long)]
    pub gzip: bool,
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
    /// Run only the whole operator (no stage rates, no interpreted comparison): for profilers.
    #[arg(long)]
    pub whole_only: bool,
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
    /// Fsync policy (embedded log only).
    #[arg(long, value_enum, default_value_t = FsyncArg::Interval)]
    pub fsync: FsyncArg,
    /// Run against the Fluvio cluster whose SC listens at ENDPOINT (e.g. 127.0.0.1:9003) instead
    /// of the embedded log: same records, same report. Each run uses a new topic, deleted
    /// afterwards; produce is uncompressed (the values would compress well) and durability is the
    /// SPU's storage setting, not `--fsync`.
    #[arg(long, value_name = "ENDPOINT")]
    pub fluvio: Option<String>,
}

/// Runs a benchmark. The log benchmark works in a fresh directory under the data directory,
/// removed afterwards; the operator benchmarks run in memory.
pub fn run(command: &BenchCommand, data_dir: &Path) -> anyhow::Result<()> {
    match command {
        BenchCommand::Log(args) => bench_log(args, data_dir),
        BenchCommand::Hec(args) => bench_hec(args),
        BenchCommand::Policy(args) => {
            let report = weir_operators::policy::bench::run(args.events, args.rules, args.whole_only);
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
    let timings = match &args.fluvio {
        Some(endpoint) => bench_fluvio(args, endpoint, &batch)?,
        None => bench_embedded(args, data_dir, &batch)?,
    };
    let payload_mb = (args.records * args.size as u64) as f64 / 1e6;
    let report = json!({
        "backend": if args.fluvio.is_some() { "fluvio" } else { "embedded" },
        "records": args.records,
        "record_bytes": args.size,
        "batch": batch_len,
        "fsync": if args.fluvio.is_some() { "spu".to_string() } else { format!("{:?}", args.fsync).to_lowercase() },
        "append": {
            "seconds": round(timings.append_secs),
            "records_per_s": round(args.records as f64 / timings.append_secs),
            "mb_per_s": round(payload_mb / timings.append_secs),
        },
        "read": {
            "seconds": round(timings.read_secs),
            "records_per_s": round(timings.read as f64 / timings.read_secs),
            "mb_per_s": round(timings.read_bytes as f64 / 1e6 / timings.read_secs),
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// What a log benchmark measured.
struct LogTimings {
    append_secs: f64,
    read_secs: f64,
    read: u64,
    read_bytes: u64,
}

fn bench_embedded(args: &LogBenchArgs, data_dir: &Path, batch: &[Record]) -> anyhow::Result<LogTimings> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("bench-log-")
        .tempdir_in(data_dir)
        .context("creating the benchmark directory")?;
    let config = EmbeddedConfig { fsync: args.fsync.into(), retention_ms: None, ..EmbeddedConfig::default() };
    let log = EmbeddedLog::open(dir.path(), config)?;
    log.ensure_topic_blocking("bench", 1)?;

    let started = Instant::now();
    let mut appended = 0u64;
    while appended < args.records {
        let n = (args.records - appended).min(batch.len() as u64) as usize;
        log.append_blocking("bench", 0, &batch[..n])?;
        appended += n as u64;
    }
    log.flush_blocking()?;
    let append_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut read = 0u64;
    let mut read_bytes = 0u64;
    while read < args.records {
        let batch = log.read_blocking("bench", 0, read, 10_000)?;
        if batch.records.is_empty() {
            anyhow::bail!("read stopped at offset {read} of {}", args.records);
        }
        read += batch.records.len() as u64;
        read_bytes += batch.records.iter().map(|r| r.record.value.len() as u64).sum::<u64>();
    }
    Ok(LogTimings { append_secs, read_secs: started.elapsed().as_secs_f64(), read, read_bytes })
}

/// The same appends and reads as [`bench_embedded`], through the [`Log`] trait on a Fluvio
/// cluster; reads check every offset comes back once, in order.
fn bench_fluvio(args: &LogBenchArgs, endpoint: &str, batch: &[Record]) -> anyhow::Result<LogTimings> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async {
        let config = FluvioConfig { compression: FluvioCompression::None, ..FluvioConfig::new(endpoint) };
        let log = FluvioLog::connect(&config).await?;
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
        let topic = format!("bench-{stamp}");
        log.ensure_topic(&topic, 1).await?;
        let measured = async {
            let started = Instant::now();
            let mut appended = 0u64;
            while appended < args.records {
                let n = (args.records - appended).min(batch.len() as u64) as usize;
                log.append(&topic, 0, &batch[..n]).await?;
                appended += n as u64;
            }
            let append_secs = started.elapsed().as_secs_f64();

            let started = Instant::now();
            let mut read = 0u64;
            let mut read_bytes = 0u64;
            while read < args.records {
                let batch = log.read(&topic, 0, read, 10_000).await?;
                if batch.records.is_empty() {
                    anyhow::bail!("read stopped at offset {read} of {}", args.records);
                }
                for r in &batch.records {
                    if r.offset != read {
                        anyhow::bail!("offset {} came back where {read} was expected", r.offset);
                    }
                    read += 1;
                    read_bytes += r.record.value.len() as u64;
                }
            }
            let corrections = log.corrections();
            eprintln!(
                "offset guard: {} gap(s) re-read, {} stalled stream(s) re-opened, {} repeated record(s) dropped",
                corrections.gaps, corrections.stalls, corrections.duplicates
            );
            Ok(LogTimings { append_secs, read_secs: started.elapsed().as_secs_f64(), read, read_bytes })
        }
        .await;
        if let Err(e) = log.delete_topic(&topic).await {
            tracing::warn!(topic = %topic, error = %e, "could not delete the benchmark topic");
        }
        measured
    })
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Delivers Avro `IdentityActivity` events (normalized from a real Okta sample) through the
/// Splunk HEC sink, on one thread, to a minimal HEC receiver on 127.0.0.1 that answers every
/// request with success. The figure is the sink's own cost: decoding, building requests, HTTP.
fn bench_hec(args: &HecBenchArgs) -> anyhow::Result<()> {
    use weir_schemas::component::{MemoryState, Operator, Output, Sink};

    let endpoint = local_hec_receiver()?;
    let sample =
        include_str!("../../../examples/data/okta_system_log.ndjson").lines().nth(1).context("the demo sample")?;
    let envelope = weir_schemas::events::RawEnvelope {
        source: "bench".into(),
        vendor: "okta".into(),
        received_at: 0,
        cursor: None,
        content_type: "application/json".into(),
        payload: sample.as_bytes().to_vec(),
    };
    let input = weir_schemas::StoredRecord {
        topic: "raw.bench".into(),
        partition: 0,
        offset: 0,
        record: Record::new(0, weir_schemas::encode(&envelope)?),
    };
    let mut normalize = weir_operators::normalize::Normalize::new(Default::default())?;
    let mut out = Output::default();
    normalize.process(&input, &mut MemoryState::default(), &mut out).map_err(|e| anyhow::anyhow!(e.message))?;
    let event = out.records.pop().context("the sample normalizes to one event")?;
    let event_bytes = event.value.len();
    let batch: Vec<weir_schemas::StoredRecord> = (0..args.batch.max(1))
        .map(|i| weir_schemas::StoredRecord {
            topic: "events".into(),
            partition: 0,
            offset: i as u64,
            record: event.clone().with_header("weir-id", format!("bench/{i}")),
        })
        .collect();
    let config: weir_sinks::siem::splunk_hec::SplunkHecConfig = toml::from_str(&format!(
        "endpoint = \"{endpoint}\"\ntoken = \"bench-token\"\ngzip = {}\nbatch_max_events = {}\n",
        args.gzip,
        args.batch.max(1)
    ))?;
    let mut sink = weir_sinks::siem::splunk_hec::SplunkHecSink::new(config)
        .map_err(|e| anyhow::anyhow!("{}: {}", e.key, e.message))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let started = Instant::now();
    let mut delivered = 0usize;
    runtime.block_on(async {
        while delivered < args.events {
            let n = (args.events - delivered).min(batch.len());
            let failures = sink.deliver(&batch[..n]).await.map_err(|e| anyhow::anyhow!(e.message))?;
            anyhow::ensure!(failures.is_empty(), "the local receiver refused events: {failures:?}");
            delivered += n;
        }
        Ok(())
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let report = json!({
        "events": delivered,
        "batch": args.batch.max(1),
        "gzip": args.gzip,
        "event_avro_bytes": event_bytes,
        "seconds": round(seconds),
        "events_per_s": round(delivered as f64 / seconds),
        "avro_mb_per_s": round((delivered * event_bytes) as f64 / 1e6 / seconds),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// A minimal HEC endpoint on 127.0.0.1 for the benchmark: reads each HTTP/1.1 request (keeping
/// the connection alive) and answers `{"text":"Success","code":0}`. Its threads end with the
/// process.
fn local_hec_receiver() -> anyhow::Result<String> {
    use std::io::{BufRead, BufReader, Read, Write};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding the local receiver")?;
    let address = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut writer = match stream.try_clone() {
                    Ok(writer) => writer,
                    Err(_) => return,
                };
                let mut reader = BufReader::new(stream);
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let reply = "{\"text\":\"Success\",\"code\":0}";
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
                        reply.len()
                    );
                    if writer.write_all(response.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(format!("http://{address}"))
}
