//! The `aggregate` operator: keyed event-time windows with watermarks, allowed lateness, a late
//! side output, threshold alerts and a daily digest preset.
//!
//! Input: any record whose value is a Weir Avro record (decoded generically, so the options
//! address fields by dotted paths such as `labels.user` or `violations[].subject`: see
//! `path.rs`) or a JSON object. A value that cannot be decoded, or whose key, time or metric
//! field has the wrong type, is rejected to the dead-letter topic with the reason. (A plain count
//! by record time with no key, filter or threshold never reads the value, so it never rejects.) Output: one
//! [`WindowAggregate`] per window, key and metric on the operator's topic; events too late to
//! count, unchanged, on the side output `late`; threshold [`Violation`]s on the side output
//! `alerts`. Options: [`AggregateConfig`].
//!
//! # Time
//!
//! Event time is the record's timestamp, or the `time_field` of its value. The **watermark** is
//! the latest event time seen minus `out_of_orderness_ms` (across all input partitions, like
//! Kafka Streams' stream time; it never goes back). It moves after an event has been assigned, so
//! the event that moves it is never late itself. Filtered-out events and events without a key
//! move it too: time passes whatever is aggregated. (Flink's alternative, the minimum over
//! partitions, stalls on an empty or idle partition unless idleness is judged by the wall clock,
//! which would make replays give different windows.)
//!
//! # Windows
//!
//! Windows are `[start, end)`. Tumbling and hopping windows are aligned to the epoch (plus
//! `offset_ms`), so a 1-day window is a UTC day. Session windows are per key: an event at `t`
//! opens `[t, t + gap_ms)` and merges with every session of its key it overlaps or touches (as in
//! Flink), so a session ends `gap_ms` after its last event.
//!
//! A window **fires** when the watermark reaches its end (`watermark >= end`): one record per
//! metric, in configuration order; windows firing together come out by end, start, key. The
//! window is then kept until the watermark reaches `end + allowed_lateness_ms`. An event that
//! arrives for it in that time is added and the window **fires again at once**, with the updated
//! values (the same window, a higher firing number in the record's `weir-id`): downstream, the
//! latest record for a window and metric supersedes the earlier ones (Flink's default trigger
//! behaviour with allowed lateness). A session that grows or merges past the watermark fires again
//! when the watermark passes its new end.
//!
//! An event that is too late for every window it belongs to (`end + allowed_lateness_ms <=
//! watermark`) is not aggregated: it goes unchanged to the side output `late` and is counted
//! **per key**: the next result emitted for that key (any window) carries the count in
//! `late_events`, on each of its metric records, and the count starts again from zero. (A hopping
//! event late for some of its windows only is added to the others and is not "late".)
//!
//! # Output records
//!
//! `window_kind`, `window_start`, `window_end`, `key` (the group key, `""` without `key`),
//! `metric` (the metric's name), `count` (events the metric covered: the window's events that
//! passed the metric's own filter; for a `count` metric that is its value), `value` (sum, distinct
//! count; null for count and top-k), `top` (top-k: most frequent first, ties by value),
//! `late_events`, `emitted_at` (the watermark when it was emitted — never the wall clock; see
//! [End of input](#end-of-input) for the results fired by it). The
//! record is keyed by the group key (unkeyed without `key`), timestamped `window_end - 1`, and its
//! `weir-id` header is `<operator>/<start>/<end>/<metric>/<firing>/<key>`: stable across replays.
//!
//! # Alerts
//!
//! With `threshold`, the first firing of a window whose metric is above the threshold also emits
//! a [`Violation`] (status OPEN, subject = key, first/last seen = the window's first and last
//! event, `event_uid` = the `uid_field` of its latest event) on `alerts`, once per window (a
//! late re-firing alerts only if no earlier firing did). Its `violation_key` is a hash of the
//! operator, rule id, key and window start, so a replay gives the same key.
//!
//! # Daily digest
//!
//! `preset = "daily_digest"` over `PolicyDecision`s: see [`Preset::DailyDigest`]. The
//! WindowAggregate schema has one metric per record, so a digest is several records for one
//! window: `total`, `decisions.ALLOW`, `decisions.DENY`, `decisions.REVIEW` (read `count`),
//! `top.services` and `top.violators` (read `top`).
//!
//! # State and exactly-once
//!
//! Everything — open windows with their accumulators, session bounds, the latest event time,
//! unreported late counts and the counters — lives in [`State`] and is written while each record
//! is processed (layout in `state.rs`), so it is committed with the input offsets in one
//! transaction. The operator's memory is only an index over that state, rebuilt by
//! [`Operator::restore`]: after a crash the runner restores and replays the uncommitted input,
//! and the operator emits exactly what an uninterrupted run would have (same bytes, same ids).
//! Memory stays bounded: a window is deleted once the watermark passes `end +
//! allowed_lateness_ms`. Unreported late counts are one small entry per key that had a late
//! event since its last result. A restart with a different window, key or metric list refuses the old
//! state (fatal error) rather than misread it.
//!
//! Determinism: the same input in the same order gives byte-identical output. With several input
//! partitions, the order is the runner's interleaving of them; event times that disagree a lot
//! between partitions make lateness depend on it (as in any streaming engine).
//!
//! # End of input
//!
//! Without more events the watermark stands still, so the last windows wait for later events to
//! move it past them. A bounded run (`weir run --until-idle --drain`: a replay or backfill of
//! history) ends the input instead, as Flink does at the end of a bounded stream:
//! [`Operator::end_of_input`] moves the watermark to +infinity ([`END_OF_INPUT`]), so every
//! window not fired yet fires now — by end, start, key like any firing, with the usual `weir-id`
//! (a window that had fired already does not fire again) — and every window is purged. Those
//! results carry `emitted_at` = the latest event time seen (where the input ended in event
//! time; +infinity is not a time), which can be earlier than their `window_end`: the window was
//! cut short by the end of the input. The watermark is stored in place of the latest event time
//! and committed with those results in one transaction, so a replay after a crash before that
//! commit emits the same bytes and ids, and a second drain emits nothing. A continuous run never
//! ends the input. After the end, the input is over for good: every event that still arrives is
//! too late for every window, so it goes unchanged to `late` and is counted per key as above
//! (no result follows to report the count, so it stays in state). To aggregate new input,
//! reset the operator's state or give it a new name.

