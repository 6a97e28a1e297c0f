//! The Sentinel sink against a fake Entra ID token endpoint, a fake Logs Ingestion API and a
//! fake Data Collector API on 127.0.0.1, each behaving as documented.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use weir_schemas::component::{ErrorKind, Sink};

use super::request::{chunks, Chunk};
use super::{SentinelApi, SentinelConfig, SentinelSink, LOGS_INGESTION_MAX_BYTES};
use crate::http::{RequestConfig, Secret};
use crate::test_support::{deliver_like_the_runner, record, serve};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT_ID: &str = "0a1b2c3d-weir-sentinel-client";
const CLIENT_SECRET: &str = "entra~Secret.Never.Printed~42";
const SCOPE: &str = "https://monitor.azure.com//.default";
const DCR: &str = "dcr-00a1b2c3d4e5f60718293a4b5c6d7e8f";
const STREAM: &str = "Custom-WeirEvents";
const TOKEN_PREFIX: &str = "eyJ0eXAi.fake-monitor-token-";
const WORKSPACE: &str = "b4a1c3d2-5e6f-4d5e-9f10-123456789abc";
/// Base64 of "weir shared key bytes, never shown 0123456789".
const SHARED_KEY: &str = "d2VpciBzaGFyZWQga2V5IGJ5dGVzLCBuZXZlciBzaG93biAwMTIzNDU2Nzg5";
/// The Logs Ingestion API's limit per call, as the fake enforces it (uncompressed JSON).
const FAKE_LIMIT: usize = 1024 * 1024;

/// A scripted answer (status, body, `Retry-After`), given instead of normal handling.
type Scripted = (u16, String, Option<&'static str>);

/// One request the fake received.
#[derive(Clone, Debug)]
struct Call {
    at: Instant,
    headers: HeaderMap,
    status: u16,
    /// Bytes of JSON after any gunzip.
    json_bytes: usize,
}

/// The fake Azure: tokens, both ingestion APIs, and a script of failures.
struct Fake {
    /// `expires_in` of issued tokens.
    expires_in: u64,
    /// The app lacks the Monitoring Metrics Publisher role: every ingestion call is 403.
    no_role: bool,
    /// Refuse every token, fresh or not (a token for the wrong audience, say).
    refuse_tokens: bool,
    /// Put the caller's bearer token in 400 answers (services do echo headers).
    echo_token: bool,
    tokens_issued: Mutex<u32>,
    /// Valid tokens and when they expire.
    valid_tokens: Mutex<Vec<(String, Instant)>>,
    /// Per ingestion request in order: `None` handles it normally.
    script: Mutex<VecDeque<Option<Scripted>>>,
    rows: Mutex<Vec<Value>>,
    calls: Mutex<Vec<Call>>,
}

impl Default for Fake {
    fn default() -> Self {
        Fake {
            expires_in: 3599,
            no_role: false,
            refuse_tokens: false,
            echo_token: false,
            tokens_issued: Mutex::new(0),
            valid_tokens: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            rows: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
        }
    }
}

impl Fake {
    fn script(&self, entries: impl IntoIterator<Item = Option<Scripted>>) {
        self.script.lock().unwrap().extend(entries);
    }

    /// Revokes every issued token.
    fn revoke_tokens(&self) {
        self.valid_tokens.lock().unwrap().clear();
    }

    fn ids(&self) -> Vec<String> {
        self.rows.lock().unwrap().iter().map(|row| row["WeirId"].as_str().unwrap_or("?").to_string()).collect()
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

fn azure_error(status: u16, code: &str, message: &str) -> (u16, String, Option<&'static str>) {
    (status, json!({ "error": { "code": code, "message": message } }).to_string(), None)
}

fn respond((status, body, retry_after): Scripted) -> Response {
    let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
    if let Some(value) = retry_after {
        response.headers_mut().insert("retry-after", value.parse().unwrap());
    }
    response
}

/// An `application/x-www-form-urlencoded` body, decoded.
fn parse_form(body: &[u8]) -> HashMap<String, String> {
    fn decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                    i += 2;
                }
                other => out.push(other),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (decode(name), decode(value)))
        .collect()
}

/// `POST /{tenant}/oauth2/v2.0/token`: Entra ID's client-credentials grant.
async fn token(State(fake): State<Arc<Fake>>, Path(tenant): Path<String>, body: Bytes) -> Response {
    let form = parse_form(&body);
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let oauth_error = |status: u16, error: &str, description: &str| {
        respond((status, json!({ "error": error, "error_description": description }).to_string(), None))
    };
    if tenant != TENANT {
        return oauth_error(400, "invalid_request", "AADSTS90002: Tenant not found.");
    }
    if field("grant_type") != "client_credentials" {
        return oauth_error(400, "unsupported_grant_type", "AADSTS70003");
    }
    if field("client_id") != CLIENT_ID || field("client_secret") != CLIENT_SECRET {
        return oauth_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.");
    }
    if field("scope") != SCOPE {
        return oauth_error(400, "invalid_scope", "AADSTS70011: The provided value for scope is not valid.");
    }
    let mut issued = fake.tokens_issued.lock().unwrap();
    *issued += 1;
    let token = format!("{TOKEN_PREFIX}{issued}");
    let expires = Instant::now() + Duration::from_secs(fake.expires_in);
    fake.valid_tokens.lock().unwrap().push((token.clone(), expires));
    let answer = json!({ "token_type": "Bearer", "expires_in": fake.expires_in, "access_token": token });
    respond((200, answer.to_string(), None))
}

fn unzip(headers: &HeaderMap, body: &[u8]) -> Vec<u8> {
    if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(body).read_to_end(&mut text).unwrap();
        text
    } else {
        body.to_vec()
    }
}

