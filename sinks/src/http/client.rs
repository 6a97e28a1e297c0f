//! The HTTP client and [`HttpDelivery`], which sends requests through the rate limiter and the
//! circuit breaker and classifies what comes back.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Client, RequestBuilder, StatusCode};
use tokio::time::Instant;

use super::classify::{classify, FailureClass, HttpFailure};
use super::{CircuitBreaker, InvalidConfig, RequestConfig, Secret, TokenBucket};

/// A client with the configured timeouts that never follows redirects (so credentials never go
/// to another host) and accepts gzip responses.
pub fn build_client(config: &RequestConfig) -> Result<Client, InvalidConfig> {
    config.validate()?;
    Client::builder()
        .timeout(config.timeout())
        .connect_timeout(config.connect_timeout())
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| InvalidConfig::new("request", format!("cannot build the HTTP client: {e}")))
}

/// Gzips a request body (send it with `Content-Encoding: gzip`).
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4 + 64), flate2::Compression::fast());
    encoder.write_all(body).expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// A 2xx response, read whole.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Vec<u8>,
}

/// Sends a sink's requests: waits for the rate limiter and any `Retry-After`, refuses while the
/// circuit is open, and classifies the outcome. It never retries; the runner does.
///
/// Clones share the rate limiter, the circuit breaker and the `Retry-After` hold (and the
/// connection pool): a sink running with `request.concurrency` > 1 forks itself, and its forks
/// together stay within one rate limit and back off together.
#[derive(Clone)]
pub struct HttpDelivery {
    what: String,
    client: Client,
    shared: Arc<Shared>,
    max_retry_after: Duration,
    secrets: Vec<Secret>,
}

/// What the clones of one [`HttpDelivery`] share.
struct Shared {
    /// A tokio mutex: a request waiting for a token holds it, so waiters queue fairly.
    limiter: Option<tokio::sync::Mutex<TokenBucket>>,
    breaker: Mutex<CircuitBreaker>,
    /// No request before this instant (a `Retry-After`).
    hold_until: Mutex<Option<Instant>>,
}

impl Shared {
    fn breaker(&self) -> MutexGuard<'_, CircuitBreaker> {
        // Nothing can panic while the lock is held; recover the value if something ever did.
        self.breaker.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn hold_until(&self) -> MutexGuard<'_, Option<Instant>> {
        self.hold_until.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for HttpDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpDelivery")
            .field("what", &self.what)
            .field("consecutive_failures", &self.consecutive_failures())
            .finish_non_exhaustive()
    }
}

impl HttpDelivery {
    /// Delivery to `what` (a name for reasons, e.g. `Splunk HEC`), scrubbing `secrets` from
    /// every reason it produces.
    pub fn new(what: impl Into<String>, config: &RequestConfig, secrets: Vec<Secret>) -> Result<Self, InvalidConfig> {
        let client = build_client(config)?;
        let shared = Shared {
            limiter: config.rate_limit_per_sec.map(|rate| tokio::sync::Mutex::new(TokenBucket::new(rate))),
            breaker: Mutex::new(CircuitBreaker::new(
                config.circuit_breaker_failures,
                Duration::from_secs_f64(config.circuit_breaker_cooldown_secs),
            )),
            hold_until: Mutex::new(None),
        };
        Ok(HttpDelivery {
            what: what.into(),
            client,
            shared: Arc::new(shared),
            max_retry_after: Duration::from_secs_f64(config.max_retry_after_secs),
            secrets,
        })
    }

    /// The client, to build requests with.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Consecutive retryable failures the circuit breaker has counted.
    pub fn consecutive_failures(&self) -> u32 {
        self.shared.breaker().consecutive_failures()
    }

    /// Sends a request: `Ok` with the response for a 2xx, else the classified failure.
    pub async fn send(&mut self, request: RequestBuilder) -> Result<Reply, HttpFailure> {
        let result = self.send_unscrubbed(request).await;
        result.map_err(|mut failure| {
            for secret in &self.secrets {
                failure.reason = secret.scrub(&failure.reason);
            }
            failure
        })
    }

    async fn send_unscrubbed(&mut self, request: RequestBuilder) -> Result<Reply, HttpFailure> {
        let open = {
            let breaker = self.shared.breaker();
            breaker.check().err().map(|left| (left, breaker.consecutive_failures()))
        };
        if let Some((left, failures)) = open {
            return Err(HttpFailure::retryable(format!(
                "{}: circuit open after {failures} consecutive failures; not calling for another {:.1}s",
                self.what,
                left.as_secs_f64()
            )));
        }
        // Not taken: every fork waits out the same hold.
        let hold = *self.shared.hold_until();
        if let Some(until) = hold {
            tokio::time::sleep_until(until).await;
        }
        if let Some(limiter) = &self.shared.limiter {
            limiter.lock().await.acquire().await;
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return Err(self.transport_failure(e)),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match response.bytes().await {
            Ok(body) => body.to_vec(),
            Err(e) => return Err(self.transport_failure(e)),
        };
        match classify(&self.what, status, &headers, &body, self.max_retry_after) {
            Ok(()) => {
                self.shared.breaker().success();
                Ok(Reply { status, headers, body })
            }
            Err(failure) => {
                self.note(&failure);
                Err(failure)
            }
        }
    }

    /// Updates the breaker and the `Retry-After` hold for a failure (also for failures a sink
    /// found in a 2xx body, or in a body the HTTP status alone did not explain).
    pub fn note(&mut self, failure: &HttpFailure) {
        match failure.class {
            FailureClass::Retryable => {
                self.shared.breaker().failure();
                if let Some(delay) = failure.retry_after {
                    let until = Instant::now() + delay.min(self.max_retry_after);
                    let mut hold = self.shared.hold_until();
                    // Forks may note holds out of order: keep the latest.
                    *hold = Some(hold.map_or(until, |held| held.max(until)));
                }
            }
            FailureClass::Permanent => self.shared.breaker().success(),
            FailureClass::Fatal => {}
        }
    }

    fn transport_failure(&mut self, error: reqwest::Error) -> HttpFailure {
        let error = error.without_url();
        let mut reason = if error.is_timeout() {
            format!("{}: request timed out", self.what)
        } else if error.is_connect() {
            format!("{}: could not connect", self.what)
        } else {
            format!("{}: request failed", self.what)
        };
        let mut source: Option<&dyn std::error::Error> = Some(&error);
        while let Some(e) = source {
            reason.push_str(": ");
            reason.push_str(&e.to_string());
            source = e.source();
        }
        let failure = if error.is_builder() { HttpFailure::fatal(reason) } else { HttpFailure::retryable(reason) };
        self.note(&failure);
        failure
    }
}
