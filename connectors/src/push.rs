//! Receiving pushed events (Okta Event Hooks, EventBridge API destinations) on Weir's HTTP
//! server, durably: a delivery is answered 2xx only once its events are on the log.
//!
//! The HTTP handler of a push source parses a delivery, hands its events to a [`PushQueue`] and
//! waits; the source's [`PushReceiver`] gathers queued deliveries into a batch; when the runner
//! says the batch is durable, every delivery in it is acknowledged and its handler answers 200.
//! A delivery not durable within the sender's patience is answered 503 (the sender retries), and
//! so is every delivery still waiting when Weir stops: the sender keeps ownership until the log
//! has the events. Senders deliver at least once, so the receiver remembers recent event ids (in
//! its cursor, across restarts) and drops repeats.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use weir_schemas::component::{ComponentError, Rejected, SourcePoll};

use crate::batch::RawBatch;
use crate::cursor::{load_cursor, save_cursor, RecentIds};

/// One event of a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedEvent {
    /// The vendor's event id (the dedupe key).
    pub id: String,
    /// Event time, ms since the Unix epoch, when known.
    pub time_ms: Option<i64>,
    /// The event's bytes, exactly as received.
    pub payload: Vec<u8>,
}

/// A delivery waiting to be durable.
struct Delivery {
    events: Vec<PushedEvent>,
    rejected: Vec<Rejected>,
    durable: oneshot::Sender<()>,
}

/// Why a delivery was not acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The pipeline is not reading deliveries (stopping, or too far behind).
    #[error("the pipeline is not accepting deliveries now")]
    Unavailable,
    /// The events were queued but are not durable yet; the sender should retry (repeats are
    /// dropped).
    #[error("the events are not durable yet")]
    NotDurableYet,
}

/// The handler side: where an HTTP handler hands deliveries over. Cheap to clone.
#[derive(Clone)]
pub struct PushQueue {
    tx: mpsc::Sender<Delivery>,
}

impl PushQueue {
    /// Queues a delivery and waits, at most `patience` in all, until it is durable.
    pub async fn deliver(
        &self,
        events: Vec<PushedEvent>,
        rejected: Vec<Rejected>,
        patience: Duration,
    ) -> Result<(), PushError> {
        let (durable, is_durable) = oneshot::channel();
        let delivery = Delivery { events, rejected, durable };
        // One deadline for queueing and durability: the sender's own timeout is short (Okta 3 s).
        let deadline = tokio::time::Instant::now() + patience;
        match tokio::time::timeout_at(deadline, self.tx.send(delivery)).await {
            Ok(Ok(())) => {}
            _ => return Err(PushError::Unavailable),
        }
        match tokio::time::timeout_at(deadline, is_durable).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(PushError::Unavailable),
            Err(_) => Err(PushError::NotDurableYet),
        }
    }
}

/// The source side: turns queued deliveries into batches and acknowledges them once durable.
pub struct PushReceiver {
    source: String,
    vendor: String,
    rx: mpsc::Receiver<Delivery>,
    /// Deliveries in the last batch, acknowledged when it is committed.
    in_flight: Vec<oneshot::Sender<()>>,
    /// Ids of recent events, to drop repeated deliveries.
    seen: RecentIds,
    /// Deliveries per batch, at most.
    max_deliveries: usize,
}

/// How many recent event ids a receiver remembers.
const SEEN_IDS: usize = 10_000;

/// How long a poll waits for a first delivery before reporting idle.
const IDLE_WAIT: Duration = Duration::from_millis(200);

impl PushReceiver {
    /// A queue for the handler and a receiver for source `source` of `vendor` events.
    pub fn channel(source: &str, vendor: &str) -> (PushQueue, PushReceiver) {
        let (tx, rx) = mpsc::channel(256);
        let receiver = PushReceiver {
            source: source.to_string(),
            vendor: vendor.to_string(),
            rx,
            in_flight: Vec::new(),
            seen: RecentIds::new(SEEN_IDS),
            max_deliveries: 64,
        };
        (PushQueue { tx }, receiver)
    }

    /// Resumes from the committed cursor (the recent ids).
    pub fn open(&mut self, committed: Option<String>) -> Result<(), ComponentError> {
        if let Some(seen) = load_cursor::<RecentIds>(&self.source, committed)? {
            self.seen = seen.with_capacity(SEEN_IDS);
        }
        Ok(())
    }

