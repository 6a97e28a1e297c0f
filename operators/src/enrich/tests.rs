//! Tests of the enrich operator: each table's update rules (including out-of-order updates),
//! the joins and their keys, missing context, restarts through `restore`, determinism, bad input
//! and damaged state; then the state layouts and the small helpers.

use std::collections::BTreeMap;

use weir_schemas::component::{ErrorKind, MemoryState, Operator, Output, State};
use weir_schemas::events::{
    AppActivity, ChangeType, Cloud, CloudActor, CloudApiActivity, Device, DeviceInventory, EndpointDetection,
    EnrichedEvent, Identity, IdentityActivity, Metadata, PropertyChange, RawEnvelope, Resource, ResourceChange, User,
};
use weir_schemas::record::{Record, StoredRecord};
use weir_schemas::AvroRecord;

use super::codec::CodecError;
use super::tables::{AssetEntry, AssetUpdate, DeviceEntry, GroupMembership, IdentityEntry, IdentityTable, NEVER};
use super::*;

const T0: i64 = 1_718_000_000_000;

// ---- builders ----

fn stored<T: AvroRecord>(value: &T, offset: u64) -> StoredRecord {
    let bytes = weir_schemas::encode(value).expect("test values encode");
    raw_input(bytes, offset)
}

fn raw_input(bytes: Vec<u8>, offset: u64) -> StoredRecord {
    StoredRecord {
        topic: "events".into(),
        partition: 0,
        offset,
        record: Record::new(T0, bytes).with_key(b"input-key".to_vec()),
    }
}

fn metadata(uid: &str) -> Metadata {
    Metadata { uid: uid.into(), version: "1.3.0".into(), log_name: "test".into(), ..Metadata::default() }
}

fn user(uid: Option<&str>, name: Option<&str>, email: Option<&str>) -> User {
    User { uid: uid.map(Into::into), name: name.map(Into::into), email: email.map(Into::into), ..User::default() }
}

fn snapshot(uid: &str, login: &str, updated: i64) -> Identity {
    Identity {
        uid: uid.into(),
        login: login.into(),
        email: Some(format!("{login}@example.com")),
        aliases: vec![format!("{login}.alt@example.org")],
        display_name: Some(format!("{login} person")),
        status: "ACTIVE".into(),
        department: Some("Engineering".into()),
        title: Some("Engineer".into()),
        manager: Some("boss@example.com".into()),
        manager_uid: Some("00uboss".into()),
        groups: vec!["Everyone".into(), "Engineering".into()],
        updated,
        vendor_name: "Okta".into(),
        log_name: "okta_users".into(),
        raw_ref: None,
    }
}

fn app_event(uid: &str, actor: User, time: i64) -> AppActivity {
    AppActivity {
        class_uid: 6001,
        category_uid: 6,
        activity_id: 1,
        type_uid: 600_101,
        time,
        metadata: metadata(uid),
        event_type: "application".into(),
        user: actor,
        ..AppActivity::default()
    }
}

fn identity_event(event_type: &str, class_uid: i32, activity_id: i32, target: &str, time: i64) -> IdentityActivity {
    IdentityActivity {
        class_uid,
        category_uid: 3,
        activity_id,
        type_uid: i64::from(class_uid) * 100 + i64::from(activity_id),
        status_id: 1,
        time,
        metadata: metadata(&format!("{event_type}@{time}")),
        actor: user(Some("00uadmin"), Some("admin@example.com"), Some("admin@example.com")),
        target_users: vec![user(Some(target), Some("target@example.com"), Some("target@example.com"))],
        event_type: event_type.into(),
        ..IdentityActivity::default()
    }
}

fn lifecycle(event_type: &str, activity_id: i32, target: &str, time: i64) -> IdentityActivity {
    identity_event(event_type, 3001, activity_id, target, time)
}

fn membership(add: bool, target: &str, group: &str, time: i64) -> IdentityActivity {
    let event_type = if add { "group.user_membership.add" } else { "group.user_membership.remove" };
    let mut event = identity_event(event_type, 3006, if add { 3 } else { 4 }, target, time);
    event.target_groups = vec![group.into()];
    event
}

fn inventory(uid: &str, hostname: &str, tags: &[&str], time: i64) -> DeviceInventory {
    DeviceInventory {
        class_uid: 5001,
        category_uid: 5,
        activity_id: 2,
        type_uid: 500_102,
        time,
        metadata: metadata(&format!("{uid}@{time}")),
        device: Device {
            uid: Some(uid.into()),
            hostname: Some(hostname.into()),
            os_name: Some("Windows".into()),
            os_version: Some("Windows 11".into()),
            agent_version: Some("7.11.18110.0".into()),
            ..Device::default()
        },
        reduced_functionality_mode: Some(false),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..DeviceInventory::default()
    }
}

