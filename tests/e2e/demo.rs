//! The demo pipeline, and a pipeline's resumption after graceful and abrupt stops.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// Writes a pipeline config reading `input` (Okta NDJSON) into `dir`.
fn pipeline_config(dir: &Path, input: &Path) -> std::path::PathBuf {
    let config = dir.join("pipeline.toml");
    let text = format!(
        r#"
[log]
fsync = "interval"

[sources.okta]
type = "file"
vendor = "okta"
path = "{input}"
batch_lines = 50

[operators.events]
type = "normalize"
inputs = ["okta"]

[sinks.events_file]
type = "file"
inputs = ["events"]
path = "{out}"

[sinks.dead_letters]
type = "file"
inputs = ["dlq"]
path = "{dlq}"
"#,
        input = input.display(),
        out = dir.join("out/events.ndjson").display(),
        dlq = dir.join("out/dlq.ndjson").display(),
    );
    std::fs::write(&config, text).unwrap();
    config
}

/// A copy of the demo (config and data) in `dir`, so the test writes nothing in the repository.
fn copy_demo(dir: &Path) {
    std::fs::create_dir_all(dir.join("examples/data")).unwrap();
    std::fs::create_dir_all(dir.join("examples/policies")).unwrap();
    for entry in std::fs::read_dir(repo_root().join("examples/policies")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join("examples/policies").join(path.file_name().unwrap())).unwrap();
    }
    for file in ["examples/demo.toml", "examples/data/okta_system_log.ndjson", "examples/data/okta_users.ndjson"] {
        std::fs::copy(repo_root().join(file), dir.join(file)).unwrap();
    }
}

#[test]
fn the_demo_normalizes_the_samples_and_dead_letters_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let data = dir.path().join("data");
    let demo = || run(weir(&data).current_dir(dir.path()).args(["run", "-c", "examples/demo.toml", "--until-idle"]));
    let output = demo();
    assert_ok(&output);
    let summary = stderr(&output);
    assert!(summary.contains("stage") && summary.contains("events") && summary.contains("normalize"), "{summary}");

    let events = consume(&data, "events");
    let activity: Vec<_> = events.iter().filter(|e| e["schema"] == "io.weir.IdentityActivity").collect();
    assert_eq!(activity.len(), 12, "11 polled events and 1 from an event hook delivery");
    assert_eq!(events.len(), 18, "and 6 identities from the directory");
    let events = activity;
    let classes: BTreeSet<i64> = events.iter().map(|e| e["value"]["class_uid"].as_i64().unwrap()).collect();
    assert!(classes.contains(&3002) && classes.contains(&3001), "{classes:?}");

    let dlq = consume(&data, "dlq");
    let reasons: Vec<&str> = dlq.iter().map(|d| d["value"]["reason"].as_str().unwrap()).collect();
    assert_eq!(dlq.len(), 2, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("okta_system_log.ndjson:10: not valid JSON")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("published")), "{reasons:?}");
    // The original bytes are kept: the vendor line for the source, the raw envelope (binary, so
    // shown as base64) for the normalizer.
    for letter in &dlq {
        let original = &letter["value"]["original"];
        let kept = original.as_str().or_else(|| original["base64"].as_str()).unwrap_or_default();
        assert!(!kept.is_empty(), "original bytes kept: {letter}");
    }

    // A second run finds nothing new: every stage resumes from its committed offset.
    assert_ok(&demo());
    assert_eq!(consume(&data, "events").len(), 18);
    assert_eq!(consume(&data, "raw.okta").len(), 13);
    let written = std::fs::read_to_string(dir.path().join("data/demo/decisions.ndjson")).unwrap();
    assert_eq!(written.lines().count(), 12, "the file sink holds each decision once");
    let decisions = consume(&data, "decisions");
    assert_eq!(decisions.len(), 12, "one decision per security event");
    assert!(decisions.iter().all(|d| d["schema"] == "io.weir.PolicyDecision"));
    assert_eq!(consume(&data, "enriched").len(), 12);

    // The enrichment state, shown field by field by its operator.
    let output = run(weir(&data).current_dir(dir.path()).args([
        "state",
        "get",
        "-c",
        "examples/demo.toml",
        "enriched/identity",
        "00uwuwuwuwuwuwuwuwuw",
    ]));
    assert_ok(&output);
    let identity: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(identity["status"], "SUSPENDED", "{identity}");
    assert_eq!(identity["department"], "Operations", "{identity}");
}

/// A temporary directory with `n` Okta events and a pipeline config reading them; returns the
/// directory, the config and the data directory.
fn pipeline_with_events(n: usize) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("okta.ndjson");
    std::fs::write(&input, okta_events(n)).unwrap();
    let config = pipeline_config(dir.path(), &input);
    let data = dir.path().join("data");
    (dir, config, data)
}

fn event_ids(data: &Path) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for event in consume(data, "events") {
        *ids.entry(event["value"]["metadata"]["uid"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    ids
}

fn expected_ids(n: usize) -> BTreeSet<String> {
    (0..n).map(|i| format!("00000000-0000-4000-8000-{i:012}")).collect()
}

#[test]
fn sigterm_stops_gracefully_and_a_restart_resumes_exactly() {
    let n = 20_000;
    let (dir, config, data) = pipeline_with_events(n);

    let child = weir(&data).arg("run").arg("-c").arg(&config).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // SIGTERM: the runner finishes the batches in flight, commits, prints its summary and exits 0.
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert_ok(&output);
    assert!(stderr(&output).contains("stage"), "a summary is printed: {}", stderr(&output));

    assert_ok(&run(weir(&data).arg("run").arg("-c").arg(&config).arg("--until-idle")));
    let ids = event_ids(&data);
    assert_eq!(ids.keys().cloned().collect::<BTreeSet<_>>(), expected_ids(n), "no event lost");
    assert!(ids.values().all(|&c| c == 1), "a graceful stop commits: nothing is processed twice");
    let lines = std::fs::read_to_string(dir.path().join("out/events.ndjson")).unwrap();
    assert_eq!(lines.lines().count(), n, "the file sink got every event exactly once");
}

#[test]
fn sigkill_at_random_moments_loses_nothing() {
    let n = 20_000;
    let (dir, config, data) = pipeline_with_events(n);
    let mut rng = Rng(seed());

    for _ in 0..6 {
        let mut child = weir(&data).arg("run").arg("-c").arg(&config).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(20 + rng.below(700)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    assert_ok(&run(weir(&data).arg("run").arg("-c").arg(&config).arg("--until-idle")));

    let ids = event_ids(&data);
    assert_eq!(ids.keys().cloned().collect::<BTreeSet<_>>(), expected_ids(n), "no event lost");
    assert!(ids.values().all(|&c| c == 1), "no event appended twice: replays after a kill are recognised");
    assert_eq!(consume(&data, "raw.okta").len(), n, "the raw topic holds each line once");
    let events = consume(&data, "events");
    let weir_ids: BTreeSet<String> =
        events.iter().map(|e| e["headers"]["weir-id"].as_str().unwrap().to_string()).collect();
    assert_eq!(weir_ids.len(), n, "each event has one weir-id however often it was replayed");
    let sink_ids: BTreeSet<String> = std::fs::read_to_string(dir.path().join("out/events.ndjson"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["headers"]["weir-id"].as_str().unwrap().to_string()
        })
        .collect();
    // The file sink is at-least-once: a kill between its write and its commit repeats a batch.
    assert_eq!(sink_ids, weir_ids, "the sink saw every event");
}
