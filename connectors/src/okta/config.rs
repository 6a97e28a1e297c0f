//! Configuration of the Okta sources: the connection (org URL, credentials, HTTP options) shared
//! by `okta` and `okta_directory`, each source's own options, and `okta_event_hook`'s.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::Deserialize;
use url::Url;

use crate::http::{
    ApiClient, ApiError, Auth, HeaderAuth, HttpOptions, JwtKey, OAuthClientCredentials, OAuthGrant, Secret,
};

/// The longest `start_lookback_secs` Okta accepts: `since` more than 180 days back is an error.
pub const MAX_LOOKBACK_SECS: u64 = 180 * 24 * 3600;

/// Why an Okta source cannot be built from its configuration.
pub type OktaConfigError = crate::InvalidOption;

/// The credential options are missing or contradict each other.
fn credentials(problem: &str) -> OktaConfigError {
    crate::InvalidOption::new(
        "api_token",
        format!(
            "{problem}; set either `api_token` (an Okta API token, sent as `SSWS`) or `client_id` + `private_key` \
             (an OAuth 2.0 service app with private_key_jwt), not both"
        ),
    )
}

/// How to reach an Okta org and prove who we are: the options `okta` and `okta_directory` share,
/// written in the source's own table.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct OktaConnection {
    /// The org URL, `https://{yourOktaDomain}` (`https://acme.okta.com`, `https://login.acme.com`
    /// for a custom domain, an `okta-gov.com`/`okta.mil` org, or a local fake in tests). `http`
    /// is accepted only for loopback hosts.
    pub base_url: String,
    /// An Okta API token, sent as `Authorization: SSWS <token>`. Usually `"${OKTA_API_TOKEN}"`.
    #[serde(default)]
    pub api_token: Option<Secret>,
    /// Client id of an OAuth 2.0 service app (instead of `api_token`); it signs its token
    /// requests with `private_key` (private_key_jwt) and is granted the scopes it needs.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The service app's RSA private key, PEM (PKCS#1 or PKCS#8), e.g. `{ file = "/run/secrets/okta.pem" }`.
    #[serde(default)]
    pub private_key: Option<Secret>,
    /// The key id (`kid`) of `private_key` as registered with the app, when it has several keys.
    #[serde(default)]
    pub key_id: Option<String>,
    /// Timeouts, retries and pacing of requests to Okta.
    #[serde(default)]
    pub http: HttpOptions,
}

/// Which credential options are in use, for messages: Okta refused *these*.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CredentialKind {
    ApiToken,
    ServiceApp,
}

impl CredentialKind {
    /// The options a user must check when Okta refuses the credentials.
    pub(crate) fn options(self) -> &'static str {
        match self {
            CredentialKind::ApiToken => "`api_token`",
            CredentialKind::ServiceApp => "`client_id` / `private_key` (and the app's granted scopes)",
        }
    }
}

/// A connection ready to use: the org's base URL, the client and the credentials.
pub(crate) struct Connected {
    pub base: Url,
    pub client: ApiClient,
    pub auth: Box<dyn Auth>,
    pub credentials: CredentialKind,
}