fn detection(device: Device, time: i64) -> EndpointDetection {
    EndpointDetection {
        class_uid: 2004,
        category_uid: 2,
        activity_id: 1,
        type_uid: 200_401,
        time,
        metadata: metadata(&format!("det@{time}")),
        finding_uid: "det-1".into(),
        title: "Suspicious process".into(),
        device,
        ..EndpointDetection::default()
    }
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn change(property: &str, new_value: Option<&str>) -> PropertyChange {
    PropertyChange { property: property.into(), previous_value: None, new_value: new_value.map(Into::into) }
}

fn resource_change(
    uid: &str,
    change_type: ChangeType,
    time: i64,
    resource_tags: &[(&str, &str)],
    changes: Vec<PropertyChange>,
) -> ResourceChange {
    ResourceChange {
        class_uid: 5023,
        category_uid: 5,
        activity_id: 1,
        type_uid: 502_301,
        time,
        metadata: metadata(&format!("{uid}@{time}")),
        resource: Resource {
            uid: uid.into(),
            name: Some("payroll".into()),
            r#type: Some("Microsoft.Storage/storageAccounts".into()),
            region: Some("westeurope".into()),
            tags: tags(resource_tags),
        },
        change_type,
        changes,
        cloud: Cloud { provider: "azure".into(), account_uid: Some("sub-1".into()), region: None },
        actor: Some(user(None, Some("ada@example.com"), None)),
        ..ResourceChange::default()
    }
}

fn api_call(resources: &[&str], time: i64) -> CloudApiActivity {
    CloudApiActivity {
        class_uid: 6003,
        category_uid: 6,
        time,
        metadata: metadata(&format!("api@{time}")),
        actor: CloudActor { user: user(Some("AROAEXAMPLE:ada"), None, None), ..CloudActor::default() },
        resources: resources.iter().map(|uid| Resource { uid: uid.to_string(), ..Resource::default() }).collect(),
        ..CloudApiActivity::default()
    }
}

// ---- running ----

/// An operator with the default config and its state.
fn operator() -> (Enrich, MemoryState) {
    (Enrich::new(EnrichConfig::default()).expect("the default config is valid"), MemoryState::default())
}

fn process(enrich: &mut Enrich, state: &mut MemoryState, input: &StoredRecord) -> Output {
    let mut out = Output::default();
    enrich.process(input, state, &mut out).expect("bad input is rejected, not an error");
    out
}

/// Feeds inputs in order, checking that nothing is rejected.
fn feed(enrich: &mut Enrich, state: &mut MemoryState, inputs: &[StoredRecord]) -> Vec<Record> {
    let mut records = Vec::new();
    for input in inputs {
        let out = process(enrich, state, input);
        assert!(out.rejected.is_empty(), "rejected: {:?}", out.rejected);
        records.extend(out.records);
    }
    records
}

/// The one enriched event `input` produces, checking the record around it.
fn enrich_one(enrich: &mut Enrich, state: &mut MemoryState, input: &StoredRecord) -> EnrichedEvent {
    let out = process(enrich, state, input);
    assert!(out.rejected.is_empty(), "rejected: {:?}", out.rejected);
    assert_eq!(out.records.len(), 1, "one enriched event per security event");
    let record = &out.records[0];
    let enriched: EnrichedEvent = weir_schemas::decode(&record.value).expect("outputs are EnrichedEvents");
    assert_eq!(enriched.event, input.record.value, "the event bytes are the input, unchanged");
    let fingerprint = weir_schemas::avro::fingerprint_of(&input.record.value).expect("a header");
    assert_eq!(enriched.event_schema, fingerprint as i64);
    assert_eq!(record.timestamp_ms, enriched.time, "timestamped with the event time");
    let expected_key = enriched.user_context.as_ref().map_or(b"input-key".to_vec(), |u| u.uid.as_bytes().to_vec());
    assert_eq!(record.key.as_deref(), Some(expected_key.as_slice()), "keyed by the joined user, else the input key");
    enriched
}

fn ada_event(time: i64) -> StoredRecord {
    stored(&app_event("evt-ada", user(None, Some("ada@example.com"), None), time), 99)
}

// ---- identities ----

#[test]
fn snapshots_fill_the_identity_table_and_emit_nothing() {
    let (mut enrich, mut state) = operator();
    let out = process(&mut enrich, &mut state, &stored(&snapshot("00uada", "ada", T0), 0));
    assert!(out.records.is_empty() && out.rejected.is_empty());
    assert!(state.get(IDENTITY_TABLE, b"00uada").expect("readable").is_some(), "the entry is in State");

    let enriched =
        enrich_one(&mut enrich, &mut state, &stored(&app_event("e1", user(Some("00uada"), None, None), T0), 1));
    assert_eq!(
        enriched.user_context,
        Some(UserContext {
            uid: "00uada".into(),
            login: Some("ada".into()),
            email: Some("ada@example.com".into()),
            status: Some("ACTIVE".into()),
            department: Some("Engineering".into()),
            title: Some("Engineer".into()),
            manager: Some("boss@example.com".into()),
            groups: vec!["Engineering".into(), "Everyone".into()],
            aliases: vec!["ada.alt@example.org".into()],
        })
    );
    assert_eq!(enriched.missing_context, Vec::<String>::new());
    assert_eq!((enriched.event_uid.as_str(), enriched.class_uid, enriched.time), ("e1", 6001, T0));
}

#[test]
fn context_from_another_workers_partition_updates_the_tables_and_emits_nothing() {
    let (mut enrich, mut state) = operator();
    assert!(matches!(enrich.partitioning(), weir_schemas::component::Partitioning::GlobalTables));
    let context = [
        stored(&snapshot("00uada", "ada", T0), 0),
        stored(&lifecycle("user.lifecycle.suspend", 5, "00uada", T0 + 1), 1),
        raw_input(b"not an event".to_vec(), 2),
    ];
    for input in &context {
        enrich.apply_context(input, &mut state).expect("context never fails on bad input");
    }
    let (mut processed, mut processed_state) = operator();
    let emitted = feed(&mut processed, &mut processed_state, &context[..2]);
    assert_eq!(emitted.len(), 1, "processing the lifecycle event enriches it; applying it as context does not");
    assert_eq!(state, processed_state, "the tables are those that processing the records builds");

    let enriched = enrich_one(&mut enrich, &mut state, &ada_event(T0 + 2));
    assert_eq!(enriched.user_context.map(|u| u.status), Some(Some("SUSPENDED".into())));
}

#[test]
fn users_are_joined_by_uid_login_email_and_alias_ignoring_case() {
    let (mut enrich, mut state) = operator();
    feed(&mut enrich, &mut state, &[stored(&snapshot("00uada", "ada", T0), 0)]);
    for actor in [
        user(Some("00uada"), None, None),
        user(None, Some("ada"), None),
        user(None, Some("ADA"), None),
        user(None, None, Some("Ada@Example.com")),
        user(None, Some("ada.alt@example.org"), None),
        user(Some("AROA:unknown"), Some("nobody"), Some("ada@example.com")),
    ] {
        let enriched = enrich_one(&mut enrich, &mut state, &stored(&app_event("e", actor.clone(), T0), 1));
        assert_eq!(enriched.user_context.map(|u| u.uid), Some("00uada".to_string()), "{actor:?}");
        assert!(enriched.missing_context.is_empty());
    }
    // Uids match exactly.
    let enriched =
        enrich_one(&mut enrich, &mut state, &stored(&app_event("e", user(Some("00UADA"), None, None), T0), 2));
    assert_eq!(enriched.user_context, None);
}

#[test]
fn a_newer_snapshot_replaces_the_profile_and_its_aliases() {
    let (mut enrich, mut state) = operator();
    let mut renamed = snapshot("00uada", "ada.byron", T0 + 10);
    renamed.department = Some("Research".into());
    feed(&mut enrich, &mut state, &[stored(&snapshot("00uada", "ada", T0), 0), stored(&renamed, 1)]);
    let by_old_login =
        enrich_one(&mut enrich, &mut state, &stored(&app_event("e", user(None, Some("ada"), None), T0), 2));
    assert_eq!(by_old_login.user_context, None, "the old login no longer resolves");
    assert_eq!(by_old_login.missing_context, vec!["user:ada".to_string()]);
    let by_new =
        enrich_one(&mut enrich, &mut state, &stored(&app_event("e", user(None, Some("ada.byron"), None), T0), 3));
    assert_eq!(by_new.user_context.and_then(|u| u.department), Some("Research".into()));
}

#[test]
fn an_older_snapshot_after_a_newer_one_is_ignored() {
    let (mut enrich, mut state) = operator();
    let mut newer = snapshot("00uada", "ada", T0 + 100);
    newer.department = Some("Research".into());
    newer.status = "SUSPENDED".into();
    let older = snapshot("00uada", "ada-old", T0);
    feed(&mut enrich, &mut state, &[stored(&newer, 0)]);
    let before = state.clone();
    feed(&mut enrich, &mut state, &[stored(&older, 1), stored(&snapshot("00uada", "ada-tie", T0 + 100), 2)]);
    assert_eq!(state, before, "neither an older snapshot nor one with the same time changes the entry");
    let context = enrich_one(&mut enrich, &mut state, &ada_event(T0)).user_context.expect("joined");
    assert_eq!((context.department.as_deref(), context.status.as_deref()), (Some("Research"), Some("SUSPENDED")));

    // The same two snapshots in event-time order give the same state.
    let (mut in_order, mut in_order_state) = operator();
    feed(&mut in_order, &mut in_order_state, &[stored(&older, 1), stored(&newer, 0)]);
    assert_eq!(in_order_state, state);
}

#[test]
fn an_alias_two_users_claim_resolves_to_the_login_holder_whatever_the_order() {
    let mut holder = snapshot("00uzed", "shared", T0);
    holder.email = Some("zed@example.com".into());
    holder.aliases = Vec::new();
    let mut claimant = snapshot("00uamy", "amy", T0);
    claimant.aliases = vec!["SHARED".into()];
    for order in [[&holder, &claimant], [&claimant, &holder]] {
        let (mut enrich, mut state) = operator();
        feed(&mut enrich, &mut state, &[stored(order[0], 0), stored(order[1], 1)]);
        let enriched =
            enrich_one(&mut enrich, &mut state, &stored(&app_event("e", user(None, Some("shared"), None), T0), 2));
        assert_eq!(enriched.user_context.map(|u| u.uid).as_deref(), Some("00uzed"));
    }
    // Two users with the same login: the smaller uid.
    let (mut enrich, mut state) = operator();
    feed(
        &mut enrich,
        &mut state,
        &[stored(&snapshot("00ub", "twin", T0), 0), stored(&snapshot("00ua", "twin", T0), 1)],
    );
    let enriched = enrich_one(&mut enrich, &mut state, &stored(&app_event("e", user(None, Some("twin"), None), T0), 2));
    assert_eq!(enriched.user_context.map(|u| u.uid).as_deref(), Some("00ua"));
}

#[test]
fn lifecycle_events_set_the_status_by_event_type() {
    let cases = [
        ("user.lifecycle.suspend", 5, "SUSPENDED"),
        ("user.lifecycle.deactivate", 5, "DEPROVISIONED"),
        ("user.lifecycle.delete.initiated", 6, "DEPROVISIONED"),
        ("user.lifecycle.activate", 2, "ACTIVE"),
        ("user.account.lock", 9, "LOCKED_OUT"),
        ("user.account.unlock", 12, "ACTIVE"),
    ];
    for (event_type, activity, status) in cases {
        let (mut enrich, mut state) = operator();
        let mut initial = snapshot("00uada", "ada", T0);
        initial.status = "PROVISIONED".into();
        feed(&mut enrich, &mut state, &[stored(&initial, 0)]);
        let event = enrich_one(&mut enrich, &mut state, &stored(&lifecycle(event_type, activity, "00uada", T0 + 5), 1));
        assert_eq!(event.user_context, None, "the event is joined by its actor, an admin the directory lacks");
        assert_eq!(event.missing_context, vec!["user:00uadmin", "user:admin@example.com"]);
        let context = enrich_one(&mut enrich, &mut state, &ada_event(T0 + 6)).user_context.expect("joined");
        assert_eq!(context.status.as_deref(), Some(status), "{event_type}");
        assert_eq!(context.department.as_deref(), Some("Engineering"), "only the status changes");
    }
}

#[test]
fn lifecycle_events_apply_by_event_time() {
    let (mut enrich, mut state) = operator();
    let suspend = stored(&lifecycle("user.lifecycle.suspend", 5, "00uada", T0 + 20), 1);
    let older_activate = stored(&lifecycle("user.lifecycle.activate", 2, "00uada", T0 + 10), 2);
    let mut failed = lifecycle("user.lifecycle.activate", 2, "00uada", T0 + 30);
    failed.status_id = ocsf::STATUS_FAILURE;
    feed(
        &mut enrich,
        &mut state,
        &[stored(&snapshot("00uada", "ada", T0), 0), suspend, older_activate, stored(&failed, 3)],
    );
    let status = |enrich: &mut Enrich, state: &mut MemoryState| {
        enrich_one(enrich, state, &ada_event(T0)).user_context.and_then(|u| u.status)
    };
    assert_eq!(status(&mut enrich, &mut state).as_deref(), Some("SUSPENDED"), "older and failed events change nothing");

    // A snapshot older than the lifecycle event updates the profile but not the status...
    let mut older_snapshot = snapshot("00uada", "ada", T0 + 15);
    older_snapshot.title = Some("Principal Engineer".into());
    feed(&mut enrich, &mut state, &[stored(&older_snapshot, 4)]);
    let context = enrich_one(&mut enrich, &mut state, &ada_event(T0)).user_context.expect("joined");
    assert_eq!((context.status.as_deref(), context.title.as_deref()), (Some("SUSPENDED"), Some("Principal Engineer")));
    // ...a newer one sets both, and wins a tie with a lifecycle event.
    feed(&mut enrich, &mut state, &[stored(&snapshot("00uada", "ada", T0 + 40), 5)]);
    feed(&mut enrich, &mut state, &[stored(&lifecycle("user.lifecycle.suspend", 5, "00uada", T0 + 40), 6)]);
    assert_eq!(status(&mut enrich, &mut state).as_deref(), Some("ACTIVE"));
}

#[test]
fn a_lifecycle_event_for_an_unknown_user_adds_a_stub_a_snapshot_completes() {
    let (mut enrich, mut state) = operator();
    feed(&mut enrich, &mut state, &[stored(&lifecycle("user.lifecycle.deactivate", 5, "00ugone", T0 + 50), 0)]);
    let by_login = stored(&app_event("e", user(None, Some("target@example.com"), None), T0 + 60), 1);
    let context = enrich_one(&mut enrich, &mut state, &by_login).user_context.expect("the stub is joined");
    assert_eq!((context.uid.as_str(), context.status.as_deref()), ("00ugone", Some("DEPROVISIONED")));
    assert_eq!(context.department, None);

    feed(&mut enrich, &mut state, &[stored(&snapshot("00ugone", "gone", T0), 2)]);
    let by_uid = stored(&app_event("e", user(Some("00ugone"), None, None), T0 + 60), 3);
    let context = enrich_one(&mut enrich, &mut state, &by_uid).user_context.expect("joined");
    assert_eq!(context.status.as_deref(), Some("DEPROVISIONED"), "the older snapshot does not undo the deactivation");
    assert_eq!(context.department.as_deref(), Some("Engineering"), "but it fills the profile");
}

#[test]
fn membership_events_change_groups_per_group_by_event_time() {
    let (mut enrich, mut state) = operator();
    feed(
        &mut enrich,
        &mut state,
        &[
            stored(&snapshot("00uada", "ada", T0), 0),
            stored(&membership(true, "00uada", "Admins", T0 + 20), 1),
            stored(&membership(true, "00uada", "Finance", T0 + 30), 2),
            // Arrives late: older than the add of Finance, newer than the add of Admins.
            stored(&membership(false, "00uada", "Finance", T0 + 25), 3),
            stored(&membership(false, "00uada", "Admins", T0 + 21), 4),
            // Older than the snapshot: ignored.
            stored(&membership(true, "00uada", "Legacy", T0 - 5), 5),
        ],
    );
    let groups = |enrich: &mut Enrich, state: &mut MemoryState| {
        enrich_one(enrich, state, &ada_event(T0)).user_context.map(|u| u.groups).unwrap_or_default()
    };
    assert_eq!(groups(&mut enrich, &mut state), vec!["Engineering", "Everyone", "Finance"]);

    // A removal followed by an older add (arriving late) stays removed.
    feed(
        &mut enrich,
        &mut state,
        &[
            stored(&membership(false, "00uada", "Engineering", T0 + 40), 6),
            stored(&membership(true, "00uada", "Engineering", T0 + 35), 7),
        ],
    );
    assert_eq!(groups(&mut enrich, &mut state), vec!["Everyone", "Finance"]);

    // A newer snapshot listing groups replaces every membership not newer than it.
    let mut listed = snapshot("00uada", "ada", T0 + 35);
    listed.groups = vec!["Everyone".into(), "Sales".into()];
    feed(&mut enrich, &mut state, &[stored(&listed, 8)]);
    assert_eq!(groups(&mut enrich, &mut state), vec!["Everyone", "Sales"], "Engineering's removal at +40 is newer");

    // A snapshot without groups leaves them alone.
    let mut unlisted = snapshot("00uada", "ada", T0 + 50);
    unlisted.groups = Vec::new();
    feed(&mut enrich, &mut state, &[stored(&unlisted, 9)]);
    assert_eq!(groups(&mut enrich, &mut state), vec!["Everyone", "Sales"]);
}

// ---- devices ----

#[test]
fn inventory_fills_the_device_table_with_derived_facts() {
    let config = EnrichConfig { min_agent_version: Some("7.10".into()), ..EnrichConfig::default() };
    let mut enrich = Enrich::new(config).expect("valid");
    let mut state = MemoryState::default();
    let tags = ["FalconGroupingTags/CrownJewel", "FalconGroupingTags/sensitivity/high", "owner/ada@example.com"];
    let mut host = inventory("dev1", "HOST1", &tags, T0);
    host.unmapped.insert("last_login_user".into(), "\"someone\"".into());
    let enriched = enrich_one(&mut enrich, &mut state, &stored(&host, 0));
    assert_eq!(
        enriched.device_context,
        Some(DeviceContext {
            uid: "dev1".into(),
            hostname: Some("HOST1".into()),
            owner: Some("ada@example.com".into()),
            os: Some("Windows 11".into()),
            agent_version: Some("7.11.18110.0".into()),
            reduced_functionality_mode: Some(false),
            crown_jewel: Some(true),
            sensitivity: Some("high".into()),
            compliant: Some(true),
        })
    );
    assert_eq!(enriched.user_context, None);
    assert!(enriched.missing_context.is_empty(), "an inventory record has no user to look up");

    let device = |uid: &str, hostname: &str| Device {
        uid: Some(uid.to_string()).filter(|u| !u.is_empty()),
        hostname: Some(hostname.to_string()).filter(|h| !h.is_empty()),
        ..Device::default()
    };
    // Joined by uid, else hostname (ASCII case ignored, first label of a dotted name).
    for (uid, hostname) in [("dev1", ""), ("nope", "host1"), ("", "Host1.corp.example.com")] {
        let event = enrich_one(&mut enrich, &mut state, &stored(&detection(device(uid, hostname), T0), 1));
        assert_eq!(event.device_context.map(|d| d.uid).as_deref(), Some("dev1"), "{uid} {hostname}");
    }

    // The owner falls back to the last logged-in user; compliance fails on an old agent or RFM.
    let mut old = inventory("dev2", "HOST2", &[], T0);
    old.device.agent_version = Some("7.9.1".into());
    old.unmapped.insert("last_login_user".into(), "\"bob\"".into());
    let context = enrich_one(&mut enrich, &mut state, &stored(&old, 2)).device_context.expect("joined");
    assert_eq!(
        (context.owner.as_deref(), context.compliant, context.crown_jewel),
        (Some("bob"), Some(false), Some(false))
    );
    let mut rfm = inventory("dev3", "HOST3", &[], T0);
    rfm.reduced_functionality_mode = Some(true);
    assert_eq!(
        enrich_one(&mut enrich, &mut state, &stored(&rfm, 3)).device_context.and_then(|d| d.compliant),
        Some(false)
    );
    let mut unknown = inventory("dev4", "HOST4", &[], T0);
    unknown.device.agent_version = None;
    assert_eq!(
        enrich_one(&mut enrich, &mut state, &stored(&unknown, 4)).device_context.and_then(|d| d.compliant),
        None
    );
}

#[test]
fn device_updates_apply_by_event_time_and_hostnames_go_to_the_newest_device() {
    let (mut enrich, mut state) = operator();
    let newer = inventory("dev1", "HOST1", &["sensitivity/low"], T0 + 10);
    let older = inventory("dev1", "HOST1", &["sensitivity/high"], T0);
    feed(&mut enrich, &mut state, &[stored(&newer, 0), stored(&older, 1)]);
    let by_host = |enrich: &mut Enrich, state: &mut MemoryState| {
        let device = Device { hostname: Some("host1".into()), ..Device::default() };
        enrich_one(enrich, state, &stored(&detection(device, T0), 9)).device_context.expect("joined")
    };
    assert_eq!(by_host(&mut enrich, &mut state).sensitivity.as_deref(), Some("low"));

    // The host was re-imaged: a new device id with the same name, seen later.
    feed(&mut enrich, &mut state, &[stored(&inventory("dev0", "HOST1", &[], T0 + 20), 2)]);
    assert_eq!(by_host(&mut enrich, &mut state).uid, "dev0");
    // The old one is renamed: its old name no longer leads to it.
    feed(&mut enrich, &mut state, &[stored(&inventory("dev0", "HOST9", &[], T0 + 30), 3)]);
    assert_eq!(by_host(&mut enrich, &mut state).uid, "dev1");
}

// ---- assets ----

#[test]
fn resource_changes_fill_the_asset_table() {
    let (mut enrich, mut state) = operator();
    let create = resource_change(
        "/subscriptions/sub-1/storage/payroll",
        ChangeType::Create,
        T0,
        &[("Owner", "ada@example.com"), ("env", "prod")],
        vec![
            change("properties.publicNetworkAccess", Some("\"Enabled\"")),
            change("properties.encryption.services.blob.enabled", Some("true")),
        ],
    );
    let enriched = enrich_one(&mut enrich, &mut state, &stored(&create, 0));
    assert_eq!(
        enriched.asset_context,
        Some(AssetContext {
            uid: "/subscriptions/sub-1/storage/payroll".into(),
            owner: Some("ada@example.com".into()),
            account: Some("sub-1".into()),
            region: Some("westeurope".into()),
            tags: tags(&[("Owner", "ada@example.com"), ("env", "prod")]),
            public: Some(true),
            encrypted: Some(true),
        })
    );
    assert_eq!(enriched.missing_context, vec!["user:ada@example.com".to_string()], "the actor is not in the directory");

    // A later change that carries only one property keeps the other facts.
    let lock_down = resource_change(
        "/subscriptions/sub-1/storage/payroll",
        ChangeType::Update,
        T0 + 10,
        &[],
        vec![change("properties.networkAcls.defaultAction", Some("\"Deny\""))],
    );
    let context = enrich_one(&mut enrich, &mut state, &stored(&lock_down, 1)).asset_context.expect("joined");
    assert_eq!((context.public, context.encrypted), (Some(false), Some(true)));
    assert_eq!(context.tags.len(), 2, "a record without tags keeps them");

    // An API call on the resource is joined to it; the first resource found wins.
    let call = stored(&api_call(&["arn:unknown", "/subscriptions/sub-1/storage/payroll"], T0 + 20), 2);
    let enriched = enrich_one(&mut enrich, &mut state, &call);
    assert_eq!(enriched.asset_context.map(|a| a.uid).as_deref(), Some("/subscriptions/sub-1/storage/payroll"));
    assert_eq!(enriched.missing_context, vec!["user:AROAEXAMPLE:ada".to_string(), "asset:arn:unknown".to_string()]);
}

#[test]
fn asset_facts_apply_by_event_time_per_fact() {
    let (mut enrich, mut state) = operator();
    let uid = "arn:aws:s3:::payroll";
    let public_at_20 = resource_change(
        uid,
        ChangeType::Update,
        T0 + 20,
        &[("env", "prod")],
        vec![change("publiclyAccessible", Some("true"))],
    );
    let private_at_10 = resource_change(
        uid,
        ChangeType::Update,
        T0 + 10,
        &[("env", "dev")],
        vec![change("publiclyAccessible", Some("false")), change("storageEncrypted", Some("true"))],
    );
    feed(&mut enrich, &mut state, &[stored(&public_at_20, 0), stored(&private_at_10, 1)]);
    let context = enrich.assets.get(uid).expect("held").clone();
    assert_eq!(context.public, Some(true), "the older record does not undo the newer fact");
    assert_eq!(context.encrypted, Some(true), "but its fact nothing newer said is applied");
    assert_eq!(context.tags, tags(&[("env", "prod")]), "and its tags are older");
}

#[test]
fn a_delete_leaves_a_tombstone_and_its_event_keeps_the_last_context() {
    let (mut enrich, mut state) = operator();
    let uid = "arn:aws:s3:::payroll";
    feed(
        &mut enrich,
        &mut state,
        &[stored(&resource_change(uid, ChangeType::Create, T0, &[("owner", "ada")], vec![]), 0)],
    );
    let delete = stored(&resource_change(uid, ChangeType::Delete, T0 + 10, &[("owner", "ada")], vec![]), 1);
    let enriched = enrich_one(&mut enrich, &mut state, &delete);
    assert_eq!(
        enriched.asset_context.and_then(|a| a.owner).as_deref(),
        Some("ada"),
        "the delete shows what was deleted"
    );

    let late_update = stored(&resource_change(uid, ChangeType::Update, T0 + 5, &[("owner", "bob")], vec![]), 2);
    let enriched = enrich_one(&mut enrich, &mut state, &late_update);
    assert_eq!(enriched.asset_context, None, "an update older than the delete does not bring it back");
    assert_eq!(enriched.missing_context, vec!["user:ada@example.com".to_string(), format!("asset:{uid}")]);

    let recreate = stored(&resource_change(uid, ChangeType::Create, T0 + 20, &[("owner", "cy")], vec![]), 3);
    assert_eq!(
        enrich_one(&mut enrich, &mut state, &recreate).asset_context.and_then(|a| a.owner).as_deref(),
        Some("cy")
    );
}

// ---- missing context, restarts, determinism ----

#[test]
fn events_whose_context_is_missing_are_marked_and_emitted() {
    let (mut enrich, mut state) = operator();
    let mut event = app_event("e", user(Some("00unknown"), Some("alice@x.example"), Some("alice@x.example")), T0);
    event.device = Some(Device { uid: Some("devX".into()), hostname: Some("HOSTX".into()), ..Device::default() });
    let enriched = enrich_one(&mut enrich, &mut state, &stored(&event, 0));
    assert_eq!((enriched.user_context, enriched.device_context, enriched.asset_context), (None, None, None));
    assert_eq!(enriched.missing_context, vec!["user:00unknown", "user:alice@x.example", "device:devX", "device:HOSTX"]);

    // An event that names no user, device or resource looks nothing up.
    let bare = app_event("e", User::default(), T0);
    assert!(enrich_one(&mut enrich, &mut state, &stored(&bare, 1)).missing_context.is_empty());
}

/// A history touching every table, with out-of-order updates.
fn history() -> Vec<StoredRecord> {
    let uid = "arn:aws:s3:::payroll";
    vec![
        stored(&snapshot("00uada", "ada", T0 + 10), 0),
        stored(&snapshot("00ubob", "bob", T0), 1),
        stored(&snapshot("00uada", "ada-old", T0), 2),
        stored(&lifecycle("user.lifecycle.suspend", 5, "00ubob", T0 + 5), 3),
        stored(&membership(true, "00uada", "Admins", T0 + 20), 4),
        stored(&lifecycle("user.lifecycle.deactivate", 5, "00ustub", T0 + 5), 5),
        stored(&inventory("dev1", "HOST1", &["CrownJewel"], T0), 6),
        stored(&inventory("dev2", "HOST1", &[], T0 + 1), 7),
        stored(
            &resource_change(uid, ChangeType::Create, T0, &[("owner", "ada")], vec![change("encrypted", Some("true"))]),
            8,
        ),
        stored(&resource_change("arn:gone", ChangeType::Create, T0, &[], vec![]), 9),
        stored(&resource_change("arn:gone", ChangeType::Delete, T0 + 1, &[], vec![]), 10),
    ]
}

/// Events that join every table.
fn probes() -> Vec<StoredRecord> {
    let mut probe = app_event("p1", user(None, Some("ADA@example.com"), None), T0 + 100);
    probe.device = Some(Device { hostname: Some("host1".into()), ..Device::default() });
    vec![
        stored(&probe, 20),
        stored(&app_event("p2", user(Some("00ubob"), None, None), T0 + 100), 21),
        stored(&app_event("p3", user(None, Some("target@example.com"), None), T0 + 100), 22),
        stored(&api_call(&["arn:gone", "arn:aws:s3:::payroll"], T0 + 100), 23),
        stored(&detection(Device { uid: Some("dev1".into()), ..Device::default() }, T0 + 100), 24),
    ]
}

#[test]
fn restore_rebuilds_the_tables_and_indexes_from_state() {
    let (mut live, mut state) = operator();
    feed(&mut live, &mut state, &history());
    let expected = feed(&mut live, &mut state, &probes());

    // A restart: a new operator with the committed state only.
    let (mut restarted, _) = operator();
    restarted.restore(&state).expect("restores");
    let mut state_after = state.clone();
    assert_eq!(feed(&mut restarted, &mut state_after, &probes()), expected);
    assert_eq!(state_after, state, "probes change no state");

    // restore() also drops memory that ran ahead of the state (an uncommitted batch).
    let mut uncommitted = state.clone();
    feed(&mut live, &mut uncommitted, &[stored(&snapshot("00uada", "ada-renamed", T0 + 500), 30)]);
    live.restore(&state).expect("restores");
    assert_eq!(feed(&mut live, &mut state.clone(), &probes()), expected);
}

#[test]
fn the_same_input_gives_identical_bytes() {
    let run = || {
        let (mut enrich, mut state) = operator();
        let mut inputs = history();
        inputs.extend(probes());
        (feed(&mut enrich, &mut state, &inputs), state)
    };
    let (first, first_state) = run();
    let (second, second_state) = run();
    assert!(!first.is_empty());
    assert_eq!(first, second);
    assert_eq!(first_state, second_state);
}

// ---- bad input and damaged state ----

#[test]
fn bad_input_is_rejected_and_the_operator_carries_on() {
    let (mut enrich, mut state) = operator();
    let envelope = RawEnvelope { source: "okta".into(), vendor: "okta".into(), ..RawEnvelope::default() };
    let mut unknown_fingerprint = weir_schemas::encode(&snapshot("00uada", "ada", T0)).expect("encodes");
    unknown_fingerprint[2..10].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    let mut truncated = weir_schemas::encode(&app_event("e", User::default(), T0)).expect("encodes");
    truncated.truncate(14);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{\"json\": true}".to_vec(), "input is not an Avro single-object encoded event (no C3 01 header)"),
        (unknown_fingerprint, "input cannot be read: unknown schema fingerprint 0x0807060504030201"),
        (weir_schemas::encode(&envelope).expect("encodes"), "input is a io.weir.RawEnvelope (schema 0x"),
        (truncated, "input is not a readable typed security event: cannot decode io.weir.AppActivity"),
        (weir_schemas::encode(&snapshot("", "ada", T0)).expect("encodes"), "Identity snapshot has an empty uid"),
    ];
    for (offset, (bytes, reason)) in cases.into_iter().enumerate() {
        let out = process(&mut enrich, &mut state, &raw_input(bytes.clone(), offset as u64));
        assert!(out.records.is_empty());
        assert_eq!(out.rejected.len(), 1);
        assert!(out.rejected[0].reason.starts_with(reason), "{} does not start with {reason}", out.rejected[0].reason);
        assert_eq!(out.rejected[0].original, bytes, "the original bytes are kept");
    }
    assert_eq!(state, MemoryState::default(), "rejected input changes no state");
    assert_eq!(enrich_one(&mut enrich, &mut state, &ada_event(T0)).missing_context, vec!["user:ada@example.com"]);
}

