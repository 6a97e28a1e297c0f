//! Exactly-once appends across crashes.
//!
//! A stage appends its outputs, then commits (offsets, state, cursor, and the log's end after
//! its appends: the *produced mark*). A crash between the two leaves outputs on the log that no
//! commit accounts for; after the restart the stage processes the same input again and, being
//! deterministic, produces the same records with the same `weir-id`s. The [`ReplayGuard`] holds
//! the ids found past each produced mark and drops those records instead of appending them
//! twice, so the output topics hold every record exactly once.
//!
//! Records without a `weir-id`, or a replay that differs from what was appended before the
//! crash (a non-deterministic component), are appended as they come, with a warning: nothing is
//! ever dropped that was not already on the log.
//!
//! With several workers, other workers' stages append to the same output partitions, between
//! and after this stage's records: the ids past the mark are then matched as a set, not in
//! order (ids derive from the input, and workers read disjoint inputs, so they never collide).
//!
//! A stage marks only the partitions it appended to, so an output partition it never wrote has
//! no mark, and a missing mark of a stage that committed input reads as "everything is
//! committed". The first commit of a run therefore also marks, at the log's end, every output
//! partition without a mark and with nothing past it to match ([`ReplayGuard::mark_unmarked`]):
//! else a crash before the commit of the first records ever appended there (an aggregate's first
//! firing, or the end of input of `weir run --drain`) would append them again after a restart.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use weir_schemas::Record;

use super::stages::ID_HEADER;
use super::StageContext;
use crate::log::LogError;
use crate::store::produced_key;

/// Above this many uncommitted records in one partition, the guard gives up matching (the store
/// was probably reset while the log was kept) and appends as usual.
const MAX_PENDING: u64 = 1_000_000;

/// The ids of records already on the log past a stage's produced marks, per output partition.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    pending: BTreeMap<(String, u32), VecDeque<Vec<u8>>>,
    /// Several workers write the output topics: the ids, with how often each occurs, matched as
    /// a set (see the module) instead of `pending`.
    unordered: Option<BTreeMap<(String, u32), IdCounts>>,
    /// Output partitions with no produced mark in the store and nothing past the assumed one:
    /// the next commit marks them (see the module).
    unmarked: BTreeSet<(String, u32)>,
}

/// `weir-id` → how many records past the mark carry it.
type IdCounts = HashMap<Vec<u8>, usize>;

impl ReplayGuard {
    /// Reads what lies past the produced marks of the stage's output topics.
    pub async fn load(cx: &StageContext, topics: &[String]) -> Result<ReplayGuard, String> {
        let mut guard = ReplayGuard::default();
        if cx.options.worker.count() > 1 {
            guard.unordered = Some(BTreeMap::new());
        }
        let has_committed_input = cx.inputs.iter().any(|(topic, _)| {
            (0..cx.partitions(topic)).any(|p| matches!(cx.store.offset(&cx.name, topic, p), Ok(Some(_))))
        });
        let has_cursor = matches!(cx.store.cursor(&cx.name), Ok(Some(_)));
        for topic in topics {
            for partition in 0..cx.partitions(topic) {
                let offsets = cx.log.offsets(topic, partition).await.map_err(|e| e.to_string())?;
                let end = offsets.end;
                let mark = cx.store.offset(&produced_key(&cx.name), topic, partition).map_err(|e| e.to_string())?;
                let marked = mark.is_some();
                // No mark: either nothing was ever committed (everything on the topic is an
                // uncommitted replay), or the stage committed before marks existed.
                let mark = mark.unwrap_or(if has_committed_input || has_cursor { end } else { 0 });
                // What retention deleted cannot be compared, and is no longer there to duplicate.
                let mark = mark.max(offsets.start);
                if mark >= end {
                    if !marked {
                        guard.unmarked.insert((topic.clone(), partition));
                    }
                    continue;
                }
                if end - mark > MAX_PENDING {
                    tracing::warn!(stage = %cx.name, topic = %topic, partition, "too many uncommitted outputs to match; appending replays as they come");
                    continue;
                }
                let ids = read_ids(cx, topic, partition, mark, end).await.map_err(|e| e.to_string())?;
                tracing::info!(stage = %cx.name, topic = %topic, partition, records = ids.len(), "outputs of an uncommitted batch are on the log; their replay will not be appended again");
                match &mut guard.unordered {
                    Some(sets) => {
                        let set = sets.entry((topic.clone(), partition)).or_default();
                        for id in ids {
                            *set.entry(id).or_default() += 1;
                        }
                    }
                    None => {
                        guard.pending.insert((topic.clone(), partition), ids);
                    }
                }
            }
        }
        Ok(guard)
    }

    /// Adds to a commit's produced marks the log's end of every output partition that has no
    /// mark yet and that this commit does not mark (see the module); once that commit is
    /// through, call [`ReplayGuard::marked`].
    pub async fn mark_unmarked(
        &self,
        cx: &StageContext,
        produced: &mut BTreeMap<(String, u32), u64>,
    ) -> Result<(), LogError> {
        for (topic, partition) in &self.unmarked {
            if let std::collections::btree_map::Entry::Vacant(mark) = produced.entry((topic.clone(), *partition)) {
                mark.insert(cx.log.offsets(topic, *partition).await?.end);
            }
        }
        Ok(())
    }

    /// The marks added by [`ReplayGuard::mark_unmarked`] are committed.
    pub fn marked(&mut self) {
        self.unmarked.clear();
    }

    /// Drops the records that are already on the log (in order, by `weir-id`).
    pub fn filter(&mut self, cx: &StageContext, topic: &str, partition: u32, records: Vec<Record>) -> Vec<Record> {
        if let Some(sets) = &mut self.unordered {
            let Some(set) = sets.get_mut(&(topic.to_string(), partition)) else { return records };
            let mut kept = Vec::with_capacity(records.len());
            for record in records {
                let seen = record.header(ID_HEADER).and_then(|id| set.get_mut(id));
                match seen {
                    Some(count) if *count > 0 => *count -= 1,
                    _ => kept.push(record),
                }
            }
            return kept;
        }
        let Some(pending) = self.pending.get_mut(&(topic.to_string(), partition)) else { return records };
        let mut kept = Vec::with_capacity(records.len());
        for record in records {
            match (pending.front(), record.header(ID_HEADER)) {
                (Some(expected), Some(id)) if expected.as_slice() == id => {
                    pending.pop_front();
                }
                (Some(_), _) => {
                    tracing::warn!(
                        stage = %cx.name, topic = %topic, partition,
                        "the replay after a crash differs from the outputs appended before it; appending it as is"
                    );
                    pending.clear();
                    kept.push(record);
                }
                (None, _) => kept.push(record),
            }
        }
        if pending.is_empty() {
            self.pending.remove(&(topic.to_string(), partition));
        }
        kept
    }
}

async fn read_ids(
    cx: &StageContext,
    topic: &str,
    partition: u32,
    from: u64,
    end: u64,
) -> Result<VecDeque<Vec<u8>>, LogError> {
    let mut ids = VecDeque::new();
    let mut next = from;
    while next < end {
        let batch = cx.log.read(topic, partition, next, 10_000).await?;
        if batch.records.is_empty() {
            break;
        }
        for record in &batch.records {
            // A record without an id can never match; an empty id keeps the order check honest.
            ids.push_back(record.record.header(ID_HEADER).map(<[u8]>::to_vec).unwrap_or_default());
        }
        next = batch.next_offset;
    }
    Ok(ids)
}
