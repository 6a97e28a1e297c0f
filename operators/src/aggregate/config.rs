//! The `[operators.NAME]` options of a `type = "aggregate"` operator, and their validation into
//! the [`Plan`] the operator runs.
//!
//! ```toml
//! [operators.denials]
//! type = "aggregate"
//! inputs = ["decisions"]
//! window = { kind = "tumbling", size_ms = 900000 }     # or hopping (slide_ms) or session (gap_ms)
//! key = "labels.user"                                 # dotted path; unset: one global group
//! filter = { decision = "DENY" }                        # path = value, or path = [any, of, these]
//! metrics = [{ kind = "count" }, { kind = "top_k", field = "labels.service", k = 5 }]
//! out_of_orderness_ms = 5000
//! allowed_lateness_ms = 60000
//! threshold = { metric = "count", above = 5, rule_id = "too-many-denials", severity = "high" }
//! ```
//!
//! A preset fills in the window and the metrics: `preset = "daily_digest"` (see
//! [`Preset::DailyDigest`]).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use weir_schemas::events::{ocsf, WindowKind};

use super::path::{FieldPath, PathError};

/// Longest window, slide, gap, lateness or out-of-orderness accepted: 2^45 ms (about 1,100
/// years), so that window arithmetic on accepted event times never overflows.
pub const MAX_SPAN_MS: u64 = 1 << 45;

/// One day in milliseconds: the daily digest's window.
pub const DAY_MS: u64 = 86_400_000;

/// The options of a `type = "aggregate"` operator.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateConfig {
    /// A ready-made aggregation; fills in `window` (unless given) and `metrics` (which must not be
    /// given).
    #[serde(default)]
    pub preset: Option<Preset>,
    /// How windows are cut. Required unless a preset gives it.
    #[serde(default)]
    pub window: Option<WindowConfig>,
    /// Path of the group key (e.g. `labels.user`); unset: one global group (key `""`).
    #[serde(default)]
    pub key: Option<String>,
    /// What to do with an event whose key path is missing.
    #[serde(default)]
    pub missing_key: MissingKey,
    /// What to compute per window and key. Required unless a preset gives them.
    #[serde(default)]
    pub metrics: Option<Vec<MetricConfig>>,
    /// Only events matching every clause are aggregated (the others still move event time on).
    #[serde(default)]
    pub filter: BTreeMap<String, FilterValue>,
    /// Path of the event time (integer ms since the epoch, or RFC 3339); unset: the record's
    /// timestamp.
    #[serde(default)]
    pub time_field: Option<String>,
    /// How far behind the latest event time the watermark trails.
    #[serde(default)]
    pub out_of_orderness_ms: u64,
    /// How long after its end a fired window still takes late events (and fires again).
    #[serde(default)]
    pub allowed_lateness_ms: u64,
    /// Emit a violation on the `alerts` side output when a window's metric exceeds a value.
    #[serde(default)]
    pub threshold: Option<ThresholdConfig>,
    /// Path of the event id an alert names as its `event_uid` (the latest event of the window);
    /// default `event_uid`.
    #[serde(default)]
    pub uid_field: Option<String>,
    /// `daily_digest` only: path of the service counted in `top.services`; default
    /// `labels.service`.
    #[serde(default)]
    pub services_field: Option<String>,
    /// `daily_digest` only: length of the `top.services` and `top.violators` lists; default 10.
    #[serde(default)]
    pub top_k: Option<usize>,
}

/// A ready-made aggregation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Over `PolicyDecision`s, per UTC day (tumbling, 1 day, unless `window` says otherwise):
    /// `total` (count), `decisions.ALLOW`, `decisions.DENY`, `decisions.REVIEW` (counts of each
    /// verdict, in the records' `count`), `top.services` (top-k of `services_field`) and
    /// `top.violators` (top-k of `violations[].subject`).
    DailyDigest,
}

