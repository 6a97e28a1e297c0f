//! Avro single-object encoding of Weir's events, and the schema registry behind it.
//!
//! Every value on Weir's own topics is one Avro datum in [single-object encoding]: the marker
//! bytes `C3 01`, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's Parsing
//! Canonical Form, then the binary datum. The fingerprint names the schema that wrote the bytes,
//! so a reader can decode data written by any schema version it knows.
//!
//! The [`Registry`] holds every schema this build knows: the current `schemas/avro/*.avsc` and
//! every past version recorded under `schemas/history/` (see [`crate::compat`]). Both are compiled
//! in, so the `weir` binary needs no schema files at run time.
//!
//! Guarantees:
//! - [`encode`] writes with the current schema of the value's type. A Rust type that has drifted
//!   from its `.avsc` fails to encode (a field the schema lacks, a wrong type) or to decode (a field
//!   the Rust type lacks: event types deny unknown fields); it never writes data the schema cannot
//!   read.
//! - [`decode`] reads data written with the current or any recorded version of the type's schema,
//!   resolving it to the current one (Avro schema resolution: new fields take their defaults).
//! - Bad bytes give a [`SchemaError`], never a panic.
//! - Fingerprints follow the Avro specification (computed here: apache-avro 0.22's own canonical
//!   form keeps `{"type":"long"}` for logical types, which disagrees with Java and fastavro).
//!
//! [single-object encoding]: https://avro.apache.org/docs/1.12.0/specification/#single-object-encoding

#![warn(missing_docs)]

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use apache_avro::error::Details;
use apache_avro::schema::{Name, SchemaKind, UnionSchema};
use apache_avro::types::Value;
use apache_avro::{GenericSingleObjectReader, Schema};
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value as JsonValue;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_schemas.rs"));
}

/// The two bytes every single-object encoded value starts with.
pub const SINGLE_OBJECT_MARKER: [u8; 2] = [0xC3, 0x01];

/// Length of the single-object header: marker plus 8-byte fingerprint.
pub const HEADER_LEN: usize = 10;

/// What went wrong with a schema or an encoded value: what, where and why.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The bytes do not start with a single-object header.
    #[error("value is not Avro single-object encoded: {0}")]
    NotSingleObject(&'static str),
    /// The header names a schema this build does not know.
    #[error(
        "unknown schema fingerprint 0x{0:016x}: neither a current schema nor a recorded version \
         known to this build (written by a newer weir?)"
    )]
    UnknownFingerprint(u64),
    /// No current schema has this full name.
    #[error("no schema named {0}: add schemas/avro/<name>.avsc")]
    UnknownSchema(String),
    /// The bytes hold a different record than the one asked for.
    #[error("value is a {found} (schema 0x{fingerprint:016x}), not a {expected}")]
    WrongSchema {
        /// The record type asked for.
        expected: String,
        /// The record type the bytes hold.
        found: String,
        /// The writer schema's fingerprint.
        fingerprint: u64,
    },
    /// The value does not fit its schema.
    #[error("cannot encode {schema}: {reason}")]
    Encode {
        /// Full name of the schema.
        schema: String,
        /// Which field and why.
        reason: String,
    },
    /// The datum is corrupt, truncated, or does not fit the Rust type.
    #[error("cannot decode {schema} (writer schema 0x{fingerprint:016x}): {reason}")]
    Decode {
        /// Full name of the schema.
        schema: String,
        /// The writer schema's fingerprint.
        fingerprint: u64,
        /// What went wrong.
        reason: String,
    },
    /// The datum was followed by extra bytes.
    #[error("cannot decode {schema}: {count} bytes left over after the datum")]
    TrailingBytes {
        /// Full name of the schema.
        schema: String,
        /// How many bytes were left.
        count: usize,
    },
    /// A schema file is invalid.
    #[error("invalid schema {origin}: {reason}")]
    InvalidSchema {
        /// Which file (or set of files).
        origin: String,
        /// Why.
        reason: String,
    },
    /// Reading or writing a schema file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A schema change is not backward compatible (see [`crate::compat`]).
    #[error("incompatible schema change, not recorded:\n{0}")]
    Incompatible(String),
}

/// A Rust type with an Avro schema in the registry.
///
/// Implemented by every top-level event type in [`crate::events`]; the default methods look the
/// schema up in the embedded [`Registry`].
pub trait AvroRecord: Serialize + DeserializeOwned {
    /// Full name of the record schema, e.g. `io.weir.IdentityActivity`.
    const SCHEMA_NAME: &'static str;

