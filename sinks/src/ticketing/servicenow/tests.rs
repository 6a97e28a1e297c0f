//! The ServiceNow sink against a fake Table API on 127.0.0.1.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::Router;
use base64::Engine;
use serde_json::{json, Map, Value};
use tokio::time::Instant;
use weir_schemas::component::{ErrorKind, Sink};
use weir_schemas::events::{Violation, ViolationStatus};
use weir_schemas::{Record, StoredRecord};

use super::request::correlation_id;
use super::{ServiceNowConfig, ServiceNowSink};
use crate::http::Secret;
use crate::test_support::{deliver_like_the_runner, record, serve};
use crate::ticketing::SeverityMap;

const USER: &str = "weir.integration";
const PASSWORD: &str = "s3cr3t-PASSWORD-neverShown";
/// When the fake creates incidents unless a test moves its clock: after the test violations'
/// `first_seen`.
const FAKE_NOW_MS: i64 = 1_714_700_000_000;

/// How the fake loses the answer to the next create (after creating the incident).
#[derive(Clone, Copy)]
enum Lose {
    /// Answers 500.
    Status500,
    /// Never answers in time (the client times out).
    Hang,
}

#[derive(Clone, Debug)]
struct Incident {
    sys_id: String,
    number: String,
    created_ms: i64,
    fields: Map<String, Value>,
    work_notes: Vec<String>,
}

impl Incident {
    fn field(&self, name: &str) -> &str {
        self.fields.get(name).and_then(Value::as_str).unwrap_or("")
    }
}

/// A fake Table API: checks Basic auth (401 otherwise), answers scripted statuses first, keeps
/// incidents in memory, answers the correlation-id lookup with `sysparm_fields`/`sysparm_limit`
/// and `ORDERBYDESCsys_created_on`, rejects bad urgency/impact and resolving without a close code
/// (400), 404 for an unknown sys_id and 403 for changing a closed incident (an ACL).
#[derive(Default)]
struct FakeServiceNow {
    script: Mutex<VecDeque<(u16, &'static str, Option<&'static str>)>>,
    lose_next_create: Mutex<Option<Lose>>,
    incidents: Mutex<Vec<Incident>>,
    /// (method, path and query, when).
    requests: Mutex<Vec<(String, String, Instant)>>,
    now_ms: Mutex<Option<i64>>,
}

impl FakeServiceNow {
    fn incidents(&self) -> Vec<Incident> {
        self.incidents.lock().unwrap().clone()
    }

    fn methods(&self) -> Vec<String> {
        self.requests.lock().unwrap().iter().map(|(m, _, _)| m.clone()).collect()
    }

    /// Auth and the script; `Err` with the answer when they decide it.
    fn gate(&self, method: &str, uri: String, headers: &HeaderMap) -> Option<Response> {
        self.requests.lock().unwrap().push((method.to_string(), uri, Instant::now()));
        let expected =
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}")));
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            let body = json!({"error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"}, "status": "failure"});
            return Some((StatusCode::UNAUTHORIZED, body.to_string()).into_response());
        }
        if let Some((status, text, retry_after)) = self.script.lock().unwrap().pop_front() {
            let mut response = (StatusCode::from_u16(status).unwrap(), text).into_response();
            if let Some(after) = retry_after {
                response.headers_mut().insert("retry-after", after.parse().unwrap());
            }
            return Some(response);
        }
        None
    }
}

fn failure(status: StatusCode, message: &str) -> Response {
    let body = json!({"error": {"message": message, "detail": ""}, "status": "failure"});
    (status, body.to_string()).into_response()
}

fn check_choices(body: &Map<String, Value>) -> Option<Response> {
    for field in ["urgency", "impact"] {
        if let Some(value) = body.get(field) {
            if !matches!(value.as_str(), Some("1" | "2" | "3")) {
                return Some(failure(StatusCode::BAD_REQUEST, &format!("Invalid value {value} for field {field}")));
            }
        }
    }
    None
}

fn record_json(incident: &Incident, fields: Option<&str>) -> Value {
    let mut all = incident.fields.clone();
    all.insert("sys_id".into(), json!(incident.sys_id));
    all.insert("number".into(), json!(incident.number));
    let created = time::OffsetDateTime::from_unix_timestamp(incident.created_ms / 1000).unwrap();
    let created = created.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"));
    all.insert("sys_created_on".into(), json!(created.unwrap()));
    match fields {
        Some(fields) => {
            let wanted: Vec<&str> = fields.split(',').collect();
            Value::Object(all.into_iter().filter(|(k, _)| wanted.contains(&k.as_str())).collect())
        }
        None => Value::Object(all),
    }
}

