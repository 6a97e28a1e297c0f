//! The `sentinel` sink itself.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use base64::Engine;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use weir_schemas::component::{ComponentError, RecordFailure, Sink};
use weir_schemas::net::api::{ApiClient, ApiError, Auth, HttpOptions, OAuthClientCredentials, OAuthGrant};
use weir_schemas::StoredRecord;

use super::request::{array_len, chunks, row_json, shared_key_signature, Chunk};
use super::{SentinelApi, SentinelConfig};
use crate::http::{gzip, FailureClass, HttpDelivery, HttpFailure, InvalidConfig, Secret};

/// The Logs Ingestion API's limit per call: 1 MB of JSON, compressed or not (the Azure SDKs
/// split at 1 MiB of uncompressed JSON).
pub const LOGS_INGESTION_MAX_BYTES: usize = 1024 * 1024;

/// The Data Collector API's limit per post: 32 MB.
pub const DATA_COLLECTOR_MAX_BYTES: usize = 32 * 1024 * 1024;

/// How many times one delivery may halve a rejected request to find the rows at fault; past
/// that, the rows of a rejected request are dead-lettered together (so a destination that
/// rejects everything costs a bounded number of calls).
const MAX_SPLITS: usize = 32;

/// Data Collector error codes that mean the configuration, not the rows, is wrong (Microsoft's
/// data-collector-api error table).
const DATA_COLLECTOR_CONFIG_ERRORS: [&str; 7] = [
    "InvalidApiVersion",
    "InvalidCustomerId",
    "InvalidLogType",
    "MissingApiVersion",
    "MissingContentType",
    "MissingLogType",
    "UnsupportedContentType",
];

/// Where and how Logs Ingestion requests go.
#[derive(Clone)]
struct LogsIngestion {
    url: Url,
    /// Talks to the token endpoint only (its retries are off: the runner retries).
    tokens: Arc<ApiClient>,
    /// Shared by the sink's forks: one cached token.
    oauth: Arc<OAuthClientCredentials>,
}

/// Where and how requests go.
// One per sink, built once and never moved around: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Target {
    LogsIngestion(LogsIngestion),
    DataCollector {
        url: Url,
        workspace_id: String,
        /// The decoded shared key.
        key: Vec<u8>,
        log_type: HeaderValue,
        time_generated_field: Option<HeaderValue>,
    },
}

/// Sends records to Microsoft Sentinel (Azure Monitor Logs).
#[derive(Clone)]
pub struct SentinelSink {
    config: SentinelConfig,
    target: Target,
    time_field: String,
    /// The API's own limit on one request's JSON.
    api_max_bytes: usize,
    delivery: HttpDelivery,
    secrets: Vec<Secret>,
}

impl std::fmt::Debug for SentinelSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelSink").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A value that must be set for the chosen API.
fn required<'a>(value: &'a Option<String>, key: &str, api: &str) -> Result<&'a str, InvalidConfig> {
    match value.as_deref().map(str::trim) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(InvalidConfig::new(key, format!("is required with api = \"{api}\""))),
    }
}

/// Letters, digits and `-._` only: safe in a URL path or host name as is.
fn plain(value: &str, extra: &[char]) -> bool {
    !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

/// Azure Monitor's column-name rules: a letter first, then at most 45 letters, digits or
/// underscores, and not a reserved name.
fn check_column(key: &str, name: &str) -> Result<(), InvalidConfig> {
    const RESERVED: [&str; 7] = ["_ResourceId", "id", "_SubscriptionId", "TenantId", "Type", "UniqueId", "Title"];
    if name.is_empty() {
        return Ok(());
    }
    let shaped = name.len() <= 45
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !shaped {
        return Err(InvalidConfig::new(
            key,
            format!("{name:?} is not a column name (a letter, then at most 45 letters, digits or underscores)"),
        ));
    }
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(InvalidConfig::new(key, format!("{name:?} is a reserved column name")));
    }
    Ok(())
}

