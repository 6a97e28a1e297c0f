//! The fast path of the policy operator: rules whose condition (and subject) [`compile`] into
//! native code run over events decoded straight from their Avro bytes by [`avro`], reading only
//! the fields some rule uses. An event goes the interpreted way instead (whole decoding, CEL) when
//! any rule that applies to it is not compiled, when a compiled rule is not sure of its result
//! (where CEL would report an error, or for kinds of values it leaves to CEL), or when the bytes
//! are not the current schema's; both ways give the same decisions, byte for byte.
//!
//! Three things keep it fast: decoded values go to numbered slots ([`compile::Layout`]), so a rule
//! finds a field by index and decoding allocates little; conjuncts comparing a path with
//! literals are **guards** ([`compile::Guard`]), read once per event, so a rule whose guard fails
//! is known false without being evaluated (rule sets often hold many rules that differ only in
//! such a constant: a department, a vendor, a region); and decisions are encoded straight from
//! the verdicts ([`encode`]).

pub mod avro;
pub mod compile;
pub mod encode;

use std::borrow::Cow;
use std::collections::HashMap;

use weir_schemas::avro::{Registry, HEADER_LEN, SINGLE_OBJECT_MARKER};
use weir_schemas::events::EnrichedEvent;

use self::avro::{FieldTree, Node, Reader, Slot};
use self::compile::{Compiled, Guard, Layout, Reads, Val, Var, Vars};
use super::rules::Rule;
use weir_schemas::avro::AvroRecord;

/// How a rule's violations name their subject on the fast path.
#[derive(Debug)]
pub enum SubjectPlan {
    /// The default subject (no `subject` expression).
    Default,
    /// A compiled `subject` expression.
    Compiled(Compiled),
    /// A `subject` the fast path cannot evaluate: the rule's events go the interpreted way.
    Interpreted,
}

/// The compiled form of a policy set.
pub struct FastSet {
    /// Per rule (same order as the set's rules): the compiled condition, if it compiles.
    conditions: Vec<Option<Compiled>>,
    /// Per rule: how to name a violation's subject.
    subjects: Vec<SubjectPlan>,
    /// Per rule: its condition's guards (see [`Guard`]).
    guards: Vec<Vec<Guard>>,
    /// The paths guards read, each once.
    guard_paths: Vec<Compiled>,
    /// Where decoded values go.
    layout: Layout,
    /// The `EnrichedEvent`'s fields the operator reads, by slot.
    fields: EnrichedSlots,
    /// The default subject's paths, in the order it tries them.
    default_subject: DefaultSubject,
    /// The reader of the current `EnrichedEvent` schema, and its fingerprint.
    enriched: Option<(u64, Reader<'static>)>,
    /// Readers of the typed events, by the fingerprint of their current schema.
    events: HashMap<u64, Reader<'static>>,
}

impl std::fmt::Debug for FastSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastSet")
            .field("compiled", &self.conditions.iter().filter(|c| c.is_some()).count())
            .field("rules", &self.conditions.len())
            .field("slots", &self.layout.slot_count())
            .finish()
    }
}

/// The paths the default subject looks at in the typed event, in order.
pub const DEFAULT_SUBJECT_PATHS: [&[&str]; 6] = [
    &["actor", "user", "uid"],
    &["actor", "user", "name"],
    &["actor", "uid"],
    &["actor", "name"],
    &["user", "uid"],
    &["user", "name"],
];

/// The `EnrichedEvent` fields the operator itself reads.
const ENRICHED_FIELDS: [&str; 5] = ["event_uid", "class_uid", "time", "event", "missing_context"];

/// The slots of [`ENRICHED_FIELDS`].
#[derive(Debug)]
struct EnrichedSlots {
    event_uid: usize,
    class_uid: usize,
    time: usize,
    event: usize,
}

/// The default subject's paths, resolved: the user context's uid, then the typed event's
/// [`DEFAULT_SUBJECT_PATHS`], then the device's and the asset's uid.
#[derive(Debug)]
struct DefaultSubject {
    user: Compiled,
    event: Vec<Compiled>,
    device: Compiled,
    asset: Compiled,
}

