//! The `azure_activity` source: the Activity Log REST API in overlapping time windows, one
//! window and cursor per subscription.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use url::Url;
use weir_schemas::component::{ComponentError, Source, SourcePoll, SourceStats};

use super::AzureActivityConfig;
use crate::batch::{now_ms, quote, RawBatch};
use crate::cursor::{load_cursor, save_cursor, RecentIds};
use crate::http::{ApiClient, ApiError, ApiRequest, OAuthClientCredentials, OAuthGrant};

/// The vendor name on the envelopes (what `normalize` dispatches on).
const VENDOR: &str = "azure";

/// The Activity Log API version.
const API_VERSION: &str = "2015-04-01";

/// Why an `azure_activity` source cannot be built.
pub type AzureActivityError = crate::InvalidOption;

/// The time window being read for one subscription, ms since the Unix epoch.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct Window {
    start_ms: i64,
    end_ms: i64,
    /// The `nextLink` of the next page of this window, when it is partly read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
    /// Unreadable pages met in this window so far.
    #[serde(default, skip_serializing_if = "is_zero")]
    broken_pages: u32,
    /// Events delivered from this window so far, over every reading of it: the ids the dedupe
    /// must still hold for a reading again from the first page to repeat none of them.
    #[serde(default, skip_serializing_if = "is_zero")]
    delivered: u64,
}

fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

/// How many unreadable pages a window may meet before the rest of it is given up (and the last
/// page's body dead-lettered): each time, the window is read again from its first page.
const MAX_BROKEN_PAGES: u32 = 3;

/// Where one subscription is.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
struct SubscriptionCursor {
    /// End of the last window read to its end.
    #[serde(default)]
    done_ms: Option<i64>,
    /// The window being read.
    #[serde(default)]
    window: Option<Window>,
    /// Recently delivered `eventDataId`s.
    #[serde(default)]
    recent: RecentIds,
}

/// What the source persists: one cursor per subscription id.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
struct Cursor {
    subscriptions: BTreeMap<String, SubscriptionCursor>,
}

/// One page of `ActivityLogs_List`.
#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    value: Vec<Box<RawValue>>,
    #[serde(rename = "nextLink", default)]
    next_link: Option<String>,
}

/// What the source reads of an EventData.
#[derive(Deserialize)]
struct EventHead {
    #[serde(rename = "eventDataId", default)]
    event_data_id: Option<serde_json::Value>,
    #[serde(rename = "eventTimestamp", default)]
    event_timestamp: Option<serde_json::Value>,
}

/// Reads Azure Activity Log events (see the module docs).
pub struct AzureActivitySource {
    name: String,
    config: AzureActivityConfig,
    base: Url,
    client: ApiClient,
    auth: OAuthClientCredentials,
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    cursor: Cursor,
    /// The subscription to look at first in the next poll (round robin).
    next_subscription: usize,
    newest_ms: Option<i64>,
}

impl AzureActivitySource {
    /// A source named `name` (its raw topic is `raw.<name>`).
    pub fn new(name: &str, config: AzureActivityConfig) -> Result<Self, AzureActivityError> {
        let bad = |option, reason: String| crate::InvalidOption { option, reason };
        let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !plain(&config.tenant_id) {
            return Err(bad("tenant_id", "expected a tenant id (a GUID) or domain".into()));
        }
        if config.subscription_ids.is_empty() {
            return Err(bad("subscription_ids", "list at least one subscription".into()));
        }
        if let Some(id) = config.subscription_ids.iter().find(|id| !plain(id)) {
            return Err(bad("subscription_ids", format!("{:?} is not a subscription id (a GUID)", quote(id))));
        }
        let base = Url::parse(config.base_url.trim_end_matches('/'))
            .map_err(|e| bad("base_url", format!("{:?} is not a URL: {e}", config.base_url)))?;
        let token_url = format!("{}/{}/oauth2/v2.0/token", config.login_url.trim_end_matches('/'), config.tenant_id);
        let token_url = Url::parse(&token_url).map_err(|e| bad("login_url", format!("not a URL: {e}")))?;
        let client = ApiClient::new(&config.http).map_err(|e| bad("http", e.to_string()))?;
        let grant = OAuthGrant::ClientSecret {
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
        };
        let auth = OAuthClientCredentials::new(token_url, grant, Some(config.scope.clone()));
        Ok(AzureActivitySource {
            name: name.to_string(),
            config,
            base,
            client,
            auth,
            clock: Arc::new(now_ms),
            cursor: Cursor::default(),
            next_subscription: 0,
            newest_ms: None,
        })
    }

