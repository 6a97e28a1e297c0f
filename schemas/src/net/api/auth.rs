//! Credentials: a static header (Okta `SSWS`, `Netskope-Api-Token`), or an OAuth 2.0 access token
//! from the client-credentials flow with a client secret (CrowdStrike, Azure), a signed client
//! assertion (Okta service apps, RFC 7523 `private_key_jwt`) or a JWT bearer grant (Google
//! service accounts), cached and refreshed before it expires and after a 401.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use http::{HeaderName, HeaderValue};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use url::Url;

use super::client::{ApiClient, ApiError, ApiRequest};
use crate::net::Secret;

/// How a source proves who it is.
#[async_trait]
pub trait Auth: Send + Sync {
    /// Headers to add to a request, fetching an access token first if none is cached or the
    /// cached one is about to expire.
    async fn headers(&self, client: &ApiClient) -> Result<Vec<(HeaderName, HeaderValue)>, ApiError>;

    /// The server refused the credentials: forget any cached token. True when a new token may
    /// help (so the request is worth sending once more).
    fn invalidate(&self) -> bool {
        false
    }

    /// Headers that sign this very request, computed on every attempt just before it leaves
    /// (after [`Auth::headers`]). Schemes such as AWS Signature Version 4 sign the method, URL,
    /// headers, body hash and time of each request, which `headers` does not see. Default: none.
    fn sign(&self, _request: &RequestToSign<'_>) -> Result<Vec<(HeaderName, HeaderValue)>, ApiError> {
        Ok(Vec::new())
    }
}

/// What a request-signing [`Auth`] sees of a request: exactly what will be sent.
pub struct RequestToSign<'a> {
    /// The method.
    pub method: &'a http::Method,
    /// The URL, query included.
    pub url: &'a Url,
    /// The request's own headers (not the credentials), `Content-Type` included when there is a
    /// body. `Host` is not among them: it is the URL's host and port.
    pub headers: &'a [(HeaderName, HeaderValue)],
    /// The body bytes as sent (empty when there is none).
    pub body: &'a [u8],
}

/// No credentials (token endpoints, which carry their own in the body).
pub struct NoAuth;

#[async_trait]
impl Auth for NoAuth {
    async fn headers(&self, _client: &ApiClient) -> Result<Vec<(HeaderName, HeaderValue)>, ApiError> {
        Ok(Vec::new())
    }
}

/// A secret sent as-is in a header, after an optional scheme: `Authorization: SSWS <token>`,
/// `Netskope-Api-Token: <token>`.
pub struct HeaderAuth {
    header: HeaderName,
    value: HeaderValue,
}

impl HeaderAuth {
    /// `header: <scheme> <secret>` (no scheme when `scheme` is empty).
    pub fn new(header: &'static str, scheme: &str, secret: &Secret) -> Result<Self, ApiError> {
        let text =
            if scheme.is_empty() { secret.expose().to_string() } else { format!("{scheme} {}", secret.expose()) };
        let mut value = HeaderValue::from_str(&text).map_err(|_| ApiError::Invalid {
            what: format!("the {header} credential"),
            reason: "it holds characters a header cannot carry (a stray newline?)".into(),
        })?;
        value.set_sensitive(true);
        Ok(HeaderAuth { header: HeaderName::from_static(header), value })
    }
}

#[async_trait]
impl Auth for HeaderAuth {
    async fn headers(&self, _client: &ApiClient) -> Result<Vec<(HeaderName, HeaderValue)>, ApiError> {
        Ok(vec![(self.header.clone(), self.value.clone())])
    }
}

/// An RSA private key (PEM) that signs JWT assertions with RS256.
#[derive(Clone)]
pub struct JwtKey {
    key: EncodingKey,
    /// Key id for the JWT header (`kid`), when the server needs it to pick the public key.
    key_id: Option<String>,
}

impl JwtKey {
    /// Reads a PEM private key (PKCS#1 or PKCS#8).
    pub fn from_pem(pem: &Secret, key_id: Option<String>) -> Result<Self, ApiError> {
        let key = EncodingKey::from_rsa_pem(pem.expose().as_bytes()).map_err(|e| ApiError::Invalid {
            what: "the private key".into(),
            reason: format!("it is not an RSA private key in PEM form: {e}"),
        })?;
        Ok(JwtKey { key, key_id })
    }

    fn sign(&self, claims: &impl Serialize) -> Result<String, ApiError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.key_id.clone();
        jsonwebtoken::encode(&header, claims, &self.key)
            .map_err(|e| ApiError::Invalid { what: "signing a JWT assertion".into(), reason: e.to_string() })
    }
}

/// How the client credentials are presented to the token endpoint.
#[derive(Clone)]
pub enum OAuthGrant {
    /// `grant_type=client_credentials` with `client_id` and `client_secret` in the form
    /// (CrowdStrike, Entra ID).
    ClientSecret {
        /// Client id.
        client_id: String,
        /// Client secret.
        client_secret: Secret,
    },
    /// `grant_type=client_credentials` with a signed `client_assertion` (RFC 7523 §2.2,
    /// Okta service apps): `iss` = `sub` = client id, `aud` = the token URL.
    PrivateKeyJwt {
        /// Client id.
        client_id: String,
        /// The signing key.
        key: JwtKey,
    },
    /// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` with a signed `assertion`
    /// (RFC 7523 §2.1, Google service accounts): `iss` = the account's email, `aud` = the token
    /// URL, `scope` in the claims.
    JwtBearer {
        /// The service account's email.
        issuer: String,
        /// The signing key.
        key: JwtKey,
    },
}

