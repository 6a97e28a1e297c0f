//! Policy files: the TOML format, its validation, and compiling a policy directory into one
//! [`PolicySet`].
//!
//! # Format
//!
//! ```toml
//! [[rules]]
//! id = "shadow-ai.unapproved-service"   # unique across the set
//! description = "Generative AI service not approved for the user's department"
//! owner = "secops@example.com"
//! classes = [6001, 4002]                # OCSF class_uid the rule runs on; [] or absent = all
//! condition = '''
//! event.app != null && event.app.category == "Generative AI"
//!   && !(event.app.name in ["ChatGPT Enterprise"])
//! '''                                   # CEL, must evaluate to a bool
//! decision = "review"                   # allow | deny | review
//! severity = "medium"                   # informational | low | medium | high | critical
//! labels = { team = "ai", route = "ticket" }   # strings, for routing (optional)
//! subject = "user.uid"                  # CEL: who or what a violation is about (optional)
//! auto_resolve = true                   # resolve when the condition stops holding (optional)
//!
//! [[rules.tests]]                       # inline tests (optional, see `testing`)
//! name = "consumer chatbot"
//! expect = true
//! event = { class_uid = 6001, event = { app = { name = "Claude", category = "Generative AI" } } }
//! ```
//!
//! Conditions and subjects see `event`, `class_uid`, `user`, `device`, `asset` and `missing` (see
//! [`super::eval`]), CEL's standard library with the `strings`, `lists` and `math` extensions, and
//! the configured UDFs. Unknown keys, an unknown decision or severity, a class no Weir event
//! carries, a condition that does not compile or names an unknown variable, a duplicate id and a
//! malformed test event are errors, reported with file, line (for CEL, the line inside the
//! expression) and reason.
//!
//! A policy directory holds `*.toml` files (hidden files and other extensions are ignored), loaded
//! together as one set: rule ids are unique across the set, and the set's version is the hex
//! SHA-256 of the sorted file names and contents (and of any UDF libraries, see [`super::udf`]).
//! Every problem is reported with the file, the line and the reason; a set with any problem is
//! not loaded at all.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::{Context, Env, Program};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;
use weir_schemas::events::{ocsf, Decision};

use super::udf::Udfs;

/// The variables a condition or subject can use.
pub const VARIABLES: [&str; 6] = ["event", "class_uid", "user", "device", "asset", "missing"];

/// OCSF classes Weir's typed events carry: the only values `classes` may hold.
pub const KNOWN_CLASSES: [i32; 12] = [
    ocsf::BASE_EVENT,
    ocsf::DETECTION_FINDING,
    ocsf::DATA_SECURITY_FINDING,
    ocsf::ACCOUNT_CHANGE,
    ocsf::AUTHENTICATION,
    ocsf::USER_ACCESS_MANAGEMENT,
    ocsf::GROUP_MANAGEMENT,
    ocsf::HTTP_ACTIVITY,
    ocsf::DEVICE_INVENTORY_INFO,
    ocsf::CLOUD_RESOURCES_INVENTORY_INFO,
    ocsf::WEB_RESOURCES_ACTIVITY,
    ocsf::API_ACTIVITY,
];

/// One thing wrong with a policy set: the file, the line (when one can be named) and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The policy file (or UDF library, or the directory itself).
    pub file: PathBuf,
    /// 1-based line in `file`, when the problem has one.
    pub line: Option<usize>,
    /// What is wrong, in one line.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.reason),
            None => write!(f, "{}: {}", self.file.display(), self.reason),
        }
    }
}

/// Why a policy set could not be loaded: every problem found, in file and line order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PolicyLoadError {
    /// What is wrong, where.
    pub problems: Vec<Problem>,
}

impl fmt::Display for PolicyLoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl PolicyLoadError {
    /// An error with a single problem.
    pub fn one(file: impl Into<PathBuf>, line: Option<usize>, reason: impl Into<String>) -> Self {
        PolicyLoadError { problems: vec![Problem { file: file.into(), line, reason: reason.into() }] }
    }

