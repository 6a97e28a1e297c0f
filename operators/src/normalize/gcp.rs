//! Google Cloud Audit Logs (Cloud Logging `LogEntry`s carrying an `AuditLog`) →
//! [`CloudApiActivity`] (OCSF 6003 API Activity).
//!
//! A payload is one `LogEntry` (as read from `entries:list` or a Pub/Sub log sink); or an
//! `entries:list` page `{"entries":[...]}`, which yields one output per entry (the entries that
//! fail share one reason); or a structured-mode CloudEvent (Eventarc
//! `google.cloud.audit.log.v1.written`: `specversion`, `data` = the `LogEntry`). Entries are read
//! as JSON values, not a typed struct: every service writes its own `request`, `response` and
//! `metadata`, and an odd optional field must not cost the whole entry.
//!
//! `insertId`, `logName` and an RFC 3339 `timestamp` are required; without them the entry is
//! rejected. Logging treats entries with the same log, timestamp and `insertId` as duplicates, so
//! the uid is derived from exactly those (SHA-256, see `derived_uid`; the timestamp as the instant
//! it names, in ns, so two spellings of it agree). The event time is `timestamp`, cut to ms.
//!
//! An entry is an audit log when its `protoPayload."@type"` is
//! `type.googleapis.com/google.cloud.audit.AuditLog`, or when the payload has no `@type` and the
//! log is a `cloudaudit.googleapis.com` one (Google's own Eventarc test data for BigQuery leaves
//! the type out). An audit log with a `methodName` is 6003 API Activity, activity by the verb of
//! the method's last part (`CreateTopic`, `insert` → 1 Create; `get`, `list` → 2 Read;
//! `setIamPolicy`, `patch`, `update` → 3 Update; `delete` → 4 Delete; else 99 Other). Any other
//! entry is a Base Event (class 0), vendor JSON in `raw_data`.
//!
//! `severity_id` from `severity`: DEBUG, INFO, NOTICE → 1 (Admin Activity logs are all NOTICE);
//! WARNING → 3; ERROR → 4; CRITICAL, ALERT → 5; EMERGENCY → 6; DEFAULT or missing → 0; else 99.
//! `status_id` from `protoPayload.status.code` (a `google.rpc.Code`): 0 or missing → 1 Success,
//! else 2 Failure with the code's name as the error code (`PERMISSION_DENIED`) and
//! `status.message` as the message; 0 Unknown for Base Events.
//!
//! The caller is `authenticationInfo.principalEmail` (else `principalSubject`, for federated
//! identities without an email); it is also the user's key, so it is the name, not a uid: Cloud
//! Audit Logs give no other stable id. Its type is `ServiceAccount` for
//! `*.gserviceaccount.com`, else `User` for an email. `serviceAccountKeyName` (the key used) is the
//! session uid. `requestMetadata.callerIp` is the source endpoint when it is an IP or a host name
//! (else, e.g. `private`, it is kept in `unmapped`). The resource is `resourceName`, typed by the
//! entry's monitored `resource.type`; the account is `resource.labels.project_id`, else the
//! project of `logName`; the region is the resource's `region`, `location` or `zone` label.

use std::collections::BTreeMap;

use serde_json::Value;
use weir_schemas::events::ocsf;
use weir_schemas::events::{Api, Cloud, CloudActor, CloudApiActivity, Metadata, Resource, SecurityEvent, User};

use super::{
    api_activity_id, brief, caller_endpoint, derived_uid, epoch_millis, epoch_nanos, json_text, kind, looks_like_email,
    map_elements, owned, parse_object, single, str_at, unmapped_fields, Mapped, Origin,
};

/// The vendor name of Google Cloud envelopes (`RawEnvelope::vendor`).
pub(super) const VENDOR: &str = "gcp";

/// The `@type` of an audit log payload.
const AUDIT_LOG_TYPE: &str = "type.googleapis.com/google.cloud.audit.AuditLog";

/// How the log id of an audit log starts (`cloudaudit.googleapis.com%2Factivity`, ...).
const AUDIT_LOG_ID: &str = "cloudaudit.googleapis.com";

