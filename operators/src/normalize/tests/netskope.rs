//! Netskope: golden files of vendor samples, then one unit test per mapping rule and per kind of
//! bad input.

use serde_json::{json, Value};
use weir_schemas::component::Output;
use weir_schemas::events::{App, AppActivity, AppAlert, Device, SecurityEvent, User};

use super::{normalize_input, vendor_input};

/// Runs one Netskope payload through a default normalizer, at offset 3.
fn run(payload: &[u8]) -> Output {
    normalize_input(&vendor_input("netskope", payload, 3))
}

/// The events an output holds, checking each record's timestamp and key against its event.
fn events(out: &Output) -> Vec<SecurityEvent> {
    out.records
        .iter()
        .map(|record| {
            let event = SecurityEvent::decode(&record.value).expect("outputs decode");
            assert_eq!(record.timestamp_ms, event.time(), "the record timestamp is the event time");
            let user = match &event {
                SecurityEvent::App(e) => &e.user,
                SecurityEvent::AppAlert(e) => &e.user,
                other => panic!("unexpected {}", other.schema_name()),
            };
            let key = user.uid.as_ref().or(user.name.as_ref()).map(|k| k.as_bytes().to_vec());
            assert_eq!(record.key, key, "the record key is the user");
            event
        })
        .collect()
}

/// The one event `payload` maps to, failing if anything was rejected.
fn one(payload: &str) -> SecurityEvent {
    let out = run(payload.as_bytes());
    assert!(out.rejected.is_empty(), "rejected: {:?}", out.rejected);
    let mut events = events(&out);
    assert_eq!(events.len(), 1);
    events.remove(0)
}

/// The one [`AppActivity`] `record` maps to.
fn activity(record: &Value) -> AppActivity {
    match one(&record.to_string()) {
        SecurityEvent::App(event) => event,
        other => panic!("expected an AppActivity, got {}", other.schema_name()),
    }
}

/// The one [`AppAlert`] `record` maps to.
fn alert(record: &Value) -> AppAlert {
    match one(&record.to_string()) {
        SecurityEvent::AppAlert(event) => event,
        other => panic!("expected an AppAlert, got {}", other.schema_name()),
    }
}

/// The reason `payload` was rejected for, checking that nothing was emitted and that the vendor
/// bytes were kept.
fn rejection(payload: &[u8]) -> String {
    super::rejection_of("netskope", payload)
}

/// An application event written for these tests (not a vendor sample).
fn app_event() -> Value {
    json!({
        "_id": "aa11bb22cc33dd44ee55ff66",
        "timestamp": 1_714_675_581,
        "type": "nspolicy",
        "access_method": "Client",
        "user": "ada@example.com",
        "userkey": "ada@example.com",
        "app": "Box",
        "appcategory": "Cloud Storage",
        "instance_id": "example-box",
        "activity": "Upload",
        "action": "allow",
        "severity": "high",
        "url": "app.box.com/upload",
        "srcip": "198.51.100.7",
        "src_location": "London",
        "src_country": "GB",
        "src_latitude": 51.5,
        "src_longitude": -0.12,
        "userip": "10.0.0.7",
        "hostname": "ADA-LAPTOP",
        "nsdeviceuid": "ns-device-1",
        "os": "Windows 11",
        "os_version": "Windows 11",
        "policy": "Sanctioned storage",
        "dlp_profile": "PII",
        "dlp_rule": "Credit cards",
        "object": "q3-forecast.xlsx",
        "object_type": "File",
        "client_bytes": 2048,
        "server_bytes": 512
    })
}

/// An alert written for these tests (not a vendor sample).
fn alert_record(alert_type: &str) -> Value {
    let mut record = app_event();
    record["alert"] = json!("yes");
    record["alert_type"] = json!(alert_type);
    record["alert_name"] = json!("Upload of PII");
    record["action"] = json!("block");
    record
}

// ---- golden files ----

/// Every Netskope sample in `operators/tests/golden/netskope/` maps exactly as its expected file
/// says.
#[test]
fn golden_files_match() {
    super::check_golden_files("netskope");
}

// ---- events ----

