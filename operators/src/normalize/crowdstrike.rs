//! CrowdStrike Falcon records → [`EndpointDetection`], [`DeviceInventory`] and
//! [`IdentityActivity`].
//!
//! A payload is one of four record shapes, told apart by their fields (records are read as JSON
//! values, not typed structs: fields differ per product and event type, and an odd optional field
//! must not cost the whole record), or a whole API response `{"meta":…,"resources":[…],
//! "errors":[…]}`, which yields one output per resource (the resources that fail share one
//! reason; `resources: null` is an empty page; `errors` are the connector's business, not data):
//!
//! | shape (recognised by) | output | uid | time |
//! | --- | --- | --- | --- |
//! | Event Streams event (`metadata` and `event` objects) | below | `customerIDString:offset:eventCreationTime` | `metadata.eventCreationTime` (epoch ms) |
//! | Falcon Data Replicator event (`event_simpleName`) | below | `id` | `timestamp` (epoch-ms string) |
//! | alert, `/alerts/entities/alerts/v2` (`composite_id`) | 2004 Detection Finding | `composite_id@updated_timestamp` | `updated_timestamp`, else `timestamp` (RFC 3339) |
//! | host, `/devices/entities/devices/v2` (`device_id`) | 5001 Device Inventory Info, activity 2 Collect | `device_id@modified_timestamp` | `modified_timestamp`, else `last_seen` (RFC 3339) |
//!
//! A record of none of these shapes, or without its uid or time fields, is rejected. Alerts and
//! hosts change over time and each poll returns the current state, so their uid joins the id with
//! the time of that state: every snapshot is distinct, and a re-polled unchanged one is recognised
//! as a repeat. An Event Streams offset counts within one partition, and a customer can have
//! several, so the creation time joins the offset in the uid.
//!
//! Event Streams `eventType` and FDR `event_simpleName` (without its `Event_` prefix):
//! - `DetectionSummaryEvent`, `EppDetectionSummaryEvent`, `IdpDetectionSummaryEvent` → 2004
//!   Detection Finding, activity 1 Create;
//! - Event Streams `AuthActivityAuditEvent`, `UserActivityAuditEvent` → [`IdentityActivity`] by
//!   `OperationName`: `userAuthenticate`, `saml2Assert`, `twoFactorAuthenticate` → 3002
//!   Authentication 1 Logon; `changePassword` → 3001 Account Change 3 Password Change;
//!   `resetPassword`, `confirmResetPassword` → 3001 4 Password Reset; `createUser` → 3001 1 Create;
//!   `deleteUser` → 3001 6 Delete; `grantUserRoles` → 3005 User Access Management 1 Assign
//!   Privileges; `revokeUserRoles` → 3005 2 Revoke Privileges; any other operation → 3002 99 Other
//!   for `AuthActivityAuditEvent`, a Base Event (class 0, vendor JSON in `raw_data`) for
//!   `UserActivityAuditEvent` (most console audit, e.g. `reveal_token`, is not identity activity);
//! - anything else (FirewallMatchEvent, IncidentSummaryEvent, ProcessRollup2, DnsRequest, …) → a
//!   Base Event (class 0) carried by an [`EndpointDetection`] (the host-centred type, keyed by the
//!   device) with the vendor JSON in `raw_data`, `title` = the event type, `finding_uid` = the uid,
//!   and the device, user and process filled where the event names them.
//!
//! Alert activity from `status`: `new` → 1 Create, `closed` → 3 Close, other → 2 Update, missing
//! → 0. `severity_id` from the vendor's severity name (Informational 1, Low 2, Medium 3, High 4,
//! Critical 5, ASCII case ignored), else from the number: 1–100 (alerts, EPP and IDP summaries)
//! in bands 1–19 Informational, 20–39 Low, 40–69 Medium, 70–89 High, 90–100 Critical; 1–5 for the
//! legacy `DetectionSummaryEvent`; out of range → 99; none → 0. A finding has no success or
//! failure, so detections' `status_id` is 0 (the vendor's status is in `status`, its life cycle in
//! the activity); audit events' `status_id` comes from `Success`. Fields listed in the `*_UNMAPPED`
//! constants are kept in `unmapped` as JSON text, by dotted path from the record's root.

