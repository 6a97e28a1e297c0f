//! AWS CloudTrail, two ways in.
//!
//! **`aws_cloudtrail`** polls `LookupEvents` (management events of one region, SigV4-signed,
//! at most 2 requests/s, so requests are paced 500 ms apart by default). It reads time windows
//! `[start, now - lag_secs]` page by page (`NextToken`); each new window starts `overlap_secs`
//! before the previous one ended, because CloudTrail makes events visible minutes after their
//! `eventTime`, and repeats are dropped by `eventID` (the cursor remembers the most recent
//! `dedupe_ids` of them). The cursor is `{done_ms, window: {start_ms, end_ms, page_token}, recent}`:
//! it is persisted with each page's batch, so a restart resumes at the page after the last
//! durable one, and nothing is lost or delivered twice. Each item's `CloudTrailEvent` string is
//! the record: its content (the record's JSON exactly as CloudTrail serialized it) is the raw
//! payload, `EventId` the id, `eventTime` the time. Throttling (HTTP 400 `ThrottlingException`,
//! not 429) is retried with backoff like a 429; 5xx too. A refused signature (403
//! `InvalidSignatureException`, `UnrecognizedClientException`, an expired session token) is fatal
//! and names the credential options. An item that is not a record is dead-lettered; a page that
//! stays unreadable after three attempts is dead-lettered and the rest of its window skipped (the
//! next window's overlap re-reads its end).
//!
//! **`aws_eventbridge`** receives CloudTrail records pushed by an EventBridge rule to an API
//! destination: one event per POST, authenticated by the connection's API-key header. The raw
//! payload is the whole envelope, untouched; the id is `detail.eventID` (the record's, so a record
//! also read by `aws_cloudtrail` gets the same weir-id), not the envelope's `id`. A delivery is
//! answered 200 only once durable (else 503 and EventBridge retries; repeats are dropped), 401 on
//! a wrong key, 400 with a dead letter when the body is not an EventBridge event.

mod config;
mod eventbridge;
#[cfg(test)]
mod fake;
mod source;
#[cfg(test)]
mod tests;

pub use config::{CloudTrailConfig, EventBridgeConfig};
pub use eventbridge::{EventBridgeError, EventBridgeSource};
pub use source::{CloudTrailError, CloudTrailSource};
