//! Schema evolution: the checks against recorded versions, on a copy of the schemas directory.

use std::fs;
use std::path::{Path, PathBuf};

use weir_schemas::avro::{Registry, SchemaError};
use weir_schemas::compat::{check_dir, record_versions, Outcome};

/// A copy of this crate's `avro/` and `history/` in a temporary directory.
fn schemas_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["avro", "history"] {
        copy_dir(&root.join(sub), &dir.path().join(sub));
    }
    let path = dir.path().to_path_buf();
    (dir, path)
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read_dir") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("file name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            fs::copy(&path, &target).expect("copy");
        }
    }
}

/// Replaces `from` (which must occur) with `to` in `avro/<stem>.avsc`.
fn edit(dir: &Path, stem: &str, from: &str, to: &str) {
    let path = dir.join("avro").join(format!("{stem}.avsc"));
    let text = fs::read_to_string(&path).expect("read");
    assert!(text.contains(from), "{stem}.avsc has no `{from}`");
    fs::write(&path, text.replacen(from, to, 1)).expect("write");
}

fn outcome(dir: &Path, stem: &str) -> Outcome {
    check_dir(dir).expect("check").get(stem).expect("schema checked").outcome.clone()
}

fn assert_incompatible(dir: &Path, stem: &str, mentions: &[&str]) {
    match outcome(dir, stem) {
        Outcome::Incompatible { reason, .. } => {
            for word in mentions {
                assert!(reason.contains(word), "reason should mention `{word}`: {reason}");
            }
        }
        other => panic!("{stem}: expected incompatible, got {other:?}"),
    }
    assert!(!check_dir(dir).expect("check").is_ok());
    let before = fs::read_to_string(dir.join("history").join(stem).join("VERSIONS")).expect("VERSIONS");
    match record_versions(dir) {
        Err(SchemaError::Incompatible(report)) => assert!(report.contains(stem), "{report}"),
        other => panic!("record_versions must refuse, got {other:?}"),
    }
    let after = fs::read_to_string(dir.join("history").join(stem).join("VERSIONS")).expect("VERSIONS");
    assert_eq!(before, after, "nothing is recorded while a schema is incompatible");
}

const LAST_VIOLATION_FIELD: &str = r#"{"name": "summary", "type": "string", "doc": "One line for humans."}"#;

#[test]
fn unchanged_schemas_pass() {
    let (_guard, dir) = schemas_copy();
    let report = check_dir(&dir).expect("check");
    assert!(report.is_ok());
    assert_eq!(report.schemas.len(), 21);
    assert!(report.schemas.iter().all(|s| s.outcome == Outcome::Unchanged), "{report}");
    assert_eq!(record_versions(&dir).expect("record"), vec![]);
}

#[test]
fn adding_a_field_with_a_default_is_compatible_and_gets_recorded() {
    let (_guard, dir) = schemas_copy();
    let new_field = r#"{"name": "ticket", "type": ["null", "string"], "default": null, "doc": "Ticket id."}"#;
    edit(&dir, "violation", LAST_VIOLATION_FIELD, &format!("{LAST_VIOLATION_FIELD},\n    {new_field}"));
    assert_eq!(outcome(&dir, "violation"), Outcome::ChangedCompatible);
    // PolicyDecision embeds Violation, so it changed too.
    assert_eq!(outcome(&dir, "decision"), Outcome::ChangedCompatible);
    assert_eq!(outcome(&dir, "user"), Outcome::Unchanged);

    let mut recorded = record_versions(&dir).expect("record");
    recorded.sort();
    let names: Vec<&str> = recorded.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["io.weir.PolicyDecision", "io.weir.Violation"]);
    let versions = fs::read_to_string(dir.join("history/violation/VERSIONS")).expect("VERSIONS");
    assert_eq!(versions.lines().count(), 2);
    assert!(check_dir(&dir).expect("check").schemas.iter().all(|s| s.outcome == Outcome::Unchanged));

    // Both versions are known to a registry built from the directory, the new one current.
    let registry = Registry::from_dir(&dir).expect("registry");
    let current = registry.current("io.weir.Violation").expect("current");
    assert_eq!(format!("{:016x}", current.fingerprint()), versions.lines().last().expect("line"));
    let first = u64::from_str_radix(versions.lines().next().expect("line"), 16).expect("hex");
    assert!(!registry.get(first).expect("old version").is_current());
}

