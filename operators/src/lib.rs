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
