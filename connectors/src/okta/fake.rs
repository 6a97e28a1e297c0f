//! A fake Okta org on 127.0.0.1: the System Log in polling mode, users, groups and members, and
//! an OAuth 2.0 token endpoint for private_key_jwt service apps — with Okta's failure modes on
//! demand (see [`Fault`]).
//!
//! What it emulates, per Okta's documentation: `since` (inclusive) only on the first request and
//! `after` only from `next` links (both at once is a 400, as is `until` on a polling request),
//! a `Link: rel="next"` on every polling page even when empty, `self` links, links sent as
//! separate headers or one comma-joined value, `X-Rate-Limit-*` on every response, 429
//! `E0000047` with an epoch `X-Rate-Limit-Reset`, 500 `E0000009`, 401 `E0000011` for an unknown
//! or expired token, and the redelivery of an event at a page boundary.

// Handlers short-circuit with a ready `Response` as the error: size does not matter in a test fake.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use crate::test_support::serve;

/// The test-only service app key pair (see testdata/README.md).
pub const PRIVATE_KEY: &str = include_str!("testdata/test_only_private_key.pem");
const PUBLIC_KEY: &str = include_str!("testdata/test_only_public_key.pem");

/// The API token the fake accepts.
pub const API_TOKEN: &str = "00fake-okta-api-token-SECRET-42";
/// The service app the fake knows.
pub const CLIENT_ID: &str = "0oafakeserviceapp";

/// What the next API request (logs, users, groups) gets instead of, or on top of, its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answered normally.
    Pass,
    /// 429 `E0000047` with `X-Rate-Limit-Remaining: 0` and a reset one second ahead.
    TooManyRequests,
    /// 500 `E0000009` (Okta's query timeout).
    ServerError,
    /// 503 with an empty body.
    Unavailable,
    /// The right answer, its body cut in the middle.
    Truncated,
    /// 200 with an HTML error page instead of JSON, links intact.
    Invalid,
    /// The right answer, saying no requests are left until a reset one second ahead.
    Exhausted,
    /// Every access token issued so far expires before this request.
    RevokeTokens,
}

/// A group of the directory.
#[derive(Clone, Debug)]
pub struct Group {
    /// Group id.
    pub id: String,
    /// `profile.name`.
    pub name: String,
    /// Member user ids.
    pub members: Vec<String>,
}

/// The org's state, changed by tests between polls.
#[derive(Default)]
pub struct Org {
    /// System Log events (JSON text) in persistence order.
    pub events: Vec<String>,
    /// When a full page is served, its last event is served again at the start of the next one.
    pub overlap: bool,
    /// Faults for the next API requests, in order.
    pub faults: VecDeque<Fault>,
    /// Next links point at this origin instead of the fake's.
    pub foreign_next: Option<String>,
    /// Users (JSON text).
    pub users: Vec<String>,
    /// Groups.
    pub groups: Vec<Group>,
    /// Every API request, `METHOD path?query`, in order.
    pub requests: Vec<String>,
    /// Scopes asked for at the token endpoint.
    pub scopes: Vec<String>,
    /// Access tokens issued → when they expire.
    tokens: HashMap<String, Instant>,
    /// Tokens issued so far.
    pub issued: usize,
    /// Token requests refused.
    pub refused_assertions: usize,
    base_url: String,
}

/// A running fake org.
#[derive(Clone)]
pub struct FakeOkta {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    org: Arc<Mutex<Org>>,
}

impl FakeOkta {
    /// Starts an empty org.
    pub async fn start() -> FakeOkta {
        let org = Arc::new(Mutex::new(Org::default()));
        let app = Router::new()
            .route("/api/v1/logs", get(logs))
            .route("/api/v1/users", get(users))
            .route("/api/v1/groups", get(groups))
            .route("/api/v1/groups/{id}/users", get(members))
            .route("/oauth2/v1/token", post(token))
            .with_state(org.clone());
        let base_url = serve(app).await;
        org.lock().unwrap().base_url = base_url.clone();
        FakeOkta { base_url, org }
    }

    /// Changes the org.
    pub fn with<T>(&self, change: impl FnOnce(&mut Org) -> T) -> T {
        change(&mut self.org.lock().unwrap())
    }

    /// The API requests so far.
    pub fn requests(&self) -> Vec<String> {
        self.with(|org| org.requests.clone())
    }
}

