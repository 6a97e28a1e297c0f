//! Typed security events: what the normalizer makes of vendor records (topic `events`).
//!
//! Each carries the OCSF header (`class_uid`, `category_uid`, `activity_id`, `type_uid`,
//! `severity_id`, `status_id`, `time`, `metadata`, `message`) so SIEMs can map it, the fields of
//! its family, then `unmapped` (vendor fields no typed field holds) and `raw_data` (the vendor
//! JSON, set when the normalizer did not know the vendor event type, so nothing is dropped).
//! The `.avsc` docs say which OCSF classes each type carries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::{App, Cloud, Device, Endpoint, Metadata, Resource, User};
use crate::avro::{AvroRecord, Registry, SchemaError};

/// `io.weir.IdentityActivity`: an identity-provider event (Okta System Log). OCSF classes 3001
/// Account Change, 3002 Authentication, 3005 User Access Management, 3006 Group Management.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityActivity {
    /// OCSF class id (0 = base event for unknown vendor event types).
    pub class_uid: i32,
    /// OCSF category id.
    pub category_uid: i32,
    /// OCSF activity id.
    pub activity_id: i32,
    /// OCSF type id: class_uid * 100 + activity_id.
    pub type_uid: i64,
    /// OCSF severity id.
    pub severity_id: i32,
    /// OCSF status id.
    pub status_id: i32,
    /// Event time, ms since the Unix epoch.
    pub time: i64,
    /// Where the event came from.
    pub metadata: Metadata,
    /// Human-readable summary.
    pub message: Option<String>,
    /// Who did it.
    pub actor: User,
    /// Users the event is about.
    pub target_users: Vec<User>,
    /// Groups the event is about, by name.
    pub target_groups: Vec<String>,
    /// The application signed in to or assigned.
    pub app: Option<App>,
    /// Where the request came from.
    pub src_endpoint: Option<Endpoint>,
    /// The client's User-Agent.
    pub user_agent: Option<String>,
    /// The identity provider's session id.
    pub session_uid: Option<String>,
    /// Authentication protocol, e.g. SAML2.
    pub auth_protocol: Option<String>,
    /// Whether a second factor was used.
    pub is_mfa: Option<bool>,
    /// The vendor's event type, e.g. user.session.start.
    pub event_type: String,
    /// Outcome as the vendor said, e.g. SUCCESS.
    pub outcome: Option<String>,
    /// Why, as the vendor said.
    pub outcome_reason: Option<String>,
    /// Vendor fields no typed field holds.
    pub unmapped: BTreeMap<String, String>,
    /// The vendor JSON, when the event type was unknown.
    pub raw_data: Option<String>,
}

/// `io.weir.AppActivity`: SaaS, app and web activity (Netskope application and page events).
/// OCSF 6001 Web Resources Activity (application events), 4002 HTTP Activity (page events).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppActivity {
    /// OCSF class id (0 = base event for unknown vendor event types).
    pub class_uid: i32,
    /// OCSF category id.
    pub category_uid: i32,
    /// OCSF activity id.
    pub activity_id: i32,
    /// OCSF type id.
    pub type_uid: i64,
    /// OCSF severity id.
    pub severity_id: i32,
    /// OCSF status id.
    pub status_id: i32,
    /// Event time, ms since the Unix epoch.
    pub time: i64,
    /// Where the event came from.
    pub metadata: Metadata,
    /// Human-readable summary.
    pub message: Option<String>,
    /// The vendor's event type, e.g. application, page.
    pub event_type: String,
    /// Who did it.
    pub user: User,
    /// The application used.
    pub app: Option<App>,
    /// The vendor's activity name, e.g. Upload.
    pub activity: Option<String>,
    /// What the gateway did: allow, block, alert, ...
    pub action: Option<String>,
    /// The URL requested.
    pub url: Option<String>,
    /// Where the request came from.
    pub src_endpoint: Option<Endpoint>,
    /// The device used.
    pub device: Option<Device>,
    /// The gateway policy that matched.
    pub policy_name: Option<String>,
    /// DLP profile that matched.
    pub dlp_profile: Option<String>,
    /// DLP rule that matched.
    pub dlp_rule: Option<String>,
    /// The file or object acted on.
    pub object_name: Option<String>,
    /// Kind of object.
    pub object_type: Option<String>,
    /// Bytes received by the client.
    pub bytes_in: Option<i64>,
    /// Bytes sent by the client.
    pub bytes_out: Option<i64>,
    /// Vendor fields no typed field holds.
    pub unmapped: BTreeMap<String, String>,
    /// The vendor JSON, when the event type was unknown.
    pub raw_data: Option<String>,
}

