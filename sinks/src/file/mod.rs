//! `file`: appends every record as one JSON line (see [`crate::encoding`]) to a local file.
//!
//! A batch is acknowledged only once it is written and synced to disk, so the runner never
//! commits past a record the file may not hold. After a crash between the write and the
//! commit, the batch is written again: the file is at-least-once, and each line carries the
//! record's topic, partition and offset (and `weir-id` header) to recognise repeats. A partial
//! last line left by a crash is cut when the file is opened, so the file stays valid NDJSON.

mod config;
mod sink;
#[cfg(test)]
mod tests;

pub use config::FileSinkConfig;
pub use sink::FileSink;
