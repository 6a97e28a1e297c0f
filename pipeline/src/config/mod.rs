//! The pipeline config: one TOML file with `[log]`, `[server]`, `[sources.NAME]`,
//! `[operators.NAME]` and `[sinks.NAME]`.
//!
//! ```toml
//! [log]
//! fsync = "interval"
//!
//! [sources.okta]
//! type = "file"
//! path = "events.ndjson"
//!
//! [operators.events]
//! type = "normalize"
//! inputs = ["okta"]
//! ```
//!
//! A source writes to `raw.<name>`, any other component to the topic of its own name; `inputs`
//! name components (or `dlq`, the dead-letter topic). `${VAR}` in a string value is replaced by
//! the environment variable (`$${` writes a literal `${`). Parsing collects every error it finds,
//! each with the file, line and key, and never echoes an interpolated value.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::log::embedded::EmbeddedConfig;
use crate::log::fluvio::config::FLUVIO_ONLY_KEYS;
use crate::log::fluvio::FluvioConfig;
use crate::log::validate_topic_name;

/// The keys of the `[log]` table only the embedded backend takes (`retention_ms` and
/// `retention_bytes` are for both).
const EMBEDDED_ONLY_KEYS: &[&str] =
    &["fsync", "fsync_interval_ms", "segment_bytes", "segment_ms", "index_interval_bytes"];

/// The dead-letter topic every stage writes rejected input to.
pub const DLQ_TOPIC: &str = "dlq";

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The dotted key, e.g. `sources.okta.path`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// All the problems found in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "{}", lines.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

/// What kind of component a section declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// `[sources.NAME]`
    Source,
    /// `[operators.NAME]`
    Operator,
    /// `[sinks.NAME]`
    Sink,
}

impl Role {
    /// The section's name in the file.
    pub fn section(self) -> &'static str {
        match self {
            Role::Source => "sources",
            Role::Operator => "operators",
            Role::Sink => "sinks",
        }
    }
}

/// One component as declared.
#[derive(Clone, Debug, PartialEq)]
pub struct ComponentSpec {
    /// Its name (unique across all sections).
    pub name: String,
    /// Source, operator or sink.
    pub role: Role,
    /// Its `type`, e.g. `file`.
    pub type_name: String,
    /// The components (or `dlq`) it reads.
    pub inputs: Vec<String>,
    /// A sink's `route`: which records it delivers (path → value or list of values).
    pub route: Option<toml::Table>,
    /// Every other key, interpolated.
    pub options: toml::Table,
    /// Line of each key (options, `type`, `inputs`), for errors found when the component is built.
    pub option_lines: BTreeMap<String, usize>,
    /// Line of the section header.
    pub line: usize,
}

impl ComponentSpec {
    /// The topic the component writes to.
    pub fn output_topic(&self) -> Option<String> {
        match self.role {
            Role::Source => Some(format!("raw.{}", self.name)),
            Role::Operator => Some(self.name.clone()),
            Role::Sink => None,
        }
    }

    /// The dotted key of one of its options.
    pub fn key(&self, option: &str) -> String {
        if option.is_empty() {
            format!("{}.{}", self.role.section(), self.name)
        } else {
            format!("{}.{}.{option}", self.role.section(), self.name)
        }
    }
}

/// The `[log]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Partitions of topics the pipeline creates.
    pub partitions: u32,
    /// Settings of the embedded backend (the defaults when `backend = "fluvio"`).
    pub embedded: EmbeddedConfig,
    /// Settings of the Fluvio backend: set exactly when `backend = "fluvio"`.
    pub fluvio: Option<FluvioConfig>,
}

/// The `[server]` table: Weir's HTTP server, for sources that receive pushed events (their
/// `path`s) and for `/metrics` and `/health`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address to listen on, e.g. `127.0.0.1:8686`.
    pub listen: std::net::SocketAddr,
}

/// A parsed, checked pipeline config.
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineConfig {
    /// The file it came from.
    pub path: PathBuf,
    /// The `[log]` table.
    pub log: LogConfig,
    /// The `[server]` table, if any.
    pub server: Option<ServerConfig>,
    /// Every component, sources first, then operators, then sinks, each by name.
    pub components: Vec<ComponentSpec>,
    /// Values taken from the environment, so errors can hide them.
    pub secrets: Vec<String>,
}