impl Connected {
    /// `path` (no leading slash) under the org URL.
    pub fn url(&self, path: &str) -> Url {
        // The base always ends with '/', so `join` appends instead of replacing its last segment.
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    /// Checks that a URL the server handed us (a `Link: next`) is on the org's origin, so the
    /// credentials are never sent to another host.
    pub fn same_origin(&self, link: &str) -> Result<Url, String> {
        let url = Url::parse(link).map_err(|e| format!("the next link {} is not a URL: {e}", quote_url(link)))?;
        if url.origin() != self.base.origin() {
            return Err(format!(
                "the next link points at {} instead of the org {}; not following it (the credentials would go \
                 to another host)",
                url.origin().ascii_serialization(),
                self.base.origin().ascii_serialization()
            ));
        }
        Ok(url)
    }

    /// An API error as the runner's error: a refusal of the credentials names the options to check.
    pub fn error(&self, source: &str, error: ApiError) -> weir_schemas::component::ComponentError {
        match &error {
            ApiError::Unauthorized { status, .. } => weir_schemas::component::ComponentError::fatal(format!(
                "source {source}: Okta refused the credentials in {} (HTTP {status}); check them and the \
                 permissions they carry: {error}",
                self.credentials.options()
            )),
            _ => error.for_source(source),
        }
    }
}

/// A URL quoted for a message, cut short.
fn quote_url(text: &str) -> String {
    format!("`{}`", crate::batch::quote(text))
}

impl OktaConnection {
    /// The org URL, the client and the credentials, asking OAuth for `scopes` (space-separated)
    /// when a service app is configured.
    pub(crate) fn connect(&self, scopes: &str) -> Result<Connected, OktaConfigError> {
        let base = parse_base_url(&self.base_url)?;
        let client = ApiClient::new(&self.http)?;
        let (auth, credentials): (Box<dyn Auth>, CredentialKind) =
            match (&self.api_token, &self.client_id, &self.private_key) {
                (Some(token), None, None) => {
                    if self.key_id.is_some() {
                        return Err(credentials(
                            "`key_id` belongs to a service app's `private_key`, but `api_token` is set",
                        ));
                    }
                    if token.expose().trim().is_empty() {
                        return Err(credentials("`api_token` is empty"));
                    }
                    let auth = HeaderAuth::new("authorization", "SSWS", token)
                        .map_err(|e| OktaConfigError { option: "api_token", reason: without_secret(&e, token) })?;
                    (Box::new(auth), CredentialKind::ApiToken)
                }
                (None, Some(client_id), Some(pem)) => {
                    if client_id.trim().is_empty() {
                        return Err(OktaConfigError { option: "client_id", reason: "it is empty".into() });
                    }
                    let key = JwtKey::from_pem(pem, self.key_id.clone())
                        .map_err(|e| OktaConfigError { option: "private_key", reason: without_secret(&e, pem) })?;
                    let grant = OAuthGrant::PrivateKeyJwt { client_id: client_id.clone(), key };
                    let token_url = base.join("oauth2/v1/token").map_err(|e| OktaConfigError {
                        option: "base_url",
                        reason: format!("no token URL under it: {e}"),
                    })?;
                    let auth = OAuthClientCredentials::new(token_url, grant, Some(scopes.to_string()));
                    (Box::new(auth), CredentialKind::ServiceApp)
                }
                (None, None, None) => return Err(credentials("none is set")),
                (Some(_), _, _) => {
                    return Err(credentials("`api_token` is set together with `client_id`/`private_key`"))
                }
                (None, Some(_), None) => return Err(credentials("`client_id` is set without `private_key`")),
                (None, None, Some(_)) => return Err(credentials("`private_key` is set without `client_id`")),
            };
        Ok(Connected { base, client, auth, credentials })
    }
}

/// An [`ApiError`] about a credential, scrubbed of it just in case.
fn without_secret(error: &ApiError, secret: &Secret) -> String {
    secret.scrub(&error.to_string())
}

/// `base_url` checked and normalised to end with '/': http(s), a host, no query, `http` only on
/// loopback (a token must not cross a network in clear).
pub(crate) fn parse_base_url(text: &str) -> Result<Url, OktaConfigError> {
    let invalid = |reason: String| OktaConfigError { option: "base_url", reason };
    let mut url = Url::parse(text.trim()).map_err(|e| invalid(format!("{} is not a URL: {e}", quote_url(text))))?;
    let host = url.host_str().map(str::to_string).ok_or_else(|| invalid("it has no host".into()))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&host) => {}
        "http" => return Err(invalid("it must be https (http is accepted only for 127.0.0.1/localhost)".into())),
        other => return Err(invalid(format!("scheme `{other}` is not http(s)"))),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("it must not have a query or fragment (just `https://{yourOktaDomain}`)".into()));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A source's table: the shared connection options and the source's own, in one TOML table.
