//! What every networked component (HTTP sources and sinks) shares, written once: [`Secret`]s
//! that never show in messages, `Retry-After` parsing, response bodies cut to fit in a one-line
//! reason, and the [`api`] client (retries, rate limits, OAuth tokens).

pub mod api;
mod secret;

use std::time::{Duration, SystemTime};

pub use secret::{Secret, SecretError};

/// The longest response body kept in a reason, in bytes.
pub const MAX_REASON_BYTES: usize = 512;

/// A `Retry-After` value: delay-seconds, or an HTTP-date (a date in the past is zero).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A response body fit for a one-line reason: lossy UTF-8, whitespace collapsed, cut to
/// [`MAX_REASON_BYTES`] on a character boundary (with `…` when cut).
pub fn truncate_reason(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.len() <= MAX_REASON_BYTES {
        return text;
    }
    let mut end = MAX_REASON_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
