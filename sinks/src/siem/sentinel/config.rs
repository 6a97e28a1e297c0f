//! Configuration of the `sentinel` sink.

use serde::Deserialize;

use crate::http::{RequestConfig, Secret};

/// Which Azure Monitor ingestion API the sink calls.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SentinelApi {
    /// The Logs Ingestion API: a data collection rule (DCR) stream, Entra ID bearer token.
    #[default]
    LogsIngestion,
    /// The legacy HTTP Data Collector API (deprecated by Microsoft): a workspace id and its
    /// shared key, a `SharedKey` signature per request.
    DataCollector,
}

/// `[sinks.NAME] type = "sentinel"`.
///
/// Options of the other API than the one chosen by `api` are refused, so a half-migrated
/// configuration does not silently use the wrong credentials.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SentinelConfig {
    /// `"logs_ingestion"` (default) or `"data_collector"`.
    #[serde(default)]
    pub api: SentinelApi,

    /// Logs Ingestion: the DCR's `logsIngestion` endpoint or a data collection endpoint (DCE),
    /// e.g. `https://my-dce-a1b2.eastus-1.ingest.monitor.azure.com`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Logs Ingestion: the DCR's immutable id, `dcr-…`.
    #[serde(default)]
    pub dcr_immutable_id: Option<String>,
    /// Logs Ingestion: the DCR input stream, e.g. `Custom-WeirEvents` (not the table name).
    #[serde(default)]
    pub stream_name: Option<String>,
    /// Logs Ingestion: the Entra ID tenant of the app registration.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Logs Ingestion: the app registration's client (application) id; the app needs the
    /// Monitoring Metrics Publisher role on the DCR.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Logs Ingestion: the app's client secret, typically `"${AZURE_CLIENT_SECRET}"`.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// Logs Ingestion: the Entra ID login endpoint; default `https://login.microsoftonline.com`
    /// (sovereign clouds: `https://login.microsoftonline.us`, `https://login.chinacloudapi.cn`).
    #[serde(default = "default_login_url")]
    pub login_url: String,
    /// Logs Ingestion: the token scope; default `https://monitor.azure.com//.default`
    /// (`.azure.us` / `.azure.cn` in other clouds).
    #[serde(default = "default_scope")]
    pub scope: String,
    /// Logs Ingestion: gzip request bodies (`Content-Encoding: gzip`). The 1 MB limit still
    /// applies to the JSON before compression.
    #[serde(default)]
    pub gzip: bool,

    /// Data Collector: the Log Analytics workspace id (a GUID).
    #[serde(default)]
    pub workspace_id: Option<String>,
    /// Data Collector: the workspace's primary or secondary key (base64), typically
    /// `"${SENTINEL_SHARED_KEY}"`.
    #[serde(default)]
    pub shared_key: Option<Secret>,
    /// Data Collector: the record type, sent as `Log-Type` (the table becomes `{log_type}_CL`).
    #[serde(default)]
    pub log_type: Option<String>,
    /// Data Collector: a field holding each row's time (ISO 8601), sent as
    /// `time-generated-field` so Azure uses it as `TimeGenerated`; unset: ingestion time.
    #[serde(default)]
    pub time_generated_field: Option<String>,
    /// Data Collector: the base URL; default `https://{workspace_id}.ods.opinsights.azure.com`
    /// (other clouds: `.ods.opinsights.azure.us`; tests: a local fake).
    #[serde(default)]
    pub data_collector_url: Option<String>,

    /// The field set to the record's event time (ISO 8601, UTC) when the value has no such
    /// field; `""`: none. Default `TimeGenerated` for Logs Ingestion (the column DCR
    /// transformations expect) and `EventTime` for the Data Collector API (where `TimeGenerated`
    /// is reserved).
    #[serde(default)]
    pub time_field: Option<String>,
    /// The field set to the record's stable id (its `weir-id` header), so repeats after a retry
    /// can be recognised in queries; `""`: none. Default `WeirId`.
    #[serde(default = "default_id_field")]
    pub id_field: String,
    /// The most rows in one request.
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: usize,
    /// The most bytes of JSON (the whole array, before gzip) in one request; at most the API's
    /// own limit (1 MiB for Logs Ingestion, 32 MiB for the Data Collector API). A row over this
    /// goes alone; a row over the API's limit is dead-lettered.
    #[serde(default = "default_batch_max_bytes")]
    pub batch_max_bytes: usize,
    /// Timeouts, rate limit, circuit breaker.
    #[serde(default)]
    pub request: RequestConfig,
}

fn default_login_url() -> String {
    "https://login.microsoftonline.com".into()
}

fn default_scope() -> String {
    "https://monitor.azure.com//.default".into()
}

fn default_id_field() -> String {
    "WeirId".into()
}

fn default_batch_max_events() -> usize {
    500
}

fn default_batch_max_bytes() -> usize {
    1_000_000
}
