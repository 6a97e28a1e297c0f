//! A fake Falcon API for the tests: the OAuth2 token endpoint (201, tokens that expire), the
//! alerts query + entities endpoints with offset paging and `updated_timestamp` filtering, the
//! hosts scroll + entities endpoints with expiring scroll tokens, and the failure modes a client
//! must survive (429 with `X-Ratelimit-Retryafter`, 5xx, truncated JSON, partial `errors`).
//! Alerts and hosts are synthetic.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::batch::now_ms;
use crate::test_support::serve;

/// Something going wrong on the next API request (not token requests), used up in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// No fault.
    Pass,
    /// 429 with `X-Ratelimit-Retryafter` one second ahead (epoch seconds).
    RateLimited,
    /// 502.
    ServerError,
    /// A 200 whose JSON is cut in half.
    Truncated,
    /// A 200 with the results and a non-empty `errors`.
    PartialErrors,
    /// The bearer token has expired: 401.
    ExpireToken,
}

/// An alert in the fake tenant.
#[derive(Clone, Debug)]
pub struct FakeAlert {
    /// `composite_id`.
    pub composite_id: String,
    /// `updated_timestamp`, ms.
    pub updated_ms: i64,
    /// Its JSON.
    pub json: String,
}

/// A host in the fake tenant.
#[derive(Clone, Debug)]
pub struct FakeHost {
    /// `device_id`.
    pub device_id: String,
    /// `modified_timestamp`, ms.
    pub modified_ms: i64,
    /// Its JSON.
    pub json: String,
}

/// A scroll under way: the ids of its snapshot and how far it got.
struct Scroll {
    ids: Vec<String>,
    position: usize,
}

/// The tenant's state (tests change it between polls).
pub struct FakeState {
    /// The valid client id.
    pub client_id: String,
    /// The valid client secret.
    pub client_secret: String,
    /// `expires_in` of new tokens.
    pub expires_in: u64,
    /// Live tokens.
    tokens: Vec<String>,
    /// Token requests answered with a token.
    pub tokens_issued: usize,
    /// Form fields of the last token request (without the secret).
    pub last_token_form: Vec<(String, String)>,
    /// Alerts.
    pub alerts: Vec<FakeAlert>,
    /// Hosts.
    pub hosts: Vec<FakeHost>,
    scrolls: HashMap<String, Scroll>,
    scroll_serial: usize,
    /// Faults for the next API requests.
    pub faults: VecDeque<Fault>,
    /// Every API request: `GET /path?query` or `POST /path`.
    pub log: Vec<String>,
}

/// A running fake Falcon API.
pub struct FakeFalcon {
    /// Its base URL.
    pub url: String,
    /// Its state.
    pub state: Arc<Mutex<FakeState>>,
}

type Shared = Arc<Mutex<FakeState>>;

/// RFC 3339 with nanoseconds, like Falcon's timestamps.
pub fn rfc3339(ms: i64) -> String {
    let nanos = ms as i128 * 1_000_000 + 123_456;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap().format(&Rfc3339).unwrap()
}

impl FakeFalcon {
    /// A tenant accepting `client_id`/`client_secret`.
    pub async fn start(client_id: &str, client_secret: &str) -> FakeFalcon {
        let state = Arc::new(Mutex::new(FakeState {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            expires_in: 1799,
            tokens: Vec::new(),
            tokens_issued: 0,
            last_token_form: Vec::new(),
            alerts: Vec::new(),
            hosts: Vec::new(),
            scrolls: HashMap::new(),
            scroll_serial: 0,
            faults: VecDeque::new(),
            log: Vec::new(),
        }));
        let app = Router::new()
            .route("/oauth2/token", post(token))
            .route("/alerts/queries/alerts/v2", get(query_alerts))
            .route("/alerts/entities/alerts/v2", post(alert_entities))
            .route("/alerts/combined/alerts/v1", post(combined_alerts))
            .route("/devices/queries/devices-scroll/v1", get(scroll_hosts))
            .route("/devices/entities/devices/v2", post(host_entities))
            .with_state(state.clone());
        FakeFalcon { url: serve(app).await, state }
    }

    /// Adds alerts `first..first+count`, updated one second apart from an hour ago.
    pub fn add_alerts(&self, first: usize, count: usize) {
        let base = now_ms() - 3_600_000;
        for n in first..first + count {
            self.set_alert(n, base + n as i64 * 1000, "new");
        }
    }

    /// Adds alerts `first..first+count`, all updated at `updated_ms` (a bulk change), at once.
    pub fn add_alerts_at(&self, first: usize, count: usize, updated_ms: i64) {
        let alerts: Vec<FakeAlert> = (first..first + count).map(|n| alert(n, updated_ms, "new")).collect();
        self.state.lock().unwrap().alerts.extend(alerts);
    }

