//! Chat and paging sinks: [`pagerduty`] (Events API v2), [`slack`] (incoming webhooks or the
//! `chat.postMessage` Web API) and [`teams`] (Workflows or legacy connector webhooks).
//!
//! All send one request per record through the shared [`crate::http::HttpDelivery`] and read
//! `io.weir.Violation` records. What they share lives here: decoding a violation and the
//! one-request-per-record delivery loop (which, like the webhook sink, leaves the records not yet
//! sent for the runner's retry as soon as one request fails retryably).

pub mod pagerduty;
pub mod slack;
pub mod teams;

use weir_schemas::component::{ComponentError, RecordFailure};
use weir_schemas::events::{Violation, ViolationStatus};

use crate::http::{FailureClass, HttpDelivery, HttpFailure, Reply};
use crate::template::Template;

/// Decodes a record's value as an `io.weir.Violation`, or says why it is not one.
pub(crate) fn decode_violation(value: &[u8]) -> Result<Violation, String> {
    weir_schemas::decode::<Violation>(value).map_err(|e| format!("not an io.weir.Violation: {e}"))
}

/// The violation as the JSON templates are rendered against: its fields by their schema names
/// (`rule_id`, `summary`, `labels.team`, `status` as `OPEN`, times as ms since the epoch).
pub(crate) fn violation_json(violation: &Violation) -> serde_json::Value {
    // Cannot fail for a Violation (string-keyed maps only); `null` would render every field as missing.
    serde_json::to_value(violation).unwrap_or_default()
}

/// `template` rendered against the violation, or `default()` when there is no template or it
/// renders blank: every destination refuses an empty title, and a violation dead-lettered for a
/// cosmetic reason would be an alert lost.
pub(crate) fn render_or(
    template: Option<&Template>,
    violation: &Violation,
    default: impl FnOnce() -> String,
) -> String {
    match template.map(|t| t.render(&violation_json(violation))) {
        Some(text) if !text.trim().is_empty() => text,
        _ => default(),
    }
}

/// The OCSF severity id as a word: 5/6 critical/fatal, 4 high, 3 medium, 2 low, 1 informational.
pub(crate) fn ocsf_severity(severity_id: i32) -> &'static str {
    match severity_id {
        6 => "fatal",
        5 => "critical",
        4 => "high",
        3 => "medium",
        2 => "low",
        1 => "informational",
        _ => "unknown",
    }
}

/// `OPEN`, `UPDATED` or `RESOLVED`.
pub(crate) fn status_name(status: ViolationStatus) -> &'static str {
    match status {
        ViolationStatus::Open => "OPEN",
        ViolationStatus::Updated => "UPDATED",
        ViolationStatus::Resolved => "RESOLVED",
    }
}

/// `text` cut to at most `max` characters (with `…` when cut).
pub(crate) fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Sends one request per record, in order. `Err(reason)` entries are permanent failures without
/// a request (the record could not be turned into one). After a retryable failure the rest are
/// not sent (retryable, "not sent"); if nothing was delivered or dead-lettered then, the whole
/// batch is a retryable error. A fatal failure stops the batch with a fatal error.
pub(crate) async fn send_each(
    delivery: &mut HttpDelivery,
    requests: Vec<Result<reqwest::RequestBuilder, String>>,
) -> Result<Vec<RecordFailure>, ComponentError> {
    send_each_checked(delivery, requests, |_| Ok(())).await
}

/// [`send_each`] for destinations that report failures inside a 2xx answer (Slack's Web API
/// `{"ok":false}`, a throttled Teams connector's `200` text): `check` reads each 2xx reply and
/// may turn it into a failure, which then counts like any other (breaker, `Retry-After` hold).
/// `check` must scrub secrets from the reasons it writes: [`HttpDelivery`] only scrubs its own.
pub(crate) async fn send_each_checked(
    delivery: &mut HttpDelivery,
    requests: Vec<Result<reqwest::RequestBuilder, String>>,
    check: impl Fn(&Reply) -> Result<(), HttpFailure>,
) -> Result<Vec<RecordFailure>, ComponentError> {
    let total = requests.len();
    let mut failures = Vec::new();
    let mut requests = requests.into_iter().enumerate();
    while let Some((index, request)) = requests.next() {
        let request = match request {
            Ok(request) => request,
            Err(reason) => {
                failures.push(RecordFailure { index, retryable: false, reason });
                continue;
            }
        };
        let failure = match delivery.send(request).await {
            Ok(reply) => match check(&reply) {
                Ok(()) => continue,
                Err(failure) => {
                    delivery.note(&failure);
                    failure
                }
            },
            Err(failure) => failure,
        };
        failures.extend(failure.for_records([index])?);
        if failure.class == FailureClass::Retryable {
            // The destination is struggling: leave the rest for the runner's retry.
            for (rest, request) in requests.by_ref() {
                let (retryable, reason) = match request {
                    Ok(_) => (true, format!("not sent: {}", failure.reason)),
                    Err(reason) => (false, reason),
                };
                failures.push(RecordFailure { index: rest, retryable, reason });
            }
            if failures.len() == total && failures.iter().all(|f| f.retryable) {
                return Err(ComponentError::retryable(failure.reason));
            }
            break;
        }
    }
    Ok(failures)
}
