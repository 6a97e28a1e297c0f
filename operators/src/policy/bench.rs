//! `weir bench policy`: policy evaluation throughput on one thread, in process.
//!
//! Builds `events` enriched events (a deterministic mix of SaaS activity, sign-ins, device
//! inventory and cloud API calls, with user, device and asset context) and a set of `rules` rules
//! (a quarter per event family, the rest for every class: for 50, 12 per family and 2 for all, so
//! each event meets 14), then runs them through [`Policy`]'s `process`, as the runner would. It
//! reports the end-to-end rate and, to show where the time goes, the rate with each stage added
//! in turn (the compiled way, see [`super::fast`]): decoding the input's fields, + the typed
//! event's, + evaluating the applicable conditions, + deciding (subjects and violations in a
//! [`MemoryState`]); the whole operator adds encoding the outputs. It also reports the whole
//! operator on the interpreted way (CEL over fully decoded events), for comparison.

use std::hint::black_box;
use std::time::Instant;

use serde_json::json;
use weir_schemas::component::{MemoryState, Operator, Output};
use weir_schemas::events::{
    ocsf, Api, App, AppActivity, AssetContext, Cloud, CloudActor, CloudApiActivity, Device, DeviceContext,
    DeviceInventory, EnrichedEvent, IdentityActivity, Metadata, Resource, User, UserContext,
};
use weir_schemas::record::{Record, StoredRecord};

use super::rules::{load_sources, PolicySet};
use super::udf::Udfs;
use super::Policy;