    /// Logs every problem with `tracing::error!` (fields `file`, `line`, `reason`).
    pub fn log(&self, what: &str) {
        for p in &self.problems {
            tracing::error!(
                file = %p.file.display(),
                line = p.line.unwrap_or(0),
                reason = %p.reason,
                "{what}: {p}"
            );
        }
    }
}

/// How bad a violation of a rule is (OCSF `severity_id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// 1.
    Informational,
    /// 2.
    Low,
    /// 3.
    Medium,
    /// 4.
    High,
    /// 5.
    Critical,
}

impl Severity {
    const NAMES: &'static str = "informational, low, medium, high, critical";

    fn parse(name: &str) -> Option<Severity> {
        Some(match name {
            "informational" => Severity::Informational,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }

    /// The OCSF `severity_id`.
    pub fn id(self) -> i32 {
        match self {
            Severity::Informational => ocsf::SEVERITY_INFORMATIONAL,
            Severity::Low => ocsf::SEVERITY_LOW,
            Severity::Medium => ocsf::SEVERITY_MEDIUM,
            Severity::High => ocsf::SEVERITY_HIGH,
            Severity::Critical => ocsf::SEVERITY_CRITICAL,
        }
    }
}

/// How strong a decision is: deny > review > allow.
pub fn precedence(decision: Decision) -> u8 {
    match decision {
        Decision::Allow => 0,
        Decision::Review => 1,
        Decision::Deny => 2,
    }
}

fn parse_decision(name: &str) -> Option<Decision> {
    Some(match name {
        "allow" => Decision::Allow,
        "deny" => Decision::Deny,
        "review" => Decision::Review,
        _ => return None,
    })
}

/// One inline test of a rule: an enriched-event-like object and whether the rule must match it.
#[derive(Clone, Debug)]
pub struct RuleTest {
    /// Optional name, for reports.
    pub name: Option<String>,
    /// Line of the test in its file.
    pub line: usize,
    /// Whether the condition must hold.
    pub expect: bool,
    /// The test input (see [`super::testing`] for its keys).
    pub input: serde_json::Value,
}

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// Unique id across the set.
    pub id: String,
    /// What the rule checks.
    pub description: String,
    /// Who answers for it.
    pub owner: String,
    /// OCSF classes it applies to; empty = all.
    pub classes: Vec<i32>,
    /// The CEL condition, as written.
    pub condition_source: String,
    /// The compiled condition.
    pub condition: Program,
    /// What a match means.
    pub decision: Decision,
    /// How bad a match is.
    pub severity: Severity,
    /// Routing labels.
    pub labels: BTreeMap<String, String>,
    /// The CEL subject expression, as written (None: the default subject).
    pub subject_source: Option<String>,
    /// The compiled subject expression.
    pub subject: Option<Program>,
    /// Whether an event about the subject that the rule evaluates to false resolves the open
    /// violation (`auto_resolve`, default true). Rules about single actions (an upload, a
    /// sign-in) set it to false: the next harmless action does not undo the last one.
    pub auto_resolve: bool,
    /// The file it is defined in.
    pub file: PathBuf,
    /// The line of its `id`.
    pub line: usize,
    /// Its inline tests.
    pub tests: Vec<RuleTest>,
}

impl Rule {
    /// Whether matching it opens a violation (deny and review rules do; allow rules do not).
    pub fn opens_violations(&self) -> bool {
        self.decision != Decision::Allow
    }
}

/// A loaded, compiled policy set.
pub struct PolicySet {
    /// Hex SHA-256 of the files (names and contents) and UDF libraries.
    pub version: String,
    /// Rules sorted by id.
    pub rules: Vec<Rule>,
    /// The files it was loaded from, sorted.
    pub files: Vec<PathBuf>,
    /// Class → indices of the rules that apply to it (class-specific and all-class rules), in
    /// id order.
    by_class: HashMap<i32, Vec<usize>>,
    /// Indices of the rules for every class: what applies to a class no rule names.
    any_class: Vec<usize>,
    /// The root CEL context: standard library, extensions, UDFs. Each event gets a child scope.
    root: Context<'static, 'static>,
}

impl fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicySet")
            .field("version", &self.version)
            .field("rules", &self.rules.iter().map(|r| &r.id).collect::<Vec<_>>())
            .finish()
    }
}

