//! The `weir` binary: parses the command line, runs the command, and turns any error into one
//! clear line on standard error with a non-zero exit.

use clap::Parser;
use weir_pipeline::cli::{self, Cli, Command};

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let result = match &cli.command {
        Command::Run(args) => cli::run::run(args, &cli.data_dir),
        Command::Validate(args) => cli::run::validate(args),
        Command::Log(command) => cli::log::run(command, &cli.data_dir),
        Command::Schemas(command) => cli::schemas::run(command),
        Command::State(command) => cli::state::run(command, &cli.data_dir),
        Command::Policy(command) => cli::policy::run(command),
        Command::Bench(command) => cli::bench::run(command, &cli.data_dir),
    };
    if let Err(error) = result {
        // `{:#}` joins the causes with ": ", on one line; multi-error messages keep one per line.
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
