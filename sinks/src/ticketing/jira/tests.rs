//! The Jira sink against a fake Jira Cloud REST API v3 on 127.0.0.1.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};
use tokio::time::Instant;
use weir_schemas::component::{ErrorKind, Sink};
use weir_schemas::events::{Violation, ViolationStatus};
use weir_schemas::{Record, StoredRecord};

use super::request::{description, key_label};
use super::{JiraConfig, JiraSink};
use crate::http::Secret;
use crate::test_support::{deliver_like_the_runner, record, serve};
use crate::ticketing::SeverityMap;

const EMAIL: &str = "weir-bot@example.com";
const TOKEN: &str = "ATATT3xFfGF0-token-neverShown";
/// When the fake creates issues unless a test moves its clock: after the test violations'
/// `first_seen`.
const FAKE_NOW_MS: i64 = 1_714_700_000_000;
const PRIORITIES: [&str; 5] = ["Highest", "High", "Medium", "Low", "Lowest"];

/// How the fake loses the answer to the next create (after creating the issue).
#[derive(Clone, Copy)]
enum Lose {
    /// Answers 500.
    Status500,
    /// Never answers in time (the client times out).
    Hang,
}

#[derive(Clone, Debug)]
struct Issue {
    id: u64,
    key: String,
    fields: Value,
    done: bool,
    created_ms: i64,
    comments: Vec<Value>,
    /// Searches that will still miss it unless they reconcile it (the index lags).
    hidden_for: usize,
}

/// A fake Jira Cloud: checks Basic auth (401), answers scripted statuses first, validates creates
/// like v3 (ADF description with non-empty text nodes, known priority, single-line summary,
/// labels without spaces: else 400 with `errors`), keeps issues in memory, answers the label
/// search newest first with an index that lags `lag` searches behind creates (`reconcileIssues`
/// sees them at once), comments and a To Do → Done workflow.
#[derive(Default)]
struct FakeJira {
    script: Mutex<VecDeque<(u16, &'static str, Option<&'static str>)>>,
    lose_next_create: Mutex<Option<Lose>>,
    lag: Mutex<usize>,
    issues: Mutex<Vec<Issue>>,
    /// (method, path, when).
    requests: Mutex<Vec<(String, String, Instant)>>,
    now_ms: Mutex<Option<i64>>,
}

impl FakeJira {
    fn issues(&self) -> Vec<Issue> {
        self.issues.lock().unwrap().clone()
    }

    fn calls(&self) -> Vec<String> {
        self.requests.lock().unwrap().iter().map(|(m, p, _)| format!("{m} {p}")).collect()
    }

    fn gate(&self, method: &str, path: String, headers: &HeaderMap) -> Option<Response> {
        self.requests.lock().unwrap().push((method.to_string(), path, Instant::now()));
        let expected =
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}:{TOKEN}")));
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return Some(errors(
                StatusCode::UNAUTHORIZED,
                json!(["Client must be authenticated to access this resource."]),
                json!({}),
            ));
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

fn errors(status: StatusCode, messages: Value, errors: Value) -> Response {
    (status, json!({"errorMessages": messages, "errors": errors}).to_string()).into_response()
}

/// Whether `node` is a valid ADF node tree as far as the fake checks: typed nodes, non-empty
/// text nodes.
fn valid_adf(node: &Value) -> bool {
    let Some(kind) = node["type"].as_str() else { return false };
    if kind == "text" {
        return node["text"].as_str().is_some_and(|t| !t.is_empty());
    }
    match &node["content"] {
        Value::Null => true,
        Value::Array(children) => children.iter().all(valid_adf),
        _ => false,
    }
}

fn valid_doc(doc: &Value) -> bool {
    doc["type"] == "doc" && doc["version"] == 1 && doc["content"].is_array() && valid_adf(doc)
}

async fn search(
    State(fake): State<Arc<FakeJira>>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let jql = param("jql");
    if let Some(response) = fake.gate("GET", format!("/search/jql {jql}"), &headers) {
        return response;
    }
    // project = "SEC" AND labels = "weir-v-1" ORDER BY created DESC
    let quoted: Vec<&str> = jql.split('"').collect();
    if quoted.len() != 5 || quoted[0] != "project = " || quoted[2] != " AND labels = " {
        return errors(StatusCode::BAD_REQUEST, json!([format!("Error in the JQL Query: {jql}")]), json!({}));
    }
    if quoted[1] != "SEC" {
        let message = format!("The value '{}' does not exist for the field 'project'.", quoted[1]);
        return errors(StatusCode::BAD_REQUEST, json!([message]), json!({}));
    }
    assert_eq!(quoted[4], " ORDER BY created DESC");
    let reconcile: Vec<u64> =
        query.iter().filter(|(k, _)| k == "reconcileIssues").filter_map(|(_, v)| v.parse().ok()).collect();
    let mut issues = fake.issues.lock().unwrap();
    let mut found: Vec<&mut Issue> = issues
        .iter_mut()
        .filter(|i| i.fields["labels"].as_array().unwrap().iter().any(|l| l == quoted[3]))
        .filter_map(|i| {
            if reconcile.contains(&i.id) || i.hidden_for == 0 {
                return Some(i);
            }
            i.hidden_for -= 1;
            None
        })
        .collect();
    found.sort_by_key(|i| std::cmp::Reverse((i.created_ms, i.id)));
    let max: usize = param("maxResults").parse().unwrap_or(50);
    let created = |ms: i64| {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
        t.format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000"
        ))
        .unwrap()
    };
    let result: Vec<Value> = found
        .iter()
        .take(max)
        .map(|i| {
            let category = if i.done { "done" } else { "new" };
            let status = if i.done { "Done" } else { "To Do" };
            json!({"id": i.id.to_string(), "key": i.key, "fields": {
                "status": {"name": status, "statusCategory": {"key": category}},
                "created": created(i.created_ms),
            }})
        })
        .collect();
    (StatusCode::OK, json!({"issues": result, "isLast": true}).to_string()).into_response()
}

