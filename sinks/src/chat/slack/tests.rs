//! The Slack sink against a fake incoming webhook on 127.0.0.1.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use weir_schemas::component::{ErrorKind, Sink};
use weir_schemas::events::{Violation, ViolationStatus};
use weir_schemas::{Record, StoredRecord};

use super::{classify_api_error, SlackConfig, SlackMode, SlackSink};
use crate::http::{FailureClass, RequestConfig, Secret};
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
        mode: SlackMode::Webhook,
        webhook_url: Some(Secret::new(url)),
        token: None,
        channel: None,
        base_url: "https://slack.com".into(),
        title_template: None,
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
async fn a_title_template_makes_the_header() {
    let (fake, url) = start().await;
    let template = "{status} {rule_id} on {subject} (team {labels.team|-}, severity {severity_id})";
    let mut sink =
        SlackSink::new(SlackConfig { title_template: Some(template.parse().unwrap()), ..config(&url) }).unwrap();
    let mut labelled = violation(ViolationStatus::Open);
    labelled.labels.insert("team".into(), "iam".into());
    let batch = vec![violation_record(0, &labelled), violation_record(1, &violation(ViolationStatus::Resolved))];
    assert_eq!(sink.deliver(&batch).await.unwrap(), vec![]);
    let received: Vec<Value> = fake.received.lock().unwrap().iter().map(|(_, m)| m.clone()).collect();
    assert_eq!(
        received[0]["blocks"][0]["text"]["text"],
        "OPEN okta.mfa_disabled on alice <admin> (team iam, severity 4)"
    );
    assert_eq!(
        received[1]["blocks"][0]["text"]["text"],
        "RESOLVED okta.mfa_disabled on alice <admin> (team -, severity 4)"
    );
    // Only the header: the notification text and the fields are as without a template.
    assert_eq!(received[0]["text"], "OPEN okta.mfa_disabled: MFA disabled for alice");
    assert_eq!(received[0]["blocks"][1]["fields"][1]["text"], "*Status*\nOPEN");
    // A bad template is a config error, with the character it is at.
    let e = toml::from_str::<SlackConfig>("webhook_url = \"https://h\"\ntitle_template = \"{rule_id\"").unwrap_err();
    assert!(e.to_string().contains("unclosed `{`") && e.to_string().contains("character 1"), "{e}");
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
    assert!(toml::from_str::<SlackConfig>("webhook_url = \"http://x\"\nusername = \"weir\"").is_err());
    // A webhook's channel is fixed: setting one is refused rather than silently ignored.
    let with_channel: SlackConfig = toml::from_str("webhook_url = \"http://x\"\nchannel = \"#sec\"").unwrap();
    assert_eq!(SlackSink::new(with_channel).unwrap_err().key, "channel");
    let err = SlackSink::new(SlackConfig { webhook_url: Some(Secret::new("not a url secret")), ..cfg }).unwrap_err();
    assert_eq!(err.key, "webhook_url");
    assert!(!err.to_string().contains("not a url secret"));
}

// ---- API mode: chat.postMessage ----

const TOKEN: &str = "xoxb-1111-2222-TOKENsecretTOKEN";
const CHANNEL: &str = "C0SECURITY";

/// A fake `chat.postMessage`: checks the bearer token (`invalid_auth`) and the channel
/// (`channel_not_found`) like Slack, answering HTTP 200 either way; scripted answers (status,
/// JSON or text body, Retry-After) come first. `posted` holds what was posted.
#[derive(Default)]
struct FakeApi {
    script: Mutex<VecDeque<(u16, String, Option<&'static str>)>>,
    received: Mutex<Vec<(Instant, Value)>>,
    posted: Mutex<Vec<Value>>,
}

async fn post_message(State(fake): State<Arc<FakeApi>>, headers: HeaderMap, body: Bytes) -> Response {
    let ok_false = |error: &str| (StatusCode::OK, json!({"ok": false, "error": error}).to_string()).into_response();
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
        return ok_false("invalid_auth");
    }
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return ok_false("invalid_json");
    };
    fake.received.lock().unwrap().push((Instant::now(), message.clone()));
    if let Some((status, text, retry_after)) = fake.script.lock().unwrap().pop_front() {
        let mut response = (StatusCode::from_u16(status).unwrap(), text).into_response();
        if let Some(value) = retry_after {
            response.headers_mut().insert("retry-after", value.parse().unwrap());
        }
        return response;
    }
    if message["channel"] != CHANNEL {
        return ok_false("channel_not_found");
    }
    if !message["text"].is_string() && !message["blocks"].is_array() {
        return ok_false("no_text");
    }
    let ts = format!("1712345678.{:06}", fake.posted.lock().unwrap().len());
    fake.posted.lock().unwrap().push(message);
    let answer = json!({"ok": true, "channel": CHANNEL, "ts": ts, "message": {"ts": ts}});
    (StatusCode::OK, answer.to_string()).into_response()
}

