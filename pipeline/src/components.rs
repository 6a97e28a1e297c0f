//! The catalogue of component types: what `type = "..."` in a pipeline config builds.
//!
//! Each component crate defines its config struct (serde, unknown keys refused) and its
//! component; this is the one place that maps type names to them, and that turns a bad option
//! into an error with the file, line and key.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use weir_connectors::aws_cloudtrail::{CloudTrailSource, EventBridgeSource};
use weir_connectors::azure_activity::AzureActivitySource;
use weir_connectors::crowdstrike::{CrowdStrikeAlertsSource, CrowdStrikeHostsSource};
use weir_connectors::file::{FileSource, FileSourceConfig};
use weir_connectors::gcp_audit::GcpAuditSource;
use weir_connectors::netskope::NetskopeSource;
use weir_connectors::okta::{OktaDirectorySource, OktaEventHookSource, OktaSystemLogSource};
use weir_connectors::InvalidOption;
use weir_operators::aggregate::{Aggregate, Filter, FilterValue};
use weir_operators::dedupe::Dedupe;
use weir_operators::enrich::Enrich;
use weir_operators::normalize::Normalize;
use weir_operators::policy::Policy;
use weir_sinks::chat::pagerduty::PagerDutySink;
use weir_sinks::chat::slack::SlackSink;
use weir_sinks::chat::teams::TeamsSink;
use weir_sinks::console::{ConsoleSink, ConsoleSinkConfig};
use weir_sinks::file::{FileSink, FileSinkConfig};
use weir_sinks::siem::sentinel::SentinelSink;
use weir_sinks::siem::splunk_hec::SplunkHecSink;
use weir_sinks::ticketing::jira::JiraSink;
use weir_sinks::ticketing::servicenow::ServiceNowSink;
use weir_sinks::webhook::WebhookSink;

use crate::config::{error_path, first_line, top_key, ComponentSpec, ConfigError, ConfigErrors, PipelineConfig, Role};
use crate::runner::Component;

/// Source types.
pub const SOURCE_TYPES: &[&str] = &[
    "file",
    "okta",
    "okta_directory",
    "okta_event_hook",
    "netskope",
    "crowdstrike_alerts",
    "crowdstrike_hosts",
    "aws_cloudtrail",
    "aws_eventbridge",
    "azure_activity",
    "gcp_audit",
];
/// Operator types.
pub const OPERATOR_TYPES: &[&str] = &["normalize", "enrich", "policy", "aggregate", "dedupe"];
/// Sink types.
pub const SINK_TYPES: &[&str] =
    &["console", "file", "splunk_hec", "sentinel", "webhook", "pagerduty", "slack", "teams", "servicenow", "jira"];