fn epoch_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A response with Okta's rate-limit headers.
fn answer(status: StatusCode, remaining: u32, reset_in: u64) -> axum::http::response::Builder {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-rate-limit-limit", "60")
        .header("x-rate-limit-remaining", remaining.to_string())
        .header("x-rate-limit-reset", (epoch_secs() + reset_in).to_string())
}

fn okta_error(status: StatusCode, code: &str, summary: &str) -> Response {
    let body =
        json!({"errorCode": code, "errorSummary": summary, "errorLink": code, "errorId": "oaefake", "errorCauses": []});
    answer(status, if status == StatusCode::TOO_MANY_REQUESTS { 0 } else { 59 }, 1)
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// Checks the credentials and takes the next fault: Err is the answer to send instead.
fn admit(org: &mut Org, headers: &HeaderMap, uri: &Uri) -> Result<Fault, Response> {
    org.requests.push(format!("GET {}", uri.path_and_query().map_or("", |p| p.as_str())));
    let fault = org.faults.pop_front().unwrap_or(Fault::Pass);
    if fault == Fault::RevokeTokens {
        org.tokens.clear();
    }
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let valid = match authorization.split_once(' ') {
        Some(("SSWS", token)) => token == API_TOKEN,
        Some(("Bearer", token)) => org.tokens.get(token).is_some_and(|expires| Instant::now() < *expires),
        _ => false,
    };
    if !valid {
        return Err(okta_error(StatusCode::UNAUTHORIZED, "E0000011", "Invalid token provided"));
    }
    match fault {
        Fault::TooManyRequests => Err(okta_error(
            StatusCode::TOO_MANY_REQUESTS,
            "E0000047",
            "API call exceeded rate limit due to too many requests.",
        )),
        Fault::ServerError => Err(okta_error(StatusCode::INTERNAL_SERVER_ERROR, "E0000009", "Internal Server Error")),
        Fault::Unavailable => Err(answer(StatusCode::SERVICE_UNAVAILABLE, 59, 1).body(Body::empty()).unwrap()),
        other => Ok(other),
    }
}

/// One page of `items` from index `start`, with self and next links, mangled by `fault`.
fn page(
    org: &Org,
    path: &str,
    items: &[String],
    start: usize,
    limit: usize,
    next: Option<usize>,
    fault: Fault,
) -> Response {
    let end = (start + limit).min(items.len()).max(start.min(items.len()));
    let start = start.min(items.len());
    let mut body = format!("[{}]", items[start..end].join(","));
    match fault {
        Fault::Truncated => body.truncate(body.len() / 2),
        Fault::Invalid => body = "<html><body>Okta is down for maintenance</body></html>".into(),
        _ => {}
    }
    let origin = org.foreign_next.clone().unwrap_or_else(|| org.base_url.clone());
    let extra = if path.ends_with("/logs") { "&sortOrder=ASCENDING" } else { "" };
    let self_link = format!("<{}{path}?limit={limit}{extra}>; rel=\"self\"", org.base_url);
    let (remaining, reset_in) = if fault == Fault::Exhausted { (0, 1) } else { (59, 60) };
    let mut builder = answer(StatusCode::OK, remaining, reset_in);
    match next {
        // Alternate between separate link headers and one comma-joined value (both happen).
        Some(after) if start.is_multiple_of(2) => {
            let next_link = format!("<{origin}{path}?after={after}&limit={limit}{extra}>; rel=\"next\"");
            builder = builder.header("link", self_link).header("link", next_link);
        }
        Some(after) => {
            let next_link = format!("<{origin}{path}?after={after}&limit={limit}{extra}>; rel=\"next\"");
            builder = builder.header("link", format!("{self_link}, {next_link}"));
        }
        None => builder = builder.header("link", self_link),
    }
    builder.body(Body::from(body)).unwrap()
}

fn limit_of(query: &HashMap<String, String>, default: usize, max: usize) -> Result<usize, Response> {
    match query.get("limit").map(|l| l.parse::<usize>()) {
        None => Ok(default),
        Some(Ok(limit)) if limit <= max => Ok(limit.max(1)),
        _ => Err(okta_error(StatusCode::BAD_REQUEST, "E0000001", "Api validation failed: limit")),
    }
}

fn after_of(query: &HashMap<String, String>) -> Result<usize, Response> {
    match query.get("after").map(|a| a.parse::<usize>()) {
        None => Ok(0),
        Some(Ok(after)) => Ok(after),
        Some(Err(_)) => Err(okta_error(StatusCode::BAD_REQUEST, "E0000001", "Api validation failed: after")),
    }
}

type Shared = State<Arc<Mutex<Org>>>;

async fn logs(
    State(org): Shared,
    headers: HeaderMap,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut org = org.lock().unwrap();
    let fault = match admit(&mut org, &headers, &uri) {
        Ok(fault) => fault,
        Err(response) => return response,
    };
    if query.contains_key("until") {
        return okta_error(StatusCode::BAD_REQUEST, "E0000001", "this fake only serves polling requests");
    }
    if query.contains_key("since") && query.contains_key("after") {
        return okta_error(StatusCode::BAD_REQUEST, "E0000031", "since and after are mutually exclusive");
    }
    let limit = match limit_of(&query, 100, 1000) {
        Ok(limit) => limit,
        Err(response) => return response,
    };
    let start = match query.get("since") {
        // Inclusive; the fake's published times share one format, so text order is time order.
        Some(since) => org
            .events
            .iter()
            .position(|e| {
                serde_json::from_str::<Value>(e)
                    .ok()
                    .and_then(|v| v.get("published").and_then(Value::as_str).map(|p| p >= since.as_str()))
                    .unwrap_or(true)
            })
            .unwrap_or(org.events.len()),
        None => match after_of(&query) {
            Ok(after) => after,
            Err(response) => return response,
        },
    };
    let end = (start + limit).min(org.events.len()).max(start);
    // Polling: always a next link; a full page may hand its last event out again.
    let next = if org.overlap && end - start == limit { end - 1 } else { end };
    let events = org.events.clone();
    page(&org, "/api/v1/logs", &events, start, limit, Some(next), fault)
}

/// A finite listing (users, groups, members): next link only while more remain.
fn listing(
    org: &mut Org,
    headers: &HeaderMap,
    uri: &Uri,
    query: &HashMap<String, String>,
    items: Vec<String>,
) -> Response {
    let fault = match admit(org, headers, uri) {
        Ok(fault) => fault,
        Err(response) => return response,
    };
    let (limit, start) = match (limit_of(query, 200, 200), after_of(query)) {
        (Ok(limit), Ok(start)) => (limit, start),
        (Err(response), _) | (_, Err(response)) => return response,
    };
    let next = (start + limit < items.len()).then_some(start + limit);
    page(org, uri.path(), &items, start, limit, next, fault)
}

async fn users(
    State(org): Shared,
    headers: HeaderMap,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut org = org.lock().unwrap();
    let items = org.users.clone();
    listing(&mut org, &headers, &uri, &query, items)
}

async fn groups(
    State(org): Shared,
    headers: HeaderMap,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut org = org.lock().unwrap();
    let items = org
        .groups
        .iter()
        .map(|g| {
            json!({"id": g.id, "type": "OKTA_GROUP", "profile": {"name": g.name, "description": null}}).to_string()
        })
        .collect();
    listing(&mut org, &headers, &uri, &query, items)
}

async fn members(
    State(org): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut org = org.lock().unwrap();
    let Some(group) = org.groups.iter().find(|g| g.id == id).cloned() else {
        return okta_error(StatusCode::NOT_FOUND, "E0000007", "Not found: Resource not found");
    };
    let items = group
        .members
        .iter()
        .filter_map(|member| {
            org.users
                .iter()
                .find(|u| serde_json::from_str::<Value>(u).is_ok_and(|v| v["id"] == member.as_str()))
                .cloned()
        })
        .collect();
    listing(&mut org, &headers, &uri, &query, items)
}

fn token_error(code: &str, description: &str) -> Response {
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header("content-type", "application/json")
        .body(Body::from(json!({"error": code, "error_description": description}).to_string()))
        .unwrap()
}

/// `POST /oauth2/v1/token`: client_credentials with a private_key_jwt client assertion, checked
/// like Okta does (signature, `iss` = `sub` = client id, `aud` = this URL, not expired).
async fn token(State(org): Shared, body: Bytes) -> Response {
    let mut org = org.lock().unwrap();
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials")
        || form.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return token_error("invalid_request", "expected client_credentials with a JWT client assertion");
    }
    let audience = format!("{}/oauth2/v1/token", org.base_url);
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[CLIENT_ID]);
    validation.sub = Some(CLIENT_ID.to_string());
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let key = DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
    let assertion = form.get("client_assertion").map(String::as_str).unwrap_or("");
    if let Err(e) = jsonwebtoken::decode::<Value>(assertion, &key, &validation) {
        org.refused_assertions += 1;
        return token_error("invalid_client", &format!("The client_assertion is invalid: {e}"));
    }
    org.scopes.push(form.get("scope").cloned().unwrap_or_default());
    org.issued += 1;
    let access_token = format!("fake-access-token-{}", org.issued);
    org.tokens.insert(access_token.clone(), Instant::now() + Duration::from_secs(600));
    let body =
        json!({"token_type": "Bearer", "expires_in": 600, "access_token": access_token, "scope": form.get("scope")});
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// A System Log event as Okta sends it (compact JSON), `published` as given.
pub fn log_event(uuid: &str, published: &str) -> String {
    json!({
        "uuid": uuid,
        "published": published,
        "eventType": "user.session.start",
        "version": "0",
        "severity": "INFO",
        "legacyEventType": "core.user_auth.login_success",
        "displayMessage": "User login to Okta",
        "actor": {"id": "00u1fake", "type": "User", "alternateId": "jane@example.com", "displayName": "Jane Doe",
                  "detailEntry": null},
        "client": {"userAgent": {"rawUserAgent": "curl/8", "os": "Unknown", "browser": "UNKNOWN"}, "zone": "null",
                   "device": "Unknown", "id": null, "ipAddress": "192.0.2.10",
                   "geographicalContext": {"city": null, "state": null, "country": "United States", "postalCode": null,
                                           "geolocation": {"lat": 37.0, "lon": -122.0}}},
        "outcome": {"result": "SUCCESS", "reason": null},
        "target": null,
        "transaction": {"type": "WEB", "id": "Xfake", "detail": {}},
        "debugContext": {"debugData": {"requestId": "Xfake", "requestUri": "/api/v1/authn", "url": "/api/v1/authn?"}},
        "authenticationContext": {"authenticationProvider": null, "credentialProvider": null, "credentialType": null,
                                  "issuer": null, "interface": null, "authenticationStep": 0,
                                  "externalSessionId": "xfake"},
        "securityContext": {"asNumber": null, "asOrg": null, "isp": null, "domain": null, "isProxy": null},
        "request": {"ipChain": []}
    })
    .to_string()
}