/// (serde cannot combine `flatten` with `deny_unknown_fields`, so leftover keys are gathered and
/// refused here instead.)
#[derive(Deserialize)]
pub(crate) struct Table<T> {
    #[serde(flatten)]
    connection: OktaConnection,
    #[serde(flatten)]
    options: T,
    /// Keys neither took: typos.
    #[serde(flatten)]
    unknown: BTreeMap<String, IgnoredAny>,
}

impl<T> Table<T> {
    fn split(self, known: &[&str]) -> Result<(OktaConnection, T), String> {
        if let Some(key) = self.unknown.keys().next() {
            return Err(format!("unknown option `{key}`, expected one of {}", known.join(", ")));
        }
        Ok((self.connection, self.options))
    }
}

const CONNECTION_KEYS: &[&str] = &["base_url", "api_token", "client_id", "private_key", "key_id", "http"];

fn known_keys(own: &[&'static str]) -> Vec<&'static str> {
    CONNECTION_KEYS.iter().chain(own).copied().collect()
}

/// `[sources.NAME] type = "okta"`: the System Log, polled.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(try_from = "Table<SystemLogOptions>")]
pub struct OktaSystemLogConfig {
    /// The org and credentials (`base_url`, `api_token` or `client_id` + `private_key`, `http`).
    pub connection: OktaConnection,
    /// The System Log options.
    pub options: SystemLogOptions,
}

/// The System Log's own options.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct SystemLogOptions {
    /// On first start (no cursor yet), how far back to begin, in seconds (default 3600). Okta
    /// refuses more than 180 days and keeps 90.
    pub start_lookback_secs: u64,
    /// Events per page, 1–1000 (default 1000).
    pub limit: u32,
    /// How long to wait after reaching the end of the log before asking again, in seconds
    /// (default 10).
    pub poll_interval_secs: u64,
}

impl Default for SystemLogOptions {
    fn default() -> Self {
        SystemLogOptions { start_lookback_secs: 3600, limit: 1000, poll_interval_secs: 10 }
    }
}

impl TryFrom<Table<SystemLogOptions>> for OktaSystemLogConfig {
    type Error = String;

    fn try_from(table: Table<SystemLogOptions>) -> Result<Self, String> {
        let (connection, options) =
            table.split(&known_keys(&["start_lookback_secs", "limit", "poll_interval_secs"]))?;
        Ok(OktaSystemLogConfig { connection, options })
    }
}

/// `[sources.NAME] type = "okta_directory"`: snapshots of users with their groups.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(try_from = "Table<DirectoryOptions>")]
pub struct OktaDirectoryConfig {
    /// The org and credentials (`base_url`, `api_token` or `client_id` + `private_key`, `http`).
    pub connection: OktaConnection,
    /// The directory options.
    pub options: DirectoryOptions,
}

/// The directory snapshots' own options.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct DirectoryOptions {
    /// Seconds between the starts of two full snapshots (default 3600).
    pub interval_secs: u64,
    /// Users, groups or members per page, 1–200 (default 200).
    pub limit: u32,
}

impl Default for DirectoryOptions {
    fn default() -> Self {
        DirectoryOptions { interval_secs: 3600, limit: 200 }
    }
}

impl TryFrom<Table<DirectoryOptions>> for OktaDirectoryConfig {
    type Error = String;

    fn try_from(table: Table<DirectoryOptions>) -> Result<Self, String> {
        let (connection, options) = table.split(&known_keys(&["interval_secs", "limit"]))?;
        Ok(OktaDirectoryConfig { connection, options })
    }
}

/// `[sources.NAME] type = "okta_event_hook"`: System Log events pushed by an Okta Event Hook to
/// Weir's HTTP server.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OktaEventHookConfig {
    /// Where Weir's HTTP server receives the hook, e.g. `"/hooks/okta"` (the URL registered in
    /// Okta is `https://<weir>/hooks/okta`).
    pub path: String,
    /// The static `Authorization` header value configured on the hook in Okta; every request
    /// (the verification GET included) must carry exactly it.
    pub secret: Secret,
    /// An extra header the hook is configured to send (Okta's custom headers), required too.
    #[serde(default)]
    pub header_name: Option<String>,
    /// The value `header_name` must have.
    #[serde(default)]
    pub header_value: Option<Secret>,
}
