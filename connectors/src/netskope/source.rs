//! The `netskope` source itself: one dataexport iterator per configured endpoint, polled round
//! robin, each recovered with `operation=resend` when it is unknown whether a page was kept.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::time::Instant;
use url::Url;
use weir_schemas::component::{ComponentError, Source, SourceBatch, SourcePoll, SourceStats};
use weir_schemas::net::truncate_reason;

use super::config::{ALERT_TYPES, EVENT_TYPES};
use super::NetskopeConfig;
use crate::batch::{now_ms, quote, split_array, RawBatch};
use crate::cursor::{load_cursor, save_cursor, RecentIds};
use crate::http::{ApiClient, ApiError, ApiRequest, ApiResponse, HeaderAuth};

/// The vendor name on raw envelopes (the normalizer dispatches on it).
const VENDOR: &str = "netskope";

/// Event ids remembered per endpoint, to drop an event handed out twice.
const RECENT_IDS: usize = 1000;

/// How many times one poll recovers from an unsure request before it gives up for now.
const MAX_RECOVERIES: u32 = 3;

/// Why a `netskope` source cannot be built from its configuration.
pub type NetskopeConfigError = crate::InvalidOption;

fn config_error(option: &'static str, reason: impl Into<String>) -> NetskopeConfigError {
    crate::InvalidOption::new(option, reason)
}

/// Where one endpoint's iterator is, as committed with a batch.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct EndpointCursor {
    /// Whether the iterator was started (`operation=<epoch>` answered and committed); from then on
    /// the server holds the position and only `next`/`resend` are used.
    started: bool,
    /// The last page committed, to recognise it when `resend` hands it out again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_page: Option<PageFingerprint>,
    /// `_id`s of the most recent events, to drop one handed out twice.
    #[serde(default)]
    recent: RecentIds,
}

/// What identifies a page: its first and last `_id` and its size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct PageFingerprint {
    first: String,
    last: String,
    count: usize,
}

/// The source's cursor: one entry per endpoint (`events/page`, `alerts/dlp`, ...).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cursor {
    endpoints: BTreeMap<String, EndpointCursor>,
}

/// One iterator endpoint.
struct Endpoint {
    /// `events/page`, `alerts/dlp`: the cursor key and the name in messages.
    key: String,
    url: Url,
    /// As last committed.
    committed: EndpointCursor,
    /// As of the last batch handed over (equal to `committed` once the runner committed it).
    working: EndpointCursor,
    /// Ask `operation=resend` next: after a restart or an unsure request, the page the server
    /// last sent may not be durable.
    resend: bool,
    /// Not before this instant (`wait_time`, caught up).
    ready_at: Instant,
}

/// One page, read.
enum Page {
    /// `{"ok":1,"result":[...]}`.
    Events { items: Vec<Box<RawValue>>, wait: Option<Duration> },
    /// A JSON answer that is not a page (`ok` ≠ 1, an error object): the server's words.
    Refused(String),
}

/// What every event needs for its envelope.
#[derive(Deserialize)]
struct EventMeta {
    #[serde(rename = "_id")]
    id: Option<serde_json::Value>,
    timestamp: Option<serde_json::Number>,
}

/// Reads Netskope's dataexport iterators (events and alerts).
pub struct NetskopeSource {
    name: String,
    client: ApiClient,
    auth: HeaderAuth,
    index: String,
    lookback_secs: u64,
    idle: Duration,
    endpoints: Vec<Endpoint>,
    /// The endpoint to try first on the next poll.
    turn: usize,
    /// The endpoint whose batch was handed over and not yet committed.
    outstanding: Option<usize>,
    /// The epoch the iterators that are not started yet start from (fixed for this run, so a
    /// repeated start asks for the same time).
    start_epoch: u64,
    newest_ms: Option<i64>,
}