    /// The current schema, self-contained (named types it references are inlined).
    fn schema() -> &'static Schema {
        Self::registered().schema()
    }

    /// CRC-64-AVRO fingerprint of the current schema.
    fn fingerprint() -> u64 {
        Self::registered().fingerprint()
    }

    /// The registry entry of the current schema.
    ///
    /// # Panics
    /// If no embedded schema has the name [`Self::SCHEMA_NAME`]: a build mistake the crate's
    /// tests catch, not something input can cause.
    fn registered() -> &'static RegisteredSchema {
        Registry::embedded()
            .current(Self::SCHEMA_NAME)
            .unwrap_or_else(|| panic!("no embedded schema is named {}", Self::SCHEMA_NAME))
    }
}

/// Single-object encodes `value` with its current schema.
pub fn encode<T: AvroRecord>(value: &T) -> Result<Vec<u8>, SchemaError> {
    Registry::embedded().encode(value)
}

/// Appends the single-object encoding of `value` to `out` (reuse `out` to avoid allocations).
/// On error, `out` is left as it was.
pub fn encode_into<T: AvroRecord>(value: &T, out: &mut Vec<u8>) -> Result<(), SchemaError> {
    Registry::embedded().encode_into(value, out)
}

/// Decodes a single-object encoded `T`, written with the current or any recorded schema version.
pub fn decode<T: AvroRecord>(bytes: &[u8]) -> Result<T, SchemaError> {
    Registry::embedded().decode(bytes)
}

/// Decodes any single-object encoded value the registry knows into JSON, for display.
///
/// Returns the schema's full name and the value, resolved to the current version of its schema.
/// Bytes become a string when they are UTF-8, else `{"base64": "..."}`; enums their symbol;
/// timestamps their integer milliseconds; unions their inner value.
pub fn decode_to_json(bytes: &[u8]) -> Result<(String, JsonValue), SchemaError> {
    Registry::embedded().decode_to_json(bytes)
}

/// Whether `bytes` start with a single-object header (marker and room for a fingerprint).
pub fn is_single_object(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN && bytes[..2] == SINGLE_OBJECT_MARKER
}

/// The writer-schema fingerprint in a single-object header.
pub fn fingerprint_of(bytes: &[u8]) -> Option<u64> {
    read_header(bytes).ok()
}

/// The writer-schema fingerprint in a single-object header, or why there is no header.
pub(crate) fn read_header(bytes: &[u8]) -> Result<u64, SchemaError> {
    if bytes.is_empty() {
        return Err(SchemaError::NotSingleObject("it is empty"));
    }
    if !bytes.starts_with(&SINGLE_OBJECT_MARKER) {
        return Err(SchemaError::NotSingleObject("missing C3 01 marker"));
    }
    match bytes.get(2..HEADER_LEN).and_then(|fp| <[u8; 8]>::try_from(fp).ok()) {
        Some(fp) => Ok(u64::from_le_bytes(fp)),
        None => Err(SchemaError::NotSingleObject("shorter than the 10-byte header")),
    }
}

/// One schema the registry knows: a current schema or a recorded past version.
pub struct RegisteredSchema {
    name: String,
    file_stem: String,
    fingerprint: u64,
    is_current: bool,
    header: [u8; HEADER_LEN],
    /// Self-contained: a named type is defined at its first use, referenced by name after.
    schema: Schema,
    /// The same with every reference replaced by its definition, so encoding and resolution
    /// need no name lookups (apache-avro's owned resolved schema is not public).
    expanded: Schema,
    reader: GenericSingleObjectReader,
    /// Length of the last encoding, to size the next buffer.
    size_hint: AtomicUsize,
}

