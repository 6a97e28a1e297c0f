//! The API client: one request, retried until it succeeds, fails for good, or runs out of time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::component::ComponentError;
use crate::net::truncate_reason;
use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use url::Url;

use super::auth::{Auth, RequestToSign};
use super::limits::server_wait;
use super::HttpOptions;

/// The longest backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A request the client can send again (retries, a refreshed token).
#[derive(Clone)]
pub struct ApiRequest {
    method: Method,
    url: Url,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<Body>,
    retry_unsure: bool,
    /// A vendor's own "try again" answer outside 408/429/5xx (see [`ApiRequest::retry_when`]).
    retry_when: Option<fn(&ApiResponse) -> bool>,
}

/// A request body. Deliberately not `Debug`: a form may hold a client secret.
#[derive(Clone)]
enum Body {
    Json(Vec<u8>),
    Form(Vec<(String, String)>),
}

impl ApiRequest {
    /// A GET of `url`, accepting JSON.
    pub fn get(url: Url) -> Self {
        ApiRequest::new(Method::GET, url)
    }

    /// A POST of `body` as JSON.
    pub fn post_json(url: Url, body: &impl serde::Serialize) -> Self {
        let mut request = ApiRequest::new(Method::POST, url);
        request.body = Some(Body::Json(serde_json::to_vec(body).expect("JSON values serialize")));
        request
    }

    /// A POST of an `application/x-www-form-urlencoded` form (its values may be secrets: the
    /// body is never logged).
    pub fn post_form(url: Url, fields: Vec<(String, String)>) -> Self {
        let mut request = ApiRequest::new(Method::POST, url);
        request.body = Some(Body::Form(fields));
        request
    }

    fn new(method: Method, url: Url) -> Self {
        let accept = (http::header::ACCEPT, HeaderValue::from_static("application/json"));
        ApiRequest { method, url, headers: vec![accept], body: None, retry_unsure: true, retry_when: None }
    }

    /// Also retries a non-2xx response `is_transient` recognises: for vendors that signal
    /// throttling with another status than 429 (AWS JSON APIs answer HTTP 400 with
    /// `{"__type":"ThrottlingException"}`). It is waited for like a 429 (backoff, and any
    /// `Retry-After`), within the same retry budget. 401 and 403 are never passed to it.
    pub fn retry_when(mut self, is_transient: fn(&ApiResponse) -> bool) -> Self {
        self.retry_when = Some(is_transient);
        self
    }

    /// Adds a header (not a secret: those come from [`Auth`]). A `Content-Type` given here
    /// replaces the body's default one (`application/json` for [`ApiRequest::post_json`]).
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((HeaderName::from_static(name), value));
        }
        self
    }

    /// Marks a request the server acts on when it answers (e.g. Netskope's `operation=next`,
    /// which moves a server-side cursor): after a transport error or a truncated body it is
    /// unknown whether the server moved on, so the client does not send it again but returns
    /// [`ApiError::Unsure`] and lets the caller recover (Netskope: `operation=resend`).
    pub fn not_repeatable(mut self) -> Self {
        self.retry_unsure = false;
        self
    }

    /// The URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// `METHOD scheme://host/path`, for messages: the query is left out (it may carry cursors
    /// and filters that make lines long, though never secrets).
    pub fn describe(&self) -> String {
        let mut url = self.url.clone();
        url.set_query(None);
        format!("{} {url}", self.method)
    }
}

/// A response with its whole body read.
#[derive(Clone, Debug)]
pub struct ApiResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// The body, exactly as received.
    pub body: Vec<u8>,
}