impl NetskopeSource {
    /// A source named `name` (its raw topic is `raw.<name>`).
    pub fn new(name: &str, config: NetskopeConfig) -> Result<NetskopeSource, NetskopeConfigError> {
        let base = Url::parse(&config.base_url)
            .map_err(|e| config_error("base_url", format!("{:?} is not a URL: {e}", config.base_url)))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(config_error("base_url", "it must be an http(s) URL such as https://<tenant>.goskope.com"));
        }
        let index = config.index.trim().to_string();
        if index.is_empty() || index.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(config_error(
                "index",
                "it must be a non-empty name without spaces, unique to this source (Netskope keeps the \
                 read position per endpoint and index)",
            ));
        }
        if config.event_types.is_empty() && config.alert_types.is_empty() {
            return Err(config_error("event_types", "list at least one event type or alert type (alert_types)"));
        }
        let mut endpoints: Vec<Endpoint> = Vec::new();
        let lists = [
            ("event_types", "events", &config.event_types, EVENT_TYPES),
            ("alert_types", "alerts", &config.alert_types, ALERT_TYPES),
        ];
        for (option, family, types, known) in lists {
            for kind in types {
                if !known.contains(&kind.as_str()) {
                    return Err(config_error(option, format!("unknown type {:?}; known: {}", kind, known.join(", "))));
                }
                let key = format!("{family}/{kind}");
                if endpoints.iter().any(|e| e.key == key) {
                    return Err(config_error(option, format!("{kind:?} is listed twice")));
                }
                let mut url = base.clone();
                let path = format!("{}/api/v2/events/dataexport/{family}/{kind}", base.path().trim_end_matches('/'));
                url.set_path(&path);
                url.set_query(None);
                endpoints.push(Endpoint {
                    key,
                    url,
                    committed: EndpointCursor::default(),
                    working: EndpointCursor::default(),
                    resend: false,
                    ready_at: Instant::now(),
                });
            }
        }
        let client = ApiClient::new(&config.http).map_err(|e| config_error("http", e.to_string()))?;
        let auth = HeaderAuth::new("netskope-api-token", "", &config.api_token)
            .map_err(|e| config_error("api_token", e.to_string()))?;
        Ok(NetskopeSource {
            name: name.to_string(),
            client,
            auth,
            index,
            lookback_secs: config.start_lookback_secs,
            idle: Duration::from_secs(config.idle_secs.max(1)),
            endpoints,
            turn: 0,
            outstanding: None,
            start_epoch: 0,
            newest_ms: None,
        })
    }

    /// The cursor that follows the batch being handed over.
    fn cursor(&self) -> String {
        let endpoints = self.endpoints.iter().map(|e| (e.key.clone(), e.working.clone())).collect();
        save_cursor(&Cursor { endpoints })
    }

    /// A failed request as the runner's error; refused credentials name the option to fix.
    fn api_error(&self, endpoint: usize, error: ApiError) -> ComponentError {
        match &error {
            ApiError::Unauthorized { .. } => ComponentError::fatal(format!(
                "source {}: {error}; check `api_token`: it must be a valid REST API v2 token scoped for {}",
                self.name,
                self.endpoints[endpoint].url.path()
            )),
            _ => error.for_source(&self.name),
        }
    }

    /// Reads endpoint `i` once (recovering with `resend` when needed): a batch to hand over, or
    /// `None` when it has nothing new for now.
    async fn read(&mut self, i: usize) -> Result<Option<SourceBatch>, ComponentError> {
        let mut recoveries = 0;
        loop {
            let endpoint = &self.endpoints[i];
            let operation = if !endpoint.working.started {
                self.start_epoch.to_string()
            } else if endpoint.resend {
                "resend".to_string()
            } else {
                "next".to_string()
            };
            let mut url = endpoint.url.clone();
            url.query_pairs_mut().append_pair("index", &self.index).append_pair("operation", &operation);
            let mut request = ApiRequest::get(url);
            // An epoch or `next` moves the server-side cursor as soon as the server answers: never
            // send one again blindly, recover with `resend` instead. `resend` moves nothing.
            if operation != "resend" {
                request = request.not_repeatable();
            }
            let where_ = format!("netskope {} (operation={operation})", endpoint.key);
            let answer = self.client.send_page(&request, &self.auth, parse_page).await;
            let endpoint = &mut self.endpoints[i];
            let (items, wait) = match answer {
                Err(ApiError::Unsure { reason, .. }) => {
                    recoveries += 1;
                    tracing::warn!(source = %self.name, endpoint = %endpoint.key, %operation, %reason,
                        "unsure whether the server moved its cursor; recovering with operation=resend");
                    // An iterator that never started is simply started again at the same time.
                    endpoint.resend = endpoint.working.started;
                    if recoveries >= MAX_RECOVERIES {
                        return Err(ComponentError::retryable(format!(
                            "source {}: {where_}: {reason}; will recover with operation=resend",
                            self.name
                        )));
                    }
                    continue;
                }
                Err(error) => return Err(self.api_error(i, error)),
                Ok(Err((response, reason))) => {
                    // Only `resend` is repeated, so this is the page the server keeps re-sending,
                    // still unreadable: keep its bytes in the dead-letter topic and move on.
                    endpoint.resend = false;
                    endpoint.working.last_page = None;
                    let mut batch = RawBatch::new(&self.name, VENDOR);
                    batch.reject(
                        format!(
                            "{where_}: HTTP {}: {reason}; the page was dead-lettered and reading goes on with \
                             operation=next",
                            response.status
                        ),
                        &response.body,
                    );
                    return Ok(Some(batch.finish(self.cursor())));
                }
                Ok(Ok((_, Page::Refused(message)))) => {
                    // Whatever the server did, `resend` is always safe.
                    endpoint.resend = endpoint.working.started;
                    return Err(ComponentError::retryable(format!(
                        "source {}: {where_}: the server did not return a page: {message}",
                        self.name
                    )));
                }
                Ok(Ok((_, Page::Events { items, wait }))) => (items, wait),
            };
            let was_resend = operation == "resend";
            let was_start = !endpoint.working.started;
            endpoint.working.started = true;
            endpoint.resend = false;
            if items.is_empty() {
                // Caught up (or nothing to resend): wait as told, or `idle` when not told.
                if was_resend {
                    continue;
                }
                endpoint.ready_at = Instant::now() + wait.filter(|w| !w.is_zero()).unwrap_or(self.idle);
                if was_start {
                    // Keep the iterator's start durable, so a restart does not start it again later.
                    return Ok(Some(RawBatch::new(&self.name, VENDOR).finish(self.cursor())));
                }
                return Ok(None);
            }
            endpoint.ready_at = Instant::now() + wait.unwrap_or(Duration::ZERO);
            // Read every event's id and time first: the page's fingerprint needs them.
            let mut events = Vec::with_capacity(items.len());
            let mut rejects = Vec::new();
            for (n, item) in items.iter().enumerate() {
                match event_meta(item) {
                    Ok((id, event_ms)) => events.push((id, event_ms, item)),
                    Err(why) => rejects.push((format!("{where_}: result[{n}]: {why}"), item)),
                }
            }
            let fingerprint = match (events.first(), events.last()) {
                (Some((first, ..)), Some((last, ..))) => {
                    Some(PageFingerprint { first: first.clone(), last: last.clone(), count: items.len() })
                }
                _ => None,
            };
            if was_resend && fingerprint.is_some() && fingerprint == endpoint.working.last_page {
                // The page sent last is the one already committed: nothing was lost.
                tracing::debug!(source = %self.name, endpoint = %endpoint.key, "the resent page was already durable");
                continue;
            }
            let mut batch = RawBatch::new(&self.name, VENDOR);
            for (reason, item) in rejects {
                batch.reject(reason, item.get().as_bytes());
            }
            for (id, event_ms, item) in events {
                // A resent page that was lost may still hold events delivered before.
                if endpoint.working.recent.insert(&id) {
                    batch.event(&id, event_ms, item.get().as_bytes());
                }
            }
            if fingerprint.is_some() {
                endpoint.working.last_page = fingerprint;
            }
            if let Some(ms) = batch.newest_event_ms() {
                self.newest_ms = Some(self.newest_ms.map_or(ms, |n| n.max(ms)));
            }
            return Ok(Some(batch.finish(self.cursor())));
        }
    }
}

