use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use weir_schemas::component::{ErrorKind, Source, SourcePoll};

use super::fake::{self, Fake};
use super::*;
use crate::http::Secret;
use crate::test_support::{fast_http, poll_like_the_runner, serve, Delivered, StopAt};

/// The tests' "now", ms since the epoch.
const T0: i64 = 1_700_000_000_000;

/// `n` entries one minute apart, the newest 2 minutes before T0.
fn entries(prefix: &str, n: i64) -> Vec<fake::FakeEntry> {
    (0..n).map(|i| fake::entry(&format!("{prefix}{i:04}"), T0 - 120_000 - i * 60_000)).collect()
}

fn config(base: &str) -> GcpAuditConfig {
    GcpAuditConfig {
        service_account_key: Secret::new(fake::key_file(base)),
        resource_names: vec![format!("projects/{}", fake::PROJECT)],
        base_url: base.into(),
        token_url: None,
        page_size: 20,
        initial_lookback_secs: 86_400,
        lag_secs: 60,
        overlap_secs: 600,
        poll_interval_secs: 60,
        dedupe_ids: 5000,
        http: fast_http(),
    }
}

fn source(config: GcpAuditConfig, clock: &Arc<AtomicI64>) -> GcpAuditSource {
    let clock = clock.clone();
    GcpAuditSource::new("audit", config).unwrap().with_clock(move || clock.load(Ordering::SeqCst))
}

async fn start(entries: Vec<fake::FakeEntry>) -> (Fake, String) {
    let fake = Fake::new(entries);
    let base = serve(fake.router()).await;
    (fake, base)
}

fn ids<'a>(entries: impl IntoIterator<Item = &'a fake::FakeEntry>) -> BTreeSet<String> {
    entries
        .into_iter()
        .map(|e| {
            let v = &e.value;
            format!(
                "gcp:{}|{}|{}",
                v["logName"].as_str().unwrap(),
                v["timestamp"].as_str().unwrap(),
                v["insertId"].as_str().unwrap()
            )
        })
        .collect()
}

fn set(delivered: &Delivered) -> BTreeSet<String> {
    delivered.ids().into_iter().collect()
}

fn assert_no_secret(delivered: &Delivered) {
    for text in delivered.errors.iter().map(|e| &e.message).chain(&delivered.rejected) {
        assert!(!text.contains("PRIVATE KEY") && !text.contains("fake-google-token"), "a secret leaked: {text}");
    }
}

#[tokio::test]
async fn pages_are_read_with_a_service_account_token_and_payloads_are_untouched() {
    let all = entries("e", 45);
    let (fake, base) = start(all.clone()).await;
    let clock = Arc::new(AtomicI64::new(T0));
    let mut source = source(config(&base), &clock);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert!(delivered.duplicates().is_empty() && delivered.rejected.is_empty());
    assert_eq!(set(&delivered), ids(&all));
    let state = fake.state.lock().unwrap();
    assert!(state.refused_assertions.is_empty(), "{:?}", state.refused_assertions);
    assert_eq!((state.tokens_issued, state.requests), (1, 3));
    let (_, payload) = &delivered.events[0];
    let oldest = all.last().unwrap();
    assert_eq!(payload, &serde_json::to_string(&oldest.value).unwrap(), "oldest first, bytes as sent");
    assert_eq!(source.stats().cursor_time_ms, Some(T0 - 120_000));
}

