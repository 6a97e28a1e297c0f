//! `slack`: posts one message per record, through an incoming webhook (`mode = "webhook"`, the
//! default) or the Web API method `chat.postMessage` (`mode = "api"`, a bot token and a channel).
//!
//! An `io.weir.Violation` becomes a Block Kit message (see [`message`]): a header with the rule
//! id and summary, a section with severity, status and subject fields, and a context line with
//! the violation key, plus the top-level `text` Slack uses for notifications. An
//! `io.weir.WindowAggregate` (from an `aggregate` operator, e.g. `preset = "daily_digest"`)
//! becomes a digest message ([`message::digest_message`]): a header with the operator, metric and
//! group, a section with the window's start and end, the count (and value, late events), the top
//! items (ten at most) when the metric has them, and a context line with the record's stable id.
//! The record kind is told by the writer schema's name in the record's header. Any other record
//! becomes a plain `text` message holding its decoded value as JSON
//! ([`crate::encoding::value_to_json`]), cut to Slack's limits. OPEN, UPDATED and RESOLVED are
//! one message each. In API mode the body also names the `channel` and turns link previews off.
//! `title_template` (a [`crate::template::Template`] of the violation's fields, e.g.
//! `"{status} [{rule_id}] {summary}"`) replaces a violation's header text; unset or blank, the
//! header is as above. Digests keep their own header: the template names violation fields.
//!
//! A daily digest is several WindowAggregate records for one window (one per metric: `total`,
//! `decisions.ALLOW`/`DENY`/`REVIEW`, `top.services`, `top.violators`), so it is posted as that
//! many messages: the sink keeps no state to join records that may arrive in different batches.
//!
//! What it guarantees: a record is reported delivered only when Slack says it posted it — a 2xx
//! from a webhook (Slack answers 200 `ok`), `{"ok":true}` from `chat.postMessage`.
//!
//! - Webhook: 400 (`invalid_payload`, `no_text`) and other 4xx dead-letter the record with
//!   Slack's answer; 403/404 (`invalid_token`, `action_prohibited`, `channel_not_found`,
//!   `no_service`) stop the sink.
//! - API: Slack answers HTTP 200 even when it did not post, so the body decides
//!   ([`classify_api_error`]): `ratelimited` (and Slack's transient `internal_error`,
//!   `fatal_error`, `service_unavailable`, `request_timeout`) is retryable; `invalid_auth`,
//!   `not_authed`, `account_inactive`, `token_revoked`, `token_expired`, `missing_scope` stop the
//!   sink; any other error (`channel_not_found`, `is_archived`, `not_in_channel`, `msg_too_long`,
//!   `invalid_blocks`, …) dead-letters the record with Slack's answer. A 200 without `ok` is
//!   retryable. HTTP 401/403/404 stop the sink, other 4xx dead-letter.
//! - Both: 429 is retryable and its `Retry-After` holds the next request, as are 408, 5xx and
//!   transport errors — the records not yet sent are then left for the runner's retry.
//!
//! Slack has no idempotency key, so a message whose answer was lost in transit may be posted
//! twice (at-least-once). That holds for digests too: neither the webhook nor `chat.postMessage`
//! documents a field that would let Slack drop a repeat, so none is sent. The aggregate
//! operator's output is replay-stable (same bytes, same `weir-id`), and a digest is posted again
//! only when the sink's delivery is retried or replayed before its offset was committed; the
//! `weir-id` in the context line lets a reader spot such a repeat. A window that fires again
//! (late events) is a new record and a new message, with the updated counts. UPDATED and RESOLVED are posted as new messages, not in the thread of
//! the OPEN one: threading needs the OPEN message's `ts` kept durably, and sinks have no durable
//! state; a `ts` kept in memory would thread differently after a restart or a replay.
//!
//! Secrets: the webhook URL and the token never appear in an error, a reason or `Debug` output
//! (the token travels only in the `Authorization` header).

mod config;
pub mod message;
mod sink;
#[cfg(test)]
mod tests;

pub use config::{SlackConfig, SlackMode};
pub use sink::{classify_api_error, SlackSink};
