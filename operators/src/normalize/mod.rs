//! The `normalize` operator: raw vendor records → typed, OCSF-aligned security events.
//!
//! Input records hold [`RawEnvelope`]s (topic `raw.<source>`): the vendor bytes exactly as a
//! source received them. The operator picks the vendor mapping from `envelope.vendor` (or the
//! configured [`NormalizeConfig::vendor`]) and emits one typed event per vendor event, Avro
//! single-object encoded, with the event time as the record timestamp and the actor as the key
//! (so enrichment state can be partitioned by user).
//!
//! Vendors: `okta` (System Log events, polled or pushed by an event hook; mapping in `okta.rs`) →
//! [`IdentityActivity`]; Okta user objects (`/api/v1/users`) → [`Identity`] snapshots, keyed by
//! user id and timestamped with the user's `lastUpdated`.
//!
//! `aws` (CloudTrail records, one by one, in a `{"Records":[...]}` log file or in an EventBridge
//! envelope; `aws.rs`) → [`CloudApiActivity`], console sign-ins → [`IdentityActivity`]; `azure`
//! (Activity Log events in the REST or the diagnostic-export shape; `azure.rs`) →
//! [`CloudApiActivity`], Resource Graph resource changes → [`ResourceChange`]; `gcp` (Cloud
//! Logging `LogEntry`s carrying an `AuditLog`; `gcp.rs`) → [`CloudApiActivity`].
//!
//! `netskope` (REST API v2 dataexport records, one by one or as a whole `{"ok":1,"result":[...]}`
//! response; `netskope.rs`) → application, page and network events as [`AppActivity`], alerts as
//! [`AppAlert`]; `crowdstrike` (alert and host entities, one by one or as a whole
//! `{"resources":[...]}` response, Event Streams events, Falcon Data Replicator events;
//! `crowdstrike.rs`) → detections as [`EndpointDetection`], hosts as [`DeviceInventory`] snapshots,
//! console audit as [`IdentityActivity`].
//!
//! Guarantees:
//! - bad input never panics and never stops the operator: it is rejected to the dead-letter topic
//!   with a reason saying what, where and why (never the payload itself; the original vendor
//!   bytes — or the whole input when it is not an envelope — are kept beside the reason), and the
//!   operator carries on;
//! - deterministic: the same input gives byte-identical output (no wall clock, no hash-map order);
//!   `metadata.uid` is the vendor's event id, so a replayed event can be recognised downstream;
//! - nothing is dropped silently: a vendor event type without a mapping becomes an OCSF Base Event
//!   (class 0) carrying the vendor JSON in `raw_data`.

mod aws;
mod azure;
mod crowdstrike;
mod gcp;
mod netskope;
mod okta;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use weir_schemas::component::{ComponentError, Operator, Output, State};
use weir_schemas::events::{ocsf, Endpoint, Identity, RawEnvelope, SecurityEvent};
use weir_schemas::record::{Record, StoredRecord};

/// The `[operators.NAME]` options of a `type = "normalize"` operator.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizeConfig {
    /// Map every input as this vendor's (e.g. `okta`) instead of the vendor named in each record's
    /// envelope. Unset: use the envelope's vendor.
    #[serde(default)]
    pub vendor: Option<String>,
}

/// Why a [`NormalizeConfig`] cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeConfigError {
    /// `vendor` names a vendor without a mapping.
    #[error("vendor {0:?} has no mapping in the normalizer (known vendors: {known})", known = Vendor::KNOWN)]
    UnknownVendor(String),
}

/// A vendor family the normalizer has a mapping for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Vendor {
    /// Okta System Log.
    Okta,
    /// AWS CloudTrail.
    Aws,
    /// Azure Activity Log and Resource Graph resource changes.
    Azure,
    /// Google Cloud Audit Logs.
    Gcp,
    /// Netskope REST API v2 dataexport events and alerts.
    Netskope,
    /// CrowdStrike Falcon alerts, hosts, Event Streams and Data Replicator events.
    CrowdStrike,
}

impl Vendor {
    /// The vendor names this build maps, for messages.
    const KNOWN: &'static str = "okta, aws, azure, gcp, netskope, crowdstrike";

