//! Configuration of the `pagerduty` sink.

use serde::Deserialize;

use crate::http::{RequestConfig, Secret};
use crate::template::Template;

/// `[sinks.NAME] type = "pagerduty"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// The Events API v2 integration (routing) key, typically `"${PAGERDUTY_ROUTING_KEY}"`;
    /// sent as `routing_key` in each event body.
    pub routing_key: Secret,
    /// The Events API base URL (the sink appends `/v2/enqueue`); for the EU service region
    /// `https://events.eu.pagerduty.com`.
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// The `payload.source` of triggers; unset: the violation's subject.
    #[serde(default)]
    pub source: Option<String>,
    /// The `client` shown in PagerDuty (the monitoring tool's name).
    #[serde(default = "default_client")]
    pub client: String,
    /// A trigger's `payload.summary` as a [`Template`] of the violation's fields, e.g.
    /// `"[{rule_id}] {summary} ({labels.team|-})"`; unset, or rendering blank: the violation's
    /// summary (`rule_id: subject` without one). Cut to PagerDuty's 1024 characters. There is no
    /// `body_template`: an event has no free text besides the summary (the violation's fields go
    /// into `custom_details` as they are).
    #[serde(default)]
    pub title_template: Option<Template>,
    /// Timeouts, rate limit, circuit breaker. PagerDuty allows about 120 events a minute per
    /// routing key.
    #[serde(default)]
    pub request: RequestConfig,
}

fn default_endpoint() -> String {
    "https://events.pagerduty.com".to_string()
}

fn default_client() -> String {
    "Weir".to_string()
}
