//! A fake Entra ID token endpoint and Activity Log API: client-credentials tokens that can
//! expire, `$filter` time windows, pages linked by `nextLink` (`$skiptoken`), 429 with
//! `Retry-After`, 5xx bursts, truncated and garbled pages, a `nextLink` to another host.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use url::Url;

/// The fake tenant.
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The app's client id.
pub const CLIENT_ID: &str = "0a1b2c3d-weir-test-client";
/// The app's client secret.
pub const CLIENT_SECRET: &str = "azure~Secret.Never.Printed~77";
/// The scope the app must ask for.
pub const SCOPE: &str = "https://management.azure.com/.default";

/// A sample EventData (MIT, see testdata/SOURCES.md), re-stamped by [`event`].
const TEMPLATE: &str = include_str!("testdata/activity_log_event.json");

/// One stored event.
#[derive(Clone)]
pub struct FakeEvent {
    /// `eventTimestamp`, ms since the Unix epoch.
    pub time_ms: i64,
    /// The EventData.
    pub value: Value,
}

/// What the fake holds and how it misbehaves (counters count down per request).
#[derive(Default)]
pub struct FakeState {
    /// Events per subscription id.
    pub events: BTreeMap<String, Vec<FakeEvent>>,
    /// Events per page.
    pub page_size: usize,
    /// Access tokens currently valid.
    pub valid_tokens: Vec<String>,
    /// Tokens issued so far.
    pub tokens_issued: u32,
    /// Answer this many API requests with 429 and `Retry-After: 1`.
    pub throttle_next: u32,
    /// Answer this many API requests with 500.
    pub fail_next: u32,
    /// Cut this many 200 bodies in half.
    pub truncate_next: u32,
    /// Garble the page starting at this offset.
    pub garble_offset: Option<usize>,
    /// Garble it only this many more times (`None`: every time). The source asks for a page
    /// three times before it gives it up, so 3 makes one unreadable page.
    pub garble_times: Option<u32>,
    /// Point `nextLink`s at another host.
    pub foreign_next_link: bool,
    /// API requests received (token requests apart).
    pub requests: u32,
}

/// A running fake.
#[derive(Clone)]
pub struct Fake {
    /// Its state, for tests to change and inspect.
    pub state: Arc<Mutex<FakeState>>,
}

impl Fake {
    /// A fake holding `events` per subscription.
    pub fn new(events: BTreeMap<String, Vec<FakeEvent>>) -> Self {
        Fake { state: Arc::new(Mutex::new(FakeState { events, page_size: 20, ..FakeState::default() })) }
    }

    /// The app to serve (token endpoint and Resource Manager on one origin).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/subscriptions/{sub}/providers/Microsoft.Insights/eventtypes/management/values", get(list))
            .with_state(self.state.clone())
    }

    /// Revokes every issued token (they "expire").
    pub fn expire_tokens(&self) {
        self.state.lock().unwrap().valid_tokens.clear();
    }
}

fn iso(ms: i64) -> String {
    let time = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).expect("a valid time");
    time.format(&Rfc3339).expect("formats")
}

/// An EventData with this id, time and subscription.
pub fn event(subscription: &str, id: &str, time_ms: i64) -> FakeEvent {
    let mut value: Value = serde_json::from_str(TEMPLATE).expect("valid sample");
    value["eventDataId"] = json!(id);
    value["eventTimestamp"] = json!(iso(time_ms));
    value["submissionTimestamp"] = json!(iso(time_ms + 90_000));
    value["subscriptionId"] = json!(subscription);
    FakeEvent { time_ms, value }
}

fn arm_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!({ "error": { "code": code, "message": message } }))).into_response()
}

