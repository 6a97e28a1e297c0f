//! Okta System Log events → [`IdentityActivity`]; Okta user objects → [`Identity`] snapshots.
//!
//! A payload that is an Okta *User object* (as listed by `GET /api/v1/users`: no `eventType`, an
//! `id` and a `profile` object) becomes one [`Identity`] keyed by the user id: `status`,
//! `profile.login` and an RFC 3339 `lastUpdated` are required (else the user is rejected);
//! `profile.email`, `.department`, `.title`, `.manager`, `.managerId` map to the fields of the same
//! name, `profile.secondEmail` becomes an alias, the display name is `profile.displayName` else
//! `firstName lastName`. Group membership is not part of Okta's user object: by Weir's convention
//! the connector that lists users adds a `_groups` array of group names (from
//! `/api/v1/users/{id}/groups`); non-string entries are skipped, and a user without `_groups`
//! has no groups in the snapshot.
//!
//! A payload is either one LogEvent (as polled from `GET /api/v1/logs`) or an event-hook delivery
//! (`{"eventType":"com.okta.event_hook","data":{"events":[LogEvent, ...]}}`), which yields one
//! event per LogEvent. LogEvents are read as JSON values, not a typed struct: Okta's optional parts
//! change shape between events (`debugData` is sometimes `""`, `client` fields all `null` for a
//! `SystemPrincipal`), and an odd optional field must not cost the whole event. Only `uuid`,
//! `eventType` and an RFC 3339 `published` are required; without them the event is rejected.
//!
//! OCSF class and activity by `eventType` (anything else is a Base Event, class 0, with the vendor
//! JSON verbatim in `raw_data`):
//!
//! | eventType | class | activity |
//! | --- | --- | --- |
//! | `user.session.start` | 3002 Authentication | 1 Logon |
//! | `user.session.end` | 3002 | 2 Logoff |
//! | `user.authentication.sso`, `.authenticate`, `.auth_via_*` | 3002 | 1 Logon |
//! | other `user.authentication.*`, `user.mfa.*` (not `user.mfa.factor.*`) | 3002 | 99 Other |
//! | `user.lifecycle.create` | 3001 Account Change | 1 Create |
//! | `user.lifecycle.activate`, `.reactivate`, `.unsuspend` | 3001 | 2 Enable |
//! | `user.account.update_password` | 3001 | 3 Password Change |
//! | `user.account.reset_password` | 3001 | 4 Password Reset |
//! | `user.lifecycle.deactivate`, `.suspend` | 3001 | 5 Disable |
//! | `user.lifecycle.delete.*` | 3001 | 6 Delete |
//! | `user.account.lock` | 3001 | 9 Lock |
//! | `user.account.unlock`, `.unlock_by_admin` | 3001 | 12 Unlock |
//! | `user.mfa.factor.activate`, `.unsuspend` | 3001 | 10 MFA Factor Enable |
//! | `user.mfa.factor.deactivate`, `.suspend`, `.reset_all` | 3001 | 11 MFA Factor Disable |
//! | other `user.mfa.factor.*` | 3001 | 99 Other |
//! | `user.account.privilege.grant`, `application.user_membership.add` | 3005 User Access Management | 1 Assign Privileges |
//! | `user.account.privilege.revoke`, `application.user_membership.remove` | 3005 | 2 Revoke Privileges |
//! | other `application.user_membership.*` | 3005 | 99 Other |
//! | `group.privilege.grant` | 3006 Group Management | 1 Assign Privileges |
//! | `group.privilege.revoke` | 3006 | 2 Revoke Privileges |
//! | `group.user_membership.add` | 3006 | 3 Add User |
//! | `group.user_membership.remove` | 3006 | 4 Remove User |
//! | `group.lifecycle.delete` | 3006 | 5 Delete |
//! | `group.lifecycle.create` | 3006 | 6 Create |
//!
//! `severity_id`: DEBUG, INFO → 1; WARN → 3; ERROR → 4; missing → 0; else 99. `status_id` from
//! `outcome.result`: SUCCESS, ALLOW → 1; FAILURE, DENY → 2; UNKNOWN or missing → 0; else (SKIPPED,
//! CHALLENGE, ...) 99. Okta writes `"unknown"` for ids and logins it does not have; those read as
//! absent.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use weir_schemas::events::ocsf;
use weir_schemas::events::{App, Endpoint, Identity, IdentityActivity, Location, Metadata, User};

