//! `sentinel`: sends records to Microsoft Sentinel, that is to a Log Analytics workspace, through
//! the Azure Monitor **Logs Ingestion API** (`api = "logs_ingestion"`, the default) or the
//! legacy **HTTP Data Collector API** (`api = "data_collector"`, deprecated by Microsoft: use it
//! only for workspaces not yet migrated).
//!
//! Each record becomes one row (see [`request`]): its decoded value, which must be a JSON object
//! (anything else is dead-lettered), with `time_field` (default `TimeGenerated`, or `EventTime`
//! for the Data Collector API) set to the record's event time when the value has no such field,
//! and `id_field` (default `WeirId`) set to the record's `weir-id`, so repeats can be recognised
//! in queries. A batch is split into requests of at most `batch_max_events` rows and
//! `batch_max_bytes` bytes of JSON (measured before gzip), each body a JSON array.
//!
//! - Logs Ingestion: `POST {endpoint}/dataCollectionRules/{dcr_immutable_id}/streams/{stream_name}
//!   ?api-version=2023-01-01` with `Authorization: Bearer …`, an Entra ID client-credentials
//!   token (scope `https://monitor.azure.com//.default`) fetched from
//!   `{login_url}/{tenant_id}/oauth2/v2.0/token`, cached and refreshed shortly before it expires.
//!   The API takes at most 1 MB per call: `batch_max_bytes` may not exceed 1 MiB and a row
//!   larger than that alone is dead-lettered without being sent. Bodies may be gzipped.
//! - Data Collector: `POST https://{workspace_id}.ods.opinsights.azure.com/api/logs
//!   ?api-version=2016-04-01` with `Log-Type`, `x-ms-date` (RFC 1123), optional
//!   `time-generated-field` and `Authorization: SharedKey {workspace_id}:{signature}`, where
//!   `signature = Base64(HMAC-SHA256(Base64Decode(shared_key), string_to_sign))` and
//!   `string_to_sign = "POST\n{length}\napplication/json\nx-ms-date:{date}\n/api/logs"`, the
//!   length being the bytes of the exact body sent (up to 32 MB).
//!
//! What it guarantees: a record is reported delivered only when the API answered 2xx (204 or
//! 200) for its request — which means *accepted*, not yet queryable: rows show up after
//! minutes, and columns the DCR's stream does not declare are dropped silently by Azure, so
//! declare every field sent (including `time_field` and `id_field`). The body is always an
//! array (a bare object would get a 204 and vanish). 429 (honouring `Retry-After`), 408, 5xx,
//! timeouts and transport errors are retryable: that request and the rest of the batch are
//! handed back to the runner, the requests already accepted are not sent again. 400 and 413
//! reject the whole request and ingest nothing, so the sink halves the request (a bounded
//! number of times) to find the rows at fault and dead-letters only those, with the service's
//! reason; the rest are delivered once. Logs Ingestion: a 401 drops the cached token and the
//! request is sent once more with a fresh one; a second 401, a 403 (the app lacks the
//! Monitoring Metrics Publisher role on the DCR), a 404 (wrong endpoint, DCR or stream) or a
//! token endpoint refusing the client credentials is fatal, naming the options to check.
//! Data Collector: 401/403 are fatal naming `workspace_id` and `shared_key`; error codes that
//! mean a bad `Log-Type` or URL are fatal too. Delivery is at-least-once: a request whose
//! answer was lost is sent again, and Azure does not deduplicate (use `id_field`). Secrets
//! (`client_secret`, `shared_key`, the access token) are sent only in their header or token
//! form and never appear in an error, a reason or `Debug` output.

mod config;
pub mod request;
mod sink;
#[cfg(test)]
mod tests;

pub use config::{SentinelApi, SentinelConfig};
pub use sink::{SentinelSink, DATA_COLLECTOR_MAX_BYTES, LOGS_INGESTION_MAX_BYTES};
