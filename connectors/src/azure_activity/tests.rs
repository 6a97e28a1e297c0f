use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use weir_schemas::component::{ErrorKind, Source, SourcePoll};

use super::fake::{self, Fake, CLIENT_ID, CLIENT_SECRET, TENANT};
use super::*;
use crate::http::Secret;
use crate::test_support::{fast_http, poll_like_the_runner, serve, Delivered, StopAt};

/// The tests' "now", ms since the epoch.
const T0: i64 = 1_700_000_000_000;
const SUB_A: &str = "089bd33f-d4ec-47fe-8ba5-0753aa5c5b33";
const SUB_B: &str = "11111111-2222-3333-4444-555555555555";

/// `n` events of `sub` one minute apart, the newest 5 minutes before T0.
fn events(sub: &str, prefix: &str, n: i64) -> Vec<fake::FakeEvent> {
    (0..n).map(|i| fake::event(sub, &format!("{prefix}-{i:04}"), T0 - 300_000 - i * 60_000)).collect()
}

fn config(base: &str, subscriptions: &[&str]) -> AzureActivityConfig {
    AzureActivityConfig {
        tenant_id: TENANT.into(),
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new(CLIENT_SECRET),
        subscription_ids: subscriptions.iter().map(|s| s.to_string()).collect(),
        login_url: base.into(),
        base_url: base.into(),
        scope: fake::SCOPE.into(),
        initial_lookback_secs: 86_400,
        lag_secs: 60,
        overlap_secs: 1800,
        poll_interval_secs: 60,
        dedupe_ids: 5000,
        http: fast_http(),
    }
}

fn source(config: AzureActivityConfig, clock: &Arc<AtomicI64>) -> AzureActivitySource {
    let clock = clock.clone();
    AzureActivitySource::new("activity", config).unwrap().with_clock(move || clock.load(Ordering::SeqCst))
}

async fn start(events: BTreeMap<String, Vec<fake::FakeEvent>>) -> (Fake, String) {
    let fake = Fake::new(events);
    let base = serve(fake.router()).await;
    (fake, base)
}

fn ids<'a>(events: impl IntoIterator<Item = &'a fake::FakeEvent>) -> BTreeSet<String> {
    events.into_iter().map(|e| format!("azure:{}", e.value["eventDataId"].as_str().unwrap())).collect()
}

fn set(delivered: &Delivered) -> BTreeSet<String> {
    delivered.ids().into_iter().collect()
}

fn assert_no_secret(delivered: &Delivered) {
    for text in delivered.errors.iter().map(|e| &e.message).chain(&delivered.rejected) {
        assert!(!text.contains(CLIENT_SECRET) && !text.contains("fake-arm-token"), "a secret leaked: {text}");
    }
}

#[tokio::test]
async fn every_page_of_every_subscription_is_read_and_payloads_are_untouched() {
    let a = events(SUB_A, "a", 45);
    let b = events(SUB_B, "b", 7);
    let (fake, base) = start(BTreeMap::from([(SUB_A.into(), a.clone()), (SUB_B.into(), b.clone())])).await;
    let clock = Arc::new(AtomicI64::new(T0));
    let mut source = source(config(&base, &[SUB_A, SUB_B]), &clock);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert!(delivered.duplicates().is_empty() && delivered.rejected.is_empty());
    assert_eq!(set(&delivered), ids(a.iter().chain(&b)));
    assert_eq!(fake.state.lock().unwrap().requests, 4, "3 pages of A (20 per page) and 1 of B");
    assert_eq!(fake.state.lock().unwrap().tokens_issued, 1, "the token is cached");
    let (id, payload) = &delivered.events[0];
    let sent = a.iter().chain(&b).find(|e| format!("azure:{}", e.value["eventDataId"].as_str().unwrap()) == *id);
    assert_eq!(payload, &serde_json::to_string(&sent.unwrap().value).unwrap(), "the event's bytes as sent");
    assert_eq!(source.stats().cursor_time_ms, Some(T0 - 300_000));
}