impl PipelineConfig {
    /// The component of this name.
    pub fn component(&self, name: &str) -> Option<&ComponentSpec> {
        self.components.iter().find(|c| c.name == name)
    }

    /// The topic a named input reads: a component's output, an operator's side output
    /// (`operator.side`, the topic of that name), or `dlq`.
    pub fn input_topic(&self, input: &str) -> Option<String> {
        if input == DLQ_TOPIC {
            return Some(DLQ_TOPIC.to_string());
        }
        if let Some(component) = self.component(input) {
            return component.output_topic();
        }
        side_output_of(input, &self.components).map(|_| input.to_string())
    }

    /// The component that writes a named input (for a side output, its operator).
    pub fn writer_of(&self, input: &str) -> Option<&ComponentSpec> {
        self.component(input).or_else(|| side_output_of(input, &self.components))
    }

    /// Replaces every interpolated value in `text` with `***`.
    pub fn redact(&self, text: &str) -> String {
        redact(text, &self.secrets)
    }

    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<PipelineConfig, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: None,
                key: String::new(),
                message: format!("cannot read the file: {e}"),
            }])
        })?;
        Self::parse(path, &text, &|name| std::env::var(name).ok())
    }

    /// Parses and checks config text; `env` looks up variables for `${VAR}`.
    pub fn parse(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<PipelineConfig, ConfigErrors> {
        let mut parser = Parser { path, text, env, errors: Vec::new(), secrets: Vec::new() };
        let config = parser.parse();
        match config {
            Some(config) if parser.errors.is_empty() => Ok(config),
            _ => {
                let secrets = parser.secrets.clone();
                let mut errors = parser.errors;
                for e in &mut errors {
                    e.message = redact(&e.message, &secrets);
                }
                errors.sort_by_key(|e| e.line.unwrap_or(0));
                Err(ConfigErrors(errors))
            }
        }
    }
}

/// The operator whose side output `input` (`operator.side`) names, if it does.
fn side_output_of<'a>(input: &str, components: &'a [ComponentSpec]) -> Option<&'a ComponentSpec> {
    let (operator, side) = input.rsplit_once('.')?;
    if side.is_empty() {
        return None;
    }
    components.iter().find(|c| c.name == operator && c.role == Role::Operator)
}

/// Replaces every secret in `text` with `***`, longest first, so that a secret containing
/// another is never half-replaced.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut secrets: Vec<&String> = secrets.iter().filter(|s| s.len() >= 3).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.iter().fold(text.to_string(), |out, secret| out.replace(secret.as_str(), "***"))
}

type SpannedTable = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    log: Option<Spanned<SpannedTable>>,
    #[serde(default)]
    server: Option<Spanned<SpannedTable>>,
    #[serde(default)]
    sources: BTreeMap<Spanned<String>, Spanned<SpannedTable>>,
    #[serde(default)]
    operators: BTreeMap<Spanned<String>, Spanned<SpannedTable>>,
    #[serde(default)]
    sinks: BTreeMap<Spanned<String>, Spanned<SpannedTable>>,
}

struct Parser<'a> {
    path: &'a Path,
    text: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<ConfigError>,
    secrets: Vec<String>,
}