use std::collections::BTreeMap;

use serde_json::Value;
use weir_schemas::events::ocsf;
use weir_schemas::events::{
    Device, DeviceInventory, DevicePolicy, Endpoint, EndpointDetection, IdentityActivity, Metadata, Process,
    SecurityEvent, User,
};

use super::{
    brief, epoch_millis, kind, looks_like_email, map_elements, non_empty_str, owned, parse_object, quoted, single,
    str_at, Mapped, Origin,
};

/// The vendor name of CrowdStrike envelopes (`RawEnvelope::vendor`).
pub(super) const VENDOR: &str = "crowdstrike";

/// Alert fields kept in `unmapped` when present.
const ALERT_UNMAPPED: &[&str] = &[
    "agent_id",
    "aggregate_id",
    "cid",
    "context_timestamp",
    "created_timestamp",
    "data_domains",
    "device.external_ip",
    "device.mac_address",
    "device.machine_domain",
    "device.product_type_desc",
    "filepath",
    "id",
    "md5",
    "objective",
    "parent_details.cmdline",
    "parent_details.filepath",
    "parent_process_id",
    "pattern_disposition",
    "pattern_id",
    "process_id",
    "product",
    "scenario",
    "severity",
    "source_account_upn",
    "source_endpoint_ip_address",
    "source_products",
    "tags",
    "target_account_name",
    "target_endpoint_host_name",
    "timestamp",
    "type",
];

/// Detection summary fields (Event Streams, under `event.`; FDR, at the root) kept in `unmapped`.
const SUMMARY_UNMAPPED: &[&str] = &[
    "AggregateId",
    "DetectId",
    "FilePath",
    "GrandparentCommandLine",
    "GrandparentImageFileName",
    "HostGroups",
    "IOCType",
    "IOCValue",
    "MACAddress",
    "MD5String",
    "MachineDomain",
    "Objective",
    "ParentCommandLine",
    "ParentProcessId",
    "PatternDispositionValue",
    "PatternId",
    "ProcessId",
    "Severity",
    "Tags",
];

/// Audit event fields (under `event.`) kept in `unmapped`.
const AUDIT_UNMAPPED: &[&str] = &["OperationName", "ServiceName", "Success", "UTCTimestamp"];

/// FDR fields every FDR event keeps in `unmapped`.
const FDR_UNMAPPED: &[&str] = &["ContextTimeStamp", "aip", "cid", "event_platform", "name"];

/// Host fields kept in `unmapped` (`last_login_user` is read by the enrich operator).
const HOST_UNMAPPED: &[&str] = &[
    "agent_local_time",
    "chassis_type_desc",
    "cid",
    "connection_ip",
    "filesystem_containment_status",
    "groups",
    "kernel_version",
    "last_login_timestamp",
    "last_login_user",
    "last_login_user_sid",
    "last_reboot",
    "os_build",
    "os_product_name",
    "ou",
    "provision_status",
    "site_name",
    "system_manufacturer",
    "system_product_name",
];

/// Maps one CrowdStrike payload: a record of any of the four shapes, or an API response of several.
pub(super) fn normalize(payload: &[u8], origin: &Origin<'_>) -> Mapped {
    let (text, value) = match parse_object(VENDOR, payload) {
        Ok(parsed) => parsed,
        Err(reason) => return Mapped::rejected(reason),
    };
    match value.get("resources") {
        // CrowdStrike writes `null` for an empty page.
        Some(Value::Null) => Mapped::default(),
        Some(_) => {
            map_elements("crowdstrike API response", "resources", text, |record, raw| map_record(record, raw, origin))
        }
        None => single(map_record(&value, text, origin)),
    }
}

/// Maps one record of any shape; `raw` is its JSON text as received (kept in `raw_data` for
/// unmapped types).
fn map_record(record: &Value, raw: &str, origin: &Origin<'_>) -> Result<SecurityEvent, String> {
    if !record.is_object() {
        return Err(format!("crowdstrike record is {}, not a JSON object", kind(record)));
    }
    if record.get("metadata").is_some_and(Value::is_object) && record.get("event").is_some_and(Value::is_object) {
        stream_event(record, raw, origin)
    } else if record.get("event_simpleName").is_some() {
        fdr_event(record, raw, origin)
    } else if record.get("composite_id").is_some() {
        alert(record, origin).map(SecurityEvent::from)
    } else if record.get("device_id").is_some() {
        host(record, origin).map(SecurityEvent::from)
    } else {
        Err("crowdstrike record has none of the shapes Weir maps: not an alert (no `composite_id`), a host (no \
             `device_id`), an Event Streams event (no `metadata` and `event` objects) or a Falcon Data Replicator \
             event (no `event_simpleName`)"
            .to_string())
    }
}

