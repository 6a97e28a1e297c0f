//! Azure Activity Log events → [`CloudApiActivity`] (OCSF 6003 API Activity); Resource Graph
//! resource changes → [`ResourceChange`] (OCSF 5023 Cloud Resources Inventory Info).
//!
//! A payload is one element, or a page of them that yields one output per element (the elements
//! that fail share one reason): `{"value":[...]}` (Activity Log REST `ActivityLogs_List`),
//! `{"records":[...]}` (diagnostic-setting export: an Event Hub message or a storage blob),
//! `{"data":[...]}` (a Resource Graph query response), `{"changes":[...]}` (the legacy preview
//! `resourceChanges` response). Elements are read as JSON values, not typed structs: the same
//! event comes in two shapes, and an odd optional field must not cost the whole event. What an
//! element is, by its fields:
//!
//! - an Activity Log event in the REST shape (`eventDataId`, `eventTimestamp`; `operationName`,
//!   `category`, `status`, ... are `{value, localizedValue}` objects): `eventDataId` is the uid;
//! - an Activity Log event in the diagnostic-export shape (`time`, `operationName` and the others
//!   flat strings, `resultType` for the status, `identity.claims` for the claims): it has no event
//!   id, so the uid is derived from `correlationId`, `operationName`, `time` and `resultType`
//!   (SHA-256, see `derived_uid`): the Begin (`Start`) and End (`Success`) events of one operation
//!   share the correlation id and operation but differ in result and time, so they keep distinct
//!   uids, and a redelivered record gets the same one;
//! - a Resource Graph `resourcechanges` row (`properties.targetResourceId`; the row `id`, which
//!   ends in the change id, is the uid) or its `properties` bag alone (`targetResourceId`; the uid
//!   is derived from the resource, `changeAttributes.timestamp` and the snapshot ids);
//! - a legacy preview change (`changeId`, `beforeSnapshot`, `afterSnapshot`): it names neither the
//!   resource (that was in the request) nor what changed, so it is a Base Event (class 0) with the
//!   vendor JSON in `raw_data`, uid `changeId`, time `afterSnapshot.timestamp`.
//!
//! Anything else is rejected, as is an element without its uid or a valid RFC 3339 time.
//!
//! Activity Log class by `category`: ServiceHealth, ResourceHealth, Alert, Autoscale,
//! Recommendation and Security events are notices Azure raised, not calls someone made: Base Event
//! (class 0), vendor JSON in `raw_data`. Every other category (Administrative, Policy, or none)
//! records an operation on a resource: 6003 API Activity, activity by the operation's last part
//! (ASCII case ignored): `write` → 1 Create when the response was `201 Created`
//! (`properties.statusCode`, `subStatus` or `resultSignature`), else 3 Update (ARM writes are
//! create-or-update); `read` → 2 Read; `delete` → 4 Delete; `action` and others → 99 Other.
//! `severity_id` from `level`: Critical → 5, Error → 4, Warning → 3, Informational, Information,
//! Verbose → 1, missing → 0, else 99. `status_id` from `status.value` / `resultType`: Succeeded,
//! Success → 1; Failed, Failure → 2; missing → 0; else (Started, Accepted, Start, ...) → 99; a
//! failure's `subStatus` / `resultSignature` is the error code and `properties.statusMessage` the
//! message.
//!
//! The caller: the uid is the `oid` claim (the Entra object id), the name `caller`, else the `upn`,
//! `unique_name` or `name` claim; the type is `ServicePrincipal` for app-only tokens (`idtyp` app),
//! `User` with a `upn`; the domain is the tenant (`tid` claim, else the record's `tenantId`). MFA
//! is known from the `amr` claim (`mfa` among the methods or not). Claims come with URI names in
//! the Activity Log (`http://schemas.microsoft.com/identity/claims/objectidentifier`) or short ones.
//!
//! Resource changes: `changeType` Create, Update, Delete → 5023 activity 1 Log with that change
//! type, severity 1, status 1 Success (the feed reports changes that took effect); any other
//! change type is a Base Event with change type OTHER and `raw_data`. Each `changes` entry is a
//! [`PropertyChange`], values as JSON text, the previous value `None` for an inserted property and
//! the new one `None` for a removed one. `changeAttributes.changedBy` is the actor when present.

