//! The store: consumer offsets, source cursors and operator state, in one transactional
//! embedded database (redb) at `<data dir>/store.redb`.
//!
//! Everything a stage commits goes in one [`Checkpoint`], written in one transaction with
//! immediate durability: after a crash, the state on disk always matches the offsets it was
//! built from, and a source's cursor never runs ahead of what is durable on the log (the runner
//! commits the cursor only after the append returned).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// (consumer, topic, partition) → the next offset the consumer will read.
const OFFSETS: TableDefinition<(&str, &str, u32), u64> = TableDefinition::new("offsets");
/// source name → the cursor after the last durable batch.
const CURSORS: TableDefinition<&str, &str> = TableDefinition::new("cursors");
/// (state table, key) → value.
const STATE: TableDefinition<(&str, &[u8]), &[u8]> = TableDefinition::new("state");
/// name → value: facts about the store itself (the worker assignment).
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
/// The [`META`] key of the worker assignment (`I/N`) the store was built by.
const WORKER_KEY: &str = "worker";

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[error("store {}: {what}: {source}", path.display())]
pub struct StoreError {
    path: PathBuf,
    what: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// Everything one stage commits at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// The consumer (the stage's name) whose offsets these are.
    pub consumer: String,
    /// (topic, partition) → next offset to read.
    pub offsets: BTreeMap<(String, u32), u64>,
    /// (state table, key) → new value, or `None` to delete.
    pub state: BTreeMap<(String, Vec<u8>), Option<Vec<u8>>>,
    /// A source's new cursor.
    pub cursor: Option<String>,
    /// (output topic, partition) → the log's end after this stage's appends: what it has
    /// produced and committed. After a crash, records past it were produced by a batch that was
    /// not committed, and the replay of that batch must not append them again.
    pub produced: BTreeMap<(String, u32), u64>,
}

/// The store key under which a stage's produced marks are kept (beside its input offsets).
pub fn produced_key(consumer: &str) -> String {
    format!("{consumer}#produced")
}

/// The store.
pub struct Store {
    path: PathBuf,
    db: Database,
}

impl Store {
    /// Opens or creates the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let path = data_dir.join("store.redb");
        let err = |what, e: redb::Error| StoreError { path: path.clone(), what, source: Box::new(e) };
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError {
            path: path.clone(),
            what: "creating its directory",
            source: Box::new(e),
        })?;
        let db = Database::create(&path).map_err(|e| err("opening", e.into()))?;
        // Create the tables up front so that reads never meet a missing table.
        let txn = db.begin_write().map_err(|e| err("starting a transaction", e.into()))?;
        {
            txn.open_table(OFFSETS).map_err(|e| err("creating the offsets table", e.into()))?;
            txn.open_table(CURSORS).map_err(|e| err("creating the cursors table", e.into()))?;
            txn.open_table(STATE).map_err(|e| err("creating the state table", e.into()))?;
            txn.open_table(META).map_err(|e| err("creating the meta table", e.into()))?;
        }
        txn.commit().map_err(|e| err("committing", e.into()))?;
        Ok(Store { path, db })
    }

    fn error(&self, what: &'static str, e: impl Into<redb::Error>) -> StoreError {
        StoreError { path: self.path.clone(), what, source: Box::new(e.into()) }
    }

    /// Commits a checkpoint in one durable transaction.
    pub fn commit(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.error("starting a transaction", e))?;
        {
            let mut offsets = txn.open_table(OFFSETS).map_err(|e| self.error("opening offsets", e))?;
            for ((topic, partition), offset) in &checkpoint.offsets {
                offsets
                    .insert((checkpoint.consumer.as_str(), topic.as_str(), *partition), offset)
                    .map_err(|e| self.error("writing an offset", e))?;
            }
            let produced = produced_key(&checkpoint.consumer);
            for ((topic, partition), end) in &checkpoint.produced {
                offsets
                    .insert((produced.as_str(), topic.as_str(), *partition), end)
                    .map_err(|e| self.error("writing a produced mark", e))?;
            }
            let mut state = txn.open_table(STATE).map_err(|e| self.error("opening state", e))?;
            for ((table, key), value) in &checkpoint.state {
                match value {
                    Some(value) => state.insert((table.as_str(), key.as_slice()), value.as_slice()).map(|_| ()),
                    None => state.remove((table.as_str(), key.as_slice())).map(|_| ()),
                }
                .map_err(|e| self.error("writing state", e))?;
            }
            if let Some(cursor) = &checkpoint.cursor {
                let mut cursors = txn.open_table(CURSORS).map_err(|e| self.error("opening cursors", e))?;
                cursors
                    .insert(checkpoint.consumer.as_str(), cursor.as_str())
                    .map_err(|e| self.error("writing a cursor", e))?;
            }
        }
        txn.commit().map_err(|e| self.error("committing", e))
    }

    /// The committed offset of a consumer on a partition.
    pub fn offset(&self, consumer: &str, topic: &str, partition: u32) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.error("starting a read", e))?;
        let table = txn.open_table(OFFSETS).map_err(|e| self.error("opening offsets", e))?;
        let value = table.get((consumer, topic, partition)).map_err(|e| self.error("reading an offset", e))?;
        Ok(value.map(|v| v.value()))
    }

    /// Every committed offset: (consumer, topic, partition, offset).
    pub fn offsets(&self) -> Result<Vec<(String, String, u32, u64)>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.error("starting a read", e))?;
        let table = txn.open_table(OFFSETS).map_err(|e| self.error("opening offsets", e))?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| self.error("reading offsets", e))? {
            let (key, value) = entry.map_err(|e| self.error("reading offsets", e))?;
            let (consumer, topic, partition) = key.value();
            out.push((consumer.to_string(), topic.to_string(), partition, value.value()));
        }
        Ok(out)
    }

    /// The committed cursor of a source.
    pub fn cursor(&self, source: &str) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.error("starting a read", e))?;
        let table = txn.open_table(CURSORS).map_err(|e| self.error("opening cursors", e))?;
        let value = table.get(source).map_err(|e| self.error("reading a cursor", e))?;
        Ok(value.map(|v| v.value().to_string()))
    }

    /// Forgets a source's cursor, so its next run starts as on first start. True when there was
    /// one.
    pub fn reset_cursor(&self, source: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.error("starting a transaction", e))?;
        let removed = {
            let mut cursors = txn.open_table(CURSORS).map_err(|e| self.error("opening cursors", e))?;
            let removed = cursors.remove(source).map_err(|e| self.error("removing a cursor", e))?;
            removed.is_some()
        };
        txn.commit().map_err(|e| self.error("committing", e))?;
        Ok(removed)
    }

    /// A committed state value.
    pub fn state(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.error("starting a read", e))?;
        let t = txn.open_table(STATE).map_err(|e| self.error("opening state", e))?;
        let value = t.get((table, key)).map_err(|e| self.error("reading state", e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }
}

