//! The on-disk record batch: what a segment file is a sequence of.
//!
//! ```text
//! base_offset u64 | length u32 | crc32c u32 | magic u8 | attributes u8 | record_count u32
//! | first_timestamp i64 | max_timestamp i64 | records...
//! record: timestamp i64 | key_len i32 (-1: no key) | key | value_len u32 | value
//!         | header_count u32 | (name_len u16 | name | value_len u32 | value)*
//! ```
//!
//! All integers are little-endian. `length` counts the bytes after itself; the CRC32C covers the
//! bytes after itself, so any flipped bit in a batch is detected when it is read.

use weir_schemas::Record;

/// Bytes before the records.
pub const HEADER_LEN: usize = 38;
/// Bytes of `base_offset` + `length`: the part not counted by `length`.
pub const PREFIX_LEN: usize = 12;
/// The only format version so far.
pub const MAGIC: u8 = 1;

/// The fixed fields of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: u64,
    /// Bytes after the `length` field.
    pub length: u32,
    /// CRC32C of the bytes after the `crc` field.
    pub crc: u32,
    /// Number of records.
    pub record_count: u32,
    /// Event time of the first record.
    pub first_timestamp: i64,
    /// Largest event time in the batch.
    pub max_timestamp: i64,
}

impl BatchHeader {
    /// Reads the fixed fields; `bytes` must hold at least [`HEADER_LEN`] bytes.
    pub fn parse(bytes: &[u8]) -> BatchHeader {
        BatchHeader {
            base_offset: u64::from_le_bytes(bytes[0..8].try_into().expect("8 bytes")),
            length: u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")),
            crc: u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")),
            record_count: u32::from_le_bytes(bytes[18..22].try_into().expect("4 bytes")),
            first_timestamp: i64::from_le_bytes(bytes[22..30].try_into().expect("8 bytes")),
            max_timestamp: i64::from_le_bytes(bytes[30..38].try_into().expect("8 bytes")),
        }
    }

    /// The whole batch's size on disk.
    pub fn total_len(&self) -> u64 {
        PREFIX_LEN as u64 + u64::from(self.length)
    }

    /// The offset of the last record.
    pub fn last_offset(&self) -> u64 {
        self.base_offset + u64::from(self.record_count) - 1
    }
}

/// Why a batch's bytes are not valid.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchFault {
    /// Fewer bytes than the batch says it has.
    Truncated,
    /// The bytes are all there but do not check out.
    Invalid(String),
}

