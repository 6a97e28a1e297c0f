//! The `slack` sink itself.

use async_trait::async_trait;
use reqwest::header::CONTENT_TYPE;
use reqwest::Url;
use weir_schemas::component::{ComponentError, RecordFailure, Sink};
use weir_schemas::StoredRecord;

use super::message::{text_message, violation_message};
use super::SlackConfig;
use crate::chat::{decode_violation, send_each};
use crate::encoding::value_to_json;
use crate::http::{HttpDelivery, InvalidConfig};

/// Posts records to a Slack incoming webhook.
pub struct SlackSink {
    config: SlackConfig,
    url: Url,
    delivery: HttpDelivery,
}

impl std::fmt::Debug for SlackSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackSink").field("config", &self.config).finish_non_exhaustive()
    }
}

impl SlackSink {
    /// A sink for `config`; checks the URL and the request options (no request is made).
    pub fn new(config: SlackConfig) -> Result<Self, InvalidConfig> {
        let url = Url::parse(config.webhook_url.expose())
            .map_err(|_| InvalidConfig::new("webhook_url", "not a URL (the value is not shown)"))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(InvalidConfig::new("webhook_url", "must be an http:// or https:// URL"));
        }
        let delivery = HttpDelivery::new("Slack", &config.request, vec![config.webhook_url.clone()])?;
        Ok(SlackSink { config, url, delivery })
    }

    fn request(&self, record: &StoredRecord) -> reqwest::RequestBuilder {
        let body = match decode_violation(&record.record.value) {
            Ok(violation) => violation_message(&violation),
            Err(_) => text_message(&value_to_json(&record.record.value).1),
        };
        self.delivery.client().post(self.url.clone()).header(CONTENT_TYPE, "application/json").body(body.to_string())
    }
}

#[async_trait]
impl Sink for SlackSink {
    async fn deliver(&mut self, batch: &[StoredRecord]) -> Result<Vec<RecordFailure>, ComponentError> {
        let requests = batch.iter().map(|record| Ok(self.request(record))).collect();
        send_each(&mut self.delivery, requests).await
    }
}