#[test]
fn adding_a_field_without_a_default_is_incompatible() {
    let (_guard, dir) = schemas_copy();
    let new_field = r#"{"name": "ticket", "type": "string"}"#;
    edit(&dir, "violation", LAST_VIOLATION_FIELD, &format!("{LAST_VIOLATION_FIELD},\n    {new_field}"));
    assert_incompatible(&dir, "violation", &["io.weir.Violation", "ticket"]);
}

#[test]
fn changing_a_field_type_is_incompatible() {
    let (_guard, dir) = schemas_copy();
    edit(&dir, "violation", r#"{"name": "subject", "type": "string""#, r#"{"name": "subject", "type": "int""#);
    assert_incompatible(&dir, "violation", &["io.weir.Violation", "subject"]);
}

#[test]
fn removing_an_enum_symbol_is_incompatible() {
    let (_guard, dir) = schemas_copy();
    edit(&dir, "violation", r#""OPEN", "UPDATED", "RESOLVED""#, r#""OPEN", "UPDATED""#);
    assert_incompatible(&dir, "violation", &["io.weir.Violation", "field `status`", "ViolationStatus", "RESOLVED"]);
}

#[test]
fn a_changed_shared_type_is_checked_where_it_is_used() {
    let (_guard, dir) = schemas_copy();
    edit(
        &dir,
        "user",
        "\"name\": \"uid\",\n      \"type\": [\"null\", \"string\"]",
        "\"name\": \"uid\", \"type\": [\"null\", \"long\"]",
    );
    assert_incompatible(&dir, "identity_activity", &["io.weir.IdentityActivity", "actor.uid"]);
}

#[test]
fn a_new_schema_is_reported_as_new() {
    let (_guard, dir) = schemas_copy();
    let schema = r#"{"type": "record", "name": "Heartbeat", "namespace": "io.weir", "doc": "d",
        "fields": [{"name": "at", "type": "long", "doc": "d"}, {"name": "who", "type": "io.weir.User", "doc": "d"}]}"#;
    fs::write(dir.join("avro/heartbeat.avsc"), schema).expect("write");
    assert_eq!(outcome(&dir, "heartbeat"), Outcome::New);
    assert_eq!(record_versions(&dir).expect("record").len(), 1);
    assert_eq!(outcome(&dir, "heartbeat"), Outcome::Unchanged);
    // The recorded version is self-contained: it parses on its own.
    let history = fs::read_dir(dir.join("history/heartbeat")).expect("history").count();
    assert_eq!(history, 2, "VERSIONS and one .avsc");
}

#[test]
fn a_damaged_history_is_an_error_naming_the_file() {
    let (_guard, dir) = schemas_copy();
    fs::write(dir.join("history/user/VERSIONS"), "not-a-fingerprint\n").expect("write");
    let error = check_dir(&dir).expect_err("damaged").to_string();
    assert!(error.contains("history/user/VERSIONS:1") && error.contains("not-a-fingerprint"), "{error}");

    let (_guard, dir) = schemas_copy();
    fs::write(dir.join("history/user/VERSIONS"), "0123456789abcdef\n").expect("write");
    let error = check_dir(&dir).expect_err("missing version file").to_string();
    assert!(error.contains("0123456789abcdef.avsc is missing"), "{error}");
}

#[test]
fn a_broken_schema_file_is_named() {
    let (_guard, dir) = schemas_copy();
    edit(&dir, "cloud", r#""type": "record""#, r#""type": "record", "#);
    let error = check_dir(&dir).expect_err("not JSON").to_string();
    assert!(error.contains("cloud.avsc"), "{error}");

    let (_guard, dir) = schemas_copy();
    edit(&dir, "app_alert", r#""io.weir.App""#, r#""io.weir.Application""#);
    let error = check_dir(&dir).expect_err("unknown type").to_string();
    assert!(error.contains("app_alert.avsc"), "{error}");
}
