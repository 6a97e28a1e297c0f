//! The `aws_cloudtrail` source: CloudTrail `LookupEvents` in overlapping time windows.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use url::Url;
use weir_schemas::component::{ComponentError, Source, SourcePoll, SourceStats};

use super::CloudTrailConfig;
use crate::batch::{now_ms, quote, RawBatch};
use crate::cursor::{load_cursor, save_cursor, RecentIds};
use crate::http::{ApiClient, ApiError, ApiRequest, ApiResponse, SigV4Auth};

/// The vendor name on the envelopes (what `normalize` dispatches on).
const VENDOR: &str = "aws";

/// The JSON 1.1 operation name of LookupEvents.
const TARGET: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents";

/// LookupEvents' largest page.
const MAX_RESULTS: u32 = 50;

/// A clock in ms since the Unix epoch (injectable for tests).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Why an `aws_cloudtrail` source cannot be built.
pub type CloudTrailError = crate::InvalidOption;

/// The time window being read, in ms since the Unix epoch (whole seconds: LookupEvents takes
/// seconds).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) start_ms: i64,
    pub(crate) end_ms: i64,
    /// The `NextToken` of the next page of this window, when it is partly read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) token: Option<String>,
    /// The oldest event time read in this window so far. Pages come newest first, so every
    /// event not read yet is at most this old.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) oldest_ms: Option<i64>,
    /// Unreadable pages met in this window so far.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) broken_pages: u32,
    /// The end the window had before a broken page narrowed it: what counts as read once the
    /// window is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) original_end_ms: Option<i64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How many unreadable pages a window may meet before the rest of it is given up (and the last
/// page's body dead-lettered): each time, the window is read again from its first page, ending
/// at the oldest event already read.
const MAX_BROKEN_PAGES: u32 = 3;

/// What the source persists.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
struct Cursor {
    /// End of the last window read to its end.
    #[serde(default)]
    done_ms: Option<i64>,
    /// The window being read.
    #[serde(default)]
    window: Option<Window>,
    /// Recently delivered event ids, to drop repeats from overlapping windows.
    #[serde(default)]
    recent: RecentIds,
}

/// One LookupEvents answer.
#[derive(Deserialize)]
struct Page {
    #[serde(rename = "Events", default)]
    events: Vec<Box<RawValue>>,
    #[serde(rename = "NextToken", default)]
    next_token: Option<String>,
}

/// What the source reads of one `Events` item.
#[derive(Deserialize)]
struct Item {
    #[serde(rename = "EventId", default)]
    event_id: Option<String>,
    #[serde(rename = "CloudTrailEvent", default)]
    cloudtrail_event: Option<serde_json::Value>,
}

/// What the source reads of a CloudTrail record.
#[derive(Deserialize)]
struct RecordHead {
    #[serde(rename = "eventID", default)]
    event_id: Option<serde_json::Value>,
    #[serde(rename = "eventTime", default)]
    event_time: Option<serde_json::Value>,
}

/// Reads CloudTrail management events through `LookupEvents` (see the module docs).
pub struct CloudTrailSource {
    name: String,
    config: CloudTrailConfig,
    url: Url,
    client: ApiClient,
    auth: SigV4Auth,
    clock: Clock,
    cursor: Cursor,
    newest_ms: Option<i64>,
}