/// Refuses options of the other API, so a half-migrated configuration fails loudly.
fn refuse_foreign(set: &[(&str, bool)], api: &str) -> Result<(), InvalidConfig> {
    match set.iter().find(|(_, is_set)| *is_set) {
        Some((key, _)) => Err(InvalidConfig::new(*key, format!("does not apply with api = \"{api}\""))),
        None => Ok(()),
    }
}

/// Base URL + `path` (keeping any path prefix of the base, dropping its query).
fn join(base: &Url, segments: &[&str]) -> Result<Url, InvalidConfig> {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|_| InvalidConfig::new("endpoint", "cannot hold a path"))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

fn parse_base(key: &str, value: &str) -> Result<Url, InvalidConfig> {
    let url = Url::parse(value).map_err(|e| InvalidConfig::new(key, format!("not a URL: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(InvalidConfig::new(key, "must be an http:// or https:// URL"));
    }
    Ok(url)
}

impl SentinelSink {
    /// A sink for `config`; checks every option (no request is made).
    pub fn new(config: SentinelConfig) -> Result<Self, InvalidConfig> {
        if config.batch_max_events == 0 {
            return Err(InvalidConfig::new("batch_max_events", "must be at least 1"));
        }
        check_column("id_field", &config.id_field)?;
        let (target, what, api_max_bytes, secrets, default_time_field) = match config.api {
            SentinelApi::LogsIngestion => {
                let (target, secrets) = logs_ingestion(&config)?;
                (target, "Azure Monitor Logs Ingestion API", LOGS_INGESTION_MAX_BYTES, secrets, "TimeGenerated")
            }
            SentinelApi::DataCollector => {
                let (target, secrets) = data_collector(&config)?;
                (target, "Azure Monitor Data Collector API", DATA_COLLECTOR_MAX_BYTES, secrets, "EventTime")
            }
        };
        let time_field = config.time_field.clone().unwrap_or_else(|| default_time_field.to_string());
        check_column("time_field", &time_field)?;
        if config.batch_max_bytes < 64 || config.batch_max_bytes > api_max_bytes {
            return Err(InvalidConfig::new(
                "batch_max_bytes",
                format!("must be between 64 and the API's limit, {api_max_bytes}"),
            ));
        }
        let delivery = HttpDelivery::new(what, &config.request, secrets.clone())?;
        Ok(SentinelSink { config, target, time_field, api_max_bytes, delivery, secrets })
    }

    /// Sends one request's rows.
    async fn post(&mut self, chunk: &Chunk) -> Result<(), HttpFailure> {
        let json = chunk.body();
        let SentinelSink { target, delivery, secrets, config, .. } = self;
        match target {
            Target::LogsIngestion(logs) => {
                let LogsIngestion { url, tokens, oauth } = &*logs;
                let (body, gzipped) = if config.gzip { (gzip(&json), true) } else { (json, false) };
                let mut refreshed = false;
                loop {
                    let credentials = match oauth.headers(tokens).await {
                        Ok(credentials) => credentials,
                        Err(error) => {
                            let failure = token_failure(&error, secrets);
                            delivery.note(&failure);
                            return Err(failure);
                        }
                    };
                    let mut request = delivery
                        .client()
                        .post(url.clone())
                        .header(CONTENT_TYPE, "application/json")
                        .header("x-ms-client-request-id", uuid::Uuid::new_v4().to_string());
                    if gzipped {
                        request = request.header(CONTENT_ENCODING, "gzip");
                    }
                    for (name, value) in &credentials {
                        request = request.header(name, value);
                    }
                    let failure = match delivery.send(request.body(body.clone())).await {
                        Ok(_) => return Ok(()),
                        Err(failure) => failure,
                    };
                    if failure.status == Some(StatusCode::UNAUTHORIZED) && !refreshed {
                        // The token may have expired early or been revoked: one more try with a
                        // fresh one. A second 401 means the credentials themselves are wrong.
                        tracing::debug!("Logs Ingestion API answered 401; fetching a new access token");
                        oauth.invalidate();
                        refreshed = true;
                        continue;
                    }
                    // The access token is a secret too, should the service echo it.
                    let tokens_seen: Vec<Secret> = credentials
                        .iter()
                        .filter_map(|(_, value)| value.to_str().ok())
                        .map(|value| Secret::new(value.trim_start_matches("Bearer ")))
                        .collect();
                    return Err(logs_ingestion_failure(failure, &tokens_seen));
                }
            }
            Target::DataCollector { url, workspace_id, key, log_type, time_generated_field } => {
                let date = httpdate::fmt_http_date(SystemTime::now());
                let signature = shared_key_signature(key, json.len(), &date);
                let mut authorization = HeaderValue::from_str(&format!("SharedKey {workspace_id}:{signature}"))
                    .map_err(|_| HttpFailure::fatal("workspace_id: cannot be sent in a header"))?;
                authorization.set_sensitive(true);
                let mut request = delivery
                    .client()
                    .post(url.clone())
                    .header(CONTENT_TYPE, "application/json")
                    .header("Log-Type", log_type.clone())
                    .header("x-ms-date", date)
                    .header(AUTHORIZATION, authorization);
                if let Some(field) = time_generated_field {
                    request = request.header("time-generated-field", field.clone());
                }
                // reqwest sends the body's exact length as Content-Length, the one signed.
                delivery.send(request.body(json)).await.map(|_| ()).map_err(data_collector_failure)
            }
        }
    }
}

fn logs_ingestion(config: &SentinelConfig) -> Result<(Target, Vec<Secret>), InvalidConfig> {
    const API: &str = "logs_ingestion";
    refuse_foreign(
        &[
            ("workspace_id", config.workspace_id.is_some()),
            ("shared_key", config.shared_key.is_some()),
            ("log_type", config.log_type.is_some()),
            ("time_generated_field", config.time_generated_field.is_some()),
            ("data_collector_url", config.data_collector_url.is_some()),
        ],
        API,
    )?;
    let base = parse_base("endpoint", required(&config.endpoint, "endpoint", API)?)?;
    let dcr = required(&config.dcr_immutable_id, "dcr_immutable_id", API)?;
    if !plain(dcr, &['-']) {
        return Err(InvalidConfig::new("dcr_immutable_id", "expected the DCR's immutable id, dcr-…"));
    }
    let stream = required(&config.stream_name, "stream_name", API)?;
    if !plain(stream, &['-', '_']) {
        return Err(InvalidConfig::new("stream_name", "expected a DCR stream name such as Custom-MyTable"));
    }
    let tenant = required(&config.tenant_id, "tenant_id", API)?;
    if !plain(tenant, &['-', '.']) {
        return Err(InvalidConfig::new("tenant_id", "expected a tenant id (a GUID) or domain"));
    }
    let client_id = required(&config.client_id, "client_id", API)?;
    let client_secret = match &config.client_secret {
        Some(secret) if !secret.expose().is_empty() => secret.clone(),
        _ => return Err(InvalidConfig::new("client_secret", format!("is required with api = \"{API}\""))),
    };
    let mut url = join(&base, &["dataCollectionRules", dcr, "streams", stream])?;
    url.query_pairs_mut().append_pair("api-version", "2023-01-01");
    let login = parse_base("login_url", &config.login_url)?;
    let token_url =
        join(&login, &[tenant, "oauth2", "v2.0", "token"]).map_err(|e| InvalidConfig::new("login_url", e.message))?;
    if config.scope.trim().is_empty() {
        return Err(InvalidConfig::new("scope", "is empty"));
    }
    let options = HttpOptions {
        timeout_secs: config.request.timeout_secs.ceil().clamp(1.0, 1e6) as u64,
        // The token endpoint is tried once per delivery; a failure is retryable and the runner
        // retries with backoff, like every other request of a sink.
        max_retry_secs: 0,
        ..HttpOptions::default()
    };
    let tokens = ApiClient::new(&options).map_err(|e| InvalidConfig::new("request", e.to_string()))?;
    let grant = OAuthGrant::ClientSecret { client_id: client_id.to_string(), client_secret: client_secret.clone() };
    let oauth = OAuthClientCredentials::new(token_url, grant, Some(config.scope.clone()));
    Ok((
        Target::LogsIngestion(LogsIngestion { url, tokens: Arc::new(tokens), oauth: Arc::new(oauth) }),
        vec![client_secret],
    ))
}

fn data_collector(config: &SentinelConfig) -> Result<(Target, Vec<Secret>), InvalidConfig> {
    const API: &str = "data_collector";
    refuse_foreign(
        &[
            ("endpoint", config.endpoint.is_some()),
            ("dcr_immutable_id", config.dcr_immutable_id.is_some()),
            ("stream_name", config.stream_name.is_some()),
            ("tenant_id", config.tenant_id.is_some()),
            ("client_id", config.client_id.is_some()),
            ("client_secret", config.client_secret.is_some()),
            // The API documents no compressed bodies, and the signature covers the length sent.
            ("gzip", config.gzip),
        ],
        API,
    )?;
    let workspace_id = required(&config.workspace_id, "workspace_id", API)?;
    // It becomes part of a host name.
    if !plain(workspace_id, &['-']) {
        return Err(InvalidConfig::new("workspace_id", "expected the workspace id (a GUID)"));
    }
    let key = match &config.shared_key {
        Some(key) if !key.expose().is_empty() => key.clone(),
        _ => return Err(InvalidConfig::new("shared_key", format!("is required with api = \"{API}\""))),
    };
    let decoded = base64::engine::general_purpose::STANDARD.decode(key.expose().trim()).map_err(|_| {
        InvalidConfig::new("shared_key", "is not base64: copy the workspace's primary or secondary key as is")
    })?;
    let log_type = required(&config.log_type, "log_type", API)?;
    if log_type.len() > 100 || !plain(log_type, &['_']) {
        return Err(InvalidConfig::new("log_type", "at most 100 letters, digits or underscores"));
    }
    let log_type = HeaderValue::from_str(log_type).map_err(|_| InvalidConfig::new("log_type", "not a header value"))?;
    let time_generated_field = match config.time_generated_field.as_deref() {
        None => None,
        Some(field) => {
            check_column("time_generated_field", field)?;
            Some(HeaderValue::from_str(field).map_err(|_| InvalidConfig::new("time_generated_field", "not a name"))?)
        }
    };
    let base = match &config.data_collector_url {
        Some(url) => parse_base("data_collector_url", url)?,
        None => parse_base("workspace_id", &format!("https://{workspace_id}.ods.opinsights.azure.com"))?,
    };
    let mut url = join(&base, &["api", "logs"]).map_err(|e| InvalidConfig::new("data_collector_url", e.message))?;
    url.query_pairs_mut().append_pair("api-version", "2016-04-01");
    let target = Target::DataCollector {
        url,
        workspace_id: workspace_id.to_string(),
        key: decoded,
        log_type,
        time_generated_field,
    };
    Ok((target, vec![key]))
}

/// A token endpoint failure: retryable when Entra ID was unreachable or busy, else fatal (the
/// client credentials are wrong), naming the options to check, never their values.
fn token_failure(error: &ApiError, secrets: &[Secret]) -> HttpFailure {
    let mut text = format!("getting an access token from Entra ID: {error}");
    for secret in secrets {
        text = secret.scrub(&text);
    }
    if error.is_retryable() {
        HttpFailure::retryable(text)
    } else {
        HttpFailure::fatal(format!("{text} (check tenant_id, client_id, client_secret, login_url and scope)"))
    }
}

/// Names the options behind a Logs Ingestion failure the status alone explains.
fn logs_ingestion_failure(mut failure: HttpFailure, tokens: &[Secret]) -> HttpFailure {
    for token in tokens {
        failure.reason = token.scrub(&failure.reason);
    }
    let hint = match failure.status.map(|s| s.as_u16()) {
        Some(401) => " (a fresh access token was refused too: check tenant_id, client_id, client_secret and scope)",
        Some(403) => {
            " (the app client_id needs the Monitoring Metrics Publisher role on the data collection rule \
             dcr_immutable_id; a new role assignment can take about 30 minutes to apply)"
        }
        Some(404) => " (check endpoint, dcr_immutable_id and stream_name)",
        _ => "",
    };
    failure.reason.push_str(hint);
    failure
}

/// The Data Collector API's error object: `{"Error":"InvalidLogType","Message":"…"}`.
#[derive(Default, Deserialize)]
struct DataCollectorError {
    #[serde(default, rename = "Error")]
    error: Option<String>,
}

/// Refines a Data Collector failure: configuration error codes are fatal, and the options
/// behind a 401/403/404 are named.
fn data_collector_failure(mut failure: HttpFailure) -> HttpFailure {
    let code = serde_json::from_slice::<DataCollectorError>(&failure.body).unwrap_or_default().error;
    if failure.class == FailureClass::Permanent
        && code.as_deref().is_some_and(|c| DATA_COLLECTOR_CONFIG_ERRORS.contains(&c))
    {
        failure.class = FailureClass::Fatal;
        failure.reason.push_str(" (a configuration problem: check log_type, workspace_id and data_collector_url)");
        return failure;
    }
    match failure.status.map(|s| s.as_u16()) {
        Some(401 | 403) => failure.reason.push_str(" (check workspace_id and shared_key)"),
        Some(404) => failure.reason.push_str(" (check workspace_id and data_collector_url)"),
        _ => {}
    }
    failure
}

#[async_trait]
impl Sink for SentinelSink {
    crate::http::concurrent_by_cloning!();

    async fn deliver(&mut self, batch: &[StoredRecord]) -> Result<Vec<RecordFailure>, ComponentError> {
        let mut failures = Vec::new();
        let mut rows = Vec::with_capacity(batch.len());
        for (index, record) in batch.iter().enumerate() {
            match row_json(record, &self.time_field, &self.config.id_field) {
                Ok(row) if array_len([row.len()]) > self.api_max_bytes => failures.push(RecordFailure {
                    index,
                    retryable: false,
                    reason: format!(
                        "the row is {} bytes of JSON; the API takes at most {} bytes per request, so it can never \
                         be sent",
                        row.len(),
                        self.api_max_bytes
                    ),
                }),
                Ok(row) => rows.push((index, row)),
                Err(reason) => failures.push(RecordFailure { index, retryable: false, reason }),
            }
        }
        let mut pending: VecDeque<Chunk> =
            chunks(rows, self.config.batch_max_events, self.config.batch_max_bytes).into();
        let mut splits_left = MAX_SPLITS;
        let mut retry_reason = None;
        while let Some(chunk) = pending.pop_front() {
            let failure = match self.post(&chunk).await {
                Ok(()) => continue,
                Err(failure) => failure,
            };
            match failure.class {
                FailureClass::Fatal => return Err(ComponentError::fatal(failure.reason)),
                FailureClass::Permanent if chunk.rows.len() > 1 && splits_left > 0 => {
                    // A rejected request ingested nothing, so sending its halves duplicates
                    // nothing: halving isolates the rows at fault instead of dead-lettering the
                    // good rows with them.
                    splits_left -= 1;
                    let (first, rest) = chunk.split();
                    pending.push_front(rest);
                    pending.push_front(first);
                }
                FailureClass::Permanent => failures.extend(chunk.indexes().map(|index| RecordFailure {
                    index,
                    retryable: false,
                    reason: failure.reason.clone(),
                })),
                FailureClass::Retryable => {
                    // The destination is struggling: leave this request and the rest for the
                    // runner's retry; what was accepted before stays delivered.
                    failures.extend(chunk.indexes().map(|index| RecordFailure {
                        index,
                        retryable: true,
                        reason: failure.reason.clone(),
                    }));
                    for rest in pending.drain(..) {
                        failures.extend(rest.indexes().map(|index| RecordFailure {
                            index,
                            retryable: true,
                            reason: format!("not sent: {}", failure.reason),
                        }));
                    }
                    retry_reason = Some(failure.reason);
                }
            }
        }
        failures.sort_by_key(|f| f.index);
        for failure in &mut failures {
            for secret in &self.secrets {
                failure.reason = secret.scrub(&failure.reason);
            }
        }
        if !batch.is_empty() && failures.len() == batch.len() && failures.iter().all(|f| f.retryable) {
            // Nothing went through: say so once for the whole batch.
            let reason = retry_reason.unwrap_or_else(|| failures[0].reason.clone());
            return Err(ComponentError::retryable(reason));
        }
        Ok(failures)
    }
}
