//! `crowdstrike_hosts`: host ids from `GET /devices/queries/devices-scroll/v1` (a full snapshot
//! first, then the hosts modified since the previous sync), then their details from
//! `POST /devices/entities/devices/v2`.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use weir_schemas::component::{ComponentError, Source, SourcePoll, SourceStats};

use super::api::{self, config_error, parse_envelope, reject_partial, Connection, Falcon, Versioned, VENDOR};
use super::{CrowdStrikeConfigError, CrowdStrikeHostsConfig};
use crate::batch::{now_ms, RawBatch};
use crate::cursor::{load_cursor, save_cursor, RecentIds};
use crate::http::{ApiError, ApiRequest};

/// Host versions (`device_id@modified_timestamp`) remembered, to drop repeats after a restarted
/// scroll or an overlapping incremental sync.
const RECENT_IDS: usize = 5000;

/// Ids per details request (the API's limit).
const DETAILS_CHUNK: usize = 5000;

/// The scroll endpoint's largest page.
const MAX_PAGE: usize = 10_000;

/// A sync under way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sync {
    /// When it started (ms since the epoch): the next incremental sync reads from there.
    started_ms: i64,
    /// Only hosts modified after this time (ms); `None` for a full snapshot.
    since_ms: Option<i64>,
    /// The scroll token of its next page; `None` for its first page.
    offset: Option<String>,
}

/// Where the source is.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cursor {
    /// The sync under way, if any.
    #[serde(default)]
    sync: Option<Sync>,
    /// When the last completed sync started (ms); `None` before the first full snapshot ends.
    #[serde(default)]
    last_sync_started_ms: Option<i64>,
    /// Host versions delivered recently.
    #[serde(default)]
    recent: RecentIds,
}

/// A host's versions: each `modified_timestamp` is a snapshot of its own.
const HOST: Versioned = Versioned {
    kind: "host",
    id_field: "device_id",
    time_field: "modified_timestamp",
    details_path: "/devices/entities/devices/v2",
    ids_field: "ids",
};

/// Reads the Falcon host inventory, each host version once.
pub struct CrowdStrikeHostsSource {
    falcon: Falcon,
    interval_ms: i64,
    overlap_ms: i64,
    page_size: usize,
    committed: Cursor,
    working: Cursor,
    /// A batch was handed over and not yet committed.
    outstanding: bool,
    newest_ms: Option<i64>,
    /// Scroll pages and details answers found unreadable in a row, to retry them a bounded
    /// number of times.
    unreadable: api::Unreadable,
}

impl CrowdStrikeHostsSource {
    /// A source named `name` (its raw topic is `raw.<name>`).
    pub fn new(name: &str, config: CrowdStrikeHostsConfig) -> Result<CrowdStrikeHostsSource, CrowdStrikeConfigError> {
        if config.page_size == 0 || config.page_size > MAX_PAGE {
            return Err(config_error("page_size", format!("it must be between 1 and {MAX_PAGE}")));
        }
        if config.interval_secs == 0 {
            return Err(config_error("interval_secs", "it must be at least 1"));
        }
        let falcon = Falcon::new(
            name,
            "Hosts: read",
            Connection {
                cloud: config.cloud,
                base_url: config.base_url.as_deref(),
                client_id: &config.client_id,
                client_secret: &config.client_secret,
                member_cid: config.member_cid.as_deref(),
                http: &config.http,
            },
        )?;
        Ok(CrowdStrikeHostsSource {
            falcon,
            interval_ms: (config.interval_secs as i64).saturating_mul(1000),
            overlap_ms: (config.overlap_secs as i64).saturating_mul(1000),
            page_size: config.page_size,
            committed: Cursor::default(),
            working: Cursor::default(),
            outstanding: false,
            newest_ms: None,
            unreadable: api::Unreadable::default(),
        })
    }

