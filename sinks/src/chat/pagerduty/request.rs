//! A Violation as a PagerDuty Events API v2 event.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use weir_schemas::events::{Violation, ViolationStatus};

use crate::chat::{cut, ocsf_severity, render_or, status_name};
use crate::encoding::rfc3339_ms;
use crate::template::Template;

/// PagerDuty's longest `dedup_key`.
pub const MAX_DEDUP_KEY: usize = 255;
/// PagerDuty's longest `payload.summary`.
pub const MAX_SUMMARY: usize = 1024;

/// The PagerDuty severity of an OCSF severity id: 5/6 critical, 4 error, 3 warning, else info.
pub fn severity(severity_id: i32) -> &'static str {
    match severity_id {
        5 | 6 => "critical",
        4 => "error",
        3 => "warning",
        _ => "info",
    }
}

/// The `dedup_key` of a violation: its key, or `sha256:<hex>` of it when longer than 255 bytes.
pub fn dedup_key(violation: &Violation) -> String {
    let key = &violation.violation_key;
    if key.len() <= MAX_DEDUP_KEY {
        return key.clone();
    }
    let hex: String = Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The event body: `trigger` for OPEN/UPDATED (with a payload), `resolve` for RESOLVED.
/// `source` unset: the violation's subject. `title` (the `title_template`) makes the summary.
pub fn event(
    violation: &Violation,
    routing_key: &str,
    source: Option<&str>,
    client: &str,
    title: Option<&Template>,
) -> Value {
    let dedup_key = dedup_key(violation);
    if violation.status == ViolationStatus::Resolved {
        return json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key,
        });
    }
    let summary = render_or(title, violation, || {
        if violation.summary.trim().is_empty() {
            format!("{}: {}", violation.rule_id, violation.subject)
        } else {
            violation.summary.clone()
        }
    });
    let source = match source {
        Some(source) => source.to_string(),
        None if violation.subject.is_empty() => "weir".to_string(),
        None => violation.subject.clone(),
    };
    let mut payload = json!({
        "summary": cut(&summary, MAX_SUMMARY),
        "source": source,
        "severity": severity(violation.severity_id),
        "class": violation.rule_id,
        "custom_details": {
            "violation_key": violation.violation_key,
            "rule_id": violation.rule_id,
            "rule_description": violation.rule_description,
            "status": status_name(violation.status),
            "severity_id": violation.severity_id,
            "ocsf_severity": ocsf_severity(violation.severity_id),
            "subject": violation.subject,
            "event_uid": violation.event_uid,
            "first_seen": rfc3339_ms(violation.first_seen),
            "last_seen": rfc3339_ms(violation.last_seen),
            "labels": violation.labels,
        },
    });
    if let Some(timestamp) = rfc3339_ms(violation.last_seen) {
        payload["timestamp"] = json!(timestamp);
    }
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": payload,
        "client": client,
    })
}
