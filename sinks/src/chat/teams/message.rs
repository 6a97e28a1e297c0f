//! Records as Teams messages: an Adaptive Card 1.4 in a `message` envelope, the shape both
//! Workflows and connector webhooks accept.

use reqwest::Url;
use serde_json::{json, Value};
use weir_schemas::events::{Violation, ViolationStatus, WindowAggregate};

use crate::chat::{
    chat_time, cut, digest_fields, digests_title, ocsf_severity, render_or, status_name, MAX_DIGEST_TOP,
};
use crate::template::Template;

/// The attachment content type Teams requires for an Adaptive Card.
pub const ADAPTIVE_CARD: &str = "application/vnd.microsoft.card.adaptive";
/// The Adaptive Card version sent: 1.4 is what Teams renders everywhere (desktop, web, mobile).
pub const CARD_VERSION: &str = "1.4";
/// Longest title, in characters: a title is one line to scan, not the place for details.
pub const MAX_TITLE: usize = 250;
/// Longest fact value or description, in characters.
pub const MAX_FACT: usize = 1000;
/// Most labels shown as facts; the rest are counted in one more fact.
pub const MAX_LABELS: usize = 10;
/// Longest JSON text shown for a record that is not a Violation, in characters.
pub const MAX_RAW: usize = 16_000;
/// Labels whose http(s) value becomes the card's "Open" button, first found wins.
pub const LINK_LABELS: [&str; 4] = ["link", "url", "runbook", "runbook_url"];

/// The Adaptive Card colour of a severity (`TextBlock.color` and `Container.style` share these
/// names): critical/fatal/high `attention` (red), medium `warning` (amber), low `accent` (blue),
/// anything else `default`.
pub fn severity_color(severity_id: i32) -> &'static str {
    match severity_id {
        4..=6 => "attention",
        3 => "warning",
        2 => "accent",
        _ => "default",
    }
}

/// The link of a violation: the first of [`LINK_LABELS`] whose value is an http(s) URL. Other
/// schemes (`javascript:`, `file:`) are never turned into a button.
pub fn violation_link(violation: &Violation) -> Option<String> {
    LINK_LABELS.iter().filter_map(|name| violation.labels.get(*name)).find_map(|value| {
        let url = Url::parse(value.trim()).ok()?;
        matches!(url.scheme(), "http" | "https").then(|| url.to_string())
    })
}

fn fact(title: &str, value: &str) -> Value {
    json!({ "title": title, "value": cut(value, MAX_FACT) })
}

/// Wraps a card in the `message` envelope with one Adaptive Card attachment.
pub fn envelope(card_body: Vec<Value>, actions: Vec<Value>) -> Value {
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": card_body,
    });
    if !actions.is_empty() {
        card["actions"] = Value::Array(actions);
    }
    json!({
        "type": "message",
        "attachments": [{ "contentType": ADAPTIVE_CARD, "contentUrl": null, "content": card }],
    })
}