#[test]
fn application_event_is_web_resources_activity() {
    let event = activity(&app_event());
    assert_eq!((event.class_uid, event.category_uid, event.activity_id, event.type_uid), (6001, 6, 1, 600101));
    assert_eq!((event.severity_id, event.status_id), (4, 1));
    assert_eq!(event.time, 1_714_675_581_000);
    assert_eq!(event.metadata.uid, "aa11bb22cc33dd44ee55ff66");
    assert_eq!(event.metadata.original_time.as_deref(), Some("1714675581"));
    assert_eq!(
        (event.metadata.vendor_name.as_str(), event.metadata.product_name.as_str()),
        ("Netskope", "Netskope Security Cloud")
    );
    assert_eq!(event.metadata.raw_ref.as_deref(), Some("raw.netskope/0/3"));
    assert_eq!(event.event_type, "nspolicy");
    assert_eq!(
        event.user,
        User {
            uid: None,
            name: Some("ada@example.com".into()),
            email: Some("ada@example.com".into()),
            r#type: None,
            domain: None
        }
    );
    assert_eq!(
        event.app,
        Some(App { name: "Box".into(), category: Some("Cloud Storage".into()), uid: Some("example-box".into()) })
    );
    assert_eq!(
        event.device,
        Some(Device {
            uid: Some("ns-device-1".into()),
            hostname: Some("ADA-LAPTOP".into()),
            ip: Some("10.0.0.7".into()),
            os_name: Some("Windows 11".into()),
            os_version: Some("Windows 11".into()),
            agent_version: None,
        })
    );
    let endpoint = event.src_endpoint.expect("srcip is the source endpoint");
    assert_eq!(endpoint.ip.as_deref(), Some("198.51.100.7"));
    let location = endpoint.location.expect("geolocated");
    assert_eq!((location.city.as_deref(), location.country.as_deref()), (Some("London"), Some("GB")));
    assert_eq!((event.activity.as_deref(), event.action.as_deref()), (Some("Upload"), Some("allow")));
    assert_eq!(event.url.as_deref(), Some("app.box.com/upload"));
    assert_eq!(event.policy_name.as_deref(), Some("Sanctioned storage"));
    assert_eq!((event.dlp_profile.as_deref(), event.dlp_rule.as_deref()), (Some("PII"), Some("Credit cards")));
    assert_eq!((event.object_name.as_deref(), event.object_type.as_deref()), (Some("q3-forecast.xlsx"), Some("File")));
    assert_eq!((event.bytes_in, event.bytes_out), (Some(512), Some(2048)), "the client sent client_bytes");
    assert_eq!(event.unmapped.get("access_method").map(String::as_str), Some("\"Client\""));
    assert_eq!(event.raw_data, None, "mapped events do not repeat the vendor JSON");
}

#[test]
fn application_activities() {
    let cases = [
        ("Upload", 1),
        ("post", 1),
        ("Download", 2),
        ("View", 2),
        ("Edit", 3),
        ("Delete", 4),
        ("Search", 5),
        ("Export", 7),
        ("Share", 8),
        ("Login Successful", 99),
        ("FormPost", 99),
    ];
    for (name, activity_id) in cases {
        let mut record = app_event();
        record["activity"] = json!(name);
        assert_eq!(activity(&record).type_uid, 600100 + activity_id, "{name}");
    }
    let mut record = app_event();
    record.as_object_mut().expect("an object").remove("activity");
    assert_eq!(activity(&record).activity_id, 0, "no activity is unknown");
}

#[test]
fn page_and_connection_events_are_http_activity_by_method() {
    for (event_type, method, activity_id) in [
        ("page", Some("GET"), 3),
        ("page", Some("post"), 6),
        ("connection", Some("CONNECT"), 1),
        ("connection", Some("PATCH"), 99),
        ("connection", None, 0),
    ] {
        let mut record = app_event();
        record["type"] = json!(event_type);
        if let Some(method) = method {
            record["http_method"] = json!(method);
        }
        let event = activity(&record);
        assert_eq!(
            (event.class_uid, event.category_uid, event.type_uid),
            (4002, 4, 400200 + activity_id),
            "{method:?}"
        );
    }
}

#[test]
fn network_event_is_network_activity_traffic() {
    let mut record = app_event();
    record["type"] = json!("network");
    let event = activity(&record);
    assert_eq!((event.class_uid, event.category_uid, event.activity_id, event.type_uid), (4001, 4, 6, 400106));
}

#[test]
fn page_event_without_app_names_the_site() {
    let mut record = app_event();
    record["type"] = json!("page");
    record.as_object_mut().expect("an object").remove("app");
    record["site"] = json!("box");
    assert_eq!(activity(&record).app.map(|app| app.name), Some("box".to_string()));
}

