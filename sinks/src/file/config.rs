//! Configuration of the `file` sink.

use std::path::PathBuf;

use serde::Deserialize;

/// `[sinks.NAME] type = "file"`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// The file to append to; created with its directory if missing.
    pub path: PathBuf,
    /// Write only the decoded value instead of the whole record with its position and headers.
    #[serde(default)]
    pub values_only: bool,
}
