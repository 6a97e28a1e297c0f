//! A token-bucket rate limiter and a circuit breaker, one of each per sink.

use std::time::Duration;

use tokio::time::Instant;

/// Requests per second, with bursts up to one second's worth (at least one request).
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilled at `per_second` tokens a second (`per_second` > 0).
    pub fn new(per_second: f64) -> Self {
        let capacity = per_second.max(1.0);
        TokenBucket { rate: per_second, capacity, tokens: capacity, last: Instant::now() }
    }

    /// Takes a token if there is one, else says how long until there is.
    pub fn try_acquire(&mut self) -> Result<(), Duration> {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }

    /// Waits for a token and takes it.
    pub async fn acquire(&mut self) {
        while let Err(wait) = self.try_acquire() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Stops calling a destination after `threshold` consecutive retryable failures, for `cooldown`.
/// After the cool-down one request goes through; if it fails too the circuit opens again.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    consecutive_failures: u32,
    open_until: Option<Instant>,
}

impl CircuitBreaker {
    /// A closed breaker; `threshold` 0 never opens.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        CircuitBreaker { threshold, cooldown, consecutive_failures: 0, open_until: None }
    }

    /// `Ok` when a request may go out; else how long the circuit stays open.
    pub fn check(&self) -> Result<(), Duration> {
        match self.open_until {
            Some(until) => {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    Ok(())
                } else {
                    Err(left)
                }
            }
            None => Ok(()),
        }
    }

    /// The destination answered (delivered, or rejected the payload): it is up.
    pub fn success(&mut self) {
        self.consecutive_failures = 0;
        self.open_until = None;
    }

    /// A retryable failure; opens the circuit once there are `threshold` in a row.
    pub fn failure(&mut self) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.threshold > 0 && self.consecutive_failures >= self.threshold {
            self.open_until = Some(Instant::now() + self.cooldown);
        }
    }

    /// Consecutive retryable failures so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }
}
