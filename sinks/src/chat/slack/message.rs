//! Records as Slack messages (Block Kit for Violations, plain text otherwise).

use serde_json::{json, Value};
use weir_schemas::events::Violation;

use crate::chat::{cut, ocsf_severity, render_or, status_name};
use crate::template::Template;

/// Slack's longest `header` text.
pub const MAX_HEADER: usize = 150;
/// Slack's longest `section` text (also used for a field and for a plain-text message).
pub const MAX_SECTION: usize = 3000;

/// Escapes `&`, `<` and `>` for Slack `mrkdwn` text.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The Block Kit message for a violation; `title` (the `title_template`) makes the header text.
pub fn violation_message(violation: &Violation, title: Option<&Template>) -> Value {
    let status = status_name(violation.status);
    let header = render_or(title, violation, || format!("[{}] {}", violation.rule_id, violation.summary));
    let text = format!("{status} {}: {}", violation.rule_id, violation.summary);
    let field = |name: &str, value: &str| json!({ "type": "mrkdwn", "text": cut(&format!("*{name}*\n{}", escape(value)), 2000) });
    json!({
        "text": cut(&text, MAX_SECTION),
        "blocks": [
            {
                "type": "header",
                "text": { "type": "plain_text", "text": cut(&header, MAX_HEADER), "emoji": false },
            },
            {
                "type": "section",
                "fields": [
                    field("Severity", &format!("{} ({})", ocsf_severity(violation.severity_id), violation.severity_id)),
                    field("Status", status),
                    field("Subject", &violation.subject),
                ],
            },
            {
                "type": "context",
                "elements": [
                    { "type": "mrkdwn", "text": cut(&format!("Violation key: `{}`", escape(&violation.violation_key)), 2000) },
                ],
            },
        ],
    })
}

/// A plain-text message holding a record's decoded value as JSON.
pub fn text_message(value: &Value) -> Value {
    json!({ "text": cut(&value.to_string(), MAX_SECTION) })
}
