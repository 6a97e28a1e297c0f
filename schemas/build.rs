//! Embeds the schemas into the crate so the `weir` binary needs no schema files at run time.
//!
//! Generates `$OUT_DIR/embedded_schemas.rs` with two tables of `include_str!`s:
//! `CURRENT` (every `avro/<name>.avsc`) and `HISTORY` (every recorded past version,
//! `history/<name>/<fingerprint-hex>.avsc`). Cargo reruns this script when anything under `avro/`
//! or `history/` changes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let avro_dir = manifest_dir.join("avro");
    let history_dir = manifest_dir.join("history");
    println!("cargo:rerun-if-changed={}", avro_dir.display());
    println!("cargo:rerun-if-changed={}", history_dir.display());

    let mut out = String::from(
        "/// Current schemas: (file stem, schema JSON).\npub(crate) static CURRENT: &[(&str, &str)] = &[\n",
    );
    for path in files_with_extension(&avro_dir, "avsc") {
        writeln!(out, "    ({:?}, include_str!({:?})),", stem(&path), path.display().to_string()).unwrap();
    }
    out.push_str("];\n\n/// Recorded versions: (schema file stem, fingerprint hex, self-contained schema JSON).\n");
    out.push_str("pub(crate) static HISTORY: &[(&str, &str, &str)] = &[\n");
    for dir in subdirectories(&history_dir) {
        for path in files_with_extension(&dir, "avsc") {
            let entry = (stem(&dir), stem(&path), path.display().to_string());
            writeln!(out, "    ({:?}, {:?}, include_str!({:?})),", entry.0, entry.1, entry.2).unwrap();
        }
    }
    out.push_str("];\n");

    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out_dir.join("embedded_schemas.rs"), out).expect("write embedded_schemas.rs");
}

fn stem(path: &Path) -> String {
    path.file_stem().and_then(|s| s.to_str()).expect("schema file names are UTF-8").to_string()
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = entries.map(|e| e.expect("read schema directory").path()).collect();
    paths.sort();
    paths
}

fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    sorted_entries(dir).into_iter().filter(|p| p.is_file() && p.extension().is_some_and(|e| e == ext)).collect()
}

fn subdirectories(dir: &Path) -> Vec<PathBuf> {
    sorted_entries(dir).into_iter().filter(|p| p.is_dir()).collect()
}
