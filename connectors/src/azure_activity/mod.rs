//! `azure_activity`: the Azure Activity Log (control-plane events: writes, deletes, actions,
//! policy, service health) of one or more subscriptions, through the REST API
//! (`ActivityLogs_List`, api-version 2015-04-01) with an Entra ID client-credentials token.
//!
//! Each subscription is read in time windows `[start, now - lag_secs]` (`$filter=eventTimestamp
//! ge … and eventTimestamp le …`), following `nextLink` verbatim until it is absent; a `nextLink`
//! on another origin than `base_url` is never followed (it would carry the token elsewhere). Events
//! become queryable minutes after their `eventTimestamp` (see `submissionTimestamp`), so each new
//! window starts `overlap_secs` before the previous one ended; repeats are dropped by
//! `eventDataId` (the cursor remembers the most recent `dedupe_ids` per subscription). The cursor
//! holds, per subscription, the end of the last finished window, the window being read with its
//! `nextLink` (and its unreadable pages so far), and the recent ids; it is persisted with each page's batch, so a restart resumes at
//! the page after the last durable one: nothing lost, nothing delivered twice. Subscriptions are
//! read in turn, one page per poll. The raw payload is each EventData's bytes as sent; the id is
//! `eventDataId`, the time `eventTimestamp`.
//!
//! 429 (`Retry-After`) and 5xx are retried by the shared client; a 401 fetches a new token once;
//! refused credentials (token endpoint 400/401, or 401 twice, or 403) are fatal and name the
//! options to check. An event without `eventDataId` is dead-lettered. A page that stays unreadable
//! after three attempts is dead-lettered, and as its `nextLink` is lost too and the list is not
//! documented as sorted, the window is read again from its first page: the events already
//! delivered are dropped as repeats by `eventDataId` (so `dedupe_ids` should exceed a window's
//! events; beyond, some are delivered twice, never lost, and the dead letter says so). After three
//! such readings the rest of the window is given up with a dead letter that says so (the next
//! window's overlap re-reads its end).

mod config;
#[cfg(test)]
mod fake;
mod source;
#[cfg(test)]
mod tests;

pub use config::AzureActivityConfig;
pub use source::{AzureActivityError, AzureActivitySource};
