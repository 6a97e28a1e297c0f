//! A benchmark of the aggregate operator: events per second through a keyed count window.
//!
//! Feeds `events` Avro `PolicyDecision`s spread round-robin over `keys` users (`labels.user`),
//! one millisecond apart, through a 1-minute tumbling count window with [`MemoryState`], and
//! reports the rate as JSON. It measures the operator (Avro decode, path lookup, window
//! bookkeeping, state writes, result encoding), not the store's commit.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::json;
use weir_schemas::component::{MemoryState, Operator, Output};
use weir_schemas::events::{Decision, PolicyDecision};
use weir_schemas::record::{Record, StoredRecord};

use super::{Aggregate, AggregateConfig, MetricConfig, WindowConfig};

/// Runs the benchmark; `keys` is at least 1. Returns `{ events, keys, seconds, events_per_sec,
/// aggregates, open_windows }`.
pub fn run(events: usize, keys: usize) -> serde_json::Value {
    let keys = keys.max(1);
    let config = AggregateConfig {
        window: Some(WindowConfig::Tumbling { size_ms: 60_000, offset_ms: 0 }),
        key: Some("labels.user".into()),
        metrics: Some(vec![MetricConfig::Count { name: None, filter: BTreeMap::new() }]),
        ..AggregateConfig::default()
    };
    let Ok(mut operator) = Aggregate::new("bench", &config) else {
        return json!({ "error": "the benchmark config is invalid" });
    };
    let inputs: Vec<StoredRecord> = (0..events)
        .filter_map(|i| {
            let decision = PolicyDecision {
                decision_uid: format!("d{i}"),
                event_uid: format!("e{i}"),
                time: 1_700_000_000_000 + i as i64,
                decision: Decision::Deny,
                policy_set_version: "v1".into(),
                matched_rules: Vec::new(),
                severity_id: 0,
                labels: BTreeMap::from([("user".to_string(), format!("user-{}", i % keys))]),
                violations: Vec::new(),
            };
            let value = weir_schemas::encode(&decision).ok()?;
            let record = Record::new(decision.time, value);
            Some(StoredRecord { topic: "decisions".into(), partition: 0, offset: i as u64, record })
        })
        .collect();
    let mut state = MemoryState::default();
    let mut out = Output::default();
    let mut aggregates = 0usize;
    let started = Instant::now();
    for input in &inputs {
        out.clear();
        if operator.process(input, &mut state, &mut out).is_err() {
            return json!({ "error": "the operator failed" });
        }
        aggregates += out.records.len();
    }
    let seconds = started.elapsed().as_secs_f64();
    json!({
        "events": inputs.len(),
        "keys": keys,
        "seconds": seconds,
        "events_per_sec": if seconds > 0.0 { inputs.len() as f64 / seconds } else { 0.0 },
        "aggregates": aggregates,
        "open_windows": operator.open_windows(),
    })
}