use super::{batch_reason, brief, epoch_millis, kind, looks_like_email, non_empty_str, owned, str_at, Mapped, Origin};

/// The vendor name of Okta envelopes (`RawEnvelope::vendor`).
pub(super) const VENDOR: &str = "okta";

/// The `eventType` of an event-hook delivery.
const EVENT_HOOK_TYPE: &str = "com.okta.event_hook";

/// Fields kept in `unmapped` when present: (dotted path, JSON pointer).
const UNMAPPED: &[(&str, &str)] = &[
    ("actor.displayName", "/actor/displayName"),
    ("authenticationContext.credentialType", "/authenticationContext/credentialType"),
    ("authenticationContext.rootSessionId", "/authenticationContext/rootSessionId"),
    ("debugContext.debugData.behaviors", "/debugContext/debugData/behaviors"),
    ("debugContext.debugData.factor", "/debugContext/debugData/factor"),
    ("debugContext.debugData.privilegeGranted", "/debugContext/debugData/privilegeGranted"),
    ("debugContext.debugData.requestId", "/debugContext/debugData/requestId"),
    ("debugContext.debugData.requestUri", "/debugContext/debugData/requestUri"),
    ("debugContext.debugData.risk", "/debugContext/debugData/risk"),
    ("debugContext.debugData.threatSuspected", "/debugContext/debugData/threatSuspected"),
    ("legacyEventType", "/legacyEventType"),
    ("securityContext.asOrg", "/securityContext/asOrg"),
    ("securityContext.isProxy", "/securityContext/isProxy"),
    ("transaction.id", "/transaction/id"),
    ("transaction.type", "/transaction/type"),
];

/// Maps one Okta payload: a LogEvent, or an event-hook delivery of several.
pub(super) fn normalize(payload: &[u8], origin: &Origin<'_>) -> Mapped {
    let text = match std::str::from_utf8(payload) {
        Ok(text) => text,
        Err(e) => return Mapped::rejected(format!("okta payload is not JSON: it is not UTF-8 ({e})")),
    };
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(e) => return Mapped::rejected(format!("okta payload is not JSON: {e}")),
    };
    if !value.is_object() {
        return Mapped::rejected(format!("okta payload is {}, not a JSON object", kind(&value)));
    }
    if str_at(&value, "/eventType") == Some(EVENT_HOOK_TYPE) {
        return hook_delivery(text, &value, origin);
    }
    if is_user_object(&value) {
        return match map_user(&value, origin) {
            Ok(identity) => Mapped::identity(identity),
            Err(reason) => Mapped::rejected(reason),
        };
    }
    match map_event(&value, text, origin) {
        Ok(event) => Mapped::one(event),
        Err(reason) => Mapped::rejected(reason),
    }
}

/// An event-hook delivery, reading each LogEvent's text exactly as received.
#[derive(Deserialize)]
struct HookDelivery<'a> {
    #[serde(borrow)]
    data: HookData<'a>,
}

/// The `data` of an event-hook delivery.
#[derive(Deserialize)]
struct HookData<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// Maps every LogEvent of a hook delivery; the events that fail share one reason.
fn hook_delivery(text: &str, delivery: &Value, origin: &Origin<'_>) -> Mapped {
    let what = match str_at(delivery, "/eventId") {
        Some(id) => format!("okta event hook delivery {}", brief(id)),
        None => "okta event hook delivery".to_string(),
    };
    let raw_events = match delivery.pointer("/data/events").map(Value::is_array) {
        Some(true) => match serde_json::from_str::<HookDelivery<'_>>(text) {
            Ok(delivery) => delivery.data.events,
            Err(_) => return Mapped::rejected(format!("{what}: field `data.events` cannot be read")),
        },
        _ => return Mapped::rejected(format!("{what}: field `data.events` is missing or not an array")),
    };
    let mut mapped = Mapped::default();
    let mut failures = Vec::new();
    for (index, raw) in raw_events.iter().enumerate() {
        let event = serde_json::from_str::<Value>(raw.get()).map_err(|e| format!("okta event is not JSON: {e}"));
        match event.and_then(|event| map_event(&event, raw.get(), origin)) {
            Ok(event) => mapped.events.push(event.into()),
            Err(reason) => failures.push(format!("events[{index}]: {reason}")),
        }
    }
    mapped.rejected = batch_reason(&what, "events", &failures, raw_events.len());
    mapped
}

