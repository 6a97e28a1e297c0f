//! `weir log produce | consume | topics`.

use std::io::Write;
use std::process::Stdio;

use crate::common::*;

fn produce(data: &std::path::Path, topic: &str, input: &str) -> std::process::Output {
    let mut child = weir(data)
        .args(["log", "produce", topic])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn produce_then_consume_by_offset_time_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let output = produce(dir.path(), "alerts", "{\"n\":0}\n{\"n\":1}\n\n{\"n\":2}\n");
    assert_ok(&output);
    let durable: Vec<String> = stdout(&output).lines().map(String::from).collect();
    assert_eq!(durable.last().map(String::as_str), Some("durable 2"), "{durable:?}");
    assert!(durable.iter().all(|l| l.starts_with("durable ")));

    let records = consume(dir.path(), "alerts");
    assert_eq!(records.len(), 3);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record["offset"], i);
        assert_eq!(record["value"]["n"], i);
        assert!(record["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
        assert_eq!(record["key"], serde_json::Value::Null);
    }

    let out = run(weir(dir.path()).args(["log", "consume", "alerts", "--from", "1", "--count", "1"]));
    assert_ok(&out);
    let lines: Vec<serde_json::Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["offset"], 1);

    let out = run(weir(dir.path()).args(["log", "consume", "alerts", "--to", "2", "--format", "raw"]));
    assert_ok(&out);
    assert_eq!(stdout(&out).lines().collect::<Vec<_>>(), vec!["eyJuIjowfQ==", "eyJuIjoxfQ=="]);

    let out = run(weir(dir.path()).args(["log", "consume", "alerts", "--from", "2000-01-01T00:00:00Z"]));
    assert_ok(&out);
    assert_eq!(stdout(&out).lines().count(), 3);
    let out = run(weir(dir.path()).args(["log", "consume", "alerts", "--from", "2999-01-01T00:00:00Z"]));
    assert_ok(&out);
    assert_eq!(stdout(&out), "", "nothing is at or after a time in the future");

    let out = run(weir(dir.path()).args(["log", "topics"]));
    assert_ok(&out);
    assert!(stdout(&out).lines().any(|l| l.starts_with("alerts") && l.trim_end().ends_with('3')), "{}", stdout(&out));
}

#[test]
fn bad_lines_go_to_the_dead_letter_topic_and_the_rest_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let output = produce(dir.path(), "t", "{\"ok\":1}\nnot json\n{\"ok\":2}\n");
    assert_user_error(&output);
    assert!(stderr(&output).contains("standard input line 2: not valid JSON"), "{}", stderr(&output));
    assert_eq!(consume(dir.path(), "t").len(), 2);
    let dlq = consume(dir.path(), "dlq");
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0]["value"]["original"], "not json");
}

#[test]
fn user_errors_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["log", "consume", "nope"],
        vec!["log", "consume", "nope", "--from", "yesterday"],
        vec!["log", "produce", "bad/name"],
    ] {
        let output = run(weir(dir.path()).args(&args).stdin(Stdio::null()));
        assert_user_error(&output);
        assert_eq!(stderr(&output).lines().count(), 1, "{args:?}: {}", stderr(&output));
    }
}

#[test]
fn an_unreachable_fluvio_cluster_is_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    drop(listener);
    for command in [["topics", ""], ["consume", "alerts"]] {
        let mut args = vec!["log", "--fluvio", &endpoint, command[0]];
        args.extend(command[1..].iter().filter(|a| !a.is_empty()));
        let output = run(weir(dir.path()).args(&args).stdin(Stdio::null()));
        assert_user_error(&output);
        let stderr = stderr(&output);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(&format!("log cluster at {endpoint}")), "{stderr}");
    }
}
