//! Tests of the `netskope` source against the fake tenant on 127.0.0.1.

use std::time::Duration;

use weir_schemas::component::{ErrorKind, Source, SourcePoll};

use super::fake::{FakeNetskope, Fault};
use super::{NetskopeConfig, NetskopeSource};
use crate::http::Secret;
use crate::test_support::{fast_http, poll_like_the_runner, Delivered, StopAt};

const TOKEN: &str = "nsk-test-token-5f1c2a";

fn config(url: &str, events: &[&str], alerts: &[&str]) -> NetskopeConfig {
    NetskopeConfig {
        base_url: url.to_string(),
        api_token: Secret::new(TOKEN),
        index: "weir_test".into(),
        event_types: events.iter().map(|s| s.to_string()).collect(),
        alert_types: alerts.iter().map(|s| s.to_string()).collect(),
        start_lookback_secs: 7200,
        idle_secs: 30,
        http: fast_http(),
    }
}

fn source(url: &str, events: &[&str], alerts: &[&str]) -> NetskopeSource {
    NetskopeSource::new("netskope", config(url, events, alerts)).unwrap()
}

fn sorted_ids(delivered: &[&Delivered]) -> Vec<String> {
    let mut ids: Vec<String> = delivered.iter().flat_map(|d| d.ids()).collect();
    ids.sort();
    ids
}

fn assert_no_secret(delivered: &Delivered) {
    for e in &delivered.errors {
        assert!(!e.message.contains(TOKEN), "the token leaked into an error: {}", e.message);
    }
    for r in &delivered.rejected {
        assert!(!r.contains(TOKEN), "the token leaked into a dead letter: {r}");
    }
}