    /// Creates or changes alert `n`: updated at `updated_ms` with `status`.
    pub fn set_alert(&self, n: usize, updated_ms: i64, status: &str) {
        let alert = alert(n, updated_ms, status);
        let mut state = self.state.lock().unwrap();
        state.alerts.retain(|a| a.composite_id != alert.composite_id);
        state.alerts.push(alert);
    }
}

/// Synthetic alert `n`, updated at `updated_ms` with `status`.
fn alert(n: usize, updated_ms: i64, status: &str) -> FakeAlert {
    let composite_id = format!("0123456789abcdef0123456789abcdef:ind:fedcba9876543210fedcba9876543210:{n:012}-5701-1");
    let json = format!(
        r#"{{"composite_id":"{composite_id}","id":"ind:fedcba9876543210fedcba9876543210:{n:012}-5701-1","cid":"0123456789abcdef0123456789abcdef","product":"epp","type":"ldt","name":"SyntheticBehavior{n}","severity":50,"severity_name":"Medium","status":"{status}","created_timestamp":"{}","updated_timestamp":"{}","device":{{"device_id":"dev{n:029}","hostname":"host-{n}"}},"process_id":"{}"}}"#,
        rfc3339(updated_ms - 60_000),
        rfc3339(updated_ms),
        12_345_678_901_234_567u64 + n as u64
    );
    FakeAlert { composite_id, updated_ms, json }
}

impl FakeFalcon {
    /// Adds hosts `first..first+count`, modified one second apart from an hour ago.
    pub fn add_hosts(&self, first: usize, count: usize) {
        let base = now_ms() - 3_600_000;
        for n in first..first + count {
            self.set_host(n, base + n as i64 * 1000);
        }
    }

    /// Creates or changes host `n`, modified at `modified_ms`.
    pub fn set_host(&self, n: usize, modified_ms: i64) {
        let device_id = format!("dev{n:029}");
        let json = format!(
            r#"{{"device_id":"{device_id}","cid":"0123456789abcdef0123456789abcdef","hostname":"host-{n}","platform_name":"Linux","os_version":"Ubuntu 24.04","agent_version":"7.10.0","local_ip":"10.0.{}.{}","status":"normal","first_seen":"2024-01-01T00:00:00Z","last_seen":"{}","modified_timestamp":"{}","tags":[],"groups":[]}}"#,
            n / 250,
            n % 250,
            rfc3339(modified_ms),
            rfc3339(modified_ms)
        );
        let mut state = self.state.lock().unwrap();
        state.hosts.retain(|h| h.device_id != device_id);
        state.hosts.push(FakeHost { device_id, modified_ms, json });
    }

    /// The weir-ids of every alert's current version.
    pub fn alert_ids(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        let mut ids: Vec<String> =
            state.alerts.iter().map(|a| format!("crowdstrike:{}@{}", a.composite_id, rfc3339(a.updated_ms))).collect();
        ids.sort();
        ids
    }

    /// The weir-ids of every host's current version.
    pub fn host_ids(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        let mut ids: Vec<String> =
            state.hosts.iter().map(|h| format!("crowdstrike:{}@{}", h.device_id, rfc3339(h.modified_ms))).collect();
        ids.sort();
        ids
    }

    /// Queues faults for the next API requests.
    pub fn fail_next(&self, faults: &[Fault]) {
        self.state.lock().unwrap().faults.extend(faults.iter().copied());
    }

    /// Makes every scroll token issued so far expire.
    pub fn expire_scrolls(&self) {
        self.state.lock().unwrap().scrolls.clear();
    }

    /// The API requests seen so far.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }
}

fn json(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-ratelimit-limit", "6000")
        .header("x-ratelimit-remaining", "5999")
        .header("x-cs-traceid", "00000000-0000-0000-0000-000000000000")
        .body(Body::from(body))
        .unwrap()
}

fn envelope(pagination: &str, resources: &[String], errors: &str) -> String {
    format!(
        r#"{{"meta":{{"query_time":0.01,"pagination":{pagination},"powered_by":"fake","trace_id":"00000000"}},"resources":[{}],"errors":{errors}}}"#,
        resources.join(",")
    )
}

fn error_body(code: u16, message: &str) -> String {
    format!(
        r#"{{"meta":{{"query_time":0.0,"trace_id":"00000000"}},"resources":[],"errors":[{{"code":{code},"message":"{message}"}}]}}"#
    )
}

