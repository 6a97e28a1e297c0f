//! Backward-compatibility checks between schema versions, and the recorded version history.
//!
//! Every version of a schema that may have written data to the log is kept, so
//! [`decode`](crate::decode) can still read that data. Layout of a schemas directory:
//!
//! ```text
//! avro/<name>.avsc                   current schema (may reference named types of other files)
//! history/<name>/VERSIONS            recorded fingerprints, 16 hex digits per line, oldest first
//! history/<name>/<fingerprint>.avsc  that version, self-contained (referenced types inlined)
//! ```
//!
//! Fingerprints are written as the CRC-64-AVRO value in hex (`{:016x}`); in a single-object
//! header the same value is stored little-endian, so a hex dump shows its bytes reversed.
//!
//! The rule ([`check_dir`]): the current schema must be able to read data written with every
//! recorded version (backward compatibility: Avro resolution with writer = old, reader = new).
//! Adding a field with a default, removing a field, widening int to long pass; adding a field
//! without a default, changing a field's type or removing an enum symbol do not.
//! [`record_versions`] adds the current versions to the history, and refuses while anything is
//! incompatible. The crate's tests fail while a changed schema is not recorded.
//!
//! To change a schema: edit `avro/<name>.avsc` (new fields need a default), run
//! `weir schemas record --dir schemas` (or `cargo run -p weir-schemas --example schema_versions
//! -- record`), and commit `avro/` and `history/` together. The history is compiled into the crate (see `build.rs`).

#![warn(missing_docs)]

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use apache_avro::error::CompatibilityError;
use apache_avro::schema::Schema;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};

use crate::avro::{describe, expand_refs, parse_current, read_file, schema_fingerprint, SchemaError, SchemaFiles};

/// How a current schema relates to its recorded history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Same as the latest recorded version.
    Unchanged,
    /// No version recorded yet.
    New,
    /// Changed, and can read data written with every recorded version.
    ChangedCompatible,
    /// Changed, and cannot read data written with a recorded version.
    Incompatible {
        /// The recorded version it cannot read.
        version: u64,
        /// Why, naming the schema and the field.
        reason: String,
    },
}

/// The check of one current schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaCheck {
    /// Stem of the `.avsc` file.
    pub file_stem: String,
    /// Full name of the record.
    pub name: String,
    /// Fingerprint of the current schema.
    pub fingerprint: u64,
    /// How it relates to its history.
    pub outcome: Outcome,
}

/// The check of every schema in a schemas directory, sorted by file name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// One entry per `avro/*.avsc`.
    pub schemas: Vec<SchemaCheck>,
}

impl CheckReport {
    /// False if any schema is [`Outcome::Incompatible`].
    pub fn is_ok(&self) -> bool {
        !self.schemas.iter().any(|s| matches!(s.outcome, Outcome::Incompatible { .. }))
    }

    /// The check of the schema in `<file_stem>.avsc`.
    pub fn get(&self, file_stem: &str) -> Option<&SchemaCheck> {
        self.schemas.iter().find(|s| s.file_stem == file_stem)
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.schemas {
            let outcome = match &s.outcome {
                Outcome::Unchanged => "unchanged".to_string(),
                Outcome::New => "new (not recorded yet)".to_string(),
                Outcome::ChangedCompatible => "changed, backward compatible (not recorded yet)".to_string(),
                Outcome::Incompatible { reason, .. } => format!("INCOMPATIBLE: {reason}"),
            };
            writeln!(f, "{:<20} {:<26} {:016x}  {outcome}", s.file_stem, s.name, s.fingerprint)?;
        }
        Ok(())
    }
}

/// Checks every `avro/*.avsc` under `schemas_dir` against its recorded versions.
pub fn check_dir(schemas_dir: &Path) -> Result<CheckReport, SchemaError> {
    Ok(CheckReport { schemas: check_all(schemas_dir)?.into_iter().map(|(check, _)| check).collect() })
}

