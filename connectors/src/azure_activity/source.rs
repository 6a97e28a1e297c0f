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
use crate::batch::{quote, RawBatch};
use crate::cursor::{load_cursor, save_cursor, RecentIds};
use crate::http::{ApiClient, ApiError, ApiRequest, OAuthClientCredentials, OAuthGrant};
use crate::window::{raise_newest, system_clock, Clock, Next, Window, WindowCursor};

/// The vendor name on the envelopes (what `normalize` dispatches on).
const VENDOR: &str = "azure";

/// The Activity Log API version.
const API_VERSION: &str = "2015-04-01";

/// Why an `azure_activity` source cannot be built.
pub type AzureActivityError = crate::InvalidOption;

/// What the source persists: one cursor per subscription id.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
struct Cursor {
    subscriptions: BTreeMap<String, WindowCursor>,
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
    clock: Clock,
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
            clock: system_clock(),
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
        let url = match &window.page_token {
            Some(link) => Url::parse(link).map_err(|e| {
                ComponentError::fatal(format!("source {}: the committed nextLink is not a URL: {e}", self.name))
            })?,
            None => self.first_url(&subscription, &window),
        };
        let where_ = format!(
            "subscription {subscription}, window {}..{}{}",
            rfc3339(window.start_ms),
            rfc3339(window.end_ms),
            if window.page_token.is_some() { ", a nextLink page" } else { ", first page" }
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
                    Some(link) if same_origin(&link, &self.base) => Next::Page(link),
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
                    None => Next::Done,
                }
            }
            Err((response, reason)) => {
                let broken = window.broken_page();
                // Neither the events nor the nextLink can be read, and the list is not documented
                // as sorted, so no time bound can tell read from unread: read the whole window
                // again from its first page (the first `MAX_BROKEN_PAGES` times; after, its rest is
                // given up). Events already delivered are dropped as repeats by
                // `recent`, which holds this subscription's last `dedupe_ids` (default 5000): a
                // window after the first spans `overlap_secs` + `poll_interval_secs` (31 minutes
                // by default), which the option's docs ask it to exceed. The window's ids are the
                // newest in `recent`, so they are all held unless the window delivered more than
                // `dedupe_ids`; then its first events are delivered again: repeated, never lost,
                // and the reason says so.
                let capacity = self.config.dedupe_ids as u64;
                let repeats = if broken.next == Next::Again && window.delivered > capacity {
                    format!(
                        "; {} events were read from it, more than dedupe_ids ({capacity}) remembers: some will be \
                         delivered again",
                        window.delivered
                    )
                } else {
                    String::new()
                };
                batch.reject(
                    format!("source {}: {where_}: {reason}; {}{repeats}", self.name, broken.note),
                    &response.body,
                );
                broken.next
            }
        };
        window.delivered += batch.len() as u64;
        at.advance(window, next);
        raise_newest(&mut self.newest_ms, &batch);
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
        let options = self.config.window_options();
        for k in 0..count {
            let index = (self.next_subscription + k) % count;
            let id = self.config.subscription_ids[index].clone();
            let planned = match self.cursor.subscriptions.get(&id) {
                Some(at) => at.window(|| now, &options),
                None => WindowCursor::default().window(|| now, &options),
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