pub mod bench;
mod config;
pub(crate) mod path;
pub(crate) mod state;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sha2::{Digest, Sha256};
use weir_schemas::component::{ComponentError, Operator, Output, Partitioning, State};
use weir_schemas::events::{TopItem, Violation, ViolationStatus, WindowAggregate};
use weir_schemas::record::{Record, StoredRecord};

pub use config::{
    AggregateConfig, AggregateConfigError, Filter, FilterValue, MetricConfig, MissingKey, Preset, Scalar, Severity,
    ThresholdConfig, WindowConfig, DAY_MS, MAX_SPAN_MS,
};
pub use state::AggregateStats;

use config::{MetricKind, Plan, Windows};
use path::{decode_input, event_time, scalar_text, type_name};
use state::{
    decode_count, encode_count, item_key, pane_key, split_item_rest, split_pane_key, Clock, CorruptState, Pane, PaneId,
    CLOCK_KEY, ITEM, LATE, META, PANE, SHAPE_KEY,
};

/// The side output of events too late for every window they belong to.
pub const LATE_OUTPUT: &str = "late";
/// The side output of threshold violations.
pub const ALERTS_OUTPUT: &str = "alerts";
/// The header carrying a record's deterministic id (as the runner names it).
pub const ID_HEADER: &str = "weir-id";
/// Largest event time magnitude accepted (ms): about 36 million years either side of the epoch.
/// Events outside are rejected, so window arithmetic never overflows.
pub const MAX_EVENT_TIME: i64 = 1 << 60;
/// The watermark after the end of input (`weir run --until-idle --drain`): +infinity, so every
/// window has fired and every later event is late. Stored as the latest event time.
pub const END_OF_INPUT: i64 = i64::MAX;

/// A place in one of the two timer queues: panes by firing time (end) or purge time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Slot {
    at: i64,
    start: i64,
    group: String,
    wid: i64,
}

/// One metric's part of an event.
#[derive(Debug)]
enum Contribution {
    /// The metric's filter left the event out.
    Skip,
    /// Counted.
    Count,
    /// Counted, and this number (if present) added.
    Sum(Option<f64>),
    /// Counted, and these items seen.
    Items(Vec<String>),
}

/// An event ready to aggregate.
#[derive(Debug)]
struct Event {
    time: i64,
    group: String,
    contributions: Vec<Contribution>,
    uid: Option<String>,
}

/// What reading a record gave.
#[derive(Debug)]
enum Read {
    /// Aggregate it.
    Event(Event),
    /// Left out by the filter; only its time counts.
    FilteredOut(i64),
    /// No key; only its time counts.
    MissingKey(i64),
}