/// An event's `_id` and time (`timestamp`, epoch seconds, as milliseconds), or why it has none.
fn event_meta(item: &RawValue) -> Result<(String, Option<i64>), String> {
    let meta: EventMeta = serde_json::from_str(item.get()).map_err(|e| format!("not a JSON object: {e}"))?;
    let id = match meta.id {
        Some(serde_json::Value::String(s)) if !s.is_empty() => s,
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(other) => return Err(format!("`_id` is not a string: {}", quote(&other.to_string()))),
        None => return Err("the event has no `_id`".into()),
    };
    let event_ms = meta.timestamp.and_then(|t| t.as_f64()).filter(|s| s.is_finite()).map(|s| (s * 1000.0) as i64);
    Ok((id, event_ms))
}

/// Reads a dataexport answer.
fn parse_page(response: &ApiResponse) -> Result<Page, String> {
    #[derive(Deserialize)]
    struct Body {
        ok: Option<serde_json::Value>,
        result: Option<Box<RawValue>>,
        wait_time: Option<serde_json::Number>,
    }
    let body: Body = response.json()?;
    let ok = body.ok.as_ref().and_then(serde_json::Value::as_i64);
    if ok != Some(1) {
        let shown = body.ok.map_or("(missing)".to_string(), |v| v.to_string());
        return Ok(Page::Refused(format!("`ok` is {shown}: {}", truncate_reason(&response.body))));
    }
    let Some(result) = body.result else {
        return Ok(Page::Refused(format!("no `result`: {}", truncate_reason(&response.body))));
    };
    let items = split_array(result.get().as_bytes()).map_err(|e| format!("`result`: {e}"))?;
    let wait = body
        .wait_time
        .and_then(|w| w.as_f64())
        .filter(|w| w.is_finite() && *w >= 0.0)
        .map(|w| Duration::from_secs_f64(w.min(3600.0)));
    Ok(Page::Events { items, wait })
}

