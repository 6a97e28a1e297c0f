//! Google Cloud Audit Logs: golden files of real vendor samples, then one unit test per mapping
//! rule and per kind of bad input.

use serde_json::{json, Value};
use weir_schemas::events::{CloudApiActivity, SecurityEvent, User};

use super::{normalize_input, vendor_input};
use crate::normalize::derived_uid;

/// Every sample in `operators/tests/golden/gcp/` maps exactly as its expected file says.
#[test]
fn golden_files_match() {
    super::check_golden_files("gcp");
}

/// The events `payload` maps to (failing if any of it was rejected), with their record keys.
fn normalize_all(payload: &str) -> Vec<(CloudApiActivity, Option<Vec<u8>>)> {
    let out = normalize_input(&vendor_input("gcp", payload.as_bytes(), 9));
    assert!(out.rejected.is_empty(), "rejected: {:?}", out.rejected);
    out.records
        .iter()
        .map(|record| match SecurityEvent::decode(&record.value).expect("outputs decode") {
            SecurityEvent::CloudApi(event) => {
                assert_eq!(record.timestamp_ms, event.time, "the record timestamp is the event time");
                (event, record.key.clone())
            }
            other => panic!("expected a CloudApiActivity, got {other:?}"),
        })
        .collect()
}

/// The one API call `payload` maps to.
fn normalize_one(payload: &Value) -> CloudApiActivity {
    let mut events = normalize_all(&payload.to_string());
    assert_eq!(events.len(), 1);
    events.remove(0).0
}

/// Why `payload` was rejected, checking that nothing was emitted and the payload was kept.
fn rejection(payload: &[u8]) -> String {
    super::rejection_of("gcp", payload)
}

const LOG_NAME: &str = "projects/test-project/logs/cloudaudit.googleapis.com%2Factivity";

/// An audit log entry written for these tests (not a vendor sample).
fn audit_entry(method: &str) -> Value {
    json!({
        "insertId": "1abc2def3",
        "logName": LOG_NAME,
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "authenticationInfo": {
                "principalEmail": "ada@example.com",
                "principalSubject": "user:ada@example.com"
            },
            "authorizationInfo": [
                {"permission": "storage.buckets.create", "granted": true, "resource": "projects/_/buckets/b-1"}
            ],
            "methodName": method,
            "request": {"name": "b-1", "@type": "type.googleapis.com/storage.buckets.insert"},
            "requestMetadata": {"callerIp": "198.51.100.7", "callerSuppliedUserAgent": "google-cloud-sdk/470.0.0"},
            "resourceName": "projects/_/buckets/b-1",
            "serviceName": "storage.googleapis.com",
            "status": {}
        },
        "receiveTimestamp": "2024-05-02T18:46:22.000000000Z",
        "resource": {
            "type": "gcs_bucket",
            "labels": {"project_id": "test-project", "location": "europe-west1", "bucket_name": "b-1"}
        },
        "severity": "NOTICE",
        "timestamp": "2024-05-02T18:46:21.123456789Z"
    })
}

// ---- mappings ----

