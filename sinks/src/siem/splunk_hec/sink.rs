//! The `splunk_hec` sink itself.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::Url;
use serde::Deserialize;
use weir_schemas::component::{ComponentError, RecordFailure, Sink};
use weir_schemas::StoredRecord;

use super::request::{chunks, event_json, Chunk};
use super::SplunkHecConfig;
use crate::http::{gzip, FailureClass, HttpDelivery, HttpFailure, InvalidConfig};

const CHANNEL_HEADER: &str = "X-Splunk-Request-Channel";

/// HEC codes that mean the sink's configuration is wrong: incorrect index (7), data channel
/// missing or invalid (10, 11), ACK disabled (14), query-string auth not enabled (16).
const CONFIG_CODES: [i64; 5] = [7, 10, 11, 14, 16];

/// Sends records to a Splunk HTTP Event Collector.
#[derive(Clone)]
pub struct SplunkHecSink {
    config: SplunkHecConfig,
    event_url: Url,
    ack_url: Url,
    channel: Option<String>,
    delivery: HttpDelivery,
}

impl std::fmt::Debug for SplunkHecSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplunkHecSink").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A HEC reply: `{"text":"Success","code":0,"ackId":3}` or an error with
/// `invalid-event-number`.
#[derive(Debug, Default, Deserialize)]
struct HecReply {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    code: Option<i64>,
    #[serde(default, rename = "invalid-event-number")]
    invalid_event_number: Option<usize>,
    #[serde(default, rename = "ackId")]
    ack_id: Option<u64>,
}

fn parse_reply(body: &[u8]) -> HecReply {
    serde_json::from_slice(body).unwrap_or_default()
}

impl SplunkHecSink {
    /// A sink for `config`; checks the endpoint and request options (no request is made).
    pub fn new(config: SplunkHecConfig) -> Result<Self, InvalidConfig> {
        let base =
            Url::parse(&config.endpoint).map_err(|e| InvalidConfig::new("endpoint", format!("not a URL: {e}")))?;
        if base.scheme() != "http" && base.scheme() != "https" {
            return Err(InvalidConfig::new("endpoint", "must be an http:// or https:// URL"));
        }
        if config.token.expose().is_empty() {
            return Err(InvalidConfig::new("token", "is empty"));
        }
        let join = |path: &str| {
            let mut url = base.clone();
            url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
            url
        };
        let event_url = join("/services/collector/event");
        let mut ack_url = join("/services/collector/ack");
        let channel = match (&config.channel, config.ack) {
            (Some(channel), _) => Some(channel.clone()),
            (None, true) => Some(uuid::Uuid::new_v4().to_string()),
            (None, false) => None,
        };
        if let Some(channel) = &channel {
            HeaderValue::from_str(channel)
                .map_err(|_| InvalidConfig::new("channel", "must be a GUID (printable ASCII)"))?;
            ack_url.query_pairs_mut().append_pair("channel", channel);
        }
        let delivery = HttpDelivery::new("Splunk HEC", &config.request, vec![config.token.clone()])?;
        Ok(SplunkHecSink { config, event_url, ack_url, channel, delivery })
    }

