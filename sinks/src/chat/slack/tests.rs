//! The Slack sink against a fake incoming webhook on 127.0.0.1.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

use super::{SlackConfig, SlackSink};
use crate::http::{RequestConfig, Secret};
use crate::test_support::{deliver_like_the_runner, record, serve};

const HOOK_PATH: &str = "/services/T0001/B0002/XXXXsecretXXXXtoken";

/// A fake incoming webhook: scripted answers (status, plain-text body, Retry-After) first, then
/// Slack's own checks (`no_text` without text or blocks, `invalid_payload` for non-JSON) and
/// 200 `ok`.
#[derive(Default)]
struct FakeSlack {
    script: Mutex<VecDeque<(u16, &'static str, Option<&'static str>)>>,
    received: Mutex<Vec<(Instant, Value)>>,
}

async fn hook(State(fake): State<Arc<FakeSlack>>, body: Bytes) -> Response {
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
    };
    fake.received.lock().unwrap().push((Instant::now(), message.clone()));
    if let Some((status, text, retry_after)) = fake.script.lock().unwrap().pop_front() {
        let mut response = (StatusCode::from_u16(status).unwrap(), text).into_response();
        if let Some(value) = retry_after {
            response.headers_mut().insert("retry-after", value.parse().unwrap());
        }
        return response;
    }
    if !message["text"].is_string() || message["text"] == "" {
        return (StatusCode::BAD_REQUEST, "no_text").into_response();
    }
    (StatusCode::OK, "ok").into_response()
}

async fn start() -> (Arc<FakeSlack>, String) {
    let fake = Arc::new(FakeSlack::default());
    let addr = serve(Router::new().route(HOOK_PATH, post(hook)).with_state(fake.clone())).await;
    (fake, format!("http://{addr}{HOOK_PATH}"))
}

fn config(url: &str) -> SlackConfig {
    SlackConfig {
        webhook_url: Secret::new(url),
        request: RequestConfig { circuit_breaker_failures: 0, ..RequestConfig::default() },
    }
}

