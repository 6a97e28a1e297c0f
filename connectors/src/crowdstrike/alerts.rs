//! `crowdstrike_alerts`: alert ids from `GET /alerts/queries/alerts/v2` (sorted by
//! `updated_timestamp`, from a high-water mark less an overlap), then their details from
//! `POST /alerts/entities/alerts/v2`.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::time::Instant;
use weir_schemas::component::{ComponentError, Source, SourcePoll, SourceStats};

use super::api::{
    self, config_error, parse_envelope, reject_partial, take_versions, Connection, Falcon, Versioned, VENDOR,
};
use super::{CrowdStrikeAlertsConfig, CrowdStrikeConfigError};
use crate::batch::{now_ms, RawBatch};
use crate::cursor::{load_cursor, save_cursor, RecentIds};
use crate::http::ApiRequest;

/// Alert versions (`composite_id:updated_timestamp`) remembered, to drop repeats of the overlap.
const RECENT_IDS: usize = 2000;

/// Ids per details request (the API's limit).
const DETAILS_CHUNK: usize = 1000;

/// The query endpoint's largest `offset + limit`.
const MAX_WINDOW: usize = 10_000;

/// The combined endpoint's largest page.
const COMBINED_LIMIT: usize = 1000;

/// Where the source is.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cursor {
    /// The query asks for alerts updated at or after this time (ms since the epoch).
    from_ms: i64,
    /// Alerts of that query already read (when more than a page share one second).
    #[serde(default)]
    offset: usize,
    /// The newest `updated_timestamp` seen (ms).
    #[serde(default)]
    high_water_ms: Option<i64>,
    /// Alert versions delivered recently.
    #[serde(default)]
    recent: RecentIds,
    /// Reading the second `from_ms` falls in through the combined endpoint, when more alerts
    /// share it than the query endpoint's offset window reaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    drain: Option<Drain>,
}

/// Where the source is in a second read through `POST /alerts/combined/alerts/v1`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Drain {
    /// The `after` token of its next page; `None` for its first.
    after: Option<String>,
    /// Alerts at its start still to drop: those the offset paging already read (the same sort).
    skip: usize,
}

/// Reads Falcon alerts, each version once.
pub struct CrowdStrikeAlertsSource {
    falcon: Falcon,
    overlap_ms: i64,
    lookback_ms: i64,
    page_size: usize,
    interval: Duration,
    filter: Option<String>,
    committed: Option<Cursor>,
    working: Option<Cursor>,
    /// A batch was handed over and not yet committed.
    outstanding: bool,
    /// Caught up: the next query waits until then.
    next_poll_at: Option<Instant>,
    newest_ms: Option<i64>,
    /// Details answers found unreadable in a row, to retry them a bounded number of times.
    unreadable: api::Unreadable,
}

impl CrowdStrikeAlertsSource {
    /// A source named `name` (its raw topic is `raw.<name>`).
    pub fn new(name: &str, config: CrowdStrikeAlertsConfig) -> Result<CrowdStrikeAlertsSource, CrowdStrikeConfigError> {
        if config.page_size == 0 || config.page_size > MAX_WINDOW {
            return Err(config_error("page_size", format!("it must be between 1 and {MAX_WINDOW}")));
        }
        let falcon = Falcon::new(
            name,
            "Alerts: read",
            Connection {
                cloud: config.cloud,
                base_url: config.base_url.as_deref(),
                client_id: &config.client_id,
                client_secret: &config.client_secret,
                member_cid: config.member_cid.as_deref(),
                http: &config.http,
            },
        )?;
        Ok(CrowdStrikeAlertsSource {
            falcon,
            overlap_ms: (config.overlap_secs as i64).saturating_mul(1000),
            lookback_ms: (config.start_lookback_secs as i64).saturating_mul(1000),
            page_size: config.page_size,
            interval: Duration::from_secs(config.poll_interval_secs.max(1)),
            filter: config.filter.filter(|f| !f.trim().is_empty()),
            committed: None,
            working: None,
            outstanding: false,
            next_poll_at: None,
            newest_ms: None,
            unreadable: api::Unreadable::default(),
        })
    }
}

