//! CrowdStrike: golden files of vendor samples and synthetic records, then one unit test per
//! mapping rule and per kind of bad input.

use serde_json::{json, Value};
use weir_schemas::component::Output;
use weir_schemas::events::{
    Device, DeviceInventory, DevicePolicy, EndpointDetection, IdentityActivity, Process, SecurityEvent, User,
};

use super::{normalize_input, vendor_input};

/// Runs one CrowdStrike payload through a default normalizer, at offset 5.
fn run(payload: &[u8]) -> Output {
    normalize_input(&vendor_input("crowdstrike", payload, 5))
}

/// The events an output holds, checking each record's timestamp and key against its event.
fn events(out: &Output) -> Vec<SecurityEvent> {
    out.records
        .iter()
        .map(|record| {
            let event = SecurityEvent::decode(&record.value).expect("outputs decode");
            assert_eq!(record.timestamp_ms, event.time(), "the record timestamp is the event time");
            let key = match &event {
                SecurityEvent::EndpointDetection(e) => e.device.uid.clone(),
                SecurityEvent::DeviceInventory(e) => e.device.uid.clone(),
                SecurityEvent::Identity(e) => e.actor.uid.clone().or(e.actor.name.clone()),
                other => panic!("unexpected {}", other.schema_name()),
            };
            assert_eq!(record.key, key.map(String::into_bytes), "the record key is the device or actor");
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

/// The one [`EndpointDetection`] `record` maps to.
fn detection(record: &Value) -> EndpointDetection {
    match one(&record.to_string()) {
        SecurityEvent::EndpointDetection(event) => event,
        other => panic!("expected an EndpointDetection, got {}", other.schema_name()),
    }
}

/// The one [`DeviceInventory`] `record` maps to.
fn inventory(record: &Value) -> DeviceInventory {
    match one(&record.to_string()) {
        SecurityEvent::DeviceInventory(event) => event,
        other => panic!("expected a DeviceInventory, got {}", other.schema_name()),
    }
}

/// The one [`IdentityActivity`] `record` maps to.
fn identity(record: &Value) -> IdentityActivity {
    match one(&record.to_string()) {
        SecurityEvent::Identity(event) => event,
        other => panic!("expected an IdentityActivity, got {}", other.schema_name()),
    }
}

/// The reason `payload` was rejected for, checking that nothing was emitted and that the vendor
/// bytes were kept.
fn rejection(payload: &[u8]) -> String {
    super::rejection_of("crowdstrike", payload)
}

/// Removes `field` from a JSON object.
fn without(mut record: Value, field: &str) -> Value {
    record.as_object_mut().expect("an object").remove(field);
    record
}

/// An alert entity written for these tests (invented values in the documented shape).
fn alert() -> Value {
    json!({
        "composite_id": "cid0:ind:dev1:42-10197-1",
        "id": "ind:dev1:42-10197-1",
        "cid": "cid0",
        "agent_id": "dev1",
        "product": "epp",
        "type": "ldt",
        "name": "EncodedPowerShell",
        "display_name": "Encoded PowerShell",
        "description": "PowerShell ran an encoded command.",
        "severity": 72,
        "severity_name": "High",
        "confidence": 80,
        "status": "new",
        "tactic": "Execution",
        "tactic_id": "TA0002",
        "technique": "PowerShell",
        "technique_id": "T1059.001",
        "created_timestamp": "2024-03-12T09:15:11Z",
        "updated_timestamp": "2024-03-12T09:20:42.5Z",
        "timestamp": "2024-03-12T09:14:07Z",
        "falcon_host_link": "https://falcon.example.com/detections/42",
        "device": {"device_id": "dev1", "hostname": "HOST-1", "local_ip": "10.0.0.1", "platform_name": "Windows", "os_version": "Windows 11", "agent_version": "7.14.1"},
        "user_id": "S-1-5-21-1-2-3-1001",
        "user_name": "ada",
        "logon_domain": "CORP",
        "filename": "powershell.exe",
        "local_process_id": "6120",
        "cmdline": "powershell.exe -enc AAAA",
        "sha256": "ab".repeat(32),
        "parent_details": {"filename": "explorer.exe"},
        "pattern_disposition_description": "Prevention, process blocked."
    })
}

/// A host details entity written for these tests.
fn host() -> Value {
    json!({
        "device_id": "dev1",
        "cid": "cid0",
        "hostname": "HOST-1",
        "local_ip": "10.0.0.1",
        "external_ip": "203.0.113.1",
        "mac_address": "02-00-00-00-00-01",
        "platform_name": "Windows",
        "os_version": "Windows 11",
        "agent_version": "7.14.1",
        "product_type_desc": "Workstation",
        "status": "normal",
        "first_seen": "2023-01-01T00:00:00Z",
        "last_seen": "2024-03-16T08:01:00Z",
        "modified_timestamp": "2024-03-16T08:02:00Z",
        "reduced_functionality_mode": "no",
        "machine_domain": "CORP",
        "serial_number": "SN1",
        "tags": ["FalconGroupingTags/CrownJewel", ""],
        "last_login_user": "ada",
        "device_policies": {
            "sensor_update": {"policy_type": "sensor-update", "policy_id": "p2", "applied": true},
            "prevention": {"policy_type": "prevention", "policy_id": "p1", "applied": false},
            "firewall": {"policy_type": "firewall", "applied": true}
        },
        "policies": [{"policy_type": "prevention", "policy_id": "ignored", "applied": true}]
    })
}

/// An Event Streams line written for these tests.
fn stream(event_type: &str, event: Value) -> Value {
    json!({
        "metadata": {"customerIDString": "cid0", "offset": 1001, "eventType": event_type, "eventCreationTime": 1_710_400_000_123_i64, "version": "1.0"},
        "event": event
    })
}

/// An audit event of an Event Streams line.
fn audit(operation: &str, success: Option<bool>) -> Value {
    let mut event = json!({
        "UserId": "analyst@example.com",
        "UserIp": "192.0.2.10",
        "OperationName": operation,
        "ServiceName": "CrowdStrike Authentication",
        "UTCTimestamp": 1_710_400_000,
        "Attributes": {"actor_user_uuid": "uuid-1", "target_user": "bob@example.com"}
    });
    if let Some(success) = success {
        event["Success"] = json!(success);
    }
    event
}

// ---- golden files ----

/// Every CrowdStrike sample in `operators/tests/golden/crowdstrike/` maps exactly as its expected
/// file says.
#[test]
fn golden_files_match() {
    super::check_golden_files("crowdstrike");
}

// ---- alerts ----

#[test]
fn alert_is_a_detection_finding() {
    let event = detection(&alert());
    assert_eq!((event.class_uid, event.category_uid, event.activity_id, event.type_uid), (2004, 2, 1, 200401));
    assert_eq!((event.severity_id, event.severity.as_deref(), event.status_id), (4, Some("High"), 0));
    assert_eq!(event.time, 1_710_235_242_500, "updated_timestamp is the time of this state");
    assert_eq!(event.metadata.uid, "cid0:ind:dev1:42-10197-1@2024-03-12T09:20:42.5Z", "one uid per state");
    assert_eq!(event.metadata.original_time.as_deref(), Some("2024-03-12T09:20:42.5Z"));
    assert_eq!((event.metadata.vendor_name.as_str(), event.metadata.product_name.as_str()), ("CrowdStrike", "Falcon"));
    assert_eq!(event.metadata.raw_ref.as_deref(), Some("raw.crowdstrike/0/5"));
    assert_eq!(event.finding_uid, "cid0:ind:dev1:42-10197-1");
    assert_eq!(event.title, "Encoded PowerShell");
    assert_eq!(event.description.as_deref(), Some("PowerShell ran an encoded command."));
    assert_eq!((event.tactic_uid.as_deref(), event.technique_uid.as_deref()), (Some("TA0002"), Some("T1059.001")));
    assert_eq!(
        event.device,
        Device {
            uid: Some("dev1".into()),
            hostname: Some("HOST-1".into()),
            ip: Some("10.0.0.1".into()),
            os_name: Some("Windows".into()),
            os_version: Some("Windows 11".into()),
            agent_version: Some("7.14.1".into()),
        }
    );
    assert_eq!(
        event.user,
        Some(User {
            uid: Some("S-1-5-21-1-2-3-1001".into()),
            name: Some("ada".into()),
            email: None,
            r#type: None,
            domain: Some("CORP".into())
        })
    );
    assert_eq!(
        event.process,
        Some(Process {
            name: Some("powershell.exe".into()),
            pid: Some(6120),
            cmdline: Some("powershell.exe -enc AAAA".into()),
            sha256: Some("ab".repeat(32)),
            parent_name: Some("explorer.exe".into()),
        })
    );
    assert_eq!((event.confidence, event.status.as_deref()), (Some(80), Some("new")));
    assert_eq!(event.disposition.as_deref(), Some("Prevention, process blocked."));
    assert_eq!(event.falcon_link.as_deref(), Some("https://falcon.example.com/detections/42"));
    assert_eq!(event.unmapped.get("severity").map(String::as_str), Some("72"));
    assert_eq!(event.unmapped.get("product").map(String::as_str), Some("\"epp\""));
    assert_eq!(event.raw_data, None);
}

#[test]
fn alert_activity_follows_its_status() {
    for (status, activity_id) in
        [(json!("new"), 1), (json!("in_progress"), 2), (json!("reopened"), 2), (json!("closed"), 3), (Value::Null, 0)]
    {
        let mut record = alert();
        record["status"] = status.clone();
        assert_eq!(detection(&record).type_uid, 200400 + activity_id, "{status}");
    }
}

#[test]
fn severity_from_name_else_number_bands() {
    for (number, name, severity_id) in [
        (json!(72), json!("Critical"), 5),
        (json!(1), Value::Null, 1),
        (json!(19), Value::Null, 1),
        (json!(20), Value::Null, 2),
        (json!(39), Value::Null, 2),
        (json!(40), Value::Null, 3),
        (json!(69), Value::Null, 3),
        (json!(70), Value::Null, 4),
        (json!(89), Value::Null, 4),
        (json!(90), Value::Null, 5),
        (json!(100), Value::Null, 5),
        (json!(0), Value::Null, 99),
        (json!(101), Value::Null, 99),
        (Value::Null, json!("Weird"), 99),
        (Value::Null, Value::Null, 0),
    ] {
        let mut record = alert();
        record["severity"] = number.clone();
        record["severity_name"] = name.clone();
        assert_eq!(detection(&record).severity_id, severity_id, "{number} {name}");
    }
}

#[test]
fn identity_alert_names_the_account_and_its_endpoint() {
    let mut record = without(without(without(without(alert(), "device"), "user_id"), "user_name"), "logon_domain");
    record["product"] = json!("idp");
    record["agent_id"] = Value::Null;
    record["source_endpoint_sensor_id"] = json!("dev9");
    record["source_endpoint_host_name"] = json!("dc01.corp.example.com");
    record["source_endpoint_ip_address"] = json!("198.51.100.9");
    record["source_account_name"] = json!("svc.backup");
    record["source_account_upn"] = json!("svc.backup@corp.example.com");
    record["source_account_domain"] = json!("CORP.EXAMPLE.COM");
    let event = detection(&record);
    assert_eq!(
        (event.device.uid.as_deref(), event.device.hostname.as_deref(), event.device.ip.as_deref()),
        (Some("dev9"), Some("dc01.corp.example.com"), Some("198.51.100.9"))
    );
    let user = event.user.expect("the source account");
    assert_eq!(
        (user.name.as_deref(), user.email.as_deref(), user.domain.as_deref()),
        (Some("svc.backup"), Some("svc.backup@corp.example.com"), Some("CORP.EXAMPLE.COM"))
    );
}

#[test]
fn alert_time_falls_back_to_timestamp() {
    let event = detection(&without(alert(), "updated_timestamp"));
    assert_eq!(event.metadata.uid, "cid0:ind:dev1:42-10197-1@2024-03-12T09:14:07Z");
    assert_eq!(event.time, 1_710_234_847_000);
}

// ---- hosts ----

#[test]
fn host_is_a_device_inventory_snapshot() {
    let event = inventory(&host());
    assert_eq!((event.class_uid, event.category_uid, event.activity_id, event.type_uid), (5001, 5, 2, 500102));
    assert_eq!((event.severity_id, event.status_id), (1, 0));
    assert_eq!(event.metadata.uid, "dev1@2024-03-16T08:02:00Z", "one uid per snapshot");
    assert_eq!(event.time, 1_710_576_120_000);
    assert_eq!(event.device.uid.as_deref(), Some("dev1"));
    assert_eq!((event.device.hostname.as_deref(), event.device.os_name.as_deref()), (Some("HOST-1"), Some("Windows")));
    assert_eq!((event.platform.as_deref(), event.product_type.as_deref()), (Some("Windows"), Some("Workstation")));
    assert_eq!(event.status.as_deref(), Some("normal"));
    assert_eq!((event.first_seen, event.last_seen), (Some(1_672_531_200_000), Some(1_710_576_060_000)));
    assert_eq!(event.reduced_functionality_mode, Some(false));
    assert_eq!(
        event.policies,
        vec![
            DevicePolicy { r#type: "prevention".into(), id: "p1".into(), applied: false },
            DevicePolicy { r#type: "sensor-update".into(), id: "p2".into(), applied: true },
        ],
        "device_policies win over policies[], sorted, those without an id skipped"
    );
    assert_eq!(event.tags, vec!["FalconGroupingTags/CrownJewel".to_string()]);
    assert_eq!((event.serial.as_deref(), event.mac.as_deref()), (Some("SN1"), Some("02-00-00-00-00-01")));
    assert_eq!((event.external_ip.as_deref(), event.domain.as_deref()), (Some("203.0.113.1"), Some("CORP")));
    assert_eq!(event.unmapped.get("last_login_user").map(String::as_str), Some("\"ada\""), "read by enrich");
}

#[test]
fn host_policies_list_and_reduced_mode() {
    let mut record = without(host(), "device_policies");
    record["reduced_functionality_mode"] = json!("yes");
    let event = inventory(&record);
    assert_eq!(event.policies, vec![DevicePolicy { r#type: "prevention".into(), id: "ignored".into(), applied: true }]);
    assert_eq!(event.reduced_functionality_mode, Some(true));
}

#[test]
fn host_time_falls_back_to_last_seen_and_a_bad_optional_time_is_kept() {
    let mut record = without(host(), "modified_timestamp");
    record["first_seen"] = json!("yesterday");
    let event = inventory(&record);
    assert_eq!(event.metadata.uid, "dev1@2024-03-16T08:01:00Z");
    assert_eq!(event.first_seen, None);
    assert_eq!(event.unmapped.get("first_seen").map(String::as_str), Some("\"yesterday\""));
}

// ---- Event Streams ----

#[test]
fn detection_summaries_are_detection_findings() {
    let legacy = stream(
        "DetectionSummaryEvent",
        json!({"DetectId": "ldt:dev1:77", "DetectName": "Credential Dumping", "Severity": 4, "ComputerName": "HOST-1",
               "SensorId": "dev1", "UserName": "ada", "FileName": "rundll32.exe", "FalconHostLink": "https://falcon.example.com/77"}),
    );
    let event = detection(&legacy);
    assert_eq!((event.class_uid, event.type_uid), (2004, 200401));
    assert_eq!(event.severity_id, 4, "legacy summaries count severity 1-5");
    assert_eq!(event.metadata.uid, "cid0:1001:1710400000123");
    assert_eq!(event.time, 1_710_400_000_123);
    assert_eq!((event.finding_uid.as_str(), event.title.as_str()), ("ldt:dev1:77", "Credential Dumping"));
    assert_eq!((event.device.uid.as_deref(), event.device.hostname.as_deref()), (Some("dev1"), Some("HOST-1")));
    assert_eq!(event.user.and_then(|u| u.name).as_deref(), Some("ada"));

    let epp = stream(
        "EppDetectionSummaryEvent",
        json!({"CompositeId": "cid0:ind:dev1:1", "Name": "X", "Severity": 4, "AgentId": "dev1"}),
    );
    let event = detection(&epp);
    assert_eq!((event.finding_uid.as_str(), event.severity_id), ("cid0:ind:dev1:1", 1), "EPP counts severity 1-100");
}

#[test]
fn authentication_audit_is_identity_activity() {
    let event = identity(&stream("AuthActivityAuditEvent", audit("saml2Assert", Some(true))));
    assert_eq!((event.class_uid, event.category_uid, event.activity_id, event.type_uid), (3002, 3, 1, 300201));
    assert_eq!(event.status_id, 1);
    assert_eq!(event.event_type, "AuthActivityAuditEvent");
    assert_eq!(event.message.as_deref(), Some("saml2Assert (CrowdStrike Authentication)"));
    assert_eq!(
        event.actor,
        User {
            uid: Some("uuid-1".into()),
            name: Some("analyst@example.com".into()),
            email: Some("analyst@example.com".into()),
            r#type: None,
            domain: None,
        }
    );
    assert_eq!(event.src_endpoint.and_then(|e| e.ip).as_deref(), Some("192.0.2.10"));
    assert_eq!((event.auth_protocol.as_deref(), event.is_mfa), (Some("SAML2"), None));
    assert_eq!(event.raw_data, None);

    let mfa = identity(&stream("AuthActivityAuditEvent", audit("twoFactorAuthenticate", Some(false))));
    assert_eq!((mfa.type_uid, mfa.status_id, mfa.is_mfa), (300201, 2, Some(true)));
    let other = identity(&stream("AuthActivityAuditEvent", audit("selfAcceptEula", None)));
    assert_eq!((other.type_uid, other.status_id), (300299, 0));
}

#[test]
fn user_management_audit_is_identity_activity() {
    for (operation, type_uid) in [
        ("createUser", 300101),
        ("changePassword", 300103),
        ("resetPassword", 300104),
        ("deleteUser", 300106),
        ("grantUserRoles", 300501),
        ("revokeUserRoles", 300502),
    ] {
        let event = identity(&stream("UserActivityAuditEvent", audit(operation, Some(true))));
        assert_eq!(event.type_uid, type_uid, "{operation}");
        assert_eq!(event.target_users.first().and_then(|u| u.email.as_deref()), Some("bob@example.com"));
    }
}

#[test]
fn other_console_audit_is_a_base_event_with_the_vendor_json() {
    let line = stream("UserActivityAuditEvent", audit("reveal_token", None)).to_string();
    let SecurityEvent::Identity(event) = one(&line) else { panic!("an IdentityActivity") };
    assert_eq!((event.class_uid, event.type_uid), (0, 0));
    assert_eq!(event.raw_data.as_deref(), Some(line.as_str()), "the vendor JSON, verbatim");
    assert_eq!(event.actor.name.as_deref(), Some("analyst@example.com"), "the actor is still mapped");
}

#[test]
fn unknown_stream_event_is_a_base_event_with_the_vendor_json() {
    let line = stream("FirewallMatchEvent", json!({"DeviceId": "dev1", "HostName": "HOST-1", "RuleName": "Block SMB"}))
        .to_string();
    let SecurityEvent::EndpointDetection(event) = one(&line) else { panic!("an EndpointDetection") };
    assert_eq!((event.class_uid, event.category_uid, event.activity_id, event.type_uid), (0, 0, 0, 0));
    assert_eq!(event.raw_data.as_deref(), Some(line.as_str()), "the vendor JSON, verbatim");
    assert_eq!((event.title.as_str(), event.finding_uid.as_str()), ("FirewallMatchEvent", "cid0:1001:1710400000123"));
    assert_eq!((event.device.uid.as_deref(), event.device.hostname.as_deref()), (Some("dev1"), Some("HOST-1")));
}

#[test]
fn a_redelivered_stream_event_maps_to_the_same_bytes() {
    let line = stream("DetectionSummaryEvent", json!({"DetectId": "ldt:1", "DetectName": "X", "SensorId": "dev1"}))
        .to_string();
    let first = run(line.as_bytes());
    let again = run(line.as_bytes());
    assert_eq!(first.records.len(), 1);
    assert_eq!(first.records[0].value, again.records[0].value, "deterministic: same uid, same bytes");
}

// ---- Falcon Data Replicator ----

#[test]
fn fdr_events_are_base_events_unless_detection_summaries() {
    let payload = r#"{"event_simpleName":"ProcessRollup2","id":"fdr-1","aid":"dev1","cid":"cid0","timestamp":"1710580000123","ImageFileName":"/usr/bin/curl","CommandLine":"curl example.com","RawProcessId":"31337","ParentBaseFileName":"bash"}"#;
    let SecurityEvent::EndpointDetection(event) = one(payload) else { panic!("an EndpointDetection") };
    assert_eq!((event.class_uid, event.title.as_str(), event.finding_uid.as_str()), (0, "ProcessRollup2", "fdr-1"));
    assert_eq!((event.metadata.uid.as_str(), event.time), ("fdr-1", 1_710_580_000_123));
    assert_eq!(event.raw_data.as_deref(), Some(payload));
    let process = event.process.expect("the process");
    assert_eq!(
        (process.name.as_deref(), process.pid, process.parent_name.as_deref()),
        (Some("/usr/bin/curl"), Some(31337), Some("bash"))
    );

    let summary = json!({"event_simpleName": "Event_EppDetectionSummaryEvent", "id": "fdr-2", "aid": "dev1", "timestamp": "1710580000123",
                         "CompositeId": "cid0:ind:dev1:9", "Name": "Bad thing", "Severity": "95", "TacticId": "TA0040"});
    let event = detection(&summary);
    assert_eq!((event.class_uid, event.type_uid, event.severity_id), (2004, 200401, 5), "FDR numbers are strings");
    assert_eq!((event.finding_uid.as_str(), event.title.as_str()), ("cid0:ind:dev1:9", "Bad thing"));
    assert_eq!(event.raw_data, None);
}

// ---- responses ----

#[test]
fn a_response_maps_every_resource_and_rejects_only_the_bad_ones() {
    let payload = json!({"meta": {"query_time": 0.1}, "resources": [alert(), without(host(), "device_id"), host()], "errors": []});
    let payload = payload.to_string();
    let out = run(payload.as_bytes());
    let events = events(&out);
    assert!(matches!(events.as_slice(), [SecurityEvent::EndpointDetection(_), SecurityEvent::DeviceInventory(_)]));
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(
        out.rejected[0].reason,
        "crowdstrike API response: 1 of 3 events rejected, the other 2 emitted: resources[1]: crowdstrike record \
         has none of the shapes Weir maps: not an alert (no `composite_id`), a host (no `device_id`), an Event \
         Streams event (no `metadata` and `event` objects) or a Falcon Data Replicator event (no `event_simpleName`)"
    );

    let empty = run(br#"{"meta":{},"resources":null,"errors":[{"code":404,"message":"not found"}]}"#);
    assert!(empty.records.is_empty() && empty.rejected.is_empty(), "an empty page is nothing to map");
}

// ---- bad input ----

#[test]
fn bad_payloads_are_rejected_with_their_reason() {
    assert_eq!(rejection(b"{"), "crowdstrike payload is not JSON: EOF while parsing an object at line 1 column 1");
    assert_eq!(rejection(b"\"text\""), "crowdstrike payload is a string, not a JSON object");
    assert_eq!(
        rejection(br#"{"resources":{"device_id":"d"}}"#),
        "crowdstrike API response: field `resources` is not an array"
    );
    assert!(rejection(br#"{"hello":"world"}"#).starts_with("crowdstrike record has none of the shapes Weir maps"));
}

#[test]
fn records_without_id_or_time_are_rejected() {
    let mut bad_time = alert();
    bad_time["updated_timestamp"] = json!("2024-02-30T00:00:00Z");
    let mut numeric_id = alert();
    numeric_id["composite_id"] = json!(42);
    let mut offset_text = stream("DetectionSummaryEvent", json!({}));
    offset_text["metadata"]["offset"] = json!("1001");
    let mut time_text = stream("DetectionSummaryEvent", json!({}));
    time_text["metadata"]["eventCreationTime"] = json!("2024-03-14T07:00:00Z");
    let cases = [
        (
            bad_time,
            "crowdstrike alert cid0:ind:dev1:42-10197-1: field `updated_timestamp` is not a valid RFC 3339 time: \
             \"2024-02-30T00:00:00Z\" (day was not in range)",
        ),
        (
            without(without(alert(), "updated_timestamp"), "timestamp"),
            "crowdstrike alert cid0:ind:dev1:42-10197-1: fields `updated_timestamp` and `timestamp` are missing or not \
             strings",
        ),
        (numeric_id, "crowdstrike alert: field `composite_id` is not a string"),
        (
            without(without(host(), "modified_timestamp"), "last_seen"),
            "crowdstrike host dev1: fields `modified_timestamp` and `last_seen` are missing or not strings",
        ),
        (offset_text, "crowdstrike Event Streams event: field `metadata.offset` is missing or not a whole number"),
        (
            time_text,
            "crowdstrike Event Streams event cid0:1001: field `metadata.eventCreationTime` is missing or not whole \
             milliseconds since the Unix epoch",
        ),
        (
            json!({"event_simpleName": "DnsRequest", "id": "fdr-3", "timestamp": "2021-10-01 00:00:00.000Z"}),
            "crowdstrike FDR event fdr-3: field `timestamp` is not whole milliseconds since the Unix epoch: \
             \"2021-10-01 00:00:00.000Z\"",
        ),
        (json!({"event_simpleName": "DnsRequest", "id": "fdr-4"}), "crowdstrike FDR event fdr-4: field `timestamp` is missing"),
        (
            json!({"event_simpleName": "DnsRequest", "timestamp": "1"}),
            "crowdstrike FDR event (DnsRequest): field `id` is missing or not a string",
        ),
    ];
    for (record, reason) in cases {
        assert_eq!(rejection(record.to_string().as_bytes()), reason);
    }
}
