//! How a Weir [`Record`] is stored as a Fluvio record.
//!
//! The Fluvio record key is the Weir key as is (`None` stays a null key, so Fluvio tools and
//! SmartModules see the same key Weir partitions by). Fluvio's own record timestamp is the
//! producer's clock, not the event time, so the event time and the headers go into the value,
//! before the payload:
//!
//! ```text
//! "WR" version=1 (3 bytes)
//! event time, milliseconds since the epoch     i64, little-endian
//! header count                                 u32, little-endian
//! per header: name length u32 LE, name (UTF-8), value length u32 LE, value
//! payload                                      the rest of the value
//! ```
//!
//! Decoding is exact: `decode(encode(r)) == r` for every record.

use weir_schemas::Record;

/// The first bytes of every value Weir writes.
const MAGIC: [u8; 3] = [b'W', b'R', 1];

/// Encodes a record's value (event time, headers, payload).
pub fn encode_value(record: &Record) -> Vec<u8> {
    let headers: usize = record.headers.iter().map(|(name, value)| 8 + name.len() + value.len()).sum();
    let mut out = Vec::with_capacity(MAGIC.len() + 12 + headers + record.value.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&record.timestamp_ms.to_le_bytes());
    out.extend_from_slice(&(record.headers.len() as u32).to_le_bytes());
    for (name, value) in &record.headers {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }
    out.extend_from_slice(&record.value);
    out
}

/// The event time of an encoded value, without decoding the rest.
pub fn event_time(value: &[u8]) -> Result<i64, String> {
    let mut reader = Reader { bytes: value, at: 0 };
    reader.magic()?;
    reader.i64()
}

/// Decodes a value written by [`encode_value`], with the Fluvio record's key.
pub fn decode(key: Option<&[u8]>, value: &[u8]) -> Result<Record, String> {
    let mut reader = Reader { bytes: value, at: 0 };
    reader.magic()?;
    let timestamp_ms = reader.i64()?;
    let count = reader.u32()? as usize;
    // Each header takes at least 8 bytes, so a corrupt count cannot make us allocate much.
    let mut headers = Vec::with_capacity(count.min(value.len() / 8));
    for _ in 0..count {
        let len = reader.u32()? as usize;
        let name = String::from_utf8(reader.take(len)?.to_vec())
            .map_err(|_| format!("header name at byte {} is not UTF-8", reader.at - len))?;
        let len = reader.u32()? as usize;
        headers.push((name, reader.take(len)?.to_vec()));
    }
    Ok(Record { key: key.map(<[u8]>::to_vec), timestamp_ms, headers, value: value[reader.at..].to_vec() })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, len: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(len).filter(|&end| end <= self.bytes.len()).ok_or_else(|| {
            format!("the value ends at byte {} where {len} more bytes were expected at {}", self.bytes.len(), self.at)
        })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn magic(&mut self) -> Result<(), String> {
        match self.take(MAGIC.len()) {
            Ok(magic) if magic == MAGIC => Ok(()),
            _ => Err("not a record written by Weir (no `WR` version 1 prefix)".to_string()),
        }
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn any_record() -> impl Strategy<Value = Record> {
        (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
            any::<i64>(),
            proptest::collection::vec((".{0,8}", proptest::collection::vec(any::<u8>(), 0..16)), 0..4),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(key, timestamp_ms, headers, value)| Record { key, timestamp_ms, headers, value })
    }

    proptest! {
        #[test]
        fn decoding_gives_back_the_record(record in any_record()) {
            let value = encode_value(&record);
            prop_assert_eq!(event_time(&value).unwrap(), record.timestamp_ms);
            prop_assert_eq!(decode(record.key.as_deref(), &value).unwrap(), record);
        }

        #[test]
        fn a_cut_value_is_an_error_not_a_panic(record in any_record(), cut in 0usize..32) {
            let value = encode_value(&record);
            let header_bytes = value.len() - record.value.len();
            // Cutting into the prefix or the headers must fail; cutting the payload only shortens it.
            if cut < header_bytes {
                prop_assert!(decode(None, &value[..cut]).is_err());
            }
        }
    }

    #[test]
    fn a_value_not_written_by_weir_is_refused() {
        let err = decode(None, b"{\"plain\":\"json\"}").unwrap_err();
        assert!(err.contains("not a record written by Weir"), "{err}");
    }

    #[test]
    fn an_empty_key_is_not_a_missing_key() {
        let record = Record::new(5, b"v".to_vec()).with_key(Vec::new());
        assert_eq!(decode(Some(b""), &encode_value(&record)).unwrap().key, Some(Vec::new()));
        assert_eq!(decode(None, &encode_value(&record)).unwrap().key, None);
    }
}
