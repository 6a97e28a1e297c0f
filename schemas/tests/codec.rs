//! Encode/decode: every type round-trips and agrees with its `.avsc`; drift, old versions and
//! bad bytes are handled as documented.

mod fixtures;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

use apache_avro::schema::Name;
use apache_avro::Schema;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use weir_schemas::avro::{
    decode_to_json, encode_into, fingerprint_of, is_single_object, schema_fingerprint, Registry, SchemaError,
};
use weir_schemas::events::*;
use weir_schemas::{decode, encode, AvroRecord};

/// Round-trips a value and checks its header; full fixtures are also checked field by field
/// against the schema.
struct RoundTrip {
    names: Vec<&'static str>,
}

impl fixtures::Visitor for RoundTrip {
    fn visit<T: AvroRecord + PartialEq + Debug>(&mut self, label: &str, value: T) {
        let bytes = encode(&value).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(bytes[..2], [0xC3, 0x01], "{label}: marker");
        assert_eq!(bytes[2..10], T::fingerprint().to_le_bytes(), "{label}: fingerprint");
        assert_eq!(fingerprint_of(&bytes), Some(T::fingerprint()), "{label}");
        let back: T = decode(&bytes).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(back, value, "{label}");
        if label.ends_with("/full") {
            let json = serde_json::to_value(&value).expect("fixture serializes to JSON");
            agrees(&json, T::schema(), &mut HashMap::new(), label);
        }
        self.names.push(T::SCHEMA_NAME);
    }
}

/// `json` (a full fixture through serde_json) has exactly the schema's fields, every union is
/// populated and every collection non-empty, and each leaf has the JSON kind of its Avro type.
/// `defined` collects named types as they are met, to follow references to them.
fn agrees(json: &Json, schema: &Schema, defined: &mut HashMap<Name, Schema>, path: &str) {
    if let Some(name) = schema.name() {
        if let Schema::Ref { .. } = schema {
            let definition = defined.get(name).cloned().unwrap_or_else(|| panic!("{path}: {name} undefined"));
            return agrees(json, &definition, defined, path);
        }
        defined.insert(name.clone(), schema.clone());
    }
    match (schema, json) {
        (Schema::Record(record), Json::Object(fields)) => {
            let expected: Vec<&str> = record.fields.iter().map(|f| f.name.as_str()).collect();
            let mut actual: Vec<&str> = fields.keys().map(String::as_str).collect();
            let mut sorted = expected.clone();
            sorted.sort_unstable();
            actual.sort_unstable();
            assert_eq!(actual, sorted, "{path}: Rust fields differ from {}", record.name);
            for field in &record.fields {
                agrees(&fields[&field.name], &field.schema, defined, &format!("{path}.{}", field.name));
            }
        }
        (Schema::Union(union), value) => {
            assert!(!value.is_null(), "{path}: the full fixture must populate every optional field");
            let branch = union.variants().iter().find(|v| !matches!(v, Schema::Null)).expect("nullable union");
            agrees(value, branch, defined, path);
        }
        (Schema::Array(array), Json::Array(items)) => {
            assert!(!items.is_empty(), "{path}: the full fixture must populate every array");
            items.iter().for_each(|item| agrees(item, &array.items, defined, path));
        }
        (Schema::Map(map), Json::Object(entries)) => {
            assert!(!entries.is_empty(), "{path}: the full fixture must populate every map");
            entries.values().for_each(|v| agrees(v, &map.types, defined, path));
        }
        (Schema::String | Schema::Enum(_), Json::String(_)) => {}
        (Schema::Bytes, Json::Array(bytes)) => assert!(bytes.iter().all(Json::is_u64), "{path}: bytes"),
        (Schema::Boolean, Json::Bool(_)) => {}
        (Schema::Int, Json::Number(n)) => assert!(n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()), "{path}: int"),
        (Schema::Long | Schema::TimestampMillis, Json::Number(n)) => assert!(n.is_i64(), "{path}: long"),
        (Schema::Double, Json::Number(n)) => assert!(n.is_f64(), "{path}: double"),
        (schema, json) => panic!("{path}: {json} does not fit {schema:?}"),
    }
}