async fn list(
    State(fake): State<Arc<FakeServiceNow>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let uri = format!("/api/now/table/incident?{}", query.get("sysparm_query").cloned().unwrap_or_default());
    if let Some(response) = fake.gate("GET", uri, &headers) {
        return response;
    }
    let mut matching: Vec<(usize, Incident)> = fake.incidents().into_iter().enumerate().collect();
    let mut newest_first = false;
    for term in query.get("sysparm_query").map(String::as_str).unwrap_or("").split('^') {
        if term == "ORDERBYDESCsys_created_on" {
            newest_first = true;
        } else if let Some(value) = term.strip_prefix("correlation_id=") {
            matching.retain(|(_, i)| i.field("correlation_id") == value);
        } else if term == "active=true" {
            matching.retain(|(_, i)| !matches!(i.field("state"), "7" | "8"));
        } else if !term.is_empty() {
            return failure(StatusCode::BAD_REQUEST, &format!("unsupported query term {term}"));
        }
    }
    if newest_first {
        matching.sort_by_key(|(order, i)| std::cmp::Reverse((i.created_ms, *order)));
    }
    let limit = query.get("sysparm_limit").and_then(|l| l.parse().ok()).unwrap_or(usize::MAX);
    let result: Vec<Value> = matching
        .iter()
        .take(limit)
        .map(|(_, i)| record_json(i, query.get("sysparm_fields").map(String::as_str)))
        .collect();
    (StatusCode::OK, json!({ "result": result }).to_string()).into_response()
}

async fn create(State(fake): State<Arc<FakeServiceNow>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(response) = fake.gate("POST", "/api/now/table/incident".into(), &headers) {
        return response;
    }
    let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(&body) else {
        return failure(StatusCode::BAD_REQUEST, "Exception while reading request");
    };
    if let Some(response) = check_choices(&fields) {
        return response;
    }
    let notes = fields.remove("work_notes").and_then(|n| n.as_str().map(str::to_string));
    fields.insert("state".into(), json!("1"));
    let incident = {
        let mut incidents = fake.incidents.lock().unwrap();
        let n = incidents.len() + 1;
        let incident = Incident {
            sys_id: format!("{n:032x}"),
            number: format!("INC{:07}", 10_000 + n),
            created_ms: fake.now_ms.lock().unwrap().unwrap_or(FAKE_NOW_MS),
            fields,
            work_notes: notes.into_iter().collect(),
        };
        incidents.push(incident.clone());
        incident
    };
    let lose = fake.lose_next_create.lock().unwrap().take();
    match lose {
        None => {
            return (StatusCode::CREATED, json!({"result": record_json(&incident, None)}).to_string()).into_response()
        }
        Some(Lose::Hang) => tokio::time::sleep(Duration::from_secs(3)).await,
        Some(Lose::Status500) => {}
    }
    failure(StatusCode::INTERNAL_SERVER_ERROR, "Transaction cancelled: maximum execution time exceeded")
}

