//! `weir state get | list`: look at operators' keyed state (tables are named
//! `<operator>/<table>`, e.g. `enrich/identities`); `weir state cursor | reset-cursor`: look at
//! or forget a source's cursor.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, Subcommand};
use weir_sinks::encoding::{bytes_to_json, value_to_json};

use crate::components;
use crate::config::PipelineConfig;
use crate::runner::Component;
use crate::store::Store;

/// `weir state ...`.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Print the entry under KEY in TABLE.
    Get(GetArgs),
    /// List the entries of TABLE, in key order.
    List(ListArgs),
    /// Print SOURCE's committed cursor (where it resumes).
    Cursor(CursorArgs),
    /// Forget SOURCE's cursor: its next run starts as on first start (stop the pipeline first).
    ResetCursor(CursorArgs),
}

/// `weir state cursor | reset-cursor`.
#[derive(Debug, Args)]
pub struct CursorArgs {
    /// The source's name.
    pub source: String,
}

/// `weir state get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The table, `<operator>/<table>`.
    pub table: String,
    /// The key.
    pub key: String,
    /// The pipeline config: with it the operator shows its entry field by field.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
}

/// `weir state list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The table, `<operator>/<table>`.
    pub table: String,
    /// The pipeline config: with it the operator shows its entries field by field.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Print at most this many entries.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

/// Turns a state entry (key, value) into JSON for display.
type Describer = Box<dyn Fn(&[u8], &[u8]) -> serde_json::Value>;

/// How entries of `table` are shown: by the operator that owns them when the config is given
/// (it knows its own encoding), else decoded generically (Avro, JSON, text or base64).
fn describer(table: &str, config: Option<&Path>) -> anyhow::Result<Describer> {
    let generic = |_: &[u8], value: &[u8]| value_to_json(value).1;
    let Some(config_path) = config else { return Ok(Box::new(generic)) };
    let Some((operator, own_table)) = table.split_once('/') else {
        bail!("state tables are named `<operator>/<table>`; `{table}` has no operator");
    };
    let config = PipelineConfig::load(config_path).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let mut built = components::build_all(&config).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let Some(Component::Operator(operator)) = built.remove(operator) else {
        bail!("`{operator}` is not an operator of {}", config_path.display());
    };
    let own_table = own_table.to_string();
    Ok(Box::new(move |key, value| {
        operator.describe_state(&own_table, key, value).unwrap_or_else(|| generic(key, value))
    }))
}

/// Runs a state command.
pub fn run(command: &StateCommand, data_dir: &Path) -> anyhow::Result<()> {
    if !data_dir.join("store.redb").exists() {
        bail!("no store in {}: no pipeline has run with this data directory", data_dir.display());
    }
    let store = Store::open(data_dir)?;
    match command {
        StateCommand::Get(args) => {
            let describe = describer(&args.table, args.config.as_deref())?;
            match store.state(&args.table, args.key.as_bytes())? {
                Some(value) => println!("{}", serde_json::to_string_pretty(&describe(args.key.as_bytes(), &value))?),
                None => bail!("no entry `{}` in state table `{}`", args.key, args.table),
            }
        }
        StateCommand::List(args) => {
            let describe = describer(&args.table, args.config.as_deref())?;
            let mut printed = 0;
            store.scan_state(&args.table, &mut |key, value| {
                if printed < args.limit {
                    let line = serde_json::json!({ "key": bytes_to_json(key), "value": describe(key, value) });
                    println!("{line}");
                    printed += 1;
                }
            })?;
            if printed == 0 {
                eprintln!("state table `{}` is empty or does not exist", args.table);
            }
        }
        StateCommand::Cursor(args) => match store.cursor(&args.source)? {
            Some(cursor) => println!("{cursor}"),
            None => bail!("source `{}` has no committed cursor", args.source),
        },
        StateCommand::ResetCursor(args) => {
            if store.reset_cursor(&args.source)? {
                println!("source `{}` will start afresh on its next run", args.source);
            } else {
                bail!("source `{}` has no committed cursor", args.source);
            }
        }
    }
    Ok(())
}
