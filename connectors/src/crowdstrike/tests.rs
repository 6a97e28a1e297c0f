//! Tests of the CrowdStrike sources against the fake Falcon API on 127.0.0.1.

use weir_schemas::component::{ErrorKind, Source, SourcePoll};

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
async fn truncated_json_is_retried_then_dead_lettered_and_the_alerts_read_later() {
    let fake = FakeFalcon::start(CLIENT_ID, SECRET).await;
    fake.add_alerts(0, 6);
    // One truncated query page is simply asked again; details truncated three times are
    // dead-lettered.
    fake.fail_next(&[Fault::Truncated, Fault::Pass, Fault::Truncated, Fault::Truncated, Fault::Truncated]);
    let mut source = alerts(&fake.url, 10);
    let first = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert!(first.events.is_empty());
    assert_eq!(first.rejected.len(), 1, "{:?}", first.rejected);
    let reason = &first.rejected[0];
    assert!(reason.contains("POST /alerts/entities/alerts/v2") && reason.contains("not the expected JSON"), "{reason}");
    assert!(reason.contains("the details of 6 alert(s)"), "{reason}");
    assert_no_secret(&first);
    // The window did not move past them: the next run reads them.
    let mut again = alerts(&fake.url, 10);
    let second = poll_like_the_runner(&mut again, first.cursor.clone(), StopAt::Idle).await;
    assert_eq!(sorted_ids(&[&second]), fake.alert_ids());
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
