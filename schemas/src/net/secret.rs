//! A secret value (token, password, signing key) that never shows in errors, `Debug` output or
//! logs.

use std::path::PathBuf;

use serde::Deserialize;

/// A secret from the configuration. `Debug` and `Display` print `***`; read it only where it is
/// sent, with [`Secret::expose`].
///
/// In a config file a secret is written one of three ways:
/// - a string, usually `"${ENV_VAR}"` (the config loader substitutes it and redacts it from
///   every message);
/// - `{ env = "NAME" }`: the value of environment variable `NAME`, read when the config is loaded;
/// - `{ file = "/run/secrets/okta" }`: the contents of a file (Docker/Kubernetes secrets), without
///   its trailing newline.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// Why a secret could not be read. Never holds the secret itself.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// `{ env = "NAME" }` names a variable that is not set (or not UTF-8).
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    /// `{ file = "..." }` cannot be read.
    #[error("cannot read secret file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The secret is empty.
    #[error("the secret is empty")]
    Empty,
}

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value of environment variable `name`.
    pub fn from_env(name: &str) -> Result<Self, SecretError> {
        let value = std::env::var(name).map_err(|_| SecretError::MissingEnv(name.to_string()))?;
        Secret::non_empty(value)
    }

    /// The contents of `path`, without trailing line breaks.
    pub fn from_file(path: impl Into<PathBuf>) -> Result<Self, SecretError> {
        let path = path.into();
        let value = std::fs::read_to_string(&path).map_err(|source| SecretError::File { path, source })?;
        Secret::non_empty(value.trim_end_matches(['\r', '\n']).to_string())
    }

    fn non_empty(value: String) -> Result<Self, SecretError> {
        if value.is_empty() {
            Err(SecretError::Empty)
        } else {
            Ok(Secret(value))
        }
    }

    /// The secret itself, to put in a request header or a signing key. Never format it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces the secret in `text` with `***` (a no-op for secrets shorter than 3 bytes, which
    /// would mangle ordinary text).
    pub fn scrub(&self, text: &str) -> String {
        if self.0.len() < 3 {
            return text.to_string();
        }
        text.replace(&self.0, "***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, deny_unknown_fields)]
        enum Written {
            Value(String),
            Env { env: String },
            File { file: PathBuf },
        }
        let written = Written::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom("a secret is a string, { env = \"NAME\" } or { file = \"/path\" }")
        })?;
        match written {
            Written::Value(value) => Ok(Secret(value)),
            Written::Env { env } => Secret::from_env(&env).map_err(serde::de::Error::custom),
            Written::File { file } => Secret::from_file(file).map_err(serde::de::Error::custom),
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Holder {
        token: Secret,
    }

    #[test]
    fn a_secret_is_read_from_a_string_an_env_var_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "from-file\n").unwrap();
        let holder: Holder = serde_json::from_value(serde_json::json!({ "token": { "file": path } })).unwrap();
        assert_eq!(holder.token.expose(), "from-file");
        let holder: Holder = serde_json::from_str(r#"{"token": "plain"}"#).unwrap();
        assert_eq!(holder.token.expose(), "plain");
        std::env::set_var("WEIR_SECRET_TEST_VAR", "from-env");
        let holder: Holder = serde_json::from_str(r#"{"token": {"env": "WEIR_SECRET_TEST_VAR"}}"#).unwrap();
        assert_eq!(holder.token.expose(), "from-env");
        assert_eq!(format!("{:?} {}", holder.token, holder.token), "*** ***");
    }

    #[test]
    fn unreadable_secrets_say_why_without_the_value() {
        let err = serde_json::from_str::<Holder>(r#"{"token": {"env": "WEIR_SECRET_TEST_UNSET"}}"#).unwrap_err();
        assert!(err.to_string().contains("environment variable WEIR_SECRET_TEST_UNSET is not set"), "{err}");
        let err = serde_json::from_str::<Holder>(r#"{"token": {"file": "/nonexistent/weir"}}"#).unwrap_err();
        assert!(err.to_string().contains("cannot read secret file /nonexistent/weir"), "{err}");
        let err = serde_json::from_str::<Holder>(r#"{"token": 42}"#).unwrap_err();
        assert!(err.to_string().contains("a secret is a string"), "{err}");
    }
}