/// The aggregate operator. See the module documentation.
pub struct Aggregate {
    name: String,
    plan: Plan,
    shape: String,
    needs_value: bool,
    /// The latest event time and the counters (mirrors `meta/clock`).
    clock: Clock,
    /// Whether `meta/shape` is in the state.
    shape_stored: bool,
    /// Open and fired-but-kept panes (mirrors `pane` and `item`).
    panes: HashMap<PaneId, Pane>,
    /// Session windows: (group, start) → window id.
    sessions: BTreeMap<(String, i64), i64>,
    /// Panes waiting for the watermark to reach their end.
    fire_queue: BTreeSet<Slot>,
    /// Fired panes waiting for the watermark to reach their end plus the allowed lateness.
    purge_queue: BTreeSet<Slot>,
    /// Late events not yet reported, per group (mirrors `late`).
    late: BTreeMap<String, u64>,
}

impl Aggregate {
    /// An aggregate operator called `name` (its output topic, and the `operator` of its records).
    pub fn new(name: impl Into<String>, config: &AggregateConfig) -> Result<Aggregate, AggregateConfigError> {
        let plan = Plan::new(config)?;
        Ok(Aggregate {
            name: name.into(),
            shape: plan.shape(),
            needs_value: plan.needs_value(),
            plan,
            clock: Clock::default(),
            shape_stored: false,
            panes: HashMap::new(),
            sessions: BTreeMap::new(),
            fire_queue: BTreeSet::new(),
            purge_queue: BTreeSet::new(),
            late: BTreeMap::new(),
        })
    }

    /// What the operator has done so far (as of the state it last restored or wrote).
    pub fn stats(&self) -> AggregateStats {
        self.clock.stats
    }

    /// The current watermark: latest event time minus the out-of-orderness (`i64::MIN` before
    /// the first event).
    pub fn watermark(&self) -> i64 {
        if self.input_ended() {
            return END_OF_INPUT;
        }
        self.clock.max_event_time.saturating_sub(self.plan.out_of_orderness)
    }

    /// Whether [`Operator::end_of_input`] has run: the latest event time is then stored as
    /// [`END_OF_INPUT`], which no event can have (event times are within [`MAX_EVENT_TIME`]).
    pub fn input_ended(&self) -> bool {
        self.clock.max_event_time == END_OF_INPUT
    }

    /// How many windows (of all keys) are held in state.
    pub fn open_windows(&self) -> usize {
        self.panes.len()
    }

    /// Reads one record: its time, whether and under which key it is aggregated, and what it
    /// gives each metric. Errors are rejection reasons.
    fn read(&self, record: &Record) -> Result<Read, String> {
        let plan = &self.plan;
        let value = if self.needs_value { Some(decode_input(&record.value)?) } else { None };
        let time = event_time(plan.time_field.as_ref(), value.as_ref(), record)?;
        let Some(value) = value else {
            let contributions = plan.metrics.iter().map(|_| Contribution::Count).collect();
            return Ok(Read::Event(Event { time, group: String::new(), contributions, uid: None }));
        };
        if !plan.filter.matches(&value) {
            return Ok(Read::FilteredOut(time));
        }
        let group = match &plan.key {
            None => String::new(),
            Some(path) => match path.get(&value) {
                Some(key) => {
                    scalar_text(key).ok_or_else(|| format!("key `{path}` is {}, not a scalar", type_name(key)))?
                }
                None => match plan.missing_key {
                    MissingKey::Skip => return Ok(Read::MissingKey(time)),
                    MissingKey::Reject => return Err(format!("key `{path}` is missing")),
                    MissingKey::Empty => String::new(),
                },
            },
        };
        let mut contributions = Vec::with_capacity(plan.metrics.len());
        for metric in &plan.metrics {
            if !metric.filter.matches(&value) {
                contributions.push(Contribution::Skip);
                continue;
            }
            contributions.push(match &metric.kind {
                MetricKind::Count => Contribution::Count,
                MetricKind::Sum(path) => match path.get(&value) {
                    None => Contribution::Sum(None),
                    Some(number) => match number.as_f64() {
                        Some(n) => Contribution::Sum(Some(n)),
                        None => {
                            return Err(format!(
                                "metric {:?}: field `{path}` is {}, not a number",
                                metric.name,
                                type_name(number)
                            ))
                        }
                    },
                },
                MetricKind::DistinctCount(path) | MetricKind::TopK(path, _) => {
                    let mut items = Vec::new();
                    for item in path.values(&value) {
                        items.push(scalar_text(item).ok_or_else(|| {
                            format!("metric {:?}: field `{path}` is {}, not a scalar", metric.name, type_name(item))
                        })?);
                    }
                    Contribution::Items(items)
                }
            });
        }
        let uid = match plan.threshold {
            Some(_) => plan.uid_field.get(&value).and_then(scalar_text),
            None => None,
        };
        Ok(Read::Event(Event { time, group, contributions, uid }))
    }