async fn start_api() -> (Arc<FakeApi>, String) {
    let fake = Arc::new(FakeApi::default());
    let addr = serve(Router::new().route("/api/chat.postMessage", post(post_message)).with_state(fake.clone())).await;
    (fake, format!("http://{addr}"))
}

fn api_config(base_url: &str, token: &str) -> SlackConfig {
    SlackConfig {
        mode: SlackMode::Api,
        webhook_url: None,
        token: Some(Secret::new(token)),
        channel: Some(CHANNEL.into()),
        base_url: base_url.into(),
        title_template: None,
        request: RequestConfig { circuit_breaker_failures: 0, ..RequestConfig::default() },
    }
}

fn lifecycle() -> Vec<StoredRecord> {
    [ViolationStatus::Open, ViolationStatus::Updated, ViolationStatus::Resolved]
        .iter()
        .enumerate()
        .map(|(i, status)| violation_record(i as u64, &violation(*status)))
        .collect()
}

fn status_of(message: &Value) -> String {
    message["blocks"][1]["fields"][1]["text"].as_str().unwrap().trim_start_matches("*Status*\n").to_string()
}

fn assert_no_token(text: &str) {
    assert!(!text.contains(TOKEN) && !text.contains("TOKENsecretTOKEN"), "{text}");
}

#[tokio::test]
async fn api_mode_posts_open_then_threads_updated_and_resolved_under_it() {
    let (fake, base) = start_api().await;
    let mut sink = SlackSink::new(api_config(&base, TOKEN)).unwrap();
    assert_eq!(sink.deliver(&lifecycle()).await.unwrap(), vec![]);
    let posted = fake.posted.lock().unwrap().clone();
    assert_eq!(posted.iter().map(status_of).collect::<Vec<_>>(), ["OPEN", "UPDATED", "RESOLVED"]);
    let open = &posted[0];
    assert_eq!(open["channel"], CHANNEL);
    assert_eq!(open["unfurl_links"], false);
    assert_eq!(open["text"], "OPEN okta.mfa_disabled: MFA disabled for alice");
    assert_eq!(open["blocks"][0]["type"], "header", "the same Block Kit message as the webhook");
    assert!(open.get("thread_ts").is_none(), "the OPEN message starts the thread");
    // The fake answers ts 1712345678.000000 for the first message.
    assert_eq!(posted[1]["thread_ts"], "1712345678.000000");
    assert!(posted[1].get("reply_broadcast").is_none());
    assert_eq!(posted[2]["thread_ts"], "1712345678.000000");
    assert_eq!(posted[2]["reply_broadcast"], true, "the resolution shows in the channel");

    // Resolved: the same key opening again starts a new thread.
    let again = vec![violation_record(3, &violation(ViolationStatus::Open))];
    assert_eq!(sink.deliver(&again).await.unwrap(), vec![]);
    assert!(fake.posted.lock().unwrap()[3].get("thread_ts").is_none());

    // A sink that restarted knows no thread: the update is a message of its own, which then
    // threads what follows.
    let mut restarted = SlackSink::new(api_config(&base, TOKEN)).unwrap();
    let later = vec![
        violation_record(4, &violation(ViolationStatus::Updated)),
        violation_record(5, &violation(ViolationStatus::Resolved)),
    ];
    assert_eq!(restarted.deliver(&later).await.unwrap(), vec![]);
    let posted = fake.posted.lock().unwrap().clone();
    assert!(posted[4].get("thread_ts").is_none());
    assert_eq!(posted[5]["thread_ts"], "1712345678.000004");
}

