//! Checks the schemas against their recorded versions, or records the new and changed ones.
//!
//! ```text
//! cargo run -p weir-schemas --example schema_versions -- check  [SCHEMAS_DIR]
//! cargo run -p weir-schemas --example schema_versions -- record [SCHEMAS_DIR]
//! ```
//!
//! `SCHEMAS_DIR` defaults to this crate's directory. Exits 1 if a schema is incompatible.

use std::path::PathBuf;
use std::process::ExitCode;

use weir_schemas::compat::{check_dir, record_versions};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_else(|| "check".into());
    let dir = args.next().map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let result = match command.as_str() {
        "check" => check_dir(&dir).map(|report| {
            print!("{report}");
            report.is_ok()
        }),
        "record" => record_versions(&dir).map(|recorded| {
            for (name, fingerprint) in &recorded {
                println!("recorded {name} {fingerprint:016x}");
            }
            println!("{} version(s) recorded", recorded.len());
            true
        }),
        other => {
            eprintln!("unknown command `{other}`: use check or record");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
