//! A fake Netskope tenant for the tests: dataexport iterators with server-side cursors per
//! (endpoint, index) and the documented `<epoch>` / `next` / `resend` semantics, plus the
//! failure modes a client must survive (429 with `RateLimit-Reset`/`Retry-After`, 5xx bursts,
//! a response cut mid-body after the cursor moved, garbled pages, `ok: 0`, a bad token).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use crate::test_support::serve;

/// Something going wrong on the next request (faults are used up in order, one per request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// No fault: the request is answered normally.
    Pass,
    /// 429 with `RateLimit-Reset: 1` and `Retry-After: 1`; the cursor does not move.
    RateLimited,
    /// 500; the cursor does not move.
    ServerError,
    /// The operation is carried out (the cursor moves), then the connection is cut mid-body.
    CutBody,
    /// The operation is carried out, and the body sent is not JSON (a complete response).
    Garbled,
    /// A 200 saying `{"ok":0,...}`; the cursor does not move.
    NotOk,
}

/// Where one (endpoint, index) iterator is.
#[derive(Clone, Debug, Default)]
struct ServerCursor {
    /// The next event to send.
    position: usize,
    /// The last page sent, as a range of events.
    last: Option<(usize, usize)>,
}

/// The tenant's state (tests change it between polls).
pub struct FakeState {
    /// The valid API token.
    pub token: String,
    /// Events per page.
    pub page_size: usize,
    /// `wait_time` sent with an empty page.
    pub wait_when_empty: u64,
    /// `wait_time` sent with a non-empty page.
    pub wait_with_data: u64,
    /// Events per endpoint (`events/page`, `alerts/dlp`), oldest first: (epoch seconds, JSON).
    pub events: BTreeMap<String, Vec<(i64, String)>>,
    cursors: HashMap<(String, String), ServerCursor>,
    /// Faults for the next requests, in order.
    pub faults: VecDeque<Fault>,
    /// Every request: `events/page index=… operation=…`.
    pub log: Vec<String>,
}

/// A running fake tenant.
pub struct FakeNetskope {
    /// Its base URL.
    pub url: String,
    /// Its state.
    pub state: Arc<Mutex<FakeState>>,
}

impl FakeNetskope {
    /// A tenant accepting `token`, sending `page_size` events per page.
    pub async fn start(token: &str, page_size: usize) -> FakeNetskope {
        let state = Arc::new(Mutex::new(FakeState {
            token: token.to_string(),
            page_size,
            wait_when_empty: 5,
            wait_with_data: 0,
            events: BTreeMap::new(),
            cursors: HashMap::new(),
            faults: VecDeque::new(),
            log: Vec::new(),
        }));
        let app =
            Router::new().route("/api/v2/events/dataexport/{family}/{kind}", get(dataexport)).with_state(state.clone());
        FakeNetskope { url: serve(app).await, state }
    }

    /// Adds `count` events to endpoint `key`, numbered from `first`, timestamped from now − 1 h.
    pub fn add_events(&self, key: &str, first: usize, count: usize) {
        let base = crate::batch::now_ms() / 1000 - 3600;
        let mut state = self.state.lock().unwrap();
        let events = state.events.entry(key.to_string()).or_default();
        for n in first..first + count {
            events.push((base + n as i64, event(key, n, base + n as i64)));
        }
    }

    /// Every event's `_id`, as the weir-ids a source must deliver.
    pub fn weir_ids(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        let mut ids: Vec<String> = state
            .events
            .values()
            .flatten()
            .filter_map(|(_, json)| {
                let value: serde_json::Value = serde_json::from_str(json).ok()?;
                Some(format!("netskope:{}", value.get("_id")?.as_str()?))
            })
            .collect();
        ids.sort();
        ids
    }

    /// Queues faults for the next requests.
    pub fn fail_next(&self, faults: &[Fault]) {
        self.state.lock().unwrap().faults.extend(faults.iter().copied());
    }

    /// The requests seen so far.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }
}

