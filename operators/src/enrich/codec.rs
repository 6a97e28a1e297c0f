//! The compact, deterministic byte layout of the enrich operator's state entries.
//!
//! Lengths and counts are LEB128 varints, event times (ms since the epoch) a varint of their
//! zigzag encoding + 1 with 0 for "never set" (`i64::MIN`), strings a varint byte length then UTF-8, optional strings a varint of `len + 1` (0 = absent), optional booleans one byte
//! (0 absent, 1 false, 2 true). The same value always encodes to the same bytes, and decoding
//! checks everything (truncation, overlong varints, UTF-8, unknown tags, trailing bytes), so a
//! damaged entry is an error naming what is wrong, never a panic.

/// Why a state entry cannot be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The entry ends in the middle of a value.
    #[error("truncated at byte {0}")]
    Truncated(usize),
    /// A varint is longer than 10 bytes or overflows 64 bits.
    #[error("bad varint at byte {0}")]
    BadVarint(usize),
    /// A string is not UTF-8.
    #[error("string at byte {0} is not UTF-8")]
    NotUtf8(usize),
    /// A tag byte (optional boolean, flag) has a value the layout does not define.
    #[error("unknown tag {tag} at byte {at}")]
    BadTag {
        /// The byte.
        tag: u8,
        /// Where.
        at: usize,
    },
    /// The entry was written with a layout this build does not know.
    #[error("unknown layout version {0}")]
    UnknownVersion(u8),
    /// Bytes are left after the entry.
    #[error("{0} bytes left over after the entry")]
    TrailingBytes(usize),
}

/// Appends values to a buffer in the layout described in the module documentation.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A writer whose first byte is the layout version.
    pub fn new(version: u8) -> Writer {
        Writer { buf: vec![version] }
    }

    /// The bytes written.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// One byte.
    pub fn u8(&mut self, value: u8) {
        self.buf.push(value);
    }

    /// An unsigned varint.
    pub fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.buf.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.buf.push(value as u8);
    }

    /// An event time; `i64::MIN` ("never set") takes one byte.
    pub fn time(&mut self, value: i64) {
        match value {
            i64::MIN => self.varint(0),
            // zigzag maps every other i64 to at most u64::MAX - 1.
            value => self.varint((((value << 1) ^ (value >> 63)) as u64) + 1),
        }
    }

    /// A length or count.
    pub fn len(&mut self, len: usize) {
        self.varint(len as u64);
    }

    /// A string.
    pub fn str(&mut self, value: &str) {
        self.len(value.len());
        self.buf.extend_from_slice(value.as_bytes());
    }

    /// An optional string.
    pub fn opt_str(&mut self, value: Option<&str>) {
        match value {
            None => self.varint(0),
            Some(value) => {
                self.varint(value.len() as u64 + 1);
                self.buf.extend_from_slice(value.as_bytes());
            }
        }
    }

    /// An optional boolean.
    pub fn opt_bool(&mut self, value: Option<bool>) {
        self.u8(match value {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        });
    }

    /// A list of strings: count, then each.
    pub fn strs(&mut self, values: &[String]) {
        self.len(values.len());
        for value in values {
            self.str(value);
        }
    }
}

/// Reads values written by [`Writer`].
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader over an entry whose first byte must be `version`.
    pub fn new(bytes: &'a [u8], version: u8) -> Result<Reader<'a>, CodecError> {
        let mut reader = Reader { bytes, at: 0 };
        match reader.u8()? {
            found if found == version => Ok(reader),
            found => Err(CodecError::UnknownVersion(found)),
        }
    }

    /// Checks that nothing is left.
    pub fn finish(self) -> Result<(), CodecError> {
        match self.bytes.len() - self.at {
            0 => Ok(()),
            left => Err(CodecError::TrailingBytes(left)),
        }
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        let byte = *self.bytes.get(self.at).ok_or(CodecError::Truncated(self.at))?;
        self.at += 1;
        Ok(byte)
    }

    /// An unsigned varint.
    pub fn varint(&mut self) -> Result<u64, CodecError> {
        let start = self.at;
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(CodecError::BadVarint(start));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(CodecError::BadVarint(start))
    }

    /// An event time written by [`Writer::time`].
    pub fn time(&mut self) -> Result<i64, CodecError> {
        match self.varint()? {
            0 => Ok(i64::MIN),
            n => {
                let zigzag = n - 1;
                Ok((zigzag >> 1) as i64 ^ -((zigzag & 1) as i64))
            }
        }
    }

    /// A length or count, checked against the bytes left (every item takes at least one byte),
    /// so a damaged count cannot make the caller reserve memory the entry cannot fill.
    pub fn len(&mut self) -> Result<usize, CodecError> {
        let at = self.at;
        let len = self.varint()?;
        match usize::try_from(len) {
            Ok(len) if len <= self.bytes.len() - self.at => Ok(len),
            _ => Err(CodecError::Truncated(at)),
        }
    }

    /// `len` bytes as a string.
    fn text(&mut self, len: usize) -> Result<&'a str, CodecError> {
        let start = self.at;
        let end = start.checked_add(len).filter(|&end| end <= self.bytes.len()).ok_or(CodecError::Truncated(start))?;
        let text = std::str::from_utf8(&self.bytes[start..end]).map_err(|_| CodecError::NotUtf8(start))?;
        self.at = end;
        Ok(text)
    }

    /// A string.
    pub fn str(&mut self) -> Result<&'a str, CodecError> {
        let len = self.len()?;
        self.text(len)
    }

    /// An optional string.
    pub fn opt_str(&mut self) -> Result<Option<&'a str>, CodecError> {
        let at = self.at;
        match self.varint()? {
            0 => Ok(None),
            n => {
                let len = usize::try_from(n - 1).map_err(|_| CodecError::Truncated(at))?;
                self.text(len).map(Some)
            }
        }
    }

    /// An optional string, owned.
    pub fn opt_string(&mut self) -> Result<Option<String>, CodecError> {
        Ok(self.opt_str()?.map(str::to_string))
    }

    /// An optional boolean.
    pub fn opt_bool(&mut self) -> Result<Option<bool>, CodecError> {
        let at = self.at;
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(false)),
            2 => Ok(Some(true)),
            tag => Err(CodecError::BadTag { tag, at }),
        }
    }

    /// A boolean stored as one byte, 0 or 1.
    pub fn bool(&mut self) -> Result<bool, CodecError> {
        let at = self.at;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(CodecError::BadTag { tag, at }),
        }
    }

    /// A list of strings.
    pub fn strs(&mut self) -> Result<Vec<String>, CodecError> {
        let count = self.len()?;
        (0..count).map(|_| self.str().map(str::to_string)).collect()
    }
}
