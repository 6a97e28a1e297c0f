//! API sources through the whole pipeline: a fake Okta System Log API on 127.0.0.1 (paged with
//! `Link: rel="next"`, rate-limited) feeds `weir run`, which is SIGKILLed in the middle and restarted: the `events`
//! topic must hold every event exactly once. And a pushed Okta Event Hook delivery is answered
//! only once durable, with `/metrics` counting it.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::common::*;

const TOKEN: &str = "e2e-okta-token-7f3a";
const EVENTS: usize = 240;

/// The fake's state: how many pages it served, and whether it still owes a 429.
struct Fake {
    pages_served: AtomicUsize,
    throttle_next: AtomicUsize,
}

#[derive(serde::Deserialize)]
struct LogsQuery {
    after: Option<usize>,
    since: Option<String>,
    limit: Option<usize>,
}

fn event(i: usize) -> serde_json::Value {
    serde_json::json!({
        "uuid": format!("00000000-0000-4000-8000-{i:012}"),
        "published": format!("2024-05-02T18:{:02}:{:02}.000Z", (i / 60) % 60, i % 60),
        "eventType": "user.session.start",
        "severity": "INFO",
        "actor": {"id": format!("00u{}", i % 7), "alternateId": format!("user{}@example.com", i % 7), "type": "User"},
        "outcome": {"result": "SUCCESS"},
        "client": {"ipAddress": "192.0.2.1"}
    })
}

/// `GET /api/v1/logs`: pages of `limit` events from `after` (the index the previous page ended
/// at); a first request with `since` starts at the beginning; a `next` link on every page, the
/// empty last one included; every third page first answers 429 with a reset one second ahead.
async fn logs(State(fake): State<Arc<Fake>>, headers: HeaderMap, Query(query): Query<LogsQuery>) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("SSWS {TOKEN}")) {
        return (StatusCode::UNAUTHORIZED, r#"{"errorCode":"E0000011","errorSummary":"Invalid token provided"}"#)
            .into_response();
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    if fake.throttle_next.swap(0, Ordering::SeqCst) == 1 {
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            r#"{"errorCode":"E0000047","errorSummary":"API call exceeded rate limit due to too many requests."}"#,
        )
            .into_response();
        let h = response.headers_mut();
        h.insert("x-rate-limit-limit", "60".parse().unwrap());
        h.insert("x-rate-limit-remaining", "0".parse().unwrap());
        h.insert("x-rate-limit-reset", (now + 1).to_string().parse().unwrap());
        return response;
    }
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(query.after.is_some() != query.since.is_some(), "`since` and `after` are mutually exclusive");
    let start = query.after.unwrap_or(0).min(EVENTS);
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let end = (start + limit).min(EVENTS);
    let page: Vec<serde_json::Value> = (start..end).map(event).collect();
    let served = fake.pages_served.fetch_add(1, Ordering::SeqCst) + 1;
    if served % 3 == 0 {
        fake.throttle_next.store(1, Ordering::SeqCst);
    }
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1").to_string();
    let next = format!("<http://{host}/api/v1/logs?limit={limit}&after={end}>; rel=\"next\"");
    let mut response = axum::Json(page).into_response();
    let h = response.headers_mut();
    h.insert("link", format!("<http://{host}/api/v1/logs?limit={limit}&after={start}>; rel=\"self\"").parse().unwrap());
    h.append("link", next.parse().unwrap());
    h.insert("x-rate-limit-limit", "60".parse().unwrap());
    h.insert("x-rate-limit-remaining", "59".parse().unwrap());
    h.insert("x-rate-limit-reset", (now + 60).to_string().parse().unwrap());
    response
}

