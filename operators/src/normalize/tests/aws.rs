//! AWS CloudTrail: golden files of real vendor samples, then one unit test per mapping rule and
//! per kind of bad input.

use serde_json::{json, Value};
use weir_schemas::events::{CloudApiActivity, IdentityActivity, SecurityEvent, User};

use super::{normalize_input, vendor_input};

/// Every sample in `operators/tests/golden/aws/` maps exactly as its expected file says.
#[test]
fn golden_files_match() {
    super::check_golden_files("aws");
}

/// The events `payload` maps to (failing if any of it was rejected), checking each record's
/// timestamp against its event.
fn normalize_all(payload: &str) -> Vec<SecurityEvent> {
    let out = normalize_input(&vendor_input("aws", payload.as_bytes(), 3));
    assert!(out.rejected.is_empty(), "rejected: {:?}", out.rejected);
    out.records
        .iter()
        .map(|record| {
            let event = SecurityEvent::decode(&record.value).expect("outputs decode");
            assert_eq!(record.timestamp_ms, event.time(), "the record timestamp is the event time");
            event
        })
        .collect()
}

/// The one API call `payload` maps to.
fn api_call(payload: &Value) -> CloudApiActivity {
    match normalize_all(&payload.to_string()).as_slice() {
        [SecurityEvent::CloudApi(event)] => event.clone(),
        other => panic!("expected one CloudApiActivity, got {other:?}"),
    }
}

/// The one sign-in `payload` maps to.
fn sign_in(payload: &Value) -> IdentityActivity {
    match normalize_all(&payload.to_string()).as_slice() {
        [SecurityEvent::Identity(event)] => event.clone(),
        other => panic!("expected one IdentityActivity, got {other:?}"),
    }
}

/// Why `payload` was rejected, checking that nothing was emitted and the payload was kept.
fn rejection(payload: &[u8]) -> String {
    super::rejection_of("aws", payload)
}

/// A CloudTrail record written for these tests (not a vendor sample): an IAM user's call.
fn record(event_name: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLEALICE",
            "arn": "arn:aws:iam::111122223333:user/alice",
            "accountId": "111122223333",
            "accessKeyId": "AKIAEXAMPLE",
            "userName": "alice"
        },
        "eventTime": "2024-05-02T18:46:21Z",
        "eventSource": "iam.amazonaws.com",
        "eventName": event_name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": {"userName": "bob"},
        "responseElements": null,
        "requestID": "req-1",
        "eventID": "0b1e9a2c-0000-4000-8000-000000000001",
        "readOnly": false,
        "resources": [{"ARN": "arn:aws:iam::111122223333:user/bob", "accountId": "111122223333", "type": "AWS::IAM::User"}],
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": "111122223333",
        "eventCategory": "Management"
    })
}

/// A console sign-in record written for these tests.
fn console_login(outcome: &str) -> Value {
    let mut login = record("ConsoleLogin");
    login["eventSource"] = json!("signin.amazonaws.com");
    login["eventType"] = json!("AwsConsoleSignIn");
    login["requestParameters"] = Value::Null;
    login["responseElements"] = json!({"ConsoleLogin": outcome});
    login["additionalEventData"] = json!({"LoginTo": "https://console.aws.amazon.com/", "MFAUsed": "No"});
    login
}

// ---- mappings ----