#[tokio::test]
async fn overlapping_windows_catch_late_events_and_drop_repeats() {
    let a = events(SUB_A, "a", 30);
    let (fake, base) = start(BTreeMap::from([(SUB_A.into(), a)])).await;
    let clock = Arc::new(AtomicI64::new(T0));
    let mut source = source(config(&base, &[SUB_A]), &clock);
    let run1 = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert_eq!(run1.events.len(), 30);
    assert!(matches!(source.poll().await.unwrap(), SourcePoll::Idle(_)), "no new window yet");

    let late = [fake::event(SUB_A, "late", T0 - 600_000)];
    let new = [fake::event(SUB_A, "new", T0 + 30_000)];
    fake.state.lock().unwrap().events.get_mut(SUB_A).unwrap().extend(late.iter().chain(&new).cloned());
    clock.store(T0 + 300_000, Ordering::SeqCst);
    let run2 = poll_like_the_runner(&mut source, run1.cursor.clone(), StopAt::Idle).await;
    assert!(run2.errors.is_empty(), "{:?}", run2.errors);
    assert_eq!(set(&run2), ids(late.iter().chain(&new)), "only the late and new events");
}

#[tokio::test]
async fn throttling_and_5xx_bursts_are_retried() {
    let a = events(SUB_A, "a", 25);
    let (fake, base) = start(BTreeMap::from([(SUB_A.into(), a.clone())])).await;
    {
        let mut state = fake.state.lock().unwrap();
        state.throttle_next = 1;
        state.fail_next = 3;
    }
    let clock = Arc::new(AtomicI64::new(T0));
    let mut source = source(config(&base, &[SUB_A]), &clock);
    let delivered = poll_like_the_runner(&mut source, None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(set(&delivered), ids(&a));
    assert!(delivered.duplicates().is_empty());
    assert!(source.stats().retries >= 4);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_and_reading_goes_on() {
    let a = events(SUB_A, "a", 50);
    let (fake, base) = start(BTreeMap::from([(SUB_A.into(), a.clone())])).await;
    let clock = Arc::new(AtomicI64::new(T0));
    let mut source = source(config(&base, &[SUB_A]), &clock);
    let first = poll_like_the_runner(&mut source, None, StopAt::CrashAfter(1)).await;
    fake.expire_tokens();
    let rest = poll_like_the_runner(&mut source, first.cursor.clone(), StopAt::Idle).await;
    assert!(rest.errors.is_empty(), "{:?}", rest.errors);
    assert_eq!(fake.state.lock().unwrap().tokens_issued, 2);
    let mut all = first.ids();
    all.extend(rest.ids());
    assert_eq!(all.iter().cloned().collect::<BTreeSet<_>>(), ids(&a));
}

#[tokio::test]
async fn a_wrong_client_secret_is_fatal_and_names_the_option_not_the_value() {
    let (_fake, base) = start(BTreeMap::from([(SUB_A.into(), events(SUB_A, "a", 3))])).await;
    let clock = Arc::new(AtomicI64::new(T0));
    let mut wrong = config(&base, &[SUB_A]);
    wrong.client_secret = Secret::new("wrong~Secret.Never.Printed~00");
    let delivered = poll_like_the_runner(&mut source(wrong, &clock), None, StopAt::Idle).await;
    let error = delivered.errors.last().expect("an error");
    assert_eq!(error.kind, ErrorKind::Fatal);
    assert!(error.message.contains("client_secret") && error.message.contains("invalid_client"), "{}", error.message);
    assert!(!error.message.contains("wrong~Secret"), "{}", error.message);
    assert_no_secret(&delivered);
}

#[tokio::test]
async fn a_truncated_page_is_read_again_and_a_foreign_next_link_stops_the_source() {
    let a = events(SUB_A, "a", 50);
    let (fake, base) = start(BTreeMap::from([(SUB_A.into(), a.clone())])).await;
    fake.state.lock().unwrap().truncate_next = 2;
    let clock = Arc::new(AtomicI64::new(T0));
    let delivered = poll_like_the_runner(&mut source(config(&base, &[SUB_A]), &clock), None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty() && delivered.rejected.is_empty());
    assert_eq!(set(&delivered), ids(&a), "a page truncated twice is read on the third try");

    // Following a nextLink to another origin would send the token there; skipping it would lose
    // the rest of the window: the source stops with a fatal error saying how to fix it, and
    // commits nothing past the page before it.
    let (fake, base) = start(BTreeMap::from([(SUB_A.into(), a.clone())])).await;
    fake.state.lock().unwrap().foreign_next_link = true;
    let delivered = poll_like_the_runner(&mut source(config(&base, &[SUB_A]), &clock), None, StopAt::Idle).await;
    assert_eq!(delivered.errors.len(), 1, "{:?}", delivered.errors);
    let error = &delivered.errors[0];
    assert_eq!(error.kind, weir_schemas::component::ErrorKind::Fatal);
    assert!(
        error.message.contains("is not on base_url's origin") && error.message.contains("set base_url"),
        "{error:?}"
    );
    assert!(delivered.events.is_empty() && delivered.cursor.is_none(), "nothing committed past the link");
    assert_eq!(fake.state.lock().unwrap().requests, 1, "the foreign link was not followed");
    assert_no_secret(&delivered);
}

#[tokio::test]
async fn a_garbled_page_is_dead_lettered_and_its_window_read_again_without_loss_or_repeats() {
    // The second page of SUB_A is unreadable three times in a row (all the client's attempts):
    // its body is dead-lettered and the window read again from its first page; the events of
    // that first page come again and are dropped as repeats. SUB_B is read in between.
    let a = events(SUB_A, "a", 50);
    // One page: the fake garbles by offset whatever the subscription.
    let b = events(SUB_B, "b", 15);
    let (fake, base) = start(BTreeMap::from([(SUB_A.into(), a.clone()), (SUB_B.into(), b.clone())])).await;
    {
        let mut state = fake.state.lock().unwrap();
        state.garble_offset = Some(20);
        state.garble_times = Some(3);
    }
    let clock = Arc::new(AtomicI64::new(T0));
    let delivered = poll_like_the_runner(&mut source(config(&base, &[SUB_A, SUB_B]), &clock), None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(set(&delivered), ids(a.iter().chain(&b)), "nothing lost to the garbled page");
    assert!(delivered.duplicates().is_empty(), "{:?}", delivered.duplicates());
    assert_eq!(delivered.rejected.len(), 1, "{:?}", delivered.rejected);
    let reason = &delivered.rejected[0];
    assert!(
        reason.contains(&format!("source activity: subscription {SUB_A}, window"))
            && reason.contains("a nextLink page")
            && reason.contains("not the expected JSON")
            && reason.ends_with("reading the window again from its first page (attempt 1 of 3)"),
        "{reason}"
    );
    assert_no_secret(&delivered);
}

#[tokio::test]
async fn a_page_that_never_reads_gives_up_the_rest_of_its_window_after_three_readings() {
    // Every reading of the window breaks at its second page: after three readings again the
    // rest of the window is given up, with a reason that says so, and the source goes on.
    let a = events(SUB_A, "a", 50);
    let (fake, base) = start(BTreeMap::from([(SUB_A.into(), a.clone())])).await;
    fake.state.lock().unwrap().garble_offset = Some(20);
    let clock = Arc::new(AtomicI64::new(T0));
    let delivered = poll_like_the_runner(&mut source(config(&base, &[SUB_A]), &clock), None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(set(&delivered), ids(&a[..20]), "the newest page only");
    assert!(delivered.duplicates().is_empty(), "{:?}", delivered.duplicates());
    assert_eq!(delivered.rejected.len(), 4, "{:?}", delivered.rejected);
    for (i, reason) in delivered.rejected[..3].iter().enumerate() {
        let attempt = format!("reading the window again from its first page (attempt {} of 3)", i + 1);
        assert!(reason.contains("not the expected JSON") && reason.ends_with(&attempt), "{reason}");
    }
    assert!(
        delivered.rejected[3].ends_with("3 pages of this window could not be read: the rest of the window is given up"),
        "{}",
        delivered.rejected[3]
    );
    assert_eq!(fake.state.lock().unwrap().requests, 4 + 4 * 3, "4 readings: a first page, 3 tries of the second");
}

#[tokio::test]
async fn a_window_larger_than_the_dedupe_is_read_again_with_repeats_never_losses() {
    // dedupe_ids (10) cannot hold the 20 events read before the broken page: reading the window
    // again delivers the oldest of them once more, and the dead-letter reason says why.
    let a = events(SUB_A, "a", 50);
    let (fake, base) = start(BTreeMap::from([(SUB_A.into(), a.clone())])).await;
    {
        let mut state = fake.state.lock().unwrap();
        state.garble_offset = Some(20);
        state.garble_times = Some(3);
    }
    let clock = Arc::new(AtomicI64::new(T0));
    let mut small = config(&base, &[SUB_A]);
    small.dedupe_ids = 10;
    let delivered = poll_like_the_runner(&mut source(small, &clock), None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty(), "{:?}", delivered.errors);
    assert_eq!(set(&delivered), ids(&a), "nothing lost");
    // The ids are forgotten oldest first, so each repeat pushes out the next one to come.
    assert_eq!(delivered.duplicates().into_iter().collect::<BTreeSet<_>>(), ids(&a[..20]));
    assert_eq!(delivered.rejected.len(), 1, "{:?}", delivered.rejected);
    assert!(
        delivered.rejected[0].ends_with(
            "(attempt 1 of 3); 20 events were read from it, more than dedupe_ids (10) remembers: some will be \
             delivered again"
        ),
        "{}",
        delivered.rejected[0]
    );
}

#[tokio::test]
async fn an_event_without_an_id_is_dead_lettered() {
    let mut a = events(SUB_A, "a", 3);
    let mut bad = fake::event(SUB_A, "x", T0 - 400_000);
    bad.value.as_object_mut().unwrap().remove("eventDataId");
    a.push(bad);
    let (_fake, base) = start(BTreeMap::from([(SUB_A.into(), a)])).await;
    let clock = Arc::new(AtomicI64::new(T0));
    let delivered = poll_like_the_runner(&mut source(config(&base, &[SUB_A]), &clock), None, StopAt::Idle).await;
    assert_eq!(delivered.events.len(), 3);
    assert_eq!(delivered.rejected.len(), 1);
    assert!(delivered.rejected[0].contains("no eventDataId"), "{}", delivered.rejected[0]);
}

#[tokio::test]
async fn an_empty_subscription_is_idle_without_errors() {
    let (fake, base) = start(BTreeMap::new()).await;
    let clock = Arc::new(AtomicI64::new(T0));
    let delivered = poll_like_the_runner(&mut source(config(&base, &[SUB_A]), &clock), None, StopAt::Idle).await;
    assert!(delivered.errors.is_empty() && delivered.events.is_empty() && delivered.rejected.is_empty());
    assert_eq!(fake.state.lock().unwrap().requests, 1);
}

#[tokio::test]
async fn a_restart_mid_window_loses_nothing_and_repeats_nothing() {
    let a = events(SUB_A, "a", 55);
    let b = events(SUB_B, "b", 41);
    let (_fake, base) = start(BTreeMap::from([(SUB_A.into(), a.clone()), (SUB_B.into(), b.clone())])).await;
    let clock = Arc::new(AtomicI64::new(T0));
    let crashed =
        poll_like_the_runner(&mut source(config(&base, &[SUB_A, SUB_B]), &clock), None, StopAt::CrashAfter(3)).await;
    assert_eq!(crashed.events.len(), 60);
    let resumed =
        poll_like_the_runner(&mut source(config(&base, &[SUB_A, SUB_B]), &clock), crashed.cursor.clone(), StopAt::Idle)
            .await;
    assert!(resumed.errors.is_empty(), "{:?}", resumed.errors);
    let mut union = crashed.ids();
    union.extend(resumed.ids());
    let unique: BTreeSet<String> = union.iter().cloned().collect();
    assert_eq!(unique.len(), union.len(), "no event delivered twice");
    assert_eq!(unique, ids(a.iter().chain(&b)), "no event lost");
}