/// Builds every component of a pipeline, collecting every error.
pub fn build_all(config: &PipelineConfig) -> Result<BTreeMap<String, Component>, ConfigErrors> {
    let mut built = BTreeMap::new();
    let mut errors = Vec::new();
    for spec in &config.components {
        match build(spec, config) {
            Ok(component) => {
                built.insert(spec.name.clone(), component);
            }
            Err(e) => errors.push(e),
        }
        if let Err(e) = route_filter(spec, config) {
            errors.push(e);
        }
    }
    // Two push sources cannot share a path on the one server.
    let mut paths: BTreeMap<&str, &str> = BTreeMap::new();
    for spec in &config.components {
        if let Some(Component::PushSource(_, endpoint)) = built.get(&spec.name) {
            if let Some(first) = paths.insert(endpoint.path.as_str(), spec.name.as_str()) {
                let message = format!("`{}` is already the path of source `{first}`", endpoint.path);
                errors.push(error(spec, config, "path", message));
            }
        }
    }
    if errors.is_empty() {
        Ok(built)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Builds one component.
pub fn build(spec: &ComponentSpec, config: &PipelineConfig) -> Result<Component, ConfigError> {
    let name = spec.name.clone();
    Ok(match (spec.role, spec.type_name.as_str()) {
        (Role::Source, "file") => {
            let options: FileSourceConfig = options(spec, config)?;
            if options.batch_lines == 0 {
                return Err(error(spec, config, "batch_lines", "must be at least 1".into()));
            }
            Component::Source(Box::new(FileSource::new(name, options)))
        }
        (Role::Source, "okta") => source(OktaSystemLogSource::new(&name, options(spec, config)?), spec, config)?,
        (Role::Source, "okta_directory") => {
            source(OktaDirectorySource::new(&name, options(spec, config)?), spec, config)?
        }
        (Role::Source, "okta_event_hook") => {
            let hook = OktaEventHookSource::new(&name, options(spec, config)?).map_err(|e| invalid(spec, config, e))?;
            push_source(spec, config, hook.path().to_string(), hook.router(), Box::new(hook))?
        }
        (Role::Source, "netskope") => source(NetskopeSource::new(&name, options(spec, config)?), spec, config)?,
        (Role::Source, "crowdstrike_alerts") => {
            source(CrowdStrikeAlertsSource::new(&name, options(spec, config)?), spec, config)?
        }
        (Role::Source, "crowdstrike_hosts") => {
            source(CrowdStrikeHostsSource::new(&name, options(spec, config)?), spec, config)?
        }
        (Role::Source, "aws_cloudtrail") => source(CloudTrailSource::new(&name, options(spec, config)?), spec, config)?,
        (Role::Source, "aws_eventbridge") => {
            let hook = EventBridgeSource::new(&name, options(spec, config)?).map_err(|e| invalid(spec, config, e))?;
            push_source(spec, config, hook.path().to_string(), hook.router(), Box::new(hook))?
        }
        (Role::Source, "azure_activity") => {
            source(AzureActivitySource::new(&name, options(spec, config)?), spec, config)?
        }
        (Role::Source, "gcp_audit") => source(GcpAuditSource::new(&name, options(spec, config)?), spec, config)?,
        (Role::Operator, "normalize") => {
            let normalize =
                Normalize::new(options(spec, config)?).map_err(|e| error(spec, config, "", e.to_string()))?;
            Component::Operator(Box::new(normalize))
        }
        (Role::Operator, "enrich") => {
            let enrich = Enrich::new(options(spec, config)?).map_err(|e| error(spec, config, "", e.to_string()))?;
            Component::Operator(Box::new(enrich))
        }
        (Role::Operator, "policy") => {
            let policy =
                Policy::new(options(spec, config)?).map_err(|e| error(spec, config, "policies", e.to_string()))?;
            Component::Operator(Box::new(policy))
        }
        (Role::Operator, "aggregate") => {
            let aggregate =
                Aggregate::new(&name, &options(spec, config)?).map_err(|e| error(spec, config, "", e.to_string()))?;
            Component::Operator(Box::new(aggregate))
        }
        (Role::Operator, "dedupe") => {
            let dedupe = Dedupe::new(&options(spec, config)?).map_err(|e| error(spec, config, "", e.to_string()))?;
            Component::Operator(Box::new(dedupe))
        }
        (Role::Sink, "console") => {
            Component::Sink(Box::new(ConsoleSink::new(options::<ConsoleSinkConfig>(spec, config)?)))
        }
        (Role::Sink, "splunk_hec") => {
            let sink =
                SplunkHecSink::new(options(spec, config)?).map_err(|e| error(spec, config, &e.key, e.message))?;
            Component::Sink(Box::new(sink))
        }
        (Role::Sink, "webhook") => {
            let sink = WebhookSink::new(options(spec, config)?).map_err(|e| error(spec, config, &e.key, e.message))?;
            Component::Sink(Box::new(sink))
        }
        (Role::Sink, "pagerduty") => {
            let sink =
                PagerDutySink::new(options(spec, config)?).map_err(|e| error(spec, config, &e.key, e.message))?;
            Component::Sink(Box::new(sink))
        }
        (Role::Sink, "slack") => {
            let sink = SlackSink::new(options(spec, config)?).map_err(|e| error(spec, config, &e.key, e.message))?;
            Component::Sink(Box::new(sink))
        }
        (Role::Sink, "sentinel") => {
            let sink = SentinelSink::new(options(spec, config)?).map_err(|e| error(spec, config, &e.key, e.message))?;
            Component::Sink(Box::new(sink))
        }
        (Role::Sink, "teams") => {
            let sink = TeamsSink::new(options(spec, config)?).map_err(|e| error(spec, config, &e.key, e.message))?;
            Component::Sink(Box::new(sink))
        }
        (Role::Sink, "servicenow") => {
            let sink =
                ServiceNowSink::new(options(spec, config)?).map_err(|e| error(spec, config, &e.key, e.message))?;
            Component::Sink(Box::new(sink))
        }
        (Role::Sink, "jira") => {
            let sink = JiraSink::new(options(spec, config)?).map_err(|e| error(spec, config, &e.key, e.message))?;
            Component::Sink(Box::new(sink))
        }
        (Role::Sink, "file") => Component::Sink(Box::new(FileSink::new(options::<FileSinkConfig>(spec, config)?))),
        (role, other) => {
            let known = match role {
                Role::Source => SOURCE_TYPES,
                Role::Operator => OPERATOR_TYPES,
                Role::Sink => SINK_TYPES,
            };
            return Err(error(
                spec,
                config,
                "type",
                format!("unknown {} type `{other}`; known: {}", role.section().trim_end_matches('s'), known.join(", ")),
            ));
        }
    })
}

/// A connector's config error, at the option it names.
fn invalid(spec: &ComponentSpec, config: &PipelineConfig, e: InvalidOption) -> ConfigError {
    error(spec, config, e.option, e.reason)
}

/// A polling source, or its config error at the option it names.
fn source<S: weir_schemas::component::Source + 'static>(
    built: Result<S, InvalidOption>,
    spec: &ComponentSpec,
    config: &PipelineConfig,
) -> Result<Component, ConfigError> {
    built.map(|s| Component::Source(Box::new(s))).map_err(|e| invalid(spec, config, e))
}

/// A source that receives on Weir's HTTP server: needs a `[server]` table and a path of its own.
fn push_source(
    spec: &ComponentSpec,
    config: &PipelineConfig,
    path: String,
    router: axum::Router,
    source: Box<dyn weir_schemas::component::Source>,
) -> Result<Component, ConfigError> {
    if config.server.is_none() {
        return Err(error(
            spec,
            config,
            "path",
            "this source receives pushed events: add a [server] table with `listen = \"127.0.0.1:8686\"`".into(),
        ));
    }
    if !path.starts_with('/') || path == "/" || path == "/metrics" || path == "/health" {
        return Err(error(
            spec,
            config,
            "path",
            format!("`{path}` cannot be used: a path starts with `/` and is not `/`, `/metrics` or `/health`"),
        ));
    }
    let endpoint = crate::server::Endpoint { source: spec.name.clone(), path, router };
    Ok(Component::PushSource(source, endpoint))
}

/// A sink's `route`, checked: `route = { "labels.team" = "identity", severity_id = [4, 5] }` delivers
/// only the records whose decoded value matches every clause (the others are skipped).
pub fn route_filter(spec: &ComponentSpec, config: &PipelineConfig) -> Result<Option<Filter>, ConfigError> {
    let Some(route) = &spec.route else { return Ok(None) };
    let clauses: BTreeMap<String, FilterValue> = serde_path_to_error::deserialize(toml::Value::Table(route.clone()))
        .map_err(|e| {
            let path = error_path(&e).map_or("route".to_string(), |p| format!("route.{p}"));
            error(spec, config, &path, first_line(e.inner()))
        })?;
    Filter::compile("route", &clauses).map(Some).map_err(|e| error(spec, config, "route", e.to_string()))
}

/// Deserializes a component's options, naming the key and line of what is wrong.
fn options<T: DeserializeOwned>(spec: &ComponentSpec, config: &PipelineConfig) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Value::Table(spec.options.clone())).map_err(|e| {
        let path = error_path(&e).unwrap_or_default();
        error(spec, config, &path, first_line(e.inner()))
    })
}

fn error(spec: &ComponentSpec, config: &PipelineConfig, option: &str, message: String) -> ConfigError {
    let line = spec.option_lines.get(top_key(option)).copied().unwrap_or(spec.line);
    ConfigError { file: config.path.clone(), line: Some(line), key: spec.key(option), message: config.redact(&message) }
}
