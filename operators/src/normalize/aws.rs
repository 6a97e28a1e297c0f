//! AWS CloudTrail records → [`CloudApiActivity`] (OCSF 6003 API Activity); console sign-ins →
//! [`IdentityActivity`] (OCSF 3002 Authentication, 3001 Account Change).
//!
//! A payload is one CloudTrail record (as the connector reads it from an S3 log file's `Records`,
//! or parses from LookupEvents' `CloudTrailEvent` string); or a whole log file
//! `{"Records":[record, ...]}`, which yields one output per record (the records that fail share
//! one reason); or an EventBridge envelope (`detail-type` "AWS API Call via CloudTrail", "AWS
//! Console Sign In via CloudTrail", ...; `detail` = the record). Records are read as JSON values,
//! not a typed struct: CloudTrail adds fields over time and their shapes vary by service, and an
//! odd optional field must not cost the whole record. Only `eventID` (the dedupe key — for
//! EventBridge `detail.eventID`, not the envelope's `id`, which differs per delivery) and an RFC
//! 3339 `eventTime` are required; without them the record is rejected. An EventBridge event that
//! is not a CloudTrail record (another `detail-type`) is kept as a Base Event, with the envelope's
//! `id` and `time`.
//!
//! Class by `eventType` (and `eventName`):
//!
//! | eventType | eventName | class | activity |
//! | --- | --- | --- | --- |
//! | `AwsConsoleSignIn` | `ConsoleLogin` | 3002 Authentication | 1 Logon |
//! | `AwsConsoleSignIn` | `PasswordUpdated` | 3001 Account Change | 3 Password Change |
//! | `AwsConsoleSignIn` | other (`CheckMfa`, `SwitchRole`, ...) | 3002 | 99 Other |
//! | `AwsServiceEvent` from `signin.amazonaws.com` | `UserAuthentication` (IAM Identity Center) | 3002 | 1 Logon |
//! | `AwsApiCall`, `AwsServiceEvent`, `AwsConsoleAction`, `AwsVpceEvent`, or none (older records) | any | 6003 API Activity | by the verb of `eventName` (`Create…` 1 Create, `Get…`/`List…`/`Describe…` 2 Read, `Put…`/`Update…`/`Attach…`/`Start…` 3 Update, `Delete…`/`Terminate…` 4 Delete), else 2 Read when `readOnly`, else 99 Other |
//! | anything else (`AwsCloudTrailInsight`, ...), or no `eventName` | | 0 Base Event, vendor JSON in `raw_data` | 0 |
//!
//! Sign-ins are identity events rather than API calls because OCSF models a logon as
//! Authentication (AWS Security Lake maps `ConsoleLogin` the same way), and identity rules
//! (failed logins, logins without MFA) then see AWS and Okta sign-ins alike.
//!
//! `severity_id` is 1 Informational: CloudTrail records calls, it does not rate them. `status_id`:
//! 2 Failure when the record has an `errorCode` or `errorMessage` (a failed console login has only
//! the message) or the sign-in's outcome (`responseElements.<eventName>`, e.g.
//! `responseElements.ConsoleLogin`) is `Failure`; 1 Success when the outcome is `Success` or an
//! API call has no error; 0 Unknown for a sign-in without outcome and for Base Events.
//!
//! The actor is `userIdentity`: `principalId` is the user's uid (every identity type has it, also
//! a failed console login, which has no `arn`: the same user gets the same key either way; the
//! `arn` is kept in `unmapped`), the name is `userName`, else the last part of the `arn` (the
//! session name of an assumed role — an email for IAM Identity Center users — or `root`), else
//! `invokedBy` for an AWS service; `accountId` is the domain. `sourceIPAddress` is the source
//! endpoint's IP when it is one, its host name when a service called on the user's behalf
//! (`servicecatalog.amazonaws.com`), else kept in `unmapped` (`AWS Internal`).

use std::collections::BTreeMap;

use serde_json::Value;
use weir_schemas::events::ocsf;
use weir_schemas::events::{
    Api, Cloud, CloudActor, CloudApiActivity, IdentityActivity, Metadata, Resource, SecurityEvent, User,
};

use super::{
    api_activity_id, brief, caller_endpoint, epoch_millis, json_text, kind, looks_like_email, map_elements, owned,
    parse_object, single, str_at, unmapped_fields, Mapped, Origin,
};

