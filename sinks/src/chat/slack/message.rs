//! Records as Slack messages (Block Kit for Violations and WindowAggregate digests, plain text
//! otherwise).

use serde_json::{json, Value};
use weir_schemas::events::{Violation, WindowAggregate};

use crate::chat::{
    cut, digest_fields, digests_summary, digests_title, ocsf_severity, render_or, status_name, MAX_DIGEST_TOP,
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

/// The Block Kit message for the WindowAggregates of one window (one metric, or all of a
/// digest's): a header with the operator (and the metric when there is one), a section of
/// fields (window start and end, then the count and value of one metric, or each count metric
/// of several), late events when there were any, the top items of each top-k metric (at most
/// [`MAX_DIGEST_TOP`], most frequent first) and a context line with `id` (the first record's
/// stable id), so a reader can tell a message posted again after a replay from a new one.
pub fn digest_message(digests: &[WindowAggregate], id: &str) -> Value {
    if digests.is_empty() {
        return json!({ "text": "Digest (empty)" });
    }
    let fields: Vec<Value> = digest_fields(digests).iter().map(|(name, value)| digest_field(name, value)).collect();
    // Slack allows ten fields in a section.
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": cut(&digests_title(digests), MAX_HEADER), "emoji": false },
    })];
    for chunk in fields.chunks(10) {
        blocks.push(json!({ "type": "section", "fields": chunk }));
    }
    for digest in digests.iter().filter(|d| !d.top.is_empty()) {
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
    json!({ "text": cut(&digests_summary(digests), MAX_SECTION), "blocks": blocks })
}

/// A plain-text message holding a record's decoded value as JSON.
pub fn text_message(value: &Value) -> Value {
    json!({ "text": cut(&value.to_string(), MAX_SECTION) })
}
