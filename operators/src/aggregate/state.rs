//! The aggregate operator's state layout and its byte encoding.
//!
//! Tables (namespaced by the runner under the operator's name):
//!
//! | table  | key                                        | value |
//! | ------ | ------------------------------------------ | ----- |
//! | `meta` | `clock`                                    | [`Clock`]: latest event time, next session id, counters |
//! | `meta` | `shape`                                    | the plan's shape (window, key, metrics), checked on restore |
//! | `pane` | [`pane_key`] (group, window id)            | [`Pane`] header: bounds, counts, sums, firings |
//! | `item` | pane key, metric index (u16 BE), item text | occurrences of the item (u64 BE) in that pane's metric |
//! | `late` | group                                      | late events not yet reported (u64 BE) |
//!
//! A *pane* is one window of one group. Its window id is the window start for tumbling and
//! hopping windows, and a session number (from `Clock::next_session`) for sessions, whose bounds
//! move as they grow and merge; the id never changes, so growing a session rewrites only its
//! header. Items (distinct values, top-k candidates) are one state entry each, so an event writes
//! only the items it touches.
//!
//! Integers are big-endian; strings are a u32 length then UTF-8 bytes; every value starts with a
//! format version byte.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// Table of the clock and the shape.
pub(crate) const META: &str = "meta";
/// Table of pane headers.
pub(crate) const PANE: &str = "pane";
/// Table of pane items.
pub(crate) const ITEM: &str = "item";
/// Table of unreported late counts per group.
pub(crate) const LATE: &str = "late";
/// Key of the [`Clock`] in [`META`].
pub(crate) const CLOCK_KEY: &[u8] = b"clock";
/// Key of the shape in [`META`].
pub(crate) const SHAPE_KEY: &[u8] = b"shape";

const VERSION: u8 = 1;

/// Why stored state could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("corrupt aggregate state ({0})")]
pub(crate) struct CorruptState(pub(crate) &'static str);

/// Counters of what the operator did with its input; kept in state so they survive restarts
/// exactly like the windows do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AggregateStats {
    /// Input records read (including rejected ones).
    pub events: u64,
    /// Events added to at least one window.
    pub aggregated: u64,
    /// Events the operator's `filter` left out.
    pub filtered_out: u64,
    /// Events left out because their key path was missing (`missing_key = "skip"`).
    pub missing_key: u64,
    /// Events too late for every window they belonged to: sent to the `late` side output.
    pub late: u64,
    /// Events rejected to the dead-letter topic.
    pub rejected: u64,
    /// Window results emitted (one per window, key and firing; each holds one record per metric).
    pub fired: u64,
    /// Of those, firings of windows that had already fired (late updates).
    pub refired: u64,
    /// Threshold violations emitted on the `alerts` side output.
    pub alerts: u64,
}

/// Event-time progress and counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Clock {
    /// Latest event time seen; `i64::MIN` before the first event, `END_OF_INPUT` (`i64::MAX`)
    /// once the input ended (`Operator::end_of_input`).
    pub(crate) max_event_time: i64,
    /// The next session window id.
    pub(crate) next_session: i64,
    /// Counters.
    pub(crate) stats: AggregateStats,
}

impl Default for Clock {
    fn default() -> Self {
        Clock { max_event_time: i64::MIN, next_session: 0, stats: AggregateStats::default() }
    }
}

impl Clock {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.i64(self.max_event_time);
        w.i64(self.next_session);
        let s = &self.stats;
        for n in
            [s.events, s.aggregated, s.filtered_out, s.missing_key, s.late, s.rejected, s.fired, s.refired, s.alerts]
        {
            w.u64(n);
        }
        w.0
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Clock, CorruptState> {
        let mut r = Reader::new(bytes, "clock")?;
        let max_event_time = r.i64()?;
        let next_session = r.i64()?;
        let stats = AggregateStats {
            events: r.u64()?,
            aggregated: r.u64()?,
            filtered_out: r.u64()?,
            missing_key: r.u64()?,
            late: r.u64()?,
            rejected: r.u64()?,
            fired: r.u64()?,
            refired: r.u64()?,
            alerts: r.u64()?,
        };
        r.end()?;
        Ok(Clock { max_event_time, next_session, stats })
    }
}

/// One metric's accumulator in a pane.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Acc {
    /// Events the metric covered (that passed its filter).
    pub(crate) events: u64,
    /// Sum of the field (sum metrics).
    pub(crate) sum: f64,
    /// Item → occurrences (distinct_count and top_k); stored in the `item` table.
    pub(crate) items: BTreeMap<String, u64>,
}

