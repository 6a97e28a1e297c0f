//! Azure Activity Log and Resource Graph: golden files of real vendor samples, then one unit test
//! per mapping rule and per kind of bad input.

use serde_json::{json, Value};
use weir_schemas::events::{ChangeType, CloudApiActivity, PropertyChange, ResourceChange, SecurityEvent, User};

use super::{normalize_input, vendor_input};
use crate::normalize::derived_uid;

/// Every sample in `operators/tests/golden/azure/` maps exactly as its expected file says.
#[test]
fn golden_files_match() {
    super::check_golden_files("azure");
}

/// The events `payload` maps to (failing if any of it was rejected), with their record keys.
fn normalize_all(payload: &str) -> Vec<(SecurityEvent, Option<Vec<u8>>)> {
    let out = normalize_input(&vendor_input("azure", payload.as_bytes(), 5));
    assert!(out.rejected.is_empty(), "rejected: {:?}", out.rejected);
    out.records
        .iter()
        .map(|record| {
            let event = SecurityEvent::decode(&record.value).expect("outputs decode");
            assert_eq!(record.timestamp_ms, event.time(), "the record timestamp is the event time");
            (event, record.key.clone())
        })
        .collect()
}

/// The one API call `payload` maps to.
fn api_call(payload: &Value) -> CloudApiActivity {
    match normalize_all(&payload.to_string()).as_slice() {
        [(SecurityEvent::CloudApi(event), _)] => event.clone(),
        other => panic!("expected one CloudApiActivity, got {other:?}"),
    }
}

/// The one resource change `payload` maps to.
fn resource_change(payload: &Value) -> ResourceChange {
    match normalize_all(&payload.to_string()).as_slice() {
        [(SecurityEvent::ResourceChange(event), _)] => event.clone(),
        other => panic!("expected one ResourceChange, got {other:?}"),
    }
}

/// Why `payload` was rejected, checking that nothing was emitted and the payload was kept.
fn rejection(payload: &[u8]) -> String {
    super::rejection_of("azure", payload)
}

const RESOURCE_ID: &str = concat!(
    "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-1",
    "/providers/Microsoft.Network/networkSecurityGroups/nsg-1"
);

/// An Activity Log event in the REST shape, written for these tests (not a vendor sample).
fn rest_event(event_name: &str, status: &str) -> Value {
    json!({
        "authorization": {"action": "Microsoft.Network/networkSecurityGroups/write", "scope": RESOURCE_ID},
        "caller": "ada@example.com",
        "channels": "Operation",
        "claims": {
            "http://schemas.microsoft.com/identity/claims/objectidentifier": "f409edeb-0000-4000-8000-000000000001",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": "ada@example.com",
            "http://schemas.microsoft.com/identity/claims/tenantid": "aaaabbbb-0000-cccc-1111-dddd2222eeee",
            "http://schemas.microsoft.com/claims/authnmethodsreferences": "pwd,mfa",
            "appid": "c44b4083-3bb0-49c1-b47d-974e53cbdf3c",
            "name": "Ada Lovelace"
        },
        "correlationId": "c0ffee00-0000-4000-8000-000000000001",
        "description": "",
        "eventDataId": format!("{event_name}-{status}"),
        "eventName": {"value": event_name, "localizedValue": event_name},
        "category": {"value": "Administrative", "localizedValue": "Administrative"},
        "eventTimestamp": "2024-05-02T18:46:21.1234567Z",
        "httpRequest": {"clientRequestId": "client-req-1", "clientIpAddress": "198.51.100.7", "method": "PUT"},
        "level": "Informational",
        "operationId": "c0ffee00-0000-4000-8000-000000000001",
        "operationName": {
            "value": "Microsoft.Network/networkSecurityGroups/write",
            "localizedValue": "Create or Update Network Security Group"
        },
        "resourceGroupName": "rg-1",
        "resourceProviderName": {"value": "Microsoft.Network", "localizedValue": "Microsoft.Network"},
        "resourceType": {
            "value": "Microsoft.Network/networkSecurityGroups",
            "localizedValue": "Microsoft.Network/networkSecurityGroups"
        },
        "resourceId": RESOURCE_ID,
        "status": {"value": status, "localizedValue": status},
        "subStatus": {"value": "", "localizedValue": ""},
        "subscriptionId": "00000000-1111-2222-3333-444444444444",
        "properties": {"statusCode": "OK", "serviceRequestId": "service-req-1"}
    })
}

