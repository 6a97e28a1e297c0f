//! A secret value (token, signing key) that never shows in errors, `Debug` output or logs.

use serde::Deserialize;

/// A secret string from the configuration. `Debug` and `Display` print `***`; read it only
/// where it is sent, with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
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
