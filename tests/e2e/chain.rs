//! The whole operator chain — normalize → enrich → policy → aggregate — killed with SIGKILL at
//! random moments and restarted, must end with exactly the records of an uninterrupted run: no
//! lost window, no double-counted event, no duplicate violation, byte for byte.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;

/// Okta users (some suspended) followed by their System Log events, in one file so the order of
/// the input is fixed.
fn input(n: usize) -> String {
    let mut out = String::new();
    for u in 0..50 {
        let status = if u % 7 == 0 { "SUSPENDED" } else { "ACTIVE" };
        let user = serde_json::json!({
            "id": format!("00u{u}"), "status": status, "lastUpdated": "2024-01-01T00:00:00.000Z",
            "profile": {"login": format!("user{u}@example.com"), "email": format!("user{u}@example.com"),
                        "department": if u % 2 == 0 { "Engineering" } else { "Sales" }, "title": "Engineer"},
            "_groups": ["Everyone"]
        });
        out.push_str(&user.to_string());
        out.push('\n');
    }
    for i in 0..n {
        let u = i % 50;
        let event = serde_json::json!({
            "uuid": format!("00000000-0000-4000-8000-{i:012}"),
            "published": format!("2024-05-02T{:02}:{:02}:{:02}.000Z", (i / 3600) % 24, (i / 60) % 60, i % 60),
            "eventType": "user.session.start",
            "severity": "INFO",
            "actor": {"id": format!("00u{u}"), "alternateId": format!("user{u}@example.com"), "type": "User"},
            "outcome": {"result": if i % 5 == 0 { "FAILURE" } else { "SUCCESS" }},
            "client": {"ipAddress": "192.0.2.1"}
        });
        out.push_str(&event.to_string());
        out.push('\n');
    }
    out
}

fn config(dir: &Path, input: &Path) -> std::path::PathBuf {
    let config = dir.join("chain.toml");
    let text = format!(
        r#"
[sources.okta]
type = "file"
vendor = "okta"
path = "{input}"
batch_lines = 100

[operators.events]
type = "normalize"
inputs = ["okta"]

[operators.enriched]
type = "enrich"
inputs = ["events"]

[operators.decisions]
type = "policy"
inputs = ["enriched"]
policies = "{policies}"
reload_interval_ms = 0

[operators.per_user]
type = "aggregate"
inputs = ["decisions"]
window = {{ kind = "tumbling", size_ms = 900000 }}
key = "decision"
metrics = [{{ kind = "count" }}]
"#,
        input = input.display(),
        policies = repo_root().join("examples/policies").display(),
    );
    std::fs::write(&config, text).unwrap();
    config
}

/// The values of a topic, in order, as raw base64 lines.
fn topic_values(data: &Path, topic: &str) -> Vec<String> {
    let output = run(weir(data).args(["log", "consume", topic, "--format", "raw"]));
    assert_ok(&output);
    stdout(&output).lines().map(String::from).collect()
}

#[test]
fn killed_and_restarted_the_chain_produces_exactly_the_records_of_a_clean_run() {
    let dir = tempfile::tempdir().unwrap();
    let input_path = dir.path().join("okta.ndjson");
    std::fs::write(&input_path, input(40_000)).unwrap();
    let config = config(dir.path(), &input_path);

    let clean = dir.path().join("clean");
    assert_ok(&run(weir(&clean).arg("run").arg("-c").arg(&config).arg("--until-idle")));

    let killed = dir.path().join("killed");
    let mut rng = Rng(seed());
    for _ in 0..8 {
        let mut child = weir(&killed).arg("run").arg("-c").arg(&config).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(30 + rng.below(1500)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    assert_ok(&run(weir(&killed).arg("run").arg("-c").arg(&config).arg("--until-idle")));

    for topic in ["events", "enriched", "decisions", "decisions.violations", "per_user"] {
        let expected = topic_values(&clean, topic);
        let got = topic_values(&killed, topic);
        assert!(!expected.is_empty(), "the clean run produced nothing on {topic}");
        assert_eq!(got.len(), expected.len(), "{topic}: record count after kills");
        assert!(got == expected, "{topic}: records differ from the clean run");
    }
}
