//! Violations: stable keys, the `open` state table, and the in-memory index rebuilt from it.
//!
//! A violation is one rule broken by one subject. Its key is a hash of the rule id and the
//! subject only, so it is the same across restarts, replays and policy-set versions, and sinks
//! can update one ticket or page under it. While it is open, the state table [`OPEN_TABLE`] holds
//! it under its key; the runner commits that table with the input offsets, so a restart resumes
//! with the same open violations, and a later event can still resolve them.

use std::collections::HashMap;

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
        // Serializing a struct of strings and integers cannot fail.
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        state.put(OPEN_TABLE, key.as_bytes(), bytes);
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
    per_rule: HashMap<String, HashMap<String, OpenEntry>>,
    len: usize,
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

    /// Whether `rule_id` has any open violation.
    pub fn rule_has_open(&self, rule_id: &str) -> bool {
        self.per_rule.get(rule_id).is_some_and(|open| !open.is_empty())
    }

    /// The open violations of `rule_id`, by subject (`None` when it never had any).
    pub fn of_rule(&self, rule_id: &str) -> Option<&HashMap<String, OpenEntry>> {
        self.per_rule.get(rule_id)
    }

    /// The open violation of `rule_id` by `subject`.
    pub fn get(&self, rule_id: &str, subject: &str) -> Option<&OpenEntry> {
        self.per_rule.get(rule_id)?.get(subject)
    }

    /// Records an opened (or updated) violation.
    pub fn insert(&mut self, rule_id: &str, subject: &str, entry: OpenEntry) {
        let open = match self.per_rule.get_mut(rule_id) {
            Some(open) => open,
            None => self.per_rule.entry(rule_id.to_string()).or_default(),
        };
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
        if let Some(open) = self.per_rule.get_mut(rule_id) {
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
