//! `servicenow`: one ServiceNow incident per violation, through the Table API
//! (`<endpoint>/api/now/table/incident`, Basic auth).
//!
//! Each record must be an `io.weir.Violation` (see [`request`]). The incident's `correlation_id`
//! is the violation key (`sha256:<hex>` of it when longer than the field's 100 characters or not
//! plain `[A-Za-z0-9._:@-]`). ServiceNow does not enforce unique correlation ids, so every record
//! first looks the incident up (`GET ...?sysparm_query=correlation_id=<id>^ORDERBYDESCsys_created_on
//! &sysparm_fields=sys_id,number,state,sys_created_on&sysparm_limit=1`, active or not), then:
//!
//! - OPEN / UPDATED, no incident: `POST` a new one (title, description, urgency and impact from
//!   the severity, assignment group, category, caller, a first work note);
//! - OPEN / UPDATED, open incident: `PATCH` title, urgency, impact (and a work note for UPDATED;
//!   none for OPEN, so a retry after a lost 201 changes nothing);
//! - OPEN / UPDATED, resolved or closed incident whose creation is not older than the violation's
//!   `first_seen`: nothing (a replay, or resolved by hand while the violation held);
//! - OPEN / UPDATED of a later episode: a resolved incident is reopened (`reopen_state`), a
//!   closed or canceled one (read-only) is followed by a new incident;
//! - RESOLVED: `PATCH state = resolved_state`, `close_code`, `close_notes`; nothing when there is
//!   no incident or it is already resolved or closed.
//!
//! The title (`short_description`) is the violation's summary and the description the title
//! followed by the violation's details, unless `title_template` / `body_template` (each a
//! [`crate::template::Template`] of the violation's fields, e.g. `"[{rule_id}] {subject}"`) say
//! otherwise; a template that renders blank falls back to the default.
//!
//! What it guarantees: a record is reported delivered only once every request it needed got a
//! 2xx, and never produces a second incident for one violation from a retry, restart or replay
//! (one record at a time, so a sink never races itself; two sinks on the same violations could).
//! Work notes of UPDATED violations are appended once per delivery, so a retry or replay can
//! repeat a note. 400 (a payload ServiceNow rejects) dead-letters the record with ServiceNow's
//! answer; a record that is not a Violation is dead-lettered without a request. 429 (its
//! `Retry-After` is honoured), 408, 5xx, transport errors, a lookup answer that is not JSON (a
//! hibernating instance) and an incident deleted between lookup and change are retryable.
//! 401/403 stop the sink with an error naming `username` and `password`; 404/3xx (a wrong
//! `endpoint`) stop it too. The password never appears in an error, a reason or `Debug` output.

mod config;
pub mod request;
mod sink;
#[cfg(test)]
mod tests;

pub use config::ServiceNowConfig;
pub use sink::ServiceNowSink;
