//! The HTTP client and [`HttpDelivery`], which sends one request at a time through the rate
//! limiter and the circuit breaker and classifies what comes back.

use std::io::Write;
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
pub struct HttpDelivery {
    what: String,
    client: Client,
    limiter: Option<TokenBucket>,
    breaker: CircuitBreaker,
    hold_until: Option<Instant>,
    max_retry_after: Duration,
    secrets: Vec<Secret>,
}

impl std::fmt::Debug for HttpDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpDelivery").field("what", &self.what).field("breaker", &self.breaker).finish_non_exhaustive()
    }
}

impl HttpDelivery {
    /// Delivery to `what` (a name for reasons, e.g. `Splunk HEC`), scrubbing `secrets` from
    /// every reason it produces.
    pub fn new(what: impl Into<String>, config: &RequestConfig, secrets: Vec<Secret>) -> Result<Self, InvalidConfig> {
        let client = build_client(config)?;
        Ok(HttpDelivery {
            what: what.into(),
            client,
            limiter: config.rate_limit_per_sec.map(TokenBucket::new),
            breaker: CircuitBreaker::new(
                config.circuit_breaker_failures,
                Duration::from_secs_f64(config.circuit_breaker_cooldown_secs),
            ),
            hold_until: None,
            max_retry_after: Duration::from_secs_f64(config.max_retry_after_secs),
            secrets,
        })
    }

    /// The client, to build requests with.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The circuit breaker's state.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
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
        if let Err(left) = self.breaker.check() {
            return Err(HttpFailure::retryable(format!(
                "{}: circuit open after {} consecutive failures; not calling for another {:.1}s",
                self.what,
                self.breaker.consecutive_failures(),
                left.as_secs_f64()
            )));
        }
        if let Some(until) = self.hold_until.take() {
            tokio::time::sleep_until(until).await;
        }
        if let Some(limiter) = &mut self.limiter {
            limiter.acquire().await;
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
                self.breaker.success();
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
                self.breaker.failure();
                if let Some(delay) = failure.retry_after {
                    self.hold_until = Some(Instant::now() + delay.min(self.max_retry_after));
                }
            }
            FailureClass::Permanent => self.breaker.success(),
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