#[test]
fn events_without_keys_or_of_base_classes_change_no_table() {
    let (mut enrich, mut state) = operator();
    let mut keyless = inventory("", "HOSTLESS", &[], T0);
    keyless.device.uid = None;
    let mut base = inventory("dev1", "HOST1", &[], T0);
    base.class_uid = 0;
    let mut no_target = lifecycle("user.lifecycle.suspend", 5, "x", T0);
    no_target.target_users = vec![user(None, Some("someone"), None)];
    let inputs = [stored(&keyless, 0), stored(&base, 1), stored(&no_target, 2)];
    assert_eq!(feed(&mut enrich, &mut state, &inputs).len(), 3, "each is still enriched and emitted");
    assert_eq!(state, MemoryState::default());
}

#[test]
fn damaged_state_is_a_fatal_error_naming_the_entry() {
    let (mut enrich, mut state) = operator();
    state.put(IDENTITY_TABLE, b"00uada", vec![1, 0x80]);
    let error = enrich.restore(&state).expect_err("damaged");
    assert_eq!(error.kind, ErrorKind::Fatal);
    assert_eq!(error.message, "enrich state entry identity/00uada is damaged: truncated at byte 2");
    let mut out = Output::default();
    let error = enrich.process(&stored(&snapshot("00uada", "ada", T0), 0), &mut state, &mut out).expect_err("damaged");
    assert!(error.message.starts_with("enrich state entry identity/00uada is damaged"), "{}", error.message);

    let mut state = MemoryState::default();
    state.put(DEVICE_TABLE, b"dev1", vec![9]);
    assert!(enrich.restore(&state).expect_err("damaged").message.ends_with("unknown layout version 9"));
}

