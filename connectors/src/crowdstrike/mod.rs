//! CrowdStrike Falcon sources, over the Falcon REST API with OAuth2 client credentials
//! (`POST {base}/oauth2/token`, which answers 201 with a ~30-minute token; the shared client
//! caches it, refreshes it before it expires and once more after a 401):
//!
//! - `crowdstrike_alerts` ([`CrowdStrikeAlertsSource`]): alert ids from
//!   `GET /alerts/queries/alerts/v2?filter=updated_timestamp:>='<t>'&sort=updated_timestamp.asc`,
//!   paged by `offset`/`limit`, then the alerts from `POST /alerts/entities/alerts/v2` (1000 ids at
//!   a time). The cursor is the time the query starts from, the offset inside it, the
//!   `updated_timestamp` high-water mark and the recent `composite_id:updated_timestamp` pairs.
//!   Through a backlog each page starts from the newest update of the one before (by offset when
//!   a whole page shares one second). The query endpoint refuses `offset + limit` above 10,000, so
//!   when more alerts than that share one second (a bulk status change) the rest of that second is
//!   read from `POST /alerts/combined/alerts/v1` (alerts with details, paged by its `after`
//!   token), dropping the ones the offset paging already read; then the query goes on from the
//!   next second. Once caught up the next poll, `poll_interval_secs` later,
//!   starts `overlap_secs` before the high-water mark so alerts indexed late are still seen, and
//!   the repeats are dropped. Alerts change (status, assignee): each version is one raw event,
//!   `weir-id` `crowdstrike:<composite_id>@<updated_timestamp>`, event time `updated_timestamp`;
//!   the same version is not delivered twice.
//! - `crowdstrike_hosts` ([`CrowdStrikeHostsSource`]): host ids from
//!   `GET /devices/queries/devices-scroll/v1`, then the hosts from
//!   `POST /devices/entities/devices/v2` (5000 ids at a time). The first sync reads every host;
//!   every `interval_secs` another sync reads the hosts whose `modified_timestamp` is after the
//!   previous sync's start (less `overlap_secs`). Raw event id `<device_id>@<modified_timestamp>`,
//!   event time `modified_timestamp`. The cursor holds the scroll token, so a restart resumes
//!   mid-scroll; a scroll token lives only minutes, so when the API refuses one (a 4xx) the sync
//!   starts over from its first page and the hosts already delivered are dropped as repeats, as
//!   far as the remembered ids reach (beyond that, a host version may be delivered twice: hosts
//!   are state, and a repeat changes nothing downstream).
//!
//! **Guarantees.** The cursor only moves with a batch, so a crash re-reads at most the last page
//! and the remembered ids drop its repeats: nothing is lost, nothing doubled. 429 (CrowdStrike's
//! `X-Ratelimit-Retryafter` is an epoch time) and 5xx are retried by the shared client. A 200
//! with a non-empty `errors` array still gives its results; the errors go to the dead-letter
//! topic. An alert/host without its id or time is dead-lettered with what, where and why, and
//! reading goes on.
//!
//! **Unreadable answers** (still garbled after the shared client's three tries). The cursor
//! never moves past ids whose details were not read: the poll fails with a retryable error and
//! keeps nothing (no cursor, remembered id or time is changed), so the runner backs off and asks
//! again from the same position. After 5 polls in a row (`UNREADABLE_POLLS`) at the same
//! position a details answer is given up so that a permanently garbled one cannot stall the
//! source: its ids are dead-lettered as the JSON request body that fetches them again
//! (`{"composite_ids":[..]}`, `{"ids":[..]}`), next to the garbled answer, and reading goes on.
//! A hosts scroll page (its ids unknown) never ends a sync: it is asked again, and after 5 polls
//! the answer is dead-lettered and the sync starts over from its first page (repeats dropped), so
//! a page that is never readable keeps the sync from completing, visibly, rather than dropping
//! hosts. An unreadable alerts query page is dead-lettered and asked again after
//! `poll_interval_secs`, the cursor unmoved. Refused credentials
//! (401 after a token refresh, 403) stop the source with an error naming `client_id` and
//! `client_secret`, never their values.

mod alerts;
mod api;
mod config;
#[cfg(test)]
mod fake;
mod hosts;
#[cfg(test)]
mod tests;

pub use alerts::CrowdStrikeAlertsSource;
pub use api::CrowdStrikeConfigError;
pub use config::{Cloud, CrowdStrikeAlertsConfig, CrowdStrikeHostsConfig};
pub use hosts::CrowdStrikeHostsSource;
