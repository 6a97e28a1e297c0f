//! Compiling the common shapes of CEL conditions into native code over partially decoded events.
//!
//! Supported: literals (null, bool, int, string, lists of those), the variables, field selection
//! and `has()`, indexing with a literal, `==`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `&&`, `||`, `!`,
//! `?:`, `size()` and the string functions `startsWith`, `endsWith` and `contains`. Anything else
//! is left to the CEL interpreter.
//!
//! Evaluation is three-valued: a definite value, or [`None`] ("not sure") whenever CEL would fail
//! (a missing field, selecting from null, a type mismatch) or the operands are of a kind this code
//! does not compare (doubles, lists with lists, maps). The caller then asks the interpreter, so
//! a compiled rule gives exactly CEL's result, errors included.

use std::borrow::Cow;

use cel::common::ast::{Expr, IdedExpr, LiteralValue};

use super::avro::{FieldTree, Node, Slot, SlotTree};

/// The variables a compiled expression reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    /// `event`: the typed event.
    Event,
    /// `user`: the user context, or null.
    User,
    /// `device`.
    Device,
    /// `asset`.
    Asset,
    /// `class_uid`.
    ClassUid,
    /// `missing`.
    Missing,
}

/// A literal.
#[derive(Clone, Debug, PartialEq)]
pub enum Lit {
    /// `null`.
    Null,
    /// A bool.
    Bool(bool),
    /// An int.
    Int(i64),
    /// A string.
    Str(String),
}

/// One step of a path below a variable.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// `.name` or `["name"]`.
    Field(String),
    /// `[i]` on a list.
    Index(i64),
}

/// An ordering comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

/// A string function of a string and a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrFn {
    /// `startsWith`.
    StartsWith,
    /// `endsWith`.
    EndsWith,
    /// `contains`.
    Contains,
}

/// A compiled expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Compiled {
    /// A literal.
    Lit(Lit),
    /// A list literal of literals.
    List(Vec<Lit>),
    /// A variable and a path below it.
    Path(PathRef),
    /// `has(x.field)`, with the slot of `x.field` when `x` is read field by field.
    Has(Box<Compiled>, String, Option<u16>),
    /// `a && b`.
    And(Box<Compiled>, Box<Compiled>),
    /// `a || b`.
    Or(Box<Compiled>, Box<Compiled>),
    /// `!a`.
    Not(Box<Compiled>),
    /// `c ? a : b`.
    Cond(Box<Compiled>, Box<Compiled>, Box<Compiled>),
    /// `a == b` (or `!=` when the flag is false).
    Eq(Box<Compiled>, Box<Compiled>, bool),
    /// An ordering comparison.
    Cmp(Box<Compiled>, Box<Compiled>, Cmp),
    /// `a in b`.
    In(Box<Compiled>, Box<Compiled>),
    /// `size(a)`.
    Size(Box<Compiled>),
    /// `s.startsWith(t)` and friends.
    Str(Box<Compiled>, Box<Compiled>, StrFn),
}

/// A path below a variable, and where its value is found once decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct PathRef {
    /// The variable.
    pub var: Var,
    /// The steps below it.
    pub steps: Vec<Step>,
    /// The slots of the variable and of each field of the path that has one (set by
    /// [`Compiled::resolve`]; empty before, which evaluates to "not sure").
    chain: Vec<u16>,
}

impl PathRef {
    fn new(var: Var, steps: Vec<Step>) -> PathRef {
        PathRef { var, steps, chain: Vec::new() }
    }
}

/// The slots of a compiled policy set: the `EnrichedEvent`'s fields (its contexts are `user`,
/// `device` and `asset`), then the typed event's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The `EnrichedEvent`, slot 0.
    pub enriched: SlotTree,
    /// The typed event (`event`), numbered after the enriched event's slots.
    pub event: SlotTree,
    /// How many slots there are.
    len: u16,
}

impl Layout {
    /// Numbers the fields of `enriched` and then those of `event`.
    pub fn new(enriched: &FieldTree, event: &FieldTree) -> Layout {
        let mut next = 0;
        let enriched = SlotTree::number(enriched, &mut next);
        let event = SlotTree::number(event, &mut next);
        Layout { enriched, event, len: next }
    }

    /// How many slots an event needs.
    pub fn slot_count(&self) -> usize {
        usize::from(self.len)
    }

