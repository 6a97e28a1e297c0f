//! Interop with an independent Avro implementation: every fixture, encoded here, is decoded by
//! fastavro (`tests/avro_interop.py` at the workspace root), which computes the fingerprints
//! itself; the decoded values must equal the originals.
//!
//! Needs `python3` with `pip install fastavro`. Without it the test is skipped with a message,
//! except under CI (`CI` set), where it fails. Set `WEIR_SKIP_PY_INTEROP=1` to skip it anyway.

mod fixtures;

use std::fmt::Debug;
use std::path::Path;
use std::process::Command;

use serde_json::Value as Json;
use weir_schemas::{encode, AvroRecord};

struct Collect {
    /// (label, full name, fingerprint, encoded, value as JSON)
    records: Vec<(String, &'static str, u64, Vec<u8>, Json)>,
}

impl fixtures::Visitor for Collect {
    fn visit<T: AvroRecord + PartialEq + Debug>(&mut self, label: &str, value: T) {
        let bytes = encode(&value).unwrap_or_else(|e| panic!("{label}: {e}"));
        let json = serde_json::to_value(&value).expect("fixture serializes to JSON");
        self.records.push((label.to_string(), T::SCHEMA_NAME, T::fingerprint(), bytes, json));
    }
}

#[test]
fn fastavro_decodes_what_we_encode() {
    if std::env::var("WEIR_SKIP_PY_INTEROP").as_deref() == Ok("1") {
        eprintln!("WEIR_SKIP_PY_INTEROP=1: skipping the fastavro interop test");
        return;
    }
    let probe = Command::new("python3").args(["-c", "import fastavro"]).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        // CI (which sets CI=true and installs fastavro in .ci/run) must run this test; a
        // developer's machine with only the Rust toolchain skips it, saying why.
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
            panic!("the Avro interop test needs python3 with fastavro (pip install fastavro); probe said: {probe:?}");
        }
        eprintln!("skipping the fastavro interop test: python3 with fastavro is not installed (pip install fastavro)");
        return;
    }

    let mut collect = Collect { records: Vec::new() };
    fixtures::visit_all(&mut collect);
    let dir = tempfile::tempdir().expect("tempdir");
    let records_file = dir.path().join("records.hex");
    let hex: Vec<String> = collect.records.iter().map(|r| r.3.iter().map(|b| format!("{b:02x}")).collect()).collect();
    std::fs::write(&records_file, hex.join("\n") + "\n").expect("write records");

    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("python3")
        .arg(manifest_dir.join("../tests/avro_interop.py"))
        .arg(manifest_dir.join("avro"))
        .arg(&records_file)
        .output()
        .expect("run python3");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "avro_interop.py failed: {stderr}");

    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), collect.records.len(), "one line per record; stderr: {stderr}");
    for ((label, name, fingerprint, _, original), line) in collect.records.iter().zip(lines) {
        let decoded: Json = serde_json::from_str(line).expect("JSON line");
        assert_eq!(decoded["schema"], *name, "{label}");
        assert_eq!(decoded["fingerprint"], format!("{fingerprint:016x}"), "{label}: fastavro's fingerprint");
        assert_eq!(decoded["value"], *original, "{label}: fastavro decoded something else");
    }
}
