//! The `servicenow` sink itself.

use async_trait::async_trait;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde_json::Value;
use weir_schemas::component::{ComponentError, RecordFailure, Sink};
use weir_schemas::events::{Violation, ViolationStatus};
use weir_schemas::StoredRecord;

use super::request::{self, correlation_id};
use super::ServiceNowConfig;
use crate::http::{HttpDelivery, HttpFailure, InvalidConfig, Reply, Secret};
use crate::ticketing::{basic_auth_secrets, covered_by, deliver_each, explain_refusal, Tracker};

/// What names the destination in reasons.
const WHAT: &str = "ServiceNow";

/// Keeps one ServiceNow incident per violation key (`correlation_id`) through the Table API.
#[derive(Clone)]
pub struct ServiceNowSink {
    config: ServiceNowConfig,
    /// `<endpoint>/api/now/table/incident`.
    table: Url,
    delivery: HttpDelivery,
    /// Scrubbed from the reasons this sink writes itself (the delivery scrubs its own).
    secrets: Vec<Secret>,
}

impl std::fmt::Debug for ServiceNowSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceNowSink").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The newest incident under a correlation id, as the lookup returned it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Incident {
    sys_id: String,
    number: String,
    state: String,
    created: Option<String>,
}

impl ServiceNowSink {
    /// A sink for `config`; checks the options (no request is made).
    pub fn new(config: ServiceNowConfig) -> Result<Self, InvalidConfig> {
        if config.username.trim().is_empty() {
            return Err(InvalidConfig::new("username", "must not be empty"));
        }
        if config.password.expose().is_empty() {
            return Err(InvalidConfig::new("password", "must not be empty"));
        }
        for (key, value) in [
            ("resolved_state", &config.resolved_state),
            ("reopen_state", &config.reopen_state),
            ("close_code", &config.close_code),
        ] {
            if value.trim().is_empty() {
                return Err(InvalidConfig::new(key, "must not be empty"));
            }
        }
        for (option, map) in [("urgency", &config.urgency), ("impact", &config.impact)] {
            for (level, value) in map.entries() {
                if value.is_some_and(|v| v.trim().is_empty()) {
                    return Err(InvalidConfig::new(format!("{option}.{level}"), "must not be empty"));
                }
            }
        }
        let base =
            Url::parse(&config.endpoint).map_err(|e| InvalidConfig::new("endpoint", format!("not a URL: {e}")))?;
        if base.scheme() != "http" && base.scheme() != "https" {
            return Err(InvalidConfig::new("endpoint", "must be an http:// or https:// URL"));
        }
        if base.query().is_some() {
            return Err(InvalidConfig::new("endpoint", "must not have a query (give the instance URL)"));
        }
        let table = Url::parse(&format!("{}/api/now/table/incident", config.endpoint.trim_end_matches('/')))
            .map_err(|e| InvalidConfig::new("endpoint", format!("not a URL: {e}")))?;
        let secrets = basic_auth_secrets(&config.username, &config.password);
        let delivery = HttpDelivery::new(WHAT, &config.request, secrets.clone())?;
        Ok(ServiceNowSink { config, table, delivery, secrets })
    }

