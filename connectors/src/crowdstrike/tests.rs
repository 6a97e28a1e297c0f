//! Tests of the CrowdStrike sources against the fake Falcon API on 127.0.0.1.

use weir_schemas::component::{ComponentError, ErrorKind, Rejected, Source, SourcePoll};

use super::fake::{rfc3339, FakeFalcon, Fault};
use super::{Cloud, CrowdStrikeAlertsConfig, CrowdStrikeAlertsSource, CrowdStrikeHostsConfig, CrowdStrikeHostsSource};
use crate::batch::now_ms;
use crate::http::Secret;
use crate::test_support::{fast_http, poll_like_the_runner, Delivered, StopAt};

const CLIENT_ID: &str = "0123456789abcdef0123456789abcdef";
const SECRET: &str = "falcon-secret-Zq81xV2pLm";

fn alerts_config(url: &str, page_size: usize) -> CrowdStrikeAlertsConfig {
    CrowdStrikeAlertsConfig {
        cloud: Cloud::Us1,
        base_url: Some(url.to_string()),
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new(SECRET),
        member_cid: None,
        overlap_secs: 60,
        start_lookback_secs: 86_400,
        page_size,
        poll_interval_secs: 60,
        filter: None,
        http: fast_http(),
    }
}

fn alerts(url: &str, page_size: usize) -> CrowdStrikeAlertsSource {
    CrowdStrikeAlertsSource::new("falcon_alerts", alerts_config(url, page_size)).unwrap()
}

fn hosts_config(url: &str, page_size: usize) -> CrowdStrikeHostsConfig {
    CrowdStrikeHostsConfig {
        cloud: Cloud::Us1,
        base_url: Some(url.to_string()),
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new(SECRET),
        member_cid: None,
        interval_secs: 3600,
        overlap_secs: 60,
        page_size,
        http: fast_http(),
    }
}

fn hosts(url: &str, page_size: usize) -> CrowdStrikeHostsSource {
    CrowdStrikeHostsSource::new("falcon_hosts", hosts_config(url, page_size)).unwrap()
}

fn sorted_ids(delivered: &[&Delivered]) -> Vec<String> {
    let mut ids: Vec<String> = delivered.iter().flat_map(|d| d.ids()).collect();
    ids.sort();
    ids
}

fn assert_no_secret(delivered: &Delivered) {
    for e in &delivered.errors {
        assert!(!e.message.contains(SECRET), "the secret leaked into an error: {}", e.message);
    }
    for r in &delivered.rejected {
        assert!(!r.contains(SECRET), "the secret leaked into a dead letter: {r}");
    }
}

