//! The `webhook` sink itself.

use async_trait::async_trait;
use base64::Engine;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::Url;
use serde_json::Value;
use sha2::{Digest, Sha256};
use weir_schemas::component::{ComponentError, RecordFailure, Sink};
use weir_schemas::StoredRecord;

use super::sign::SigningKey;
use super::WebhookSinkConfig;
use crate::encoding::{record_id, value_to_json};
use crate::http::{gzip, FailureClass, HttpDelivery, InvalidConfig};

/// POSTs records to a webhook URL, signed per Standard Webhooks.
#[derive(Clone)]
pub struct WebhookSink {
    config: WebhookSinkConfig,
    url: Url,
    key: Option<SigningKey>,
    delivery: HttpDelivery,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The `webhook-id` of one record: `msg_` + its weir id in unpadded base64url.
pub fn message_id(record: &StoredRecord) -> String {
    format!("msg_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(record_id(record)))
}

/// The `webhook-id` of a batch: `batch_` + the first 128 bits of SHA-256 over its weir ids.
pub fn batch_id<'a>(records: impl IntoIterator<Item = &'a StoredRecord>) -> String {
    let mut hash = Sha256::new();
    for record in records {
        hash.update(record_id(record).as_bytes());
        hash.update(b"\n");
    }
    let digest = hash.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("batch_{hex}")
}

impl WebhookSink {
    /// A sink for `config`; checks the URL, the secret and the request options (no request is
    /// made).
    pub fn new(config: WebhookSinkConfig) -> Result<Self, InvalidConfig> {
        let url = Url::parse(config.url.expose()).map_err(|e| InvalidConfig::new("url", format!("not a URL: {e}")))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(InvalidConfig::new("url", "must be an http:// or https:// URL"));
        }
        let key = config.secret.as_ref().map(SigningKey::from_secret).transpose()?;
        if config.legacy_signature && key.is_none() {
            return Err(InvalidConfig::new("legacy_signature", "needs `secret`"));
        }
        if config.batch && config.batch_max_events == 0 {
            return Err(InvalidConfig::new("batch_max_events", "must be at least 1"));
        }
        let mut secrets = vec![config.url.clone()];
        secrets.extend(config.secret.clone());
        let delivery = HttpDelivery::new("webhook receiver", &config.request, secrets)?;
        Ok(WebhookSink { config, url, key, delivery })
    }

    fn request(&self, id: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut request = self
            .delivery
            .client()
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string());
        if let Some(key) = &self.key {
            request = request.header("webhook-signature", key.sign(id, timestamp, &body));
            if self.config.legacy_signature {
                request = request.header("X-Signature", key.legacy(&body));
            }
        }
        if self.config.gzip {
            request.header(CONTENT_ENCODING, "gzip").body(gzip(&body))
        } else {
            request.body(body)
        }
    }
}

#[async_trait]
impl Sink for WebhookSink {
    crate::http::concurrent_by_cloning!();

    async fn deliver(&mut self, batch: &[StoredRecord]) -> Result<Vec<RecordFailure>, ComponentError> {
        let indexes: Vec<usize> = (0..batch.len()).collect();
        let size = if self.config.batch { self.config.batch_max_events.max(1) } else { 1 };
        let mut groups = indexes.chunks(size);
        let mut failures = Vec::new();
        let mut retry_reason = None;
        while let Some(group) = groups.next() {
            let (id, body) = if self.config.batch {
                let values: Vec<Value> = group.iter().map(|&i| value_to_json(&batch[i].record.value).1).collect();
                (batch_id(group.iter().map(|&i| &batch[i])), Value::Array(values))
            } else {
                let record = &batch[group[0]];
                (message_id(record), value_to_json(&record.record.value).1)
            };
            let request = self.request(&id, body.to_string().into_bytes());
            let failure = match self.delivery.send(request).await {
                Ok(_) => continue,
                Err(failure) => failure,
            };
            failures.extend(failure.for_records(group.iter().copied())?);
            if failure.class == FailureClass::Retryable {
                // The receiver is struggling: leave the rest for the runner's retry.
                for rest in groups.by_ref() {
                    failures.extend(rest.iter().map(|&index| RecordFailure {
                        index,
                        retryable: true,
                        reason: format!("not sent: {}", failure.reason),
                    }));
                }
                retry_reason = Some(failure.reason);
            }
        }
        if let Some(reason) = retry_reason {
            if failures.len() == batch.len() && failures.iter().all(|f| f.retryable) {
                return Err(ComponentError::retryable(reason));
            }
        }
        Ok(failures)
    }
}
