//! Concurrent delivery for sinks with `request.concurrency` > 1: a batch is split into lanes,
//! one per handle on the destination (the sink and its forks), delivered at the same time.
//!
//! Records with a key go to the lane of their key's hash, so one key's records (a violation's
//! OPEN, UPDATED, RESOLVED) are always delivered in order by one handle; records without a key
//! are spread in contiguous runs. The result reads like one [`Sink::deliver`] over the whole
//! batch, so the runner's retry, dead-letter and commit logic is the same for both.

use futures_util::future::join_all;
use weir_schemas::component::{ComponentError, ErrorKind, RecordFailure, Sink};
use weir_schemas::StoredRecord;

use crate::log::partition_for_key;

/// The handles a sink delivers through: the sink itself, then its forks.
pub(crate) struct SinkHandles(Vec<Box<dyn Sink>>);

impl SinkHandles {
    /// The sink and as many forks as its concurrency asks for (fewer if it cannot fork).
    pub(crate) fn new(sink: Box<dyn Sink>) -> Self {
        let wanted = sink.concurrency().max(1);
        let mut handles = vec![sink];
        while handles.len() < wanted {
            match handles[0].fork() {
                Some(fork) => handles.push(fork),
                None => break,
            }
        }
        SinkHandles(handles)
    }

    /// Delivers `batch`; failures index into `batch`. Err only when the whole batch failed
    /// alike: fatal in any lane, or retryable in every lane.
    pub(crate) async fn deliver(&mut self, batch: &[StoredRecord]) -> Result<Vec<RecordFailure>, ComponentError> {
        if self.0.len() == 1 {
            return self.0[0].deliver(batch).await;
        }
        let lanes = lanes(batch, self.0.len());
        let attempts: Vec<Vec<StoredRecord>> =
            lanes.iter().map(|lane| lane.iter().map(|&i| batch[i].clone()).collect()).collect();
        let results = join_all(
            self.0
                .iter_mut()
                .zip(&attempts)
                .filter(|(_, attempt)| !attempt.is_empty())
                .map(|(sink, attempt)| async move { sink.deliver(attempt).await }),
        )
        .await;
        // The lanes delivered, in the order of `results`.
        let used: Vec<&Vec<usize>> = lanes.iter().filter(|lane| !lane.is_empty()).collect();
        let mut failures = Vec::new();
        let mut retryable_errors = Vec::new();
        for (lane, result) in used.iter().zip(results) {
            match result {
                Ok(lane_failures) => {
                    for failure in lane_failures {
                        let Some(&index) = lane.get(failure.index) else {
                            return Err(ComponentError::fatal(format!(
                                "the sink reported a failure for record {} of a batch of {}",
                                failure.index,
                                lane.len()
                            )));
                        };
                        failures.push(RecordFailure { index, ..failure });
                    }
                }
                Err(error) if error.kind == ErrorKind::Retryable => {
                    failures.extend(lane.iter().map(|&index| RecordFailure {
                        index,
                        retryable: true,
                        reason: error.message.clone(),
                    }));
                    retryable_errors.push(error);
                }
                Err(error) => return Err(error),
            }
        }
        if retryable_errors.len() == used.len() {
            // Nothing got through: let the runner back off as after any failed delivery.
            return Err(retryable_errors.swap_remove(0));
        }
        failures.sort_by_key(|failure| failure.index);
        Ok(failures)
    }
}