impl ApiResponse {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of a header, each split at top-level commas (RFC 9110 allows both a repeated
    /// header and one comma-joined value). Commas inside `<...>` are kept.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        let mut values = Vec::new();
        for value in self.headers.get_all(name).iter().filter_map(|v| v.to_str().ok()) {
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in value.char_indices() {
                match c {
                    '<' => depth += 1,
                    '>' => depth -= 1,
                    ',' if depth == 0 => {
                        values.push(value[start..i].trim().to_string());
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            values.push(value[start..].trim().to_string());
        }
        values.retain(|v| !v.is_empty());
        values
    }

    /// The URL of the `Link` header's `rel="next"` entry (RFC 8288), if any.
    pub fn next_link(&self) -> Option<String> {
        self.header_values("link").into_iter().find_map(|link| {
            let (target, params) = link.split_once('>')?;
            let target = target.trim().strip_prefix('<')?;
            let is_next = params.split(';').any(|p| {
                let p = p.trim();
                p.strip_prefix("rel=").is_some_and(|rel| rel.trim_matches('"').split_whitespace().any(|r| r == "next"))
            });
            is_next.then(|| target.to_string())
        })
    }

    /// The body as JSON of type `T`, or why not (for a dead letter's reason).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("the response body is not the expected JSON: {e}"))
    }
}

/// Why a request failed for good. Messages never hold a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Transport errors, 429 or 5xx for longer than the retry budget: try the poll again later.
    #[error("{what}: still failing after {attempts} attempt(s): {reason}")]
    Unavailable {
        /// The request, without its query.
        what: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        reason: String,
    },
    /// A request marked [`ApiRequest::not_repeatable`] failed in a way that leaves it unknown
    /// whether the server acted on it.
    #[error("{what}: {reason} (the server may have acted on the request)")]
    Unsure {
        /// The request, without its query.
        what: String,
        /// What happened.
        reason: String,
    },
    /// 401 (after a token refresh) or 403: the credentials are wrong or lack a permission.
    #[error("{what}: HTTP {status}: the credentials were refused: {reason}")]
    Unauthorized {
        /// The request, without its query.
        what: String,
        /// 401 or 403.
        status: u16,
        /// The response body, cut short.
        reason: String,
    },
    /// Another 4xx, a redirect, or an unusable answer: the request (so the configuration) is
    /// wrong and repeating it cannot help.
    #[error("{what}: HTTP {status}: {reason}")]
    Rejected {
        /// The request, without its query.
        what: String,
        /// The status.
        status: u16,
        /// The response body, cut short.
        reason: String,
    },
    /// The request could not be built or its answer read (bad URL, bad key).
    #[error("{what}: {reason}")]
    Invalid {
        /// What was being done.
        what: String,
        /// Why it failed.
        reason: String,
    },
}

impl ApiError {
    /// Whether a later poll may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ApiError::Unavailable { .. } | ApiError::Unsure { .. })
    }

    /// The error for the runner, prefixed with the source's name: retryable or fatal.
    pub fn for_source(&self, source: &str) -> ComponentError {
        let message = format!("source {source}: {self}");
        if self.is_retryable() {
            ComponentError::retryable(message)
        } else {
            ComponentError::fatal(message)
        }
    }
}

/// One attempt's failure inside the retry loop.
enum Attempt {
    /// Worth another attempt, after at least `wait` if the server said so.
    Retry { reason: String, wait: Option<Duration>, unsure: bool },
    /// Final.
    Fail(ApiError),
}

/// An HTTP client for one source: retries, rate-limit pacing and auth (see the module docs).
pub struct ApiClient {
    http: reqwest::Client,
    options: HttpOptions,
    /// No request leaves before this instant (a rate-limit reset, `min_interval_ms`).
    not_before: Mutex<Option<Instant>>,
    /// Requests sent again after a retryable failure, for the source's metrics.
    retries: AtomicU64,
}