impl RegisteredSchema {
    fn new(file_stem: &str, schema: Schema, is_current: bool) -> Result<Self, SchemaError> {
        let origin = || format!("{file_stem} ({})", if is_current { "current" } else { "history" });
        let name = match schema {
            Schema::Record(ref record) => record.name.fullname(None),
            _ => {
                return Err(SchemaError::InvalidSchema {
                    origin: origin(),
                    reason: "the top-level schema is not a record".into(),
                })
            }
        };
        let fingerprint = schema_fingerprint(&schema);
        let mut header = [0; HEADER_LEN];
        header[..2].copy_from_slice(&SINGLE_OBJECT_MARKER);
        header[2..].copy_from_slice(&fingerprint.to_le_bytes());
        let invalid = |e| SchemaError::InvalidSchema { origin: origin(), reason: describe(e) };
        let reader = GenericSingleObjectReader::builder()
            .schema(schema.clone())
            .header(header.to_vec())
            .build()
            .map_err(invalid)?;
        let expanded =
            expand_refs(&schema).map_err(|reason| SchemaError::InvalidSchema { origin: origin(), reason })?;
        Ok(RegisteredSchema {
            name,
            file_stem: file_stem.to_string(),
            fingerprint,
            is_current,
            header,
            schema,
            expanded,
            reader,
            size_hint: AtomicUsize::new(256),
        })
    }

    /// Full name, e.g. `io.weir.Violation`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stem of the `.avsc` file, e.g. `violation`.
    pub fn file_stem(&self) -> &str {
        &self.file_stem
    }

    /// CRC-64-AVRO fingerprint of the Parsing Canonical Form.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Whether this is the current version (else a recorded past version).
    pub fn is_current(&self) -> bool {
        self.is_current
    }

    /// The schema, self-contained.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }
}

impl fmt::Debug for RegisteredSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredSchema")
            .field("name", &self.name)
            .field("fingerprint", &format_args!("0x{:016x}", self.fingerprint))
            .field("is_current", &self.is_current)
            .finish()
    }
}

/// Every schema a build knows, by fingerprint, and the current one of each name.
#[derive(Debug)]
pub struct Registry {
    by_fingerprint: HashMap<u64, RegisteredSchema>,
    current: HashMap<String, u64>,
}

/// Schema files as read from a schemas directory or embedded at build time.
#[derive(Debug, Default)]
pub(crate) struct SchemaFiles {
    /// (file stem, JSON) of every `avro/*.avsc`.
    pub current: Vec<(String, String)>,
    /// (schema file stem, fingerprint hex, JSON) of every `history/<stem>/<hex>.avsc`.
    pub history: Vec<(String, String, String)>,
}

