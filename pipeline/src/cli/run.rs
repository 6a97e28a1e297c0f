//! `weir run` and `weir validate`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use tokio::sync::watch;

use crate::components;
use crate::config::PipelineConfig;
use crate::log::embedded::EmbeddedLog;
use crate::runner::{self, RunOptions, StageSummary};
use crate::store::Store;

/// `weir run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The pipeline config (TOML).
    #[arg(short, long)]
    pub config: PathBuf,
    /// Exit once every source is drained and every stage has caught up.
    #[arg(long)]
    pub until_idle: bool,
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
    let (config, built) = load(&args.config)?;
    let log = EmbeddedLog::open(data_dir, config.log.embedded.clone())
        .with_context(|| format!("opening the log in {}", data_dir.display()))?;
    let store = Store::open(data_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
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
        let options = RunOptions { until_idle: args.until_idle };
        runner::run(&config, built, Arc::new(log), Arc::new(store), options, shutdown).await
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
