//! The `okta` source: the System Log (`GET /api/v1/logs`), polled by following `next` links.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use time::OffsetDateTime;
use url::Url;
use weir_schemas::component::{ComponentError, Source, SourcePoll, SourceStats};

use super::config::{Connected, OktaConfigError, OktaSystemLogConfig, SystemLogOptions, MAX_LOOKBACK_SECS};
use super::{okta_time, page_position, timestamp_ms, VENDOR};
use crate::batch::{quote, split_array, RawBatch};
use crate::cursor::{load_cursor, save_cursor, RecentIds};
use crate::http::ApiRequest;

/// How many recent event `uuid`s the cursor remembers to drop Okta's redeliveries (about 40
/// bytes each in the cursor).
const RECENT_IDS: usize = 1000;

/// The scope a service app needs for the System Log.
const SCOPES: &str = "okta.logs.read";

/// Where the System Log is read from: what the runner persists after each batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct LogCursor {
    /// The page to fetch next: the last `Link: rel="next"` URL, verbatim (it carries Okta's
    /// opaque `after`), or the first polling request.
    next: String,
    /// `uuid`s of the most recent events, to drop the ones Okta hands out again.
    recent: RecentIds,
    /// The newest `published` seen, ms since the Unix epoch (how far the source has read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    newest_ms: Option<i64>,
}

/// Polls an Okta org's System Log; see the module docs of [`super`] for the guarantees.
pub struct OktaSystemLogSource {
    name: String,
    options: SystemLogOptions,
    okta: Connected,
    /// Where the last committed batch left off (None before `open`).
    state: Option<LogCursor>,
    /// The cursor of the batch handed out and not committed yet.
    pending: Option<LogCursor>,
}

impl OktaSystemLogSource {
    /// A source named `name` (its raw topic is `raw.<name>`).
    pub fn new(name: &str, config: OktaSystemLogConfig) -> Result<Self, OktaConfigError> {
        let options = config.options;
        if options.limit == 0 || options.limit > 1000 {
            return Err(OktaConfigError {
                option: "limit",
                reason: format!("{} is not within 1–1000 (Okta's bounds)", options.limit),
            });
        }
        if options.start_lookback_secs > MAX_LOOKBACK_SECS {
            return Err(OktaConfigError {
                option: "start_lookback_secs",
                reason: format!(
                    "{} s is more than 180 days back, which Okta refuses (and it keeps only 90 days)",
                    options.start_lookback_secs
                ),
            });
        }
        let okta = config.connection.connect(SCOPES)?;
        Ok(OktaSystemLogSource { name: name.to_string(), options, okta, state: None, pending: None })
    }

    /// The first polling request: `since` = now - `start_lookback_secs`, ascending, no `until`.
    fn first_url(&self) -> Url {
        let since = OffsetDateTime::now_utc() - Duration::from_secs(self.options.start_lookback_secs);
        let mut url = self.okta.url("api/v1/logs");
        url.query_pairs_mut()
            .append_pair("since", &okta_time(since))
            .append_pair("limit", &self.options.limit.to_string())
            .append_pair("sortOrder", "ASCENDING");
        url
    }

    fn fatal(&self, reason: impl std::fmt::Display) -> ComponentError {
        ComponentError::fatal(format!("source {}: {reason}", self.name))
    }

    /// Adds one element of a page to the batch, or dead-letters it.
    fn take(&self, batch: &mut RawBatch, cursor: &mut LogCursor, index: usize, event: &RawValue, page: &str) {
        let problem = match serde_json::from_str::<Value>(event.get()) {
            Ok(Value::Object(fields)) => match fields.get("uuid").and_then(Value::as_str).filter(|u| !u.is_empty()) {
                Some(uuid) => {
                    if !cursor.recent.insert(uuid) {
                        tracing::debug!(source = %self.name, uuid = %quote(uuid), "dropped a repeated event");
                        return;
                    }
                    let time = fields.get("published").and_then(Value::as_str).and_then(timestamp_ms);
                    if let Some(ms) = time {
                        cursor.newest_ms = Some(cursor.newest_ms.map_or(ms, |n| n.max(ms)));
                    }
                    batch.event(uuid, time, event.get().as_bytes());
                    return;
                }
                None => "has no `uuid` string",
            },
            Ok(_) => "is not a JSON object",
            Err(_) => "is not JSON",
        };
        batch.reject(format!("okta system log: event {index} of the page {page} {problem}"), event.get().as_bytes());
    }
}