/// `io.weir.AppAlert`: a secure web gateway alert (Netskope alerts). OCSF 2006 Data Security
/// Finding (DLP alerts), 2004 Detection Finding (others).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppAlert {
    /// OCSF class id (0 = base event for unknown vendor event types).
    pub class_uid: i32,
    /// OCSF category id.
    pub category_uid: i32,
    /// OCSF activity id.
    pub activity_id: i32,
    /// OCSF type id.
    pub type_uid: i64,
    /// OCSF severity id.
    pub severity_id: i32,
    /// OCSF status id.
    pub status_id: i32,
    /// Event time, ms since the Unix epoch.
    pub time: i64,
    /// Where the event came from.
    pub metadata: Metadata,
    /// Human-readable summary.
    pub message: Option<String>,
    /// The vendor's alert id.
    pub finding_uid: String,
    /// The vendor's alert type, e.g. DLP.
    pub alert_type: String,
    /// The alert's name.
    pub alert_name: String,
    /// Who triggered it.
    pub user: User,
    /// The application involved.
    pub app: Option<App>,
    /// The policy that matched.
    pub policy_name: Option<String>,
    /// Severity as the vendor said.
    pub severity: Option<String>,
    /// What the gateway did.
    pub action: Option<String>,
    /// The URL involved.
    pub url: Option<String>,
    /// Where the request came from.
    pub src_endpoint: Option<Endpoint>,
    /// The device used.
    pub device: Option<Device>,
    /// DLP profile that matched.
    pub dlp_profile: Option<String>,
    /// DLP rule that matched.
    pub dlp_rule: Option<String>,
    /// The file or object involved.
    pub object_name: Option<String>,
    /// Vendor fields no typed field holds.
    pub unmapped: BTreeMap<String, String>,
    /// The vendor JSON, when the event type was unknown.
    pub raw_data: Option<String>,
}

/// `io.weir.EndpointDetection`: an EDR detection (CrowdStrike Falcon). OCSF 2004 Detection
/// Finding.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointDetection {
    /// OCSF class id (0 = base event for unknown vendor event types).
    pub class_uid: i32,
    /// OCSF category id.
    pub category_uid: i32,
    /// OCSF activity id.
    pub activity_id: i32,
    /// OCSF type id.
    pub type_uid: i64,
    /// OCSF severity id.
    pub severity_id: i32,
    /// OCSF status id.
    pub status_id: i32,
    /// Event time, ms since the Unix epoch.
    pub time: i64,
    /// Where the event came from.
    pub metadata: Metadata,
    /// Human-readable summary.
    pub message: Option<String>,
    /// The vendor's detection id.
    pub finding_uid: String,
    /// Short title.
    pub title: String,
    /// Longer description.
    pub description: Option<String>,
    /// MITRE ATT&CK tactic name.
    pub tactic: Option<String>,
    /// MITRE ATT&CK tactic id.
    pub tactic_uid: Option<String>,
    /// MITRE ATT&CK technique name.
    pub technique: Option<String>,
    /// MITRE ATT&CK technique id.
    pub technique_uid: Option<String>,
    /// The device it was seen on.
    pub device: Device,
    /// The user logged on.
    pub user: Option<User>,
    /// The process it is about.
    pub process: Option<Process>,
    /// Severity as the vendor said.
    pub severity: Option<String>,
    /// Vendor confidence, 0..100.
    pub confidence: Option<i32>,
    /// Vendor status.
    pub status: Option<String>,
    /// What the agent did.
    pub disposition: Option<String>,
    /// Link to the detection in the vendor console.
    pub falcon_link: Option<String>,
    /// Vendor fields no typed field holds.
    pub unmapped: BTreeMap<String, String>,
    /// The vendor JSON, when the event type was unknown.
    pub raw_data: Option<String>,
}