/// `POST /dataCollectionRules/{dcr}/streams/{stream}`: the Logs Ingestion API.
async fn ingest(
    State(fake): State<Arc<Fake>>,
    Path((dcr, stream)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json = unzip(&headers, &body);
    let answer = ingest_answer(&fake, &dcr, &stream, &query, &headers, &json);
    fake.calls.lock().unwrap().push(Call { at: Instant::now(), headers, status: answer.0, json_bytes: json.len() });
    respond(answer)
}

fn ingest_answer(
    fake: &Fake,
    dcr: &str,
    stream: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    json: &[u8],
) -> Scripted {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let now = Instant::now();
    let valid = fake.valid_tokens.lock().unwrap().iter().any(|(t, expires)| t == bearer && now < *expires);
    if !valid || fake.refuse_tokens {
        return azure_error(401, "InvalidAuthenticationToken", "The access token is invalid or has expired.");
    }
    if fake.no_role {
        return azure_error(
            403,
            "OperationFailed",
            &format!(
                "The authentication token provided does not have access to ingest data for the data collection \
                 rule with immutable Id '{dcr}'."
            ),
        );
    }
    if query.get("api-version").map(String::as_str) != Some("2023-01-01") {
        return azure_error(400, "InvalidApiVersion", "The api-version is not supported.");
    }
    if dcr != DCR || stream != STREAM {
        return azure_error(404, "NotFound", "Data collection rule or stream not found.");
    }
    if let Some(Some(scripted)) = fake.script.lock().unwrap().pop_front() {
        return scripted;
    }
    if headers.get("content-type").is_none_or(|v| v != "application/json") {
        return azure_error(415, "UnsupportedMediaType", "Content-Type must be application/json.");
    }
    if json.len() > FAKE_LIMIT {
        return azure_error(
            413,
            "ContentLengthLimitExceeded",
            &format!("Maximum allowed content length: {FAKE_LIMIT} bytes (1 MB). Provided: {} bytes.", json.len()),
        );
    }
    let Ok(parsed) = serde_json::from_slice::<Value>(json) else {
        return azure_error(400, "InvalidJson", "The request body is not valid JSON.");
    };
    // Documented misbehaviour: a body that is not an array is answered 204 and ingests nothing.
    let Value::Array(rows) = parsed else {
        return (204, String::new(), None);
    };
    if let Some(n) = rows.iter().position(|row| row["bad"] == json!(true)) {
        let mut message = format!("Row {n}: the value of column 'bad' does not match the stream declaration.");
        if fake.echo_token {
            message.push_str(&format!(" Request Authorization: Bearer {bearer}"));
        }
        return azure_error(400, "InvalidData", &message);
    }
    fake.rows.lock().unwrap().extend(rows);
    (204, String::new(), None)
}

/// `POST /api/logs`: the Data Collector API, verifying the SharedKey signature itself.
async fn data_collector(
    State(fake): State<Arc<Fake>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = data_collector_answer(&fake, &query, &headers, &body);
    fake.calls.lock().unwrap().push(Call { at: Instant::now(), headers, status: answer.0, json_bytes: body.len() });
    respond(answer)
}

fn dc_error(status: u16, code: &str, message: &str) -> Scripted {
    (status, json!({ "Error": code, "Message": message }).to_string(), None)
}

/// The signature computed here from the documented formula, independently of the sink's code.
fn expected_authorization(body_len: usize, date: &str) -> String {
    let key = base64::engine::general_purpose::STANDARD.decode(SHARED_KEY).unwrap();
    let string_to_sign =
        ["POST", &body_len.to_string(), "application/json", &format!("x-ms-date:{date}"), "/api/logs"].join("\n");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(string_to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("SharedKey {WORKSPACE}:{signature}")
}

fn data_collector_answer(fake: &Fake, query: &HashMap<String, String>, headers: &HeaderMap, body: &[u8]) -> Scripted {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    if query.get("api-version").map(String::as_str) != Some("2016-04-01") {
        return dc_error(400, "InvalidApiVersion", "The API version that you specified wasn't recognized.");
    }
    if header("content-type") != "application/json" {
        return dc_error(400, "UnsupportedContentType", "The content type wasn't set to application/json.");
    }
    let log_type = header("log-type");
    if log_type.is_empty() {
        return dc_error(400, "MissingLogType", "The required value log type wasn't specified.");
    }
    // The vendor reference: letters only.
    if !log_type.chars().all(|c| c.is_ascii_alphabetic()) {
        return dc_error(400, "InvalidLogType", "The log type contained special characters or numerics.");
    }
    let date = header("x-ms-date");
    if httpdate::parse_http_date(date).is_err() {
        return dc_error(403, "InvalidAuthorization", "x-ms-date is not an RFC 1123 date.");
    }
    if header("content-length") != body.len().to_string() {
        return dc_error(400, "InvalidDataFormat", "Content-Length does not match the body.");
    }
    if header("authorization") != expected_authorization(body.len(), date) {
        return dc_error(403, "InvalidAuthorization", "The signature of the Authorization header is not valid.");
    }
    if let Some(Some(scripted)) = fake.script.lock().unwrap().pop_front() {
        return scripted;
    }
    let rows = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(rows)) => rows,
        Ok(row @ Value::Object(_)) => vec![row],
        _ => return dc_error(400, "InvalidDataFormat", "An invalid JSON was submitted."),
    };
    if rows.iter().any(|row| row["bad"] == json!(true)) {
        return dc_error(400, "InvalidDataFormat", "An invalid JSON was submitted.");
    }
    fake.rows.lock().unwrap().extend(rows);
    (200, String::new(), None)
}

