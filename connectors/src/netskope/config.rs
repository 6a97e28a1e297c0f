//! Configuration of the `netskope` source.

use serde::Deserialize;

use crate::http::{HttpOptions, Secret};

/// `[sources.NAME] type = "netskope"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetskopeConfig {
    /// The tenant's URL, `https://<tenant>.goskope.com` (overridable for tests and other
    /// Netskope regions).
    pub base_url: String,
    /// A REST API v2 token, sent in the `Netskope-Api-Token` header. It must be scoped for every
    /// dataexport endpoint listed below (tokens are scoped per path).
    pub api_token: Secret,
    /// The iterator index name. Netskope keeps the read position server-side per
    /// (endpoint, index), so this name *is* the cursor's identity: it must be unique to this
    /// source. Two consumers (two Weir sources, a SIEM add-on, a script) sharing an index on the
    /// same endpoint each take pages the other then never sees.
    pub index: String,
    /// Event types to read, each from `/api/v2/events/dataexport/events/{type}`: `alert`,
    /// `application`, `audit`, `connection`, `endpoint`, `incident`, `infrastructure`,
    /// `network`, `page`.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Alert types to read, each from `/api/v2/events/dataexport/alerts/{type}`:
    /// `compromisedcredential`, `content`, `ctep`, `device`, `dlp`, `malsite`, `malware`,
    /// `policy`, `quarantine`, `remediation`, `securityassessment`, `uba`, `watchlist`.
    #[serde(default)]
    pub alert_types: Vec<String>,
    /// On first start (no committed cursor), start reading this many seconds in the past
    /// (`operation=<now - start_lookback_secs>`).
    #[serde(default = "default_lookback")]
    pub start_lookback_secs: u64,
    /// How long to wait before asking an endpoint again after it returned an empty page without a
    /// `wait_time`.
    #[serde(default = "default_idle")]
    pub idle_secs: u64,
    /// HTTP client options (timeouts, retries, pacing).
    #[serde(default)]
    pub http: HttpOptions,
}

fn default_lookback() -> u64 {
    3600
}

fn default_idle() -> u64 {
    30
}

/// The documented event types of `/api/v2/events/dataexport/events/{type}` (JSON ones; the
/// `clientstatus` export is CSV and not supported).
pub(crate) const EVENT_TYPES: &[&str] =
    &["alert", "application", "audit", "connection", "endpoint", "incident", "infrastructure", "network", "page"];

/// The documented subtypes of `/api/v2/events/dataexport/alerts/{subtype}`.
pub(crate) const ALERT_TYPES: &[&str] = &[
    "compromisedcredential",
    "content",
    "ctep",
    "device",
    "dlp",
    "malsite",
    "malware",
    "policy",
    "quarantine",
    "remediation",
    "securityassessment",
    "uba",
    "watchlist",
];