use std::collections::BTreeMap;

use serde_json::Value;
use weir_schemas::events::ocsf;
use weir_schemas::events::{
    Api, ChangeType, Cloud, CloudActor, CloudApiActivity, Metadata, PropertyChange, Resource, ResourceChange,
    SecurityEvent, User,
};

use super::{
    brief, caller_endpoint, derived_uid, epoch_millis, epoch_nanos, json_text, kind, looks_like_email, map_elements,
    non_empty_str, owned, parse_object, single, str_at, unmapped_fields, Mapped, Origin,
};

/// The vendor name of Azure envelopes (`RawEnvelope::vendor`).
pub(super) const VENDOR: &str = "azure";

/// Wrappers of several elements: (field, what the payload is, for reasons).
const PAGES: &[(&str, &str)] = &[
    ("value", "azure Activity Log page"),
    ("records", "azure diagnostic export"),
    ("data", "azure Resource Graph response"),
];

/// Activity Log categories of notices Azure raised rather than operations someone called.
const NOTICE_CATEGORIES: &[&str] =
    &["ServiceHealth", "ResourceHealth", "Alert", "Autoscale", "Recommendation", "Security"];

/// Activity Log fields kept in `unmapped` when present, in either shape: (dotted path, pointer).
const UNMAPPED_ACTIVITY: &[(&str, &str)] = &[
    ("authorization", "/authorization"),
    ("category", "/category"),
    ("channels", "/channels"),
    ("claims.appid", "/claims/appid"),
    ("claims.name", "/claims/name"),
    ("correlationId", "/correlationId"),
    ("durationMs", "/durationMs"),
    ("eventName", "/eventName"),
    ("identity.authorization", "/identity/authorization"),
    ("identity.claims.appid", "/identity/claims/appid"),
    ("identity.claims.name", "/identity/claims/name"),
    ("level", "/level"),
    ("operationId", "/operationId"),
    ("properties", "/properties"),
    ("resourceGroupName", "/resourceGroupName"),
    ("resultSignature", "/resultSignature"),
    ("submissionTimestamp", "/submissionTimestamp"),
    ("subStatus", "/subStatus"),
    ("tenantId", "/tenantId"),
];

/// Resource change fields kept in `unmapped` when present, relative to the properties bag.
const UNMAPPED_CHANGE: &[(&str, &str)] = &[
    ("changeAttributes.changesCount", "/changeAttributes/changesCount"),
    ("changeAttributes.clientType", "/changeAttributes/clientType"),
    ("changeAttributes.newResourceSnapshotId", "/changeAttributes/newResourceSnapshotId"),
    ("changeAttributes.operation", "/changeAttributes/operation"),
    ("changeAttributes.previousResourceSnapshotId", "/changeAttributes/previousResourceSnapshotId"),
    ("changeType", "/changeType"),
];

// JWT claims, by their URI name in the Activity Log and their short name.

