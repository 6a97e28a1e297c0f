//! Standard Webhooks signing (`v1`, HMAC-SHA256) and the legacy `X-Signature`.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::http::{InvalidConfig, Secret};

type HmacSha256 = Hmac<Sha256>;

/// A decoded `whsec_` signing key.
#[derive(Clone)]
pub struct SigningKey {
    key: Vec<u8>,
    raw: Secret,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

impl SigningKey {
    /// Decodes `whsec_<base64>` (the prefix is optional; missing `=` padding is tolerated, as
    /// the reference libraries do).
    pub fn from_secret(secret: &Secret) -> Result<Self, InvalidConfig> {
        let text = secret.expose().trim();
        let encoded = text.strip_prefix("whsec_").unwrap_or(text);
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let key = engine
            .decode(encoded)
            .map_err(|_| InvalidConfig::new("secret", "must be whsec_ followed by base64 (the value is not shown)"))?;
        if key.is_empty() {
            return Err(InvalidConfig::new("secret", "the decoded key is empty"));
        }
        Ok(SigningKey { key, raw: secret.clone() })
    }

    /// The `webhook-signature` value: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// The legacy `X-Signature` value: `sha256=<hex HMAC-SHA256 of the body>`, keyed with the
    /// secret string as configured.
    pub fn legacy(&self, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(self.raw.expose().as_bytes()).expect("HMAC takes keys of any length");
        mac.update(body);
        let digest = mac.finalize().into_bytes();
        let mut hex = String::with_capacity(7 + 64);
        hex.push_str("sha256=");
        for byte in digest {
            hex.push_str(&format!("{byte:02x}"));
        }
        hex
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        let key = SigningKey::from_secret(&Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).unwrap();
        assert_eq!(
            key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(format!("{key:?}"), "SigningKey(***)");
    }

    #[test]
    fn a_bad_secret_is_refused_without_showing_it() {
        let err = SigningKey::from_secret(&Secret::new("whsec_not base64!!")).unwrap_err();
        assert_eq!(err.key, "secret");
        assert!(!err.to_string().contains("not base64"), "{err}");
    }
}