/// The vendor name of AWS envelopes (`RawEnvelope::vendor`).
pub(super) const VENDOR: &str = "aws";

/// The `eventType`s of API calls (a record without `eventType` predates the field and is one too).
const API_EVENT_TYPES: &[&str] = &["AwsApiCall", "AwsServiceEvent", "AwsConsoleAction", "AwsVpceEvent"];

/// How the `detail-type` of an EventBridge event that carries a CloudTrail record ends.
const VIA_CLOUDTRAIL: &str = " via CloudTrail";

/// Record fields kept in `unmapped` when present: (dotted path, JSON pointer).
const UNMAPPED: &[(&str, &str)] = &[
    ("additionalEventData", "/additionalEventData"),
    ("eventCategory", "/eventCategory"),
    ("eventType", "/eventType"),
    ("insightDetails", "/insightDetails"),
    ("managementEvent", "/managementEvent"),
    ("readOnly", "/readOnly"),
    ("serviceEventDetails", "/serviceEventDetails"),
    ("sessionCredentialFromConsole", "/sessionCredentialFromConsole"),
    ("sharedEventID", "/sharedEventID"),
    ("tlsDetails", "/tlsDetails"),
    ("userIdentity.arn", "/userIdentity/arn"),
    ("userIdentity.credentialId", "/userIdentity/credentialId"),
    ("userIdentity.onBehalfOf", "/userIdentity/onBehalfOf"),
    ("userIdentity.sessionContext.attributes.creationDate", "/userIdentity/sessionContext/attributes/creationDate"),
    ("userIdentity.sessionContext.sourceIdentity", "/userIdentity/sessionContext/sourceIdentity"),
    ("vpcEndpointId", "/vpcEndpointId"),
];

/// Record fields an [`IdentityActivity`] also keeps in `unmapped`: it has no place for the
/// account, region, service and credentials that [`CloudApiActivity`] holds in typed fields.
const UNMAPPED_SIGN_IN: &[(&str, &str)] = &[
    ("awsRegion", "/awsRegion"),
    ("eventSource", "/eventSource"),
    ("recipientAccountId", "/recipientAccountId"),
    ("requestID", "/requestID"),
    ("userIdentity.accessKeyId", "/userIdentity/accessKeyId"),
    ("userIdentity.invokedBy", "/userIdentity/invokedBy"),
    (
        "userIdentity.sessionContext.attributes.mfaAuthenticated",
        "/userIdentity/sessionContext/attributes/mfaAuthenticated",
    ),
    ("userIdentity.sessionContext.sessionIssuer.arn", "/userIdentity/sessionContext/sessionIssuer/arn"),
];

/// Maps one AWS payload: a CloudTrail record, a log file of them, or an EventBridge envelope.
pub(super) fn normalize(payload: &[u8], origin: &Origin<'_>) -> Mapped {
    let (text, value) = match parse_object(VENDOR, payload) {
        Ok(parsed) => parsed,
        Err(reason) => return Mapped::rejected(reason),
    };
    // No CloudTrail record has a `Records` or `detail-type` field, so these cannot be confused.
    if value.get("Records").is_some() {
        return map_elements("aws CloudTrail log file", "Records", text, |record, raw| {
            map_record(record, raw, "", origin)
        });
    }
    if value.get("detail-type").is_some() {
        return single(eventbridge(&value, text, origin));
    }
    single(map_record(&value, text, "", origin))
}

