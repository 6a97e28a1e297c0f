//! Tests of the Okta sources against the fake org in `fake.rs` (127.0.0.1 only).

use std::time::Duration;

use serde_json::{json, Value};
use time::OffsetDateTime;
use weir_schemas::component::{ErrorKind, Source, SourcePoll};
use weir_schemas::events::RawEnvelope;

use super::fake::{log_event, system_principal_event, user, FakeOkta, Fault, Group, API_TOKEN, CLIENT_ID, PRIVATE_KEY};
use super::*;
use crate::http::Secret;
use crate::test_support::{fast_http, poll_like_the_runner, serve, Delivered, StopAt};

// ---------------------------------------------------------------------------------------------
// helpers

fn connection(fake: &FakeOkta) -> OktaConnection {
    OktaConnection {
        base_url: fake.base_url.clone(),
        api_token: Some(Secret::new(API_TOKEN)),
        client_id: None,
        private_key: None,
        key_id: None,
        http: fast_http(),
    }
}

fn service_app(fake: &FakeOkta, client_id: &str) -> OktaConnection {
    OktaConnection {
        api_token: None,
        client_id: Some(client_id.into()),
        private_key: Some(Secret::new(PRIVATE_KEY)),
        key_id: Some("test-key".into()),
        ..connection(fake)
    }
}

fn log_source(connection: OktaConnection, limit: u32) -> OktaSystemLogSource {
    let options = SystemLogOptions { limit, ..SystemLogOptions::default() };
    OktaSystemLogSource::new("okta_logs", OktaSystemLogConfig { connection, options }).unwrap()
}

/// `minutes` before now, as Okta writes times.
fn minutes_ago(minutes: i64) -> String {
    okta_time(OffsetDateTime::now_utc() - time::Duration::minutes(minutes))
}

/// `n` ordinary events `uuid-0`.. published a minute apart, within the default lookback.
fn events(n: usize) -> Vec<String> {
    (0..n).map(|i| log_event(&format!("uuid-{i}"), &minutes_ago(50 - i as i64))).collect()
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("okta:uuid-{i}")).collect()
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// Asserts that no error message or dead-letter reason holds `secret`.
fn assert_secret_absent(delivered: &Delivered, secret: &str) {
    for error in &delivered.errors {
        assert!(!error.message.contains(secret), "an error holds the secret: {}", error.message);
    }
    for reason in &delivered.rejected {
        assert!(!reason.contains(secret), "a dead letter holds the secret: {reason}");
    }
}