async fn change(
    State(fake): State<Arc<FakeServiceNow>>,
    Path(sys_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(response) = fake.gate("PATCH", format!("/api/now/table/incident/{sys_id}"), &headers) {
        return response;
    }
    let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(&body) else {
        return failure(StatusCode::BAD_REQUEST, "Exception while reading request");
    };
    if let Some(response) = check_choices(&fields) {
        return response;
    }
    let mut incidents = fake.incidents.lock().unwrap();
    let Some(incident) = incidents.iter_mut().find(|i| i.sys_id == sys_id) else {
        return failure(StatusCode::NOT_FOUND, "No Record found");
    };
    if matches!(incident.field("state"), "7" | "8") {
        return failure(StatusCode::FORBIDDEN, "Operation Failed: ACL restricts the record");
    }
    if fields.get("state").and_then(Value::as_str) == Some("6")
        && (fields.get("close_code").is_none() || fields.get("close_notes").is_none())
    {
        return failure(StatusCode::BAD_REQUEST, "Data Policy Exception: close_code and close_notes are mandatory");
    }
    if let Some(note) = fields.remove("work_notes").and_then(|n| n.as_str().map(str::to_string)) {
        incident.work_notes.push(note);
    }
    incident.fields.extend(fields);
    (StatusCode::OK, json!({"result": record_json(incident, None)}).to_string()).into_response()
}

async fn start() -> (Arc<FakeServiceNow>, String) {
    let fake = Arc::new(FakeServiceNow::default());
    let app = Router::new()
        .route("/api/now/table/incident", get(list).post(create))
        .route("/api/now/table/incident/{sys_id}", patch(change))
        .with_state(fake.clone());
    let addr = serve(app).await;
    (fake, format!("http://{addr}"))
}

fn config(endpoint: &str) -> ServiceNowConfig {
    let text = format!(
        "endpoint = \"{endpoint}\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\nassignment_group = \"SecOps\"\n\
         category = \"security\"\n[request]\ncircuit_breaker_failures = 0\ntimeout_secs = 0.5\n"
    );
    toml::from_str(&text).unwrap()
}

fn violation(key: &str, status: ViolationStatus, severity_id: i32) -> Violation {
    Violation {
        violation_key: key.into(),
        rule_id: "okta.mfa_disabled".into(),
        rule_description: "MFA must stay enabled".into(),
        severity_id,
        status,
        first_seen: 1_714_675_581_121,
        last_seen: 1_714_675_681_121,
        subject: "alice@example.com".into(),
        event_uid: "evt-1".into(),
        labels: BTreeMap::from([("team".to_string(), "iam".to_string())]),
        summary: format!("MFA must stay enabled: alice@example.com ({status:?})"),
    }
}

fn violation_record(i: u64, violation: &Violation) -> StoredRecord {
    StoredRecord {
        topic: "decisions.violations".into(),
        partition: 0,
        offset: i,
        record: Record::new(1_714_675_581_121, weir_schemas::encode(violation).unwrap()),
    }
}

fn lifecycle(key: &str) -> Vec<StoredRecord> {
    vec![
        violation_record(0, &violation(key, ViolationStatus::Open, 5)),
        violation_record(1, &violation(key, ViolationStatus::Updated, 4)),
        violation_record(2, &violation(key, ViolationStatus::Resolved, 4)),
    ]
}

#[tokio::test]
async fn open_update_resolve_keeps_one_incident() {
    let (fake, endpoint) = start().await;
    let mut sink = ServiceNowSink::new(config(&endpoint)).unwrap();
    let batch = lifecycle("v-1");
    assert_eq!(sink.deliver(&batch[..1]).await.unwrap(), vec![]);
    let incidents = fake.incidents();
    assert_eq!(incidents.len(), 1);
    let created = &incidents[0];
    assert_eq!(created.field("correlation_id"), "v-1");
    assert_eq!(created.field("correlation_display"), "Weir");
    assert_eq!(created.field("urgency"), "1");
    assert_eq!(created.field("impact"), "1");
    assert_eq!(created.field("assignment_group"), "SecOps");
    assert_eq!(created.field("category"), "security");
    assert_eq!(created.field("state"), "1");
    assert!(created.field("short_description").contains("alice@example.com"));
    assert!(created.field("description").contains("Rule: okta.mfa_disabled"), "{}", created.field("description"));
    assert_eq!(fake.methods(), ["GET", "POST"], "looked up before creating");

    assert_eq!(sink.deliver(&batch[1..]).await.unwrap(), vec![]);
    let incidents = fake.incidents();
    assert_eq!(incidents.len(), 1, "update and resolve change the same incident");
    let incident = &incidents[0];
    assert_eq!(incident.field("urgency"), "1", "high: urgency 1");
    assert_eq!(incident.field("impact"), "2", "high: impact 2");
    assert_eq!(incident.field("state"), "6");
    assert_eq!(incident.field("close_code"), "Solution provided");
    assert!(incident.field("close_notes").starts_with("Resolved by Weir"), "{}", incident.field("close_notes"));
    assert_eq!(incident.work_notes.len(), 3, "opened, seen again, resolved: {:?}", incident.work_notes);
    assert!(incident.work_notes[1].starts_with("Seen again."));
    assert_eq!(fake.methods(), ["GET", "POST", "GET", "PATCH", "GET", "PATCH"]);
    let lookup = &fake.requests.lock().unwrap()[0].1;
    assert!(lookup.ends_with("correlation_id=v-1^ORDERBYDESCsys_created_on"), "{lookup}");
}

#[tokio::test]
async fn title_and_body_templates_make_the_short_description_and_description() {
    let (fake, endpoint) = start().await;
    let cfg = ServiceNowConfig {
        title_template: Some("[{rule_id}] {subject} (team {labels.team}, {status})".parse().unwrap()),
        body_template: Some("{summary}\nOwner: {labels.owner|-}".parse().unwrap()),
        ..config(&endpoint)
    };
    let mut sink = ServiceNowSink::new(cfg).unwrap();
    let batch = lifecycle("v-1");
    assert_eq!(sink.deliver(&batch[..1]).await.unwrap(), vec![]);
    let created = fake.incidents()[0].clone();
    assert_eq!(created.field("short_description"), "[okta.mfa_disabled] alice@example.com (team iam, OPEN)");
    assert_eq!(created.field("description"), "MFA must stay enabled: alice@example.com (Open)\nOwner: -");
    assert!(created.work_notes[0].contains("Rule: okta.mfa_disabled"), "work notes keep the details");
    assert_eq!(sink.deliver(&batch[1..]).await.unwrap(), vec![]);
    let resolved = fake.incidents()[0].clone();
    assert_eq!(resolved.field("short_description"), "[okta.mfa_disabled] alice@example.com (team iam, UPDATED)");
    assert!(resolved.field("close_notes").ends_with("(team iam, RESOLVED)"), "{}", resolved.field("close_notes"));
    // A bad template is a config error, with the character it is at.
    let text =
        format!("endpoint = \"{endpoint}\"\nusername = \"u\"\npassword = \"p\"\nbody_template = \"{{a}} }}x\"\n");
    let e = toml::from_str::<ServiceNowConfig>(&text).unwrap_err().to_string();
    assert!(e.contains("`}` without an opening `{`") && e.contains("character 5"), "{e}");
}

#[tokio::test]
async fn a_lost_create_answer_then_a_retry_leaves_one_incident() {
    for lose in [Lose::Status500, Lose::Hang] {
        let (fake, endpoint) = start().await;
        *fake.lose_next_create.lock().unwrap() = Some(lose);
        let mut sink = ServiceNowSink::new(config(&endpoint)).unwrap();
        let batch = vec![violation_record(0, &violation("v-2", ViolationStatus::Open, 3))];
        let outcome = deliver_like_the_runner(&mut sink, &batch).await;
        assert!(outcome.dead.is_empty());
        assert_eq!(outcome.reasons.len(), 1, "{:?}", outcome.reasons);
        let incidents = fake.incidents();
        assert_eq!(incidents.len(), 1, "the retry found the incident the lost create made");
        assert_eq!(incidents[0].work_notes.len(), 1, "the retry of an OPEN adds no note");
        assert_eq!(fake.methods(), ["GET", "POST", "GET", "PATCH"]);
    }
}

#[tokio::test]
async fn replaying_the_violations_creates_and_changes_nothing() {
    let (fake, endpoint) = start().await;
    let mut sink = ServiceNowSink::new(config(&endpoint)).unwrap();
    let batch = lifecycle("v-3");
    assert_eq!(sink.deliver(&batch).await.unwrap(), vec![]);
    let before = fake.incidents();
    let requests_before = fake.methods().len();

    // A restarted sink replaying the topic from the start.
    let mut restarted = ServiceNowSink::new(config(&endpoint)).unwrap();
    assert_eq!(restarted.deliver(&batch).await.unwrap(), vec![]);
    let after = fake.incidents();
    assert_eq!(after.len(), 1, "no duplicate");
    assert_eq!(after[0].fields, before[0].fields);
    assert_eq!(after[0].work_notes, before[0].work_notes, "the resolved incident is not reopened");
    assert_eq!(fake.methods()[requests_before..], ["GET", "GET", "GET"], "lookups only");
}

#[tokio::test]
async fn a_later_episode_reopens_a_resolved_incident_and_follows_a_closed_one() {
    let (fake, endpoint) = start().await;
    let mut sink = ServiceNowSink::new(config(&endpoint)).unwrap();
    assert_eq!(sink.deliver(&lifecycle("v-4")).await.unwrap(), vec![]);
    let mut again = violation("v-4", ViolationStatus::Open, 5);
    again.first_seen = FAKE_NOW_MS + 60_000;
    again.last_seen = again.first_seen;
    assert_eq!(sink.deliver(&[violation_record(3, &again)]).await.unwrap(), vec![]);
    let incidents = fake.incidents();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].field("state"), "2", "reopened");
    assert!(incidents[0].work_notes.last().unwrap().starts_with("The violation opened again"));

    // Someone closes it; the violation resolves and opens once more, later.
    fake.incidents.lock().unwrap()[0].fields.insert("state".into(), json!("7"));
    let mut third = again.clone();
    third.first_seen += 3_600_000;
    third.last_seen = third.first_seen;
    *fake.now_ms.lock().unwrap() = Some(third.first_seen + 1_000);
    let resolve = violation_record(4, &violation("v-4", ViolationStatus::Resolved, 5));
    assert_eq!(sink.deliver(&[resolve, violation_record(5, &third)]).await.unwrap(), vec![]);
    let incidents = fake.incidents();
    assert_eq!(incidents.len(), 2, "a closed incident cannot change: a new one");
    assert_eq!(incidents[0].field("state"), "7", "the closed one is left alone");
    assert_eq!(incidents[1].field("state"), "1");

    // The same episode again (a retry or replay) updates the newest incident only.
    assert_eq!(sink.deliver(&[violation_record(5, &third)]).await.unwrap(), vec![]);
    assert_eq!(fake.incidents().len(), 2);
}

