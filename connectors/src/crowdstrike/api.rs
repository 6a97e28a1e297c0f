//! What both Falcon sources share: the connection (OAuth2 client credentials against
//! `{base}/oauth2/token`), the response envelope, FQL times and error messages.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use url::Url;
use weir_schemas::component::ComponentError;

use super::config::Cloud;
use crate::batch::{quote, RawBatch};
use crate::cursor::RecentIds;
use crate::http::{
    ApiClient, ApiError, ApiRequest, ApiResponse, HttpOptions, OAuthClientCredentials, OAuthGrant, Secret,
};

/// The vendor name on raw envelopes (the normalizer dispatches on it).
pub(crate) const VENDOR: &str = "crowdstrike";

/// Why a CrowdStrike source cannot be built from its configuration.
pub type CrowdStrikeConfigError = crate::InvalidOption;

pub(crate) fn config_error(option: &'static str, reason: impl Into<String>) -> CrowdStrikeConfigError {
    crate::InvalidOption::new(option, reason)
}

/// A connection to the Falcon API.
pub(crate) struct Falcon {
    pub name: String,
    pub client: ApiClient,
    pub auth: OAuthClientCredentials,
    base: Url,
    /// The API scope the source needs, for messages (`Alerts: read`).
    scope: &'static str,
}

/// The connection options both configs carry.
pub(crate) struct Connection<'a> {
    pub cloud: Cloud,
    pub base_url: Option<&'a str>,
    pub client_id: &'a str,
    pub client_secret: &'a Secret,
    pub member_cid: Option<&'a str>,
    pub http: &'a HttpOptions,
}

impl Falcon {
    /// The connection for source `name`, needing API scope `scope`.
    pub fn new(name: &str, scope: &'static str, c: Connection<'_>) -> Result<Falcon, CrowdStrikeConfigError> {
        let text = c.base_url.unwrap_or(c.cloud.base_url());
        let base = Url::parse(text).map_err(|e| config_error("base_url", format!("{text:?} is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(config_error("base_url", "it must be an http(s) URL such as https://api.crowdstrike.com"));
        }
        if c.client_id.trim().is_empty() {
            return Err(config_error("client_id", "it must not be empty"));
        }
        let client = ApiClient::new(c.http).map_err(|e| config_error("http", e.to_string()))?;
        let token_url = join(&base, "/oauth2/token");
        let grant =
            OAuthGrant::ClientSecret { client_id: c.client_id.to_string(), client_secret: c.client_secret.clone() };
        let mut auth = OAuthClientCredentials::new(token_url, grant, None);
        if let Some(member) = c.member_cid.filter(|m| !m.trim().is_empty()) {
            auth = auth.with_field("member_cid", member.trim());
        }
        Ok(Falcon { name: name.to_string(), client, auth, base, scope })
    }

    /// The URL of API path `path`.
    pub fn url(&self, path: &str) -> Url {
        join(&self.base, path)
    }

    /// A failed request as the runner's error; refused credentials name the options to fix.
    pub fn error(&self, error: ApiError) -> ComponentError {
        match &error {
            ApiError::Unauthorized { .. } => ComponentError::fatal(format!(
                "source {}: {error}; check `client_id` and `client_secret` (the API client needs the {} scope{})",
                self.name, self.scope, ", and `member_cid` when set"
            )),
            _ => error.for_source(&self.name),
        }
    }
}

fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
    url.set_query(None);
    url
}

/// `meta.pagination`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Pagination {
    /// A number (query endpoints) or an opaque scroll token (`devices-scroll`).
    pub offset: Option<serde_json::Value>,
    /// The token of the next page (`POST /alerts/combined/alerts/v1`); absent on the last.
    #[serde(default)]
    pub after: Option<String>,
}

/// The envelope every Falcon answer has: `{"meta":{..},"resources":[..],"errors":[..]}`.
pub(crate) struct Envelope {
    pub resources: Vec<Box<RawValue>>,
    /// `errors`, as sent, when not empty (partial results).
    pub errors: Option<Box<RawValue>>,
    pub pagination: Pagination,
}