impl Parser<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())].bytes().filter(|&b| b == b'\n').count() + 1
    }

    fn error(&mut self, offset: Option<usize>, key: impl Into<String>, message: impl Into<String>) {
        let line = offset.map(|o| self.line_of(o));
        self.errors.push(ConfigError { file: self.path.to_path_buf(), line, key: key.into(), message: message.into() });
    }

    fn parse(&mut self) -> Option<PipelineConfig> {
        let document: Document = match toml::from_str(self.text) {
            Ok(document) => document,
            Err(e) => {
                let offset = e.span().map(|s| s.start);
                let message = e.message().trim().to_string();
                self.error(offset, "", message);
                return None;
            }
        };
        let log = self.log_section(document.log);
        let server = self.server_section(document.server);
        let mut components = Vec::new();
        for (role, section) in
            [(Role::Source, document.sources), (Role::Operator, document.operators), (Role::Sink, document.sinks)]
        {
            for (name, table) in section {
                if let Some(component) = self.component(role, name, table) {
                    components.push(component);
                }
            }
        }
        self.check_graph(&components);
        Some(PipelineConfig { path: self.path.to_path_buf(), log, server, components, secrets: self.secrets.clone() })
    }

    fn server_section(&mut self, section: Option<Spanned<SpannedTable>>) -> Option<ServerConfig> {
        let section = section?;
        let section_start = section.span().start;
        let mut listen = None;
        let mut listen_given = false;
        for (key, value) in section.into_inner() {
            let at = key.span().start;
            let key = key.into_inner();
            let value = self.interpolate(value, &format!("server.{key}"));
            match key.as_str() {
                "listen" => {
                    listen_given = true;
                    match value.as_str().map(str::parse::<std::net::SocketAddr>) {
                        Some(Ok(addr)) => listen = Some(addr),
                        _ => self.error(
                            Some(at),
                            "server.listen",
                            "must be an address with a port, e.g. \"127.0.0.1:8686\"",
                        ),
                    }
                }
                _ => self.error(Some(at), format!("server.{key}"), "unknown option (known: listen)"),
            }
        }
        if !listen_given {
            self.error(
                Some(section_start),
                "server.listen",
                "missing: the address to listen on, e.g. \"127.0.0.1:8686\"",
            );
        }
        listen.map(|listen| ServerConfig { listen })
    }

    fn log_section(&mut self, section: Option<Spanned<SpannedTable>>) -> LogConfig {
        let mut config = LogConfig { partitions: 1, embedded: EmbeddedConfig::default(), fluvio: None };
        let Some(section) = section else { return config };
        let section_start = section.span().start;
        let mut entries = Vec::new();
        for (key, value) in section.into_inner() {
            let at = key.span().start;
            let key = key.into_inner();
            let value = self.interpolate(value, &format!("log.{key}"));
            entries.push((key, at, value));
        }
        // The backend decides which other keys are allowed, wherever it appears in the table.
        let mut fluvio = false;
        if let Some((_, at, value)) = entries.iter().find(|(key, _, _)| key == "backend") {
            match value.as_str() {
                Some("embedded") => {}
                Some("fluvio") => fluvio = true,
                _ => self.error(Some(*at), "log.backend", "must be \"embedded\" or \"fluvio\""),
            }
        }
        let mut rest = toml::Table::new();
        let mut lines = BTreeMap::new();
        for (key, at, value) in entries {
            lines.insert(key.clone(), at);
            match key.as_str() {
                "backend" => {}
                "partitions" => match value.as_integer() {
                    Some(n) if (1..=1024).contains(&n) => config.partitions = n as u32,
                    _ => self.error(Some(at), "log.partitions", "must be an integer from 1 to 1024"),
                },
                _ if !fluvio && FLUVIO_ONLY_KEYS.contains(&key.as_str()) => self.error(
                    Some(at),
                    format!("log.{key}"),
                    "only for backend = \"fluvio\" (this log is embedded; set `backend = \"fluvio\"` to use a cluster)",
                ),
                _ if fluvio && EMBEDDED_ONLY_KEYS.contains(&key.as_str()) => self.error(
                    Some(at),
                    format!("log.{key}"),
                    "only for the embedded backend (Fluvio SPUs keep their own storage settings)",
                ),
                _ => {
                    rest.insert(key, value);
                }
            }
        }
        let at_key = |path: &Option<String>| {
            path.as_deref().and_then(|p| lines.get(top_key(p))).copied().or(Some(section_start))
        };
        if fluvio {
            match serde_path_to_error::deserialize::<_, FluvioConfig>(toml::Value::Table(rest)) {
                Ok(fluvio) => {
                    if let Err((key, message)) = fluvio.validate() {
                        self.error(lines.get(key).copied().or(Some(section_start)), format!("log.{key}"), message);
                    }
                    config.fluvio = Some(fluvio);
                }
                Err(e) => {
                    let path = error_path(&e);
                    let mut message = first_line(e.inner());
                    if path.as_deref() == Some("endpoint") && message.starts_with("missing field") {
                        message = "missing: the address of the Fluvio SC, e.g. \"127.0.0.1:9003\"".into();
                    }
                    self.error(
                        at_key(&path),
                        format!("log{}", path.map(|k| format!(".{k}")).unwrap_or_default()),
                        message,
                    );
                }
            }
            return config;
        }
        match serde_path_to_error::deserialize::<_, EmbeddedConfig>(toml::Value::Table(rest)) {
            Ok(embedded) => {
                if let Err((key, message)) = embedded.validate() {
                    let at = lines.get(key).copied();
                    self.error(at, format!("log.{key}"), message);
                }
                config.embedded = embedded;
            }
            Err(e) => {
                let path = error_path(&e);
                self.error(
                    at_key(&path),
                    format!("log{}", path.map(|k| format!(".{k}")).unwrap_or_default()),
                    first_line(e.inner()),
                );
            }
        }
        config
    }

    fn component(&mut self, role: Role, name: Spanned<String>, table: Spanned<SpannedTable>) -> Option<ComponentSpec> {
        let header = name.span().start;
        let name = name.into_inner();
        let prefix = format!("{}.{name}", role.section());
        if let Err(e) = validate_topic_name(&name) {
            self.error(Some(header), prefix.clone(), format!("not a valid component name: {e}"));
        } else if name == DLQ_TOPIC || name.starts_with("raw.") {
            self.error(Some(header), prefix.clone(), "`dlq` and names starting with `raw.` are reserved for topics");
        }
        let mut type_name = None;
        let mut inputs = Vec::new();
        let mut route = None;
        let mut options = toml::Table::new();
        let mut option_lines = BTreeMap::new();
        for (key, value) in table.into_inner() {
            let at = key.span().start;
            let key = key.into_inner();
            option_lines.insert(key.clone(), self.line_of(at));
            let value = self.interpolate(value, &format!("{prefix}.{key}"));
            match key.as_str() {
                "type" => match value {
                    toml::Value::String(t) => type_name = Some(t),
                    _ => self.error(Some(at), format!("{prefix}.type"), "must be a string"),
                },
                "route" if role == Role::Sink => match value {
                    toml::Value::Table(table) => route = Some(table),
                    _ => self.error(Some(at), format!("{prefix}.route"), "must be a table of field paths to values"),
                },
                "inputs" => match value
                    .as_array()
                    .map(|a| a.iter().map(|v| v.as_str().map(String::from)).collect::<Option<Vec<_>>>())
                {
                    Some(Some(list)) => inputs = list,
                    _ => self.error(Some(at), format!("{prefix}.inputs"), "must be a list of component names"),
                },
                _ => {
                    options.insert(key, value);
                }
            }
        }
        let Some(type_name) = type_name else {
            self.error(Some(header), format!("{prefix}.type"), "missing: every component needs a `type`");
            return None;
        };
        let line = self.line_of(header);
        match (role, inputs.is_empty()) {
            (Role::Source, false) => self.error(Some(header), format!("{prefix}.inputs"), "a source has no inputs"),
            (Role::Operator | Role::Sink, true) => {
                self.error(Some(header), format!("{prefix}.inputs"), "missing: list the components it reads")
            }
            _ => {}
        }
        Some(ComponentSpec { name, role, type_name, inputs, route, options, option_lines, line })
    }

    fn check_graph(&mut self, components: &[ComponentSpec]) {
        let mut seen = BTreeMap::new();
        for c in components {
            if let Some(first) = seen.insert(c.name.as_str(), c) {
                let message = format!(
                    "the name is already used by {}.{} (line {})",
                    first.role.section(),
                    first.name,
                    first.line
                );
                self.errors.push(ConfigError {
                    file: self.path.to_path_buf(),
                    line: Some(c.line),
                    key: c.key(""),
                    message,
                });
            }
        }
        for c in components {
            let mut listed = BTreeSet::new();
            for input in &c.inputs {
                let problem = match seen.get(input.as_str()) {
                    _ if !listed.insert(input.as_str()) => Some(format!("`{input}` is listed twice")),
                    _ if input == DLQ_TOPIC && c.role == Role::Operator => Some(
                        "an operator cannot read `dlq`: what it rejected would go back into `dlq`; read it with a sink"
                            .to_string(),
                    ),
                    _ if input == DLQ_TOPIC => None,
                    None if side_output_of(input, components).is_some() => None,
                    None => Some(format!("`{input}` is not a component of this pipeline")),
                    Some(target) if target.role == Role::Sink => {
                        Some(format!("`{input}` is a sink; sinks have no output"))
                    }
                    Some(_) if input == &c.name => Some("a component cannot read its own output".to_string()),
                    Some(_) => None,
                };
                if let Some(message) = problem {
                    self.errors.push(ConfigError {
                        file: self.path.to_path_buf(),
                        line: Some(c.line),
                        key: c.key("inputs"),
                        message,
                    });
                }
            }
        }
        // Cycles among operators would never drain.
        let mut visiting = BTreeSet::new();
        let mut done = BTreeSet::new();
        for c in components.iter().filter(|c| c.role == Role::Operator) {
            if let Some(cycle) = find_cycle(c, &seen, &mut visiting, &mut done) {
                self.errors.push(ConfigError {
                    file: self.path.to_path_buf(),
                    line: Some(c.line),
                    key: c.key("inputs"),
                    message: format!("operators form a cycle: {}", cycle.join(" -> ")),
                });
                break;
            }
        }
    }

    /// Replaces `${VAR}` in every string of `value`.
    fn interpolate(&mut self, value: Spanned<toml::Value>, key: &str) -> toml::Value {
        let at = value.span().start;
        let value = value.into_inner();
        self.interpolate_value(value, key, at)
    }

    fn interpolate_value(&mut self, value: toml::Value, key: &str, at: usize) -> toml::Value {
        match value {
            toml::Value::String(s) => toml::Value::String(self.interpolate_str(&s, key, at)),
            toml::Value::Array(items) => {
                toml::Value::Array(items.into_iter().map(|v| self.interpolate_value(v, key, at)).collect())
            }
            toml::Value::Table(table) => toml::Value::Table(
                table
                    .into_iter()
                    .map(|(k, v)| {
                        let v = self.interpolate_value(v, &format!("{key}.{k}"), at);
                        (k, v)
                    })
                    .collect(),
            ),
            other => other,
        }
    }

    fn interpolate_str(&mut self, s: &str, key: &str, at: usize) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i..];
            if let Some(stripped) = after.strip_prefix("$${") {
                out.push_str("${");
                rest = stripped;
            } else if let Some(body) = after.strip_prefix("${") {
                let Some(end) = body.find('}') else {
                    self.error(Some(at), key, "`${` without a closing `}`");
                    return out;
                };
                let name = &body[..end];
                let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                match (valid, (self.env)(name)) {
                    (false, _) => self.error(
                        Some(at),
                        key,
                        format!("`${{{name}}}` is not a valid environment variable reference"),
                    ),
                    (true, Some(v)) => {
                        out.push_str(&v);
                        self.secrets.push(v);
                    }
                    (true, None) => self.error(Some(at), key, format!("environment variable `{name}` is not set")),
                }
                rest = &body[end + 1..];
            } else {
                out.push('$');
                rest = &after[1..];
            }
        }
        out.push_str(rest);
        out
    }
}