/// How windows are cut (`window = { kind = ..., ... }`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WindowConfig {
    /// Fixed-size, non-overlapping windows `[start, start + size_ms)`, aligned to the epoch plus
    /// `offset_ms`.
    Tumbling {
        /// Window length.
        size_ms: u64,
        /// Shift of the window boundaries from the epoch (less than `size_ms`).
        #[serde(default)]
        offset_ms: u64,
    },
    /// Fixed-size windows starting every `slide_ms`; an event is in `size_ms / slide_ms` of them.
    Hopping {
        /// Window length.
        size_ms: u64,
        /// Distance between window starts (at most `size_ms`).
        slide_ms: u64,
        /// Shift of the window boundaries from the epoch (less than `slide_ms`).
        #[serde(default)]
        offset_ms: u64,
    },
    /// Per key, events closer than `gap_ms` to each other form one window
    /// `[first event, last event + gap_ms)`.
    Session {
        /// Inactivity that closes a session.
        gap_ms: u64,
    },
}

/// What to do with an event whose key path is missing (or null).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingKey {
    /// Leave it out of the aggregation and count it (`AggregateStats::missing_key`).
    #[default]
    Skip,
    /// Send it to the dead-letter topic.
    Reject,
    /// Aggregate it under the key `""`.
    Empty,
}

/// One metric (`metrics = [{ kind = ..., ... }]`). Every metric may have its own `filter`
/// (events not matching it are left out of that metric only) and a `name` (default: its kind),
/// which is the `metric` of its output records.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum MetricConfig {
    /// How many events.
    Count {
        /// Output name; default `count`.
        #[serde(default)]
        name: Option<String>,
        /// Count only the events matching this.
        #[serde(default)]
        filter: BTreeMap<String, FilterValue>,
    },
    /// Sum of a numeric field (events without it add nothing).
    Sum {
        /// Path of the number.
        field: String,
        /// Output name; default `sum`.
        #[serde(default)]
        name: Option<String>,
        /// Sum only over the events matching this.
        #[serde(default)]
        filter: BTreeMap<String, FilterValue>,
    },
    /// How many different values a field takes (exact).
    DistinctCount {
        /// Path of the value; may step into arrays (`violations[].subject`).
        field: String,
        /// Output name; default `distinct_count`.
        #[serde(default)]
        name: Option<String>,
        /// Count only over the events matching this.
        #[serde(default)]
        filter: BTreeMap<String, FilterValue>,
    },
    /// The `k` most frequent values of a field (exact counts; ties broken by value).
    TopK {
        /// Path of the value; may step into arrays (`violations[].subject`).
        field: String,
        /// How many values to report.
        k: usize,
        /// Output name; default `top_k`.
        #[serde(default)]
        name: Option<String>,
        /// Count only over the events matching this.
        #[serde(default)]
        filter: BTreeMap<String, FilterValue>,
    },
}

/// The value a `filter` clause wants: one scalar, or a list of which any matches.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum FilterValue {
    /// Equal to this.
    One(Scalar),
    /// Equal to any of these.
    AnyOf(Vec<Scalar>),
}

/// A scalar in a `filter` clause.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string (also matches an enum symbol).
    Text(String),
}

impl Scalar {
    fn matches(&self, value: &Value) -> bool {
        match (self, value) {
            (Scalar::Bool(a), Value::Bool(b)) => a == b,
            (Scalar::Int(a), Value::Number(n)) => n.as_i64() == Some(*a) || n.as_f64() == Some(*a as f64),
            (Scalar::Float(a), Value::Number(n)) => n.as_f64() == Some(*a),
            (Scalar::Text(a), Value::String(b)) => a == b,
            _ => false,
        }
    }
}

/// `threshold = { ... }`: alert when a window's metric goes above a value.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    /// Name of the metric to watch (not a top-k).
    pub metric: String,
    /// Alert when the metric is strictly greater than this.
    pub above: f64,
    /// The violation's `rule_id`.
    pub rule_id: String,
    /// OCSF severity: a name (`informational`, `low`, `medium`, `high`, `critical`, `fatal`) or
    /// an id; default `medium`.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// The violation's `rule_description`; default describes the threshold.
    #[serde(default)]
    pub description: Option<String>,
}

