//! `jira`: one Jira Cloud issue per violation, through the REST API v3 (`<endpoint>/rest/api/3`,
//! Basic auth with the account's email and an API token).
//!
//! Each record must be an `io.weir.Violation` (see [`request`]). Jira has no idempotency key, so
//! every issue carries a label derived from the violation key (`label_prefix` + the key, or
//! `sha256-<hex>` of a key that is long or not plain), and every record first searches for it
//! (`GET /rest/api/3/search/jql`, JQL `project = "<project>" AND labels = "<label>" ORDER BY
//! created DESC`), then:
//!
//! - OPEN / UPDATED, no issue: `POST /rest/api/3/issue` (summary, ADF description, labels,
//!   priority by severity);
//! - OPEN, open issue: nothing (a retry after a lost 201, or a replay);
//! - UPDATED, open issue: a comment (`POST /rest/api/3/issue/{key}/comment`, ADF);
//! - OPEN / UPDATED, done issue created no earlier than the violation's `first_seen`: nothing (a
//!   replay, or closed by hand while the violation held); of a later episode: a new issue;
//! - RESOLVED, open issue: a comment, then the `done_transition` (looked up by name in
//!   `GET /rest/api/3/issue/{key}/transitions`, then `POST` with its id); nothing when there is
//!   no issue or it is already done.
//!
//! The summary is the violation's summary and the description (ADF) the summary, the violation's
//! facts and its JSON, unless `title_template` / `body_template` (each a
//! [`crate::template::Template`] of the violation's fields, e.g. `"[{rule_id}] {subject}"`; the body
//! one paragraph per line) say otherwise; a template that renders blank falls back to the default.
//!
//! Jira's search is eventually consistent: an issue created seconds ago may not be found yet.
//! The sink passes the ids of issues it created or found as `reconcileIssues`, which makes the
//! search see them at once; after a create whose answer was lost (a timeout, a broken connection,
//! a 5xx) it does not create again until the search finds the issue or `search_settle_secs` have
//! passed.
//!
//! What it guarantees: a record is reported delivered only once every request it needed got a
//! 2xx, and a retry, restart or replay does not create a second issue for a violation (one
//! record at a time; a lost create is safe within `search_settle_secs` of Jira's indexing).
//! Comments are posted once per delivery, so a retry or replay can repeat one. 400 (a payload
//! Jira rejects, e.g. a field not on the create screen) dead-letters the record with Jira's
//! answer, as does a missing `done_transition`; a 400 on the search (a wrong `project`) stops the
//! sink; a record that is not a Violation is dead-lettered without a request. 429 and 503 (their
//! `Retry-After` honoured), 408, 5xx, transport errors and an issue deleted since the search are
//! retryable. 401/403 stop the sink with an error naming `email` and `api_token`; 404/3xx (a
//! wrong `endpoint`) stop it too. The API token never appears in an error, a reason or `Debug`
//! output.

mod config;
pub mod request;
mod sink;
#[cfg(test)]
mod tests;

pub use config::JiraConfig;
pub use sink::JiraSink;