/// Maps one LogEvent; `raw` is its JSON text as received (kept in `raw_data` for unmapped types).
fn map_event(event: &Value, raw: &str, origin: &Origin<'_>) -> Result<IdentityActivity, String> {
    if !event.is_object() {
        return Err(format!("okta event is {}, not a JSON object", kind(event)));
    }
    let uuid = str_at(event, "/uuid").ok_or("okta event: field `uuid` is missing or not a string")?;
    let what = format!("okta event {}", brief(uuid));
    let event_type =
        str_at(event, "/eventType").ok_or_else(|| format!("{what}: field `eventType` is missing or not a string"))?;
    let published =
        str_at(event, "/published").ok_or_else(|| format!("{what}: field `published` is missing or not a string"))?;
    let time = epoch_millis(published).map_err(|why| {
        format!("{what}: field `published` is not a valid RFC 3339 time: \"{}\" ({why})", brief(published))
    })?;

    let (class_uid, activity_id) = classify(event_type).unwrap_or((ocsf::BASE_EVENT, 0));
    let targets: &[Value] = event.get("target").and_then(Value::as_array).map_or(&[], Vec::as_slice);
    let targets_of = |kind: &'static str| targets.iter().filter(move |t| str_at(t, "/type") == Some(kind));
    let outcome = str_at(event, "/outcome/result");
    let authentication_provider = known(str_at(event, "/authenticationContext/authenticationProvider"));

    Ok(IdentityActivity {
        class_uid,
        category_uid: ocsf::category_uid(class_uid),
        activity_id,
        type_uid: ocsf::type_uid(class_uid, activity_id),
        severity_id: severity_id(str_at(event, "/severity")),
        status_id: status_id(outcome),
        time,
        metadata: Metadata {
            uid: uuid.to_string(),
            version: ocsf::VERSION.to_string(),
            vendor_name: "Okta".to_string(),
            product_name: "System Log".to_string(),
            original_time: Some(published.to_string()),
            log_name: origin.log_name.to_string(),
            raw_ref: Some(origin.raw_ref.to_string()),
        },
        message: owned(str_at(event, "/displayMessage")),
        actor: event.get("actor").map(user).unwrap_or_default(),
        target_users: targets_of("User").map(user).collect(),
        target_groups: targets_of("UserGroup").filter_map(entity_name).map(String::from).collect(),
        app: targets_of("AppInstance").next().and_then(|target| {
            Some(App {
                name: entity_name(target)?.to_string(),
                category: None,
                uid: owned(known(str_at(target, "/id"))),
            })
        }),
        src_endpoint: src_endpoint(event),
        user_agent: owned(str_at(event, "/client/userAgent/rawUserAgent")),
        session_uid: owned(known(str_at(event, "/authenticationContext/externalSessionId"))),
        auth_protocol: owned(
            authentication_provider.or(known(str_at(event, "/authenticationContext/credentialProvider"))),
        ),
        is_mfa: is_mfa(class_uid, event_type, authentication_provider),
        event_type: event_type.to_string(),
        outcome: owned(outcome),
        outcome_reason: owned(str_at(event, "/outcome/reason")),
        unmapped: unmapped(event),
        raw_data: (class_uid == ocsf::BASE_EVENT).then(|| raw.to_string()),
    })
}

/// Whether a payload is an Okta User object rather than a LogEvent: no `eventType`, an `id` and a
/// `profile` object.
fn is_user_object(value: &Value) -> bool {
    value.get("eventType").is_none() && value.get("id").is_some() && value.get("profile").is_some_and(Value::is_object)
}

