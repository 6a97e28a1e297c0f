//! The `dedupe` operator: passes the first record of each key and drops repeats of it within a
//! window of event time.
//!
//! ```toml
//! [operators.unique]
//! type = "dedupe"
//! inputs = ["events"]
//! key = "metadata.uid"        # a dotted path into the value, "@weir-id" (the header) or "@key"
//! window_ms = 3600000
//! out_of_orderness_ms = 0     # how far the watermark trails the latest event time
//! missing_key = "pass"        # or "drop" or "reject"
//! ```
//!
//! Semantics: the first record of a key at event time `t` is passed through unchanged (same
//! value, key, headers and timestamp) and remembered; a record of the same key whose event time
//! is less than `window_ms` away from `t` (before or after it) is dropped and counted; a record
//! `window_ms` or more after `t` is passed and starts a new window for the key. Event time is the
//! record's timestamp, or `time_field`.
//!
//! State: table `seen` maps each remembered key to its first event time (i64 BE); `meta/clock`
//! holds the latest event time and the counters. Both are written while a record is processed, so
//! they are committed with the input offsets, and a restart (restore, then the uncommitted input
//! again) passes and drops exactly what an uninterrupted run would. A key is forgotten once the
//! watermark (latest event time − `out_of_orderness_ms`) reaches `t + window_ms`, which keeps
//! memory bounded by the keys of one window. A record older than the watermark whose key is not
//! remembered cannot be told from a repeat of a forgotten one: it is passed (never lost) and
//! counted in [`DedupeStats::passed_late`].
//!
//! Nothing is held back waiting for later input, so the end of input (`weir run --until-idle
//! --drain`, [`Operator::end_of_input`]) has nothing to emit: the default hook is kept, and the
//! remembered keys stay until the watermark forgets them.
//!
//! A record without a key (no such header, no record key, a missing path) is passed by default
//! (`missing_key = "pass"`), dropped (`"drop"`) or dead-lettered (`"reject"`); all are counted.

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use weir_schemas::component::{ComponentError, Operator, Output, Partitioning, State};
use weir_schemas::record::{Record, StoredRecord};

use crate::aggregate::path::{decode_input, event_time, scalar_text, type_name, FieldPath};
use crate::aggregate::state::{Reader, Writer};
use crate::aggregate::{ID_HEADER, MAX_SPAN_MS};

/// `key = "@weir-id"`: deduplicate by the record's `weir-id` header.
pub const KEY_WEIR_ID: &str = "@weir-id";
/// `key = "@key"`: deduplicate by the record's key.
pub const KEY_RECORD_KEY: &str = "@key";

const SEEN: &str = "seen";
const META: &str = "meta";
const CLOCK_KEY: &[u8] = b"clock";

/// The options of a `type = "dedupe"` operator.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// What makes two records the same: a dotted path into the value (e.g. `metadata.uid`),
    /// `@weir-id` (the header) or `@key` (the record key).
    pub key: String,
    /// Repeats closer than this in event time to the first record are dropped.
    pub window_ms: u64,
    /// Path of the event time (integer ms or RFC 3339); unset: the record's timestamp.
    #[serde(default)]
    pub time_field: Option<String>,
    /// How far the watermark trails the latest event time (keys are forgotten by watermark).
    #[serde(default)]
    pub out_of_orderness_ms: u64,
    /// What to do with a record that has no key.
    #[serde(default)]
    pub missing_key: DedupeMissingKey,
}

/// What to do with a record that has no key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DedupeMissingKey {
    /// Pass it through (it cannot be a known repeat).
    #[default]
    Pass,
    /// Drop it.
    Drop,
    /// Send it to the dead-letter topic.
    Reject,
}

/// Why a [`DedupeConfig`] cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DedupeConfigError {
    /// The key path does not parse or may give several values.
    #[error("{option}: {reason}")]
    BadPath {
        /// `key` or `time_field`.
        option: &'static str,
        /// Why.
        reason: String,
    },
    /// `window_ms` is 0 or too long.
    #[error("window_ms must be between 1 and {MAX_SPAN_MS}")]
    BadWindow,
    /// `out_of_orderness_ms` is too long.
    #[error("out_of_orderness_ms must be at most {MAX_SPAN_MS}")]
    BadOutOfOrderness,
}

/// Counters of what the operator did; kept in state, so they survive restarts exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DedupeStats {
    /// Records read.
    pub events: u64,
    /// Records passed through.
    pub passed: u64,
    /// Repeats dropped.
    pub dropped: u64,
    /// Records without a key (passed, dropped or rejected per `missing_key`).
    pub missing_key: u64,
    /// Passed records older than the watermark whose key was not remembered.
    pub passed_late: u64,
    /// Records rejected to the dead-letter topic.
    pub rejected: u64,
}

/// Where the key comes from.
#[derive(Clone, Debug)]
enum KeySource {
    WeirId,
    RecordKey,
    Path(FieldPath),
}

