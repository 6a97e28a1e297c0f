//! [`RecentMap`]: what a sink remembers in memory about recent keys (Jira's issue ids by label,
//! Slack's thread `ts` by violation key), bounded so a long run cannot grow it without end.

use std::collections::{HashMap, VecDeque};

/// A map of at most `capacity` entries; inserting past it forgets the oldest key first.
#[derive(Clone, Debug)]
pub struct RecentMap {
    capacity: usize,
    values: HashMap<String, String>,
    /// Keys in insertion order (each once).
    order: VecDeque<String>,
}

impl RecentMap {
    /// An empty map keeping up to `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Self {
        RecentMap { capacity: capacity.max(1), values: HashMap::new(), order: VecDeque::new() }
    }

    /// The value of `key`, if remembered.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Remembers `value` for `key` (a known key keeps its place in the order).
    pub fn insert(&mut self, key: &str, value: String) {
        if self.values.insert(key.to_string(), value).is_none() {
            self.order.push_back(key.to_string());
        }
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.values.remove(&oldest);
            }
        }
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &str) {
        if self.values.remove(key).is_some() {
            self.order.retain(|k| k != key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_key_is_forgotten_first_and_removed_keys_free_their_place() {
        let mut map = RecentMap::new(2);
        map.insert("a", "1".into());
        map.insert("b", "2".into());
        map.insert("a", "3".into());
        assert_eq!(map.get("a"), Some("3"));
        map.insert("c", "4".into());
        assert_eq!((map.get("a"), map.get("b"), map.get("c")), (None, Some("2"), Some("4")));
        map.remove("b");
        map.insert("d", "5".into());
        assert_eq!((map.get("c"), map.get("d")), (Some("4"), Some("5")));
    }
}
