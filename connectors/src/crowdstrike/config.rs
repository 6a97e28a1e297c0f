//! Configuration of the CrowdStrike Falcon sources (`crowdstrike_alerts`, `crowdstrike_hosts`).
//! Both carry the same connection options (cloud or base URL, API client credentials, `http`).

use serde::Deserialize;

use crate::http::{HttpOptions, Secret};

/// A Falcon cloud, naming its API host.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum Cloud {
    /// `api.crowdstrike.com`.
    #[default]
    #[serde(rename = "us-1")]
    Us1,
    /// `api.us-2.crowdstrike.com`.
    #[serde(rename = "us-2")]
    Us2,
    /// `api.eu-1.crowdstrike.com`.
    #[serde(rename = "eu-1")]
    Eu1,
    /// `api.laggar.gcw.crowdstrike.com` (GovCloud).
    #[serde(rename = "us-gov-1")]
    UsGov1,
}

impl Cloud {
    /// The cloud's API base URL.
    pub fn base_url(self) -> &'static str {
        match self {
            Cloud::Us1 => "https://api.crowdstrike.com",
            Cloud::Us2 => "https://api.us-2.crowdstrike.com",
            Cloud::Eu1 => "https://api.eu-1.crowdstrike.com",
            Cloud::UsGov1 => "https://api.laggar.gcw.crowdstrike.com",
        }
    }
}

/// `[sources.NAME] type = "crowdstrike_alerts"`: alerts from the Alerts API (v2).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CrowdStrikeAlertsConfig {
    /// The Falcon cloud of the tenant: `us-1` (default), `us-2`, `eu-1` or `us-gov-1`.
    #[serde(default)]
    pub cloud: Cloud,
    /// The API base URL, overriding `cloud` (tests, proxies, new clouds).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The API client's id (Falcon console → API clients and keys); it needs the Alerts: read scope.
    pub client_id: String,
    /// The API client's secret.
    pub client_secret: Secret,
    /// For MSSP (Flight Control) parents: the child CID to read.
    #[serde(default)]
    pub member_cid: Option<String>,
    /// Each poll asks again for alerts updated up to this many seconds before the newest one
    /// seen, so alerts indexed late are not missed (repeats are dropped).
    #[serde(default = "default_overlap")]
    pub overlap_secs: u64,
    /// On first start, read alerts updated up to this many seconds in the past.
    #[serde(default = "default_alerts_lookback")]
    pub start_lookback_secs: u64,
    /// Alert ids per query page (at most 10000; details are fetched 1000 at a time).
    #[serde(default = "default_alerts_page")]
    pub page_size: usize,
    /// How long to wait between polls once caught up.
    #[serde(default = "default_poll_interval")]
    pub poll_interval_secs: u64,
    /// An extra FQL filter ANDed with the time filter, e.g. `product:'epp'+severity:>=50`.
    #[serde(default)]
    pub filter: Option<String>,
    /// HTTP client options (timeouts, retries, pacing).
    #[serde(default)]
    pub http: HttpOptions,
}

/// `[sources.NAME] type = "crowdstrike_hosts"`: the host inventory from the Hosts API.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CrowdStrikeHostsConfig {
    /// The Falcon cloud of the tenant: `us-1` (default), `us-2`, `eu-1` or `us-gov-1`.
    #[serde(default)]
    pub cloud: Cloud,
    /// The API base URL, overriding `cloud` (tests, proxies, new clouds).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The API client's id (Falcon console → API clients and keys); it needs the Hosts: read scope.
    pub client_id: String,
    /// The API client's secret.
    pub client_secret: Secret,
    /// For MSSP (Flight Control) parents: the child CID to read.
    #[serde(default)]
    pub member_cid: Option<String>,
    /// Seconds between two syncs. The first sync reads every host; later ones read the hosts
    /// modified since the previous sync started (less `overlap_secs`).
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    /// How far before the previous sync's start an incremental sync looks (clock skew, late
    /// indexing).
    #[serde(default = "default_overlap")]
    pub overlap_secs: u64,
    /// Host ids per scroll page (at most 10000; details are fetched 5000 at a time).
    #[serde(default = "default_hosts_page")]
    pub page_size: usize,
    /// HTTP client options (timeouts, retries, pacing).
    #[serde(default)]
    pub http: HttpOptions,
}

fn default_overlap() -> u64 {
    60
}

fn default_alerts_lookback() -> u64 {
    86_400
}

fn default_alerts_page() -> usize {
    500
}

fn default_poll_interval() -> u64 {
    60
}

fn default_interval() -> u64 {
    3600
}

fn default_hosts_page() -> usize {
    1000
}