/// The metadata of a CrowdStrike event.
fn metadata(uid: String, original_time: &str, origin: &Origin<'_>) -> Metadata {
    Metadata {
        uid,
        version: ocsf::VERSION.to_string(),
        vendor_name: "CrowdStrike".to_string(),
        product_name: "Falcon".to_string(),
        original_time: Some(original_time.to_string()),
        log_name: origin.log_name.to_string(),
        raw_ref: Some(origin.raw_ref.to_string()),
    }
}

// ---- alerts ----

/// Where an alert entity keeps a detection's fields.
const ALERT_FIELDS: DetectionFields = DetectionFields {
    finding_uid: &["/composite_id"],
    title: &["/display_name", "/name", "/type"],
    description: &["/description"],
    tactic: &["/tactic"],
    tactic_uid: &["/tactic_id"],
    technique: &["/technique"],
    technique_uid: &["/technique_id"],
    severity_name: &["/severity_name"],
    severity: &["/severity"],
    confidence: &["/confidence"],
    status: &["/status"],
    disposition: &["/pattern_disposition_description"],
    falcon_link: &["/falcon_host_link"],
    device_uid: &["/device/device_id", "/agent_id", "/source_endpoint_sensor_id"],
    hostname: &["/device/hostname", "/source_endpoint_host_name"],
    ip: &["/device/local_ip", "/source_endpoint_ip_address"],
    os_name: &["/device/platform_name", "/platform"],
    os_version: &["/device/os_version"],
    agent_version: &["/device/agent_version"],
    user_uid: &["/user_id", "/source_account_object_sid"],
    user_name: &["/user_name", "/source_account_name"],
    user_email: &["/user_principal", "/source_account_upn"],
    user_domain: &["/logon_domain", "/source_account_domain"],
    process_name: &["/filename"],
    pid: &["/local_process_id"],
    cmdline: &["/cmdline"],
    sha256: &["/sha256"],
    parent_name: &["/parent_details/filename"],
};

/// Maps an alert entity.
fn alert(record: &Value, origin: &Origin<'_>) -> Result<EndpointDetection, String> {
    let composite_id =
        str_at(record, "/composite_id").ok_or("crowdstrike alert: field `composite_id` is not a string")?;
    let what = format!("crowdstrike alert {}", brief(composite_id));
    let (time, time_text) = rfc3339_time(record, &["updated_timestamp", "timestamp"], &what)?;
    let activity_id = match str_at(record, "/status") {
        Some("new") => 1,
        Some("closed") => 3,
        Some(_) => 2,
        None => 0,
    };
    let detection = Detection {
        class_uid: ocsf::DETECTION_FINDING,
        activity_id,
        scale: SeverityScale::Hundred,
        time,
        metadata: metadata(format!("{composite_id}@{time_text}"), time_text, origin),
        title_fallback: composite_id,
        unmapped: unmapped(record, "", ALERT_UNMAPPED),
        raw_data: None,
    };
    Ok(detection.build(record, &ALERT_FIELDS))
}

// ---- hosts ----