impl CrowdStrikeAlertsSource {
    /// One page of the second `cursor.from_ms` falls in, from `POST /alerts/combined/alerts/v1`
    /// (alerts with their details, paged by an `after` token with no window limit).
    async fn poll_drain(&mut self, mut cursor: Cursor, mut drain: Drain) -> Result<SourcePoll, ComponentError> {
        let second = cursor.from_ms.div_euclid(1000) * 1000;
        let mut fql = format!(
            "updated_timestamp:>='{}'+updated_timestamp:<'{}'",
            api::fql_time(second),
            api::fql_time(second + 1000)
        );
        if let Some(filter) = &self.filter {
            fql = format!("{fql}+({filter})");
        }
        let limit = self.page_size.min(COMBINED_LIMIT);
        let mut body = serde_json::json!({ "filter": fql, "sort": "updated_timestamp.asc", "limit": limit });
        if let Some(after) = &drain.after {
            body["after"] = after.as_str().into();
        }
        let what = "POST /alerts/combined/alerts/v1";
        let request = ApiRequest::post_json(self.falcon.url("/alerts/combined/alerts/v1"), &body);
        let answer = self.falcon.client.send_page(&request, &self.falcon.auth, parse_envelope).await;
        let mut batch = RawBatch::new(&self.falcon.name, VENDOR);
        let page = match answer.map_err(|e| self.falcon.error(e))? {
            Ok((_, page)) => page,
            Err((response, reason)) => {
                // Like an unreadable query page: nothing taken, the cursor stays, the same page
                // is asked again after the interval.
                batch.reject(format!("crowdstrike {what}: HTTP {}: {reason}", response.status), &response.body);
                self.next_poll_at = Some(Instant::now() + self.interval);
                self.outstanding = true;
                return Ok(SourcePoll::Batch(batch.finish(save_cursor(&cursor))));
            }
        };
        if let Some(errors) = &page.errors {
            reject_partial(&mut batch, what, errors);
        }
        let skip = drain.skip.min(page.resources.len());
        drain.skip -= skip;
        let newest = take_alerts(&mut batch, &mut cursor.recent, what, &page.resources[skip..]);
        self.unreadable.clear();
        if let Some(n) = newest {
            cursor.high_water_ms = Some(cursor.high_water_ms.map_or(n, |hw| hw.max(n)));
        }
        match page.pagination.after.filter(|a| !a.is_empty()) {
            Some(after) if page.resources.len() >= limit => {
                drain.after = Some(after);
                cursor.drain = Some(drain);
            }
            _ => {
                // The second is read: the query endpoint goes on from the next one.
                cursor.drain = None;
                cursor.from_ms = second + 1000;
                cursor.offset = 0;
            }
        }
        Ok(self.hand_over(batch, cursor))
    }

    /// Hands `batch` over with `cursor`, or reports idle when there is nothing new.
    fn hand_over(&mut self, batch: RawBatch, cursor: Cursor) -> SourcePoll {
        if let Some(ms) = batch.newest_event_ms() {
            self.newest_ms = Some(self.newest_ms.map_or(ms, |n| n.max(ms)));
        }
        let unchanged = self.working.as_ref().is_some_and(|w| {
            w.from_ms == cursor.from_ms
                && w.offset == cursor.offset
                && w.high_water_ms == cursor.high_water_ms
                && w.drain == cursor.drain
        });
        if batch.is_empty() && unchanged {
            return SourcePoll::Idle(self.interval);
        }
        self.working = Some(cursor.clone());
        self.outstanding = true;
        SourcePoll::Batch(batch.finish(save_cursor(&cursor)))
    }
}

#[async_trait]
impl Source for CrowdStrikeAlertsSource {
    async fn open(&mut self, committed_cursor: Option<String>) -> Result<(), ComponentError> {
        let cursor = match load_cursor::<Cursor>(&self.falcon.name, committed_cursor)? {
            Some(mut cursor) => {
                cursor.recent = std::mem::take(&mut cursor.recent).with_capacity(RECENT_IDS);
                cursor
            }
            None => Cursor {
                from_ms: now_ms() - self.lookback_ms,
                offset: 0,
                high_water_ms: None,
                recent: RecentIds::new(RECENT_IDS),
                drain: None,
            },
        };
        self.committed = Some(cursor.clone());
        self.working = Some(cursor);
        self.outstanding = false;
        self.next_poll_at = None;
        self.unreadable.clear();
        Ok(())
    }