/// Appends one batch for `records`, starting at `base_offset`, to `out`.
pub fn encode(base_offset: u64, records: &[Record], out: &mut Vec<u8>) -> Result<(), String> {
    let start = out.len();
    let first_ts = records.first().map_or(0, |r| r.timestamp_ms);
    let max_ts = records.iter().map(|r| r.timestamp_ms).max().unwrap_or(0);
    out.extend_from_slice(&base_offset.to_le_bytes());
    out.extend_from_slice(&[0; 8]); // length and crc, filled in below
    out.push(MAGIC);
    out.push(0);
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    out.extend_from_slice(&first_ts.to_le_bytes());
    out.extend_from_slice(&max_ts.to_le_bytes());
    for record in records {
        out.extend_from_slice(&record.timestamp_ms.to_le_bytes());
        match &record.key {
            Some(key) => {
                out.extend_from_slice(&len_i32(key.len(), "key")?.to_le_bytes());
                out.extend_from_slice(key);
            }
            None => out.extend_from_slice(&(-1i32).to_le_bytes()),
        }
        out.extend_from_slice(&len_u32(record.value.len(), "value")?.to_le_bytes());
        out.extend_from_slice(&record.value);
        out.extend_from_slice(&len_u32(record.headers.len(), "header count")?.to_le_bytes());
        for (name, value) in &record.headers {
            let name_len =
                u16::try_from(name.len()).map_err(|_| format!("header name `{name}` is longer than 65535 bytes"))?;
            out.extend_from_slice(&name_len.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&len_u32(value.len(), "header value")?.to_le_bytes());
            out.extend_from_slice(value);
        }
    }
    let length = len_u32(out.len() - start - PREFIX_LEN, "batch")?;
    out[start + 8..start + 12].copy_from_slice(&length.to_le_bytes());
    let crc = crc32c::crc32c(&out[start + 16..]);
    out[start + 12..start + 16].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn len_u32(len: usize, what: &str) -> Result<u32, String> {
    u32::try_from(len).map_err(|_| format!("{what} of {len} bytes is larger than 4 GiB"))
}

fn len_i32(len: usize, what: &str) -> Result<i32, String> {
    i32::try_from(len).map_err(|_| format!("{what} of {len} bytes is larger than 2 GiB"))
}

/// Checks a whole batch (`bytes` holds exactly the batch) and its CRC.
pub fn check(bytes: &[u8]) -> Result<BatchHeader, BatchFault> {
    if bytes.len() < HEADER_LEN {
        return Err(BatchFault::Truncated);
    }
    let header = BatchHeader::parse(bytes);
    if (header.length as usize) < HEADER_LEN - PREFIX_LEN {
        return Err(BatchFault::Invalid(format!("batch length {} is shorter than a batch header", header.length)));
    }
    if (bytes.len() as u64) < header.total_len() {
        return Err(BatchFault::Truncated);
    }
    let body = &bytes[16..header.total_len() as usize];
    let crc = crc32c::crc32c(body);
    if crc != header.crc {
        return Err(BatchFault::Invalid(format!(
            "CRC32C mismatch for the batch at offset {} (stored {:#010x}, computed {crc:#010x})",
            header.base_offset, header.crc
        )));
    }
    if bytes[16] != MAGIC {
        return Err(BatchFault::Invalid(format!("unknown batch format version {}", bytes[16])));
    }
    if header.record_count == 0 {
        return Err(BatchFault::Invalid("batch with no records".into()));
    }
    Ok(header)
}

/// Decodes the records of a checked batch, calling `each(offset, record)` for every record.
pub fn decode(bytes: &[u8], mut each: impl FnMut(u64, Record)) -> Result<(), String> {
    let header = BatchHeader::parse(bytes);
    let mut reader = Reader { bytes: &bytes[..header.total_len() as usize], at: HEADER_LEN };
    for i in 0..u64::from(header.record_count) {
        let timestamp_ms = reader.i64()?;
        let key_len = reader.i32()?;
        let key = if key_len < 0 { None } else { Some(reader.take(key_len as usize)?.to_vec()) };
        let value_len = reader.u32()? as usize;
        let value = reader.take(value_len)?.to_vec();
        let header_count = reader.u32()?;
        let mut headers = Vec::with_capacity(header_count.min(64) as usize);
        for _ in 0..header_count {
            let name_len = reader.u16()? as usize;
            let name = String::from_utf8(reader.take(name_len)?.to_vec())
                .map_err(|_| "header name is not UTF-8".to_string())?;
            let value_len = reader.u32()? as usize;
            headers.push((name, reader.take(value_len)?.to_vec()));
        }
        each(header.base_offset + i, Record { key, timestamp_ms, headers, value });
    }
    if reader.at != reader.bytes.len() {
        return Err(format!("{} bytes left over after the last record", reader.bytes.len() - reader.at));
    }
    Ok(())
}

/// Reads the event times of a checked batch without copying keys and values.
pub fn timestamps(bytes: &[u8], mut each: impl FnMut(u64, i64)) -> Result<(), String> {
    let header = BatchHeader::parse(bytes);
    let mut reader = Reader { bytes: &bytes[..header.total_len() as usize], at: HEADER_LEN };
    for i in 0..u64::from(header.record_count) {
        let timestamp_ms = reader.i64()?;
        let key_len = reader.i32()?;
        if key_len > 0 {
            reader.take(key_len as usize)?;
        }
        let value_len = reader.u32()? as usize;
        reader.take(value_len)?;
        for _ in 0..reader.u32()? {
            let name_len = reader.u16()? as usize;
            reader.take(name_len)?;
            let value_len = reader.u32()? as usize;
            reader.take(value_len)?;
        }
        each(header.base_offset + i, timestamp_ms);
    }
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        match end {
            Some(end) => {
                let slice = &self.bytes[self.at..end];
                self.at = end;
                Ok(slice)
            }
            None => Err(format!("a field at byte {} runs past the end of its batch", self.at)),
        }
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Record> {
        vec![Record::new(10, b"one".to_vec()).with_key("k").with_header("h", "v"), Record::new(5, Vec::new())]
    }

    #[test]
    fn round_trips() {
        let mut bytes = Vec::new();
        encode(7, &sample(), &mut bytes).unwrap();
        let header = check(&bytes).unwrap();
        assert_eq!((header.base_offset, header.record_count, header.max_timestamp), (7, 2, 10));
        assert_eq!(header.total_len(), bytes.len() as u64);
        let mut got = Vec::new();
        decode(&bytes, |offset, record| got.push((offset, record))).unwrap();
        assert_eq!(got, vec![(7, sample()[0].clone()), (8, sample()[1].clone())]);
    }

    #[test]
    fn every_flipped_bit_after_the_length_is_detected() {
        let mut bytes = Vec::new();
        encode(0, &sample(), &mut bytes).unwrap();
        for i in PREFIX_LEN..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[i] ^= 1 << bit;
                assert!(check(&damaged).is_err(), "flip of bit {bit} in byte {i} went unnoticed");
            }
        }
    }

    #[test]
    fn short_input_is_truncated_not_invalid() {
        let mut bytes = Vec::new();
        encode(0, &sample(), &mut bytes).unwrap();
        for len in 0..bytes.len() {
            assert_eq!(check(&bytes[..len]), Err(BatchFault::Truncated), "prefix of {len} bytes");
        }
    }
}