#[tokio::test]
async fn alerts_are_read_page_by_page_with_their_details() {
    let fake = FakeFalcon::start(CLIENT_ID, SECRET).await;
    fake.add_alerts(0, 25);
    let mut config = alerts_config(&fake.url, 10);
    config.member_cid = Some("fedcba9876543210fedcba9876543210".into());
    let mut source = CrowdStrikeAlertsSource::new("falcon_alerts", config).unwrap();
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(sorted_ids(&[&delivered]), fake.alert_ids());
    assert!(delivered.duplicates().is_empty());
    // The vendor bytes are kept: a 64-bit number and the nanosecond timestamps are untouched.
    assert!(delivered.events.iter().any(|(_, p)| p.contains(r#""process_id":"12345678901234567""#)));
    let state = fake.state.lock().unwrap();
    assert_eq!(state.tokens_issued, 1, "one token for the whole run (201, expires_in 1799)");
    let form = &state.last_token_form;
    assert!(form.contains(&("member_cid".into(), "fedcba9876543210fedcba9876543210".into())), "{form:?}");
    assert!(form.contains(&("client_id".into(), CLIENT_ID.into())), "{form:?}");
    drop(state);
    assert!(source.stats().cursor_time_ms.is_some());
}

#[tokio::test]
async fn a_changed_alert_is_a_new_event_and_the_overlap_repeats_nothing() {
    let fake = FakeFalcon::start(CLIENT_ID, SECRET).await;
    fake.add_alerts(0, 12);
    let mut first = alerts(&fake.url, 5);
    let before = poll_like_the_runner(&mut first, None, StopAt::Idle).await;
    assert_eq!(before.events.len(), 12);
    let queries_before = fake.log().len();
    let newest = fake.state.lock().unwrap().alerts.iter().map(|a| a.updated_ms).max().unwrap();
    // Alert 3 changes status; two alerts are new.
    let changed_at = now_ms() - 30_000;
    fake.set_alert(3, changed_at, "in_progress");
    fake.add_alerts(12, 2);
    let mut second = alerts(&fake.url, 5);
    let after = poll_like_the_runner(&mut second, before.cursor.clone(), StopAt::Idle).await;
    assert!(after.errors.is_empty(), "{:?}", after.errors);
    let mut ids = after.ids();
    ids.sort();
    let alert = |n: usize, ms: i64| {
        format!(
            "crowdstrike:0123456789abcdef0123456789abcdef:ind:fedcba9876543210fedcba9876543210:{n:012}-5701-1@{}",
            rfc3339(ms)
        )
    };
    let base = fake
        .state
        .lock()
        .unwrap()
        .alerts
        .iter()
        .find(|a| a.composite_id.ends_with(":000000000012-5701-1"))
        .unwrap()
        .updated_ms;
    let mut expected = vec![alert(3, changed_at), alert(12, base), alert(13, base + 1000)];
    expected.sort();
    assert_eq!(ids, expected, "only the new version and the new alerts");
    // The second run asked again from the newest update less the overlap: the overlap's alerts
    // came back and were dropped.
    let log = fake.log();
    let first_query = log[queries_before..].iter().find(|l| l.contains("/alerts/queries/")).unwrap();
    let from = super::api::fql_time(newest - 60_000);
    assert!(first_query.contains(&format!("filter=updated_timestamp:>='{from}' ")), "{first_query}");
    assert!(before.events.iter().all(|(_, p)| p.contains(r#""status":"new""#)));
    assert!(after.events.iter().any(|(_, p)| p.contains(r#""status":"in_progress""#)));
}

#[tokio::test]
async fn a_restart_between_alert_pages_loses_and_repeats_nothing() {
    for crash_after in 0..5 {
        let fake = FakeFalcon::start(CLIENT_ID, SECRET).await;
        fake.add_alerts(0, 17);
        let mut first = alerts(&fake.url, 4);
        let before = poll_like_the_runner(&mut first, None, StopAt::CrashAfter(crash_after)).await;
        fake.add_alerts(17, 3);
        let mut second = alerts(&fake.url, 4);
        let after = poll_like_the_runner(&mut second, before.cursor.clone(), StopAt::Idle).await;
        assert!(before.errors.is_empty() && after.errors.is_empty(), "{:?} {:?}", before.errors, after.errors);
        let all = sorted_ids(&[&before, &after]);
        let mut unique = all.clone();
        unique.dedup();
        assert_eq!(all, unique, "crash after {crash_after}: duplicates");
        assert_eq!(all, fake.alert_ids(), "crash after {crash_after}: lost alerts");
    }
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    let fake = FakeFalcon::start(CLIENT_ID, SECRET).await;
    fake.add_alerts(0, 6);
    fake.fail_next(&[Fault::RateLimited, Fault::ServerError, Fault::ServerError, Fault::ServerError]);
    let mut source = alerts(&fake.url, 10);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(sorted_ids(&[&delivered]), fake.alert_ids());
    assert!(source.stats().retries >= 4, "{:?}", source.stats());
}

#[tokio::test]
async fn an_expired_token_is_replaced_and_the_request_sent_again() {
    let fake = FakeFalcon::start(CLIENT_ID, SECRET).await;
    fake.add_alerts(0, 6);
    // The token expires between the query and the details.
    fake.fail_next(&[Fault::Pass, Fault::ExpireToken]);
    let mut source = alerts(&fake.url, 10);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(sorted_ids(&[&delivered]), fake.alert_ids());
    assert_eq!(fake.state.lock().unwrap().tokens_issued, 2);
}

#[tokio::test]
async fn details_unreadable_a_few_polls_running_are_asked_again_and_nothing_is_lost() {
    let fake = FakeFalcon::start(CLIENT_ID, SECRET).await;
    fake.add_alerts(0, 12);
    // One truncated query page is simply asked again by the client. Then the details of the
    // second page stay truncated over the client's three tries for four polls running (one short
    // of giving up): each poll fails retryably and keeps nothing; the fifth reads them.
    let mut faults = vec![Fault::Truncated, Fault::Pass, Fault::Pass];
    for _ in 0..4 {
        faults.extend([Fault::Pass, Fault::Truncated, Fault::Truncated, Fault::Truncated]);
    }
    fake.fail_next(&faults);
    let mut source = alerts(&fake.url, 4);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert_eq!(delivered.errors.len(), 4, "{:?}", delivered.errors);
    for e in &delivered.errors {
        assert_eq!(e.kind, ErrorKind::Retryable, "{}", e.message);
        assert!(e.message.contains("POST /alerts/entities/alerts/v2") && e.message.contains("asked again"), "{e:?}");
    }
    assert!(delivered.rejected.is_empty(), "{:?}", delivered.rejected);
    assert!(delivered.duplicates().is_empty(), "{:?}", delivered.duplicates());
    let mut ids = delivered.ids();
    ids.sort();
    assert_eq!(ids, fake.alert_ids(), "every alert exactly once");
    assert_no_secret(&delivered);
}

/// Polls `source` from `cursor` like the runner until idle, keeping the dead letters' bytes.
async fn poll_keeping_dead_letters(
    source: &mut dyn Source,
    cursor: Option<String>,
) -> (Vec<String>, Vec<Rejected>, Vec<ComponentError>, Option<String>) {
    source.open(cursor.clone()).await.unwrap();
    let (mut ids, mut rejected, mut errors, mut cursor) = (Vec::new(), Vec::new(), Vec::new(), cursor);
    while errors.len() < 50 {
        match source.poll().await {
            Ok(SourcePoll::Batch(batch)) => {
                for record in &batch.records {
                    ids.push(String::from_utf8_lossy(record.header("weir-id").unwrap()).into_owned());
                }
                rejected.extend(batch.rejected);
                cursor = batch.cursor.or(cursor);
                source.committed(cursor.as_deref()).await.unwrap();
            }
            Ok(_) => break,
            Err(e) => errors.push(e),
        }
    }
    (ids, rejected, errors, cursor)
}

/// The ids in dead letters whose payload is a details request body (`{"<field>":[..]}`).
fn dead_lettered_ids(rejected: &[Rejected], field: &str) -> Vec<String> {
    rejected
        .iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.original).ok())
        .filter_map(|v| v[field].as_array().cloned())
        .flatten()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn details_never_readable_are_given_up_as_ids_an_operator_can_fetch_again() {
    let fake = FakeFalcon::start(CLIENT_ID, SECRET).await;
    fake.add_alerts(0, 12);
    // The first page is read; the details of the second stay truncated for five polls running.
    let mut faults = vec![Fault::Pass, Fault::Pass];
    for _ in 0..5 {
        faults.extend([Fault::Pass, Fault::Truncated, Fault::Truncated, Fault::Truncated]);
    }
    fake.fail_next(&faults);
    let mut source = alerts(&fake.url, 4);
    let (ids, rejected, errors, _) = poll_keeping_dead_letters(&mut source, None).await;
    assert_eq!(errors.len(), 4, "four retries, then the ids are given up: {errors:?}");
    assert_eq!(rejected.len(), 2, "the ids and the garbled answer: {rejected:?}");
    let reason = &rejected[0].reason;
    assert!(reason.contains("POST /alerts/entities/alerts/v2") && reason.contains("not the expected JSON"), "{reason}");
    assert!(reason.contains("unreadable over 5 polls") && reason.contains("4 id(s)"), "{reason}");
    let given_up = dead_lettered_ids(&rejected, "composite_ids");
    assert_eq!(given_up.len(), 4, "{given_up:?}");
    // Every alert is either delivered (once) or named in the dead letter; nothing vanished.
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "duplicates: {ids:?}");
    let state = fake.state.lock().unwrap();
    for alert in &state.alerts {
        let delivered = ids.iter().any(|id| id.starts_with(&format!("crowdstrike:{}@", alert.composite_id)));
        assert!(delivered || given_up.contains(&alert.composite_id), "{} was lost", alert.composite_id);
    }
    assert!(ids.len() >= 8, "the pages after the given-up one were read: {ids:?}");
}

#[tokio::test]
async fn partial_errors_are_dead_lettered_and_the_results_kept() {
    let fake = FakeFalcon::start(CLIENT_ID, SECRET).await;
    fake.add_alerts(0, 4);
    fake.fail_next(&[Fault::Pass, Fault::PartialErrors]);
    let mut source = alerts(&fake.url, 10);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert_eq!(sorted_ids(&[&delivered]), fake.alert_ids());
    assert_eq!(delivered.rejected.len(), 1);
    assert!(delivered.rejected[0].contains("reported errors alongside its results"), "{}", delivered.rejected[0]);
    assert!(delivered.rejected[0].contains("some results could not be retrieved"), "{}", delivered.rejected[0]);
}

#[tokio::test]
async fn an_empty_tenant_is_idle() {
    let fake = FakeFalcon::start(CLIENT_ID, SECRET).await;
    let mut source = alerts(&fake.url, 10);
    source.open(None).await.unwrap();
    assert!(matches!(source.poll().await.unwrap(), SourcePoll::Idle(_)));
    let mut hosts = hosts(&fake.url, 10);
    let delivered = poll_like_the_runner(&mut hosts, None, StopAt::Idle).await;
    assert!(delivered.events.is_empty() && delivered.errors.is_empty());
    assert!(delivered.cursor.unwrap().contains(r#""last_sync_started_ms":"#), "the empty snapshot is complete");
}

#[tokio::test]
async fn refused_credentials_are_fatal_and_name_the_options_not_the_values() {
    let fake = FakeFalcon::start(CLIENT_ID, "the-right-secret").await;
    fake.add_alerts(0, 2);
    let mut source = alerts(&fake.url, 10);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert_eq!(delivered.errors.len(), 1);
    let error = &delivered.errors[0];
    assert_eq!(error.kind, ErrorKind::Fatal);
    assert!(error.message.contains("HTTP 403"), "{}", error.message);
    assert!(error.message.contains("`client_id` and `client_secret`"), "{}", error.message);
    assert_no_secret(&delivered);
}

#[tokio::test]
async fn hosts_are_read_over_scroll_pages() {
    let fake = FakeFalcon::start(CLIENT_ID, SECRET).await;
    fake.add_hosts(0, 23);
    let mut source = hosts(&fake.url, 10);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(sorted_ids(&[&delivered]), fake.host_ids());
    let scrolls: Vec<String> = fake.log().into_iter().filter(|l| l.contains("devices-scroll")).collect();
    assert_eq!(scrolls.len(), 3, "{scrolls:?}");
    assert!(scrolls[0].ends_with("filter= offset="), "the first sync is a full snapshot: {}", scrolls[0]);
    assert!(scrolls[1].contains("offset=FQLscroll"), "{}", scrolls[1]);
}

#[tokio::test]
async fn a_later_sync_reads_only_the_hosts_modified_since_the_last() {
    let fake = FakeFalcon::start(CLIENT_ID, SECRET).await;
    fake.add_hosts(0, 8);
    let mut first = hosts(&fake.url, 5);
    let before = poll_like_the_runner(&mut first, None, StopAt::Idle).await;
    assert_eq!(before.events.len(), 8);
    fake.set_host(2, now_ms());
    fake.add_hosts(8, 1);
    fake.set_host(8, now_ms());
    // Pretend the interval has passed: the last sync started two seconds ago, the interval is 1 s.
    let mut cursor: serde_json::Value = serde_json::from_str(before.cursor.as_deref().unwrap()).unwrap();
    let started = cursor["last_sync_started_ms"].as_i64().unwrap();
    cursor["last_sync_started_ms"] = (started - 2000).into();
    let mut config = hosts_config(&fake.url, 5);
    config.interval_secs = 1;
    let mut second = CrowdStrikeHostsSource::new("falcon_hosts", config).unwrap();
    let after = poll_like_the_runner(&mut second, Some(cursor.to_string()), StopAt::Idle).await;
    assert!(after.errors.is_empty(), "{:?}", after.errors);
    assert_eq!(after.events.len(), 2, "{:?}", after.ids());
    assert!(after.ids().iter().any(|id| id.starts_with("crowdstrike:dev00000000000000000000000000002@")));
    let scroll = fake.log().into_iter().rev().find(|l| l.contains("devices-scroll")).unwrap();
    assert!(scroll.contains("filter=modified_timestamp:>'"), "{scroll}");
}

#[tokio::test]
async fn a_restart_mid_scroll_loses_and_repeats_nothing_even_when_the_token_expired() {
    for expire in [false, true] {
        for crash_after in 0..4 {
            let fake = FakeFalcon::start(CLIENT_ID, SECRET).await;
            fake.add_hosts(0, 14);
            let mut first = hosts(&fake.url, 4);
            let before = poll_like_the_runner(&mut first, None, StopAt::CrashAfter(crash_after)).await;
            if expire {
                fake.expire_scrolls();
            }
            let mut second = hosts(&fake.url, 4);
            let after = poll_like_the_runner(&mut second, before.cursor.clone(), StopAt::Idle).await;
            assert!(after.errors.is_empty(), "{:?}", after.errors);
            let all = sorted_ids(&[&before, &after]);
            let mut unique = all.clone();
            unique.dedup();
            assert_eq!(all, unique, "expire {expire}, crash after {crash_after}: duplicates");
            assert_eq!(all, fake.host_ids(), "expire {expire}, crash after {crash_after}: lost hosts");
            if expire && crash_after > 0 {
                let fresh =
                    fake.log().iter().filter(|l| l.contains("devices-scroll") && l.ends_with("offset=")).count();
                assert_eq!(fresh, 2, "the expired scroll was started over: {:?}", fake.log());
            }
        }
    }
}

#[tokio::test]
async fn host_pages_survive_rate_limits_truncation_and_partial_errors() {
    let fake = FakeFalcon::start(CLIENT_ID, SECRET).await;
    fake.add_hosts(0, 9);
    fake.fail_next(&[Fault::RateLimited, Fault::Truncated, Fault::Pass, Fault::PartialErrors, Fault::ServerError]);
    let mut source = hosts(&fake.url, 5);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(sorted_ids(&[&delivered]), fake.host_ids());
    assert_eq!(delivered.rejected.len(), 1, "{:?}", delivered.rejected);
    assert!(delivered.rejected[0].contains("POST /devices/entities/devices/v2"), "{}", delivered.rejected[0]);
    assert!(source.stats().retries >= 3);
    assert_no_secret(&delivered);
}

#[tokio::test]
async fn host_pages_and_details_unreadable_a_few_polls_running_end_the_sync_only_once_all_is_read() {
    let fake = FakeFalcon::start(CLIENT_ID, SECRET).await;
    fake.add_hosts(0, 14);
    // Page 1 is read; the scroll page 2 stays truncated for two polls (three tries each), then its
    // details for two more.
    let truncated = [Fault::Truncated; 3];
    let mut faults = vec![Fault::Pass, Fault::Pass];
    faults.extend(truncated);
    faults.extend(truncated);
    faults.push(Fault::Pass);
    faults.extend(truncated);
    faults.push(Fault::Pass);
    faults.extend(truncated);
    fake.fail_next(&faults);
    let mut source = hosts(&fake.url, 4);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert_eq!(delivered.errors.len(), 4, "{:?}", delivered.errors);
    assert!(delivered.errors.iter().all(|e| e.kind == ErrorKind::Retryable), "{:?}", delivered.errors);
    assert!(delivered.rejected.is_empty(), "{:?}", delivered.rejected);
    assert!(delivered.duplicates().is_empty(), "{:?}", delivered.duplicates());
    let mut ids = delivered.ids();
    ids.sort();
    assert_eq!(ids, fake.host_ids(), "every host exactly once");
    let cursor: serde_json::Value = serde_json::from_str(delivered.cursor.as_deref().unwrap()).unwrap();
    assert!(cursor["sync"].is_null() && cursor["last_sync_started_ms"].is_i64(), "{cursor}");
}

#[tokio::test]
async fn a_host_page_never_readable_starts_the_sync_over_and_loses_nothing() {
    let fake = FakeFalcon::start(CLIENT_ID, SECRET).await;
    fake.add_hosts(0, 14);
    // Page 1 is read; the scroll page 2 stays truncated for five polls running: the sync starts
    // over from its first page instead of ending (page 1's hosts are dropped as repeats).
    let mut faults = vec![Fault::Pass, Fault::Pass];
    faults.extend([Fault::Truncated; 15]);
    fake.fail_next(&faults);
    let mut source = hosts(&fake.url, 4);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert_eq!(delivered.errors.len(), 4, "{:?}", delivered.errors);
    assert_eq!(delivered.rejected.len(), 1, "{:?}", delivered.rejected);
    assert!(delivered.rejected[0].contains("the sync starts over from its first page"), "{}", delivered.rejected[0]);
    assert!(delivered.duplicates().is_empty(), "{:?}", delivered.duplicates());
    let mut ids = delivered.ids();
    ids.sort();
    assert_eq!(ids, fake.host_ids(), "every host exactly once");
    let fresh = fake.log().iter().filter(|l| l.contains("devices-scroll") && l.ends_with("offset=")).count();
    assert_eq!(fresh, 2, "{:?}", fake.log());
}

#[tokio::test]
async fn host_details_never_readable_are_given_up_as_ids() {
    let fake = FakeFalcon::start(CLIENT_ID, SECRET).await;
    fake.add_hosts(0, 14);
    // The details of page 1 stay truncated for five polls running.
    let mut faults = Vec::new();
    for _ in 0..5 {
        faults.extend([Fault::Pass, Fault::Truncated, Fault::Truncated, Fault::Truncated]);
    }
    fake.fail_next(&faults);
    let mut source = hosts(&fake.url, 4);
    let (ids, rejected, errors, cursor) = poll_keeping_dead_letters(&mut source, None).await;
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(rejected[0].reason.contains("POST /devices/entities/devices/v2"), "{}", rejected[0].reason);
    let given_up = dead_lettered_ids(&rejected, "ids");
    let first_four: Vec<String> = (0..4).map(|n| format!("dev{n:029}")).collect();
    assert_eq!(given_up, first_four);
    let mut expected: Vec<String> = fake.host_ids().into_iter().skip(4).collect();
    expected.sort();
    let mut ids = ids;
    ids.sort();
    assert_eq!(ids, expected, "the other hosts once each");
    assert!(cursor.unwrap().contains(r#""last_sync_started_ms":"#));
}

#[tokio::test]
async fn more_alerts_in_one_second_than_the_offset_window_are_read_by_token() {
    let fake = FakeFalcon::start(CLIENT_ID, SECRET).await;
    let second = (now_ms() - 600_000).div_euclid(1000) * 1000;
    // A bulk change: 10,050 alerts updated in the same second, then one a second later.
    fake.add_alerts_at(0, 10_050, second + 250);
    fake.add_alerts_at(10_050, 1, second + 1250);
    // Pages of 1000 (at most the remembered ids, so the page that first reaches the second is
    // dropped as repeats when asked again from it).
    let mut source = alerts(&fake.url, 1000);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert!(delivered.duplicates().is_empty(), "{:?}", delivered.duplicates().len());
    let mut ids = delivered.ids();
    ids.sort();
    assert_eq!(ids.len(), 10_051);
    assert_eq!(ids, fake.alert_ids(), "every alert exactly once");
    let log = fake.log();
    assert!(log.iter().all(|l| !l.contains("offset=10000")), "the offset window was never passed");
    let combined: Vec<&String> = log.iter().filter(|l| l.contains("/alerts/combined/")).collect();
    assert_eq!(combined.len(), 11, "ten pages skipped (read by offset already), one with the last 50");
    assert!(combined[1].contains("after=after-1000"), "{}", combined[1]);
}

#[test]
fn configurations_pick_the_cloud_and_name_bad_options() {
    let parsed: CrowdStrikeAlertsConfig =
        serde_json::from_str(r#"{"cloud":"eu-1","client_id":"id","client_secret":"s"}"#).unwrap();
    assert_eq!(parsed.cloud.base_url(), "https://api.eu-1.crowdstrike.com");
    assert_eq!((parsed.overlap_secs, parsed.page_size), (60, 500));
    let parsed: CrowdStrikeHostsConfig =
        serde_json::from_str(r#"{"cloud":"us-gov-1","client_id":"id","client_secret":"s"}"#).unwrap();
    assert_eq!(parsed.cloud.base_url(), "https://api.laggar.gcw.crowdstrike.com");
    assert_eq!(parsed.interval_secs, 3600);
    assert!(serde_json::from_str::<CrowdStrikeHostsConfig>(
        r#"{"client_id":"id","client_secret":"s","overlap_secs":1,"filter":"x"}"#
    )
    .is_err());
    assert!(serde_json::from_str::<CrowdStrikeAlertsConfig>(r#"{"cloud":"eu-2","client_id":"i","client_secret":"s"}"#)
        .is_err());
    let mut bad = alerts_config("http://127.0.0.1:1", 20_000);
    let err = CrowdStrikeAlertsSource::new("a", bad.clone()).err().unwrap();
    assert_eq!(err.option, "page_size");
    bad.page_size = 10;
    bad.base_url = Some("nope".into());
    assert_eq!(CrowdStrikeAlertsSource::new("a", bad).err().unwrap().option, "base_url");
    let mut bad = hosts_config("http://127.0.0.1:1", 10);
    bad.client_id = " ".into();
    let err = CrowdStrikeHostsSource::new("h", bad).err().unwrap();
    assert_eq!(err.option, "client_id");
    assert!(!err.to_string().contains(SECRET));
}
