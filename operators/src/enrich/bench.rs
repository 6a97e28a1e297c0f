//! `weir bench enrich`: how fast the identity join is and how much memory the identity table
//! takes, in process (no log, no store).
//!
//! Loads `identities` synthetic users into the identity projection exactly as `restore` does
//! (each entry encoded in its state layout, decoded, put), measures the process's resident set
//! (`VmRSS` of `/proc/self/status`, the figure `/proc/self/statm` gives in pages) before and after
//! and estimates the same from the table's sizes; then times `lookups` lookups, a third by uid, a
//! third by login, a third by email or alias, one in twenty of an unknown key: once resolving the
//! key alone, once also building the `UserContext` an enriched event carries. Last it runs
//! `AppActivity` events through [`Enrich::process`](super::Enrich) (decode, join, encode) for the
//! end-to-end rate. The synthetic directory looks like a company's: half the users log in with
//! their email, a quarter have an alias, 40 departments, 300 titles, a manager per 16 users,
//! three of 500 groups each. Deterministic inputs; the figures are wall-clock.

use std::hint::black_box;
use std::time::Instant;

use serde_json::{json, Value};
use weir_schemas::component::{MemoryState, Operator, Output};
use weir_schemas::events::{AppActivity, Metadata, User};
use weir_schemas::record::{Record, StoredRecord};

use super::tables::{GroupMembership, IdentityEntry, IdentityTable};
use super::{Enrich, EnrichConfig};

/// The target for the enrichment join.
const TARGET_LOOKUPS_PER_S: f64 = 1_000_000.0;

/// Events run through `process` for the end-to-end figure (at most).
const PROCESS_EVENTS: usize = 200_000;

/// Runs the benchmark with `identities` users in the table and `lookups` lookups; returns the
/// figures as JSON (rates per second, memory in bytes and in MiB per million identities).
pub fn run(identities: usize, lookups: usize) -> Value {
    let identities = identities.max(1);
    let rss_before = resident_bytes();
    let started = Instant::now();
    let mut table = IdentityTable::new();
    let mut state_bytes = 0usize;
    for i in 0..identities {
        let (uid, entry) = synthetic_identity(i);
        let bytes = entry.encode();
        state_bytes += uid.len() + bytes.len();
        match IdentityEntry::decode(&bytes) {
            Ok(decoded) => {
                if let Err(e) = table.put(&uid, &decoded) {
                    return json!({ "error": e.to_string() });
                }
            }
            Err(e) => return json!({ "error": format!("synthetic entry {i} does not decode: {e}") }),
        }
    }
    let load_seconds = started.elapsed().as_secs_f64();
    let rss_after = resident_bytes();
    let estimate = table.memory_estimate();
    let table_len = table.len();

    let queries: Vec<String> = (0..lookups).map(|i| query(i, identities)).collect();
    let started = Instant::now();
    let mut hits = 0usize;
    for (i, key) in queries.iter().enumerate() {
        let row = if i % 3 == 0 { table.find_uid(key) } else { table.find_alias(key) };
        hits += usize::from(black_box(row).is_some());
    }
    let resolve_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut context_bytes = 0usize;
    for (i, key) in queries.iter().enumerate() {
        let row = if i % 3 == 0 { table.find_uid(key) } else { table.find_alias(key) };
        if let Some(row) = row {
            context_bytes += black_box(table.context(row)).uid.len();
        }
    }
    let context_seconds = started.elapsed().as_secs_f64();

    let per_million = |bytes: f64| bytes / identities as f64 * 1_000_000.0 / (1024.0 * 1024.0);
    let rss_delta = rss_after.zip(rss_before).map(|(after, before)| after.saturating_sub(before));
    let resolve_rate = rate(lookups, resolve_seconds);
    let process = run_process(table, identities);
    json!({
        "identities": table_len,
        "load": { "seconds": load_seconds, "identities_per_s": rate(identities, load_seconds) },
        "state": {
            "bytes": state_bytes,
            "bytes_per_identity": state_bytes as f64 / identities as f64,
            "what": "key + value of every identity entry as written to State (before the store's own overhead)",
        },
        "memory": {
            "rss_bytes": rss_delta,
            "rss_bytes_per_identity": rss_delta.map(|d| d as f64 / identities as f64),
            "rss_mib_per_million_identities": rss_delta.map(|d| per_million(d as f64)),
            "estimate_bytes": estimate.total(),
            "estimate_bytes_per_identity": estimate.total() as f64 / identities as f64,
            "estimate_mib_per_million_identities": per_million(estimate.total() as f64),
            "estimate_parts_bytes": {
                "rows": estimate.rows,
                "packed_keys": estimate.keys,
                "group_ids": estimate.groups,
                "uid_index": estimate.uid_index,
                "alias_index": estimate.alias_index,
                "interned_text": estimate.interned,
            },
        },
        "lookups": {
            "count": lookups,
            "mix": "1/3 uid, 1/3 login, 1/3 email or alias; 1 in 20 an unknown key",
            "hits": hits,
            "resolve_per_s": resolve_rate,
            "resolve_and_context_per_s": rate(lookups, context_seconds),
            "context_uid_bytes": context_bytes,
        },
        "process": process,
        "target_lookups_per_s": TARGET_LOOKUPS_PER_S,
        "meets_target": resolve_rate >= TARGET_LOOKUPS_PER_S,
    })
}

