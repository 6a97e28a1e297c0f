//! The `okta_event_hook` source: System Log events pushed by an Okta Event Hook.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use weir_schemas::component::{ComponentError, Rejected, Source, SourcePoll};

use super::config::{OktaConfigError, OktaEventHookConfig};
use super::{timestamp_ms, VENDOR};
use crate::batch::quote;
use crate::http::Secret;
use crate::push::{PushQueue, PushReceiver, PushedEvent};

/// How long a delivery waits to be durable before it is answered 503: Okta gives up after 3 s.
const PATIENCE: Duration = Duration::from_millis(2500);

/// Receives an Okta Event Hook's deliveries; see the module docs of [`super`] for the guarantees.
pub struct OktaEventHookSource {
    path: String,
    hook: Arc<Hook>,
    receiver: PushReceiver,
}

/// What the HTTP handlers share.
struct Hook {
    name: String,
    queue: PushQueue,
    secret: Secret,
    extra: Option<(HeaderName, Secret)>,
}

impl OktaEventHookSource {
    /// A source named `name` (its raw topic is `raw.<name>`).
    pub fn new(name: &str, config: OktaEventHookConfig) -> Result<Self, OktaConfigError> {
        if !config.path.starts_with('/') || config.path.contains(['?', '#']) {
            return Err(OktaConfigError {
                option: "path",
                reason: format!("`{}` must be a URL path starting with '/', like \"/hooks/okta\"", quote(&config.path)),
            });
        }
        if config.secret.expose().trim().is_empty() {
            return Err(OktaConfigError {
                option: "secret",
                reason: "it is empty; Okta's hook must send a static Authorization value".into(),
            });
        }
        let extra = match (config.header_name, config.header_value) {
            (None, None) => None,
            (Some(name), Some(value)) => {
                let header = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| OktaConfigError {
                    option: "header_name",
                    reason: format!("`{}` is not a header name", quote(&name)),
                })?;
                if header == axum::http::header::AUTHORIZATION {
                    return Err(OktaConfigError {
                        option: "header_name",
                        reason: "the Authorization header is `secret`'s; name another header".into(),
                    });
                }
                Some((header, value))
            }
            (Some(_), None) => {
                return Err(OktaConfigError { option: "header_value", reason: "`header_name` needs it".into() })
            }
            (None, Some(_)) => {
                return Err(OktaConfigError { option: "header_name", reason: "`header_value` needs it".into() })
            }
        };
        let (queue, receiver) = PushReceiver::channel(name, VENDOR);
        let hook = Hook { name: name.to_string(), queue, secret: config.secret, extra };
        Ok(OktaEventHookSource { path: config.path, hook: Arc::new(hook), receiver })
    }

    /// Where Weir's HTTP server mounts [`OktaEventHookSource::router`] (the `path` option).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The hook's routes, relative to "/": `GET /` answers Okta's one-time verification,
    /// `POST /` takes deliveries.
    pub fn router(&self) -> Router {
        Router::new().route("/", get(verify).post(receive)).with_state(self.hook.clone())
    }
}

impl Hook {
    /// Whether the request carries the configured Authorization value (and extra header).
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let matches = |name: &HeaderName, secret: &Secret| {
            headers.get(name).is_some_and(|value| same_bytes(value.as_bytes(), secret.expose().as_bytes()))
        };
        let authorization = matches(&axum::http::header::AUTHORIZATION, &self.secret);
        let extra = self.extra.as_ref().is_none_or(|(name, value)| matches(name, value));
        authorization & extra
    }
}

/// Compares in time that depends only on the lengths, so the secret cannot be guessed byte by
/// byte from response times.
fn same_bytes(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    given.iter().zip(expected).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

fn unauthorized(hook: &Hook) -> Response {
    tracing::warn!(source = %hook.name, "refused an Okta Event Hook request without the configured Authorization");
    (StatusCode::UNAUTHORIZED, "missing or wrong Authorization\n").into_response()
}

/// Okta's one-time verification: `X-Okta-Verification-Challenge: v` → `{"verification":"v"}`.
/// Okta sends the hook's Authorization value on it too, so it is required: nobody else can make
/// Weir vouch for a hook URL.
async fn verify(State(hook): State<Arc<Hook>>, headers: HeaderMap) -> Response {
    if !hook.authorized(&headers) {
        return unauthorized(&hook);
    }
    match headers.get("x-okta-verification-challenge").and_then(|v| v.to_str().ok()) {
        Some(challenge) => Json(serde_json::json!({ "verification": challenge })).into_response(),
        None => (StatusCode::BAD_REQUEST, "no X-Okta-Verification-Challenge header\n").into_response(),
    }
}

/// A delivery: answered 200 once its events are durable, 503 if not in time (Okta retries once),
/// 400 (and dead-lettered) when it is not a delivery.
async fn receive(State(hook): State<Arc<Hook>>, headers: HeaderMap, body: Bytes) -> Response {
    if !hook.authorized(&headers) {
        return unauthorized(&hook);
    }
    let (events, rejected) = match parse_delivery(&body) {
        Ok(parsed) => parsed,
        Err(reason) => {
            let reason = format!("okta event hook: the request body is not an Event Hook delivery: {reason}");
            let letter = Rejected { reason: reason.clone(), original: body.to_vec() };
            // Okta does not retry a 4xx: the dead letter is all that is left of it.
            if let Err(e) = hook.queue.deliver(Vec::new(), vec![letter], PATIENCE).await {
                tracing::warn!(source = %hook.name, error = %e, "could not dead-letter an unreadable delivery");
            }
            return (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response();
        }
    };
    if events.is_empty() && rejected.is_empty() {
        return StatusCode::OK.into_response();
    }
    match hook.queue.deliver(events, rejected, PATIENCE).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => {
            tracing::warn!(source = %hook.name, error = %e, "answered an Okta delivery 503");
            (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response()
        }
    }
}

/// The parts of a delivery the receiver reads; every LogEvent stays raw.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "eventId", default)]
    event_id: Option<String>,
    #[serde(borrow)]
    data: EnvelopeData<'a>,
}

#[derive(Deserialize)]
struct EnvelopeData<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// A delivery's events (bytes untouched) and the ones without a `uuid`; Err when the body is no
/// delivery at all.
fn parse_delivery(body: &[u8]) -> Result<(Vec<PushedEvent>, Vec<Rejected>), String> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| format!("expected `data.events[]`: {e}"))?;
    let delivery = envelope.event_id.as_deref().map_or_else(|| "without eventId".to_string(), quote);
    let mut events = Vec::new();
    let mut rejected = Vec::new();
    for (index, event) in envelope.data.events.into_iter().enumerate() {
        let problem = match serde_json::from_str::<Value>(event.get()) {
            Ok(Value::Object(fields)) => match fields.get("uuid").and_then(Value::as_str).filter(|u| !u.is_empty()) {
                Some(uuid) => {
                    let time_ms = fields.get("published").and_then(Value::as_str).and_then(timestamp_ms);
                    events.push(PushedEvent {
                        id: uuid.to_string(),
                        time_ms,
                        payload: event.get().as_bytes().to_vec(),
                    });
                    continue;
                }
                None => "has no `uuid` string",
            },
            Ok(_) => "is not a JSON object",
            Err(_) => "is not JSON",
        };
        rejected.push(Rejected {
            reason: format!("okta event hook: event {index} of delivery {delivery} {problem}"),
            original: event.get().as_bytes().to_vec(),
        });
    }
    Ok((events, rejected))
}

#[async_trait]
impl Source for OktaEventHookSource {
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
