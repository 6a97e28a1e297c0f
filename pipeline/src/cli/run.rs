//! `weir run` and `weir validate`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use tokio::sync::watch;

use crate::components;
use crate::config::PipelineConfig;
use crate::log::embedded::EmbeddedLog;
use crate::log::fluvio::FluvioLog;
use crate::log::Log;
use crate::runner::{self, RunOptions, StageSummary, Worker};
use crate::store::Store;

/// `weir run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The pipeline config (TOML).
    #[arg(short, long)]
    pub config: PathBuf,
    /// Exit once every source is drained and every stage has caught up. With several workers,
    /// a worker's stages catch up with what is on the log when they look: another worker's
    /// stages may still be writing.
    #[arg(long)]
    pub until_idle: bool,
    /// With --until-idle only, for a bounded run (a replay or backfill of history): once a
    /// stage's inputs have ended, end its input as at the end of a bounded stream, so every
    /// aggregate window still open fires (the watermark goes to +infinity), committed exactly
    /// once. Events that arrive after that are late for the aggregate. With several workers,
    /// each worker drains its own state: see docs/WORKERS.md.
    #[arg(long)]
    pub drain: bool,
    /// Run as worker I of N (e.g. 1/3): every stage consumes only the partitions p with
    /// p % N == I of its input topics, so N processes, each with its own --data-dir store, share
    /// the load. Sources and push sources run on worker 0 only. The store remembers its I/N and
    /// refuses another one. See docs/WORKERS.md.
    #[arg(long, env = "WEIR_WORKER", value_name = "I/N", default_value = "0/1")]
    pub worker: Worker,
}

/// `weir validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The pipeline config (TOML).
    #[arg(short, long)]
    pub config: PathBuf,
}

/// Loads a config and builds its components, or fails with every error, one per line.
fn load(path: &Path) -> anyhow::Result<(PipelineConfig, std::collections::BTreeMap<String, runner::Component>)> {
    let config = PipelineConfig::load(path).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let built = components::build_all(&config).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    Ok((config, built))
}

/// Checks a config.
pub fn validate(args: &ValidateArgs) -> anyhow::Result<()> {
    let (config, _) = load(&args.config)?;
    let count = |role| config.components.iter().filter(|c| c.role == role).count();
    use crate::config::Role;
    println!(
        "{}: ok ({} sources, {} operators, {} sinks)",
        args.config.display(),
        count(Role::Source),
        count(Role::Operator),
        count(Role::Sink)
    );
    Ok(())
}

/// Runs a pipeline until SIGINT/SIGTERM (or until idle), then prints a summary per stage.
pub fn run(args: &RunArgs, data_dir: &Path) -> anyhow::Result<()> {
    if args.drain && !args.until_idle {
        bail!(runner::DRAIN_NEEDS_UNTIL_IDLE);
    }
    let (config, built) = load(&args.config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    let log: Arc<dyn Log> = match &config.log.fluvio {
        // The error names the cluster's endpoint and why it could not be reached.
        Some(fluvio) => Arc::new(runtime.block_on(FluvioLog::connect(fluvio))?),
        None => Arc::new(
            EmbeddedLog::open(data_dir, config.log.embedded.clone())
                .with_context(|| format!("opening the log in {}", data_dir.display()))?,
        ),
    };
    let store = Store::open(data_dir)?;
    let summaries = runtime.block_on(async {
        let (stop, shutdown) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::warn!("shutting down: finishing the batches in flight and committing (signal again to abort)");
            let _ = stop.send(true);
            wait_for_signal().await;
            eprintln!("aborted: uncommitted batches will be read again on the next run");
            std::process::exit(130);
        });
        let options = RunOptions { until_idle: args.until_idle, drain: args.drain, worker: args.worker };
        runner::run(&config, built, log, Arc::new(store), options, shutdown).await
    })?;
    eprint!("{}", format_summary(&summaries));
    let failed: Vec<&StageSummary> = summaries.iter().filter(|s| s.failure.is_some()).collect();
    if let Some(first) = failed.first() {
        bail!(
            "{} stage(s) failed; first: {}: {}",
            failed.len(),
            first.name,
            first.failure.as_deref().unwrap_or_default()
        );
    }
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The per-stage summary table.
pub fn format_summary(summaries: &[StageSummary]) -> String {
    let mut out = format!(
        "{:<16} {:<8} {:<10} {:>9} {:>9} {:>6} {:>7} {:>6}  status\n",
        "stage", "role", "type", "in", "out", "dlq", "retries", "lag"
    );
    for s in summaries {
        let status = s.failure.as_deref().map_or("ok".to_string(), |f| format!("FAILED: {f}"));
        out.push_str(&format!(
            "{:<16} {:<8} {:<10} {:>9} {:>9} {:>6} {:>7} {:>6}  {status}\n",
            s.name, s.role, s.type_name, s.records_in, s.records_out, s.dead_lettered, s.retries, s.lag
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};
    use crate::runner::Worker;

    fn worker_of(args: &[&str]) -> Result<Worker, String> {
        let cli = Cli::try_parse_from(["weir", "run", "-c", "pipeline.toml"].iter().chain(args))
            .map_err(|e| e.to_string())?;
        match cli.command {
            Command::Run(run) => Ok(run.worker),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn worker_flag_takes_i_of_n_and_says_what_is_wrong() {
        // WEIR_WORKER is not set while the tests run: without the flag, the sole worker.
        if std::env::var_os("WEIR_WORKER").is_none() {
            assert_eq!(worker_of(&[]), Ok(Worker::SOLE));
        }
        assert_eq!(worker_of(&["--worker", "1/3"]), Ok(Worker::new(1, 3).unwrap()));
        let error = worker_of(&["--worker", "3/3"]).unwrap_err();
        assert!(error.contains("worker index 3 is not below the number of workers 3"), "{error}");
        let error = worker_of(&["--worker", "two"]).unwrap_err();
        assert!(error.contains("`two` is not I/N"), "{error}");
    }

    fn run_args(args: &[&str]) -> crate::cli::run::RunArgs {
        let cli = Cli::try_parse_from(["weir", "run", "-c", "pipeline.toml"].iter().chain(args)).expect("parses");
        match cli.command {
            Command::Run(run) => run,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn drain_is_refused_without_until_idle_in_one_line() {
        let args = run_args(&["--drain"]);
        let dir = tempfile::tempdir().expect("a temp dir");
        let error = super::run(&args, dir.path()).expect_err("refused").to_string();
        assert_eq!(error, crate::runner::DRAIN_NEEDS_UNTIL_IDLE);
        assert!(!error.contains('\n'));
        assert!(!dir.path().join("store.redb").exists(), "refused before anything is opened");
        let args = run_args(&["--until-idle", "--drain"]);
        assert!(args.until_idle && args.drain);
    }
}
