//! Field paths into a decoded record, and the decoding itself: what `key`, `filter`, `time_field`
//! and the metrics' `field` options address.
//!
//! A record's value is decoded generically into JSON ([`decode_input`]): Avro single-object
//! encoded values with the schema registry (`decode_to_json`: enums become their symbol, unions
//! their inner value, maps objects, timestamps integer milliseconds), anything else as a JSON
//! object (NDJSON topics). A [`FieldPath`] is a dotted path into that JSON: `decision`,
//! `labels.team`, `user_context.department`. A segment ending in `[]` steps into every element
//! of an array (`violations[].subject`); such a path may give several values and is allowed only
//! where several values make sense (distinct counts and top-k). There is no quoting: a map key that
//! itself holds a dot cannot be addressed.
//!
//! A JSON `null` counts as missing, so an optional Avro field that is unset is missing too.

use std::fmt;

use serde_json::Value;
use weir_schemas::record::Record;

/// Why a path in the configuration is not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path is empty or has an empty segment (`a..b`, `.a`).
    #[error("field path {0:?} has an empty segment")]
    EmptySegment(String),
    /// `[]` appears anywhere but at the end of a segment.
    #[error("field path {0:?}: `[]` may only end a segment, as in `violations[].subject`")]
    MisplacedEach(String),
}

/// One step of a [`FieldPath`].
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    /// The member of an object with this name.
    Field(String),
    /// Every element of an array.
    Each,
}

/// A parsed dotted path, e.g. `labels.team` or `violations[].subject`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldPath {
    text: String,
    steps: Vec<Step>,
}

impl FieldPath {
    /// Parses a dotted path.
    pub fn parse(text: &str) -> Result<FieldPath, PathError> {
        let mut steps = Vec::new();
        for segment in text.split('.') {
            let (name, each) = match segment.strip_suffix("[]") {
                Some(name) => (name, true),
                None => (segment, false),
            };
            if name.is_empty() {
                return Err(PathError::EmptySegment(text.to_string()));
            }
            if name.contains('[') || name.contains(']') {
                return Err(PathError::MisplacedEach(text.to_string()));
            }
            steps.push(Step::Field(name.to_string()));
            if each {
                steps.push(Step::Each);
            }
        }
        Ok(FieldPath { text: text.to_string(), steps })
    }

    /// Whether the path may give several values (it steps into an array with `[]`).
    pub fn is_multi(&self) -> bool {
        self.steps.contains(&Step::Each)
    }

    /// The path as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The one value at this path; `None` when any step is missing or the value is null. For a
    /// multi-valued path, the first value.
    pub fn get<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        let mut found = None;
        self.walk(root, 0, &mut |v| {
            if found.is_none() {
                found = Some(v);
            }
        });
        found
    }

    /// Every value at this path, in document order (nulls and missing members skipped).
    pub fn values<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let mut found = Vec::new();
        self.walk(root, 0, &mut |v| found.push(v));
        found
    }

    fn walk<'a>(&self, at: &'a Value, step: usize, each: &mut dyn FnMut(&'a Value)) {
        if at.is_null() {
            return;
        }
        match self.steps.get(step) {
            None => each(at),
            Some(Step::Field(name)) => {
                if let Some(next) = at.as_object().and_then(|o| o.get(name)) {
                    self.walk(next, step + 1, each);
                }
            }
            Some(Step::Each) => {
                if let Some(items) = at.as_array() {
                    for item in items {
                        self.walk(item, step + 1, each);
                    }
                }
            }
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A scalar JSON value as text: strings as they are, numbers and booleans as JSON writes them.
/// `None` for objects and arrays (and null), which have no one obvious text.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// A record's event time: the configured `time_field` of its decoded value, else its timestamp.
/// Errors are rejection reasons.
pub fn event_time(time_field: Option<&FieldPath>, value: Option<&Value>, record: &Record) -> Result<i64, String> {
    let time = match (time_field, value) {
        (Some(path), Some(value)) => {
            let raw = path.get(value).ok_or_else(|| format!("time_field `{path}` is missing"))?;
            time_millis(raw).ok_or_else(|| {
                format!("time_field `{path}` is {}, not integer milliseconds or an RFC 3339 time", type_name(raw))
            })?
        }
        _ => record.timestamp_ms,
    };
    if !(-super::MAX_EVENT_TIME..=super::MAX_EVENT_TIME).contains(&time) {
        return Err(format!("event time {time} ms is out of range (at most ±2^60)"));
    }
    Ok(time)
}

/// A short name of a JSON value's type, for reasons.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Decodes a record value for path lookups: Avro single-object encoding through the schema
/// registry, else a JSON object. The error says why, without quoting the payload.
pub fn decode_input(bytes: &[u8]) -> Result<Value, String> {
    if weir_schemas::avro::is_single_object(bytes) {
        return weir_schemas::avro::decode_to_json(bytes)
            .map(|(_, value)| value)
            .map_err(|e| format!("cannot decode the Avro value: {e}"));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(other) => Err(format!("value is JSON {}, not an object or an Avro record", type_name(&other))),
        Err(_) => Err("value is neither Avro single-object encoded nor a JSON object".to_string()),
    }
}

/// An event time read from a field: integer milliseconds since the epoch, or an RFC 3339 string.
pub fn time_millis(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let parsed = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
            i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
        }
        _ => None,
    }
}
