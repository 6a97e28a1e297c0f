//! The offset guard: makes a consumer stream that may skip or repeat records read every offset
//! exactly once, in order.
//!
//! Offsets within a Fluvio partition are dense, so the guard knows exactly which offset must come
//! next. The 0.50 client can end a fetch with a cut-off batch and resume after it (a backlog of
//! 100,000 records came back as 81,165), and a re-opened stream may start inside a batch already
//! seen. So every item is checked against the expected offset:
//!
//! - below it: a duplicate, dropped;
//! - equal: handed out, and the expected offset moves on by one;
//! - above it: a gap; the stream is dropped and re-opened at the expected offset.
//!
//! The guard is written over any stream of `(offset, item)` results and any way to open one at an
//! offset, so its tests need no cluster.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::stream::Stream;
use futures_util::StreamExt;

/// A stream of `(offset, item)` results, as the guard consumes it.
pub type OffsetStream<T, E> = Pin<Box<dyn Stream<Item = Result<(u64, T), E>> + Send>>;

/// How many times in a row a stream may be re-opened at the same offset and still start past it
/// before the guard gives up: past that the records are not there (deleted, or never written).
pub const MAX_REOPENS_AT_ONE_OFFSET: u32 = 5;

/// A gap that re-opening did not close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PersistentGap {
    /// The offset that should have come next.
    pub expected: u64,
    /// The offset the re-opened stream gave instead.
    pub got: u64,
}

/// What the guard has corrected so far, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuardStats {
    /// Gaps found (each cost a re-open).
    pub gaps: u64,
    /// Records dropped because their offset was already handed out.
    pub duplicates: u64,
    /// Streams opened, the first included.
    pub opens: u64,
    /// Streams re-opened because they stalled short of records the partition holds.
    pub stalls: u64,
}

/// Hands out the records of one partition from `expected` on, each exactly once, in order.
pub struct OffsetGuard<T, E> {
    stream: Option<OffsetStream<T, E>>,
    expected: u64,
    reopens_here: u32,
    stats: GuardStats,
}

