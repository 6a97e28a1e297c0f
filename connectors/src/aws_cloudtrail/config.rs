//! Configuration of the `aws_cloudtrail` (LookupEvents) and `aws_eventbridge` (push) sources.

use serde::Deserialize;

use crate::http::{HttpOptions, Secret};
use crate::window::{self, WindowOptions};

/// `[sources.NAME] type = "aws_cloudtrail"`: polls CloudTrail `LookupEvents` in one region.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CloudTrailConfig {
    /// The access key id of an IAM principal allowed `cloudtrail:LookupEvents`.
    pub access_key_id: String,
    /// Its secret access key.
    pub secret_access_key: Secret,
    /// The session token, for temporary credentials (STS).
    #[serde(default)]
    pub session_token: Option<Secret>,
    /// The region whose events are read (LookupEvents sees one region), e.g. `us-east-1`.
    pub region: String,
    /// The API endpoint; default `https://cloudtrail.<region>.amazonaws.com` (override for
    /// FIPS or VPC endpoints, and tests).
    #[serde(default)]
    pub base_url: Option<String>,
    /// How far back the first window starts, on first start (LookupEvents keeps 90 days).
    #[serde(default = "window::default_secs::<3600>")]
    pub initial_lookback_secs: u64,
    /// Windows end this long before now: CloudTrail delivers events minutes late.
    #[serde(default = "window::default_secs::<300>")]
    pub lag_secs: u64,
    /// Each window starts this long before the previous one ended, so events that became
    /// visible late are still read (repeats are dropped by `eventID`).
    #[serde(default = "window::default_secs::<900>")]
    pub overlap_secs: u64,
    /// A new window is started once at least this much new time is available; also the idle
    /// delay between windows.
    #[serde(default = "window::default_secs::<60>")]
    pub poll_interval_secs: u64,
    /// How many recent event ids the cursor remembers to drop repeats from overlapping windows
    /// (should exceed the events in `overlap_secs`).
    #[serde(default = "window::default_dedupe_ids")]
    pub dedupe_ids: usize,
    /// HTTP options. `min_interval_ms` defaults to 500 here: LookupEvents allows 2 requests per
    /// second per account and region, and the quota cannot be raised.
    #[serde(default = "default_http")]
    pub http: HttpOptions,
}

/// The HTTP options with LookupEvents' pacing. A user's `[http]` table without
/// `min_interval_ms` gets `HttpOptions`'s own default (0): set it there to keep the pacing.
fn default_http() -> HttpOptions {
    HttpOptions { min_interval_ms: 500, ..HttpOptions::default() }
}

impl CloudTrailConfig {
    /// The window options (LookupEvents takes whole seconds).
    pub(crate) fn window_options(&self) -> WindowOptions {
        WindowOptions::new(self.initial_lookback_secs, self.lag_secs, self.overlap_secs, self.poll_interval_secs, true)
    }
}

/// `[sources.NAME] type = "aws_eventbridge"`: receives EventBridge API-destination deliveries.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EventBridgeConfig {
    /// Where on Weir's HTTP server deliveries are received, e.g. `/hooks/aws`.
    pub path: String,
    /// The header the EventBridge connection's API-key authorization sends (its "API key
    /// name"), e.g. `x-weir-key`.
    #[serde(default = "default_api_key_header")]
    pub api_key_header: String,
    /// The expected value of that header (the connection's "value").
    pub api_key: Secret,
    /// How long a delivery may wait to be durable before it is answered 503 (EventBridge
    /// retries). API destinations time out after 5 s.
    #[serde(default = "default_patience_ms")]
    pub patience_ms: u64,
}

fn default_api_key_header() -> String {
    "x-api-key".into()
}

fn default_patience_ms() -> u64 {
    4000
}