/// The Entra object id of the caller.
const OID: [&str; 2] = ["http://schemas.microsoft.com/identity/claims/objectidentifier", "oid"];
/// The user principal name (a user's sign-in name).
const UPN: [&str; 2] = ["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn", "upn"];
/// The sign-in name of v1 tokens.
const UNIQUE_NAME: [&str; 2] = ["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "unique_name"];
/// The display name (Microsoft's diagnostic-export samples put the login there).
const DISPLAY_NAME: [&str; 1] = ["name"];
/// The tenant.
const TENANT: [&str; 2] = ["http://schemas.microsoft.com/identity/claims/tenantid", "tid"];
/// The authentication methods, comma-separated (`pwd,mfa`).
const AMR: [&str; 2] = ["http://schemas.microsoft.com/claims/authnmethodsreferences", "amr"];
/// `app` for app-only tokens (a service principal calling on its own behalf).
const IDTYP: [&str; 1] = ["idtyp"];
/// The address the caller signed in from.
const IPADDR: [&str; 1] = ["ipaddr"];

/// Maps one Azure payload: an element, or a page of them.
pub(super) fn normalize(payload: &[u8], origin: &Origin<'_>) -> Mapped {
    let (text, value) = match parse_object(VENDOR, payload) {
        Ok(parsed) => parsed,
        Err(reason) => return Mapped::rejected(reason),
    };
    // No element has these fields at the top (a resource change's own `changes` is an object).
    for &(field, what) in PAGES {
        if value.get(field).is_some() {
            return map_elements(what, field, text, |element, raw| map_element(element, raw, origin));
        }
    }
    if value.get("changes").is_some_and(Value::is_array) {
        return map_elements("azure resource changes response", "changes", text, |element, raw| {
            map_element(element, raw, origin)
        });
    }
    single(map_element(&value, text, origin))
}

/// Maps one element; `raw` is its JSON text as received (kept in `raw_data` for Base Events).
fn map_element(element: &Value, raw: &str, origin: &Origin<'_>) -> Result<SecurityEvent, String> {
    if !element.is_object() {
        return Err(format!("azure event is {}, not a JSON object", kind(element)));
    }
    let has = |field: &str| element.get(field).is_some();
    if has("eventDataId") || has("eventTimestamp") {
        return activity(element, Shape::Rest, raw, origin).map(Into::into);
    }
    if has("targetResourceId") {
        return resource_change(element, None, raw, origin).map(Into::into);
    }
    if let Some(properties) = element.get("properties").filter(|p| p.get("targetResourceId").is_some()) {
        let row_id = str_at(element, "/id")
            .ok_or("azure resource change row: field `id` (the change id) is missing or not a string")?;
        return resource_change(properties, Some(row_id), raw, origin).map(Into::into);
    }
    if has("changeId") {
        return legacy_change(element, raw, origin).map(Into::into);
    }
    if has("time") && has("operationName") {
        return activity(element, Shape::Export, raw, origin).map(Into::into);
    }
    Err("azure event is none of: an Activity Log event (no `eventDataId` or `eventTimestamp`), a \
         diagnostic-export record (no `time` and `operationName`), a resource change (no `targetResourceId`)"
        .to_string())
}

/// The two shapes of an Activity Log event.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// REST / portal: `eventDataId`, `eventTimestamp`, `{value, localizedValue}` objects.
    Rest,
    /// Diagnostic-setting export: `time`, flat strings, `resultType`, `identity.claims`.
    Export,
}

/// A field that is a string in the export shape and `{value, localizedValue}` in the REST shape.
fn value_of<'a>(event: &'a Value, field: &str) -> Option<&'a str> {
    let value = event.get(field)?;
    non_empty_str(value).or_else(|| value.get("value").and_then(non_empty_str))
}

