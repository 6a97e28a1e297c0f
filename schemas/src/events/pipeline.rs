//! What Weir's own stages write: raw envelopes (`raw.<source>`), enriched events (`enriched`),
//! policy decisions and violations (`decisions`), window aggregates (`aggregates`) and dead
//! letters (`dlq`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `io.weir.RawEnvelope`: a vendor record exactly as a source received it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvelope {
    /// The Weir source name.
    pub source: String,
    /// The vendor family, e.g. okta.
    pub vendor: String,
    /// When Weir received it, ms since the Unix epoch.
    pub received_at: i64,
    /// The source cursor after this record, when the vendor gives one per record.
    pub cursor: Option<String>,
    /// Media type of `payload`, e.g. application/json.
    pub content_type: String,
    /// The vendor bytes exactly as received.
    #[serde(with = "apache_avro::serde::bytes")]
    pub payload: Vec<u8>,
}

/// `io.weir.EnrichedEvent`: a typed event plus the context the enrich operator found.
///
/// `event` holds the typed event single-object encoded, so one schema wraps every event type:
/// decode it with [`SecurityEvent::decode`](super::SecurityEvent::decode) or
/// [`decode`](crate::decode); `event_schema` repeats its fingerprint for consumers that route
/// on it without parsing `event`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichedEvent {
    /// The wrapped event's metadata.uid.
    pub event_uid: String,
    /// The wrapped event's OCSF class id.
    pub class_uid: i32,
    /// The wrapped event's time, ms since the Unix epoch.
    pub time: i64,
    /// Fingerprint of the wrapped event's schema, as a signed long (`fingerprint as i64`).
    pub event_schema: i64,
    /// The typed event, single-object encoded.
    #[serde(with = "apache_avro::serde::bytes")]
    pub event: Vec<u8>,
    /// Context on the user, if any was found.
    pub user_context: Option<UserContext>,
    /// Context on the device, if any was found.
    pub device_context: Option<DeviceContext>,
    /// Context on the cloud resource, if any was found.
    pub asset_context: Option<AssetContext>,
    /// Lookups that found nothing, e.g. `user:00u1abc`.
    pub missing_context: Vec<String>,
}

/// `io.weir.UserContext`: what the identity tables know about a user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserContext {
    /// Identity provider user id.
    pub uid: String,
    /// Login name.
    pub login: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Account status, e.g. ACTIVE.
    pub status: Option<String>,
    /// Department.
    pub department: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// Manager's login or email.
    pub manager: Option<String>,
    /// Groups the user belongs to.
    pub groups: Vec<String>,
    /// Other logins and emails of the same person.
    pub aliases: Vec<String>,
}

/// `io.weir.DeviceContext`: what the device tables know about a device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceContext {
    /// Device id.
    pub uid: String,
    /// Host name.
    pub hostname: Option<String>,
    /// Login or email of the owner.
    pub owner: Option<String>,
    /// Operating system and version.
    pub os: Option<String>,
    /// Security agent version.
    pub agent_version: Option<String>,
    /// Whether the agent runs in reduced functionality mode.
    pub reduced_functionality_mode: Option<bool>,
    /// Whether the device is marked business-critical.
    pub crown_jewel: Option<bool>,
    /// Data sensitivity of the device.
    pub sensitivity: Option<String>,
    /// Whether the device meets the device policy.
    pub compliant: Option<bool>,
}

/// `io.weir.AssetContext`: what the asset tables know about a cloud resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetContext {
    /// Resource id.
    pub uid: String,
    /// Owner.
    pub owner: Option<String>,
    /// Account, subscription or project.
    pub account: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Resource tags.
    pub tags: BTreeMap<String, String>,
    /// Whether the resource is reachable from the internet.
    pub public: Option<bool>,
    /// Whether the resource is encrypted at rest.
    pub encrypted: Option<bool>,
}