impl PolicySet {
    /// Indices (into [`PolicySet::rules`]) of the rules that apply to events of `class_uid`, in
    /// id order.
    pub fn rules_for(&self, class_uid: i32) -> &[usize] {
        self.by_class.get(&class_uid).unwrap_or(&self.any_class)
    }

    /// The root CEL context.
    pub fn root(&self) -> &Context<'static, 'static> {
        &self.root
    }

    /// The rule with this id.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.binary_search_by(|r| r.id.as_str().cmp(id)).ok().map(|i| &self.rules[i])
    }

    /// The first 12 hex digits of the version, as decision ids carry it.
    pub fn short_version(&self) -> &str {
        &self.version[..12.min(self.version.len())]
    }
}

/// The CEL environment conditions compile in: the standard library plus the `strings`, `lists`
/// and `math` extensions.
fn env() -> Env {
    let mut env = Env::stdlib();
    // The extensions only fail on a name clash, which cannot happen on a fresh stdlib.
    let _ = env.add_extension(cel::extensions::strings);
    let _ = env.add_extension(cel::extensions::lists);
    let _ = env.add_extension(cel::extensions::math);
    env
}

/// The `*.toml` files of a policy directory, sorted by name (hidden files skipped).
pub fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, PolicyLoadError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| PolicyLoadError::one(dir, None, format!("cannot read the policy directory: {e}")))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| PolicyLoadError::one(dir, None, format!("cannot list the directory: {e}")))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || !name.ends_with(".toml") || !path.is_file() {
            continue;
        }
        files.push(path);
    }
    files.sort();
    Ok(files)
}

/// Loads every `*.toml` file of `dir` as one policy set, with these UDFs callable from rules.
pub fn load_dir(dir: &Path, udfs: &Udfs) -> Result<PolicySet, PolicyLoadError> {
    let files = policy_files(dir)?;
    if files.is_empty() {
        return Err(PolicyLoadError::one(
            dir,
            None,
            "no *.toml policy files (to run without rules, add a file with no [[rules]])",
        ));
    }
    let mut sources = Vec::with_capacity(files.len());
    for path in &files {
        let text =
            std::fs::read_to_string(path).map_err(|e| PolicyLoadError::one(path, None, format!("cannot read: {e}")))?;
        sources.push((path.clone(), text));
    }
    load_sources(&sources, udfs)
}