#[test]
fn every_type_round_trips_and_agrees_with_its_schema() {
    let mut visitor = RoundTrip { names: Vec::new() };
    fixtures::visit_all(&mut visitor);
    visitor.names.dedup();
    assert_eq!(visitor.names.len(), 13, "every top-level schema has fixtures: {:?}", visitor.names);
    for name in &visitor.names {
        assert!(Registry::embedded().current(name).is_some(), "{name}");
    }
}

#[test]
fn every_current_schema_is_recorded_so_old_data_stays_readable() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let report = weir_schemas::compat::check_dir(dir).expect("schemas dir reads");
    let pending: Vec<_> =
        report.schemas.iter().filter(|s| s.outcome != weir_schemas::compat::Outcome::Unchanged).collect();
    assert!(
        pending.is_empty(),
        "schemas changed but not recorded; run `weir schemas record --dir schemas` or \
         `cargo run -p weir-schemas --example schema_versions -- record`:\n{report}"
    );
    for check in &report.schemas {
        let embedded = Registry::embedded().current(&check.name).expect("embedded");
        assert_eq!(embedded.fingerprint(), check.fingerprint, "{}: build is stale", check.name);
    }
}

#[test]
fn encode_into_appends_and_leaves_the_buffer_alone_on_error() {
    let mut buffer = b"prefix".to_vec();
    encode_into(&fixtures::violation(), &mut buffer).expect("encodes");
    assert_eq!(&buffer[..6], b"prefix");
    assert_eq!(decode::<Violation>(&buffer[6..]).expect("decodes"), fixtures::violation());

    let before = buffer.clone();
    let wrong = ViolationWithWrongType { violation_key: "k".into(), rule_id: 7 };
    assert!(encode_into(&wrong, &mut buffer).is_err());
    assert_eq!(buffer, before);
}

/// `io.weir.Violation` with a field the schema does not have.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename = "Violation")] // the deserializer checks the Rust name against the record name
struct ViolationWithExtraField {
    #[serde(flatten)]
    violation: Violation,
    owner: String,
}

impl AvroRecord for ViolationWithExtraField {
    const SCHEMA_NAME: &'static str = "io.weir.Violation";
}

/// `io.weir.Violation` without most of its fields.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename = "Violation")]
#[serde(deny_unknown_fields)]
struct ViolationMissingFields {
    violation_key: String,
}

impl AvroRecord for ViolationMissingFields {
    const SCHEMA_NAME: &'static str = "io.weir.Violation";
}

/// `io.weir.Violation` with `rule_id` a number instead of a string.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename = "Violation")]
struct ViolationWithWrongType {
    violation_key: String,
    rule_id: i64,
}

impl AvroRecord for ViolationWithWrongType {
    const SCHEMA_NAME: &'static str = "io.weir.Violation";
}

#[test]
fn a_rust_type_that_drifted_from_its_schema_does_not_encode_or_decode() {
    let extra = ViolationWithExtraField { violation: fixtures::violation(), owner: "ada".into() };
    let error = encode(&extra).expect_err("extra field").to_string();
    assert!(error.contains("io.weir.Violation") && error.contains("`owner`"), "{error}");

    let error = encode(&ViolationMissingFields { violation_key: "k".into() }).expect_err("missing").to_string();
    assert!(error.contains("`rule_id`"), "{error}");

    let bytes = encode(&fixtures::violation()).expect("encodes");
    let error = decode::<ViolationMissingFields>(&bytes).expect_err("unknown field").to_string();
    assert!(error.contains("`rule_id`"), "{error}");

    let error =
        encode(&ViolationWithWrongType { violation_key: "k".into(), rule_id: 7 }).expect_err("type").to_string();
    assert!(error.contains("field `rule_id` of io.weir.Violation"), "{error}");
}

