//! The `slack` sink itself: one POST per record, to an incoming webhook or to
//! `chat.postMessage`.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::Url;
use serde_json::Value;
use weir_schemas::component::{ComponentError, RecordFailure, Sink};
use weir_schemas::StoredRecord;

use super::config::SlackMode;
use super::message::{digest_message, text_message, violation_message};
use super::SlackConfig;
use crate::chat::{decode_chat_record, send_each_checked, ChatRecord};
use crate::encoding::{record_id, value_to_json};
use crate::http::{
    parse_retry_after, truncate_reason, FailureClass, HttpDelivery, HttpFailure, InvalidConfig, Reply, Secret,
};

/// Where the messages go.
enum Target {
    /// An incoming webhook: the URL is the credential.
    Webhook(Url),
    /// `{base_url}/api/chat.postMessage` with a bearer token, into `channel`.
    Api { url: Url, token: Secret, channel: String },
}

/// Posts records to Slack, through an incoming webhook or `chat.postMessage`.
pub struct SlackSink {
    config: SlackConfig,
    target: Target,
    delivery: HttpDelivery,
    secrets: Vec<Secret>,
}

impl std::fmt::Debug for SlackSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackSink").field("config", &self.config).finish_non_exhaustive()
    }
}

impl SlackSink {
    /// A sink for `config`; checks the mode's options and the request options (no request is
    /// made).
    pub fn new(config: SlackConfig) -> Result<Self, InvalidConfig> {
        // Options of the other mode are refused rather than ignored: a token next to a webhook
        // URL usually means the mode was forgotten, and the messages would go somewhere else.
        let (target, secrets) = match config.mode {
            SlackMode::Webhook => {
                for (key, set) in [("token", config.token.is_some()), ("channel", config.channel.is_some())] {
                    if set {
                        return Err(InvalidConfig::new(key, "only for mode = \"api\" (a webhook's channel is fixed)"));
                    }
                }
                let Some(webhook_url) = &config.webhook_url else {
                    return Err(InvalidConfig::new("webhook_url", "required with mode = \"webhook\""));
                };
                let url = Url::parse(webhook_url.expose())
                    .map_err(|_| InvalidConfig::new("webhook_url", "not a URL (the value is not shown)"))?;
                if url.scheme() != "http" && url.scheme() != "https" {
                    return Err(InvalidConfig::new("webhook_url", "must be an http:// or https:// URL"));
                }
                (Target::Webhook(url), vec![webhook_url.clone()])
            }
            SlackMode::Api => {
                if config.webhook_url.is_some() {
                    return Err(InvalidConfig::new("webhook_url", "only for mode = \"webhook\""));
                }
                let token = match &config.token {
                    Some(token) if !token.expose().trim().is_empty() => token.clone(),
                    Some(_) => return Err(InvalidConfig::new("token", "must not be empty")),
                    None => return Err(InvalidConfig::new("token", "required with mode = \"api\"")),
                };
                let channel = match config.channel.as_deref().map(str::trim) {
                    Some(channel) if !channel.is_empty() => channel.to_string(),
                    _ => return Err(InvalidConfig::new("channel", "required with mode = \"api\" (a channel id)")),
                };
                let base = Url::parse(&config.base_url)
                    .map_err(|e| InvalidConfig::new("base_url", format!("not a URL: {e}")))?;
                if base.scheme() != "http" && base.scheme() != "https" {
                    return Err(InvalidConfig::new("base_url", "must be an http:// or https:// URL"));
                }
                let url = Url::parse(&format!("{}/api/chat.postMessage", config.base_url.trim_end_matches('/')))
                    .map_err(|e| InvalidConfig::new("base_url", format!("not a URL: {e}")))?;
                (Target::Api { url, token: token.clone(), channel }, vec![token])
            }
        };
        let delivery = HttpDelivery::new("Slack", &config.request, secrets.clone())?;
        Ok(SlackSink { config, target, delivery, secrets })
    }