/// Maps an Okta User object to a directory snapshot.
fn map_user(user: &Value, origin: &Origin<'_>) -> Result<Identity, String> {
    let uid = str_at(user, "/id").ok_or("okta user: field `id` is not a string")?;
    let what = format!("okta user {}", brief(uid));
    let status = str_at(user, "/status").ok_or_else(|| format!("{what}: field `status` is missing or not a string"))?;
    let login = str_at(user, "/profile/login")
        .ok_or_else(|| format!("{what}: field `profile.login` is missing or not a string"))?;
    let last_updated = str_at(user, "/lastUpdated")
        .ok_or_else(|| format!("{what}: field `lastUpdated` is missing or not a string"))?;
    let updated = epoch_millis(last_updated).map_err(|why| {
        format!("{what}: field `lastUpdated` is not a valid RFC 3339 time: \"{}\" ({why})", brief(last_updated))
    })?;
    let profile = |field: &str| owned(str_at(user, &format!("/profile/{field}")));
    let email = profile("email");
    let aliases = profile("secondEmail")
        .filter(|second| {
            !second.eq_ignore_ascii_case(login) && email.as_ref().is_none_or(|e| !e.eq_ignore_ascii_case(second))
        })
        .into_iter()
        .collect();
    let full_name = match (str_at(user, "/profile/firstName"), str_at(user, "/profile/lastName")) {
        (Some(first), Some(last)) => Some(format!("{first} {last}")),
        (first, last) => owned(first.or(last)),
    };
    let groups = user.get("_groups").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    Ok(Identity {
        uid: uid.to_string(),
        login: login.to_string(),
        email,
        aliases,
        display_name: profile("displayName").or(full_name),
        status: status.to_string(),
        department: profile("department"),
        title: profile("title"),
        manager: profile("manager"),
        manager_uid: profile("managerId"),
        groups: groups.iter().filter_map(non_empty_str).map(str::to_string).collect(),
        updated,
        vendor_name: "Okta".to_string(),
        log_name: origin.log_name.to_string(),
        raw_ref: Some(origin.raw_ref.to_string()),
    })
}

/// The OCSF (class, activity) of an Okta event type; `None` when it has no mapping.
fn classify(event_type: &str) -> Option<(i32, i32)> {
    use ocsf::{ACCOUNT_CHANGE, AUTHENTICATION, GROUP_MANAGEMENT, OTHER, USER_ACCESS_MANAGEMENT};
    let mapping = match event_type {
        "user.session.start" | "user.authentication.sso" | "user.authentication.authenticate" => (AUTHENTICATION, 1),
        "user.session.end" => (AUTHENTICATION, 2),
        t if t.starts_with("user.authentication.auth_via_") => (AUTHENTICATION, 1),
        t if t.starts_with("user.authentication.") => (AUTHENTICATION, OTHER),

        "user.lifecycle.create" => (ACCOUNT_CHANGE, 1),
        "user.lifecycle.activate" | "user.lifecycle.reactivate" | "user.lifecycle.unsuspend" => (ACCOUNT_CHANGE, 2),
        "user.account.update_password" => (ACCOUNT_CHANGE, 3),
        "user.account.reset_password" => (ACCOUNT_CHANGE, 4),
        "user.lifecycle.deactivate" | "user.lifecycle.suspend" => (ACCOUNT_CHANGE, 5),
        t if t == "user.lifecycle.delete" || t.starts_with("user.lifecycle.delete.") => (ACCOUNT_CHANGE, 6),
        "user.account.lock" => (ACCOUNT_CHANGE, 9),
        "user.mfa.factor.activate" | "user.mfa.factor.unsuspend" => (ACCOUNT_CHANGE, 10),
        "user.mfa.factor.deactivate" | "user.mfa.factor.suspend" | "user.mfa.factor.reset_all" => (ACCOUNT_CHANGE, 11),
        "user.account.unlock" | "user.account.unlock_by_admin" => (ACCOUNT_CHANGE, 12),
        t if t.starts_with("user.mfa.factor.") => (ACCOUNT_CHANGE, OTHER),
        t if t.starts_with("user.mfa.") => (AUTHENTICATION, OTHER),

        "user.account.privilege.grant" | "application.user_membership.add" => (USER_ACCESS_MANAGEMENT, 1),
        "user.account.privilege.revoke" | "application.user_membership.remove" => (USER_ACCESS_MANAGEMENT, 2),
        t if t.starts_with("application.user_membership.") => (USER_ACCESS_MANAGEMENT, OTHER),

        "group.privilege.grant" => (GROUP_MANAGEMENT, 1),
        "group.privilege.revoke" => (GROUP_MANAGEMENT, 2),
        "group.user_membership.add" => (GROUP_MANAGEMENT, 3),
        "group.user_membership.remove" => (GROUP_MANAGEMENT, 4),
        "group.lifecycle.delete" => (GROUP_MANAGEMENT, 5),
        "group.lifecycle.create" => (GROUP_MANAGEMENT, 6),
        _ => return None,
    };
    Some(mapping)
}