/// Maps a host details entity to a snapshot of the host.
fn host(record: &Value, origin: &Origin<'_>) -> Result<DeviceInventory, String> {
    let device_id = str_at(record, "/device_id").ok_or("crowdstrike host: field `device_id` is not a string")?;
    let what = format!("crowdstrike host {}", brief(device_id));
    let (time, time_text) = rfc3339_time(record, &["modified_timestamp", "last_seen"], &what)?;
    let mut unmapped = unmapped(record, "", HOST_UNMAPPED);
    // A malformed optional time must not cost the snapshot: it is kept as the vendor wrote it.
    let mut optional_time = |field: &str| {
        let text = str_at(record, &format!("/{field}"))?;
        let millis = epoch_millis(text).ok();
        if millis.is_none() {
            unmapped.insert(field.to_string(), Value::from(text).to_string());
        }
        millis
    };
    let first_seen = optional_time("first_seen");
    let last_seen = optional_time("last_seen");
    let text = |field: &str| owned(str_at(record, &format!("/{field}")));
    Ok(DeviceInventory {
        class_uid: ocsf::DEVICE_INVENTORY_INFO,
        category_uid: ocsf::category_uid(ocsf::DEVICE_INVENTORY_INFO),
        activity_id: 2,
        type_uid: ocsf::type_uid(ocsf::DEVICE_INVENTORY_INFO, 2),
        severity_id: ocsf::SEVERITY_INFORMATIONAL,
        status_id: ocsf::STATUS_UNKNOWN,
        time,
        metadata: metadata(format!("{device_id}@{time_text}"), time_text, origin),
        message: None,
        device: Device {
            uid: Some(device_id.to_string()),
            hostname: text("hostname"),
            ip: text("local_ip"),
            os_name: text("platform_name"),
            os_version: text("os_version"),
            agent_version: text("agent_version"),
        },
        platform: text("platform_name"),
        product_type: text("product_type_desc"),
        status: text("status"),
        first_seen,
        last_seen,
        reduced_functionality_mode: match record.get("reduced_functionality_mode") {
            Some(Value::Bool(mode)) => Some(*mode),
            Some(Value::String(mode)) if mode == "yes" => Some(true),
            Some(Value::String(mode)) if mode == "no" => Some(false),
            _ => None,
        },
        policies: policies(record),
        tags: strings(record.get("tags")),
        serial: text("serial_number"),
        mac: text("mac_address"),
        external_ip: text("external_ip"),
        domain: text("machine_domain"),
        unmapped,
        raw_data: None,
    })
}