/// Records the current version of every new or changed schema under `history/`, and returns
/// their (full name, fingerprint). Refuses, writing nothing, if any schema is incompatible.
pub fn record_versions(schemas_dir: &Path) -> Result<Vec<(String, u64)>, SchemaError> {
    let checks = check_all(schemas_dir)?;
    let report = CheckReport { schemas: checks.iter().map(|(check, _)| check.clone()).collect() };
    if !report.is_ok() {
        let incompatible = report.schemas.iter().filter(|s| matches!(s.outcome, Outcome::Incompatible { .. })).cloned();
        return Err(SchemaError::Incompatible(CheckReport { schemas: incompatible.collect() }.to_string()));
    }
    let mut recorded = Vec::new();
    for (check, schema) in checks {
        if !matches!(check.outcome, Outcome::New | Outcome::ChangedCompatible) {
            continue;
        }
        let dir = schemas_dir.join("history").join(&check.file_stem);
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SchemaError::Io { path, source }
        };
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let hex = format!("{:016x}", check.fingerprint);
        let json = serde_json::to_string_pretty(&schema).map_err(|e| SchemaError::InvalidSchema {
            origin: format!("{}.avsc", check.file_stem),
            reason: e.to_string(),
        })?;
        // What is written must read back as the same version.
        let reparsed = Schema::parse_str(&json).map_err(|e| SchemaError::InvalidSchema {
            origin: format!("{}.avsc", check.file_stem),
            reason: format!("self-contained form does not parse: {}", describe(e)),
        })?;
        if schema_fingerprint(&reparsed) != check.fingerprint {
            return Err(SchemaError::InvalidSchema {
                origin: format!("{}.avsc", check.file_stem),
                reason: "self-contained form has a different fingerprint".into(),
            });
        }
        let file = dir.join(format!("{hex}.avsc"));
        fs::write(&file, json + "\n").map_err(io_error(&file))?;
        let versions = dir.join("VERSIONS");
        let needs_newline = fs::read(&versions).map(|v| !v.is_empty() && !v.ends_with(b"\n")).unwrap_or(false);
        let mut out = OpenOptions::new().create(true).append(true).open(&versions).map_err(io_error(&versions))?;
        let line = if needs_newline { format!("\n{hex}\n") } else { format!("{hex}\n") };
        out.write_all(line.as_bytes()).map_err(io_error(&versions))?;
        recorded.push((check.name, check.fingerprint));
    }
    Ok(recorded)
}

/// Checks every current schema; returns each check with the self-contained current schema.
fn check_all(schemas_dir: &Path) -> Result<Vec<(SchemaCheck, Schema)>, SchemaError> {
    let files = SchemaFiles::read_dir(schemas_dir)?;
    let sources: Vec<(&str, &str)> = files.current.iter().map(|(s, j)| (s.as_str(), j.as_str())).collect();
    let mut checks = Vec::new();
    for (stem, schema) in parse_current(&sources)? {
        let name = schema.name().map(|n| n.fullname(None)).unwrap_or_default();
        let fingerprint = schema_fingerprint(&schema);
        let history = schemas_dir.join("history").join(&stem);
        let versions = recorded_versions(&history)?;
        let outcome = match versions.last() {
            None => Outcome::New,
            Some(&latest) if latest == fingerprint => Outcome::Unchanged,
            Some(_) => compare_with_history(&name, &schema, &history, &versions)?,
        };
        checks.push((SchemaCheck { file_stem: stem, name, fingerprint, outcome }, schema));
    }
    Ok(checks)
}

/// The fingerprints listed in `history_dir/VERSIONS` (none if it does not exist); each must
/// have its `<hex>.avsc`.
fn recorded_versions(history_dir: &Path) -> Result<Vec<u64>, SchemaError> {
    let path = history_dir.join("VERSIONS");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut versions = Vec::new();
    for (i, line) in read_file(&path)?.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let invalid =
            |reason: String| SchemaError::InvalidSchema { origin: format!("{}:{}", path.display(), i + 1), reason };
        let fingerprint = u64::from_str_radix(line, 16)
            .ok()
            .filter(|_| line.len() == 16)
            .ok_or_else(|| invalid(format!("`{line}` is not a 16-hex-digit fingerprint")))?;
        if !version_file(history_dir, fingerprint).is_file() {
            return Err(invalid(format!("{} is missing", version_file(history_dir, fingerprint).display())));
        }
        versions.push(fingerprint);
    }
    Ok(versions)
}

fn version_file(history_dir: &Path, fingerprint: u64) -> PathBuf {
    history_dir.join(format!("{fingerprint:016x}.avsc"))
}

