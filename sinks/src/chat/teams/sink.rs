//! The `teams` sink itself: one POST of an Adaptive Card per message (a record, or a window's
//! digest records).

use async_trait::async_trait;
use reqwest::header::CONTENT_TYPE;
use reqwest::Url;
use weir_schemas::component::{ComponentError, RecordFailure, Sink};
use weir_schemas::StoredRecord;

use super::message::{digest_message, text_message, violation_message};
use super::{TeamsConfig, TeamsKind};
use crate::chat::{chat_messages, send_each_prebuilt, ChatContent};
use crate::http::{truncate_reason, FailureClass, HttpDelivery, HttpFailure, InvalidConfig, Reply, Secret};

/// Requests a second a connector is held to when `rate_limit_per_sec` is unset: its limits are
/// 4 a second and 60 per 30 seconds, so 2 a second stays under both.
pub const CONNECTOR_RATE_PER_SEC: f64 = 2.0;

/// Posts records to a Microsoft Teams channel through a Workflows or connector webhook.
#[derive(Clone)]
pub struct TeamsSink {
    config: TeamsConfig,
    url: Url,
    delivery: HttpDelivery,
    secrets: Vec<Secret>,
}

impl std::fmt::Debug for TeamsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeamsSink").field("config", &self.config).finish_non_exhaustive()
    }
}

/// What to scrub from reasons: the URL, and its path, path segments and query values long
/// enough to be credentials (a Workflows `sig`, a connector's ids), since an error page may
/// quote any of them without the rest of the URL.
fn url_secrets(raw: &Secret, url: &Url) -> Vec<Secret> {
    let mut secrets = vec![raw.clone()];
    let path_and_query = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    };
    let mut parts = vec![path_and_query];
    parts.extend(url.path_segments().into_iter().flatten().map(str::to_string));
    parts.extend(url.query_pairs().map(|(_, value)| value.into_owned()));
    // Short parts (`api-version=2016-06-01`, `webhookb2`) are not secret and scrubbing them
    // would mangle ordinary text.
    secrets.extend(parts.into_iter().filter(|part| part.len() >= 16).map(Secret::new));
    secrets
}

impl TeamsSink {
    /// A sink for `config`; checks the URL, the size limit and the request options (no request
    /// is made).
    pub fn new(config: TeamsConfig) -> Result<Self, InvalidConfig> {
        let url = Url::parse(config.url.expose())
            .map_err(|_| InvalidConfig::new("url", "not a URL (the value is not shown)"))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(InvalidConfig::new("url", "must be an http:// or https:// URL"));
        }
        if config.max_message_bytes == 0 {
            return Err(InvalidConfig::new("max_message_bytes", "must be > 0"));
        }
        let mut request = config.request.clone();
        if config.kind == TeamsKind::Connector {
            tracing::warn!(
                "teams: kind = \"connector\": Microsoft is retiring Office 365 connectors; \
                 move to a Workflows webhook (kind = \"workflows\")"
            );
            request.rate_limit_per_sec.get_or_insert(CONNECTOR_RATE_PER_SEC);
        }
        let secrets = url_secrets(&config.url, &url);
        let delivery = HttpDelivery::new("Microsoft Teams", &request, secrets.clone())?;
        Ok(TeamsSink { config, url, delivery, secrets })
    }

    /// The request for a record, or why it cannot be sent (too large for Teams).
    fn request(&self, message: &ChatContent) -> Result<reqwest::RequestBuilder, String> {
        let message = match message {
            ChatContent::Violation(violation) => {
                violation_message(violation, self.config.title_template.as_ref(), self.config.body_template.as_ref())
            }
            ChatContent::Digest { digests, id } => digest_message(digests, id),
            ChatContent::Other(value) => text_message(value),
        };
        let body = message.to_string();
        if body.len() > self.config.max_message_bytes {
            // Fields are already cut to fixed lengths; what is still too large (many multi-byte
            // or escaped characters) would be refused by Teams, so it is dead-lettered here.
            return Err(format!(
                "Microsoft Teams: the message is {} bytes, over max_message_bytes = {} (Teams refuses \
                 messages over about 28 KB); not sent",
                body.len(),
                self.config.max_message_bytes
            ));
        }
        Ok(self.delivery.client().post(self.url.clone()).header(CONTENT_TYPE, "application/json").body(body))
    }
}

/// Reads a 2xx answer. A connector reports its own throttling (and failures to post) as HTTP
/// 200 with a text like `Webhook message delivery failed with error: Microsoft Teams endpoint
/// returned HTTP error 429 …`: a quoted 429, 408 or 5xx is retryable, any other failure text
/// dead-letters the record. Any other 2xx (`1`, a Workflows 202) is delivered. Reasons are
/// scrubbed of `secrets`.
pub(crate) fn check_reply(reply: &Reply, secrets: &[Secret]) -> Result<(), HttpFailure> {
    let text = String::from_utf8_lossy(&reply.body);
    let quoted = text.find("HTTP error ").and_then(|at| text.get(at + 11..at + 14)).and_then(|c| c.parse::<u16>().ok());
    let class = match quoted {
        Some(408 | 429 | 500..=599) => FailureClass::Retryable,
        Some(_) => FailureClass::Permanent,
        None if text.contains("delivery failed") => FailureClass::Permanent,
        None => return Ok(()),
    };
    let mut reason =
        format!("Microsoft Teams answered HTTP {} but did not post: {}", reply.status, truncate_reason(&reply.body));
    for secret in secrets {
        reason = secret.scrub(&reason);
    }
    Err(HttpFailure { class, status: Some(reply.status), reason, retry_after: None, body: reply.body.clone() })
}

#[async_trait]
impl Sink for TeamsSink {
    crate::http::concurrent_by_cloning!();

    async fn deliver(&mut self, batch: &[StoredRecord]) -> Result<Vec<RecordFailure>, ComponentError> {
        let requests =
            chat_messages(batch).into_iter().map(|message| (message.indexes, self.request(&message.content))).collect();
        let secrets = &self.secrets;
        send_each_prebuilt(&mut self.delivery, requests, |_, reply| check_reply(reply, secrets)).await
    }
}