/// Reads the envelope; `resources` and `errors` may be null or absent.
pub(crate) fn parse_envelope(response: &ApiResponse) -> Result<Envelope, String> {
    #[derive(Deserialize)]
    struct Meta {
        #[serde(default)]
        pagination: Option<Pagination>,
    }
    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        meta: Option<Meta>,
        #[serde(default)]
        resources: Option<Vec<Box<RawValue>>>,
        #[serde(default)]
        errors: Option<Vec<Box<RawValue>>>,
    }
    let body: Body = response.json()?;
    let errors = match body.errors {
        Some(errors) if !errors.is_empty() => {
            let joined = format!("[{}]", errors.iter().map(|e| e.get()).collect::<Vec<_>>().join(","));
            RawValue::from_string(joined).ok()
        }
        _ => None,
    };
    Ok(Envelope {
        resources: body.resources.unwrap_or_default(),
        errors,
        pagination: body.meta.and_then(|m| m.pagination).unwrap_or_default(),
    })
}

/// Polls in a row that may find the same answer unreadable (each after the shared client's own
/// tries) before a source gives that answer up. Until then the poll fails with a retryable error
/// and keeps nothing, so the runner backs off and asks again from the same position: a passing
/// fault costs a delay, never an event. Only an answer that stays garbled this long is given up
/// (see [`reject_ids`]), so that one bad answer cannot stall a source forever.
pub(crate) const UNREADABLE_POLLS: u32 = 5;

/// Counts, per position, the polls in a row that found the answer there unreadable; cleared
/// whenever a poll succeeds (a batch goes out and the source moves on).
#[derive(Debug, Default)]
pub(crate) struct Unreadable {
    /// Unreadable answers per position (a source-specific key: query position and chunk).
    counts: HashMap<String, u32>,
}

impl Unreadable {
    /// Records an unreadable answer at `at`. `Ok(n)`: the `n`th there, ask again; `Err(())`: the
    /// [`UNREADABLE_POLLS`]th or later, give it up. The count is kept after giving up, so when a
    /// later chunk of the same poll fails and the poll is retried, this one is given up at once
    /// instead of starting its count over.
    pub fn record(&mut self, at: String) -> Result<u32, ()> {
        let count = self.counts.entry(at).or_default();
        *count += 1;
        if *count >= UNREADABLE_POLLS {
            Err(())
        } else {
            Ok(*count)
        }
    }

    /// Forgets the counts (a poll succeeded: the source moved on).
    pub fn clear(&mut self) {
        self.counts.clear();
    }
}

/// Dead-letters ids whose details answer stayed unreadable over [`UNREADABLE_POLLS`] polls. The
/// payload is the request body that fetches them again (`{"<field>":[..]}`), so an operator can
/// replay it; the garbled answer itself goes to the dead-letter topic too, for diagnosis.
pub(crate) fn reject_ids(batch: &mut RawBatch, what: &str, field: &str, ids: &[String], why: &str, garbled: &[u8]) {
    let first = ids.first().map_or_else(String::new, |id| quote(id));
    batch.reject(
        format!(
            "crowdstrike {what}: {why}; the answer stayed unreadable over {UNREADABLE_POLLS} polls, so the details of \
             {} id(s) from {first} were not read and the source moved on: this payload is the request body that \
             fetches them again",
            ids.len()
        ),
        serde_json::json!({ field: ids }).to_string().as_bytes(),
    );
    batch.reject(format!("crowdstrike {what}: {why}; the unreadable answer (ids dead-lettered apart)"), garbled);
}

/// Dead-letters the `errors` of an answer that still carried results.
pub(crate) fn reject_partial(batch: &mut RawBatch, what: &str, errors: &RawValue) {
    batch.reject(
        format!(
            "crowdstrike {what}: the API reported errors alongside its results (the results were taken): {}",
            quote(errors.get())
        ),
        errors.get().as_bytes(),
    );
}

/// The ids in a query answer's `resources` (strings); anything else is dead-lettered.
pub(crate) fn ids(batch: &mut RawBatch, what: &str, resources: &[Box<RawValue>]) -> Vec<String> {
    let mut ids = Vec::with_capacity(resources.len());
    for (n, raw) in resources.iter().enumerate() {
        match serde_json::from_str::<String>(raw.get()) {
            Ok(id) if !id.is_empty() => ids.push(id),
            _ => batch.reject(format!("crowdstrike {what}: resources[{n}] is not an id string"), raw.get().as_bytes()),
        }
    }
    ids
}

