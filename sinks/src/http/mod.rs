//! Shared HTTP delivery for every HTTP sink, written once: the client, gzip bodies, rate
//! limiting, a circuit breaker and the classification of responses.
//!
//! What it guarantees:
//!
//! - every response is classified one way ([`classify`]): 2xx is delivered; 408, 429, 5xx and
//!   transport errors (including timeouts) are retryable; 401 and 403 are fatal (the credentials
//!   are wrong: stop the sink); 3xx, 404 and 405 are fatal too (the URL is wrong; redirects are
//!   never followed, so credentials never go to another host); any other 4xx is a permanent
//!   rejection of the payload, whose reason is the response body cut to 512 bytes;
//! - it never retries by itself: retries with backoff are the runner's job. A `Retry-After`
//!   (seconds or HTTP-date) is honoured by holding the *next* request until it has passed;
//! - after `circuit_breaker_failures` consecutive retryable failures it stops calling the
//!   destination for `circuit_breaker_cooldown_secs`, answering retryable errors meanwhile;
//! - requests per second are capped per sink by a token bucket;
//! - secrets are [`Secret`]s: their `Debug` and `Display` print `***`, and every reason this
//!   module produces is scrubbed of the secrets it was given.

mod classify;
mod client;
mod config;
mod limit;
#[cfg(test)]
mod tests;

pub use classify::{classify, parse_retry_after, truncate_reason, FailureClass, HttpFailure, MAX_REASON_BYTES};
pub use client::{build_client, gzip, HttpDelivery, Reply};
pub use config::{InvalidConfig, RequestConfig};
pub use limit::{CircuitBreaker, TokenBucket};
pub use weir_schemas::net::Secret;

/// The [`Sink::concurrency`](weir_schemas::component::Sink::concurrency) and
/// [`Sink::fork`](weir_schemas::component::Sink::fork) of an HTTP sink: its
/// `config.request.concurrency`, and a clone (whose [`HttpDelivery`] shares the rate limit,
/// breaker and holds). Use inside the sink's `impl Sink`; the sink must be `Clone + 'static`.
macro_rules! concurrent_by_cloning {
    () => {
        fn concurrency(&self) -> usize {
            self.config.request.concurrency
        }

        fn fork(&self) -> Option<Box<dyn weir_schemas::component::Sink>> {
            Some(Box::new(self.clone()))
        }
    };
}
pub(crate) use concurrent_by_cloning;