/// Maps an Activity Log event, in either shape.
fn activity(event: &Value, shape: Shape, raw: &str, origin: &Origin<'_>) -> Result<CloudApiActivity, String> {
    let (time_field, status_field, sub_status_field) = match shape {
        Shape::Rest => ("eventTimestamp", "status", "subStatus"),
        Shape::Export => ("time", "resultType", "resultSignature"),
    };
    let operation = value_of(event, "operationName");
    let time_text = str_at(event, &format!("/{time_field}"));
    let status = value_of(event, status_field);
    let (uid, what) = match shape {
        Shape::Rest => {
            let uid = str_at(event, "/eventDataId").ok_or_else(|| {
                format!(
                    "azure Activity Log event{}: field `eventDataId` is missing or not a string",
                    hint(operation, time_text)
                )
            })?;
            (uid.to_string(), format!("azure Activity Log event {}", brief(uid)))
        }
        Shape::Export => {
            let correlation = str_at(event, "/correlationId").ok_or_else(|| {
                format!(
                    "azure diagnostic-export record{}: field `correlationId` is missing or not a string (the event id \
                     is derived from it)",
                    hint(operation, time_text)
                )
            })?;
            let what = format!("azure diagnostic-export record (correlationId {})", brief(correlation));
            let operation =
                operation.ok_or_else(|| format!("{what}: field `operationName` is missing or not a string"))?;
            let time_text = time_text.ok_or_else(|| format!("{what}: field `time` is missing or not a string"))?;
            let nanos = epoch_nanos(time_text).map_err(|why| {
                format!("{what}: field `time` is not a valid RFC 3339 time: \"{}\" ({why})", brief(time_text))
            })?;
            let uid = derived_uid(&[correlation, operation, &nanos.to_string(), status.unwrap_or_default()]);
            (uid, what)
        }
    };
    let time_text = time_text.ok_or_else(|| format!("{what}: field `{time_field}` is missing or not a string"))?;
    let time = epoch_millis(time_text).map_err(|why| {
        format!("{what}: field `{time_field}` is not a valid RFC 3339 time: \"{}\" ({why})", brief(time_text))
    })?;

    let category = value_of(event, "category");
    let notice = category.is_some_and(|category| NOTICE_CATEGORIES.iter().any(|c| c.eq_ignore_ascii_case(category)));
    let sub_status = value_of(event, sub_status_field);
    let (class_uid, activity_id) = match (notice, operation) {
        (false, Some(operation)) => (ocsf::API_ACTIVITY, activity_id(event, operation, sub_status)),
        _ => (ocsf::BASE_EVENT, 0),
    };
    let status_id = status_id(status);
    let failed = status_id == ocsf::STATUS_FAILURE;
    let claims = match shape {
        Shape::Rest => event.get("claims"),
        Shape::Export => event.pointer("/identity/claims"),
    };
    // The `ipaddr` claim is where the caller signed in from: the best guess when the event itself
    // names no client address (Microsoft's Administrative sample has only the claim).
    let address =
        str_at(event, "/httpRequest/clientIpAddress").or(str_at(event, "/callerIpAddress")).or(claim(claims, &IPADDR));
    let resource_id = str_at(event, "/resourceId");
    let location = str_at(event, "/location").filter(|location| *location != "global");
    let mut unmapped = unmapped_fields(event, UNMAPPED_ACTIVITY);
    if let Some(address) = address.filter(|address| caller_endpoint(address).is_none()) {
        unmapped.insert("callerIpAddress".to_string(), Value::from(address).to_string());
    }
    let localized = event.pointer("/operationName/localizedValue").and_then(non_empty_str);
    Ok(CloudApiActivity {
        class_uid,
        category_uid: ocsf::category_uid(class_uid),
        activity_id,
        type_uid: ocsf::type_uid(class_uid, activity_id),
        severity_id: severity_id(str_at(event, "/level")),
        status_id,
        time,
        metadata: metadata(&uid, time_text, "Activity Log", origin),
        message: owned(str_at(event, "/description").or(localized.filter(|l| Some(*l) != operation))),
        cloud: Cloud {
            provider: VENDOR.to_string(),
            account_uid: owned(str_at(event, "/subscriptionId").or(resource_id.and_then(subscription_of))),
            region: owned(location),
        },
        actor: CloudActor {
            user: caller(str_at(event, "/caller"), claims, str_at(event, "/tenantId")),
            mfa_authenticated: claim(claims, &AMR)
                .map(|methods| methods.split(',').any(|method| method.trim().eq_ignore_ascii_case("mfa"))),
            ..CloudActor::default()
        },
        api: Api {
            operation: operation.unwrap_or_default().to_string(),
            service: owned(
                value_of(event, "resourceProviderName")
                    .or(operation.and_then(|operation| operation.split('/').next()).filter(|s| !s.is_empty())),
            ),
            request_id: owned(
                str_at(event, "/properties/serviceRequestId").or(str_at(event, "/httpRequest/clientRequestId")),
            ),
            version: owned(str_at(event, "/operationVersion")),
        },
        src_endpoint: address.and_then(caller_endpoint),
        user_agent: None,
        resources: resource_id
            .map(|uid| Resource {
                uid: uid.to_string(),
                name: owned(last_segment(uid)),
                r#type: owned(value_of(event, "resourceType")),
                region: owned(location),
                tags: BTreeMap::new(),
            })
            .into_iter()
            .collect(),
        error_code: owned(sub_status.filter(|_| failed)),
        error_message: owned(str_at(event, "/properties/statusMessage").filter(|_| failed)),
        // The Activity Log keeps request and response bodies as JSON text already.
        request_data: owned(str_at(event, "/properties/requestbody")),
        response_data: owned(str_at(event, "/properties/responseBody")),
        unmapped,
        raw_data: (class_uid == ocsf::BASE_EVENT).then(|| raw.to_string()),
    })
}