impl Registry {
    /// The schemas compiled into this build. Parsed once, on first use.
    ///
    /// # Panics
    /// If the embedded schema files are invalid: a build mistake the crate's tests catch.
    pub fn embedded() -> &'static Registry {
        static EMBEDDED: OnceLock<Registry> = OnceLock::new();
        EMBEDDED.get_or_init(|| {
            let files = SchemaFiles {
                current: embedded::CURRENT.iter().map(|(s, j)| (s.to_string(), j.to_string())).collect(),
                history: embedded::HISTORY
                    .iter()
                    .map(|(s, h, j)| (s.to_string(), h.to_string(), j.to_string()))
                    .collect(),
            };
            Registry::from_files(&files)
                .unwrap_or_else(|e| panic!("the schemas compiled into weir-schemas are invalid: {e}"))
        })
    }

    /// The schemas in a schemas directory (`avro/*.avsc` and `history/<name>/*.avsc`).
    pub fn from_dir(schemas_dir: &Path) -> Result<Registry, SchemaError> {
        Registry::from_files(&SchemaFiles::read_dir(schemas_dir)?)
    }

    /// Builds a registry from schema JSON: `current` as (file stem, JSON) parsed together so
    /// files may reference each other's named types; `history` as (file stem, self-contained
    /// JSON) of past versions.
    pub fn from_sources(current: &[(&str, &str)], history: &[(&str, &str)]) -> Result<Registry, SchemaError> {
        let history = history
            .iter()
            .map(|(stem, json)| Ok((stem.to_string(), parse_version(json, &format!("history of {stem}"))?)))
            .collect::<Result<Vec<_>, SchemaError>>()?;
        Registry::build(current, history)
    }

    /// Like [`Registry::from_sources`], and each history file's name must be its fingerprint.
    fn from_files(files: &SchemaFiles) -> Result<Registry, SchemaError> {
        let current: Vec<(&str, &str)> = files.current.iter().map(|(s, j)| (s.as_str(), j.as_str())).collect();
        let mut history = Vec::with_capacity(files.history.len());
        for (stem, hex, json) in &files.history {
            let origin = format!("history/{stem}/{hex}.avsc");
            let schema = parse_version(json, &origin)?;
            let fingerprint = schema_fingerprint(&schema);
            if format!("{fingerprint:016x}") != *hex {
                let reason = format!("its fingerprint is {fingerprint:016x}, not the one in its file name");
                return Err(SchemaError::InvalidSchema { origin, reason });
            }
            history.push((stem.clone(), schema));
        }
        Registry::build(&current, history)
    }

    fn build(current: &[(&str, &str)], history: Vec<(String, Schema)>) -> Result<Registry, SchemaError> {
        let mut registry = Registry { by_fingerprint: HashMap::new(), current: HashMap::new() };
        for (stem, schema) in parse_current(current)? {
            let entry = RegisteredSchema::new(&stem, schema, true)?;
            registry.current.insert(entry.name.clone(), entry.fingerprint);
            registry.by_fingerprint.insert(entry.fingerprint, entry);
        }
        for (stem, schema) in history {
            if let Entry::Vacant(slot) = registry.by_fingerprint.entry(schema_fingerprint(&schema)) {
                slot.insert(RegisteredSchema::new(&stem, schema, false)?);
            }
        }
        Ok(registry)
    }

    /// The schema with this fingerprint, current or past.
    pub fn get(&self, fingerprint: u64) -> Option<&RegisteredSchema> {
        self.by_fingerprint.get(&fingerprint)
    }

    /// The current schema with this full name.
    pub fn current(&self, full_name: &str) -> Option<&RegisteredSchema> {
        self.current.get(full_name).and_then(|fp| self.by_fingerprint.get(fp))
    }

    /// Every schema, current and past, in no particular order.
    pub fn schemas(&self) -> impl Iterator<Item = &RegisteredSchema> {
        self.by_fingerprint.values()
    }

    fn current_or_err(&self, full_name: &str) -> Result<&RegisteredSchema, SchemaError> {
        self.current(full_name).ok_or_else(|| SchemaError::UnknownSchema(full_name.to_string()))
    }

    /// Single-object encodes `value` with the current schema named `T::SCHEMA_NAME`.
    pub fn encode<T: AvroRecord>(&self, value: &T) -> Result<Vec<u8>, SchemaError> {
        let hint = self.current_or_err(T::SCHEMA_NAME)?.size_hint.load(Ordering::Relaxed);
        let mut out = Vec::with_capacity(hint + 64);
        self.encode_into(value, &mut out)?;
        Ok(out)
    }

    /// Appends the single-object encoding of `value` to `out`; on error `out` is unchanged.
    pub fn encode_into<T: AvroRecord>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), SchemaError> {
        let entry = self.current_or_err(T::SCHEMA_NAME)?;
        let start = out.len();
        out.extend_from_slice(&entry.header);
        if let Err(e) = apache_avro::write_avro_datum_ref(&entry.expanded, &HashMap::new(), value, out) {
            out.truncate(start);
            return Err(SchemaError::Encode { schema: entry.name.clone(), reason: describe(e) });
        }
        entry.size_hint.store(out.len() - start, Ordering::Relaxed);
        Ok(())
    }

    /// Decodes a single-object encoded `T` written with any schema version this registry knows.
    pub fn decode<T: AvroRecord>(&self, bytes: &[u8]) -> Result<T, SchemaError> {
        let writer = self.writer_of(bytes)?;
        if writer.name != T::SCHEMA_NAME {
            return Err(SchemaError::WrongSchema {
                expected: T::SCHEMA_NAME.to_string(),
                found: writer.name.clone(),
                fingerprint: writer.fingerprint,
            });
        }
        let reader = self.current_or_err(T::SCHEMA_NAME)?;
        let decode_error = |e| SchemaError::Decode {
            schema: writer.name.clone(),
            fingerprint: writer.fingerprint,
            reason: describe(e),
        };
        let mut input = Input::new(bytes);
        if writer.fingerprint == reader.fingerprint {
            let value = writer.reader.read_deser::<T>(&mut input).map_err(decode_error)?;
            input.finish(writer)?;
            return Ok(value);
        }
        // Written with an older version: decode generically, resolve to the current schema.
        let value = writer.reader.read_value(&mut input).map_err(decode_error)?;
        input.finish(writer)?;
        let value = value.resolve_with_names(&reader.expanded, &NO_NAMES).map_err(decode_error)?;
        apache_avro::from_value::<T>(&value).map_err(decode_error)
    }

    /// Decodes any value this registry has the schema of into JSON; see [`decode_to_json`].
    pub fn decode_to_json(&self, bytes: &[u8]) -> Result<(String, JsonValue), SchemaError> {
        let writer = self.writer_of(bytes)?;
        let decode_error = |e| SchemaError::Decode {
            schema: writer.name.clone(),
            fingerprint: writer.fingerprint,
            reason: describe(e),
        };
        let mut input = Input::new(bytes);
        let mut value = writer.reader.read_value(&mut input).map_err(decode_error)?;
        input.finish(writer)?;
        if let Some(current) = self.current(&writer.name).filter(|c| c.fingerprint != writer.fingerprint) {
            value = value.resolve_with_names(&current.expanded, &NO_NAMES).map_err(decode_error)?;
        }
        Ok((writer.name.clone(), value_to_json(value)))
    }

    fn writer_of(&self, bytes: &[u8]) -> Result<&RegisteredSchema, SchemaError> {
        let fingerprint = read_header(bytes)?;
        self.get(fingerprint).ok_or(SchemaError::UnknownFingerprint(fingerprint))
    }
}

