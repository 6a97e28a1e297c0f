//! Avro encoding of decisions and violations without serde: the same bytes apache-avro writes
//! (checked by the tests), for the schema versions this code was written against. When the
//! current schema of either type is another version, [`Encoder::new`] gives `None` and the
//! operator encodes the generic way.

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
        self.decision_fields(DecisionFields {
            decision_uid: &[&decision.decision_uid],
            event_uid: &decision.event_uid,
            time: decision.time,
            decision: decision.decision,
            policy_set_version: &decision.policy_set_version,
            matched_rules: decision.matched_rules.iter().map(String::as_str),
            severity_id: decision.severity_id,
            labels: decision.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            violations: &decision.violations,
        })
    }

    /// A decision given by its fields, single-object encoded: what [`Encoder::decision`] writes
    /// for the `PolicyDecision` with these fields.
    pub fn decision_fields<'f>(
        self,
        fields: DecisionFields<
            'f,
            impl ExactSizeIterator<Item = &'f str>,
            impl ExactSizeIterator<Item = (&'f str, &'f str)>,
        >,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + 256 * fields.violations.len());
        header(&mut out, DECISION_FINGERPRINT);
        long(&mut out, fields.decision_uid.iter().map(|part| part.len()).sum::<usize>() as i64);
        for part in fields.decision_uid {
            out.extend_from_slice(part.as_bytes());
        }
        string(&mut out, fields.event_uid);
        long(&mut out, fields.time);
        long(
            &mut out,
            match fields.decision {
                Decision::Allow => 0,
                Decision::Deny => 1,
                Decision::Review => 2,
            },
        );
        string(&mut out, fields.policy_set_version);
        if fields.matched_rules.len() > 0 {
            long(&mut out, fields.matched_rules.len() as i64);
            for rule in fields.matched_rules {
                string(&mut out, rule);
            }
        }
        long(&mut out, 0);
        long(&mut out, i64::from(fields.severity_id));
        map(&mut out, fields.labels);
        if !fields.violations.is_empty() {
            long(&mut out, fields.violations.len() as i64);
            for violation in fields.violations {
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

/// The fields of a `PolicyDecision`, borrowed, for [`Encoder::decision_fields`].
pub struct DecisionFields<'f, M, L> {
    /// `decision_uid`, in parts written one after the other.
    pub decision_uid: &'f [&'f str],
    /// `event_uid`.
    pub event_uid: &'f str,
    /// `time`.
    pub time: i64,
    /// `decision`.
    pub decision: Decision,
    /// `policy_set_version`.
    pub policy_set_version: &'f str,
    /// `matched_rules`.
    pub matched_rules: M,
    /// `severity_id`.
    pub severity_id: i32,
    /// `labels`, sorted by name, each name once.
    pub labels: L,
    /// `violations`.
    pub violations: &'f [Violation],
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
    map(out, v.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
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

fn map<'e>(out: &mut Vec<u8>, entries: impl ExactSizeIterator<Item = (&'e str, &'e str)>) {
    if entries.len() > 0 {
        long(out, entries.len() as i64);
        for (k, v) in entries {
            string(out, k);
            string(out, v);
        }
    }
    long(out, 0);
}