/// A `SystemPrincipal` event: `client`'s fields all null, as Okta sends for system actions.
pub fn system_principal_event(uuid: &str, published: &str) -> String {
    json!({
        "uuid": uuid, "published": published, "eventType": "system.org.rate_limit.warning", "version": "0",
        "severity": "WARN", "legacyEventType": null, "displayMessage": "Rate limit warning",
        "actor": {"id": "0oa1fake", "type": "SystemPrincipal", "alternateId": "system@okta.com",
                  "displayName": "Okta System", "detailEntry": null},
        "client": {"userAgent": null, "zone": null, "device": null, "id": null, "ipAddress": null,
                   "geographicalContext": null},
        "device": null, "outcome": {"result": "SUCCESS", "reason": null}, "target": null,
        "transaction": {"type": "JOB", "id": "fake", "detail": {}}, "debugContext": {"debugData": {}},
        "authenticationContext": {"authenticationProvider": null, "credentialProvider": null, "credentialType": null,
                                  "issuer": null, "interface": null, "authenticationStep": 0,
                                  "externalSessionId": null},
        "securityContext": {"asNumber": null, "asOrg": null, "isp": null, "domain": null, "isProxy": null},
        "request": {"ipChain": []}
    })
    .to_string()
}

/// An Okta user object (compact JSON).
pub fn user(id: &str, login: &str, last_updated: &str) -> String {
    json!({
        "id": id, "status": "ACTIVE", "created": "2023-01-10T09:00:00.000Z", "activated": "2023-01-10T09:05:00.000Z",
        "statusChanged": null, "lastLogin": null, "lastUpdated": last_updated, "passwordChanged": null,
        "type": {"id": "oty1fake"},
        "profile": {"firstName": "Test", "lastName": id, "login": login, "email": login, "department": "Engineering",
                    "title": null, "manager": null, "managerId": null},
        "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
        "_links": {"self": {"href": format!("https://example.okta.com/api/v1/users/{id}")}}
    })
    .to_string()
}
