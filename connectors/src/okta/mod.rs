//! Okta: three sources.
//!
//! **`okta`** ([`OktaSystemLogSource`]) polls the System Log, `GET /api/v1/logs`, as a *polling*
//! request (`since`, `sortOrder=ASCENDING`, no `until`): Okta filters it by persistence time, so
//! late events are not skipped, and every page carries a `Link: rel="next"` URL — even an empty
//! one, which means "caught up" (the source idles `poll_interval_secs`). The cursor is that next
//! URL verbatim (it holds Okta's opaque `after`; `since` is never rebuilt from event times), the
//! `uuid`s of the last 1000 events and the newest `published` seen. Okta may hand an event out
//! again (its `since` is inclusive, polling redelivers): repeats are dropped by `uuid`, across
//! restarts too. First start: `since` = now − `start_lookback_secs`. Each event is one raw record,
//! its bytes exactly as Okta sent them, id = `uuid`, time = `published`; an element that is not
//! an object or has no `uuid` is dead-lettered with the page and index. A page that is still not a
//! JSON array after three attempts is dead-lettered whole and skipped through its own `Link: next`
//! header. Next links on another origin than `base_url` are refused (the token never leaves the
//! org).
//!
//! **`okta_event_hook`** ([`OktaEventHookSource`]) receives Event Hook deliveries on Weir's HTTP
//! server ([`OktaEventHookSource::router`], mounted at `path`). Every request must carry the
//! hook's static `Authorization` value (compared in constant time), else 401 and nothing is kept.
//! The one-time `GET` with `X-Okta-Verification-Challenge` is answered with
//! `{"verification": ...}`. A `POST` delivery's `data.events[]` become raw records (bytes
//! untouched, id = `uuid`) and it is answered 200 only once they are durable on the log (within
//! 2.5 s: Okta gives up after 3 s and retries once), else 503. A body that is not a delivery is
//! answered 400 and dead-lettered with the reason. Repeated deliveries are dropped by `uuid`.
//!
//! **`okta_directory`** ([`OktaDirectorySource`]) takes a full snapshot of the users every
//! `interval_secs`: groups (`GET /api/v1/groups`) and their members
//! (`GET /api/v1/groups/{id}/users`) first, then the users (`GET /api/v1/users`), each page one
//! batch, each user one raw record: the Okta user object with a `_groups` array of its group
//! names (sorted) added — so, unlike the other two, the payload is not exactly Okta's bytes: they
//! are kept, with `,"_groups":[...]` spliced in before the closing brace (Weir's convention for
//! directory users, which `normalize` turns into identity snapshots). Id = user id, `lastUpdated`
//! and a digest of the group names (a membership change does not move Okta's `lastUpdated`), so a
//! changed user is a new record; a user unchanged since this process last emitted it is skipped
//! (after a restart every user is emitted once more, with the same id). The cursor holds the users
//! page in progress and when the last snapshot finished: a restart mid-snapshot lists the groups
//! again and resumes the users listing where it stopped. Deprovisioned users are not listed (Okta's
//! default for `/api/v1/users`).
//!
//! `okta` and `okta_directory` share [`OktaConnection`]: `base_url`, `api_token` (sent as
//! `SSWS`) or an OAuth 2.0 service app (`client_id` + `private_key`, private_key_jwt at
//! `{base_url}/oauth2/v1/token`, scopes `okta.logs.read` or `okta.users.read okta.groups.read`),
//! and `http`. Retries, `X-Rate-Limit-*` pacing and token refresh are the shared client's; a
//! refusal after a refresh is fatal and names the credential options, never their values.

mod config;
mod directory;
mod event_hook;
mod system_log;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

pub use config::{
    DirectoryOptions, OktaConfigError, OktaConnection, OktaDirectoryConfig, OktaEventHookConfig, OktaSystemLogConfig,
    SystemLogOptions, MAX_LOOKBACK_SECS,
};
pub use directory::OktaDirectorySource;
pub use event_hook::OktaEventHookSource;
pub use system_log::OktaSystemLogSource;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use url::Url;

/// The vendor name on raw records (it tells `normalize` how to read them).
const VENDOR: &str = "okta";

/// A time as Okta writes it: RFC 3339, UTC, milliseconds (`2024-01-15T10:00:00.000Z`).
fn okta_time(time: OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    time.to_offset(time::UtcOffset::UTC).format(&format).unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".into())
}

/// An RFC 3339 time in ms since the Unix epoch; None when it is not one (Okta's own docs have
/// `2017-09-31`): the event is kept, without a time.
fn timestamp_ms(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Rfc3339).ok().map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Where a page is, for messages: its `after` (or `since`) parameter.
fn page_position(url: &Url) -> String {
    for wanted in ["after", "since"] {
        if let Some((_, value)) = url.query_pairs().find(|(k, _)| k == wanted) {
            return format!("{wanted}={}", crate::batch::quote(&value));
        }
    }
    "first page".to_string()
}