/// A severity by name or OCSF id.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Severity {
    /// An OCSF `severity_id`.
    Id(i32),
    /// A name.
    Name(String),
}

/// Why an [`AggregateConfig`] cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AggregateConfigError {
    /// No window and no preset.
    #[error("`window` is required (e.g. window = {{ kind = \"tumbling\", size_ms = 60000 }})")]
    MissingWindow,
    /// No metrics and no preset.
    #[error("`metrics` is required and must not be empty (e.g. metrics = [{{ kind = \"count\" }}])")]
    MissingMetrics,
    /// A preset and explicit metrics.
    #[error("`metrics` cannot be given with `preset`: the preset defines them")]
    PresetWithMetrics,
    /// A preset-only option without the preset.
    #[error("`{0}` only applies to preset = \"daily_digest\"")]
    PresetOnly(&'static str),
    /// A window length out of range.
    #[error("window: {0}")]
    BadWindow(String),
    /// A duration out of range.
    #[error("`{0}` must be at most {MAX_SPAN_MS} ms")]
    SpanTooLong(&'static str),
    /// A path that does not parse, or is multi-valued where one value is needed.
    #[error("{option}: {reason}")]
    BadPath {
        /// The option holding the path.
        option: String,
        /// Why.
        reason: String,
    },
    /// Two metrics with the same name.
    #[error("two metrics are named {0:?}; give one a `name`")]
    DuplicateMetric(String),
    /// An empty metric name.
    #[error("a metric name must not be empty")]
    EmptyMetricName,
    /// `k` out of range.
    #[error("metric {0:?}: k must be between 1 and 10000")]
    BadK(String),
    /// A threshold on an unknown or top-k metric.
    #[error("threshold.metric {0:?} is not a count, sum or distinct_count metric of this operator")]
    ThresholdMetric(String),
    /// A threshold value that is not a finite number.
    #[error("threshold.above must be a finite number")]
    ThresholdValue,
    /// An empty rule id.
    #[error("threshold.rule_id must not be empty")]
    EmptyRuleId,
    /// An unknown severity.
    #[error("threshold.severity {0:?} is not one of unknown, informational, low, medium, high, critical, fatal, other, or an OCSF id")]
    UnknownSeverity(String),
}

/// How windows are cut, validated (spans in ms, fitting in i64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Windows {
    /// `[start, start + size)`, `start ≡ offset (mod size)`.
    Tumbling { size: i64, offset: i64 },
    /// `[start, start + size)`, `start ≡ offset (mod slide)`.
    Hopping { size: i64, slide: i64, offset: i64 },
    /// Merged `[t, t + gap)` per key.
    Session { gap: i64 },
}

impl Windows {
    /// The kind written in output records.
    pub(crate) fn kind(self) -> WindowKind {
        match self {
            Windows::Tumbling { .. } => WindowKind::Tumbling,
            Windows::Hopping { .. } => WindowKind::Hopping,
            Windows::Session { .. } => WindowKind::Session,
        }
    }

    /// The fixed windows holding event time `t`, earliest first (empty for sessions). `t` must be
    /// within [`super::MAX_EVENT_TIME`].
    pub(crate) fn assign(self, t: i64) -> Vec<(i64, i64)> {
        match self {
            Windows::Tumbling { size, offset } => {
                let start = t - (t - offset).rem_euclid(size);
                vec![(start, start + size)]
            }
            Windows::Hopping { size, slide, offset } => {
                let last = t - (t - offset).rem_euclid(slide);
                let mut windows = Vec::new();
                let mut start = last;
                while start > t - size {
                    windows.push((start, start + size));
                    start -= slide;
                }
                windows.reverse();
                windows
            }
            Windows::Session { .. } => Vec::new(),
        }
    }

    /// A stable description, part of the state's shape.
    fn describe(self) -> String {
        match self {
            Windows::Tumbling { size, offset } => format!("tumbling:{size}:{offset}"),
            Windows::Hopping { size, slide, offset } => format!("hopping:{size}:{slide}:{offset}"),
            Windows::Session { gap } => format!("session:{gap}"),
        }
    }
}