/// Resolution against an expanded schema looks up no names.
static NO_NAMES: std::sync::LazyLock<HashMap<Name, Schema>> = std::sync::LazyLock::new(HashMap::new);

/// `schema` with every named-type reference replaced by its definition (which must come first,
/// as in a self-contained schema). Recursive types cannot be expanded and are refused.
pub(crate) fn expand_refs(schema: &Schema) -> Result<Schema, String> {
    fn expand(schema: &mut Schema, defined: &mut HashMap<Name, Schema>) -> Result<(), String> {
        match schema {
            Schema::Ref { name } => {
                let definition = defined
                    .get(name)
                    .cloned()
                    .ok_or_else(|| format!("{name} is used before it is defined, or recursively (not supported)"))?;
                *schema = definition;
            }
            Schema::Record(record) => {
                for field in &mut record.fields {
                    expand(&mut field.schema, defined)?;
                }
                defined.insert(record.name.clone(), schema.clone());
            }
            Schema::Array(array) => expand(&mut array.items, defined)?,
            Schema::Map(map) => expand(&mut map.types, defined)?,
            Schema::Union(union) => {
                let mut variants = union.variants().to_vec();
                for variant in &mut variants {
                    expand(variant, defined)?;
                }
                *union = UnionSchema::new(variants).map_err(describe)?;
            }
            named => {
                if let Some(name) = named.name() {
                    defined.insert(name.clone(), named.clone());
                }
            }
        }
        Ok(())
    }
    let mut expanded = schema.clone();
    expand(&mut expanded, &mut HashMap::new())?;
    Ok(expanded)
}

/// The bytes being decoded. Remembers whether the decoder asked for more than there was:
/// apache-avro 0.22 reads a union at the very end of the input as null instead of failing, so a
/// datum truncated before a trailing optional field would otherwise decode.
struct Input<'a> {
    rest: &'a [u8],
    overran: bool,
}

impl<'a> Input<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Input { rest: bytes, overran: false }
    }

    /// The datum must have used exactly the bytes there were.
    fn finish(self, writer: &RegisteredSchema) -> Result<(), SchemaError> {
        if self.overran {
            Err(SchemaError::Decode {
                schema: writer.name.clone(),
                fingerprint: writer.fingerprint,
                reason: "the datum is truncated".into(),
            })
        } else if !self.rest.is_empty() {
            Err(SchemaError::TrailingBytes { schema: writer.name.clone(), count: self.rest.len() })
        } else {
            Ok(())
        }
    }
}

impl std::io::Read for Input<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.overran |= buf.len() > self.rest.len();
        self.rest.read(buf)
    }
}

impl SchemaFiles {
    /// Reads `avro/*.avsc` and `history/<stem>/*.avsc` under `schemas_dir`, sorted by path.
    pub(crate) fn read_dir(schemas_dir: &Path) -> Result<SchemaFiles, SchemaError> {
        let mut files = SchemaFiles::default();
        for path in list_dir(&schemas_dir.join("avro"), |p| has_extension(p, "avsc"))? {
            files.current.push((file_stem(&path)?, read_file(&path)?));
        }
        let history_dir = schemas_dir.join("history");
        if history_dir.is_dir() {
            for dir in list_dir(&history_dir, |p| p.is_dir())? {
                for path in list_dir(&dir, |p| has_extension(p, "avsc"))? {
                    files.history.push((file_stem(&dir)?, file_stem(&path)?, read_file(&path)?));
                }
            }
        }
        Ok(files)
    }
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e == ext)
}