/// The policies assigned to a host: `device_policies` (one per kind), else `policies[]`; entries
/// without a `policy_id` are skipped. Sorted by kind and id, so the output does not depend on the
/// order of the vendor's object keys.
fn policies(record: &Value) -> Vec<DevicePolicy> {
    let entries: Vec<(Option<&str>, &Value)> = match (record.get("device_policies"), record.get("policies")) {
        (Some(Value::Object(by_kind)), _) => by_kind.iter().map(|(kind, p)| (Some(kind.as_str()), p)).collect(),
        (_, Some(Value::Array(list))) => list.iter().map(|p| (None, p)).collect(),
        _ => Vec::new(),
    };
    let mut policies: Vec<DevicePolicy> = entries
        .into_iter()
        .filter_map(|(kind, policy)| {
            Some(DevicePolicy {
                r#type: str_at(policy, "/policy_type").or(kind)?.to_string(),
                id: str_at(policy, "/policy_id")?.to_string(),
                applied: policy.get("applied").and_then(Value::as_bool).unwrap_or(false),
            })
        })
        .collect();
    policies.sort_by(|a, b| (&a.r#type, &a.id).cmp(&(&b.r#type, &b.id)));
    policies
}

// ---- Event Streams ----

/// Where a detection summary (Event Streams `event`, or an FDR record) keeps a detection's fields;
/// the legacy, EPP and IDP summaries name them differently, so each is a list of candidates. Also
/// used for the device, user and process of events without a mapping.
const SUMMARY_FIELDS: DetectionFields = DetectionFields {
    finding_uid: &["/CompositeId", "/DetectId"],
    title: &["/DisplayName", "/Name", "/DetectName"],
    description: &["/Description", "/DetectDescription"],
    tactic: &["/Tactic"],
    tactic_uid: &["/TacticId"],
    technique: &["/Technique"],
    technique_uid: &["/TechniqueId"],
    severity_name: &["/SeverityName"],
    severity: &["/Severity"],
    confidence: &["/Confidence"],
    status: &[],
    disposition: &["/PatternDispositionDescription"],
    falcon_link: &["/FalconHostLink"],
    device_uid: &["/AgentId", "/SensorId", "/aid", "/DeviceId", "/AgentIdString", "/HostID", "/SourceEndpointSensorId"],
    hostname: &["/Hostname", "/ComputerName", "/HostName", "/HostnameField", "/SourceEndpointHostName"],
    ip: &["/LocalIP", "/SourceEndpointIpAddress"],
    os_name: &["/Platform"],
    os_version: &["/OSVersion"],
    agent_version: &[],
    user_uid: &["/UserSid", "/SourceAccountObjectSid"],
    user_name: &["/UserName", "/SourceAccountName"],
    user_email: &["/UserPrincipal", "/SourceAccountUpn"],
    user_domain: &["/LogonDomain", "/SourceAccountDomain"],
    process_name: &["/FileName", "/ImageFileName"],
    pid: &["/LocalProcessId", "/RawProcessId"],
    cmdline: &["/CommandLine"],
    sha256: &["/SHA256String", "/SHA256HashData"],
    parent_name: &["/ParentImageFileName", "/ParentBaseFileName"],
};

/// Maps an Event Streams event by its `metadata.eventType`.
fn stream_event(line: &Value, raw: &str, origin: &Origin<'_>) -> Result<SecurityEvent, String> {
    let what = "crowdstrike Event Streams event";
    let customer = str_at(line, "/metadata/customerIDString")
        .ok_or_else(|| format!("{what}: field `metadata.customerIDString` is missing or not a string"))?;
    let offset = line
        .pointer("/metadata/offset")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("{what}: field `metadata.offset` is missing or not a whole number"))?;
    let what = format!("{what} {}:{offset}", brief(customer));
    let event_type = str_at(line, "/metadata/eventType")
        .ok_or_else(|| format!("{what}: field `metadata.eventType` is missing or not a string"))?;
    let time = line.pointer("/metadata/eventCreationTime").and_then(Value::as_i64).ok_or_else(|| {
        format!("{what}: field `metadata.eventCreationTime` is missing or not whole milliseconds since the Unix epoch")
    })?;
    let metadata = metadata(format!("{customer}:{offset}:{time}"), &time.to_string(), origin);
    let event = &line["event"];
    if let Some(scale) = detection_summary(event_type) {
        let detection = Detection {
            class_uid: ocsf::DETECTION_FINDING,
            activity_id: 1,
            scale,
            time,
            title_fallback: event_type,
            unmapped: unmapped(line, "event.", SUMMARY_UNMAPPED),
            metadata,
            raw_data: None,
        };
        return Ok(detection.build(event, &SUMMARY_FIELDS).into());
    }
    if matches!(event_type, "AuthActivityAuditEvent" | "UserActivityAuditEvent") {
        return Ok(audit_event(line, event_type, raw, time, metadata).into());
    }
    let generic = Detection {
        class_uid: ocsf::BASE_EVENT,
        activity_id: 0,
        scale: SeverityScale::Hundred,
        time,
        title_fallback: event_type,
        unmapped: BTreeMap::new(),
        metadata,
        raw_data: Some(raw.to_string()),
    };
    Ok(generic.build_generic(event, &SUMMARY_FIELDS, event_type).into())
}

/// The severity scale of a detection summary type (an FDR `event_simpleName` may carry an
/// `Event_` prefix); `None` when the type is not a detection summary.
fn detection_summary(event_type: &str) -> Option<SeverityScale> {
    match event_type.strip_prefix("Event_").unwrap_or(event_type) {
        "DetectionSummaryEvent" => Some(SeverityScale::Five),
        "EppDetectionSummaryEvent" | "IdpDetectionSummaryEvent" => Some(SeverityScale::Hundred),
        _ => None,
    }
}

/// Maps a Falcon console audit event (`AuthActivityAuditEvent`, `UserActivityAuditEvent`).
fn audit_event(line: &Value, event_type: &str, raw: &str, time: i64, metadata: Metadata) -> IdentityActivity {
    let event = &line["event"];
    let operation = str_at(event, "/OperationName");
    let (class_uid, activity_id) = match (operation, event_type) {
        (Some("userAuthenticate" | "saml2Assert" | "twoFactorAuthenticate"), _) => (ocsf::AUTHENTICATION, 1),
        (Some("changePassword"), _) => (ocsf::ACCOUNT_CHANGE, 3),
        (Some("resetPassword" | "confirmResetPassword"), _) => (ocsf::ACCOUNT_CHANGE, 4),
        (Some("createUser"), _) => (ocsf::ACCOUNT_CHANGE, 1),
        (Some("deleteUser"), _) => (ocsf::ACCOUNT_CHANGE, 6),
        (Some("grantUserRoles"), _) => (ocsf::USER_ACCESS_MANAGEMENT, 1),
        (Some("revokeUserRoles"), _) => (ocsf::USER_ACCESS_MANAGEMENT, 2),
        (_, "AuthActivityAuditEvent") => (ocsf::AUTHENTICATION, ocsf::OTHER),
        _ => (ocsf::BASE_EVENT, 0),
    };
    let login = str_at(event, "/UserId");
    let target = str_at(event, "/Attributes/target_user");
    let message = match (str_at(event, "/ServiceName"), operation) {
        (Some(service), Some(operation)) => Some(format!("{operation} ({service})")),
        (_, operation) => owned(operation),
    };
    IdentityActivity {
        class_uid,
        category_uid: ocsf::category_uid(class_uid),
        activity_id,
        type_uid: ocsf::type_uid(class_uid, activity_id),
        severity_id: ocsf::SEVERITY_UNKNOWN,
        status_id: match event.get("Success").and_then(Value::as_bool) {
            Some(true) => ocsf::STATUS_SUCCESS,
            Some(false) => ocsf::STATUS_FAILURE,
            None => ocsf::STATUS_UNKNOWN,
        },
        time,
        metadata,
        message,
        actor: User {
            uid: owned(str_at(event, "/Attributes/actor_user_uuid")),
            name: owned(login),
            email: owned(login.filter(|login| looks_like_email(login))),
            r#type: None,
            domain: None,
        },
        target_users: target
            .map(|target| User {
                uid: None,
                name: Some(target.to_string()),
                email: looks_like_email(target).then(|| target.to_string()),
                r#type: None,
                domain: None,
            })
            .into_iter()
            .collect(),
        target_groups: Vec::new(),
        app: None,
        src_endpoint: str_at(event, "/UserIp").map(|ip| Endpoint {
            ip: Some(ip.to_string()),
            port: None,
            hostname: None,
            location: None,
        }),
        user_agent: None,
        session_uid: None,
        auth_protocol: (operation == Some("saml2Assert")).then(|| "SAML2".to_string()),
        is_mfa: (operation == Some("twoFactorAuthenticate")).then_some(true),
        event_type: event_type.to_string(),
        outcome: None,
        outcome_reason: None,
        unmapped: unmapped(line, "event.", AUDIT_UNMAPPED),
        raw_data: (class_uid == ocsf::BASE_EVENT).then(|| raw.to_string()),
    }
}

// ---- Falcon Data Replicator ----

/// Maps a Falcon Data Replicator event (every value a string).
fn fdr_event(record: &Value, raw: &str, origin: &Origin<'_>) -> Result<SecurityEvent, String> {
    let simple_name = str_at(record, "/event_simpleName")
        .ok_or("crowdstrike FDR event: field `event_simpleName` is not a string".to_string())?;
    let id = str_at(record, "/id").ok_or_else(|| {
        format!("crowdstrike FDR event ({}): field `id` is missing or not a string", brief(simple_name))
    })?;
    let what = format!("crowdstrike FDR event {}", brief(id));
    let timestamp = record
        .get("timestamp")
        .filter(|v| !v.is_null())
        .ok_or_else(|| format!("{what}: field `timestamp` is missing"))?;
    let time = int(timestamp).ok_or_else(|| {
        format!("{what}: field `timestamp` is not whole milliseconds since the Unix epoch: {}", quoted(timestamp))
    })?;
    let metadata = metadata(id.to_string(), &time.to_string(), origin);
    let mut unmapped = unmapped(record, "", FDR_UNMAPPED);
    if let Some(scale) = detection_summary(simple_name) {
        unmapped.extend(self::unmapped(record, "", SUMMARY_UNMAPPED));
        let detection = Detection {
            class_uid: ocsf::DETECTION_FINDING,
            activity_id: 1,
            scale,
            time,
            title_fallback: simple_name,
            unmapped,
            metadata,
            raw_data: None,
        };
        return Ok(detection.build(record, &SUMMARY_FIELDS).into());
    }
    let generic = Detection {
        class_uid: ocsf::BASE_EVENT,
        activity_id: 0,
        scale: SeverityScale::Hundred,
        time,
        title_fallback: simple_name,
        unmapped,
        metadata,
        raw_data: Some(raw.to_string()),
    };
    Ok(generic.build_generic(record, &SUMMARY_FIELDS, simple_name).into())
}

// ---- detections ----

/// The JSON pointers of a detection's fields in one record shape, each tried in order.
struct DetectionFields {
    finding_uid: &'static [&'static str],
    title: &'static [&'static str],
    description: &'static [&'static str],
    tactic: &'static [&'static str],
    tactic_uid: &'static [&'static str],
    technique: &'static [&'static str],
    technique_uid: &'static [&'static str],
    severity_name: &'static [&'static str],
    severity: &'static [&'static str],
    confidence: &'static [&'static str],
    status: &'static [&'static str],
    disposition: &'static [&'static str],
    falcon_link: &'static [&'static str],
    device_uid: &'static [&'static str],
    hostname: &'static [&'static str],
    ip: &'static [&'static str],
    os_name: &'static [&'static str],
    os_version: &'static [&'static str],
    agent_version: &'static [&'static str],
    user_uid: &'static [&'static str],
    user_name: &'static [&'static str],
    user_email: &'static [&'static str],
    user_domain: &'static [&'static str],
    process_name: &'static [&'static str],
    pid: &'static [&'static str],
    cmdline: &'static [&'static str],
    sha256: &'static [&'static str],
    parent_name: &'static [&'static str],
}