/// `io.weir.PolicyDecision`: the policy engine's verdict on one enriched event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDecision {
    /// Deterministic id derived from event_uid and policy_set_version.
    pub decision_uid: String,
    /// The event decided on.
    pub event_uid: String,
    /// The event's time, ms since the Unix epoch.
    pub time: i64,
    /// The verdict.
    pub decision: Decision,
    /// Content hash of the policy set that decided.
    pub policy_set_version: String,
    /// Ids of the rules that matched.
    pub matched_rules: Vec<String>,
    /// Highest OCSF severity among matched rules.
    pub severity_id: i32,
    /// Labels the matched rules attached.
    pub labels: BTreeMap<String, String>,
    /// Violations this event opened, updated or resolved.
    pub violations: Vec<Violation>,
}

/// `io.weir.Decision`: a policy verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Decision {
    /// Nothing wrong.
    Allow,
    /// A rule forbids it.
    Deny,
    /// A human should look.
    Review,
}

/// `io.weir.Violation`: one rule broken by one subject, tracked under a stable key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Violation {
    /// Stable key: same rule and subject, same key.
    pub violation_key: String,
    /// The rule that was broken.
    pub rule_id: String,
    /// What the rule checks.
    pub rule_description: String,
    /// OCSF severity id.
    pub severity_id: i32,
    /// Where the violation is in its lifecycle.
    pub status: ViolationStatus,
    /// When first seen, ms since the Unix epoch.
    pub first_seen: i64,
    /// When last seen (or resolved), ms since the Unix epoch.
    pub last_seen: i64,
    /// The user, device or resource id it is about.
    pub subject: String,
    /// The event that last changed it.
    pub event_uid: String,
    /// Labels the rule attached.
    pub labels: BTreeMap<String, String>,
    /// One line for humans.
    pub summary: String,
}

/// `io.weir.ViolationStatus`: lifecycle of a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ViolationStatus {
    /// Newly opened.
    Open,
    /// Seen again or changed.
    Updated,
    /// No longer true.
    Resolved,
}

/// `io.weir.WindowAggregate`: one window's result from the aggregate operator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowAggregate {
    /// The aggregate operator's name.
    pub operator: String,
    /// How the window was cut.
    pub window_kind: WindowKind,
    /// Window start (inclusive), ms since the Unix epoch.
    pub window_start: i64,
    /// Window end (exclusive), ms since the Unix epoch.
    pub window_end: i64,
    /// The group key.
    pub key: String,
    /// count, sum, distinct_count or top_k.
    pub metric: String,
    /// The metric's value; `None` for count and top_k.
    pub value: Option<f64>,
    /// Events in the window for this key.
    pub count: i64,
    /// For top_k: most frequent items first.
    pub top: Vec<TopItem>,
    /// Events that arrived after the window closed and were not counted.
    pub late_events: i64,
    /// When the operator emitted this result, ms since the Unix epoch.
    pub emitted_at: i64,
}

/// `io.weir.WindowKind`: how windows are cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WindowKind {
    /// Fixed-size, non-overlapping.
    Tumbling,
    /// Fixed-size, overlapping.
    Hopping,
    /// Closed by a gap of inactivity.
    Session,
}

/// `io.weir.TopItem`: one entry of a top-k list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopItem {
    /// The value counted.
    pub item: String,
    /// How often it occurred.
    pub count: i64,
}

/// `io.weir.DeadLetter`: input a component could not process, with why and the original bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetter {
    /// The component's name in the pipeline config.
    pub component: String,
    /// Which kind of component rejected it.
    pub stage: Stage,
    /// The topic the input was read from (`None` for a source).
    pub input_topic: Option<String>,
    /// Its partition.
    pub input_partition: Option<i32>,
    /// Its offset.
    pub input_offset: Option<i64>,
    /// What was wrong, where and why; never a secret.
    pub reason: String,
    /// The input exactly as received.
    #[serde(with = "apache_avro::serde::bytes")]
    pub original: Vec<u8>,
    /// When it was dead-lettered, ms since the Unix epoch.
    pub time: i64,
    /// How many times processing or delivery was tried.
    pub attempts: i32,
}

/// `io.weir.Stage`: which kind of component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Stage {
    /// A source connector.
    Source,
    /// An operator.
    Operator,
    /// A sink.
    Sink,
}
