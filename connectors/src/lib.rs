//! Weir's source connectors: they turn vendor APIs and local files into raw records.
//!
//! Every connector implements [`weir_schemas::component::Source`]: it hands the runner batches
//! of `RawEnvelope` records (the vendor bytes untouched) with the cursor that follows them, and
//! resumes from the cursor the runner committed. One folder per connector, the same files in
//! each: `config.rs` (what the user writes), `source.rs` (the connector), `tests.rs`.

pub mod aws_cloudtrail;
pub mod azure_activity;
/// Why a connector cannot be built from its configuration: the option at fault and why (never
/// a secret's value). The pipeline reports it at the option's line in the config file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("option `{option}`: {reason}")]
pub struct InvalidOption {
    /// The option, as written in the config file (`""` when it is about the table as a whole).
    pub option: &'static str,
    /// Why it cannot work.
    pub reason: String,
}

impl InvalidOption {
    /// `option` cannot work because of `reason`.
    pub fn new(option: &'static str, reason: impl Into<String>) -> Self {
        InvalidOption { option, reason: reason.into() }
    }
}

impl From<http::ApiError> for InvalidOption {
    fn from(error: http::ApiError) -> Self {
        InvalidOption::new("http", error.to_string())
    }
}

pub mod batch;
pub mod crowdstrike;
pub mod cursor;
pub mod file;
pub mod gcp_audit;
pub mod http;
pub mod netskope;
pub mod okta;
pub mod push;
#[cfg(test)]
pub(crate) mod test_support;
pub mod window;
