//! The `aws_cloudtrail` source: CloudTrail `LookupEvents` in overlapping time windows.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use url::Url;
use weir_schemas::component::{ComponentError, Source, SourcePoll, SourceStats};

use super::CloudTrailConfig;
use crate::batch::{quote, RawBatch};
use crate::http::{ApiClient, ApiError, ApiRequest, ApiResponse, SigV4Auth};
use crate::window::{Next, WindowState};

/// The vendor name on the envelopes (what `normalize` dispatches on).
const VENDOR: &str = "aws";

/// The JSON 1.1 operation name of LookupEvents.
const TARGET: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents";

/// LookupEvents' largest page.
const MAX_RESULTS: u32 = 50;

/// Why an `aws_cloudtrail` source cannot be built.
pub type CloudTrailError = crate::InvalidOption;

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
    windows: WindowState,
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
        let windows = WindowState::new(config.dedupe_ids);
        Ok(CloudTrailSource { name: name.to_string(), config, url, client, auth, windows })
    }

    /// Uses `clock` (ms since the Unix epoch) instead of the system clock to place windows.
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.windows.clock = Arc::new(clock);
        self
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
        self.windows.open(&self.name, committed_cursor, self.config.dedupe_ids)
    }

    async fn poll(&mut self) -> Result<SourcePoll, ComponentError> {
        let mut window = match self.windows.window(&self.config.window_options()) {
            Ok(window) => window,
            Err(wait) => return Ok(SourcePoll::Idle(wait)),
        };
        let mut body = serde_json::json!({
            "StartTime": window.start_ms / 1000,
            "EndTime": window.end_ms / 1000,
            "MaxResults": MAX_RESULTS,
        });
        if let Some(token) = &window.page_token {
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
            if window.page_token.is_some() { ", a later page" } else { ", first page" }
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
                Next::after(page.next_token)
            }
            Err((response, reason)) => {
                let broken = window.broken_page();
                batch.reject(format!("source {}: {where_}: {reason}; {}", self.name, broken.note), &response.body);
                if broken.next == Next::Again {
                    // Neither the page nor its NextToken can be read. Every event newer than the
                    // oldest one read so far came in an earlier page, so read the window again
                    // from its first page, ending there: nothing is skipped, and repeats are
                    // dropped.
                    window.original_end_ms.get_or_insert(window.end_ms);
                    if let Some(oldest) = window.oldest_ms {
                        // Whole seconds, inclusive of the oldest event's second.
                        window.end_ms = window.end_ms.min((oldest.div_euclid(1000) + 1) * 1000);
                    }
                }
                broken.next
            }
        };
        Ok(self.windows.page_read(batch, window, next))
    }

    fn stats(&self) -> SourceStats {
        SourceStats { retries: self.client.retries(), cursor_time_ms: self.windows.newest_ms }
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
        if !self.windows.cursor.recent.insert(&id) {
            tracing::debug!(source = %self.name, id = %quote(&id), "dropped an event already delivered");
            return;
        }
        batch.event(&id, parse_time_ms(head.event_time.as_ref()), record.as_bytes());
    }
}
