//! Building a source's batch of raw records: every vendor event goes to `raw.<source>` in a
//! [`RawEnvelope`], its bytes untouched, with a deterministic `weir-id` (`<vendor>:<event id>`)
//! so the runner recognises an event re-read after a crash, and the event time as the record
//! timestamp.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::value::RawValue;
use weir_schemas::component::{Rejected, SourceBatch};
use weir_schemas::events::RawEnvelope;
use weir_schemas::Record;

/// The header carrying a record's deterministic id (the runner's `weir-id`).
const ID_HEADER: &str = "weir-id";

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A batch of raw records being built.
pub struct RawBatch {
    source: String,
    vendor: String,
    received_at: i64,
    batch: SourceBatch,
    bytes: u64,
    newest_event_ms: Option<i64>,
    oldest_event_ms: Option<i64>,
}

impl RawBatch {
    /// An empty batch from source `source` holding `vendor`'s events.
    pub fn new(source: &str, vendor: &str) -> Self {
        RawBatch {
            source: source.to_string(),
            vendor: vendor.to_string(),
            received_at: now_ms(),
            batch: SourceBatch::default(),
            bytes: 0,
            newest_event_ms: None,
            oldest_event_ms: None,
        }
    }

    /// Adds one vendor event: `payload` exactly as received, `id` its vendor id (the dedupe key),
    /// `event_ms` its time when known.
    pub fn event(&mut self, id: &str, event_ms: Option<i64>, payload: &[u8]) {
        let envelope = RawEnvelope {
            source: self.source.clone(),
            vendor: self.vendor.clone(),
            received_at: self.received_at,
            cursor: None,
            content_type: "application/json".into(),
            payload: payload.to_vec(),
        };
        let value = weir_schemas::encode(&envelope).expect("a RawEnvelope always encodes");
        self.bytes += payload.len() as u64;
        if let Some(ms) = event_ms {
            self.newest_event_ms = Some(self.newest_event_ms.map_or(ms, |n| n.max(ms)));
            self.oldest_event_ms = Some(self.oldest_event_ms.map_or(ms, |o| o.min(ms)));
        }
        let record = Record::new(event_ms.unwrap_or(self.received_at), value)
            .with_header(ID_HEADER, format!("{}:{id}", self.vendor));
        self.batch.records.push(record);
    }

    /// Adds input that could not be read: it goes to the dead-letter topic with `reason`
    /// (what, where, why — never a secret) and the original bytes.
    pub fn reject(&mut self, reason: impl Into<String>, original: &[u8]) {
        self.batch.rejected.push(Rejected { reason: reason.into(), original: original.to_vec() });
    }

    /// Events added so far.
    pub fn len(&self) -> usize {
        self.batch.records.len()
    }

    /// Whether nothing (no event, no rejection) was added.
    pub fn is_empty(&self) -> bool {
        self.batch.records.is_empty() && self.batch.rejected.is_empty()
    }

    /// Vendor bytes added so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The newest event time added, if any.
    pub fn newest_event_ms(&self) -> Option<i64> {
        self.newest_event_ms
    }

    /// The oldest event time added, if any.
    pub fn oldest_event_ms(&self) -> Option<i64> {
        self.oldest_event_ms
    }

    /// The batch, to resume from `cursor` once it is durable.
    pub fn finish(mut self, cursor: String) -> SourceBatch {
        self.batch.cursor = Some(cursor);
        self.batch
    }
}

/// The elements of a JSON array, each exactly as its bytes were sent.
pub fn split_array(body: &[u8]) -> Result<Vec<Box<RawValue>>, String> {
    serde_json::from_slice(body).map_err(|e| format!("the page is not a JSON array: {e}"))
}

/// Longest id (in characters) a reason quotes.
const ID_CHARS: usize = 80;

/// Vendor-given text made safe to quote in a reason: control characters escaped, cut short.
pub fn quote(text: &str) -> String {
    let mut quoted: String = text.chars().take(ID_CHARS).flat_map(char::escape_debug).collect();
    if text.chars().nth(ID_CHARS).is_some() {
        quoted.push('…');
    }
    quoted
}
