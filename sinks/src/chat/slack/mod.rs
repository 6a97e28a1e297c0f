//! `slack`: posts one message per record to a Slack incoming webhook.
//!
//! An `io.weir.Violation` becomes a Block Kit message (see [`message`]): a header with the rule
//! id and summary, a section with severity, status and subject fields, and a context line with
//! the violation key, plus the top-level `text` Slack uses for notifications. Any other record
//! becomes a plain `text` message holding its decoded value as JSON
//! ([`crate::encoding::value_to_json`]), cut to Slack's limits.
//!
//! What it guarantees: a record is reported delivered only on a 2xx (Slack answers 200 `ok`).
//! 400 (`invalid_payload`, `no_text`) and other 4xx dead-letter the record with Slack's answer;
//! 403/404 (`invalid_token`, `action_prohibited`, `channel_not_found`, `no_service`) stop the
//! sink; 429 is retryable and honours `Retry-After`, as are 408, 5xx and transport errors — the
//! records not yet sent are then left for the runner's retry. Slack has no idempotency key, so a
//! message whose 2xx was lost in transit may be posted twice (at-least-once). The webhook URL is
//! the secret: it never appears in an error, a reason or `Debug` output.

mod config;
pub mod message;
mod sink;
#[cfg(test)]
mod tests;

pub use config::SlackConfig;
pub use sink::SlackSink;