fn uuid_of(payload: &str) -> String {
    serde_json::from_str::<Value>(payload).unwrap()["uuid"].as_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------------------------
// System Log

#[tokio::test]
async fn pages_overlap_new_events_at_the_same_instant_and_restarts_deliver_each_event_exactly_once() {
    let fake = FakeOkta::start().await;
    fake.with(|org| {
        org.overlap = true; // a full page's last event is handed out again on the next page
        org.events = events(7);
    });
    // Pages of 3: [0 1 2] [2 3 4] [4 5 6] [6] []. Crash before the second page is durable.
    let mut first = log_source(connection(&fake), 3);
    let one = poll_like_the_runner(&mut first, None, StopAt::CrashAfter(1)).await;
    assert_eq!(one.ids(), ids(0..3));
    let mut second = log_source(connection(&fake), 3);
    let two = poll_like_the_runner(&mut second, one.cursor.clone(), StopAt::Idle).await;
    assert!(two.errors.is_empty(), "{:?}", two.errors);
    assert_eq!(two.ids(), ids(3..7), "uuid-2 was already committed; repeats are dropped");

    // New events arrive, one published at the very instant of the last one (Okta's inclusive
    // `since` and persistence-time polling make such neighbours common); restart once more.
    fake.with(|org| {
        let last: Value = serde_json::from_str(org.events.last().unwrap()).unwrap();
        let instant = last["published"].as_str().unwrap().to_string();
        org.events.push(log_event("uuid-7", &instant));
        org.events.push(system_principal_event("uuid-8", &minutes_ago(1)));
    });
    let mut third = log_source(connection(&fake), 3);
    let three = poll_like_the_runner(&mut third, two.cursor.clone(), StopAt::Idle).await;
    assert!(three.errors.is_empty(), "{:?}", three.errors);

    let all: Vec<String> = [one.ids(), two.ids(), three.ids()].concat();
    assert_eq!(sorted(all.clone()), ids(0..9), "every event exactly once");
    // Payloads are Okta's bytes, untouched.
    let originals = fake.with(|org| org.events.clone());
    for (id, payload) in one.events.iter().chain(&two.events).chain(&three.events) {
        assert_eq!(format!("okta:{}", uuid_of(payload)), *id);
        assert!(originals.contains(payload), "payload changed: {payload}");
    }
    // A polling request: `since` only on the very first request, then only next links; never `until`.
    let requests = fake.requests();
    assert!(requests[0].contains("since=") && requests[0].contains("sortOrder=ASCENDING"), "{}", requests[0]);
    assert!(requests[1..].iter().all(|r| r.contains("after=") && !r.contains("since=")), "{requests:?}");
    assert!(requests.iter().all(|r| !r.contains("until=")));
    assert!(third.stats().cursor_time_ms.is_some());
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_waited_out() {
    let fake = FakeOkta::start().await;
    fake.with(|org| {
        org.events = events(4);
        org.faults = [
            Fault::TooManyRequests, // 429 E0000047, X-Rate-Limit-Reset one second ahead
            Fault::ServerError,     // 500 E0000009
            Fault::ServerError,
            Fault::Unavailable, // 503
            Fault::Exhausted,   // 200 but X-Rate-Limit-Remaining: 0: the next request waits for the reset
        ]
        .into();
    });
    let mut source = log_source(connection(&fake), 2);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(delivered.ids(), ids(0..4));
    assert!(source.stats().retries >= 4, "retries counted: {:?}", source.stats());
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_with_a_new_client_assertion() {
    let fake = FakeOkta::start().await;
    fake.with(|org| {
        org.events = events(5);
        org.faults = [Fault::Pass, Fault::RevokeTokens].into();
    });
    let mut source = log_source(service_app(&fake, CLIENT_ID), 2);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(delivered.ids(), ids(0..5));
    fake.with(|org| {
        assert_eq!(org.issued, 2, "a second token after the 401");
        assert!(org.scopes.iter().all(|s| s == "okta.logs.read"), "{:?}", org.scopes);
    });
}

#[tokio::test]
async fn a_refused_client_assertion_is_fatal_and_names_the_options_not_the_key() {
    let fake = FakeOkta::start().await;
    fake.with(|org| org.events = events(2));
    let mut source = log_source(service_app(&fake, "0oa-someone-else"), 2);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.events.is_empty());
    let error = delivered.errors.last().expect("an error");
    assert_eq!(error.kind, ErrorKind::Fatal);
    assert!(error.message.contains("`client_id`") && error.message.contains("invalid_client"), "{}", error.message);
    assert_eq!(fake.with(|org| org.refused_assertions), 1);
    for line in PRIVATE_KEY.lines().filter(|l| !l.starts_with("-----")) {
        assert_secret_absent(&delivered, line);
    }
}

#[tokio::test]
async fn a_wrong_api_token_is_fatal_and_never_echoed() {
    let fake = FakeOkta::start().await;
    fake.with(|org| org.events = events(2));
    let wrong = "00wrong-token-do-not-print";
    let connection = OktaConnection { api_token: Some(Secret::new(wrong)), ..connection(&fake) };
    let mut source = log_source(connection, 2);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    let error = delivered.errors.last().expect("an error");
    assert_eq!(error.kind, ErrorKind::Fatal);
    assert!(error.message.contains("`api_token`") && error.message.contains("401"), "{}", error.message);
    assert_secret_absent(&delivered, wrong);
}

#[tokio::test]
async fn truncated_and_invalid_pages_are_dead_lettered_and_skipped_by_their_next_link() {
    let fake = FakeOkta::start().await;
    fake.with(|org| {
        org.events = events(6);
        org.faults = [
            Fault::Pass,      // page [0 1]
            Fault::Truncated, // page [2 3], cut off three times: dead-lettered
            Fault::Truncated,
            Fault::Truncated,
            Fault::Truncated, // page [4 5] cut off once: read again
            Fault::Pass,
            Fault::Invalid, // the empty page after it: an HTML page three times
            Fault::Invalid,
            Fault::Invalid,
        ]
        .into();
    });
    let mut source = log_source(connection(&fake), 2);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(delivered.ids(), [ids(0..2), ids(4..6)].concat());
    assert_eq!(delivered.rejected.len(), 2, "{:?}", delivered.rejected);
    assert!(delivered.rejected[0].contains("/api/v1/logs (after=2)"), "{}", delivered.rejected[0]);
    for reason in &delivered.rejected {
        assert!(reason.contains("could not be read") && reason.contains("not a JSON array"), "{reason}");
    }
    assert!(delivered.rejected[1].contains("after=6"), "{}", delivered.rejected[1]);
    assert_secret_absent(&delivered, API_TOKEN);
}

#[tokio::test]
async fn malformed_events_are_dead_lettered_and_the_rest_kept() {
    let fake = FakeOkta::start().await;
    let devdocs = include_str!("testdata/devdocs_logevent_example.json").trim().to_string();
    fake.with(|org| {
        org.events = vec![
            log_event("uuid-0", &minutes_ago(40)),
            "42".into(),
            json!({"published": minutes_ago(39), "eventType": "user.session.start"}).to_string(),
            devdocs.clone(), // `published: 2017-09-31…` is no date: kept, without a time
            system_principal_event("uuid-4", &minutes_ago(38)),
        ];
    });
    let mut source = log_source(connection(&fake), 10);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    let devdocs_uuid = uuid_of(&devdocs);
    assert_eq!(delivered.ids(), vec!["okta:uuid-0".to_string(), format!("okta:{devdocs_uuid}"), "okta:uuid-4".into()]);
    assert_eq!(delivered.events[1].1, devdocs, "the bytes as sent, whitespace and all");
    assert_eq!(delivered.rejected.len(), 2);
    assert!(
        delivered.rejected[0].contains("event 1 of the page") && delivered.rejected[0].contains("not a JSON object")
    );
    assert!(delivered.rejected[1].contains("event 2 of the page") && delivered.rejected[1].contains("no `uuid`"));
}

#[tokio::test]
async fn an_empty_org_idles_and_then_follows_the_empty_pages_next_link() {
    let fake = FakeOkta::start().await;
    let mut source = log_source(connection(&fake), 100);
    source.open(None).await.unwrap();
    assert!(matches!(source.poll().await.unwrap(), SourcePoll::Idle(_)));
    fake.with(|org| org.events = events(2));
    let SourcePoll::Batch(batch) = source.poll().await.unwrap() else { panic!("a batch") };
    assert_eq!(batch.records.len(), 2);
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[1].contains("after=0"), "the empty page's next link: {}", requests[1]);
    source.committed(batch.cursor.as_deref()).await.unwrap();
    assert!(matches!(source.poll().await.unwrap(), SourcePoll::Idle(_)));
}

#[tokio::test]
async fn a_next_link_to_another_host_is_refused() {
    let fake = FakeOkta::start().await;
    fake.with(|org| {
        org.events = events(3);
        org.foreign_next = Some("http://127.0.0.2:9".into());
    });
    let mut source = log_source(connection(&fake), 2);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    let error = delivered.errors.last().expect("an error");
    assert_eq!(error.kind, ErrorKind::Fatal);
    assert!(error.message.contains("another host"), "{}", error.message);
    assert!(delivered.events.is_empty(), "the page is not handed out without a cursor to follow it");

    // A committed cursor of another org is refused too (base_url changed).
    let cursor = json!({"next": "https://other.okta.com/api/v1/logs?after=1", "recent": []}).to_string();
    let error = source.open(Some(cursor)).await.unwrap_err();
    assert!(error.message.contains("base_url"), "{}", error.message);
}

// ---------------------------------------------------------------------------------------------
// configuration

#[test]
fn the_config_is_one_table_with_the_connection_and_typos_are_refused() {
    let config: OktaSystemLogConfig = serde_json::from_value(json!({
        "base_url": "https://acme.okta.com",
        "api_token": "t0k",
        "limit": 500,
        "http": {"timeout_secs": 10}
    }))
    .unwrap();
    assert_eq!(config.options, SystemLogOptions { limit: 500, ..SystemLogOptions::default() });
    assert_eq!(config.connection.http.timeout_secs, 10);

    let typo = serde_json::from_value::<OktaSystemLogConfig>(json!({
        "base_url": "https://acme.okta.com", "api_token": "t0k", "start_lookbak_secs": 60
    }))
    .unwrap_err();
    assert!(typo.to_string().contains("unknown option `start_lookbak_secs`"), "{typo}");
    let typo = serde_json::from_value::<OktaDirectoryConfig>(json!({
        "base_url": "https://acme.okta.com", "api_token": "t0k", "limit": 100, "poll_interval_secs": 1
    }))
    .unwrap_err();
    assert!(typo.to_string().contains("`poll_interval_secs`"), "{typo}");
    let typo = serde_json::from_value::<OktaEventHookConfig>(json!({"path": "/h", "secret": "s", "secrt": "x"}));
    assert!(typo.is_err());
}

#[test]
fn credentials_and_options_are_checked_with_clear_errors() {
    let build = |connection: OktaConnection, options: SystemLogOptions| {
        OktaSystemLogSource::new("okta", OktaSystemLogConfig { connection, options }).err().map(|e| e.to_string())
    };
    let base = OktaConnection {
        base_url: "https://acme.okta.com".into(),
        api_token: None,
        client_id: None,
        private_key: None,
        key_id: None,
        http: Default::default(),
    };
    let defaults = SystemLogOptions::default();
    assert!(build(base.clone(), defaults.clone()).unwrap().contains("none is set"));
    let both = OktaConnection {
        api_token: Some(Secret::new("tok-secret-1")),
        client_id: Some("0oa".into()),
        private_key: Some(Secret::new(PRIVATE_KEY)),
        ..base.clone()
    };
    let error = build(both, defaults.clone()).unwrap();
    assert!(error.contains("not both") && !error.contains("tok-secret-1"), "{error}");
    let half = OktaConnection { client_id: Some("0oa".into()), ..base.clone() };
    assert!(build(half, defaults.clone()).unwrap().contains("without `private_key`"));
    let bad_key = OktaConnection {
        client_id: Some("0oa".into()),
        private_key: Some(Secret::new("not-a-pem-secret")),
        ..base.clone()
    };
    let error = build(bad_key, defaults.clone()).unwrap();
    assert!(error.contains("option `private_key`") && !error.contains("not-a-pem-secret"), "{error}");
    let token = OktaConnection { api_token: Some(Secret::new("t0k")), ..base.clone() };
    assert!(build(token.clone(), defaults.clone()).is_none());
    let plain = OktaConnection { base_url: "http://acme.okta.com".into(), ..token.clone() };
    assert!(build(plain, defaults.clone()).unwrap().contains("option `base_url`: it must be https"));
    let far = SystemLogOptions { start_lookback_secs: MAX_LOOKBACK_SECS + 1, ..defaults.clone() };
    assert!(build(token.clone(), far).unwrap().contains("option `start_lookback_secs`"));
    let big = SystemLogOptions { limit: 1001, ..defaults };
    assert!(build(token, big).unwrap().contains("option `limit`"));
}

// ---------------------------------------------------------------------------------------------
// Event Hook

const HOOK_SECRET: &str = "hook-secret-value-7b1f";

fn hook_source() -> OktaEventHookSource {
    let config = OktaEventHookConfig {
        path: "/hooks/okta".into(),
        secret: Secret::new(HOOK_SECRET),
        header_name: None,
        header_value: None,
    };
    OktaEventHookSource::new("okta_hook", config).unwrap()
}

/// Polls until a batch arrives (the handler may not have queued its delivery yet).
async fn next_batch(source: &mut OktaEventHookSource) -> weir_schemas::component::SourceBatch {
    for _ in 0..50 {
        if let SourcePoll::Batch(batch) = source.poll().await.unwrap() {
            return batch;
        }
    }
    panic!("no delivery reached the source");
}

fn payloads(batch: &weir_schemas::component::SourceBatch) -> Vec<String> {
    batch
        .records
        .iter()
        .map(|r| {
            let envelope: RawEnvelope = weir_schemas::decode(&r.value).unwrap();
            String::from_utf8(envelope.payload).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn the_hook_answers_the_verification_challenge_only_with_the_secret() {
    let source = hook_source();
    let url = serve(source.router()).await;
    let http = reqwest::Client::new();
    let answer = http
        .get(&url)
        .header("authorization", HOOK_SECRET)
        .header("x-okta-verification-challenge", "chall-42")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<Value>().await.unwrap(), json!({"verification": "chall-42"}));
    let refused = http.get(&url).header("x-okta-verification-challenge", "chall-42").send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(!refused.text().await.unwrap().contains(HOOK_SECRET));
}

#[tokio::test]
async fn a_delivery_is_acknowledged_once_durable_and_a_retry_is_not_appended_twice() {
    let mut source = hook_source();
    source.open(None).await.unwrap();
    let url = serve(source.router()).await;
    let body = include_str!("testdata/devdocs_event_hook_delivery.json");
    let post = |body: String| {
        let url = url.clone();
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(&url)
                .header("authorization", HOOK_SECRET)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    let first = post(body.to_string());
    let batch = next_batch(&mut source).await;
    assert_eq!(batch.records.len(), 1);
    assert!(!first.is_finished(), "not acknowledged before the batch is durable");
    let envelope: Value = serde_json::from_str(body).unwrap();
    let event = &envelope["data"]["events"][0];
    let payload = &payloads(&batch)[0];
    assert!(body.contains(payload.as_str()), "the LogEvent's bytes untouched");
    assert_eq!(serde_json::from_str::<Value>(payload).unwrap(), *event);
    assert_eq!(
        batch.records[0].header("weir-id").unwrap(),
        format!("okta:{}", event["uuid"].as_str().unwrap()).as_bytes()
    );
    source.committed(batch.cursor.as_deref()).await.unwrap();
    assert_eq!(first.await.unwrap(), 200);

    // Okta retries (our 200 was lost): acknowledged, not appended again — after a restart too.
    let cursor = batch.cursor.clone();
    let mut restarted = hook_source();
    restarted.open(cursor).await.unwrap();
    let url2 = serve(restarted.router()).await;
    let again = tokio::spawn(async move {
        reqwest::Client::new()
            .post(&url2)
            .header("authorization", HOOK_SECRET)
            .body(include_str!("testdata/devdocs_event_hook_delivery.json"))
            .send()
            .await
            .unwrap()
            .status()
    });
    let batch = next_batch(&mut restarted).await;
    assert!(batch.records.is_empty());
    restarted.committed(batch.cursor.as_deref()).await.unwrap();
    assert_eq!(again.await.unwrap(), 200);
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_nothing_is_queued() {
    let mut source = hook_source();
    source.open(None).await.unwrap();
    let url = serve(source.router()).await;
    let http = reqwest::Client::new();
    let body = include_str!("testdata/devdocs_event_hook_delivery.json");
    for authorization in [None, Some("hook-secret-value-7b1e"), Some("Bearer hook-secret-value-7b1f")] {
        let mut request = http.post(&url).body(body);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 401);
        assert!(!answer.text().await.unwrap().contains(HOOK_SECRET));
    }
    assert!(matches!(source.poll().await.unwrap(), SourcePoll::Idle(_)));
}

#[tokio::test]
async fn a_body_that_is_not_a_delivery_is_refused_and_dead_lettered() {
    let mut source = hook_source();
    source.open(None).await.unwrap();
    let url = serve(source.router()).await;
    let bad = r#"{"eventType":"com.okta.event_hook","data":{"events":"#;
    let task = tokio::spawn(async move {
        let answer =
            reqwest::Client::new().post(&url).header("authorization", HOOK_SECRET).body(bad).send().await.unwrap();
        (answer.status(), answer.text().await.unwrap())
    });
    let batch = next_batch(&mut source).await;
    assert!(batch.records.is_empty());
    assert_eq!(batch.rejected.len(), 1);
    assert_eq!(batch.rejected[0].original, bad.as_bytes());
    assert!(batch.rejected[0].reason.contains("not an Event Hook delivery"), "{}", batch.rejected[0].reason);
    source.committed(batch.cursor.as_deref()).await.unwrap();
    let (status, text) = task.await.unwrap();
    assert_eq!(status, 400);
    assert!(!text.contains(HOOK_SECRET) && !batch.rejected[0].reason.contains(HOOK_SECRET));

    // An event without a uuid is dead-lettered; its neighbours are kept.
    let url = serve(source.router()).await;
    let delivery = json!({"eventType": "com.okta.event_hook", "eventId": "evt-1", "data": {"events": [
        {"published": "2024-01-01T00:00:00.000Z"},
        serde_json::from_str::<Value>(&log_event("uuid-h1", "2024-01-01T00:00:00.000Z")).unwrap(),
    ]}});
    let task = tokio::spawn(async move {
        reqwest::Client::new()
            .post(&url)
            .header("authorization", HOOK_SECRET)
            .body(delivery.to_string())
            .send()
            .await
            .unwrap()
            .status()
    });
    let batch = next_batch(&mut source).await;
    assert_eq!(batch.records.len(), 1);
    assert!(
        batch.rejected[0].reason.contains("event 0 of delivery evt-1 has no `uuid`"),
        "{}",
        batch.rejected[0].reason
    );
    source.committed(batch.cursor.as_deref()).await.unwrap();
    assert_eq!(task.await.unwrap(), 200);
}

#[tokio::test]
async fn a_delivery_while_the_pipeline_is_stopped_is_answered_503() {
    let source = hook_source();
    let url = serve(source.router()).await;
    drop(source);
    let answer = reqwest::Client::new()
        .post(&url)
        .header("authorization", HOOK_SECRET)
        .body(include_str!("testdata/devdocs_event_hook_delivery.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 503, "Okta retries a 5xx");
}

#[test]
fn the_hook_config_is_checked() {
    let config = |path: &str, name: Option<&str>, value: Option<&str>| OktaEventHookConfig {
        path: path.into(),
        secret: Secret::new(HOOK_SECRET),
        header_name: name.map(String::from),
        header_value: value.map(Secret::new),
    };
    let error = |c| OktaEventHookSource::new("h", c).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error(config("hooks/okta", None, None)).contains("option `path`"));
    assert!(error(config("/h", Some("x-extra"), None)).contains("option `header_value`"));
    assert!(error(config("/h", Some("authorization"), Some("v"))).contains("option `header_name`"));
    assert_eq!(
        OktaEventHookSource::new("h", config("/hooks/okta", Some("x-extra"), Some("v"))).unwrap().path(),
        "/hooks/okta"
    );
}

#[tokio::test]
async fn an_extra_required_header_is_checked_too() {
    let config = OktaEventHookConfig {
        path: "/h".into(),
        secret: Secret::new(HOOK_SECRET),
        header_name: Some("x-weir-hook".into()),
        header_value: Some(Secret::new("extra-value")),
    };
    let source = OktaEventHookSource::new("h", config).unwrap();
    let url = serve(source.router()).await;
    let http = reqwest::Client::new();
    let challenge = |extra: &'static str| {
        http.get(&url)
            .header("authorization", HOOK_SECRET)
            .header("x-weir-hook", extra)
            .header("x-okta-verification-challenge", "c")
            .send()
    };
    assert_eq!(challenge("wrong").await.unwrap().status(), 401);
    assert_eq!(challenge("extra-value").await.unwrap().status(), 200);
}

// ---------------------------------------------------------------------------------------------
// directory

fn directory(connection: OktaConnection, limit: u32) -> OktaDirectorySource {
    let options = DirectoryOptions { limit, ..DirectoryOptions::default() };
    OktaDirectorySource::new("okta_directory", OktaDirectoryConfig { connection, options }).unwrap()
}

fn org_with_users(fake: &FakeOkta, n: usize) {
    fake.with(|org| {
        org.users = (0..n)
            .map(|i| user(&format!("00u{i}"), &format!("user{i}@example.com"), "2024-01-15T10:00:00.000Z"))
            .collect();
        org.groups = vec![
            Group {
                id: "00gA".into(),
                name: "Engineering".into(),
                members: vec!["00u0".into(), "00u1".into(), "00u2".into()],
            },
            Group { id: "00gB".into(), name: "Admins".into(), members: vec!["00u1".into()] },
            Group { id: "00gC".into(), name: "Everyone".into(), members: (0..n).map(|i| format!("00u{i}")).collect() },
        ];
    });
}

fn groups_of(delivered: &Delivered) -> Vec<(String, Vec<String>)> {
    delivered
        .events
        .iter()
        .map(|(_, payload)| {
            let user: Value = serde_json::from_str(payload).unwrap();
            let groups = user["_groups"].as_array().unwrap().iter().map(|g| g.as_str().unwrap().to_string()).collect();
            (user["id"].as_str().unwrap().to_string(), groups)
        })
        .collect()
}

#[tokio::test]
async fn a_snapshot_lists_every_user_with_its_groups_and_skips_unchanged_users_next_time() {
    let fake = FakeOkta::start().await;
    org_with_users(&fake, 5);
    let mut source = directory(connection(&fake), 2);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    let groups = groups_of(&delivered);
    assert_eq!(groups.len(), 5);
    assert_eq!(groups[1], ("00u1".to_string(), vec!["Admins".into(), "Engineering".into(), "Everyone".into()]));
    assert_eq!(groups[4], ("00u4".to_string(), vec!["Everyone".into()]));
    // Okta's bytes, with `_groups` appended.
    let original = fake.with(|org| org.users[0].clone());
    let payload = &delivered.events[0].1;
    assert_eq!(
        payload,
        &format!("{},\"_groups\":[\"Engineering\",\"Everyone\"]}}", original.strip_suffix('}').unwrap())
    );
    assert!(delivered.ids()[0].starts_with("okta:00u0@2024-01-15T10:00:00.000Z/"), "{}", delivered.ids()[0]);

    // The next snapshot (made due by hand): only the changed user and the one whose groups changed.
    fake.with(|org| {
        org.users[3] = user("00u3", "user3@example.com", "2024-02-01T00:00:00.000Z");
        org.groups[1].members.push("00u4".into());
    });
    let due = json!({"finished_ms": 0}).to_string();
    let again = poll_like_the_runner(&mut source, Some(due), StopAt::Idle).await;
    assert!(again.errors.is_empty(), "{:?}", again.errors);
    let changed: Vec<String> = groups_of(&again).into_iter().map(|(id, _)| id).collect();
    assert_eq!(changed, ["00u3", "00u4"]);
    assert!(delivered.ids().iter().all(|id| !again.ids().contains(id)));
}

#[tokio::test]
async fn a_restart_mid_snapshot_resumes_the_listing() {
    let fake = FakeOkta::start().await;
    org_with_users(&fake, 7);
    let mut first = directory(connection(&fake), 2);
    let one = poll_like_the_runner(&mut first, None, StopAt::CrashAfter(2)).await;
    assert_eq!(one.events.len(), 4);
    let mut second = directory(connection(&fake), 2);
    let two = poll_like_the_runner(&mut second, one.cursor.clone(), StopAt::Idle).await;
    assert!(two.errors.is_empty(), "{:?}", two.errors);
    let all = [one.ids(), two.ids()].concat();
    assert_eq!(all.len(), 7);
    assert_eq!(sorted(all.clone()).windows(2).filter(|w| w[0] == w[1]).count(), 0, "no duplicate");
    let users: Vec<String> = [groups_of(&one), groups_of(&two)].concat().into_iter().map(|(id, _)| id).collect();
    assert_eq!(users, (0..7).map(|i| format!("00u{i}")).collect::<Vec<_>>());
    // The first users page was read once: the restart resumed at the lost third page.
    let requests = fake.requests();
    assert_eq!(requests.iter().filter(|r| r.as_str() == "GET /api/v1/users?limit=2").count(), 1, "{requests:?}");
    // And the groups were listed again for it, so the resumed users still carry theirs.
    assert!(groups_of(&two).iter().all(|(_, groups)| groups.contains(&"Everyone".to_string())));
}

#[tokio::test]
async fn the_directory_uses_the_service_app_scopes_and_dead_letters_an_unreadable_page() {
    let fake = FakeOkta::start().await;
    org_with_users(&fake, 3);
    fake.with(|org| {
        // Then the first users page is unreadable three times.
        // Groups (2 pages of 2), members of A (2 pages), B (1), C (2): seven pages read fine.
        org.faults = [[Fault::Pass; 7].as_slice(), &[Fault::Invalid; 3]].concat().into();
    });
    let mut source = directory(service_app(&fake, CLIENT_ID), 2);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(groups_of(&delivered).into_iter().map(|(id, _)| id).collect::<Vec<_>>(), ["00u2"]);
    assert_eq!(delivered.rejected.len(), 1);
    assert!(delivered.rejected[0].contains("users page") && delivered.rejected[0].contains("could not be read"));
    assert!(fake.with(|org| org.scopes.iter().all(|s| s == "okta.users.read okta.groups.read")));
    assert!(source.stats().cursor_time_ms.is_some());
}

#[tokio::test]
async fn an_empty_directory_is_a_complete_snapshot() {
    let fake = FakeOkta::start().await;
    let mut source = directory(connection(&fake), 200);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty() && delivered.events.is_empty(), "{delivered:?}");
    let cursor: Value = serde_json::from_str(delivered.cursor.as_deref().unwrap()).unwrap();
    assert!(cursor["finished_ms"].is_i64() && cursor.get("next").is_none(), "{cursor}");
    // Idle until the next snapshot is due.
    assert!(matches!(source.poll().await.unwrap(), SourcePoll::Idle(d) if d > Duration::from_secs(60)));
}
