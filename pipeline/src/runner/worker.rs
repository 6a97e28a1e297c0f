//! Partition-parallel workers: `weir run --worker I/N` runs the pipeline over the partitions
//! `p % N == I` of every topic, so N processes share the load (see docs/WORKERS.md).

use std::fmt;
use std::str::FromStr;

use weir_schemas::component::{ComponentError, Operator, Output, State, StateKeyFn};
use weir_schemas::StoredRecord;

/// Which share of the partitions this process works on: worker `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Worker {
    index: u32,
    count: u32,
}

/// Why a `--worker` value is not `I/N`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WorkerError {
    /// Not two numbers separated by `/`.
    #[error("`{0}` is not I/N (this worker's index / the number of workers, such as 0/2)")]
    Format(String),
    /// N is 0.
    #[error("the number of workers must be at least 1 (got `{0}`)")]
    NoWorkers(String),
    /// I is not below N.
    #[error("worker index {index} is not below the number of workers {count} (indexes run from 0 to {})", .count - 1)]
    IndexOutOfRange {
        /// I.
        index: u32,
        /// N.
        count: u32,
    },
}

impl Worker {
    /// The only worker: owns every partition.
    pub const SOLE: Worker = Worker { index: 0, count: 1 };

    /// Worker `index` of `count`.
    pub fn new(index: u32, count: u32) -> Result<Worker, WorkerError> {
        if count == 0 {
            return Err(WorkerError::NoWorkers(format!("{index}/{count}")));
        }
        if index >= count {
            return Err(WorkerError::IndexOutOfRange { index, count });
        }
        Ok(Worker { index, count })
    }

    /// I.
    pub fn index(self) -> u32 {
        self.index
    }

    /// N.
    pub fn count(self) -> u32 {
        self.count
    }

    /// Whether this worker processes `partition` (of any topic).
    pub fn owns(self, partition: u32) -> bool {
        partition % self.count == self.index
    }

    /// The partitions of a topic of `partitions` this worker processes, in order.
    pub fn partitions_of(self, partitions: u32) -> impl Iterator<Item = u32> {
        (0..partitions).filter(move |&p| self.owns(p))
    }

    /// Whether this worker runs the sources: only worker 0 does, since a source polls its vendor
    /// with one cursor.
    pub fn runs_sources(self) -> bool {
        self.index == 0
    }
}

impl Default for Worker {
    fn default() -> Worker {
        Worker::SOLE
    }
}

impl fmt::Display for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Worker {
    type Err = WorkerError;

    fn from_str(text: &str) -> Result<Worker, WorkerError> {
        let format = || WorkerError::Format(text.to_string());
        let (index, count) = text.trim().split_once('/').ok_or_else(format)?;
        let number = |part: &str| {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format());
            }
            part.parse::<u32>().map_err(|_| format())
        };
        Worker::new(number(index)?, number(count)?)
    }
}

/// The internal stage `<operator>.repartition`: re-appends each input record unchanged but keyed
/// by the operator's state key, so that all the records of a key meet in one partition, on one
/// worker (Kafka Streams' repartition topics). It runs as an operator stage, so its offsets and
/// produced marks are committed exactly once like any other's; the records keep their `weir-id`
/// (else get one from their input's position), which the replay guard and the operator's own
/// output ids build on.
pub(crate) struct Repartition {
    key: StateKeyFn,
}

impl Repartition {
    /// Keys records by `key`.
    pub(crate) fn new(key: StateKeyFn) -> Repartition {
        Repartition { key }
    }
}

impl Operator for Repartition {
    fn process(&mut self, input: &StoredRecord, _: &mut dyn State, out: &mut Output) -> Result<(), ComponentError> {
        let mut record = input.record.clone();
        record.key = (self.key)(&record);
        out.emit(record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_i_of_n() {
        assert_eq!("0/1".parse(), Ok(Worker::SOLE));
        assert_eq!("1/3".parse(), Ok(Worker { index: 1, count: 3 }));
        assert_eq!(" 2 / 4 ".parse(), Ok(Worker { index: 2, count: 4 }));
        assert_eq!(Worker::new(1, 3).unwrap().to_string(), "1/3");
    }

    #[test]
    fn refuses_what_is_not_i_of_n() {
        for text in ["", "1", "1/", "/2", "a/2", "1/b", "-1/2", "1/2/3", "+1/2", "1.0/2", "99999999999/2"] {
            assert_eq!(text.parse::<Worker>(), Err(WorkerError::Format(text.to_string())), "{text:?}");
        }
        assert_eq!("0/0".parse::<Worker>(), Err(WorkerError::NoWorkers("0/0".into())));
        assert_eq!("2/2".parse::<Worker>(), Err(WorkerError::IndexOutOfRange { index: 2, count: 2 }));
        let message = "3/2".parse::<Worker>().unwrap_err().to_string();
        assert!(message.contains("index 3 is not below the number of workers 2"), "{message}");
    }

    #[test]
    fn every_partition_has_exactly_one_owner() {
        for count in 1..=5 {
            let workers: Vec<Worker> = (0..count).map(|i| Worker::new(i, count).unwrap()).collect();
            for partitions in [1, 2, 4, 7] {
                for p in 0..partitions {
                    let owners: Vec<u32> = workers.iter().filter(|w| w.owns(p)).map(|w| w.index()).collect();
                    assert_eq!(owners, vec![p % count], "{partitions} partitions, {count} workers, partition {p}");
                }
                let all: u32 = workers.iter().map(|w| w.partitions_of(partitions).count() as u32).sum();
                assert_eq!(all, partitions);
            }
        }
        let worker = Worker::new(1, 2).unwrap();
        assert_eq!(worker.partitions_of(4).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(worker.partitions_of(1).count(), 0, "more workers than partitions: this one is idle");
        assert!(Worker::SOLE.runs_sources() && !worker.runs_sources());
    }
}
