//! Configuration of the `splunk_hec` sink.

use serde::Deserialize;

use crate::http::{RequestConfig, Secret};

/// `[sinks.NAME] type = "splunk_hec"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SplunkHecConfig {
    /// The collector's base URL, e.g. `https://splunk.example.com:8088` (the sink appends
    /// `/services/collector/event` and `/services/collector/ack`).
    pub endpoint: String,
    /// The HEC token, typically `"${SPLUNK_HEC_TOKEN}"`; sent as `Authorization: Splunk <token>`.
    pub token: Secret,
    /// The index to write to; unset: the token's default index.
    #[serde(default)]
    pub index: Option<String>,
    /// The event `source`; unset: the token's default.
    #[serde(default)]
    pub source: Option<String>,
    /// The event `sourcetype`; unset: the token's default.
    #[serde(default)]
    pub sourcetype: Option<String>,
    /// The event `host`; unset: the token's default (the sender's address).
    #[serde(default)]
    pub host: Option<String>,
    /// Gzip request bodies (`Content-Encoding: gzip`).
    #[serde(default)]
    pub gzip: bool,
    /// The most events in one request.
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: usize,
    /// The most bytes of event JSON in one request, before gzip (an event larger than this is
    /// sent alone).
    #[serde(default = "default_batch_max_bytes")]
    pub batch_max_bytes: usize,
    /// Wait for indexer acknowledgement (the token must have `useACK` enabled).
    #[serde(default)]
    pub ack: bool,
    /// The channel GUID sent as `X-Splunk-Request-Channel` (with `ack` required by HEC); unset:
    /// a random one per sink start.
    #[serde(default)]
    pub channel: Option<String>,
    /// Milliseconds between acknowledgement polls.
    #[serde(default = "default_ack_poll_interval_ms")]
    pub ack_poll_interval_ms: u64,
    /// Milliseconds to wait for acknowledgement before the request counts as failed (retryable).
    #[serde(default = "default_ack_timeout_ms")]
    pub ack_timeout_ms: u64,
    /// Timeouts, rate limit, circuit breaker.
    #[serde(default)]
    pub request: RequestConfig,
}

fn default_batch_max_events() -> usize {
    100
}

fn default_batch_max_bytes() -> usize {
    1_000_000
}

fn default_ack_poll_interval_ms() -> u64 {
    1_000
}

fn default_ack_timeout_ms() -> u64 {
    30_000
}