/// `io.weir.Violation` as it was before `labels` was added, with a field since removed and one
/// enum symbol fewer.
const OLD_VIOLATION: &str = r#"{
  "type": "record", "name": "Violation", "namespace": "io.weir",
  "fields": [
    {"name": "violation_key", "type": "string"},
    {"name": "rule_id", "type": "string"},
    {"name": "legacy_owner", "type": "string"},
    {"name": "rule_description", "type": "string"},
    {"name": "severity_id", "type": "int"},
    {"name": "status", "type": {"type": "enum", "name": "ViolationStatus", "symbols": ["OPEN", "RESOLVED"]}},
    {"name": "first_seen", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "last_seen", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "subject", "type": "string"},
    {"name": "event_uid", "type": "string"},
    {"name": "summary", "type": "string"}
  ]
}"#;

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename = "Violation")]
struct OldViolation {
    violation_key: String,
    rule_id: String,
    legacy_owner: String,
    rule_description: String,
    severity_id: i32,
    status: ViolationStatus,
    first_seen: i64,
    last_seen: i64,
    subject: String,
    event_uid: String,
    summary: String,
}

impl AvroRecord for OldViolation {
    const SCHEMA_NAME: &'static str = "io.weir.Violation";
}

#[test]
fn data_written_with_an_older_schema_version_decodes_to_the_current_type() {
    let old_registry = Registry::from_sources(&[("violation", OLD_VIOLATION)], &[]).expect("old schema");
    let old = OldViolation {
        violation_key: "k".into(),
        rule_id: "r".into(),
        legacy_owner: "ada".into(),
        rule_description: "d".into(),
        severity_id: 4,
        status: ViolationStatus::Resolved,
        first_seen: 1,
        last_seen: 2,
        subject: "s".into(),
        event_uid: "e".into(),
        summary: "sum".into(),
    };
    let bytes = old_registry.encode(&old).expect("old encodes");
    let old_fingerprint = schema_fingerprint(&Schema::parse_str(OLD_VIOLATION).expect("parses"));
    assert_eq!(fingerprint_of(&bytes), Some(old_fingerprint));

    // This build has never seen that version.
    match decode::<Violation>(&bytes) {
        Err(SchemaError::UnknownFingerprint(fp)) => assert_eq!(fp, old_fingerprint),
        other => panic!("expected an unknown fingerprint, got {other:?}"),
    }

    // A schemas directory that recorded it: the current schemas plus the old version.
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("avro"), &dir.path().join("avro"));
    let history = dir.path().join("history/violation");
    std::fs::create_dir_all(&history).expect("mkdir");
    std::fs::write(history.join(format!("{old_fingerprint:016x}.avsc")), OLD_VIOLATION).expect("write");
    let registry = Registry::from_dir(dir.path()).expect("registry");
    assert!(!registry.get(old_fingerprint).expect("old version known").is_current());

    let current: Violation = registry.decode(&bytes).expect("resolves to the current schema");
    assert_eq!(
        current,
        Violation {
            violation_key: "k".into(),
            rule_id: "r".into(),
            rule_description: "d".into(),
            severity_id: 4,
            status: ViolationStatus::Resolved,
            first_seen: 1,
            last_seen: 2,
            subject: "s".into(),
            event_uid: "e".into(),
            labels: BTreeMap::new(),
            summary: "sum".into(),
        }
    );
    let (name, json) = registry.decode_to_json(&bytes).expect("json");
    assert_eq!(name, "io.weir.Violation");
    assert_eq!(json["labels"], json!({}));
    assert!(json.get("legacy_owner").is_none());
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            copy_dir(&path, &to.join(path.file_name().expect("name")));
        } else {
            std::fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy");
        }
    }
}