/// The card for a violation: a banner (severity and status, coloured; green once resolved), the
/// title `[rule] summary`, the rule's description, facts (severity, status, rule, user, key,
/// first/last seen, labels) and an "Open" button when the violation has a link. `title` and
/// `body` (the `title_template` and `body_template`) replace the title and the description.
pub fn violation_message(violation: &Violation, title: Option<&Template>, body: Option<&Template>) -> Value {
    let status = status_name(violation.status);
    let severity = ocsf_severity(violation.severity_id);
    let color = severity_color(violation.severity_id);
    let style = if violation.status == ViolationStatus::Resolved { "good" } else { color };
    let title = render_or(title, violation, || {
        if violation.summary.trim().is_empty() {
            format!("[{}] {}", violation.rule_id, violation.subject)
        } else {
            format!("[{}] {}", violation.rule_id, violation.summary)
        }
    });
    let description = render_or(body, violation, || violation.rule_description.clone());
    let mut facts = vec![
        fact("Severity", &format!("{severity} ({})", violation.severity_id)),
        fact("Status", status),
        fact("Rule", &violation.rule_id),
        fact("User", &violation.subject),
        fact("Violation key", &violation.violation_key),
        fact("First seen", &chat_time(violation.first_seen)),
        fact("Last seen", &chat_time(violation.last_seen)),
    ];
    facts.extend(violation.labels.iter().take(MAX_LABELS).map(|(k, v)| fact(&format!("Label {k}"), v)));
    if violation.labels.len() > MAX_LABELS {
        facts.push(fact("More labels", &(violation.labels.len() - MAX_LABELS).to_string()));
    }
    let mut card_body = vec![json!({
        "type": "Container",
        "style": style,
        "bleed": true,
        "items": [
            {
                "type": "TextBlock",
                "text": format!("{} · {status}", severity.to_uppercase()),
                "color": color,
                "weight": "Bolder",
                "size": "Small",
                "wrap": true,
            },
            {
                "type": "TextBlock",
                "text": cut(&title, MAX_TITLE),
                "weight": "Bolder",
                "size": "Medium",
                "wrap": true,
            },
        ],
    })];
    if !description.trim().is_empty() {
        card_body.push(json!({
            "type": "TextBlock",
            "text": cut(&description, MAX_FACT),
            "isSubtle": true,
            "wrap": true,
        }));
    }
    card_body.push(json!({ "type": "FactSet", "facts": facts }));
    let actions = violation_link(violation)
        .map(|url| vec![json!({ "type": "Action.OpenUrl", "title": "Open", "url": url })])
        .unwrap_or_default();
    envelope(card_body, actions)
}

/// The card for the WindowAggregates of one window (one metric, or all of a digest's): a
/// `DIGEST` banner with the operator (the metric when there is one, and the group) as the
/// title, a FactSet (window start and end; the count and value of one metric, or each count
/// metric of several; late events; the first record's stable `id` so a reader can tell a card
/// posted again after a replay from a new one) and, for each top-k metric, a FactSet of at most
/// [`MAX_DIGEST_TOP`] items with their counts, most frequent first.
pub fn digest_message(digests: &[WindowAggregate], id: &str) -> Value {
    if digests.is_empty() {
        return text_message(&json!("empty digest"));
    }
    let mut facts: Vec<Value> =
        digest_fields(digests).iter().map(|(title, value)| fact(&cut(title, MAX_TITLE), value)).collect();
    facts.push(fact("Digest id", id));
    let mut card_body = vec![
        json!({
            "type": "Container",
            "style": "accent",
            "bleed": true,
            "items": [
                {
                    "type": "TextBlock",
                    "text": "DIGEST",
                    "color": "accent",
                    "weight": "Bolder",
                    "size": "Small",
                    "wrap": true,
                },
                {
                    "type": "TextBlock",
                    "text": cut(&digests_title(digests), MAX_TITLE),
                    "weight": "Bolder",
                    "size": "Medium",
                    "wrap": true,
                },
            ],
        }),
        json!({ "type": "FactSet", "facts": facts }),
    ];
    for digest in digests.iter().filter(|d| !d.top.is_empty()) {
        let mut top: Vec<Value> = digest
            .top
            .iter()
            .take(MAX_DIGEST_TOP)
            .map(|item| fact(&cut(&item.item, MAX_TITLE), &item.count.to_string()))
            .collect();
        if digest.top.len() > MAX_DIGEST_TOP {
            top.push(fact("More", &(digest.top.len() - MAX_DIGEST_TOP).to_string()));
        }
        let heading = format!("Top {}", cut(&digest.metric, MAX_TITLE));
        card_body.push(json!({ "type": "TextBlock", "text": heading, "weight": "Bolder", "wrap": true }));
        card_body.push(json!({ "type": "FactSet", "facts": top }));
    }
    envelope(card_body, Vec::new())
}

/// The card for any other record: its decoded value as JSON, in a monospace block.
pub fn text_message(value: &Value) -> Value {
    envelope(
        vec![
            json!({ "type": "TextBlock", "text": "Weir record", "weight": "Bolder", "wrap": true }),
            json!({ "type": "TextBlock", "text": cut(&value.to_string(), MAX_RAW), "fontType": "Monospace", "wrap": true }),
        ],
        Vec::new(),
    )
}