    /// The slots of the typed event.
    pub fn event_slots(&self) -> std::ops::Range<usize> {
        usize::from(self.event.slot)..self.slot_count()
    }

    /// The slot tree of `var` (`None` for `class_uid`, which is not decoded).
    pub fn root(&self, var: Var) -> Option<&SlotTree> {
        match var {
            Var::Event => Some(&self.event),
            Var::User => self.enriched.child("user_context"),
            Var::Device => self.enriched.child("device_context"),
            Var::Asset => self.enriched.child("asset_context"),
            Var::Missing => self.enriched.child("missing_context"),
            Var::ClassUid => None,
        }
    }

    /// The slots along `steps` below `var`: the variable's, then each leading field's that has
    /// one (a list index, or a field below a value read whole, ends the chain).
    fn chain(&self, var: Var, steps: &[Step]) -> Vec<u16> {
        let Some(mut node) = self.root(var) else {
            return Vec::new();
        };
        let mut chain = vec![node.slot];
        for step in steps {
            match step {
                Step::Field(name) => match node.child(name) {
                    Some(child) => {
                        chain.push(child.slot);
                        node = child;
                    }
                    None => break,
                },
                Step::Index(_) => break,
            }
        }
        chain
    }

    /// The slot of the field `field` of the value at `var` and `steps`, when that value is read
    /// field by field.
    fn field_slot(&self, var: Var, steps: &[Step], field: &str) -> Option<u16> {
        let mut node = self.root(var)?;
        for step in steps {
            node = match step {
                Step::Field(name) => node.child(name)?,
                Step::Index(_) => return None,
            };
        }
        node.child(field).map(|child| child.slot)
    }
}

/// The fields compiled expressions read, per variable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reads {
    /// Of `event`.
    pub event: FieldTree,
    /// Of `user`.
    pub user: FieldTree,
    /// Of `device`.
    pub device: FieldTree,
    /// Of `asset`.
    pub asset: FieldTree,
}

impl Reads {
    fn tree(&mut self, var: Var) -> Option<&mut FieldTree> {
        match var {
            Var::Event => Some(&mut self.event),
            Var::User => Some(&mut self.user),
            Var::Device => Some(&mut self.device),
            Var::Asset => Some(&mut self.asset),
            Var::ClassUid | Var::Missing => None,
        }
    }

    fn add(&mut self, var: Var, steps: &[Step], whole: bool) {
        let names: Vec<&str> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Field(name) => Some(name.as_str()),
                Step::Index(_) => None,
            })
            .collect();
        if let Some(tree) = self.tree(var) {
            tree.insert(&names, whole);
        }
    }
}

/// Compiles `expr`, adding the fields it reads to `reads`; `None` when it uses anything outside
/// the supported shapes.
pub fn compile(expr: &IdedExpr, reads: &mut Reads) -> Option<Compiled> {
    let mut local = reads.clone();
    let compiled = compile_expr(expr, &mut local)?;
    *reads = local;
    Some(compiled)
}

