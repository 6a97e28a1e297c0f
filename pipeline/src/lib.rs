//! Weir's pipeline: the log, the store, configuration, the runner and the `weir` binary's
//! commands.

pub mod cli;
pub mod components;
pub mod config;
pub mod log;
pub mod runner;
pub mod server;
pub mod store;