    /// One scroll page of `sync`: the answer, or `None` when its scroll token was refused (expired).
    async fn scroll(
        &self,
        sync: &Sync,
    ) -> Result<Option<api::Envelope>, Result<(u16, Vec<u8>, String), ComponentError>> {
        let mut url = self.falcon.url("/devices/queries/devices-scroll/v1");
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("limit", &self.page_size.to_string());
            if let Some(offset) = &sync.offset {
                query.append_pair("offset", offset);
            }
            if let Some(since) = sync.since_ms {
                query.append_pair("filter", &format!("modified_timestamp:>'{}'", api::fql_time(since)));
            }
        }
        match self.falcon.client.send_page(&ApiRequest::get(url), &self.falcon.auth, parse_envelope).await {
            Ok(Ok((_, page))) => Ok(Some(page)),
            Ok(Err((response, reason))) => Err(Ok((response.status, response.body, reason))),
            // A scroll token lives a few minutes: one refused with a 4xx has expired.
            Err(ApiError::Rejected { status: 400..=499, reason, .. }) if sync.offset.is_some() => {
                tracing::warn!(source = %self.falcon.name, %reason, "the scroll token was refused (expired?); restarting the sync from its first page");
                Ok(None)
            }
            Err(e) => Err(Err(self.falcon.error(e))),
        }
    }
}

#[async_trait]
impl Source for CrowdStrikeHostsSource {
    async fn open(&mut self, committed_cursor: Option<String>) -> Result<(), ComponentError> {
        let mut cursor: Cursor = load_cursor(&self.falcon.name, committed_cursor)?.unwrap_or_default();
        cursor.recent = std::mem::take(&mut cursor.recent).with_capacity(RECENT_IDS);
        self.committed = cursor.clone();
        self.working = cursor;
        self.outstanding = false;
        self.unreadable.clear();
        Ok(())
    }