    /// Adds an event to the windows it belongs to, fires at once those the watermark has already
    /// passed (late updates), and reports it as late if no window would take it.
    fn aggregate(
        &mut self,
        event: &Event,
        input: &Record,
        watermark: i64,
        state: &mut dyn State,
        out: &mut Output,
    ) -> Result<(), ComponentError> {
        let lateness = self.plan.allowed_lateness;
        let mut touched = Vec::new();
        match self.plan.windows {
            Windows::Session { gap } => {
                if let Some(id) = self.add_to_session(event, gap, watermark, state) {
                    touched.push(id);
                }
            }
            windows => {
                for (start, end) in windows.assign(event.time) {
                    if end + lateness <= watermark {
                        continue;
                    }
                    let id = PaneId { group: event.group.clone(), wid: start };
                    if !self.panes.contains_key(&id) {
                        self.panes.insert(id.clone(), Pane::new(start, end, self.plan.metrics.len()));
                        if end > watermark {
                            self.fire_queue.insert(Slot { at: end, start, group: id.group.clone(), wid: start });
                        }
                    }
                    self.add_event(&id, event, state);
                    touched.push(id);
                }
            }
        }
        if touched.is_empty() {
            self.clock.stats.late += 1;
            let late = self.late.entry(event.group.clone()).or_insert(0);
            *late += 1;
            state.put(LATE, event.group.as_bytes(), encode_count(*late));
            out.emit_side(LATE_OUTPUT, input.clone());
            return Ok(());
        }
        self.clock.stats.aggregated += 1;
        let mut due: Vec<(i64, i64, PaneId)> = touched
            .into_iter()
            .filter_map(|id| {
                let pane = self.panes.get(&id)?;
                (pane.end <= watermark).then_some((pane.end, pane.start, id))
            })
            .collect();
        due.sort();
        for (_, _, id) in due {
            self.fire(&id, watermark, state, out)?;
        }
        Ok(())
    }

    /// Adds an event to its session (creating or merging sessions); `None` if it is too late to
    /// open one.
    fn add_to_session(&mut self, event: &Event, gap: i64, watermark: i64, state: &mut dyn State) -> Option<PaneId> {
        let (t, end) = (event.time, event.time + gap);
        let group = &event.group;
        // Sessions of one key never overlap, so their ends grow with their starts: walk back from
        // the last one starting at or before `end` while they reach `t`.
        let mut overlapping: Vec<(i64, i64)> = Vec::new();
        for ((_, start), wid) in self.sessions.range((group.clone(), i64::MIN)..=(group.clone(), end)).rev() {
            let reaches = self.panes.get(&PaneId { group: group.clone(), wid: *wid }).is_some_and(|p| p.end >= t);
            if !reaches {
                break;
            }
            overlapping.push((*start, *wid));
        }
        if overlapping.is_empty() {
            if end + self.plan.allowed_lateness <= watermark {
                return None;
            }
            let wid = self.clock.next_session;
            self.clock.next_session += 1;
            let id = PaneId { group: group.clone(), wid };
            self.panes.insert(id.clone(), Pane::new(t, end, self.plan.metrics.len()));
            self.sessions.insert((group.clone(), t), wid);
            if end > watermark {
                self.fire_queue.insert(Slot { at: end, start: t, group: group.clone(), wid });
            }
            self.add_event(&id, event, state);
            return Some(id);
        }
        overlapping.reverse();
        let (keep_start, keep_wid) = overlapping[0];
        let keep = PaneId { group: group.clone(), wid: keep_wid };
        self.unschedule(&keep);
        self.sessions.remove(&(group.clone(), keep_start));
        for &(start, wid) in &overlapping[1..] {
            let other = PaneId { group: group.clone(), wid };
            self.unschedule(&other);
            self.sessions.remove(&(group.clone(), start));
            if let Some(absorbed) = self.panes.remove(&other) {
                self.absorb(&keep, &other, absorbed, state);
            }
        }
        let pane = self.panes.get_mut(&keep)?;
        pane.start = pane.start.min(t);
        pane.end = pane.end.max(end);
        let (start, new_end) = (pane.start, pane.end);
        self.sessions.insert((group.clone(), start), keep_wid);
        if new_end > watermark {
            self.fire_queue.insert(Slot { at: new_end, start, group: group.clone(), wid: keep_wid });
        }
        self.add_event(&keep, event, state);
        Some(keep)
    }