    /// Uses `clock` (ms since the Unix epoch) instead of the system clock to place windows.
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The window to read now for a subscription, or how long until there is one.
    fn window(&self, at: &SubscriptionCursor, now_ms: i64) -> Result<Window, Duration> {
        if let Some(window) = &at.window {
            return Ok(window.clone());
        }
        let end_ms = (now_ms - secs_ms(self.config.lag_secs)).div_euclid(1000) * 1000;
        let interval = secs_ms(self.config.poll_interval_secs.max(1));
        let start_ms = match at.done_ms {
            Some(done) if end_ms - done < interval => {
                return Err(Duration::from_millis((interval - (end_ms - done).max(0)).clamp(1000, interval) as u64));
            }
            Some(done) => done - secs_ms(self.config.overlap_secs),
            None => end_ms - secs_ms(self.config.initial_lookback_secs),
        };
        if end_ms <= start_ms {
            return Err(Duration::from_millis(interval as u64));
        }
        Ok(Window { start_ms, end_ms, next_link: None, broken_pages: 0, delivered: 0 })
    }

    /// The first page's URL of a window.
    fn first_url(&self, subscription: &str, window: &Window) -> Url {
        let mut url = self.base.clone();
        let path = format!(
            "{}/subscriptions/{subscription}/providers/Microsoft.Insights/eventtypes/management/values",
            self.base.path().trim_end_matches('/')
        );
        url.set_path(&path);
        let filter = format!(
            "eventTimestamp ge '{}' and eventTimestamp le '{}'",
            rfc3339(window.start_ms),
            rfc3339(window.end_ms)
        );
        url.query_pairs_mut().clear().append_pair("api-version", API_VERSION).append_pair("$filter", &filter);
        url
    }

    /// The error for the runner: refused credentials name the options to check.
    fn error(&self, error: ApiError) -> ComponentError {
        match &error {
            ApiError::Unauthorized { .. } => ComponentError::fatal(format!(
                "source {}: Azure refused the credentials: check tenant_id, client_id and client_secret (expired?), \
                 and that the app has Reader or Monitoring Reader on every subscription in subscription_ids: {error}",
                self.name
            )),
            _ => error.for_source(&self.name),
        }
    }

    /// Reads one page of `subscription`'s window.
    async fn read(&mut self, subscription: String, mut window: Window) -> Result<SourcePoll, ComponentError> {
        let url = match &window.next_link {
            Some(link) => Url::parse(link).map_err(|e| {
                ComponentError::fatal(format!("source {}: the committed nextLink is not a URL: {e}", self.name))
            })?,
            None => self.first_url(&subscription, &window),
        };
        let where_ = format!(
            "subscription {subscription}, window {}..{}{}",
            rfc3339(window.start_ms),
            rfc3339(window.end_ms),
            if window.next_link.is_some() { ", a nextLink page" } else { ", first page" }
        );
        let request = ApiRequest::get(url);
        let answer =
            self.client.send_page(&request, &self.auth, |r| r.json::<Page>()).await.map_err(|e| self.error(e))?;
        let mut batch = RawBatch::new(&self.name, VENDOR);
        let at = self.cursor.subscriptions.entry(subscription.clone()).or_default();
        let next = match answer {
            Ok((_, page)) => {
                for (i, event) in page.value.iter().enumerate() {
                    take(&self.name, &mut at.recent, &mut batch, event, &format!("{where_}, event {i}"));
                }
                match page.next_link.filter(|l| !l.is_empty()) {
                    Some(link) if same_origin(&link, &self.base) => Some(link),
                    Some(link) => {
                        // Following it would send the access token to another host, and skipping
                        // it would lose the rest of the window: stop, and say how to fix it.
                        return Err(ComponentError::fatal(format!(
                            "source {}: {where_}: nextLink {:?} is not on base_url's origin ({}); set base_url to \
                             the origin Azure Resource Manager links to",
                            self.name,
                            quote(&link),
                            self.base.origin().ascii_serialization()
                        )));
                    }
                    None => None,
                }
            }
            Err((response, reason)) if window.broken_pages < MAX_BROKEN_PAGES => {
                // Neither the events nor the nextLink can be read, and the list is not documented
                // as sorted, so no time bound can tell read from unread: read the whole window
                // again from its first page. Events already delivered are dropped as repeats by
                // `recent`, which holds this subscription's last `dedupe_ids` (default 5000): a
                // window after the first spans `overlap_secs` + `poll_interval_secs` (31 minutes
                // by default), which the option's docs ask it to exceed. The window's ids are the
                // newest in `recent`, so they are all held unless the window delivered more than
                // `dedupe_ids`; then its first events are delivered again: repeated, never lost,
                // and the reason says so.
                window.broken_pages += 1;
                let capacity = self.config.dedupe_ids as u64;
                let repeats = if window.delivered > capacity {
                    format!(
                        "; {} events were read from it, more than dedupe_ids ({capacity}) remembers: some will be \
                         delivered again",
                        window.delivered
                    )
                } else {
                    String::new()
                };
                batch.reject(
                    format!(
                        "source {}: {where_}: {reason}; reading the window again from its first page (attempt {} of \
                         {MAX_BROKEN_PAGES}){repeats}",
                        self.name, window.broken_pages
                    ),
                    &response.body,
                );
                window.next_link = None;
                at.window = Some(window);
                return Ok(SourcePoll::Batch(batch.finish(save_cursor(&self.cursor))));
            }
            Err((response, reason)) => {
                // The window was read again MAX_BROKEN_PAGES times and the list still breaks:
                // give up its rest rather than loop on it; the next window's overlap re-reads
                // its last `overlap_secs`.
                batch.reject(
                    format!(
                        "source {}: {where_}: {reason}; {MAX_BROKEN_PAGES} pages of this window could not be read: \
                         the rest of the window is given up",
                        self.name
                    ),
                    &response.body,
                );
                None
            }
        };
        window.delivered += batch.len() as u64;
        match next {
            Some(link) => {
                window.next_link = Some(link);
                at.window = Some(window);
            }
            None => {
                at.done_ms = Some(window.end_ms);
                at.window = None;
            }
        }
        if let Some(ms) = batch.newest_event_ms() {
            self.newest_ms = Some(self.newest_ms.map_or(ms, |n| n.max(ms)));
        }
        Ok(SourcePoll::Batch(batch.finish(save_cursor(&self.cursor))))
    }
}

