//! The `jira` sink itself.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde_json::{json, Value};
use tokio::time::Instant;
use weir_schemas::component::{ComponentError, RecordFailure, Sink};
use weir_schemas::events::{Violation, ViolationStatus};
use weir_schemas::StoredRecord;

use super::request::{self, jql, key_label, MAX_LABEL};
use super::JiraConfig;
use crate::http::{FailureClass, HttpDelivery, HttpFailure, InvalidConfig, Reply, Secret};
use crate::recent::RecentMap;
use crate::ticketing::{basic_auth_secrets, covered_by, deliver_each, explain_refusal, scrub, Tracker};

/// What names the destination in reasons.
const WHAT: &str = "Jira";
/// How many (label → issue) pairs the sink remembers to reconcile searches with.
const MAX_KNOWN: usize = 4096;

/// Keeps one Jira issue per violation key (found by its label) through the Cloud REST API v3.
#[derive(Clone)]
pub struct JiraSink {
    config: JiraConfig,
    /// `<endpoint>/rest/api/3/`.
    api: Url,
    delivery: HttpDelivery,
    /// Scrubbed from the reasons this sink writes itself (the delivery scrubs its own).
    secrets: Vec<Secret>,
    /// Issues this sink created or found, by label: their ids go with the search as
    /// `reconcileIssues`, because Jira's search is eventually consistent and would otherwise
    /// miss an issue created seconds ago (and the next UPDATED would open a second one).
    known: RecentMap,
    /// Labels whose create got no answer (transport error, 5xx, or a 201 without a key), and
    /// when: the issue may exist without being searchable yet.
    pending: HashMap<String, Instant>,
    settle: Duration,
}

impl std::fmt::Debug for JiraSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JiraSink").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The newest issue carrying a violation's label, as the search returned it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Issue {
    key: String,
    done: bool,
    created: Option<String>,
}

