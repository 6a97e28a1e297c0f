//! Tests of the normalize operator, one file per vendor: golden files of real vendor samples
//! (`operators/tests/golden/<vendor>/`, checked by [`check_golden_files`]), then one unit test
//! per mapping rule and per kind of bad input.

use std::path::{Path, PathBuf};

use serde::Serialize;
use weir_schemas::component::{MemoryState, Operator, Output};
use weir_schemas::events::{Identity, RawEnvelope, SecurityEvent};
use weir_schemas::record::{Record, StoredRecord};

use crate::normalize::{Normalize, NormalizeConfig};

mod aws;
mod azure;
mod crowdstrike;
mod gcp;
mod netskope;
mod okta;

/// An input record at `raw.<vendor>/0/<offset>` holding `payload` in an envelope from `vendor`
/// (source name = vendor name).
pub(super) fn vendor_input(vendor: &str, payload: &[u8], offset: u64) -> StoredRecord {
    let envelope = RawEnvelope {
        source: vendor.to_string(),
        vendor: vendor.to_string(),
        received_at: 1_700_000_000_000,
        cursor: None,
        content_type: "application/json".to_string(),
        payload: payload.to_vec(),
    };
    let value = weir_schemas::encode(&envelope).expect("a RawEnvelope encodes");
    StoredRecord { topic: format!("raw.{vendor}"), partition: 0, offset, record: Record::new(1_700_000_000_000, value) }
}

/// Runs one input through a default normalizer.
pub(super) fn normalize_input(input: &StoredRecord) -> Output {
    let mut normalize = Normalize::new(NormalizeConfig::default()).expect("the default config is valid");
    let mut out = Output::default();
    normalize.process(input, &mut MemoryState::default(), &mut out).expect("bad input is rejected, not an error");
    out
}

/// The reason `vendor`'s `payload` was rejected for, checking that nothing was emitted and that
/// the vendor bytes were kept for the dead letter.
pub(super) fn rejection_of(vendor: &str, payload: &[u8]) -> String {
    let out = normalize_input(&vendor_input(vendor, payload, 0));
    assert!(out.records.is_empty(), "emitted {} records", out.records.len());
    assert_eq!(out.rejected.len(), 1);
    assert!(out.rejected[0].original == payload, "the original bytes are kept");
    out.rejected[0].reason.clone()
}

/// An output record decoded for a golden file: a typed event, or a directory snapshot.
enum Decoded {
    Event(Box<SecurityEvent>),
    Identity(Box<Identity>),
}

impl Serialize for Decoded {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Decoded::Event(event) => match event.as_ref() {
                SecurityEvent::Identity(e) => e.serialize(serializer),
                SecurityEvent::App(e) => e.serialize(serializer),
                SecurityEvent::AppAlert(e) => e.serialize(serializer),
                SecurityEvent::EndpointDetection(e) => e.serialize(serializer),
                SecurityEvent::DeviceInventory(e) => e.serialize(serializer),
                SecurityEvent::CloudApi(e) => e.serialize(serializer),
                SecurityEvent::ResourceChange(e) => e.serialize(serializer),
            },
            Decoded::Identity(identity) => identity.serialize(serializer),
        }
    }
}

/// One entry of an expected file: an emitted event (or directory snapshot), or a rejected input
/// with its reason.
#[derive(Serialize)]
#[serde(untagged)]
enum GoldenEntry {
    Output(Decoded),
    Rejected { rejected: String },
}

/// Golden files: every vendor sample in `operators/tests/golden/<vendor>/` (`<name>.ndjson`: one
/// envelope per non-empty line; `<name>.json`: the whole file as one envelope, offsets counting
/// from 0 on topic `raw.<vendor>`) runs through [`Normalize`], and the outputs, in order, are
/// compared exactly with `<name>-expected.json`: a pretty JSON array of the decoded outputs (typed
/// events, or `Identity` snapshots), with `{"rejected": "<reason>"}` for input sent to the
/// dead-letter topic.
///
/// Set `WEIR_UPDATE_GOLDEN=1` to rewrite the expected files from the current output
/// (`WEIR_UPDATE_GOLDEN=1 cargo test -p weir-operators golden`), then review the diff by eye: the
/// expected files must be right, not merely what the code does.
pub(super) fn check_golden_files(vendor: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(vendor);
    let update = std::env::var_os("WEIR_UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("golden directory exists")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            (name.ends_with(".ndjson") || name.ends_with(".json")) && !name.ends_with("-expected.json")
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no golden inputs in {}", dir.display());

    let mut mismatches = Vec::new();
    for path in &inputs {
        let bytes = std::fs::read(path).expect("readable golden input");
        let payloads: Vec<&[u8]> = if path.extension().is_some_and(|e| e == "ndjson") {
            bytes.split(|&b| b == b'\n').filter(|line| !line.iter().all(u8::is_ascii_whitespace)).collect()
        } else {
            vec![&bytes]
        };
        let mut entries = Vec::new();
        for (offset, payload) in payloads.iter().enumerate() {
            let out = normalize_input(&vendor_input(vendor, payload, offset as u64));
            for record in &out.records {
                let output = match SecurityEvent::decode(&record.value) {
                    Ok(event) => Decoded::Event(Box::new(event)),
                    Err(_) => Decoded::Identity(Box::new(
                        weir_schemas::decode(&record.value).expect("outputs are typed events or identities"),
                    )),
                };
                entries.push(GoldenEntry::Output(output));
            }
            entries.extend(out.rejected.into_iter().map(|r| GoldenEntry::Rejected { rejected: r.reason }));
        }
        let actual = serde_json::to_string_pretty(&entries).expect("serializable") + "\n";

        let stem = path.file_stem().and_then(|s| s.to_str()).expect("UTF-8 file name");
        let expected_path = path.with_file_name(format!("{stem}-expected.json"));
        if update {
            std::fs::write(&expected_path, &actual).expect("writable expected file");
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) => {
                if let Some(diff) = first_difference(&expected, &actual) {
                    mismatches.push(format!("{}:\n{diff}", expected_path.display()));
                }
            }
            Err(e) => mismatches.push(format!("{}: cannot read it: {e}", expected_path.display())),
        }
    }
    assert!(
        mismatches.is_empty(),
        "golden output differs (rerun with WEIR_UPDATE_GOLDEN=1 to rewrite, then review the diff):\n\n{}",
        mismatches.join("\n\n")
    );
}

/// The first differing line of two texts with a little context, or `None` when they are equal.
fn first_difference(expected: &str, actual: &str) -> Option<String> {
    if expected == actual {
        return None;
    }
    let (expected_lines, actual_lines): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let at = expected_lines.iter().zip(&actual_lines).take_while(|(e, a)| e == a).count();
    let context = |lines: &[&str]| {
        lines
            .iter()
            .enumerate()
            .skip(at.saturating_sub(3))
            .take(7)
            .map(|(i, l)| format!("  {:>5} {l}", i + 1))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Some(format!(
        "first difference at line {} (expected {} lines, got {}):\n--- expected\n{}\n+++ actual\n{}",
        at + 1,
        expected_lines.len(),
        actual_lines.len(),
        context(&expected_lines),
        context(&actual_lines)
    ))
}
