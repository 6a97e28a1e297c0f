//! The shared HTTP machinery: classification, `Retry-After`, the breaker, the rate limiter.

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::StatusCode as AxumStatus;
use axum::routing::post;
use axum::Router;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use super::*;
use crate::test_support::serve;

fn class(status: u16, retry_after: Option<&str>) -> Result<(), HttpFailure> {
    let mut headers = HeaderMap::new();
    if let Some(value) = retry_after {
        headers.insert("retry-after", value.parse().unwrap());
    }
    classify("test", StatusCode::from_u16(status).unwrap(), &headers, b"the body", Duration::from_secs(60))
}

#[test]
fn classifies_statuses() {
    for status in [200, 201, 202, 204] {
        assert!(class(status, None).is_ok(), "{status}");
    }
    for (status, expected) in [
        (408, FailureClass::Retryable),
        (429, FailureClass::Retryable),
        (500, FailureClass::Retryable),
        (503, FailureClass::Retryable),
        (400, FailureClass::Permanent),
        (410, FailureClass::Permanent),
        (413, FailureClass::Permanent),
        (422, FailureClass::Permanent),
        (401, FailureClass::Fatal),
        (403, FailureClass::Fatal),
        (404, FailureClass::Fatal),
        (302, FailureClass::Fatal),
    ] {
        let failure = class(status, None).unwrap_err();
        assert_eq!(failure.class, expected, "{status}");
        assert!(failure.reason.contains(&status.to_string()) && failure.reason.contains("the body"), "{failure:?}");
    }
}

#[test]
fn honours_retry_after_seconds_and_dates_capped() {
    assert_eq!(class(429, Some("0")).unwrap_err().retry_after, Some(Duration::ZERO));
    assert_eq!(class(503, Some("7")).unwrap_err().retry_after, Some(Duration::from_secs(7)));
    assert_eq!(class(503, Some("86400")).unwrap_err().retry_after, Some(Duration::from_secs(60)), "capped");
    assert_eq!(class(503, Some("soon")).unwrap_err().retry_after, None);
    assert_eq!(class(400, Some("5")).unwrap_err().retry_after, None, "only for retryable failures");

    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
    assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now), Some(Duration::from_secs(30)));
    assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(Duration::ZERO), "a past date");
    assert_eq!(parse_retry_after(" 12 ", now), Some(Duration::from_secs(12)));
    assert_eq!(parse_retry_after("-1", now), None);
}

#[test]
fn reasons_are_cut_to_512_bytes_on_a_char_boundary() {
    let body = "é".repeat(600);
    let reason = truncate_reason(body.as_bytes());
    assert!(reason.len() <= MAX_REASON_BYTES + '…'.len_utf8());
    assert!(reason.ends_with('…'));
    assert_eq!(truncate_reason(b"line one\n  line two"), "line one line two");
}

#[test]
fn secrets_never_print() {
    let secret = Secret::new("hunter22");
    assert_eq!(format!("{secret:?} {secret}"), "*** ***");
    assert_eq!(secret.scrub("token hunter22 here"), "token *** here");
}

#[test]
fn gzip_round_trips() {
    let body = b"{\"a\":1}".repeat(100);
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gzip(&body)[..]).read_to_end(&mut out).unwrap();
    assert_eq!(out, body);
}

#[test]
fn bad_request_options_are_refused() {
    let config = RequestConfig { timeout_secs: -1.0, ..RequestConfig::default() };
    assert_eq!(build_client(&config).unwrap_err().key, "request.timeout_secs");
    let config = RequestConfig { rate_limit_per_sec: Some(0.0), ..RequestConfig::default() };
    assert_eq!(config.validate().unwrap_err().key, "request.rate_limit_per_sec");
}

async fn always_busy(State(count): State<Arc<AtomicUsize>>) -> (AxumStatus, &'static str) {
    count.fetch_add(1, Ordering::SeqCst);
    (AxumStatus::SERVICE_UNAVAILABLE, "busy")
}

