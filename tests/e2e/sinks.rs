//! A dead destination never holds up the other sinks: its lag grows on the log while the
//! others deliver everything.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn a_dead_sink_builds_lag_while_the_others_deliver() {
    let dir = tempfile::tempdir().unwrap();
    let n = 200;
    let input = dir.path().join("okta.ndjson");
    std::fs::write(&input, okta_events(n)).unwrap();
    let out = dir.path().join("out.ndjson");
    // Port 1 on loopback: nothing listens, every request is refused (a retryable failure).
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[sources.okta]
type = "file"
vendor = "okta"
path = "{input}"

[operators.events]
type = "normalize"
inputs = ["okta"]

[sinks.partner]
type = "webhook"
inputs = ["events"]
url = "http://127.0.0.1:1/hooks"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

[sinks.archive]
type = "file"
inputs = ["events"]
path = "{out}"
"#,
            input = input.display(),
            out = out.display()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let child = weir(&data).arg("run").arg("-c").arg(&config).stderr(Stdio::piped()).spawn().unwrap();

    let deadline = Instant::now() + Duration::from_secs(120);
    let delivered = || std::fs::read_to_string(&out).map(|t| t.lines().count()).unwrap_or(0);
    while delivered() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(delivered(), n, "the file sink delivered everything while the webhook destination was down");
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert_ok(&output);

    let summary = stderr(&output);
    let row = |name: &str| -> Vec<String> {
        let line =
            summary.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} row in:\n{summary}"));
        line.split_whitespace().map(String::from).collect()
    };
    // Columns: stage role type in out dlq retries lag status
    let partner = row("partner");
    assert_eq!(partner[4], "0", "nothing reached the dead destination: {summary}");
    assert!(partner[6].parse::<u64>().unwrap() >= 1, "the dead sink retried: {summary}");
    assert_eq!(partner[7], n.to_string(), "its whole input is lag on the log, not lost: {summary}");
    assert_eq!(partner[8], "ok", "a retryable outage does not fail the sink: {summary}");
    let archive = row("archive");
    assert_eq!((archive[4].as_str(), archive[7].as_str()), (n.to_string().as_str(), "0"), "{summary}");
    assert!(!summary.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "the signing secret never appears");
}

#[test]
fn a_route_delivers_only_matching_records_and_a_bad_route_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let n = 30;
    let input = dir.path().join("okta.ndjson");
    std::fs::write(&input, okta_events(n)).unwrap();
    let out = dir.path().join("sessions.ndjson");
    let config = dir.path().join("p.toml");
    let text = format!(
        r#"
[sources.okta]
type = "file"
vendor = "okta"
path = "{input}"

[operators.events]
type = "normalize"
inputs = ["okta"]

[sinks.sessions]
type = "file"
inputs = ["events"]
path = "{out}"
values_only = true
route = {{ class_uid = 3002, "metadata.vendor_name" = ["Okta", "okta"] }}
"#,
        input = input.display(),
        out = out.display()
    );
    std::fs::write(&config, &text).unwrap();
    let data = dir.path().join("data");
    assert_ok(&run(weir(&data).arg("run").arg("-c").arg(&config).arg("--until-idle")));
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), n.div_ceil(3), "every third generated event is a session start");
    assert!(lines.iter().all(|v| v["class_uid"] == 3002));

    std::fs::write(&config, text.replace("class_uid = 3002", "class_uid = { a = 1 }")).unwrap();
    let output = run(weir(&data).arg("validate").arg("-c").arg(&config));
    assert_user_error(&output);
    assert!(stderr(&output).contains("sinks.sessions.route"), "{}", stderr(&output));
}
