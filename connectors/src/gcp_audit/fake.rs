//! A fake Google token endpoint (JWT bearer grant: the assertion's signature, iss, aud, scope
//! and exp are checked) and Cloud Logging `entries.list`: filtered time windows in timestamp
//! order, pages by `pageToken`, empty pages that still carry a `nextPageToken`, 429
//! `RESOURCE_EXHAUSTED`, 5xx bursts, expiring tokens, truncated and garbled pages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The fake service account.
pub const CLIENT_EMAIL: &str = "weir-reader@weir-test.iam.gserviceaccount.com";
/// The test-only private key (see testdata/README.md).
pub const PRIVATE_KEY: &str = include_str!("testdata/TEST_ONLY_service_account_rsa_key.pem");
const PUBLIC_KEY: &str = include_str!("testdata/TEST_ONLY_service_account_rsa_key.pub.pem");
/// The project read.
pub const PROJECT: &str = "weir-test";

/// Sample entries (Apache-2.0, see testdata/SOURCES.md), re-stamped by [`entry`].
const TEMPLATES: &str = include_str!("testdata/panther_audit_log_entries.ndjson");

/// One stored entry.
#[derive(Clone)]
pub struct FakeEntry {
    /// `timestamp`, ms since the Unix epoch.
    pub time_ms: i64,
    /// The LogEntry.
    pub value: Value,
}

/// What the fake holds and how it misbehaves (counters count down per request).
#[derive(Default)]
pub struct FakeState {
    /// Every entry.
    pub entries: Vec<FakeEntry>,
    /// Access tokens currently valid.
    pub valid_tokens: Vec<String>,
    /// Tokens issued so far.
    pub tokens_issued: u32,
    /// Why assertions were refused.
    pub refused_assertions: Vec<String>,
    /// Answer this many list requests with an empty page that only carries a `nextPageToken`.
    pub empty_pages_next: u32,
    /// Answer this many list requests with 429.
    pub throttle_next: u32,
    /// Answer this many list requests with 503.
    pub fail_next: u32,
    /// Cut this many 200 bodies in half.
    pub truncate_next: u32,
    /// Always garble the page starting at this offset.
    pub garble_offset: Option<usize>,
    /// List requests received.
    pub requests: u32,
}

/// A running fake.
#[derive(Clone)]
pub struct Fake {
    /// Its state, for tests to change and inspect.
    pub state: Arc<Mutex<FakeState>>,
}

impl Fake {
    /// A fake holding `entries`.
    pub fn new(entries: Vec<FakeEntry>) -> Self {
        Fake { state: Arc::new(Mutex::new(FakeState { entries, ..FakeState::default() })) }
    }

    /// The app to serve (token endpoint at `/token`, Logging at `/v2/entries:list`).
    pub fn router(&self) -> Router {
        Router::new().route("/token", post(token)).route("/v2/entries:list", post(list)).with_state(self.state.clone())
    }

    /// Revokes every issued token (they "expire").
    pub fn expire_tokens(&self) {
        self.state.lock().unwrap().valid_tokens.clear();
    }
}

/// The service-account key file for the fake (token_uri on the fake).
pub fn key_file(base: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "0123456789abcdef",
        "private_key": PRIVATE_KEY,
        "client_email": CLIENT_EMAIL,
        "client_id": "123456789012345678901",
        "token_uri": format!("{base}/token"),
    })
    .to_string()
}

fn iso(ms: i64) -> String {
    let time = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).expect("a valid time");
    time.format(&Rfc3339).expect("formats")
}

/// An audit-log entry with this insertId and time.
pub fn entry(insert_id: &str, time_ms: i64) -> FakeEntry {
    let templates: Vec<&str> = TEMPLATES.lines().filter(|l| !l.trim().is_empty()).collect();
    let index = insert_id.bytes().map(usize::from).sum::<usize>() % templates.len();
    let mut value: Value = serde_json::from_str(templates[index]).expect("valid sample");
    value["insertId"] = json!(insert_id);
    value["timestamp"] = json!(iso(time_ms));
    value["receiveTimestamp"] = json!(iso(time_ms + 2_500));
    value["logName"] = json!(format!("projects/{PROJECT}/logs/cloudaudit.googleapis.com%2Factivity"));
    FakeEntry { time_ms, value }
}

fn google_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "error": { "code": status.as_u16(), "message": message, "status": code } });
    (status, axum::Json(body)).into_response()
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    scope: String,
    iat: i64,
    exp: i64,
}

