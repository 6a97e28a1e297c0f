//! `weir schemas check` and `weir schemas record`.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};
use weir_schemas::compat;

/// `weir schemas ...`.
#[derive(Debug, Subcommand)]
pub enum SchemasCommand {
    /// Fail if an edited `.avsc` cannot read data written with a recorded earlier version.
    Check(SchemasArgs),
    /// Record the current version of every new or changed (compatible) schema in `history/`.
    Record(SchemasArgs),
}

/// Where the schemas are.
#[derive(Debug, Args)]
pub struct SchemasArgs {
    /// The schemas directory (holding `avro/` and `history/`).
    #[arg(long, default_value = "schemas")]
    pub dir: PathBuf,
}

/// Runs a schemas command.
pub fn run(command: &SchemasCommand) -> anyhow::Result<()> {
    match command {
        SchemasCommand::Check(args) => {
            let report = compat::check_dir(&args.dir)?;
            print!("{report}");
            if !report.is_ok() {
                bail!("a schema change is not backward compatible; readers could not decode data already on the log");
            }
        }
        SchemasCommand::Record(args) => {
            let recorded = compat::record_versions(&args.dir)?;
            if recorded.is_empty() {
                println!("nothing to record: every schema matches its latest recorded version");
            }
            for (name, fingerprint) in recorded {
                println!("recorded {name} {fingerprint:016x}");
            }
        }
    }
    Ok(())
}
