//! Rust types for every schema in `schemas/avro/`, one struct (or enum) per Avro named type.
//!
//! Field names are exactly the Avro field names, nullable unions are `Option`s, maps are
//! `BTreeMap`s (deterministic order), `bytes` are `Vec<u8>`, and type names equal the Avro names
//! (apache-avro's deserializer checks them). Every struct denies unknown fields, so a type that
//! drifts from its `.avsc` fails to encode or decode instead of losing data (the crate's tests
//! round-trip every type and compare it with its schema field by field). Top-level types
//! implement [`AvroRecord`](crate::AvroRecord).
//!
//! - [`common`]: the shared sub-records of typed security events (`Metadata`, `User`, ...);
//! - [`security`]: typed security events, aligned with OCSF classes (see [`ocsf`]);
//! - [`pipeline`]: what Weir's own stages write: raw envelopes, enriched events, decisions,
//!   violations, window aggregates, dead letters;
//! - [`directory`]: directory snapshots (`Identity`): state the enrich operator keeps, not events.

#![warn(missing_docs)]

pub mod common;
pub mod directory;
pub mod pipeline;
pub mod security;

pub use common::*;
pub use directory::*;
pub use pipeline::*;
pub use security::*;

/// Implements [`AvroRecord`](crate::AvroRecord) for top-level types.
macro_rules! avro_records {
    ($($ty:ty => $name:literal),* $(,)?) => {
        $(impl crate::AvroRecord for $ty {
            const SCHEMA_NAME: &'static str = $name;
        })*
    };
}

avro_records! {
    RawEnvelope => "io.weir.RawEnvelope",
    IdentityActivity => "io.weir.IdentityActivity",
    AppActivity => "io.weir.AppActivity",
    AppAlert => "io.weir.AppAlert",
    EndpointDetection => "io.weir.EndpointDetection",
    DeviceInventory => "io.weir.DeviceInventory",
    CloudApiActivity => "io.weir.CloudApiActivity",
    ResourceChange => "io.weir.ResourceChange",
    EnrichedEvent => "io.weir.EnrichedEvent",
    PolicyDecision => "io.weir.PolicyDecision",
    Violation => "io.weir.Violation",
    WindowAggregate => "io.weir.WindowAggregate",
    DeadLetter => "io.weir.DeadLetter",
    Identity => "io.weir.Identity",
}

/// OCSF ids used by Weir's typed events (OCSF 1.3).
pub mod ocsf {
    /// The OCSF schema version the ids follow; goes in `metadata.version`.
    pub const VERSION: &str = "1.3.0";

    /// Base Event: a vendor event type the normalizer does not map (`raw_data` is set).
    pub const BASE_EVENT: i32 = 0;
    /// Detection Finding (category 2 Findings).
    pub const DETECTION_FINDING: i32 = 2004;
    /// Data Security Finding (category 2 Findings).
    pub const DATA_SECURITY_FINDING: i32 = 2006;
    /// Account Change (category 3 Identity & Access Management).
    pub const ACCOUNT_CHANGE: i32 = 3001;
    /// Authentication (category 3).
    pub const AUTHENTICATION: i32 = 3002;
    /// User Access Management (category 3).
    pub const USER_ACCESS_MANAGEMENT: i32 = 3005;
    /// Group Management (category 3).
    pub const GROUP_MANAGEMENT: i32 = 3006;
    /// HTTP Activity (category 4 Network Activity).
    pub const HTTP_ACTIVITY: i32 = 4002;
    /// Device Inventory Info (category 5 Discovery).
    pub const DEVICE_INVENTORY_INFO: i32 = 5001;
    /// Cloud Resources Inventory Info (category 5 Discovery).
    pub const CLOUD_RESOURCES_INVENTORY_INFO: i32 = 5023;
    /// Web Resources Activity (category 6 Application Activity).
    pub const WEB_RESOURCES_ACTIVITY: i32 = 6001;
    /// API Activity (category 6 Application Activity).
    pub const API_ACTIVITY: i32 = 6003;

    /// `severity_id`: Unknown.
    pub const SEVERITY_UNKNOWN: i32 = 0;
    /// `severity_id`: Informational.
    pub const SEVERITY_INFORMATIONAL: i32 = 1;
    /// `severity_id`: Low.
    pub const SEVERITY_LOW: i32 = 2;
    /// `severity_id`: Medium.
    pub const SEVERITY_MEDIUM: i32 = 3;
    /// `severity_id`: High.
    pub const SEVERITY_HIGH: i32 = 4;
    /// `severity_id`: Critical.
    pub const SEVERITY_CRITICAL: i32 = 5;
    /// `severity_id`: Fatal.
    pub const SEVERITY_FATAL: i32 = 6;
    /// `severity_id` and `status_id`: Other.
    pub const OTHER: i32 = 99;

    /// `status_id`: Unknown.
    pub const STATUS_UNKNOWN: i32 = 0;
    /// `status_id`: Success.
    pub const STATUS_SUCCESS: i32 = 1;
    /// `status_id`: Failure.
    pub const STATUS_FAILURE: i32 = 2;

    /// `category_uid` of a class.
    pub const fn category_uid(class_uid: i32) -> i32 {
        class_uid / 1000
    }

    /// `type_uid` of a class and activity: `class_uid * 100 + activity_id`.
    pub const fn type_uid(class_uid: i32, activity_id: i32) -> i64 {
        class_uid as i64 * 100 + activity_id as i64
    }
}
