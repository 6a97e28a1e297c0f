//! Violations: stable keys, the `open` state table, and the in-memory index rebuilt from it.
//!
//! A violation is one rule broken by one subject. Its key is a hash of the rule id and the
//! subject only, so it is the same across restarts, replays and policy-set versions, and sinks
//! can update one ticket or page under it. While it is open, the state table [`OPEN_TABLE`] holds
//! it under its key; the runner commits that table with the input offsets, so a restart resumes
//! with the same open violations, and a later event can still resolve them.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use weir_schemas::component::{ComponentError, State};

use super::rules::hex;

/// The state table of open violations: violation key → [`OpenViolation`] (JSON).
pub const OPEN_TABLE: &str = "open";

/// The stable key of the violation of `rule_id` by `subject`: 32 hex digits of
/// SHA-256(rule id, NUL, subject).
pub fn violation_key(rule_id: &str, subject: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(rule_id.as_bytes());
    hasher.update([0]);
    hasher.update(subject.as_bytes());
    hex(&hasher.finalize()[..16])
}

/// An open violation, as the state table holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenViolation {
    /// The rule broken.
    pub rule_id: String,
    /// Who or what broke it.
    pub subject: String,
    /// Event time it was opened at, ms since the Unix epoch.
    pub first_seen: i64,
    /// Event time it last matched at.
    pub last_seen: i64,
    /// The event that last matched.
    pub event_uid: String,
}

impl OpenViolation {
    /// Reads the open violation under `key`.
    pub fn get(state: &dyn State, key: &str) -> Result<Option<OpenViolation>, ComponentError> {
        match state.get(OPEN_TABLE, key.as_bytes())? {
            Some(bytes) => Ok(Some(parse(key.as_bytes(), &bytes)?)),
            None => Ok(None),
        }
    }

    /// Writes it under `key`.
    pub fn put(&self, state: &mut dyn State, key: &str) {
        state.put(OPEN_TABLE, key.as_bytes(), self.to_json());
    }

    /// The bytes `serde_json::to_vec` gives, written directly: this runs for every violation
    /// opened or updated, and serde's machinery was most of its cost.
    pub fn to_json(&self) -> Vec<u8> {
        use std::io::Write;
        let mut out = Vec::with_capacity(96 + self.rule_id.len() + self.subject.len() + self.event_uid.len());
        out.extend_from_slice(b"{\"rule_id\":");
        json_string(&mut out, &self.rule_id);
        out.extend_from_slice(b",\"subject\":");
        json_string(&mut out, &self.subject);
        // Writing integers into a Vec cannot fail.
        let _ = write!(out, ",\"first_seen\":{},\"last_seen\":{}", self.first_seen, self.last_seen);
        out.extend_from_slice(b",\"event_uid\":");
        json_string(&mut out, &self.event_uid);
        out.push(b'}');
        out
    }

    /// The entry of [`OPEN_TABLE`] `bytes` hold, every field by name, with `first_seen` and
    /// `last_seen` as ms and RFC 3339; `None` when the bytes are not an open violation.
    pub fn describe(bytes: &[u8]) -> Option<serde_json::Value> {
        let open: OpenViolation = serde_json::from_slice(bytes).ok()?;
        Some(serde_json::json!({
            "rule_id": open.rule_id,
            "subject": open.subject,
            "first_seen": crate::describe_time(open.first_seen),
            "last_seen": crate::describe_time(open.last_seen),
            "event_uid": open.event_uid,
        }))
    }
}

/// `text` as a JSON string, escaped as serde_json escapes it (quote, backslash and control
/// characters only); text with any of those goes through serde_json itself.
fn json_string(out: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Serializing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

fn parse(key: &[u8], bytes: &[u8]) -> Result<OpenViolation, ComponentError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ComponentError::fatal(format!(
            "state table `{OPEN_TABLE}` entry {} is not an open violation: {e}",
            String::from_utf8_lossy(key)
        ))
    })
}

/// An open violation as the in-memory index knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenEntry {
    /// Its violation key.
    pub key: String,
    /// Event time it was opened at.
    pub first_seen: i64,
}

/// Which violations are open, in memory, by rule id and subject (so deciding needs no key
/// hashing unless a violation opens): their keys and when they opened. Rebuilt from the state
/// table on restore, so it never runs ahead of what is committed.
#[derive(Debug, Default)]
pub struct OpenIndex {
    /// Per rule, its open violations by subject. The subjects keep the default (keyed) hasher,
    /// as events choose them.
    per_rule: Vec<HashMap<String, OpenEntry>>,
    /// Rule id → its place in `per_rule`, with [`RuleIdHasher`].
    places: HashMap<String, usize, BuildHasherDefault<RuleIdHasher>>,
    /// The place of each rule of the policy set deciding now, by its index in the set
    /// ([`OpenIndex::bind`]): deciding looks a rule's violations up for every rule that applies
    /// to every event, so by index rather than by id.
    bound: Vec<usize>,
    len: usize,
}

/// A fast, unkeyed hasher (FxHash's mixing) for rule ids: they come from the policy files, not
/// from events, so nobody can choose them to collide, and SipHash was a tenth of deciding.
#[derive(Debug, Default, Clone, Copy)]
pub struct RuleIdHasher(u64);

