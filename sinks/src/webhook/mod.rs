//! `webhook`: POSTs records as JSON to a partner's URL, signed per Standard Webhooks.
//!
//! One request per record (the body is the record's decoded value, see
//! [`crate::encoding::value_to_json`]), or with `batch = true` one request per
//! `batch_max_events` records whose body is a JSON array of their values.
//!
//! Signing (when `secret` is set, a `whsec_<base64>` key):
//!
//! - `webhook-id`: stable per message, so a receiver drops repeats (retries and replays). For one
//!   record it is `msg_` + the record's `weir-id` header in unpadded base64url (the spec forbids
//!   `.` in ids, and weir ids hold topic names such as `raw.okta`; decode it to get the weir id
//!   back). For a batch it is `batch_` + the first 128 bits of SHA-256 over the batch's weir ids,
//!   so the same records resent together keep the same id.
//! - `webhook-timestamp`: Unix seconds *of this attempt* (the send time, as the spec asks, so
//!   receivers can refuse stale deliveries): a retry has the same id and body but a new timestamp
//!   and signature.
//! - `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the
//!   base64-decoded bytes after `whsec_`, over exactly the bytes sent.
//! - with `legacy_signature = true` also `X-Signature: sha256=<hex HMAC-SHA256 of the body>`,
//!   keyed with the secret string exactly as configured (the usual GitHub-style convention).
//!
//! What it guarantees: a record is reported delivered only on a 2xx. 408/429/5xx and transport
//! errors are retryable (honouring `Retry-After`); when one request fails that way the records
//! not yet sent are left for the runner's retry rather than pushed at a struggling receiver.
//! Other 4xx (400, 410, 413, 422, ...) dead-letter the request's records with the receiver's
//! answer (cut to 512 bytes); 401/403/404/3xx stop the sink (configuration). The secret never
//! appears in an error, a reason or `Debug` output.

mod config;
pub mod sign;
mod sink;
#[cfg(test)]
mod tests;

pub use config::WebhookSinkConfig;
pub use sink::WebhookSink;