/// The dedupe operator. See the module documentation.
pub struct Dedupe {
    key: KeySource,
    time_field: Option<FieldPath>,
    window: i64,
    out_of_orderness: i64,
    missing_key: DedupeMissingKey,
    /// Latest event time seen (`i64::MIN` before the first).
    max_event_time: i64,
    stats: DedupeStats,
    /// Remembered key → its first event time (mirrors the `seen` table).
    seen: HashMap<Vec<u8>, i64>,
    /// (first event time + window, key): when each key may be forgotten.
    expiry: BTreeSet<(i64, Vec<u8>)>,
}

impl Dedupe {
    /// A dedupe operator with these options.
    pub fn new(config: &DedupeConfig) -> Result<Dedupe, DedupeConfigError> {
        let path = |option: &'static str, text: &str| {
            let parsed =
                FieldPath::parse(text).map_err(|e| DedupeConfigError::BadPath { option, reason: e.to_string() })?;
            if parsed.is_multi() {
                return Err(DedupeConfigError::BadPath { option, reason: format!("{text:?} may give several values") });
            }
            Ok(parsed)
        };
        let key = match config.key.as_str() {
            KEY_WEIR_ID => KeySource::WeirId,
            KEY_RECORD_KEY => KeySource::RecordKey,
            other => KeySource::Path(path("key", other)?),
        };
        if config.window_ms == 0 || config.window_ms > MAX_SPAN_MS {
            return Err(DedupeConfigError::BadWindow);
        }
        if config.out_of_orderness_ms > MAX_SPAN_MS {
            return Err(DedupeConfigError::BadOutOfOrderness);
        }
        Ok(Dedupe {
            key,
            time_field: config.time_field.as_deref().map(|t| path("time_field", t)).transpose()?,
            window: config.window_ms as i64,
            out_of_orderness: config.out_of_orderness_ms as i64,
            missing_key: config.missing_key,
            max_event_time: i64::MIN,
            stats: DedupeStats::default(),
            seen: HashMap::new(),
            expiry: BTreeSet::new(),
        })
    }

    /// What the operator has done so far (as of the state it last restored or wrote).
    pub fn stats(&self) -> DedupeStats {
        self.stats
    }

    /// How many keys are remembered.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }

    fn watermark(&self) -> i64 {
        self.max_event_time.saturating_sub(self.out_of_orderness)
    }

    /// The record's key (None: it has none) and event time; errors are rejection reasons.
    fn read(&self, record: &Record) -> Result<(Option<Vec<u8>>, i64), String> {
        let needs_value = matches!(self.key, KeySource::Path(_)) || self.time_field.is_some();
        let value = if needs_value { Some(decode_input(&record.value)?) } else { None };
        let time = event_time(self.time_field.as_ref(), value.as_ref(), record)?;
        let key = match (&self.key, &value) {
            (KeySource::WeirId, _) => record.header(ID_HEADER).map(<[u8]>::to_vec),
            (KeySource::RecordKey, _) => record.key.clone(),
            (KeySource::Path(path), Some(value)) => match path.get(value) {
                Some(key) => Some(
                    scalar_text(key)
                        .ok_or_else(|| format!("key `{path}` is {}, not a scalar", type_name(key)))?
                        .into_bytes(),
                ),
                None => None,
            },
            (KeySource::Path(_), None) => None,
        };
        Ok((key, time))
    }

    /// Why a record without a key is rejected.
    fn missing_reason(&self) -> String {
        match &self.key {
            KeySource::WeirId => format!("the record has no {ID_HEADER} header"),
            KeySource::RecordKey => "the record has no key".to_string(),
            KeySource::Path(path) => format!("key `{path}` is missing"),
        }
    }

    fn store_clock(&self, state: &mut dyn State) {
        let mut w = Writer::new();
        w.i64(self.max_event_time);
        let s = &self.stats;
        for n in [s.events, s.passed, s.dropped, s.missing_key, s.passed_late, s.rejected] {
            w.u64(n);
        }
        state.put(META, CLOCK_KEY, w.0);
    }

    fn load(&mut self, state: &dyn State) -> Result<(), String> {
        let mut clock = None;
        state
            .scan(META, &mut |key, value| {
                if key == CLOCK_KEY {
                    clock = Some(value.to_vec());
                }
            })
            .map_err(|e| e.message)?;
        if let Some(clock) = clock {
            (self.max_event_time, self.stats) = decode_clock(&clock).ok_or("corrupt dedupe clock")?;
        }
        let mut corrupt = false;
        state
            .scan(SEEN, &mut |key, value| match <[u8; 8]>::try_from(value) {
                Ok(time) => {
                    let time = i64::from_be_bytes(time);
                    self.seen.insert(key.to_vec(), time);
                    self.expiry.insert((time + self.window, key.to_vec()));
                }
                Err(_) => corrupt = true,
            })
            .map_err(|e| e.message)?;
        if corrupt {
            return Err("corrupt dedupe entry".to_string());
        }
        Ok(())
    }

    /// Remembers `key` as first seen at `time`, replacing what was remembered.
    fn remember(&mut self, key: Vec<u8>, time: i64, state: &mut dyn State) {
        if let Some(old) = self.seen.insert(key.clone(), time) {
            self.expiry.remove(&(old + self.window, key.clone()));
        }
        state.put(SEEN, &key, time.to_be_bytes().to_vec());
        self.expiry.insert((time + self.window, key));
    }
}

