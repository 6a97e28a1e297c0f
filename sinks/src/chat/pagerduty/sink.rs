//! The `pagerduty` sink itself.

use async_trait::async_trait;
use reqwest::header::CONTENT_TYPE;
use reqwest::Url;
use weir_schemas::component::{ComponentError, RecordFailure, Sink};
use weir_schemas::StoredRecord;

use super::request::event;
use super::PagerDutyConfig;
use crate::chat::{decode_violation, send_each};
use crate::http::{HttpDelivery, InvalidConfig};

/// Sends Violations to the PagerDuty Events API v2.
#[derive(Clone)]
pub struct PagerDutySink {
    config: PagerDutyConfig,
    url: Url,
    delivery: HttpDelivery,
}

impl std::fmt::Debug for PagerDutySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagerDutySink").field("config", &self.config).finish_non_exhaustive()
    }
}

impl PagerDutySink {
    /// A sink for `config`; checks the endpoint, the key and the request options (no request
    /// is made).
    pub fn new(config: PagerDutyConfig) -> Result<Self, InvalidConfig> {
        if config.routing_key.expose().trim().is_empty() {
            return Err(InvalidConfig::new("routing_key", "must not be empty"));
        }
        let base =
            Url::parse(&config.endpoint).map_err(|e| InvalidConfig::new("endpoint", format!("not a URL: {e}")))?;
        if base.scheme() != "http" && base.scheme() != "https" {
            return Err(InvalidConfig::new("endpoint", "must be an http:// or https:// URL"));
        }
        let url = Url::parse(&format!("{}/v2/enqueue", config.endpoint.trim_end_matches('/')))
            .map_err(|e| InvalidConfig::new("endpoint", format!("not a URL: {e}")))?;
        let delivery = HttpDelivery::new("PagerDuty", &config.request, vec![config.routing_key.clone()])?;
        Ok(PagerDutySink { config, url, delivery })
    }

    fn request(&self, record: &StoredRecord) -> Result<reqwest::RequestBuilder, String> {
        let violation = decode_violation(&record.record.value)?;
        let body = event(
            &violation,
            self.config.routing_key.expose(),
            self.config.source.as_deref(),
            &self.config.client,
            self.config.title_template.as_ref(),
        );
        Ok(self
            .delivery
            .client()
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string()))
    }
}

#[async_trait]
impl Sink for PagerDutySink {
    crate::http::concurrent_by_cloning!();

    async fn deliver(&mut self, batch: &[StoredRecord]) -> Result<Vec<RecordFailure>, ComponentError> {
        let requests = batch.iter().map(|record| self.request(record)).collect();
        send_each(&mut self.delivery, requests).await
    }
}
