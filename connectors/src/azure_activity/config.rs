//! Configuration of the `azure_activity` source.

use serde::Deserialize;

use crate::http::{HttpOptions, Secret};
use crate::window::{self, WindowOptions};

/// `[sources.NAME] type = "azure_activity"`: polls the Activity Log of one or more subscriptions.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AzureActivityConfig {
    /// The Entra ID (Azure AD) tenant id of the app registration.
    pub tenant_id: String,
    /// The app registration's client (application) id.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: Secret,
    /// The subscriptions whose Activity Log is read (the app needs Reader or Monitoring Reader
    /// on each).
    pub subscription_ids: Vec<String>,
    /// The Entra ID login endpoint; default `https://login.microsoftonline.com` (sovereign
    /// clouds: `https://login.microsoftonline.us`, `https://login.chinacloudapi.cn`).
    #[serde(default = "default_login_url")]
    pub login_url: String,
    /// The Resource Manager endpoint; default `https://management.azure.com`.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The token scope; default `https://management.azure.com/.default` (sovereign clouds use
    /// their Resource Manager endpoint's).
    #[serde(default = "default_scope")]
    pub scope: String,
    /// How far back the first window starts, on first start (the Activity Log keeps 90 days).
    #[serde(default = "window::default_secs::<3600>")]
    pub initial_lookback_secs: u64,
    /// Windows end this long before now.
    #[serde(default = "window::default_secs::<60>")]
    pub lag_secs: u64,
    /// Each window starts this long before the previous one ended: events become queryable
    /// (`submissionTimestamp`) minutes after their `eventTimestamp`. Repeats are dropped by
    /// `eventDataId`.
    #[serde(default = "window::default_secs::<1800>")]
    pub overlap_secs: u64,
    /// A new window is started once at least this much new time is available; also the idle
    /// delay between windows.
    #[serde(default = "window::default_secs::<60>")]
    pub poll_interval_secs: u64,
    /// How many recent event ids the cursor remembers per subscription (should exceed the
    /// events of a window, `overlap_secs` + `poll_interval_secs`: a window read again after an
    /// unreadable page relies on it to repeat nothing).
    #[serde(default = "window::default_dedupe_ids")]
    pub dedupe_ids: usize,
    /// HTTP options.
    #[serde(default)]
    pub http: HttpOptions,
}

fn default_login_url() -> String {
    "https://login.microsoftonline.com".into()
}

fn default_base_url() -> String {
    "https://management.azure.com".into()
}

fn default_scope() -> String {
    "https://management.azure.com/.default".into()
}

impl AzureActivityConfig {
    /// The window options (windows end on a whole second).
    pub(crate) fn window_options(&self) -> WindowOptions {
        WindowOptions::new(self.initial_lookback_secs, self.lag_secs, self.overlap_secs, self.poll_interval_secs, true)
    }
}