    /// Merges session `absorbed` (already out of the indexes) into `keep`, moving its items in
    /// state; `keep`'s header is written by the caller.
    fn absorb(&mut self, keep: &PaneId, absorbed_id: &PaneId, absorbed: Pane, state: &mut dyn State) {
        let Some(pane) = self.panes.get_mut(keep) else { return };
        let keep_key = pane_key(keep);
        let absorbed_key = pane_key(absorbed_id);
        state.delete(PANE, &absorbed_key);
        pane.start = pane.start.min(absorbed.start);
        pane.end = pane.end.max(absorbed.end);
        pane.events += absorbed.events;
        pane.min_time = pane.min_time.min(absorbed.min_time);
        if absorbed.max_time > pane.max_time {
            pane.max_time = absorbed.max_time;
            pane.last_uid = absorbed.last_uid.or(pane.last_uid.take());
        }
        pane.firings = pane.firings.max(absorbed.firings);
        pane.alerted |= absorbed.alerted;
        for (i, (acc, other)) in pane.metrics.iter_mut().zip(absorbed.metrics).enumerate() {
            acc.events += other.events;
            acc.sum += other.sum;
            for (item, n) in other.items {
                state.delete(ITEM, &item_key(&absorbed_key, i, &item));
                let key = item_key(&keep_key, i, &item);
                let total = acc.items.entry(item).or_insert(0);
                *total += n;
                state.put(ITEM, &key, encode_count(*total));
            }
        }
    }

    /// Adds an event's contributions to a pane and writes what changed.
    fn add_event(&mut self, id: &PaneId, event: &Event, state: &mut dyn State) {
        let Some(pane) = self.panes.get_mut(id) else { return };
        let key = pane_key(id);
        pane.events += 1;
        pane.min_time = pane.min_time.min(event.time);
        if event.time >= pane.max_time {
            pane.max_time = event.time;
            if event.uid.is_some() {
                pane.last_uid.clone_from(&event.uid);
            }
        }
        for (i, (acc, contribution)) in pane.metrics.iter_mut().zip(&event.contributions).enumerate() {
            match contribution {
                Contribution::Skip => {}
                Contribution::Count => acc.events += 1,
                Contribution::Sum(n) => {
                    acc.events += 1;
                    acc.sum += n.unwrap_or(0.0);
                }
                Contribution::Items(items) => {
                    acc.events += 1;
                    for item in items {
                        let n = acc.items.entry(item.clone()).or_insert(0);
                        *n += 1;
                        state.put(ITEM, &item_key(&key, i, item), encode_count(*n));
                    }
                }
            }
        }
        state.put(PANE, &key, pane.encode());
    }

    /// Takes a pane out of both timer queues.
    fn unschedule(&mut self, id: &PaneId) {
        let Some(pane) = self.panes.get(id) else { return };
        let slot = Slot { at: pane.end, start: pane.start, group: id.group.clone(), wid: id.wid };
        self.fire_queue.remove(&slot);
        self.purge_queue.remove(&Slot { at: pane.end + self.plan.allowed_lateness, ..slot });
    }