impl RuleIdHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for RuleIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.mix(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl OpenIndex {
    /// The index of the open violations committed in `state`.
    pub fn restore(state: &dyn State) -> Result<OpenIndex, ComponentError> {
        let mut index = OpenIndex::default();
        let mut failure = None;
        state.scan(OPEN_TABLE, &mut |key, value| {
            if failure.is_some() {
                return;
            }
            match parse(key, value) {
                Ok(open) => index.insert(
                    &open.rule_id,
                    &open.subject,
                    OpenEntry { key: String::from_utf8_lossy(key).into_owned(), first_seen: open.first_seen },
                ),
                Err(e) => failure = Some(e),
            }
        })?;
        match failure {
            Some(e) => Err(e),
            None => Ok(index),
        }
    }

    /// Binds the index to a policy set's rules (ids in the set's order), for
    /// [`OpenIndex::of_bound`]; call it whenever the deciding set changes or the index is rebuilt.
    pub fn bind<'i>(&mut self, rule_ids: impl Iterator<Item = &'i str>) {
        self.bound = rule_ids.map(|id| self.place(id)).collect();
    }

    /// The open violations of the rule at `index` of the bound set, by subject.
    #[inline]
    pub fn of_bound(&self, index: usize) -> Option<&HashMap<String, OpenEntry>> {
        self.per_rule.get(*self.bound.get(index)?)
    }

    fn place(&mut self, rule_id: &str) -> usize {
        if let Some(&place) = self.places.get(rule_id) {
            return place;
        }
        self.per_rule.push(HashMap::new());
        self.places.insert(rule_id.to_string(), self.per_rule.len() - 1);
        self.per_rule.len() - 1
    }

    /// The open violations of `rule_id`, by subject (`None` when it never had any).
    pub fn of_rule(&self, rule_id: &str) -> Option<&HashMap<String, OpenEntry>> {
        self.per_rule.get(*self.places.get(rule_id)?)
    }

    /// The open violation of `rule_id` by `subject`.
    pub fn get(&self, rule_id: &str, subject: &str) -> Option<&OpenEntry> {
        self.of_rule(rule_id)?.get(subject)
    }

    /// Records an opened (or updated) violation.
    pub fn insert(&mut self, rule_id: &str, subject: &str, entry: OpenEntry) {
        let place = self.place(rule_id);
        let open = &mut self.per_rule[place];
        match open.get_mut(subject) {
            Some(existing) => *existing = entry,
            None => {
                open.insert(subject.to_string(), entry);
                self.len += 1;
            }
        }
    }

    /// Records a resolved violation.
    pub fn remove(&mut self, rule_id: &str, subject: &str) {
        let place = self.places.get(rule_id).copied();
        if let Some(open) = place.and_then(|place| self.per_rule.get_mut(place)) {
            if open.remove(subject).is_some() {
                self.len -= 1;
            }
        }
    }

    /// How many violations are open.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn open(rule_id: &str, subject: &str, first_seen: i64, last_seen: i64, event_uid: &str) -> OpenViolation {
        OpenViolation {
            rule_id: rule_id.into(),
            subject: subject.into(),
            first_seen,
            last_seen,
            event_uid: event_uid.into(),
        }
    }

    /// The state table's bytes stay exactly what serde_json wrote before (and what restore
    /// reads), escapes and extreme integers included.
    #[test]
    fn to_json_is_serde_jsons_bytes() {
        for v in [
            open("r", "alice", 0, 0, "e"),
            open("", "", i64::MIN, i64::MAX, ""),
            open("r\"1", "a\\b\n\tc\u{1}\u{1f}\u{7f}", -1, 17, "é/ü\u{2028}😀"),
        ] {
            assert_eq!(v.to_json(), serde_json::to_vec(&v).unwrap(), "{v:?}");
        }
    }

    proptest! {
        #[test]
        fn to_json_matches_serde_json(rule in ".*", subject in ".*", uid in ".*", first: i64, last: i64) {
            let v = open(&rule, &subject, first, last, &uid);
            prop_assert_eq!(v.to_json(), serde_json::to_vec(&v).unwrap());
        }
    }

    /// Rule ids that share prefixes, lengths or their last bytes still find their own entries.
    #[test]
    fn index_keeps_rules_apart_under_the_rule_id_hasher() {
        let ids = ["", "a", "a\0", "abcdefgh", "abcdefgh\0", "abcdefgi", "abcdefghabcdefgh", "bench-001", "bench-010"];
        let mut index = OpenIndex::default();
        for (n, id) in ids.iter().enumerate() {
            index.insert(id, "s", OpenEntry { key: format!("k{n}"), first_seen: n as i64 });
        }
        assert_eq!(index.len(), ids.len());
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(index.get(id, "s").map(|e| e.key.as_str()), Some(format!("k{n}").as_str()));
        }
        index.remove("a", "s");
        assert!(index.get("a", "s").is_none());
        assert!(index.get("a\0", "s").is_some());
        assert_eq!(index.len(), ids.len() - 1);
    }
}
