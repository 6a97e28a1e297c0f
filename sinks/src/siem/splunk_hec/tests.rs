//! The HEC sink against a fake HEC on 127.0.0.1.

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use weir_schemas::component::{ErrorKind, Sink};

use super::{SplunkHecConfig, SplunkHecSink};
use crate::http::{RequestConfig, Secret};
use crate::test_support::{deliver_like_the_runner, record, serve};

const TOKEN: &str = "0b7c1d4e-hec-token-never-shown";

/// A fake HEC: checks the token, parses back-to-back event objects, stops at an event whose
/// value has `"bad": true` (400 with `invalid-event-number`, the prefix indexed), hands out
/// ackIds and reports each `true` once.
#[derive(Default)]
struct FakeHec {
    /// Responses given (without indexing) before normal handling: (status, body, Retry-After).
    script: Mutex<VecDeque<(u16, String, Option<&'static str>)>>,
    indexed: Mutex<Vec<Value>>,
    requests: Mutex<Vec<HeaderMap>>,
    ack: bool,
    /// Polls an ackId needs before it is reported `true`; `usize::MAX`: never.
    polls_before_ack: usize,
    acks: Mutex<AckState>,
}

#[derive(Default)]
struct AckState {
    next: u64,
    /// ackId → polls so far.
    outstanding: BTreeMap<u64, usize>,
    polls: usize,
}

fn reply(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), body.to_string()).into_response()
}

async fn event(State(hec): State<Arc<FakeHec>>, headers: HeaderMap, body: Bytes) -> Response {
    hec.requests.lock().unwrap().push(headers.clone());
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Splunk {TOKEN}")) {
        return reply(403, json!({"text": "Invalid token", "code": 4}));
    }
    if let Some((status, body, retry_after)) = hec.script.lock().unwrap().pop_front() {
        let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
        if let Some(value) = retry_after {
            response.headers_mut().insert("retry-after", value.parse().unwrap());
        }
        return response;
    }
    let mut text = Vec::new();
    if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
        flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut text).unwrap();
    } else {
        text = body.to_vec();
    }
    let channel = headers.get("x-splunk-request-channel");
    if hec.ack && channel.is_none() {
        return reply(400, json!({"text": "Data channel is missing", "code": 10}));
    }
    for (i, event) in serde_json::Deserializer::from_slice(&text).into_iter::<Value>().enumerate() {
        let event = event.unwrap();
        if event["event"]["bad"] == json!(true) {
            return reply(400, json!({"text": "Invalid data format", "code": 6, "invalid-event-number": i}));
        }
        hec.indexed.lock().unwrap().push(event);
    }
    if hec.ack {
        let mut acks = hec.acks.lock().unwrap();
        let id = acks.next;
        acks.next += 1;
        acks.outstanding.insert(id, 0);
        return reply(200, json!({"text": "Success", "code": 0, "ackId": id}));
    }
    reply(200, json!({"text": "Success", "code": 0}))
}

async fn ack(State(hec): State<Arc<FakeHec>>, headers: HeaderMap, body: Bytes) -> Response {
    hec.requests.lock().unwrap().push(headers.clone());
    let asked: Value = serde_json::from_slice(&body).unwrap();
    let mut state = hec.acks.lock().unwrap();
    state.polls += 1;
    let mut answer = serde_json::Map::new();
    for id in asked["acks"].as_array().unwrap() {
        let id = id.as_u64().unwrap();
        let done = match state.outstanding.get_mut(&id) {
            Some(polls) if *polls >= hec.polls_before_ack => true,
            Some(polls) => {
                *polls += 1;
                false
            }
            None => false,
        };
        if done {
            // A `true` is reported once; later polls of the id answer false.
            state.outstanding.remove(&id);
        }
        answer.insert(id.to_string(), json!(done));
    }
    reply(200, json!({ "acks": answer }))
}

async fn start(hec: FakeHec) -> (Arc<FakeHec>, String) {
    let hec = Arc::new(hec);
    let app = Router::new()
        .route("/services/collector/event", post(event))
        .route("/services/collector/ack", post(ack))
        .with_state(hec.clone());
    let addr = serve(app).await;
    (hec, format!("http://{addr}/"))
}

fn config(endpoint: &str) -> SplunkHecConfig {
    SplunkHecConfig {
        endpoint: endpoint.to_string(),
        token: Secret::new(TOKEN),
        index: Some("security".into()),
        source: Some("weir".into()),
        sourcetype: Some("weir:event".into()),
        host: Some("weir-host".into()),
        gzip: false,
        batch_max_events: 100,
        batch_max_bytes: 1_000_000,
        ack: false,
        channel: None,
        ack_poll_interval_ms: 5,
        ack_timeout_ms: 10_000,
        request: RequestConfig { circuit_breaker_failures: 0, ..RequestConfig::default() },
    }
}