    /// Emits a pane's results (and its alert), then keeps it for late events until purged.
    fn fire(
        &mut self,
        id: &PaneId,
        emitted_at: i64,
        state: &mut dyn State,
        out: &mut Output,
    ) -> Result<(), ComponentError> {
        self.unschedule(id);
        let late_events = match self.late.remove(&id.group) {
            Some(n) => {
                state.delete(LATE, id.group.as_bytes());
                n
            }
            None => 0,
        };
        let Some(pane) = self.panes.get_mut(id) else { return Ok(()) };
        pane.firings += 1;
        self.clock.stats.fired += 1;
        if pane.firings > 1 {
            self.clock.stats.refired += 1;
        }
        let kind = self.plan.windows.kind();
        let record_key = self.plan.key.as_ref().map(|_| id.group.as_bytes().to_vec());
        for (metric, acc) in self.plan.metrics.iter().zip(&pane.metrics) {
            let (value, top) = match &metric.kind {
                MetricKind::Count => (None, Vec::new()),
                MetricKind::Sum(_) => (Some(acc.sum), Vec::new()),
                MetricKind::DistinctCount(_) => (Some(acc.items.len() as f64), Vec::new()),
                MetricKind::TopK(_, k) => (None, top_k(&acc.items, *k)),
            };
            let aggregate = WindowAggregate {
                operator: self.name.clone(),
                window_kind: kind,
                window_start: pane.start,
                window_end: pane.end,
                key: id.group.clone(),
                metric: metric.name.clone(),
                value,
                count: saturating_i64(acc.events),
                top,
                late_events: saturating_i64(late_events),
                emitted_at,
            };
            let bytes = weir_schemas::encode(&aggregate)
                .map_err(|e| ComponentError::fatal(format!("encoding a WindowAggregate: {e}")))?;
            let id_header =
                format!("{}/{}/{}/{}/{}/{}", self.name, pane.start, pane.end, metric.name, pane.firings, id.group);
            let mut record = Record::new(pane.end - 1, bytes).with_header(ID_HEADER, id_header);
            record.key.clone_from(&record_key);
            out.emit(record);
        }
        if let Some(threshold) = &self.plan.threshold {
            let acc = &pane.metrics[threshold.metric];
            let value = match self.plan.metrics[threshold.metric].kind {
                MetricKind::Count => acc.events as f64,
                MetricKind::Sum(_) => acc.sum,
                MetricKind::DistinctCount(_) => acc.items.len() as f64,
                MetricKind::TopK(..) => f64::NAN,
            };
            if !pane.alerted && value > threshold.above {
                pane.alerted = true;
                self.clock.stats.alerts += 1;
                let metric = &self.plan.metrics[threshold.metric].name;
                let violation = alert(&self.name, threshold, metric, value, &id.group, pane);
                let bytes = weir_schemas::encode(&violation)
                    .map_err(|e| ComponentError::fatal(format!("encoding a Violation: {e}")))?;
                let mut record = Record::new(pane.end - 1, bytes)
                    .with_header(ID_HEADER, format!("{}/alerts/{}", self.name, violation.violation_key));
                record.key.clone_from(&record_key);
                out.emit_side(ALERTS_OUTPUT, record);
            }
        }
        state.put(PANE, &pane_key(id), pane.encode());
        let slot =
            Slot { at: pane.end + self.plan.allowed_lateness, start: pane.start, group: id.group.clone(), wid: id.wid };
        self.purge_queue.insert(slot);
        Ok(())
    }

    /// Deletes a pane and its items.
    fn purge(&mut self, id: &PaneId, state: &mut dyn State) {
        self.unschedule(id);
        let Some(pane) = self.panes.remove(id) else { return };
        let key = pane_key(id);
        for (i, acc) in pane.metrics.iter().enumerate() {
            for item in acc.items.keys() {
                state.delete(ITEM, &item_key(&key, i, item));
            }
        }
        state.delete(PANE, &key);
        if matches!(self.plan.windows, Windows::Session { .. }) {
            self.sessions.remove(&(id.group.clone(), pane.start));
        }
    }

    /// The watermark moved to `watermark`: fire the windows it passed (their results say they
    /// were emitted at `emitted_at`), purge those past their lateness.
    fn advance(
        &mut self,
        watermark: i64,
        emitted_at: i64,
        state: &mut dyn State,
        out: &mut Output,
    ) -> Result<(), ComponentError> {
        while self.fire_queue.first().is_some_and(|slot| slot.at <= watermark) {
            let Some(slot) = self.fire_queue.pop_first() else { break };
            self.fire(&PaneId { group: slot.group, wid: slot.wid }, emitted_at, state, out)?;
        }
        while self.purge_queue.first().is_some_and(|slot| slot.at <= watermark) {
            let Some(slot) = self.purge_queue.pop_first() else { break };
            self.purge(&PaneId { group: slot.group, wid: slot.wid }, state);
        }
        Ok(())
    }

