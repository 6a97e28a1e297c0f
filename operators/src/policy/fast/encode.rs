//! Avro encoding of decisions and violations without serde: the same bytes apache-avro writes
//! (checked by the tests), for the schema versions this code was written against. When the
//! current schema of either type is another version, [`Encoder::new`] gives `None` and the
//! operator encodes the generic way.

use std::collections::BTreeMap;

use weir_schemas::avro::{AvroRecord, SINGLE_OBJECT_MARKER};
use weir_schemas::events::{Decision, PolicyDecision, Violation, ViolationStatus};

/// CRC-64-AVRO fingerprint of the `io.weir.PolicyDecision` schema this encoder writes.
pub const DECISION_FINGERPRINT: u64 = 0x1c79_ea0f_2a54_af37;
/// CRC-64-AVRO fingerprint of the `io.weir.Violation` schema this encoder writes.
pub const VIOLATION_FINGERPRINT: u64 = 0xe737_2aea_95e1_db1d;

/// Encodes decisions and violations, single-object encoded with their current schemas.
#[derive(Clone, Copy, Debug)]
pub struct Encoder;

impl Encoder {
    /// The encoder, if the current schemas are the ones it writes.
    pub fn new() -> Option<Encoder> {
        (PolicyDecision::fingerprint() == DECISION_FINGERPRINT && Violation::fingerprint() == VIOLATION_FINGERPRINT)
            .then_some(Encoder)
    }

    /// `decision`, single-object encoded.
    pub fn decision(self, decision: &PolicyDecision) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + 256 * decision.violations.len());
        header(&mut out, DECISION_FINGERPRINT);
        string(&mut out, &decision.decision_uid);
        string(&mut out, &decision.event_uid);
        long(&mut out, decision.time);
        long(
            &mut out,
            match decision.decision {
                Decision::Allow => 0,
                Decision::Deny => 1,
                Decision::Review => 2,
            },
        );
        string(&mut out, &decision.policy_set_version);
        if !decision.matched_rules.is_empty() {
            long(&mut out, decision.matched_rules.len() as i64);
            for rule in &decision.matched_rules {
                string(&mut out, rule);
            }
        }
        long(&mut out, 0);
        long(&mut out, i64::from(decision.severity_id));
        map(&mut out, &decision.labels);
        if !decision.violations.is_empty() {
            long(&mut out, decision.violations.len() as i64);
            for violation in &decision.violations {
                violation_datum(&mut out, violation);
            }
        }
        long(&mut out, 0);
        out
    }

    /// `violation`, single-object encoded.
    pub fn violation(self, violation: &Violation) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        header(&mut out, VIOLATION_FINGERPRINT);
        violation_datum(&mut out, violation);
        out
    }
}

fn header(out: &mut Vec<u8>, fingerprint: u64) {
    out.extend_from_slice(&SINGLE_OBJECT_MARKER);
    out.extend_from_slice(&fingerprint.to_le_bytes());
}

fn violation_datum(out: &mut Vec<u8>, v: &Violation) {
    string(out, &v.violation_key);
    string(out, &v.rule_id);
    string(out, &v.rule_description);
    long(out, i64::from(v.severity_id));
    long(
        out,
        match v.status {
            ViolationStatus::Open => 0,
            ViolationStatus::Updated => 1,
            ViolationStatus::Resolved => 2,
        },
    );
    long(out, v.first_seen);
    long(out, v.last_seen);
    string(out, &v.subject);
    string(out, &v.event_uid);
    map(out, &v.labels);
    string(out, &v.summary);
}

/// A zig-zag varint.
fn long(out: &mut Vec<u8>, value: i64) {
    let mut z = ((value << 1) ^ (value >> 63)) as u64;
    while z > 0x7F {
        out.push((z as u8 & 0x7F) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn string(out: &mut Vec<u8>, s: &str) {
    long(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

fn map(out: &mut Vec<u8>, entries: &BTreeMap<String, String>) {
    if !entries.is_empty() {
        long(out, entries.len() as i64);
        for (k, v) in entries {
            string(out, k);
            string(out, v);
        }
    }
    long(out, 0);
}
