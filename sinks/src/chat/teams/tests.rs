//! The Teams sink against a fake Workflows / connector webhook on 127.0.0.1.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use weir_schemas::component::{ErrorKind, Sink};
use weir_schemas::events::{Violation, ViolationStatus};
use weir_schemas::{Record, StoredRecord};

use super::message::{severity_color, violation_link, ADAPTIVE_CARD};
use super::{TeamsConfig, TeamsKind, TeamsSink, DEFAULT_MAX_MESSAGE_BYTES};
use crate::http::{RequestConfig, Secret};
use crate::test_support::{deliver_like_the_runner, record, serve};

const FLOW_PATH: &str = "/workflows/0f1e2d3c4b5a69788796a5b4c3d2e1f0/triggers/manual/paths/invoke";
const SIG: &str = "SIGsecretSIGsecretSIG0123456789abcdef";

const THROTTLED: &str = "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 \
                         with ContextId tcid=0,server=msgapi-production-eus-azsc2-4-170,cv=deadbeef";

/// A fake Teams webhook: scripted answers (status, body, Retry-After) first, then Teams' own
/// checks (401 without the right `sig`, 400 for a body that is not an Adaptive Card message) and
/// success — 202 for Workflows, 200 `1` for a connector. `accepted` holds what was posted.
struct FakeTeams {
    kind: TeamsKind,
    script: Mutex<VecDeque<(u16, String, Option<&'static str>)>>,
    received: Mutex<Vec<(Instant, Value)>>,
    accepted: Mutex<Vec<Value>>,
}

async fn hook(State(fake): State<Arc<FakeTeams>>, RawQuery(query): RawQuery, body: Bytes) -> Response {
    if !query.unwrap_or_default().contains(&format!("sig={SIG}")) {
        let error = json!({"error": {"code": "DirectApiAuthorizationRequired", "message": "The request must be authenticated"}});
        return (StatusCode::UNAUTHORIZED, error.to_string()).into_response();
    }
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "InvalidRequestContent: the body is not JSON").into_response();
    };
    fake.received.lock().unwrap().push((Instant::now(), message.clone()));
    if let Some((status, text, retry_after)) = fake.script.lock().unwrap().pop_front() {
        let mut response = (StatusCode::from_u16(status).unwrap(), text).into_response();
        if let Some(value) = retry_after {
            response.headers_mut().insert("retry-after", value.parse().unwrap());
        }
        return response;
    }
    let attachment = &message["attachments"][0];
    if message["type"] != "message"
        || attachment["contentType"] != ADAPTIVE_CARD
        || attachment["content"]["type"] != "AdaptiveCard"
    {
        return (StatusCode::BAD_REQUEST, "Bad payload: expected an Adaptive Card message").into_response();
    }
    fake.accepted.lock().unwrap().push(message);
    match fake.kind {
        TeamsKind::Workflows => StatusCode::ACCEPTED.into_response(),
        TeamsKind::Connector => (StatusCode::OK, "1").into_response(),
    }
}

async fn start(kind: TeamsKind) -> (Arc<FakeTeams>, String) {
    let fake =
        Arc::new(FakeTeams { kind, script: Mutex::default(), received: Mutex::default(), accepted: Mutex::default() });
    let addr = serve(Router::new().route(FLOW_PATH, post(hook)).with_state(fake.clone())).await;
    (fake, format!("http://{addr}{FLOW_PATH}?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SIG}"))
}

fn config(url: &str, kind: TeamsKind) -> TeamsConfig {
    TeamsConfig {
        url: Secret::new(url),
        kind,
        max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        title_template: None,
        body_template: None,
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
        subject: "alice@example.com".into(),
        event_uid: "evt-1".into(),
        labels: BTreeMap::from([
            ("team".to_string(), "iam".to_string()),
            ("runbook".to_string(), "https://wiki.example.com/runbooks/mfa".to_string()),
        ]),
        summary: "MFA disabled for alice".into(),
    }
}