    /// Rebuilds memory from state; errors name what is wrong.
    fn load(&mut self, state: &dyn State) -> Result<(), String> {
        let mut clock = None;
        let mut shape = None;
        state
            .scan(META, &mut |key, value| match key {
                CLOCK_KEY => clock = Some(Clock::decode(value)),
                SHAPE_KEY => shape = Some(value.to_vec()),
                _ => {}
            })
            .map_err(|e| e.message)?;
        self.clock = clock.transpose().map_err(|e| e.to_string())?.unwrap_or_default();
        if let Some(stored) = &shape {
            if stored.as_slice() != self.shape.as_bytes() {
                return Err(format!(
                    "the state was built with another window, key or metrics ({}; now {}): \
                     reset this operator's state or give it a new name",
                    String::from_utf8_lossy(stored),
                    self.shape
                ));
            }
        }
        self.shape_stored = shape.is_some();
        let metrics = self.plan.metrics.len();
        let mut panes = Vec::new();
        let mut failure: Option<CorruptState> = None;
        state
            .scan(
                PANE,
                &mut |key, value| match split_pane_key(key).and_then(|(id, _)| Ok((id, Pane::decode(value)?))) {
                    Ok((_, pane)) if pane.metrics.len() != metrics => {
                        failure.get_or_insert(CorruptState("pane with another number of metrics"));
                    }
                    Ok(pane) => panes.push(pane),
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                },
            )
            .map_err(|e| e.message)?;
        self.panes = panes.into_iter().collect();
        state
            .scan(ITEM, &mut |key, value| {
                let parsed = split_pane_key(key).and_then(|(id, rest)| {
                    let (metric, item) = split_item_rest(rest)?;
                    Ok((id, metric, item, decode_count(value)?))
                });
                match parsed {
                    Ok((id, metric, item, n)) => {
                        match self.panes.get_mut(&id).and_then(|pane| pane.metrics.get_mut(metric)) {
                            Some(acc) => {
                                acc.items.insert(item, n);
                            }
                            None => {
                                failure.get_or_insert(CorruptState("item of a missing pane or metric"));
                            }
                        }
                    }
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                }
            })
            .map_err(|e| e.message)?;
        state
            .scan(LATE, &mut |key, value| match (String::from_utf8(key.to_vec()), decode_count(value)) {
                (Ok(group), Ok(n)) => {
                    self.late.insert(group, n);
                }
                _ => {
                    failure.get_or_insert(CorruptState("late count"));
                }
            })
            .map_err(|e| e.message)?;
        if let Some(e) = failure {
            return Err(e.to_string());
        }
        let watermark = self.watermark();
        let lateness = self.plan.allowed_lateness;
        let sessions = matches!(self.plan.windows, Windows::Session { .. });
        for (id, pane) in &self.panes {
            let slot = Slot { at: pane.end, start: pane.start, group: id.group.clone(), wid: id.wid };
            // Every pane the watermark passed has fired (firing happens in the same step).
            if pane.end > watermark {
                self.fire_queue.insert(slot);
            } else {
                self.purge_queue.insert(Slot { at: pane.end + lateness, ..slot });
            }
            if sessions {
                self.sessions.insert((id.group.clone(), pane.start), id.wid);
            }
        }
        Ok(())
    }
}

impl Operator for Aggregate {
    fn restore(&mut self, state: &dyn State) -> Result<(), ComponentError> {
        self.clock = Clock::default();
        self.shape_stored = false;
        self.panes.clear();
        self.sessions.clear();
        self.fire_queue.clear();
        self.purge_queue.clear();
        self.late.clear();
        self.load(state).map_err(|e| ComponentError::fatal(format!("aggregate {}: restoring state: {e}", self.name)))
    }

    fn process(&mut self, input: &StoredRecord, state: &mut dyn State, out: &mut Output) -> Result<(), ComponentError> {
        if !self.shape_stored {
            state.put(META, SHAPE_KEY, self.shape.clone().into_bytes());
            self.shape_stored = true;
        }
        self.clock.stats.events += 1;
        let read = match self.read(&input.record) {
            Ok(read) => read,
            Err(reason) => {
                self.clock.stats.rejected += 1;
                state.put(META, CLOCK_KEY, self.clock.encode());
                out.reject(reason, &input.record.value);
                return Ok(());
            }
        };
        let watermark = self.watermark();
        let time = match read {
            Read::FilteredOut(time) => {
                self.clock.stats.filtered_out += 1;
                time
            }
            Read::MissingKey(time) => {
                self.clock.stats.missing_key += 1;
                time
            }
            Read::Event(event) => {
                self.aggregate(&event, &input.record, watermark, state, out)?;
                event.time
            }
        };
        self.clock.max_event_time = self.clock.max_event_time.max(time);
        let advanced = self.watermark();
        if advanced > watermark {
            self.advance(advanced, advanced, state, out)?;
        }
        state.put(META, CLOCK_KEY, self.clock.encode());
        Ok(())
    }

