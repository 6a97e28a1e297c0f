//! Okta: golden files of real vendor samples, then one unit test per mapping rule and per kind of
//! bad input.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use weir_schemas::component::{MemoryState, Operator, Output};
use weir_schemas::events::{Identity, IdentityActivity, RawEnvelope, User};
use weir_schemas::record::{Record, StoredRecord};

use crate::normalize::{brief, Normalize, NormalizeConfig, NormalizeConfigError};

/// An input record at `raw.okta/0/<offset>` holding `payload` in an envelope from `vendor`.
fn input(vendor: &str, payload: &[u8], offset: u64) -> StoredRecord {
    let envelope = RawEnvelope {
        source: "okta".to_string(),
        vendor: vendor.to_string(),
        received_at: 1_700_000_000_000,
        cursor: None,
        content_type: "application/json".to_string(),
        payload: payload.to_vec(),
    };
    let value = weir_schemas::encode(&envelope).expect("a RawEnvelope encodes");
    StoredRecord { topic: "raw.okta".to_string(), partition: 0, offset, record: Record::new(1_700_000_000_000, value) }
}

/// Runs one input through a default normalizer.
fn run(input: &StoredRecord) -> Output {
    run_with(&mut Normalize::new(NormalizeConfig::default()).expect("the default config is valid"), input)
}

fn run_with(normalize: &mut Normalize, input: &StoredRecord) -> Output {
    let mut out = Output::default();
    normalize.process(input, &mut MemoryState::default(), &mut out).expect("bad input is rejected, not an error");
    out
}

/// The events an output holds, checking each record's timestamp and key against its event.
fn events(out: &Output) -> Vec<IdentityActivity> {
    out.records
        .iter()
        .map(|record| {
            let event: IdentityActivity = weir_schemas::decode(&record.value).expect("outputs decode");
            assert_eq!(record.timestamp_ms, event.time, "the record timestamp is the event time");
            let actor = event.actor.uid.as_ref().or(event.actor.name.as_ref());
            assert_eq!(record.key.as_deref(), actor.map(|a| a.as_bytes()), "the record key is the actor");
            event
        })
        .collect()
}

/// The one event `payload` maps to, failing if it was rejected.
fn normalize_one(payload: &Value) -> IdentityActivity {
    let out = run(&input("okta", payload.to_string().as_bytes(), 7));
    assert!(out.rejected.is_empty(), "rejected: {:?}", out.rejected);
    let mut events = events(&out);
    assert_eq!(events.len(), 1);
    events.remove(0)
}

/// The original bytes a rejection of `input` must keep: the vendor payload when the input is an
/// envelope, else the whole input.
fn original_of(input: &StoredRecord) -> Vec<u8> {
    weir_schemas::decode::<RawEnvelope>(&input.record.value).map_or_else(|_| input.record.value.clone(), |e| e.payload)
}

/// The reason `payload` was rejected for, checking that nothing was emitted and that the original
/// bytes were kept.
fn rejection(input: &StoredRecord) -> String {
    let out = run(input);
    assert!(out.records.is_empty(), "emitted {} records", out.records.len());
    assert_eq!(out.rejected.len(), 1);
    assert!(out.rejected[0].original == original_of(input), "the original bytes are kept");
    out.rejected[0].reason.clone()
}

/// A LogEvent written for these tests (not a vendor sample), with no targets.
fn log_event(event_type: &str) -> Value {
    json!({
        "uuid": "e1a0c3b2-0000-4000-8000-000000000001",
        "published": "2024-05-02T18:46:21.121Z",
        "eventType": event_type,
        "version": "0",
        "severity": "INFO",
        "displayMessage": "test event",
        "actor": {"id": "00uactor", "type": "User", "alternateId": "ada@example.com", "displayName": "Ada Lovelace"},
        "client": {
            "ipAddress": "198.51.100.7",
            "userAgent": {"rawUserAgent": "test-agent/1.0", "os": "Linux", "browser": "UNKNOWN"},
            "geographicalContext": {"city": "London", "country": "United Kingdom", "geolocation": {"lat": 51.5, "lon": -0.12}}
        },
        "outcome": {"result": "SUCCESS", "reason": null},
        "target": null,
        "authenticationContext": {"externalSessionId": "idx-session-1", "authenticationProvider": null},
        "transaction": {"type": "WEB", "id": "tx-1"},
        "legacyEventType": null
    })
}