/// One window of one group.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Pane {
    /// Window start, inclusive.
    pub(crate) start: i64,
    /// Window end, exclusive.
    pub(crate) end: i64,
    /// Events in the pane.
    pub(crate) events: u64,
    /// Earliest and latest event time in the pane.
    pub(crate) min_time: i64,
    pub(crate) max_time: i64,
    /// How often it has fired.
    pub(crate) firings: u32,
    /// Whether its threshold alert was emitted.
    pub(crate) alerted: bool,
    /// The id of its latest event (for alerts; only kept when a threshold is configured).
    pub(crate) last_uid: Option<String>,
    /// One accumulator per metric, in configuration order.
    pub(crate) metrics: Vec<Acc>,
}

impl Pane {
    pub(crate) fn new(start: i64, end: i64, metrics: usize) -> Pane {
        Pane {
            start,
            end,
            events: 0,
            min_time: i64::MAX,
            max_time: i64::MIN,
            firings: 0,
            alerted: false,
            last_uid: None,
            metrics: vec![Acc::default(); metrics],
        }
    }

    /// The header (everything but the items).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.i64(self.start);
        w.i64(self.end);
        w.u64(self.events);
        w.i64(self.min_time);
        w.i64(self.max_time);
        w.u64(u64::from(self.firings));
        w.u8(u8::from(self.alerted));
        match &self.last_uid {
            Some(uid) => {
                w.u8(1);
                w.str(uid);
            }
            None => w.u8(0),
        }
        w.u64(self.metrics.len() as u64);
        for acc in &self.metrics {
            w.u64(acc.events);
            w.u64(acc.sum.to_bits());
        }
        w.0
    }

    /// A pane from its header; items are added from the `item` table.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Pane, CorruptState> {
        let mut r = Reader::new(bytes, "pane")?;
        let start = r.i64()?;
        let end = r.i64()?;
        let events = r.u64()?;
        let min_time = r.i64()?;
        let max_time = r.i64()?;
        let firings = u32::try_from(r.u64()?).map_err(|_| CorruptState("pane firings"))?;
        let alerted = r.u8()? != 0;
        let last_uid = match r.u8()? {
            0 => None,
            _ => Some(r.str()?),
        };
        let n = r.u64()?;
        if n > 1 << 16 {
            return Err(CorruptState("pane metric count"));
        }
        let mut metrics = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let events = r.u64()?;
            let sum = f64::from_bits(r.u64()?);
            metrics.push(Acc { events, sum, items: BTreeMap::new() });
        }
        r.end()?;
        Ok(Pane { start, end, events, min_time, max_time, firings, alerted, last_uid, metrics })
    }
}

/// A pane's identity: its group and window id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PaneId {
    pub(crate) group: String,
    pub(crate) wid: i64,
}

/// The state key of a pane: group length (u32 BE), group, window id (sign-flipped u64 BE, so
/// keys sort by id).
pub(crate) fn pane_key(id: &PaneId) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + id.group.len() + 8);
    key.extend_from_slice(&(id.group.len() as u32).to_be_bytes());
    key.extend_from_slice(id.group.as_bytes());
    key.extend_from_slice(&ordered(id.wid));
    key
}

/// The state key of one item of one metric of a pane.
pub(crate) fn item_key(pane: &[u8], metric: usize, item: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(pane.len() + 2 + item.len());
    key.extend_from_slice(pane);
    key.extend_from_slice(&(metric as u16).to_be_bytes());
    key.extend_from_slice(item.as_bytes());
    key
}

/// Splits a pane key; returns the id and the rest of the key.
pub(crate) fn split_pane_key(key: &[u8]) -> Result<(PaneId, &[u8]), CorruptState> {
    let bad = CorruptState("pane key");
    let len = key.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()).ok_or(bad.clone())?;
    let len = u32::from_be_bytes(len) as usize;
    let group = key.get(4..4 + len).ok_or(bad.clone())?;
    let group = String::from_utf8(group.to_vec()).map_err(|_| bad.clone())?;
    let wid = key.get(4 + len..12 + len).and_then(|b| <[u8; 8]>::try_from(b).ok()).ok_or(bad)?;
    let wid = (u64::from_be_bytes(wid) ^ (1 << 63)) as i64;
    Ok((PaneId { group, wid }, &key[12 + len..]))
}

/// Splits the rest of an item key after the pane key: metric index and item.
pub(crate) fn split_item_rest(rest: &[u8]) -> Result<(usize, String), CorruptState> {
    let bad = CorruptState("item key");
    let metric = rest.get(..2).and_then(|b| <[u8; 2]>::try_from(b).ok()).ok_or(bad.clone())?;
    let item = String::from_utf8(rest[2..].to_vec()).map_err(|_| bad)?;
    Ok((u16::from_be_bytes(metric) as usize, item))
}

/// A u64 counter value.
pub(crate) fn encode_count(n: u64) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

/// A u64 counter value back.
pub(crate) fn decode_count(bytes: &[u8]) -> Result<u64, CorruptState> {
    <[u8; 8]>::try_from(bytes).map(u64::from_be_bytes).map_err(|_| CorruptState("counter"))
}