/// The latest event time and the counters from the `meta/clock` entry; `None` when damaged.
fn decode_clock(bytes: &[u8]) -> Option<(i64, DedupeStats)> {
    let mut r = Reader::new(bytes, "dedupe clock").ok()?;
    let max_event_time = r.i64().ok()?;
    let stats = DedupeStats {
        events: r.u64().ok()?,
        passed: r.u64().ok()?,
        dropped: r.u64().ok()?,
        missing_key: r.u64().ok()?,
        passed_late: r.u64().ok()?,
        rejected: r.u64().ok()?,
    };
    r.end().ok()?;
    Some((max_event_time, stats))
}

impl Operator for Dedupe {
    /// The state is per dedupe key: with `@key` that is the record key the input is partitioned
    /// by already; otherwise, with several workers, the input is repartitioned by the key.
    fn partitioning(&self) -> Partitioning {
        match &self.key {
            KeySource::RecordKey => Partitioning::ByRecordKey,
            KeySource::WeirId => {
                Partitioning::ByStateKey(std::sync::Arc::new(|record| record.header(ID_HEADER).map(<[u8]>::to_vec)))
            }
            KeySource::Path(path) => {
                let path = path.clone();
                Partitioning::ByStateKey(std::sync::Arc::new(move |record| {
                    let value = decode_input(&record.value).ok()?;
                    path.get(&value).and_then(scalar_text).map(String::into_bytes)
                }))
            }
        }
    }

    fn restore(&mut self, state: &dyn State) -> Result<(), ComponentError> {
        self.max_event_time = i64::MIN;
        self.stats = DedupeStats::default();
        self.seen.clear();
        self.expiry.clear();
        self.load(state).map_err(|e| ComponentError::fatal(format!("dedupe: restoring state: {e}")))
    }

    fn process(&mut self, input: &StoredRecord, state: &mut dyn State, out: &mut Output) -> Result<(), ComponentError> {
        self.stats.events += 1;
        let record = &input.record;
        let (key, time) = match self.read(record) {
            Ok(read) => read,
            Err(reason) => {
                self.stats.rejected += 1;
                self.store_clock(state);
                out.reject(reason, &record.value);
                return Ok(());
            }
        };
        let watermark = self.watermark();
        match key {
            None => {
                self.stats.missing_key += 1;
                match self.missing_key {
                    DedupeMissingKey::Pass => {
                        self.stats.passed += 1;
                        out.emit(record.clone());
                    }
                    DedupeMissingKey::Drop => {}
                    DedupeMissingKey::Reject => {
                        self.stats.rejected += 1;
                        out.reject(self.missing_reason(), &record.value);
                    }
                }
            }
            Some(key) => match self.seen.get(&key) {
                Some(&first) if (time - first).abs() < self.window => self.stats.dropped += 1,
                Some(&first) if time < first => {
                    // Older than the remembered record by a window or more: a different
                    // occurrence; the later one stays remembered.
                    self.stats.passed += 1;
                    out.emit(record.clone());
                }
                _ => {
                    if time + self.window > watermark {
                        self.remember(key, time, state);
                    }
                    if time < watermark {
                        self.stats.passed_late += 1;
                    }
                    self.stats.passed += 1;
                    out.emit(record.clone());
                }
            },
        }
        self.max_event_time = self.max_event_time.max(time);
        let watermark = self.watermark();
        while self.expiry.first().is_some_and(|(at, _)| *at <= watermark) {
            let Some((_, key)) = self.expiry.pop_first() else { break };
            self.seen.remove(&key);
            state.delete(SEEN, &key);
        }
        self.store_clock(state);
        Ok(())
    }

    /// A `seen` entry (the key, when it was first seen, when the window it opened ends) or the
    /// `meta/clock` entry (latest event time, `null` before the first, and the counters).
    fn describe_state(&self, table: &str, key: &[u8], value: &[u8]) -> Option<serde_json::Value> {
        match (table, key) {
            (SEEN, _) => {
                let first = i64::from_be_bytes(<[u8; 8]>::try_from(value).ok()?);
                Some(serde_json::json!({
                    "key": String::from_utf8_lossy(key),
                    "first_seen": crate::describe_time(first),
                    "window_end": crate::describe_time(first.saturating_add(self.window)),
                }))
            }
            (META, CLOCK_KEY) => {
                let (max_event_time, s) = decode_clock(value)?;
                let max_event_time = (max_event_time != i64::MIN).then(|| crate::describe_time(max_event_time));
                Some(serde_json::json!({
                    "max_event_time": max_event_time,
                    "stats": {
                        "events": s.events,
                        "passed": s.passed,
                        "dropped": s.dropped,
                        "missing_key": s.missing_key,
                        "passed_late": s.passed_late,
                        "rejected": s.rejected,
                    },
                }))
            }
            _ => None,
        }
    }
}
