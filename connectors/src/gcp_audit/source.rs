//! The `gcp_audit` source: Cloud Logging `entries.list` in overlapping time windows.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use url::Url;
use weir_schemas::component::{ComponentError, Source, SourcePoll, SourceStats};

use super::GcpAuditConfig;
use crate::batch::{quote, RawBatch};
use crate::http::{ApiClient, ApiError, ApiRequest, JwtKey, OAuthClientCredentials, OAuthGrant, Secret};
use crate::window::{Next, WindowState};

/// The vendor name on the envelopes (what `normalize` dispatches on).
const VENDOR: &str = "gcp";

/// The OAuth scope that reads logs.
const SCOPE: &str = "https://www.googleapis.com/auth/logging.read";

/// Google's token endpoint, when the key names none.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// Why a `gcp_audit` source cannot be built. Never quotes the key.
pub type GcpAuditError = crate::InvalidOption;

/// The fields of a service-account key file the source uses.
#[derive(Deserialize)]
struct ServiceAccountKey {
    #[serde(default)]
    client_email: Option<String>,
    #[serde(default)]
    private_key: Option<String>,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

/// One `entries.list` answer.
#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    entries: Vec<Box<RawValue>>,
    #[serde(rename = "nextPageToken", default)]
    next_page_token: Option<String>,
}

/// What the source reads of a LogEntry.
#[derive(Deserialize)]
struct EntryHead {
    #[serde(rename = "logName", default)]
    log_name: Option<serde_json::Value>,
    #[serde(default)]
    timestamp: Option<serde_json::Value>,
    #[serde(rename = "insertId", default)]
    insert_id: Option<serde_json::Value>,
}

/// Reads Cloud Audit Logs entries (see the module docs).
pub struct GcpAuditSource {
    name: String,
    config: GcpAuditConfig,
    url: Url,
    client: ApiClient,
    auth: OAuthClientCredentials,
    windows: WindowState,
}

impl GcpAuditSource {
    /// A source named `name` (its raw topic is `raw.<name>`).
    pub fn new(name: &str, config: GcpAuditConfig) -> Result<Self, GcpAuditError> {
        let bad = |option, reason: String| crate::InvalidOption { option, reason };
        if config.resource_names.is_empty() || config.resource_names.len() > 100 {
            return Err(bad("resource_names", "list 1 to 100 resources (projects/P, organizations/O, ...)".into()));
        }
        // Only the kind and position of a JSON error: serde's message may quote the text read
        // (e.g. "invalid type: string \"...\"" for a key JSON encoded twice), which is the key.
        let key: ServiceAccountKey = serde_json::from_str(config.service_account_key.expose()).map_err(|e| {
            let kind = match e.classify() {
                serde_json::error::Category::Io | serde_json::error::Category::Eof => "it ends too early",
                serde_json::error::Category::Syntax => "it is not JSON",
                serde_json::error::Category::Data => "it is JSON but not a key object (encoded twice?)",
            };
            bad(
                "service_account_key",
                format!("not a service-account key file: {kind} (line {}, column {})", e.line(), e.column()),
            )
        })?;
        let (Some(email), Some(pem)) = (key.client_email, key.private_key) else {
            return Err(bad("service_account_key", "the key file has no client_email or private_key".into()));
        };
        let signer = JwtKey::from_pem(&Secret::new(pem), key.private_key_id)
            .map_err(|_| bad("service_account_key", "its private_key is not an RSA private key in PEM form".into()))?;
        let token_url = config.token_url.clone().or(key.token_uri).unwrap_or_else(|| DEFAULT_TOKEN_URI.into());
        let token_url =
            Url::parse(&token_url).map_err(|e| bad("token_url", format!("{token_url:?} is not a URL: {e}")))?;
        let base = config.base_url.trim_end_matches('/');
        let url = Url::parse(&format!("{base}/v2/entries:list"))
            .map_err(|e| bad("base_url", format!("{:?} is not a URL: {e}", config.base_url)))?;
        let client = ApiClient::new(&config.http).map_err(|e| bad("http", e.to_string()))?;
        let auth = OAuthClientCredentials::new(
            token_url,
            OAuthGrant::JwtBearer { issuer: email, key: signer },
            Some(SCOPE.to_string()),
        );
        let windows = WindowState::new(config.dedupe_ids);
        Ok(GcpAuditSource { name: name.to_string(), config, url, client, auth, windows })
    }

    /// Uses `clock` (ms since the Unix epoch) instead of the system clock to place windows.
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.windows.clock = Arc::new(clock);
        self
    }

    /// The error for the runner: refused credentials name the option to check.
    fn error(&self, error: ApiError) -> ComponentError {
        match &error {
            ApiError::Unauthorized { .. } => ComponentError::fatal(format!(
                "source {}: Google refused the credentials: check service_account_key (a disabled or deleted key?) \
                 and that the account may read logs (roles/logging.viewer) in every one of resource_names: {error}",
                self.name
            )),
            _ => error.for_source(&self.name),
        }
    }
}