/// The readable form of one entry (for `weir state get`), or `None` when the table is not one
/// of the operator's or the entry does not decode. `metrics` names the metrics by index.
pub(crate) fn describe(table: &str, key: &[u8], value: &[u8], metrics: &[&str]) -> Option<Value> {
    // `i64::MIN` and `i64::MAX` stand for "not yet" (no event).
    let time = |ms: i64| (ms != i64::MIN && ms != i64::MAX).then(|| crate::describe_time(ms));
    let metric = |i: usize| metrics.get(i).copied();
    match table {
        META if key == CLOCK_KEY => {
            let clock = Clock::decode(value).ok()?;
            let s = &clock.stats;
            Some(json!({
                "max_event_time": time(clock.max_event_time),
                // Stored as the latest event time by `end_of_input` (`weir run --drain`).
                "input_ended": clock.max_event_time == crate::aggregate::END_OF_INPUT,
                "next_session": clock.next_session,
                "stats": {
                    "events": s.events,
                    "aggregated": s.aggregated,
                    "filtered_out": s.filtered_out,
                    "missing_key": s.missing_key,
                    "late": s.late,
                    "rejected": s.rejected,
                    "fired": s.fired,
                    "refired": s.refired,
                    "alerts": s.alerts,
                },
            }))
        }
        META if key == SHAPE_KEY => Some(json!({ "shape": std::str::from_utf8(value).ok()? })),
        PANE => {
            let (id, _) = split_pane_key(key).ok().filter(|(_, rest)| rest.is_empty())?;
            let pane = Pane::decode(value).ok()?;
            let accs: Vec<Value> = pane
                .metrics
                .iter()
                .enumerate()
                .map(|(i, acc)| json!({ "metric": metric(i), "events": acc.events, "sum": acc.sum }))
                .collect();
            Some(json!({
                    "group": id.group,
                    "window_id": id.wid,
                    "start": time(pane.start),
                    "end": time(pane.end),
                    "events": pane.events,
                    "min_time": time(pane.min_time),
                    "max_time": time(pane.max_time),
                    "firings": pane.firings,
                    "alerted": pane.alerted,
                    "last_uid": pane.last_uid,
                "metrics": accs,
            }))
        }
        ITEM => {
            let (id, rest) = split_pane_key(key).ok()?;
            let (index, item) = split_item_rest(rest).ok()?;
            let count = decode_count(value).ok()?;
            Some(json!({
                "group": id.group,
                "window_id": id.wid,
                "metric": metric(index),
                "metric_index": index,
                "item": item,
                "count": count,
            }))
        }
        LATE => Some(json!({ "group": std::str::from_utf8(key).ok()?, "late": decode_count(value).ok()? })),
        _ => None,
    }
}

fn ordered(n: i64) -> [u8; 8] {
    ((n as u64) ^ (1 << 63)).to_be_bytes()
}

/// Appends big-endian fields after a version byte.
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn new() -> Writer {
        Writer(vec![VERSION])
    }
    pub(crate) fn u8(&mut self, n: u8) {
        self.0.push(n);
    }
    pub(crate) fn u64(&mut self, n: u64) {
        self.0.extend_from_slice(&n.to_be_bytes());
    }
    pub(crate) fn i64(&mut self, n: i64) {
        self.0.extend_from_slice(&n.to_be_bytes());
    }
    pub(crate) fn str(&mut self, s: &str) {
        self.0.extend_from_slice(&(s.len() as u32).to_be_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
}

/// Reads what a [`Writer`] wrote.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Result<Reader<'a>, CorruptState> {
        match bytes.split_first() {
            Some((&VERSION, rest)) => Ok(Reader { bytes: rest, what }),
            _ => Err(CorruptState(what)),
        }
    }
    fn take<const N: usize>(&mut self) -> Result<[u8; N], CorruptState> {
        let (head, rest) = self.bytes.split_at_checked(N).ok_or(CorruptState(self.what))?;
        self.bytes = rest;
        <[u8; N]>::try_from(head).map_err(|_| CorruptState(self.what))
    }
    pub(crate) fn u8(&mut self) -> Result<u8, CorruptState> {
        Ok(self.take::<1>()?[0])
    }
    pub(crate) fn u64(&mut self) -> Result<u64, CorruptState> {
        Ok(u64::from_be_bytes(self.take()?))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, CorruptState> {
        Ok(i64::from_be_bytes(self.take()?))
    }
    pub(crate) fn str(&mut self) -> Result<String, CorruptState> {
        let len = u32::from_be_bytes(self.take()?) as usize;
        let (head, rest) = self.bytes.split_at_checked(len).ok_or(CorruptState(self.what))?;
        self.bytes = rest;
        String::from_utf8(head.to_vec()).map_err(|_| CorruptState(self.what))
    }
    pub(crate) fn end(&self) -> Result<(), CorruptState> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(CorruptState(self.what))
        }
    }
}
