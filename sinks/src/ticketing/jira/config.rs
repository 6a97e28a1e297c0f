//! Configuration of the `jira` sink.

use serde::Deserialize;

use crate::http::{RequestConfig, Secret};
use crate::template::Template;
use crate::ticketing::SeverityMap;

/// `[sinks.NAME] type = "jira"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JiraConfig {
    /// The site URL, e.g. `https://acme.atlassian.net` (the sink appends `/rest/api/3/...`).
    pub endpoint: String,
    /// The Atlassian account's email (Basic auth user).
    pub email: String,
    /// The account's API token, typically `"${JIRA_API_TOKEN}"`.
    pub api_token: Secret,
    /// The project key issues are created in and searched, e.g. `SEC`.
    pub project: String,
    /// The issue type's name.
    #[serde(default = "default_issue_type")]
    pub issue_type: String,
    /// Labels every new issue gets, besides the violation's own label.
    #[serde(default = "default_labels")]
    pub labels: Vec<String>,
    /// The prefix of the label that identifies a violation's issue: the prefix and the violation
    /// key (or `sha256-<hex>` of a key that is long or not plain `[A-Za-z0-9._:@-]`).
    #[serde(default = "default_label_prefix")]
    pub label_prefix: String,
    /// Priority names per severity; defaults: critical Highest, high High, medium Medium, low Low,
    /// informational Lowest.
    #[serde(default)]
    pub priority: SeverityMap,
    /// Whether new issues get a priority at all (false when the create screen has no priority).
    #[serde(default = "default_true")]
    pub set_priority: bool,
    /// The transition a RESOLVED violation takes, by transition name or target status name
    /// (case-insensitive).
    #[serde(default = "default_done_transition")]
    pub done_transition: String,
    /// Seconds to wait for Jira's search index before creating again after a create whose answer
    /// was lost (a timeout, a broken connection or a 5xx): the search is eventually consistent,
    /// so an issue created moments ago may not be found yet.
    #[serde(default = "default_search_settle_secs")]
    pub search_settle_secs: f64,
    /// The issue's `summary` as a [`Template`] of the violation's fields, e.g.
    /// `"[{rule_id}] {subject} ({labels.team|-})"`; unset, or rendering blank: the violation's
    /// summary (`rule_id: subject` without one). Made one line and cut to Jira's 255 characters;
    /// also leads the default description and the comments.
    #[serde(default)]
    pub title_template: Option<Template>,
    /// The `description` of new issues as a [`Template`], one paragraph per line (`\n`), e.g.
    /// `"{summary}\nRunbook: {labels.runbook|none}"`; unset, or rendering blank: the title, the
    /// violation's facts and the violation as a JSON code block. Comments keep the facts either way.
    #[serde(default)]
    pub body_template: Option<Template>,
    /// Timeouts, rate limit, circuit breaker.
    #[serde(default)]
    pub request: RequestConfig,
}

fn default_issue_type() -> String {
    "Task".to_string()
}

fn default_labels() -> Vec<String> {
    vec!["weir".to_string()]
}

fn default_label_prefix() -> String {
    "weir-".to_string()
}

fn default_true() -> bool {
    true
}

fn default_done_transition() -> String {
    "Done".to_string()
}

fn default_search_settle_secs() -> f64 {
    30.0
}
