use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use weir_schemas::component::{ErrorKind, Source, SourcePoll};

use super::fake::{self, Fake, ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY};
use super::*;
use crate::http::Secret;
use crate::test_support::{fast_http, poll_like_the_runner, serve, Delivered, StopAt};

/// The tests' "now", epoch seconds.
const T0: i64 = 1_700_000_000;

/// `n` events one minute apart, the newest 10 minutes before T0 (so inside the first window).
fn events(prefix: &str, n: i64) -> Vec<fake::FakeEvent> {
    (0..n).map(|i| fake::event(&format!("{prefix}-{i:04}"), T0 - 600 - i * 60)).collect()
}

fn config(base: &str) -> CloudTrailConfig {
    CloudTrailConfig {
        access_key_id: ACCESS_KEY_ID.into(),
        secret_access_key: Secret::new(SECRET_ACCESS_KEY),
        session_token: None,
        region: REGION.into(),
        base_url: Some(format!("{base}/")),
        initial_lookback_secs: 86_400,
        lag_secs: 300,
        overlap_secs: 900,
        poll_interval_secs: 60,
        dedupe_ids: 5000,
        http: fast_http(),
    }
}

/// A source whose clock reads `clock` (epoch seconds).
fn source(config: CloudTrailConfig, clock: &Arc<AtomicI64>) -> CloudTrailSource {
    let clock = clock.clone();
    CloudTrailSource::new("trail", config).unwrap().with_clock(move || clock.load(Ordering::SeqCst) * 1000)
}

async fn start(events: Vec<fake::FakeEvent>) -> (Fake, String) {
    let fake = Fake::new(events);
    let base = serve(fake.router()).await;
    (fake, base)
}

fn ids(events: &[fake::FakeEvent]) -> BTreeSet<String> {
    events.iter().map(|e| format!("aws:{}", e.item["EventId"].as_str().unwrap())).collect()
}

fn assert_no_secret(delivered: &Delivered) {
    for text in delivered.errors.iter().map(|e| &e.message).chain(&delivered.rejected) {
        assert!(!text.contains(SECRET_ACCESS_KEY), "a secret leaked: {text}");
        assert!(!text.contains("Secret+Key"), "a secret leaked: {text}");
    }
}

#[tokio::test]
async fn pages_of_a_window_are_read_signed_and_the_payload_is_the_record_string() {
    let all = events("e", 120);
    let (fake, base) = start(all.clone()).await;
    let clock = Arc::new(AtomicI64::new(T0));
    let mut source = source(config(&base), &clock);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert!(delivered.duplicates().is_empty());
    assert_eq!(delivered.ids().into_iter().collect::<BTreeSet<_>>(), ids(&all));
    let state = fake.state.lock().unwrap();
    assert_eq!(state.bad_signatures, 0, "every request carries a valid SigV4 signature");
    assert_eq!(state.requests, 3, "120 events in pages of 50");
    // The payload is the CloudTrailEvent string's content, byte for byte.
    let (id, payload) = &delivered.events[0];
    let expected = all.iter().find(|e| format!("aws:{}", e.item["EventId"].as_str().unwrap()) == *id).unwrap();
    assert_eq!(payload, expected.item["CloudTrailEvent"].as_str().unwrap());
    assert_eq!(source.stats().cursor_time_ms, Some((T0 - 600) * 1000));
}

#[tokio::test]
async fn overlapping_windows_catch_late_events_and_drop_repeats() {
    let first = events("early", 30);
    let (fake, base) = start(first.clone()).await;
    let clock = Arc::new(AtomicI64::new(T0));
    let mut source = source(config(&base), &clock);
    let run1 = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert_eq!(run1.events.len(), 30);
    // Nothing new yet: idle, no request.
    assert!(matches!(source.poll().await.unwrap(), SourcePoll::Idle(_)));

    // Events that became visible late (times inside the first window, within the overlap)
    // and new ones; time moves on past the poll interval.
    let late = vec![fake::event("late-1", T0 - 400), fake::event("late-2", T0 - 1000)];
    let new = vec![fake::event("new-1", T0 - 100), fake::event("new-2", T0 + 200)];
    fake.state.lock().unwrap().events.extend(late.iter().chain(&new).cloned());
    clock.store(T0 + 600, Ordering::SeqCst);
    let run2 = poll_like_the_runner(&mut source, run1.cursor.clone(), StopAt::Idle).await;
    assert!(run2.errors.is_empty(), "{:?}", run2.errors);
    let second: BTreeSet<String> = run2.ids().into_iter().collect();
    let expected: BTreeSet<String> = ids(&late).union(&ids(&new)).cloned().collect();
    assert_eq!(second, expected, "only the late and new events, no repeat of the overlap");
}