impl JiraSink {
    /// A sink for `config`; checks the options (no request is made).
    pub fn new(config: JiraConfig) -> Result<Self, InvalidConfig> {
        if config.email.trim().is_empty() {
            return Err(InvalidConfig::new("email", "must not be empty"));
        }
        if config.api_token.expose().is_empty() {
            return Err(InvalidConfig::new("api_token", "must not be empty"));
        }
        // Project keys are letters, digits and underscores (ids are digits), so the JQL needs no
        // escaping.
        if config.project.is_empty() || !config.project.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(InvalidConfig::new("project", "must be a project key such as SEC"));
        }
        if config.issue_type.trim().is_empty() {
            return Err(InvalidConfig::new("issue_type", "must not be empty"));
        }
        if config.done_transition.trim().is_empty() {
            return Err(InvalidConfig::new("done_transition", "must not be empty"));
        }
        let label_ok = |l: &str| !l.is_empty() && l.len() <= MAX_LABEL && !l.chars().any(|c| c.is_whitespace());
        if config.label_prefix.len() > 100 || !config.label_prefix.chars().all(|c| !c.is_whitespace() && c != '"') {
            return Err(InvalidConfig::new("label_prefix", "must be at most 100 characters without spaces or quotes"));
        }
        if let Some(bad) = config.labels.iter().find(|l| !label_ok(l)) {
            return Err(InvalidConfig::new("labels", format!("`{bad}` is not a Jira label (no spaces, 1-255 chars)")));
        }
        for (level, value) in config.priority.entries() {
            if value.is_some_and(|v| v.trim().is_empty()) {
                return Err(InvalidConfig::new(format!("priority.{level}"), "must not be empty"));
            }
        }
        if !config.search_settle_secs.is_finite() || !(0.0..=3600.0).contains(&config.search_settle_secs) {
            return Err(InvalidConfig::new("search_settle_secs", "must be a number of seconds from 0 to 3600"));
        }
        let base =
            Url::parse(&config.endpoint).map_err(|e| InvalidConfig::new("endpoint", format!("not a URL: {e}")))?;
        if base.scheme() != "http" && base.scheme() != "https" {
            return Err(InvalidConfig::new("endpoint", "must be an http:// or https:// URL"));
        }
        if base.query().is_some() {
            return Err(InvalidConfig::new("endpoint", "must not have a query (give the site URL)"));
        }
        let api = Url::parse(&format!("{}/rest/api/3/", config.endpoint.trim_end_matches('/')))
            .map_err(|e| InvalidConfig::new("endpoint", format!("not a URL: {e}")))?;
        let secrets = basic_auth_secrets(&config.email, &config.api_token);
        let delivery = HttpDelivery::new(WHAT, &config.request, secrets.clone())?;
        let settle = Duration::from_secs_f64(config.search_settle_secs);
        Ok(JiraSink {
            config,
            api,
            delivery,
            secrets,
            known: RecentMap::new(MAX_KNOWN),
            pending: HashMap::new(),
            settle,
        })
    }

    /// `<endpoint>/rest/api/3/<segments...>`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.api.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Sends an authenticated request; a 401/403 becomes a fatal error naming the options.
    async fn send(&mut self, method: Method, url: Url, body: Option<&Value>) -> Result<Reply, HttpFailure> {
        let mut request = self
            .delivery
            .client()
            .request(method, url)
            .basic_auth(&self.config.email, Some(self.config.api_token.expose()))
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body.to_string());
        }
        self.delivery
            .send(request)
            .await
            .map_err(|failure| explain_refusal(failure, WHAT, "`email` and `api_token`", &self.secrets))
    }

    /// A retryable failure the sink found itself, counted by the circuit breaker.
    fn retryable(&mut self, reason: String) -> HttpFailure {
        let failure = HttpFailure::retryable(scrub(&reason, &self.secrets));
        self.delivery.note(&failure);
        failure
    }

    /// The newest issue of the project carrying `label` (`GET /rest/api/3/search/jql`).
    async fn find(&mut self, label: &str) -> Result<Option<Issue>, HttpFailure> {
        let mut url = self.url(&["search", "jql"]);
        url.query_pairs_mut()
            .append_pair("jql", &jql(&self.config.project, label))
            .append_pair("fields", "status,created")
            .append_pair("maxResults", "1");
        if let Some(id) = self.known.get(label).filter(|id| id.parse::<u64>().is_ok()) {
            url.query_pairs_mut().append_pair("reconcileIssues", id);
        }
        let reply = match self.send(Method::GET, url, None).await {
            Ok(reply) => reply,
            // The JQL is built from `project` and a safe label: a 400 means the project is wrong
            // (or invisible to the account), which no record can fix.
            Err(failure) if failure.class == FailureClass::Permanent => {
                return Err(HttpFailure {
                    class: FailureClass::Fatal,
                    reason: format!("{} (the issue search was refused: check `project`)", failure.reason),
                    ..failure
                });
            }
            Err(failure) => return Err(failure),
        };
        let Ok(parsed) = serde_json::from_slice::<Value>(&reply.body) else {
            return Err(self.retryable(format!("{WHAT}: the issue search answered HTTP {} without JSON", reply.status)));
        };
        let Some(issue) = parsed["issues"].as_array().and_then(|issues| issues.first()) else {
            return Ok(None);
        };
        let (Some(id), Some(key)) = (id_text(&issue["id"]), issue["key"].as_str()) else {
            return Err(self.retryable(format!("{WHAT}: the issue search returned an issue without an id or key")));
        };
        self.known.insert(label, id);
        let fields = &issue["fields"];
        Ok(Some(Issue {
            key: key.to_string(),
            done: fields["status"]["statusCategory"]["key"].as_str() == Some("done"),
            created: fields["created"].as_str().map(str::to_string),
        }))
    }

    /// Creates the violation's issue, unless a create whose answer was lost may still be on its
    /// way into the search index.
    async fn create(&mut self, violation: &Violation, label: &str) -> Result<(), HttpFailure> {
        if let Some(at) = self.pending.get(label) {
            let waited = at.elapsed();
            if waited < self.settle {
                // Not a failure of Jira's: not counted by the circuit breaker.
                return Err(HttpFailure::retryable(format!(
                    "{WHAT}: an earlier create for this violation got no answer {:.1}s ago; waiting up to {:.1}s for \
                     Jira's search index to show it before creating again",
                    waited.as_secs_f64(),
                    self.settle.as_secs_f64()
                )));
            }
        }
        let body = request::create(violation, &self.config, label);
        let url = self.url(&["issue"]);
        match self.send(Method::POST, url, Some(&body)).await {
            Ok(reply) => {
                let created: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
                match (id_text(&created["id"]), created["key"].as_str()) {
                    (Some(id), Some(key)) => {
                        tracing::debug!(issue = key, label, "created a Jira issue");
                        self.known.insert(label, id);
                        self.pending.remove(label);
                    }
                    // Created, but the search cannot be reconciled with it: let it settle.
                    _ => {
                        self.pending.insert(label.to_string(), Instant::now());
                    }
                }
                Ok(())
            }
            Err(failure) => {
                // No answer, or a 5xx: Jira may have created the issue anyway.
                if failure.class == FailureClass::Retryable
                    && failure.status.is_none_or(|s| s.is_server_error())
                    && !self.settle.is_zero()
                {
                    self.pending.insert(label.to_string(), Instant::now());
                }
                Err(failure)
            }
        }
    }

    /// Posts a comment; an issue that vanished since the search is retryable.
    async fn comment(&mut self, issue: &Issue, body: Value) -> Result<(), HttpFailure> {
        let url = self.url(&["issue", &issue.key, "comment"]);
        let result = self.send(Method::POST, url, Some(&body)).await;
        self.gone_is_retryable(issue, result).map(drop)
    }

    /// Moves the issue through `done_transition` (found by transition or target status name).
    async fn transition_done(&mut self, issue: &Issue) -> Result<(), HttpFailure> {
        let url = self.url(&["issue", &issue.key, "transitions"]);
        let result = self.send(Method::GET, url.clone(), None).await;
        let reply = self.gone_is_retryable(issue, result)?;
        let parsed: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        let transitions = parsed["transitions"].as_array().cloned().unwrap_or_default();
        let wanted = self.config.done_transition.trim();
        let named = |field: &Value| field.as_str().is_some_and(|n| n.trim().eq_ignore_ascii_case(wanted));
        // A transition's own name first; else the status it leads to (simplified workflows name
        // transitions after their target, others do not).
        let chosen = transitions
            .iter()
            .find(|t| named(&t["name"]))
            .or_else(|| transitions.iter().find(|t| named(&t["to"]["name"])))
            .and_then(|t| id_text(&t["id"]));
        let Some(id) = chosen else {
            let names: Vec<&str> = transitions.iter().filter_map(|t| t["name"].as_str()).collect();
            // The workflow offers no such transition from the issue's status: this record cannot
            // be delivered as configured.
            return Err(HttpFailure {
                class: FailureClass::Permanent,
                status: None,
                reason: format!(
                    "{WHAT}: issue {} has no transition `{wanted}` from its status (available: {}); check \
                     `done_transition`",
                    issue.key,
                    if names.is_empty() { "none".to_string() } else { names.join(", ") }
                ),
                retry_after: None,
                body: Vec::new(),
            });
        };
        let result = self.send(Method::POST, url, Some(&json!({"transition": {"id": id}}))).await;
        self.gone_is_retryable(issue, result).map(drop)
    }

    /// A 404 for an issue the search just found means it was deleted or moved since: retryable,
    /// so the retry searches again.
    fn gone_is_retryable(&mut self, issue: &Issue, result: Result<Reply, HttpFailure>) -> Result<Reply, HttpFailure> {
        match result {
            Err(failure) if failure.status.is_some_and(|s| s.as_u16() == 404) => Err(self
                .retryable(format!("{WHAT}: issue {} was not found (deleted or moved since the search?)", issue.key))),
            other => other,
        }
    }
}