impl Store {
    /// Where the store lives (`<data dir>/store.redb`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The worker assignment (`I/N`) this store was built by: the one recorded, else `legacy`
    /// when the store already holds offsets, cursors or state (built before assignments were
    /// recorded), else `None` (a new store). Once known it is recorded, in the same transaction.
    pub fn claim_worker_assignment(&self, assignment: &str, legacy: &str) -> Result<String, StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.error("starting a transaction", e))?;
        let recorded = {
            let mut meta = txn.open_table(META).map_err(|e| self.error("opening meta", e))?;
            let recorded = meta
                .get(WORKER_KEY)
                .map_err(|e| self.error("reading the worker assignment", e))?
                .map(|v| v.value().to_string());
            let recorded = match recorded {
                Some(recorded) => recorded,
                None => {
                    let offsets = txn.open_table(OFFSETS).map_err(|e| self.error("opening offsets", e))?;
                    let cursors = txn.open_table(CURSORS).map_err(|e| self.error("opening cursors", e))?;
                    let state = txn.open_table(STATE).map_err(|e| self.error("opening state", e))?;
                    let used = offsets.first().map_err(|e| self.error("reading offsets", e))?.is_some()
                        || cursors.first().map_err(|e| self.error("reading cursors", e))?.is_some()
                        || state.first().map_err(|e| self.error("reading state", e))?.is_some();
                    let recorded = if used { legacy } else { assignment };
                    meta.insert(WORKER_KEY, recorded).map_err(|e| self.error("recording the worker assignment", e))?;
                    recorded.to_string()
                }
            };
            recorded
        };
        txn.commit().map_err(|e| self.error("committing", e))?;
        Ok(recorded)
    }

    /// Calls `each(key, value)` for every committed entry of a state table, in key order.
    pub fn scan_state(&self, table: &str, each: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.error("starting a read", e))?;
        let t = txn.open_table(STATE).map_err(|e| self.error("opening state", e))?;
        let start: (&str, &[u8]) = (table, &[]);
        for entry in t.range(start..).map_err(|e| self.error("reading state", e))? {
            let (key, value) = entry.map_err(|e| self.error("reading state", e))?;
            let (entry_table, entry_key) = key.value();
            if entry_table != table {
                break;
            }
            each(entry_key, value.value());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_assignment_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.claim_worker_assignment("1/2", "0/1").unwrap(), "1/2", "a new store takes the assignment");
        assert_eq!(store.claim_worker_assignment("0/3", "0/1").unwrap(), "1/2", "and keeps it");
        drop(store);
        assert_eq!(Store::open(dir.path()).unwrap().claim_worker_assignment("0/1", "0/1").unwrap(), "1/2");

        let used = tempfile::tempdir().unwrap();
        let store = Store::open(used.path()).unwrap();
        let mut checkpoint = Checkpoint { consumer: "enrich".into(), ..Default::default() };
        checkpoint.offsets.insert(("events".into(), 0), 1);
        store.commit(&checkpoint).unwrap();
        assert_eq!(
            store.claim_worker_assignment("1/2", "0/1").unwrap(),
            "0/1",
            "a store used before assignments were recorded was built by the sole worker"
        );
    }

    #[test]
    fn a_checkpoint_commits_offsets_state_and_cursor_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut checkpoint = Checkpoint { consumer: "enrich".into(), cursor: Some("c1".into()), ..Default::default() };
        checkpoint.offsets.insert(("events".into(), 0), 42);
        checkpoint.state.insert(("users".into(), b"alice".to_vec()), Some(b"v1".to_vec()));
        store.commit(&checkpoint).unwrap();
        drop(store);

        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.offset("enrich", "events", 0).unwrap(), Some(42));
        assert_eq!(store.offset("enrich", "events", 1).unwrap(), None);
        assert_eq!(store.state("users", b"alice").unwrap(), Some(b"v1".to_vec()));
        assert_eq!(store.cursor("enrich").unwrap(), Some("c1".into()));

        let mut delete = Checkpoint { consumer: "enrich".into(), ..Default::default() };
        delete.state.insert(("users".into(), b"alice".to_vec()), None);
        store.commit(&delete).unwrap();
        assert_eq!(store.state("users", b"alice").unwrap(), None);
        assert_eq!(
            store.cursor("enrich").unwrap(),
            Some("c1".into()),
            "a checkpoint without a cursor keeps the old one"
        );
    }
}
