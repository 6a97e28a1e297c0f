//! Configuration of the `webhook` sink.

use serde::Deserialize;

use crate::http::{RequestConfig, Secret};

/// `[sinks.NAME] type = "webhook"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookSinkConfig {
    /// Where to POST (http or https). Treated as a secret too (such URLs often carry a token):
    /// it never appears in errors.
    pub url: Secret,
    /// The Standard Webhooks signing secret, `whsec_<base64 of 24–64 random bytes>`, typically
    /// `"${WEBHOOK_SECRET}"`. Unset: requests are not signed.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Also send `X-Signature: sha256=<hex HMAC of the body>` (keyed with the secret string as
    /// written) for receivers that predate Standard Webhooks.
    #[serde(default)]
    pub legacy_signature: bool,
    /// Send a JSON array of several records per request instead of one record per request.
    #[serde(default)]
    pub batch: bool,
    /// With `batch = true`, the most records in one request.
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: usize,
    /// Gzip request bodies (`Content-Encoding: gzip`; the signature covers the JSON before gzip).
    #[serde(default)]
    pub gzip: bool,
    /// Timeouts, rate limit, circuit breaker.
    #[serde(default)]
    pub request: RequestConfig,
}

fn default_batch_max_events() -> usize {
    100
}
