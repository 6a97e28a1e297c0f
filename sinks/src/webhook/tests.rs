//! The webhook sink against a fake receiver on 127.0.0.1 that verifies signatures itself.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use weir_schemas::component::{ErrorKind, Sink};

use super::sink::batch_id;
use super::{WebhookSink, WebhookSinkConfig};
use crate::http::{RequestConfig, Secret};
use crate::test_support::{deliver_like_the_runner, record, serve};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One request as received.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    legacy: Option<String>,
    body: Vec<u8>,
}

/// A fake receiver: records requests, answers scripted statuses (then 200).
#[derive(Default)]
struct Receiver {
    script: Mutex<VecDeque<(u16, &'static str)>>,
    received: Mutex<Vec<Received>>,
}

async fn hook(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_string());
    receiver.received.lock().unwrap().push(Received {
        id: header("webhook-id").unwrap(),
        timestamp: header("webhook-timestamp").unwrap(),
        signature: header("webhook-signature").unwrap_or_default(),
        legacy: header("x-signature"),
        body: body.to_vec(),
    });
    let (status, text) = receiver.script.lock().unwrap().pop_front().unwrap_or((200, "ok"));
    (StatusCode::from_u16(status).unwrap(), text).into_response()
}

async fn start() -> (Arc<Receiver>, String) {
    let receiver = Arc::new(Receiver::default());
    let addr = serve(Router::new().route("/hooks/weir", post(hook)).with_state(receiver.clone())).await;
    (receiver, format!("http://{addr}/hooks/weir"))
}

fn config(url: &str) -> WebhookSinkConfig {
    WebhookSinkConfig {
        url: Secret::new(url),
        secret: Some(Secret::new(SECRET)),
        legacy_signature: true,
        batch: false,
        batch_max_events: 100,
        gzip: false,
        request: RequestConfig { circuit_breaker_failures: 0, ..RequestConfig::default() },
    }
}