#[test]
fn decode_to_json_shows_values_plainly() {
    let (name, json) = decode_to_json(&encode(&fixtures::raw_envelope()).expect("encodes")).expect("json");
    assert_eq!(name, "io.weir.RawEnvelope");
    assert_eq!(json["received_at"], json!(1_718_000_000_123_i64));
    assert_eq!(json["cursor"], json!("https://example.okta.com/api/v1/logs?after=abc"));
    assert_eq!(json["payload"], json!({"base64": "eyL/AMMBfQ=="}));

    let (_, json) = decode_to_json(&encode(&fixtures::dead_letter()).expect("encodes")).expect("json");
    assert_eq!(json["original"], json!("{\"published\":\"yesterday\"}"));
    assert_eq!(json["stage"], json!("OPERATOR"));
    assert_eq!(json["input_partition"], json!(3));

    let (_, json) = decode_to_json(&encode(&fixtures::decision()).expect("encodes")).expect("json");
    assert_eq!(json["decision"], json!("REVIEW"));
    assert_eq!(json["violations"][0]["labels"], json!({"framework": "SOC2 CC6.1"}));
    assert_eq!(json["violations"][1]["status"], json!("OPEN"));
}

#[test]
fn bad_bytes_give_typed_errors() {
    assert!(matches!(decode::<Violation>(&[]), Err(SchemaError::NotSingleObject(_))));
    assert!(matches!(decode_to_json(b"{\"a\":1}"), Err(SchemaError::NotSingleObject(_))));
    assert!(matches!(decode_to_json(&[0xC3, 0x01, 0xAA]), Err(SchemaError::NotSingleObject(_))));
    assert!(!is_single_object(b"{}"));

    let unknown = [0xC3, 0x01, 0xEF, 0xBE, 0xAD, 0xDE, 0xEF, 0xBE, 0xAD, 0xDE, 0x00];
    let error = decode_to_json(&unknown).expect_err("unknown");
    assert!(error.to_string().contains("0xdeadbeefdeadbeef"), "{error}");

    let bytes = encode(&fixtures::identity_activity()).expect("encodes");
    for cut in 10..bytes.len() {
        let result = decode::<IdentityActivity>(&bytes[..cut]);
        assert!(matches!(result, Err(SchemaError::Decode { .. })), "cut {cut} of {}: {result:?}", bytes.len());
        let result = decode_to_json(&bytes[..cut]);
        assert!(result.is_err(), "cut {cut} of {}: {result:?}", bytes.len());
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(decode::<IdentityActivity>(&longer), Err(SchemaError::TrailingBytes { count: 1, .. })));
    match decode::<Violation>(&bytes) {
        Err(SchemaError::WrongSchema { expected, found, .. }) => {
            assert_eq!((expected.as_str(), found.as_str()), ("io.weir.Violation", "io.weir.IdentityActivity"));
        }
        other => panic!("expected a wrong-schema error, got {other:?}"),
    }
}

#[test]
fn security_events_decode_by_fingerprint() {
    let event = SecurityEvent::CloudApi(fixtures::cloud_api_activity());
    let bytes = event.encode().expect("encodes");
    let back = SecurityEvent::decode(&bytes).expect("decodes");
    assert_eq!(back, event);
    assert_eq!((back.schema_name(), back.class_uid()), ("io.weir.CloudApiActivity", ocsf::API_ACTIVITY));
    let not_an_event = encode(&fixtures::violation()).expect("encodes");
    assert!(matches!(SecurityEvent::decode(&not_an_event), Err(SchemaError::WrongSchema { .. })));
}

fn current_headers() -> Vec<Vec<u8>> {
    let mut fingerprints: Vec<u64> = Registry::embedded().schemas().map(|s| s.fingerprint()).collect();
    fingerprints.sort_unstable();
    fingerprints.iter().map(|fp| [&[0xC3, 0x01][..], &fp.to_le_bytes()].concat()).collect()
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_to_json(&bytes);
        let _ = decode::<IdentityActivity>(&bytes);
    }

    #[test]
    fn random_datums_after_a_valid_header_never_panic(
        schema in 0..20usize,
        datum in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let headers = current_headers();
        let bytes = [headers[schema % headers.len()].clone(), datum].concat();
        let _ = decode_to_json(&bytes);
        let _ = decode::<IdentityActivity>(&bytes);
        let _ = decode::<PolicyDecision>(&bytes);
        let _ = SecurityEvent::decode(&bytes);
    }
}