/// How a record's numeric severity reads.
#[derive(Clone, Copy)]
enum SeverityScale {
    /// 1–5 (legacy detection summaries).
    Five,
    /// 1–100 (alerts, EPP and IDP summaries).
    Hundred,
}

/// What a detection-shaped output gets from outside its fields.
struct Detection<'a> {
    class_uid: i32,
    activity_id: i32,
    scale: SeverityScale,
    time: i64,
    metadata: Metadata,
    /// The title when the record names none.
    title_fallback: &'a str,
    unmapped: BTreeMap<String, String>,
    raw_data: Option<String>,
}

impl Detection<'_> {
    /// A detection read from `record` with `fields`; the finding id falls back to the uid.
    fn build(self, record: &Value, fields: &DetectionFields) -> EndpointDetection {
        let text = |pointers: &[&str]| owned(first_str(record, pointers));
        let severity_name = first_str(record, fields.severity_name);
        let severity = first(record, fields.severity).and_then(int);
        let user = User {
            uid: text(fields.user_uid),
            name: text(fields.user_name),
            email: owned(first_str(record, fields.user_email).filter(|email| looks_like_email(email))),
            r#type: None,
            domain: text(fields.user_domain),
        };
        let process = Process {
            name: text(fields.process_name),
            pid: first(record, fields.pid).and_then(int),
            cmdline: text(fields.cmdline),
            sha256: text(fields.sha256),
            parent_name: text(fields.parent_name),
        };
        EndpointDetection {
            class_uid: self.class_uid,
            category_uid: ocsf::category_uid(self.class_uid),
            activity_id: self.activity_id,
            type_uid: ocsf::type_uid(self.class_uid, self.activity_id),
            severity_id: severity_id(severity_name, severity, self.scale),
            status_id: ocsf::STATUS_UNKNOWN,
            time: self.time,
            message: None,
            finding_uid: first_str(record, fields.finding_uid).unwrap_or(&self.metadata.uid).to_string(),
            metadata: self.metadata,
            title: first_str(record, fields.title).unwrap_or(self.title_fallback).to_string(),
            description: text(fields.description),
            tactic: text(fields.tactic),
            tactic_uid: text(fields.tactic_uid),
            technique: text(fields.technique),
            technique_uid: text(fields.technique_uid),
            device: Device {
                uid: text(fields.device_uid),
                hostname: text(fields.hostname),
                ip: text(fields.ip),
                os_name: text(fields.os_name),
                os_version: text(fields.os_version),
                agent_version: text(fields.agent_version),
            },
            user: (user != User::default()).then_some(user),
            process: (process != Process::default()).then_some(process),
            severity: owned(severity_name),
            confidence: first(record, fields.confidence).and_then(int).and_then(|c| i32::try_from(c).ok()),
            status: text(fields.status),
            disposition: text(fields.disposition),
            falcon_link: text(fields.falcon_link),
            unmapped: self.unmapped,
            raw_data: self.raw_data,
        }
    }

    /// A Base Event for an event type without a mapping: only the device, user, process and
    /// severity are read from the record (the rest is in `raw_data`), and the title is the type.
    fn build_generic(self, record: &Value, fields: &DetectionFields, event_type: &str) -> EndpointDetection {
        let uid = self.metadata.uid.clone();
        let mut event = self.build(record, fields);
        event.finding_uid = uid;
        event.title = event_type.to_string();
        event.description = None;
        event.falcon_link = None;
        event
    }
}

