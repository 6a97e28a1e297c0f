//! The `slack` sink itself: one POST per message (a record, or a window's digest records), to an
//! incoming webhook or to `chat.postMessage`.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::Url;
use serde_json::Value;
use weir_schemas::component::{ComponentError, RecordFailure, Sink};
use weir_schemas::events::{Violation, ViolationStatus};
use weir_schemas::StoredRecord;

use super::config::SlackMode;
use super::message::{digest_message, text_message, violation_message};
use super::SlackConfig;
use crate::chat::{chat_messages, send_each_checked, ChatContent};
use crate::http::{
    parse_retry_after, truncate_reason, FailureClass, HttpDelivery, HttpFailure, InvalidConfig, Reply, Secret,
};
use crate::recent::RecentMap;

/// Where the messages go.
#[derive(Clone)]
enum Target {
    /// An incoming webhook: the URL is the credential.
    Webhook(Url),
    /// `{base_url}/api/chat.postMessage` with a bearer token, into `channel`.
    Api { url: Url, token: Secret, channel: String },
}

/// Posts records to Slack, through an incoming webhook or `chat.postMessage`.
#[derive(Clone)]
pub struct SlackSink {
    config: SlackConfig,
    target: Target,
    delivery: HttpDelivery,
    secrets: Vec<Secret>,
    /// API mode: the `ts` of each open violation's first message, by violation key, so its
    /// updates and resolution are posted in that message's thread. In memory: after a restart
    /// an update of a violation opened before it starts a message of its own (nothing is lost,
    /// it is only not threaded).
    threads: RecentMap,
}

/// Most violation threads remembered; the oldest are forgotten first.
pub const MAX_THREADS: usize = 10_000;

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
        Ok(SlackSink { config, target, delivery, secrets, threads: RecentMap::new(MAX_THREADS) })
    }

    fn request(&self, message: &ChatContent, threads: &RecentMap) -> reqwest::RequestBuilder {
        let mut body = match message {
            ChatContent::Violation(violation) => violation_message(violation, self.config.title_template.as_ref()),
            ChatContent::Digest { digests, id } => digest_message(digests, id),
            ChatContent::Other(value) => text_message(value),
        };
        match &self.target {
            Target::Webhook(url) => self.delivery.client().post(url.clone()).header(CONTENT_TYPE, "application/json"),
            Target::Api { url, token, channel } => {
                body["channel"] = Value::String(channel.clone());
                if let ChatContent::Violation(violation) = message {
                    if let Some(ts) = threads.get(&violation.violation_key) {
                        body["thread_ts"] = Value::String(ts.to_string());
                        // The resolution shows in the channel too, not only in the thread.
                        if violation.status == ViolationStatus::Resolved {
                            body["reply_broadcast"] = Value::Bool(true);
                        }
                    }
                }
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
    crate::http::concurrent_by_cloning!();

    async fn deliver(&mut self, batch: &[StoredRecord]) -> Result<Vec<RecordFailure>, ComponentError> {
        let messages = chat_messages(batch);
        let groups = messages.iter().map(|message| message.indexes.clone()).collect();
        let max = Duration::from_secs_f64(self.config.request.max_retry_after_secs);
        // Requests are built one at a time, after the previous reply: an OPEN's `ts` threads the
        // UPDATED right behind it in the same batch. `threads` is shared by the two closures.
        let threads = Mutex::new(std::mem::replace(&mut self.threads, RecentMap::new(MAX_THREADS)));
        let mut delivery = self.delivery.clone();
        let outcome = send_each_checked(
            &mut delivery,
            groups,
            |position| Ok(self.request(&messages[position].content, &lock(&threads))),
            |position, reply| {
                if matches!(self.target, Target::Api { .. }) {
                    check_api_reply(reply, &self.secrets, max)?;
                    if let ChatContent::Violation(violation) = &messages[position].content {
                        note_thread(&mut lock(&threads), violation, reply);
                    }
                }
                // A webhook answers plain text (`ok`, or an error code with a 4xx/5xx status):
                // the status alone tells the outcome, and there is no `ts` to thread under.
                Ok(())
            },
        )
        .await;
        self.threads = threads.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        outcome
    }
}

/// The threads, shared by `deliver`'s two closures (never contended: they run in turn).
fn lock(threads: &Mutex<RecentMap>) -> MutexGuard<'_, RecentMap> {
    threads.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// After a violation's message was posted: an OPEN starts its thread (the reply's `ts`), a
/// RESOLVED ends it; an UPDATED of a violation with no thread (opened before a restart) starts
/// one.
fn note_thread(threads: &mut RecentMap, violation: &Violation, reply: &Reply) {
    match violation.status {
        ViolationStatus::Resolved => threads.remove(&violation.violation_key),
        ViolationStatus::Open | ViolationStatus::Updated if threads.get(&violation.violation_key).is_none() => {
            let parsed: Option<Value> = serde_json::from_slice(&reply.body).ok();
            if let Some(ts) = parsed.as_ref().and_then(|v| v["ts"].as_str()) {
                threads.insert(&violation.violation_key, ts.to_string());
            }
        }
        _ => {}
    }
}
