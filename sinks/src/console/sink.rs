//! The `console` sink itself.

use std::io::Write;

use async_trait::async_trait;
use weir_schemas::component::{ComponentError, RecordFailure, Sink};
use weir_schemas::StoredRecord;

use super::ConsoleSinkConfig;
use crate::encoding::json_lines;

/// Prints records to standard output.
pub struct ConsoleSink {
    config: ConsoleSinkConfig,
}

impl ConsoleSink {
    /// A console sink.
    pub fn new(config: ConsoleSinkConfig) -> Self {
        ConsoleSink { config }
    }
}

#[async_trait]
impl Sink for ConsoleSink {
    async fn deliver(&mut self, batch: &[StoredRecord]) -> Result<Vec<RecordFailure>, ComponentError> {
        let text = json_lines(batch, self.config.values_only);
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(&text)
            .and_then(|()| stdout.flush())
            .map_err(|e| ComponentError::retryable(format!("writing to standard output: {e}")))?;
        Ok(Vec::new())
    }
}