    fn request(&self, record: &StoredRecord) -> reqwest::RequestBuilder {
        let mut body = match decode_chat_record(&record.record.value) {
            Ok(ChatRecord::Violation(violation)) => violation_message(&violation, self.config.title_template.as_ref()),
            Ok(ChatRecord::Digest(digest)) => digest_message(&digest, &record_id(record)),
            Err(_) => text_message(&value_to_json(&record.record.value).1),
        };
        match &self.target {
            Target::Webhook(url) => self.delivery.client().post(url.clone()).header(CONTENT_TYPE, "application/json"),
            Target::Api { url, token, channel } => {
                body["channel"] = Value::String(channel.clone());
                // A violation's text may quote URLs; previews would only add noise to an alert.
                body["unfurl_links"] = Value::Bool(false);
                body["unfurl_media"] = Value::Bool(false);
                self.delivery
                    .client()
                    .post(url.clone())
                    .bearer_auth(token.expose())
                    .header(CONTENT_TYPE, "application/json; charset=utf-8")
            }
        }
        .body(body.to_string())
    }
}

/// What an `{"ok":false,"error":…}` answer of the Web API means: `ratelimited` and Slack's own
/// transient errors are retryable; a refused, revoked or under-scoped token is fatal (every
/// message would fail the same way); anything else (`channel_not_found`, `is_archived`,
/// `not_in_channel`, `msg_too_long`, `invalid_blocks`, …) rejects this message: dead-letter it.
pub fn classify_api_error(error: &str) -> FailureClass {
    match error {
        "ratelimited"
        | "rate_limited"
        | "internal_error"
        | "fatal_error"
        | "service_unavailable"
        | "request_timeout"
        | "team_added_to_org" => FailureClass::Retryable,
        "invalid_auth"
        | "not_authed"
        | "account_inactive"
        | "token_revoked"
        | "token_expired"
        | "missing_scope"
        | "no_permission"
        | "not_allowed_token_type"
        | "ekm_access_denied" => FailureClass::Fatal,
        _ => FailureClass::Permanent,
    }
}

/// Reads a 2xx answer of `chat.postMessage`: Slack answers HTTP 200 even when it did not post,
/// with `{"ok":false,"error":…}`. Reasons are scrubbed of `secrets`; a `Retry-After` is honoured
/// up to `max_retry_after`.
pub(crate) fn check_api_reply(reply: &Reply, secrets: &[Secret], max_retry_after: Duration) -> Result<(), HttpFailure> {
    let parsed: Option<Value> = serde_json::from_slice(&reply.body).ok();
    let ok = parsed.as_ref().and_then(|v| v["ok"].as_bool());
    let (class, mut reason) = match ok {
        Some(true) => return Ok(()),
        Some(false) => {
            let error = parsed.as_ref().and_then(|v| v["error"].as_str()).unwrap_or("(no error code)");
            let class = classify_api_error(error);
            let hint = match class {
                FailureClass::Fatal => " (check the token, its workspace and its chat:write scope)",
                _ => "",
            };
            (class, format!("Slack chat.postMessage answered ok:false, error {error}{hint}"))
        }
        // Neither yes nor no: something other than Slack answered (a proxy, a captive portal).
        // Whether the message was posted is unknown; sending it again risks a duplicate, not a loss.
        None => {
            (FailureClass::Retryable, format!("Slack chat.postMessage answered HTTP {} without \"ok\"", reply.status))
        }
    };
    let body = truncate_reason(&reply.body);
    if !body.is_empty() {
        reason.push_str(": ");
        reason.push_str(&body);
    }
    let retry_after = match class {
        FailureClass::Retryable => reply
            .headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()))
            .map(|d| d.min(max_retry_after)),
        _ => None,
    };
    if let Some(delay) = retry_after {
        reason.push_str(&format!(" (retry after {}s)", delay.as_secs_f64()));
    }
    for secret in secrets {
        reason = secret.scrub(&reason);
    }
    Err(HttpFailure { class, status: Some(reply.status), reason, retry_after, body: reply.body.clone() })
}

#[async_trait]
impl Sink for SlackSink {
    async fn deliver(&mut self, batch: &[StoredRecord]) -> Result<Vec<RecordFailure>, ComponentError> {
        let requests = batch.iter().map(|record| Ok(self.request(record))).collect();
        match self.target {
            // A webhook answers plain text (`ok`, or an error code with a 4xx/5xx status): the
            // status alone tells the outcome.
            Target::Webhook(_) => send_each_checked(&mut self.delivery, requests, |_| Ok(())).await,
            Target::Api { .. } => {
                let secrets = &self.secrets;
                let max = Duration::from_secs_f64(self.config.request.max_retry_after_secs);
                send_each_checked(&mut self.delivery, requests, |reply| check_api_reply(reply, secrets, max)).await
            }
        }
    }
}
