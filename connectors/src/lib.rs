//! Weir's source connectors: they turn vendor APIs and local files into raw records.
//!
//! Every connector implements [`weir_schemas::component::Source`]: it hands the runner batches
//! of `RawEnvelope` records (the vendor bytes untouched) with the cursor that follows them, and
//! resumes from the cursor the runner committed. One folder per connector, the same files in
//! each: `config.rs` (what the user writes), `source.rs` (the connector), `tests.rs`.

pub mod batch;
pub mod cursor;
pub mod file;
pub mod http;
pub mod push;