async fn token(State(state): State<Arc<Mutex<FakeState>>>, Path(tenant): Path<String>, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let oauth_error = |status: StatusCode, error: &str, description: &str| {
        (status, axum::Json(json!({ "error": error, "error_description": description }))).into_response()
    };
    if tenant != TENANT {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "AADSTS90002: Tenant not found.");
    }
    if field("grant_type") != "client_credentials" {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "AADSTS70003");
    }
    if field("client_id") != CLIENT_ID || field("client_secret") != CLIENT_SECRET {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        );
    }
    if field("scope") != SCOPE {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "AADSTS70011: The provided value for scope is not valid.",
        );
    }
    let mut state = state.lock().unwrap();
    state.tokens_issued += 1;
    let token = format!("eyJ0eXAi.fake-arm-token-{}", state.tokens_issued);
    state.valid_tokens.push(token.clone());
    axum::Json(json!({ "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token }))
        .into_response()
}

/// The `[t0, t1]` of `eventTimestamp ge 't0' and eventTimestamp le 't1'`.
fn parse_filter(filter: &str) -> Option<(i64, i64)> {
    let rest = filter.trim().strip_prefix("eventTimestamp ge '")?;
    let (t0, rest) = rest.split_once('\'')?;
    let rest = rest.strip_prefix(" and eventTimestamp le '")?;
    let (t1, rest) = rest.split_once('\'')?;
    if !rest.trim().is_empty() {
        return None;
    }
    let ms = |t: &str| OffsetDateTime::parse(t, &Rfc3339).ok().map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
    Some((ms(t0)?, ms(t1)?))
}

async fn list(
    State(state): State<Arc<Mutex<FakeState>>>,
    Path(sub): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut state = state.lock().unwrap();
    state.requests += 1;
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match bearer {
        None => return arm_error(StatusCode::UNAUTHORIZED, "AuthenticationFailed", "Authentication failed."),
        Some(token) if !state.valid_tokens.iter().any(|t| t == token) => {
            return arm_error(
                StatusCode::UNAUTHORIZED,
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time is earlier than current UTC time.",
            )
        }
        Some(_) => {}
    }
    if state.throttle_next > 0 {
        state.throttle_next -= 1;
        let body = json!({"error": {"code": "TooManyRequests", "message": "throttled"}}).to_string();
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], body).into_response();
    }
    if state.fail_next > 0 {
        state.fail_next -= 1;
        return arm_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "try again");
    }
    if query.get("api-version").map(String::as_str) != Some("2015-04-01") {
        return arm_error(StatusCode::BAD_REQUEST, "InvalidApiVersionParameter", "bad api-version");
    }
    let Some(filter) = query.get("$filter") else {
        return arm_error(StatusCode::BAD_REQUEST, "BadRequest", "The filter must contain an eventTimestamp range.");
    };
    let Some((t0, t1)) = parse_filter(filter) else {
        return arm_error(StatusCode::BAD_REQUEST, "BadRequest", "The $filter is not valid.");
    };
    let offset: usize = query.get("$skiptoken").and_then(|s| s.parse().ok()).unwrap_or(0);
    let empty = Vec::new();
    let mut matching: Vec<&FakeEvent> =
        state.events.get(&sub).unwrap_or(&empty).iter().filter(|e| e.time_ms >= t0 && e.time_ms <= t1).collect();
    // Newest first, like the portal and the API.
    matching.sort_by_key(|e| std::cmp::Reverse(e.time_ms));
    let size = state.page_size.max(1);
    let page: Vec<Value> = matching.iter().skip(offset).take(size).map(|e| e.value.clone()).collect();
    let mut answer = json!({ "value": page });
    if offset + size < matching.len() {
        let host = if state.foreign_next_link {
            "evil.example.com:1".to_string()
        } else {
            headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
        };
        let mut next = Url::parse(&format!(
            "http://{host}/subscriptions/{sub}/providers/Microsoft.Insights/eventtypes/management/values"
        ))
        .expect("a URL");
        next.query_pairs_mut()
            .append_pair("api-version", "2015-04-01")
            .append_pair("$filter", filter)
            .append_pair("$skiptoken", &(offset + size).to_string());
        answer["nextLink"] = json!(next.as_str());
    }
    let mut bytes = answer.to_string().into_bytes();
    if state.garble_offset == Some(offset) && state.garble_times != Some(0) {
        if let Some(times) = &mut state.garble_times {
            *times -= 1;
        }
        bytes.truncate(bytes.len() / 3);
        bytes.extend_from_slice(b"\x00}}garbage");
    } else if state.truncate_next > 0 {
        state.truncate_next -= 1;
        bytes.truncate(bytes.len() / 2);
    }
    (StatusCode::OK, [("content-type", "application/json; charset=utf-8")], bytes).into_response()
}