/// Adds one EventData to the batch (or dead-letters it), unless it was delivered before.
fn take(name: &str, recent: &mut RecentIds, batch: &mut RawBatch, event: &RawValue, where_: &str) {
    let head: EventHead = match serde_json::from_str(event.get()) {
        Ok(head) => head,
        Err(e) => {
            return batch
                .reject(format!("source {name}: {where_}: not an Activity Log event: {e}"), event.get().as_bytes())
        }
    };
    let Some(serde_json::Value::String(id)) = head.event_data_id.filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    else {
        return batch.reject(format!("source {name}: {where_}: the event has no eventDataId"), event.get().as_bytes());
    };
    if !recent.insert(&id) {
        tracing::debug!(source = %name, id = %quote(&id), "dropped an event already delivered");
        return;
    }
    let time_ms = head
        .event_timestamp
        .as_ref()
        .and_then(|v| v.as_str())
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok());
    batch.event(&id, time_ms, event.get().as_bytes());
}

fn secs_ms(secs: u64) -> i64 {
    (secs as i64).saturating_mul(1000)
}

/// A time as `2024-01-02T03:04:05Z`.
fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// Whether `link` has the same scheme, host and port as `base`.
fn same_origin(link: &str, base: &Url) -> bool {
    Url::parse(link).is_ok_and(|link| link.origin() == base.origin())
}

#[async_trait]
impl Source for AzureActivitySource {
    async fn open(&mut self, committed_cursor: Option<String>) -> Result<(), ComponentError> {
        let mut cursor = load_cursor::<Cursor>(&self.name, committed_cursor)?.unwrap_or_default();
        // Subscriptions removed from the config are forgotten; new ones start fresh.
        cursor.subscriptions.retain(|id, _| self.config.subscription_ids.contains(id));
        for id in &self.config.subscription_ids {
            let at = cursor.subscriptions.entry(id.clone()).or_default();
            at.recent = std::mem::take(&mut at.recent).with_capacity(self.config.dedupe_ids);
        }
        self.newest_ms = cursor.subscriptions.values().filter_map(|c| c.done_ms).max();
        self.cursor = cursor;
        Ok(())
    }

    async fn poll(&mut self) -> Result<SourcePoll, ComponentError> {
        let now = (self.clock)();
        let count = self.config.subscription_ids.len();
        let mut wait = Duration::from_secs(self.config.poll_interval_secs.max(1));
        for k in 0..count {
            let index = (self.next_subscription + k) % count;
            let id = self.config.subscription_ids[index].clone();
            let planned = match self.cursor.subscriptions.get(&id) {
                Some(at) => self.window(at, now),
                None => self.window(&SubscriptionCursor::default(), now),
            };
            match planned {
                Ok(window) => {
                    self.next_subscription = (index + 1) % count;
                    return self.read(id, window).await;
                }
                Err(until) => wait = wait.min(until),
            }
        }
        Ok(SourcePoll::Idle(wait))
    }

    fn stats(&self) -> SourceStats {
        SourceStats { retries: self.client.retries(), cursor_time_ms: self.newest_ms }
    }
}