/// Whether `current` can read data written with every recorded version.
fn compare_with_history(
    name: &str,
    current: &Schema,
    history_dir: &Path,
    versions: &[u64],
) -> Result<Outcome, SchemaError> {
    let invalid =
        |origin: &Path, reason: String| SchemaError::InvalidSchema { origin: origin.display().to_string(), reason };
    let reader = expand_refs(current).map_err(|reason| invalid(history_dir, reason))?;
    for &version in versions {
        let path = version_file(history_dir, version);
        let old = Schema::parse_str(&read_file(&path)?).map_err(|e| invalid(&path, describe(e)))?;
        if schema_fingerprint(&old) != version {
            return Err(invalid(&path, "its fingerprint differs from its file name".into()));
        }
        let writer = expand_refs(&old).map_err(|reason| invalid(&path, reason))?;
        let why = match SchemaCompatibility::can_read(&writer, &reader) {
            Ok(Compatibility::Full) => continue,
            Ok(Compatibility::Partial) => partial_reason(&writer, &reader),
            Err(e) => describe_incompatibility(&e),
        };
        return Ok(Outcome::Incompatible {
            version,
            reason: format!("{name} cannot read data written with its version {version:016x}: {why}"),
        });
    }
    Ok(Outcome::ChangedCompatible)
}

/// Why reading may fail for some values: where, and which enums lost symbols if that is why.
fn partial_reason(writer: &Schema, reader: &Schema) -> String {
    let (old, new) = (enums(writer), enums(reader));
    let lost: Vec<String> = old
        .iter()
        .filter_map(|(name, symbols)| {
            let (_, new_symbols) = new.iter().find(|(n, _)| n == name)?;
            let missing: Vec<&str> = symbols.iter().filter(|s| !new_symbols.contains(s)).map(String::as_str).collect();
            (!missing.is_empty()).then(|| format!("enum {name} lost symbols {}", missing.join(", ")))
        })
        .collect();
    let what = if lost.is_empty() {
        "only some of its old values can be read (a union branch or an enum symbol was removed or changed)".into()
    } else {
        lost.join("; ")
    };
    match partial_path(writer, reader) {
        Some(path) => format!("field `{path}`: {what}"),
        None => what,
    }
}

/// Dotted path of the deepest field that the reader can only partly read.
fn partial_path(writer: &Schema, reader: &Schema) -> Option<String> {
    let non_null = |schema: &'_ Schema| -> Option<Schema> {
        match schema {
            Schema::Union(union) => {
                let mut branches = union.variants().iter().filter(|b| !matches!(b, Schema::Null));
                let branch = branches.next()?;
                branches.next().is_none().then(|| branch.clone())
            }
            other => Some(other.clone()),
        }
    };
    match (writer, reader) {
        (Schema::Record(w), Schema::Record(r)) => r.fields.iter().find_map(|field| {
            let old = w.fields.iter().find(|f| f.name == field.name)?;
            let partial =
                matches!(SchemaCompatibility::can_read(&old.schema, &field.schema), Ok(Compatibility::Partial));
            partial.then(|| match partial_path(&old.schema, &field.schema) {
                Some(inner) => format!("{}.{inner}", field.name),
                None => field.name.clone(),
            })
        }),
        (Schema::Array(w), Schema::Array(r)) => partial_path(&w.items, &r.items),
        (Schema::Map(w), Schema::Map(r)) => partial_path(&w.types, &r.types),
        (Schema::Union(_), _) | (_, Schema::Union(_)) => {
            let (w, r) = (non_null(writer)?, non_null(reader)?);
            (!matches!(w, Schema::Union(_)) && !matches!(r, Schema::Union(_))).then(|| partial_path(&w, &r)).flatten()
        }
        _ => None,
    }
}

/// Every enum without a default in `schema` (those with one read any symbol): (full name, symbols).
fn enums(schema: &Schema) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    let mut stack = vec![schema];
    while let Some(schema) = stack.pop() {
        match schema {
            Schema::Enum(e) if e.default.is_none() => found.push((e.name.fullname(None), e.symbols.clone())),
            Schema::Record(r) => stack.extend(r.fields.iter().map(|f| &f.schema)),
            Schema::Array(a) => stack.push(&a.items),
            Schema::Map(m) => stack.push(&m.types),
            Schema::Union(u) => stack.extend(u.variants()),
            _ => {}
        }
    }
    found
}

/// Which field and why, from apache-avro's nested compatibility error.
fn describe_incompatibility(error: &CompatibilityError) -> String {
    let mut path = Vec::new();
    let mut error = error;
    while let CompatibilityError::FieldTypeMismatch(field, inner) = error {
        path.push(field.as_str());
        error = inner;
    }
    let what = match error {
        CompatibilityError::MissingDefaultValue(field) => {
            path.push(field);
            "was added without a default".to_string()
        }
        CompatibilityError::WrongType { writer_schema_type, reader_schema_type } => {
            format!("was {writer_schema_type}, is now {reader_schema_type}")
        }
        other => other.to_string().trim_start_matches("Incompatible schemata! ").to_string(),
    };
    if path.is_empty() {
        what
    } else {
        format!("field `{}` {what}", path.join("."))
    }
}