fn with_targets(mut event: Value, targets: Value) -> Value {
    event["target"] = targets;
    event
}

const TARGET_USER: &str =
    r#"{"id": "00utarget", "type": "User", "alternateId": "bob@example.com", "displayName": "Bob"}"#;

fn target_user() -> Value {
    serde_json::from_str(TARGET_USER).expect("valid JSON")
}

fn expected_target_user() -> User {
    User {
        uid: Some("00utarget".into()),
        name: Some("bob@example.com".into()),
        email: Some("bob@example.com".into()),
        r#type: Some("User".into()),
        domain: None,
    }
}

// ---- golden files ----

/// Every Okta sample in `operators/tests/golden/okta/` maps exactly as its expected file says.
#[test]
fn golden_files_match() {
    super::check_golden_files("okta");
}

// ---- mappings ----

#[test]
fn session_start_is_an_authentication_logon() {
    let event = normalize_one(&log_event("user.session.start"));
    assert_eq!((event.class_uid, event.category_uid, event.activity_id, event.type_uid), (3002, 3, 1, 300201));
    assert_eq!((event.severity_id, event.status_id), (1, 1));
    assert_eq!(event.time, 1_714_675_581_121);
    assert_eq!(event.metadata.uid, "e1a0c3b2-0000-4000-8000-000000000001");
    assert_eq!(event.metadata.original_time.as_deref(), Some("2024-05-02T18:46:21.121Z"));
    assert_eq!(event.metadata.log_name, "okta");
    assert_eq!(event.metadata.raw_ref.as_deref(), Some("raw.okta/0/7"));
    assert_eq!(event.metadata.vendor_name, "Okta");
    assert_eq!(
        event.actor,
        User {
            uid: Some("00uactor".into()),
            name: Some("ada@example.com".into()),
            email: Some("ada@example.com".into()),
            r#type: Some("User".into()),
            domain: None,
        }
    );
    let endpoint = event.src_endpoint.expect("the client is the source endpoint");
    assert_eq!(endpoint.ip.as_deref(), Some("198.51.100.7"));
    let location = endpoint.location.expect("geolocated");
    assert_eq!((location.city.as_deref(), location.lat, location.lon), (Some("London"), Some(51.5), Some(-0.12)));
    assert_eq!(event.user_agent.as_deref(), Some("test-agent/1.0"));
    assert_eq!(event.session_uid.as_deref(), Some("idx-session-1"));
    assert_eq!(event.message.as_deref(), Some("test event"));
    assert_eq!(event.outcome.as_deref(), Some("SUCCESS"));
    assert_eq!(event.is_mfa, None, "a session start alone does not say whether MFA was used");
    assert_eq!(event.raw_data, None, "mapped events do not repeat the vendor JSON");
    assert_eq!(
        event.unmapped,
        BTreeMap::from([
            ("actor.displayName".to_string(), "\"Ada Lovelace\"".to_string()),
            ("transaction.id".to_string(), "\"tx-1\"".to_string()),
            ("transaction.type".to_string(), "\"WEB\"".to_string()),
        ])
    );
}

#[test]
fn session_end_and_mfa_are_authentication() {
    assert_eq!(normalize_one(&log_event("user.session.end")).type_uid, 300202);
    let mfa = normalize_one(&log_event("user.authentication.auth_via_mfa"));
    assert_eq!((mfa.type_uid, mfa.is_mfa), (300201, Some(true)));
    let push_denied = normalize_one(&log_event("user.mfa.okta_verify.deny_push"));
    assert_eq!((push_denied.type_uid, push_denied.is_mfa), (300299, Some(true)));
}