#[tokio::test]
async fn an_empty_page_with_a_token_means_keep_paging() {
    let all = entries("p", 30);
    let (fake, base) = start(all.clone()).await;
    fake.state.lock().unwrap().empty_pages_next = 3;
    let clock = Arc::new(AtomicI64::new(T0));
    let delivered = poll_like_the_runner(&mut source(config(&base), &clock), None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(set(&delivered), ids(&all));
}

#[tokio::test]
async fn overlapping_windows_catch_late_entries_and_drop_repeats() {
    let (fake, base) = start(entries("o", 20)).await;
    let clock = Arc::new(AtomicI64::new(T0));
    let mut source = source(config(&base), &clock);
    let run1 = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert_eq!(run1.events.len(), 20);
    assert!(matches!(source.poll().await.unwrap(), SourcePoll::Idle(_)));
    let late = [fake::entry("late", T0 - 90_000)];
    let new = [fake::entry("new", T0 + 60_000)];
    fake.state.lock().unwrap().entries.extend(late.iter().chain(&new).cloned());
    clock.store(T0 + 180_000, Ordering::SeqCst);
    let run2 = poll_like_the_runner(&mut source, run1.cursor.clone(), StopAt::Idle).await;
    assert!(run2.errors.is_empty(), "{:?}", run2.errors);
    assert_eq!(set(&run2), ids(late.iter().chain(&new)));
}

#[tokio::test]
async fn throttling_and_5xx_bursts_are_retried() {
    let all = entries("t", 25);
    let (fake, base) = start(all.clone()).await;
    {
        let mut state = fake.state.lock().unwrap();
        state.throttle_next = 2;
        state.fail_next = 2;
    }
    let clock = Arc::new(AtomicI64::new(T0));
    let mut source = source(config(&base), &clock);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(set(&delivered), ids(&all));
    assert!(source.stats().retries >= 4);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_and_reading_goes_on() {
    let all = entries("x", 50);
    let (fake, base) = start(all.clone()).await;
    let clock = Arc::new(AtomicI64::new(T0));
    let mut source = source(config(&base), &clock);
    let first = poll_like_the_runner(&mut source, None, StopAt::CrashAfter(1)).await;
    fake.expire_tokens();
    let rest = poll_like_the_runner(&mut source, first.cursor.clone(), StopAt::Idle).await;
    assert!(rest.errors.is_empty(), "{:?}", rest.errors);
    assert_eq!(fake.state.lock().unwrap().tokens_issued, 2);
    let mut union = first.ids();
    union.extend(rest.ids());
    assert_eq!(union.iter().cloned().collect::<BTreeSet<_>>(), ids(&all));
}

#[tokio::test]
async fn a_key_the_token_endpoint_refuses_is_fatal_and_names_the_option() {
    let (fake, base) = start(entries("k", 3)).await;
    // Another account's email, signed with this key: the signature checks out but not the issuer.
    let mut key: serde_json::Value = serde_json::from_str(&fake::key_file(&base)).unwrap();
    key["client_email"] = serde_json::json!("someone-else@weir-test.iam.gserviceaccount.com");
    let mut wrong = config(&base);
    wrong.service_account_key = Secret::new(key.to_string());
    let clock = Arc::new(AtomicI64::new(T0));
    let delivered = poll_like_the_runner(&mut source(wrong, &clock), None, StopAt::Idle).await;
    let error = delivered.errors.last().expect("an error");
    assert_eq!(error.kind, ErrorKind::Fatal);
    assert!(
        error.message.contains("service_account_key") && error.message.contains("invalid_grant"),
        "{}",
        error.message
    );
    assert_no_secret(&delivered);
    assert_eq!(fake.state.lock().unwrap().refused_assertions, vec!["Invalid issuer".to_string()]);

    // A key file that is not one: a config error that quotes nothing of it.
    let mut broken = config(&base);
    broken.service_account_key = Secret::new("{\"private_key\": \"-----BEGIN PRIVATE KEY-----\nMIIE");
    let error = GcpAuditSource::new("audit", broken).err().expect("refused").to_string();
    assert!(error.contains("service_account_key") && !error.contains("MIIE"), "{error}");
    // A key file encoded twice (a JSON string holding the JSON): serde would quote the string.
    let mut twice = config("http://127.0.0.1:1");
    let key_text = fake::key_file("http://127.0.0.1:1");
    twice.service_account_key = Secret::new(serde_json::to_string(&key_text).unwrap());
    let error = GcpAuditSource::new("audit", twice).err().expect("refused").to_string();
    assert!(error.contains("encoded twice") && !error.contains("PRIVATE KEY") && !error.contains("MII"), "{error}");
}

#[tokio::test]
async fn truncated_pages_and_bad_entries_never_stop_the_source() {
    let mut all = entries("g", 50);
    let (fake, base) = start(all.clone()).await;
    fake.state.lock().unwrap().truncate_next = 2;
    let clock = Arc::new(AtomicI64::new(T0));
    let delivered = poll_like_the_runner(&mut source(config(&base), &clock), None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty() && delivered.rejected.is_empty());
    assert_eq!(set(&delivered), ids(&all));

    let mut bad = fake::entry("bad", T0 - 100_000);
    bad.value.as_object_mut().unwrap().remove("insertId");
    all.push(bad);
    let (_fake, base) = start(all).await;
    let delivered = poll_like_the_runner(&mut source(config(&base), &clock), None, StopAt::Idle).await;
    assert_eq!(delivered.events.len(), 50);
    assert_eq!(delivered.rejected.len(), 1);
    assert!(delivered.rejected[0].contains("lacks logName, timestamp or insertId"), "{}", delivered.rejected[0]);
    assert_no_secret(&delivered);
}

/// `n` entries one minute apart and 123 ms past the second, oldest first, with the 20th and
/// 21st in one millisecond (nanosecond timestamps): astride the first and second pages.
fn entries_sharing_a_millisecond(n: i64) -> Vec<fake::FakeEntry> {
    let mut all: Vec<_> = (0..n).map(|i| fake::entry(&format!("n{i:04}"), T0 - 7_200_000 + i * 60_000 + 123)).collect();
    let mut twin = fake::entry("twin", all[19].time_ms);
    for (entry, nanos) in [(&mut all[19], ".123456789Z"), (&mut twin, ".123999999Z")] {
        let timestamp = entry.value["timestamp"].as_str().unwrap().replace(".123Z", nanos);
        entry.value["timestamp"] = serde_json::json!(timestamp);
    }
    all.insert(20, twin);
    all
}

#[tokio::test]
async fn a_garbled_page_is_dead_lettered_and_the_window_read_again_from_the_newest_entry_read() {
    // Every page at offset 20 is garbled (neither its entries nor its token can be read): each
    // time the body is dead-lettered and the window read again from its first page, starting at
    // the newest entry already read, that millisecond included; pages come oldest first, so
    // nothing is skipped, and the entries read again are dropped as repeats.
    let all = entries_sharing_a_millisecond(50);
    let (fake, base) = start(all.clone()).await;
    fake.state.lock().unwrap().garble_offset = Some(20);
    let clock = Arc::new(AtomicI64::new(T0));
    let delivered = poll_like_the_runner(&mut source(config(&base), &clock), None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(set(&delivered), ids(&all), "nothing lost to garbled pages");
    assert!(delivered.duplicates().is_empty(), "{:?}", delivered.duplicates());
    assert_eq!(delivered.rejected.len(), 2, "{:?}", delivered.rejected);
    for (i, reason) in delivered.rejected.iter().enumerate() {
        let attempt = format!("reading the window again from its first page (attempt {} of 3)", i + 1);
        assert!(
            reason.starts_with("source audit: entries.list window ")
                && reason.contains("a later page")
                && reason.contains("not the expected JSON")
                && reason.ends_with(&attempt),
            "{reason}"
        );
    }
    // The second reading starts at the millisecond of the 20th entry, as Google writes times.
    let start = fake::entry("x", all[19].time_ms).value["timestamp"].as_str().unwrap().to_string();
    assert!(start.ends_with(".123Z"), "{start}");
    let reason = &delivered.rejected[1];
    assert!(reason.starts_with(&format!("source audit: entries.list window {start}..")), "{reason}");
    assert_no_secret(&delivered);
}

#[tokio::test]
async fn a_window_that_keeps_breaking_is_given_up_after_three_readings() {
    // 101 entries, 20 a page, the page at offset 20 of every reading garbled: each reading gets
    // 19 entries further, and the fourth break gives the rest of the window up.
    let all = entries_sharing_a_millisecond(100);
    let (fake, base) = start(all.clone()).await;
    fake.state.lock().unwrap().garble_offset = Some(20);
    let clock = Arc::new(AtomicI64::new(T0));
    let delivered = poll_like_the_runner(&mut source(config(&base), &clock), None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(set(&delivered), ids(&all[..77]), "four readings' first pages");
    assert!(delivered.duplicates().is_empty(), "{:?}", delivered.duplicates());
    assert_eq!(delivered.rejected.len(), 4, "{:?}", delivered.rejected);
    assert!(delivered.rejected[2].ends_with("(attempt 3 of 3)"), "{}", delivered.rejected[2]);
    assert!(
        delivered.rejected[3].ends_with("3 pages of this window could not be read: the rest of the window is given up"),
        "{}",
        delivered.rejected[3]
    );
    // The window is done: no new one until poll_interval_secs more have passed.
    let mut resumed = source(config(&base), &clock);
    resumed.open(delivered.cursor.clone()).await.unwrap();
    assert!(matches!(resumed.poll().await.unwrap(), SourcePoll::Idle(_)));
}

#[tokio::test]
async fn an_empty_project_is_idle_without_errors() {
    let (fake, base) = start(Vec::new()).await;
    let clock = Arc::new(AtomicI64::new(T0));
    let delivered = poll_like_the_runner(&mut source(config(&base), &clock), None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty() && delivered.events.is_empty() && delivered.rejected.is_empty());
    assert_eq!(fake.state.lock().unwrap().requests, 1);
}

#[tokio::test]
async fn a_restart_mid_window_loses_nothing_and_repeats_nothing() {
    let all = entries("r", 65);
    let (_fake, base) = start(all.clone()).await;
    let clock = Arc::new(AtomicI64::new(T0));
    let crashed = poll_like_the_runner(&mut source(config(&base), &clock), None, StopAt::CrashAfter(2)).await;
    assert_eq!(crashed.events.len(), 40);
    let resumed = poll_like_the_runner(&mut source(config(&base), &clock), crashed.cursor.clone(), StopAt::Idle).await;
    assert!(resumed.errors.is_empty(), "{:?}", resumed.errors);
    let mut union = crashed.ids();
    union.extend(resumed.ids());
    let unique: BTreeSet<String> = union.iter().cloned().collect();
    assert_eq!(unique.len(), union.len(), "no entry delivered twice");
    assert_eq!(unique, ids(&all), "no entry lost");
}
