//! Configuration of the `slack` sink.

use serde::Deserialize;

use crate::http::{RequestConfig, Secret};

/// `[sinks.NAME] type = "slack"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming-webhook URL, `https://hooks.slack.com/services/T…/B…/…`, typically
    /// `"${SLACK_WEBHOOK_URL}"`. The URL is the credential: it never appears in errors.
    pub webhook_url: Secret,
    /// Timeouts, rate limit, circuit breaker. Slack allows about one message a second per
    /// webhook; `rate_limit_per_sec = 1` keeps under it.
    #[serde(default)]
    pub request: RequestConfig,
}
