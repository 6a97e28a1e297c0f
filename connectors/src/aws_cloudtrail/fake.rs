//! A fake CloudTrail `LookupEvents` endpoint: SigV4 checked (structure and signature), pages of
//! up to `MaxResults` newest first with opaque `NextToken`s, 400 `ThrottlingException`, 5xx
//! bursts, truncated and garbled pages, refused and expired credentials.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http::{HeaderName, HeaderValue, Method};
use serde_json::{json, Value};
use url::Url;

use crate::http::{RequestToSign, Secret, SigV4Auth};

/// The fake's access key id.
pub const ACCESS_KEY_ID: &str = "AKIAFAKEWEIRTEST0001";
/// The fake's secret access key.
pub const SECRET_ACCESS_KEY: &str = "fake/Secret+Key+Never+Printed+0123456789";
/// The fake's region.
pub const REGION: &str = "eu-west-3";

/// Sample records (Apache-2.0, see testdata/SOURCES.md), re-stamped by [`record`].
const TEMPLATES: &str = include_str!("testdata/panther_cloudtrail_records.ndjson");

/// One stored event.
#[derive(Clone)]
pub struct FakeEvent {
    /// `eventTime`, epoch seconds.
    pub time_s: i64,
    /// The whole `Events` item.
    pub item: Value,
}

/// What the fake holds and how it misbehaves (counters count down per request).
#[derive(Default)]
pub struct FakeState {
    /// Every event the account has.
    pub events: Vec<FakeEvent>,
    /// Answer this many requests with 400 `ThrottlingException`.
    pub throttle_next: u32,
    /// Answer this many requests with 503.
    pub fail_next: u32,
    /// Cut this many 200 bodies in half.
    pub truncate_next: u32,
    /// Always garble the page starting at this offset.
    pub garble_offset: Option<usize>,
    /// The session token the credentials need (temporary credentials).
    pub session_token: Option<String>,
    /// Whether the session token has expired.
    pub token_expired: bool,
    /// Requests received.
    pub requests: u32,
    /// Requests whose signature did not verify.
    pub bad_signatures: u32,
}

/// A running fake.
#[derive(Clone)]
pub struct Fake {
    /// Its state, for tests to change and inspect.
    pub state: Arc<Mutex<FakeState>>,
}

impl Fake {
    /// A fake holding `events`.
    pub fn new(events: Vec<FakeEvent>) -> Self {
        Fake { state: Arc::new(Mutex::new(FakeState { events, ..FakeState::default() })) }
    }

    /// The app to serve.
    pub fn router(&self) -> Router {
        Router::new().route("/", post(lookup_events)).with_state(self.state.clone())
    }
}

/// A CloudTrail record (from a sample) with this id and time, as CloudTrail serializes it.
pub fn record(id: &str, time_s: i64) -> String {
    let templates: Vec<&str> = TEMPLATES.lines().filter(|l| !l.trim().is_empty()).collect();
    let index = id.bytes().map(usize::from).sum::<usize>() % templates.len();
    let mut value: Value = serde_json::from_str(templates[index]).expect("valid sample");
    let time = time::OffsetDateTime::from_unix_timestamp(time_s).expect("a valid time");
    value["eventID"] = json!(id);
    value["eventTime"] = json!(time.format(&time::format_description::well_known::Rfc3339).expect("formats"));
    serde_json::to_string(&value).expect("serializes")
}

/// A LookupEvents item carrying `record(id, time_s)`.
pub fn event(id: &str, time_s: i64) -> FakeEvent {
    let item = json!({
        "EventId": id,
        "EventName": "ConsoleLogin",
        "ReadOnly": "false",
        "EventTime": time_s,
        "EventSource": "signin.amazonaws.com",
        "Username": "tester",
        "Resources": [],
        "CloudTrailEvent": record(id, time_s),
    });
    FakeEvent { time_s, item }
}

fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({ "__type": kind, "message": message }).to_string();
    (status, [("content-type", "application/x-amz-json-1.1")], body).into_response()
}

fn boxed_error(status: StatusCode, kind: &str, message: &str) -> Box<Response> {
    Box::new(aws_error(status, kind, message))
}