    /// The vendor called `name` in envelopes and config (`RawEnvelope::vendor`).
    fn from_name(name: &str) -> Option<Vendor> {
        match name {
            okta::VENDOR => Some(Vendor::Okta),
            aws::VENDOR => Some(Vendor::Aws),
            azure::VENDOR => Some(Vendor::Azure),
            gcp::VENDOR => Some(Vendor::Gcp),
            netskope::VENDOR => Some(Vendor::Netskope),
            crowdstrike::VENDOR => Some(Vendor::CrowdStrike),
            _ => None,
        }
    }

    /// Its name in envelopes, config and reasons.
    fn name(self) -> &'static str {
        match self {
            Vendor::Okta => okta::VENDOR,
            Vendor::Aws => aws::VENDOR,
            Vendor::Azure => azure::VENDOR,
            Vendor::Gcp => gcp::VENDOR,
            Vendor::Netskope => netskope::VENDOR,
            Vendor::CrowdStrike => crowdstrike::VENDOR,
        }
    }
}

/// Where an input record came from: what every typed event's metadata says about its origin.
struct Origin<'a> {
    /// The Weir source that received it (`RawEnvelope::source`).
    log_name: &'a str,
    /// Its position on the log, `<topic>/<partition>/<offset>`.
    raw_ref: &'a str,
}

/// What a vendor mapping made of one payload: the events it mapped, and why it could not map the
/// rest (one reason for the whole payload).
#[derive(Debug, Default)]
struct Mapped {
    /// Typed events, in the order the payload holds them.
    events: Vec<SecurityEvent>,
    /// Directory snapshots, in the order the payload holds them.
    identities: Vec<Identity>,
    /// Why some or all of the payload was not mapped.
    rejected: Option<String>,
}

impl Mapped {
    /// The payload mapped to one event.
    fn one(event: impl Into<SecurityEvent>) -> Mapped {
        Mapped { events: vec![event.into()], ..Mapped::default() }
    }

    /// The payload mapped to one directory snapshot.
    fn identity(identity: Identity) -> Mapped {
        Mapped { identities: vec![identity], ..Mapped::default() }
    }

    /// Nothing in the payload could be mapped.
    fn rejected(reason: String) -> Mapped {
        Mapped { rejected: Some(reason), ..Mapped::default() }
    }
}

/// The normalize operator. Stateless for now; see the module documentation.
#[derive(Clone, Debug)]
pub struct Normalize {
    /// The vendor forced by the config, if any.
    forced_vendor: Option<Vendor>,
}

impl Normalize {
    /// A normalizer with these options; fails if `config.vendor` names an unknown vendor.
    pub fn new(config: NormalizeConfig) -> Result<Normalize, NormalizeConfigError> {
        let forced_vendor = match config.vendor {
            Some(name) => Some(Vendor::from_name(&name).ok_or(NormalizeConfigError::UnknownVendor(name))?),
            None => None,
        };
        Ok(Normalize { forced_vendor })
    }
}

impl Operator for Normalize {
    fn process(
        &mut self,
        input: &StoredRecord,
        _state: &mut dyn State,
        out: &mut Output,
    ) -> Result<(), ComponentError> {
        let original = &input.record.value;
        let envelope = match weir_schemas::decode::<RawEnvelope>(original) {
            Ok(envelope) => envelope,
            Err(e) => {
                out.reject(format!("input is not a RawEnvelope: {e}"), original);
                return Ok(());
            }
        };
        // From here on the dead letter keeps the vendor bytes, which is what a person fixing the
        // input needs; the dead letter's input position still leads back to the envelope.
        let original = &envelope.payload;
        let Some(vendor) = self.forced_vendor.or_else(|| Vendor::from_name(&envelope.vendor)) else {
            out.reject(
                format!(
                    "vendor \"{}\" (in the envelope from source \"{}\") has no mapping in the normalizer \
                     (known vendors: {})",
                    brief(&envelope.vendor),
                    brief(&envelope.source),
                    Vendor::KNOWN
                ),
                original,
            );
            return Ok(());
        };
        let raw_ref = format!("{}/{}/{}", input.topic, input.partition, input.offset);
        let origin = Origin { log_name: &envelope.source, raw_ref: &raw_ref };
        let mapped = match vendor {
            Vendor::Okta => okta::normalize(&envelope.payload, &origin),
            Vendor::Aws => aws::normalize(&envelope.payload, &origin),
            Vendor::Azure => azure::normalize(&envelope.payload, &origin),
            Vendor::Gcp => gcp::normalize(&envelope.payload, &origin),
            Vendor::Netskope => netskope::normalize(&envelope.payload, &origin),
            Vendor::CrowdStrike => crowdstrike::normalize(&envelope.payload, &origin),
        };
        for event in mapped.events {
            match event.encode() {
                Ok(value) => out.emit(event_record(&event, value)),
                Err(e) => out.reject(
                    format!(
                        "{} event {}: cannot encode its {}: {e}",
                        vendor.name(),
                        brief(&event.metadata().uid),
                        event.schema_name()
                    ),
                    original,
                ),
            }
        }
        for identity in mapped.identities {
            match weir_schemas::encode(&identity) {
                Ok(value) => out.emit(Record::new(identity.updated, value).with_key(identity.uid.as_bytes())),
                Err(e) => out.reject(
                    format!("{} user {}: cannot encode its Identity: {e}", vendor.name(), brief(&identity.uid)),
                    original,
                ),
            }
        }
        if let Some(reason) = mapped.rejected {
            out.reject(reason, original);
        }
        Ok(())
    }
}