    fn request(&self, url: &Url, body: Vec<u8>, gzipped: bool) -> reqwest::RequestBuilder {
        let mut auth = HeaderValue::from_str(&format!("Splunk {}", self.config.token.expose()))
            .unwrap_or_else(|_| HeaderValue::from_static("Splunk invalid-token-characters"));
        auth.set_sensitive(true);
        let mut request = self
            .delivery
            .client()
            .post(url.clone())
            .header(AUTHORIZATION, auth)
            .header(CONTENT_TYPE, "application/json");
        if gzipped {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        if let Some(channel) = &self.channel {
            request = request.header(CHANNEL_HEADER, channel.as_str());
        }
        request.body(body)
    }

    /// Sends one chunk; `Ok` with its ackId (when acknowledgement is on).
    async fn post(&mut self, chunk: &Chunk) -> Result<Option<u64>, HttpFailure> {
        let body = if self.config.gzip { gzip(&chunk.body) } else { chunk.body.clone() };
        let request = self.request(&self.event_url, body, self.config.gzip);
        let reply = match self.delivery.send(request).await {
            Ok(reply) => reply,
            Err(failure) => return Err(hec_failure(failure)),
        };
        let parsed = parse_reply(&reply.body);
        match parsed.code {
            None | Some(0) => {}
            Some(code @ (24 | 25)) => {
                tracing::warn!(code, text = parsed.text.as_deref().unwrap_or(""), "Splunk HEC is near capacity");
            }
            Some(code) => {
                let failure = HttpFailure::retryable(format!(
                    "Splunk HEC answered {} with code {code}: {}",
                    reply.status,
                    parsed.text.as_deref().unwrap_or("")
                ));
                self.delivery.note(&failure);
                return Err(failure);
            }
        }
        if !self.config.ack {
            return Ok(None);
        }
        match parsed.ack_id {
            Some(id) => Ok(Some(id)),
            None => Err(HttpFailure::fatal(
                "Splunk HEC returned no ackId although ack = true: enable indexer acknowledgement on the token, \
                 or set ack = false",
            )),
        }
    }

    /// Polls until every ackId is acknowledged or the timeout passes; returns the records of the
    /// requests still unacknowledged.
    async fn wait_for_acks(&mut self, acks: Vec<(u64, Vec<usize>)>) -> Result<Vec<usize>, ComponentError> {
        let mut pending: BTreeMap<u64, Vec<usize>> = acks.into_iter().collect();
        let timeout = Duration::from_millis(self.config.ack_timeout_ms);
        let interval = Duration::from_millis(self.config.ack_poll_interval_ms);
        let deadline = tokio::time::Instant::now() + timeout;
        while !pending.is_empty() {
            let ids: Vec<u64> = pending.keys().copied().collect();
            let body = serde_json::json!({ "acks": ids }).to_string().into_bytes();
            let request = self.request(&self.ack_url, body, false);
            match self.delivery.send(request).await {
                Ok(reply) => {
                    #[derive(Deserialize)]
                    struct AckReply {
                        acks: BTreeMap<String, bool>,
                    }
                    if let Ok(reply) = serde_json::from_slice::<AckReply>(&reply.body) {
                        for (id, acked) in reply.acks {
                            if acked {
                                if let Ok(id) = id.parse::<u64>() {
                                    pending.remove(&id);
                                }
                            }
                        }
                    }
                }
                Err(failure) => {
                    let failure = hec_failure(failure);
                    match failure.class {
                        FailureClass::Retryable => {
                            tracing::debug!(reason = %failure.reason, "Splunk HEC ack poll failed; polling again");
                        }
                        FailureClass::Permanent | FailureClass::Fatal => {
                            return Err(ComponentError::fatal(format!(
                                "polling indexer acknowledgement: {}",
                                failure.reason
                            )))
                        }
                    }
                }
            }
            if pending.is_empty() || tokio::time::Instant::now() + interval > deadline {
                break;
            }
            tokio::time::sleep(interval).await;
        }
        Ok(pending.into_values().flatten().collect())
    }
}

/// Refines a failure with HEC's reply: configuration codes are fatal.
fn hec_failure(mut failure: HttpFailure) -> HttpFailure {
    let reply = parse_reply(&failure.body);
    if let Some(code) = reply.code {
        if CONFIG_CODES.contains(&code) {
            failure.class = FailureClass::Fatal;
            failure.reason.push_str(" (a configuration problem: check index, channel and the token's settings)");
        }
    }
    failure
}

#[async_trait]
impl Sink for SplunkHecSink {
    crate::http::concurrent_by_cloning!();

    async fn deliver(&mut self, batch: &[StoredRecord]) -> Result<Vec<RecordFailure>, ComponentError> {
        let mut failures = Vec::new();
        let mut events = Vec::with_capacity(batch.len());
        for (index, record) in batch.iter().enumerate() {
            match event_json(record, &self.config) {
                Ok(json) => events.push((index, json)),
                Err(reason) => failures.push(RecordFailure { index, retryable: false, reason }),
            }
        }
        let mut acks = Vec::new();
        let mut retry_reason = None;
        let mut chunks = chunks(events, self.config.batch_max_events, self.config.batch_max_bytes).into_iter();
        while let Some(chunk) = chunks.next() {
            let failure = match self.post(&chunk).await {
                Ok(Some(ack_id)) => {
                    acks.push((ack_id, chunk.indexes));
                    continue;
                }
                Ok(None) => continue,
                Err(failure) => failure,
            };
            if failure.class == FailureClass::Fatal {
                return Err(ComponentError::fatal(failure.reason));
            }
            // HEC stops at the first bad event; the ones before it were indexed.
            let stopped_at = parse_reply(&failure.body).invalid_event_number.filter(|&n| n < chunk.indexes.len());
            let unprocessed = stopped_at.unwrap_or(0);
            for (position, &index) in chunk.indexes.iter().enumerate().skip(unprocessed) {
                let (retryable, reason) = match (failure.class, stopped_at) {
                    (FailureClass::Permanent, Some(n)) if position > n => (
                        true,
                        format!("not processed: Splunk HEC stopped at an invalid event before it ({})", failure.reason),
                    ),
                    (class, _) => (class == FailureClass::Retryable, failure.reason.clone()),
                };
                failures.push(RecordFailure { index, retryable, reason });
            }
            if failure.class == FailureClass::Retryable {
                // The destination is struggling: leave the rest of the batch for the runner's retry.
                for rest in chunks.by_ref() {
                    failures.extend(rest.indexes.into_iter().map(|index| RecordFailure {
                        index,
                        retryable: true,
                        reason: format!("not sent: {}", failure.reason),
                    }));
                }
                retry_reason = Some(failure.reason);
            }
        }
        if !acks.is_empty() {
            let timeout_ms = self.config.ack_timeout_ms;
            for index in self.wait_for_acks(acks).await? {
                failures.push(RecordFailure {
                    index,
                    retryable: true,
                    reason: format!(
                        "Splunk HEC did not acknowledge indexing within {timeout_ms} ms; it will be sent again \
                         (duplicates possible)"
                    ),
                });
            }
        }
        failures.sort_by_key(|f| f.index);
        if !batch.is_empty() && failures.len() == batch.len() && failures.iter().all(|f| f.retryable) {
            // Nothing went through: say so once for the whole batch.
            let reason = retry_reason.unwrap_or_else(|| failures[0].reason.clone());
            return Err(ComponentError::retryable(reason));
        }
        Ok(failures)
    }
}