async fn token(State(state): State<Arc<Mutex<FakeState>>>, headers: HeaderMap, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mut state = state.lock().unwrap();
    let refuse = |state: &mut FakeState, why: &str| {
        state.refused_assertions.push(why.to_string());
        let body = json!({ "error": "invalid_grant", "error_description": why });
        (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
    };
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return refuse(&mut state, "unsupported grant_type");
    }
    let Some(assertion) = form.get("assertion") else { return refuse(&mut state, "no assertion") };
    let key = DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).expect("the test public key");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = match jsonwebtoken::decode::<Claims>(assertion, &key, &validation) {
        Ok(data) => data.claims,
        Err(_) => return refuse(&mut state, "Invalid JWT Signature."),
    };
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    if claims.iss != CLIENT_EMAIL {
        return refuse(&mut state, "Invalid issuer");
    }
    if claims.aud != format!("http://{host}/token") {
        return refuse(&mut state, "Invalid JWT: aud is not the token URL");
    }
    if !claims.scope.split(' ').any(|s| s == "https://www.googleapis.com/auth/logging.read") {
        return refuse(&mut state, "Invalid scope");
    }
    if claims.exp <= now || claims.exp - claims.iat > 3600 || claims.iat > now + 60 {
        return refuse(&mut state, "Invalid JWT: Token must be a short-lived token (60 minutes)");
    }
    state.tokens_issued += 1;
    let token = format!("ya29.fake-google-token-{}", state.tokens_issued);
    state.valid_tokens.push(token.clone());
    axum::Json(json!({ "access_token": token, "expires_in": 3599, "token_type": "Bearer" })).into_response()
}

/// The `[t0, t1)` of the filter the source sends, if it is well formed.
fn parse_filter(filter: &str) -> Option<(i64, i64)> {
    let rest = filter.strip_prefix("logName:\"cloudaudit.googleapis.com\" AND timestamp>=\"")?;
    let (t0, rest) = rest.split_once('"')?;
    let rest = rest.strip_prefix(" AND timestamp<\"")?;
    let (t1, rest) = rest.split_once('"')?;
    if !rest.is_empty() {
        return None;
    }
    let ms = |t: &str| OffsetDateTime::parse(t, &Rfc3339).ok().map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
    Some((ms(t0)?, ms(t1)?))
}

async fn list(State(state): State<Arc<Mutex<FakeState>>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut state = state.lock().unwrap();
    state.requests += 1;
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !bearer.is_some_and(|token| state.valid_tokens.iter().any(|t| t == token)) {
        return google_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token.",
        );
    }
    if state.throttle_next > 0 {
        state.throttle_next -= 1;
        return google_error(
            StatusCode::TOO_MANY_REQUESTS,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Read requests'",
        );
    }
    if state.fail_next > 0 {
        state.fail_next -= 1;
        return google_error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", "The service is currently unavailable.");
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return google_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    };
    let names = request["resourceNames"].as_array().cloned().unwrap_or_default();
    if names.is_empty() || names.len() > 100 {
        return google_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "resourceNames: 1 to 100 required");
    }
    if request["orderBy"] != json!("timestamp asc") {
        return google_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "orderBy must be timestamp asc here");
    }
    let Some((t0, t1)) = request["filter"].as_str().and_then(parse_filter) else {
        return google_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "Unparseable filter");
    };
    let size = request["pageSize"].as_u64().unwrap_or(50).clamp(1, 1000) as usize;
    let offset: usize = match request["pageToken"].as_str() {
        None => 0,
        Some(token) => match token.strip_prefix("pt-").and_then(|o| o.parse().ok()) {
            Some(offset) => offset,
            None => return google_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "Invalid page token"),
        },
    };
    let project_log = format!("projects/{PROJECT}/");
    let mut matching: Vec<&FakeEntry> = if names.iter().any(|n| n == &json!(format!("projects/{PROJECT}"))) {
        state
            .entries
            .iter()
            .filter(|e| e.time_ms >= t0 && e.time_ms < t1)
            .filter(|e| e.value["logName"].as_str().is_some_and(|l| l.starts_with(&project_log)))
            .collect()
    } else {
        Vec::new()
    };
    matching.sort_by_key(|e| e.time_ms);
    if state.empty_pages_next > 0 {
        // The search has not finished: no entries yet, but a token to go on with.
        state.empty_pages_next -= 1;
        return axum::Json(json!({ "nextPageToken": format!("pt-{offset}") })).into_response();
    }
    let page: Vec<Value> = matching.iter().skip(offset).take(size).map(|e| e.value.clone()).collect();
    let mut answer = json!({ "entries": page });
    if offset + size < matching.len() {
        answer["nextPageToken"] = json!(format!("pt-{}", offset + size));
    }
    if page.is_empty() {
        // Google leaves `entries` out of an empty answer.
        answer = json!({});
    }
    let mut bytes = answer.to_string().into_bytes();
    if state.garble_offset == Some(offset) {
        bytes.truncate(bytes.len() / 3);
        bytes.extend_from_slice(b"<!DOCTYPE html>");
    } else if state.truncate_next > 0 {
        state.truncate_next -= 1;
        bytes.truncate(bytes.len() / 2);
    }
    (StatusCode::OK, [("content-type", "application/json; charset=UTF-8")], bytes).into_response()
}