/// A validated `filter` (also a sink's `route`): every clause must match.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    clauses: Vec<(FieldPath, Vec<Scalar>)>,
}

impl Filter {
    /// Checks the clauses of a filter written under the config key `option`.
    pub fn compile(option: &str, filter: &BTreeMap<String, FilterValue>) -> Result<Filter, AggregateConfigError> {
        let mut clauses = Vec::new();
        for (path, wanted) in filter {
            let path = single_path(&format!("{option}.{path}"), path)?;
            let wanted = match wanted {
                FilterValue::One(one) => vec![one.clone()],
                FilterValue::AnyOf(any) => any.clone(),
            };
            clauses.push((path, wanted));
        }
        Ok(Filter { clauses })
    }

    /// Whether the event matches every clause (a missing field matches nothing).
    pub fn matches(&self, event: &Value) -> bool {
        self.clauses.iter().all(|(path, wanted)| match path.get(event) {
            Some(value) => wanted.iter().any(|w| w.matches(value)),
            None => false,
        })
    }

    /// Whether there are no clauses.
    pub(crate) fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }
}

/// What a metric computes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum MetricKind {
    Count,
    Sum(FieldPath),
    DistinctCount(FieldPath),
    TopK(FieldPath, usize),
}

/// A validated metric.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Metric {
    pub(crate) name: String,
    pub(crate) kind: MetricKind,
    pub(crate) filter: Filter,
}

/// A validated threshold.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Threshold {
    /// Index into the metrics.
    pub(crate) metric: usize,
    pub(crate) above: f64,
    pub(crate) rule_id: String,
    pub(crate) severity_id: i32,
    pub(crate) description: String,
}

/// A validated configuration: what the operator runs.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plan {
    pub(crate) windows: Windows,
    pub(crate) key: Option<FieldPath>,
    pub(crate) missing_key: MissingKey,
    pub(crate) metrics: Vec<Metric>,
    pub(crate) filter: Filter,
    pub(crate) time_field: Option<FieldPath>,
    pub(crate) out_of_orderness: i64,
    pub(crate) allowed_lateness: i64,
    pub(crate) threshold: Option<Threshold>,
    pub(crate) uid_field: FieldPath,
}

impl Plan {
    /// Validates a configuration.
    pub(crate) fn new(config: &AggregateConfig) -> Result<Plan, AggregateConfigError> {
        let (window, metrics) = match config.preset {
            Some(Preset::DailyDigest) => {
                if config.metrics.is_some() {
                    return Err(AggregateConfigError::PresetWithMetrics);
                }
                let window = config.window.unwrap_or(WindowConfig::Tumbling { size_ms: DAY_MS, offset_ms: 0 });
                (window, daily_digest_metrics(config))
            }
            None => {
                if config.services_field.is_some() {
                    return Err(AggregateConfigError::PresetOnly("services_field"));
                }
                if config.top_k.is_some() {
                    return Err(AggregateConfigError::PresetOnly("top_k"));
                }
                let window = config.window.ok_or(AggregateConfigError::MissingWindow)?;
                let metrics =
                    config.metrics.clone().filter(|m| !m.is_empty()).ok_or(AggregateConfigError::MissingMetrics)?;
                (window, metrics)
            }
        };
        let windows = compile_window(window)?;
        let metrics = compile_metrics(&metrics)?;
        let threshold = match &config.threshold {
            Some(threshold) => Some(compile_threshold(threshold, &metrics)?),
            None => None,
        };
        Ok(Plan {
            windows,
            key: config.key.as_deref().map(|k| single_path("key", k)).transpose()?,
            missing_key: config.missing_key,
            metrics,
            filter: Filter::compile("filter", &config.filter)?,
            time_field: config.time_field.as_deref().map(|t| single_path("time_field", t)).transpose()?,
            out_of_orderness: span("out_of_orderness_ms", config.out_of_orderness_ms)?,
            allowed_lateness: span("allowed_lateness_ms", config.allowed_lateness_ms)?,
            threshold,
            uid_field: single_path("uid_field", config.uid_field.as_deref().unwrap_or("event_uid"))?,
        })
    }

