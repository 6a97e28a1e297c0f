//! The `file` sink itself.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;

use async_trait::async_trait;
use weir_schemas::component::{ComponentError, RecordFailure, Sink};
use weir_schemas::StoredRecord;

use super::FileSinkConfig;
use crate::encoding::json_lines;

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
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            std::fs::create_dir_all(dir)
                .map_err(|e| ComponentError::fatal(format!("cannot create {}: {e}", dir.display())))?;
            let existed = path.exists();
            let file = OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(path)
                .map_err(|e| ComponentError::fatal(format!("cannot open {} for appending: {e}", path.display())))?;
            if !existed {
                // Make the new file's name durable too, or a crash could lose a file whose
                // records were acknowledged.
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| ComponentError::retryable(format!("syncing {}: {e}", dir.display())))?;
            }
            cut_partial_line(&file)
                .map_err(|e| ComponentError::retryable(format!("repairing the end of {}: {e}", path.display())))?;
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }
}

/// Cuts a partial last line — left by a crash or a failed write in the middle of a batch that was
/// therefore never acknowledged, and will be written again — so the file stays valid NDJSON.
fn cut_partial_line(file: &File) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let buf = &mut chunk[..(end - start) as usize];
        file.read_exact_at(buf, start)?;
        if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
            end = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    if end < len {
        tracing::warn!(
            dropped_bytes = len - end,
            "file sink: cutting a partial last line left by an interrupted write"
        );
        file.set_len(end)?;
    }
    Ok(())
}

#[async_trait]
impl Sink for FileSink {
    async fn deliver(&mut self, batch: &[StoredRecord]) -> Result<Vec<RecordFailure>, ComponentError> {
        let text = json_lines(batch, self.config.values_only);
        let path = self.config.path.display().to_string();
        let file = self.file()?;
        let written = file.write_all(&text).and_then(|()| file.sync_data());
        if let Err(e) = written {
            // The file may now end in part of a line; reopening cuts it before the retry.
            self.file = None;
            return Err(ComponentError::retryable(format!("writing {path}: {e}")));
        }
        Ok(Vec::new())
    }
}