/// The entries of `dir` that pass `keep`, sorted.
fn list_dir(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>, SchemaError> {
    let io_error = |source| SchemaError::Io { path: dir.to_path_buf(), source };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let path = entry.map_err(io_error)?.path();
        if keep(&path) {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// The file as UTF-8 text.
pub(crate) fn read_file(path: &Path) -> Result<String, SchemaError> {
    std::fs::read_to_string(path).map_err(|source| SchemaError::Io { path: path.to_path_buf(), source })
}

fn file_stem(path: &Path) -> Result<String, SchemaError> {
    path.file_stem().and_then(|s| s.to_str()).map(str::to_string).ok_or_else(|| SchemaError::InvalidSchema {
        origin: path.display().to_string(),
        reason: "file name is not UTF-8".into(),
    })
}

/// Parses a recorded (self-contained) schema version.
fn parse_version(json: &str, origin: &str) -> Result<Schema, SchemaError> {
    Schema::parse_str(json).map_err(|e| SchemaError::InvalidSchema { origin: origin.to_string(), reason: describe(e) })
}

/// Parses the current schema files together (they reference each other's named types) and
/// returns each as a self-contained schema, in input order.
pub(crate) fn parse_current(files: &[(&str, &str)]) -> Result<Vec<(String, Schema)>, SchemaError> {
    for (stem, json) in files {
        if let Err(e) = serde_json::from_str::<JsonValue>(json) {
            return Err(SchemaError::InvalidSchema { origin: format!("{stem}.avsc"), reason: e.to_string() });
        }
    }
    let parsed = Schema::parse_list(files.iter().map(|(_, json)| *json)).map_err(|e| SchemaError::InvalidSchema {
        origin: broken_file(files).map_or("schemas/avro".into(), |stem| format!("{stem}.avsc")),
        reason: describe(e),
    })?;
    let mut out = Vec::with_capacity(parsed.len());
    for ((stem, _), schema) in files.iter().zip(&parsed) {
        let mut contained = schema.clone();
        contained.denormalize(&parsed).map_err(|e| SchemaError::InvalidSchema {
            origin: format!("{stem}.avsc"),
            reason: format!("{} (named types shared across files must be defined in a file of their own)", describe(e)),
        })?;
        out.push((stem.to_string(), contained));
    }
    Ok(out)
}

/// The first file that does not parse when every other file is replaced by an empty stub of the
/// same name, i.e. the file at fault rather than one that merely references it.
fn broken_file<'a>(files: &[(&'a str, &str)]) -> Option<&'a str> {
    let stub = |json: &str| -> Option<String> {
        let schema: JsonValue = serde_json::from_str(json).ok()?;
        let name = full_name(schema.get("name")?.as_str()?, schema.get("namespace").and_then(JsonValue::as_str));
        let stub = match schema.get("type")?.as_str()? {
            "enum" => serde_json::json!({"type": "enum", "name": name, "symbols": ["S"]}),
            "fixed" => serde_json::json!({"type": "fixed", "name": name, "size": 1}),
            _ => serde_json::json!({"type": "record", "name": name, "fields": []}),
        };
        Some(stub.to_string())
    };
    let stubs: Vec<Option<String>> = files.iter().map(|(_, json)| stub(json)).collect();
    files.iter().enumerate().find_map(|(i, (stem, json))| {
        let others = stubs.iter().enumerate().filter(|(j, _)| *j != i).filter_map(|(_, s)| s.as_deref());
        Schema::parse_str_with_list(json, others).is_err().then_some(*stem)
    })
}

/// One line for an apache-avro error: its own messages print whole schemas.
pub(crate) fn describe(error: apache_avro::Error) -> String {
    match error.into_details() {
        Details::SerializeRecordFieldWithSchema { field_name, record_schema, error } => {
            format!("field `{field_name}` of {}: {error}", record_schema.name)
        }
        Details::SerializeValueWithSchema { value_type, value, schema } => {
            format!("a Rust {value_type} does not fit Avro {:?}: {value}", SchemaKind::from(&schema))
        }
        Details::MissingDefaultForSkippedField { field_name, schema } => {
            format!("field `{field_name}` of {} was skipped and has no default", schema.name)
        }
        Details::DeserializeSchemaAware { value_type, value, schema } => match schema.name() {
            Some(name) => format!("cannot read a Rust {value_type} from {name}: {value}"),
            None => format!("cannot read a Rust {value_type} from Avro {:?}: {value}", SchemaKind::from(&schema)),
        },
        Details::GetField(field) | Details::FieldName(field) => format!("field `{field}` is not in the schema"),
        details => details.to_string(),
    }
}