async fn start(fake: Fake) -> (Arc<Fake>, String) {
    let fake = Arc::new(fake);
    let app = Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/dataCollectionRules/{dcr}/streams/{stream}", post(ingest))
        .route("/api/logs", post(data_collector))
        .with_state(fake.clone());
    let addr = serve(app).await;
    (fake, format!("http://{addr}"))
}

fn request_config() -> RequestConfig {
    RequestConfig { circuit_breaker_failures: 0, ..RequestConfig::default() }
}

fn config(base: &str) -> SentinelConfig {
    SentinelConfig {
        api: SentinelApi::LogsIngestion,
        endpoint: Some(base.to_string()),
        dcr_immutable_id: Some(DCR.into()),
        stream_name: Some(STREAM.into()),
        tenant_id: Some(TENANT.into()),
        client_id: Some(CLIENT_ID.into()),
        client_secret: Some(Secret::new(CLIENT_SECRET)),
        login_url: base.to_string(),
        scope: SCOPE.into(),
        gzip: false,
        workspace_id: None,
        shared_key: None,
        log_type: None,
        time_generated_field: None,
        data_collector_url: None,
        time_field: None,
        id_field: "WeirId".into(),
        batch_max_events: 500,
        batch_max_bytes: 1_000_000,
        request: request_config(),
    }
}

fn dc_config(base: &str) -> SentinelConfig {
    SentinelConfig {
        api: SentinelApi::DataCollector,
        endpoint: None,
        dcr_immutable_id: None,
        stream_name: None,
        tenant_id: None,
        client_id: None,
        client_secret: None,
        workspace_id: Some(WORKSPACE.into()),
        shared_key: Some(Secret::new(SHARED_KEY)),
        log_type: Some("WeirEvents".into()),
        time_generated_field: Some("EventTime".into()),
        data_collector_url: Some(base.to_string()),
        ..config(base)
    }
}