/// `io.weir.Process`: the process a detection is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    /// Image file name.
    pub name: Option<String>,
    /// Process id.
    pub pid: Option<i64>,
    /// Full command line.
    pub cmdline: Option<String>,
    /// SHA-256 of the image file, hex.
    pub sha256: Option<String>,
    /// Parent process image file name.
    pub parent_name: Option<String>,
}

/// `io.weir.DeviceInventory`: a managed host's state (CrowdStrike hosts). OCSF 5001 Device
/// Inventory Info.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceInventory {
    /// OCSF class id (0 = base event for unknown vendor event types).
    pub class_uid: i32,
    /// OCSF category id.
    pub category_uid: i32,
    /// OCSF activity id.
    pub activity_id: i32,
    /// OCSF type id.
    pub type_uid: i64,
    /// OCSF severity id.
    pub severity_id: i32,
    /// OCSF status id.
    pub status_id: i32,
    /// Event time, ms since the Unix epoch.
    pub time: i64,
    /// Where the event came from.
    pub metadata: Metadata,
    /// Human-readable summary.
    pub message: Option<String>,
    /// The host.
    pub device: Device,
    /// Platform, e.g. Windows.
    pub platform: Option<String>,
    /// e.g. Workstation, Server.
    pub product_type: Option<String>,
    /// Containment status.
    pub status: Option<String>,
    /// When the vendor first saw the host, ms since the Unix epoch.
    pub first_seen: Option<i64>,
    /// When the vendor last heard from the host, ms since the Unix epoch.
    pub last_seen: Option<i64>,
    /// Whether the agent runs in reduced functionality mode.
    pub reduced_functionality_mode: Option<bool>,
    /// Policies assigned to the host.
    pub policies: Vec<DevicePolicy>,
    /// Vendor tags on the host.
    pub tags: Vec<String>,
    /// Hardware serial number.
    pub serial: Option<String>,
    /// Primary MAC address.
    pub mac: Option<String>,
    /// Public IP the host was last seen from.
    pub external_ip: Option<String>,
    /// Machine domain.
    pub domain: Option<String>,
    /// Vendor fields no typed field holds.
    pub unmapped: BTreeMap<String, String>,
    /// The vendor JSON, when the event type was unknown.
    pub raw_data: Option<String>,
}

/// `io.weir.DevicePolicy`: a policy assigned to a host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicePolicy {
    /// Policy kind, e.g. prevention.
    pub r#type: String,
    /// Policy id.
    pub id: String,
    /// Whether the host has applied it.
    pub applied: bool,
}

/// `io.weir.CloudApiActivity`: a cloud control-plane API call (CloudTrail, Azure Activity Log,
/// GCP audit logs). OCSF 6003 API Activity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudApiActivity {
    /// OCSF class id (0 = base event for unknown vendor event types).
    pub class_uid: i32,
    /// OCSF category id.
    pub category_uid: i32,
    /// OCSF activity id.
    pub activity_id: i32,
    /// OCSF type id.
    pub type_uid: i64,
    /// OCSF severity id.
    pub severity_id: i32,
    /// OCSF status id.
    pub status_id: i32,
    /// Event time, ms since the Unix epoch.
    pub time: i64,
    /// Where the event came from.
    pub metadata: Metadata,
    /// Human-readable summary.
    pub message: Option<String>,
    /// The account and region.
    pub cloud: Cloud,
    /// Who called the API.
    pub actor: CloudActor,
    /// What was called.
    pub api: Api,
    /// Where the call came from.
    pub src_endpoint: Option<Endpoint>,
    /// The caller's User-Agent.
    pub user_agent: Option<String>,
    /// Resources the call touched.
    pub resources: Vec<Resource>,
    /// Error code when the call failed.
    pub error_code: Option<String>,
    /// Error message when the call failed.
    pub error_message: Option<String>,
    /// Request parameters as JSON text.
    pub request_data: Option<String>,
    /// Response elements as JSON text.
    pub response_data: Option<String>,
    /// Vendor fields no typed field holds.
    pub unmapped: BTreeMap<String, String>,
    /// The vendor JSON, when the event type was unknown.
    pub raw_data: Option<String>,
}

