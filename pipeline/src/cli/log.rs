//! `weir log topics | produce | consume`, on the embedded log in the data directory or, with
//! `--fluvio ENDPOINT`, on a Fluvio cluster.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{bail, Context};
use base64::Engine;
use clap::{Args, Subcommand, ValueEnum};
use time::format_description::well_known::Rfc3339;
use weir_schemas::events::{DeadLetter, Stage};
use weir_schemas::Record;

use crate::config::DLQ_TOPIC;
use crate::log::embedded::{EmbeddedConfig, EmbeddedLog, FsyncPolicy};
use crate::log::fluvio::{FluvioConfig, FluvioLog};
use crate::log::Log;

/// Records per append when producing from standard input.
const PRODUCE_BATCH: usize = 1000;

/// `weir log [--fluvio ENDPOINT] ...`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Use the topics of the Fluvio cluster whose SC is at this address (e.g. 127.0.0.1:9003)
    /// instead of the embedded log in the data directory.
    #[arg(long, global = true, value_name = "ENDPOINT")]
    pub fluvio: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: LogCommand,
}

/// `weir log ...`.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// List topics with their partitions and offsets.
    Topics,
    /// Append NDJSON from standard input, one record per line; prints `durable OFFSET` after
    /// each batch is durable.
    Produce(ProduceArgs),
    /// Print records of a topic.
    Consume(ConsumeArgs),
}

/// `weir log produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// The topic; created if missing.
    pub topic: String,
    /// The partition to append to.
    #[arg(long, default_value_t = 0)]
    pub partition: u32,
    /// Partitions of the topic if it has to be created.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// When appends are synced to disk. With `always` (the default), `durable N` means on disk;
    /// with `interval` or `never` it means written to the OS: it survives this process being
    /// killed, not the machine crashing.
    #[arg(long, value_enum, default_value_t = FsyncArg::Always)]
    pub fsync: FsyncArg,
}

/// `--fsync`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FsyncArg {
    /// Sync every batch before acknowledging it.
    Always,
    /// Acknowledge once written to the OS; sync every second.
    Interval,
    /// Leave syncing to the OS.
    Never,
}

impl From<FsyncArg> for FsyncPolicy {
    fn from(arg: FsyncArg) -> Self {
        match arg {
            FsyncArg::Always => FsyncPolicy::Always,
            FsyncArg::Interval => FsyncPolicy::Interval,
            FsyncArg::Never => FsyncPolicy::Never,
        }
    }
}

/// `weir log consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// The topic.
    pub topic: String,
    /// Where to start: an offset, an RFC 3339 time (the first record at or after it), or
    /// `earliest`.
    #[arg(long, default_value = "earliest")]
    pub from: String,
    /// Where to stop, exclusive: an offset or an RFC 3339 time. Default: the current end.
    #[arg(long)]
    pub to: Option<String>,
    /// Print at most this many records.
    #[arg(long)]
    pub count: Option<u64>,
    /// Only this partition (default: every partition, one after the other).
    #[arg(long)]
    pub partition: Option<u32>,
    /// `json`: one object per record with its offset, timestamp, key, headers and decoded value;
    /// `raw`: the stored value bytes, base64, one per line.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
}

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Json,
    /// The value bytes, base64.
    Raw,
}

/// Where the log is: a data directory's embedded log, or a Fluvio cluster.
enum Location<'a> {
    Embedded(&'a Path),
    Fluvio(&'a str),
}

impl Location<'_> {
    /// Opens the log; `writable` opens the embedded log for appends (else read-only, so a
    /// running pipeline can be inspected).
    async fn open(&self, writable: Option<EmbeddedConfig>) -> anyhow::Result<Box<dyn Log>> {
        Ok(match (self, writable) {
            (Location::Embedded(dir), Some(config)) => Box::new(EmbeddedLog::open(dir, config)?),
            (Location::Embedded(dir), None) => Box::new(EmbeddedLog::open_read_only(dir)?),
            (Location::Fluvio(endpoint), _) => Box::new(FluvioLog::connect(&FluvioConfig::new(*endpoint)).await?),
        })
    }
}