#[test]
fn describe_state_shows_every_table_by_field_name() {
    let (mut enrich, mut state) = operator();
    let resource = "/subscriptions/sub-1/storage/payroll";
    let create = resource_change(resource, ChangeType::Create, T0, &[("env", "prod")], Vec::new());
    let inputs = [
        stored(&snapshot("00uada", "ada", T0), 0),
        stored(&membership(false, "00uada", "Everyone", T0 + 5), 1),
        stored(&inventory("dev1", "HOST1", &["b", "a"], T0), 2),
        stored(&create, 3),
    ];
    feed(&mut enrich, &mut state, &inputs);
    let describe = |table: &str, key: &str| {
        let value = state.get(table, key.as_bytes()).expect("readable").expect("stored");
        enrich.describe_state(table, key.as_bytes(), &value).expect("describes its own entries")
    };

    let identity = describe(IDENTITY_TABLE, "00uada");
    assert_eq!(identity["login"], "ada");
    assert_eq!(identity["snapshot_time"], serde_json::json!({ "ms": T0, "utc": "2024-06-10T06:13:20Z" }));
    assert_eq!(identity["groups"][1]["name"], "Everyone");
    assert_eq!(identity["groups"][1]["member"], false);
    assert_eq!(identity["groups"][1]["time"]["ms"], T0 + 5);
    let device = describe(DEVICE_TABLE, "dev1");
    assert_eq!(device["hostname"], "HOST1");
    assert_eq!(device["reduced_functionality_mode"], false);
    let asset = describe(ASSET_TABLE, resource);
    assert_eq!((asset["account"].as_str(), asset["tags"]["env"].as_str()), (Some("sub-1"), Some("prod")));
    assert_eq!((asset["deleted"].as_bool(), asset["public_time"].is_null()), (Some(false), true), "never set: null");

    assert_eq!(enrich.describe_state(IDENTITY_TABLE, b"x", &[1, 0x80]), None, "damaged bytes");
    assert_eq!(enrich.describe_state("other", b"x", &[]), None, "not its table");
}