fn find_cycle<'a>(
    c: &'a ComponentSpec,
    by_name: &BTreeMap<&'a str, &'a ComponentSpec>,
    visiting: &mut BTreeSet<&'a str>,
    done: &mut BTreeSet<&'a str>,
) -> Option<Vec<String>> {
    if done.contains(c.name.as_str()) {
        return None;
    }
    if !visiting.insert(c.name.as_str()) {
        return Some(vec![c.name.clone()]);
    }
    for input in &c.inputs {
        if let Some(next) = by_name.get(input.as_str()).filter(|n| n.role == Role::Operator) {
            if let Some(mut cycle) = find_cycle(next, by_name, visiting, done) {
                cycle.insert(0, c.name.clone());
                return Some(cycle);
            }
        }
    }
    visiting.remove(c.name.as_str());
    done.insert(c.name.as_str());
    None
}

/// The dotted path of the field a deserialization error is about, if any. serde reports a
/// missing field at the struct that lacks it, so its name is taken from the message.
pub fn error_path<E: fmt::Display>(e: &serde_path_to_error::Error<E>) -> Option<String> {
    let path = e.path().to_string();
    let path = (!path.is_empty() && path != ".").then_some(path);
    let message = e.inner().to_string();
    let missing = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next());
    match (path, missing) {
        (Some(path), Some(field)) => Some(format!("{path}.{field}")),
        (None, Some(field)) => Some(field.to_string()),
        (path, None) => path,
    }
}

/// The first line of an error message (toml appends the key on later lines; we name it ourselves).
pub fn first_line(e: &impl fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().trim().to_string()
}

/// The first segment of a dotted path: the option's own key.
pub fn top_key(path: &str) -> &str {
    path.split(['.', '[']).next().unwrap_or_default()
}

#[cfg(test)]
mod tests;
