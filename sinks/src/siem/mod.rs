//! SIEM sinks.

pub mod splunk_hec;