#[tokio::test]
async fn throttling_is_a_400_that_is_retried() {
    let all = events("t", 60);
    let (fake, base) = start(all.clone()).await;
    fake.state.lock().unwrap().throttle_next = 3;
    let clock = Arc::new(AtomicI64::new(T0));
    let mut source = source(config(&base), &clock);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(delivered.ids().into_iter().collect::<BTreeSet<_>>(), ids(&all));
    assert!(source.stats().retries >= 3);
}

#[tokio::test]
async fn a_burst_of_5xx_is_retried() {
    let all = events("s", 70);
    let (fake, base) = start(all.clone()).await;
    fake.state.lock().unwrap().fail_next = 4;
    let clock = Arc::new(AtomicI64::new(T0));
    let mut source = source(config(&base), &clock);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(delivered.ids().into_iter().collect::<BTreeSet<_>>(), ids(&all));
    assert!(delivered.duplicates().is_empty());
}

#[tokio::test]
async fn a_wrong_secret_or_key_is_fatal_and_names_the_options_not_the_values() {
    let (fake, base) = start(events("x", 3)).await;
    let clock = Arc::new(AtomicI64::new(T0));
    let mut wrong = config(&base);
    wrong.secret_access_key = Secret::new("wrong/Secret+Key+Never+Printed+9999");
    let delivered = poll_like_the_runner(&mut source(wrong, &clock), None, StopAt::Idle).await;
    let error = delivered.errors.last().expect("an error");
    assert_eq!(error.kind, ErrorKind::Fatal);
    assert!(error.message.contains("secret_access_key"), "{}", error.message);
    assert!(error.message.contains("InvalidSignatureException"), "{}", error.message);
    assert!(!error.message.contains("wrong/Secret"), "{}", error.message);
    assert_no_secret(&delivered);
    assert!(fake.state.lock().unwrap().bad_signatures >= 1);

    let mut unknown = config(&base);
    unknown.access_key_id = "AKIAUNKNOWNKEY000000".into();
    let delivered = poll_like_the_runner(&mut source(unknown, &clock), None, StopAt::Idle).await;
    let error = delivered.errors.last().expect("an error");
    assert_eq!(error.kind, ErrorKind::Fatal);
    assert!(error.message.contains("UnrecognizedClientException"), "{}", error.message);
    assert!(delivered.events.is_empty());
}