#[async_trait]
impl Source for OktaSystemLogSource {
    async fn open(&mut self, committed_cursor: Option<String>) -> Result<(), ComponentError> {
        let cursor = match load_cursor::<LogCursor>(&self.name, committed_cursor)? {
            Some(cursor) => {
                // A cursor from another org (base_url changed) must not send our token there.
                self.okta.same_origin(&cursor.next).map_err(|reason| {
                    self.fatal(format_args!(
                        "the committed cursor: {reason}; was `base_url` changed? Reset the cursor with \
                         `weir state reset-cursor {}`",
                        self.name
                    ))
                })?;
                LogCursor { recent: cursor.recent.with_capacity(RECENT_IDS), ..cursor }
            }
            None => {
                LogCursor { next: self.first_url().to_string(), recent: RecentIds::new(RECENT_IDS), newest_ms: None }
            }
        };
        self.state = Some(cursor);
        self.pending = None;
        Ok(())
    }

    async fn poll(&mut self) -> Result<SourcePoll, ComponentError> {
        // A batch handed out and never committed is read again from the committed cursor.
        self.pending = None;
        let Some(state) = self.state.clone() else { return Err(self.fatal("polled before it was opened")) };
        let url = self.okta.same_origin(&state.next).map_err(|reason| self.fatal(reason))?;
        let page = format!("GET {}{} ({})", url.origin().ascii_serialization(), url.path(), page_position(&url));
        let request = ApiRequest::get(url);
        let outcome = self
            .okta
            .client
            .send_page(&request, &*self.okta.auth, |response| split_array(&response.body))
            .await
            .map_err(|e| self.okta.error(&self.name, e))?;
        let mut cursor = state;
        let mut batch = RawBatch::new(&self.name, VENDOR);
        let (response, events) = match outcome {
            Ok((response, events)) => {
                for (index, event) in events.iter().enumerate() {
                    self.take(&mut batch, &mut cursor, index, event, &page);
                }
                (response, Some(events.len()))
            }
            Err((response, reason)) => {
                batch.reject(
                    format!("okta system log: the page {page} could not be read ({reason}); skipped via its next link"),
                    &response.body,
                );
                (response, None)
            }
        };
        match response.next_link() {
            Some(link) => {
                let next = self.okta.same_origin(&link).map_err(|reason| self.fatal(reason))?;
                cursor.next = next.to_string();
            }
            // Polling pages always have one; without it the same page is asked again (its events
            // are dropped as repeats), except an unreadable page, which cannot be skipped.
            None if events.is_none() => {
                return Err(ComponentError::retryable(format!(
                    "source {}: the page {page} could not be read and has no next link to skip it by",
                    self.name
                )));
            }
            None => tracing::warn!(source = %self.name, %page, "Okta sent a polling page without a next link"),
        }
        if events == Some(0) {
            // Caught up: Okta's next link for an empty page is where new events will appear.
            // Nothing to make durable, so it is kept in memory only (re-asking the old one after a
            // restart is harmless).
            if let Some(state) = &mut self.state {
                state.next = cursor.next;
            }
            return Ok(SourcePoll::Idle(Duration::from_secs(self.options.poll_interval_secs)));
        }
        let text = save_cursor(&cursor);
        self.pending = Some(cursor);
        Ok(SourcePoll::Batch(batch.finish(text)))
    }

    async fn committed(&mut self, _cursor: Option<&str>) -> Result<(), ComponentError> {
        if let Some(pending) = self.pending.take() {
            self.state = Some(pending);
        }
        Ok(())
    }

    fn stats(&self) -> SourceStats {
        SourceStats {
            retries: self.okta.client.retries(),
            cursor_time_ms: self.state.as_ref().and_then(|s| s.newest_ms),
        }
    }
}
