//! The `weir` command line: one module per command group. Every command turns its errors into
//! one clear line (see `main.rs`); none panics on bad input.

pub mod bench;
pub mod log;
pub mod policy;
pub mod run;
pub mod schemas;
pub mod state;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Weir: a security-event pipeline on a durable log.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about, propagate_version = true)]
pub struct Cli {
    /// Where the log and the store live.
    #[arg(long, global = true, default_value = "./data", env = "WEIR_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline.
    Run(run::RunArgs),
    /// Check a pipeline config and report every error with file, line and key.
    Validate(run::ValidateArgs),
    /// Inspect and use the log (the embedded one, or a Fluvio cluster's with --fluvio).
    Log(log::LogArgs),
    /// Test policy rules.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Look at operators' keyed state.
    #[command(subcommand)]
    State(state::StateCommand),
    /// Check the Avro schemas.
    #[command(subcommand)]
    Schemas(schemas::SchemasCommand),
    /// Measure performance.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}
