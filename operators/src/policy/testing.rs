//! Testable rules: each rule's inline `[[rules.tests]]` run through the same evaluation as live
//! events (`weir policy test DIR`).
//!
//! A test's `event` is an enriched-event-like object with these keys (all optional but one of
//! `class_uid` / `event.class_uid`):
//!
//! - `class_uid`: the OCSF class (default: `event.class_uid`);
//! - `schema`: the typed event's schema, e.g. `AppActivity` or `io.weir.AppActivity` (default:
//!   the one class `class_uid` maps to; class 2004 is carried by two schemas and needs it);
//! - `event`: the typed event's fields; missing ones take their defaults (null, 0, empty), and
//!   unknown ones are an error, as for a real event;
//! - `user`, `device`, `asset`: the contexts (`UserContext`, `DeviceContext`, `AssetContext`
//!   fields), absent = null;
//! - `missing`: the missing-context list;
//! - `event_uid`, `time`.
//!
//! The object becomes a real `EnrichedEvent` (the typed event Avro-encoded inside it), so a test
//! exercises exactly what a live event would.

use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value as JsonValue};
use weir_schemas::events::{
    ocsf, AppActivity, AppAlert, AssetContext, CloudApiActivity, DeviceContext, DeviceInventory, EndpointDetection,
    EnrichedEvent, IdentityActivity, ResourceChange, UserContext,
};
use weir_schemas::AvroRecord;

use super::eval::{condition_holds, Activation};
use super::rules::{load_dir, PolicyLoadError, PolicySet};
use super::udf::Udfs;

/// The keys a test event may have.
const INPUT_KEYS: [&str; 9] =
    ["class_uid", "schema", "event", "user", "device", "asset", "missing", "event_uid", "time"];

/// Checks a test event's top-level keys.
pub fn check_input_keys(input: &JsonValue) -> Result<(), String> {
    let Some(object) = input.as_object() else { return Err("must be an object".into()) };
    match object.keys().find(|k| !INPUT_KEYS.contains(&k.as_str())) {
        Some(key) => Err(format!("unknown key `{key}` (known: {})", INPUT_KEYS.join(", "))),
        None => Ok(()),
    }
}

/// The outcome of one inline test.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TestResult {
    /// The rule tested.
    pub rule_id: String,
    /// The test's name, or `#n` (1-based, within the rule).
    pub test: String,
    /// `file:line` of the test.
    pub location: String,
    /// Whether the rule had to match.
    pub expect: bool,
    /// Whether it did (`None`: the input or the condition failed).
    pub matched: Option<bool>,
    /// Whether the test passed.
    pub passed: bool,
    /// Why it failed, or what went wrong evaluating.
    pub detail: Option<String>,
}

/// What `weir policy test DIR` reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TestReport {
    /// The version of the set tested.
    pub policy_set_version: String,
    /// How many rules the set has.
    pub rules: usize,
    /// Rules without any test (ids).
    pub untested: Vec<String>,
    /// Every test, in rule id order.
    pub results: Vec<TestResult>,
    /// How many passed.
    pub passed: usize,
    /// How many failed.
    pub failed: usize,
}

impl TestReport {
    /// Whether every test passed.
    pub fn ok(&self) -> bool {
        self.failed == 0
    }
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "policy set {} ({} rules)", self.policy_set_version, self.rules)?;
        for r in &self.results {
            let status = if r.passed { "ok  " } else { "FAIL" };
            write!(f, "{status} {} {} ({}): expect {}", r.rule_id, r.test, r.location, r.expect)?;
            match r.matched {
                Some(m) => write!(f, ", matched {m}")?,
                None => write!(f, ", no verdict")?,
            }
            if let Some(detail) = &r.detail {
                write!(f, " — {detail}")?;
            }
            writeln!(f)?;
        }
        for id in &self.untested {
            writeln!(f, "warn {id}: no tests")?;
        }
        write!(f, "{} passed, {} failed", self.passed, self.failed)
    }
}