/// Whether a second factor was used: known to be true for MFA events and factor-provider
/// authentications, unknown (`None`) otherwise and outside the Authentication class.
fn is_mfa(class_uid: i32, event_type: &str, authentication_provider: Option<&str>) -> Option<bool> {
    let mfa_event = event_type == "user.authentication.auth_via_mfa"
        || (event_type.starts_with("user.mfa.") && !event_type.starts_with("user.mfa.factor."));
    (class_uid == ocsf::AUTHENTICATION && (mfa_event || authentication_provider == Some("FACTOR_PROVIDER")))
        .then_some(true)
}

/// OCSF `severity_id` of an Okta `severity`.
fn severity_id(severity: Option<&str>) -> i32 {
    match severity {
        Some("DEBUG" | "INFO") => ocsf::SEVERITY_INFORMATIONAL,
        Some("WARN") => ocsf::SEVERITY_MEDIUM,
        Some("ERROR") => ocsf::SEVERITY_HIGH,
        Some(_) => ocsf::OTHER,
        None => ocsf::SEVERITY_UNKNOWN,
    }
}

/// OCSF `status_id` of an Okta `outcome.result`.
fn status_id(result: Option<&str>) -> i32 {
    match result {
        Some("SUCCESS" | "ALLOW") => ocsf::STATUS_SUCCESS,
        Some("FAILURE" | "DENY") => ocsf::STATUS_FAILURE,
        Some("UNKNOWN") | None => ocsf::STATUS_UNKNOWN,
        Some(_) => ocsf::OTHER,
    }
}

/// An Okta actor or target (`{id, type, alternateId, displayName}`) as a user: the login
/// (`alternateId`) is the name, and the email too when it looks like one.
fn user(entity: &Value) -> User {
    let login = known(str_at(entity, "/alternateId"));
    User {
        uid: owned(known(str_at(entity, "/id"))),
        name: owned(login.or(str_at(entity, "/displayName"))),
        email: owned(login.filter(|login| looks_like_email(login))),
        r#type: owned(str_at(entity, "/type")),
        domain: None,
    }
}

/// The name of an Okta target: its display name, else its alternate id, else its id.
fn entity_name(entity: &Value) -> Option<&str> {
    str_at(entity, "/displayName").or(known(str_at(entity, "/alternateId"))).or(known(str_at(entity, "/id")))
}

/// Where the request came from: the client's IP address and geolocation, if Okta gave any.
fn src_endpoint(event: &Value) -> Option<Endpoint> {
    let geo = |field: &str| event.pointer(&format!("/client/geographicalContext/{field}"));
    let location = Location {
        city: owned(geo("city").and_then(non_empty_str)),
        country: owned(geo("country").and_then(non_empty_str)),
        lat: geo("geolocation/lat").and_then(Value::as_f64),
        lon: geo("geolocation/lon").and_then(Value::as_f64),
    };
    let location = (location != Location::default()).then_some(location);
    let ip = owned(str_at(event, "/client/ipAddress"));
    (ip.is_some() || location.is_some()).then_some(Endpoint { ip, port: None, hostname: None, location })
}

/// The [`UNMAPPED`] fields the event has, as JSON text, by dotted path.
fn unmapped(event: &Value) -> BTreeMap<String, String> {
    UNMAPPED
        .iter()
        .filter_map(|&(path, pointer)| {
            let value = event.pointer(pointer)?;
            let absent = value.is_null() || value.as_str().is_some_and(|s| known(Some(s)).is_none());
            (!absent).then(|| (path.to_string(), value.to_string()))
        })
        .collect()
}

/// Drops Okta's placeholder for a value it does not have.
fn known(text: Option<&str>) -> Option<&str> {
    text.filter(|text| !text.is_empty() && *text != "unknown")
}