const PRIMITIVES: [&str; 8] = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"];

/// The schema's [Parsing Canonical Form], as the Avro specification defines it.
///
/// [Parsing Canonical Form]: https://avro.apache.org/docs/1.12.0/specification/#parsing-canonical-form-for-schemas
pub fn parsing_canonical_form(schema: &Schema) -> String {
    let json = serde_json::to_value(schema).unwrap_or(JsonValue::Null);
    let mut out = String::new();
    canonical(&json, None, &mut HashSet::new(), &mut out);
    out
}

/// CRC-64-AVRO (Rabin) fingerprint of the schema's Parsing Canonical Form.
pub fn schema_fingerprint(schema: &Schema) -> u64 {
    crc64_avro(parsing_canonical_form(schema).as_bytes())
}

fn canonical(json: &JsonValue, namespace: Option<&str>, defined: &mut HashSet<String>, out: &mut String) {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    match json {
        JsonValue::String(name) if PRIMITIVES.contains(&name.as_str()) => out.push_str(&quote(name)),
        JsonValue::String(name) => out.push_str(&quote(&full_name(name, namespace))),
        JsonValue::Array(branches) => {
            out.push('[');
            for (i, branch) in branches.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(branch, namespace, defined, out);
            }
            out.push(']');
        }
        JsonValue::Object(map) => {
            let kind = map.get("type").unwrap_or(&JsonValue::Null);
            let Some(kind_name) = kind.as_str() else {
                // {"type": {...}} or {"type": [...]}: the wrapper adds nothing.
                return canonical(kind, namespace, defined, out);
            };
            match kind_name {
                "record" | "error" | "enum" | "fixed" => {
                    let name = map.get("name").and_then(JsonValue::as_str).unwrap_or_default();
                    let own_namespace = map.get("namespace").and_then(JsonValue::as_str).or(namespace);
                    let full = full_name(name, own_namespace);
                    if !defined.insert(full.clone()) {
                        return out.push_str(&quote(&full));
                    }
                    out.push_str(&format!("{{\"name\":{},\"type\":{}", quote(&full), quote(kind_name)));
                    let inner_namespace = full.rsplit_once('.').map(|(ns, _)| ns.to_string());
                    match kind_name {
                        "enum" => {
                            let symbols = map.get("symbols").cloned().unwrap_or_default();
                            out.push_str(&format!(",\"symbols\":{symbols}"));
                        }
                        "fixed" => {
                            let size = map.get("size").and_then(JsonValue::as_u64).unwrap_or_default();
                            out.push_str(&format!(",\"size\":{size}"));
                        }
                        _ => {
                            out.push_str(",\"fields\":[");
                            let fields = map.get("fields").and_then(JsonValue::as_array).map_or(&[][..], |f| f);
                            for (i, field) in fields.iter().enumerate() {
                                if i > 0 {
                                    out.push(',');
                                }
                                let field_name = field.get("name").and_then(JsonValue::as_str).unwrap_or_default();
                                out.push_str(&format!("{{\"name\":{},\"type\":", quote(field_name)));
                                let field_type = field.get("type").unwrap_or(&JsonValue::Null);
                                canonical(field_type, inner_namespace.as_deref(), defined, out);
                                out.push('}');
                            }
                            out.push(']');
                        }
                    }
                    out.push('}');
                }
                "array" | "map" => {
                    let key = if kind_name == "array" { "items" } else { "values" };
                    out.push_str(&format!("{{\"type\":{},{}:", quote(kind_name), quote(key)));
                    canonical(map.get(key).unwrap_or(&JsonValue::Null), namespace, defined, out);
                    out.push('}');
                }
                // Primitives, with any logicalType stripped, and references by name.
                _ => canonical(kind, namespace, defined, out),
            }
        }
        other => out.push_str(&other.to_string()),
    }
}

fn full_name(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() && !name.contains('.') => format!("{ns}.{name}"),
        _ => name.to_string(),
    }
}