/// The names of `google.rpc.Code`s, by number.
const RPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Entry fields kept in `unmapped` when present: (dotted path, JSON pointer).
const UNMAPPED: &[(&str, &str)] = &[
    ("labels", "/labels"),
    ("logName", "/logName"),
    ("operation", "/operation"),
    ("protoPayload.authenticationInfo.principalSubject", "/protoPayload/authenticationInfo/principalSubject"),
    (
        "protoPayload.authenticationInfo.serviceAccountDelegationInfo",
        "/protoPayload/authenticationInfo/serviceAccountDelegationInfo",
    ),
    ("protoPayload.authorizationInfo", "/protoPayload/authorizationInfo"),
    ("protoPayload.metadata", "/protoPayload/metadata"),
    ("protoPayload.numResponseItems", "/protoPayload/numResponseItems"),
    ("protoPayload.requestMetadata.callerNetwork", "/protoPayload/requestMetadata/callerNetwork"),
    ("protoPayload.resourceLocation", "/protoPayload/resourceLocation"),
    ("protoPayload.serviceData", "/protoPayload/serviceData"),
    ("protoPayload.status.details", "/protoPayload/status/details"),
    ("receiveTimestamp", "/receiveTimestamp"),
    ("resource.labels", "/resource/labels"),
    ("severity", "/severity"),
];

/// Maps one Google Cloud payload: a `LogEntry`, a page of them, or a CloudEvent around one.
pub(super) fn normalize(payload: &[u8], origin: &Origin<'_>) -> Mapped {
    let (text, value) = match parse_object(VENDOR, payload) {
        Ok(parsed) => parsed,
        Err(reason) => return Mapped::rejected(reason),
    };
    // A LogEntry has neither `entries` nor `specversion`, so these cannot be confused.
    if value.get("entries").is_some() {
        return map_elements("gcp entries:list page", "entries", text, |entry, raw| map_entry(entry, raw, "", origin));
    }
    if value.get("specversion").is_some() {
        let event = match value.get("data").filter(|data| data.is_object()) {
            Some(entry) => map_entry(entry, text, "data.", origin),
            None => Err(format!(
                "gcp CloudEvent {}: field `data` is missing or not an object",
                brief(str_at(&value, "/id").unwrap_or_default())
            )),
        };
        return single(event);
    }
    single(map_entry(&value, text, "", origin))
}

