//! The body of a `/services/collector/event` request: one JSON object per event, back to back.
//!
//! ```json
//! {"time":1714675581.121,"host":"weir","source":"weir","sourcetype":"weir:event","index":"sec",
//!  "event":{...},"fields":{"weir_id":"raw.okta/0/7/0"}}
//! ```

use serde_json::{json, Map, Value};
use weir_schemas::StoredRecord;

use super::SplunkHecConfig;
use crate::encoding::{record_id, value_to_json};

/// One HEC event object for a record, or why HEC would refuse it (an empty event).
pub fn event_json(record: &StoredRecord, config: &SplunkHecConfig) -> Result<Vec<u8>, String> {
    let (_, event) = value_to_json(&record.record.value);
    if event == json!("") || event.is_null() {
        return Err("the event is empty; Splunk HEC refuses blank events (code 13)".into());
    }
    let mut object = Map::new();
    object.insert("time".into(), json!(record.record.timestamp_ms as f64 / 1000.0));
    for (key, value) in [
        ("host", &config.host),
        ("source", &config.source),
        ("sourcetype", &config.sourcetype),
        ("index", &config.index),
    ] {
        if let Some(value) = value {
            object.insert(key.into(), json!(value));
        }
    }
    object.insert("event".into(), event);
    object.insert("fields".into(), json!({ "weir_id": record_id(record) }));
    Ok(Value::Object(object).to_string().into_bytes())
}

/// Events of one request: which records of the batch (in order) and the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Indexes in the batch of the events in `body`, in order.
    pub indexes: Vec<usize>,
    /// The events back to back, newline-separated.
    pub body: Vec<u8>,
}

/// Splits encoded events `(index, json)` into requests of at most `max_events` events and
/// `max_bytes` bytes (an event larger than `max_bytes` goes alone).
pub fn chunks(events: Vec<(usize, Vec<u8>)>, max_events: usize, max_bytes: usize) -> Vec<Chunk> {
    let max_events = max_events.max(1);
    let mut out: Vec<Chunk> = Vec::new();
    let mut current = Chunk { indexes: Vec::new(), body: Vec::new() };
    for (index, json) in events {
        let full = current.indexes.len() >= max_events || current.body.len() + json.len() + 1 > max_bytes;
        if full && !current.indexes.is_empty() {
            out.push(std::mem::replace(&mut current, Chunk { indexes: Vec::new(), body: Vec::new() }));
        }
        current.indexes.push(index);
        current.body.extend_from_slice(&json);
        current.body.push(b'\n');
    }
    if !current.indexes.is_empty() {
        out.push(current);
    }
    out
}