#[test]
fn api_call_is_api_activity_with_actor_endpoint_api_and_resources() {
    let payload = record("CreateUser");
    let out = normalize_input(&vendor_input("aws", payload.to_string().as_bytes(), 3));
    assert_eq!(out.records[0].key.as_deref(), Some(&b"AIDAEXAMPLEALICE"[..]), "keyed by the principal id");
    let event = api_call(&payload);
    assert_eq!((event.class_uid, event.category_uid, event.activity_id, event.type_uid), (6003, 6, 1, 600301));
    assert_eq!((event.severity_id, event.status_id), (1, 1));
    assert_eq!(event.time, 1_714_675_581_000);
    assert_eq!(event.metadata.uid, "0b1e9a2c-0000-4000-8000-000000000001");
    assert_eq!((event.metadata.vendor_name.as_str(), event.metadata.product_name.as_str()), ("AWS", "CloudTrail"));
    assert_eq!(event.metadata.original_time.as_deref(), Some("2024-05-02T18:46:21Z"));
    assert_eq!(event.metadata.raw_ref.as_deref(), Some("raw.aws/0/3"));
    assert_eq!(
        event.actor.user,
        User {
            uid: Some("AIDAEXAMPLEALICE".into()),
            name: Some("alice".into()),
            email: None,
            r#type: Some("IAMUser".into()),
            domain: Some("111122223333".into()),
        }
    );
    assert_eq!(event.actor.session_uid.as_deref(), Some("AKIAEXAMPLE"));
    assert_eq!((event.api.operation.as_str(), event.api.service.as_deref()), ("CreateUser", Some("iam.amazonaws.com")));
    assert_eq!(event.api.request_id.as_deref(), Some("req-1"));
    assert_eq!((event.cloud.provider.as_str(), event.cloud.account_uid.as_deref()), ("aws", Some("111122223333")));
    assert_eq!(event.cloud.region.as_deref(), Some("us-east-1"));
    assert_eq!(event.src_endpoint.and_then(|e| e.ip).as_deref(), Some("198.51.100.7"));
    assert_eq!(event.user_agent.as_deref(), Some("aws-cli/2.15.0"));
    assert_eq!(event.resources.len(), 1);
    assert_eq!(event.resources[0].uid, "arn:aws:iam::111122223333:user/bob");
    assert_eq!(event.resources[0].r#type.as_deref(), Some("AWS::IAM::User"));
    assert_eq!(event.request_data.as_deref(), Some(r#"{"userName":"bob"}"#));
    assert_eq!(event.response_data, None, "a null response is no response data");
    assert_eq!(
        event.unmapped.get("userIdentity.arn").map(String::as_str),
        Some("\"arn:aws:iam::111122223333:user/alice\"")
    );
    assert_eq!(event.raw_data, None, "mapped events do not repeat the vendor JSON");
}

#[test]
fn activity_is_the_verb_of_the_event_name() {
    for (event_name, activity_id) in [
        ("CreateAccessKey", 1),
        ("RunInstances", 1),
        ("DescribeInstances", 2),
        ("ListBuckets", 2),
        ("PutBucketPolicy", 3),
        ("AttachUserPolicy", 3),
        ("StopLogging", 3),
        ("UpdateFunctionCode20150331v2", 3),
        ("DeleteTrail", 4),
        ("TerminateInstances", 4),
        ("AssumeRole", 99),
        ("Settle", 99),
    ] {
        assert_eq!(api_call(&record(event_name)).activity_id, activity_id, "{event_name}");
    }
    let mut batch_get = record("BatchGetItem");
    batch_get["readOnly"] = json!(true);
    assert_eq!(api_call(&batch_get).activity_id, 2, "a read-only call without a known verb is a read");
}

#[test]
fn assumed_role_actor_is_the_session_with_its_issuer() {
    let mut payload = record("PutBucketPolicy");
    payload["userIdentity"] = json!({
        "type": "AssumedRole",
        "principalId": "AROAEXAMPLE:ada@example.com",
        "arn": "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_0123/ada@example.com",
        "accountId": "111122223333",
        "accessKeyId": "ASIAEXAMPLE",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAEXAMPLE",
                "arn": "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123",
                "accountId": "111122223333",
                "userName": "AWSReservedSSO_Admin_0123"
            },
            "attributes": {"creationDate": "2024-05-02T18:00:00Z", "mfaAuthenticated": "true"}
        },
        "invokedBy": "cloudformation.amazonaws.com"
    });
    let actor = api_call(&payload).actor;
    assert_eq!(actor.user.uid.as_deref(), Some("AROAEXAMPLE:ada@example.com"));
    assert_eq!(actor.user.name.as_deref(), Some("ada@example.com"), "the session name");
    assert_eq!(actor.user.email.as_deref(), Some("ada@example.com"));
    assert_eq!(actor.user.r#type.as_deref(), Some("AssumedRole"));
    assert_eq!(actor.session_issuer.as_deref(), Some("arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123"));
    assert_eq!(actor.session_uid.as_deref(), Some("ASIAEXAMPLE"));
    assert_eq!(actor.invoked_by.as_deref(), Some("cloudformation.amazonaws.com"));
    assert_eq!(actor.mfa_authenticated, Some(true));
}

#[test]
fn root_and_aws_service_actors_are_named() {
    let mut root = record("CreateAccessKey");
    root["userIdentity"] = json!({
        "type": "Root", "principalId": "111122223333", "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333"
    });
    let user = api_call(&root).actor.user;
    assert_eq!((user.uid.as_deref(), user.name.as_deref()), (Some("111122223333"), Some("root")));

    let mut service = record("Decrypt");
    service["userIdentity"] = json!({"type": "AWSService", "invokedBy": "lambda.amazonaws.com"});
    service["sourceIPAddress"] = json!("lambda.amazonaws.com");
    let event = api_call(&service);
    assert_eq!(event.actor.user.name.as_deref(), Some("lambda.amazonaws.com"));
    assert_eq!(event.actor.user.r#type.as_deref(), Some("AWSService"));
    assert_eq!(event.actor.invoked_by.as_deref(), Some("lambda.amazonaws.com"));
}

#[test]
fn a_service_name_source_address_is_a_host_name_not_an_ip() {
    let mut payload = record("CreateManagedAccount");
    payload["sourceIPAddress"] = json!("servicecatalog.amazonaws.com");
    let endpoint = api_call(&payload).src_endpoint.expect("a source endpoint");
    assert_eq!((endpoint.ip, endpoint.hostname.as_deref()), (None, Some("servicecatalog.amazonaws.com")));

    payload["sourceIPAddress"] = json!("AWS Internal");
    let event = api_call(&payload);
    assert_eq!(event.src_endpoint, None, "neither an IP nor a host name");
    assert_eq!(event.unmapped.get("sourceIPAddress").map(String::as_str), Some("\"AWS Internal\""));

    payload["sourceIPAddress"] = json!("2001:db8::7");
    assert_eq!(api_call(&payload).src_endpoint.and_then(|e| e.ip).as_deref(), Some("2001:db8::7"));
}

#[test]
fn an_error_code_is_a_failure() {
    let mut payload = record("UpdateTrail");
    payload["errorCode"] = json!("TrailNotFoundException");
    payload["errorMessage"] = json!("Unknown trail: myTrail2");
    let event = api_call(&payload);
    assert_eq!(event.status_id, 2);
    assert_eq!(event.error_code.as_deref(), Some("TrailNotFoundException"));
    assert_eq!(event.error_message.as_deref(), Some("Unknown trail: myTrail2"));

    payload["errorCode"] = json!("");
    payload["errorMessage"] = Value::Null;
    assert_eq!(api_call(&payload).status_id, 1, "an empty error code is no error");
}

#[test]
fn console_login_is_an_authentication_logon() {
    let event = sign_in(&console_login("Success"));
    assert_eq!((event.class_uid, event.category_uid, event.activity_id, event.type_uid), (3002, 3, 1, 300201));
    assert_eq!((event.severity_id, event.status_id), (1, 1));
    assert_eq!(event.event_type, "ConsoleLogin");
    assert_eq!(event.outcome.as_deref(), Some("Success"));
    assert_eq!(event.is_mfa, Some(false), "MFAUsed: No");
    assert_eq!(event.actor.uid.as_deref(), Some("AIDAEXAMPLEALICE"));
    assert_eq!(event.src_endpoint.and_then(|e| e.ip).as_deref(), Some("198.51.100.7"));
    assert_eq!(event.unmapped.get("awsRegion").map(String::as_str), Some("\"us-east-1\""));
    assert_eq!(event.unmapped.get("recipientAccountId").map(String::as_str), Some("\"111122223333\""));

    // A failed console login has an error message but no error code.
    let mut failure = console_login("Failure");
    failure["errorMessage"] = json!("Failed authentication");
    let event = sign_in(&failure);
    assert_eq!((event.status_id, event.outcome.as_deref()), (2, Some("Failure")));
    assert_eq!(event.outcome_reason.as_deref(), Some("Failed authentication"));
}

#[test]
fn other_sign_in_events() {
    let mut check_mfa = console_login("Success");
    check_mfa["eventName"] = json!("CheckMfa");
    check_mfa["responseElements"] = json!({"CheckMfa": "Success"});
    check_mfa["additionalEventData"] = json!({"MfaType": "U2F MFA"});
    let event = sign_in(&check_mfa);
    assert_eq!((event.type_uid, event.status_id, event.is_mfa), (300299, 1, Some(true)));

    let mut password = console_login("Success");
    password["eventName"] = json!("PasswordUpdated");
    password["responseElements"] = json!({"PasswordUpdated": "Success"});
    assert_eq!(sign_in(&password).type_uid, 300103, "Account Change: Password Change");

    let mut identity_center = record("UserAuthentication");
    identity_center["eventSource"] = json!("signin.amazonaws.com");
    identity_center["eventType"] = json!("AwsServiceEvent");
    identity_center["serviceEventDetails"] = json!({"UserAuthentication": "Success"});
    let event = sign_in(&identity_center);
    assert_eq!((event.type_uid, event.status_id, event.outcome.as_deref()), (300201, 1, Some("Success")));
}

#[test]
fn an_insight_is_a_base_event_with_the_vendor_json() {
    let insight = concat!(
        r#"{"eventVersion":"1.07","eventTime":"2019-11-14T00:51:00Z","awsRegion":"us-east-1","eventID":"insight-1","#,
        r#""eventType":"AwsCloudTrailInsight","recipientAccountId":"123456789012","insightDetails":{"state":"Start","#,
        r#""eventSource":"ssm.amazonaws.com","eventName":"UpdateInstanceInformation","#,
        r#""insightType":"ApiCallRateInsight"},"eventCategory":"Insight"}"#
    );
    let event = match normalize_all(insight).as_slice() {
        [SecurityEvent::CloudApi(event)] => event.clone(),
        other => panic!("expected one CloudApiActivity, got {other:?}"),
    };
    assert_eq!((event.class_uid, event.category_uid, event.activity_id, event.type_uid), (0, 0, 0, 0));
    assert_eq!(event.status_id, 0);
    assert_eq!(event.raw_data.as_deref(), Some(insight), "the vendor JSON, verbatim");
    assert_eq!((event.metadata.uid.as_str(), event.time), ("insight-1", 1_573_692_660_000));

    let mut unknown = record("CreateUser");
    unknown["eventType"] = json!("AwsSomethingNew");
    let event = api_call(&unknown);
    assert_eq!(event.class_uid, 0);
    assert_eq!(event.raw_data.as_deref(), Some(unknown.to_string().as_str()));
    assert_eq!(event.actor.user.name.as_deref(), Some("alice"), "the common fields are still mapped");
}

#[test]
fn eventbridge_envelopes_use_the_record_id_not_the_envelope_id() {
    let envelope = json!({
        "version": "0", "id": "envelope-id", "detail-type": "AWS API Call via CloudTrail", "source": "aws.iam",
        "account": "111122223333", "time": "2024-05-02T18:46:22Z", "region": "us-east-1", "resources": [],
        "detail": record("CreateUser")
    });
    let event = api_call(&envelope);
    assert_eq!((event.class_uid, event.metadata.uid.as_str()), (6003, "0b1e9a2c-0000-4000-8000-000000000001"));
    assert_eq!(event.time, 1_714_675_581_000, "the record's time, not the envelope's");

    let other = json!({
        "version": "0", "id": "7bf73129-1428-4cd3-a780-95db273d1602", "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2", "account": "111122223333", "time": "2024-05-02T18:46:22Z", "region": "us-east-1",
        "resources": ["arn:aws:ec2:us-east-1:111122223333:instance/i-0123"],
        "detail": {"instance-id": "i-0123", "state": "running"}
    });
    let event = api_call(&other);
    assert_eq!((event.class_uid, event.metadata.uid.as_str()), (0, "7bf73129-1428-4cd3-a780-95db273d1602"));
    assert_eq!(event.raw_data.as_deref(), Some(other.to_string().as_str()));
    assert_eq!(event.resources[0].uid, "arn:aws:ec2:us-east-1:111122223333:instance/i-0123");
}

#[test]
fn a_log_file_maps_each_record_and_rejects_the_bad_ones_together() {
    let mut no_id = record("StartInstances");
    no_id.as_object_mut().expect("an object").remove("eventID");
    let file = json!({"Records": [record("CreateUser"), no_id, 7]}).to_string();
    let out = normalize_input(&vendor_input("aws", file.as_bytes(), 0));
    assert_eq!(out.records.len(), 1, "the good record is emitted");
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(
        out.rejected[0].reason,
        "aws CloudTrail log file: 2 of 3 events rejected, the other 1 emitted: Records[1]: aws record \
         (StartInstances at 2024-05-02T18:46:21Z): field `eventID` is missing or not a string; Records[2]: aws \
         record is a number, not a JSON object"
    );
    assert!(normalize_input(&vendor_input("aws", br#"{"Records": []}"#, 0)).rejected.is_empty());
}

// ---- bad input ----

#[test]
fn payloads_that_are_not_json_objects_are_rejected() {
    assert!(rejection(b"not json").starts_with("aws payload is not JSON: expected ident at line 1 column 2"));
    assert!(rejection(b"\xff").starts_with("aws payload is not JSON: it is not UTF-8"));
    assert_eq!(rejection(b"[1]"), "aws payload is an array, not a JSON object");
    assert_eq!(rejection(br#"{"Records": {}}"#), "aws CloudTrail log file: field `Records` is not an array");
}

#[test]
fn records_without_id_or_valid_time_are_rejected() {
    let mut payload = record("CreateUser");
    payload["eventID"] = json!(17);
    assert_eq!(
        rejection(payload.to_string().as_bytes()),
        "aws record (CreateUser at 2024-05-02T18:46:21Z): field `eventID` is missing or not a string"
    );

    let mut payload = record("CreateUser");
    payload.as_object_mut().expect("an object").remove("eventTime");
    assert_eq!(
        rejection(payload.to_string().as_bytes()),
        "aws event 0b1e9a2c-0000-4000-8000-000000000001: field `eventTime` is missing or not a string"
    );

    payload["eventTime"] = json!("2024-05-02 18:46:21");
    let reason = rejection(payload.to_string().as_bytes());
    assert!(
        reason.starts_with(
            "aws event 0b1e9a2c-0000-4000-8000-000000000001: field `eventTime` is not a valid RFC 3339 time: \
             \"2024-05-02 18:46:21\" ("
        ),
        "{reason}"
    );

    let mut detail = record("PutObject");
    detail.as_object_mut().expect("an object").remove("eventID");
    let envelope = json!({"id": "envelope-id", "detail-type": "AWS API Call via CloudTrail", "detail": detail});
    assert_eq!(
        rejection(envelope.to_string().as_bytes()),
        "aws record (PutObject at 2024-05-02T18:46:21Z): field `detail.eventID` is missing or not a string"
    );
    let envelope = json!({"id": "envelope-id", "detail-type": "AWS API Call via CloudTrail", "detail": "?"});
    assert_eq!(
        rejection(envelope.to_string().as_bytes()),
        "aws EventBridge event \"AWS API Call via CloudTrail\": field `detail` is missing or not an object"
    );
}