/// Maps one `LogEntry`. `raw` is the vendor JSON `raw_data` keeps for a Base Event (the entry as
/// received, or the CloudEvent around it); `prefix` is the entry's path in the payload, for
/// reasons (`data.` inside a CloudEvent).
fn map_entry(entry: &Value, raw: &str, prefix: &str, origin: &Origin<'_>) -> Result<SecurityEvent, String> {
    if !entry.is_object() {
        return Err(format!("gcp log entry is {}, not a JSON object", kind(entry)));
    }
    let insert_id = str_at(entry, "/insertId").ok_or_else(|| {
        let hint = str_at(entry, "/timestamp").map(|t| format!(" (at {})", brief(t))).unwrap_or_default();
        format!("gcp log entry{hint}: field `{prefix}insertId` is missing or not a string")
    })?;
    let what = format!("gcp log entry {}", brief(insert_id));
    let log_name = str_at(entry, "/logName")
        .ok_or_else(|| format!("{what}: field `{prefix}logName` is missing or not a string"))?;
    let timestamp = str_at(entry, "/timestamp")
        .ok_or_else(|| format!("{what}: field `{prefix}timestamp` is missing or not a string"))?;
    let invalid_time = |why: String| {
        format!("{what}: field `{prefix}timestamp` is not a valid RFC 3339 time: \"{}\" ({why})", brief(timestamp))
    };
    let nanos = epoch_nanos(timestamp).map_err(invalid_time)?;
    let time = epoch_millis(timestamp).map_err(invalid_time)?;
    let uid = derived_uid(&[log_name, &nanos.to_string(), insert_id]);

    let payload = entry.get("protoPayload").filter(|payload| payload.is_object());
    let at = |pointer: &str| payload.and_then(|payload| str_at(payload, pointer));
    let log_id = log_name.split_once("/logs/").map_or("", |(_, id)| id);
    let audit = match payload.and_then(|payload| payload.get("@type")) {
        Some(payload_type) => payload_type.as_str() == Some(AUDIT_LOG_TYPE),
        None => payload.is_some() && log_id.starts_with(AUDIT_LOG_ID),
    };
    let method = at("/methodName").filter(|_| audit);
    let (class_uid, activity_id) = match method {
        Some(method) => (ocsf::API_ACTIVITY, api_activity_id(method.rsplit('.').next().unwrap_or(method))),
        None => (ocsf::BASE_EVENT, 0),
    };
    let code = payload.and_then(|payload| payload.pointer("/status/code")).and_then(Value::as_i64).unwrap_or(0);
    let status_id = match (class_uid, code) {
        (ocsf::BASE_EVENT, _) => ocsf::STATUS_UNKNOWN,
        (_, 0) => ocsf::STATUS_SUCCESS,
        _ => ocsf::STATUS_FAILURE,
    };
    let failed = status_id == ocsf::STATUS_FAILURE;
    let labels = |label: &str| str_at(entry, &format!("/resource/labels/{label}"));
    let region = labels("region").or(labels("location")).or(labels("zone"));
    let project = labels("project_id").or(log_name.strip_prefix("projects/").and_then(|rest| rest.split('/').next()));
    let address = at("/requestMetadata/callerIp");
    let mut unmapped = unmapped_fields(entry, UNMAPPED);
    if let Some(address) = address.filter(|address| caller_endpoint(address).is_none()) {
        unmapped.insert("protoPayload.requestMetadata.callerIp".to_string(), Value::from(address).to_string());
    }
    let principal = at("/authenticationInfo/principalEmail").or(at("/authenticationInfo/principalSubject"));
    let principal_type = principal.and_then(|principal| {
        if principal.ends_with(".gserviceaccount.com") {
            Some("ServiceAccount")
        } else {
            looks_like_email(principal).then_some("User")
        }
    });
    Ok(CloudApiActivity {
        class_uid,
        category_uid: ocsf::category_uid(class_uid),
        activity_id,
        type_uid: ocsf::type_uid(class_uid, activity_id),
        severity_id: severity_id(str_at(entry, "/severity")),
        status_id,
        time,
        metadata: Metadata {
            uid,
            version: ocsf::VERSION.to_string(),
            vendor_name: "Google Cloud".to_string(),
            product_name: if audit { "Cloud Audit Logs" } else { "Cloud Logging" }.to_string(),
            original_time: Some(timestamp.to_string()),
            log_name: origin.log_name.to_string(),
            raw_ref: Some(origin.raw_ref.to_string()),
        },
        message: None,
        cloud: Cloud { provider: VENDOR.to_string(), account_uid: owned(project), region: owned(region) },
        actor: CloudActor {
            user: User {
                uid: None,
                name: owned(principal),
                email: owned(principal.filter(|principal| looks_like_email(principal))),
                r#type: owned(principal_type),
                domain: None,
            },
            session_uid: owned(at("/authenticationInfo/serviceAccountKeyName")),
            ..CloudActor::default()
        },
        api: Api {
            operation: method.unwrap_or_default().to_string(),
            service: owned(at("/serviceName")),
            ..Api::default()
        },
        src_endpoint: address.and_then(caller_endpoint),
        user_agent: owned(at("/requestMetadata/callerSuppliedUserAgent")),
        resources: at("/resourceName")
            .map(|name| Resource {
                uid: name.to_string(),
                name: owned(name.rsplit('/').find(|segment| !segment.is_empty())),
                r#type: owned(str_at(entry, "/resource/type")),
                region: owned(region),
                tags: BTreeMap::new(),
            })
            .into_iter()
            .collect(),
        error_code: failed.then(|| code_name(code)),
        error_message: owned(at("/status/message").filter(|_| failed)),
        request_data: json_text(payload.and_then(|payload| payload.get("request"))),
        response_data: json_text(payload.and_then(|payload| payload.get("response"))),
        unmapped,
        raw_data: (class_uid == ocsf::BASE_EVENT).then(|| raw.to_string()),
    }
    .into())
}

/// The name of a `google.rpc.Code` (`PERMISSION_DENIED`), or its number when it has none.
fn code_name(code: i64) -> String {
    usize::try_from(code)
        .ok()
        .and_then(|index| RPC_CODES.get(index))
        .map_or_else(|| code.to_string(), |n| n.to_string())
}

/// OCSF `severity_id` of a `LogEntry` `severity`.
fn severity_id(severity: Option<&str>) -> i32 {
    match severity {
        Some("DEBUG" | "INFO" | "NOTICE") => ocsf::SEVERITY_INFORMATIONAL,
        Some("WARNING") => ocsf::SEVERITY_MEDIUM,
        Some("ERROR") => ocsf::SEVERITY_HIGH,
        Some("CRITICAL" | "ALERT") => ocsf::SEVERITY_CRITICAL,
        Some("EMERGENCY") => ocsf::SEVERITY_FATAL,
        Some("DEFAULT") | None => ocsf::SEVERITY_UNKNOWN,
        Some(_) => ocsf::OTHER,
    }
}
