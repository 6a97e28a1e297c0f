//! Netskope REST API v2 dataexport records → [`AppActivity`] (events) and [`AppAlert`] (alerts).
//!
//! A payload is one record of a dataexport response's `result[]` (an event of any type, or an
//! alert), or a whole response `{"ok":1,"result":[record, ...]}`, which yields one output per
//! record (the records that fail share one reason). Records are flat JSON read as values, not a
//! typed struct: fields differ per event type and alert type, and an odd optional field must not
//! cost the whole record. Only `_id` (the dedupe key, `metadata.uid`) and `timestamp` (whole epoch
//! seconds) are required, plus `type` for an event; without them the record is rejected.
//!
//! A record is an *alert* when `alert` is `"yes"` and it has an `alert_type`: it becomes an
//! [`AppAlert`], OCSF 2006 Data Security Finding for `alert_type` DLP (any case), else 2004
//! Detection Finding, activity 1 Create. The events endpoints also mark an event that raised an
//! alert with `alert: "yes"`, but without `alert_type`; such a record stays an event (the alert
//! itself comes from the alerts endpoint).
//!
//! Every other record is an *event* ([`AppActivity`]), class by `type`:
//!
//! | type | class | activity |
//! | --- | --- | --- |
//! | `nspolicy`, `application` (application events) | 6001 Web Resources Activity | from `activity`, below |
//! | `connection`, `page` (page events) | 4002 HTTP Activity | from `http_method`: CONNECT 1, DELETE 2, GET 3, HEAD 4, OPTIONS 5, POST 6, PUT 7, TRACE 8, other 99, none 0 |
//! | `network` (network events) | 4001 Network Activity | 6 Traffic |
//! | anything else (`admin_audit_logs`, incident, endpoint, infrastructure, ...) | 0 Base Event, vendor JSON in `raw_data` | 0 |
//!
//! Application `activity` (ASCII case ignored) → 6001 activity: Create, Upload, Post, Attach → 1
//! Create; View, Download, Browse → 2 Read; Edit, Rename, Move → 3 Update; Delete → 4 Delete;
//! Search → 5 Search; Export → 7 Export; Share → 8 Share; missing → 0; anything else (Login
//! Attempt, FormPost, ...) → 99 Other.
//!
//! `severity_id` from `severity` (ASCII case ignored): informational, info → 1; low → 2; medium →
//! 3; high → 4; critical → 5; `unknown` or missing → 0; else 99. `status_id` from `action`: allow,
//! bypass, alert (let through) → 1 Success; block → 2 Failure; missing → 0; else (useralert,
//! ...) 99.
//!
//! Common fields: the user is `user` (else `userkey`, else `ur_normalized`), also its email when
//! it looks like one (Netskope has no user id apart from the login); the app is `app` (else the
//! page's `site`) with `appcategory` and `instance_id`; `src_endpoint` is `srcip` with the
//! `src_*` geolocation (where the gateway saw the request come from); the device is
//! `nsdeviceuid`, `hostname`, the client's own address `userip`, `os`, `os_version`. Netskope
//! writes `unknown`, `N/A` or `NotAvailable` for values it does not have; those read as absent in
//! typed fields. Fields listed in [`UNMAPPED`] are kept in `unmapped` as JSON text, verbatim: the
//! 64-bit ids (`app_session_id`, `connection_id`, `incident_id`, `request_id`, ...) exceed 2^53 and
//! are read as integers, never as floating point, so their decimal text is exact; fields that hold
//! JSON inside a string (`_dlp_backup_profile`) stay a string.

use std::collections::BTreeMap;

use serde_json::Value;
use weir_schemas::events::ocsf;
use weir_schemas::events::{App, AppActivity, AppAlert, Device, Endpoint, Location, Metadata, SecurityEvent, User};

use super::{
    brief, kind, looks_like_email, map_elements, non_empty_str, owned, parse_object, quoted, single, Mapped, Origin,
};

/// The vendor name of Netskope envelopes (`RawEnvelope::vendor`).
pub(super) const VENDOR: &str = "netskope";

/// OCSF Network Activity (category 4), for Netskope network events; the shared OCSF constants do
/// not name it because no other mapping uses it.
const NETWORK_ACTIVITY: i32 = 4001;