/// OCSF `severity_id` from the vendor's severity name, else its number on `scale`.
fn severity_id(name: Option<&str>, number: Option<i64>, scale: SeverityScale) -> i32 {
    let by_name = name.and_then(|name| match name.to_ascii_lowercase().as_str() {
        "informational" | "info" => Some(ocsf::SEVERITY_INFORMATIONAL),
        "low" => Some(ocsf::SEVERITY_LOW),
        "medium" => Some(ocsf::SEVERITY_MEDIUM),
        "high" => Some(ocsf::SEVERITY_HIGH),
        "critical" => Some(ocsf::SEVERITY_CRITICAL),
        _ => None,
    });
    if let Some(id) = by_name {
        return id;
    }
    match (number, scale) {
        (Some(n @ 1..=5), SeverityScale::Five) => n as i32,
        (Some(1..=19), SeverityScale::Hundred) => ocsf::SEVERITY_INFORMATIONAL,
        (Some(20..=39), SeverityScale::Hundred) => ocsf::SEVERITY_LOW,
        (Some(40..=69), SeverityScale::Hundred) => ocsf::SEVERITY_MEDIUM,
        (Some(70..=89), SeverityScale::Hundred) => ocsf::SEVERITY_HIGH,
        (Some(90..=100), SeverityScale::Hundred) => ocsf::SEVERITY_CRITICAL,
        (Some(_), _) => ocsf::OTHER,
        (None, _) if name.is_some() => ocsf::OTHER,
        (None, _) => ocsf::SEVERITY_UNKNOWN,
    }
}

