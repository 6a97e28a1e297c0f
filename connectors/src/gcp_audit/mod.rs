//! `gcp_audit`: Google Cloud Audit Logs (Admin Activity, Data Access, System Event, Policy
//! Denied) read from Cloud Logging with `entries.list`, authenticated as a service account (a JWT
//! bearer grant signed with the key file's private key, scope `logging.read`).
//!
//! The source reads time windows `[start, now - lag_secs)` (`logName:"cloudaudit.googleapis.com"
//! AND timestamp>=… AND timestamp<…`, oldest first), page by page with `pageToken`. A page with
//! no entries but a `nextPageToken` means the search has not finished, so paging goes on. Entries
//! are received (`receiveTimestamp`) after their `timestamp`, so each new window starts
//! `overlap_secs` before the previous one ended; repeats are dropped by `(logName, timestamp,
//! insertId)` — Cloud Logging's own identity of an entry, and the weir-id (`gcp:<logName>|
//! <timestamp>|<insertId>`). The cursor is `{done_ms, window: {start_ms, end_ms, page_token,
//! newest_ms, broken_pages}, recent}`, persisted with each page's batch: a restart resumes at the
//! page after the last durable one, nothing lost or delivered twice. The raw payload is each
//! entry's bytes as sent.
//!
//! 429 and 5xx are retried by the shared client; a 401 fetches a new token once; refused
//! credentials (the token endpoint's `invalid_grant`, or 401 twice, or 403) are fatal and name
//! `service_account_key`. An entry without its identity is dead-lettered. A page that stays
//! unreadable after three attempts is dead-lettered, and as its `nextPageToken` is lost too, the
//! window is read again from its first page, starting at the newest entry time already read
//! (`timestamp>=` that millisecond: entries come oldest first, so none is skipped; the ones read
//! again are dropped as repeats). After three such readings the rest of the window is given up
//! with a dead letter that says so (the next window's overlap re-reads its end).

mod config;
#[cfg(test)]
mod fake;
mod source;
#[cfg(test)]
mod tests;

pub use config::GcpAuditConfig;
pub use source::{GcpAuditError, GcpAuditSource};
