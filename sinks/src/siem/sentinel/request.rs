//! The body of a request (a JSON array of rows, both APIs) and the Data Collector API's
//! `SharedKey` signature.
//!
//! ```json
//! [{"user":"alice","action":"login","TimeGenerated":"2024-05-02T18:46:21.121Z","WeirId":"raw.okta/0/7/0"}]
//! ```

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use weir_schemas::StoredRecord;

use crate::encoding::{record_id, rfc3339_ms, value_to_json};

/// One row for a record: its decoded value (a JSON object), with `time_field` set to the event
/// time when the value has no such field, and `id_field` set to the record's stable id (either
/// is skipped when empty). Or why the record cannot be a row.
pub fn row_json(record: &StoredRecord, time_field: &str, id_field: &str) -> Result<Vec<u8>, String> {
    let (_, value) = value_to_json(&record.record.value);
    let mut row = match value {
        Value::Object(row) => row,
        other => {
            let kind = match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                Value::Object(_) => "an object",
            };
            return Err(format!("the value is {kind}, not a JSON object: Azure Monitor ingests rows of named columns"));
        }
    };
    if !time_field.is_empty() && !row.contains_key(time_field) {
        if let Some(time) = rfc3339_ms(record.record.timestamp_ms) {
            row.insert(time_field.to_string(), json!(time));
        }
    }
    if !id_field.is_empty() {
        row.insert(id_field.to_string(), json!(record_id(record)));
    }
    Ok(Value::Object(row).to_string().into_bytes())
}

/// Rows of one request: `(index in the batch, row JSON)`, in batch order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chunk {
    /// The rows.
    pub rows: Vec<(usize, Vec<u8>)>,
}

impl Chunk {
    /// Bytes of the JSON array of these rows: brackets, rows and the commas between them.
    pub fn body_len(&self) -> usize {
        array_len(self.rows.iter().map(|(_, row)| row.len()))
    }

    /// The JSON array of the rows. Always an array: the Logs Ingestion API answers 204 to a
    /// bare object yet ingests nothing.
    pub fn body(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.body_len());
        body.push(b'[');
        for (position, (_, row)) in self.rows.iter().enumerate() {
            if position > 0 {
                body.push(b',');
            }
            body.extend_from_slice(row);
        }
        body.push(b']');
        body
    }

    /// Indexes in the batch of the rows, in order.
    pub fn indexes(&self) -> impl Iterator<Item = usize> + '_ {
        self.rows.iter().map(|(index, _)| *index)
    }

    /// The first half of the rows and the rest.
    pub fn split(mut self) -> (Chunk, Chunk) {
        let rest = self.rows.split_off(self.rows.len() / 2);
        (self, Chunk { rows: rest })
    }
}

/// Bytes of a JSON array holding rows of these lengths.
pub fn array_len(row_lengths: impl IntoIterator<Item = usize>) -> usize {
    let (count, sum) = row_lengths.into_iter().fold((0usize, 0usize), |(n, sum), len| (n + 1, sum + len));
    2 + sum + count.saturating_sub(1)
}

/// Splits rows into requests of at most `max_rows` rows whose array is at most `max_bytes`
/// bytes (a row whose array alone is larger goes alone).
pub fn chunks(rows: Vec<(usize, Vec<u8>)>, max_rows: usize, max_bytes: usize) -> Vec<Chunk> {
    let max_rows = max_rows.max(1);
    let mut out = Vec::new();
    let mut current = Chunk::default();
    let mut current_len = array_len([]);
    for (index, row) in rows {
        let added = row.len() + usize::from(!current.rows.is_empty());
        let full = current.rows.len() >= max_rows || current_len + added > max_bytes;
        if full && !current.rows.is_empty() {
            out.push(std::mem::take(&mut current));
            current_len = array_len([]);
        }
        current_len += row.len() + usize::from(!current.rows.is_empty());
        current.rows.push((index, row));
    }
    if !current.rows.is_empty() {
        out.push(current);
    }
    out
}

/// The Data Collector API's string to sign for a POST of `content_length` bytes at `date`
/// (the `x-ms-date` header, RFC 1123). Note the literal `x-ms-date:` inside it: Microsoft's
/// formula omits it, its worked example (and the service) includes it.
pub fn string_to_sign(content_length: usize, date: &str) -> String {
    format!("POST\n{content_length}\napplication/json\nx-ms-date:{date}\n/api/logs")
}

/// `Base64(HMAC-SHA256(key, UTF-8(string_to_sign)))`, `key` being the base64-decoded shared
/// key.
pub fn shared_key_signature(key: &[u8], content_length: usize, date: &str) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(string_to_sign(content_length, date).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}
