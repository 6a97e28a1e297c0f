//! Configuration of the `slack` sink.

use serde::Deserialize;

use crate::http::{RequestConfig, Secret};
use crate::template::Template;

/// How the sink reaches Slack.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SlackMode {
    /// An incoming webhook (`webhook_url`): the channel is fixed by the webhook.
    #[default]
    Webhook,
    /// The Web API method `chat.postMessage` with a bot token (`token`, scope `chat:write`) and
    /// a `channel`.
    Api,
}

/// `[sinks.NAME] type = "slack"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// `"webhook"` (the default) or `"api"`.
    #[serde(default)]
    pub mode: SlackMode,
    /// Webhook mode: the incoming-webhook URL, `https://hooks.slack.com/services/T…/B…/…`,
    /// typically `"${SLACK_WEBHOOK_URL}"`. The URL is the credential: it never appears in errors.
    #[serde(default)]
    pub webhook_url: Option<Secret>,
    /// API mode: the bot token (`xoxb-…`, scope `chat:write`), sent as `Authorization: Bearer`;
    /// typically `"${SLACK_BOT_TOKEN}"`. Never appears in errors.
    #[serde(default)]
    pub token: Option<Secret>,
    /// API mode: the channel to post to, best its id (`C0123456789`); a name like `#security`
    /// also works for public channels. The bot must be a member of a private channel.
    #[serde(default)]
    pub channel: Option<String>,
    /// API mode: the Web API base URL; the sink posts to `{base_url}/api/chat.postMessage`.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// A violation's header text as a [`Template`] of the violation's fields, e.g.
    /// `"{status} {rule_id}: {summary} ({labels.team|-})"`; unset, or rendering blank:
    /// `[rule_id] summary`. Cut to Slack's 150 characters. Slack has no free-text body here (the
    /// body is the severity, status and subject fields), so there is no `body_template`.
    /// Digest messages (WindowAggregate records) keep their own header: they have no violation
    /// fields.
    #[serde(default)]
    pub title_template: Option<Template>,
    /// Timeouts, rate limit, circuit breaker. Slack allows about one message a second per
    /// webhook or channel; `rate_limit_per_sec = 1` keeps under it.
    #[serde(default)]
    pub request: RequestConfig,
}

fn default_base_url() -> String {
    "https://slack.com".to_string()
}