#[tokio::test]
async fn temporary_credentials_send_the_session_token_and_an_expired_one_is_fatal() {
    let all = events("st", 5);
    let (fake, base) = start(all.clone()).await;
    fake.state.lock().unwrap().session_token = Some("FwoGZXIvYXdzEFAKE//token".into());
    let clock = Arc::new(AtomicI64::new(T0));
    let mut with_token = config(&base);
    with_token.session_token = Some(Secret::new("FwoGZXIvYXdzEFAKE//token"));
    let delivered = poll_like_the_runner(&mut source(with_token.clone(), &clock), None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(delivered.events.len(), 5);

    fake.state.lock().unwrap().token_expired = true;
    let delivered = poll_like_the_runner(&mut source(with_token, &clock), None, StopAt::Idle).await;
    let error = delivered.errors.last().expect("an error");
    assert_eq!(error.kind, ErrorKind::Fatal);
    assert!(error.message.contains("session_token"), "{}", error.message);
    assert!(!error.message.contains("FwoGZXIv"), "{}", error.message);
}

#[tokio::test]
async fn a_truncated_page_is_retried_and_a_garbled_one_is_dead_lettered_without_stopping() {
    let all = events("g", 120);
    let (fake, base) = start(all.clone()).await;
    fake.state.lock().unwrap().truncate_next = 1;
    let clock = Arc::new(AtomicI64::new(T0));
    let delivered = poll_like_the_runner(&mut source(config(&base), &clock), None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty() && delivered.rejected.is_empty());
    assert_eq!(delivered.ids().into_iter().collect::<BTreeSet<_>>(), ids(&all), "nothing lost to a truncated page");

    // Every page at offset 50 is garbled (neither its events nor its NextToken can be read):
    // each time the body is dead-lettered and the window read again from its first page, ending
    // at the oldest event already read; pages come newest first, so nothing is skipped.
    let (fake, base) = start(all.clone()).await;
    fake.state.lock().unwrap().garble_offset = Some(50);
    let mut source = source(config(&base), &clock);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(delivered.ids().into_iter().collect::<BTreeSet<_>>(), ids(&all), "nothing lost to garbled pages");
    assert!(delivered.duplicates().is_empty(), "{:?}", delivered.duplicates());
    assert_eq!(delivered.rejected.len(), 2, "{:?}", delivered.rejected);
    let reason = &delivered.rejected[0];
    assert!(
        reason.contains("source trail: LookupEvents window")
            && reason.contains("not the expected JSON")
            && reason.contains("reading the window again from its first page (attempt 1 of 3)"),
        "{reason}"
    );
    assert_no_secret(&delivered);
    // The source carries on with the next window.
    clock.store(T0 + 120, Ordering::SeqCst);
    fake.state.lock().unwrap().events.push(fake::event("after", T0 - 250));
    let next = poll_like_the_runner(&mut source, delivered.cursor.clone(), StopAt::Idle).await;
    assert_eq!(next.ids(), vec!["aws:after".to_string()]);
}

#[tokio::test]
async fn an_item_that_is_not_a_record_is_dead_lettered_and_the_rest_delivered() {
    let mut all = events("i", 4);
    let mut not_json = fake::event("bad-1", T0 - 700);
    not_json.item["CloudTrailEvent"] = serde_json::json!("{\"eventID\": \"bad-1\", trunc");
    let mut not_string = fake::event("bad-2", T0 - 700);
    not_string.item["CloudTrailEvent"] = serde_json::json!({"eventID": "bad-2"});
    all.push(not_json);
    all.push(not_string);
    let (_fake, base) = start(all).await;
    let clock = Arc::new(AtomicI64::new(T0));
    let delivered = poll_like_the_runner(&mut source(config(&base), &clock), None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty());
    assert_eq!(delivered.events.len(), 4);
    assert_eq!(delivered.rejected.len(), 2, "{:?}", delivered.rejected);
    assert!(delivered.rejected.iter().any(|r| r.contains("CloudTrailEvent is not a CloudTrail record")));
    assert!(delivered.rejected.iter().any(|r| r.contains("no CloudTrailEvent string")));
}

#[tokio::test]
async fn an_empty_account_is_idle_without_errors() {
    let (fake, base) = start(Vec::new()).await;
    let clock = Arc::new(AtomicI64::new(T0));
    let mut source = source(config(&base), &clock);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty() && delivered.events.is_empty() && delivered.rejected.is_empty());
    assert!(delivered.cursor.is_some(), "the finished window is committed");
    assert_eq!(fake.state.lock().unwrap().requests, 1);
}

#[tokio::test]
async fn a_restart_mid_window_loses_nothing_and_repeats_nothing() {
    let all = events("r", 175);
    let (_fake, base) = start(all.clone()).await;
    let clock = Arc::new(AtomicI64::new(T0));
    let crashed = poll_like_the_runner(&mut source(config(&base), &clock), None, StopAt::CrashAfter(2)).await;
    assert_eq!(crashed.events.len(), 100, "two pages committed, the third lost in the crash");
    let resumed = poll_like_the_runner(&mut source(config(&base), &clock), crashed.cursor.clone(), StopAt::Idle).await;
    assert!(resumed.errors.is_empty(), "{:?}", resumed.errors);
    let mut union = crashed.ids();
    union.extend(resumed.ids());
    let unique: BTreeSet<String> = union.iter().cloned().collect();
    assert_eq!(unique.len(), union.len(), "no event delivered twice");
    assert_eq!(unique, ids(&all), "no event lost");
}

// --- aws_eventbridge ---

const API_KEY: &str = "eb-key-Never-Printed-42";

fn envelope(event_id: &str, envelope_id: &str) -> String {
    let mut detail: serde_json::Value =
        serde_json::from_str(include_str!("testdata/lambda_runtime_cloudtrail_assumed_role.json")).unwrap();
    detail["eventID"] = serde_json::json!(event_id);
    // Hand-spaced, to show the payload is the bytes as sent.
    format!(
        "{{\"version\": \"0\", \"id\": \"{envelope_id}\", \"detail-type\": \"AWS API Call via CloudTrail\", \
         \"source\": \"aws.controltower\", \"account\": \"123456789000\", \"time\": \"2024-07-10T16:48:26Z\", \
         \"region\": \"us-east-1\", \"resources\": [], \"detail\": {detail}}}"
    )
}

