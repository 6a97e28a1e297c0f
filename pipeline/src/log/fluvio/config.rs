//! Settings of the Fluvio backend: the `[log]` table with `backend = "fluvio"`.
//!
//! ```toml
//! [log]
//! backend = "fluvio"
//! endpoint = "127.0.0.1:9003"          # the SC's public address
//! partitions = 3                       # of topics Weir creates
//! replication = 1
//! retention_ms = 604800000             # 7 days; and/or retention_bytes
//! compression = "lz4"                  # none | gzip | snappy | lz4 | zstd
//! linger_ms = 5
//! batch_size = 1048576
//! tls = { ca_cert = "ca.crt", cert = "client.crt", key = "client.key", domain = "fluvio.local" }
//! ```

use std::path::PathBuf;

use serde::Deserialize;

/// How records are compressed on produce (and the topic's compression when Weir creates it).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FluvioCompression {
    /// Not compressed.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4 (the default: cheap on CPU, which two shared cores need).
    #[default]
    Lz4,
    /// Zstandard.
    Zstd,
}

/// Verified TLS to the cluster: every file is PEM, read when the client connects.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FluvioTls {
    /// The CA certificate that signed the cluster's certificates.
    pub ca_cert: PathBuf,
    /// The client certificate.
    pub cert: PathBuf,
    /// The client's private key.
    pub key: PathBuf,
    /// The name the cluster's certificate is checked against.
    pub domain: String,
}

/// Settings of the Fluvio backend.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FluvioConfig {
    /// The SC's public address, `host:port`.
    pub endpoint: String,
    /// Verified TLS; plaintext when absent.
    #[serde(default)]
    pub tls: Option<FluvioTls>,
    /// Replicas of each partition of the topics Weir creates.
    #[serde(default = "default_replication")]
    pub replication: u32,
    /// Records older than this are deleted (Fluvio keeps whole segments, so at second
    /// granularity, rounded up). Fluvio's default (7 days) when absent.
    #[serde(default)]
    pub retention_ms: Option<u64>,
    /// A partition larger than this loses its oldest segments. Fluvio's default when absent.
    #[serde(default)]
    pub retention_bytes: Option<u64>,
    /// Compression on produce and of the topics Weir creates.
    #[serde(default)]
    pub compression: FluvioCompression,
    /// How long the producer waits to fill a batch, in milliseconds.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
    /// The most bytes the producer puts in one batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: u64,
}

fn default_replication() -> u32 {
    1
}

fn default_linger_ms() -> u64 {
    5
}

fn default_batch_size() -> u64 {
    1024 * 1024
}

/// The keys of the `[log]` table only the Fluvio backend takes.
pub const FLUVIO_ONLY_KEYS: &[&str] = &["endpoint", "tls", "replication", "compression", "linger_ms", "batch_size"];

/// The largest `batch_size` accepted (the producer's request size limit is raised to match).
pub const MAX_BATCH_SIZE: u64 = 16 * 1024 * 1024;

impl FluvioConfig {
    /// A plaintext config for an endpoint, every other setting at its default.
    pub fn new(endpoint: impl Into<String>) -> Self {
        FluvioConfig {
            endpoint: endpoint.into(),
            tls: None,
            replication: default_replication(),
            retention_ms: None,
            retention_bytes: None,
            compression: FluvioCompression::default(),
            linger_ms: default_linger_ms(),
            batch_size: default_batch_size(),
        }
    }

    /// Checks the settings; returns what is wrong with which key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let endpoint_ok = self
            .endpoint
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
        if !endpoint_ok {
            return Err(("endpoint", format!("must be `host:port`, e.g. \"127.0.0.1:9003\", got {:?}", self.endpoint)));
        }
        if self.replication == 0 || self.replication > 16 {
            return Err(("replication", format!("must be from 1 to 16, got {}", self.replication)));
        }
        if let Some(ms) = self.retention_ms {
            if ms < 1000 || ms / 1000 > u32::MAX as u64 {
                return Err((
                    "retention_ms",
                    format!("must be from 1000 to {} (Fluvio keeps seconds), got {ms}", u32::MAX as u64 * 1000),
                ));
            }
        }
        if self.retention_bytes == Some(0) {
            return Err(("retention_bytes", "must be at least 1".into()));
        }
        if self.linger_ms > 60_000 {
            return Err(("linger_ms", format!("must be at most 60000, got {}", self.linger_ms)));
        }
        if self.batch_size < 1024 || self.batch_size > MAX_BATCH_SIZE {
            return Err(("batch_size", format!("must be from 1024 to {MAX_BATCH_SIZE}, got {}", self.batch_size)));
        }
        if let Some(tls) = &self.tls {
            if tls.domain.is_empty() {
                return Err(("tls", "`domain` must not be empty".into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(FluvioConfig::new("127.0.0.1:9003").validate(), Ok(()));
    }

    #[test]
    fn each_bad_setting_names_its_key() {
        let bad: Vec<(&str, FluvioConfig)> = vec![
            ("endpoint", FluvioConfig::new("127.0.0.1")),
            ("endpoint", FluvioConfig::new(":9003")),
            ("endpoint", FluvioConfig::new("host:0")),
            ("replication", FluvioConfig { replication: 0, ..FluvioConfig::new("h:1") }),
            ("retention_ms", FluvioConfig { retention_ms: Some(999), ..FluvioConfig::new("h:1") }),
            ("retention_bytes", FluvioConfig { retention_bytes: Some(0), ..FluvioConfig::new("h:1") }),
            ("linger_ms", FluvioConfig { linger_ms: 60_001, ..FluvioConfig::new("h:1") }),
            ("batch_size", FluvioConfig { batch_size: 10, ..FluvioConfig::new("h:1") }),
        ];
        for (key, config) in bad {
            assert_eq!(config.validate().unwrap_err().0, key, "{config:?}");
        }
    }
}