#[tokio::test]
async fn api_mode_honours_retry_after_on_429_without_loss_or_duplicate() {
    let (fake, base) = start_api().await;
    fake.script.lock().unwrap().push_back((429, String::new(), Some("1")));
    let mut sink = SlackSink::new(api_config(&base, TOKEN)).unwrap();
    let outcome = deliver_like_the_runner(&mut sink, &lifecycle()).await;
    assert!(outcome.dead.is_empty());
    assert!(
        outcome.reasons[0].contains("429") && outcome.reasons[0].contains("retry after 1s"),
        "{:?}",
        outcome.reasons
    );
    let posted = fake.posted.lock().unwrap().clone();
    assert_eq!(posted.iter().map(status_of).collect::<Vec<_>>(), ["OPEN", "UPDATED", "RESOLVED"], "each once");
    let received = fake.received.lock().unwrap().clone();
    assert_eq!(received.len(), 4);
    assert_eq!(received[0].1, received[1].1, "the retry is the same message");
    assert!(received[1].0 - received[0].0 >= Duration::from_millis(900), "held for Retry-After");
}

#[tokio::test]
async fn api_mode_retries_a_burst_of_5xx_and_ok_false_ratelimited() {
    let (fake, base) = start_api().await;
    let ratelimited = json!({"ok": false, "error": "ratelimited"}).to_string();
    fake.script.lock().unwrap().extend([
        (500, "upstream error".to_string(), None),
        (503, "service unavailable".to_string(), None),
        (200, ratelimited, Some("1")),
        (200, "<html>captive portal</html>".to_string(), None),
    ]);
    let mut sink = SlackSink::new(api_config(&base, TOKEN)).unwrap();
    let outcome = deliver_like_the_runner(&mut sink, &lifecycle()).await;
    assert!(outcome.dead.is_empty());
    assert_eq!(outcome.reasons.len(), 4, "{:?}", outcome.reasons);
    assert!(outcome.reasons[2].contains("error ratelimited") && outcome.reasons[2].contains("retry after 1s"));
    assert!(outcome.reasons[3].contains("without \"ok\""), "{:?}", outcome.reasons);
    let received = fake.received.lock().unwrap().clone();
    assert!(received[3].0 - received[2].0 >= Duration::from_millis(900), "ratelimited in a 200 honours Retry-After");
    let posted = fake.posted.lock().unwrap().clone();
    assert_eq!(posted.iter().map(status_of).collect::<Vec<_>>(), ["OPEN", "UPDATED", "RESOLVED"]);
}

