//! `console`: prints every record as one JSON line on standard output (see [`crate::encoding`]).
//! For demos and debugging; standard output is acknowledged once flushed.

mod config;
mod sink;

pub use config::ConsoleSinkConfig;
pub use sink::ConsoleSink;
