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

use cel::common::ast::{Expr, IdedExpr, LiteralValue};

use super::avro::{FieldTree, Node};

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
    Path(Var, Vec<Step>),
    /// `has(x.field)`.
    Has(Box<Compiled>, String),
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
                    if let Compiled::Path(var, steps) = &target {
                        let mut steps = steps.clone();
                        steps.push(Step::Field(select.field.clone()));
                        reads.add(*var, &steps, false);
                    }
                    return Some(Compiled::Has(Box::new(target), select.field.clone()));
                }
            }
            let (var, steps) = path(expr)?;
            reads.add(var, &steps, false);
            Some(Compiled::Path(var, steps))
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
                            if let Compiled::Path(var, steps) = b.as_ref() {
                                reads.add(*var, steps, true);
                            }
                            Some(Compiled::In(a, b))
                        }
                        "_[_]" => {
                            let (var, steps) = path(expr)?;
                            reads.add(var, &steps, false);
                            Some(Compiled::Path(var, steps))
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
    if let Compiled::Path(var, steps) = &compiled {
        // The size of a record counts all its fields.
        reads.add(*var, steps, true);
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

/// What compiled expressions read from: the decoded variables of one event.
pub struct Vars<'n, 'a> {
    /// `event`, when decoded.
    pub event: Option<&'n Node<'a>>,
    /// `user`: the record, or null.
    pub user: &'n Node<'a>,
    /// `device`.
    pub device: &'n Node<'a>,
    /// `asset`.
    pub asset: &'n Node<'a>,
    /// `class_uid`.
    pub class_uid: i64,
    /// `missing`: a list of strings.
    pub missing: &'n Node<'a>,
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

/// The value of `var` and `steps` below it; `None` when not sure.
#[inline(always)]
fn path_value<'n, 'a: 'n>(var: Var, steps: &'n [Step], vars: &Vars<'n, 'a>) -> Option<Val<'n, 'a>> {
    let mut value = match var {
        Var::Event => of_node(vars.event?),
        Var::User => of_node(vars.user),
        Var::Device => of_node(vars.device),
        Var::Asset => of_node(vars.asset),
        Var::ClassUid => Val::Int(vars.class_uid),
        Var::Missing => of_node(vars.missing),
    };
    for step in steps {
        value = match (step, value) {
            (Step::Field(name), Val::Object(node)) => of_node(node.get(name)?),
            (Step::Index(i), Val::List(items)) => of_node(items.get(usize::try_from(*i).ok()?)?),
            _ => return None,
        };
    }
    Some(value)
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
    pub fn subject(&self, vars: &Vars<'_, '_>) -> Option<Option<String>> {
        let text = match self.operand(vars)? {
            Val::Str(s) => s.to_string(),
            Val::Int(i) => i.to_string(),
            Val::Bool(b) => b.to_string(),
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
            Compiled::Path(var, steps) => path_value(*var, steps, vars),
            _ => self.eval(vars),
        }
    }

    fn eval<'n, 'a: 'n>(&'n self, vars: &Vars<'n, 'a>) -> Option<Val<'n, 'a>> {
        use Val::*;
        Some(match self {
            Compiled::Lit(lit) => of_lit(lit),
            Compiled::List(items) => Lits(items),
            Compiled::Path(var, steps) => path_value(*var, steps, vars)?,
            Compiled::Has(target, field) => match target.operand(vars)? {
                Object(node) => Bool(node.get(field).is_some()),
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
