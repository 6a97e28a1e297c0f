//! Tests of the shared HTTP machinery's pure parts (the connectors' own tests exercise the
//! client against their fake vendor servers).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};

use super::client::ApiResponse;
use super::server_wait;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

/// 2024-01-01T00:00:00Z.
const NOW: u64 = 1_704_067_200;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn a_429_waits_for_the_longest_signal() {
    let now = at(NOW);
    assert_eq!(server_wait(429, &headers(&[("retry-after", "3")]), now), Some(Duration::from_secs(3)));
    // Okta: the reset is an epoch time, read against the server's Date, not the local clock.
    let okta = headers(&[
        ("x-rate-limit-remaining", "0"),
        ("x-rate-limit-reset", &(NOW + 20).to_string()),
        ("date", &httpdate::fmt_http_date(at(NOW + 5))),
    ]);
    assert_eq!(server_wait(429, &okta, now), Some(Duration::from_secs(15)));
    // CrowdStrike: X-Ratelimit-Retryafter is an epoch time too.
    let crowdstrike = headers(&[("x-ratelimit-retryafter", &(NOW + 7).to_string())]);
    assert_eq!(server_wait(429, &crowdstrike, now), Some(Duration::from_secs(7)));
    // Netskope: RateLimit-Reset is a number of seconds; Retry-After may say more.
    let netskope = headers(&[("ratelimit-reset", "2"), ("retry-after", "4")]);
    assert_eq!(server_wait(429, &netskope, now), Some(Duration::from_secs(4)));
    // Azure Resource Graph: hh:mm:ss.
    let azure = headers(&[("x-ms-user-quota-resets-after", "00:01:05")]);
    assert_eq!(server_wait(429, &azure, now), Some(Duration::from_secs(65)));
    // Absurd values are capped.
    assert_eq!(server_wait(429, &headers(&[("retry-after", "999999")]), now), Some(Duration::from_secs(900)));
}

#[test]
fn other_responses_wait_only_when_the_window_is_used_up() {
    let now = at(NOW);
    let reset = (NOW + 30).to_string();
    let spare = headers(&[("x-rate-limit-remaining", "12"), ("x-rate-limit-reset", &reset)]);
    assert_eq!(server_wait(200, &spare, now), None);
    let used_up = headers(&[("x-rate-limit-remaining", "0"), ("x-rate-limit-reset", &reset)]);
    assert_eq!(server_wait(200, &used_up, now), Some(Duration::from_secs(30)));
    // A 503 is an outage: its Retry-After counts, the quota's reset (sent on every Okta
    // response) does not.
    let outage = headers(&[("x-rate-limit-remaining", "12"), ("x-rate-limit-reset", &reset)]);
    assert_eq!(server_wait(503, &outage, now), None);
    assert_eq!(server_wait(503, &headers(&[("retry-after", "2")]), now), Some(Duration::from_secs(2)));
    // A reset in the past is no wait at all.
    let past = headers(&[("x-rate-limit-remaining", "0"), ("x-rate-limit-reset", &(NOW - 5).to_string())]);
    assert_eq!(server_wait(200, &past, now), Some(Duration::ZERO));
}

#[test]
fn link_headers_are_read_whether_repeated_or_comma_joined() {
    let response =
        |pairs: &[(&'static str, &str)]| ApiResponse { status: 200, headers: headers(pairs), body: Vec::new() };
    let separate = response(&[
        ("link", "<https://o.okta.com/api/v1/logs?limit=2>; rel=\"self\""),
        ("link", "<https://o.okta.com/api/v1/logs?after=a,b&limit=2>; rel=\"next\""),
    ]);
    assert_eq!(separate.next_link().as_deref(), Some("https://o.okta.com/api/v1/logs?after=a,b&limit=2"));
    let joined = response(&[(
        "link",
        "<https://o.okta.com/api/v1/logs?limit=2>; rel=\"self\", <https://o.okta.com/api/v1/logs?after=x>; rel=next",
    )]);
    assert_eq!(joined.next_link().as_deref(), Some("https://o.okta.com/api/v1/logs?after=x"));
    assert_eq!(response(&[("link", "<https://o.okta.com/x>; rel=\"self\"")]).next_link(), None);
}

#[test]
fn absurd_reset_values_are_bounded_not_a_panic() {
    let now = at(NOW);
    for value in ["1e20", "99999999999999999999", "-5", "NaN", "inf", "soon"] {
        let wait = server_wait(429, &headers(&[("x-rate-limit-reset", value)]), now);
        assert!(wait.is_none_or(|w| w <= Duration::from_secs(900)), "{value}: {wait:?}");
    }
    let wait = server_wait(429, &headers(&[("x-ms-user-quota-resets-after", "99999:99:99")]), now);
    assert_eq!(wait, Some(Duration::from_secs(900)));
}