    /// A stable description of what shapes the state (window, key, metrics): a restart with a
    /// different shape cannot reuse the state.
    pub(crate) fn shape(&self) -> String {
        let mut shape = format!("v1|{}|key={}", self.windows.describe(), self.key.as_ref().map_or("", |k| k.as_str()));
        for metric in &self.metrics {
            let kind = match &metric.kind {
                MetricKind::Count => "count".to_string(),
                MetricKind::Sum(field) => format!("sum:{field}"),
                MetricKind::DistinctCount(field) => format!("distinct_count:{field}"),
                MetricKind::TopK(field, _) => format!("top_k:{field}"),
            };
            shape.push_str(&format!("|{}={kind}", metric.name));
        }
        shape
    }

    /// Whether processing needs the record's value decoded (anything but plain counts of
    /// everything by record time).
    pub(crate) fn needs_value(&self) -> bool {
        self.key.is_some()
            || self.time_field.is_some()
            || !self.filter.is_empty()
            || self.threshold.is_some()
            || self.metrics.iter().any(|m| m.kind != MetricKind::Count || !m.filter.is_empty())
    }
}

/// The metrics of the daily digest preset.
fn daily_digest_metrics(config: &AggregateConfig) -> Vec<MetricConfig> {
    let k = config.top_k.unwrap_or(10);
    let services = config.services_field.clone().unwrap_or_else(|| "labels.service".to_string());
    let mut metrics = vec![MetricConfig::Count { name: Some("total".into()), filter: BTreeMap::new() }];
    for decision in ["ALLOW", "DENY", "REVIEW"] {
        metrics.push(MetricConfig::Count {
            name: Some(format!("decisions.{decision}")),
            filter: BTreeMap::from([("decision".to_string(), FilterValue::One(Scalar::Text(decision.into())))]),
        });
    }
    metrics.push(MetricConfig::TopK { field: services, k, name: Some("top.services".into()), filter: BTreeMap::new() });
    metrics.push(MetricConfig::TopK {
        field: "violations[].subject".into(),
        k,
        name: Some("top.violators".into()),
        filter: BTreeMap::new(),
    });
    metrics
}

fn span(option: &'static str, ms: u64) -> Result<i64, AggregateConfigError> {
    if ms > MAX_SPAN_MS {
        return Err(AggregateConfigError::SpanTooLong(option));
    }
    // MAX_SPAN_MS fits in i64.
    Ok(ms as i64)
}

fn compile_window(window: WindowConfig) -> Result<Windows, AggregateConfigError> {
    let positive = |option: &'static str, ms: u64| {
        if ms == 0 {
            Err(AggregateConfigError::BadWindow(format!("{option} must be greater than 0")))
        } else {
            span(option, ms)
        }
    };
    Ok(match window {
        WindowConfig::Tumbling { size_ms, offset_ms } => {
            let size = positive("size_ms", size_ms)?;
            if offset_ms >= size_ms {
                return Err(AggregateConfigError::BadWindow("offset_ms must be less than size_ms".into()));
            }
            Windows::Tumbling { size, offset: offset_ms as i64 }
        }
        WindowConfig::Hopping { size_ms, slide_ms, offset_ms } => {
            let size = positive("size_ms", size_ms)?;
            let slide = positive("slide_ms", slide_ms)?;
            if slide > size {
                return Err(AggregateConfigError::BadWindow("slide_ms must be at most size_ms".into()));
            }
            if size / slide > 1000 {
                return Err(AggregateConfigError::BadWindow(
                    "size_ms / slide_ms must be at most 1000 (each event is in that many windows)".into(),
                ));
            }
            if offset_ms >= slide_ms {
                return Err(AggregateConfigError::BadWindow("offset_ms must be less than slide_ms".into()));
            }
            Windows::Hopping { size, slide, offset: offset_ms as i64 }
        }
        WindowConfig::Session { gap_ms } => Windows::Session { gap: positive("gap_ms", gap_ms)? },
    })
}