/// A synthetic event with a 64-bit id above 2^53 that a float would round.
pub fn event(key: &str, n: usize, timestamp: i64) -> String {
    let kind = key.rsplit('/').next().unwrap_or("page");
    format!(
        r#"{{"_id":"{kind}{n:020x}","timestamp":{timestamp},"type":"{kind}","user":"user{n}@example.com","app":"Example App","app_session_id":{},"srcip":"192.0.2.{}","action":"allow"}}"#,
        9_007_199_254_740_993u64 + n as u64 * 2,
        n % 250
    )
}

fn json(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("ratelimit-limit", "4")
        .header("ratelimit-remaining", "3")
        .header("ratelimit-reset", "1")
        .body(Body::from(body))
        .unwrap()
}

async fn dataexport(
    State(state): State<Arc<Mutex<FakeState>>>,
    Path((family, kind)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut state = state.lock().unwrap();
    let key = format!("{family}/{kind}");
    let index = query.get("index").cloned().unwrap_or_default();
    let operation = query.get("operation").cloned().unwrap_or_default();
    state.log.push(format!("{key} index={index} operation={operation}"));
    if headers.get("netskope-api-token").and_then(|v| v.to_str().ok()) != Some(state.token.as_str()) {
        return json(StatusCode::UNAUTHORIZED, r#"{"Status":401,"Message":"Unauthorized"}"#.into());
    }
    let fault = state.faults.pop_front();
    match fault {
        Some(Fault::RateLimited) => {
            return Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header("ratelimit-limit", "4")
                .header("ratelimit-remaining", "0")
                .header("ratelimit-reset", "1")
                .header("retry-after", "1")
                .body(Body::from(r#"{"message":"API rate limit exceeded"}"#))
                .unwrap();
        }
        Some(Fault::ServerError) => {
            return json(StatusCode::INTERNAL_SERVER_ERROR, r#"{"message":"internal error"}"#.into());
        }
        Some(Fault::NotOk) => {
            return json(StatusCode::OK, r#"{"ok":0,"message":"iterator is busy"}"#.into());
        }
        _ => {}
    }
    let page_size = state.page_size;
    let total = state.events.get(&key).map_or(0, Vec::len);
    let cursor_key = (key.clone(), index);
    let range = {
        let timestamps: Vec<i64> =
            state.events.get(&key).map(|e| e.iter().map(|(t, _)| *t).collect()).unwrap_or_default();
        let cursor = state.cursors.entry(cursor_key).or_default();
        match operation.as_str() {
            "resend" => cursor.last.unwrap_or((cursor.position, cursor.position)),
            "next" => {
                let range = (cursor.position, (cursor.position + page_size).min(total));
                cursor.position = range.1;
                cursor.last = Some(range);
                range
            }
            epoch => {
                let Ok(epoch) = epoch.parse::<i64>() else {
                    return json(StatusCode::BAD_REQUEST, r#"{"ok":0,"message":"invalid operation"}"#.into());
                };
                let start = timestamps.iter().position(|t| *t >= epoch).unwrap_or(total);
                let range = (start, (start + page_size).min(total));
                cursor.position = range.1;
                cursor.last = Some(range);
                range
            }
        }
    };
    let events = state.events.get(&key).map(|e| &e[range.0..range.1]).unwrap_or(&[]);
    let result: Vec<&str> = events.iter().map(|(_, json)| json.as_str()).collect();
    let hwm = events.last().map_or(0, |(t, _)| *t);
    let wait = if result.is_empty() { state.wait_when_empty } else { state.wait_with_data };
    let body = format!(r#"{{"ok":1,"result":[{}],"wait_time":{wait},"timestamp_hwm":{hwm}}}"#, result.join(","));
    match fault {
        Some(Fault::CutBody) => {
            // Promise the whole body, send half: the connection breaks mid-body.
            let half = body.as_bytes()[..body.len() / 2].to_vec();
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .header("content-length", body.len().to_string())
                .body(Body::from(half))
                .unwrap()
        }
        Some(Fault::Garbled) => json(StatusCode::OK, body[..body.len() / 2].to_string()),
        _ => json(StatusCode::OK, body),
    }
}
