//! `weir schemas check` on the repository's schemas and on an incompatible edit, and a small
//! `weir bench log` run (its output shape, not its speed).

use std::path::Path;

use crate::common::*;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn schemas_check_passes_on_the_repository_and_fails_on_an_incompatible_edit() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(weir(dir.path()).arg("schemas").arg("check").arg("--dir").arg(repo_root().join("schemas")));
    assert_ok(&output);
    assert!(stdout(&output).contains("io.weir.IdentityActivity"), "{}", stdout(&output));
    assert!(!stdout(&output).contains("INCOMPATIBLE"), "{}", stdout(&output));

    let schemas = dir.path().join("schemas");
    copy_dir(&repo_root().join("schemas/avro"), &schemas.join("avro"));
    copy_dir(&repo_root().join("schemas/history"), &schemas.join("history"));
    let path = schemas.join("avro/dead_letter.avsc");
    let edited = std::fs::read_to_string(&path).unwrap().replacen(
        r#""name": "reason", "type": "string""#,
        r#""name": "reason", "type": "long""#,
        1,
    );
    assert!(edited.contains(r#""name": "reason", "type": "long""#), "the edit applies to the current schema text");
    std::fs::write(&path, edited).unwrap();
    let output = run(weir(dir.path()).arg("schemas").arg("check").arg("--dir").arg(&schemas));
    assert_user_error(&output);
    assert!(stdout(&output).contains("INCOMPATIBLE"), "{}", stdout(&output));
    assert!(stderr(&output).contains("not backward compatible"), "{}", stderr(&output));
}

#[test]
fn bench_log_reports_rates_as_json_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(weir(dir.path()).args(["bench", "log", "--records", "2000", "--size", "100", "--batch", "64"]));
    assert_ok(&output);
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["records"], 2000);
    for phase in ["append", "read"] {
        assert!(report[phase]["records_per_s"].as_f64().unwrap() > 0.0, "{report}");
        assert!(report[phase]["mb_per_s"].as_f64().unwrap() > 0.0, "{report}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the benchmark's directory is removed");
}

#[test]
fn bench_hec_delivers_through_the_sink_to_a_local_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(weir(dir.path()).args(["bench", "hec", "--events", "300", "--batch", "50"]));
    assert_ok(&output);
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["events"], 300);
    assert!(report["events_per_s"].as_f64().unwrap() > 0.0, "{report}");
}
