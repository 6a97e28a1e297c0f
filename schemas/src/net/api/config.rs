//! The `[sources.NAME.http]` options every API-polling source accepts.

use std::time::Duration;

use serde::Deserialize;

/// How a source talks to its API. Every field has a default, so the table may be left out.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpOptions {
    /// Timeout of one request, connection included.
    pub timeout_secs: u64,
    /// How long one request is retried (transport errors, 429, 5xx) before the poll fails with a
    /// retryable error; the runner then polls again later from the same cursor.
    pub max_retry_secs: u64,
    /// First backoff delay between retries, in milliseconds (doubling, jittered, up to 60 s).
    pub initial_backoff_ms: u64,
    /// At least this long between two requests, in milliseconds (e.g. 500 for AWS LookupEvents'
    /// 2 requests/s). 0: only the server's signals pace requests.
    pub min_interval_ms: u64,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions { timeout_secs: 30, max_retry_secs: 300, initial_backoff_ms: 500, min_interval_ms: 0 }
    }
}

impl HttpOptions {
    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.max(1))
    }
}
