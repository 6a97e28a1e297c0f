//! Records as Slack messages (Block Kit for Violations and WindowAggregate digests, plain text
//! otherwise).

use serde_json::{json, Value};
use weir_schemas::events::{Violation, WindowAggregate};

use crate::chat::{
    chat_time, cut, digest_summary, digest_title, ocsf_severity, render_or, status_name, MAX_DIGEST_TOP,
};
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

/// A section field: bold name, value on the next line (Slack cuts a field at 2000 characters).
fn digest_field(name: &str, value: &str) -> Value {
    let text = cut(&format!("*{name}*\n{}", escape(value)), 2000);
    json!({ "type": "mrkdwn", "text": text })
}

/// The Block Kit message for a WindowAggregate (one metric of one window): a header with the
/// operator, metric and group, a section of fields (window start and end, count, value, late
/// events), the top items when the metric has them (at most [`MAX_DIGEST_TOP`], most frequent
/// first) and a context line with `id` (the record's stable id), so a reader can tell a message
/// posted again after a replay from a new one.
pub fn digest_message(digest: &WindowAggregate, id: &str) -> Value {
    let mut fields = vec![
        digest_field("Window start", &chat_time(digest.window_start)),
        digest_field("Window end", &chat_time(digest.window_end)),
        digest_field("Count", &digest.count.to_string()),
    ];
    if let Some(value) = digest.value {
        fields.push(digest_field("Value", &value.to_string()));
    }
    if digest.late_events > 0 {
        fields.push(digest_field("Late events (not counted)", &digest.late_events.to_string()));
    }
    let mut blocks = vec![
        json!({
            "type": "header",
            "text": { "type": "plain_text", "text": cut(&digest_title(digest), MAX_HEADER), "emoji": false },
        }),
        json!({ "type": "section", "fields": fields }),
    ];
    if !digest.top.is_empty() {
        let mut lines: Vec<String> = digest
            .top
            .iter()
            .take(MAX_DIGEST_TOP)
            .enumerate()
            .map(|(i, top)| format!("{}. `{}` — {}", i + 1, escape(&cut(&top.item, 200)), top.count))
            .collect();
        if digest.top.len() > MAX_DIGEST_TOP {
            lines.push(format!("… and {} more", digest.top.len() - MAX_DIGEST_TOP));
        }
        let text = format!("*Top {}*\n{}", escape(&digest.metric), lines.join("\n"));
        blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": cut(&text, MAX_SECTION) } }));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{ "type": "mrkdwn", "text": cut(&format!("Digest id: `{}`", escape(id)), 2000) }],
    }));
    json!({ "text": cut(&digest_summary(digest), MAX_SECTION), "blocks": blocks })
}

/// A plain-text message holding a record's decoded value as JSON.
pub fn text_message(value: &Value) -> Value {
    json!({ "text": cut(&value.to_string(), MAX_SECTION) })
}
