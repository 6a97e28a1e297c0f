//! The PagerDuty sink against a fake Events API v2 on 127.0.0.1.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use weir_schemas::component::{ErrorKind, Sink};
use weir_schemas::events::{Violation, ViolationStatus};
use weir_schemas::{Record, StoredRecord};

use super::request::{dedup_key, severity};
use super::{PagerDutyConfig, PagerDutySink};
use crate::http::{RequestConfig, Secret};
use crate::test_support::{deliver_like_the_runner, record, serve};

const ROUTING_KEY: &str = "R0UT1NGKEY0123456789abcdefNEVERSHOWN";

/// A fake Events API: scripted answers first, else validates the event like PagerDuty (400 for
/// an invalid one), keeps open alerts per (routing_key, dedup_key) and answers 202.
#[derive(Default)]
struct FakePagerDuty {
    script: Mutex<VecDeque<(u16, &'static str)>>,
    received: Mutex<Vec<Value>>,
    /// Open alerts: (routing_key, dedup_key) -> triggers appended.
    open: Mutex<BTreeMap<(String, String), usize>>,
    /// Alerts opened in all.
    opened: Mutex<usize>,
}

async fn enqueue(State(fake): State<Arc<FakePagerDuty>>, body: Bytes) -> Response {
    let event: Value = serde_json::from_slice(&body).unwrap();
    fake.received.lock().unwrap().push(event.clone());
    if let Some((status, text)) = fake.script.lock().unwrap().pop_front() {
        return (StatusCode::from_u16(status).unwrap(), text).into_response();
    }
    let invalid = |message: &str| {
        let body = json!({"status": "invalid event", "message": "Event object is invalid", "errors": [message]});
        (StatusCode::BAD_REQUEST, body.to_string()).into_response()
    };
    let (Some(key), Some(dedup), Some(action)) =
        (event["routing_key"].as_str(), event["dedup_key"].as_str(), event["event_action"].as_str())
    else {
        return invalid("routing_key, dedup_key and event_action are required");
    };
    let alert = (key.to_string(), dedup.to_string());
    match action {
        "trigger" => {
            let payload = &event["payload"];
            for field in ["summary", "source", "severity"] {
                if !payload[field].is_string() {
                    return invalid(&format!("'payload.{field}' is missing"));
                }
            }
            if payload["summary"] == "bad" {
                return invalid("'payload.summary' is bad");
            }
            let mut open = fake.open.lock().unwrap();
            let count = open.entry(alert).or_insert(0);
            if *count == 0 {
                *fake.opened.lock().unwrap() += 1;
            }
            *count += 1;
        }
        "resolve" => {
            fake.open.lock().unwrap().remove(&alert);
        }
        other => return invalid(&format!("unknown event_action {other}")),
    }
    let body = json!({"status": "success", "message": "Event processed", "dedup_key": dedup});
    (StatusCode::ACCEPTED, body.to_string()).into_response()
}

async fn start() -> (Arc<FakePagerDuty>, String) {
    let fake = Arc::new(FakePagerDuty::default());
    let addr = serve(Router::new().route("/v2/enqueue", post(enqueue)).with_state(fake.clone())).await;
    (fake, format!("http://{addr}"))
}

fn config(endpoint: &str) -> PagerDutyConfig {
    PagerDutyConfig {
        routing_key: Secret::new(ROUTING_KEY),
        endpoint: endpoint.to_string(),
        source: None,
        client: "Weir".into(),
        title_template: None,
        request: RequestConfig { circuit_breaker_failures: 0, ..RequestConfig::default() },
    }
}

fn violation(key: &str, status: ViolationStatus, severity_id: i32, summary: &str) -> Violation {
    Violation {
        violation_key: key.into(),
        rule_id: "okta.mfa_disabled".into(),
        rule_description: "MFA must stay enabled".into(),
        severity_id,
        status,
        first_seen: 1_714_675_581_121,
        last_seen: 1_714_675_681_121,
        subject: "alice@example.com".into(),
        event_uid: "evt-1".into(),
        labels: BTreeMap::from([("team".to_string(), "iam".to_string())]),
        summary: summary.into(),
    }
}

fn violation_record(i: u64, violation: &Violation) -> StoredRecord {
    StoredRecord {
        topic: "decisions".into(),
        partition: 0,
        offset: i,
        record: Record::new(1_714_675_581_121, weir_schemas::encode(violation).unwrap()),
    }
}

#[tokio::test]
async fn a_title_template_makes_the_summary() {
    let (fake, endpoint) = start().await;
    let template = "[{rule_id}] {summary} (team {labels.team}, owner {labels.owner|-})".parse().unwrap();
    let mut sink = PagerDutySink::new(PagerDutyConfig { title_template: Some(template), ..config(&endpoint) }).unwrap();
    let batch = [violation_record(0, &violation("v-1", ViolationStatus::Open, 5, "MFA disabled for alice"))];
    assert_eq!(sink.deliver(&batch).await.unwrap(), vec![]);
    let received = fake.received.lock().unwrap().clone();
    assert_eq!(received[0]["payload"]["summary"], "[okta.mfa_disabled] MFA disabled for alice (team iam, owner -)");
    assert_eq!(received[0]["payload"]["class"], "okta.mfa_disabled", "the rest of the payload is unchanged");
}

#[tokio::test]
async fn trigger_then_resolve_with_the_same_dedup_key() {
    let (fake, endpoint) = start().await;
    let mut sink = PagerDutySink::new(config(&endpoint)).unwrap();
    let batch = vec![
        violation_record(0, &violation("v-1", ViolationStatus::Open, 5, "MFA disabled for alice")),
        violation_record(1, &violation("v-1", ViolationStatus::Updated, 5, "MFA disabled for alice")),
    ];
    assert_eq!(sink.deliver(&batch).await.unwrap(), vec![]);
    assert_eq!(*fake.opened.lock().unwrap(), 1, "an update appends to the open alert");
    let key = (ROUTING_KEY.to_string(), "v-1".to_string());
    assert_eq!(fake.open.lock().unwrap().get(&key), Some(&2));

    let resolve = [violation_record(2, &violation("v-1", ViolationStatus::Resolved, 5, "MFA re-enabled"))];
    assert_eq!(sink.deliver(&resolve).await.unwrap(), vec![]);
    assert!(fake.open.lock().unwrap().is_empty(), "resolved");

    let received = fake.received.lock().unwrap().clone();
    assert_eq!(received.len(), 3);
    let trigger = &received[0];
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["routing_key"], ROUTING_KEY);
    assert_eq!(trigger["dedup_key"], "v-1");
    assert_eq!(trigger["payload"]["summary"], "MFA disabled for alice");
    assert_eq!(trigger["payload"]["source"], "alice@example.com");
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["payload"]["timestamp"], "2024-05-02T18:48:01.121Z");
    assert_eq!(trigger["payload"]["custom_details"]["rule_id"], "okta.mfa_disabled");
    assert_eq!(trigger["payload"]["custom_details"]["labels"], json!({"team": "iam"}));
    assert_eq!(received[1]["event_action"], "trigger");
    assert_eq!(received[2], json!({"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "v-1"}));
}

#[tokio::test]
async fn a_retry_after_500_or_429_sends_the_same_dedup_key_and_pages_once() {
    let (fake, endpoint) = start().await;
    fake.script.lock().unwrap().extend([(500, "internal error"), (429, "Request Limit Exceeded")]);
    let mut sink = PagerDutySink::new(config(&endpoint)).unwrap();
    let batch = vec![
        violation_record(0, &violation("v-2", ViolationStatus::Open, 4, "Root login")),
        violation_record(1, &violation("v-3", ViolationStatus::Open, 3, "Public bucket")),
    ];
    let outcome = deliver_like_the_runner(&mut sink, &batch).await;
    assert!(outcome.dead.is_empty());
    assert!(
        outcome.reasons[0].contains("500") && outcome.reasons[0].contains("internal error"),
        "{:?}",
        outcome.reasons
    );
    assert!(outcome.reasons.iter().any(|r| r.contains("429")), "{:?}", outcome.reasons);

    let received = fake.received.lock().unwrap().clone();
    let keys: Vec<_> = received.iter().map(|e| e["dedup_key"].as_str().unwrap().to_string()).collect();
    assert_eq!(keys, ["v-2", "v-2", "v-2", "v-3"], "retries resend the same dedup_key; v-3 waits");
    assert_eq!(received[0], received[2], "the retry is the same event");
    assert_eq!(received[0]["payload"]["severity"], "error");
    assert_eq!(received[3]["payload"]["severity"], "warning");
    assert_eq!(*fake.opened.lock().unwrap(), 2, "one alert per violation");
    for reason in &outcome.reasons {
        assert!(!reason.contains(ROUTING_KEY), "{reason}");
    }
}

#[tokio::test]
async fn invalid_events_and_non_violations_are_dead_lettered_with_the_reason() {
    let (fake, endpoint) = start().await;
    let mut sink = PagerDutySink::new(config(&endpoint)).unwrap();
    let batch = vec![
        violation_record(0, &violation("v-4", ViolationStatus::Open, 2, "bad")),
        record(1, r#"{"not":"a violation"}"#),
        violation_record(2, &violation("v-5", ViolationStatus::Open, 1, "fine")),
    ];
    let failures = sink.deliver(&batch).await.unwrap();
    assert_eq!(failures.iter().map(|f| (f.index, f.retryable)).collect::<Vec<_>>(), [(0, false), (1, false)]);
    assert!(
        failures[0].reason.contains("400") && failures[0].reason.contains("'payload.summary' is bad"),
        "{}",
        failures[0].reason
    );
    assert!(failures[1].reason.contains("not an io.weir.Violation"), "{}", failures[1].reason);
    let received = fake.received.lock().unwrap().clone();
    assert_eq!(received.len(), 2, "no request for the non-violation");
    assert_eq!(received[1]["payload"]["severity"], "info");
    for failure in &failures {
        assert!(!failure.reason.contains(ROUTING_KEY), "{}", failure.reason);
    }
}

#[tokio::test]
async fn refused_keys_are_fatal_and_the_routing_key_is_never_shown() {
    let (fake, endpoint) = start().await;
    // A receiver that echoes the key back must not leak it through the reason.
    let echo: &'static str = Box::leak(format!("routing key {ROUTING_KEY} is not allowed").into_boxed_str());
    fake.script.lock().unwrap().extend([(403, echo), (400, echo)]);
    let cfg = config(&endpoint);
    let mut sink = PagerDutySink::new(cfg.clone()).unwrap();
    let open = [violation_record(0, &violation("v-6", ViolationStatus::Open, 5, "x"))];
    let err = sink.deliver(&open).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(err.message.contains("403"), "{}", err.message);
    let failures = sink.deliver(&open).await.unwrap();
    assert!(!failures[0].retryable);
    for text in [err.message, failures[0].reason.clone(), format!("{cfg:?}"), format!("{sink:?}")] {
        assert!(!text.contains(ROUTING_KEY) && !text.contains("NEVERSHOWN"), "{text}");
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_retryable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let mut sink = PagerDutySink::new(config(&endpoint)).unwrap();
    let v = violation("v-7", ViolationStatus::Open, 5, "x");
    let err = sink.deliver(&[violation_record(0, &v), violation_record(1, &v)]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Retryable);
    assert!(!err.message.contains(ROUTING_KEY), "{}", err.message);
}

#[test]
fn severities_and_long_dedup_keys() {
    let cases = [
        (6, "critical"),
        (5, "critical"),
        (4, "error"),
        (3, "warning"),
        (2, "info"),
        (1, "info"),
        (0, "info"),
        (99, "info"),
    ];
    for (id, expected) in cases {
        assert_eq!(severity(id), expected, "severity_id {id}");
    }
    let long = violation(&"k".repeat(300), ViolationStatus::Open, 5, "x");
    let key = dedup_key(&long);
    assert!(key.len() <= 255 && key.starts_with("sha256:"), "{key}");
    assert_eq!(key, dedup_key(&long), "stable");
}

#[test]
fn config_reads_from_toml_and_refuses_unknown_keys() {
    let cfg: PagerDutyConfig = toml::from_str("routing_key = \"abc123\"\n[request]\nrate_limit_per_sec = 2\n").unwrap();
    assert_eq!(cfg.endpoint, "https://events.pagerduty.com");
    assert_eq!(cfg.request.rate_limit_per_sec, Some(2.0));
    assert!(toml::from_str::<PagerDutyConfig>("routing_key = \"a\"\nroutingkey = \"b\"").is_err());
    let err = PagerDutySink::new(PagerDutyConfig { endpoint: "ftp://x".into(), ..cfg.clone() }).unwrap_err();
    assert_eq!(err.key, "endpoint");
    let err = PagerDutySink::new(PagerDutyConfig { routing_key: Secret::new(" "), ..cfg }).unwrap_err();
    assert_eq!(err.key, "routing_key");
}
