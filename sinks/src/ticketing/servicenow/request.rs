//! A Violation as ServiceNow Table API bodies: create, update, reopen and resolve.

use serde_json::{json, Map, Value};
use weir_schemas::events::{Violation, ViolationStatus};

use super::ServiceNowConfig;
use crate::chat::{cut, render_or, status_name};
use crate::encoding::rfc3339_ms;
use crate::ticketing::{plain_or_hashed, severity_word};

/// The longest `correlation_id` (the incident field holds 100 characters).
pub const MAX_CORRELATION_ID: usize = 100;
/// The longest `short_description` sent (the field is commonly 160 characters).
pub const MAX_SHORT_DESCRIPTION: usize = 160;
/// Default `urgency` per severity: critical, high, medium, low, informational.
pub const DEFAULT_URGENCY: [&str; 5] = ["1", "1", "2", "3", "3"];
/// Default `impact` per severity: critical, high, medium, low, informational.
pub const DEFAULT_IMPACT: [&str; 5] = ["1", "2", "2", "3", "3"];

/// The incident's `correlation_id`: the violation key, or `sha256:<64 hex>` of it when it is
/// longer than [`MAX_CORRELATION_ID`] or holds characters an encoded query would read as syntax
/// (`^`, `=`, spaces, ...).
pub fn correlation_id(violation: &Violation) -> String {
    plain_or_hashed(&violation.violation_key, MAX_CORRELATION_ID, ':')
}

/// The one-line title: the violation's summary, else `rule: subject`.
pub fn short_description(violation: &Violation) -> String {
    let line = if violation.summary.trim().is_empty() {
        format!("{}: {}", violation.rule_id, violation.subject)
    } else {
        violation.summary.clone()
    };
    cut(&line.replace(['\r', '\n'], " "), MAX_SHORT_DESCRIPTION)
}

/// The title written to `short_description`: the `title_template` rendered, else (unset or
/// blank) [`short_description`]; on one line and cut like it.
pub fn title(violation: &Violation, config: &ServiceNowConfig) -> String {
    match &config.title_template {
        Some(_) => {
            let line = render_or(config.title_template.as_ref(), violation, || short_description(violation));
            cut(line.replace(['\r', '\n'], " ").trim(), MAX_SHORT_DESCRIPTION)
        }
        // Exactly today's title without a template (it is not trimmed).
        None => short_description(violation),
    }
}

/// The `description` of a new incident: the `body_template` rendered, else (unset or blank) the
/// title, a blank line and the violation's [`details`].
pub fn description(violation: &Violation, config: &ServiceNowConfig) -> String {
    render_or(config.body_template.as_ref(), violation, || {
        format!("{}\n\n{}", title(violation, config), details(violation))
    })
}

/// The violation as readable lines (for `description` and work notes).
pub fn details(violation: &Violation) -> String {
    let mut lines = vec![
        format!("Rule: {} — {}", violation.rule_id, violation.rule_description),
        format!("Severity: {} ({})", severity_word(violation.severity_id), violation.severity_id),
        format!("Subject: {}", violation.subject),
        format!("Status: {}", status_name(violation.status)),
    ];
    if let Some(first) = rfc3339_ms(violation.first_seen) {
        lines.push(format!("First seen: {first}"));
    }
    if let Some(last) = rfc3339_ms(violation.last_seen) {
        lines.push(format!("Last seen: {last}"));
    }
    if !violation.event_uid.is_empty() {
        lines.push(format!("Last event: {}", violation.event_uid));
    }
    if !violation.labels.is_empty() {
        let labels: Vec<String> = violation.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        lines.push(format!("Labels: {}", labels.join(", ")));
    }
    lines.push(format!("Violation key: {}", violation.violation_key));
    lines.join("\n")
}

/// The fields every write sets from the violation: title, urgency and impact.
fn common(violation: &Violation, config: &ServiceNowConfig) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("short_description".into(), json!(title(violation, config)));
    body.insert("urgency".into(), json!(config.urgency.get(violation.severity_id, DEFAULT_URGENCY)));
    body.insert("impact".into(), json!(config.impact.get(violation.severity_id, DEFAULT_IMPACT)));
    body
}

/// `POST /api/now/table/incident`: a new incident for the violation.
pub fn create(violation: &Violation, config: &ServiceNowConfig) -> Value {
    let mut body = common(violation, config);
    body.insert("description".into(), json!(description(violation, config)));
    body.insert("correlation_id".into(), json!(correlation_id(violation)));
    body.insert("correlation_display".into(), json!(config.correlation_display));
    for (field, value) in [
        ("assignment_group", &config.assignment_group),
        ("category", &config.category),
        ("caller_id", &config.caller_id),
    ] {
        if let Some(value) = value {
            body.insert(field.into(), json!(value));
        }
    }
    body.insert(
        "work_notes".into(),
        json!(format!("Opened by {}.\n{}", config.correlation_display, details(violation))),
    );
    Value::Object(body)
}

/// `PATCH` of an open incident: the current title, urgency and impact, plus a work note for an
/// UPDATED violation. An OPEN one (a retry after a lost response, or a replay) adds no note, so
/// retrying leaves the incident as it was.
pub fn update(violation: &Violation, config: &ServiceNowConfig) -> Value {
    let mut body = common(violation, config);
    if violation.status != ViolationStatus::Open {
        body.insert("work_notes".into(), json!(format!("Seen again.\n{}", details(violation))));
    }
    Value::Object(body)
}

/// `PATCH` of a resolved incident whose violation opened again: back to `reopen_state`.
pub fn reopen(violation: &Violation, config: &ServiceNowConfig) -> Value {
    let mut body = common(violation, config);
    body.insert("state".into(), json!(config.reopen_state));
    body.insert("work_notes".into(), json!(format!("The violation opened again.\n{}", details(violation))));
    Value::Object(body)
}

/// `PATCH` resolving the incident: `state`, `close_code` and `close_notes`.
pub fn resolve(violation: &Violation, config: &ServiceNowConfig) -> Value {
    json!({
        "state": config.resolved_state,
        "close_code": config.close_code,
        "close_notes": format!("{}\n{}", config.close_notes, title(violation, config)),
        "work_notes": format!("Resolved.\n{}", details(violation)),
    })
}