/// `io.weir.CloudActor`: who called a cloud API (OCSF `actor`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudActor {
    /// The calling identity; `type` says e.g. IAMUser, AssumedRole.
    pub user: User,
    /// For temporary credentials: the role or identity that issued the session.
    pub session_issuer: Option<String>,
    /// Session id or access key id.
    pub session_uid: Option<String>,
    /// The service that called on the user's behalf.
    pub invoked_by: Option<String>,
    /// Whether the session was MFA-authenticated.
    pub mfa_authenticated: Option<bool>,
}

/// `io.weir.Api`: a cloud API operation (OCSF `api`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Api {
    /// Operation, e.g. PutBucketPolicy.
    pub operation: String,
    /// Service, e.g. s3.amazonaws.com.
    pub service: Option<String>,
    /// The provider's request id.
    pub request_id: Option<String>,
    /// API version.
    pub version: Option<String>,
}

/// `io.weir.ResourceChange`: a change to a cloud resource's configuration (Azure resource
/// changes, AWS Config, GCP asset feeds). OCSF 5023 Cloud Resources Inventory Info: a change feed
/// reports resource state; the API call that made the change is a [`CloudApiActivity`] (6003).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceChange {
    /// OCSF class id (0 = base event for unknown vendor event types).
    pub class_uid: i32,
    /// OCSF category id.
    pub category_uid: i32,
    /// OCSF activity id.
    pub activity_id: i32,
    /// OCSF type id.
    pub type_uid: i64,
    /// OCSF severity id.
    pub severity_id: i32,
    /// OCSF status id.
    pub status_id: i32,
    /// Event time, ms since the Unix epoch.
    pub time: i64,
    /// Where the event came from.
    pub metadata: Metadata,
    /// Human-readable summary.
    pub message: Option<String>,
    /// The resource after the change (before it, for a delete).
    pub resource: Resource,
    /// What happened to the resource.
    pub change_type: ChangeType,
    /// The properties that changed.
    pub changes: Vec<PropertyChange>,
    /// The account and region.
    pub cloud: Cloud,
    /// Who made the change, when the feed says.
    pub actor: Option<User>,
    /// Id linking the change to the API call that made it.
    pub correlation_uid: Option<String>,
    /// Vendor fields no typed field holds.
    pub unmapped: BTreeMap<String, String>,
    /// The vendor JSON, when the event type was unknown.
    pub raw_data: Option<String>,
}

/// `io.weir.ChangeType`: what happened to a resource. Readers that do not know a newer symbol
/// read `OTHER`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeType {
    /// The resource was created.
    Create,
    /// The resource was changed.
    Update,
    /// The resource was deleted.
    Delete,
    /// Anything else.
    #[default]
    Other,
}

/// `io.weir.PropertyChange`: one changed property of a resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyChange {
    /// Path of the property.
    pub property: String,
    /// Value before, as JSON text; `None` if it did not exist.
    pub previous_value: Option<String>,
    /// Value after, as JSON text; `None` if it was removed.
    pub new_value: Option<String>,
}