#[tokio::test]
async fn reads_every_endpoint_round_robin_over_many_pages() {
    let fake = FakeNetskope::start(TOKEN, 4).await;
    fake.add_events("events/page", 0, 10);
    fake.add_events("events/application", 0, 7);
    fake.add_events("alerts/dlp", 0, 5);
    let mut source = source(&fake.url, &["page", "application"], &["dlp"]);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(sorted_ids(&[&delivered]), fake.weir_ids());
    assert!(delivered.duplicates().is_empty());
    // 64-bit ids above 2^53 are delivered byte for byte.
    let (_, payload) = delivered.events.iter().find(|(id, _)| id == &format!("netskope:page{:020x}", 1)).unwrap();
    assert!(payload.contains(r#""app_session_id":9007199254740995"#), "{payload}");
    let log = fake.log();
    // The first call per endpoint starts the iterator at an epoch, the next ones say `next`; the
    // endpoints take turns.
    assert!(log[0].starts_with("events/page index=weir_test operation=1"), "{log:?}");
    assert!(log[1].starts_with("events/application index=weir_test operation=1"), "{log:?}");
    assert!(log[2].starts_with("alerts/dlp index=weir_test operation=1"), "{log:?}");
    assert_eq!(log[3], "events/page index=weir_test operation=next");
    assert!(!log.iter().any(|l| l.ends_with("operation=resend")), "no resend without a reason: {log:?}");
    // Event time comes from `timestamp`.
    assert!(source.stats().cursor_time_ms.is_some());
}

#[tokio::test]
async fn caught_up_endpoints_make_the_source_idle_for_the_servers_wait_time() {
    let fake = FakeNetskope::start(TOKEN, 10).await;
    fake.state.lock().unwrap().wait_when_empty = 7;
    let mut source = source(&fake.url, &["audit"], &[]);
    source.open(None).await.unwrap();
    // The iterator's start is committed even with nothing to read (an empty tenant).
    let SourcePoll::Batch(batch) = source.poll().await.unwrap() else { panic!("expected the start's batch") };
    assert!(batch.records.is_empty() && batch.rejected.is_empty());
    source.committed(batch.cursor.as_deref()).await.unwrap();
    let SourcePoll::Idle(wait) = source.poll().await.unwrap() else { panic!("expected idle") };
    assert!(wait <= Duration::from_secs(7), "the server's wait_time, not idle_secs: {wait:?}");
    let cursor = batch.cursor.unwrap();
    assert!(cursor.contains(r#""events/audit":{"started":true"#), "{cursor}");
}

#[tokio::test]
async fn a_restart_between_or_inside_pages_loses_and_repeats_nothing() {
    for crash_after in 0..6 {
        let fake = FakeNetskope::start(TOKEN, 3).await;
        fake.add_events("events/network", 0, 8);
        fake.add_events("alerts/malware", 0, 5);
        let mut first = source(&fake.url, &["network"], &["malware"]);
        let before = poll_like_the_runner(&mut first, None, StopAt::CrashAfter(crash_after)).await;
        assert!(before.errors.is_empty(), "{:?}", before.errors);
        // More events arrive while the source is down.
        fake.add_events("events/network", 8, 4);
        let mut second = source(&fake.url, &["network"], &["malware"]);
        let after = poll_like_the_runner(&mut second, before.cursor.clone(), StopAt::Idle).await;
        assert!(after.errors.is_empty(), "{:?}", after.errors);
        let all = sorted_ids(&[&before, &after]);
        let mut unique = all.clone();
        unique.dedup();
        assert_eq!(all, unique, "crash after {crash_after} batches: duplicates");
        assert_eq!(all, fake.weir_ids(), "crash after {crash_after} batches: lost events; {:?}", fake.log());
        if before.cursor.is_some() {
            assert!(fake.log().iter().any(|l| l.ends_with("operation=resend")), "a restart asks for resend");
        }
    }
}

#[tokio::test]
async fn a_restart_after_everything_was_committed_drops_the_resent_page() {
    let fake = FakeNetskope::start(TOKEN, 4).await;
    fake.add_events("events/page", 0, 6);
    let mut first = source(&fake.url, &["page"], &[]);
    let before = poll_like_the_runner(&mut first, None, StopAt::Idle).await;
    assert_eq!(before.events.len(), 6);
    let mut second = source(&fake.url, &["page"], &[]);
    let after = poll_like_the_runner(&mut second, before.cursor.clone(), StopAt::Idle).await;
    assert!(after.events.is_empty(), "the resent page was already durable: {:?}", after.ids());
    assert!(after.errors.is_empty(), "{:?}", after.errors);
}

#[tokio::test]
async fn a_response_cut_mid_body_after_the_cursor_moved_is_recovered_with_resend() {
    let fake = FakeNetskope::start(TOKEN, 3).await;
    fake.add_events("events/page", 0, 9);
    // The first page arrives whole; the second is cut after the server moved its cursor.
    fake.fail_next(&[Fault::Pass, Fault::CutBody]);
    let mut source = source(&fake.url, &["page"], &[]);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "recovered inside the poll: {:?}", delivered.errors);
    assert_eq!(sorted_ids(&[&delivered]), fake.weir_ids(), "the cut page was recovered");
    assert!(delivered.duplicates().is_empty());
    let log = fake.log();
    assert_eq!(log[2], "events/page index=weir_test operation=resend", "{log:?}");
    assert_eq!(log[3], "events/page index=weir_test operation=next", "{log:?}");
}

#[tokio::test]
async fn rate_limits_and_server_errors_repeat_the_same_operation() {
    let fake = FakeNetskope::start(TOKEN, 5).await;
    fake.add_events("alerts/policy", 0, 12);
    fake.fail_next(&[Fault::RateLimited, Fault::ServerError, Fault::ServerError, Fault::ServerError]);
    let mut source = source(&fake.url, &[], &["policy"]);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(sorted_ids(&[&delivered]), fake.weir_ids());
    assert!(source.stats().retries >= 4, "{:?}", source.stats());
    let log = fake.log();
    // The start was repeated as is: the 429 and the 5xx did not move the server's cursor.
    assert!(log[..5].iter().all(|l| l.starts_with("alerts/policy index=weir_test operation=1")), "{log:?}");
}

#[tokio::test]
async fn a_page_that_stays_unreadable_is_dead_lettered_and_reading_goes_on() {
    let fake = FakeNetskope::start(TOKEN, 3).await;
    fake.add_events("events/page", 0, 9);
    // `next` and then every `resend` of the second page come back garbled.
    fake.fail_next(&[Fault::Pass, Fault::Garbled, Fault::Garbled, Fault::Garbled, Fault::Garbled]);
    let mut source = source(&fake.url, &["page"], &[]);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(delivered.rejected.len(), 1, "{:?}", delivered.rejected);
    let reason = &delivered.rejected[0];
    assert!(reason.contains("netskope events/page (operation=resend)"), "{reason}");
    assert!(reason.contains("not the expected JSON"), "{reason}");
    // The first and third pages were read; the second is in the dead-letter topic.
    assert_eq!(delivered.events.len(), 6, "{:?}", delivered.ids());
    assert!(delivered.duplicates().is_empty());
    assert_no_secret(&delivered);
}

#[tokio::test]
async fn events_without_an_id_are_dead_lettered_and_the_others_kept() {
    let fake = FakeNetskope::start(TOKEN, 10).await;
    fake.add_events("events/page", 0, 2);
    fake.state
        .lock()
        .unwrap()
        .events
        .get_mut("events/page")
        .unwrap()
        .insert(1, (crate::batch::now_ms() / 1000 - 3600, r#"{"timestamp":1,"type":"page"}"#.into()));
    let mut source = source(&fake.url, &["page"], &[]);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert_eq!(delivered.events.len(), 2);
    assert_eq!(delivered.rejected.len(), 1);
    assert!(delivered.rejected[0].contains("events/page (operation=1"), "{}", delivered.rejected[0]);
    assert!(delivered.rejected[0].contains("result[1]: the event has no `_id`"), "{}", delivered.rejected[0]);
}

#[tokio::test]
async fn an_answer_that_is_not_ok_is_a_clear_retryable_error() {
    let fake = FakeNetskope::start(TOKEN, 10).await;
    fake.add_events("events/page", 0, 3);
    fake.fail_next(&[Fault::NotOk]);
    let mut source = source(&fake.url, &["page"], &[]);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert_eq!(delivered.errors.len(), 1);
    let error = &delivered.errors[0];
    assert_eq!(error.kind, ErrorKind::Retryable);
    assert!(error.message.contains("`ok` is 0"), "{}", error.message);
    assert!(error.message.contains("iterator is busy"), "{}", error.message);
    assert_eq!(delivered.events.len(), 3, "the next poll carried on");
}

#[tokio::test]
async fn a_refused_token_is_fatal_and_names_the_option_not_the_value() {
    let fake = FakeNetskope::start("another-token", 10).await;
    fake.add_events("events/page", 0, 3);
    let mut source = source(&fake.url, &["page"], &[]);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert_eq!(delivered.errors.len(), 1);
    let error = &delivered.errors[0];
    assert_eq!(error.kind, ErrorKind::Fatal);
    assert!(error.message.contains("HTTP 401") && error.message.contains("`api_token`"), "{}", error.message);
    assert!(error.message.contains("/api/v2/events/dataexport/events/page"), "{}", error.message);
    assert_no_secret(&delivered);
}

#[test]
fn bad_configurations_name_the_option() {
    let check = |config: NetskopeConfig, option: &str| {
        let err = NetskopeSource::new("n", config).err().expect("an error");
        assert_eq!(err.option, option, "{err}");
        assert!(!err.to_string().contains(TOKEN));
    };
    check(config("http://127.0.0.1:1", &[], &[]), "event_types");
    check(config("http://127.0.0.1:1", &["pages"], &[]), "event_types");
    check(config("http://127.0.0.1:1", &["page"], &["dlp", "dlp"]), "alert_types");
    check(config("not a url", &["page"], &[]), "base_url");
    let mut no_index = config("http://127.0.0.1:1", &["page"], &[]);
    no_index.index = " ".into();
    check(no_index, "index");
    let parsed: NetskopeConfig =
        toml_like(r#"{"base_url":"https://t.goskope.com","api_token":"x","index":"weir","event_types":["page"]}"#);
    assert_eq!(parsed.start_lookback_secs, 3600);
    assert!(serde_json::from_str::<NetskopeConfig>(
        r#"{"base_url":"https://t.goskope.com","api_token":"x","index":"weir","event_type":["page"]}"#
    )
    .is_err());
}

fn toml_like(json: &str) -> NetskopeConfig {
    serde_json::from_str(json).unwrap()
}