impl std::fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Embedded(dir) => write!(f, "{}", dir.display()),
            Location::Fluvio(endpoint) => write!(f, "the Fluvio cluster at {endpoint}"),
        }
    }
}

/// Runs a log command.
pub fn run(args: &LogArgs, data_dir: &Path) -> anyhow::Result<()> {
    let location = match &args.fluvio {
        Some(endpoint) => Location::Fluvio(endpoint),
        None => Location::Embedded(data_dir),
    };
    let runtime = runtime()?;
    match &args.command {
        LogCommand::Topics => runtime.block_on(topics(&location)),
        LogCommand::Produce(args) => runtime.block_on(produce(args, &location)),
        LogCommand::Consume(args) => runtime.block_on(consume(args, &location)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("starting the runtime")
}

async fn topics(location: &Location<'_>) -> anyhow::Result<()> {
    let log = location.open(None).await?;
    let topics = log.topics().await?;
    let mut stdout = std::io::stdout().lock();
    if topics.is_empty() {
        let _ = writeln!(stdout, "no topics in {location}");
        return Ok(());
    }
    let mut lines = vec![format!("{:<28} {:>9} {:>12} {:>12} {:>12}", "topic", "partition", "start", "end", "records")];
    for topic in topics {
        for partition in 0..topic.partitions {
            let offsets = log.offsets(&topic.name, partition).await?;
            let records = offsets.end - offsets.start;
            lines.push(format!(
                "{:<28} {:>9} {:>12} {:>12} {:>12}",
                topic.name, partition, offsets.start, offsets.end, records
            ));
        }
    }
    for line in lines {
        if writeln!(stdout, "{line}").is_err() {
            break; // the reader went away (e.g. `| head`)
        }
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

async fn produce(args: &ProduceArgs, location: &Location<'_>) -> anyhow::Result<()> {
    let config = EmbeddedConfig { fsync: args.fsync.into(), ..EmbeddedConfig::default() };
    let log = location.open(Some(config)).await?;
    let info = log.ensure_topic(&args.topic, args.partitions).await?;
    if args.partition >= info.partitions {
        bail!("topic `{}` has {} partition(s); there is no partition {}", args.topic, info.partitions, args.partition);
    }
    let mut input = std::io::BufReader::with_capacity(1 << 16, std::io::stdin().lock());
    let mut stdout = std::io::stdout().lock();
    let mut line_number = 0u64;
    let mut rejected = 0u64;
    let mut line = Vec::new();
    loop {
        let mut batch = Vec::new();
        let mut letters = Vec::new();
        // Take what is already buffered, up to a batch: one durable append per burst of input.
        loop {
            line.clear();
            let n = input.read_until(b'\n', &mut line).context("reading standard input")?;
            if n == 0 {
                break;
            }
            line_number += 1;
            let content = line.trim_ascii();
            if !content.is_empty() {
                match serde_json::from_slice::<serde::de::IgnoredAny>(content) {
                    Ok(_) => batch.push(Record::new(now_ms(), content.to_vec())),
                    Err(e) => {
                        let reason = format!("standard input line {line_number}: not valid JSON: {e}");
                        eprintln!("rejected to {DLQ_TOPIC}: {reason}");
                        letters.push(dead_letter(reason, content.to_vec())?);
                    }
                }
            }
            if batch.len() + letters.len() >= PRODUCE_BATCH || input.buffer().is_empty() {
                break;
            }
        }
        if batch.is_empty() && letters.is_empty() {
            break;
        }
        if !letters.is_empty() {
            log.ensure_topic(DLQ_TOPIC, 1).await?;
            rejected += letters.len() as u64;
            log.append(DLQ_TOPIC, 0, &letters).await?;
        }
        if !batch.is_empty() {
            let ack = log.append(&args.topic, args.partition, &batch).await?;
            writeln!(stdout, "durable {}", ack.last_offset)
                .and_then(|()| stdout.flush())
                .context("writing to standard output")?;
        }
    }
    log.flush().await?;
    if rejected > 0 {
        bail!("{rejected} line(s) were not valid JSON and went to the `{DLQ_TOPIC}` topic");
    }
    Ok(())
}

fn dead_letter(reason: String, original: Vec<u8>) -> anyhow::Result<Record> {
    let letter = DeadLetter {
        component: "weir log produce".into(),
        stage: Stage::Source,
        input_topic: None,
        input_partition: None,
        input_offset: None,
        reason,
        original,
        time: now_ms(),
        attempts: 1,
    };
    Ok(Record::new(letter.time, weir_schemas::encode(&letter)?))
}

/// A position given on the command line.
enum Position {
    Offset(u64),
    Time(i64),
    Earliest,
}

fn parse_position(text: &str, flag: &str) -> anyhow::Result<Position> {
    if text == "earliest" {
        return Ok(Position::Earliest);
    }
    if let Ok(offset) = text.parse::<u64>() {
        return Ok(Position::Offset(offset));
    }
    match time::OffsetDateTime::parse(text, &Rfc3339) {
        Ok(time) => Ok(Position::Time((time.unix_timestamp_nanos() / 1_000_000) as i64)),
        Err(e) => bail!("{flag} `{text}` is neither an offset, `earliest`, nor an RFC 3339 time ({e})"),
    }
}

/// The offset a position stands for in one partition.
async fn resolve(log: &dyn Log, topic: &str, partition: u32, position: &Position) -> anyhow::Result<u64> {
    let offsets = log.offsets(topic, partition).await?;
    Ok(match position {
        Position::Earliest => offsets.start,
        Position::Offset(offset) => *offset,
        Position::Time(ts) => log.offset_for_time(topic, partition, *ts).await?.unwrap_or(offsets.end),
    })
}

async fn consume(args: &ConsumeArgs, location: &Location<'_>) -> anyhow::Result<()> {
    let from = parse_position(&args.from, "--from")?;
    let to = args.to.as_deref().map(|t| parse_position(t, "--to")).transpose()?;
    let log = location.open(None).await?;
    let Some(topic) = log.topic(&args.topic).await? else {
        bail!("topic `{}` does not exist in {location}", args.topic);
    };
    let partitions: Vec<u32> = match args.partition {
        Some(p) if p < topic.partitions => vec![p],
        Some(p) => bail!("topic `{}` has {} partition(s); there is no partition {p}", args.topic, topic.partitions),
        None => (0..topic.partitions).collect(),
    };
    let mut stdout = std::io::stdout().lock();
    let mut printed = 0u64;
    let limit = args.count.unwrap_or(u64::MAX);
    for partition in partitions {
        let offsets = log.offsets(&args.topic, partition).await?;
        let mut next = resolve(log.as_ref(), &args.topic, partition, &from).await?.max(offsets.start);
        let end = match &to {
            Some(to) => resolve(log.as_ref(), &args.topic, partition, to).await?.min(offsets.end),
            None => offsets.end,
        };
        while next < end && printed < limit {
            let want = (end - next).min(limit - printed).min(1000) as usize;
            let batch = log.read(&args.topic, partition, next, want).await?;
            if batch.records.is_empty() {
                break;
            }
            for record in &batch.records {
                let line = match args.format {
                    Format::Json => weir_sinks::encoding::record_to_json(record).to_string(),
                    Format::Raw => base64::engine::general_purpose::STANDARD.encode(&record.record.value),
                };
                if writeln!(stdout, "{line}").is_err() {
                    return Ok(()); // the reader went away (e.g. `| head`)
                }
            }
            printed += batch.records.len() as u64;
            next = batch.next_offset;
        }
    }
    Ok(())
}