async fn token(State(state): State<Shared>, body: Bytes) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut state = state.lock().unwrap();
    state.last_token_form = form.iter().filter(|(k, _)| k != "client_secret").cloned().collect();
    if field("client_id").as_deref() != Some(state.client_id.as_str())
        || field("client_secret").as_deref() != Some(state.client_secret.as_str())
    {
        return json(StatusCode::FORBIDDEN, error_body(403, "Failed to issue access token - Not Authorized"));
    }
    state.tokens_issued += 1;
    let token = format!("fake-token-{}", state.tokens_issued);
    state.tokens.push(token.clone());
    let body = format!(r#"{{"access_token":"{token}","token_type":"bearer","expires_in":{}}}"#, state.expires_in);
    let mut response = json(StatusCode::CREATED, body);
    response.headers_mut().insert("x-cs-region", "us-1".parse().unwrap());
    response
}

/// Checks the bearer token and applies the next fault: `Err` is the answer to send instead.
fn admit(state: &mut FakeState, headers: &HeaderMap, line: String) -> Result<Fault, Box<Response>> {
    state.log.push(line);
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = bearer.filter(|t| state.tokens.iter().any(|k| k == t)).map(str::to_string) else {
        return Err(Box::new(json(StatusCode::UNAUTHORIZED, error_body(401, "access denied, invalid bearer token"))));
    };
    let fault = state.faults.pop_front().unwrap_or(Fault::Pass);
    match fault {
        Fault::RateLimited => {
            let reset = now_ms() / 1000 + 1;
            Err(Box::new(
                Response::builder()
                    .status(StatusCode::TOO_MANY_REQUESTS)
                    .header("content-type", "application/json")
                    .header("x-ratelimit-limit", "6000")
                    .header("x-ratelimit-remaining", "0")
                    .header("x-ratelimit-retryafter", reset.to_string())
                    .body(Body::from(error_body(429, "API rate limit exceeded.")))
                    .unwrap(),
            ))
        }
        Fault::ServerError => Err(Box::new(json(StatusCode::BAD_GATEWAY, error_body(502, "bad gateway")))),
        Fault::ExpireToken => {
            state.tokens.retain(|t| *t != token);
            Err(Box::new(json(StatusCode::UNAUTHORIZED, error_body(401, "access denied, invalid bearer token"))))
        }
        other => Ok(other),
    }
}

/// The answer for a fault that shapes a 200.
fn shaped(fault: Fault, body: String) -> Response {
    match fault {
        Fault::Truncated => json(StatusCode::OK, body[..body.len() / 2].to_string()),
        _ => json(StatusCode::OK, body),
    }
}

fn partial(fault: Fault) -> &'static str {
    if fault == Fault::PartialErrors {
        r#"[{"code":500,"message":"some results could not be retrieved"}]"#
    } else {
        "[]"
    }
}