/// A time as RFC 3339 (UTC, fractional seconds when not whole).
fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// A JSON value that must be a non-empty string.
fn text(value: Option<&serde_json::Value>) -> Option<&str> {
    value?.as_str().filter(|s| !s.is_empty())
}

#[async_trait]
impl Source for GcpAuditSource {
    async fn open(&mut self, committed_cursor: Option<String>) -> Result<(), ComponentError> {
        self.windows.open(&self.name, committed_cursor, self.config.dedupe_ids)
    }

    async fn poll(&mut self) -> Result<SourcePoll, ComponentError> {
        let mut window = match self.windows.window(&self.config.window_options()) {
            Ok(window) => window,
            Err(wait) => return Ok(SourcePoll::Idle(wait)),
        };
        let filter = format!(
            "logName:\"cloudaudit.googleapis.com\" AND timestamp>=\"{}\" AND timestamp<\"{}\"",
            rfc3339(window.start_ms),
            rfc3339(window.end_ms)
        );
        let mut body = serde_json::json!({
            "resourceNames": self.config.resource_names,
            "filter": filter,
            "orderBy": "timestamp asc",
            "pageSize": self.config.page_size.clamp(1, 1000),
        });
        if let Some(token) = &window.page_token {
            body["pageToken"] = serde_json::Value::String(token.clone());
        }
        let where_ = format!(
            "entries.list window {}..{}{}",
            rfc3339(window.start_ms),
            rfc3339(window.end_ms),
            if window.page_token.is_some() { ", a later page" } else { ", first page" }
        );
        let request = ApiRequest::post_json(self.url.clone(), &body);
        let answer =
            self.client.send_page(&request, &self.auth, |r| r.json::<Page>()).await.map_err(|e| self.error(e))?;
        let mut batch = RawBatch::new(&self.name, VENDOR);
        let next = match answer {
            // An empty page with a nextPageToken means the search is not finished: keep paging.
            Ok((_, page)) => {
                for (i, entry) in page.entries.iter().enumerate() {
                    // Repeats count too: an entry seen at all means every older one of this
                    // window was seen before it.
                    if let Some(ms) = self.take(&mut batch, entry, &format!("{where_}, entry {i}")) {
                        window.newest_ms = Some(window.newest_ms.map_or(ms, |n| n.max(ms)));
                    }
                }
                Next::after(page.next_page_token)
            }
            Err((response, reason)) => {
                let broken = window.broken_page();
                batch.reject(format!("source {}: {where_}: {reason}; {}", self.name, broken.note), &response.body);
                if broken.next == Next::Again {
                    // Neither the page nor its token can be read. Every entry older than the
                    // newest one read so far came in an earlier page, so read the window again
                    // from its first page, starting there: nothing is skipped, and repeats are
                    // dropped.
                    if let Some(newest) = window.newest_ms {
                        // Inclusive (`>=`): the entries of that same millisecond not read yet (the
                        // timestamps have up to nanoseconds; `newest` is floored to the millisecond).
                        window.start_ms = window.start_ms.max(newest);
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

impl GcpAuditSource {
    /// Adds one LogEntry to the batch (or dead-letters it), unless it was delivered before.
    /// Returns its time when it has an identity, whether delivered now or a repeat.
    fn take(&mut self, batch: &mut RawBatch, entry: &RawValue, where_: &str) -> Option<i64> {
        let name = &self.name;
        let head: EntryHead = match serde_json::from_str(entry.get()) {
            Ok(head) => head,
            Err(e) => {
                batch.reject(format!("source {name}: {where_}: not a LogEntry: {e}"), entry.get().as_bytes());
                return None;
            }
        };
        let (Some(log_name), Some(timestamp), Some(insert_id)) =
            (text(head.log_name.as_ref()), text(head.timestamp.as_ref()), text(head.insert_id.as_ref()))
        else {
            batch.reject(
                format!("source {name}: {where_}: the entry lacks logName, timestamp or insertId (its identity)"),
                entry.get().as_bytes(),
            );
            return None;
        };
        // Floored to the millisecond (`div_euclid`), so a bound at this time includes the entry.
        let time_ms = OffsetDateTime::parse(timestamp, &Rfc3339)
            .ok()
            .and_then(|t| i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).ok());
        // Cloud Logging treats entries with the same log, timestamp and insertId as one.
        let id = format!("{log_name}|{timestamp}|{insert_id}");
        if !self.windows.cursor.recent.insert(&id) {
            tracing::debug!(source = %name, id = %quote(&id), "dropped an entry already delivered");
            return time_ms;
        }
        batch.event(&id, time_ms, entry.get().as_bytes());
        time_ms
    }
}