/// ` (<operation> at <time>)` for a reason about an event without id, to help find it.
fn hint(operation: Option<&str>, time: Option<&str>) -> String {
    match (operation, time) {
        (Some(operation), Some(time)) => format!(" ({} at {})", brief(operation), brief(time)),
        (Some(operation), None) => format!(" ({})", brief(operation)),
        (None, Some(time)) => format!(" (at {})", brief(time)),
        (None, None) => String::new(),
    }
}

/// The API Activity `activity_id` of an operation such as `Microsoft.Storage/storageAccounts/write`.
fn activity_id(event: &Value, operation: &str, sub_status: Option<&str>) -> i32 {
    let verb = operation.rsplit('/').next().unwrap_or_default().to_ascii_lowercase();
    match verb.as_str() {
        "write" => {
            // ARM writes are create-or-update; `201 Created` says which.
            let created = [str_at(event, "/properties/statusCode"), sub_status]
                .into_iter()
                .flatten()
                .any(|status| status == "Created" || status.ends_with(".Created"));
            if created {
                1
            } else {
                3
            }
        }
        "read" => 2,
        "delete" => 4,
        _ => ocsf::OTHER,
    }
}

/// OCSF `severity_id` of an Activity Log `level`.
fn severity_id(level: Option<&str>) -> i32 {
    match level.map(str::to_ascii_lowercase).as_deref() {
        Some("critical") => ocsf::SEVERITY_CRITICAL,
        Some("error") => ocsf::SEVERITY_HIGH,
        Some("warning") => ocsf::SEVERITY_MEDIUM,
        Some("informational" | "information" | "verbose") => ocsf::SEVERITY_INFORMATIONAL,
        Some(_) => ocsf::OTHER,
        None => ocsf::SEVERITY_UNKNOWN,
    }
}

/// OCSF `status_id` of an Activity Log `status.value` or `resultType`.
fn status_id(status: Option<&str>) -> i32 {
    match status.map(str::to_ascii_lowercase).as_deref() {
        Some("succeeded" | "success") => ocsf::STATUS_SUCCESS,
        Some("failed" | "failure") => ocsf::STATUS_FAILURE,
        Some(_) => ocsf::OTHER,
        None => ocsf::STATUS_UNKNOWN,
    }
}

/// The first of the claims `names` that the token has, trimmed (Microsoft's own samples pad some).
fn claim<'a>(claims: Option<&'a Value>, names: &[&str]) -> Option<&'a str> {
    let claims = claims?;
    names.iter().find_map(|name| claims.get(*name).and_then(non_empty_str)).map(str::trim).filter(|s| !s.is_empty())
}