#[test]
fn audit_entry_is_api_activity_with_actor_endpoint_and_resource() {
    let payload = audit_entry("storage.buckets.create");
    let (event, key) = normalize_all(&payload.to_string()).remove(0);
    assert_eq!(key.as_deref(), Some(&b"ada@example.com"[..]), "keyed by the principal");
    assert_eq!((event.class_uid, event.category_uid, event.activity_id, event.type_uid), (6003, 6, 1, 600301));
    assert_eq!((event.severity_id, event.status_id), (1, 1));
    assert_eq!(event.time, 1_714_675_581_123, "ns cut to ms");
    assert_eq!(event.metadata.original_time.as_deref(), Some("2024-05-02T18:46:21.123456789Z"));
    assert_eq!(
        (event.metadata.vendor_name.as_str(), event.metadata.product_name.as_str()),
        ("Google Cloud", "Cloud Audit Logs")
    );
    assert_eq!(event.metadata.uid, derived_uid(&[LOG_NAME, "1714675581123456789", "1abc2def3"]));
    assert_eq!(
        event.actor.user,
        User {
            uid: None,
            name: Some("ada@example.com".into()),
            email: Some("ada@example.com".into()),
            r#type: Some("User".into()),
            domain: None,
        }
    );
    assert_eq!(event.api.operation, "storage.buckets.create");
    assert_eq!(event.api.service.as_deref(), Some("storage.googleapis.com"));
    assert_eq!(event.cloud.provider, "gcp");
    assert_eq!(event.cloud.account_uid.as_deref(), Some("test-project"));
    assert_eq!(event.cloud.region.as_deref(), Some("europe-west1"));
    assert_eq!(event.src_endpoint.and_then(|e| e.ip).as_deref(), Some("198.51.100.7"));
    assert_eq!(event.user_agent.as_deref(), Some("google-cloud-sdk/470.0.0"));
    assert_eq!(event.resources.len(), 1);
    assert_eq!(event.resources[0].uid, "projects/_/buckets/b-1");
    assert_eq!(event.resources[0].name.as_deref(), Some("b-1"));
    assert_eq!(event.resources[0].r#type.as_deref(), Some("gcs_bucket"));
    assert_eq!(
        event.request_data.as_deref(),
        Some(r#"{"@type":"type.googleapis.com/storage.buckets.insert","name":"b-1"}"#)
    );
    assert_eq!(
        event.unmapped.get("protoPayload.authenticationInfo.principalSubject").map(String::as_str),
        Some("\"user:ada@example.com\"")
    );
    assert_eq!(event.unmapped.get("logName").map(String::as_str), Some(format!("\"{LOG_NAME}\"").as_str()));
    assert_eq!((event.error_code, event.raw_data), (None, None));
}

#[test]
fn the_uid_is_the_log_the_instant_and_the_insert_id() {
    let event = normalize_one(&audit_entry("storage.buckets.create"));
    let mut same_instant = audit_entry("storage.buckets.create");
    same_instant["timestamp"] = json!("2024-05-02T20:46:21.123456789+02:00");
    assert_eq!(normalize_one(&same_instant).metadata.uid, event.metadata.uid, "the same instant, written otherwise");
    let mut other_log = audit_entry("storage.buckets.create");
    other_log["logName"] = json!("projects/test-project/logs/cloudaudit.googleapis.com%2Fdata_access");
    assert_ne!(normalize_one(&other_log).metadata.uid, event.metadata.uid);
    let mut other_insert = audit_entry("storage.buckets.create");
    other_insert["insertId"] = json!("1abc2def4");
    assert_ne!(normalize_one(&other_insert).metadata.uid, event.metadata.uid);
}

#[test]
fn activity_is_the_verb_of_the_method() {
    for (method, activity_id) in [
        ("google.pubsub.v1.Publisher.CreateTopic", 1),
        ("v1.compute.instances.insert", 1),
        ("storage.objects.get", 2),
        ("google.iam.admin.v1.ListRoles", 2),
        ("SetIamPolicy", 3),
        ("v1.compute.firewalls.patch", 3),
        ("google.admin.AdminService.addGroupMember", 3),
        ("google.iam.admin.v1.DeleteServiceAccount", 4),
        ("SignJwt", 99),
        ("jobservice.jobcompleted", 99),
    ] {
        assert_eq!(normalize_one(&audit_entry(method)).activity_id, activity_id, "{method}");
    }
}

#[test]
fn a_non_zero_status_code_is_a_failure() {
    let mut entry = audit_entry("storage.buckets.create");
    entry["protoPayload"]["status"] = json!({"code": 7, "message": "Permission 'storage.buckets.create' denied"});
    entry["severity"] = json!("ERROR");
    let event = normalize_one(&entry);
    assert_eq!((event.status_id, event.severity_id), (2, 4));
    assert_eq!(event.error_code.as_deref(), Some("PERMISSION_DENIED"));
    assert_eq!(event.error_message.as_deref(), Some("Permission 'storage.buckets.create' denied"));

    entry["protoPayload"]["status"] = json!({"code": 42});
    assert_eq!(normalize_one(&entry).error_code.as_deref(), Some("42"), "a code without a name");
    entry["protoPayload"]["status"] = json!({"code": 0});
    assert_eq!(normalize_one(&entry).status_id, 1);
}

#[test]
fn severities() {
    let mut entry = audit_entry("storage.buckets.create");
    for (severity, severity_id) in [
        (json!("DEBUG"), 1),
        (json!("INFO"), 1),
        (json!("WARNING"), 3),
        (json!("CRITICAL"), 5),
        (json!("ALERT"), 5),
        (json!("EMERGENCY"), 6),
        (json!("DEFAULT"), 0),
        (json!("LOUD"), 99),
        (Value::Null, 0),
    ] {
        entry["severity"] = severity.clone();
        assert_eq!(normalize_one(&entry).severity_id, severity_id, "{severity}");
    }
}

#[test]
fn service_accounts_and_odd_caller_addresses() {
    let mut entry = audit_entry("SignJwt");
    entry["protoPayload"]["authenticationInfo"] = json!({
        "principalEmail": "robot@test-project.iam.gserviceaccount.com",
        "serviceAccountKeyName": "//iam.googleapis.com/projects/test-project/serviceAccounts/robot/keys/k1"
    });
    entry["protoPayload"]["requestMetadata"]["callerIp"] = json!("private");
    let event = normalize_one(&entry);
    assert_eq!(event.actor.user.r#type.as_deref(), Some("ServiceAccount"));
    assert_eq!(
        event.actor.session_uid.as_deref(),
        Some("//iam.googleapis.com/projects/test-project/serviceAccounts/robot/keys/k1")
    );
    assert_eq!(event.src_endpoint, None, "`private` is no address");
    assert_eq!(event.unmapped.get("protoPayload.requestMetadata.callerIp").map(String::as_str), Some("\"private\""));

    entry["protoPayload"]["requestMetadata"]["callerIp"] = json!("pubsub.googleapis.com");
    let endpoint = normalize_one(&entry).src_endpoint.expect("a host name");
    assert_eq!((endpoint.ip, endpoint.hostname.as_deref()), (None, Some("pubsub.googleapis.com")));
}

#[test]
fn entries_that_are_not_audit_logs_are_base_events_with_the_vendor_json() {
    let entry = concat!(
        r#"{"insertId":"42","logName":"projects/p/logs/syslog","textPayload":"kernel: hello","#,
        r#""resource":{"type":"gce_instance","labels":{"project_id":"p","zone":"us-central1-a"}},"#,
        r#""timestamp":"2024-05-02T18:46:21Z","severity":"INFO"}"#
    );
    let (event, _) = normalize_all(entry).remove(0);
    assert_eq!((event.class_uid, event.category_uid, event.activity_id, event.type_uid), (0, 0, 0, 0));
    assert_eq!((event.status_id, event.severity_id), (0, 1));
    assert_eq!(event.metadata.product_name, "Cloud Logging");
    assert_eq!(event.raw_data.as_deref(), Some(entry), "the vendor JSON, verbatim");
    assert_eq!(event.cloud.account_uid.as_deref(), Some("p"), "the common fields are still mapped");

    let mut other_payload = audit_entry("storage.buckets.create");
    other_payload["protoPayload"]["@type"] = json!("type.googleapis.com/google.appengine.logging.v1.RequestLog");
    assert_eq!(normalize_one(&other_payload).class_uid, 0);

    // Without `@type`, an entry of a cloudaudit log is still an audit log (Google's BigQuery sample).
    let mut untyped = audit_entry("jobservice.jobcompleted");
    untyped["protoPayload"].as_object_mut().expect("an object").remove("@type");
    assert_eq!(normalize_one(&untyped).class_uid, 6003);
}

#[test]
fn pages_and_cloud_events_are_unwrapped() {
    let page = json!({
        "entries": [audit_entry("storage.buckets.create"), audit_entry("storage.buckets.delete")],
        "nextPageToken": "t"
    });
    let events = normalize_all(&page.to_string());
    assert_eq!(events.iter().map(|(e, _)| e.activity_id).collect::<Vec<_>>(), vec![1, 4]);

    let cloud_event = json!({
        "specversion": "1.0", "type": "google.cloud.audit.log.v1.written", "id": "ce-1",
        "source": "//cloudaudit.googleapis.com/projects/test-project/logs/activity", "time": "2024-05-02T18:46:21Z",
        "data": audit_entry("storage.buckets.create")
    });
    let event = normalize_one(&cloud_event);
    assert_eq!(event.metadata.uid, normalize_one(&audit_entry("storage.buckets.create")).metadata.uid);
}

// ---- bad input ----

#[test]
fn payloads_that_are_not_json_objects_are_rejected() {
    assert!(rejection(b"").starts_with("gcp payload is not JSON: EOF while parsing a value"));
    assert_eq!(rejection(b"null"), "gcp payload is null, not a JSON object");
    assert_eq!(rejection(br#"{"entries": "none"}"#), "gcp entries:list page: field `entries` is not an array");
    assert_eq!(
        rejection(br#"{"specversion": "1.0", "id": "ce-1"}"#),
        "gcp CloudEvent ce-1: field `data` is missing or not an object"
    );
}

#[test]
fn entries_without_id_log_or_valid_time_are_rejected() {
    let mut entry = audit_entry("storage.buckets.create");
    entry.as_object_mut().expect("an object").remove("insertId");
    assert_eq!(
        rejection(entry.to_string().as_bytes()),
        "gcp log entry (at 2024-05-02T18:46:21.123456789Z): field `insertId` is missing or not a string"
    );

    let mut entry = audit_entry("storage.buckets.create");
    entry["logName"] = json!("");
    assert_eq!(
        rejection(entry.to_string().as_bytes()),
        "gcp log entry 1abc2def3: field `logName` is missing or not a string"
    );

    let mut entry = audit_entry("storage.buckets.create");
    entry["timestamp"] = json!("2024-05-02T18:46:21.123456789");
    let reason = rejection(entry.to_string().as_bytes());
    assert!(
        reason.starts_with(
            "gcp log entry 1abc2def3: field `timestamp` is not a valid RFC 3339 time: \"2024-05-02T18:46:21.123456789\" ("
        ),
        "{reason}"
    );

    let mut data = audit_entry("storage.buckets.create");
    data.as_object_mut().expect("an object").remove("timestamp");
    let cloud_event = json!({"specversion": "1.0", "id": "ce-1", "data": data});
    assert_eq!(
        rejection(cloud_event.to_string().as_bytes()),
        "gcp log entry 1abc2def3: field `data.timestamp` is missing or not a string"
    );
}