    /// The watermark goes to +infinity ([`END_OF_INPUT`]): every window not fired yet fires, in
    /// the order and with the ids of a normal firing, its results saying `emitted_at` = the
    /// latest event time seen; then every window is purged. The new watermark is committed with
    /// them, so a second call (or a restart after the commit) emits nothing, and any later event
    /// is late.
    fn end_of_input(&mut self, state: &mut dyn State, out: &mut Output) -> Result<(), ComponentError> {
        if self.input_ended() {
            return Ok(());
        }
        if !self.shape_stored {
            state.put(META, SHAPE_KEY, self.shape.clone().into_bytes());
            self.shape_stored = true;
        }
        let latest_event_time = self.clock.max_event_time;
        self.clock.max_event_time = END_OF_INPUT;
        self.advance(END_OF_INPUT, latest_event_time, state, out)?;
        state.put(META, CLOCK_KEY, self.clock.encode());
        Ok(())
    }

    /// The state is per group key, so with several workers the input is repartitioned by it:
    /// the group key's text (as `key` reads it), and nothing for a record without one or for an
    /// operator without `key` (one group: every record goes to partition 0, one worker).
    fn partitioning(&self) -> Partitioning {
        let Some(path) = self.plan.key.clone() else {
            return Partitioning::ByStateKey(std::sync::Arc::new(|_| None));
        };
        Partitioning::ByStateKey(std::sync::Arc::new(move |record| {
            let value = decode_input(&record.value).ok()?;
            path.get(&value).and_then(scalar_text).map(String::into_bytes)
        }))
    }

    fn side_outputs(&self) -> Vec<String> {
        let mut sides = vec![LATE_OUTPUT.to_string()];
        if self.plan.threshold.is_some() {
            sides.push(ALERTS_OUTPUT.to_string());
        }
        sides
    }

    /// `meta/clock` (latest event time, counters), `meta/shape`, a `pane` header (group, window,
    /// bounds, counts, each metric's events and sum by name), an `item` (its metric and count)
    /// or a `late` count.
    fn describe_state(&self, table: &str, key: &[u8], value: &[u8]) -> Option<serde_json::Value> {
        let metrics: Vec<&str> = self.plan.metrics.iter().map(|m| m.name.as_str()).collect();
        state::describe(table, key, value, &metrics)
    }
}

/// The `k` most frequent items, most frequent first, ties by item.
fn top_k(items: &BTreeMap<String, u64>, k: usize) -> Vec<TopItem> {
    let mut ranked: Vec<(&String, &u64)> = items.iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    ranked.into_iter().take(k).map(|(item, n)| TopItem { item: item.clone(), count: saturating_i64(*n) }).collect()
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The stable key of a threshold violation: operator, rule, key and window start, hashed.
pub fn violation_key(operator: &str, rule_id: &str, key: &str, window_start: i64) -> String {
    let mut hasher = Sha256::new();
    for part in [operator.as_bytes(), rule_id.as_bytes(), key.as_bytes(), window_start.to_string().as_bytes()] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Milliseconds as RFC 3339 (UTC), or the number when out of range.
fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// The violation a window above its threshold raises.
fn alert(operator: &str, threshold: &config::Threshold, metric: &str, value: f64, key: &str, pane: &Pane) -> Violation {
    let violation_key = violation_key(operator, &threshold.rule_id, key, pane.start);
    let (start, end) = (rfc3339(pane.start), rfc3339(pane.end));
    let labels = BTreeMap::from([
        ("operator".to_string(), operator.to_string()),
        ("metric".to_string(), metric.to_string()),
        ("value".to_string(), value.to_string()),
        ("threshold".to_string(), threshold.above.to_string()),
        ("window_start".to_string(), start.clone()),
        ("window_end".to_string(), end.clone()),
    ]);
    Violation {
        violation_key,
        rule_id: threshold.rule_id.clone(),
        rule_description: threshold.description.clone(),
        severity_id: threshold.severity_id,
        status: ViolationStatus::Open,
        first_seen: pane.min_time,
        last_seen: pane.max_time,
        subject: key.to_string(),
        event_uid: pane.last_uid.clone().unwrap_or_else(|| format!("{operator}/{}/{}/{key}", pane.start, pane.end)),
        labels,
        summary: format!(
            "{}: {metric} = {value} for {:?} in [{start}, {end}), above {}",
            threshold.rule_id, key, threshold.above
        ),
    }
}
