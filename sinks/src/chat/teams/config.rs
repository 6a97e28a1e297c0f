//! Configuration of the `teams` sink.

use serde::Deserialize;

use crate::http::{RequestConfig, Secret};
use crate::template::Template;

/// Which kind of Teams webhook `url` is.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TeamsKind {
    /// A Workflows (Power Automate) webhook, "Post to a channel when a webhook request is
    /// received": `https://….logic.azure.com/workflows/…` or `https://….api.powerplatform.com/…`.
    /// Answers 202 Accepted and posts asynchronously.
    #[default]
    Workflows,
    /// A legacy Office 365 connector incoming webhook, `https://….webhook.office.com/webhookb2/…`.
    /// Microsoft is retiring these: use Workflows. Answers 200 `1`; throttling comes back as a 200
    /// whose text says `HTTP error 429`.
    Connector,
}

/// `[sinks.NAME] type = "teams"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TeamsConfig {
    /// The webhook URL, typically `"${TEAMS_WEBHOOK_URL}"`. It carries its own credential (the
    /// Workflows `sig`, the connector's path): it never appears in errors.
    pub url: Secret,
    /// `"workflows"` (the default) or `"connector"`.
    #[serde(default)]
    pub kind: TeamsKind,
    /// The largest message body sent, in bytes. Teams refuses messages over about 28 KB
    /// (unverified); a larger one is dead-lettered without a request.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// A violation card's title as a [`Template`] of the violation's fields, e.g.
    /// `"{rule_id} on {subject} ({labels.team|-})"`; unset, or rendering blank: `[rule_id] summary`
    /// (`[rule_id] subject` without a summary). Cut to 250 characters. Digest cards
    /// (WindowAggregate records) keep their own title and text: they have no violation fields.
    #[serde(default)]
    pub title_template: Option<Template>,
    /// The text under the title as a [`Template`], e.g. `"{rule_description} Runbook: {labels.runbook|none}"`;
    /// unset, or rendering blank: the rule's description (none when that is empty). Cut to 1000
    /// characters.
    #[serde(default)]
    pub body_template: Option<Template>,
    /// Timeouts, rate limit, circuit breaker. With `kind = "connector"` and no
    /// `rate_limit_per_sec`, the sink keeps to 2 requests a second (a connector allows 4 a second
    /// and 60 per 30 seconds).
    #[serde(default)]
    pub request: RequestConfig,
}

/// Teams' documented message size limit (about 28 KB, unverified), with room for the envelope
/// overhead Teams adds.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 28_000;

fn default_max_message_bytes() -> usize {
    DEFAULT_MAX_MESSAGE_BYTES
}