#[tokio::test]
async fn rate_limits_and_5xx_bursts_are_retried() {
    let (fake, endpoint) = start().await;
    fake.script.lock().unwrap().extend([
        (429, "{\"error\":{\"message\":\"Too many requests\"},\"status\":\"failure\"}", Some("1")),
        (500, "internal error", None),
        (502, "bad gateway", None),
        (503, "service unavailable", None),
    ]);
    let mut sink = ServiceNowSink::new(config(&endpoint)).unwrap();
    let batch = vec![
        violation_record(0, &violation("v-5", ViolationStatus::Open, 5)),
        violation_record(1, &violation("v-6", ViolationStatus::Open, 2)),
    ];
    let outcome = deliver_like_the_runner(&mut sink, &batch).await;
    assert!(outcome.dead.is_empty(), "{:?}", outcome.reasons);
    assert!(
        outcome.reasons[0].contains("429") && outcome.reasons[0].contains("retry after 1s"),
        "{:?}",
        outcome.reasons
    );
    for code in ["500", "502", "503"] {
        assert!(outcome.reasons.iter().any(|r| r.contains(code)), "{code}: {:?}", outcome.reasons);
    }
    let incidents = fake.incidents();
    let mut ids: Vec<&str> = incidents.iter().map(|i| i.field("correlation_id")).collect();
    ids.sort();
    assert_eq!(ids, ["v-5", "v-6"], "one incident each");
    assert_eq!(incidents.iter().find(|i| i.field("correlation_id") == "v-6").unwrap().field("urgency"), "3");
    let requests = fake.requests.lock().unwrap();
    let waited = requests[1].2.duration_since(requests[0].2);
    assert!(waited >= Duration::from_millis(950), "Retry-After honoured: {waited:?}");
}

