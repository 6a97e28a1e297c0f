//! End-to-end tests: the `weir` binary run as a user would, on temporary data directories.

mod chain;
mod common;
mod connectors;
mod crash;
mod demo;
mod deploy;
mod log_cli;
mod schemas_bench;
mod sinks;
mod validate;