    /// The next batch of deliveries, or idle when none arrived for a moment.
    pub async fn poll(&mut self) -> SourcePoll {
        let first = match tokio::time::timeout(IDLE_WAIT, self.rx.recv()).await {
            Ok(Some(delivery)) => delivery,
            // Closed (no handler left) or nothing yet.
            Ok(None) | Err(_) => return SourcePoll::Idle(Duration::ZERO),
        };
        let mut deliveries = vec![first];
        while deliveries.len() < self.max_deliveries {
            match self.rx.try_recv() {
                Ok(delivery) => deliveries.push(delivery),
                Err(_) => break,
            }
        }
        let mut batch = RawBatch::new(&self.source, &self.vendor);
        for delivery in deliveries {
            for event in delivery.events {
                if self.seen.insert(&event.id) {
                    batch.event(&event.id, event.time_ms, &event.payload);
                } else {
                    tracing::debug!(source = %self.source, id = %event.id, "dropped a repeated delivery of an event");
                }
            }
            for rejected in delivery.rejected {
                batch.reject(rejected.reason, &rejected.original);
            }
            self.in_flight.push(delivery.durable);
        }
        SourcePoll::Batch(batch.finish(save_cursor(&self.seen)))
    }

    /// The last batch is durable: acknowledge its deliveries.
    pub fn committed(&mut self) {
        for durable in self.in_flight.drain(..) {
            // The handler may have given up waiting; the events are durable all the same.
            let _ = durable.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> PushedEvent {
        PushedEvent { id: id.into(), time_ms: Some(1), payload: format!("{{\"id\":\"{id}\"}}").into_bytes() }
    }

    #[tokio::test]
    async fn a_delivery_is_acknowledged_only_once_committed_and_repeats_are_dropped() {
        let (queue, mut receiver) = PushReceiver::channel("hook", "okta");
        receiver.open(None).unwrap();
        let q = queue.clone();
        let first =
            tokio::spawn(async move { q.deliver(vec![event("a"), event("b")], vec![], Duration::from_secs(5)).await });
        let SourcePoll::Batch(batch) = receiver.poll().await else { panic!("a batch") };
        assert_eq!(batch.records.len(), 2);
        assert!(!first.is_finished(), "not acknowledged before the commit");
        receiver.committed();
        assert_eq!(first.await.unwrap(), Ok(()));

        // The sender retries (its 200 was lost): the repeat is acknowledged but not appended.
        let q = queue.clone();
        let again =
            tokio::spawn(async move { q.deliver(vec![event("b"), event("c")], vec![], Duration::from_secs(5)).await });
        let SourcePoll::Batch(batch) = receiver.poll().await else { panic!("a batch") };
        assert_eq!(batch.records.len(), 1, "only c is new");
        // After a restart from the committed cursor, b and c are still known.
        let cursor = batch.cursor.clone();
        receiver.committed();
        assert_eq!(again.await.unwrap(), Ok(()));
        let (queue, mut restarted) = PushReceiver::channel("hook", "okta");
        restarted.open(cursor).unwrap();
        let retry = tokio::spawn(async move { queue.deliver(vec![event("c")], vec![], Duration::from_secs(5)).await });
        let SourcePoll::Batch(batch) = restarted.poll().await else { panic!("a batch") };
        assert!(batch.records.is_empty());
        restarted.committed();
        assert_eq!(retry.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn a_delivery_not_durable_in_time_or_dropped_at_shutdown_is_not_acknowledged() {
        let (queue, mut receiver) = PushReceiver::channel("hook", "okta");
        let q = queue.clone();
        let slow = tokio::spawn(async move { q.deliver(vec![event("a")], vec![], Duration::from_millis(50)).await });
        let SourcePoll::Batch(_) = receiver.poll().await else { panic!("a batch") };
        assert_eq!(slow.await.unwrap(), Err(PushError::NotDurableYet));
        let late = tokio::spawn(async move { queue.deliver(vec![event("b")], vec![], Duration::from_secs(5)).await });
        let SourcePoll::Batch(_) = receiver.poll().await else { panic!("a batch") };
        drop(receiver);
        assert_eq!(late.await.unwrap(), Err(PushError::Unavailable));
    }

    #[tokio::test]
    async fn no_delivery_is_idle() {
        let (_queue, mut receiver) = PushReceiver::channel("hook", "okta");
        assert!(matches!(receiver.poll().await, SourcePoll::Idle(_)));
    }
}