/// Fields kept in `unmapped` when present, not null and not empty (the records are flat, so the
/// dotted path is the field name; `supporting_data` is an object kept whole).
const UNMAPPED: &[&str] = &[
    "_dlp_backup_profile",
    "access_method",
    "acked",
    "alert",
    "all_policy_matches",
    "app_session_id",
    "appsuite",
    "audit_log_event",
    "browser",
    "browser_session_id",
    "bypass_reason",
    "bypass_traffic",
    "cci",
    "ccl",
    "client_bytes",
    "connection_id",
    "device",
    "device_classification",
    "dlp_incident_id",
    "dlp_rule_severity",
    "domain",
    "dst_country",
    "dst_location",
    "dstip",
    "dstport",
    "file_size",
    "file_type",
    "from_user",
    "incident_id",
    "is_netskope_personnel",
    "malware_id",
    "malware_name",
    "malware_type",
    "md5",
    "netskope_pop",
    "network_session_id",
    "object_id",
    "page",
    "policy_id",
    "protocol",
    "request_id",
    "server_bytes",
    "severity_level",
    "sha256",
    "site",
    "supporting_data",
    "to_user",
    "traffic_type",
    "transaction_id",
    "ur_normalized",
    "useragent",
    "userkey",
];

/// Fields an [`AppAlert`] has no typed field for but an [`AppActivity`] has; kept in an alert's
/// `unmapped` as well.
const ALERT_UNMAPPED: &[&str] = &["activity", "object_type", "type"];

/// Maps one Netskope payload: a dataexport record, or a whole response of several.
pub(super) fn normalize(payload: &[u8], origin: &Origin<'_>) -> Mapped {
    let (text, value) = match parse_object(VENDOR, payload) {
        Ok(parsed) => parsed,
        Err(reason) => return Mapped::rejected(reason),
    };
    if is_response(&value) {
        return map_elements("netskope dataexport response", "result", text, |record, raw| {
            map_record(record, raw, origin)
        });
    }
    single(map_record(&value, text, origin))
}

/// Whether a payload is a whole dataexport response rather than one record: it has `ok` or
/// `result`, and no `_id`.
fn is_response(value: &Value) -> bool {
    value.get("_id").is_none() && (value.get("result").is_some() || value.get("ok").is_some())
}

/// Maps one record; `raw` is its JSON text as received (kept in `raw_data` for unmapped types).
fn map_record(record: &Value, raw: &str, origin: &Origin<'_>) -> Result<SecurityEvent, String> {
    if !record.is_object() {
        return Err(format!("netskope record is {}, not a JSON object", kind(record)));
    }
    let alert_type = (str_field(record, "alert") == Some("yes")).then(|| str_field(record, "alert_type")).flatten();
    let noun = if alert_type.is_some() { "alert" } else { "event" };
    let id =
        str_field(record, "_id").ok_or_else(|| format!("netskope {noun}: field `_id` is missing or not a string"))?;
    let what = format!("netskope {noun} {}", brief(id));
    let (time, original_time) = event_time(record).map_err(|why| format!("{what}: field `timestamp` {why}"))?;
    let metadata = Metadata {
        uid: id.to_string(),
        version: ocsf::VERSION.to_string(),
        vendor_name: "Netskope".to_string(),
        product_name: "Netskope Security Cloud".to_string(),
        original_time: Some(original_time),
        log_name: origin.log_name.to_string(),
        raw_ref: Some(origin.raw_ref.to_string()),
    };
    if let Some(alert_type) = alert_type {
        return Ok(map_alert(record, alert_type, time, metadata).into());
    }
    let event_type =
        str_field(record, "type").ok_or_else(|| format!("{what}: field `type` is missing or not a string"))?;
    let (class_uid, activity_id) = classify(record, event_type).unwrap_or((ocsf::BASE_EVENT, 0));
    Ok(AppActivity {
        class_uid,
        category_uid: ocsf::category_uid(class_uid),
        activity_id,
        type_uid: ocsf::type_uid(class_uid, activity_id),
        severity_id: severity_id(str_field(record, "severity")),
        status_id: status_id(str_field(record, "action")),
        time,
        metadata,
        // Only audit events carry a sentence; the others are described by their fields.
        message: owned(str_field(record, "audit_log_event")),
        event_type: event_type.to_string(),
        user: user(record),
        app: app(record),
        activity: owned(known_field(record, "activity")),
        action: owned(known_field(record, "action")),
        url: owned(known_field(record, "url")),
        src_endpoint: src_endpoint(record),
        device: device(record),
        policy_name: owned(known_field(record, "policy")),
        dlp_profile: owned(known_field(record, "dlp_profile")),
        dlp_rule: owned(known_field(record, "dlp_rule")),
        object_name: owned(known_field(record, "object")),
        object_type: owned(known_field(record, "object_type")),
        bytes_in: record.get("server_bytes").and_then(Value::as_i64),
        bytes_out: record.get("client_bytes").and_then(Value::as_i64),
        unmapped: unmapped(record, UNMAPPED.iter()),
        raw_data: (class_uid == ocsf::BASE_EVENT).then(|| raw.to_string()),
    }
    .into())
}