// ---- helpers ----

/// The event time (ms since the Unix epoch) and its text, from the first of `fields` the record
/// has; rejected, naming the field, when it is not RFC 3339.
fn rfc3339_time<'a>(record: &'a Value, fields: &[&str], what: &str) -> Result<(i64, &'a str), String> {
    let Some((field, text)) = fields.iter().find_map(|field| Some((field, str_at(record, &format!("/{field}"))?)))
    else {
        let names: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
        return Err(format!("{what}: fields {} are missing or not strings", names.join(" and ")));
    };
    let time = epoch_millis(text)
        .map_err(|why| format!("{what}: field `{field}` is not a valid RFC 3339 time: \"{}\" ({why})", brief(text)))?;
    Ok((time, text))
}

/// The first of `pointers` the record has a non-null value at.
fn first<'a>(record: &'a Value, pointers: &[&str]) -> Option<&'a Value> {
    pointers.iter().find_map(|pointer| record.pointer(pointer).filter(|v| !v.is_null()))
}

/// The first non-empty string at one of `pointers`.
fn first_str<'a>(record: &'a Value, pointers: &[&str]) -> Option<&'a str> {
    pointers.iter().find_map(|pointer| str_at(record, pointer))
}

/// A whole number written as a JSON integer or, as FDR writes every value, a decimal string.
fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The non-empty strings of a JSON array (anything else: none).
fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter_map(non_empty_str)
        .map(String::from)
        .collect()
}

/// The `paths` (dotted, after `prefix`, from the record's root) the record has, not null and not
/// an empty string, as JSON text, keyed by their full dotted path.
fn unmapped(record: &Value, prefix: &str, paths: &[&str]) -> BTreeMap<String, String> {
    paths
        .iter()
        .filter_map(|path| {
            let full = format!("{prefix}{path}");
            let value = record.pointer(&format!("/{}", full.replace('.', "/")))?;
            let absent = value.is_null() || value.as_str() == Some("");
            (!absent).then(|| (full, value.to_string()))
        })
        .collect()
}