impl ApiClient {
    /// A client with these options. Redirects are never followed.
    pub fn new(options: &HttpOptions) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(options.timeout())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Invalid { what: "building the HTTP client".into(), reason: e.to_string() })?;
        Ok(ApiClient { http, options: options.clone(), not_before: Mutex::new(None), retries: AtomicU64::new(0) })
    }

    /// Requests sent again so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Sends `request` with `auth`'s credentials until it succeeds (2xx) or fails for good.
    pub async fn send(&self, request: &ApiRequest, auth: &dyn Auth) -> Result<ApiResponse, ApiError> {
        self.send_parsed(request, auth, |_| Ok(())).await.map(|(response, ())| response)
    }

    /// Like [`ApiClient::send`], but a 2xx whose body `parse` refuses (a truncated or garbled
    /// page) counts as a failed attempt too; after the retry budget it is returned as
    /// `Err((response, reason))` for the caller to dead-letter.
    pub async fn send_parsed<T>(
        &self,
        request: &ApiRequest,
        auth: &dyn Auth,
        parse: impl Fn(&ApiResponse) -> Result<T, String> + Sync,
    ) -> Result<(ApiResponse, T), ApiError> {
        match self.send_inner(request, auth, &parse).await? {
            Ok(parsed) => Ok(parsed),
            Err((_, reason)) => {
                Err(ApiError::Unavailable { what: request.describe(), attempts: self.max_parse_attempts(), reason })
            }
        }
    }

    /// Like [`ApiClient::send_parsed`], but an unparsable body is handed back after
    /// a few attempts instead of failing the poll: the source dead-letters it and moves on.
    pub async fn send_page<T>(
        &self,
        request: &ApiRequest,
        auth: &dyn Auth,
        parse: impl Fn(&ApiResponse) -> Result<T, String> + Sync,
    ) -> Result<Result<(ApiResponse, T), (ApiResponse, String)>, ApiError> {
        self.send_inner(request, auth, &parse).await
    }

    fn max_parse_attempts(&self) -> u32 {
        3
    }

    async fn send_inner<T>(
        &self,
        request: &ApiRequest,
        auth: &dyn Auth,
        parse: &(dyn Fn(&ApiResponse) -> Result<T, String> + Sync),
    ) -> Result<Result<(ApiResponse, T), (ApiResponse, String)>, ApiError> {
        let what = request.describe();
        let mut backoff = ExponentialBackoff {
            initial_interval: Duration::from_millis(self.options.initial_backoff_ms.max(1)),
            current_interval: Duration::from_millis(self.options.initial_backoff_ms.max(1)),
            max_interval: MAX_BACKOFF,
            max_elapsed_time: Some(Duration::from_secs(self.options.max_retry_secs)),
            ..ExponentialBackoff::default()
        };
        let mut attempts = 0u32;
        let mut parse_failures = 0u32;
        let mut refreshed = false;
        loop {
            self.pace().await;
            attempts += 1;
            let outcome = match self.attempt(request, auth, &what).await {
                Ok(response) => match classify(&what, response, auth, &mut refreshed, request.retry_when) {
                    Ok(response) => match parse(&response) {
                        Ok(parsed) => return Ok(Ok((response, parsed))),
                        Err(reason) => {
                            parse_failures += 1;
                            if !request.retry_unsure {
                                return Err(ApiError::Unsure { what, reason });
                            }
                            if parse_failures >= self.max_parse_attempts() {
                                return Ok(Err((response, reason)));
                            }
                            Attempt::Retry { reason, wait: None, unsure: true }
                        }
                    },
                    Err(attempt) => attempt,
                },
                Err(attempt) => attempt,
            };
            match outcome {
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry { reason, unsure: true, .. } if !request.retry_unsure => {
                    return Err(ApiError::Unsure { what, reason });
                }
                Attempt::Retry { reason, wait, .. } => {
                    let Some(delay) = backoff.next_backoff() else {
                        return Err(ApiError::Unavailable { what, attempts, reason });
                    };
                    let delay = wait.map_or(delay, |w| w.max(delay));
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(request = %what, %reason, retry_in_ms = delay.as_millis() as u64, "retrying");
                    self.hold_until(Instant::now() + delay);
                }
            }
        }
    }

    /// One attempt: the response with its whole body, or why there is none.
    async fn attempt(&self, request: &ApiRequest, auth: &dyn Auth, what: &str) -> Result<ApiResponse, Attempt> {
        let credentials = auth.headers(self).await.map_err(|e| {
            if e.is_retryable() {
                Attempt::Retry { reason: format!("getting an access token: {e}"), wait: None, unsure: false }
            } else {
                Attempt::Fail(e)
            }
        })?;
        let mut headers = request.headers.clone();
        let body = match &request.body {
            Some(Body::Json(bytes)) => Some((bytes.clone(), "application/json")),
            // Encoded as reqwest's `form` would (both use `form_urlencoded`), so a signer sees
            // the very bytes sent.
            Some(Body::Form(fields)) => Some((
                url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish().into_bytes(),
                "application/x-www-form-urlencoded",
            )),
            None => None,
        };
        if let Some((_, content_type)) = &body {
            if !headers.iter().any(|(name, _)| name == http::header::CONTENT_TYPE) {
                headers.push((http::header::CONTENT_TYPE, HeaderValue::from_static(content_type)));
            }
        }
        let to_sign = RequestToSign {
            method: &request.method,
            url: &request.url,
            headers: &headers,
            body: body.as_ref().map_or(&[][..], |(bytes, _)| bytes.as_slice()),
        };
        let signature = auth.sign(&to_sign).map_err(Attempt::Fail)?;
        let mut builder = self.http.request(request.method.clone(), request.url.clone());
        for (name, value) in headers.iter().chain(&credentials).chain(&signature) {
            builder = builder.header(name, value);
        }
        if let Some((bytes, _)) = body {
            builder = builder.body(bytes);
        }
        let response = builder.send().await.map_err(|e| Attempt::Retry {
            reason: transport_reason(&e),
            wait: None,
            // A request that never connected was certainly not acted on.
            unsure: !e.is_connect(),
        })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if let Some(wait) = server_wait(status, &headers, SystemTime::now()) {
            // Pace every later request, whatever this one's outcome.
            self.hold_until(Instant::now() + wait);
        }
        let body = response.bytes().await.map_err(|e| Attempt::Retry {
            reason: format!("the response body was cut off: {}", transport_reason(&e)),
            wait: None,
            unsure: true,
        })?;
        tracing::debug!(request = %what, status, bytes = body.len(), "response");
        Ok(ApiResponse { status, headers, body: body.to_vec() })
    }

    /// Waits until requests may leave again, then reserves the minimum interval.
    async fn pace(&self) {
        let until = *self.not_before.lock().expect("pace lock poisoned");
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
        if self.options.min_interval_ms > 0 {
            self.hold_until(Instant::now() + Duration::from_millis(self.options.min_interval_ms));
        }
    }

    fn hold_until(&self, until: Instant) {
        let mut not_before = self.not_before.lock().expect("pace lock poisoned");
        if not_before.is_none_or(|current| current < until) {
            *not_before = Some(until);
        }
    }
}