#[tokio::test]
async fn eventbridge_deliveries_are_acknowledged_once_durable_and_deduplicated_by_event_id() {
    let config = EventBridgeConfig {
        path: "/hooks/aws".into(),
        api_key_header: "X-Weir-Key".into(),
        api_key: Secret::new(API_KEY),
        patience_ms: 3000,
    };
    let mut source = EventBridgeSource::new("eb", config).unwrap();
    source.open(None).await.unwrap();
    let base = serve(source.router()).await;
    let http = reqwest::Client::new();
    let post = |body: String, key: &'static str| {
        let http = http.clone();
        let base = base.clone();
        tokio::spawn(async move {
            http.post(format!("{base}/")).header("x-weir-key", key).body(body).send().await.unwrap().status().as_u16()
        })
    };

    // A wrong key: 401, nothing queued.
    assert_eq!(post(envelope("ct-1", "env-1"), "wrong").await.unwrap(), 401);

    // A good delivery: answered only once committed.
    let body = envelope("ct-1", "env-1");
    let first = post(body.clone(), API_KEY);
    let SourcePoll::Batch(batch) = source.poll().await.unwrap() else { panic!("a batch") };
    assert_eq!(batch.records.len(), 1);
    assert_eq!(batch.records[0].header("weir-id").map(|v| v.to_vec()), Some(b"aws:ct-1".to_vec()));
    let envelope_bytes: weir_schemas::events::RawEnvelope = weir_schemas::decode(&batch.records[0].value).unwrap();
    assert_eq!(envelope_bytes.payload, body.as_bytes(), "the whole envelope, untouched");
    assert_eq!(envelope_bytes.vendor, "aws");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!first.is_finished(), "not answered before it is durable");
    source.committed(batch.cursor.as_deref()).await.unwrap();
    assert_eq!(first.await.unwrap(), 200);

    // EventBridge redelivers the same record in a new envelope: acknowledged, not appended.
    let again = post(envelope("ct-1", "env-2"), API_KEY);
    let SourcePoll::Batch(batch) = source.poll().await.unwrap() else { panic!("a batch") };
    assert!(batch.records.is_empty());
    source.committed(batch.cursor.as_deref()).await.unwrap();
    assert_eq!(again.await.unwrap(), 200);

    // Not an EventBridge event: 400 and a dead letter (durable first).
    let junk = post("{\"hello\": \"world\"}".into(), API_KEY);
    let SourcePoll::Batch(batch) = source.poll().await.unwrap() else { panic!("a batch") };
    assert_eq!(batch.rejected.len(), 1);
    assert!(batch.rejected[0].reason.contains("not an EventBridge event"), "{}", batch.rejected[0].reason);
    assert!(!batch.rejected[0].reason.contains(API_KEY));
    source.committed(batch.cursor.as_deref()).await.unwrap();
    assert_eq!(junk.await.unwrap(), 400);
}

#[tokio::test]
async fn an_eventbridge_delivery_not_durable_in_time_is_answered_503() {
    let config = EventBridgeConfig {
        path: "/hooks/aws".into(),
        api_key_header: "x-api-key".into(),
        api_key: Secret::new(API_KEY),
        patience_ms: 100,
    };
    let mut source = EventBridgeSource::new("eb", config).unwrap();
    source.open(None).await.unwrap();
    let base = serve(source.router()).await;
    let response = tokio::spawn(async move {
        let http = reqwest::Client::new();
        http.post(format!("{base}/")).header("x-api-key", API_KEY).body(envelope("ct-9", "e")).send().await.unwrap()
    });
    let SourcePoll::Batch(_) = source.poll().await.unwrap() else { panic!("a batch") };
    // Never committed in time.
    assert_eq!(response.await.unwrap().status().as_u16(), 503);
}

#[test]
fn an_eventbridge_source_without_a_key_is_refused() {
    let config = EventBridgeConfig {
        path: "/hooks/aws".into(),
        api_key_header: "x-api-key".into(),
        api_key: Secret::new(" "),
        patience_ms: 3000,
    };
    let error = EventBridgeSource::new("eb", config).err().expect("refused");
    assert_eq!((error.option, error.reason.as_str()), ("api_key", "it is empty"));
}