/// Compiles policy files given as (path, text), sorted by path, into one set.
pub fn load_sources(sources: &[(PathBuf, String)], udfs: &Udfs) -> Result<PolicySet, PolicyLoadError> {
    let env = Arc::new(env());
    let mut problems = Vec::new();
    let mut rules: Vec<Rule> = Vec::new();
    let mut hasher = Sha256::new();
    for (path, text) in sources {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update((text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
        parse_file(path, text, &env, &mut rules, &mut problems);
    }
    udfs.hash_into(&mut hasher);
    // Ids are unique across the set.
    let mut seen: BTreeMap<&str, (&Path, usize)> = BTreeMap::new();
    for rule in &rules {
        if let Some((file, line)) = seen.get(rule.id.as_str()) {
            problems.push(Problem {
                file: rule.file.clone(),
                line: Some(rule.line),
                reason: format!("duplicate rule id `{}`: already defined at {}:{line}", rule.id, file.display()),
            });
        } else {
            seen.insert(&rule.id, (&rule.file, rule.line));
        }
    }
    if !problems.is_empty() {
        return Err(PolicyLoadError { problems });
    }
    let mut root = Context::with_env(env);
    if let Err(problem) = udfs.register(&mut root) {
        return Err(PolicyLoadError { problems: vec![problem] });
    }
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    let version = hex(&hasher.finalize());
    let (by_class, any_class) = index_by_class(&rules);
    Ok(PolicySet { version, rules, files: sources.iter().map(|(p, _)| p.clone()).collect(), by_class, any_class, root })
}

type ClassIndex = (HashMap<i32, Vec<usize>>, Vec<usize>);

fn index_by_class(rules: &[Rule]) -> ClassIndex {
    let named: BTreeSet<i32> = rules.iter().flat_map(|r| r.classes.iter().copied()).collect();
    let select = |class: Option<i32>| -> Vec<usize> {
        rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.classes.is_empty() || class.is_some_and(|c| r.classes.contains(&c)))
            .map(|(i, _)| i)
            .collect()
    };
    let by_class = named.into_iter().map(|c| (c, select(Some(c)))).collect();
    (by_class, select(None))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

/// 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    rules: Vec<Spanned<RuleDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    id: Spanned<String>,
    description: Spanned<String>,
    owner: Spanned<String>,
    #[serde(default)]
    classes: Option<Spanned<Vec<i64>>>,
    condition: Spanned<String>,
    decision: Spanned<String>,
    severity: Spanned<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    subject: Option<Spanned<String>>,
    #[serde(default = "yes")]
    auto_resolve: bool,
    #[serde(default)]
    tests: Vec<Spanned<TestDoc>>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestDoc {
    #[serde(default)]
    name: Option<String>,
    expect: bool,
    event: toml::Value,
}

/// Parses and compiles one file's rules, adding what it finds wrong to `problems`.
fn parse_file(path: &Path, text: &str, env: &Env, rules: &mut Vec<Rule>, problems: &mut Vec<Problem>) {
    let problem = |line: usize, reason: String| Problem { file: path.to_path_buf(), line: Some(line), reason };
    let doc: FileDoc = match toml::from_str(text) {
        Ok(doc) => doc,
        Err(e) => {
            problems.push(Problem {
                file: path.to_path_buf(),
                line: e.span().map(|s| line_of(text, s.start)),
                reason: e.message().trim().to_string(),
            });
            return;
        }
    };
    for spanned in doc.rules {
        let doc = spanned.into_inner();
        let id_line = line_of(text, doc.id.span().start);
        let id = doc.id.get_ref().clone();
        let before = problems.len();
        if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            problems.push(problem(id_line, format!("rule id {id:?} must be non-empty, without spaces")));
        }
        let at = |line: usize, reason: String| problem(line, format!("rule `{id}`: {reason}"));
        for (field, value) in [("description", &doc.description), ("owner", &doc.owner)] {
            if value.get_ref().trim().is_empty() {
                problems.push(at(line_of(text, value.span().start), format!("`{field}` is empty")));
            }
        }
        let decision = parse_decision(doc.decision.get_ref());
        if decision.is_none() {
            problems.push(at(
                line_of(text, doc.decision.span().start),
                format!("unknown decision {:?} (use allow, deny or review)", doc.decision.get_ref()),
            ));
        }
        let severity = Severity::parse(doc.severity.get_ref());
        if severity.is_none() {
            problems.push(at(
                line_of(text, doc.severity.span().start),
                format!("unknown severity {:?} (use {})", doc.severity.get_ref(), Severity::NAMES),
            ));
        }
        let mut classes = Vec::new();
        if let Some(spanned) = &doc.classes {
            for &class in spanned.get_ref() {
                match i32::try_from(class).ok().filter(|c| KNOWN_CLASSES.contains(c)) {
                    Some(c) if !classes.contains(&c) => classes.push(c),
                    Some(_) => {}
                    None => problems.push(at(
                        line_of(text, spanned.span().start),
                        format!("class {class} is not an OCSF class Weir's events carry (known: {KNOWN_CLASSES:?})"),
                    )),
                }
            }
            classes.sort_unstable();
        }
        let condition = compile(env, text, &doc.condition).map_err(|reason| {
            problems.push(at(reason.0, format!("condition {}", reason.1)));
        });
        let subject = match &doc.subject {
            Some(source) => compile(env, text, source)
                .map(Some)
                .map_err(|reason| problems.push(at(reason.0, format!("subject {}", reason.1)))),
            None => Ok(None),
        };
        let mut tests = Vec::new();
        for test in doc.tests {
            let line = line_of(text, test.span().start);
            let test = test.into_inner();
            match test_input(&test.event) {
                Ok(input) => tests.push(RuleTest { name: test.name, line, expect: test.expect, input }),
                Err(reason) => problems.push(at(line, format!("test event: {reason}"))),
            }
        }
        if problems.len() > before {
            continue;
        }
        let (Ok(condition), Ok(subject), Some(decision), Some(severity)) = (condition, subject, decision, severity)
        else {
            continue;
        };
        rules.push(Rule {
            id,
            description: doc.description.into_inner(),
            owner: doc.owner.into_inner(),
            classes,
            condition_source: doc.condition.get_ref().clone(),
            condition,
            decision,
            severity,
            labels: doc.labels,
            subject_source: doc.subject.map(Spanned::into_inner),
            subject,
            auto_resolve: doc.auto_resolve,
            file: path.to_path_buf(),
            line: id_line,
            tests,
        });
    }
}

/// Compiles a CEL expression written as the TOML string `source`; on error, the file line of the
/// problem and why.
fn compile(env: &Env, text: &str, source: &Spanned<String>) -> Result<Program, (usize, String)> {
    let start = source.span().start;
    let key_line = line_of(text, start);
    // In a multi-line string, the expression starts on the line after the opening quotes.
    let raw = &text[start.min(text.len())..];
    let first_line = if (raw.starts_with("'''") || raw.starts_with("\"\"\""))
        && (raw[3..].starts_with('\n') || raw[3..].starts_with("\r\n"))
    {
        key_line + 1
    } else {
        key_line
    };
    let expression = source.get_ref();
    if expression.trim().is_empty() {
        return Err((key_line, "is empty".into()));
    }
    let program = env.compile(expression).map_err(|errors| match errors.errors.first() {
        Some(e) => {
            let line = first_line + usize::try_from(e.pos.0 - 1).unwrap_or(0);
            (line, format!("does not compile: {} (column {})", e.msg, e.pos.1.max(0) + 1))
        }
        None => (key_line, "does not compile".into()),
    })?;
    let bound = comprehension_variables(program.expression());
    let references = program.references();
    let mut unknown: Vec<&str> =
        references.variables().into_iter().filter(|v| !VARIABLES.contains(v) && !bound.contains(*v)).collect();
    unknown.sort_unstable();
    if let Some(name) = unknown.first() {
        return Err((key_line, format!("uses unknown variable `{name}` (known: {})", VARIABLES.join(", "))));
    }
    Ok(program)
}

/// Names bound by comprehensions (`all`, `exists`, `map`, `filter`, ...) anywhere in `expr`.
fn comprehension_variables(expr: &IdedExpr) -> BTreeSet<String> {
    fn walk(expr: &IdedExpr, out: &mut BTreeSet<String>) {
        match &expr.expr {
            Expr::Call(call) => {
                if let Some(target) = &call.target {
                    walk(target, out);
                }
                call.args.iter().for_each(|a| walk(a, out));
            }
            Expr::Comprehension(c) => {
                out.insert(c.iter_var.clone());
                if let Some(v) = &c.iter_var2 {
                    out.insert(v.clone());
                }
                out.insert(c.accu_var.clone());
                for e in [&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                    walk(e, out);
                }
            }
            Expr::List(list) => list.elements.iter().for_each(|e| walk(e, out)),
            Expr::Map(map) => map.entries.iter().for_each(|e| walk_entry(&e.expr, out)),
            Expr::Struct(s) => s.entries.iter().for_each(|e| walk_entry(&e.expr, out)),
            Expr::Select(select) => walk(&select.operand, out),
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
        }
    }
    fn walk_entry(entry: &EntryExpr, out: &mut BTreeSet<String>) {
        match entry {
            EntryExpr::StructField(f) => walk(&f.value, out),
            EntryExpr::MapEntry(e) => {
                walk(&e.key, out);
                walk(&e.value, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(expr, &mut out);
    out
}

/// A test's `event`: a TOML table, or a string holding a JSON object.
fn test_input(value: &toml::Value) -> Result<serde_json::Value, String> {
    let json = match value {
        toml::Value::String(text) => {
            serde_json::from_str::<serde_json::Value>(text).map_err(|e| format!("invalid JSON: {e}"))?
        }
        toml::Value::Table(_) => serde_json::to_value(value).map_err(|e| e.to_string())?,
        other => return Err(format!("must be a table or a JSON string, not a {}", other.type_str())),
    };
    if !json.is_object() {
        return Err("must be an object".into());
    }
    super::testing::check_input_keys(&json)?;
    Ok(json)
}