/// Checks the SigV4 `Authorization` header: its structure, the key, scope, and the signature
/// itself (recomputed with the same crate from what was received).
fn check_signature(headers: &HeaderMap, body: &[u8], session_token: Option<&str>) -> Result<(), Box<Response>> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let authorization = text("authorization");
    let invalid = |why: &str| Err(boxed_error(StatusCode::FORBIDDEN, "InvalidSignatureException", why));
    let Some(rest) = authorization.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return invalid("Authorization header requires AWS4-HMAC-SHA256");
    };
    let mut credential = "";
    let mut signed_headers = "";
    let mut signature = "";
    for part in rest.split(", ") {
        match part.split_once('=') {
            Some(("Credential", v)) => credential = v,
            Some(("SignedHeaders", v)) => signed_headers = v,
            Some(("Signature", v)) => signature = v,
            _ => return invalid("malformed Authorization header"),
        }
    }
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[3] != "cloudtrail" || scope[4] != "aws4_request" {
        return invalid("Credential should be scoped to a valid service");
    }
    if scope[0] != ACCESS_KEY_ID {
        return Err(boxed_error(
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    if scope[2] != REGION {
        return invalid("Credential should be scoped to a valid region");
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return invalid("the signature is not 64 hex digits");
    }
    let signed: Vec<&str> = signed_headers.split(';').collect();
    if !signed.contains(&"host") || !signed.contains(&"x-amz-date") {
        return invalid("host and x-amz-date must be signed");
    }
    if session_token.is_some() && text("x-amz-security-token") != session_token.unwrap_or_default() {
        return Err(boxed_error(
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let Ok(date) = time::PrimitiveDateTime::parse(&text("x-amz-date"), &format) else {
        return invalid("X-Amz-Date is missing or malformed");
    };
    let when = UNIX_EPOCH + Duration::from_secs(date.assume_utc().unix_timestamp().max(0) as u64);
    let skew = SystemTime::now().duration_since(when).unwrap_or_else(|e| e.duration());
    if skew > Duration::from_secs(300) {
        return invalid("Signature expired: the request time is too far from the server's");
    }
    // Recompute: the signer adds host, x-amz-date and the token itself.
    let url = Url::parse(&format!("http://{}/", text("host")))
        .map_err(|_| boxed_error(StatusCode::BAD_REQUEST, "x", "host"))?;
    let mut to_sign: Vec<(HeaderName, HeaderValue)> = Vec::new();
    for name in signed {
        if matches!(name, "host" | "x-amz-date" | "x-amz-security-token") {
            continue;
        }
        let (Ok(name), Some(value)) = (HeaderName::from_bytes(name.as_bytes()), headers.get(name)) else {
            return invalid("a signed header is missing");
        };
        to_sign.push((name, value.clone()));
    }
    let request = RequestToSign { method: &Method::POST, url: &url, headers: &to_sign, body };
    let token = session_token.map(Secret::new);
    let signer = SigV4Auth::new(ACCESS_KEY_ID, &Secret::new(SECRET_ACCESS_KEY), token.as_ref(), REGION, "cloudtrail");
    let expected =
        signer.signature_at(&request, when).map_err(|_| boxed_error(StatusCode::BAD_REQUEST, "x", "sign"))?;
    let expected = expected.iter().find(|(n, _)| n == http::header::AUTHORIZATION).and_then(|(_, v)| v.to_str().ok());
    if expected != Some(authorization.as_str()) {
        return invalid(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret \
             Access Key and signing method.",
        );
    }
    Ok(())
}

async fn lookup_events(State(state): State<Arc<Mutex<FakeState>>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut state = state.lock().unwrap();
    state.requests += 1;
    if headers.get("x-amz-target").and_then(|v| v.to_str().ok())
        != Some("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents")
    {
        return aws_error(StatusCode::BAD_REQUEST, "UnknownOperationException", "unknown operation");
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/x-amz-json-1.1") {
        return aws_error(StatusCode::BAD_REQUEST, "SerializationException", "wrong content type");
    }
    if let Err(response) = check_signature(&headers, &body, state.session_token.clone().as_deref()) {
        state.bad_signatures += 1;
        return *response;
    }
    if state.token_expired {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "ExpiredTokenException",
            "The security token included in the request is expired",
        );
    }
    if state.throttle_next > 0 {
        state.throttle_next -= 1;
        return aws_error(StatusCode::BAD_REQUEST, "ThrottlingException", "Rate exceeded");
    }
    if state.fail_next > 0 {
        state.fail_next -= 1;
        return aws_error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailableException", "try again");
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return aws_error(StatusCode::BAD_REQUEST, "SerializationException", "body is not JSON");
    };
    let (Some(start), Some(end)) = (request["StartTime"].as_i64(), request["EndTime"].as_i64()) else {
        return aws_error(StatusCode::BAD_REQUEST, "InvalidTimeRangeException", "StartTime and EndTime are required");
    };
    let max = request["MaxResults"].as_u64().unwrap_or(50).clamp(1, 50) as usize;
    let offset = match request["NextToken"].as_str() {
        None => 0,
        Some(token) => match token.strip_prefix(&format!("tok:{start}:{end}:")).and_then(|o| o.parse().ok()) {
            Some(offset) => offset,
            None => return aws_error(StatusCode::BAD_REQUEST, "InvalidNextTokenException", "invalid NextToken"),
        },
    };
    // Newest first, like LookupEvents.
    let mut matching: Vec<&FakeEvent> = state.events.iter().filter(|e| e.time_s >= start && e.time_s <= end).collect();
    matching.sort_by_key(|e| std::cmp::Reverse(e.time_s));
    let page: Vec<Value> = matching.iter().skip(offset).take(max).map(|e| e.item.clone()).collect();
    let mut answer = json!({ "Events": page });
    if offset + max < matching.len() {
        answer["NextToken"] = json!(format!("tok:{start}:{end}:{}", offset + max));
    }
    let mut bytes = answer.to_string().into_bytes();
    if state.garble_offset == Some(offset) {
        bytes.truncate(bytes.len() / 3);
        bytes.splice(0..0, b"<html>".iter().copied());
    } else if state.truncate_next > 0 {
        state.truncate_next -= 1;
        bytes.truncate(bytes.len() / 2);
    }
    (StatusCode::OK, [("content-type", "application/x-amz-json-1.1")], bytes).into_response()
}
