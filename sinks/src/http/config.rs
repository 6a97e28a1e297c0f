//! Request options shared by every HTTP sink: `[sinks.NAME.request]`.

use std::time::Duration;

use serde::Deserialize;

/// The most requests a sink may have in flight at once.
pub const MAX_CONCURRENCY: usize = 64;

/// `[sinks.NAME.request]`: timeouts, rate limit and circuit breaker. Every field is optional.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RequestConfig {
    /// Seconds a whole request (connect, send, read the response) may take; then it is retryable.
    pub timeout_secs: f64,
    /// Seconds connecting may take.
    pub connect_timeout_secs: f64,
    /// Requests per second to this destination (a token bucket; bursts up to one second's
    /// worth). Unset: no limit.
    pub rate_limit_per_sec: Option<f64>,
    /// Consecutive retryable failures after which the circuit opens; 0 disables the breaker.
    pub circuit_breaker_failures: u32,
    /// Seconds the circuit stays open (no requests, retryable errors) before one is tried again.
    pub circuit_breaker_cooldown_secs: f64,
    /// The longest `Retry-After` honoured, in seconds; longer ones are cut to this.
    pub max_retry_after_secs: f64,
    /// Requests in flight at once (1–64). Records of one key (a violation key) always go
    /// through the same request stream, so their order holds; across keys it does not.
    pub concurrency: usize,
}

impl Default for RequestConfig {
    fn default() -> Self {
        RequestConfig {
            timeout_secs: 30.0,
            connect_timeout_secs: 10.0,
            rate_limit_per_sec: None,
            circuit_breaker_failures: 5,
            circuit_breaker_cooldown_secs: 30.0,
            max_retry_after_secs: 300.0,
            concurrency: 1,
        }
    }
}

impl RequestConfig {
    /// Checks the numbers (positive, finite).
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let seconds = [
            ("request.timeout_secs", self.timeout_secs),
            ("request.connect_timeout_secs", self.connect_timeout_secs),
            ("request.circuit_breaker_cooldown_secs", self.circuit_breaker_cooldown_secs),
            ("request.max_retry_after_secs", self.max_retry_after_secs),
        ];
        for (key, value) in seconds {
            if !value.is_finite() || !(0.0..=1e9).contains(&value) {
                return Err(InvalidConfig::new(key, format!("must be a number of seconds >= 0, not {value}")));
            }
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(InvalidConfig::new(
                "request.concurrency",
                format!("must be from 1 to {MAX_CONCURRENCY}, not {}", self.concurrency),
            ));
        }
        if let Some(rate) = self.rate_limit_per_sec {
            if !rate.is_finite() || rate <= 0.0 {
                return Err(InvalidConfig::new("request.rate_limit_per_sec", format!("must be > 0, not {rate}")));
            }
        }
        Ok(())
    }

    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_secs)
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.connect_timeout_secs)
    }
}

/// A sink's configuration is wrong: `key` (relative to the sink's table, e.g. `endpoint` or
/// `request.timeout_secs`) and why. Never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct InvalidConfig {
    /// The offending option.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl InvalidConfig {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        InvalidConfig { key: key.into(), message: message.into() }
    }
}