/// Runs `AppActivity` events through the operator with `table` as its identity table.
fn run_process(table: IdentityTable, identities: usize) -> Value {
    let mut enrich = match Enrich::new(EnrichConfig::default()) {
        Ok(enrich) => enrich,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    enrich.identities = table;
    let count = PROCESS_EVENTS.min(identities.saturating_mul(2));
    let mut inputs = Vec::with_capacity(count);
    for i in 0..count {
        let target = spread(i, identities);
        let event = AppActivity {
            class_uid: 6001,
            category_uid: 6,
            activity_id: 1,
            type_uid: 600_101,
            time: BASE_TIME + i as i64,
            metadata: Metadata { uid: format!("evt-{i}"), log_name: "bench".into(), ..Metadata::default() },
            event_type: "application".into(),
            user: User { name: Some(email(target)), ..User::default() },
            ..AppActivity::default()
        };
        match weir_schemas::encode(&event) {
            Ok(value) => inputs.push(StoredRecord {
                topic: "events".into(),
                partition: 0,
                offset: i as u64,
                record: Record::new(event.time, value),
            }),
            Err(e) => return json!({ "error": format!("cannot encode a bench event: {e}") }),
        }
    }
    let mut state = MemoryState::default();
    let mut out = Output::default();
    let mut emitted = 0usize;
    let started = Instant::now();
    for input in &inputs {
        out.clear();
        if let Err(e) = enrich.process(input, &mut state, &mut out) {
            return json!({ "error": e.message });
        }
        emitted += out.records.len();
    }
    let seconds = started.elapsed().as_secs_f64();
    json!({
        "events": count,
        "emitted": emitted,
        "what": "AppActivity decode + user join by email + EnrichedEvent encode",
        "events_per_s": rate(count, seconds),
    })
}

/// Event time of the first synthetic snapshot.
const BASE_TIME: i64 = 1_718_000_000_000;

/// The `i`-th synthetic user's state entry and uid.
pub(super) fn synthetic_identity(i: usize) -> (String, IdentityEntry) {
    let groups = [i * 7 % 500, (i * 13 + 1) % 500, (i * 31 + 2) % 500];
    let mut groups: Vec<GroupMembership> = groups
        .iter()
        .map(|g| GroupMembership { name: format!("group-{g:03}"), time: BASE_TIME, member: true })
        .collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    groups.dedup_by(|a, b| a.name == b.name);
    let entry = IdentityEntry {
        snapshot_time: BASE_TIME + i as i64,
        login: Some(login(i)),
        email: Some(email(i)),
        aliases: if i.is_multiple_of(4) { vec![alias(i)] } else { Vec::new() },
        display_name: Some(format!("User Number{i}")),
        department: Some(format!("Department {}", i % 40)),
        title: Some(format!("Title {}", i % 300)),
        manager: Some(login(i / 16)),
        manager_uid: Some(uid(i / 16)),
        status: Some(if i.is_multiple_of(50) { "SUSPENDED" } else { "ACTIVE" }.to_string()),
        status_time: BASE_TIME + i as i64,
        groups_time: BASE_TIME,
        groups,
    };
    (uid(i), entry)
}

/// An Okta-like 20-character user id.
fn uid(i: usize) -> String {
    format!("00u{:017x}", (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 4)
}

fn login(i: usize) -> String {
    if i.is_multiple_of(2) {
        email(i)
    } else {
        format!("u{i:07}")
    }
}

fn email(i: usize) -> String {
    format!("first.last{i}@example.com")
}

fn alias(i: usize) -> String {
    format!("flast{i}@corp.example.net")
}

/// The `i`-th query: by uid, login, or email/alias in turn; every 20th an unknown key.
fn query(i: usize, identities: usize) -> String {
    let target = spread(i, identities);
    if i % 20 == 19 {
        return format!("nobody{i}@example.com");
    }
    match i % 3 {
        0 => uid(target),
        1 => login(target),
        _ if target.is_multiple_of(4) && i.is_multiple_of(2) => alias(target),
        _ => email(target),
    }
}

/// A user index spread over the table (so lookups do not walk memory in order).
fn spread(i: usize, identities: usize) -> usize {
    ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16) as usize % identities
}

fn rate(count: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// The process's resident set in bytes, from `/proc/self/status` (`None` off Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_run_reports_every_figure() {
        let figures = run(2_000, 6_000);
        assert_eq!(figures["identities"], 2_000);
        let hits = figures["lookups"]["hits"].as_u64().expect("hits");
        assert_eq!(hits, 6_000 - 6_000 / 20, "every lookup but the unknown keys finds its user");
        assert!(figures["memory"]["estimate_bytes"].as_u64().is_some_and(|b| b > 0));
        assert_eq!(figures["process"]["emitted"], figures["process"]["events"]);
        assert!(figures["lookups"]["resolve_per_s"].as_f64().is_some());
    }

    #[test]
    fn synthetic_users_are_distinct_and_found_by_every_key() {
        let mut table = IdentityTable::new();
        for i in 0..1_000 {
            let (uid, entry) = synthetic_identity(i);
            table.put(&uid, &entry).expect("room");
        }
        assert_eq!(table.len(), 1_000);
        for i in [0, 1, 4, 999] {
            let row = table.find_uid(&uid(i)).expect("by uid");
            assert_eq!(table.find_alias(&login(i)), Some(row));
            assert_eq!(table.find_alias(&email(i).to_uppercase()), Some(row));
            assert_eq!(table.find_alias(&alias(i)).is_some(), i % 4 == 0);
        }
    }

    /// The measurement for the issue: 1,000,000 identities, 3,000,000 lookups. Run it with
    /// `cargo test -p weir-operators --release -- --ignored bench --nocapture`.
    #[test]
    #[ignore]
    fn bench_enrich_one_million_identities() {
        let figures = run(1_000_000, 3_000_000);
        println!("{}", serde_json::to_string_pretty(&figures).expect("JSON"));
    }
}
