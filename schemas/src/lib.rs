//! Weir's event schemas and component contracts: the bottom of the dependency graph.
//!
//! - [`avro`]: the `.avsc` schemas, the schema registry (lookup by fingerprint) and Avro
//!   single-object encoding;
//! - [`events`]: Rust types for every schema;
//! - [`compat`]: backward-compatibility checks between schema versions;
//! - [`record`]: the record every topic holds;
//! - [`component`]: the `Source`, `Operator` and `Sink` traits;
//! - [`net`]: what networked components share: secrets, `Retry-After`, reasons from bodies, and
//!   the HTTP API client with its retries, rate-limit handling and OAuth tokens.

pub mod avro;
pub mod compat;
pub mod component;
pub mod events;
pub mod net;
pub mod record;

pub use avro::{decode, encode, AvroRecord, SchemaError};
pub use record::{Record, StoredRecord};