fn violation(status: ViolationStatus) -> Violation {
    Violation {
        violation_key: "okta.mfa_disabled/alice".into(),
        rule_id: "okta.mfa_disabled".into(),
        rule_description: "MFA must stay enabled".into(),
        severity_id: 4,
        status,
        first_seen: 1_714_675_581_121,
        last_seen: 1_714_675_681_121,
        subject: "alice <admin>".into(),
        event_uid: "evt-1".into(),
        labels: BTreeMap::new(),
        summary: "MFA disabled for alice".into(),
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

fn assert_no_secret(text: &str) {
    assert!(!text.contains("XXXXsecretXXXXtoken") && !text.contains(HOOK_PATH), "{text}");
}

#[tokio::test]
async fn violations_become_block_kit_messages_open_then_resolved_with_the_same_key() {
    let (fake, url) = start().await;
    let mut sink = SlackSink::new(config(&url)).unwrap();
    let batch = vec![
        violation_record(0, &violation(ViolationStatus::Open)),
        violation_record(1, &violation(ViolationStatus::Resolved)),
        record(2, r#"{"plain":"record"}"#),
    ];
    assert_eq!(sink.deliver(&batch).await.unwrap(), vec![]);
    let received: Vec<Value> = fake.received.lock().unwrap().iter().map(|(_, m)| m.clone()).collect();
    assert_eq!(received.len(), 3);
    let open = &received[0];
    assert_eq!(open["text"], "OPEN okta.mfa_disabled: MFA disabled for alice");
    assert_eq!(
        open["blocks"][0],
        json!({"type": "header", "text": {"type": "plain_text", "text": "[okta.mfa_disabled] MFA disabled for alice", "emoji": false}})
    );
    assert_eq!(
        open["blocks"][1]["fields"],
        json!([
            {"type": "mrkdwn", "text": "*Severity*\nhigh (4)"},
            {"type": "mrkdwn", "text": "*Status*\nOPEN"},
            {"type": "mrkdwn", "text": "*Subject*\nalice &lt;admin&gt;"},
        ])
    );
    let context = "Violation key: `okta.mfa_disabled/alice`";
    assert_eq!(open["blocks"][2]["elements"][0]["text"], context);
    assert_eq!(received[1]["blocks"][1]["fields"][1]["text"], "*Status*\nRESOLVED");
    assert_eq!(received[1]["blocks"][2]["elements"][0]["text"], context, "the same key on resolve");
    assert_eq!(received[2], json!({"text": r#"{"plain":"record"}"#}));
}

#[tokio::test]
async fn a_retry_after_500_resends_the_same_message_and_429_honours_retry_after() {
    let (fake, url) = start().await;
    fake.script.lock().unwrap().extend([(500, "rollup_error", None), (429, "rate_limited", Some("1"))]);
    let mut sink = SlackSink::new(config(&url)).unwrap();
    let batch = vec![violation_record(0, &violation(ViolationStatus::Open)), record(1, r#"{"n":1}"#)];
    let outcome = deliver_like_the_runner(&mut sink, &batch).await;
    assert!(outcome.dead.is_empty());
    assert!(outcome.reasons[0].contains("500") && outcome.reasons[0].contains("rollup_error"), "{:?}", outcome.reasons);
    assert!(
        outcome.reasons[1].contains("429") && outcome.reasons[1].contains("retry after 1s"),
        "{:?}",
        outcome.reasons
    );
    let received = fake.received.lock().unwrap().clone();
    assert_eq!(received.len(), 4, "500, 429, then both");
    assert_eq!(received[0].1, received[1].1);
    assert_eq!(received[1].1, received[2].1, "the retry is the same message");
    assert!(received[2].0 - received[1].0 >= Duration::from_millis(900), "held for Retry-After");
    outcome.reasons.iter().for_each(|r| assert_no_secret(r));
}

#[tokio::test]
async fn invalid_payloads_are_dead_lettered_with_slacks_answer() {
    let (fake, url) = start().await;
    fake.script.lock().unwrap().extend([(400, "invalid_payload", None), (400, "no_text", None)]);
    let mut sink = SlackSink::new(config(&url)).unwrap();
    let batch: Vec<_> = (0..3).map(|i| record(i, "{}")).collect();
    let failures = sink.deliver(&batch).await.unwrap();
    assert_eq!(failures.iter().map(|f| (f.index, f.retryable)).collect::<Vec<_>>(), [(0, false), (1, false)]);
    assert!(
        failures[0].reason.contains("400") && failures[0].reason.contains("invalid_payload"),
        "{}",
        failures[0].reason
    );
    assert!(failures[1].reason.contains("no_text"), "{}", failures[1].reason);
    assert_eq!(fake.received.lock().unwrap().len(), 3);
    failures.iter().for_each(|f| assert_no_secret(&f.reason));
}

#[tokio::test]
async fn invalid_tokens_and_missing_channels_are_fatal_without_showing_the_url() {
    let (fake, url) = start().await;
    let echo: &'static str = Box::leak(format!("invalid_token for {url}").into_boxed_str());
    fake.script.lock().unwrap().extend([(403, echo, None), (404, "channel_not_found", None)]);
    let cfg = config(&url);
    let mut sink = SlackSink::new(cfg.clone()).unwrap();
    let batch = [violation_record(0, &violation(ViolationStatus::Open))];
    let forbidden = sink.deliver(&batch).await.unwrap_err();
    assert_eq!(forbidden.kind, ErrorKind::Fatal);
    assert!(forbidden.message.contains("403") && forbidden.message.contains("invalid_token"), "{}", forbidden.message);
    let missing = sink.deliver(&batch).await.unwrap_err();
    assert_eq!(missing.kind, ErrorKind::Fatal);
    assert!(missing.message.contains("channel_not_found"), "{}", missing.message);
    for text in [forbidden.message, missing.message, format!("{cfg:?}"), format!("{sink:?}")] {
        assert_no_secret(&text);
    }
}

#[tokio::test]
async fn an_unreachable_webhook_is_retryable_without_showing_the_url() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{HOOK_PATH}", listener.local_addr().unwrap());
    drop(listener);
    let mut sink = SlackSink::new(config(&url)).unwrap();
    let err = sink.deliver(&[record(0, "{}")]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Retryable);
    assert_no_secret(&err.message);
}

#[test]
fn config_reads_from_toml_and_refuses_unknown_keys() {
    let cfg: SlackConfig = toml::from_str(
        "webhook_url = \"https://hooks.slack.com/services/T/B/secret\"\n[request]\nrate_limit_per_sec = 1\n",
    )
    .unwrap();
    assert_eq!(cfg.request.rate_limit_per_sec, Some(1.0));
    assert!(toml::from_str::<SlackConfig>("webhook_url = \"http://x\"\nchannel = \"#sec\"").is_err());
    let err = SlackSink::new(SlackConfig { webhook_url: Secret::new("not a url secret"), ..cfg }).unwrap_err();
    assert_eq!(err.key, "webhook_url");
    assert!(!err.to_string().contains("not a url secret"));
}