impl CloudTrailSource {
    /// A source named `name` (its raw topic is `raw.<name>`).
    pub fn new(name: &str, config: CloudTrailConfig) -> Result<Self, CloudTrailError> {
        let bad = |option, reason: String| crate::InvalidOption { option, reason };
        if config.region.is_empty()
            || !config.region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(bad("region", format!("{:?} is not an AWS region name (like us-east-1)", config.region)));
        }
        if config.access_key_id.trim().is_empty() {
            return Err(bad("access_key_id", "it is empty".into()));
        }
        let base =
            config.base_url.clone().unwrap_or_else(|| format!("https://cloudtrail.{}.amazonaws.com/", config.region));
        let url = Url::parse(&base).map_err(|e| bad("base_url", format!("{base:?} is not a URL: {e}")))?;
        let client = ApiClient::new(&config.http).map_err(|e| crate::InvalidOption::new("http", e.to_string()))?;
        let auth = SigV4Auth::new(
            config.access_key_id.trim(),
            &config.secret_access_key,
            config.session_token.as_ref(),
            &config.region,
            "cloudtrail",
        );
        let recent = RecentIds::new(config.dedupe_ids);
        Ok(CloudTrailSource {
            name: name.to_string(),
            config,
            url,
            client,
            auth,
            clock: Arc::new(now_ms),
            cursor: Cursor { recent, ..Cursor::default() },
            newest_ms: None,
        })
    }

    /// Uses `clock` (ms since the Unix epoch) instead of the system clock to place windows.
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The window to read now, or how long to wait for one.
    fn window(&self) -> Result<Window, Duration> {
        if let Some(window) = &self.cursor.window {
            return Ok(window.clone());
        }
        let second = |ms: i64| ms.div_euclid(1000) * 1000;
        let end_ms = second((self.clock)() - secs_ms(self.config.lag_secs));
        let interval = secs_ms(self.config.poll_interval_secs.max(1));
        let start_ms = match self.cursor.done_ms {
            Some(done) if end_ms - done < interval => {
                return Err(Duration::from_millis((interval - (end_ms - done).max(0)).clamp(1000, interval) as u64));
            }
            Some(done) => done - secs_ms(self.config.overlap_secs),
            None => end_ms - secs_ms(self.config.initial_lookback_secs),
        };
        if end_ms <= start_ms {
            return Err(Duration::from_millis(interval as u64));
        }
        Ok(Window { start_ms, end_ms, token: None, oldest_ms: None, broken_pages: 0, original_end_ms: None })
    }

    /// The error for the runner: a refused signature names the credential options.
    fn error(&self, error: ApiError) -> ComponentError {
        let auth_refused = match &error {
            ApiError::Unauthorized { .. } => true,
            ApiError::Rejected { reason, .. } => AUTH_ERRORS.iter().any(|name| reason.contains(name)),
            _ => false,
        };
        if auth_refused {
            ComponentError::fatal(format!(
                "source {}: AWS refused the credentials: check access_key_id, secret_access_key and session_token \
                 (expired?) and that they allow cloudtrail:LookupEvents in region {}: {error}",
                self.name, self.config.region
            ))
        } else {
            error.for_source(&self.name)
        }
    }
}

/// AWS error codes that mean the credentials or signature were refused.
const AUTH_ERRORS: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "AccessDeniedException",
];

fn secs_ms(secs: u64) -> i64 {
    (secs as i64).saturating_mul(1000)
}

/// Whether a LookupEvents answer is AWS throttling (HTTP 400 with `ThrottlingException`).
fn is_throttled(response: &ApiResponse) -> bool {
    #[derive(Deserialize)]
    struct AwsError {
        #[serde(rename = "__type", default)]
        kind: String,
    }
    response.status == 400
        && response.json::<AwsError>().is_ok_and(|e| {
            let kind = e.kind.rsplit('#').next().unwrap_or_default();
            kind == "ThrottlingException" || kind == "ThrottledException" || kind == "RequestLimitExceeded"
        })
}

/// An RFC 3339 time (CloudTrail's `eventTime`) as ms since the Unix epoch.
pub(crate) fn parse_time_ms(value: Option<&serde_json::Value>) -> Option<i64> {
    let text = value?.as_str()?;
    let time = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000).ok()
}