impl FastSet {
    /// Compiles what it can of `rules`.
    pub fn new(rules: &[Rule]) -> FastSet {
        let mut reads = Reads::default();
        let mut conditions = Vec::with_capacity(rules.len());
        let mut subjects = Vec::with_capacity(rules.len());
        for rule in rules {
            conditions.push(compile::compile(rule.condition.expression(), &mut reads));
            subjects.push(match &rule.subject {
                None => SubjectPlan::Default,
                Some(program) => match compile::compile(program.expression(), &mut reads) {
                    Some(compiled) => SubjectPlan::Compiled(compiled),
                    None => SubjectPlan::Interpreted,
                },
            });
        }
        if subjects.iter().any(|s| matches!(s, SubjectPlan::Default)) {
            for path in DEFAULT_SUBJECT_PATHS {
                reads.event.insert(path, false);
            }
        }
        for tree in [&mut reads.user, &mut reads.device, &mut reads.asset] {
            tree.insert(&["uid"], false);
        }
        let mut enriched_tree = FieldTree::default();
        for field in ENRICHED_FIELDS {
            enriched_tree.insert(&[field], true);
        }
        for (field, tree) in
            [("user_context", &reads.user), ("device_context", &reads.device), ("asset_context", &reads.asset)]
        {
            enriched_tree.children.insert(field.to_string(), tree.clone());
        }
        let layout = Layout::new(&enriched_tree, &reads.event);
        for compiled in conditions.iter_mut().flatten() {
            compiled.resolve(&layout);
        }
        for subject in &mut subjects {
            if let SubjectPlan::Compiled(compiled) = subject {
                compiled.resolve(&layout);
            }
        }
        let mut guard_paths: Vec<Compiled> = Vec::new();
        let guards = conditions
            .iter()
            .map(|condition| {
                let Some(condition) = condition else {
                    return Vec::new();
                };
                condition
                    .guards()
                    .into_iter()
                    .map(|(path, accepts)| {
                        let path = Compiled::Path(path.clone());
                        let index = guard_paths.iter().position(|p| *p == path).unwrap_or_else(|| {
                            guard_paths.push(path);
                            guard_paths.len() - 1
                        });
                        Guard { path: index, accepts }
                    })
                    .collect()
            })
            .collect();
        let resolved = |var, path: &[&str]| {
            let mut compiled = Compiled::path(var, path);
            compiled.resolve(&layout);
            compiled
        };
        let default_subject = DefaultSubject {
            user: resolved(Var::User, &["uid"]),
            event: DEFAULT_SUBJECT_PATHS.iter().map(|path| resolved(Var::Event, path)).collect(),
            device: resolved(Var::Device, &["uid"]),
            asset: resolved(Var::Asset, &["uid"]),
        };
        let slot = |field: &str| layout.enriched.child(field).map_or(usize::MAX, |c| usize::from(c.slot));
        let fields = EnrichedSlots {
            event_uid: slot("event_uid"),
            class_uid: slot("class_uid"),
            time: slot("time"),
            event: slot("event"),
        };
        let registry = Registry::embedded();
        let enriched = registry
            .current(EnrichedEvent::SCHEMA_NAME)
            .and_then(|s| Some((s.fingerprint(), Reader::slotted(s.schema(), &layout.enriched)?)));
        let events = registry
            .schemas()
            .filter(|s| s.is_current())
            .filter_map(|s| Some((s.fingerprint(), Reader::slotted(s.schema(), &layout.event)?)))
            .collect();
        FastSet { conditions, subjects, guards, guard_paths, layout, fields, default_subject, enriched, events }
    }

    /// The compiled condition of rule `index`.
    pub fn condition(&self, index: usize) -> Option<&Compiled> {
        self.conditions.get(index).and_then(Option::as_ref)
    }