/// The caller of an Activity Log event, from `caller` and the token's claims.
fn caller(caller: Option<&str>, claims: Option<&Value>, tenant_id: Option<&str>) -> User {
    let upn = claim(claims, &UPN);
    let name = caller.or(upn).or(claim(claims, &UNIQUE_NAME)).or(claim(claims, &DISPLAY_NAME));
    let r#type = if claim(claims, &IDTYP) == Some("app") {
        Some("ServicePrincipal")
    } else if upn.is_some() {
        Some("User")
    } else {
        None
    };
    User {
        uid: owned(claim(claims, &OID)),
        name: owned(name),
        email: owned(name.filter(|name| looks_like_email(name)).or(upn.filter(|upn| looks_like_email(upn)))),
        r#type: owned(r#type),
        domain: owned(claim(claims, &TENANT).or(tenant_id)),
    }
}

/// The subscription id of an Azure resource id (`/subscriptions/<id>/...`).
fn subscription_of(resource_id: &str) -> Option<&str> {
    let mut segments = resource_id.split('/').filter(|s| !s.is_empty());
    while let Some(segment) = segments.next() {
        if segment.eq_ignore_ascii_case("subscriptions") {
            return segments.next();
        }
    }
    None
}

/// The last segment of an Azure resource id: the resource's name.
fn last_segment(resource_id: &str) -> Option<&str> {
    resource_id.rsplit('/').find(|s| !s.is_empty())
}

/// The metadata of an event with id `uid` and vendor time `original_time`.
fn metadata(uid: &str, original_time: &str, product_name: &str, origin: &Origin<'_>) -> Metadata {
    Metadata {
        uid: uid.to_string(),
        version: ocsf::VERSION.to_string(),
        vendor_name: "Microsoft Azure".to_string(),
        product_name: product_name.to_string(),
        original_time: Some(original_time.to_string()),
        log_name: origin.log_name.to_string(),
        raw_ref: Some(origin.raw_ref.to_string()),
    }
}

/// Maps a Resource Graph resource change: its `properties` bag, and the row's `id` when there was
/// a row around it.
fn resource_change(
    bag: &Value,
    row_id: Option<&str>,
    raw: &str,
    origin: &Origin<'_>,
) -> Result<ResourceChange, String> {
    let target =
        str_at(bag, "/targetResourceId").ok_or("azure resource change: field `targetResourceId` is not a string")?;
    let what = match row_id {
        Some(id) => format!("azure resource change {}", brief(id)),
        None => format!("azure resource change of {}", brief(target)),
    };
    let prefix = if row_id.is_some() { "properties." } else { "" };
    let time_text = str_at(bag, "/changeAttributes/timestamp")
        .ok_or_else(|| format!("{what}: field `{prefix}changeAttributes.timestamp` is missing or not a string"))?;
    let invalid_time = |why: String| {
        format!(
            "{what}: field `{prefix}changeAttributes.timestamp` is not a valid RFC 3339 time: \"{}\" ({why})",
            brief(time_text)
        )
    };
    let time = epoch_millis(time_text).map_err(invalid_time)?;
    let uid = match row_id {
        Some(id) => id.to_string(),
        // A bare bag has no change id: the resource, the time and the snapshots it went between
        // identify the change.
        None => derived_uid(&[
            target,
            &epoch_nanos(time_text).map_err(invalid_time)?.to_string(),
            str_at(bag, "/changeAttributes/previousResourceSnapshotId").unwrap_or_default(),
            str_at(bag, "/changeAttributes/newResourceSnapshotId").unwrap_or_default(),
        ]),
    };
    let change_type = match str_at(bag, "/changeType") {
        Some("Create") => ChangeType::Create,
        Some("Update") => ChangeType::Update,
        Some("Delete") => ChangeType::Delete,
        _ => ChangeType::Other,
    };
    let (class_uid, activity_id) = match change_type {
        ChangeType::Other => (ocsf::BASE_EVENT, 0),
        _ => (ocsf::CLOUD_RESOURCES_INVENTORY_INFO, 1),
    };
    let properties = bag.get("changes").and_then(Value::as_object);
    let mut unmapped = unmapped_fields(bag, UNMAPPED_CHANGE);
    // Whether a user or the platform made each change, and whether Azure cut the values short.
    for (path, change) in properties.into_iter().flatten() {
        for field in ["changeCategory", "isTruncated"] {
            if let Some(value) = change.get(field).filter(|v| !v.is_null()) {
                unmapped.insert(format!("changes.{path}.{field}"), value.to_string());
            }
        }
    }
    let changed_by = str_at(bag, "/changeAttributes/changedBy");
    Ok(ResourceChange {
        class_uid,
        category_uid: ocsf::category_uid(class_uid),
        activity_id,
        type_uid: ocsf::type_uid(class_uid, activity_id),
        severity_id: ocsf::SEVERITY_INFORMATIONAL,
        status_id: if class_uid == ocsf::BASE_EVENT { ocsf::STATUS_UNKNOWN } else { ocsf::STATUS_SUCCESS },
        time,
        metadata: metadata(&uid, time_text, "Resource Graph", origin),
        message: None,
        resource: Resource {
            uid: target.to_string(),
            name: owned(last_segment(target)),
            r#type: owned(str_at(bag, "/targetResourceType")),
            region: None,
            tags: BTreeMap::new(),
        },
        change_type,
        changes: properties.into_iter().flatten().map(|(path, change)| property_change(path, change)).collect(),
        cloud: Cloud { provider: VENDOR.to_string(), account_uid: owned(subscription_of(target)), region: None },
        actor: changed_by.map(|name| User {
            name: Some(name.to_string()),
            email: looks_like_email(name).then(|| name.to_string()),
            ..User::default()
        }),
        correlation_uid: owned(str_at(bag, "/changeAttributes/correlationId")),
        unmapped,
        raw_data: (class_uid == ocsf::BASE_EVENT).then(|| raw.to_string()),
    })
}