#[test]
fn severity_and_status() {
    for (severity, action, severity_id, status_id) in [
        (json!("informational"), json!("bypass"), 1, 1),
        (json!("Low"), json!("alert"), 2, 1),
        (json!("medium"), json!("block"), 3, 2),
        (json!("critical"), json!("useralert"), 5, 99),
        (json!("severe"), Value::Null, 99, 0),
        (json!("unknown"), Value::Null, 0, 0),
        (Value::Null, Value::Null, 0, 0),
    ] {
        let mut record = app_event();
        record["severity"] = severity;
        record["action"] = action;
        let event = activity(&record);
        assert_eq!((event.severity_id, event.status_id), (severity_id, status_id), "{record}");
    }
}

#[test]
fn placeholders_read_as_absent() {
    let mut record = app_event();
    record["os"] = json!("unknown");
    record["os_version"] = json!("N/A");
    record["hostname"] = json!("NotAvailable");
    let device = activity(&record).device.expect("the device still has an id and address");
    assert_eq!((device.os_name, device.os_version, device.hostname), (None, None, None));
}

#[test]
fn ids_beyond_2_pow_53_stay_exact() {
    // Written as text: a JSON literal is what the vendor sends, and 2^53 + 1 is not an f64.
    let payload = r#"{"_id":"id-1","timestamp":1700000000,"type":"nspolicy","user":"ada@example.com",
        "app_session_id":9007199254740993,"connection_id":18446744073709551615,
        "request_id":2613596205044864769,"transaction_id":0}"#;
    let SecurityEvent::App(event) = one(payload) else { panic!("an AppActivity") };
    let id = |name: &str| event.unmapped.get(name).map(String::as_str);
    assert_eq!(id("app_session_id"), Some("9007199254740993"));
    assert_eq!(id("connection_id"), Some("18446744073709551615"));
    assert_eq!(id("request_id"), Some("2613596205044864769"));
    assert_eq!(id("transaction_id"), Some("0"));
}

#[test]
fn json_in_a_string_stays_a_string() {
    let mut record = app_event();
    let profiles = r#"[{"policy":"p","profile":"PII","action":"block"}]"#;
    record["_dlp_backup_profile"] = json!(profiles);
    let event = activity(&record);
    let kept = event.unmapped.get("_dlp_backup_profile").expect("kept");
    assert_eq!(serde_json::from_str::<Value>(kept).expect("JSON text"), json!(profiles), "a JSON string, not an array");
}

#[test]
fn unknown_event_type_is_a_base_event_with_the_vendor_json() {
    let payload = r#"{"_id":"e5ca619b","timestamp":1702308331,"type":"admin_audit_logs","user":"admin@example.com","audit_log_event":"Login Successful","severity_level":2}"#;
    let SecurityEvent::App(event) = one(payload) else { panic!("an AppActivity") };
    assert_eq!((event.class_uid, event.category_uid, event.activity_id, event.type_uid), (0, 0, 0, 0));
    assert_eq!(event.raw_data.as_deref(), Some(payload), "the vendor JSON, verbatim");
    assert_eq!(event.event_type, "admin_audit_logs");
    assert_eq!(event.user.name.as_deref(), Some("admin@example.com"), "the common fields are still mapped");
    assert_eq!(event.message.as_deref(), Some("Login Successful"));
}

// ---- alerts ----

#[test]
fn dlp_alert_is_a_data_security_finding() {
    let alert = alert(&alert_record("DLP"));
    assert_eq!((alert.class_uid, alert.category_uid, alert.activity_id, alert.type_uid), (2006, 2, 1, 200601));
    assert_eq!(alert.finding_uid, "aa11bb22cc33dd44ee55ff66");
    assert_eq!((alert.alert_type.as_str(), alert.alert_name.as_str()), ("DLP", "Upload of PII"));
    assert_eq!((alert.severity_id, alert.severity.as_deref()), (4, Some("high")));
    assert_eq!((alert.status_id, alert.action.as_deref()), (2, Some("block")));
    assert_eq!(alert.user.email.as_deref(), Some("ada@example.com"));
    assert_eq!(alert.app.map(|app| app.name), Some("Box".to_string()));
    assert_eq!((alert.dlp_profile.as_deref(), alert.object_name.as_deref()), (Some("PII"), Some("q3-forecast.xlsx")));
    assert_eq!(alert.unmapped.get("activity").map(String::as_str), Some("\"Upload\""), "no typed field holds it");
    assert_eq!(alert.raw_data, None);
}

#[test]
fn other_alerts_are_detection_findings() {
    for alert_type in ["policy", "malware", "uba", "compromisedcredential", "watchlist"] {
        let alert = alert(&alert_record(alert_type));
        assert_eq!((alert.class_uid, alert.type_uid), (2004, 200401), "{alert_type}");
    }
}