/// The output record of a typed event: timestamped with the event time and keyed by
/// [`event_key`], so that enrichment state can be partitioned by who or what the event is about.
fn event_record(event: &SecurityEvent, value: Vec<u8>) -> Record {
    let record = Record::new(event.time(), value);
    match event_key(event) {
        Some(key) => record.with_key(key.as_bytes()),
        None => record,
    }
}

/// The partition key of a typed event: the acting user's id (else login) for user activity, the
/// device id for endpoint events, the resource id for resource changes; `None` when the event
/// names none of them.
fn event_key(event: &SecurityEvent) -> Option<&str> {
    fn user(user: &weir_schemas::events::User) -> Option<&str> {
        user.uid.as_deref().or(user.name.as_deref())
    }
    match event {
        SecurityEvent::Identity(e) => user(&e.actor),
        SecurityEvent::App(e) => user(&e.user),
        SecurityEvent::AppAlert(e) => user(&e.user),
        SecurityEvent::EndpointDetection(e) => e.device.uid.as_deref(),
        SecurityEvent::DeviceInventory(e) => e.device.uid.as_deref(),
        SecurityEvent::CloudApi(e) => user(&e.actor.user),
        // A legacy Azure change names no resource: its uid is empty, which is no key.
        SecurityEvent::ResourceChange(e) => Some(e.resource.uid.as_str()).filter(|uid| !uid.is_empty()),
    }
}

/// Longest vendor-given text (in characters) a reason quotes.
const BRIEF_CHARS: usize = 64;

/// Vendor-given text made safe to quote in a reason: control characters, backslashes and double
/// quotes escaped, cut to [`BRIEF_CHARS`] characters (an ellipsis marks the cut).
fn brief(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len().min(BRIEF_CHARS));
    for c in text.chars().take(BRIEF_CHARS) {
        if c.is_control() || c == '"' || c == '\\' {
            quoted.extend(c.escape_default());
        } else {
            quoted.push(c);
        }
    }
    if text.chars().nth(BRIEF_CHARS).is_some() {
        quoted.push('…');
    }
    quoted
}

// ---- helpers shared by the vendor mappings ----

/// How many failed elements of one batch payload a reason describes; the rest are counted.
const REASONS_PER_BATCH: usize = 3;

/// The one reason for the elements of a batch payload (an Okta event-hook delivery, a Netskope or
/// CrowdStrike API response) that could not be mapped: `what` names the batch, `noun` its
/// elements, `failures` says where and why each failed, out of `total` elements; `None` when none
/// failed. Only the first [`REASONS_PER_BATCH`] are spelled out, so a bad page cannot make a huge
/// reason.
fn batch_reason(what: &str, noun: &str, failures: &[String], total: usize) -> Option<String> {
    let failed = failures.len();
    if failed == 0 {
        return None;
    }
    let summary = if failed == total {
        format!("{what}: all {total} {noun} rejected")
    } else {
        format!("{what}: {failed} of {total} {noun} rejected, the other {} emitted", total - failed)
    };
    let mut reason = format!("{summary}: {}", failures[..failed.min(REASONS_PER_BATCH)].join("; "));
    if failed > REASONS_PER_BATCH {
        reason.push_str(&format!("; and {} more", failed - REASONS_PER_BATCH));
    }
    Some(reason)
}