/// An RFC 3339 time (Falcon's `updated_timestamp`, `modified_timestamp`) in ms since the epoch.
pub(crate) fn parse_time_ms(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Rfc3339).ok().map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// A time for an FQL filter: RFC 3339 in UTC, whole seconds (rounded down, so a `>=` filter only
/// ever asks for more).
pub(crate) fn fql_time(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// Which Falcon entity a details answer holds: its id field and the field that versions it.
pub(crate) struct Versioned {
    /// What one is, for reasons: `alert`, `host`.
    pub kind: &'static str,
    /// The id field: `composite_id`, `device_id`.
    pub id_field: &'static str,
    /// The version field: `updated_timestamp`, `modified_timestamp`.
    pub time_field: &'static str,
    /// Where details are asked for: `POST <details_path>` with `{"<ids_field>": [..]}`.
    pub details_path: &'static str,
    /// See `details_path`.
    pub ids_field: &'static str,
}

/// Turns the entities in `resources` (an answer of `what`) into events with id
/// `<id>@<version time>`, each version once (`recent` remembers them: alerts and hosts change,
/// and every version is an event of its own); an entity without its id or version time is
/// dead-lettered. Returns the newest version time among them (ms).
pub(crate) fn take_versions(
    batch: &mut RawBatch,
    recent: &mut RecentIds,
    what: &str,
    entity: &Versioned,
    resources: &[Box<RawValue>],
) -> Option<i64> {
    let mut newest: Option<i64> = None;
    for (n, resource) in resources.iter().enumerate() {
        let fields = match serde_json::from_str::<HashMap<String, Box<RawValue>>>(resource.get()) {
            Ok(fields) => fields,
            Err(e) => {
                batch.reject(format!("crowdstrike {what}: resources[{n}]: {e}"), resource.get().as_bytes());
                continue;
            }
        };
        let text = |field: &str| fields.get(field).and_then(|v| serde_json::from_str::<String>(v.get()).ok());
        let (Some(id), Some(version)) = (text(entity.id_field), text(entity.time_field)) else {
            batch.reject(
                format!("crowdstrike {what}: resources[{n}] has no `{}` or `{}`", entity.id_field, entity.time_field),
                resource.get().as_bytes(),
            );
            continue;
        };
        let Some(version_ms) = parse_time_ms(&version) else {
            batch.reject(
                format!(
                    "crowdstrike {what}: {} {}: `{}` {} is not an RFC 3339 time",
                    entity.kind,
                    quote(&id),
                    entity.time_field,
                    quote(&version)
                ),
                resource.get().as_bytes(),
            );
            continue;
        };
        newest = Some(newest.map_or(version_ms, |n: i64| n.max(version_ms)));
        let event_id = format!("{id}@{version}");
        if recent.insert(&event_id) {
            batch.event(&event_id, Some(version_ms), resource.get().as_bytes());
        }
    }
    newest
}

impl Falcon {
    /// Reads the details of `ids` (one chunk; `at` names its position for [`Unreadable`]) into
    /// `batch`, each version once; returns the newest version time among them.
    ///
    /// An answer still unreadable after the client's retries is a retryable error, so nothing of
    /// this poll is kept and the runner polls the same page again (moving the cursor past ids
    /// whose details were not read would lose them), until [`UNREADABLE_POLLS`] polls in a row
    /// failed there; then the ids are dead-lettered as a refetchable request and the poll goes on.
    pub(crate) async fn take_details(
        &self,
        unreadable: &mut Unreadable,
        batch: &mut RawBatch,
        recent: &mut RecentIds,
        entity: &Versioned,
        ids: &[String],
        at: String,
    ) -> Result<Option<i64>, ComponentError> {
        let what = format!("POST {}", entity.details_path);
        let request =
            ApiRequest::post_json(self.url(entity.details_path), &serde_json::json!({ entity.ids_field: ids }));
        let answer = self.client.send_page(&request, &self.auth, parse_envelope).await;
        let details = match answer.map_err(|e| self.error(e))? {
            Ok((_, details)) => details,
            Err((response, reason)) => {
                let why = format!("HTTP {}: {reason}", response.status);
                return match unreadable.record(at) {
                    Ok(n) => Err(ComponentError::retryable(format!(
                        "source {}: crowdstrike {what}: {why}; the details of {} {}(s) from {} are asked again \
                         (unreadable {n} time(s) in a row, given up at {UNREADABLE_POLLS})",
                        self.name,
                        ids.len(),
                        entity.kind,
                        ids.first().map_or_else(String::new, |id| quote(id)),
                    ))),
                    Err(()) => {
                        reject_ids(batch, &what, entity.ids_field, ids, &why, &response.body);
                        Ok(None)
                    }
                };
            }
        };
        if let Some(errors) = &details.errors {
            reject_partial(batch, &what, errors);
        }
        Ok(take_versions(batch, recent, &what, entity, &details.resources))
    }
}
