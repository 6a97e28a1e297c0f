//! The `aws_eventbridge` source: CloudTrail records pushed by an EventBridge rule to an API
//! destination (one event per POST), received on Weir's HTTP server.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use http::HeaderName;
use serde::Deserialize;
use weir_schemas::component::{ComponentError, Rejected, Source, SourcePoll};

use super::source::{parse_time_ms, record_id};
use super::EventBridgeConfig;
use crate::batch::quote;
use crate::http::Secret;
use crate::push::{PushQueue, PushReceiver, PushedEvent};

/// The vendor name on the envelopes.
const VENDOR: &str = "aws";

/// Why an `aws_eventbridge` source cannot be built.
pub type EventBridgeError = crate::InvalidOption;

/// What the handlers share.
struct Hook {
    name: String,
    queue: PushQueue,
    header: HeaderName,
    key: Secret,
    patience: Duration,
}

/// Receives EventBridge deliveries (see the module docs). Serve [`EventBridgeSource::router`]
/// under the configured `path`.
pub struct EventBridgeSource {
    hook: Arc<Hook>,
    receiver: PushReceiver,
    path: String,
}

/// The parts of an EventBridge event the source checks and reads.
#[derive(Deserialize)]
struct Envelope {
    #[allow(dead_code)]
    version: serde_json::Value,
    id: String,
    #[serde(rename = "detail-type")]
    #[allow(dead_code)]
    detail_type: String,
    source: String,
    #[serde(default)]
    time: Option<serde_json::Value>,
    detail: serde_json::Map<String, serde_json::Value>,
}

impl EventBridgeSource {
    /// A source named `name` (its raw topic is `raw.<name>`).
    pub fn new(name: &str, config: EventBridgeConfig) -> Result<Self, EventBridgeError> {
        let bad = |option, reason: &str| crate::InvalidOption { option, reason: reason.to_string() };
        let header = HeaderName::from_bytes(config.api_key_header.to_ascii_lowercase().as_bytes())
            .map_err(|_| bad("api_key_header", "it is not an HTTP header name"))?;
        if !config.path.starts_with('/') {
            return Err(bad("path", "it must start with /"));
        }
        // An empty key would let anyone who sends an empty header push events.
        if config.api_key.expose().trim().is_empty() {
            return Err(bad("api_key", "it is empty"));
        }
        let (queue, receiver) = PushReceiver::channel(name, VENDOR);
        let hook = Hook {
            name: name.to_string(),
            queue,
            header,
            key: config.api_key,
            patience: Duration::from_millis(config.patience_ms.max(1)),
        };
        Ok(EventBridgeSource { hook: Arc::new(hook), receiver, path: config.path })
    }

    /// Where the lead's HTTP server nests [`EventBridgeSource::router`].
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The routes (relative to `/`): `POST /` receives one EventBridge event.
    pub fn router(&self) -> Router {
        Router::new().route("/", post(receive)).with_state(self.hook.clone())
    }
}

/// Compares two byte strings in time independent of where they differ.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (i, b) in expected.iter().enumerate() {
        diff |= usize::from(given.get(i).copied().unwrap_or(0) ^ b);
    }
    diff == 0
}

/// One delivery: 401 on a wrong key, 400 (and a dead letter) on a body that is not an
/// EventBridge event, 200 once the event is durable, 503 when it is not in time.
async fn receive(State(hook): State<Arc<Hook>>, headers: HeaderMap, body: Bytes) -> (StatusCode, &'static str) {
    let key_ok = headers.get(&hook.header).is_some_and(|v| same_secret(v.as_bytes(), hook.key.expose().as_bytes()));
    if !key_ok {
        tracing::warn!(source = %hook.name, header = %hook.header, "refused a delivery without the right API key");
        return (StatusCode::UNAUTHORIZED, "missing or wrong API key\n");
    }
    let (events, rejected, answer) = match read_event(&body) {
        Ok(event) => (vec![event], Vec::new(), (StatusCode::OK, "")),
        Err(why) => {
            let reason = format!("source {}: the delivery is not an EventBridge event: {why}", hook.name);
            (
                Vec::new(),
                vec![Rejected { reason, original: body.to_vec() }],
                (StatusCode::BAD_REQUEST, "not an EventBridge event\n"),
            )
        }
    };
    match hook.queue.deliver(events, rejected, hook.patience).await {
        Ok(()) => answer,
        Err(e) => {
            tracing::warn!(source = %hook.name, error = %e, "answered 503 to a delivery");
            (StatusCode::SERVICE_UNAVAILABLE, "not durable yet, retry\n")
        }
    }
}

/// The event of a delivery: the whole envelope's bytes, the record's `eventID` as its id.
fn read_event(body: &[u8]) -> Result<PushedEvent, String> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if !envelope.source.starts_with("aws.") {
        return Err(format!("its source {:?} is not an AWS service (aws.*)", quote(&envelope.source)));
    }
    // A CloudTrail record's eventID is the same however it arrives (LookupEvents, S3,
    // EventBridge); events not from CloudTrail have none, and their envelope id is all there is.
    let id = record_id(envelope.detail.get("eventID")).unwrap_or_else(|| format!("eventbridge-{}", envelope.id));
    let time_ms = parse_time_ms(envelope.detail.get("eventTime")).or_else(|| parse_time_ms(envelope.time.as_ref()));
    Ok(PushedEvent { id, time_ms, payload: body.to_vec() })
}

#[async_trait]
impl Source for EventBridgeSource {
    async fn open(&mut self, committed_cursor: Option<String>) -> Result<(), ComponentError> {
        self.receiver.open(committed_cursor)
    }

    async fn poll(&mut self) -> Result<SourcePoll, ComponentError> {
        Ok(self.receiver.poll().await)
    }

    async fn committed(&mut self, _cursor: Option<&str>) -> Result<(), ComponentError> {
        self.receiver.committed();
        Ok(())
    }
}