impl<T, E> OffsetGuard<T, E>
where
    E: From<PersistentGap>,
{
    /// A guard whose first record will be `from`; it opens its stream on the first call.
    pub fn new(from: u64) -> Self {
        OffsetGuard { stream: None, expected: from, reopens_here: 0, stats: GuardStats::default() }
    }

    /// The offset the next record handed out will have.
    pub fn expected(&self) -> u64 {
        self.expected
    }

    /// What was corrected so far.
    pub fn stats(&self) -> GuardStats {
        self.stats
    }

    /// Drops the stream, so the next call re-opens it at the expected offset: for a stream that
    /// stalls although the partition is known to hold that offset (a cut-off batch at the end of
    /// a fetch leaves no later record to show the gap).
    pub fn reopen(&mut self) {
        if self.stream.take().is_some() {
            self.stats.stalls += 1;
        }
    }

    /// The next record, or `None` when none arrived within `idle` (or the stream ended; the next
    /// call re-opens it). `open(offset)` opens a stream at an offset. An error of the stream or
    /// of `open` is returned, and the next call re-opens at the expected offset.
    pub async fn next<F, Fut>(&mut self, open: &mut F, idle: Duration) -> Result<Option<(u64, T)>, E>
    where
        F: FnMut(u64) -> Fut,
        Fut: Future<Output = Result<OffsetStream<T, E>, E>>,
    {
        loop {
            let stream = match &mut self.stream {
                Some(stream) => stream,
                None => {
                    self.stats.opens += 1;
                    self.stream.insert(open(self.expected).await?)
                }
            };
            let item = match tokio::time::timeout(idle, stream.next()).await {
                Err(_elapsed) => return Ok(None),
                Ok(None) => {
                    self.stream = None;
                    return Ok(None);
                }
                Ok(Some(Err(e))) => {
                    self.stream = None;
                    return Err(e);
                }
                Ok(Some(Ok(item))) => item,
            };
            let (offset, record) = item;
            if offset < self.expected {
                self.stats.duplicates += 1;
                continue;
            }
            if offset > self.expected {
                self.stats.gaps += 1;
                self.stream = None;
                self.reopens_here += 1;
                if self.reopens_here > MAX_REOPENS_AT_ONE_OFFSET {
                    self.reopens_here = 0;
                    return Err(PersistentGap { expected: self.expected, got: offset }.into());
                }
                tracing::debug!(expected = self.expected, got = offset, "gap in a consumer stream; re-opening it");
                continue;
            }
            self.expected += 1;
            self.reopens_here = 0;
            return Ok(Some((offset, record)));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures_util::stream;

    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum TestError {
        Gap(PersistentGap),
        Broken,
    }

    impl From<PersistentGap> for TestError {
        fn from(gap: PersistentGap) -> Self {
            TestError::Gap(gap)
        }
    }

    /// A partition of `len` records whose value is their offset, served by streams that
    /// misbehave as `flaw` says on the given open (0 = the first).
    #[derive(Clone, Copy)]
    enum Flaw {
        /// The first stream leaves out offsets `from..to` (a cut-off batch) and goes on after it.
        SkipsBatch { from: u64, to: u64 },
        /// The first stream repeats offsets `from..to` once more after reaching `to`.
        Repeats { from: u64, to: u64 },
        /// Every stream starts `by` past the offset asked for (records that are not there).
        AlwaysStartsLate { by: u64 },
        /// The first stream fails after `at` records.
        FailsAt { at: u64 },
    }

    struct Served {
        opened_at: Arc<Mutex<Vec<u64>>>,
    }

    type Opened = std::future::Ready<Result<OffsetStream<u64, TestError>, TestError>>;

    fn opener(len: u64, flaw: Flaw) -> (impl FnMut(u64) -> Opened, Served) {
        let opened_at = Arc::new(Mutex::new(Vec::new()));
        let served = Served { opened_at: opened_at.clone() };
        let open = move |from: u64| {
            let first = {
                let mut opened = opened_at.lock().unwrap();
                opened.push(from);
                opened.len() == 1
            };
            let items: Vec<Result<(u64, u64), TestError>> = match flaw {
                Flaw::SkipsBatch { from: a, to: b } if first => {
                    (from..len).filter(|o| !(a..b).contains(o)).map(|o| Ok((o, o))).collect()
                }
                Flaw::Repeats { from: a, to: b } if first => {
                    (from..b).chain(a..b).chain(b..len).map(|o| Ok((o, o))).collect()
                }
                Flaw::AlwaysStartsLate { by } => ((from + by)..len).map(|o| Ok((o, o))).collect(),
                Flaw::FailsAt { at } if first => {
                    (from..at).map(|o| Ok((o, o))).chain(std::iter::once(Err(TestError::Broken))).collect()
                }
                _ => (from..len).map(|o| Ok((o, o))).collect(),
            };
            std::future::ready(Ok(Box::pin(stream::iter(items)) as OffsetStream<u64, TestError>))
        };
        (open, served)
    }

    /// Reads until the stream goes idle with nothing left; returns the offsets handed out.
    async fn read_all<F, Fut>(guard: &mut OffsetGuard<u64, TestError>, open: &mut F) -> Result<Vec<u64>, TestError>
    where
        F: FnMut(u64) -> Fut,
        Fut: Future<Output = Result<OffsetStream<u64, TestError>, TestError>>,
    {
        let mut got = Vec::new();
        // A finite test stream ends rather than idles; two empty calls in a row mean nothing is left.
        let mut empty_in_a_row = 0;
        while empty_in_a_row < 2 {
            match guard.next(open, Duration::from_secs(5)).await? {
                Some((offset, value)) => {
                    assert_eq!(offset, value, "the record handed out is not the one at its offset");
                    got.push(offset);
                    empty_in_a_row = 0;
                }
                None => empty_in_a_row += 1,
            }
        }
        Ok(got)
    }

    #[tokio::test]
    async fn a_skipped_batch_is_read_again_from_the_gap() {
        let (mut open, served) = opener(100, Flaw::SkipsBatch { from: 30, to: 41 });
        let mut guard = OffsetGuard::new(0);
        let got = read_all(&mut guard, &mut open).await.unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert_eq!(guard.stats().gaps, 1);
        // Opened at 0, re-opened at the first missing offset, then once more after the end.
        assert_eq!(served.opened_at.lock().unwrap()[..2], [0, 30]);
    }

    #[tokio::test]
    async fn repeated_records_are_dropped() {
        let (mut open, _) = opener(100, Flaw::Repeats { from: 20, to: 50 });
        let mut guard = OffsetGuard::new(0);
        let got = read_all(&mut guard, &mut open).await.unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert_eq!(guard.stats().duplicates, 30);
        assert_eq!(guard.stats().gaps, 0);
    }

    #[tokio::test]
    async fn reading_starts_at_the_offset_asked_for() {
        let (mut open, served) = opener(50, Flaw::Repeats { from: 0, to: 10 });
        let mut guard = OffsetGuard::new(40);
        let got = read_all(&mut guard, &mut open).await.unwrap();
        assert_eq!(got, (40..50).collect::<Vec<_>>());
        assert_eq!(served.opened_at.lock().unwrap()[0], 40);
    }

    #[tokio::test]
    async fn a_gap_that_reopening_does_not_close_is_an_error() {
        let (mut open, served) = opener(100, Flaw::AlwaysStartsLate { by: 3 });
        let mut guard = OffsetGuard::new(10);
        let err = guard.next(&mut open, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(err, TestError::Gap(PersistentGap { expected: 10, got: 13 }));
        assert_eq!(served.opened_at.lock().unwrap().len() as u32, MAX_REOPENS_AT_ONE_OFFSET + 1);
        assert_eq!(guard.expected(), 10, "a failed read moved the position");
    }

    #[tokio::test]
    async fn a_stream_error_is_returned_and_the_next_call_resumes_where_it_stopped() {
        let (mut open, served) = opener(20, Flaw::FailsAt { at: 7 });
        let mut guard = OffsetGuard::new(0);
        let err = read_all(&mut guard, &mut open).await.unwrap_err();
        assert_eq!(err, TestError::Broken);
        assert_eq!(guard.expected(), 7);
        let rest = read_all(&mut guard, &mut open).await.unwrap();
        assert_eq!(rest, (7..20).collect::<Vec<_>>());
        assert_eq!(served.opened_at.lock().unwrap()[1], 7);
    }

    #[tokio::test]
    async fn a_stream_that_stalls_before_the_end_resumes_where_it_stopped_once_reopened() {
        // The first stream gives 0..30 and then nothing, as after a cut-off batch at the tail.
        let mut opened_at = Vec::new();
        let mut open = |from: u64| {
            let items = (from..50).map(|o| Ok((o, o)));
            let stream: OffsetStream<u64, TestError> = if opened_at.is_empty() {
                Box::pin(stream::iter(items.take(30)).chain(stream::pending()))
            } else {
                Box::pin(stream::iter(items))
            };
            opened_at.push(from);
            std::future::ready(Ok(stream))
        };
        let mut guard = OffsetGuard::new(0);
        let mut got = Vec::new();
        while let Some((offset, _)) = guard.next(&mut open, Duration::from_millis(1)).await.unwrap() {
            got.push(offset);
        }
        assert_eq!(got, (0..30).collect::<Vec<_>>());
        guard.reopen();
        while let Some((offset, _)) = guard.next(&mut open, Duration::from_millis(50)).await.unwrap() {
            got.push(offset);
            if offset == 49 {
                break;
            }
        }
        assert_eq!(got, (0..50).collect::<Vec<_>>());
        assert_eq!(opened_at, [0, 30]);
        assert_eq!(guard.stats().stalls, 1);
    }

    #[tokio::test]
    async fn an_idle_stream_returns_none_without_reopening() {
        let mut opens = 0;
        let mut open = |_from: u64| {
            opens += 1;
            std::future::ready(Ok(Box::pin(stream::pending()) as OffsetStream<u64, TestError>))
        };
        let mut guard = OffsetGuard::new(0);
        assert_eq!(guard.next(&mut open, Duration::from_millis(1)).await.unwrap(), None);
        assert_eq!(guard.next(&mut open, Duration::from_millis(1)).await.unwrap(), None);
        assert_eq!(opens, 1, "an idle stream was re-opened");
    }
}
