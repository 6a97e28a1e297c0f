//! `netskope`: reads events and alerts from Netskope's REST API v2 dataexport iterators
//! (`/api/v2/events/dataexport/events/{type}`, `/api/v2/events/dataexport/alerts/{subtype}`),
//! authenticated with a `Netskope-Api-Token`.
//!
//! **The cursor is on the server.** Netskope keeps the read position per (endpoint, `index`):
//! the first call starts it at a time (`operation=<epoch seconds>`), every `operation=next`
//! returns the following page *and moves the position as soon as the server answers*, and
//! `operation=resend` returns the last page again without moving. So the configured `index` must
//! belong to this source alone (another consumer on the same index takes pages this one never
//! sees), and what Weir persists per endpoint is only: whether the iterator was started, the
//! fingerprint of the last committed page (first `_id`, last `_id`, size) and the most recent
//! `_id`s.
//!
//! **Guarantees.** Endpoints are read round robin, one page per batch; each response's
//! `wait_time` is honoured per endpoint, and the source is idle while every endpoint waits or is
//! caught up (empty `result`). Epoch and `next` requests are never repeated blindly (they are
//! `not_repeatable`): when a response breaks mid-body, or after a restart (a page may have been
//! fetched but never made durable), the source asks `operation=resend`. If the resent page is the
//! committed one it is dropped (nothing was lost) and reading goes on with `next`; otherwise it is
//! the lost page and is delivered, deduplicated by `_id`. 429 and 5xx answers do not move the
//! server's cursor, so the shared client repeats the same request (honouring `RateLimit-Reset` and
//! `Retry-After`). No page is lost, and an event is delivered twice only if more than the
//! remembered ids separate the copies. Each event is delivered exactly as its bytes were received
//! (64-bit ids above 2^53 intact) with `weir-id` `netskope:<_id>` and its `timestamp` as event
//! time. An event without `_id`, or a page still unreadable after three `resend`s, goes to the
//! dead-letter topic with the reason and reading goes on. A 200 whose `ok` is not 1 is a
//! retryable error quoting the server; 401/403 stop the source with an error naming `api_token`.

mod config;
#[cfg(test)]
mod fake;
mod source;
#[cfg(test)]
mod tests;

pub use config::NetskopeConfig;
pub use source::{NetskopeConfigError, NetskopeSource};
