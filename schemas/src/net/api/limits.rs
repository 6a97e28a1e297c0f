//! Reading the server's rate-limit signals: how long to wait before the next request.
//!
//! Vendors say it differently: `Retry-After` (seconds or HTTP-date, RFC 9110), Okta's
//! `X-Rate-Limit-Reset` (epoch seconds), CrowdStrike's `X-Ratelimit-Retryafter` (epoch seconds),
//! Netskope's `RateLimit-Reset` (seconds), Azure Resource Graph's `x-ms-user-quota-resets-after`
//! (`hh:mm:ss`). A number of seconds large enough to be a date (≥ 10⁹) is an epoch time, read
//! against the response's own `Date` so a skewed local clock does not matter.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::net::parse_retry_after;
use http::HeaderMap;

/// The longest wait any header may ask for; beyond it the value is taken as a mistake.
pub const MAX_SERVER_WAIT: Duration = Duration::from_secs(15 * 60);

/// Headers naming when the rate-limit window resets (epoch seconds or a delay in seconds).
const RESET_HEADERS: &[&str] =
    &["x-rate-limit-reset", "x-ratelimit-reset", "ratelimit-reset", "x-ratelimit-retryafter"];

/// Headers counting the requests left in the window.
const REMAINING_HEADERS: &[&str] = &["x-rate-limit-remaining", "x-ratelimit-remaining", "ratelimit-remaining"];

/// How long the server asks us to wait before the next request, if it says: after a 429 the
/// longest of `Retry-After` and the window's reset; after a 503 its `Retry-After`; after any
/// other response the reset, only when it says no requests are left in the window
/// (`*-Remaining: 0`). Capped at [`MAX_SERVER_WAIT`].
pub fn server_wait(status: u16, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let throttled = status == 429 || status == 503;
    let exhausted = REMAINING_HEADERS.iter().any(|name| text(name) == Some("0"));
    if !throttled && !exhausted {
        return None;
    }
    // The server's clock, when it sent one, for epoch values.
    let server_now = text("date").and_then(|d| httpdate::parse_http_date(d).ok()).unwrap_or(now);
    let mut wait = None;
    if throttled {
        wait = text("retry-after").and_then(|v| parse_retry_after(v, now));
        if let Some(quota) = text("x-ms-user-quota-resets-after").and_then(parse_hms) {
            wait = Some(wait.map_or(quota, |w: Duration| w.max(quota)));
        }
    }
    // Okta sends its window's reset on every response: it says when the quota refills, which
    // matters after a 429 or with nothing left, not after a 503 (an outage, not throttling).
    let quota_matters = status == 429 || exhausted;
    for name in RESET_HEADERS.iter().filter(|_| quota_matters) {
        if let Some(reset) = text(name).and_then(|v| reset_delay(v, server_now)) {
            wait = Some(wait.map_or(reset, |w: Duration| w.max(reset)));
        }
    }
    wait.map(|w| w.min(MAX_SERVER_WAIT))
}

/// A reset header's value as a delay: epoch seconds (≥ 10⁹) relative to `server_now`, else a
/// number of seconds.
fn reset_delay(value: &str, server_now: SystemTime) -> Option<Duration> {
    // Vendor text: bound it before any arithmetic (a far-future or garbage value must not panic).
    let seconds: f64 = value.parse().ok().filter(|s: &f64| s.is_finite() && *s >= 0.0 && *s < 1e13)?;
    if seconds >= 1e9 {
        let reset = UNIX_EPOCH.checked_add(Duration::from_secs_f64(seconds))?;
        Some(reset.duration_since(server_now).unwrap_or(Duration::ZERO).min(MAX_SERVER_WAIT))
    } else {
        Some(Duration::from_secs_f64(seconds).min(MAX_SERVER_WAIT))
    }
}

/// `hh:mm:ss` as a duration.
fn parse_hms(value: &str) -> Option<Duration> {
    let mut parts = value.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (parts.next()??.min(24), parts.next()??.min(60), parts.next()??.min(60));
    parts.next().is_none().then(|| Duration::from_secs(h * 3600 + m * 60 + s))
}