fn compile_expr(expr: &IdedExpr, reads: &mut Reads) -> Option<Compiled> {
    let boxed = |e: &IdedExpr, reads: &mut Reads| compile_expr(e, reads).map(Box::new);
    match &expr.expr {
        Expr::Literal(lit) => Some(Compiled::Lit(literal(lit)?)),
        Expr::List(list) => {
            if !list.optional_indices.is_empty() {
                return None;
            }
            let items = list
                .elements
                .iter()
                .map(|e| match &e.expr {
                    Expr::Literal(lit) => literal(lit),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?;
            Some(Compiled::List(items))
        }
        Expr::Ident(_) | Expr::Select(_) => {
            if let Expr::Select(select) = &expr.expr {
                if select.test {
                    let target = compile_expr(&select.operand, reads)?;
                    if let Compiled::Path(path) = &target {
                        let mut steps = path.steps.clone();
                        steps.push(Step::Field(select.field.clone()));
                        reads.add(path.var, &steps, false);
                    }
                    return Some(Compiled::Has(Box::new(target), select.field.clone(), None));
                }
            }
            let (var, steps) = path(expr)?;
            reads.add(var, &steps, false);
            Some(Compiled::Path(PathRef::new(var, steps)))
        }
        Expr::Call(call) => {
            let name = call.func_name.as_str();
            match (&call.target, call.args.as_slice()) {
                (None, [a, b]) => {
                    let pair = |reads: &mut Reads| Some((boxed(a, reads)?, boxed(b, reads)?));
                    match name {
                        "_&&_" => pair(reads).map(|(a, b)| Compiled::And(a, b)),
                        "_||_" => pair(reads).map(|(a, b)| Compiled::Or(a, b)),
                        "_==_" => pair(reads).map(|(a, b)| Compiled::Eq(a, b, true)),
                        "_!=_" => pair(reads).map(|(a, b)| Compiled::Eq(a, b, false)),
                        "_<_" => pair(reads).map(|(a, b)| Compiled::Cmp(a, b, Cmp::Lt)),
                        "_<=_" => pair(reads).map(|(a, b)| Compiled::Cmp(a, b, Cmp::Le)),
                        "_>_" => pair(reads).map(|(a, b)| Compiled::Cmp(a, b, Cmp::Gt)),
                        "_>=_" => pair(reads).map(|(a, b)| Compiled::Cmp(a, b, Cmp::Ge)),
                        "@in" => {
                            let (a, b) = pair(reads)?;
                            // Membership in a map or record looks at all its keys.
                            if let Compiled::Path(path) = b.as_ref() {
                                reads.add(path.var, &path.steps, true);
                            }
                            Some(Compiled::In(a, b))
                        }
                        "_[_]" => {
                            let (var, steps) = path(expr)?;
                            reads.add(var, &steps, false);
                            Some(Compiled::Path(PathRef::new(var, steps)))
                        }
                        _ => None,
                    }
                }
                (None, [a]) if name == "!_" => Some(Compiled::Not(boxed(a, reads)?)),
                (None, [a]) if name == "size" => size(a, reads),
                (Some(target), []) if name == "size" => size(target, reads),
                (None, [c, a, b]) if name == "_?_:_" => {
                    Some(Compiled::Cond(boxed(c, reads)?, boxed(a, reads)?, boxed(b, reads)?))
                }
                (Some(target), [arg]) => {
                    let function = match name {
                        "startsWith" => StrFn::StartsWith,
                        "endsWith" => StrFn::EndsWith,
                        "contains" => StrFn::Contains,
                        _ => return None,
                    };
                    Some(Compiled::Str(boxed(target, reads)?, boxed(arg, reads)?, function))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn size(target: &IdedExpr, reads: &mut Reads) -> Option<Compiled> {
    let compiled = compile_expr(target, reads)?;
    if let Compiled::Path(path) = &compiled {
        // The size of a record counts all its fields.
        reads.add(path.var, &path.steps, true);
    }
    Some(Compiled::Size(Box::new(compiled)))
}

fn literal(lit: &LiteralValue) -> Option<Lit> {
    Some(match lit {
        LiteralValue::Null => Lit::Null,
        LiteralValue::Boolean(b) => Lit::Bool(*b.inner()),
        LiteralValue::Int(i) => Lit::Int(*i.inner()),
        LiteralValue::String(s) => Lit::Str(s.inner().to_string()),
        _ => return None,
    })
}

/// A chain of selections and literal indexes rooted at a variable.
fn path(expr: &IdedExpr) -> Option<(Var, Vec<Step>)> {
    match &expr.expr {
        Expr::Ident(name) => Some((
            match name.as_str() {
                "event" => Var::Event,
                "user" => Var::User,
                "device" => Var::Device,
                "asset" => Var::Asset,
                "class_uid" => Var::ClassUid,
                "missing" => Var::Missing,
                _ => return None,
            },
            Vec::new(),
        )),
        Expr::Select(select) if !select.test => {
            let (var, mut steps) = path(&select.operand)?;
            steps.push(Step::Field(select.field.clone()));
            Some((var, steps))
        }
        Expr::Call(call) if call.func_name == "_[_]" && call.target.is_none() && call.args.len() == 2 => {
            let (var, mut steps) = path(&call.args[0])?;
            match &call.args[1].expr {
                Expr::Literal(LiteralValue::Int(i)) => steps.push(Step::Index(*i.inner())),
                Expr::Literal(LiteralValue::String(s)) => steps.push(Step::Field(s.inner().to_string())),
                _ => return None,
            }
            Some((var, steps))
        }
        _ => None,
    }
}

/// What compiled expressions read from: the decoded slots of one event (see [`Layout`]).
pub struct Vars<'n, 'a> {
    /// The slots.
    pub slots: &'n [Slot<'a>],
    /// `class_uid`.
    pub class_uid: i64,
}

/// A value during evaluation.
#[derive(Clone, Copy, Debug)]
pub enum Val<'n, 'a> {
    /// `null`.
    Null,
    /// A bool.
    Bool(bool),
    /// An int.
    Int(i64),
    /// A string.
    Str(&'n str),
    /// A decoded list.
    List(&'n [Node<'a>]),
    /// A list literal.
    Lits(&'n [Lit]),
    /// A decoded record or map.
    Object(&'n Node<'a>),
    /// A record read field by field: its fields are in their own slots.
    Record,
    /// Anything else (doubles, non-UTF-8 bytes): never compared here.
    Other,
}

fn of_node<'n, 'a>(node: &'n Node<'a>) -> Val<'n, 'a> {
    match node {
        Node::Null => Val::Null,
        Node::Bool(b) => Val::Bool(*b),
        Node::Int(i) => Val::Int(*i),
        Node::Str(s) => Val::Str(s),
        Node::Bytes(b) => std::str::from_utf8(b).map_or(Val::Other, Val::Str),
        Node::List(items) => Val::List(items),
        Node::Record(_) | Node::Map(_) => Val::Object(node),
        Node::Double(_) => Val::Other,
    }
}

fn of_lit<'n, 'a>(lit: &'n Lit) -> Val<'n, 'a> {
    match lit {
        Lit::Null => Val::Null,
        Lit::Bool(b) => Val::Bool(*b),
        Lit::Int(i) => Val::Int(*i),
        Lit::Str(s) => Val::Str(s),
    }
}

fn of_slot<'n, 'a>(slot: &'n Slot<'a>) -> Option<Val<'n, 'a>> {
    match slot {
        Slot::Unset => None,
        Slot::Record => Some(Val::Record),
        Slot::Value(node) => Some(of_node(node)),
    }
}

/// The value of `path`; `None` when not sure.
#[inline(always)]
fn path_value<'n, 'a: 'n>(path: &'n PathRef, vars: &Vars<'n, 'a>) -> Option<Val<'n, 'a>> {
    let Some(&last) = path.chain.last() else {
        return match path.var {
            Var::ClassUid => walk(Val::Int(vars.class_uid), &path.steps),
            _ => None,
        };
    };
    // The chain's last slot is the path's value, or the value the rest of the steps go into.
    if let Some(value) = of_slot(vars.slots.get(usize::from(last))?) {
        return walk(value, &path.steps[path.chain.len() - 1..]);
    }
    // Not reached: a record on the way was null or lacked the field (not sure), unless a map
    // on the way was read whole, so the steps below it go by name.
    let (found, value) = path.chain.iter().enumerate().rev().find_map(|(i, &slot)| {
        let value = of_slot(vars.slots.get(usize::from(slot))?)?;
        Some((i, value))
    })?;
    match value {
        Val::Object(_) => walk(value, &path.steps[found..]),
        _ => None,
    }
}

/// `steps` below `value`.
#[inline(always)]
fn walk<'n, 'a: 'n>(mut value: Val<'n, 'a>, steps: &'n [Step]) -> Option<Val<'n, 'a>> {
    for step in steps {
        value = match (step, value) {
            (Step::Field(name), Val::Object(node)) => of_node(node.get(name)?),
            (Step::Index(i), Val::List(items)) => of_node(items.get(usize::try_from(*i).ok()?)?),
            _ => return None,
        };
    }
    Some(value)
}

/// A conjunct at the top of a condition that compares a path with literals (`path == lit`,
/// `path in [lits]`): when the path's value is sure and none of the literals, the condition is
/// false, whatever its other conjuncts are (CEL's `&&` is false when either side is false, even if
/// the other is an error), so the rule need not be evaluated.
#[derive(Clone, Debug, PartialEq)]
pub struct Guard {
    /// The index of the path among the set's guard paths.
    pub path: usize,
    /// The values the path may have for the condition to hold.
    pub accepts: Vec<Lit>,
}

impl Guard {
    /// Whether `value` (the guard path's, `None` when not sure) shows the condition false.
    #[inline]
    pub fn excludes(&self, value: Option<Val<'_, '_>>) -> bool {
        match value {
            Some(value @ (Val::Null | Val::Bool(_) | Val::Int(_) | Val::Str(_))) => {
                !self.accepts.iter().any(|lit| equals(of_lit(lit), value) == Some(true))
            }
            _ => false,
        }
    }
}

/// CEL's `==` where it is sure: `None` for the kinds it leaves to the interpreter.
fn equals(a: Val<'_, '_>, b: Val<'_, '_>) -> Option<bool> {
    use Val::*;
    match (a, b) {
        (Other, _) | (_, Other) => None,
        (Null, Null) => Some(true),
        (Null, _) | (_, Null) => Some(false),
        (Bool(x), Bool(y)) => Some(x == y),
        (Int(x), Int(y)) => Some(x == y),
        (Str(x), Str(y)) => Some(x == y),
        (Bool(_) | Int(_) | Str(_), Bool(_) | Int(_) | Str(_)) => Some(false),
        _ => None,
    }
}

impl Compiled {
    /// Finds where every path's value will be in the slots of `layout` (which must number every
    /// field [`compile`] added to the reads).
    pub fn resolve(&mut self, layout: &Layout) {
        match self {
            Compiled::Lit(_) | Compiled::List(_) => {}
            Compiled::Path(path) => path.chain = layout.chain(path.var, &path.steps),
            Compiled::Has(target, field, slot) => {
                if let Compiled::Path(path) = target.as_ref() {
                    *slot = layout.field_slot(path.var, &path.steps, field);
                }
                target.resolve(layout);
            }
            Compiled::Not(a) | Compiled::Size(a) => a.resolve(layout),
            Compiled::And(a, b)
            | Compiled::Or(a, b)
            | Compiled::Eq(a, b, _)
            | Compiled::Cmp(a, b, _)
            | Compiled::In(a, b)
            | Compiled::Str(a, b, _) => {
                a.resolve(layout);
                b.resolve(layout);
            }
            Compiled::Cond(c, a, b) => {
                c.resolve(layout);
                a.resolve(layout);
                b.resolve(layout);
            }
        }
    }

    /// The top-level conjuncts of this condition that compare a path with literals, as (path,
    /// literals the path may equal).
    pub fn guards(&self) -> Vec<(&PathRef, Vec<Lit>)> {
        let mut guards = Vec::new();
        self.collect_guards(&mut guards);
        guards
    }

    fn collect_guards<'c>(&'c self, guards: &mut Vec<(&'c PathRef, Vec<Lit>)>) {
        match self {
            Compiled::And(a, b) => {
                a.collect_guards(guards);
                b.collect_guards(guards);
            }
            Compiled::Eq(a, b, true) => match (a.as_ref(), b.as_ref()) {
                (Compiled::Path(path), Compiled::Lit(lit)) | (Compiled::Lit(lit), Compiled::Path(path)) => {
                    guards.push((path, vec![lit.clone()]));
                }
                _ => {}
            },
            Compiled::In(a, b) => {
                if let (Compiled::Path(path), Compiled::List(lits)) = (a.as_ref(), b.as_ref()) {
                    guards.push((path, lits.clone()));
                }
            }
            _ => {}
        }
    }

    /// The value of a path expression; `None` when not sure or not a path.
    #[inline]
    pub fn value<'n, 'a: 'n>(&'n self, vars: &Vars<'n, 'a>) -> Option<Val<'n, 'a>> {
        match self {
            Compiled::Path(path) => path_value(path, vars),
            _ => None,
        }
    }

    /// A compiled path (to be resolved like any expression).
    pub fn path(var: Var, steps: &[&str]) -> Compiled {
        Compiled::Path(PathRef::new(var, steps.iter().map(|s| Step::Field((*s).to_string())).collect()))
    }

    /// The value as text, when it is a (non-empty) string: the default subject's test.
    pub fn text<'n, 'a: 'n>(&'n self, vars: &Vars<'n, 'a>) -> Option<&'n str> {
        match self.operand(vars)? {
            Val::Str(s) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    /// Evaluates to a bool; `None` when not sure (then ask the interpreter).
    #[inline]
    pub fn holds(&self, vars: &Vars<'_, '_>) -> Option<bool> {
        match self.eval(vars)? {
            Val::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// Evaluates a subject: its text (`None` inside when null or empty), as
    /// [`super::super::eval::subject_value`] does; `None` when not sure.
    pub fn subject<'n, 'a: 'n>(&'n self, vars: &Vars<'n, 'a>) -> Option<Option<Cow<'n, str>>> {
        let text = match self.operand(vars)? {
            Val::Str(s) => Cow::Borrowed(s),
            Val::Int(i) => Cow::Owned(i.to_string()),
            Val::Bool(b) => Cow::Owned(b.to_string()),
            Val::Null => return Some(None),
            _ => return None,
        };
        Some((!text.is_empty()).then_some(text))
    }

    /// [`Compiled::eval`] with the leaves (literals and paths, most operands) evaluated in place
    /// rather than through a recursive call: evaluation is mostly calls to leaves.
    #[inline(always)]
    fn operand<'n, 'a: 'n>(&'n self, vars: &Vars<'n, 'a>) -> Option<Val<'n, 'a>> {
        match self {
            Compiled::Lit(lit) => Some(of_lit(lit)),
            Compiled::List(items) => Some(Val::Lits(items)),
            Compiled::Path(path) => path_value(path, vars),
            _ => self.eval(vars),
        }
    }

    fn eval<'n, 'a: 'n>(&'n self, vars: &Vars<'n, 'a>) -> Option<Val<'n, 'a>> {
        use Val::*;
        Some(match self {
            Compiled::Lit(lit) => of_lit(lit),
            Compiled::List(items) => Lits(items),
            Compiled::Path(path) => path_value(path, vars)?,
            Compiled::Has(target, field, slot) => match target.operand(vars)? {
                Object(node) => Bool(node.get(field).is_some()),
                // Every field of a record read field by field that has a slot is set: an unset
                // one is not in the record's schema.
                Record => Bool(!matches!(vars.slots.get(usize::from((*slot)?))?, Slot::Unset)),
                _ => return None,
            },
            Compiled::And(a, b) => match a.operand(vars)? {
                Bool(false) => Bool(false),
                Bool(true) => Bool(b.holds(vars)?),
                _ => return None,
            },
            Compiled::Or(a, b) => match a.operand(vars)? {
                Bool(true) => Bool(true),
                Bool(false) => Bool(b.holds(vars)?),
                _ => return None,
            },
            Compiled::Not(a) => Bool(!a.holds(vars)?),
            Compiled::Cond(c, a, b) => {
                if c.holds(vars)? {
                    a.operand(vars)?
                } else {
                    b.operand(vars)?
                }
            }
            Compiled::Eq(a, b, want) => Bool(equals(a.operand(vars)?, b.operand(vars)?)? == *want),
            Compiled::Cmp(a, b, cmp) => {
                let ordering = match (a.operand(vars)?, b.operand(vars)?) {
                    (Int(x), Int(y)) => x.cmp(&y),
                    (Str(x), Str(y)) => x.cmp(y),
                    _ => return None,
                };
                Bool(match cmp {
                    Cmp::Lt => ordering.is_lt(),
                    Cmp::Le => ordering.is_le(),
                    Cmp::Gt => ordering.is_gt(),
                    Cmp::Ge => ordering.is_ge(),
                })
            }
            Compiled::In(a, b) => {
                let needle = a.operand(vars)?;
                match b.operand(vars)? {
                    Lits(items) => {
                        for item in items {
                            if equals(of_lit(item), needle)? {
                                return Some(Bool(true));
                            }
                        }
                        Bool(false)
                    }
                    List(items) => {
                        for item in items {
                            if equals(of_node(item), needle)? {
                                return Some(Bool(true));
                            }
                        }
                        Bool(false)
                    }
                    Object(node) => match needle {
                        Str(key) => Bool(node.get(key).is_some()),
                        _ => return None,
                    },
                    _ => return None,
                }
            }
            Compiled::Size(a) => match a.operand(vars)? {
                Str(s) => Int(i64::try_from(s.chars().count()).ok()?),
                List(items) => Int(i64::try_from(items.len()).ok()?),
                Lits(items) => Int(i64::try_from(items.len()).ok()?),
                Object(Node::Record(fields) | Node::Map(fields)) => Int(i64::try_from(fields.len()).ok()?),
                _ => return None,
            },
            Compiled::Str(s, t, function) => match (s.operand(vars)?, t.operand(vars)?) {
                (Str(s), Str(t)) => Bool(match function {
                    StrFn::StartsWith => s.starts_with(t),
                    StrFn::EndsWith => s.ends_with(t),
                    StrFn::Contains => s.contains(t),
                }),
                _ => return None,
            },
        })
    }
}
