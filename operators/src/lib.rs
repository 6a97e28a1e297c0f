//! Weir's stream operators: the stages between the raw vendor topics and the sinks.
//!
//! Each operator implements [`weir_schemas::component::Operator`]: it gets one input record at a
//! time (with its topic, partition and offset) and a handle to its keyed state, and returns output
//! records and rejected input. Operators never touch the log; the runner commits their outputs,
//! state and input offsets. Every operator is deterministic: the same input and state give
//! byte-identical output, so a replay after a crash yields the same records.
//!
//! - [`normalize`]: raw vendor records (`RawEnvelope`s) → typed, OCSF-aligned events.
//! - [`aggregate`]: event-time windows with watermarks: counts, sums, distinct counts, top-k,
//!   threshold alerts and the daily digest.
//! - [`dedupe`]: drops repeats of a key within a window of event time.
//! - [`policy`]: enriched events → policy decisions and violations (CEL rules from policy files,
//!   Arroyo UDFs), with hot reload.
//! - [`enrich`]: joins events with identity, device and asset context from state tables built
//!   from the streams.

pub mod aggregate;
pub mod dedupe;
pub mod enrich;
pub mod normalize;
pub mod policy;

/// An event time (ms since the Unix epoch) as `describe_state` shows it: the milliseconds and
/// the same instant in RFC 3339 (UTC), the latter left out when the time is out of range.
pub(crate) fn describe_time(ms: i64) -> serde_json::Value {
    let utc = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
    match utc {
        Some(utc) => serde_json::json!({ "ms": ms, "utc": utc }),
        None => serde_json::json!({ "ms": ms }),
    }
}
