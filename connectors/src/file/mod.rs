//! `file`: reads vendor events from a local NDJSON file, one JSON value per line.
//!
//! The cursor is the byte position after the last line handed over, so a restart resumes at
//! the first line not yet durable on the log: nothing is skipped and nothing read twice. A line
//! that is not JSON is rejected (to `dlq`) with its file, line number and parse error, and
//! reading goes on. Blank lines are skipped. A last line without a newline is taken only when it
//! is already valid JSON (it may still be being written); while following a file, only complete
//! lines are read.

mod config;
mod source;
#[cfg(test)]
mod tests;

pub use config::FileSourceConfig;
pub use source::FileSource;
