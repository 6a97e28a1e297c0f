//! `pagerduty`: pages through the PagerDuty Events API v2 (`POST <endpoint>/v2/enqueue`).
//!
//! Each record must be an `io.weir.Violation` (see [`request`]): `OPEN`/`UPDATED` become a
//! `trigger` with a payload (summary, source, severity, timestamp, custom details), `RESOLVED`
//! a `resolve`. The `dedup_key` is the violation key (hashed when longer than PagerDuty's 255
//! characters), so retries and replays append to the open alert instead of paging twice, and a
//! resolve closes the alert its triggers opened. Severity from the OCSF `severity_id`: 5/6
//! critical, 4 error, 3 warning, anything else info. `title_template` (a
//! [`crate::template::Template`] of the violation's fields, e.g. `"[{rule_id}] {summary}"`) makes
//! the `payload.summary`; unset or blank, it is the violation's summary (`rule_id: subject`
//! without one).
//!
//! What it guarantees: a record is reported delivered only on a 2xx (PagerDuty answers 202).
//! 400 (an invalid event) dead-letters the record with PagerDuty's answer; a record that is not
//! a Violation is dead-lettered without a request. 429 (PagerDuty sends no `Retry-After`), 408,
//! 5xx and transport errors are retryable; the records not yet sent are then left for the
//! runner's retry. 401/403/404/3xx stop the sink. The `routing_key` travels only in the body
//! and never appears in an error, a reason or `Debug` output.

mod config;
pub mod request;
mod sink;
#[cfg(test)]
mod tests;

pub use config::PagerDutyConfig;
pub use sink::PagerDutySink;