    /// Whether a guard of rule `index` shows its condition false (see [`Guard`]); `memo` holds the
    /// guard paths' values of this event, as they are needed (start with [`FastSet::guard_memo`]).
    #[inline]
    pub fn excluded<'n, 'a: 'n>(&'n self, index: usize, vars: &Vars<'n, 'a>, memo: &mut GuardMemo<'n, 'a>) -> bool {
        let Some(guards) = self.guards.get(index) else {
            return false;
        };
        guards.iter().any(|guard| {
            let value = match memo.get(guard.path) {
                Some(Some(value)) => *value,
                Some(unread) => *unread.insert(self.guard_paths.get(guard.path).and_then(|p| p.value(vars))),
                None => None,
            };
            guard.excludes(value)
        })
    }

    /// An empty memo of guard path values for [`FastSet::excluded`].
    pub fn guard_memo<'n, 'a>(&self) -> GuardMemo<'n, 'a> {
        let values = if self.guard_paths.len() <= FEW_GUARD_PATHS {
            GuardValues::Few([None; FEW_GUARD_PATHS])
        } else {
            GuardValues::Many(vec![None; self.guard_paths.len()])
        };
        GuardMemo { values }
    }

    /// How rule `index` names its subject.
    pub fn subject(&self, index: usize) -> &SubjectPlan {
        self.subjects.get(index).unwrap_or(&SubjectPlan::Interpreted)
    }

    /// Decodes an `EnrichedEvent` record (single-object encoded, current schema); `None` when it
    /// must go the interpreted way. The typed event inside is decoded by [`FastSet::decode_event`].
    pub fn decode_enriched<'a>(&self, bytes: &'a [u8]) -> Option<Enriched<'a>> {
        let (fingerprint, reader) = self.enriched.as_ref()?;
        // Not `vec![Slot::Unset; n]`, which clones element by element; this writes only tags.
        let mut slots: Vec<Slot<'a>> = (0..self.layout.slot_count()).map(|_| Slot::Unset).collect();
        reader.read_all_into(datum(bytes, *fingerprint)?, &mut slots, self.layout.enriched.slot).ok()?;
        let text = |slot: usize| match slots.get(slot) {
            Some(Slot::Value(node)) => node.as_str(),
            _ => None,
        };
        let int = |slot: usize| match slots.get(slot) {
            Some(Slot::Value(Node::Int(i))) => Some(*i),
            _ => None,
        };
        let event = match slots.get(self.fields.event) {
            Some(Slot::Value(Node::Bytes(b))) => *b,
            _ => return None,
        };
        Some(Enriched {
            event_uid: text(self.fields.event_uid)?,
            class_uid: i32::try_from(int(self.fields.class_uid)?).ok()?,
            time: int(self.fields.time)?,
            event,
            slots,
        })
    }

    /// Decodes the typed event inside `enriched` (single-object encoded, current schema of its
    /// type); `false` when it cannot (then rules that read `event` are not sure).
    pub fn decode_event(&self, enriched: &mut Enriched<'_>) -> bool {
        let bytes = enriched.event;
        let Some(fingerprint) = bytes.get(2..HEADER_LEN).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes) else {
            return false;
        };
        let Some(reader) = self.events.get(&fingerprint) else {
            return false;
        };
        let read = datum(bytes, fingerprint)
            .is_some_and(|datum| reader.read_all_into(datum, &mut enriched.slots, self.layout.event.slot).is_ok());
        if !read {
            // A datum that failed halfway may have set some slots: none of it counts.
            enriched.slots[self.layout.event_slots()].fill(Slot::Unset);
        }
        read
    }

    /// The default subject, as [`super::eval::Activation::default_subject`] finds it; the outer
    /// `None` when it needs the typed event and that was not decoded.
    pub fn default_subject<'n, 'a: 'n>(&'n self, vars: &Vars<'n, 'a>) -> Option<Option<Cow<'n, str>>> {
        let found = |path: &'n Compiled| path.text(vars).map(Cow::Borrowed);
        if let Some(uid) = found(&self.default_subject.user) {
            return Some(Some(uid));
        }
        if matches!(vars.slots.get(usize::from(self.layout.event.slot)), None | Some(Slot::Unset)) {
            return None;
        }
        if let Some(found) = self.default_subject.event.iter().find_map(found) {
            return Some(Some(found));
        }
        Some(found(&self.default_subject.device).or_else(|| found(&self.default_subject.asset)))
    }
}

/// The values of the guard paths for one event, read once each when first needed.
pub struct GuardMemo<'n, 'a> {
    values: GuardValues<'n, 'a>,
}

/// Most sets have few guard paths: their values fit on the stack.
#[allow(clippy::large_enum_variant)] // On the stack on purpose: one per event, never moved.
enum GuardValues<'n, 'a> {
    Few([Option<Option<Val<'n, 'a>>>; FEW_GUARD_PATHS]),
    Many(Vec<Option<Option<Val<'n, 'a>>>>),
}

const FEW_GUARD_PATHS: usize = 16;

impl<'n, 'a> GuardMemo<'n, 'a> {
    fn get(&mut self, path: usize) -> Option<&mut Option<Option<Val<'n, 'a>>>> {
        match &mut self.values {
            GuardValues::Few(values) => values.get_mut(path),
            GuardValues::Many(values) => values.get_mut(path),
        }
    }
}

/// The datum after a single-object header naming `fingerprint`.
fn datum(bytes: &[u8], fingerprint: u64) -> Option<&[u8]> {
    if bytes.len() < HEADER_LEN || bytes[..2] != SINGLE_OBJECT_MARKER {
        return None;
    }
    (bytes[2..HEADER_LEN] == fingerprint.to_le_bytes()).then(|| &bytes[HEADER_LEN..])
}

/// An `EnrichedEvent` decoded by the fast path: the fields the operator reads, and the slots
/// rules read (see [`compile::Layout`]).
pub struct Enriched<'a> {
    /// The decoded values.
    slots: Vec<Slot<'a>>,
    /// `event_uid`.
    pub event_uid: &'a str,
    /// `class_uid`.
    pub class_uid: i32,
    /// `time`.
    pub time: i64,
    /// `event`: the typed event's bytes.
    pub event: &'a [u8],
}

impl<'a> Enriched<'a> {
    /// The variables rules see.
    pub fn vars(&self) -> Vars<'_, 'a> {
        Vars { slots: &self.slots, class_uid: i64::from(self.class_uid) }
    }
}

#[cfg(test)]
mod tests;
