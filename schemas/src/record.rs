//! Records: what every topic on the log holds.
//!
//! A record is a key (for partitioning and state), an event time, headers and a value. The value
//! is opaque to the log; on Weir's own topics it is an Avro single-object encoded event.

/// A record to append to a topic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Partitioning and state key; `None` for unkeyed records.
    pub key: Option<Vec<u8>>,
    /// Event time, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Ordered headers (name, value); names may repeat.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The payload.
    pub value: Vec<u8>,
}

impl Record {
    /// A record with only a value and an event time.
    pub fn new(timestamp_ms: i64, value: Vec<u8>) -> Self {
        Record { key: None, timestamp_ms, headers: Vec::new(), value }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}

/// A record read back from the log, with where it was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// The topic it was read from.
    pub topic: String,
    /// The partition it was read from.
    pub partition: u32,
    /// Its offset within the partition: dense, starting at 0.
    pub offset: u64,
    /// The record itself.
    pub record: Record,
}
