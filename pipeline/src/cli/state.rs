//! `weir state get | list`: look at operators' keyed state (tables are named
//! `<operator>/<table>`, e.g. `enrich/identities`).

use std::path::Path;

use anyhow::bail;
use clap::{Args, Subcommand};
use weir_sinks::encoding::{bytes_to_json, value_to_json};

use crate::store::Store;

/// `weir state ...`.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Print the entry under KEY in TABLE.
    Get(GetArgs),
    /// List the entries of TABLE, in key order.
    List(ListArgs),
}

/// `weir state get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The table, `<operator>/<table>`.
    pub table: String,
    /// The key.
    pub key: String,
}

/// `weir state list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The table, `<operator>/<table>`.
    pub table: String,
    /// Print at most this many entries.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

/// Runs a state command.
pub fn run(command: &StateCommand, data_dir: &Path) -> anyhow::Result<()> {
    if !data_dir.join("store.redb").exists() {
        bail!("no store in {}: no pipeline has run with this data directory", data_dir.display());
    }
    let store = Store::open(data_dir)?;
    match command {
        StateCommand::Get(args) => match store.state(&args.table, args.key.as_bytes())? {
            Some(value) => println!("{}", serde_json::to_string_pretty(&value_to_json(&value).1)?),
            None => bail!("no entry `{}` in state table `{}`", args.key, args.table),
        },
        StateCommand::List(args) => {
            let mut printed = 0;
            store.scan_state(&args.table, &mut |key, value| {
                if printed < args.limit {
                    let line = serde_json::json!({ "key": bytes_to_json(key), "value": value_to_json(value).1 });
                    println!("{line}");
                    printed += 1;
                }
            })?;
            if printed == 0 {
                eprintln!("state table `{}` is empty or does not exist", args.table);
            }
        }
    }
    Ok(())
}