/// An id that Jira sends as a string (or, in some answers, a number).
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[async_trait]
impl Tracker for JiraSink {
    async fn apply(&mut self, violation: &Violation) -> Result<(), HttpFailure> {
        let label = key_label(violation, &self.config.label_prefix);
        let found = self.find(&label).await?;
        let Some(issue) = found else {
            if violation.status == ViolationStatus::Resolved {
                tracing::debug!(label, "no Jira issue to resolve");
                return Ok(());
            }
            // OPEN, or an UPDATED whose OPEN this sink never saw: the violation holds, so it
            // gets an issue.
            return self.create(violation, &label).await;
        };
        match violation.status {
            // Already done: a replay, or closed by hand.
            ViolationStatus::Resolved if issue.done => Ok(()),
            ViolationStatus::Resolved => {
                self.comment(&issue, request::resolved_comment(violation, &self.config)).await?;
                self.transition_done(&issue).await
            }
            // Already open: a retry after a lost answer, or a replay.
            ViolationStatus::Open if !issue.done => Ok(()),
            ViolationStatus::Updated if !issue.done => {
                self.comment(&issue, request::updated_comment(violation, &self.config)).await
            }
            // Done, and the issue already covered this episode (a replay, or closed by hand while
            // the violation held): leave it.
            _ if covered_by(violation, issue.created.as_deref()) => Ok(()),
            // A later episode of a violation whose issue is done: a new issue.
            _ => self.create(violation, &label).await,
        }
    }
}

#[async_trait]
impl Sink for JiraSink {
    crate::http::concurrent_by_cloning!();

    async fn deliver(&mut self, batch: &[StoredRecord]) -> Result<Vec<RecordFailure>, ComponentError> {
        deliver_each(self, batch).await
    }
}