/// Serves the fake on a thread of its own; returns its address and state.
fn start_fake() -> (SocketAddr, Arc<Fake>) {
    let fake = Arc::new(Fake { pages_served: AtomicUsize::new(0), throttle_next: AtomicUsize::new(0) });
    let app = Router::new().route("/api/v1/logs", get(logs)).with_state(fake.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (rx.recv().unwrap(), fake)
}

fn config(dir: &Path, addr: SocketAddr) -> std::path::PathBuf {
    let path = dir.join("okta.toml");
    let text = format!(
        r#"
[sources.okta]
type = "okta"
base_url = "http://{addr}"
api_token = "${{E2E_OKTA_TOKEN}}"
limit = 20

[sources.okta.http]
initial_backoff_ms = 10

[operators.events]
type = "normalize"
inputs = ["okta"]
"#
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn uuids(data_dir: &Path, topic: &str, field: &str) -> Vec<String> {
    consume(data_dir, topic)
        .iter()
        .map(|line| {
            let value = &line["value"];
            let found = value.pointer(field).and_then(|v| v.as_str());
            found.unwrap_or_else(|| panic!("no {field} in {line}")).to_string()
        })
        .collect()
}

#[test]
fn an_okta_source_killed_mid_run_delivers_every_event_exactly_once() {
    let (addr, fake) = start_fake();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = config(dir.path(), addr);

    // Kill the pipeline once the fake has served a few pages.
    let mut child = weir(&data)
        .args(["run", "-c"])
        .arg(&config)
        .env("E2E_OKTA_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.pages_served.load(Ordering::SeqCst) < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let output = run(weir(&data).args(["run", "--until-idle", "-c"]).arg(&config).env("E2E_OKTA_TOKEN", TOKEN));
    assert_ok(&output);
    let err = stderr(&output);
    assert!(!err.contains(TOKEN), "the token never shows:\n{err}");

    let expected: Vec<String> = (0..EVENTS).map(|i| format!("00000000-0000-4000-8000-{i:012}")).collect();
    let mut events = uuids(&data, "events", "/metadata/uid");
    events.sort();
    assert_eq!(events, expected, "every event exactly once on `events`");
    assert!(consume(&data, "dlq").is_empty(), "nothing dead-lettered");
    let _ = child.stderr.take().map(|mut e| {
        let mut text = String::new();
        e.read_to_string(&mut text).ok();
        assert!(!text.contains(TOKEN));
    });
}

const HOOK_SECRET: &str = "e2e-hook-secret-91c2";

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Sends a request with a blocking client, retrying the connection while the server starts.
fn send(request: impl Fn() -> reqwest::blocking::RequestBuilder) -> reqwest::blocking::Response {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match request().send() {
            Ok(response) => return response,
            Err(e) if e.is_connect() && Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("request failed: {e}"),
        }
    }
}

#[test]
fn an_okta_event_hook_delivery_is_acknowledged_once_durable_and_counted_in_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let config = dir.path().join("hook.toml");
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"

[sources.okta_hook]
type = "okta_event_hook"
path = "/hooks/okta"
secret = "${{E2E_HOOK_SECRET}}"

[operators.events]
type = "normalize"
inputs = ["okta_hook"]
"#
    );
    std::fs::write(&config, text).unwrap();
    let mut child = weir(&data)
        .args(["run", "-c"])
        .arg(&config)
        .env("E2E_HOOK_SECRET", HOOK_SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::blocking::Client::new();
    let base = format!("http://127.0.0.1:{port}");

    // The one-time verification, then a delivery (Okta's documented sample), twice: Okta
    // delivers at least once.
    let challenge = send(|| {
        client
            .get(format!("{base}/hooks/okta"))
            .header("authorization", HOOK_SECRET)
            .header("x-okta-verification-challenge", "abc123")
    });
    assert_eq!(challenge.status(), 200);
    assert_eq!(challenge.json::<serde_json::Value>().unwrap(), serde_json::json!({"verification": "abc123"}));
    let delivery =
        std::fs::read(repo_root().join("operators/tests/golden/okta/devdocs_event_hook_delivery.json")).unwrap();
    for _ in 0..2 {
        let response = send(|| {
            client
                .post(format!("{base}/hooks/okta"))
                .header("authorization", HOOK_SECRET)
                .header("content-type", "application/json")
                .body(delivery.clone())
        });
        assert_eq!(response.status(), 200, "acknowledged once durable");
    }
    let wrong = send(|| client.post(format!("{base}/hooks/okta")).header("authorization", "nope").body("{}"));
    assert_eq!(wrong.status(), 401);

    let metrics = send(|| client.get(format!("{base}/metrics"))).text().unwrap();
    assert!(
        metrics.contains("weir_records_out_total{stage=\"okta_hook\",role=\"source\",type=\"okta_event_hook\"} 1\n"),
        "one event appended (the repeat dropped):\n{metrics}"
    );
    assert!(metrics.contains("weir_source_bytes_total{stage=\"okta_hook\""), "{metrics}");

    // SIGTERM: finish, commit, exit.
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "weir run exits cleanly on SIGTERM:\n{err}");
    assert!(!err.contains(HOOK_SECRET), "the secret never shows:\n{err}");
    let raw = consume(&data, "raw.okta_hook");
    assert_eq!(raw.len(), 1, "the repeated delivery is not appended twice");
}
