//! Cursors: what a source persists to resume. The runner stores them as text once the batch
//! before them is durable; API sources keep a small JSON object there, read back with
//! [`load_cursor`] and written with [`save_cursor`].

use std::collections::{HashSet, VecDeque};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use weir_schemas::component::ComponentError;

/// The committed cursor of source `source`, decoded; `None` on first start.
pub fn load_cursor<T: DeserializeOwned>(source: &str, committed: Option<String>) -> Result<Option<T>, ComponentError> {
    let Some(text) = committed else { return Ok(None) };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        ComponentError::fatal(format!(
            "source {source}: the committed cursor is not this connector's ({e}); was the source's type changed? \
             Reset it with `weir state reset-cursor {source}` to start again"
        ))
    })
}

/// A cursor as the text the runner persists.
pub fn save_cursor<T: Serialize>(cursor: &T) -> String {
    serde_json::to_string(cursor).expect("cursors serialize")
}

/// The ids of the most recent events, oldest first, at most `capacity` of them: how a source
/// recognises an event it already delivered when an API hands it out again (Okta's inclusive
/// `since`, overlapping time windows, at-least-once pushes). Persisted in the cursor, so it holds
/// across restarts; bounded, so the cursor stays small.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecentIds {
    capacity: usize,
    order: VecDeque<String>,
    set: HashSet<String>,
}

/// How many ids [`RecentIds::default`] remembers.
pub const DEFAULT_RECENT_IDS: usize = 10_000;

impl Default for RecentIds {
    fn default() -> Self {
        RecentIds::new(DEFAULT_RECENT_IDS)
    }
}

impl RecentIds {
    /// An empty set remembering up to `capacity` ids.
    pub fn new(capacity: usize) -> Self {
        RecentIds { capacity: capacity.max(1), order: VecDeque::new(), set: HashSet::new() }
    }

    /// The same ids, remembering up to `capacity` of them (the oldest are forgotten first).
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self.trim();
        self
    }

    /// Whether `id` was seen.
    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    /// Remembers `id`; false when it was already there (a duplicate). Beyond the capacity the
    /// oldest id is forgotten.
    pub fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        self.set.insert(id.to_string());
        self.order.push_back(id.to_string());
        self.trim();
        true
    }

    /// How many ids it holds.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Forgets every id.
    pub fn clear(&mut self) {
        self.order.clear();
        self.set.clear();
    }

    fn trim(&mut self) {
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

impl Serialize for RecentIds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.order.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RecentIds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let ids = Vec::<String>::deserialize(deserializer)?;
        let mut recent = RecentIds::new(ids.len().max(DEFAULT_RECENT_IDS));
        for id in &ids {
            recent.insert(id);
        }
        Ok(recent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_forget_the_oldest_and_survive_a_round_trip() {
        let mut ids = RecentIds::new(3);
        assert!(ids.insert("a") && ids.insert("b") && ids.insert("c"));
        assert!(!ids.insert("b"), "a duplicate");
        assert!(ids.insert("d"));
        assert!(!ids.contains("a"), "the oldest is forgotten");
        let text = serde_json::to_string(&ids).unwrap();
        assert_eq!(text, r#"["b","c","d"]"#);
        let back: RecentIds = serde_json::from_str(&text).unwrap();
        let mut back = back.with_capacity(3);
        assert!(!back.insert("c"));
        assert!(back.insert("e"));
        assert!(!back.contains("b"));
    }

    #[test]
    fn a_foreign_cursor_is_a_clear_fatal_error() {
        #[derive(Debug, Deserialize)]
        struct Cursor {
            #[allow(dead_code)]
            next: String,
        }
        let err = load_cursor::<Cursor>("okta", Some("1234".into())).unwrap_err();
        assert!(
            err.message.starts_with("source okta: the committed cursor is not this connector's"),
            "{}",
            err.message
        );
        assert_eq!(load_cursor::<Cursor>("okta", None).unwrap().map(|c| c.next), None);
    }
}