/// A CloudTrail record's id: `eventID`.
pub(crate) fn record_id(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

#[async_trait]
impl Source for CloudTrailSource {
    async fn open(&mut self, committed_cursor: Option<String>) -> Result<(), ComponentError> {
        if let Some(cursor) = load_cursor::<Cursor>(&self.name, committed_cursor)? {
            self.cursor = Cursor { recent: cursor.recent.with_capacity(self.config.dedupe_ids), ..cursor };
        }
        self.newest_ms = self.cursor.done_ms;
        Ok(())
    }

    async fn poll(&mut self) -> Result<SourcePoll, ComponentError> {
        let mut window = match self.window() {
            Ok(window) => window,
            Err(wait) => return Ok(SourcePoll::Idle(wait)),
        };
        let mut body = serde_json::json!({
            "StartTime": window.start_ms / 1000,
            "EndTime": window.end_ms / 1000,
            "MaxResults": MAX_RESULTS,
        });
        if let Some(token) = &window.token {
            body["NextToken"] = serde_json::Value::String(token.clone());
        }
        let request = ApiRequest::post_json(self.url.clone(), &body)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", TARGET)
            .retry_when(is_throttled);
        let where_ = format!(
            "LookupEvents window {}..{} (epoch s){}",
            window.start_ms / 1000,
            window.end_ms / 1000,
            if window.token.is_some() { ", a later page" } else { ", first page" }
        );
        let answer =
            self.client.send_page(&request, &self.auth, |r| r.json::<Page>()).await.map_err(|e| self.error(e))?;
        let mut batch = RawBatch::new(&self.name, VENDOR);
        let next = match answer {
            Ok((_, page)) => {
                for (i, item) in page.events.iter().enumerate() {
                    self.take(&mut batch, item, &format!("{where_}, event {i}"));
                }
                if let Some(oldest) = batch.oldest_event_ms() {
                    window.oldest_ms = Some(window.oldest_ms.map_or(oldest, |o| o.min(oldest)));
                }
                page.next_token.filter(|t| !t.is_empty())
            }
            Err((response, reason)) if window.broken_pages < MAX_BROKEN_PAGES => {
                // Neither the page nor its NextToken can be read. Every event newer than the
                // oldest one read so far came in an earlier page, so read the window again from
                // its first page, ending there: nothing is skipped, and repeats are dropped.
                window.broken_pages += 1;
                batch.reject(
                    format!(
                        "source {}: {where_}: {reason}; reading the window again from its first page \
                         (attempt {} of {MAX_BROKEN_PAGES})",
                        self.name, window.broken_pages
                    ),
                    &response.body,
                );
                window.original_end_ms.get_or_insert(window.end_ms);
                if let Some(oldest) = window.oldest_ms {
                    // Whole seconds, inclusive of the oldest event's second.
                    window.end_ms = window.end_ms.min((oldest.div_euclid(1000) + 1) * 1000);
                }
                window.token = None;
                self.cursor.window = Some(window);
                return Ok(SourcePoll::Batch(batch.finish(save_cursor(&self.cursor))));
            }
            Err((response, reason)) => {
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
        match next {
            Some(token) => {
                window.token = Some(token);
                self.cursor.window = Some(window);
            }
            None => {
                self.cursor.done_ms = Some(window.original_end_ms.unwrap_or(window.end_ms));
                self.cursor.window = None;
            }
        }
        if let Some(ms) = batch.newest_event_ms() {
            self.newest_ms = Some(self.newest_ms.map_or(ms, |n| n.max(ms)));
        }
        Ok(SourcePoll::Batch(batch.finish(save_cursor(&self.cursor))))
    }

    fn stats(&self) -> SourceStats {
        SourceStats { retries: self.client.retries(), cursor_time_ms: self.newest_ms }
    }
}

impl CloudTrailSource {
    /// Adds one `Events` item to the batch (or dead-letters it), unless it was delivered before.
    fn take(&mut self, batch: &mut RawBatch, item: &RawValue, where_: &str) {
        let reject = |batch: &mut RawBatch, why: String, original: &[u8]| {
            batch.reject(format!("source {}: {where_}: {why}", self.name), original);
        };
        let parsed: Item = match serde_json::from_str(item.get()) {
            Ok(parsed) => parsed,
            Err(e) => {
                return reject(batch, format!("the item is not a LookupEvents event: {e}"), item.get().as_bytes())
            }
        };
        let Some(serde_json::Value::String(record)) = parsed.cloudtrail_event else {
            return reject(batch, "the item has no CloudTrailEvent string".into(), item.get().as_bytes());
        };
        let head: RecordHead = match serde_json::from_str::<RecordHead>(&record) {
            Ok(head) => head,
            Err(e) => {
                return reject(
                    batch,
                    format!("CloudTrailEvent is not a CloudTrail record (JSON object): {e}"),
                    record.as_bytes(),
                )
            }
        };
        let id = parsed.event_id.filter(|id| !id.is_empty()).or_else(|| record_id(head.event_id.as_ref()));
        let Some(id) = id else {
            return reject(batch, "the event has neither EventId nor eventID".into(), record.as_bytes());
        };
        if !self.cursor.recent.insert(&id) {
            tracing::debug!(source = %self.name, id = %quote(&id), "dropped an event already delivered");
            return;
        }
        batch.event(&id, parse_time_ms(head.event_time.as_ref()), record.as_bytes());
    }
}