/// Loads the policy directory `dir` (with these UDFs) and runs every rule's inline tests.
pub fn test_policies(dir: &Path, udfs: &Udfs) -> Result<TestReport, PolicyLoadError> {
    let set = load_dir(dir, udfs)?;
    Ok(run_tests(&set))
}

/// Runs every inline test of a loaded set.
pub fn run_tests(set: &PolicySet) -> TestReport {
    let mut results = Vec::new();
    let mut untested = Vec::new();
    for rule in &set.rules {
        if rule.tests.is_empty() {
            untested.push(rule.id.clone());
        }
        for (n, test) in rule.tests.iter().enumerate() {
            let name = test.name.clone().unwrap_or_else(|| format!("#{}", n + 1));
            let location = format!("{}:{}", rule.file.display(), test.line);
            let (matched, detail) = match enriched_from_test(&test.input) {
                Err(reason) => (None, Some(format!("bad test event: {reason}"))),
                Ok(enriched) if !rule.classes.is_empty() && !rule.classes.contains(&enriched.class_uid) => {
                    (Some(false), Some(format!("the rule does not run on class {}", enriched.class_uid)))
                }
                Ok(enriched) => {
                    let activation = Activation::new(&enriched);
                    let scope = activation.scope(set.root());
                    let verdict = condition_holds(&rule.condition, &scope);
                    match (verdict, activation.event_error()) {
                        (_, Some(reason)) => (None, Some(reason.to_string())),
                        (Ok(m), None) => (Some(m), None),
                        // A condition that errors does not match, as for live events.
                        (Err(reason), None) => {
                            (Some(false), Some(format!("condition error (counts as no match): {reason}")))
                        }
                    }
                }
            };
            let passed = matched == Some(test.expect);
            results.push(TestResult {
                rule_id: rule.id.clone(),
                test: name,
                location,
                expect: test.expect,
                matched,
                passed,
                detail,
            });
        }
    }
    let passed = results.iter().filter(|r| r.passed).count();
    TestReport {
        policy_set_version: set.version.clone(),
        rules: set.rules.len(),
        untested,
        failed: results.len() - passed,
        passed,
        results,
    }
}

/// Builds the enriched event a test input describes.
pub fn enriched_from_test(input: &JsonValue) -> Result<EnrichedEvent, String> {
    check_input_keys(input)?;
    let empty = Map::new();
    let object = input.as_object().unwrap_or(&empty);
    let mut event = match object.get("event") {
        None | Some(JsonValue::Null) => Map::new(),
        Some(JsonValue::Object(event)) => event.clone(),
        Some(_) => return Err("`event` must be an object".into()),
    };
    let class_uid = match (object.get("class_uid"), event.get("class_uid")) {
        (Some(c), _) | (None, Some(c)) => {
            c.as_i64().and_then(|c| i32::try_from(c).ok()).ok_or("`class_uid` must be an integer")?
        }
        (None, None) => return Err("give `class_uid` (or `event.class_uid`)".into()),
    };
    event.entry("class_uid").or_insert(class_uid.into());
    event.entry("category_uid").or_insert(ocsf::category_uid(class_uid).into());
    let time = object.get("time").and_then(JsonValue::as_i64).unwrap_or(0);
    event.entry("time").or_insert(time.into());
    let event_uid = object.get("event_uid").and_then(JsonValue::as_str).unwrap_or("test").to_string();
    let metadata = event.entry("metadata").or_insert_with(|| JsonValue::Object(Map::new()));
    if let Some(metadata) = metadata.as_object_mut() {
        metadata.entry("uid").or_insert(event_uid.clone().into());
    }
    let schema = match object.get("schema").and_then(JsonValue::as_str) {
        Some(name) => name.trim_start_matches("io.weir.").to_string(),
        None => schema_for_class(class_uid)?.to_string(),
    };
    let event = JsonValue::Object(event);
    let bytes = match schema.as_str() {
        "IdentityActivity" => typed::<IdentityActivity>(event)?,
        "AppActivity" => typed::<AppActivity>(event)?,
        "AppAlert" => typed::<AppAlert>(event)?,
        "EndpointDetection" => typed::<EndpointDetection>(event)?,
        "DeviceInventory" => typed::<DeviceInventory>(event)?,
        "CloudApiActivity" => typed::<CloudApiActivity>(event)?,
        "ResourceChange" => typed::<ResourceChange>(event)?,
        other => return Err(format!("unknown schema `{other}`")),
    };
    let fingerprint = weir_schemas::avro::fingerprint_of(&bytes).unwrap_or_default();
    let missing = match object.get("missing") {
        None | Some(JsonValue::Null) => Vec::new(),
        Some(list) => serde_json::from_value(list.clone()).map_err(|e| format!("`missing`: {e}"))?,
    };
    Ok(EnrichedEvent {
        event_uid,
        class_uid,
        time,
        event_schema: fingerprint as i64,
        event: bytes,
        user_context: context::<UserContext>(object.get("user"), "user")?,
        device_context: context::<DeviceContext>(object.get("device"), "device")?,
        asset_context: context::<AssetContext>(object.get("asset"), "asset")?,
        missing_context: missing,
    })
}

