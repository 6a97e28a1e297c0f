//! A Violation as Jira Cloud REST v3 bodies: the label that finds its issue, the JQL search, the
//! new issue (description in Atlassian Document Format) and comments.

use serde_json::{json, Value};
use weir_schemas::events::Violation;

use super::JiraConfig;
use crate::chat::{cut, render_or, status_name};
use crate::encoding::rfc3339_ms;
use crate::ticketing::{plain_or_hashed, severity_word};

/// Jira's longest `summary`.
pub const MAX_SUMMARY: usize = 255;
/// Jira's longest label.
pub const MAX_LABEL: usize = 255;
/// Default priority names per severity: critical, high, medium, low, informational.
pub const DEFAULT_PRIORITY: [&str; 5] = ["Highest", "High", "Medium", "Low", "Lowest"];

/// The label that finds a violation's issue: `label_prefix` and the violation key, or
/// `sha256-<64 hex>` of the key when it is not plain `[A-Za-z0-9._:@-]` or would make the label
/// longer than Jira's 255 characters (labels cannot hold spaces).
pub fn key_label(violation: &Violation, label_prefix: &str) -> String {
    let room = MAX_LABEL.saturating_sub(label_prefix.len());
    format!("{label_prefix}{}", plain_or_hashed(&violation.violation_key, room, '-'))
}

/// The JQL that finds a label's issues in a project, newest first. The project key and the
/// label are checked or built to need no escaping beyond the quotes.
pub fn jql(project: &str, label: &str) -> String {
    format!("project = \"{project}\" AND labels = \"{label}\" ORDER BY created DESC")
}

/// The one-line summary: the violation's summary, else `rule: subject`, on one line, cut to 255.
pub fn summary(violation: &Violation) -> String {
    let line = if violation.summary.trim().is_empty() {
        format!("{}: {}", violation.rule_id, violation.subject)
    } else {
        violation.summary.clone()
    };
    cut(line.replace(['\r', '\n'], " ").trim(), MAX_SUMMARY)
}

/// The issue's summary: the `title_template` rendered, else (unset or blank) [`summary`]; on one
/// line and cut like it.
pub fn title(violation: &Violation, config: &JiraConfig) -> String {
    match &config.title_template {
        Some(_) => {
            let line = render_or(config.title_template.as_ref(), violation, || summary(violation));
            cut(line.replace(['\r', '\n'], " ").trim(), MAX_SUMMARY)
        }
        None => summary(violation),
    }
}

/// An ADF text node, or none for empty text (ADF refuses empty text nodes).
fn text(value: &str) -> Option<Value> {
    (!value.is_empty()).then(|| json!({"type": "text", "text": value}))
}

/// An ADF paragraph of the non-empty parts (an empty paragraph is allowed).
fn paragraph(parts: impl IntoIterator<Item = Option<Value>>) -> Value {
    let content: Vec<Value> = parts.into_iter().flatten().collect();
    json!({"type": "paragraph", "content": content})
}

/// A bullet list of `name: value` facts, skipping empty values; none when all are empty.
fn facts(items: &[(&str, String)]) -> Option<Value> {
    let items: Vec<Value> = items
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| {
            let name = json!({"type": "text", "text": format!("{name}: "), "marks": [{"type": "strong"}]});
            json!({"type": "listItem", "content": [paragraph([Some(name), text(value)])]})
        })
        .collect();
    (!items.is_empty()).then(|| json!({"type": "bulletList", "content": items}))
}

fn violation_facts(violation: &Violation) -> Vec<(&'static str, String)> {
    let labels: Vec<String> = violation.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    vec![
        ("Rule", format!("{} — {}", violation.rule_id, violation.rule_description)),
        ("Severity", format!("{} ({})", severity_word(violation.severity_id), violation.severity_id)),
        ("Subject", violation.subject.clone()),
        ("Status", status_name(violation.status).to_string()),
        ("First seen", rfc3339_ms(violation.first_seen).unwrap_or_default()),
        ("Last seen", rfc3339_ms(violation.last_seen).unwrap_or_default()),
        ("Last event", violation.event_uid.clone()),
        ("Labels", labels.join(", ")),
        ("Violation key", violation.violation_key.clone()),
    ]
}

/// An ADF document of a leading sentence, the violation's facts and, when `raw`, the violation
/// as a JSON code block.
fn document(lead: &str, violation: &Violation, raw: bool) -> Value {
    let mut content = vec![paragraph([text(lead)])];
    content.extend(facts(&violation_facts(violation)));
    if raw {
        let json = serde_json::to_string_pretty(violation).unwrap_or_default();
        if let Some(node) = text(&json) {
            content.push(json!({"type": "codeBlock", "attrs": {"language": "json"}, "content": [node]}));
        }
    }
    json!({"type": "doc", "version": 1, "content": content})
}

/// The issue's description.
pub fn description(violation: &Violation) -> Value {
    document(&summary(violation), violation, true)
}

/// The description of a new issue: the `body_template` rendered, one ADF paragraph per line, else
/// (unset or blank) the title, the facts and the violation as JSON.
pub fn templated_description(violation: &Violation, config: &JiraConfig) -> Value {
    let lead = title(violation, config);
    let rendered = render_or(config.body_template.as_ref(), violation, String::new);
    if rendered.trim().is_empty() {
        return document(&lead, violation, true);
    }
    // Paragraphs rather than one text node with `\n`: Jira shows a text node's new lines as spaces.
    let content: Vec<Value> = rendered.lines().map(|line| paragraph([text(line)])).collect();
    json!({"type": "doc", "version": 1, "content": content})
}

/// `POST /rest/api/3/issue`: a new issue for the violation, labelled with `label`.
pub fn create(violation: &Violation, config: &JiraConfig, label: &str) -> Value {
    let mut labels: Vec<&str> = config.labels.iter().map(String::as_str).collect();
    labels.push(label);
    let mut fields = json!({
        "project": {"key": config.project},
        "issuetype": {"name": config.issue_type},
        "summary": title(violation, config),
        "description": templated_description(violation, config),
        "labels": labels,
    });
    if config.set_priority {
        fields["priority"] = json!({"name": config.priority.get(violation.severity_id, DEFAULT_PRIORITY)});
    }
    json!({ "fields": fields })
}

/// `POST /rest/api/3/issue/{key}/comment` for an UPDATED violation.
pub fn updated_comment(violation: &Violation, config: &JiraConfig) -> Value {
    json!({"body": document(&format!("Seen again: {}", title(violation, config)), violation, false)})
}

/// `POST /rest/api/3/issue/{key}/comment` for a RESOLVED violation.
pub fn resolved_comment(violation: &Violation, config: &JiraConfig) -> Value {
    json!({"body": document(&format!("Resolved: {}", title(violation, config)), violation, false)})
}