/// Splits the indexes of `batch` into `count` lanes: keyed records by their key's hash,
/// unkeyed ones in contiguous runs. Each lane keeps batch order.
fn lanes(batch: &[StoredRecord], count: usize) -> Vec<Vec<usize>> {
    let mut lanes = vec![Vec::new(); count];
    let unkeyed = batch.iter().filter(|r| r.record.key.is_none()).count();
    let mut seen_unkeyed = 0;
    for (index, record) in batch.iter().enumerate() {
        let lane = match record.record.key.as_deref() {
            Some(key) => partition_for_key(Some(key), count as u32) as usize,
            None => {
                seen_unkeyed += 1;
                (seen_unkeyed - 1) * count / unkeyed
            }
        };
        lanes[lane].push(index);
    }
    lanes
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use async_trait::async_trait;
    use weir_schemas::Record;

    use super::*;

    /// (handle, value) of every record delivered, in delivery order.
    type Deliveries = Arc<Mutex<Vec<(usize, Vec<u8>)>>>;

    /// A destination that records what each handle delivered and how many deliveries overlap.
    #[derive(Clone)]
    struct Recorder {
        handle: usize,
        next_handle: Arc<AtomicUsize>,
        concurrency: usize,
        delivered: Deliveries,
        in_flight: Arc<AtomicUsize>,
        most_in_flight: Arc<AtomicUsize>,
        /// Values this destination refuses (permanently), or fails retryably for.
        refuse: Option<Vec<u8>>,
        fail_handle: Option<usize>,
    }

    #[async_trait]
    impl Sink for Recorder {
        async fn deliver(&mut self, batch: &[StoredRecord]) -> Result<Vec<RecordFailure>, ComponentError> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if self.fail_handle == Some(self.handle) {
                return Err(ComponentError::retryable("lane down"));
            }
            let mut failures = Vec::new();
            for (index, record) in batch.iter().enumerate() {
                if self.refuse.as_deref() == Some(&record.record.value[..]) {
                    failures.push(RecordFailure { index, retryable: false, reason: "refused".into() });
                } else {
                    self.delivered.lock().unwrap().push((self.handle, record.record.value.clone()));
                }
            }
            Ok(failures)
        }

        fn concurrency(&self) -> usize {
            self.concurrency
        }

        fn fork(&self) -> Option<Box<dyn Sink>> {
            let handle = self.next_handle.fetch_add(1, Ordering::SeqCst);
            Some(Box::new(Recorder { handle, ..self.clone() }))
        }
    }

    fn recorder(concurrency: usize) -> Recorder {
        Recorder {
            handle: 0,
            next_handle: Arc::new(AtomicUsize::new(1)),
            concurrency,
            delivered: Arc::default(),
            in_flight: Arc::default(),
            most_in_flight: Arc::default(),
            refuse: None,
            fail_handle: None,
        }
    }

    fn batch(keys: &[Option<&str>]) -> Vec<StoredRecord> {
        keys.iter()
            .enumerate()
            .map(|(i, key)| {
                let mut record = Record::new(0, vec![i as u8]);
                if let Some(key) = key {
                    record = record.with_key(key.as_bytes());
                }
                StoredRecord { topic: "t".into(), partition: 0, offset: i as u64, record }
            })
            .collect()
    }

    #[tokio::test]
    async fn a_key_stays_on_one_handle_in_order_and_handles_overlap() {
        let sink = recorder(4);
        let (delivered, most) = (sink.delivered.clone(), sink.most_in_flight.clone());
        let mut handles = SinkHandles::new(Box::new(sink));
        assert_eq!(handles.0.len(), 4);
        let keys: Vec<Option<String>> = (0..40).map(|i| Some(format!("violation-{}", i % 8))).collect();
        let keys: Vec<Option<&str>> = keys.iter().map(|k| k.as_deref()).collect();
        let failures = handles.deliver(&batch(&keys)).await.unwrap();
        assert!(failures.is_empty());
        let delivered = delivered.lock().unwrap().clone();
        assert_eq!(delivered.len(), 40, "every record delivered once");
        for key in 0..8u8 {
            let of_key: Vec<(usize, u8)> =
                delivered.iter().filter(|(_, v)| v[0] % 8 == key).map(|(h, v)| (*h, v[0])).collect();
            assert!(of_key.windows(2).all(|w| w[0].0 == w[1].0 && w[0].1 < w[1].1), "key {key}: {of_key:?}");
        }
        assert!(most.load(Ordering::SeqCst) > 1, "deliveries overlapped");
    }

    #[tokio::test]
    async fn failures_point_at_the_whole_batch_and_one_dead_lane_does_not_fail_the_others() {
        let mut sink = recorder(2);
        sink.refuse = Some(vec![3]);
        sink.fail_handle = Some(1);
        let delivered = sink.delivered.clone();
        let mut handles = SinkHandles::new(Box::new(sink));
        let records = batch(&[None, None, None, None, None, None]);
        let failures = handles.deliver(&records).await.unwrap();
        // Unkeyed: records 0–2 on handle 0 (delivered), 3–5 on handle 1 (down: retryable).
        assert_eq!(delivered.lock().unwrap().len(), 3);
        let retry: Vec<usize> = failures.iter().filter(|f| f.retryable).map(|f| f.index).collect();
        assert_eq!(retry, vec![3, 4, 5]);
        // Back up: the refused record is dead-lettered, not retried.
        let mut sink = recorder(2);
        sink.refuse = Some(vec![4]);
        let mut handles = SinkHandles::new(Box::new(sink));
        let failures = handles.deliver(&records).await.unwrap();
        assert_eq!(failures, vec![RecordFailure { index: 4, retryable: false, reason: "refused".into() }]);
    }

    #[tokio::test]
    async fn every_lane_down_is_one_retryable_error() {
        let mut sink = recorder(2);
        sink.fail_handle = Some(0);
        let mut handles = SinkHandles::new(Box::new(sink));
        // Every record keyed to handle 0's lane or handle 1's: make both fail by failing 0 and
        // giving 1 nothing.
        let key = (0..100).map(|i| format!("k{i}")).find(|k| partition_for_key(Some(k.as_bytes()), 2) == 0).unwrap();
        let error = handles.deliver(&batch(&[Some(&key), Some(&key)])).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Retryable);
    }

    #[test]
    fn unkeyed_records_are_spread_in_runs() {
        let records = batch(&[None; 7]);
        assert_eq!(lanes(&records, 3), vec![vec![0, 1, 2], vec![3, 4], vec![5, 6]]);
    }
}
