//! `teams`: posts one Adaptive Card per record to a Microsoft Teams channel through a webhook —
//! a Workflows (Power Automate) webhook (`kind = "workflows"`, the default) or a legacy Office 365
//! connector incoming webhook (`kind = "connector"`; Microsoft is retiring these, dates moved
//! through 2025–2026: move to Workflows).
//!
//! Both kinds get the same body (see [`message`]): `{"type":"message","attachments":[{"contentType":
//! "application/vnd.microsoft.card.adaptive","content":{AdaptiveCard 1.4}}]}`. An
//! `io.weir.Violation` becomes a card with a banner (severity and status, coloured per severity
//! with the Adaptive Card `attention`/`warning`/`accent`/`default` colours, `good` once
//! resolved), the title `[rule] summary`, the rule's description, facts (severity, status, rule,
//! user, violation key, first/last seen, up to 10 labels) and an "Open" button
//! (`Action.OpenUrl`) when a `link`, `url`, `runbook` or `runbook_url` label holds an http(s)
//! URL. An `io.weir.WindowAggregate` (from an `aggregate` operator, e.g. `preset =
//! "daily_digest"`) becomes a digest card ([`message::digest_message`]): a `DIGEST` banner with
//! the operator, metric and group, a FactSet (window start and end, count, value, late events,
//! the record's stable id) and, when the metric has top items, a FactSet of ten at most with
//! their counts. The record kind is told by the writer schema's name in the record's header. Any
//! other record becomes a card holding its decoded value as JSON. OPEN, UPDATED and RESOLVED are
//! one message each. `title_template` and `body_template` (each a [`crate::template::Template`]
//! of the violation's fields, e.g. `"{rule_id} on {subject}"`) replace a violation's title and
//! the description under it; unset or blank, they are as above. Digests keep their own title:
//! the templates name violation fields.
//!
//! A daily digest is several WindowAggregate records for one window (one per metric: `total`,
//! `decisions.ALLOW`/`DENY`/`REVIEW`, `top.services`, `top.violators`), so it is posted as that
//! many cards: the sink keeps no state to join records that may arrive in different batches.
//!
//! Size: text fields are cut to fixed lengths (title 250 characters, values 1000, raw JSON
//! 16,000); a body still over `max_message_bytes` (default 28,000, Teams' ~28 KB limit) is
//! dead-lettered without a request, with the size in the reason.
//!
//! What it guarantees: a record is reported delivered only on a 2xx that does not say it failed.
//! A connector answers 200 `1`; when throttled it does **not** answer 429 but 200 with a text
//! quoting `HTTP error 429`, which is retryable (so is a quoted 408 or 5xx; any other quoted
//! failure dead-letters the record). A Workflows webhook answers 202 Accepted and posts later:
//! a card that fails after the 202 is never reported to Weir, so delivery there means "accepted
//! by the workflow". 400 and other 4xx dead-letter the record with Teams' answer; 401/403/404
//! (the URL is wrong or the webhook was removed) and 3xx stop the sink; 429, 408, 5xx and
//! transport errors are retryable (a `Retry-After` holds the next request) and leave the records
//! not yet sent for the runner's retry. `kind = "connector"` without `request.rate_limit_per_sec`
//! keeps to 2 requests a second (a connector allows 4 a second and 60 per 30 seconds; its hourly
//! and daily limits are not tracked). Teams has no idempotency key: a message whose answer was
//! lost may be posted twice (at-least-once). Digests too: the aggregate operator's output is
//! replay-stable (same bytes, same `weir-id`), so a digest card is posted again only when the
//! sink's delivery is retried or replayed before its offset was committed, and the `weir-id` in
//! its facts lets a reader spot the repeat. A window that fires again (late events) is a new
//! record and a new card, with the updated counts.
//!
//! The URL is the credential (the Workflows `sig`, the connector's ids): neither it nor its long
//! path segments and query values ever appear in an error, a reason or `Debug` output.

mod config;
pub mod message;
mod sink;
#[cfg(test)]
mod tests;

pub use config::{TeamsConfig, TeamsKind, DEFAULT_MAX_MESSAGE_BYTES};
pub use sink::{TeamsSink, CONNECTOR_RATE_PER_SEC};
