//! Configuration of the `servicenow` sink.

use serde::Deserialize;

use crate::http::{RequestConfig, Secret};
use crate::template::Template;
use crate::ticketing::SeverityMap;

/// `[sinks.NAME] type = "servicenow"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceNowConfig {
    /// The instance URL, e.g. `https://acme.service-now.com` (the sink appends
    /// `/api/now/table/incident`).
    pub endpoint: String,
    /// The integration user (Basic auth); it needs to read, create and write incidents (e.g. the
    /// `itil` role).
    pub username: String,
    /// The integration user's password, typically `"${SERVICENOW_PASSWORD}"`.
    pub password: Secret,
    /// `assignment_group` of new incidents (a group's `sys_id` or name); unset: not sent.
    #[serde(default)]
    pub assignment_group: Option<String>,
    /// `category` of new incidents (a choice value such as `security`); unset: not sent.
    #[serde(default)]
    pub category: Option<String>,
    /// `caller_id` of new incidents (a user's `sys_id` or user name); unset: not sent.
    #[serde(default)]
    pub caller_id: Option<String>,
    /// `correlation_display`: the source system's name shown next to the correlation id.
    #[serde(default = "default_correlation_display")]
    pub correlation_display: String,
    /// `urgency` ("1" high – "3" low) per severity; defaults: critical 1, high 1, medium 2, low 3,
    /// informational 3.
    #[serde(default)]
    pub urgency: SeverityMap,
    /// `impact` ("1" high – "3" low) per severity; defaults: critical 1, high 2, medium 2, low 3,
    /// informational 3.
    #[serde(default)]
    pub impact: SeverityMap,
    /// The `state` value a RESOLVED violation sets (ServiceNow's Resolved is `6`).
    #[serde(default = "default_resolved_state")]
    pub resolved_state: String,
    /// The `state` value a violation that opens again sets on its resolved incident (In Progress
    /// is `2`).
    #[serde(default = "default_reopen_state")]
    pub reopen_state: String,
    /// `state` values of incidents that can no longer be changed (Closed `7`, Canceled `8`): a
    /// violation that opens again gets a new incident instead.
    #[serde(default = "default_closed_states")]
    pub closed_states: Vec<String>,
    /// `close_code` set on resolving (a choice value; the base system's are e.g. "Solution
    /// provided", "Resolved by caller", "Workaround provided").
    #[serde(default = "default_close_code")]
    pub close_code: String,
    /// `close_notes` set on resolving, followed by the violation's summary.
    #[serde(default = "default_close_notes")]
    pub close_notes: String,
    /// The incident's `short_description` as a [`Template`] of the violation's fields, e.g.
    /// `"[{rule_id}] {subject} ({labels.team|-})"`; unset, or rendering blank: the violation's
    /// summary (`rule_id: subject` without one). Made one line and cut to 160 characters; set on
    /// every write, and also heads the default description and follows `close_notes`.
    #[serde(default)]
    pub title_template: Option<Template>,
    /// The `description` of new incidents as a [`Template`] (`\n` for new lines), e.g.
    /// `"{summary}\nRunbook: {labels.runbook|none}"`; unset, or rendering blank: the title, a blank
    /// line and the violation's details (rule, severity, subject, status, times, labels, key).
    /// Work notes keep the details either way.
    #[serde(default)]
    pub body_template: Option<Template>,
    /// Timeouts, rate limit, circuit breaker. ServiceNow's limits are per instance (rate limit
    /// rules), so set `rate_limit_per_sec` below your rule.
    #[serde(default)]
    pub request: RequestConfig,
}

fn default_correlation_display() -> String {
    "Weir".to_string()
}

fn default_resolved_state() -> String {
    "6".to_string()
}

fn default_reopen_state() -> String {
    "2".to_string()
}

fn default_closed_states() -> Vec<String> {
    vec!["7".to_string(), "8".to_string()]
}

fn default_close_code() -> String {
    "Solution provided".to_string()
}

fn default_close_notes() -> String {
    "Resolved by Weir: the violation no longer holds.".to_string()
}