/// Milliseconds since the Unix epoch of an RFC 3339 time, or why it is not one.
fn epoch_millis(text: &str) -> Result<i64, String> {
    let time = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| e.to_string())?;
    i64::try_from(time.unix_timestamp_nanos().div_euclid(1_000_000)).map_err(|_| "out of range".to_string())
}

/// The non-empty string at a JSON pointer.
fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(non_empty_str)
}

/// A JSON string that is not empty.
fn non_empty_str(value: &Value) -> Option<&str> {
    value.as_str().filter(|s| !s.is_empty())
}

/// An owned copy of optional text.
fn owned(text: Option<&str>) -> Option<String> {
    text.map(str::to_string)
}

/// Whether a login is an email address: `local@domain.tld`, no spaces.
fn looks_like_email(login: &str) -> bool {
    match login.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && !login.contains(char::is_whitespace)
                && domain.split('.').count() >= 2
                && domain.split('.').all(|label| !label.is_empty())
        }
        None => false,
    }
}

/// A vendor value made safe to quote in a reason: a string in double quotes, anything else as
/// JSON text, either cut by [`brief`].
fn quoted(value: &Value) -> String {
    match value {
        Value::String(text) => format!("\"{}\"", brief(text)),
        other => brief(&other.to_string()),
    }
}

/// What kind of JSON value this is, for reasons.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// ---- helpers shared by the cloud mappings (aws, azure, gcp) ----

/// A vendor payload parsed as a JSON object, with its text; or why it is not one (`<vendor> payload
/// is not JSON: ...`, `<vendor> payload is an array, not a JSON object`).
fn parse_object<'a>(vendor: &str, payload: &'a [u8]) -> Result<(&'a str, Value), String> {
    let text =
        std::str::from_utf8(payload).map_err(|e| format!("{vendor} payload is not JSON: it is not UTF-8 ({e})"))?;
    let value: Value = serde_json::from_str(text).map_err(|e| format!("{vendor} payload is not JSON: {e}"))?;
    if !value.is_object() {
        return Err(format!("{vendor} payload is {}, not a JSON object", kind(&value)));
    }
    Ok((text, value))
}

/// The elements of the array in field `field` of a JSON object's text, each as its text exactly as
/// received (so an element kept in `raw_data` is byte-for-byte the vendor's); `None` when the
/// field is missing or not an array.
fn raw_elements<'a>(text: &'a str, field: &str) -> Option<Vec<&'a RawValue>> {
    let object: BTreeMap<String, &'a RawValue> = serde_json::from_str(text).ok()?;
    serde_json::from_str(object.get(field)?.get()).ok()
}

/// Maps every element of the array `field` of a batch payload (a CloudTrail log file's `Records`,
/// an Activity Log page's `value`, ...) with `map`, which gets each element parsed and as its text
/// exactly as received. Events are emitted in the payload's order; the elements that fail share one
/// reason ([`batch_reason`]) that names each by its index, e.g. `Records[3]: ...`.
fn map_elements<'a>(
    what: &str,
    field: &str,
    text: &'a str,
    mut map: impl FnMut(&Value, &'a str) -> Result<SecurityEvent, String>,
) -> Mapped {
    let Some(elements) = raw_elements(text, field) else {
        return Mapped::rejected(format!("{what}: field `{field}` is not an array"));
    };
    let mut mapped = Mapped::default();
    let mut failures = Vec::new();
    for (index, raw) in elements.iter().enumerate() {
        let element = serde_json::from_str::<Value>(raw.get()).map_err(|e| format!("not JSON: {e}"));
        match element.and_then(|element| map(&element, raw.get())) {
            Ok(event) => mapped.events.push(event),
            Err(reason) => failures.push(format!("{field}[{index}]: {reason}")),
        }
    }
    mapped.rejected = batch_reason(what, "events", &failures, elements.len());
    mapped
}

