//! `slack`: posts one message per record, through an incoming webhook (`mode = "webhook"`, the
//! default) or the Web API method `chat.postMessage` (`mode = "api"`, a bot token and a channel).
//!
//! An `io.weir.Violation` becomes a Block Kit message (see [`message`]): a header with the rule
//! id and summary, a section with severity, status and subject fields, and a context line with
//! the violation key, plus the top-level `text` Slack uses for notifications. Any other record
//! becomes a plain `text` message holding its decoded value as JSON
//! ([`crate::encoding::value_to_json`]), cut to Slack's limits. OPEN, UPDATED and RESOLVED are
//! one message each. In API mode the body also names the `channel` and turns link previews off.
//! `title_template` (a [`crate::template::Template`] of the violation's fields, e.g.
//! `"{status} [{rule_id}] {summary}"`) replaces the header text; unset or blank, the header is as
//! above.
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
//! twice (at-least-once). UPDATED and RESOLVED are posted as new messages, not in the thread of
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