    async fn poll(&mut self) -> Result<SourcePoll, ComponentError> {
        if self.outstanding {
            // The last batch was never committed: read it again.
            self.working = self.committed.clone();
            self.outstanding = false;
        }
        if let Some(at) = self.next_poll_at {
            let now = Instant::now();
            if at > now {
                return Ok(SourcePoll::Idle(at - now));
            }
        }
        let Some(mut cursor) = self.working.clone() else {
            return Err(ComponentError::fatal(format!("source {}: polled before it was opened", self.falcon.name)));
        };
        if let Some(drain) = cursor.drain.clone() {
            return self.poll_drain(cursor, drain).await;
        }
        let mut fql = format!("updated_timestamp:>='{}'", api::fql_time(cursor.from_ms));
        if let Some(filter) = &self.filter {
            fql = format!("{fql}+({filter})");
        }
        let limit = self.page_size.min(MAX_WINDOW.saturating_sub(cursor.offset)).max(1);
        let mut url = self.falcon.url("/alerts/queries/alerts/v2");
        url.query_pairs_mut()
            .append_pair("filter", &fql)
            .append_pair("sort", "updated_timestamp.asc")
            .append_pair("offset", &cursor.offset.to_string())
            .append_pair("limit", &limit.to_string());
        let what = "GET /alerts/queries/alerts/v2";
        let answer = self.falcon.client.send_page(&ApiRequest::get(url), &self.falcon.auth, parse_envelope).await;
        let mut batch = RawBatch::new(&self.falcon.name, VENDOR);
        let page = match answer.map_err(|e| self.falcon.error(e))? {
            Ok((_, page)) => page,
            Err((response, reason)) => {
                // Nothing can be taken from it; the same query runs again after the interval.
                batch.reject(format!("crowdstrike {what}: HTTP {}: {reason}", response.status), &response.body);
                self.next_poll_at = Some(Instant::now() + self.interval);
                self.outstanding = true;
                return Ok(SourcePoll::Batch(batch.finish(save_cursor(&cursor))));
            }
        };
        if let Some(errors) = &page.errors {
            reject_partial(&mut batch, what, errors);
        }
        let ids = api::ids(&mut batch, what, &page.resources);
        let full_page = page.resources.len() >= limit;
        let mut newest: Option<i64> = None;
        for (chunk_no, chunk) in ids.chunks(DETAILS_CHUNK).enumerate() {
            // Keyed by query position, not ids, so new alerts arriving cannot reset the count of
            // unreadable answers and stall the source.
            let at = format!("{}/{}/{chunk_no}", cursor.from_ms, cursor.offset);
            let read =
                self.falcon.take_details(&mut self.unreadable, &mut batch, &mut cursor.recent, &ALERT, chunk, at);
            // Nothing of this poll was kept on an error (`cursor` is a copy, `self` untouched but
            // for the count): the runner backs off and polls this page again.
            if let Some(n) = read.await? {
                newest = Some(newest.map_or(n, |m| m.max(n)));
            }
        }
        self.unreadable.clear();
        if let Some(n) = newest {
            cursor.high_water_ms = Some(cursor.high_water_ms.map_or(n, |hw| hw.max(n)));
        }
        if full_page {
            // A backlog: go on from the newest time of this page (FQL times are whole seconds,
            // so the page's last second is asked again and its repeats dropped); when the whole
            // page fell inside one second, go on by offset instead.
            match newest {
                Some(n) if n.div_euclid(1000) > cursor.from_ms.div_euclid(1000) => {
                    cursor.from_ms = n;
                    cursor.offset = 0;
                }
                _ => {
                    cursor.offset += page.resources.len();
                    if cursor.offset >= MAX_WINDOW {
                        // More than 10,000 alerts share this second (a bulk status change): the
                        // query endpoint refuses a larger offset (HTTP 400), so the rest of the
                        // second is read through the combined endpoint, which pages by token.
                        cursor.drain = Some(Drain { after: None, skip: cursor.offset });
                        cursor.offset = 0;
                    }
                }
            }
        } else {
            // Caught up: the next poll looks back `overlap_secs` before the newest update seen, for
            // alerts indexed late; what it finds again is dropped.
            if let Some(hw) = cursor.high_water_ms {
                cursor.from_ms = hw - self.overlap_ms;
            }
            cursor.offset = 0;
            self.next_poll_at = Some(Instant::now() + self.interval);
        }
        Ok(self.hand_over(batch, cursor))
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

/// Alerts change (status, assignee): each version is an event of its own, once.
const ALERT: Versioned = Versioned {
    kind: "alert",
    id_field: "composite_id",
    time_field: "updated_timestamp",
    details_path: "/alerts/entities/alerts/v2",
    ids_field: "composite_ids",
};

/// Turns the alerts in `resources` (an answer of `what`) into events, each version once.
fn take_alerts(batch: &mut RawBatch, recent: &mut RecentIds, what: &str, resources: &[Box<RawValue>]) -> Option<i64> {
    take_versions(batch, recent, what, &ALERT, resources)
}