#[test]
fn alert_name_falls_back_to_the_policy_and_severity_to_the_dlp_rule() {
    let mut record = alert_record("dlp");
    record.as_object_mut().expect("an object").remove("alert_name");
    record["severity"] = json!("unknown");
    record["dlp_rule_severity"] = json!("Medium");
    let alert = alert(&record);
    assert_eq!(alert.alert_name, "Sanctioned storage");
    assert_eq!((alert.severity_id, alert.severity.as_deref()), (3, Some("Medium")));
}

#[test]
fn alert_flag_without_alert_type_is_an_event() {
    let mut record = app_event();
    record["alert"] = json!("yes");
    let event = activity(&record);
    assert_eq!(event.class_uid, 6001);
    assert_eq!(event.unmapped.get("alert").map(String::as_str), Some("\"yes\""));
}

// ---- responses ----

#[test]
fn a_response_maps_every_record_and_rejects_only_the_bad_ones() {
    let mut bad = app_event();
    bad.as_object_mut().expect("an object").remove("_id");
    let payload = json!({"ok": 1, "result": [app_event(), bad, alert_record("malware")], "wait_time": 0}).to_string();
    let out = run(payload.as_bytes());
    let events = events(&out);
    assert!(matches!(events.as_slice(), [SecurityEvent::App(_), SecurityEvent::AppAlert(_)]), "in payload order");
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(
        out.rejected[0].reason,
        "netskope dataexport response: 1 of 3 events rejected, the other 2 emitted: result[1]: netskope event: \
         field `_id` is missing or not a string"
    );
    assert_eq!(out.rejected[0].original, payload.as_bytes());

    let empty = run(br#"{"ok":1,"result":[],"wait_time":30}"#);
    assert!(empty.records.is_empty() && empty.rejected.is_empty(), "an empty page is nothing to map");
}

// ---- bad input ----

#[test]
fn bad_payloads_are_rejected_with_their_reason() {
    assert_eq!(rejection(b"not json"), "netskope payload is not JSON: expected ident at line 1 column 2");
    assert_eq!(rejection(b"[1]"), "netskope payload is an array, not a JSON object");
    assert!(rejection(b"\xff").starts_with("netskope payload is not JSON: it is not UTF-8"));
    assert_eq!(
        rejection(br#"{"ok":1,"result":{"_id":"x"}}"#),
        "netskope dataexport response: field `result` is not an array"
    );
    assert_eq!(
        rejection(br#"{"ok":1,"result":[7]}"#),
        "netskope dataexport response: all 1 events rejected: result[0]: netskope record is a number, not a JSON object"
    );
}

#[test]
fn records_without_id_time_or_type_are_rejected() {
    let without = |field: &str| {
        let mut record = app_event();
        record.as_object_mut().expect("an object").remove(field);
        record.to_string()
    };
    let with_time = |time: Value| {
        let mut record = app_event();
        record["timestamp"] = time;
        record.to_string()
    };
    let cases = [
        (without("_id"), "netskope event: field `_id` is missing or not a string"),
        (without("timestamp"), "netskope event aa11bb22cc33dd44ee55ff66: field `timestamp` is missing"),
        (without("type"), "netskope event aa11bb22cc33dd44ee55ff66: field `type` is missing or not a string"),
        (
            with_time(json!("2024-05-02T18:46:21Z")),
            "netskope event aa11bb22cc33dd44ee55ff66: field `timestamp` is not whole seconds since the Unix epoch: \
             \"2024-05-02T18:46:21Z\"",
        ),
        (
            with_time(json!(1.7e9)),
            "netskope event aa11bb22cc33dd44ee55ff66: field `timestamp` is not whole seconds since the Unix epoch: \
             1700000000.0",
        ),
        (
            with_time(json!(i64::MAX)),
            "netskope event aa11bb22cc33dd44ee55ff66: field `timestamp` is out of range: 9223372036854775807",
        ),
    ];
    for (payload, reason) in cases {
        assert_eq!(rejection(payload.as_bytes()), reason);
    }
    let mut alert = alert_record("dlp");
    alert["timestamp"] = Value::Null;
    assert_eq!(
        rejection(alert.to_string().as_bytes()),
        "netskope alert aa11bb22cc33dd44ee55ff66: field `timestamp` is missing"
    );
}

#[test]
fn netskope_and_crowdstrike_are_known_vendors() {
    use crate::normalize::{Normalize, NormalizeConfig, Vendor};
    for name in ["netskope", "crowdstrike"] {
        assert!(Normalize::new(NormalizeConfig { vendor: Some(name.into()) }).is_ok(), "{name}");
        assert!(Vendor::KNOWN.split(", ").any(|known| known == name), "{name} is listed");
    }
}