#[test]
fn lifecycle_deactivate_is_an_account_disable() {
    let event = normalize_one(&with_targets(log_event("user.lifecycle.deactivate"), json!([target_user()])));
    assert_eq!((event.class_uid, event.category_uid, event.activity_id, event.type_uid), (3001, 3, 5, 300105));
    assert_eq!(event.target_users, vec![expected_target_user()]);
    assert_eq!(event.is_mfa, None);
}

#[test]
fn account_change_activities() {
    let cases = [
        ("user.lifecycle.create", 1),
        ("user.lifecycle.activate", 2),
        ("user.lifecycle.unsuspend", 2),
        ("user.account.update_password", 3),
        ("user.account.reset_password", 4),
        ("user.lifecycle.suspend", 5),
        ("user.lifecycle.delete.initiated", 6),
        ("user.account.lock", 9),
        ("user.mfa.factor.activate", 10),
        ("user.mfa.factor.deactivate", 11),
        ("user.account.unlock_by_admin", 12),
        ("user.mfa.factor.update", 99),
    ];
    for (event_type, activity_id) in cases {
        let event = normalize_one(&log_event(event_type));
        assert_eq!((event.class_uid, event.activity_id), (3001, activity_id), "{event_type}");
    }
}

#[test]
fn group_membership_add_is_group_management_add_user() {
    let group = json!({"id": "00gsales", "type": "UserGroup", "alternateId": "unknown", "displayName": "Sales"});
    let event = normalize_one(&with_targets(log_event("group.user_membership.add"), json!([target_user(), group])));
    assert_eq!((event.class_uid, event.category_uid, event.activity_id, event.type_uid), (3006, 3, 3, 300603));
    assert_eq!(event.target_users, vec![expected_target_user()]);
    assert_eq!(event.target_groups, vec!["Sales".to_string()]);
    assert_eq!(normalize_one(&log_event("group.user_membership.remove")).type_uid, 300604);
}

#[test]
fn privilege_grant_is_user_access_management_assign() {
    let grant = with_targets(log_event("user.account.privilege.grant"), json!([target_user()]));
    let event = normalize_one(&grant);
    assert_eq!((event.class_uid, event.category_uid, event.activity_id, event.type_uid), (3005, 3, 1, 300501));
    assert_eq!(event.target_users, vec![expected_target_user()]);
    assert_eq!(normalize_one(&log_event("user.account.privilege.revoke")).type_uid, 300502);

    let app = json!({"id": "0oaapp", "type": "AppInstance", "alternateId": "Slack", "displayName": "Slack"});
    let assigned = normalize_one(&with_targets(log_event("application.user_membership.add"), json!([app])));
    assert_eq!(assigned.type_uid, 300501);
    let assigned_app = assigned.app.expect("the app instance target is the app");
    assert_eq!((assigned_app.name.as_str(), assigned_app.uid.as_deref()), ("Slack", Some("0oaapp")));
}

#[test]
fn unknown_event_type_is_a_base_event_with_the_vendor_json() {
    let payload = log_event("system.api_token.create").to_string();
    let out = run(&input("okta", payload.as_bytes(), 0));
    let event = events(&out).remove(0);
    assert_eq!((event.class_uid, event.category_uid, event.activity_id, event.type_uid), (0, 0, 0, 0));
    assert_eq!(event.raw_data.as_deref(), Some(payload.as_str()), "the vendor JSON, verbatim");
    assert_eq!(event.event_type, "system.api_token.create");
    assert_eq!(event.actor.uid.as_deref(), Some("00uactor"), "the common fields are still mapped");
}

#[test]
fn severity_and_status() {
    let mut event = log_event("user.session.start");
    for (severity, result, severity_id, status_id) in [
        (json!("DEBUG"), json!("ALLOW"), 1, 1),
        (json!("WARN"), json!("FAILURE"), 3, 2),
        (json!("ERROR"), json!("DENY"), 4, 2),
        (json!("LOUD"), json!("CHALLENGE"), 99, 99),
        (Value::Null, json!("UNKNOWN"), 0, 0),
        (Value::Null, Value::Null, 0, 0),
    ] {
        event["severity"] = severity;
        event["outcome"]["result"] = result;
        let mapped = normalize_one(&event);
        assert_eq!((mapped.severity_id, mapped.status_id), (severity_id, status_id), "{event}");
    }
}