/// Maps an EventBridge envelope: its `detail` when that is a CloudTrail record, else the envelope
/// as a Base Event. `raw` (the whole envelope, as received) is what `raw_data` keeps.
fn eventbridge(envelope: &Value, raw: &str, origin: &Origin<'_>) -> Result<SecurityEvent, String> {
    let detail_type = str_at(envelope, "/detail-type").unwrap_or_default();
    if detail_type.ends_with(VIA_CLOUDTRAIL) {
        let detail = envelope.get("detail").filter(|detail| detail.is_object()).ok_or_else(|| {
            format!("aws EventBridge event \"{}\": field `detail` is missing or not an object", brief(detail_type))
        })?;
        return map_record(detail, raw, "detail.", origin);
    }
    let id = str_at(envelope, "/id").ok_or_else(|| {
        format!("aws EventBridge event \"{}\": field `id` is missing or not a string", brief(detail_type))
    })?;
    let what = format!("aws EventBridge event {}", brief(id));
    let time_text =
        str_at(envelope, "/time").ok_or_else(|| format!("{what}: field `time` is missing or not a string"))?;
    let time = epoch_millis(time_text).map_err(|why| {
        format!("{what}: field `time` is not a valid RFC 3339 time: \"{}\" ({why})", brief(time_text))
    })?;
    let resources = envelope.get("resources").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    Ok(CloudApiActivity {
        class_uid: ocsf::BASE_EVENT,
        category_uid: ocsf::category_uid(ocsf::BASE_EVENT),
        activity_id: 0,
        type_uid: ocsf::type_uid(ocsf::BASE_EVENT, 0),
        severity_id: ocsf::SEVERITY_INFORMATIONAL,
        status_id: ocsf::STATUS_UNKNOWN,
        time,
        metadata: metadata(id, time_text, origin),
        message: owned(str_at(envelope, "/detail-type")),
        cloud: Cloud {
            provider: VENDOR.to_string(),
            account_uid: owned(str_at(envelope, "/account")),
            region: owned(str_at(envelope, "/region")),
        },
        actor: CloudActor::default(),
        api: Api { operation: String::new(), service: owned(str_at(envelope, "/source")), ..Api::default() },
        resources: resources
            .iter()
            .filter_map(Value::as_str)
            .filter(|arn| !arn.is_empty())
            .map(|arn| Resource { uid: arn.to_string(), ..Resource::default() })
            .collect(),
        raw_data: Some(raw.to_string()),
        ..CloudApiActivity::default()
    }
    .into())
}

/// What a CloudTrail record is, by `eventType` and `eventName` (see the module documentation).
enum Kind {
    /// A sign-in: (class, activity).
    SignIn(i32, i32),
    /// An API call.
    ApiCall,
    /// Anything else: a Base Event.
    Other,
}

/// The [`Kind`] of a record.
fn classify(record: &Value) -> Kind {
    let event_type = str_at(record, "/eventType");
    let Some(event_name) = str_at(record, "/eventName") else {
        return Kind::Other;
    };
    match event_type {
        Some("AwsConsoleSignIn") => match event_name {
            "ConsoleLogin" => Kind::SignIn(ocsf::AUTHENTICATION, 1),
            "PasswordUpdated" => Kind::SignIn(ocsf::ACCOUNT_CHANGE, 3),
            _ => Kind::SignIn(ocsf::AUTHENTICATION, ocsf::OTHER),
        },
        Some("AwsServiceEvent")
            if event_name == "UserAuthentication" && str_at(record, "/eventSource") == Some("signin.amazonaws.com") =>
        {
            Kind::SignIn(ocsf::AUTHENTICATION, 1)
        }
        Some(event_type) if API_EVENT_TYPES.contains(&event_type) => Kind::ApiCall,
        None => Kind::ApiCall,
        Some(_) => Kind::Other,
    }
}

/// Maps one CloudTrail record. `raw` is the vendor JSON `raw_data` keeps for a Base Event (the
/// record as received, or the EventBridge envelope around it); `prefix` is the record's path in
/// the payload, for reasons (`detail.` inside an EventBridge envelope).
fn map_record(record: &Value, raw: &str, prefix: &str, origin: &Origin<'_>) -> Result<SecurityEvent, String> {
    if !record.is_object() {
        return Err(format!("aws record is {}, not a JSON object", kind(record)));
    }
    let Some(event_id) = str_at(record, "/eventID") else {
        // Without an id the record cannot be told apart from its duplicates: say which it was.
        let hint = match (str_at(record, "/eventName"), str_at(record, "/eventTime")) {
            (Some(name), Some(time)) => format!(" ({} at {})", brief(name), brief(time)),
            (Some(name), None) => format!(" ({})", brief(name)),
            _ => String::new(),
        };
        return Err(format!("aws record{hint}: field `{prefix}eventID` is missing or not a string"));
    };
    let what = format!("aws event {}", brief(event_id));
    let event_time = str_at(record, "/eventTime")
        .ok_or_else(|| format!("{what}: field `{prefix}eventTime` is missing or not a string"))?;
    let time = epoch_millis(event_time).map_err(|why| {
        format!("{what}: field `{prefix}eventTime` is not a valid RFC 3339 time: \"{}\" ({why})", brief(event_time))
    })?;
    let header = Header { time, metadata: metadata(event_id, event_time, origin) };
    Ok(match classify(record) {
        Kind::SignIn(class_uid, activity_id) => sign_in(record, header, class_uid, activity_id).into(),
        Kind::ApiCall => api_call(record, header, None).into(),
        Kind::Other => api_call(record, header, Some(raw)).into(),
    })
}