async fn create(State(fake): State<Arc<FakeJira>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(response) = fake.gate("POST", "/issue".into(), &headers) {
        return response;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return errors(StatusCode::BAD_REQUEST, json!(["Unexpected character"]), json!({}));
    };
    let fields = &body["fields"];
    let mut problems = serde_json::Map::new();
    if fields["project"]["key"] != "SEC" {
        problems.insert("project".into(), json!("valid project is required"));
    }
    if fields["issuetype"]["name"] != "Task" {
        problems.insert("issuetype".into(), json!("valid issue type is required"));
    }
    match fields["summary"].as_str() {
        Some(s) if !s.is_empty() && s.chars().count() <= 255 && !s.contains('\n') => {}
        _ => {
            problems.insert("summary".into(), json!("Summary must be a single line of at most 255 characters."));
        }
    }
    if !valid_doc(&fields["description"]) {
        problems.insert("description".into(), json!("Operation value must be an Atlassian Document."));
    }
    if let Some(priority) = fields.get("priority") {
        if !PRIORITIES.iter().any(|p| priority["name"] == *p) {
            problems.insert("priority".into(), json!("Specify a valid priority"));
        }
    }
    let labels_ok = fields["labels"]
        .as_array()
        .is_some_and(|ls| ls.iter().all(|l| l.as_str().is_some_and(|l| !l.is_empty() && !l.contains(' '))));
    if !labels_ok {
        problems.insert("labels".into(), json!("Labels cannot contain spaces."));
    }
    if !problems.is_empty() {
        return errors(StatusCode::BAD_REQUEST, json!([]), Value::Object(problems));
    }
    let issue = {
        let mut issues = fake.issues.lock().unwrap();
        let n = issues.len() as u64 + 1;
        let issue = Issue {
            id: 10_000 + n,
            key: format!("SEC-{n}"),
            fields: fields.clone(),
            done: false,
            created_ms: fake.now_ms.lock().unwrap().unwrap_or(FAKE_NOW_MS),
            comments: Vec::new(),
            hidden_for: *fake.lag.lock().unwrap(),
        };
        issues.push(issue.clone());
        issue
    };
    let lose = fake.lose_next_create.lock().unwrap().take();
    match lose {
        None => {}
        Some(Lose::Hang) => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            return errors(StatusCode::INTERNAL_SERVER_ERROR, json!(["too late"]), json!({}));
        }
        Some(Lose::Status500) => {
            return errors(StatusCode::INTERNAL_SERVER_ERROR, json!(["Internal server error"]), json!({}))
        }
    }
    let body = json!({"id": issue.id.to_string(), "key": issue.key, "self": format!("http://jira/rest/api/3/issue/{}", issue.id)});
    (StatusCode::CREATED, body.to_string()).into_response()
}