#[test]
fn null_heavy_system_principal_events_map() {
    let mut event = log_event("user.session.start");
    event["actor"] = json!({"id": "spr1", "type": "SystemPrincipal", "alternateId": "system@okta.com", "displayName": "Okta System"});
    event["client"] = json!({"ipAddress": null, "userAgent": null, "geographicalContext": null, "zone": null});
    event["authenticationContext"] = Value::Null;
    event["debugContext"] = json!({"debugData": ""});
    let mapped = normalize_one(&event);
    assert_eq!((mapped.src_endpoint, mapped.user_agent, mapped.session_uid), (None, None, None));
    assert_eq!(mapped.actor.r#type.as_deref(), Some("SystemPrincipal"));
}

// ---- user objects ----

/// An Okta User object as `GET /api/v1/users` lists it (shape from Okta's Users API reference),
/// with the `_groups` names Weir's connector adds.
fn okta_user() -> Value {
    json!({
        "id": "00ub0oNGTSWTBKOLGLNR",
        "status": "ACTIVE",
        "created": "2013-06-24T16:39:18.000Z",
        "activated": "2013-06-24T16:39:19.000Z",
        "statusChanged": "2013-06-24T16:39:19.000Z",
        "lastLogin": "2013-06-24T17:39:19.000Z",
        "lastUpdated": "2013-07-02T21:36:25.344Z",
        "passwordChanged": "2013-07-02T21:36:25.344Z",
        "type": {"id": "otyfnjfba4ye7pgjB0g4"},
        "profile": {
            "firstName": "Isaac",
            "lastName": "Brock",
            "email": "isaac.brock@example.com",
            "secondEmail": "ibrock@example.org",
            "login": "isaac.brock@example.com",
            "mobilePhone": "555-415-1337",
            "department": "Engineering",
            "title": "Staff Engineer",
            "manager": "ada@example.com",
            "managerId": "00u1manager"
        },
        "credentials": {"password": {}, "provider": {"type": "OKTA", "name": "OKTA"}},
        "_groups": ["Everyone", "Engineering", 7],
        "_links": {"self": {"href": "https://example.okta.com/api/v1/users/00ub0oNGTSWTBKOLGLNR"}}
    })
}

#[test]
fn okta_user_objects_become_identity_snapshots() {
    let out = run(&input("okta", okta_user().to_string().as_bytes(), 11));
    assert!(out.rejected.is_empty(), "rejected: {:?}", out.rejected);
    assert_eq!(out.records.len(), 1);
    let record = &out.records[0];
    let identity: Identity = weir_schemas::decode(&record.value).expect("an Identity");
    assert_eq!(record.key.as_deref(), Some(&b"00ub0oNGTSWTBKOLGLNR"[..]), "keyed by user id");
    assert_eq!(record.timestamp_ms, 1_372_800_985_344, "timestamped with lastUpdated");
    assert_eq!(
        identity,
        Identity {
            uid: "00ub0oNGTSWTBKOLGLNR".into(),
            login: "isaac.brock@example.com".into(),
            email: Some("isaac.brock@example.com".into()),
            aliases: vec!["ibrock@example.org".into()],
            display_name: Some("Isaac Brock".into()),
            status: "ACTIVE".into(),
            department: Some("Engineering".into()),
            title: Some("Staff Engineer".into()),
            manager: Some("ada@example.com".into()),
            manager_uid: Some("00u1manager".into()),
            groups: vec!["Everyone".into(), "Engineering".into()],
            updated: 1_372_800_985_344,
            vendor_name: "Okta".into(),
            log_name: "okta".into(),
            raw_ref: Some("raw.okta/0/11".into()),
        }
    );

    let mut bare = okta_user();
    bare.as_object_mut().expect("an object").remove("_groups");
    bare["profile"] = json!({"login": "svc-backup", "displayName": "Backup service"});
    let out = run(&input("okta", bare.to_string().as_bytes(), 0));
    let identity: Identity = weir_schemas::decode(&out.records[0].value).expect("an Identity");
    assert_eq!((identity.email, identity.groups, identity.aliases), (None, vec![], vec![]));
    assert_eq!(identity.display_name.as_deref(), Some("Backup service"));
}

#[test]
fn okta_user_objects_without_required_fields_are_rejected() {
    let mut no_login = okta_user();
    no_login["profile"].as_object_mut().expect("an object").remove("login");
    assert_eq!(
        rejection(&input("okta", no_login.to_string().as_bytes(), 0)),
        "okta user 00ub0oNGTSWTBKOLGLNR: field `profile.login` is missing or not a string"
    );
    let mut bad_time = okta_user();
    bad_time["lastUpdated"] = json!("last tuesday");
    let reason = rejection(&input("okta", bad_time.to_string().as_bytes(), 0));
    assert!(
        reason.starts_with(
            "okta user 00ub0oNGTSWTBKOLGLNR: field `lastUpdated` is not a valid RFC 3339 time: \"last tuesday\""
        ),
        "{reason}"
    );
}

// ---- event hooks ----

#[test]
fn event_hook_delivery_emits_one_event_per_inner_event() {
    let delivery = json!({
        "eventType": "com.okta.event_hook",
        "eventId": "hook-1",
        "data": {"events": [log_event("user.session.start"), log_event("group.user_membership.add")]}
    });
    let out = run(&input("okta", delivery.to_string().as_bytes(), 3));
    assert!(out.rejected.is_empty());
    let types: Vec<i64> = events(&out).iter().map(|e| e.type_uid).collect();
    assert_eq!(types, vec![300201, 300603]);
}

#[test]
fn event_hook_delivery_with_a_bad_event_emits_the_others_and_rejects_once() {
    let mut bad = log_event("user.session.start");
    bad["uuid"] = json!("bad-1");
    bad["published"] = json!("yesterday");
    let delivery = json!({
        "eventType": "com.okta.event_hook",
        "eventId": "hook-2",
        "data": {"events": [log_event("user.session.end"), bad, 42]}
    });
    let record = input("okta", delivery.to_string().as_bytes(), 0);
    let out = run(&record);
    assert_eq!(events(&out).len(), 1);
    assert_eq!(out.rejected.len(), 1);
    assert!(out.rejected[0].original == original_of(&record), "the original bytes are kept");
    let reason = &out.rejected[0].reason;
    assert!(
        reason.starts_with("okta event hook delivery hook-2: 2 of 3 events rejected, the other 1 emitted: "),
        "{reason}"
    );
    assert!(
        reason.contains("events[1]: okta event bad-1: field `published` is not a valid RFC 3339 time: \"yesterday\""),
        "{reason}"
    );
    assert!(reason.contains("events[2]: okta event is a number, not a JSON object"), "{reason}");

    let no_events = json!({"eventType": "com.okta.event_hook", "eventId": "hook-3", "data": {}});
    assert_eq!(
        rejection(&input("okta", no_events.to_string().as_bytes(), 0)),
        "okta event hook delivery hook-3: field `data.events` is missing or not an array"
    );
}

// ---- bad input ----

#[test]
fn okta_devdocs_example_with_an_invalid_date_is_rejected() {
    let sample = include_bytes!("../../../tests/golden/okta/devdocs_logevent_example.json");
    let reason = rejection(&input("okta", sample, 0));
    assert!(
        reason.starts_with(
            "okta event f790999f-fe87-467a-9880-6982a583986c: field `published` is not a valid RFC 3339 time: \
             \"2017-09-31T22:23:07.777Z\" ("
        ),
        "{reason}"
    );
}

#[test]
fn required_fields_are_checked() {
    let cases = [
        ("uuid", "okta event: field `uuid` is missing or not a string"),
        ("eventType", "okta event e1a0c3b2-0000-4000-8000-000000000001: field `eventType` is missing or not a string"),
        ("published", "okta event e1a0c3b2-0000-4000-8000-000000000001: field `published` is missing or not a string"),
    ];
    for (field, reason) in cases {
        let mut event = log_event("user.session.start");
        event.as_object_mut().expect("an object").remove(field);
        assert_eq!(rejection(&input("okta", event.to_string().as_bytes(), 0)), reason);
    }
}

#[test]
fn payloads_that_are_not_json_objects_are_rejected() {
    let reason = rejection(&input("okta", b"uuid=1234 not json", 0));
    assert!(reason.starts_with("okta payload is not JSON: expected value at line 1 column 1"), "{reason}");
    let reason = rejection(&input("okta", b"\xff\xfe{}", 0));
    assert!(reason.starts_with("okta payload is not JSON: it is not UTF-8"), "{reason}");
    assert_eq!(rejection(&input("okta", b"[{\"uuid\":\"1\"}]", 0)), "okta payload is an array, not a JSON object");
}

#[test]
fn inputs_that_are_not_raw_envelopes_are_rejected() {
    let not_avro = StoredRecord {
        topic: "raw.okta".into(),
        partition: 1,
        offset: 2,
        record: Record::new(0, log_event("user.session.start").to_string().into_bytes()),
    };
    let reason = rejection(&not_avro);
    assert!(reason.starts_with("input is not a RawEnvelope: value is not Avro single-object encoded"), "{reason}");

    let other_schema = weir_schemas::encode(&IdentityActivity::default()).expect("encodes");
    let wrong = StoredRecord { record: Record::new(0, other_schema), ..not_avro };
    let reason = rejection(&wrong);
    assert!(reason.starts_with("input is not a RawEnvelope: value is a io.weir.IdentityActivity"), "{reason}");
}

#[test]
fn unknown_vendors_are_rejected_unless_the_config_forces_one() {
    let payload = log_event("user.session.start").to_string();
    assert_eq!(
        rejection(&input("acme", payload.as_bytes(), 0)),
        format!(
            "vendor \"acme\" (in the envelope from source \"okta\") has no mapping in the normalizer (known vendors: {})",
            crate::normalize::Vendor::KNOWN
        )
    );
    let mut forced = Normalize::new(NormalizeConfig { vendor: Some("okta".into()) }).expect("okta is known");
    let out = run_with(&mut forced, &input("file", payload.as_bytes(), 0));
    assert_eq!((out.records.len(), out.rejected.len()), (1, 0));
}

#[test]
fn config_is_checked() {
    assert_eq!(
        Normalize::new(NormalizeConfig { vendor: Some("acme".into()) }).map(|_| ()),
        Err(NormalizeConfigError::UnknownVendor("acme".into()))
    );
    let config: NormalizeConfig = serde_json::from_str(r#"{"vendor": "okta"}"#).expect("valid config");
    assert_eq!(config.vendor.as_deref(), Some("okta"));
    assert!(serde_json::from_str::<NormalizeConfig>(r#"{"vendr": "okta"}"#).is_err(), "unknown fields are denied");
    assert_eq!(serde_json::from_str::<NormalizeConfig>("{}").ok(), Some(NormalizeConfig::default()));
}

#[test]
fn reasons_quote_vendor_text_briefly() {
    assert_eq!(brief("ab\"c\n"), "ab\\\"c\\n");
    let long = "x".repeat(100);
    assert_eq!(brief(&long), format!("{}…", "x".repeat(64)));
}

// ---- determinism ----

#[test]
fn same_input_gives_identical_bytes() {
    let sample = include_bytes!("../../../tests/golden/okta/devdocs_event_hook_delivery.json");
    let record = input("okta", sample, 5);
    let first = run(&record);
    let second = run(&record);
    assert_eq!(first.records.len(), 1);
    assert_eq!(first.records, second.records);

    let mut reused = Normalize::new(NormalizeConfig::default()).expect("valid");
    run_with(&mut reused, &input("okta", b"{}", 0));
    assert_eq!(run_with(&mut reused, &record).records, first.records, "earlier input does not change the output");
}