    /// Sends an authenticated request; a 401/403 becomes a fatal error naming the options.
    async fn send(&mut self, method: Method, url: Url, body: Option<&Value>) -> Result<Reply, HttpFailure> {
        let mut request = self
            .delivery
            .client()
            .request(method, url)
            .basic_auth(&self.config.username, Some(self.config.password.expose()))
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body.to_string());
        }
        self.delivery
            .send(request)
            .await
            .map_err(|failure| explain_refusal(failure, WHAT, "`username` and `password`", &self.secrets))
    }

    /// The newest incident whose `correlation_id` is `correlation_id`, active or not: a lost
    /// 201 followed by a retry must find the incident the first attempt created, and a replay
    /// must find the incident even after it was resolved.
    async fn lookup(&mut self, correlation_id: &str) -> Result<Option<Incident>, HttpFailure> {
        let mut url = self.table.clone();
        url.query_pairs_mut()
            .append_pair("sysparm_query", &format!("correlation_id={correlation_id}^ORDERBYDESCsys_created_on"))
            .append_pair("sysparm_fields", "sys_id,number,state,sys_created_on")
            .append_pair("sysparm_limit", "1");
        let reply = self.send(Method::GET, url, None).await?;
        let parsed: Value = serde_json::from_slice(&reply.body).map_err(|_| {
            // A hibernating developer instance answers 200 with an HTML page.
            let failure = HttpFailure::retryable(format!(
                "{WHAT}: the incident lookup answered HTTP {} without JSON (is the instance awake and `endpoint` \
                 right?)",
                reply.status
            ));
            self.delivery.note(&failure);
            failure
        })?;
        let Some(first) = parsed["result"].as_array().and_then(|r| r.first()) else {
            return Ok(None);
        };
        let text = |field: &str| match &first[field] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        let sys_id = text("sys_id");
        if sys_id.is_empty() {
            let failure =
                HttpFailure::retryable(format!("{WHAT}: the incident lookup returned a record without a sys_id"));
            self.delivery.note(&failure);
            return Err(failure);
        }
        let created = Some(text("sys_created_on")).filter(|c| !c.is_empty());
        Ok(Some(Incident { sys_id, number: text("number"), state: text("state"), created }))
    }

    async fn create(&mut self, violation: &Violation) -> Result<(), HttpFailure> {
        let body = request::create(violation, &self.config);
        let reply = self.send(Method::POST, self.table.clone(), Some(&body)).await?;
        let created: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        tracing::debug!(
            number = created["result"]["number"].as_str().unwrap_or(""),
            correlation_id = %correlation_id(violation),
            "created a ServiceNow incident"
        );
        Ok(())
    }

    async fn patch(&mut self, incident: &Incident, body: Value) -> Result<(), HttpFailure> {
        let mut url = self.table.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.push(&incident.sys_id);
        }
        match self.send(Method::PATCH, url, Some(&body)).await {
            Ok(_) => Ok(()),
            Err(failure) if failure.status.is_some_and(|s| s.as_u16() == 404) => {
                // Deleted between the lookup and the change: the retry looks it up again.
                let failure = HttpFailure::retryable(format!(
                    "{WHAT}: incident {} ({}) was not found when changing it (deleted since the lookup?)",
                    incident.number, incident.sys_id
                ));
                self.delivery.note(&failure);
                Err(failure)
            }
            Err(failure) => Err(failure),
        }
    }

    fn is_closed(&self, incident: &Incident) -> bool {
        self.config.closed_states.iter().any(|s| s == &incident.state)
    }
}

#[async_trait]
impl Tracker for ServiceNowSink {
    async fn apply(&mut self, violation: &Violation) -> Result<(), HttpFailure> {
        let found = self.lookup(&correlation_id(violation)).await?;
        let Some(incident) = found else {
            if violation.status == ViolationStatus::Resolved {
                tracing::debug!(key = %violation.violation_key, "no ServiceNow incident to resolve");
                return Ok(());
            }
            // OPEN, or an UPDATED whose OPEN this sink never saw: the violation holds, so it
            // gets an incident.
            return self.create(violation).await;
        };
        let resolved = incident.state == self.config.resolved_state;
        let inactive = resolved || self.is_closed(&incident);
        match violation.status {
            // Already resolved or closed: a replay, or resolved by hand. Closed incidents are
            // read-only, so not touching them also avoids an ACL refusal.
            ViolationStatus::Resolved if inactive => Ok(()),
            ViolationStatus::Resolved => self.patch(&incident, request::resolve(violation, &self.config)).await,
            _ if !inactive => self.patch(&incident, request::update(violation, &self.config)).await,
            // The incident already covered this episode (a replay, or someone resolved it by hand
            // while the violation still held): leave it as it is.
            _ if covered_by(violation, incident.created.as_deref()) => Ok(()),
            _ if resolved => self.patch(&incident, request::reopen(violation, &self.config)).await,
            // Closed or canceled incidents cannot change: a new episode gets a new incident.
            _ => self.create(violation).await,
        }
    }
}

#[async_trait]
impl Sink for ServiceNowSink {
    crate::http::concurrent_by_cloning!();

    async fn deliver(&mut self, batch: &[StoredRecord]) -> Result<Vec<RecordFailure>, ComponentError> {
        deliver_each(self, batch).await
    }
}
