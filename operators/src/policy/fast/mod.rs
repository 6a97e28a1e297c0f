//! The fast path of the policy operator: rules whose condition (and subject) [`compile`] into
//! native code run over events decoded straight from their Avro bytes by [`avro`], reading only
//! the fields some rule uses. An event goes the interpreted way instead (whole decoding, CEL) when
//! any rule that applies to it is not compiled, when a compiled rule is not sure of its result
//! (where CEL would report an error, or for kinds of values it leaves to CEL), or when the bytes
//! are not the current schema's; both ways give the same decisions, byte for byte.

pub mod avro;
pub mod compile;
pub mod encode;

use std::collections::HashMap;

use weir_schemas::avro::{Registry, HEADER_LEN, SINGLE_OBJECT_MARKER};
use weir_schemas::events::EnrichedEvent;

use self::avro::{FieldTree, Node, Reader};
use self::compile::{Compiled, Reads, Vars};
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

impl FastSet {
    /// Compiles what it can of `rules`.
    pub fn new(rules: &[Rule]) -> FastSet {
        let mut reads = Reads::default();
        let mut conditions = Vec::with_capacity(rules.len());
        let mut subjects = Vec::with_capacity(rules.len());
        for rule in rules {
            conditions.push(compile::compile(rule.condition.expression(), &mut reads));
            subjects.push(match &rule.subject {
                None => {
                    for path in DEFAULT_SUBJECT_PATHS {
                        reads.event.insert(path, false);
                    }
                    SubjectPlan::Default
                }
                Some(program) => match compile::compile(program.expression(), &mut reads) {
                    Some(compiled) => SubjectPlan::Compiled(compiled),
                    None => SubjectPlan::Interpreted,
                },
            });
        }
        for tree in [&mut reads.user, &mut reads.device, &mut reads.asset] {
            tree.insert(&["uid"], false);
        }
        let registry = Registry::embedded();
        let mut enriched_tree = FieldTree::default();
        for field in ["event_uid", "class_uid", "time", "event", "missing_context"] {
            enriched_tree.insert(&[field], true);
        }
        for (field, tree) in
            [("user_context", &reads.user), ("device_context", &reads.device), ("asset_context", &reads.asset)]
        {
            enriched_tree.children.insert(field.to_string(), tree.clone());
        }
        let enriched = registry
            .current(EnrichedEvent::SCHEMA_NAME)
            .and_then(|s| Some((s.fingerprint(), Reader::new(s.schema(), &enriched_tree)?)));
        let events = registry
            .schemas()
            .filter(|s| s.is_current())
            .filter_map(|s| Some((s.fingerprint(), Reader::new(s.schema(), &reads.event)?)))
            .collect();
        FastSet { conditions, subjects, enriched, events }
    }

    /// The compiled condition of rule `index`.
    pub fn condition(&self, index: usize) -> Option<&Compiled> {
        self.conditions.get(index).and_then(Option::as_ref)
    }

    /// How rule `index` names its subject.
    pub fn subject(&self, index: usize) -> &SubjectPlan {
        self.subjects.get(index).unwrap_or(&SubjectPlan::Interpreted)
    }

    /// Decodes an `EnrichedEvent` record (single-object encoded, current schema); `None` when it
    /// must go the interpreted way.
    pub fn decode_enriched<'a>(&self, bytes: &'a [u8]) -> Option<Enriched<'a>> {
        let (fingerprint, reader) = self.enriched.as_ref()?;
        let node = reader.read_all(datum(bytes, *fingerprint)?).ok()?;
        Enriched::new(node)
    }

    /// Decodes a typed event (single-object encoded, current schema of its type).
    pub fn decode_event<'a>(&self, bytes: &'a [u8]) -> Option<Node<'a>> {
        let fingerprint = u64::from_le_bytes(bytes.get(2..HEADER_LEN)?.try_into().ok()?);
        let reader = self.events.get(&fingerprint)?;
        reader.read_all(datum(bytes, fingerprint)?).ok()
    }
}

/// The datum after a single-object header naming `fingerprint`.
fn datum(bytes: &[u8], fingerprint: u64) -> Option<&[u8]> {
    if bytes.len() < HEADER_LEN || bytes[..2] != SINGLE_OBJECT_MARKER {
        return None;
    }
    (bytes[2..HEADER_LEN] == fingerprint.to_le_bytes()).then(|| &bytes[HEADER_LEN..])
}

/// An `EnrichedEvent` decoded by the fast path: the fields the operator and the rules read.
pub struct Enriched<'a> {
    /// The whole decoded record.
    node: Node<'a>,
    /// `event_uid`.
    pub event_uid: &'a str,
    /// `class_uid`.
    pub class_uid: i32,
    /// `time`.
    pub time: i64,
    /// `event`: the typed event's bytes.
    pub event: &'a [u8],
}

static NULL: Node<'static> = Node::Null;
static EMPTY: Node<'static> = Node::List(Vec::new());

impl<'a> Enriched<'a> {
    fn new(node: Node<'a>) -> Option<Enriched<'a>> {
        let event_uid = node.get("event_uid")?.as_str()?;
        let class_uid = match node.get("class_uid")? {
            Node::Int(i) => i32::try_from(*i).ok()?,
            _ => return None,
        };
        let time = match node.get("time")? {
            Node::Int(i) => *i,
            _ => return None,
        };
        let event = match node.get("event")? {
            Node::Bytes(b) => *b,
            _ => return None,
        };
        Some(Enriched { event_uid, class_uid, time, event, node })
    }

    /// The variables rules see, with `event` decoded (or not).
    pub fn vars<'n>(&'n self, event: Option<&'n Node<'a>>) -> Vars<'n, 'a> {
        Vars {
            event,
            user: self.node.get("user_context").unwrap_or(&NULL),
            device: self.node.get("device_context").unwrap_or(&NULL),
            asset: self.node.get("asset_context").unwrap_or(&NULL),
            class_uid: i64::from(self.class_uid),
            missing: self.node.get("missing_context").unwrap_or(&EMPTY),
        }
    }

    /// The default subject, as [`super::eval::Activation::default_subject`] finds it; the outer
    /// `None` when it needs the typed event and that was not decoded.
    pub fn default_subject(&self, event: Option<&Node<'a>>) -> Option<Option<String>> {
        let uid = |context: &str| {
            self.node.get(context).and_then(|c| c.get("uid")).and_then(Node::as_str).filter(|s| !s.is_empty())
        };
        if let Some(uid) = uid("user_context") {
            return Some(Some(uid.to_string()));
        }
        let event = event?;
        let lookup = |path: &[&str]| path.iter().try_fold(event, |v, key| v.get(key)).and_then(Node::as_str);
        if let Some(found) = DEFAULT_SUBJECT_PATHS.iter().find_map(|path| lookup(path).filter(|s| !s.is_empty())) {
            return Some(Some(found.to_string()));
        }
        Some(uid("device_context").or_else(|| uid("asset_context")).map(str::to_string))
    }
}

#[cfg(test)]
mod tests;