/// Maps an alert record (its `_id` and `timestamp` already read into `metadata` and `time`).
fn map_alert(record: &Value, alert_type: &str, time: i64, metadata: Metadata) -> AppAlert {
    let class_uid =
        if alert_type.eq_ignore_ascii_case("dlp") { ocsf::DATA_SECURITY_FINDING } else { ocsf::DETECTION_FINDING };
    let severity = known_field(record, "severity").or(known_field(record, "dlp_rule_severity"));
    AppAlert {
        class_uid,
        category_uid: ocsf::category_uid(class_uid),
        activity_id: 1,
        type_uid: ocsf::type_uid(class_uid, 1),
        severity_id: severity_id(severity),
        status_id: status_id(str_field(record, "action")),
        time,
        finding_uid: metadata.uid.clone(),
        metadata,
        message: None,
        alert_type: alert_type.to_string(),
        alert_name: str_field(record, "alert_name").or(str_field(record, "policy")).unwrap_or(alert_type).to_string(),
        user: user(record),
        app: app(record),
        policy_name: owned(known_field(record, "policy")),
        severity: owned(severity),
        action: owned(known_field(record, "action")),
        url: owned(known_field(record, "url")),
        src_endpoint: src_endpoint(record),
        device: device(record),
        dlp_profile: owned(known_field(record, "dlp_profile")),
        dlp_rule: owned(known_field(record, "dlp_rule")),
        object_name: owned(known_field(record, "object")),
        unmapped: unmapped(record, UNMAPPED.iter().chain(ALERT_UNMAPPED)),
        raw_data: None,
    }
}

/// The event time in ms since the Unix epoch and as Netskope wrote it, or why `timestamp` is not
/// one (whole seconds since the epoch).
fn event_time(record: &Value) -> Result<(i64, String), String> {
    match record.get("timestamp") {
        None | Some(Value::Null) => Err("is missing".to_string()),
        Some(value) => {
            let seconds = value
                .as_i64()
                .ok_or_else(|| format!("is not whole seconds since the Unix epoch: {}", quoted(value)))?;
            let millis = seconds.checked_mul(1000).ok_or_else(|| format!("is out of range: {seconds}"))?;
            Ok((millis, seconds.to_string()))
        }
    }
}

/// The OCSF (class, activity) of an event `type`; `None` when it has no mapping.
fn classify(record: &Value, event_type: &str) -> Option<(i32, i32)> {
    match event_type {
        "nspolicy" | "application" => {
            Some((ocsf::WEB_RESOURCES_ACTIVITY, web_activity_id(str_field(record, "activity"))))
        }
        "connection" | "page" => Some((ocsf::HTTP_ACTIVITY, http_activity_id(str_field(record, "http_method")))),
        "network" => Some((NETWORK_ACTIVITY, 6)),
        _ => None,
    }
}

/// OCSF Web Resources Activity `activity_id` of an application event's `activity`.
fn web_activity_id(activity: Option<&str>) -> i32 {
    let Some(activity) = activity else { return 0 };
    let is = |names: &[&str]| names.iter().any(|name| activity.eq_ignore_ascii_case(name));
    if is(&["Create", "Upload", "Post", "Attach"]) {
        1
    } else if is(&["View", "Download", "Browse"]) {
        2
    } else if is(&["Edit", "Rename", "Move"]) {
        3
    } else if is(&["Delete"]) {
        4
    } else if is(&["Search"]) {
        5
    } else if is(&["Export"]) {
        7
    } else if is(&["Share"]) {
        8
    } else {
        ocsf::OTHER
    }
}

