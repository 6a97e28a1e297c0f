//! Shared sub-records of the typed security events: each is one named Avro type defined in a
//! file of its own (`metadata.avsc`, `user.avsc`, ...) and referenced by its full name.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `io.weir.Metadata`: where a typed security event came from (OCSF `metadata`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Deterministic event id: the vendor's event id, else a hash of the raw record.
    pub uid: String,
    /// The OCSF schema version the ids follow ([`ocsf::VERSION`](super::ocsf::VERSION)).
    pub version: String,
    /// Vendor, e.g. Okta.
    pub vendor_name: String,
    /// Product, e.g. System Log.
    pub product_name: String,
    /// The event time exactly as the vendor wrote it.
    pub original_time: Option<String>,
    /// The Weir source that produced the event.
    pub log_name: String,
    /// Where the raw record is on the log, `<topic>/<partition>/<offset>`.
    pub raw_ref: Option<String>,
}

/// `io.weir.User`: a user or service identity (OCSF `user`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The identity provider's or cloud's unique id.
    pub uid: Option<String>,
    /// Login or display name.
    pub name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Kind of identity as the vendor says: User, Admin, ServiceAccount, AssumedRole, ...
    pub r#type: Option<String>,
    /// Domain, tenant or directory.
    pub domain: Option<String>,
}

/// `io.weir.Device`: a managed device (OCSF `device`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// The vendor's device id.
    pub uid: Option<String>,
    /// Host name.
    pub hostname: Option<String>,
    /// Local IP address.
    pub ip: Option<String>,
    /// Operating system.
    pub os_name: Option<String>,
    /// Operating system version.
    pub os_version: Option<String>,
    /// Security agent version.
    pub agent_version: Option<String>,
}

/// `io.weir.Endpoint`: a network endpoint (OCSF `src_endpoint`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// IP address.
    pub ip: Option<String>,
    /// Port.
    pub port: Option<i32>,
    /// Host name.
    pub hostname: Option<String>,
    /// Geolocation.
    pub location: Option<Location>,
}

/// `io.weir.Location`: geolocation of an endpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// City.
    pub city: Option<String>,
    /// Country (ISO 3166-1 alpha-2 when the vendor gives it).
    pub country: Option<String>,
    /// Latitude in degrees.
    pub lat: Option<f64>,
    /// Longitude in degrees.
    pub lon: Option<f64>,
}

/// `io.weir.Cloud`: the cloud account an event happened in (OCSF `cloud`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cloud {
    /// aws, azure or gcp.
    pub provider: String,
    /// AWS account, Azure subscription or GCP project id.
    pub account_uid: Option<String>,
    /// Region.
    pub region: Option<String>,
}

/// `io.weir.Resource`: a cloud resource (OCSF `resources[]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// ARN, Azure resource id or GCP resource name.
    pub uid: String,
    /// Short name.
    pub name: Option<String>,
    /// Resource type, e.g. AWS::S3::Bucket.
    pub r#type: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Resource tags.
    pub tags: BTreeMap<String, String>,
}

/// `io.weir.App`: a SaaS or web application (OCSF `app`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// Application name.
    pub name: String,
    /// Vendor category.
    pub category: Option<String>,
    /// Vendor id of the application or its instance.
    pub uid: Option<String>,
}
