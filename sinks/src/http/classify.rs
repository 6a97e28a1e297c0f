//! What a response (or a transport error) means for the records it carried.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use weir_schemas::component::{ComponentError, RecordFailure};

pub use weir_schemas::net::{parse_retry_after, truncate_reason, MAX_REASON_BYTES};

/// How bad a failed request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    /// Worth sending again later: 408, 429, 5xx, a transport error or timeout, an open circuit.
    Retryable,
    /// The destination rejected the payload (400, 413, 422, ...): sending it again will not help;
    /// dead-letter it.
    Permanent,
    /// The sink is misconfigured (401/403 credentials, a wrong URL): stop the sink.
    Fatal,
}

/// A request that did not deliver. Its `reason` never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpFailure {
    /// Retryable, permanent or fatal.
    pub class: FailureClass,
    /// The response status, when there was a response.
    pub status: Option<StatusCode>,
    /// One line: what happened, with the response body cut to [`MAX_REASON_BYTES`].
    pub reason: String,
    /// The `Retry-After` the destination asked for, if any (already capped).
    pub retry_after: Option<Duration>,
    /// The whole response body, for sinks that read error details from it (HEC's
    /// `invalid-event-number`).
    pub body: Vec<u8>,
}

impl HttpFailure {
    /// A retryable failure without a response.
    pub fn retryable(reason: impl Into<String>) -> Self {
        HttpFailure {
            class: FailureClass::Retryable,
            status: None,
            reason: reason.into(),
            retry_after: None,
            body: Vec::new(),
        }
    }

    /// A fatal failure without a response.
    pub fn fatal(reason: impl Into<String>) -> Self {
        HttpFailure {
            class: FailureClass::Fatal,
            status: None,
            reason: reason.into(),
            retry_after: None,
            body: Vec::new(),
        }
    }

    /// The failure as a batch-level error: retryable or fatal. A permanent failure becomes fatal
    /// here; use [`HttpFailure::for_records`] to dead-letter the records instead.
    pub fn into_component_error(self) -> ComponentError {
        match self.class {
            FailureClass::Retryable => ComponentError::retryable(self.reason),
            FailureClass::Permanent | FailureClass::Fatal => ComponentError::fatal(self.reason),
        }
    }

    /// The failure applied to every record of `indexes`: permanent or retryable per-record
    /// failures, or a fatal error for the batch.
    pub fn for_records(&self, indexes: impl IntoIterator<Item = usize>) -> Result<Vec<RecordFailure>, ComponentError> {
        let retryable = match self.class {
            FailureClass::Fatal => return Err(ComponentError::fatal(self.reason.clone())),
            FailureClass::Retryable => true,
            FailureClass::Permanent => false,
        };
        Ok(indexes.into_iter().map(|index| RecordFailure { index, retryable, reason: self.reason.clone() }).collect())
    }
}

/// Classifies a response: `Ok(())` for 2xx, else the failure. `what` names the destination in
/// the reason (e.g. `Splunk HEC`); `max_retry_after` caps the `Retry-After` honoured.
pub fn classify(
    what: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    max_retry_after: Duration,
) -> Result<(), HttpFailure> {
    if status.is_success() {
        return Ok(());
    }
    let code = status.as_u16();
    let class = match code {
        408 | 429 | 500..=599 => FailureClass::Retryable,
        300..=399 | 401 | 403 | 404 | 405 => FailureClass::Fatal,
        400..=499 => FailureClass::Permanent,
        // 1xx as a final status: the destination is not behaving; try again later.
        _ => FailureClass::Retryable,
    };
    let mut reason = format!("{what} answered HTTP {status}");
    match class {
        FailureClass::Fatal if code == 401 || code == 403 => {
            reason.push_str(" (the credentials were refused: check the token or key)");
        }
        FailureClass::Fatal if (300..400).contains(&code) => {
            reason.push_str(" (a redirect, not followed: configure the final URL)");
        }
        FailureClass::Fatal => reason.push_str(" (check the configured URL)"),
        _ => {}
    }
    let text = truncate_reason(body);
    if !text.is_empty() {
        reason.push_str(": ");
        reason.push_str(&text);
    }
    let retry_after = if class == FailureClass::Retryable {
        headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()))
            .map(|d| d.min(max_retry_after))
    } else {
        None
    };
    if let Some(delay) = retry_after {
        reason.push_str(&format!(" (retry after {}s)", delay.as_secs_f64()));
    }
    Err(HttpFailure { class, status: Some(status), reason, retry_after, body: body.to_vec() })
}
