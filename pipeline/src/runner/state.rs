//! The state an operator sees while it processes a batch: committed state from the store with
//! the batch's own changes on top. The changes are committed with the batch's input offsets.

use std::collections::BTreeMap;

use weir_schemas::component::{ComponentError, State};

use crate::store::Store;

/// Committed state plus uncommitted changes, namespaced by operator.
pub struct StateOverlay<'a> {
    store: &'a Store,
    namespace: &'a str,
    /// (namespaced table, key) → new value or deletion.
    pub changes: BTreeMap<(String, Vec<u8>), Option<Vec<u8>>>,
}

impl<'a> StateOverlay<'a> {
    /// An overlay with no changes yet.
    pub fn new(store: &'a Store, namespace: &'a str) -> Self {
        StateOverlay { store, namespace, changes: BTreeMap::new() }
    }

    fn table(&self, table: &str) -> String {
        format!("{}/{table}", self.namespace)
    }
}

impl State for StateOverlay<'_> {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, ComponentError> {
        let table = self.table(table);
        if let Some(change) = self.changes.get(&(table.clone(), key.to_vec())) {
            return Ok(change.clone());
        }
        self.store.state(&table, key).map_err(|e| ComponentError::retryable(e.to_string()))
    }

    fn put(&mut self, table: &str, key: &[u8], value: Vec<u8>) {
        self.changes.insert((self.table(table), key.to_vec()), Some(value));
    }

    fn delete(&mut self, table: &str, key: &[u8]) {
        self.changes.insert((self.table(table), key.to_vec()), None);
    }

    fn scan(&self, table: &str, each: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), ComponentError> {
        let table = self.table(table);
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        self.store
            .scan_state(&table, &mut |k, v| {
                merged.insert(k.to_vec(), v.to_vec());
            })
            .map_err(|e| ComponentError::retryable(e.to_string()))?;
        for ((t, key), change) in self.changes.range((table.clone(), Vec::new())..) {
            if *t != table {
                break;
            }
            match change {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        for (key, value) in &merged {
            each(key, value);
        }
        Ok(())
    }
}