    async fn poll(&mut self) -> Result<SourcePoll, ComponentError> {
        if self.outstanding {
            // The last batch was never committed: read it again.
            self.working = self.committed.clone();
            self.outstanding = false;
        }
        let mut cursor = self.working.clone();
        let mut sync = match cursor.sync.clone() {
            Some(sync) => sync,
            None => {
                let now = now_ms();
                if let Some(last) = cursor.last_sync_started_ms {
                    let due = last.saturating_add(self.interval_ms);
                    if now < due {
                        return Ok(SourcePoll::Idle(Duration::from_millis((due - now) as u64)));
                    }
                }
                // The first sync reads every host; later ones what changed since the last began.
                let since_ms = cursor.last_sync_started_ms.map(|last| last - self.overlap_ms);
                Sync { started_ms: now, since_ms, offset: None }
            }
        };
        let mut batch = RawBatch::new(&self.falcon.name, VENDOR);
        let what = "GET /devices/queries/devices-scroll/v1";
        let page = match self.scroll(&sync).await {
            Ok(Some(page)) => page,
            Ok(None) => {
                // Start the sync over; the hosts delivered already are dropped as repeats (as far as
                // the remembered ids reach: beyond, they are delivered again).
                sync.offset = None;
                match self.scroll(&sync).await {
                    Ok(Some(page)) => page,
                    Ok(None) => {
                        return Err(ComponentError::retryable(format!(
                            "source {}: {what}: the first page of a sync was refused",
                            self.falcon.name
                        )))
                    }
                    Err(Ok(unreadable)) => return self.unreadable_page(batch, cursor, sync, unreadable),
                    Err(Err(e)) => return Err(e),
                }
            }
            Err(Ok(unreadable)) => return self.unreadable_page(batch, cursor, sync, unreadable),
            Err(Err(e)) => return Err(e),
        };
        if let Some(errors) = &page.errors {
            reject_partial(&mut batch, what, errors);
        }
        let ids = api::ids(&mut batch, what, &page.resources);
        for (chunk_no, chunk) in ids.chunks(DETAILS_CHUNK).enumerate() {
            // On an error nothing of this poll was kept (`cursor` and `sync` are copies): the
            // runner backs off and polls this page again.
            let at = format!("details/{}/{chunk_no}", position(&sync));
            self.falcon.take_details(&mut self.unreadable, &mut batch, &mut cursor.recent, &HOST, chunk, at).await?;
        }
        let token = match &page.pagination.offset {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let last_page = page.resources.len() < self.page_size || token.is_none();
        if last_page {
            return self.hand_over(batch, cursor, Some(sync.started_ms));
        }
        sync.offset = token;
        cursor.sync = Some(sync);
        self.hand_over(batch, cursor, None)
    }

    async fn committed(&mut self, _cursor: Option<&str>) -> Result<(), ComponentError> {
        if self.outstanding {
            self.committed = self.working.clone();
            self.outstanding = false;
        }
        Ok(())
    }

    fn stats(&self) -> SourceStats {
        SourceStats { retries: self.falcon.client.retries(), cursor_time_ms: self.newest_ms }
    }
}

/// Where in a sync a scroll page is, stable across polls (unlike `started_ms` of a sync not yet
/// in the cursor): the key of [`api::Unreadable`].
fn position(sync: &Sync) -> String {
    format!("{:?}/{:?}", sync.since_ms, sync.offset)
}

impl CrowdStrikeHostsSource {
    /// A scroll page of `sync` stayed unreadable after the client's tries. Its ids are unknown,
    /// so the sync must not end (nor skip it): that would lose every host not read yet until it
    /// changes again. The page is asked again on the next polls; after [`api::UNREADABLE_POLLS`]
    /// the answer is dead-lettered and the sync starts over from its first page (a token gone
    /// bad is dropped; the hosts already delivered are dropped as repeats). A page that is
    /// never readable keeps the sync from ending, visibly (errors, dead letters), rather than
    /// silently dropping hosts.
    fn unreadable_page(
        &mut self,
        mut batch: RawBatch,
        mut cursor: Cursor,
        mut sync: Sync,
        (status, body, reason): (u16, Vec<u8>, String),
    ) -> Result<SourcePoll, ComponentError> {
        let what = "GET /devices/queries/devices-scroll/v1";
        match self.unreadable.record(format!("scroll/{}", position(&sync))) {
            Ok(n) => Err(ComponentError::retryable(format!(
                "source {}: crowdstrike {what}: HTTP {status}: {reason}; the page is asked again (unreadable {n} \
                 time(s) in a row, the sync starts over at {})",
                self.falcon.name,
                api::UNREADABLE_POLLS
            ))),
            Err(()) => {
                batch.reject(
                    format!(
                        "crowdstrike {what}: HTTP {status}: {reason}; the page stayed unreadable over {} polls, so \
                         the sync starts over from its first page",
                        api::UNREADABLE_POLLS
                    ),
                    &body,
                );
                sync.offset = None;
                cursor.sync = Some(sync);
                self.hand_over(batch, cursor, None)
            }
        }
    }

    /// Hands `batch` over with `cursor`; `finished` is the start of a sync that just ended.
    fn hand_over(
        &mut self,
        batch: RawBatch,
        mut cursor: Cursor,
        finished: Option<i64>,
    ) -> Result<SourcePoll, ComponentError> {
        if let Some(started) = finished {
            cursor.sync = None;
            cursor.last_sync_started_ms = Some(started);
        }
        if let Some(ms) = batch.newest_event_ms() {
            self.newest_ms = Some(self.newest_ms.map_or(ms, |n| n.max(ms)));
        }
        // A batch goes out: whatever was unreadable has been read or given up.
        self.unreadable.clear();
        let text = save_cursor(&cursor);
        self.working = cursor;
        self.outstanding = true;
        Ok(SourcePoll::Batch(batch.finish(text)))
    }
}
