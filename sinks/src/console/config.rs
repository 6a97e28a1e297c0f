//! Configuration of the `console` sink.

use serde::Deserialize;

/// `[sinks.NAME] type = "console"`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSinkConfig {
    /// Print only the decoded value instead of the whole record with its position and headers.
    #[serde(default)]
    pub values_only: bool,
}