fn violation_record(i: u64, violation: &Violation) -> StoredRecord {
    StoredRecord {
        topic: "decisions.violations".into(),
        partition: 0,
        offset: i,
        record: Record::new(1_714_675_581_121, weir_schemas::encode(violation).unwrap()),
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
    let facts = message["attachments"][0]["content"]["body"][2]["facts"].as_array().unwrap();
    facts.iter().find(|f| f["title"] == "Status").unwrap()["value"].as_str().unwrap().to_string()
}

fn assert_no_secret(text: &str) {
    assert!(!text.contains(SIG) && !text.contains("0f1e2d3c4b5a69788796a5b4c3d2e1f0"), "{text}");
}

#[tokio::test]
async fn open_updated_resolved_are_one_adaptive_card_each() {
    let (fake, url) = start(TeamsKind::Workflows).await;
    let mut sink = TeamsSink::new(config(&url, TeamsKind::Workflows)).unwrap();
    assert_eq!(sink.deliver(&lifecycle()).await.unwrap(), vec![]);
    let accepted = fake.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 3);
    assert_eq!(accepted.iter().map(status_of).collect::<Vec<_>>(), ["OPEN", "UPDATED", "RESOLVED"]);

    let open = &accepted[0];
    assert_eq!(open["type"], "message");
    let attachment = &open["attachments"][0];
    assert_eq!(attachment["contentType"], "application/vnd.microsoft.card.adaptive");
    let card = &attachment["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    let banner = &card["body"][0];
    assert_eq!(banner["style"], "attention", "high severity");
    assert_eq!(banner["items"][0]["text"], "HIGH · OPEN");
    assert_eq!(banner["items"][0]["color"], "attention");
    assert_eq!(banner["items"][1]["text"], "[okta.mfa_disabled] MFA disabled for alice");
    assert_eq!(card["body"][1]["text"], "MFA must stay enabled");
    assert_eq!(
        card["body"][2]["facts"],
        json!([
            {"title": "Severity", "value": "high (4)"},
            {"title": "Status", "value": "OPEN"},
            {"title": "Rule", "value": "okta.mfa_disabled"},
            {"title": "User", "value": "alice@example.com"},
            {"title": "Violation key", "value": "okta.mfa_disabled/alice"},
            {"title": "First seen", "value": "2024-05-02T18:46:21.121Z"},
            {"title": "Last seen", "value": "2024-05-02T18:48:01.121Z"},
            {"title": "Label runbook", "value": "https://wiki.example.com/runbooks/mfa"},
            {"title": "Label team", "value": "iam"},
        ])
    );
    assert_eq!(
        card["actions"],
        json!([{"type": "Action.OpenUrl", "title": "Open", "url": "https://wiki.example.com/runbooks/mfa"}])
    );
    let resolved = &accepted[2]["attachments"][0]["content"]["body"][0];
    assert_eq!(resolved["style"], "good", "resolved shows green");
    assert_eq!(resolved["items"][0]["text"], "HIGH · RESOLVED");
}

#[tokio::test]
async fn title_and_body_templates_replace_the_title_and_description() {
    let (fake, url) = start(TeamsKind::Workflows).await;
    let cfg = TeamsConfig {
        title_template: Some("{rule_id} on {subject} ({labels.team|-})".parse().unwrap()),
        body_template: Some(
            "{rule_description}. Runbook: {labels.runbook}; owner {labels.owner|unknown}".parse().unwrap(),
        ),
        ..config(&url, TeamsKind::Workflows)
    };
    let mut sink = TeamsSink::new(cfg).unwrap();
    assert_eq!(sink.deliver(&lifecycle()[..1]).await.unwrap(), vec![]);
    let accepted = fake.accepted.lock().unwrap().clone();
    let card = &accepted[0]["attachments"][0]["content"];
    assert_eq!(card["body"][0]["items"][1]["text"], "okta.mfa_disabled on alice@example.com (iam)");
    assert_eq!(
        card["body"][1]["text"],
        "MFA must stay enabled. Runbook: https://wiki.example.com/runbooks/mfa; owner unknown"
    );
    assert_eq!(status_of(&accepted[0]), "OPEN", "the facts are as without templates");
}

#[tokio::test]
async fn a_connector_answering_1_delivers_and_plain_records_become_text_cards() {
    let (fake, url) = start(TeamsKind::Connector).await;
    let mut sink = TeamsSink::new(config(&url, TeamsKind::Connector)).unwrap();
    let batch = [record(0, r#"{"plain":"record"}"#)];
    assert_eq!(sink.deliver(&batch).await.unwrap(), vec![]);
    let accepted = fake.accepted.lock().unwrap().clone();
    let body = &accepted[0]["attachments"][0]["content"]["body"];
    assert_eq!(body[1]["text"], r#"{"plain":"record"}"#);
    assert_eq!(body[1]["fontType"], "Monospace");
    assert!(accepted[0]["attachments"][0]["content"].get("actions").is_none(), "no link, no button");
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_without_loss_or_duplicate() {
    let (fake, url) = start(TeamsKind::Workflows).await;
    fake.script.lock().unwrap().push_back((429, "Rate limit is exceeded. Try again in 1 seconds.".into(), Some("1")));
    let mut sink = TeamsSink::new(config(&url, TeamsKind::Workflows)).unwrap();
    let outcome = deliver_like_the_runner(&mut sink, &lifecycle()).await;
    assert!(outcome.dead.is_empty());
    assert!(
        outcome.reasons[0].contains("429") && outcome.reasons[0].contains("retry after 1s"),
        "{:?}",
        outcome.reasons
    );
    let accepted = fake.accepted.lock().unwrap().clone();
    assert_eq!(accepted.iter().map(status_of).collect::<Vec<_>>(), ["OPEN", "UPDATED", "RESOLVED"], "each once");
    let received = fake.received.lock().unwrap().clone();
    assert_eq!(received.len(), 4, "the 429, then the three");
    assert_eq!(received[0].1, received[1].1, "the retry is the same card");
    assert!(received[1].0 - received[0].0 >= Duration::from_millis(900), "held for Retry-After");
    outcome.reasons.iter().for_each(|r| assert_no_secret(r));
}

#[tokio::test]
async fn a_connectors_429_inside_a_200_body_is_retried() {
    let (fake, url) = start(TeamsKind::Connector).await;
    fake.script.lock().unwrap().push_back((200, THROTTLED.into(), None));
    let mut sink = TeamsSink::new(config(&url, TeamsKind::Connector)).unwrap();
    let outcome = deliver_like_the_runner(&mut sink, &lifecycle()).await;
    assert!(outcome.dead.is_empty());
    assert!(
        outcome.reasons[0].contains("did not post") && outcome.reasons[0].contains("HTTP error 429"),
        "{:?}",
        outcome.reasons
    );
    let accepted = fake.accepted.lock().unwrap().clone();
    assert_eq!(accepted.iter().map(status_of).collect::<Vec<_>>(), ["OPEN", "UPDATED", "RESOLVED"]);
    assert_eq!(fake.received.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn a_burst_of_5xx_is_retried_in_order() {
    let (fake, url) = start(TeamsKind::Workflows).await;
    fake.script.lock().unwrap().extend([
        (500, "InternalServerError".to_string(), None),
        (502, "Bad Gateway".to_string(), None),
        (503, "ServiceUnavailable".to_string(), None),
    ]);
    let mut sink = TeamsSink::new(config(&url, TeamsKind::Workflows)).unwrap();
    let outcome = deliver_like_the_runner(&mut sink, &lifecycle()).await;
    assert!(outcome.dead.is_empty());
    assert_eq!(outcome.reasons.len(), 3, "{:?}", outcome.reasons);
    assert!(outcome.reasons[2].contains("503"), "{:?}", outcome.reasons);
    let accepted = fake.accepted.lock().unwrap().clone();
    assert_eq!(accepted.iter().map(status_of).collect::<Vec<_>>(), ["OPEN", "UPDATED", "RESOLVED"]);
    assert_eq!(fake.received.lock().unwrap().len(), 6);
}

#[tokio::test]
async fn rejected_and_oversized_messages_are_dead_lettered_with_the_reason() {
    let (fake, url) = start(TeamsKind::Workflows).await;
    fake.script.lock().unwrap().push_back((400, "Bad payload: AdaptiveCard version 9.9 is not supported".into(), None));
    let mut sink = TeamsSink::new(config(&url, TeamsKind::Workflows)).unwrap();
    // 16,000 four-byte characters: cut to the 16,000-character cap, still 64 KB.
    let huge = record(1, &format!("{{\"blob\":\"{}\"}}", "😀".repeat(20_000)));
    let batch = vec![violation_record(0, &violation(ViolationStatus::Open)), huge, record(2, r#"{"fine":true}"#)];
    let failures = sink.deliver(&batch).await.unwrap();
    assert_eq!(failures.iter().map(|f| (f.index, f.retryable)).collect::<Vec<_>>(), [(0, false), (1, false)]);
    assert!(failures[0].reason.contains("400") && failures[0].reason.contains("9.9"), "{}", failures[0].reason);
    assert!(
        failures[1].reason.contains("over max_message_bytes = 28000") && failures[1].reason.contains("not sent"),
        "{}",
        failures[1].reason
    );
    assert_eq!(fake.received.lock().unwrap().len(), 2, "no request for the oversized one");
    assert_eq!(fake.accepted.lock().unwrap().len(), 1);
    failures.iter().for_each(|f| assert_no_secret(&f.reason));
}

#[tokio::test]
async fn a_failure_quoted_in_a_200_other_than_throttling_is_dead_lettered() {
    let (fake, url) = start(TeamsKind::Connector).await;
    let text = "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 413";
    fake.script.lock().unwrap().push_back((200, text.into(), None));
    let mut sink = TeamsSink::new(config(&url, TeamsKind::Connector)).unwrap();
    let failures = sink.deliver(&[violation_record(0, &violation(ViolationStatus::Open))]).await.unwrap();
    assert_eq!(failures.len(), 1);
    assert!(!failures[0].retryable && failures[0].reason.contains("HTTP error 413"), "{:?}", failures[0]);
}

#[tokio::test]
async fn a_wrong_or_removed_url_is_fatal_without_showing_it() {
    let (fake, url) = start(TeamsKind::Workflows).await;
    let echo: &'static str = Box::leak(format!("no workflow at {FLOW_PATH} (sig {SIG})").into_boxed_str());
    fake.script.lock().unwrap().extend([(404, echo.to_string(), None), (403, echo.to_string(), None)]);
    let cfg = config(&url, TeamsKind::Workflows);
    let mut sink = TeamsSink::new(cfg.clone()).unwrap();
    let batch = [violation_record(0, &violation(ViolationStatus::Open))];
    let mut messages = Vec::new();
    for expected in ["404", "403"] {
        let err = sink.deliver(&batch).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Fatal);
        assert!(err.message.contains(expected), "{}", err.message);
        messages.push(err.message);
    }
    // The fake itself answers 401 to a URL without the right signature.
    let wrong = url.replace(SIG, "SIGwrongSIGwrongSIGwrong0000000000000");
    let mut sink_wrong = TeamsSink::new(config(&wrong, TeamsKind::Workflows)).unwrap();
    let err = sink_wrong.deliver(&batch).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(err.message.contains("401") && err.message.contains("DirectApiAuthorizationRequired"), "{}", err.message);
    assert!(!err.message.contains("SIGwrongSIGwrong"), "{}", err.message);
    messages.extend([err.message, format!("{cfg:?}"), format!("{sink:?}")]);
    messages.iter().for_each(|m| assert_no_secret(m));
}

#[tokio::test]
async fn an_unreachable_webhook_is_retryable_without_showing_the_url() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{FLOW_PATH}?sig={SIG}", listener.local_addr().unwrap());
    drop(listener);
    let mut sink = TeamsSink::new(config(&url, TeamsKind::Workflows)).unwrap();
    let err = sink.deliver(&[record(0, "{}")]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Retryable);
    assert_no_secret(&err.message);
}

#[tokio::test]
async fn a_connector_is_paced_to_two_requests_a_second_by_default() {
    let (fake, url) = start(TeamsKind::Connector).await;
    let mut sink = TeamsSink::new(config(&url, TeamsKind::Connector)).unwrap();
    let batch: Vec<_> = (0..3).map(|i| record(i, "{}")).collect();
    assert_eq!(sink.deliver(&batch).await.unwrap(), vec![]);
    let received = fake.received.lock().unwrap().clone();
    assert!(received[2].0 - received[0].0 >= Duration::from_millis(400), "the third waited for a token");
}

#[test]
fn colours_and_links() {
    let colours: Vec<_> = (0..=6).map(severity_color).collect();
    assert_eq!(colours, ["default", "default", "accent", "warning", "attention", "attention", "attention"]);
    let mut v = violation(ViolationStatus::Open);
    v.labels = BTreeMap::from([("link".to_string(), "javascript:alert(1)".to_string())]);
    assert_eq!(violation_link(&v), None, "only http(s) links become buttons");
    v.labels.insert("url".into(), "https://console.example.com/v/1".into());
    assert_eq!(violation_link(&v).as_deref(), Some("https://console.example.com/v/1"));
}

#[test]
fn config_reads_from_toml_and_refuses_bad_values_without_showing_the_url() {
    let cfg: TeamsConfig = toml::from_str("url = \"https://x.logic.azure.com/workflows/1?sig=abc\"\n").unwrap();
    assert_eq!(cfg.kind, TeamsKind::Workflows);
    assert_eq!(cfg.max_message_bytes, 28_000);
    let connector: TeamsConfig = toml::from_str("url = \"https://x\"\nkind = \"connector\"\n").unwrap();
    assert_eq!(connector.kind, TeamsKind::Connector);
    assert!(toml::from_str::<TeamsConfig>("url = \"https://x\"\nkind = \"o365\"").is_err());
    assert!(toml::from_str::<TeamsConfig>("url = \"https://x\"\nwebhook_url = \"https://y\"").is_err());
    let err = TeamsSink::new(TeamsConfig { url: Secret::new("not a url secret"), ..cfg.clone() }).unwrap_err();
    assert_eq!(err.key, "url");
    assert!(!err.to_string().contains("not a url secret"));
    let err = TeamsSink::new(TeamsConfig { max_message_bytes: 0, ..cfg }).unwrap_err();
    assert_eq!(err.key, "max_message_bytes");
}

#[tokio::test]
async fn a_windows_digest_records_are_one_card_and_other_records_are_as_before() {
    use crate::chat::test_records::{dead_letter_record, digest, digest_record};
    let (fake, url) = start(TeamsKind::Workflows).await;
    let mut sink = TeamsSink::new(config(&url, TeamsKind::Workflows)).unwrap();
    let mut violators = digest("top.violators", 42, 12);
    violators.late_events = 3;
    let mut for_alice = digest("decisions.DENY", 2, 0);
    for_alice.key = "alice@example.com".into();
    let batch = vec![
        digest_record(0, &violators),
        digest_record(1, &digest("decisions.DENY", 7, 0)),
        dead_letter_record(2),
        digest_record(3, &for_alice),
    ];
    assert_eq!(sink.deliver(&batch).await.unwrap(), vec![]);
    let accepted = fake.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 3, "one card for the window's digest, one per other record");
    let card = &accepted[0]["attachments"][0]["content"];
    assert_eq!(accepted[0]["attachments"][0]["contentType"], ADAPTIVE_CARD);
    assert_eq!(card["body"][0]["items"][0]["text"], "DIGEST");
    assert_eq!(card["body"][0]["items"][1]["text"], "Digest digest");
    assert_eq!(
        card["body"][1],
        json!({"type": "FactSet", "facts": [
            {"title": "Window start", "value": "2024-05-02T00:00:00.000Z"},
            {"title": "Window end", "value": "2024-05-03T00:00:00.000Z"},
            {"title": "decisions.DENY", "value": "7"},
            {"title": "Late events (not counted)", "value": "3"},
            {"title": "Digest id", "value": "digest/1714608000000/1714694400000/top.violators/1/"},
        ]})
    );
    assert_eq!(card["body"][2]["text"], "Top top.violators");
    let top = card["body"][3]["facts"].as_array().unwrap();
    assert_eq!(top.len(), 11, "ten items and how many more");
    assert_eq!(top[0], json!({"title": "user0@example.com", "value": "20"}));
    assert_eq!(top[10], json!({"title": "More", "value": "2"}));
    assert!(card.get("actions").is_none());
    // Neither a Violation nor a WindowAggregate: the JSON card, as before.
    let other = &accepted[1]["attachments"][0]["content"]["body"];
    assert_eq!(other[0]["text"], "Weir record");
    assert!(other[1]["text"].as_str().unwrap().contains("\"component\":\"normalize\""), "{other}");
    // Another group key: its own card, in the one-metric layout.
    let alice = &accepted[2]["attachments"][0]["content"]["body"];
    assert_eq!(alice[0]["items"][1]["text"], "Digest digest: decisions.DENY for alice@example.com");
    assert_eq!(alice[1]["facts"][2], json!({"title": "Count", "value": "2"}));
    assert_eq!(alice.as_array().unwrap().len(), 2, "no top list without top items");
}