async fn comment(
    State(fake): State<Arc<FakeJira>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(response) = fake.gate("POST", format!("/issue/{key}/comment"), &headers) {
        return response;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    if !valid_doc(&body["body"]) {
        return errors(StatusCode::BAD_REQUEST, json!(["Comment body is not a valid document."]), json!({}));
    }
    let mut issues = fake.issues.lock().unwrap();
    let Some(issue) = issues.iter_mut().find(|i| i.key == key) else {
        return errors(
            StatusCode::NOT_FOUND,
            json!(["Issue does not exist or you do not have permission to see it."]),
            json!({}),
        );
    };
    issue.comments.push(body["body"].clone());
    (StatusCode::CREATED, json!({"id": issue.comments.len().to_string()}).to_string()).into_response()
}

fn transitions_of(done: bool) -> Value {
    if done {
        json!([{"id": "11", "name": "Reopen", "to": {"name": "To Do"}}])
    } else {
        json!([
            {"id": "21", "name": "Start work", "to": {"name": "In Progress"}},
            {"id": "31", "name": "Close", "to": {"name": "Done"}},
        ])
    }
}

async fn transitions(State(fake): State<Arc<FakeJira>>, Path(key): Path<String>, headers: HeaderMap) -> Response {
    if let Some(response) = fake.gate("GET", format!("/issue/{key}/transitions"), &headers) {
        return response;
    }
    let issues = fake.issues.lock().unwrap();
    let Some(issue) = issues.iter().find(|i| i.key == key) else {
        return errors(StatusCode::NOT_FOUND, json!(["Issue does not exist"]), json!({}));
    };
    (StatusCode::OK, json!({"transitions": transitions_of(issue.done)}).to_string()).into_response()
}

async fn transition(
    State(fake): State<Arc<FakeJira>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(response) = fake.gate("POST", format!("/issue/{key}/transitions"), &headers) {
        return response;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut issues = fake.issues.lock().unwrap();
    let Some(issue) = issues.iter_mut().find(|i| i.key == key) else {
        return errors(StatusCode::NOT_FOUND, json!(["Issue does not exist"]), json!({}));
    };
    match body["transition"]["id"].as_str() {
        Some("31") if !issue.done => issue.done = true,
        Some("11") if issue.done => issue.done = false,
        _ => return errors(StatusCode::BAD_REQUEST, json!(["Transition id is not valid for this issue."]), json!({})),
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn start() -> (Arc<FakeJira>, String) {
    let fake = Arc::new(FakeJira::default());
    let app = Router::new()
        .route("/rest/api/3/search/jql", get(search))
        .route("/rest/api/3/issue", post(create))
        .route("/rest/api/3/issue/{key}/comment", post(comment))
        .route("/rest/api/3/issue/{key}/transitions", get(transitions).post(transition))
        .with_state(fake.clone());
    let addr = serve(app).await;
    (fake, format!("http://{addr}"))
}

fn config(endpoint: &str) -> JiraConfig {
    let text = format!(
        "endpoint = \"{endpoint}\"\nemail = \"{EMAIL}\"\napi_token = \"{TOKEN}\"\nproject = \"SEC\"\n\
         done_transition = \"done\"\nsearch_settle_secs = 0\n[request]\ncircuit_breaker_failures = 0\n\
         timeout_secs = 0.5\n"
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
async fn open_update_resolve_keeps_one_issue() {
    let (fake, endpoint) = start().await;
    let mut sink = JiraSink::new(config(&endpoint)).unwrap();
    assert_eq!(sink.deliver(&lifecycle("v-1")).await.unwrap(), vec![]);
    let issues = fake.issues();
    assert_eq!(issues.len(), 1);
    let issue = &issues[0];
    assert_eq!(issue.fields["labels"], json!(["weir", "weir-v-1"]));
    assert_eq!(issue.fields["priority"], json!({"name": "Highest"}));
    assert_eq!(issue.fields["summary"], "MFA must stay enabled: alice@example.com (Open)");
    assert_eq!(issue.fields["description"]["type"], "doc");
    assert_eq!(issue.comments.len(), 2, "seen again, resolved");
    assert!(issue.comments[0].to_string().contains("Seen again"), "{}", issue.comments[0]);
    assert!(issue.comments[1].to_string().contains("Resolved"), "{}", issue.comments[1]);
    assert!(issue.done, "transitioned by target status name, case-insensitively");
    let label_search = "GET /search/jql project = \"SEC\" AND labels = \"weir-v-1\" ORDER BY created DESC";
    assert_eq!(
        fake.calls(),
        [
            label_search,
            "POST /issue",
            label_search,
            "POST /issue/SEC-1/comment",
            label_search,
            "POST /issue/SEC-1/comment",
            "GET /issue/SEC-1/transitions",
            "POST /issue/SEC-1/transitions",
        ]
    );
}

#[tokio::test]
async fn title_and_body_templates_make_the_summary_and_description() {
    let (fake, endpoint) = start().await;
    let cfg = JiraConfig {
        title_template: Some("[{rule_id}] {subject}\n(team {labels.team}, {status})".parse().unwrap()),
        body_template: Some("{summary}\n\nOwner: {labels.owner|-}".parse().unwrap()),
        ..config(&endpoint)
    };
    let mut sink = JiraSink::new(cfg).unwrap();
    assert_eq!(sink.deliver(&lifecycle("v-1")[..2]).await.unwrap(), vec![]);
    let issues = fake.issues();
    assert_eq!(issues[0].fields["summary"], "[okta.mfa_disabled] alice@example.com (team iam, OPEN)", "one line");
    assert_eq!(
        issues[0].fields["description"],
        json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [
                {"type": "text", "text": "MFA must stay enabled: alice@example.com (Open)"},
            ]},
            {"type": "paragraph", "content": []},
            {"type": "paragraph", "content": [{"type": "text", "text": "Owner: -"}]},
        ]})
    );
    let comment = issues[0].comments[0].to_string();
    assert!(comment.contains("Seen again: [okta.mfa_disabled] alice@example.com (team iam, UPDATED)"), "{comment}");
}

#[tokio::test]
async fn a_lost_create_answer_then_a_retry_leaves_one_issue() {
    for lose in [Lose::Status500, Lose::Hang] {
        let (fake, endpoint) = start().await;
        *fake.lose_next_create.lock().unwrap() = Some(lose);
        let mut sink = JiraSink::new(config(&endpoint)).unwrap();
        let batch = vec![violation_record(0, &violation("v-2", ViolationStatus::Open, 3))];
        let outcome = deliver_like_the_runner(&mut sink, &batch).await;
        assert!(outcome.dead.is_empty());
        assert_eq!(outcome.reasons.len(), 1, "{:?}", outcome.reasons);
        assert_eq!(fake.issues().len(), 1, "the retry found the issue the lost create made");
        assert_eq!(fake.calls().iter().filter(|c| *c == "POST /issue").count(), 1);
    }
}

#[tokio::test]
async fn a_lagging_search_index_does_not_cause_duplicates() {
    let (fake, endpoint) = start().await;
    *fake.lag.lock().unwrap() = 3;
    // An UPDATED right after the OPEN: the search reconciles the issue the sink just created.
    let mut sink = JiraSink::new(config(&endpoint)).unwrap();
    assert_eq!(sink.deliver(&lifecycle("v-3")[..2]).await.unwrap(), vec![]);
    assert_eq!(fake.issues().len(), 1);
    assert_eq!(fake.issues()[0].comments.len(), 1);

    // A lost create with an index that has not caught up: the sink waits for it instead of
    // creating again.
    *fake.lag.lock().unwrap() = 2;
    let cfg = JiraConfig { search_settle_secs: 1.0, ..config(&endpoint) };
    let mut sink = JiraSink::new(cfg).unwrap();
    *fake.lose_next_create.lock().unwrap() = Some(Lose::Status500);
    let batch = [violation_record(0, &violation("v-4", ViolationStatus::Open, 3))];
    let mut reasons = Vec::new();
    for _ in 0..10 {
        match sink.deliver(&batch).await {
            Ok(failures) if failures.is_empty() => break,
            Ok(failures) => reasons.extend(failures.into_iter().map(|f| f.reason)),
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::Retryable, "{}", e.message);
                reasons.push(e.message);
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(reasons.iter().any(|r| r.contains("waiting up to 1.0s for Jira's search index")), "{reasons:?}");
    let v4: Vec<_> = fake.issues().into_iter().filter(|i| i.fields["labels"][1] == "weir-v-4").collect();
    assert_eq!(v4.len(), 1, "one issue: {reasons:?}");
}

#[tokio::test]
async fn replaying_the_violations_creates_and_comments_nothing() {
    let (fake, endpoint) = start().await;
    let mut sink = JiraSink::new(config(&endpoint)).unwrap();
    let batch = lifecycle("v-5");
    assert_eq!(sink.deliver(&batch).await.unwrap(), vec![]);
    let calls_before = fake.calls().len();

    let mut restarted = JiraSink::new(config(&endpoint)).unwrap();
    assert_eq!(restarted.deliver(&batch).await.unwrap(), vec![]);
    let issues = fake.issues();
    assert_eq!(issues.len(), 1, "no duplicate");
    assert_eq!(issues[0].comments.len(), 2, "no new comment");
    assert!(issues[0].done);
    assert!(fake.calls()[calls_before..].iter().all(|c| c.starts_with("GET /search/jql")), "searches only");
}

#[tokio::test]
async fn a_later_episode_of_a_done_issue_gets_a_new_issue() {
    let (fake, endpoint) = start().await;
    let mut sink = JiraSink::new(config(&endpoint)).unwrap();
    assert_eq!(sink.deliver(&lifecycle("v-6")).await.unwrap(), vec![]);
    let mut again = violation("v-6", ViolationStatus::Open, 2);
    again.first_seen = FAKE_NOW_MS + 60_000;
    *fake.now_ms.lock().unwrap() = Some(FAKE_NOW_MS + 120_000);
    let updated = Violation { status: ViolationStatus::Updated, ..again.clone() };
    let batch = [violation_record(3, &again), violation_record(4, &updated)];
    assert_eq!(sink.deliver(&batch).await.unwrap(), vec![]);
    let issues = fake.issues();
    assert_eq!(issues.len(), 2);
    assert!(issues[0].done && !issues[1].done);
    assert_eq!(issues[1].fields["priority"], json!({"name": "Low"}));
    assert_eq!(issues[1].comments.len(), 1, "the update went to the new issue");
}

#[tokio::test]
async fn rate_limits_and_5xx_bursts_are_retried() {
    let (fake, endpoint) = start().await;
    fake.script.lock().unwrap().extend([
        (429, "{\"errorMessages\":[\"Rate limit exceeded\"]}", Some("1")),
        (500, "internal error", None),
        (503, "service unavailable", Some("0")),
        (502, "bad gateway", None),
    ]);
    let mut sink = JiraSink::new(config(&endpoint)).unwrap();
    let batch = lifecycle("v-7");
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
    let issues = fake.issues();
    assert_eq!(issues.len(), 1);
    assert!(issues[0].done);
    let requests = fake.requests.lock().unwrap();
    let waited = requests[1].2.duration_since(requests[0].2);
    assert!(waited >= Duration::from_millis(950), "Retry-After honoured: {waited:?}");
}

#[tokio::test]
async fn rejected_payloads_missing_transitions_and_non_violations_are_dead_lettered() {
    let (fake, endpoint) = start().await;
    let cfg = JiraConfig {
        priority: SeverityMap { critical: Some("Urgent".into()), ..SeverityMap::default() },
        ..config(&endpoint)
    };
    let mut sink = JiraSink::new(cfg).unwrap();
    let batch = vec![
        violation_record(0, &violation("v-8", ViolationStatus::Open, 5)),
        record(1, r#"{"not":"a violation"}"#),
        violation_record(2, &violation("v-9", ViolationStatus::Open, 3)),
    ];
    let failures = sink.deliver(&batch).await.unwrap();
    assert_eq!(failures.iter().map(|f| (f.index, f.retryable)).collect::<Vec<_>>(), [(0, false), (1, false)]);
    assert!(
        failures[0].reason.contains("400") && failures[0].reason.contains("Specify a valid priority"),
        "{}",
        failures[0].reason
    );
    assert!(failures[1].reason.contains("not an io.weir.Violation"), "{}", failures[1].reason);
    assert_eq!(fake.issues().len(), 1);
    assert_eq!(fake.calls().len(), 4, "no request for the non-violation: {:?}", fake.calls());

    let cfg = JiraConfig { done_transition: "Archive".into(), ..config(&endpoint) };
    let mut sink = JiraSink::new(cfg).unwrap();
    let resolve = [violation_record(3, &violation("v-9", ViolationStatus::Resolved, 3))];
    let failures = sink.deliver(&resolve).await.unwrap();
    assert_eq!(failures.len(), 1);
    assert!(!failures[0].retryable);
    assert!(
        failures[0].reason.contains("no transition `Archive`")
            && failures[0].reason.contains("Start work, Close")
            && failures[0].reason.contains("`done_transition`"),
        "{}",
        failures[0].reason
    );
}

#[tokio::test]
async fn refused_credentials_and_a_wrong_project_are_fatal() {
    let (fake, endpoint) = start().await;
    let wrong = JiraConfig { api_token: Secret::new("wrong-token-123"), ..config(&endpoint) };
    let mut sink = JiraSink::new(wrong.clone()).unwrap();
    let err = sink.deliver(&lifecycle("v-10")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(err.message.contains("401") && err.message.contains("`email` and `api_token`"), "{}", err.message);
    assert_eq!(fake.calls().len(), 1, "stopped at the first refusal");

    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}:{TOKEN}"));
    let echo: &'static str = Box::leak(format!("token {TOKEN} / Basic {basic} lacks permission").into_boxed_str());
    fake.script.lock().unwrap().push_back((403, echo, None));
    let cfg = config(&endpoint);
    let mut sink = JiraSink::new(cfg.clone()).unwrap();
    let err = sink.deliver(&lifecycle("v-10")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(err.message.contains("403") && err.message.contains("token *** / Basic ***"), "{}", err.message);
    for text in [err.message, format!("{cfg:?}"), format!("{sink:?}"), format!("{wrong:?}")] {
        assert!(!text.contains(TOKEN) && !text.contains(&basic) && !text.contains("wrong-token"), "{text}");
    }

    let mut sink = JiraSink::new(JiraConfig { project: "NOPE".into(), ..config(&endpoint) }).unwrap();
    let err = sink.deliver(&lifecycle("v-10")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert!(err.message.contains("`project`") && err.message.contains("'NOPE' does not exist"), "{}", err.message);
}

#[test]
fn labels_descriptions_and_config() {
    let plain = violation("0123456789abcdef0123456789abcdef", ViolationStatus::Open, 5);
    assert_eq!(key_label(&plain, "weir-"), "weir-0123456789abcdef0123456789abcdef");
    for key in ["k".repeat(300), "has space".to_string(), "quote\"d".to_string()] {
        let label = key_label(&violation(&key, ViolationStatus::Open, 5), "weir-");
        assert!(label.starts_with("weir-sha256-") && label.len() <= 255 && !label.contains(' '), "{label}");
    }

    // Empty fields make no empty ADF text nodes.
    let mut sparse = violation("v", ViolationStatus::Open, 0);
    sparse.subject.clear();
    sparse.event_uid.clear();
    sparse.labels.clear();
    sparse.summary.clear();
    sparse.rule_description.clear();
    assert!(valid_doc(&description(&sparse)), "{}", description(&sparse));

    let cfg: JiraConfig = toml::from_str(
        "endpoint = \"https://acme.atlassian.net\"\nemail = \"e@x\"\napi_token = \"t\"\nproject = \"SEC\"\n\
         priority = { informational = \"Low\" }\n",
    )
    .unwrap();
    assert_eq!(cfg.issue_type, "Task");
    assert_eq!(cfg.labels, ["weir"]);
    assert_eq!(cfg.label_prefix, "weir-");
    assert_eq!(cfg.done_transition, "Done");
    assert!(cfg.set_priority);
    assert_eq!(cfg.search_settle_secs, 30.0);
    assert!(JiraSink::new(cfg.clone()).is_ok());
    assert!(toml::from_str::<JiraConfig>(
        "endpoint = \"x\"\nemail = \"e\"\napi_token = \"t\"\nproject = \"S\"\nlabel = \"x\""
    )
    .is_err());
    let bad: [(JiraConfig, &str); 5] = [
        (JiraConfig { project: "SE C".into(), ..cfg.clone() }, "project"),
        (JiraConfig { labels: vec!["two words".into()], ..cfg.clone() }, "labels"),
        (JiraConfig { api_token: Secret::new(""), ..cfg.clone() }, "api_token"),
        (JiraConfig { endpoint: "ftp://x".into(), ..cfg.clone() }, "endpoint"),
        (JiraConfig { search_settle_secs: -1.0, ..cfg.clone() }, "search_settle_secs"),
    ];
    for (cfg, key) in bad {
        assert_eq!(JiraSink::new(cfg).unwrap_err().key, key);
    }
}