#[tokio::test]
async fn the_circuit_opens_after_consecutive_failures_and_closes_after_the_cooldown() {
    let count = Arc::new(AtomicUsize::new(0));
    let addr = serve(Router::new().route("/", post(always_busy)).with_state(count.clone())).await;
    let url = format!("http://{addr}/");

    let config =
        RequestConfig { circuit_breaker_failures: 2, circuit_breaker_cooldown_secs: 3600.0, ..Default::default() };
    let mut delivery = HttpDelivery::new("busy", &config, vec![]).unwrap();
    for _ in 0..2 {
        let request = delivery.client().post(&url);
        assert_eq!(delivery.send(request).await.unwrap_err().class, FailureClass::Retryable);
    }
    let request = delivery.client().post(&url);
    let failure = delivery.send(request).await.unwrap_err();
    assert_eq!(failure.class, FailureClass::Retryable);
    assert!(failure.reason.contains("circuit open"), "{}", failure.reason);
    assert_eq!(count.load(Ordering::SeqCst), 2, "the open circuit made no request");

    // With no cool-down the next request goes through again (half-open) and reopens it.
    let config =
        RequestConfig { circuit_breaker_failures: 1, circuit_breaker_cooldown_secs: 0.0, ..Default::default() };
    let mut delivery = HttpDelivery::new("busy", &config, vec![]).unwrap();
    for _ in 0..2 {
        let request = delivery.client().post(&url);
        delivery.send(request).await.unwrap_err();
    }
    assert_eq!(count.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_closed_port_is_retryable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let mut delivery = HttpDelivery::new("nobody", &RequestConfig::default(), vec![]).unwrap();
    let request = delivery.client().post(&url);
    let failure = delivery.send(request).await.unwrap_err();
    assert_eq!(failure.class, FailureClass::Retryable);
    assert!(failure.reason.starts_with("nobody: could not connect"), "{}", failure.reason);
}

#[tokio::test(start_paused = true)]
async fn the_token_bucket_allows_a_burst_then_paces() {
    // Virtual time: nothing here depends on the machine's speed.
    let mut bucket = TokenBucket::new(2.0);
    assert!(bucket.try_acquire().is_ok());
    assert!(bucket.try_acquire().is_ok());
    assert_eq!(bucket.try_acquire().unwrap_err(), Duration::from_millis(500));
    let start = tokio::time::Instant::now();
    bucket.acquire().await;
    assert_eq!(start.elapsed(), Duration::from_millis(500));
}

#[tokio::test]
async fn forks_share_the_breaker_the_rate_limit_and_retry_after() {
    let count = Arc::new(AtomicUsize::new(0));
    let addr = serve(Router::new().route("/", post(always_busy)).with_state(count.clone())).await;
    let url = format!("http://{addr}/");
    let config =
        RequestConfig { circuit_breaker_failures: 2, circuit_breaker_cooldown_secs: 3600.0, ..Default::default() };
    let mut first = HttpDelivery::new("busy", &config, vec![]).unwrap();
    let mut fork = first.clone();
    first.send(first.client().post(&url)).await.unwrap_err();
    fork.send(fork.client().post(&url)).await.unwrap_err();
    // Two failures between them open the one circuit: neither calls any more.
    for delivery in [&mut first, &mut fork] {
        let failure = delivery.send(delivery.client().post(&url)).await.unwrap_err();
        assert!(failure.reason.contains("circuit open after 2"), "{}", failure.reason);
    }
    assert_eq!(count.load(Ordering::SeqCst), 2);
    assert_eq!(fork.consecutive_failures(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_noted_by_one_fork_holds_the_others() {
    // Virtual time, and a request that cannot connect: what is measured is the hold alone.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let config = RequestConfig { circuit_breaker_failures: 0, ..Default::default() };
    let mut first = HttpDelivery::new("held", &config, vec![]).unwrap();
    let mut fork = first.clone();
    first.note(&HttpFailure { retry_after: Some(Duration::from_secs(7)), ..HttpFailure::retryable("429") });
    let start = tokio::time::Instant::now();
    fork.send(fork.client().post(&url)).await.unwrap_err();
    assert!(start.elapsed() >= Duration::from_secs(7), "the fork waited {:?}", start.elapsed());
}

#[test]
fn concurrency_is_bounded() {
    for (concurrency, ok) in [(0, false), (1, true), (64, true), (65, false)] {
        let config = RequestConfig { concurrency, ..Default::default() };
        assert_eq!(config.validate().is_ok(), ok, "{concurrency}");
    }
}
