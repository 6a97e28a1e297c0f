//! How a record is shown as JSON, the same everywhere (`console` and `file` sinks,
//! `weir log consume --format json`).
//!
//! ```json
//! {"topic":"events","partition":0,"offset":7,"timestamp":1714675581121,
//!  "time":"2024-05-02T18:46:21.121Z","key":"00u1","headers":{"weir-id":"raw.okta/0/7/0"},
//!  "schema":"io.weir.IdentityActivity","value":{...}}
//! ```
//!
//! The value is decoded when it is Avro single-object encoded (by its schema fingerprint) or
//! JSON; anything else is shown as a UTF-8 string, or as `{"base64": ...}` when not text. Keys and
//! header values are strings, or `{"base64": ...}` when not UTF-8.

use base64::Engine;
use serde_json::{json, Map, Value};
use weir_schemas::StoredRecord;

/// The JSON form of a stored record.
pub fn record_to_json(record: &StoredRecord) -> Value {
    let mut object = Map::new();
    object.insert("topic".into(), json!(record.topic));
    object.insert("partition".into(), json!(record.partition));
    object.insert("offset".into(), json!(record.offset));
    object.insert("timestamp".into(), json!(record.record.timestamp_ms));
    if let Some(time) = rfc3339_ms(record.record.timestamp_ms) {
        object.insert("time".into(), json!(time));
    }
    object.insert("key".into(), record.record.key.as_deref().map_or(Value::Null, bytes_to_json));
    let headers: Map<String, Value> =
        record.record.headers.iter().map(|(name, value)| (name.clone(), bytes_to_json(value))).collect();
    object.insert("headers".into(), Value::Object(headers));
    let (schema, value) = value_to_json(&record.record.value);
    if let Some(schema) = schema {
        object.insert("schema".into(), json!(schema));
    }
    object.insert("value".into(), value);
    Value::Object(object)
}

/// Records as JSON lines (each ending in a newline): whole records, or only their decoded values.
pub fn json_lines(batch: &[StoredRecord], values_only: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for record in batch {
        let json = if values_only { value_to_json(&record.record.value).1 } else { record_to_json(record) };
        out.extend_from_slice(json.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// A value decoded for display, with its schema name when it is Avro.
pub fn value_to_json(value: &[u8]) -> (Option<String>, Value) {
    if weir_schemas::avro::is_single_object(value) {
        return match weir_schemas::avro::decode_to_json(value) {
            Ok((schema, decoded)) => (Some(schema), decoded),
            Err(e) => (None, json!({ "undecodable": e.to_string(), "base64": base64(value) })),
        };
    }
    if let Ok(decoded) = serde_json::from_slice::<Value>(value) {
        return (None, decoded);
    }
    (None, bytes_to_json(value))
}

/// The header naming a record's stable id.
pub const ID_HEADER: &str = "weir-id";

/// A record's stable id: its `weir-id` header, else `topic/partition/offset`.
pub fn record_id(record: &StoredRecord) -> String {
    match record.record.headers.iter().find(|(name, _)| name == ID_HEADER) {
        Some((_, value)) => String::from_utf8_lossy(value).into_owned(),
        None => format!("{}/{}/{}", record.topic, record.partition, record.offset),
    }
}

/// Text as a string, anything else as `{"base64": ...}`.
pub fn bytes_to_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => json!(text),
        Err(_) => json!({ "base64": base64(bytes) }),
    }
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Milliseconds since the epoch as RFC 3339 (UTC, milliseconds).
pub fn rfc3339_ms(timestamp_ms: i64) -> Option<String> {
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(timestamp_ms) * 1_000_000).ok()?;
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    time.format(&format).ok()
}

#[cfg(test)]
mod tests {
    use weir_schemas::Record;

    use super::*;

    #[test]
    fn shows_json_text_and_binary_values() {
        let stored = |value: &[u8]| StoredRecord {
            topic: "t".into(),
            partition: 0,
            offset: 3,
            record: Record::new(1_714_675_581_121, value.to_vec()).with_key(vec![0xff]).with_header("h", "v"),
        };
        let json = record_to_json(&stored(b"{\"a\":1}"));
        assert_eq!(json["value"], json!({"a": 1}));
        assert_eq!(json["time"], "2024-05-02T18:46:21.121Z");
        assert_eq!(json["key"], json!({"base64": "/w=="}));
        assert_eq!(json["headers"]["h"], "v");
        assert_eq!(record_to_json(&stored(b"plain"))["value"], "plain");
        assert_eq!(record_to_json(&stored(&[0, 159]))["value"], json!({"base64": "AJ8="}));
    }
}