fn ids(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(|i| format!("raw.test/0/{i}")).collect()
}

fn assert_no_secret(texts: &[String]) {
    for text in texts {
        for secret in [CLIENT_SECRET, SHARED_KEY, TOKEN_PREFIX] {
            assert!(!text.contains(secret), "a secret leaked: {text}");
        }
    }
}

#[tokio::test]
async fn logs_ingestion_sends_gzipped_arrays_with_one_token_for_many_batches() {
    let (fake, base) = start(Fake::default()).await;
    let mut sink = SentinelSink::new(SentinelConfig { gzip: true, batch_max_events: 2, ..config(&base) }).unwrap();
    let batch: Vec<_> = (0..5).map(|i| record(i, &format!("{{\"n\":{i},\"user\":\"alice\"}}"))).collect();
    assert_eq!(sink.deliver(&batch).await.unwrap(), vec![]);
    assert_eq!(sink.deliver(&[record(5, r#"{"n":5}"#)]).await.unwrap(), vec![]);

    assert_eq!(*fake.tokens_issued.lock().unwrap(), 1, "one token for every request");
    let calls = fake.calls();
    assert_eq!(calls.len(), 4);
    for call in &calls {
        assert_eq!(call.status, 204);
        assert_eq!(call.headers["authorization"], format!("Bearer {TOKEN_PREFIX}1").as_str());
        assert_eq!(call.headers["content-encoding"], "gzip");
        assert_eq!(call.headers["content-type"], "application/json");
        assert!(call.headers.contains_key("x-ms-client-request-id"));
    }
    let rows = fake.rows.lock().unwrap().clone();
    assert_eq!(fake.ids(), ids(0..6));
    assert_eq!(
        rows[0],
        json!({"n": 0, "user": "alice", "TimeGenerated": "2024-05-02T18:46:21.121Z", "WeirId": "raw.test/0/0"})
    );
}

#[tokio::test]
async fn a_token_about_to_expire_is_refreshed_before_it_is_refused() {
    // A 1 s token is refreshed after half its life: no request ever meets a 401.
    let (fake, base) = start(Fake { expires_in: 1, ..Fake::default() }).await;
    let mut sink = SentinelSink::new(config(&base)).unwrap();
    assert_eq!(sink.deliver(&[record(0, "{}")]).await.unwrap(), vec![]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(sink.deliver(&[record(1, "{}")]).await.unwrap(), vec![]);

    assert_eq!(*fake.tokens_issued.lock().unwrap(), 2);
    assert!(fake.calls().iter().all(|c| c.status == 204), "{:?}", fake.calls());
    assert_eq!(fake.ids(), ids(0..2));
}

#[tokio::test]
async fn a_401_is_retried_once_with_a_fresh_token_without_loss_or_duplicates() {
    let (fake, base) = start(Fake::default()).await;
    let mut sink = SentinelSink::new(config(&base)).unwrap();
    assert_eq!(sink.deliver(&[record(0, "{}")]).await.unwrap(), vec![]);
    fake.revoke_tokens();
    assert_eq!(sink.deliver(&[record(1, "{}"), record(2, "{}")]).await.unwrap(), vec![]);

    assert_eq!(*fake.tokens_issued.lock().unwrap(), 2);
    let statuses: Vec<u16> = fake.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [204, 401, 204]);
    assert_eq!(fake.ids(), ids(0..3));
}

#[tokio::test]
async fn a_token_refused_even_fresh_is_fatal_naming_the_credentials() {
    let (fake, base) = start(Fake { refuse_tokens: true, ..Fake::default() }).await;
    let mut sink = SentinelSink::new(config(&base)).unwrap();
    let err = sink.deliver(&[record(0, "{}")]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(err.message.contains("401") && err.message.contains("client_secret"), "{}", err.message);
    assert_eq!(*fake.tokens_issued.lock().unwrap(), 2, "retried once with a fresh token, no more");
    assert_no_secret(&[err.message]);
}

#[tokio::test]
async fn a_wrong_client_secret_is_fatal_and_never_shown() {
    let (fake, base) = start(Fake::default()).await;
    let wrong = "wrong~Secret~AlsoNeverShown";
    let cfg = SentinelConfig { client_secret: Some(Secret::new(wrong)), ..config(&base) };
    let mut sink = SentinelSink::new(cfg.clone()).unwrap();
    let err = sink.deliver(&[record(0, "{}")]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(err.message.contains("AADSTS7000215") && err.message.contains("client_secret"), "{}", err.message);
    assert!(fake.calls().is_empty(), "nothing sent without a token");
    for text in [err.message, format!("{cfg:?}"), format!("{sink:?}")] {
        assert!(!text.contains(wrong) && !text.contains(CLIENT_SECRET), "{text}");
    }
}

#[tokio::test]
async fn a_missing_role_is_fatal_naming_it() {
    let (_fake, base) = start(Fake { no_role: true, ..Fake::default() }).await;
    let mut sink = SentinelSink::new(config(&base)).unwrap();
    let err = sink.deliver(&[record(0, "{}")]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(err.message.contains("403") && err.message.contains("Monitoring Metrics Publisher"), "{}", err.message);
    assert_no_secret(&[err.message]);
}

#[tokio::test]
async fn a_batch_over_one_megabyte_is_split_and_a_row_over_it_is_dead_lettered() {
    let (fake, base) = start(Fake::default()).await;
    // gzip shrinks these rows to almost nothing: the limit is on the JSON, before compression.
    let cfg = SentinelConfig { gzip: true, batch_max_bytes: LOGS_INGESTION_MAX_BYTES, ..config(&base) };
    let mut sink = SentinelSink::new(cfg).unwrap();
    let filler = "x".repeat(200_000);
    let mut batch: Vec<_> = (0..12).map(|i| record(i, &format!("{{\"n\":{i},\"filler\":\"{filler}\"}}"))).collect();
    batch.insert(5, record(99, &format!("{{\"huge\":\"{}\"}}", "y".repeat(LOGS_INGESTION_MAX_BYTES))));
    let failures = sink.deliver(&batch).await.unwrap();

    assert_eq!(failures.iter().map(|f| (f.index, f.retryable)).collect::<Vec<_>>(), [(5, false)]);
    assert!(failures[0].reason.contains("at most 1048576 bytes"), "{}", failures[0].reason);
    let calls = fake.calls();
    assert!(calls.len() >= 3, "2.4 MB in requests of at most 1 MiB: {} calls", calls.len());
    assert!(calls.iter().all(|c| c.status == 204 && c.json_bytes <= FAKE_LIMIT), "{calls:?}");
    assert_eq!(fake.ids(), ids(0..12), "every row once, in order");
}

#[tokio::test]
async fn a_429_is_waited_for_then_everything_arrives_exactly_once() {
    let (fake, base) = start(Fake::default()).await;
    // The first request is accepted, the second throttled with Retry-After: 1.
    let (status, body, _) = azure_error(429, "TooManyRequests", "Rate limit exceeded for the DCR.");
    fake.script([None, Some((status, body, Some("1")))]);
    let mut sink = SentinelSink::new(SentinelConfig { batch_max_events: 2, ..config(&base) }).unwrap();
    let batch: Vec<_> = (0..6).map(|i| record(i, "{}")).collect();
    let outcome = deliver_like_the_runner(&mut sink, &batch).await;

    assert!(outcome.dead.is_empty());
    let mut delivered = fake.ids();
    delivered.sort();
    assert_eq!(delivered, ids(0..6), "no loss, no duplicate");
    assert!(outcome.reasons.iter().any(|r| r.contains("429") && r.contains("retry after 1s")), "{:?}", outcome.reasons);
    let calls = fake.calls();
    let throttled = calls.iter().position(|c| c.status == 429).unwrap();
    let waited = calls[throttled + 1].at - calls[throttled].at;
    assert!(waited >= Duration::from_millis(950), "Retry-After honoured: waited {waited:?}");
    assert_no_secret(&outcome.reasons);
}

#[tokio::test]
async fn a_5xx_burst_is_retried_without_loss_or_duplicates() {
    let (fake, base) = start(Fake::default()).await;
    fake.script([
        None,
        Some(azure_error(500, "InternalServerError", "oops")),
        Some(azure_error(503, "ServiceUnavailable", "busy")),
        Some(azure_error(502, "BadGateway", "upstream")),
    ]);
    let mut sink = SentinelSink::new(SentinelConfig { batch_max_events: 2, ..config(&base) }).unwrap();
    let batch: Vec<_> = (0..6).map(|i| record(i, "{}")).collect();
    let outcome = deliver_like_the_runner(&mut sink, &batch).await;

    assert!(outcome.dead.is_empty());
    let mut delivered = fake.ids();
    delivered.sort();
    assert_eq!(delivered, ids(0..6));
    for status in ["500", "503", "502"] {
        assert!(outcome.reasons.iter().any(|r| r.contains(status)), "{status}: {:?}", outcome.reasons);
    }
}

#[tokio::test]
async fn a_rejected_row_is_dead_lettered_with_the_reason_and_the_rest_delivered_once() {
    let (fake, base) = start(Fake { echo_token: true, ..Fake::default() }).await;
    let mut sink = SentinelSink::new(config(&base)).unwrap();
    let mut batch: Vec<_> = (0..8).map(|i| record(i, &format!("{{\"n\":{i}}}"))).collect();
    batch[5] = record(5, r#"{"bad":true}"#);
    batch[2] = record(2, "plain text, not an object");
    let failures = sink.deliver(&batch).await.unwrap();

    assert_eq!(failures.iter().map(|f| (f.index, f.retryable)).collect::<Vec<_>>(), [(2, false), (5, false)]);
    assert!(failures[0].reason.contains("not a JSON object"), "{}", failures[0].reason);
    assert!(failures[1].reason.contains("400") && failures[1].reason.contains("InvalidData"), "{}", failures[1].reason);
    assert!(failures[1].reason.contains("Bearer ***"), "the echoed token is scrubbed: {}", failures[1].reason);
    assert_no_secret(&failures.iter().map(|f| f.reason.clone()).collect::<Vec<_>>());
    let mut delivered = fake.ids();
    delivered.sort();
    assert_eq!(
        delivered,
        ["raw.test/0/0", "raw.test/0/1", "raw.test/0/3", "raw.test/0/4", "raw.test/0/6", "raw.test/0/7"]
    );
}

#[tokio::test]
async fn data_collector_requests_carry_the_exact_shared_key_signature() {
    let (fake, base) = start(Fake::default()).await;
    let mut sink = SentinelSink::new(SentinelConfig { batch_max_events: 2, ..dc_config(&base) }).unwrap();
    let batch: Vec<_> = (0..3).map(|i| record(i, &format!("{{\"n\":{i},\"name\":\"é{i}\"}}"))).collect();
    assert_eq!(sink.deliver(&batch).await.unwrap(), vec![]);

    let calls = fake.calls();
    assert_eq!(calls.iter().map(|c| c.status).collect::<Vec<_>>(), [200, 200], "signatures verified");
    assert_eq!(calls[0].headers["log-type"], "WeirEvents");
    assert_eq!(calls[0].headers["time-generated-field"], "EventTime");
    assert!(calls[0].headers["authorization"].to_str().unwrap().starts_with(&format!("SharedKey {WORKSPACE}:")));
    let rows = fake.rows.lock().unwrap().clone();
    assert_eq!(
        rows[2],
        json!({"n": 2, "name": "é2", "EventTime": "2024-05-02T18:46:21.123Z", "WeirId": "raw.test/0/2"})
    );
}

#[tokio::test]
async fn data_collector_a_wrong_shared_key_is_fatal_and_never_shown() {
    let (_fake, base) = start(Fake::default()).await;
    let wrong = base64::engine::general_purpose::STANDARD.encode("another workspace's key, secret too");
    let mut sink =
        SentinelSink::new(SentinelConfig { shared_key: Some(Secret::new(wrong.clone())), ..dc_config(&base) }).unwrap();
    let err = sink.deliver(&[record(0, "{}")]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(err.message.contains("403") && err.message.contains("shared_key"), "{}", err.message);
    assert!(!err.message.contains(&wrong) && !format!("{sink:?}").contains(&wrong), "{}", err.message);
}

#[tokio::test]
async fn data_collector_a_refused_log_type_is_fatal_and_a_bad_row_dead_lettered() {
    let (fake, base) = start(Fake::default()).await;
    let mut sink = SentinelSink::new(SentinelConfig { log_type: Some("Weir2".into()), ..dc_config(&base) }).unwrap();
    let err = sink.deliver(&[record(0, "{}")]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(err.message.contains("InvalidLogType") && err.message.contains("log_type"), "{}", err.message);

    let mut sink = SentinelSink::new(dc_config(&base)).unwrap();
    let failures = sink.deliver(&[record(0, "{}"), record(1, r#"{"bad":true}"#)]).await.unwrap();
    assert_eq!(failures.iter().map(|f| (f.index, f.retryable)).collect::<Vec<_>>(), [(1, false)]);
    assert!(failures[0].reason.contains("InvalidDataFormat"), "{}", failures[0].reason);
    assert_eq!(fake.ids(), ids(0..1));
}

#[test]
fn chunks_are_json_arrays_within_the_byte_limit() {
    let rows: Vec<(usize, Vec<u8>)> = (0..7).map(|i| (i, format!("{{\"n\":{i}}}").into_bytes())).collect();
    // Each row is 7 bytes: an array of 3 is 2 + 21 + 2 = 25 bytes.
    let split = chunks(rows.clone(), 100, 25);
    assert_eq!(split.iter().map(|c| c.rows.len()).collect::<Vec<_>>(), [3, 3, 1]);
    for chunk in &split {
        assert_eq!(chunk.body().len(), chunk.body_len());
        assert!(serde_json::from_slice::<Vec<Value>>(&chunk.body()).is_ok());
    }
    assert_eq!(chunks(rows.clone(), 2, 1_000).len(), 4);
    assert_eq!(chunks(rows.clone(), 100, 3).len(), 7, "a row over the limit goes alone");
    let (first, rest) = Chunk { rows }.split();
    assert_eq!(
        (first.indexes().collect::<Vec<_>>(), rest.indexes().collect::<Vec<_>>()),
        (vec![0, 1, 2], vec![3, 4, 5, 6])
    );
}

#[test]
fn config_reads_from_toml_and_refuses_what_does_not_fit() {
    let cfg: SentinelConfig = toml::from_str(
        r#"
        endpoint = "https://weir-dce-a1b2.eastus-1.ingest.monitor.azure.com"
        dcr_immutable_id = "dcr-00a1b2c3d4e5f60718293a4b5c6d7e8f"
        stream_name = "Custom-WeirEvents"
        tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47"
        client_id = "0a1b2c3d"
        client_secret = "s3cret-value"
        gzip = true
        [request]
        timeout_secs = 10
        "#,
    )
    .unwrap();
    assert_eq!(cfg.api, SentinelApi::LogsIngestion);
    assert_eq!(cfg.login_url, "https://login.microsoftonline.com");
    assert_eq!(cfg.scope, SCOPE);
    assert_eq!(cfg.batch_max_bytes, 1_000_000);
    assert!(!format!("{cfg:?}").contains("s3cret-value"));
    SentinelSink::new(cfg.clone()).unwrap();

    let key = |cfg: SentinelConfig| SentinelSink::new(cfg).unwrap_err().key;
    assert_eq!(key(SentinelConfig { workspace_id: Some(WORKSPACE.into()), ..cfg.clone() }), "workspace_id");
    assert_eq!(key(SentinelConfig { stream_name: None, ..cfg.clone() }), "stream_name");
    assert_eq!(key(SentinelConfig { batch_max_bytes: 2_000_000, ..cfg.clone() }), "batch_max_bytes");
    assert_eq!(key(SentinelConfig { endpoint: Some("ftp://x".into()), ..cfg.clone() }), "endpoint");
    assert_eq!(key(SentinelConfig { id_field: "2bad".into(), ..cfg.clone() }), "id_field");
    assert_eq!(key(SentinelConfig { time_field: Some("Type".into()), ..cfg.clone() }), "time_field");

    let dc: SentinelConfig = toml::from_str(&format!(
        "api = \"data_collector\"\nworkspace_id = \"{WORKSPACE}\"\nshared_key = \"{SHARED_KEY}\"\nlog_type = \"WeirEvents\""
    ))
    .unwrap();
    SentinelSink::new(dc.clone()).unwrap();
    assert_eq!(key(SentinelConfig { gzip: true, ..dc.clone() }), "gzip");
    let err =
        SentinelSink::new(SentinelConfig { shared_key: Some(Secret::new("not base64 !!")), ..dc.clone() }).unwrap_err();
    assert_eq!(err.key, "shared_key");
    assert!(!err.to_string().contains("not base64 !!"), "{err}");
    assert_eq!(key(SentinelConfig { workspace_id: Some("evil.example.com/x".into()), ..dc }), "workspace_id");

    let err = toml::from_str::<SentinelConfig>("api = \"logs_ingestion\"\nstream = \"x\"").unwrap_err();
    assert!(err.to_string().contains("stream"), "{err}");
}
