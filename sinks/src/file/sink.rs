//! The `file` sink itself.

use std::fs::{File, OpenOptions};
use std::io::Write;

use async_trait::async_trait;
use weir_schemas::component::{ComponentError, RecordFailure, Sink};
use weir_schemas::StoredRecord;

use super::FileSinkConfig;
use crate::encoding::{record_to_json, value_to_json};

/// Appends records to a file as JSON lines.
pub struct FileSink {
    config: FileSinkConfig,
    file: Option<File>,
}

impl FileSink {
    /// A file sink; the file is opened on first delivery.
    pub fn new(config: FileSinkConfig) -> Self {
        FileSink { config, file: None }
    }

    fn file(&mut self) -> Result<&mut File, ComponentError> {
        if self.file.is_none() {
            let path = &self.config.path;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| ComponentError::fatal(format!("cannot create {}: {e}", dir.display())))?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| ComponentError::fatal(format!("cannot open {} for appending: {e}", path.display())))?;
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn deliver(&mut self, batch: &[StoredRecord]) -> Result<Vec<RecordFailure>, ComponentError> {
        let mut text = Vec::new();
        for record in batch {
            let json =
                if self.config.values_only { value_to_json(&record.record.value).1 } else { record_to_json(record) };
            serde_json::to_writer(&mut text, &json)
                .map_err(|e| ComponentError::fatal(format!("encoding JSON: {e}")))?;
            text.push(b'\n');
        }
        let path = self.config.path.display().to_string();
        let file = self.file()?;
        let written = file.write_all(&text).and_then(|()| file.sync_data());
        if let Err(e) = written {
            // The file may now end in part of a line; reopen so the retry appends cleanly after it.
            self.file = None;
            return Err(ComponentError::retryable(format!("writing {path}: {e}")));
        }
        Ok(Vec::new())
    }
}