#[async_trait]
impl Source for NetskopeSource {
    async fn open(&mut self, committed_cursor: Option<String>) -> Result<(), ComponentError> {
        let mut cursor: Cursor = load_cursor(&self.name, committed_cursor)?.unwrap_or_default();
        for endpoint in &mut self.endpoints {
            let mut state = cursor.endpoints.remove(&endpoint.key).unwrap_or_default();
            state.recent = std::mem::take(&mut state.recent).with_capacity(RECENT_IDS);
            // After a restart the page the server sent last may not have been made durable.
            endpoint.resend = state.started;
            endpoint.committed = state.clone();
            endpoint.working = state;
            endpoint.ready_at = Instant::now();
        }
        for key in cursor.endpoints.keys() {
            tracing::warn!(source = %self.name, endpoint = %key, "the cursor holds an endpoint no longer configured; it is dropped");
        }
        self.start_epoch = ((now_ms() / 1000).max(0) as u64).saturating_sub(self.lookback_secs);
        self.outstanding = None;
        Ok(())
    }

    async fn poll(&mut self) -> Result<SourcePoll, ComponentError> {
        if let Some(i) = self.outstanding.take() {
            // The last batch was never committed: go back to the committed state and let
            // `resend` find out whether the server moved on.
            let endpoint = &mut self.endpoints[i];
            endpoint.working = endpoint.committed.clone();
            endpoint.resend = endpoint.working.started;
        }
        let count = self.endpoints.len();
        let first = self.turn;
        for step in 0..count {
            let i = (first + step) % count;
            if self.endpoints[i].ready_at > Instant::now() {
                continue;
            }
            self.turn = (i + 1) % count;
            if let Some(batch) = self.read(i).await? {
                self.outstanding = Some(i);
                return Ok(SourcePoll::Batch(batch));
            }
        }
        let now = Instant::now();
        let wait = self.endpoints.iter().map(|e| e.ready_at.saturating_duration_since(now)).min().unwrap_or(self.idle);
        Ok(SourcePoll::Idle(wait.max(Duration::from_millis(10))))
    }

    async fn committed(&mut self, _cursor: Option<&str>) -> Result<(), ComponentError> {
        if let Some(i) = self.outstanding.take() {
            let endpoint = &mut self.endpoints[i];
            endpoint.committed = endpoint.working.clone();
        }
        Ok(())
    }

    fn stats(&self) -> SourceStats {
        SourceStats { retries: self.client.retries(), cursor_time_ms: self.newest_ms }
    }
}