/// An Activity Log event in the diagnostic-export shape, written for these tests.
fn export_record(result_type: &str, time: &str) -> Value {
    json!({
        "time": time,
        "resourceId": RESOURCE_ID,
        "operationName": "MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/WRITE",
        "category": "Administrative",
        "resultType": result_type,
        "resultSignature": "Started.",
        "callerIpAddress": "198.51.100.7",
        "correlationId": "c0ffee00-0000-4000-8000-000000000001",
        "identity": {"claims": {
            "upn": "ada@example.com",
            "oid": "f409edeb-0000-4000-8000-000000000001",
            "tid": "aaaabbbb-0000-cccc-1111-dddd2222eeee"
        }},
        "level": "Information",
        "location": "westeurope",
        "tenantId": "aaaabbbb-0000-cccc-1111-dddd2222eeee"
    })
}

/// A Resource Graph `resourcechanges` properties bag written for these tests.
fn change_bag(change_type: &str) -> Value {
    json!({
        "targetResourceId": RESOURCE_ID,
        "targetResourceType": "microsoft.network/networksecuritygroups",
        "changeType": change_type,
        "changeAttributes": {
            "changesCount": 3,
            "correlationId": "c0ffee00-0000-4000-8000-000000000001",
            "timestamp": "2024-05-02T18:46:25.5Z",
            "previousResourceSnapshotId": "snap-1",
            "newResourceSnapshotId": "snap-2",
            "changedBy": "ada@example.com",
            "clientType": "Azure Portal"
        },
        "changes": {
            "properties.securityRules[0].properties.access": {
                "previousValue": "Deny", "newValue": "Allow", "changeCategory": "User", "propertyChangeType": "Update"
            },
            "tags.owner": {"previousValue": "null", "newValue": "ada", "changeCategory": "User", "propertyChangeType": "Insert"},
            "tags.temp": {"previousValue": "yes", "newValue": "null", "changeCategory": "User", "propertyChangeType": "Remove"}
        }
    })
}

// ---- mappings ----