/// What every event of a record shares: its time and metadata.
struct Header {
    /// Event time, ms since the Unix epoch.
    time: i64,
    /// Where the event came from.
    metadata: Metadata,
}

/// The metadata of an event with id `uid` and vendor time `original_time`.
fn metadata(uid: &str, original_time: &str, origin: &Origin<'_>) -> Metadata {
    Metadata {
        uid: uid.to_string(),
        version: ocsf::VERSION.to_string(),
        vendor_name: "AWS".to_string(),
        product_name: "CloudTrail".to_string(),
        original_time: Some(original_time.to_string()),
        log_name: origin.log_name.to_string(),
        raw_ref: Some(origin.raw_ref.to_string()),
    }
}

/// An API call, or (with `raw`, the vendor JSON) a Base Event.
fn api_call(record: &Value, header: Header, raw: Option<&str>) -> CloudApiActivity {
    let event_name = str_at(record, "/eventName");
    let (class_uid, activity_id) = match (raw, event_name) {
        (None, Some(event_name)) => {
            let activity_id = match api_activity_id(event_name) {
                ocsf::OTHER if record.get("readOnly").and_then(Value::as_bool) == Some(true) => 2,
                activity_id => activity_id,
            };
            (ocsf::API_ACTIVITY, activity_id)
        }
        _ => (ocsf::BASE_EVENT, 0),
    };
    let failed = has_error(record);
    let status_id = match (failed, class_uid) {
        (true, _) => ocsf::STATUS_FAILURE,
        (false, ocsf::BASE_EVENT) => ocsf::STATUS_UNKNOWN,
        (false, _) => ocsf::STATUS_SUCCESS,
    };
    let identity = record.get("userIdentity");
    let identity_str = |pointer: &str| identity.and_then(|identity| str_at(identity, pointer));
    let mut unmapped = unmapped_fields(record, UNMAPPED);
    unmapped.extend(source_address_unmapped(record));
    CloudApiActivity {
        class_uid,
        category_uid: ocsf::category_uid(class_uid),
        activity_id,
        type_uid: ocsf::type_uid(class_uid, activity_id),
        severity_id: ocsf::SEVERITY_INFORMATIONAL,
        status_id,
        time: header.time,
        metadata: header.metadata,
        message: None,
        cloud: Cloud {
            provider: VENDOR.to_string(),
            // The account the call happened in; the caller's own account is the user's domain.
            account_uid: owned(str_at(record, "/recipientAccountId").or(identity_str("/accountId"))),
            region: owned(str_at(record, "/awsRegion")),
        },
        actor: CloudActor {
            user: identity.map(user).unwrap_or_default(),
            session_issuer: owned(identity_str("/sessionContext/sessionIssuer/arn")),
            session_uid: owned(identity_str("/accessKeyId")),
            invoked_by: owned(identity_str("/invokedBy")),
            mfa_authenticated: identity_str("/sessionContext/attributes/mfaAuthenticated").and_then(bool_text),
        },
        api: Api {
            operation: event_name.unwrap_or_default().to_string(),
            service: owned(str_at(record, "/eventSource")),
            request_id: owned(str_at(record, "/requestID")),
            version: owned(str_at(record, "/apiVersion")),
        },
        src_endpoint: str_at(record, "/sourceIPAddress").and_then(caller_endpoint),
        user_agent: owned(str_at(record, "/userAgent")),
        resources: resources(record),
        error_code: owned(str_at(record, "/errorCode")),
        error_message: owned(str_at(record, "/errorMessage")),
        request_data: json_text(record.get("requestParameters")),
        response_data: json_text(record.get("responseElements")),
        unmapped,
        raw_data: raw.map(str::to_string),
    }
}

