//! Configuration of the `file` source.

use std::path::PathBuf;

use serde::Deserialize;

/// `[sources.NAME] type = "file"`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// The NDJSON file to read, relative to the working directory.
    pub path: PathBuf,
    /// The vendor whose events the file holds (`okta`, `netskope`, ...): it tells `normalize`
    /// how to read them.
    pub vendor: String,
    /// Lines per batch.
    #[serde(default = "default_batch_lines")]
    pub batch_lines: usize,
    /// Keep watching the file for new lines (like `tail -f`) instead of finishing at its end.
    /// Only complete lines (ending in a newline) are read while following.
    #[serde(default)]
    pub follow: bool,
}

fn default_batch_lines() -> usize {
    500
}