#[tokio::test]
async fn api_mode_dead_letters_messages_slack_refuses() {
    let (fake, base) = start_api().await;
    let refusals = ["channel_not_found", "is_archived", "msg_too_long", "invalid_blocks"];
    for error in refusals {
        let body = json!({"ok": false, "error": error, "response_metadata": {"messages": ["[ERROR] detail"]}});
        fake.script.lock().unwrap().push_back((200, body.to_string(), None));
    }
    let mut sink = SlackSink::new(api_config(&base, TOKEN)).unwrap();
    let batch: Vec<_> = (0..5).map(|i| record(i, r#"{"n":1}"#)).collect();
    let failures = sink.deliver(&batch).await.unwrap();
    assert_eq!(
        failures.iter().map(|f| (f.index, f.retryable)).collect::<Vec<_>>(),
        [(0, false), (1, false), (2, false), (3, false)]
    );
    for (failure, error) in failures.iter().zip(refusals) {
        assert!(
            failure.reason.contains(&format!("error {error}")) && failure.reason.contains("[ERROR] detail"),
            "{}",
            failure.reason
        );
        assert_no_token(&failure.reason);
    }
    assert_eq!(fake.posted.lock().unwrap().len(), 1, "the fifth was posted");
}

#[tokio::test]
async fn api_mode_stops_on_a_refused_token_without_showing_it() {
    let (fake, base) = start_api().await;
    // A wrong token: the fake answers 200 {"ok":false,"error":"invalid_auth"} like Slack.
    let wrong = "xoxb-9999-WRONGsecretWRONG";
    let cfg = api_config(&base, wrong);
    let mut sink = SlackSink::new(cfg.clone()).unwrap();
    let err = sink.deliver(&lifecycle()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(err.message.contains("invalid_auth") && err.message.contains("chat:write"), "{}", err.message);
    let mut messages = vec![err.message, format!("{cfg:?}"), format!("{sink:?}")];
    // Each fatal error code, with a server that echoes the token back, and a 401.
    let echo = format!("token {TOKEN} refused");
    for error in ["not_authed", "account_inactive", "token_revoked", "missing_scope"] {
        let body = json!({"ok": false, "error": error, "warning": echo});
        fake.script.lock().unwrap().push_back((200, body.to_string(), None));
    }
    fake.script.lock().unwrap().push_back((401, echo.clone(), None));
    let mut sink = SlackSink::new(api_config(&base, TOKEN)).unwrap();
    for expected in ["not_authed", "account_inactive", "token_revoked", "missing_scope", "401"] {
        let err = sink.deliver(&lifecycle()[..1]).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Fatal, "{expected}");
        assert!(err.message.contains(expected), "{}", err.message);
        messages.push(err.message);
    }
    messages.iter().for_each(|m| {
        assert_no_token(m);
        assert!(!m.contains("WRONGsecret"), "{m}");
    });
    assert!(fake.posted.lock().unwrap().is_empty());
}

#[test]
fn ok_false_errors_are_classified() {
    for (error, class) in [
        ("ratelimited", FailureClass::Retryable),
        ("internal_error", FailureClass::Retryable),
        ("invalid_auth", FailureClass::Fatal),
        ("not_authed", FailureClass::Fatal),
        ("account_inactive", FailureClass::Fatal),
        ("token_revoked", FailureClass::Fatal),
        ("missing_scope", FailureClass::Fatal),
        ("channel_not_found", FailureClass::Permanent),
        ("is_archived", FailureClass::Permanent),
        ("msg_too_long", FailureClass::Permanent),
        ("invalid_blocks", FailureClass::Permanent),
        ("something_new", FailureClass::Permanent),
    ] {
        assert_eq!(classify_api_error(error), class, "{error}");
    }
}

#[test]
fn api_config_needs_a_token_and_a_channel_and_no_webhook_url() {
    let cfg: SlackConfig =
        toml::from_str("mode = \"api\"\ntoken = \"xoxb-1\"\nchannel = \"C01\"\n[request]\nrate_limit_per_sec = 1\n")
            .unwrap();
    assert_eq!(cfg.mode, SlackMode::Api);
    assert_eq!(cfg.base_url, "https://slack.com");
    SlackSink::new(cfg.clone()).unwrap();
    let webhook: SlackConfig = toml::from_str("webhook_url = \"https://hooks.slack.com/services/T/B/x\"").unwrap();
    assert_eq!(webhook.mode, SlackMode::Webhook);
    assert!(toml::from_str::<SlackConfig>("mode = \"rtm\"").is_err());
    let cases = [
        (SlackConfig { token: None, ..cfg.clone() }, "token"),
        (SlackConfig { token: Some(Secret::new(" ")), ..cfg.clone() }, "token"),
        (SlackConfig { channel: None, ..cfg.clone() }, "channel"),
        (SlackConfig { webhook_url: Some(Secret::new("https://h")), ..cfg.clone() }, "webhook_url"),
        (SlackConfig { base_url: "ftp://slack.com".into(), ..cfg.clone() }, "base_url"),
        (SlackConfig { mode: SlackMode::Webhook, ..cfg.clone() }, "token"),
        (SlackConfig { mode: SlackMode::Webhook, token: None, channel: None, ..cfg }, "webhook_url"),
    ];
    for (config, key) in cases {
        assert_eq!(SlackSink::new(config).unwrap_err().key, key);
    }
}

#[tokio::test]
async fn a_windows_digest_records_are_one_message_and_other_records_are_as_before() {
    use crate::chat::test_records::{dead_letter_record, digest, digest_record};
    let (fake, url) = start().await;
    // A title template is written against a violation's fields: it leaves digests alone.
    let template = "{status} [{rule_id}] {summary}".parse().unwrap();
    let mut sink = SlackSink::new(SlackConfig { title_template: Some(template), ..config(&url) }).unwrap();
    let mut for_alice = digest("total", 5, 0);
    for_alice.key = "alice@example.com".into();
    let batch = vec![
        digest_record(0, &digest("top.violators", 42, 12)),
        dead_letter_record(1),
        digest_record(2, &digest("total", 50, 0)),
        digest_record(3, &for_alice),
        digest_record(4, &digest("decisions.DENY", 7, 0)),
    ];
    assert_eq!(sink.deliver(&batch).await.unwrap(), vec![]);
    let received: Vec<Value> = fake.received.lock().unwrap().iter().map(|(_, m)| m.clone()).collect();
    assert_eq!(received.len(), 3, "one message for the window's digest, one per other record: {received:?}");
    let digest_message = &received[0];
    assert_eq!(
        digest_message["text"],
        "Digest digest: total 50, decisions.DENY 7, 2024-05-02T00:00:00.000Z – 2024-05-03T00:00:00.000Z"
    );
    assert_eq!(
        digest_message["blocks"][0],
        json!({"type": "header", "text": {"type": "plain_text", "text": "Digest digest", "emoji": false}})
    );
    assert_eq!(
        digest_message["blocks"][1]["fields"],
        json!([
            {"type": "mrkdwn", "text": "*Window start*\n2024-05-02T00:00:00.000Z"},
            {"type": "mrkdwn", "text": "*Window end*\n2024-05-03T00:00:00.000Z"},
            {"type": "mrkdwn", "text": "*total*\n50"},
            {"type": "mrkdwn", "text": "*decisions.DENY*\n7"},
        ])
    );
    let list = digest_message["blocks"][2]["text"]["text"].as_str().unwrap();
    assert!(
        list.starts_with("*Top top.violators*\n1. `user0@example.com` — 20\n2. `user1@example.com` — 19\n"),
        "{list}"
    );
    assert!(list.ends_with("10. `user9@example.com` — 11\n… and 2 more"), "{list}");
    let context = "Digest id: `digest/1714608000000/1714694400000/top.violators/1/`";
    assert_eq!(digest_message["blocks"][3]["elements"][0]["text"], context);
    // Neither a Violation nor a WindowAggregate: its JSON as plain text, as before.
    assert!(received[1].get("blocks").is_none());
    assert!(received[1]["text"].as_str().unwrap().contains("\"component\":\"normalize\""), "{}", received[1]);
    // Another group key is another message; one metric keeps the one-metric layout.
    let alice = &received[2];
    assert_eq!(alice["blocks"][0]["text"]["text"], "Digest digest: total for alice@example.com");
    assert_eq!(alice["blocks"][1]["fields"][2]["text"], "*Count*\n5");
    assert_eq!(alice["blocks"].as_array().unwrap().len(), 3, "no top list without top items");
}

#[tokio::test]
async fn a_failed_digest_message_fails_every_record_it_stands_for() {
    use crate::chat::test_records::{digest, digest_record};
    let (fake, url) = start().await;
    fake.script.lock().unwrap().push_back((400, "invalid_blocks", None));
    let mut sink = SlackSink::new(config(&url)).unwrap();
    let batch = vec![digest_record(0, &digest("total", 50, 0)), digest_record(1, &digest("decisions.DENY", 7, 0))];
    let failures = sink.deliver(&batch).await.unwrap();
    assert_eq!(failures.iter().map(|f| (f.index, f.retryable)).collect::<Vec<_>>(), vec![(0, false), (1, false)]);
}

#[tokio::test]
async fn api_mode_posts_a_digest_to_the_channel_without_unknown_fields() {
    use crate::chat::test_records::{digest, digest_record};
    let (fake, base) = start_api().await;
    let mut sink = SlackSink::new(api_config(&base, TOKEN)).unwrap();
    assert_eq!(sink.deliver(&[digest_record(0, &digest("total", 99, 0))]).await.unwrap(), vec![]);
    let posted = fake.posted.lock().unwrap().clone();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0]["channel"], CHANNEL);
    assert_eq!(posted[0]["blocks"][1]["fields"][2]["text"], "*Count*\n99");
    // chat.postMessage has no idempotency key: nothing made up is sent in its place.
    let mut keys: Vec<&str> = posted[0].as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["blocks", "channel", "text", "unfurl_links", "unfurl_media"]);
}
