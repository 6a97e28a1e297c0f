//! Configuration of the `gcp_audit` source.

use serde::Deserialize;

use crate::http::{HttpOptions, Secret};
use crate::window::{self, WindowOptions};

/// `[sources.NAME] type = "gcp_audit"`: polls Cloud Logging for Cloud Audit Logs entries.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GcpAuditConfig {
    /// The service account's JSON key file, whole (usually `{ file = "/path/key.json" }`); its
    /// `client_email`, `private_key`, `private_key_id` and `token_uri` are used. The account
    /// needs `roles/logging.viewer` (and `roles/logging.privateLogViewer` for Data Access logs).
    pub service_account_key: Secret,
    /// What to read: `projects/P`, `organizations/O`, `folders/F` or `billingAccounts/B`
    /// (at most 100).
    pub resource_names: Vec<String>,
    /// The Cloud Logging endpoint; default `https://logging.googleapis.com`.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The token endpoint; default the key's `token_uri` (else `https://oauth2.googleapis.com/token`).
    #[serde(default)]
    pub token_url: Option<String>,
    /// Entries per page (at most 1000).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// How far back the first window starts, on first start.
    #[serde(default = "window::default_secs::<3600>")]
    pub initial_lookback_secs: u64,
    /// Windows end this long before now.
    #[serde(default = "window::default_secs::<60>")]
    pub lag_secs: u64,
    /// Each window starts this long before the previous one ended: entries are received
    /// (`receiveTimestamp`) after their `timestamp`. Repeats are dropped by
    /// `(logName, timestamp, insertId)`.
    #[serde(default = "window::default_secs::<600>")]
    pub overlap_secs: u64,
    /// A new window is started once at least this much new time is available; also the idle
    /// delay between windows.
    #[serde(default = "window::default_secs::<60>")]
    pub poll_interval_secs: u64,
    /// How many recent entry keys the cursor remembers (should exceed the entries in
    /// `overlap_secs`).
    #[serde(default = "window::default_dedupe_ids")]
    pub dedupe_ids: usize,
    /// HTTP options (entries.list has a small read quota: about 60 requests per minute).
    #[serde(default)]
    pub http: HttpOptions,
}

fn default_base_url() -> String {
    "https://logging.googleapis.com".into()
}

fn default_page_size() -> u32 {
    1000
}

impl GcpAuditConfig {
    /// The window options (windows end on any millisecond).
    pub(crate) fn window_options(&self) -> WindowOptions {
        WindowOptions::new(self.initial_lookback_secs, self.lag_secs, self.overlap_secs, self.poll_interval_secs, false)
    }
}
