//! SIEM sinks.

pub mod sentinel;
pub mod splunk_hec;