/// What a response means: success, or how to fail.
fn classify(
    what: &str,
    response: ApiResponse,
    auth: &dyn Auth,
    refreshed: &mut bool,
    retry_when: Option<fn(&ApiResponse) -> bool>,
) -> Result<ApiResponse, Attempt> {
    let status = response.status;
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let reason = truncate_reason(&response.body);
    let reason = if reason.is_empty() { "(empty body)".to_string() } else { reason };
    let what = what.to_string();
    let transient = status != 401 && status != 403 && retry_when.is_some_and(|is_transient| is_transient(&response));
    Err(match status {
        _ if transient => {
            let wait = server_wait(429, &response.headers, SystemTime::now());
            Attempt::Retry { reason: format!("HTTP {status}: {reason}"), wait, unsure: false }
        }
        401 if !*refreshed && auth.invalidate() => {
            // The token may have expired early or been revoked: one more try with a new one.
            *refreshed = true;
            Attempt::Retry {
                reason: "HTTP 401: refreshing the access token".into(),
                wait: Some(Duration::ZERO),
                unsure: false,
            }
        }
        401 | 403 => Attempt::Fail(ApiError::Unauthorized { what, status, reason }),
        408 | 429 | 500..=599 => {
            let wait = server_wait(status, &response.headers, SystemTime::now());
            Attempt::Retry { reason: format!("HTTP {status}: {reason}"), wait, unsure: false }
        }
        300..=399 => {
            let location = response.header("location").unwrap_or("(no Location)").to_string();
            Attempt::Fail(ApiError::Rejected {
                what,
                status,
                reason: format!(
                    "redirected to {location}; redirects are not followed: set the base URL to the right host"
                ),
            })
        }
        _ => Attempt::Fail(ApiError::Rejected { what, status, reason }),
    })
}

/// A transport error in one line, with its cause (reqwest's own message is terse).
fn transport_reason(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "transport error"
    };
    let mut reason = kind.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    reason
}