/// One entry of a resource change's `changes`: `propertyChangeType` Insert has no previous value,
/// Remove no new one.
fn property_change(path: &str, change: &Value) -> PropertyChange {
    let change_type = str_at(change, "/propertyChangeType");
    PropertyChange {
        property: path.to_string(),
        previous_value: json_text(change.get("previousValue")).filter(|_| change_type != Some("Insert")),
        new_value: json_text(change.get("newValue")).filter(|_| change_type != Some("Remove")),
    }
}

/// Maps an element of the legacy preview `resourceChanges` response (a Base Event, see the module
/// documentation).
fn legacy_change(change: &Value, raw: &str, origin: &Origin<'_>) -> Result<ResourceChange, String> {
    let change_id =
        str_at(change, "/changeId").ok_or("azure legacy resource change: field `changeId` is not a string")?;
    let what = format!("azure legacy resource change {}", brief(change_id));
    let time_text = str_at(change, "/afterSnapshot/timestamp")
        .ok_or_else(|| format!("{what}: field `afterSnapshot.timestamp` is missing or not a string"))?;
    let time = epoch_millis(time_text).map_err(|why| {
        format!(
            "{what}: field `afterSnapshot.timestamp` is not a valid RFC 3339 time: \"{}\" ({why})",
            brief(time_text)
        )
    })?;
    Ok(ResourceChange {
        class_uid: ocsf::BASE_EVENT,
        category_uid: ocsf::category_uid(ocsf::BASE_EVENT),
        activity_id: 0,
        type_uid: ocsf::type_uid(ocsf::BASE_EVENT, 0),
        severity_id: ocsf::SEVERITY_INFORMATIONAL,
        status_id: ocsf::STATUS_UNKNOWN,
        time,
        metadata: metadata(change_id, time_text, "Resource Graph", origin),
        change_type: ChangeType::Other,
        cloud: Cloud { provider: VENDOR.to_string(), ..Cloud::default() },
        raw_data: Some(raw.to_string()),
        ..ResourceChange::default()
    })
}