/// Verifies a request as a receiver would, written apart from the sink's signer: the key is the
/// base64-decoded part after `whsec_`, the content `{id}.{timestamp}.{body}`.
fn verify(request: &Received) {
    let key = base64::engine::general_purpose::STANDARD.decode(SECRET.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", request.id, request.timestamp).as_bytes());
    mac.update(&request.body);
    let signature = request.signature.strip_prefix("v1,").expect("a v1 signature");
    mac.verify_slice(&base64::engine::general_purpose::STANDARD.decode(signature).unwrap())
        .expect("signature verifies");
    let mut legacy = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    legacy.update(&request.body);
    let hex: String = legacy.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(request.legacy.as_deref(), Some(format!("sha256={hex}").as_str()));
    assert!(request.timestamp.parse::<i64>().unwrap() > 1_700_000_000, "unix seconds of the send");
}

#[tokio::test]
async fn signs_every_event_and_keeps_its_id_across_a_retry() {
    let (receiver, url) = start().await;
    receiver.script.lock().unwrap().push_back((500, "try later"));
    let mut sink = WebhookSink::new(config(&url)).unwrap();
    let batch = vec![record(0, r#"{"n":0}"#), record(1, r#"{"n":1}"#)];

    let outcome = deliver_like_the_runner(&mut sink, &batch).await;
    assert!(outcome.dead.is_empty());
    assert!(outcome.reasons[0].contains("500") && outcome.reasons[0].contains("try later"), "{:?}", outcome.reasons);

    let received = receiver.received.lock().unwrap().clone();
    assert_eq!(received.len(), 3, "one refused, then both");
    received.iter().for_each(verify);
    assert_eq!(received[0].id, received[1].id, "the retry carries the same webhook-id");
    assert_eq!(received[0].body, received[1].body);
    assert_ne!(received[1].id, received[2].id);
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(received[2].id.strip_prefix("msg_").unwrap());
    assert_eq!(id.unwrap(), b"raw.test/0/1");
    assert!(!received[2].id.contains('.'));
    assert_eq!(serde_json::from_slice::<Value>(&received[2].body).unwrap(), json!({"n": 1}));
    for reason in &outcome.reasons {
        assert!(!reason.contains(SECRET) && !reason.contains(&url), "{reason}");
    }
}

#[tokio::test]
async fn rejected_events_are_dead_lettered_with_the_receivers_answer() {
    let (receiver, url) = start().await;
    receiver.script.lock().unwrap().extend([(410, "subscription gone"), (400, "missing field `user`")]);
    let mut sink = WebhookSink::new(config(&url)).unwrap();
    let batch: Vec<_> = (0..3).map(|i| record(i, "{}")).collect();
    let failures = sink.deliver(&batch).await.unwrap();
    assert_eq!(failures.iter().map(|f| (f.index, f.retryable)).collect::<Vec<_>>(), [(0, false), (1, false)]);
    assert!(failures[0].reason.contains("410") && failures[0].reason.contains("subscription gone"));
    assert!(failures[1].reason.contains("400") && failures[1].reason.contains("missing field `user`"));
    assert_eq!(receiver.received.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn batch_mode_posts_arrays_with_an_id_stable_for_the_same_records() {
    let (receiver, url) = start().await;
    let mut sink = WebhookSink::new(WebhookSinkConfig { batch: true, batch_max_events: 2, ..config(&url) }).unwrap();
    let batch: Vec<_> = (0..3).map(|i| record(i, &format!("{{\"n\":{i}}}"))).collect();
    assert_eq!(sink.deliver(&batch).await.unwrap(), vec![]);
    let received = receiver.received.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    received.iter().for_each(verify);
    assert_eq!(serde_json::from_slice::<Value>(&received[0].body).unwrap(), json!([{"n": 0}, {"n": 1}]));
    assert_eq!(serde_json::from_slice::<Value>(&received[1].body).unwrap(), json!([{"n": 2}]));
    assert_eq!(received[0].id, batch_id(&batch[..2]));
    assert_eq!(received[1].id, batch_id(&batch[2..]));
}

#[tokio::test]
async fn refused_credentials_are_fatal_and_secrets_are_never_shown() {
    let (receiver, url) = start().await;
    receiver.script.lock().unwrap().push_back((401, "bad signature"));
    let cfg = config(&url);
    let mut sink = WebhookSink::new(cfg.clone()).unwrap();
    let err = sink.deliver(&[record(0, "{}")]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(err.message.contains("401"), "{}", err.message);
    for text in [err.message, format!("{cfg:?}"), format!("{sink:?}")] {
        assert!(!text.contains(SECRET) && !text.contains("MfKQ9r8G") && !text.contains(&url), "{text}");
    }
}

#[tokio::test]
async fn an_unreachable_receiver_is_retryable_without_showing_the_url() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/weir?token=abc-secret", listener.local_addr().unwrap());
    drop(listener);
    let mut sink = WebhookSink::new(config(&url)).unwrap();
    let err = sink.deliver(&[record(0, "{}"), record(1, "{}")]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Retryable);
    assert!(!err.message.contains("abc-secret"), "{}", err.message);
}

#[test]
fn config_reads_from_toml_and_refuses_unknown_keys() {
    let cfg: WebhookSinkConfig = toml::from_str(&format!(
        "url = \"https://partner.example.com/hooks\"\nsecret = \"{SECRET}\"\nbatch = true\n[request]\nrate_limit_per_sec = 5\n"
    ))
    .unwrap();
    assert!(cfg.batch && !cfg.legacy_signature && !cfg.gzip);
    assert!(toml::from_str::<WebhookSinkConfig>("url = \"http://x\"\nsecrt = \"a\"").is_err());
    let err = WebhookSink::new(WebhookSinkConfig { secret: None, legacy_signature: true, ..cfg }).unwrap_err();
    assert_eq!(err.key, "legacy_signature");
}
