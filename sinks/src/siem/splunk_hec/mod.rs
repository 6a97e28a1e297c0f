//! `splunk_hec`: sends records to a Splunk HTTP Event Collector (`/services/collector/event`).
//!
//! Each record becomes one HEC event object (see [`request`]): `time` from the record's event
//! time (seconds with the milliseconds as a fraction), the configured `host`, `source`,
//! `sourcetype` and `index`, `event` = the decoded value, and the indexed field `weir_id` = the
//! record's `weir-id` header, so repeats can be recognised in Splunk. A batch is split into
//! requests of at most `batch_max_events` events and `batch_max_bytes` bytes (before gzip), the
//! objects back to back as HEC wants.
//!
//! What it guarantees: a record is reported delivered only when HEC answered code 0 for its
//! request — and, with `ack = true`, only once the indexer acknowledged the request's `ackId`
//! (polling `/services/collector/ack` until `ack_timeout_ms`; unacknowledged requests are
//! retryable and sent again, so duplicates are possible: at-least-once). When HEC stops at an
//! invalid event (400 with `invalid-event-number`), the events before it were indexed and are
//! reported delivered, that event is a permanent failure (dead-lettered with HEC's reason) and
//! the rest are retried — never the already-indexed prefix. Codes 1–4 (token) and 7, 10, 11, 14,
//! 16 (index, channel, ack, query-string auth: configuration) are fatal. 429/503/5xx are
//! retryable, honouring `Retry-After`. The token is sent only in `Authorization: Splunk …`
//! and never appears in an error, a reason or `Debug` output.

mod config;
pub mod request;
mod sink;
#[cfg(test)]
mod tests;

pub use config::SplunkHecConfig;
pub use sink::SplunkHecSink;
