//! `weir policy test DIR`: runs every rule's inline tests (`[[rules.tests]]`), so policies can
//! be reviewed and checked in CI before they are deployed.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};
use weir_operators::policy::{test_policies, Udfs};

/// `weir policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Load a policy directory and run its rules' inline tests.
    Test(TestArgs),
}

/// `weir policy test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The policy directory (every `*.toml`, `*.yaml` and `*.yml` in it is one set).
    pub dir: PathBuf,
}

/// Runs a policy command.
pub fn run(command: &PolicyCommand) -> anyhow::Result<()> {
    let PolicyCommand::Test(args) = command;
    let report = test_policies(&args.dir, &Udfs::none())?;
    print!("{report}");
    if !report.ok() {
        bail!("some policy tests failed");
    }
    Ok(())
}