/// A cached access token.
struct Token {
    value: HeaderValue,
    /// When to fetch a new one: a little before it expires.
    refresh_at: SystemTime,
}

/// OAuth 2.0 access tokens from a token endpoint, cached until shortly before they expire.
pub struct OAuthClientCredentials {
    token_url: Url,
    grant: OAuthGrant,
    scope: Option<String>,
    /// Extra form fields (CrowdStrike's `member_cid`).
    extra: Vec<(String, String)>,
    token: Mutex<Option<Token>>,
}

/// The token endpoint's answer (RFC 6749 §5.1).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    /// Seconds; some servers send it as a string.
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

/// Claims of a JWT assertion.
#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    aud: &'a str,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

impl OAuthClientCredentials {
    /// Tokens from `token_url` for `grant`, asking for `scope` (space-separated) when given.
    pub fn new(token_url: Url, grant: OAuthGrant, scope: Option<String>) -> Self {
        OAuthClientCredentials { token_url, grant, scope, extra: Vec::new(), token: Mutex::new(None) }
    }

    /// Adds a form field to every token request.
    pub fn with_field(mut self, name: &str, value: &str) -> Self {
        self.extra.push((name.to_string(), value.to_string()));
        self
    }

    /// The token request's form.
    fn form(&self, now: u64) -> Result<Vec<(String, String)>, ApiError> {
        let aud = self.token_url.as_str();
        let mut form: Vec<(String, String)> = Vec::new();
        let mut push = |k: &str, v: &str| form.push((k.to_string(), v.to_string()));
        match &self.grant {
            OAuthGrant::ClientSecret { client_id, client_secret } => {
                push("grant_type", "client_credentials");
                push("client_id", client_id);
                push("client_secret", client_secret.expose());
                if let Some(scope) = &self.scope {
                    push("scope", scope);
                }
            }
            OAuthGrant::PrivateKeyJwt { client_id, key } => {
                let claims = AssertionClaims {
                    iss: client_id,
                    sub: Some(client_id),
                    aud,
                    iat: now,
                    exp: now + 300,
                    jti: Some(format!("weir-{now}-{}", std::process::id())),
                    scope: None,
                };
                push("grant_type", "client_credentials");
                push("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
                push("client_assertion", &key.sign(&claims)?);
                if let Some(scope) = &self.scope {
                    push("scope", scope);
                }
            }
            OAuthGrant::JwtBearer { issuer, key } => {
                let claims = AssertionClaims {
                    iss: issuer,
                    sub: None,
                    aud,
                    iat: now,
                    exp: now + 3600,
                    jti: None,
                    scope: self.scope.as_deref(),
                };
                push("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer");
                push("assertion", &key.sign(&claims)?);
            }
        }
        form.extend(self.extra.iter().cloned());
        Ok(form)
    }

    async fn fetch(&self, client: &ApiClient) -> Result<Token, ApiError> {
        let now = SystemTime::now();
        let epoch = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let request = ApiRequest::post_form(self.token_url.clone(), self.form(epoch)?);
        let what = request.describe();
        // The token endpoint says 400/401 for bad client credentials (RFC 6749 §5.2).
        let response = client.send(&request, &NoAuth).await.map_err(|e| match e {
            ApiError::Rejected { what, status: status @ (400 | 401), reason } => {
                ApiError::Unauthorized { what, status, reason }
            }
            other => other,
        })?;
        let answer: TokenResponse = response.json().map_err(|reason| ApiError::Rejected {
            what: what.clone(),
            status: response.status,
            reason: format!("no access token in the answer ({reason})"),
        })?;
        if let Some(kind) = &answer.token_type {
            if !kind.eq_ignore_ascii_case("bearer") {
                return Err(ApiError::Rejected {
                    what,
                    status: response.status,
                    reason: format!("token type {kind:?} is not supported (only bearer)"),
                });
            }
        }
        let lifetime = match &answer.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        // A vendor number: bounded so the arithmetic below cannot overflow.
        .map_or(Duration::from_secs(3600), |secs| Duration::from_secs(secs.clamp(1, 366 * 86_400)));
        // Refresh a tenth of the lifetime early (at least 30 s, at most 5 min) so a request
        // never leaves with a token about to expire.
        let margin = (lifetime / 10).clamp(Duration::from_secs(30), Duration::from_secs(300)).min(lifetime / 2);
        let mut value =
            HeaderValue::from_str(&format!("Bearer {}", answer.access_token)).map_err(|_| ApiError::Rejected {
                what,
                status: response.status,
                reason: "the access token is not a valid header value".into(),
            })?;
        value.set_sensitive(true);
        tracing::debug!(token_url = %self.token_url, lifetime_secs = lifetime.as_secs(), "fetched an access token");
        Ok(Token { value, refresh_at: now + lifetime - margin })
    }
}

#[async_trait]
impl Auth for OAuthClientCredentials {
    async fn headers(&self, client: &ApiClient) -> Result<Vec<(HeaderName, HeaderValue)>, ApiError> {
        let mut token = self.token.lock().await;
        let fresh = token.as_ref().is_some_and(|t| SystemTime::now() < t.refresh_at);
        if !fresh {
            *token = Some(self.fetch(client).await?);
        }
        let value = token.as_ref().expect("a token was just fetched").value.clone();
        Ok(vec![(http::header::AUTHORIZATION, value)])
    }

    fn invalidate(&self) -> bool {
        if let Ok(mut token) = self.token.try_lock() {
            *token = None;
        }
        true
    }
}