fn compile_metrics(metrics: &[MetricConfig]) -> Result<Vec<Metric>, AggregateConfigError> {
    let mut compiled: Vec<Metric> = Vec::new();
    for (i, metric) in metrics.iter().enumerate() {
        let option = format!("metrics[{i}]");
        let (name, kind, filter) = match metric {
            MetricConfig::Count { name, filter } => (name.clone().unwrap_or("count".into()), MetricKind::Count, filter),
            MetricConfig::Sum { field, name, filter } => (
                name.clone().unwrap_or("sum".into()),
                MetricKind::Sum(single_path(&format!("{option}.field"), field)?),
                filter,
            ),
            MetricConfig::DistinctCount { field, name, filter } => (
                name.clone().unwrap_or("distinct_count".into()),
                MetricKind::DistinctCount(any_path(&format!("{option}.field"), field)?),
                filter,
            ),
            MetricConfig::TopK { field, k, name, filter } => {
                let name = name.clone().unwrap_or("top_k".into());
                if *k == 0 || *k > 10_000 {
                    return Err(AggregateConfigError::BadK(name));
                }
                (name, MetricKind::TopK(any_path(&format!("{option}.field"), field)?, *k), filter)
            }
        };
        if name.is_empty() {
            return Err(AggregateConfigError::EmptyMetricName);
        }
        if compiled.iter().any(|m| m.name == name) {
            return Err(AggregateConfigError::DuplicateMetric(name));
        }
        let filter = Filter::compile(&format!("{option}.filter"), filter)?;
        compiled.push(Metric { name, kind, filter });
    }
    Ok(compiled)
}

fn compile_threshold(threshold: &ThresholdConfig, metrics: &[Metric]) -> Result<Threshold, AggregateConfigError> {
    let metric = metrics
        .iter()
        .position(|m| m.name == threshold.metric && !matches!(m.kind, MetricKind::TopK(..)))
        .ok_or_else(|| AggregateConfigError::ThresholdMetric(threshold.metric.clone()))?;
    if !threshold.above.is_finite() {
        return Err(AggregateConfigError::ThresholdValue);
    }
    if threshold.rule_id.is_empty() {
        return Err(AggregateConfigError::EmptyRuleId);
    }
    let severity_id = match &threshold.severity {
        None => ocsf::SEVERITY_MEDIUM,
        Some(Severity::Id(id)) => *id,
        Some(Severity::Name(name)) => {
            severity_by_name(name).ok_or_else(|| AggregateConfigError::UnknownSeverity(name.clone()))?
        }
    };
    let description = threshold
        .description
        .clone()
        .unwrap_or_else(|| format!("{} above {} in one window", threshold.metric, threshold.above));
    Ok(Threshold { metric, above: threshold.above, rule_id: threshold.rule_id.clone(), severity_id, description })
}

/// The OCSF severity id of a name (case-insensitive).
fn severity_by_name(name: &str) -> Option<i32> {
    Some(match name.to_ascii_lowercase().as_str() {
        "unknown" => ocsf::SEVERITY_UNKNOWN,
        "informational" | "info" => ocsf::SEVERITY_INFORMATIONAL,
        "low" => ocsf::SEVERITY_LOW,
        "medium" => ocsf::SEVERITY_MEDIUM,
        "high" => ocsf::SEVERITY_HIGH,
        "critical" => ocsf::SEVERITY_CRITICAL,
        "fatal" => ocsf::SEVERITY_FATAL,
        "other" => ocsf::OTHER,
        _ => return None,
    })
}

fn any_path(option: &str, path: &str) -> Result<FieldPath, AggregateConfigError> {
    FieldPath::parse(path)
        .map_err(|e: PathError| AggregateConfigError::BadPath { option: option.to_string(), reason: e.to_string() })
}

fn single_path(option: &str, path: &str) -> Result<FieldPath, AggregateConfigError> {
    let parsed = any_path(option, path)?;
    if parsed.is_multi() {
        return Err(AggregateConfigError::BadPath {
            option: option.to_string(),
            reason: format!("{path:?} may give several values (`[]`); only distinct_count and top_k fields may"),
        });
    }
    Ok(parsed)
}