/// The [`Mapped`] of a payload holding one event.
fn single(event: Result<SecurityEvent, String>) -> Mapped {
    match event {
        Ok(event) => Mapped::one(event),
        Err(reason) => Mapped::rejected(reason),
    }
}

/// Nanoseconds since the Unix epoch of an RFC 3339 time, or why it is not one. Derived event ids
/// use it rather than the text, so that `…:26.9792776Z` and `…:26.979277600Z` (the same instant
/// written by two channels) give the same id.
fn epoch_nanos(text: &str) -> Result<i128, String> {
    Ok(OffsetDateTime::parse(text, &Rfc3339).map_err(|e| e.to_string())?.unix_timestamp_nanos())
}

/// A deterministic event id for a vendor event without one: the first 128 bits of the SHA-256 of
/// `parts` (each length-prefixed, so no two part lists collide by concatenation), as 32 hex digits.
fn derived_uid(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize()[..16].iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Where a cloud API call came from, as the cloud wrote it: an IP address; or a DNS name, which is
/// what CloudTrail writes in `sourceIPAddress` when a service called on the user's behalf (e.g.
/// `servicecatalog.amazonaws.com`) and must not be read as an IP. Anything else (CloudTrail's
/// `AWS Internal`, GCP's `private` or `gce-internal-ip`) is `None`: callers keep it in `unmapped`.
fn caller_endpoint(address: &str) -> Option<Endpoint> {
    let endpoint = |ip: Option<&str>, hostname: Option<&str>| Endpoint {
        ip: owned(ip),
        port: None,
        hostname: owned(hostname),
        location: None,
    };
    if address.parse::<IpAddr>().is_ok() {
        return Some(endpoint(Some(address), None));
    }
    let labels: Vec<&str> = address.split('.').collect();
    let is_dns_name = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        // A top-level domain is never all digits, so `1.2.3.999` is not taken for a name.
        && labels.last().is_some_and(|tld| tld.chars().any(|c| c.is_ascii_alphabetic()));
    is_dns_name.then(|| endpoint(None, Some(address)))
}

/// The OCSF API Activity (6003) `activity_id` of an operation named verb first (a CloudTrail
/// `eventName` such as `CreateUser`, the last part of a GCP `methodName` such as `insert` or
/// `setIamPolicy`), by its first word: 1 Create, 2 Read, 3 Update, 4 Delete, else 99 Other (e.g.
/// `AssumeRole`, `SignJwt`). Starting, stopping, attaching and granting change a resource, so they
/// are updates.
fn api_activity_id(operation: &str) -> i32 {
    let end = operation
        .char_indices()
        .skip(1)
        .find(|&(_, c)| c.is_ascii_uppercase() || !c.is_ascii_alphabetic())
        .map_or(operation.len(), |(at, _)| at);
    match operation[..end].to_ascii_lowercase().as_str() {
        "create" | "insert" | "run" | "allocate" | "import" => 1,
        "get" | "describe" | "list" | "lookup" | "head" | "search" | "query" | "scan" | "read" => 2,
        "update" | "put" | "patch" | "modify" | "set" | "change" | "replace" | "reset" | "attach" | "detach"
        | "add" | "remove" | "associate" | "disassociate" | "enable" | "disable" | "authorize" | "revoke" | "tag"
        | "untag" | "start" | "stop" => 3,
        "delete" | "terminate" => 4,
        _ => ocsf::OTHER,
    }
}

/// A vendor JSON value as JSON text, for `request_data`, `response_data` and `PropertyChange`s;
/// `None` when it is absent or `null`.
fn json_text(value: Option<&Value>) -> Option<String> {
    value.filter(|value| !value.is_null()).map(Value::to_string)
}

/// The fields of `unmapped` that `record` has: (dotted path, JSON pointer) pairs, the value as JSON
/// text; `null` and empty strings count as absent.
fn unmapped_fields(record: &Value, fields: &[(&str, &str)]) -> BTreeMap<String, String> {
    fields
        .iter()
        .filter_map(|&(path, pointer)| {
            let value = record.pointer(pointer)?;
            let absent = value.is_null() || value.as_str() == Some("");
            (!absent).then(|| (path.to_string(), value.to_string()))
        })
        .collect()
}