/// The one schema that carries events of `class_uid`.
fn schema_for_class(class_uid: i32) -> Result<&'static str, String> {
    Ok(match class_uid {
        ocsf::ACCOUNT_CHANGE | ocsf::AUTHENTICATION | ocsf::USER_ACCESS_MANAGEMENT | ocsf::GROUP_MANAGEMENT => {
            IdentityActivity::SCHEMA_NAME
        }
        ocsf::WEB_RESOURCES_ACTIVITY | ocsf::HTTP_ACTIVITY => AppActivity::SCHEMA_NAME,
        ocsf::DATA_SECURITY_FINDING => AppAlert::SCHEMA_NAME,
        ocsf::DEVICE_INVENTORY_INFO => DeviceInventory::SCHEMA_NAME,
        ocsf::API_ACTIVITY => CloudApiActivity::SCHEMA_NAME,
        ocsf::CLOUD_RESOURCES_INVENTORY_INFO => ResourceChange::SCHEMA_NAME,
        other => {
            return Err(format!(
                "class {other} is carried by more than one schema (or none): say which with `schema` (e.g. \
                 \"EndpointDetection\" or \"AppAlert\")"
            ))
        }
    }
    .trim_start_matches("io.weir."))
}

/// `value` merged over `base`: objects key by key (recursively), anything else replaced.
fn merge(base: &mut JsonValue, value: JsonValue) {
    match (base, value) {
        (JsonValue::Object(base), JsonValue::Object(value)) => {
            for (k, v) in value {
                match base.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (slot, value) => *slot = value,
    }
}

/// The typed event `fields` describe (over the type's defaults), single-object encoded.
fn typed<T: AvroRecord + Default>(fields: JsonValue) -> Result<Vec<u8>, String> {
    let mut json = serde_json::to_value(T::default()).map_err(|e| e.to_string())?;
    merge(&mut json, fields);
    let value: T = serde_path_to_error::deserialize(json).map_err(|e| format!("event.{e}"))?;
    weir_schemas::encode(&value).map_err(|e| e.to_string())
}

/// A context object (over the type's defaults), or null.
fn context<T: DeserializeOwned + Serialize + Default>(
    value: Option<&JsonValue>,
    name: &str,
) -> Result<Option<T>, String> {
    match value {
        None | Some(JsonValue::Null) => Ok(None),
        Some(value) => {
            let mut json = serde_json::to_value(T::default()).map_err(|e| e.to_string())?;
            merge(&mut json, value.clone());
            serde_path_to_error::deserialize(json).map(Some).map_err(|e| format!("{name}.{e}"))
        }
    }
}