/// A console or IAM Identity Center sign-in.
fn sign_in(record: &Value, header: Header, class_uid: i32, activity_id: i32) -> IdentityActivity {
    let event_name = str_at(record, "/eventName").unwrap_or_default();
    // The outcome is a field named after the event: `responseElements.ConsoleLogin`, or
    // `serviceEventDetails.UserAuthentication` for a service event.
    let outcome = record
        .get("responseElements")
        .and_then(|response| str_at(response, &format!("/{event_name}")))
        .or_else(|| record.get("serviceEventDetails").and_then(|details| str_at(details, &format!("/{event_name}"))));
    let failed = has_error(record) || outcome.is_some_and(|outcome| outcome.eq_ignore_ascii_case("Failure"));
    let status_id = match (failed, outcome) {
        (true, _) => ocsf::STATUS_FAILURE,
        (false, Some(outcome)) if outcome.eq_ignore_ascii_case("Success") => ocsf::STATUS_SUCCESS,
        (false, Some(_)) => ocsf::OTHER,
        (false, None) => ocsf::STATUS_UNKNOWN,
    };
    // `MFAUsed` is "Yes"/"No" on console logins; a `CheckMfa` event is the second factor itself.
    let is_mfa = match str_at(record, "/additionalEventData/MFAUsed") {
        Some(used) if used.eq_ignore_ascii_case("yes") => Some(true),
        Some(used) if used.eq_ignore_ascii_case("no") => Some(false),
        _ => (event_name == "CheckMfa").then_some(true),
    };
    let mut unmapped = unmapped_fields(record, UNMAPPED);
    unmapped.extend(unmapped_fields(record, UNMAPPED_SIGN_IN));
    unmapped.extend(source_address_unmapped(record));
    IdentityActivity {
        class_uid,
        category_uid: ocsf::category_uid(class_uid),
        activity_id,
        type_uid: ocsf::type_uid(class_uid, activity_id),
        severity_id: ocsf::SEVERITY_INFORMATIONAL,
        status_id,
        time: header.time,
        metadata: header.metadata,
        message: None,
        actor: record.get("userIdentity").map(user).unwrap_or_default(),
        target_users: Vec::new(),
        target_groups: Vec::new(),
        app: None,
        src_endpoint: str_at(record, "/sourceIPAddress").and_then(caller_endpoint),
        user_agent: owned(str_at(record, "/userAgent")),
        session_uid: None,
        auth_protocol: None,
        is_mfa,
        event_type: event_name.to_string(),
        outcome: owned(outcome),
        outcome_reason: owned(str_at(record, "/errorMessage")),
        unmapped,
        raw_data: None,
    }
}

/// The acting identity of a record (`userIdentity`), as a user; see the module documentation.
fn user(identity: &Value) -> User {
    let arn_name = str_at(identity, "/arn").and_then(|arn| {
        // arn:aws:iam::123456789012:user/Alice, …:assumed-role/Role/session, …:root
        let resource = arn.splitn(6, ':').nth(5)?;
        resource.rsplit('/').next().filter(|name| !name.is_empty())
    });
    let name = str_at(identity, "/userName").or(arn_name).or(str_at(identity, "/invokedBy"));
    User {
        uid: owned(str_at(identity, "/principalId")),
        name: owned(name),
        email: owned(name.filter(|name| looks_like_email(name))),
        r#type: owned(str_at(identity, "/type")),
        domain: owned(str_at(identity, "/accountId")),
    }
}

/// The resources a record names (`resources[]`, whose ARN key is `ARN` or `arn`); entries without
/// an ARN are skipped, because a resource is known by it.
fn resources(record: &Value) -> Vec<Resource> {
    let entries = record.get("resources").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    entries
        .iter()
        .filter_map(|entry| {
            Some(Resource {
                uid: str_at(entry, "/ARN").or(str_at(entry, "/arn"))?.to_string(),
                r#type: owned(str_at(entry, "/type")),
                ..Resource::default()
            })
        })
        .collect()
}

/// `sourceIPAddress` for `unmapped` when it is neither an IP address nor a host name (e.g.
/// `AWS Internal`), so it is not lost.
fn source_address_unmapped(record: &Value) -> BTreeMap<String, String> {
    str_at(record, "/sourceIPAddress")
        .filter(|address| caller_endpoint(address).is_none())
        .map(|address| ("sourceIPAddress".to_string(), Value::from(address).to_string()))
        .into_iter()
        .collect()
}

/// Whether a record says its call failed: an `errorCode` or an `errorMessage` (a failed console
/// login has only the message). Empty ones (redacted samples have `"errorCode": ""`) say nothing.
fn has_error(record: &Value) -> bool {
    str_at(record, "/errorCode").is_some() || str_at(record, "/errorMessage").is_some()
}

/// CloudTrail's `"true"`/`"false"` strings as a boolean.
fn bool_text(text: &str) -> Option<bool> {
    match text {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}
