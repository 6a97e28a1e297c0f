//! The `console` sink itself.

use std::io::Write;

use async_trait::async_trait;
use weir_schemas::component::{ComponentError, RecordFailure, Sink};
use weir_schemas::StoredRecord;

use super::ConsoleSinkConfig;
use crate::encoding::{record_to_json, value_to_json};

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
        let mut text = String::new();
        for record in batch {
            let json =
                if self.config.values_only { value_to_json(&record.record.value).1 } else { record_to_json(record) };
            text.push_str(&json.to_string());
            text.push('\n');
        }
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|e| ComponentError::retryable(format!("writing to standard output: {e}")))?;
        Ok(Vec::new())
    }
}