/// The time in an FQL clause `<field>:<op>'<time>'`.
fn fql_time(filter: &str, prefix: &str) -> Option<i64> {
    let start = filter.find(prefix)? + prefix.len();
    let end = filter[start..].find('\'')? + start;
    let t = OffsetDateTime::parse(&filter[start..end], &Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

async fn query_alerts(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut state = state.lock().unwrap();
    let filter = query.get("filter").cloned().unwrap_or_default();
    let line =
        format!("GET /alerts/queries/alerts/v2 filter={filter} offset={}", query.get("offset").map_or("", |v| v));
    let fault = match admit(&mut state, &headers, line) {
        Ok(fault) => fault,
        Err(response) => return *response,
    };
    let offset: usize = query.get("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    let limit: usize = query.get("limit").and_then(|v| v.parse().ok()).unwrap_or(100);
    if offset + limit > 10_000 {
        return json(StatusCode::BAD_REQUEST, error_body(400, "offset + limit must be at most 10000"));
    }
    let Some(from) = fql_time(&filter, "updated_timestamp:>='") else {
        return json(StatusCode::BAD_REQUEST, error_body(400, "invalid filter"));
    };
    let mut matching: Vec<&FakeAlert> = state.alerts.iter().filter(|a| a.updated_ms >= from).collect();
    matching.sort_by(|a, b| (a.updated_ms, &a.composite_id).cmp(&(b.updated_ms, &b.composite_id)));
    let total = matching.len();
    let ids: Vec<String> =
        matching.iter().skip(offset).take(limit).map(|a| format!("\"{}\"", a.composite_id)).collect();
    let pagination = format!(r#"{{"offset":{offset},"limit":{limit},"total":{total}}}"#);
    shaped(fault, envelope(&pagination, &ids, partial(fault)))
}

async fn alert_entities(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut state = state.lock().unwrap();
    let fault = match admit(&mut state, &headers, "POST /alerts/entities/alerts/v2".into()) {
        Ok(fault) => fault,
        Err(response) => return *response,
    };
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let wanted: Vec<&str> =
        request["composite_ids"].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
    if wanted.len() > 1000 {
        return json(StatusCode::BAD_REQUEST, error_body(400, "too many ids"));
    }
    let by_id: HashMap<&str, &FakeAlert> = state.alerts.iter().map(|a| (a.composite_id.as_str(), a)).collect();
    let resources: Vec<String> = wanted.iter().filter_map(|id| by_id.get(id).map(|a| a.json.clone())).collect();
    shaped(fault, envelope("{}", &resources, partial(fault)))
}

/// `POST /alerts/combined/alerts/v1`: alerts in `[>=, <)` of `updated_timestamp`, sorted by it,
/// paged by an opaque `after` token (absent on the last page).
async fn combined_alerts(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut state = state.lock().unwrap();
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let filter = request["filter"].as_str().unwrap_or_default().to_string();
    let after = request["after"].as_str().map(str::to_string);
    let line = format!("POST /alerts/combined/alerts/v1 filter={filter} after={}", after.as_deref().unwrap_or(""));
    let fault = match admit(&mut state, &headers, line) {
        Ok(fault) => fault,
        Err(response) => return *response,
    };
    let limit = request["limit"].as_u64().unwrap_or(100) as usize;
    if limit > 1000 {
        return json(StatusCode::BAD_REQUEST, error_body(400, "limit must be at most 1000"));
    }
    let (Some(from), to) = (fql_time(&filter, "updated_timestamp:>='"), fql_time(&filter, "updated_timestamp:<'"))
    else {
        return json(StatusCode::BAD_REQUEST, error_body(400, "invalid filter"));
    };
    let position: usize = match &after {
        Some(token) => match token.strip_prefix("after-").and_then(|p| p.parse().ok()) {
            Some(p) => p,
            None => return json(StatusCode::BAD_REQUEST, error_body(400, "invalid after token")),
        },
        None => 0,
    };
    let mut matching: Vec<&FakeAlert> =
        state.alerts.iter().filter(|a| a.updated_ms >= from && to.is_none_or(|t| a.updated_ms < t)).collect();
    matching.sort_by(|a, b| (a.updated_ms, &a.composite_id).cmp(&(b.updated_ms, &b.composite_id)));
    let page: Vec<String> = matching.iter().skip(position).take(limit).map(|a| a.json.clone()).collect();
    let next = position + page.len();
    let after = if next < matching.len() { format!(r#","after":"after-{next}""#) } else { String::new() };
    let pagination = format!(r#"{{"limit":{limit},"total":{}{after}}}"#, matching.len());
    shaped(fault, envelope(&pagination, &page, partial(fault)))
}

async fn scroll_hosts(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut state = state.lock().unwrap();
    let filter = query.get("filter").cloned().unwrap_or_default();
    let line = format!(
        "GET /devices/queries/devices-scroll/v1 filter={filter} offset={}",
        query.get("offset").map_or("", |v| v)
    );
    let fault = match admit(&mut state, &headers, line) {
        Ok(fault) => fault,
        Err(response) => return *response,
    };
    let limit: usize = query.get("limit").and_then(|v| v.parse().ok()).unwrap_or(100);
    let (ids, position) = match query.get("offset") {
        Some(token) => match state.scrolls.get(token) {
            Some(scroll) => (scroll.ids.clone(), scroll.position),
            None => return json(StatusCode::BAD_REQUEST, error_body(400, "the offset has expired or is invalid")),
        },
        None => {
            let since = fql_time(&filter, "modified_timestamp:>'");
            let mut ids: Vec<String> = state
                .hosts
                .iter()
                .filter(|h| since.is_none_or(|s| h.modified_ms > s))
                .map(|h| h.device_id.clone())
                .collect();
            ids.sort();
            (ids, 0)
        }
    };
    let page: Vec<String> = ids.iter().skip(position).take(limit).map(|id| format!("\"{id}\"")).collect();
    let total = ids.len();
    state.scroll_serial += 1;
    let token = format!("FQLscroll{:06}", state.scroll_serial);
    let next = position + page.len();
    state.scrolls.insert(token.clone(), Scroll { ids, position: next });
    let pagination = format!(r#"{{"offset":"{token}","limit":{limit},"total":{total},"expires_at":0}}"#);
    shaped(fault, envelope(&pagination, &page, partial(fault)))
}

async fn host_entities(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut state = state.lock().unwrap();
    let fault = match admit(&mut state, &headers, "POST /devices/entities/devices/v2".into()) {
        Ok(fault) => fault,
        Err(response) => return *response,
    };
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let wanted: Vec<&str> =
        request["ids"].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
    if wanted.len() > 5000 {
        return json(StatusCode::BAD_REQUEST, error_body(400, "too many ids"));
    }
    let resources: Vec<String> = wanted
        .iter()
        .filter_map(|id| state.hosts.iter().find(|h| h.device_id == *id).map(|h| h.json.clone()))
        .collect();
    shaped(fault, envelope("{}", &resources, partial(fault)))
}
