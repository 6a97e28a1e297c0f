//! The `file` source itself.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::time::Duration;

use async_trait::async_trait;
use weir_schemas::component::{ComponentError, Rejected, Source, SourceBatch, SourcePoll};
use weir_schemas::events::RawEnvelope;
use weir_schemas::Record;

use super::FileSourceConfig;
use crate::batch::now_ms;

/// How long to wait before looking at a followed file again.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Reads an NDJSON file line by line; the cursor is a byte position.
pub struct FileSource {
    name: String,
    config: FileSourceConfig,
    reader: Option<BufReader<std::fs::File>>,
    /// Byte position after the last line read.
    position: u64,
    /// 1-based number of the next line (counted from where this run started).
    line: u64,
    /// Whether the cursor the run started from was the start of the file, so line numbers are
    /// absolute.
    lines_are_absolute: bool,
}

impl FileSource {
    /// A source named `name` (its raw topic is `raw.<name>`).
    pub fn new(name: impl Into<String>, config: FileSourceConfig) -> Self {
        FileSource { name: name.into(), config, reader: None, position: 0, line: 1, lines_are_absolute: true }
    }
}

/// Where a line is: `path:line` when lines are counted from the start, else `path at byte N`.
fn describe_position(path: &std::path::Path, lines_are_absolute: bool, line: u64, position: u64) -> String {
    if lines_are_absolute {
        format!("{}:{line}", path.display())
    } else {
        format!("{} at byte {position}", path.display())
    }
}

#[async_trait]
impl Source for FileSource {
    async fn open(&mut self, committed_cursor: Option<String>) -> Result<(), ComponentError> {
        let path = &self.config.path;
        let position = match committed_cursor {
            None => 0,
            Some(cursor) => cursor.parse::<u64>().map_err(|_| {
                ComponentError::fatal(format!(
                    "source {}: committed cursor `{cursor}` is not a byte position",
                    self.name
                ))
            })?,
        };
        let mut file = std::fs::File::open(path)
            .map_err(|e| ComponentError::fatal(format!("source {}: cannot open {}: {e}", self.name, path.display())))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if position > len {
            return Err(ComponentError::fatal(format!(
                "source {}: {} is shorter ({len} bytes) than the committed position {position}; was it replaced? \
                 Reset the cursor to read it again",
                self.name,
                path.display()
            )));
        }
        file.seek(SeekFrom::Start(position)).map_err(|e| {
            ComponentError::fatal(format!("source {}: cannot seek in {}: {e}", self.name, path.display()))
        })?;
        self.reader = Some(BufReader::new(file));
        self.position = position;
        self.lines_are_absolute = position == 0;
        Ok(())
    }

    async fn poll(&mut self) -> Result<SourcePoll, ComponentError> {
        let Some(reader) = self.reader.as_mut() else {
            return Err(ComponentError::fatal(format!("source {}: polled before it was opened", self.name)));
        };
        let mut batch = SourceBatch::default();
        let mut line = Vec::new();
        let received_at = now_ms();
        let mut lines_read = 0;
        while lines_read < self.config.batch_lines.max(1) {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(|e| {
                ComponentError::retryable(format!("source {}: reading {}: {e}", self.name, self.config.path.display()))
            })?;
            if n == 0 {
                break;
            }
            let unterminated = !line.ends_with(b"\n");
            // A last line without a newline may still be being written. Following, wait for it;
            // otherwise take it only if it is already whole JSON, so a line caught half-written is
            // read again, complete, on the next run instead of being dead-lettered in two halves.
            let partial = unterminated
                && (self.config.follow || serde_json::from_slice::<serde::de::IgnoredAny>(line.trim_ascii()).is_err());
            if partial {
                let back = -(n as i64);
                reader
                    .seek_relative(back)
                    .map_err(|e| ComponentError::retryable(format!("source {}: {e}", self.name)))?;
                if !self.config.follow {
                    tracing::warn!(
                        source = %self.name, file = %self.config.path.display(), position = self.position,
                        "the last line has no newline and is not valid JSON yet; it will be read once complete"
                    );
                }
                break;
            }
            lines_read += 1;
            let content = line.trim_ascii();
            if !content.is_empty() {
                match serde_json::from_slice::<serde::de::IgnoredAny>(content) {
                    Ok(_) => {
                        let envelope = RawEnvelope {
                            source: self.name.clone(),
                            vendor: self.config.vendor.clone(),
                            received_at,
                            cursor: Some((self.position + n as u64).to_string()),
                            content_type: "application/json".into(),
                            payload: content.to_vec(),
                        };
                        let value = weir_schemas::encode(&envelope).map_err(|e| {
                            ComponentError::fatal(format!("source {}: encoding a raw record: {e}", self.name))
                        })?;
                        let id = format!("{}:{}", self.config.path.display(), self.position);
                        batch.records.push(Record::new(received_at, value).with_header("weir-id", id));
                    }
                    Err(e) => batch.rejected.push(Rejected {
                        reason: format!(
                            "{}: not valid JSON: {e}",
                            describe_position(&self.config.path, self.lines_are_absolute, self.line, self.position)
                        ),
                        original: content.to_vec(),
                    }),
                }
            }
            self.position += n as u64;
            self.line += 1;
        }
        if lines_read == 0 {
            return Ok(if self.config.follow { SourcePoll::Idle(FOLLOW_POLL) } else { SourcePoll::Finished });
        }
        batch.cursor = Some(self.position.to_string());
        Ok(SourcePoll::Batch(batch))
    }
}
