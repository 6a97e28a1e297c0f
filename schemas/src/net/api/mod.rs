//! The HTTP API client every networked component shares, written once (sources poll vendor
//! APIs with it; sinks get OAuth tokens with it): the client with retries,
//! server rate-limit signals, authentication (static tokens, OAuth 2.0 client credentials, JWT
//! assertions; AWS SigV4 signing lives with the sources that need it) and the options a config
//! can set.
//!
//! What it guarantees:
//!
//! - a request is retried with jittered exponential backoff (the `backoff` crate) on transport
//!   errors, timeouts, truncated bodies, 408, 429 and 5xx (and on a vendor's own throttling
//!   answer a request names with [`ApiRequest::retry_when`], e.g. AWS's 400
//!   `ThrottlingException`), waiting at least as long as the server asks (`Retry-After`,
//!   `X-Rate-Limit-Reset`, `X-Ratelimit-Retryafter`, `RateLimit-Reset`,
//!   `x-ms-user-quota-resets-after`; epoch values are read against the server's `Date`), for up
//!   to [`HttpOptions::max_retry_secs`]; then it reports a retryable error and the runner polls
//!   again later, from the same cursor;
//! - when a response says no requests are left in the window (`*-Remaining: 0`), the next request
//!   waits for the reset instead of earning a 429;
//! - a 401 drops the cached access token and the request is sent once more with a fresh one; a
//!   second 401, or a 403, is fatal (the credentials are wrong or lack a scope: retrying cannot
//!   help); other 4xx are fatal too (the request, so the configuration, is wrong);
//! - schemes that sign each request (AWS SigV4, [`SigV4Auth`]) get the exact method, URL, headers
//!   and body bytes through [`Auth::sign`], on every attempt;
//! - redirects are never followed, so credentials never go to another host;
//! - secrets are [`Secret`]s, sent in headers marked sensitive; no error or log line this module
//!   writes holds one.

mod auth;
mod client;
mod config;
mod limits;
#[cfg(test)]
mod tests;

pub use auth::{Auth, HeaderAuth, JwtKey, NoAuth, OAuthClientCredentials, OAuthGrant, RequestToSign};
pub use client::{ApiClient, ApiError, ApiRequest, ApiResponse};
pub use config::HttpOptions;
pub use limits::server_wait;