#[tokio::test]
async fn rejected_payloads_and_non_violations_are_dead_lettered() {
    let (fake, endpoint) = start().await;
    let cfg = ServiceNowConfig {
        urgency: SeverityMap { critical: Some("9".into()), ..SeverityMap::default() },
        ..config(&endpoint)
    };
    let mut sink = ServiceNowSink::new(cfg).unwrap();
    let batch = vec![
        violation_record(0, &violation("v-7", ViolationStatus::Open, 5)),
        record(1, r#"{"not":"a violation"}"#),
        violation_record(2, &violation("v-8", ViolationStatus::Open, 3)),
    ];
    let failures = sink.deliver(&batch).await.unwrap();
    assert_eq!(failures.iter().map(|f| (f.index, f.retryable)).collect::<Vec<_>>(), [(0, false), (1, false)]);
    assert!(
        failures[0].reason.contains("400") && failures[0].reason.contains("Invalid value \\\"9\\\" for field urgency"),
        "{}",
        failures[0].reason
    );
    assert!(failures[1].reason.contains("not an io.weir.Violation"), "{}", failures[1].reason);
    assert_eq!(fake.methods(), ["GET", "POST", "GET", "POST"], "no request for the non-violation");
    assert_eq!(fake.incidents().len(), 1);
}

#[tokio::test]
async fn refused_credentials_are_fatal_and_name_the_options_not_the_values() {
    let (fake, endpoint) = start().await;
    let wrong = ServiceNowConfig { password: Secret::new("wrong-PASSWORD-123"), ..config(&endpoint) };
    let mut sink = ServiceNowSink::new(wrong.clone()).unwrap();
    let err = sink.deliver(&lifecycle("v-9")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(err.message.contains("401") && err.message.contains("`username` and `password`"), "{}", err.message);
    assert_eq!(fake.methods(), ["GET"], "stopped at the first refusal");

    // An ACL refusal that echoes the credentials must not leak them.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let echo: &'static str = Box::leak(format!("denied for {PASSWORD} (Basic {basic})").into_boxed_str());
    fake.script.lock().unwrap().push_back((403, echo, None));
    let cfg = config(&endpoint);
    let mut sink = ServiceNowSink::new(cfg.clone()).unwrap();
    let err = sink.deliver(&lifecycle("v-9")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(err.message.contains("403") && err.message.contains("denied for ***"), "{}", err.message);
    for text in [err.message, format!("{cfg:?}"), format!("{sink:?}"), format!("{wrong:?}")] {
        assert!(!text.contains(PASSWORD) && !text.contains(&basic) && !text.contains("wrong-PASSWORD"), "{text}");
    }
}

#[tokio::test]
async fn a_lookup_answered_with_html_is_retryable() {
    // A hibernating developer instance answers 200 with a login page.
    let app = Router::new().route("/api/now/table/incident", get(|| async { "<html>Instance hibernating</html>" }));
    let endpoint = format!("http://{}", serve(app).await);
    let mut sink = ServiceNowSink::new(config(&endpoint)).unwrap();
    let err = sink.deliver(&lifecycle("v-10")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Retryable);
    assert!(err.message.contains("without JSON"), "{}", err.message);
}

#[test]
fn long_or_odd_keys_become_a_hashed_correlation_id() {
    let plain = violation("0123456789abcdef0123456789abcdef", ViolationStatus::Open, 5);
    assert_eq!(correlation_id(&plain), "0123456789abcdef0123456789abcdef");
    for key in ["k".repeat(101), "a^b=c".to_string(), "has space".to_string()] {
        let id = correlation_id(&violation(&key, ViolationStatus::Open, 5));
        assert!(id.starts_with("sha256:") && id.len() <= 100, "{id}");
        assert_eq!(id, correlation_id(&violation(&key, ViolationStatus::Resolved, 1)), "stable");
    }
}

#[test]
fn config_reads_from_toml_with_defaults_and_checks_options() {
    let cfg: ServiceNowConfig = toml::from_str(
        "endpoint = \"https://acme.service-now.com\"\nusername = \"u\"\npassword = \"p\"\n\
         urgency = { critical = \"2\" }\n",
    )
    .unwrap();
    assert_eq!(cfg.resolved_state, "6");
    assert_eq!(cfg.reopen_state, "2");
    assert_eq!(cfg.closed_states, ["7", "8"]);
    assert_eq!(cfg.close_code, "Solution provided");
    assert_eq!(cfg.urgency.critical.as_deref(), Some("2"));
    assert_eq!(cfg.assignment_group, None);
    assert!(toml::from_str::<ServiceNowConfig>(
        "endpoint = \"x\"\nusername = \"u\"\npassword = \"p\"\nassignmentgroup = \"g\""
    )
    .is_err());
    assert!(ServiceNowSink::new(cfg.clone()).is_ok());
    let err = ServiceNowSink::new(ServiceNowConfig { endpoint: "ftp://x".into(), ..cfg.clone() }).unwrap_err();
    assert_eq!(err.key, "endpoint");
    let err = ServiceNowSink::new(ServiceNowConfig { password: Secret::new(""), ..cfg.clone() }).unwrap_err();
    assert_eq!(err.key, "password");
    let err = ServiceNowSink::new(ServiceNowConfig { username: " ".into(), ..cfg.clone() }).unwrap_err();
    assert_eq!(err.key, "username");
    let bad = SeverityMap { low: Some(String::new()), ..SeverityMap::default() };
    let err = ServiceNowSink::new(ServiceNowConfig { impact: bad, ..cfg }).unwrap_err();
    assert_eq!(err.key, "impact.low");
}