/// OCSF HTTP Activity `activity_id` of a request method.
fn http_activity_id(method: Option<&str>) -> i32 {
    let Some(method) = method else { return 0 };
    const METHODS: [&str; 8] = ["CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT", "TRACE"];
    METHODS.iter().position(|m| method.eq_ignore_ascii_case(m)).map_or(ocsf::OTHER, |i| i as i32 + 1)
}

/// OCSF `severity_id` of a Netskope `severity`.
fn severity_id(severity: Option<&str>) -> i32 {
    let Some(severity) = severity else { return ocsf::SEVERITY_UNKNOWN };
    match severity.to_ascii_lowercase().as_str() {
        "informational" | "info" => ocsf::SEVERITY_INFORMATIONAL,
        "low" => ocsf::SEVERITY_LOW,
        "medium" => ocsf::SEVERITY_MEDIUM,
        "high" => ocsf::SEVERITY_HIGH,
        "critical" => ocsf::SEVERITY_CRITICAL,
        "unknown" => ocsf::SEVERITY_UNKNOWN,
        _ => ocsf::OTHER,
    }
}

/// OCSF `status_id` of what the gateway did (`action`).
fn status_id(action: Option<&str>) -> i32 {
    let Some(action) = action else { return ocsf::STATUS_UNKNOWN };
    match action.to_ascii_lowercase().as_str() {
        "allow" | "bypass" | "alert" => ocsf::STATUS_SUCCESS,
        "block" => ocsf::STATUS_FAILURE,
        _ => ocsf::OTHER,
    }
}

/// Who did it: the login, which is also the email when it looks like one.
fn user(record: &Value) -> User {
    let name = known_field(record, "user").or(known_field(record, "userkey")).or(known_field(record, "ur_normalized"));
    User {
        uid: None,
        name: owned(name),
        email: owned(name.filter(|name| looks_like_email(name))),
        r#type: None,
        domain: None,
    }
}

/// The application used: `app`, else the page's `site`.
fn app(record: &Value) -> Option<App> {
    let name = known_field(record, "app").or(known_field(record, "site"))?;
    Some(App {
        name: name.to_string(),
        category: owned(known_field(record, "appcategory")),
        uid: owned(known_field(record, "instance_id")),
    })
}

/// Where the request came from, as the gateway saw it: `srcip` and its geolocation.
fn src_endpoint(record: &Value) -> Option<Endpoint> {
    let location = Location {
        city: owned(known_field(record, "src_location")),
        country: owned(known_field(record, "src_country")),
        lat: record.get("src_latitude").and_then(Value::as_f64),
        lon: record.get("src_longitude").and_then(Value::as_f64),
    };
    let location = (location != Location::default()).then_some(location);
    let ip = owned(known_field(record, "srcip"));
    (ip.is_some() || location.is_some()).then_some(Endpoint { ip, port: None, hostname: None, location })
}

/// The device used, if the record names any of it.
fn device(record: &Value) -> Option<Device> {
    let device = Device {
        uid: owned(known_field(record, "nsdeviceuid")),
        hostname: owned(known_field(record, "hostname")),
        ip: owned(known_field(record, "userip")),
        os_name: owned(known_field(record, "os")),
        os_version: owned(known_field(record, "os_version")),
        agent_version: owned(known_field(record, "client_version")),
    };
    (device != Device::default()).then_some(device)
}

/// The `fields` the record has (not null, not an empty string), as JSON text, by name.
fn unmapped<'a>(record: &Value, fields: impl Iterator<Item = &'a &'a str>) -> BTreeMap<String, String> {
    fields
        .filter_map(|&field| {
            let value = record.get(field)?;
            let absent = value.is_null() || value.as_str() == Some("");
            // `Value`'s text of an integer is its exact decimal (serde_json keeps u64/i64 exact).
            (!absent).then(|| (field.to_string(), value.to_string()))
        })
        .collect()
}

/// The non-empty string field `name` of a flat record.
fn str_field<'a>(record: &'a Value, name: &str) -> Option<&'a str> {
    record.get(name).and_then(non_empty_str)
}

/// Like [`str_field`], dropping Netskope's placeholders for a value it does not have.
fn known_field<'a>(record: &'a Value, name: &str) -> Option<&'a str> {
    str_field(record, name)
        .filter(|text| !["unknown", "N/A", "NotAvailable"].iter().any(|p| text.eq_ignore_ascii_case(p)))
}