/// Runs the benchmark: `events` events through `rules` rules (at least 4); with `whole_only`, only
/// the whole operator (for profilers). Returns the figures as JSON (`events_per_sec` is the
/// headline).
pub fn run(events: usize, rules: usize, whole_only: bool) -> serde_json::Value {
    let events = events.max(1);
    let rules = rules.max(4);
    let sources = vec![(std::path::PathBuf::from("bench.toml"), policy_text(rules))];
    let set = match load_sources(&sources, &Udfs::none()) {
        Ok(set) => set,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    let inputs: Vec<StoredRecord> = (0..events)
        .filter_map(|i| {
            let enriched = enriched_event(i);
            let value = weir_schemas::encode(&enriched).ok()?;
            Some(StoredRecord {
                topic: "enriched".into(),
                partition: 0,
                offset: i as u64,
                record: Record::new(enriched.time, value),
            })
        })
        .collect();
    let applicable: usize = inputs
        .iter()
        .filter_map(|r| weir_schemas::decode::<EnrichedEvent>(&r.record.value).ok())
        .map(|e| set.rules_for(e.class_uid).len())
        .sum();

    if whole_only {
        let (events_per_sec, decisions, violations, rejected) = whole(set, &inputs, true);
        return json!({
            "benchmark": "policy",
            "threads": 1,
            "events": inputs.len(),
            "rules": rules,
            "events_per_sec": events_per_sec.round(),
            "micros_per_event": 1e6 / events_per_sec,
            "decisions": decisions,
            "violation_changes": violations,
            "rejected": rejected,
        });
    }
    // Stage 1: decoding the EnrichedEvent (the fields rules and decisions read, from the bytes).
    let fast = set.fast();
    let decode_rate = rate(inputs.len(), || {
        for r in &inputs {
            black_box(fast.decode_enriched(&r.record.value).is_some());
        }
    });
    // Stage 2: + decoding the typed event inside it (the fields rules read).
    let event_rate = rate(inputs.len(), || {
        for r in &inputs {
            if let Some(mut enriched) = fast.decode_enriched(&r.record.value) {
                black_box(fast.decode_event(&mut enriched));
            }
        }
    });
    // Stage 3: + evaluating the applicable compiled conditions, guards first as the operator
    // does (no violations, no output).
    let conditions_rate = rate(inputs.len(), || {
        for r in &inputs {
            if let Some(mut enriched) = fast.decode_enriched(&r.record.value) {
                fast.decode_event(&mut enriched);
                let vars = enriched.vars();
                let mut memo = fast.guard_memo();
                for &i in set.rules_for(enriched.class_uid) {
                    let excluded = fast.excluded(i, &vars, &mut memo);
                    black_box(excluded || fast.condition(i).and_then(|c| c.holds(&vars)).is_some());
                }
            }
        }
    });
    // Stage 4: + deciding: subjects, violations in a MemoryState, the decision (not encoded).
    let mut policy = Policy::from_set(load_sources(&sources, &Udfs::none()).expect("the set loaded above"));
    let mut state = MemoryState::default();
    let decide_rate = rate(inputs.len(), || {
        for r in &inputs {
            black_box(policy.decide_compiled(&r.record.value, &mut state).ok());
        }
    });
    // The whole operator: the above, then encoding the decision and violations.
    let (events_per_sec, decisions, violations, rejected) = whole(set, &inputs, true);
    // The same through the CEL interpreter, for comparison.
    let interpreted = load_sources(&sources, &Udfs::none()).expect("the set loaded above");
    let (interpreted_per_sec, ..) = whole(interpreted, &inputs, false);
    let version = policy.policy_set().version.clone();
    json!({
        "benchmark": "policy",
        "threads": 1,
        "events": inputs.len(),
        "rules": rules,
        "rules_evaluated_per_event": applicable as f64 / inputs.len().max(1) as f64,
        "events_per_sec": events_per_sec.round(),
        "micros_per_event": 1e6 / events_per_sec,
        "decisions": decisions,
        "violation_changes": violations,
        "rejected": rejected,
        "stages_events_per_sec": {
            "decode_enriched_event": decode_rate.round(),
            "decode_typed_event": event_rate.round(),
            "evaluate_conditions": conditions_rate.round(),
            "decide_with_state": decide_rate.round(),
        },
        "interpreted_events_per_sec": interpreted_per_sec.round(),
        "policy_set_version": version,
    })
}

/// Runs every input through a fresh operator (compiled way first, or interpreted only): the rate,
/// and how many decisions, violation changes and rejections came out.
fn whole(set: PolicySet, inputs: &[StoredRecord], compiled: bool) -> (f64, usize, usize, usize) {
    let mut policy = Policy::from_set(set);
    policy.compiled = compiled;
    let mut state = MemoryState::default();
    let mut out = Output::default();
    let (mut decisions, mut violations, mut rejected) = (0, 0, 0);
    let started = Instant::now();
    for input in inputs {
        out.clear();
        if policy.process(input, &mut state, &mut out).is_err() {
            rejected += 1;
        }
        decisions += out.records.len();
        violations += out.side.len();
        rejected += out.rejected.len();
    }
    let rate = inputs.len() as f64 / started.elapsed().as_secs_f64().max(1e-9);
    (rate, decisions, violations, rejected)
}

fn rate(n: usize, mut work: impl FnMut()) -> f64 {
    let started = Instant::now();
    work();
    n as f64 / started.elapsed().as_secs_f64().max(1e-9)
}

/// A policy file with `n` rules: a quarter per event family (SaaS activity, sign-ins, device
/// inventory, cloud API calls) and the rest for every class. A third are allow rules.
pub fn policy_text(n: usize) -> String {
    let mut text = String::new();
    let per_family = n / 4;
    for i in 0..n {
        let (classes, condition, subject) = match (i / per_family.max(1)).min(4) {
            0 => (
                "[6001, 4002]",
                format!(
                    "user != null && user.department == 'dept-{}' && event.app != null && \
                     event.app.category == 'Generative AI' && !(event.app.name in ['ChatGPT Enterprise', 'Copilot'])",
                    i % 8
                ),
                "user.uid",
            ),
            1 => (
                "[3002]",
                format!(
                    "user != null && user.status in ['SUSPENDED', 'DEPROVISIONED'] && event.outcome == 'SUCCESS' && \
                     event.metadata.vendor_name == 'vendor-{}'",
                    i % 3
                ),
                "user.uid",
            ),
            2 => (
                "[5001]",
                format!(
                    "event.reduced_functionality_mode == true || (device != null && device.agent_version != null && \
                     device.agent_version < '7.{}')",
                    10 + i % 5
                ),
                "event.device.uid",
            ),
            3 => (
                "[6003]",
                format!(
                    "event.api.operation in ['PutBucketAcl', 'PutBucketPolicy', 'DeleteBucketEncryption'] && \
                     event.cloud.region == 'region-{}'",
                    i % 4
                ),
                "event.resources.size() > 0 ? event.resources[0].uid : event.actor.user.name",
            ),
            _ => (
                "[]",
                format!(
                    "device != null && device.crown_jewel == true && user != null && \
                     !('crown-admins-{}' in user.groups)",
                    i % 6
                ),
                "user.uid",
            ),
        };
        let decision = ["deny", "review", "allow"][i % 3];
        text.push_str(&format!(
            "[[rules]]\nid = \"bench-{i:03}\"\ndescription = \"bench rule {i}\"\nowner = \"bench\"\nclasses = \
             {classes}\ncondition = \"{condition}\"\nsubject = \"{subject}\"\ndecision = \"{decision}\"\nseverity = \
             \"medium\"\nlabels = {{ team = \"t{}\" }}\n\n",
            i % 5
        ));
    }
    text
}

/// The `i`-th benchmark event: deterministic, cycling through four families.
pub fn enriched_event(i: usize) -> EnrichedEvent {
    let user_n = (i * 7919) % 500;
    let user = User {
        uid: Some(format!("00u{user_n:05}")),
        name: Some(format!("user{user_n}@example.com")),
        email: Some(format!("user{user_n}@example.com")),
        r#type: Some("User".into()),
        domain: None,
    };
    let metadata = Metadata {
        uid: format!("evt-{i:08}"),
        version: ocsf::VERSION.into(),
        vendor_name: format!("vendor-{}", i % 3),
        product_name: "bench".into(),
        original_time: None,
        log_name: "bench".into(),
        raw_ref: None,
    };
    let time = 1_700_000_000_000 + i as i64 * 10;
    let device = Device {
        uid: Some(format!("dev-{}", i % 300)),
        hostname: Some(format!("host-{}", i % 300)),
        ip: Some("10.0.0.1".into()),
        os_name: Some("Windows".into()),
        os_version: Some("11".into()),
        agent_version: Some(format!("7.{}", 5 + i % 12)),
    };
    let (class_uid, bytes) = match i % 4 {
        0 => {
            let event = AppActivity {
                class_uid: ocsf::WEB_RESOURCES_ACTIVITY,
                category_uid: 6,
                activity_id: 1,
                type_uid: ocsf::type_uid(ocsf::WEB_RESOURCES_ACTIVITY, 1),
                time,
                metadata,
                event_type: "application".into(),
                user,
                app: Some(App {
                    name: ["ChatGPT", "ChatGPT Enterprise", "Claude", "Gemini", "Box"][i % 5].into(),
                    category: Some(if i % 5 == 4 { "Cloud Storage" } else { "Generative AI" }.into()),
                    uid: None,
                }),
                activity: Some("Upload".into()),
                action: Some("allow".into()),
                url: Some("https://chat.example.com/".into()),
                device: Some(device.clone()),
                ..Default::default()
            };
            (event.class_uid, weir_schemas::encode(&event))
        }
        1 => {
            let event = IdentityActivity {
                class_uid: ocsf::AUTHENTICATION,
                category_uid: 3,
                activity_id: 1,
                type_uid: ocsf::type_uid(ocsf::AUTHENTICATION, 1),
                time,
                metadata,
                actor: user,
                event_type: "user.session.start".into(),
                outcome: Some("SUCCESS".into()),
                ..Default::default()
            };
            (event.class_uid, weir_schemas::encode(&event))
        }
        2 => {
            let event = DeviceInventory {
                class_uid: ocsf::DEVICE_INVENTORY_INFO,
                category_uid: 5,
                activity_id: 2,
                type_uid: ocsf::type_uid(ocsf::DEVICE_INVENTORY_INFO, 2),
                time,
                metadata,
                device: device.clone(),
                platform: Some("Windows".into()),
                reduced_functionality_mode: Some(i % 50 == 2),
                ..Default::default()
            };
            (event.class_uid, weir_schemas::encode(&event))
        }
        _ => {
            let event = CloudApiActivity {
                class_uid: ocsf::API_ACTIVITY,
                category_uid: 6,
                activity_id: 3,
                type_uid: ocsf::type_uid(ocsf::API_ACTIVITY, 3),
                time,
                metadata,
                cloud: Cloud {
                    provider: "aws".into(),
                    account_uid: Some("123456789012".into()),
                    region: Some(format!("region-{}", i % 4)),
                },
                actor: CloudActor { user, ..Default::default() },
                api: Api {
                    operation: ["PutBucketAcl", "GetObject", "DescribeInstances", "PutBucketPolicy"]
                        [i % 4 / 2 + (i / 4) % 3 % 2]
                        .into(),
                    service: Some("s3.amazonaws.com".into()),
                    ..Default::default()
                },
                resources: vec![Resource {
                    uid: format!("arn:aws:s3:::bucket-{}", i % 40),
                    r#type: Some("AWS::S3::Bucket".into()),
                    ..Default::default()
                }],
                ..Default::default()
            };
            (event.class_uid, weir_schemas::encode(&event))
        }
    };
    let bytes = bytes.unwrap_or_default();
    EnrichedEvent {
        event_uid: format!("evt-{i:08}"),
        class_uid,
        time,
        event_schema: weir_schemas::avro::fingerprint_of(&bytes).unwrap_or_default() as i64,
        event: bytes,
        user_context: Some(UserContext {
            uid: format!("00u{user_n:05}"),
            login: Some(format!("user{user_n}@example.com")),
            status: Some(if user_n.is_multiple_of(40) { "SUSPENDED" } else { "ACTIVE" }.into()),
            department: Some(format!("dept-{}", user_n % 40)),
            groups: vec!["everyone".into(), format!("team-{}", user_n % 10)],
            ..Default::default()
        }),
        device_context: Some(DeviceContext {
            uid: format!("dev-{}", i % 300),
            agent_version: device.agent_version.clone(),
            crown_jewel: Some(i % 300 < 3),
            compliant: Some(true),
            ..Default::default()
        }),
        asset_context: (class_uid == ocsf::API_ACTIVITY).then(|| AssetContext {
            uid: format!("arn:aws:s3:::bucket-{}", i % 40),
            public: Some(false),
            encrypted: Some(true),
            ..Default::default()
        }),
        missing_context: Vec::new(),
    }
}