/// CRC-64-AVRO, the 64-bit Rabin fingerprint of the Avro specification.
pub fn crc64_avro(bytes: &[u8]) -> u64 {
    const EMPTY: u64 = 0xc15d_213a_a4d7_a795;
    const TABLE: [u64; 256] = {
        let mut table = [0u64; 256];
        let mut i = 0;
        while i < 256 {
            let mut fp = i as u64;
            let mut j = 0;
            while j < 8 {
                fp = (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg());
                j += 1;
            }
            table[i] = fp;
            i += 1;
        }
        table
    };
    bytes.iter().fold(EMPTY, |fp, &b| (fp >> 8) ^ TABLE[((fp ^ b as u64) & 0xff) as usize])
}

/// Generic JSON for an Avro value; see [`decode_to_json`].
fn value_to_json(value: Value) -> JsonValue {
    match value {
        Value::Null => JsonValue::Null,
        Value::Boolean(b) => JsonValue::Bool(b),
        Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => i.into(),
        Value::Long(i)
        | Value::TimeMicros(i)
        | Value::TimestampMillis(i)
        | Value::TimestampMicros(i)
        | Value::TimestampNanos(i)
        | Value::LocalTimestampMillis(i)
        | Value::LocalTimestampMicros(i)
        | Value::LocalTimestampNanos(i) => i.into(),
        Value::Float(f) => float_to_json(f64::from(f)),
        Value::Double(f) => float_to_json(f),
        Value::Bytes(bytes) | Value::Fixed(_, bytes) => match String::from_utf8(bytes) {
            Ok(text) => JsonValue::String(text),
            Err(e) => serde_json::json!({ "base64": base64::engine::general_purpose::STANDARD.encode(e.as_bytes()) }),
        },
        Value::String(s) | Value::Enum(_, s) => JsonValue::String(s),
        Value::Union(_, inner) => value_to_json(*inner),
        Value::Array(items) => JsonValue::Array(items.into_iter().map(value_to_json).collect()),
        Value::Map(entries) => JsonValue::Object(entries.into_iter().map(|(k, v)| (k, value_to_json(v))).collect()),
        Value::Record(fields) => JsonValue::Object(fields.into_iter().map(|(k, v)| (k, value_to_json(v))).collect()),
        Value::Uuid(uuid) => JsonValue::String(uuid.to_string()),
        other => JsonValue::String(format!("{other:?}")),
    }
}

fn float_to_json(f: f64) -> JsonValue {
    serde_json::Number::from_f64(f).map_or_else(|| JsonValue::String(f.to_string()), JsonValue::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_matches_the_specification_for_primitives() {
        // apache-avro's canonical form is right for primitives, so its fingerprint is a reference.
        for primitive in [Schema::Null, Schema::Int, Schema::String] {
            let theirs = primitive.fingerprint::<apache_avro::rabin::Rabin>();
            let ours = schema_fingerprint(&primitive).to_le_bytes();
            assert_eq!(theirs.bytes, ours, "{primitive:?}");
        }
    }

    #[test]
    fn canonical_form_strips_logical_types_docs_and_defaults() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"T","namespace":"io.weir","doc":"d","fields":[
                {"name":"t","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"x"},
                {"name":"e","type":["null",{"type":"enum","name":"E","symbols":["A","B"]}],"default":null},
                {"name":"again","type":"E","default":"A"},
                {"name":"m","type":{"type":"map","values":{"type":"array","items":"bytes"}},"default":{}}]}"#,
        )
        .expect("valid schema");
        assert_eq!(
            parsing_canonical_form(&schema),
            r#"{"name":"io.weir.T","type":"record","fields":[{"name":"t","type":"long"},{"name":"e","type":["null",{"name":"io.weir.E","type":"enum","symbols":["A","B"]}]},{"name":"again","type":"io.weir.E"},{"name":"m","type":{"type":"map","values":{"type":"array","items":"bytes"}}}]}"#
        );
    }

    #[test]
    fn headers_are_checked_before_anything_else() {
        assert!(matches!(read_header(&[]), Err(SchemaError::NotSingleObject("it is empty"))));
        assert!(matches!(read_header(b"{\"json\":1}"), Err(SchemaError::NotSingleObject(_))));
        assert!(matches!(read_header(&[0xC3, 0x01, 1, 2]), Err(SchemaError::NotSingleObject(_))));
        assert_eq!(fingerprint_of(&[0xC3, 0x01, 1, 0, 0, 0, 0, 0, 0, 0]), Some(1));
        assert!(is_single_object(&[0xC3, 0x01, 1, 0, 0, 0, 0, 0, 0, 0, 42]));
        assert!(!is_single_object(&[0xC3, 0x02, 1, 0, 0, 0, 0, 0, 0, 0]));
    }
}