/// Any typed security event, for stages that handle every kind (enrich, policy).
#[derive(Clone, Debug, PartialEq)]
pub enum SecurityEvent {
    /// An identity-provider event.
    Identity(IdentityActivity),
    /// SaaS, app or web activity.
    App(AppActivity),
    /// A secure web gateway alert.
    AppAlert(AppAlert),
    /// An EDR detection.
    EndpointDetection(EndpointDetection),
    /// A managed host's state.
    DeviceInventory(DeviceInventory),
    /// A cloud API call.
    CloudApi(CloudApiActivity),
    /// A cloud resource change.
    ResourceChange(ResourceChange),
}

/// Applies `$body` to the event inside any [`SecurityEvent`] variant.
macro_rules! each_event {
    ($event:expr, $inner:ident => $body:expr) => {
        match $event {
            SecurityEvent::Identity($inner) => $body,
            SecurityEvent::App($inner) => $body,
            SecurityEvent::AppAlert($inner) => $body,
            SecurityEvent::EndpointDetection($inner) => $body,
            SecurityEvent::DeviceInventory($inner) => $body,
            SecurityEvent::CloudApi($inner) => $body,
            SecurityEvent::ResourceChange($inner) => $body,
        }
    };
}

macro_rules! into_security_event {
    ($($variant:ident($event:ty)),* $(,)?) => {
        $(impl From<$event> for SecurityEvent {
            fn from(event: $event) -> SecurityEvent {
                SecurityEvent::$variant(event)
            }
        })*
    };
}

into_security_event!(
    Identity(IdentityActivity),
    App(AppActivity),
    AppAlert(AppAlert),
    EndpointDetection(EndpointDetection),
    DeviceInventory(DeviceInventory),
    CloudApi(CloudApiActivity),
    ResourceChange(ResourceChange),
);

impl SecurityEvent {
    /// Decodes whichever typed security event the single-object encoded `bytes` hold.
    pub fn decode(bytes: &[u8]) -> Result<SecurityEvent, SchemaError> {
        let registry = Registry::embedded();
        let fingerprint = crate::avro::read_header(bytes)?;
        let writer = registry.get(fingerprint).ok_or(SchemaError::UnknownFingerprint(fingerprint))?;
        Ok(match writer.name() {
            IdentityActivity::SCHEMA_NAME => SecurityEvent::Identity(registry.decode(bytes)?),
            AppActivity::SCHEMA_NAME => SecurityEvent::App(registry.decode(bytes)?),
            AppAlert::SCHEMA_NAME => SecurityEvent::AppAlert(registry.decode(bytes)?),
            EndpointDetection::SCHEMA_NAME => SecurityEvent::EndpointDetection(registry.decode(bytes)?),
            DeviceInventory::SCHEMA_NAME => SecurityEvent::DeviceInventory(registry.decode(bytes)?),
            CloudApiActivity::SCHEMA_NAME => SecurityEvent::CloudApi(registry.decode(bytes)?),
            ResourceChange::SCHEMA_NAME => SecurityEvent::ResourceChange(registry.decode(bytes)?),
            other => {
                return Err(SchemaError::WrongSchema {
                    expected: "typed security event".into(),
                    found: other.to_string(),
                    fingerprint,
                })
            }
        })
    }

    /// Single-object encodes the event with its current schema.
    pub fn encode(&self) -> Result<Vec<u8>, SchemaError> {
        each_event!(self, event => crate::avro::encode(event))
    }

    /// Full name of the event's schema.
    pub fn schema_name(&self) -> &'static str {
        fn name<T: AvroRecord>(_: &T) -> &'static str {
            T::SCHEMA_NAME
        }
        each_event!(self, event => name(event))
    }

    /// Where the event came from, including its uid.
    pub fn metadata(&self) -> &Metadata {
        each_event!(self, event => &event.metadata)
    }

    /// OCSF class id.
    pub fn class_uid(&self) -> i32 {
        each_event!(self, event => event.class_uid)
    }

    /// Event time, ms since the Unix epoch.
    pub fn time(&self) -> i64 {
        each_event!(self, event => event.time)
    }
}