// ---- config ----

#[test]
fn config_defaults_and_checks() {
    let config: EnrichConfig = serde_json::from_str("{}").expect("every option has a default");
    assert_eq!(config, EnrichConfig::default());
    assert_eq!(config.crown_jewel_tags, vec!["CrownJewel"]);
    let config: EnrichConfig = serde_json::from_str(
        r#"{"crown_jewel_tags": ["Tier0"], "sensitivity_tag_prefix": "data/", "owner_tag_prefix": "team/",
            "min_agent_version": "7.10", "asset_owner_tags": ["owner", "created-by"]}"#,
    )
    .expect("valid");
    assert!(Enrich::new(config).is_ok());
    assert!(serde_json::from_str::<EnrichConfig>(r#"{"crown_jewels": []}"#).is_err(), "unknown fields are denied");
    let bad = |config: EnrichConfig| Enrich::new(config).map(|_| ()).expect_err("invalid");
    assert_eq!(
        bad(EnrichConfig { min_agent_version: Some("7.x".into()), ..EnrichConfig::default() }),
        EnrichConfigError::BadMinAgentVersion("7.x".into())
    );
    assert_eq!(
        bad(EnrichConfig { sensitivity_tag_prefix: String::new(), ..EnrichConfig::default() }),
        EnrichConfigError::Empty("sensitivity_tag_prefix")
    );
    assert_eq!(
        bad(EnrichConfig { crown_jewel_tags: vec![String::new()], ..EnrichConfig::default() }),
        EnrichConfigError::Empty("crown_jewel_tags")
    );
}

// ---- the identity projection ----

/// A small deterministic pseudo-random sequence for model tests.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n
    }
}