#[test]
fn rest_event_is_api_activity_with_caller_endpoint_and_resource() {
    let event = api_call(&rest_event("EndRequest", "Succeeded"));
    assert_eq!((event.class_uid, event.category_uid, event.activity_id, event.type_uid), (6003, 6, 3, 600303));
    assert_eq!((event.severity_id, event.status_id), (1, 1));
    assert_eq!(event.time, 1_714_675_581_123, "7 fractional digits, cut to ms");
    assert_eq!(event.metadata.uid, "EndRequest-Succeeded");
    assert_eq!(
        (event.metadata.vendor_name.as_str(), event.metadata.product_name.as_str()),
        ("Microsoft Azure", "Activity Log")
    );
    assert_eq!(event.message.as_deref(), Some("Create or Update Network Security Group"));
    assert_eq!(
        event.actor.user,
        User {
            uid: Some("f409edeb-0000-4000-8000-000000000001".into()),
            name: Some("ada@example.com".into()),
            email: Some("ada@example.com".into()),
            r#type: Some("User".into()),
            domain: Some("aaaabbbb-0000-cccc-1111-dddd2222eeee".into()),
        }
    );
    assert_eq!(event.actor.mfa_authenticated, Some(true), "amr has mfa");
    assert_eq!(event.api.operation, "Microsoft.Network/networkSecurityGroups/write");
    assert_eq!(event.api.service.as_deref(), Some("Microsoft.Network"));
    assert_eq!(event.api.request_id.as_deref(), Some("service-req-1"));
    assert_eq!(event.cloud.account_uid.as_deref(), Some("00000000-1111-2222-3333-444444444444"));
    assert_eq!(event.src_endpoint.and_then(|e| e.ip).as_deref(), Some("198.51.100.7"));
    assert_eq!(event.resources.len(), 1);
    assert_eq!(event.resources[0].uid, RESOURCE_ID);
    assert_eq!(event.resources[0].name.as_deref(), Some("nsg-1"));
    assert_eq!(event.resources[0].r#type.as_deref(), Some("Microsoft.Network/networkSecurityGroups"));
    assert_eq!(
        event.unmapped.get("correlationId").map(String::as_str),
        Some("\"c0ffee00-0000-4000-8000-000000000001\"")
    );
    assert_eq!(
        event.unmapped.get("claims.appid").map(String::as_str),
        Some("\"c44b4083-3bb0-49c1-b47d-974e53cbdf3c\"")
    );
    assert_eq!((event.error_code, event.raw_data), (None, None));
}

#[test]
fn export_record_is_api_activity_with_a_derived_uid() {
    let event = api_call(&export_record("Success", "2024-05-02T18:46:21.1234567Z"));
    assert_eq!((event.class_uid, event.activity_id, event.severity_id, event.status_id), (6003, 3, 1, 1));
    assert_eq!(
        event.metadata.uid,
        derived_uid(&[
            "c0ffee00-0000-4000-8000-000000000001",
            "MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/WRITE",
            "1714675581123456700",
            "Success"
        ])
    );
    assert_eq!(event.metadata.uid.len(), 32);
    assert_eq!(event.actor.user.name.as_deref(), Some("ada@example.com"), "from identity.claims");
    assert_eq!(event.actor.user.uid.as_deref(), Some("f409edeb-0000-4000-8000-000000000001"));
    assert_eq!(event.actor.mfa_authenticated, None, "no amr claim");
    assert_eq!(event.api.service.as_deref(), Some("MICROSOFT.NETWORK"), "the operation's namespace");
    assert_eq!(event.cloud.region.as_deref(), Some("westeurope"));
    assert_eq!(event.resources[0].region.as_deref(), Some("westeurope"));

    // The same instant written with other digits is the same event.
    let same = api_call(&export_record("Success", "2024-05-02T18:46:21.12345670Z"));
    assert_eq!(same.metadata.uid, event.metadata.uid);
}

#[test]
fn begin_and_end_events_keep_distinct_uids() {
    let begin = api_call(&rest_event("BeginRequest", "Started"));
    let end = api_call(&rest_event("EndRequest", "Succeeded"));
    assert_ne!(begin.metadata.uid, end.metadata.uid);
    assert_eq!((begin.status_id, end.status_id), (99, 1), "Started is neither success nor failure");

    // Export records have no id: their derived uids differ by result (and time).
    let begin = api_call(&export_record("Start", "2024-05-02T18:46:21.1234567Z"));
    let end = api_call(&export_record("Success", "2024-05-02T18:46:21.1234567Z"));
    let later = api_call(&export_record("Success", "2024-05-02T18:46:29Z"));
    assert_ne!(begin.metadata.uid, end.metadata.uid);
    assert_ne!(end.metadata.uid, later.metadata.uid);
}

#[test]
fn activity_is_the_last_part_of_the_operation() {
    let mut event = rest_event("EndRequest", "Succeeded");
    for (operation, status_code, activity_id) in [
        ("Microsoft.Network/networkSecurityGroups/write", "OK", 3),
        ("Microsoft.Network/networkSecurityGroups/write", "Created", 1),
        ("Microsoft.Compute/virtualMachines/read", "OK", 2),
        ("MICROSOFT.COMPUTE/VIRTUALMACHINES/DELETE", "OK", 4),
        ("Microsoft.Storage/storageAccounts/listKeys/action", "OK", 99),
    ] {
        event["operationName"] = json!({"value": operation, "localizedValue": operation});
        event["properties"]["statusCode"] = json!(status_code);
        assert_eq!(api_call(&event).activity_id, activity_id, "{operation} {status_code}");
    }
    let mut created = export_record("Success", "2024-05-02T18:46:21Z");
    created["resultSignature"] = json!("Succeeded.Created");
    assert_eq!(api_call(&created).activity_id, 1, "201 Created in the export shape");
}

#[test]
fn severity_and_status() {
    let mut event = rest_event("EndRequest", "Succeeded");
    for (level, status, severity_id, status_id) in [
        (json!("Critical"), "Failed", 5, 2),
        (json!("Error"), "Failure", 4, 2),
        (json!("Warning"), "Accepted", 3, 99),
        (json!("Verbose"), "Succeeded", 1, 1),
        (json!("Loud"), "Succeeded", 99, 1),
        (Value::Null, "Succeeded", 0, 1),
    ] {
        event["level"] = level.clone();
        event["status"] = json!({"value": status});
        let mapped = api_call(&event);
        assert_eq!((mapped.severity_id, mapped.status_id), (severity_id, status_id), "{level} {status}");
    }
}

#[test]
fn a_failure_carries_its_error() {
    let mut event = rest_event("EndRequest", "Failed");
    event["subStatus"] = json!({"value": "Conflict", "localizedValue": "Conflict (HTTP Status Code: 409)"});
    event["properties"]["statusMessage"] = json!("{\"error\":{\"code\":\"ScopeLocked\"}}");
    let mapped = api_call(&event);
    assert_eq!(mapped.status_id, 2);
    assert_eq!(mapped.error_code.as_deref(), Some("Conflict"));
    assert_eq!(mapped.error_message.as_deref(), Some("{\"error\":{\"code\":\"ScopeLocked\"}}"));
}

#[test]
fn service_principals_and_sign_in_addresses() {
    let mut event = rest_event("EndRequest", "Succeeded");
    event["caller"] = json!("6d0a0b9c-0000-4000-8000-000000000009");
    event["claims"] =
        json!({"oid": "6d0a0b9c-0000-4000-8000-000000000009", "idtyp": "app", "tid": "t-1", "ipaddr": "203.0.113.9"});
    event.as_object_mut().expect("an object").remove("httpRequest");
    let mapped = api_call(&event);
    assert_eq!(mapped.actor.user.r#type.as_deref(), Some("ServicePrincipal"));
    assert_eq!(mapped.actor.user.name.as_deref(), Some("6d0a0b9c-0000-4000-8000-000000000009"));
    assert_eq!(mapped.actor.user.email, None);
    assert_eq!(mapped.src_endpoint.and_then(|e| e.ip).as_deref(), Some("203.0.113.9"), "the ipaddr claim");
}

#[test]
fn notice_categories_are_base_events_with_the_vendor_json() {
    let mut event = rest_event("EndRequest", "Succeeded");
    event["category"] = json!({"value": "ServiceHealth", "localizedValue": "Service Health"});
    let mapped = api_call(&event);
    assert_eq!((mapped.class_uid, mapped.activity_id, mapped.type_uid), (0, 0, 0));
    assert_eq!(mapped.raw_data.as_deref(), Some(event.to_string().as_str()), "the vendor JSON, verbatim");
    assert_eq!(mapped.actor.user.name.as_deref(), Some("ada@example.com"), "the common fields are still mapped");
}

#[test]
fn pages_map_each_element() {
    let page = json!({
        "value": [rest_event("BeginRequest", "Started"), rest_event("EndRequest", "Succeeded")],
        "nextLink": "https://management.azure.com/next"
    });
    assert_eq!(normalize_all(&page.to_string()).len(), 2);
    let export = json!({
        "records": [export_record("Start", "2024-05-02T18:46:21Z"), export_record("Success", "2024-05-02T18:46:22Z")]
    });
    assert_eq!(normalize_all(&export.to_string()).len(), 2);
    let rows = json!({"totalRecords": 1, "count": 1, "data": [
        {"id": "/subscriptions/s/providers/Microsoft.Resources/changes/change-1", "properties": change_bag("Update")}
    ]});
    match normalize_all(&rows.to_string()).as_slice() {
        [(SecurityEvent::ResourceChange(change), _)] => {
            assert_eq!(change.metadata.uid, "/subscriptions/s/providers/Microsoft.Resources/changes/change-1")
        }
        other => panic!("expected one ResourceChange, got {other:?}"),
    }
}

#[test]
fn resource_change_is_cloud_resources_inventory_info_with_property_changes() {
    let payload = change_bag("Update");
    let out = normalize_all(&payload.to_string());
    assert_eq!(out[0].1.as_deref(), Some(RESOURCE_ID.as_bytes()), "keyed by the resource id");
    let change = resource_change(&payload);
    assert_eq!((change.class_uid, change.category_uid, change.activity_id, change.type_uid), (5023, 5, 1, 502301));
    assert_eq!((change.severity_id, change.status_id), (1, 1));
    assert_eq!(change.time, 1_714_675_585_500);
    assert_eq!(change.metadata.product_name, "Resource Graph");
    assert_eq!(
        change.metadata.uid,
        derived_uid(&[RESOURCE_ID, "1714675585500000000", "snap-1", "snap-2"]),
        "a bare bag's uid is derived from the resource, the time and the snapshots"
    );
    assert_eq!(change.change_type, ChangeType::Update);
    assert_eq!(change.resource.uid, RESOURCE_ID);
    assert_eq!(change.resource.name.as_deref(), Some("nsg-1"));
    assert_eq!(change.resource.r#type.as_deref(), Some("microsoft.network/networksecuritygroups"));
    assert_eq!(change.cloud.account_uid.as_deref(), Some("00000000-1111-2222-3333-444444444444"));
    assert_eq!(change.correlation_uid.as_deref(), Some("c0ffee00-0000-4000-8000-000000000001"));
    assert_eq!(change.actor.as_ref().and_then(|a| a.email.as_deref()), Some("ada@example.com"));
    assert_eq!(
        change.changes,
        vec![
            PropertyChange {
                property: "properties.securityRules[0].properties.access".into(),
                previous_value: Some("\"Deny\"".into()),
                new_value: Some("\"Allow\"".into()),
            },
            PropertyChange { property: "tags.owner".into(), previous_value: None, new_value: Some("\"ada\"".into()) },
            PropertyChange { property: "tags.temp".into(), previous_value: Some("\"yes\"".into()), new_value: None },
        ]
    );
    assert_eq!(change.unmapped.get("changes.tags.owner.changeCategory").map(String::as_str), Some("\"User\""));
    assert_eq!(change.unmapped.get("changeAttributes.clientType").map(String::as_str), Some("\"Azure Portal\""));
    assert_eq!(change.raw_data, None);

    assert_eq!(resource_change(&change_bag("Create")).change_type, ChangeType::Create);
    assert_eq!(resource_change(&change_bag("Delete")).change_type, ChangeType::Delete);
}

#[test]
fn unknown_change_types_and_legacy_changes_are_base_events() {
    let payload = change_bag("Move");
    let change = resource_change(&payload);
    assert_eq!((change.class_uid, change.change_type), (0, ChangeType::Other));
    assert_eq!(change.raw_data.as_deref(), Some(payload.to_string().as_str()));

    let legacy = concat!(
        r#"{"changeId":"2db0ad2d-f6f0-4f46-b529-5c4e8c494648","#,
        r#""beforeSnapshot":{"timestamp":"2018-10-31T01:32:05.993Z"},"afterSnapshot":{"timestamp":"2018-10-31T01:54:24.42Z"}}"#
    );
    let out = normalize_all(&format!(r#"{{"changes":[{legacy}],"skipToken":"t"}}"#));
    let [(SecurityEvent::ResourceChange(change), key)] = out.as_slice() else { panic!("expected one ResourceChange") };
    assert_eq!((change.class_uid, change.change_type, change.time), (0, ChangeType::Other, 1_540_950_864_420));
    assert_eq!(change.metadata.uid, "2db0ad2d-f6f0-4f46-b529-5c4e8c494648");
    assert_eq!(change.raw_data.as_deref(), Some(legacy), "the element, verbatim");
    assert_eq!(*key, None, "a change that names no resource has no key");
}

// ---- bad input ----

#[test]
fn payloads_that_are_not_json_objects_are_rejected() {
    assert!(rejection(b"{").starts_with("azure payload is not JSON: EOF while parsing an object"));
    assert_eq!(rejection(b"\"event\""), "azure payload is a string, not a JSON object");
    assert_eq!(rejection(br#"{"value": null}"#), "azure Activity Log page: field `value` is not an array");
    assert_eq!(
        rejection(br#"{"hello": "world"}"#),
        "azure event is none of: an Activity Log event (no `eventDataId` or `eventTimestamp`), a diagnostic-export \
         record (no `time` and `operationName`), a resource change (no `targetResourceId`)"
    );
}

#[test]
fn events_without_id_or_valid_time_are_rejected() {
    let mut event = rest_event("EndRequest", "Succeeded");
    event.as_object_mut().expect("an object").remove("eventDataId");
    assert_eq!(
        rejection(event.to_string().as_bytes()),
        "azure Activity Log event (Microsoft.Network/networkSecurityGroups/write at 2024-05-02T18:46:21.1234567Z): \
         field `eventDataId` is missing or not a string"
    );

    let mut event = rest_event("EndRequest", "Succeeded");
    event["eventTimestamp"] = json!("yesterday");
    let reason = rejection(event.to_string().as_bytes());
    assert!(
        reason.starts_with(
            "azure Activity Log event EndRequest-Succeeded: field `eventTimestamp` is not a valid RFC 3339 time: \
             \"yesterday\" ("
        ),
        "{reason}"
    );

    let mut record = export_record("Success", "2024-05-02T18:46:21Z");
    record.as_object_mut().expect("an object").remove("correlationId");
    assert_eq!(
        rejection(record.to_string().as_bytes()),
        "azure diagnostic-export record (MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/WRITE at 2024-05-02T18:46:21Z): \
         field `correlationId` is missing or not a string (the event id is derived from it)"
    );

    let mut bag = change_bag("Update");
    bag["changeAttributes"].as_object_mut().expect("an object").remove("timestamp");
    assert_eq!(
        rejection(bag.to_string().as_bytes()),
        format!(
            "azure resource change of {}…: field `changeAttributes.timestamp` is missing or not a string",
            &RESOURCE_ID[..64]
        )
    );

    let page = json!({"records": [
        export_record("Success", "2024-05-02T18:46:21Z"),
        {"time": "2024-05-02T18:46:21Z", "operationName": "x/read"}
    ]});
    let out = normalize_input(&vendor_input("azure", page.to_string().as_bytes(), 0));
    assert_eq!(out.records.len(), 1);
    assert_eq!(
        out.rejected[0].reason,
        "azure diagnostic export: 1 of 2 events rejected, the other 1 emitted: records[1]: azure diagnostic-export \
         record (x/read at 2024-05-02T18:46:21Z): field `correlationId` is missing or not a string (the event id is \
         derived from it)"
    );
}