fn weir_ids(hec: &FakeHec) -> Vec<String> {
    let mut ids: Vec<String> =
        hec.indexed.lock().unwrap().iter().map(|e| e["fields"]["weir_id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

fn assert_no_token(texts: &[String]) {
    for text in texts {
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
    }
}

#[tokio::test]
async fn delivers_every_event_with_its_metadata_in_gzipped_batches() {
    let (hec, endpoint) = start(FakeHec::default()).await;
    let mut sink =
        SplunkHecSink::new(SplunkHecConfig { gzip: true, batch_max_events: 2, ..config(&endpoint) }).unwrap();
    let batch: Vec<_> = (0..5).map(|i| record(i, &format!("{{\"n\":{i}}}"))).collect();
    assert_eq!(sink.deliver(&batch).await.unwrap(), vec![]);

    let requests = hec.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|h| h["content-encoding"] == "gzip"));
    assert!(requests.iter().all(|h| h["authorization"] == format!("Splunk {TOKEN}").as_str()));
    let indexed = hec.indexed.lock().unwrap().clone();
    assert_eq!(indexed.len(), 5);
    assert_eq!(indexed[0]["time"], json!(1714675581.121));
    assert_eq!(indexed[0]["event"], json!({"n": 0}));
    assert_eq!(indexed[0]["index"], "security");
    assert_eq!(indexed[0]["source"], "weir");
    assert_eq!(indexed[0]["sourcetype"], "weir:event");
    assert_eq!(indexed[0]["host"], "weir-host");
    assert_eq!(indexed[4]["fields"], json!({"weir_id": "raw.test/0/4"}));
}

#[tokio::test]
async fn a_429_and_503_bursts_are_retried_without_losing_or_duplicating_events() {
    let (hec, endpoint) = start(FakeHec::default()).await;
    {
        let mut script = hec.script.lock().unwrap();
        script.push_back((429, json!({"text": "HEC queue is at capacity", "code": 26}).to_string(), Some("0")));
        for _ in 0..3 {
            script.push_back((503, json!({"text": "Server is busy", "code": 9}).to_string(), None));
        }
    }
    let mut sink = SplunkHecSink::new(SplunkHecConfig { batch_max_events: 2, ..config(&endpoint) }).unwrap();
    let batch: Vec<_> = (0..4).map(|i| record(i, &format!("{{\"n\":{i}}}"))).collect();
    let outcome = deliver_like_the_runner(&mut sink, &batch).await;

    assert!(outcome.dead.is_empty());
    assert_eq!(weir_ids(&hec), (0..4).map(|i| format!("raw.test/0/{i}")).collect::<Vec<_>>());
    assert!(
        outcome.reasons[0].contains("429") && outcome.reasons[0].contains("retry after 0s"),
        "{:?}",
        outcome.reasons
    );
    assert!(outcome.reasons.iter().any(|r| r.contains("503")), "{:?}", outcome.reasons);
    assert_no_token(&outcome.reasons);
}

#[tokio::test]
async fn an_invalid_event_is_dead_lettered_and_only_the_events_after_it_are_resent() {
    let (hec, endpoint) = start(FakeHec::default()).await;
    let mut sink = SplunkHecSink::new(config(&endpoint)).unwrap();
    let batch =
        vec![record(0, r#"{"n":0}"#), record(1, r#"{"bad":true}"#), record(2, r#"{"n":2}"#), record(3, r#"{"n":3}"#)];

    let failures = sink.deliver(&batch).await.unwrap();
    assert_eq!(failures.iter().map(|f| (f.index, f.retryable)).collect::<Vec<_>>(), [(1, false), (2, true), (3, true)]);
    assert!(failures[0].reason.contains("Invalid data format"), "{}", failures[0].reason);

    // The runner resends only the retryable ones; the indexed prefix is never sent again.
    assert_eq!(sink.deliver(&batch[2..]).await.unwrap(), vec![]);
    assert_eq!(weir_ids(&hec), ["raw.test/0/0", "raw.test/0/2", "raw.test/0/3"]);
    assert_no_token(&failures.iter().map(|f| f.reason.clone()).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_empty_event_is_dead_lettered_without_being_sent() {
    let (hec, endpoint) = start(FakeHec::default()).await;
    let mut sink = SplunkHecSink::new(config(&endpoint)).unwrap();
    let failures = sink.deliver(&[record(0, ""), record(1, r#"{"n":1}"#)]).await.unwrap();
    assert_eq!(failures.iter().map(|f| (f.index, f.retryable)).collect::<Vec<_>>(), [(0, false)]);
    assert_eq!(weir_ids(&hec), ["raw.test/0/1"]);
}

#[tokio::test]
async fn a_refused_token_is_fatal_and_the_token_is_never_shown() {
    let (_hec, endpoint) = start(FakeHec::default()).await;
    let wrong = "wrong-token-also-secret";
    let cfg = SplunkHecConfig { token: Secret::new(wrong), ..config(&endpoint) };
    let mut sink = SplunkHecSink::new(cfg.clone()).unwrap();
    let err = sink.deliver(&[record(0, "{}")]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(err.message.contains("403") && err.message.contains("Invalid token"), "{}", err.message);
    for text in [err.message, format!("{cfg:?}"), format!("{sink:?}")] {
        assert!(!text.contains(wrong) && !text.contains(TOKEN), "{text}");
    }
}

#[tokio::test]
async fn a_token_echoed_by_the_server_is_scrubbed_from_the_reason() {
    let (hec, endpoint) = start(FakeHec::default()).await;
    hec.script.lock().unwrap().push_back((
        400,
        format!("{{\"text\":\"bad request from Splunk {TOKEN}\",\"code\":6}}"),
        None,
    ));
    let mut sink = SplunkHecSink::new(config(&endpoint)).unwrap();
    let failures = sink.deliver(&[record(0, "{}")]).await.unwrap();
    assert!(!failures[0].retryable);
    assert!(failures[0].reason.contains("Splunk ***"), "{}", failures[0].reason);
    assert_no_token(&[failures[0].reason.clone()]);
}

#[tokio::test]
async fn an_incorrect_index_is_a_fatal_configuration_error() {
    let (hec, endpoint) = start(FakeHec::default()).await;
    hec.script.lock().unwrap().push_back((
        400,
        json!({"text": "Incorrect index", "code": 7, "invalid-event-number": 0}).to_string(),
        None,
    ));
    let mut sink = SplunkHecSink::new(config(&endpoint)).unwrap();
    let err = sink.deliver(&[record(0, "{}")]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(err.message.contains("Incorrect index"), "{}", err.message);
}

#[tokio::test]
async fn with_ack_a_batch_is_delivered_once_the_indexer_acknowledges_it() {
    let (hec, endpoint) = start(FakeHec { ack: true, polls_before_ack: 2, ..FakeHec::default() }).await;
    let channel = "0aeeac95-ac74-4aa9-b30d-6c4c0ac581ba";
    let cfg = SplunkHecConfig { ack: true, channel: Some(channel.into()), batch_max_events: 2, ..config(&endpoint) };
    let mut sink = SplunkHecSink::new(cfg).unwrap();
    let batch: Vec<_> = (0..3).map(|i| record(i, &format!("{{\"n\":{i}}}"))).collect();
    assert_eq!(sink.deliver(&batch).await.unwrap(), vec![]);

    assert_eq!(weir_ids(&hec).len(), 3);
    let acks = hec.acks.lock().unwrap();
    assert!(acks.outstanding.is_empty(), "every ackId was acknowledged");
    assert!(acks.polls >= 3, "polled until true: {}", acks.polls);
    assert!(hec.requests.lock().unwrap().iter().all(|h| h["x-splunk-request-channel"] == channel));
}

#[tokio::test]
async fn with_ack_an_unacknowledged_batch_is_retryable() {
    let (_hec, endpoint) = start(FakeHec { ack: true, polls_before_ack: usize::MAX, ..FakeHec::default() }).await;
    let cfg = SplunkHecConfig { ack: true, ack_timeout_ms: 30, ..config(&endpoint) };
    let mut sink = SplunkHecSink::new(cfg).unwrap();
    let err = sink.deliver(&[record(0, "{}"), record(1, "{}")]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Retryable);
    assert!(err.message.contains("did not acknowledge"), "{}", err.message);
}

#[test]
fn config_reads_from_toml_and_refuses_unknown_keys() {
    let cfg: SplunkHecConfig = toml::from_str(
        r#"
        endpoint = "https://splunk.example.com:8088"
        token = "abc-123"
        index = "security"
        sourcetype = "weir:event"
        gzip = true
        ack = true
        [request]
        timeout_secs = 10
        rate_limit_per_sec = 20.5
        "#,
    )
    .unwrap();
    assert_eq!(cfg.token.expose(), "abc-123");
    assert_eq!(cfg.batch_max_events, 100);
    assert_eq!(cfg.request.timeout_secs, 10.0);
    assert!(!format!("{cfg:?}").contains("abc-123"));
    let err = toml::from_str::<SplunkHecConfig>("endpoint = \"http://x\"\ntoken = \"t\"\nindx = \"a\"").unwrap_err();
    assert!(err.to_string().contains("indx"), "{err}");
    assert_eq!(SplunkHecSink::new(SplunkHecConfig { endpoint: "ftp://x".into(), ..cfg }).unwrap_err().key, "endpoint");
}