/// The user the documented rule picks for an alias: of the users holding it as login (rank 1),
/// email (2) or alias (3), ASCII case ignored, the lowest rank, then the smallest uid.
fn expected_alias_owner<'a>(model: &'a BTreeMap<String, IdentityEntry>, key: &str) -> Option<&'a str> {
    model
        .iter()
        .filter_map(|(uid, entry)| {
            let keys = [
                entry.login.iter().map(|k| (1, k)).collect::<Vec<_>>(),
                entry.email.iter().map(|k| (2, k)).collect(),
                entry.aliases.iter().map(|k| (3, k)).collect(),
            ];
            keys.concat()
                .into_iter()
                .filter(|(_, k)| k.eq_ignore_ascii_case(key))
                .map(|(rank, _)| (rank, uid.as_str()))
                .min()
        })
        .min()
        .map(|(_, uid)| uid)
}

#[test]
fn the_identity_projection_agrees_with_a_model_through_updates_and_compactions() {
    let pool = ["ada", "ADA", "bob", "cy@example.com", "dee", "ed@example.com", "Ed@Example.com", "fay"];
    let mut rng = Lcg(7);
    let mut table = IdentityTable::with_compaction_from(256);
    let mut model: BTreeMap<String, IdentityEntry> = BTreeMap::new();
    let (mut arena_len, mut compactions) = (0, 0);
    for step in 0..3_000 {
        let uid = format!("00u{}", rng.below(40));
        let pick = |rng: &mut Lcg| (rng.below(3) > 0).then(|| pool[rng.below(pool.len())].to_string());
        let mut entry = IdentityEntry::stub(None, None);
        entry.login = pick(&mut rng);
        entry.email = pick(&mut rng);
        entry.aliases = (0..rng.below(3)).map(|_| pool[rng.below(pool.len())].to_string()).collect();
        entry.department = pick(&mut rng);
        entry.status = Some(["ACTIVE", "SUSPENDED"][rng.below(2)].to_string());
        for g in 0..rng.below(4) {
            entry.apply_membership(&format!("g{}", rng.below(6)), g % 3 != 0, step);
        }
        table.put(&uid, &entry).expect("room");
        model.insert(uid, entry);
        compactions += usize::from(table.key_arena_len() < arena_len);
        arena_len = table.key_arena_len();

        if step % 100 == 99 {
            assert_eq!(table.len(), model.len());
            for (uid, entry) in &model {
                let row = table.find_uid(uid).expect("every uid is found");
                let context = table.context(row);
                assert_eq!(context.uid, *uid);
                assert_eq!(
                    (&context.login, &context.email, &context.aliases),
                    (&entry.login, &entry.email, &entry.aliases)
                );
                assert_eq!((&context.department, &context.status), (&entry.department, &entry.status));
                assert_eq!(context.groups, entry.member_groups().collect::<Vec<_>>());
            }
            for key in pool.iter().copied().chain(["nobody", ""]) {
                let found = table.find_alias(key).map(|row| table.context(row).uid);
                assert_eq!(found.as_deref(), expected_alias_owner(&model, key), "step {step}, key {key:?}");
            }
            assert_eq!(table.find_uid("00u999"), None);
        }
    }
    assert!(compactions > 10, "the arenas were compacted along the way ({compactions} times)");
}

