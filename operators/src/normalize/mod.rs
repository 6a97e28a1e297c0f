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
//! Guarantees:
//! - bad input never panics and never stops the operator: it is rejected to the dead-letter topic
//!   with a reason saying what, where and why (never the payload itself; the original vendor
//!   bytes — or the whole input when it is not an envelope — are kept beside the reason), and the
//!   operator carries on;
//! - deterministic: the same input gives byte-identical output (no wall clock, no hash-map order);
//!   `metadata.uid` is the vendor's event id, so a replayed event can be recognised downstream;
//! - nothing is dropped silently: a vendor event type without a mapping becomes an OCSF Base Event
//!   (class 0) carrying the vendor JSON in `raw_data`.

mod okta;
#[cfg(test)]
mod tests;

use serde::Deserialize;
use weir_schemas::component::{ComponentError, Operator, Output, State};
use weir_schemas::events::{Identity, RawEnvelope, SecurityEvent};
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
}

impl Vendor {
    /// The vendor names this build maps, for messages.
    const KNOWN: &'static str = "okta";

    /// The vendor called `name` in envelopes and config (`RawEnvelope::vendor`).
    fn from_name(name: &str) -> Option<Vendor> {
        match name {
            okta::VENDOR => Some(Vendor::Okta),
            _ => None,
        }
    }

    /// Its name in envelopes, config and reasons.
    fn name(self) -> &'static str {
        match self {
            Vendor::Okta => okta::VENDOR,
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
        SecurityEvent::ResourceChange(e) => Some(e.resource.uid.as_str()),
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
