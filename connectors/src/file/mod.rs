//! `file`: reads vendor events from a local NDJSON file, one JSON value per line.
//!
//! The cursor is the byte position after the last line handed over, so a restart resumes at
//! the first line not yet durable on the log: nothing is skipped and nothing read twice. A line
//! that is not JSON is rejected (to `dlq`) with its file, line number and parse error, and
//! reading goes on. Blank lines are skipped.

mod config;
mod source;
#[cfg(test)]
mod tests;

pub use config::FileSourceConfig;
pub use source::FileSource;