// ---- state layouts and helpers ----

#[test]
fn entries_round_trip_and_damaged_bytes_are_errors() {
    let identity = IdentityEntry {
        snapshot_time: T0,
        login: Some("ada".into()),
        email: None,
        aliases: vec!["a".into(), "ä@example.com".into()],
        display_name: Some("Ada".into()),
        department: None,
        title: Some(String::new()),
        manager: Some("m".into()),
        manager_uid: None,
        status: Some("ACTIVE".into()),
        status_time: NEVER,
        groups_time: -5,
        groups: vec![GroupMembership { name: "g".into(), time: i64::MAX, member: false }],
    };
    let device = DeviceEntry {
        time: T0,
        hostname: Some("h".into()),
        os_name: None,
        os_version: Some("11".into()),
        agent_version: None,
        last_login_user: Some("bob".into()),
        reduced_functionality_mode: Some(true),
        tags: vec!["x".into()],
    };
    let mut asset = AssetEntry::default();
    asset.apply(&AssetUpdate {
        time: T0,
        account: Some("1".into()),
        tags: Some(tags(&[("k", "v")])),
        encrypted: Some(false),
        ..AssetUpdate::default()
    });
    let identity_bytes = identity.encode();
    assert_eq!(IdentityEntry::decode(&identity_bytes), Ok(identity.clone()));
    assert_eq!(identity.encode(), identity_bytes, "deterministic");
    assert_eq!(DeviceEntry::decode(&device.encode()), Ok(device.clone()));
    assert_eq!(AssetEntry::decode(&asset.encode()), Ok(asset.clone()));
    assert_eq!(IdentityEntry::stub(None, None).encode().len(), 14, "an empty entry is small");

    for bytes in [identity.encode(), device.encode(), asset.encode()] {
        for cut in 0..bytes.len() {
            assert!(IdentityEntry::decode(&bytes[..cut]).is_err());
            assert!(DeviceEntry::decode(&bytes[..cut]).is_err());
            assert!(AssetEntry::decode(&bytes[..cut]).is_err());
        }
    }
    let mut longer = device.encode();
    longer.push(0);
    assert_eq!(DeviceEntry::decode(&longer), Err(CodecError::TrailingBytes(1)));
    assert_eq!(DeviceEntry::decode(&[2]), Err(CodecError::UnknownVersion(2)));
    let huge_count = [1, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(DeviceEntry::decode(&huge_count).is_err(), "a damaged count is an error, not an allocation");
}

#[test]
fn versions_compare_numerically_by_dotted_parts() {
    let v = |text: &str| version_parts(text).expect("a version");
    assert!(compare_versions(&v("7.10"), &v("7.9")).is_gt());
    assert!(compare_versions(&v("7.10.17706.0"), &v("7.10")).is_ge());
    assert!(compare_versions(&v("7.10"), &v("7.10.0.0")).is_eq());
    assert!(compare_versions(&v("6.58-beta"), &v("7.10")).is_lt());
    assert_eq!(version_parts("seven"), None);
}

#[test]
fn tags_match_at_the_start_or_after_a_slash_ignoring_case() {
    assert!(tag_is("CrownJewel", "crownjewel"));
    assert!(tag_is("FalconGroupingTags/CrownJewel", "CrownJewel"));
    assert!(!tag_is("NotCrownJewel", "CrownJewel"));
    assert!(!tag_is("Jewel", "CrownJewel"));
    assert_eq!(tag_value("FalconGroupingTags/Sensitivity/High", "sensitivity/"), Some("High"));
    assert_eq!(tag_value("sensitivity/low", "sensitivity/"), Some("low"));
    assert_eq!(tag_value("sensitivity/", "sensitivity/"), None);
    assert_eq!(tag_value("insensitivity/x", "sensitivity/"), None);
}

#[test]
fn property_facts_follow_the_documented_rules() {
    let facts = |property: &str, value: Option<&str>| property_facts(&change(property, value));
    assert_eq!(facts("properties.publicNetworkAccess", Some("\"Disabled\"")), (Some(false), None));
    assert_eq!(facts("properties.allowBlobPublicAccess", Some("true")), (Some(true), None));
    assert_eq!(facts("properties.networkAcls.defaultAction", Some("\"Allow\"")), (Some(true), None));
    assert_eq!(facts("iamPolicy.bindings", Some(r#"[{"members":["allUsers"]}]"#)), (Some(true), None));
    assert_eq!(facts("StorageEncrypted", Some("false")), (None, Some(false)));
    assert_eq!(facts("encryption.kmsKeyName", Some("\"projects/p/keys/k\"")), (None, Some(true)));
    assert_eq!(facts("ServerSideEncryptionConfiguration", None), (None, Some(false)));
    assert_eq!(facts("properties.sku.name", Some("\"Standard_LRS\"")), (None, None));
}
