//! Policy files: the TOML (or YAML) format, its validation, and compiling a policy directory into
//! one [`PolicySet`].
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
//! The same rules can be written in YAML (`*.yaml`, `*.yml`): a top-level `rules:` list of maps
//! with the same keys, `tests` included; errors name the file and line just the same.
//!
//! A policy directory holds `*.toml`, `*.yaml` and `*.yml` files (hidden files and other
//! extensions are ignored), loaded together as one set: rule ids are unique across the set, and
//! the set's version is the hex SHA-256 of the sorted file names and contents (and of any UDF
//! libraries, see [`super::udf`]).
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

use super::fast::FastSet;
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
    /// The rules compiled to native code, where they can be.
    fast: FastSet,
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

    /// The compiled form of the rules (the fast path).
    pub fn fast(&self) -> &FastSet {
        &self.fast
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

/// The policy files (`*.toml`, `*.yaml`, `*.yml`) of a policy directory, sorted by name (hidden
/// files skipped).
pub fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, PolicyLoadError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| PolicyLoadError::one(dir, None, format!("cannot read the policy directory: {e}")))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| PolicyLoadError::one(dir, None, format!("cannot list the directory: {e}")))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let policy = name.ends_with(".toml") || name.ends_with(".yaml") || name.ends_with(".yml");
        if name.starts_with('.') || !policy || !path.is_file() {
            continue;
        }
        files.push(path);
    }
    files.sort();
    Ok(files)
}

/// Loads every policy file of `dir` as one policy set, with these UDFs callable from rules.
pub fn load_dir(dir: &Path, udfs: &Udfs) -> Result<PolicySet, PolicyLoadError> {
    let files = policy_files(dir)?;
    if files.is_empty() {
        return Err(PolicyLoadError::one(
            dir,
            None,
            "no *.toml, *.yaml or *.yml policy files (to run without rules, add a file with no rules)",
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
    let fast = FastSet::new(&rules);
    let files = sources.iter().map(|(p, _)| p.clone()).collect();
    Ok(PolicySet { version, rules, files, by_class, any_class, root, fast })
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

/// A value from a policy file and the line it is on.
struct Located<T> {
    value: T,
    line: usize,
}

/// A CEL expression from a policy file: its text, the line of its key and the line its text
/// starts on (the next one for a multi-line string).
struct Source {
    text: String,
    key_line: usize,
    first_line: usize,
}

/// One rule as written, in either format.
struct RawRule {
    id: Located<String>,
    description: Located<String>,
    owner: Located<String>,
    classes: Option<Located<Vec<i64>>>,
    condition: Source,
    decision: Located<String>,
    severity: Located<String>,
    labels: BTreeMap<String, String>,
    subject: Option<Source>,
    auto_resolve: bool,
    tests: Vec<RawTest>,
}

/// One inline test as written: its line, name, expectation and event (or why it is malformed).
struct RawTest {
    line: usize,
    name: Option<String>,
    expect: bool,
    input: Result<serde_json::Value, String>,
}

/// Whether `path` is a YAML policy file (else TOML).
fn is_yaml(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "yaml" || e == "yml")
}

/// The rules of a TOML file, or the problem that stops it from being read.
fn raw_toml(text: &str) -> Result<Vec<RawRule>, (Option<usize>, String)> {
    let doc: FileDoc =
        toml::from_str(text).map_err(|e| (e.span().map(|s| line_of(text, s.start)), e.message().trim().to_string()))?;
    let located = |v: Spanned<String>| Located { line: line_of(text, v.span().start), value: v.into_inner() };
    let source = |v: Spanned<String>| {
        let start = v.span().start;
        let key_line = line_of(text, start);
        // In a multi-line string, the expression starts on the line after the opening quotes.
        let raw = &text[start.min(text.len())..];
        let multi = (raw.starts_with("'''") || raw.starts_with("\"\"\""))
            && (raw[3..].starts_with('\n') || raw[3..].starts_with("\r\n"));
        Source { text: v.into_inner(), key_line, first_line: key_line + usize::from(multi) }
    };
    Ok(doc
        .rules
        .into_iter()
        .map(|spanned| {
            let doc = spanned.into_inner();
            RawRule {
                id: located(doc.id),
                description: located(doc.description),
                owner: located(doc.owner),
                classes: doc.classes.map(|c| Located { line: line_of(text, c.span().start), value: c.into_inner() }),
                condition: source(doc.condition),
                decision: located(doc.decision),
                severity: located(doc.severity),
                labels: doc.labels,
                subject: doc.subject.map(source),
                auto_resolve: doc.auto_resolve,
                tests: doc
                    .tests
                    .into_iter()
                    .map(|t| {
                        let line = line_of(text, t.span().start);
                        let t = t.into_inner();
                        RawTest { line, name: t.name, expect: t.expect, input: toml_test_input(&t.event) }
                    })
                    .collect(),
            }
        })
        .collect())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlFile {
    #[serde(default)]
    rules: Vec<YamlRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlRule {
    id: String,
    description: String,
    owner: String,
    #[serde(default)]
    classes: Option<Vec<i64>>,
    condition: String,
    decision: String,
    severity: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default = "yes")]
    auto_resolve: bool,
    #[serde(default)]
    tests: Vec<YamlTest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlTest {
    #[serde(default)]
    name: Option<String>,
    expect: bool,
    event: serde_json::Value,
}

/// The rules of a YAML file (same keys as TOML), or the problem that stops it from being read.
/// YAML values carry no positions, so each key's line is found in the text: the `key:` line
/// after the rule's `id:` line.
fn raw_yaml(text: &str) -> Result<Vec<RawRule>, (Option<usize>, String)> {
    let doc: YamlFile = serde_norway::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        let mut reason = e.to_string();
        // The message ends with " at line L column C", already given as the line.
        if let Some(at) = reason.find(" at line ") {
            reason.truncate(at);
        }
        (line, reason)
    })?;
    let lines: Vec<&str> = text.lines().collect();
    // The 1-based line of the first `key:` at or after line `from` (1-based), within the rule.
    let find = |key: &str, from: usize, until: usize| -> Option<usize> {
        (from..until.min(lines.len() + 1)).find(|&n| {
            let line = lines[n - 1].trim_start().trim_start_matches("- ").trim_start();
            line.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
    };
    let mut rule_lines = Vec::with_capacity(doc.rules.len());
    let mut from = 1;
    for _ in &doc.rules {
        let line = find("id", from, usize::MAX).unwrap_or(from);
        rule_lines.push(line);
        from = line + 1;
    }
    // A rule's keys are on the lines of its list item: from the `- ` line that opens it (at or
    // before its `id:`, less indented than `id`) to the next rule's.
    let item_start = |key_line: usize, key: &str| -> usize {
        let key_text = lines.get(key_line - 1).copied().unwrap_or("");
        let key_column = key_text.find(key).unwrap_or(0);
        (1..=key_line)
            .rev()
            .find(|&n| {
                let line = lines[n - 1];
                let indent = line.len() - line.trim_start().len();
                line.trim_start().starts_with('-') && indent < key_column
            })
            .unwrap_or(key_line)
    };
    let starts: Vec<usize> = rule_lines.iter().map(|&line| item_start(line, "id")).collect();
    let mut out = Vec::with_capacity(doc.rules.len());
    for (i, rule) in doc.rules.into_iter().enumerate() {
        let start = rule_lines[i];
        let end = starts.get(i + 1).copied().unwrap_or(lines.len() + 1);
        let rule_start = starts[i];
        let at = |key: &str| find(key, rule_start, end).unwrap_or(start);
        let located = |key: &str, value: String| Located { line: at(key), value };
        let source = |key: &str, value: String| {
            let key_line = at(key);
            let after_key = lines.get(key_line - 1).and_then(|l| l.split_once(':')).map_or("", |(_, v)| v.trim());
            // A block scalar (`|`, `>`, with indicators) starts on the next line.
            let multi = after_key.starts_with('|') || after_key.starts_with('>');
            Source { text: value, key_line, first_line: key_line + usize::from(multi) }
        };
        let tests_line = at("tests");
        let mut test_from = tests_line;
        let tests = rule
            .tests
            .into_iter()
            .map(|t| {
                // A test's line is the `- ` line that opens it.
                let expect_line = find("expect", test_from, end).unwrap_or(tests_line);
                let line = item_start(expect_line, "expect").max(test_from);
                test_from = expect_line + 1;
                let event = match &t.event {
                    serde_json::Value::String(text) => {
                        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))
                    }
                    other => Ok(other.clone()),
                };
                RawTest { line, name: t.name, expect: t.expect, input: event.and_then(checked_test_input) }
            })
            .collect();
        out.push(RawRule {
            id: Located { line: start, value: rule.id },
            description: located("description", rule.description),
            owner: located("owner", rule.owner),
            classes: rule.classes.map(|c| Located { line: at("classes"), value: c }),
            condition: source("condition", rule.condition),
            decision: located("decision", rule.decision),
            severity: located("severity", rule.severity),
            labels: rule.labels,
            subject: rule.subject.map(|s| source("subject", s)),
            auto_resolve: rule.auto_resolve,
            tests,
        });
    }
    Ok(out)
}

/// Parses and compiles one file's rules, adding what it finds wrong to `problems`.
fn parse_file(path: &Path, text: &str, env: &Env, rules: &mut Vec<Rule>, problems: &mut Vec<Problem>) {
    let problem = |line: usize, reason: String| Problem { file: path.to_path_buf(), line: Some(line), reason };
    let raw = if is_yaml(path) { raw_yaml(text) } else { raw_toml(text) };
    let raw = match raw {
        Ok(raw) => raw,
        Err((line, reason)) => {
            problems.push(Problem { file: path.to_path_buf(), line, reason });
            return;
        }
    };
    for doc in raw {
        let id_line = doc.id.line;
        let id = doc.id.value.clone();
        let before = problems.len();
        if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            problems.push(problem(id_line, format!("rule id {id:?} must be non-empty, without spaces")));
        }
        let at = |line: usize, reason: String| problem(line, format!("rule `{id}`: {reason}"));
        for (field, value) in [("description", &doc.description), ("owner", &doc.owner)] {
            if value.value.trim().is_empty() {
                problems.push(at(value.line, format!("`{field}` is empty")));
            }
        }
        let decision = parse_decision(&doc.decision.value);
        if decision.is_none() {
            problems.push(at(
                doc.decision.line,
                format!("unknown decision {:?} (use allow, deny or review)", doc.decision.value),
            ));
        }
        let severity = Severity::parse(&doc.severity.value);
        if severity.is_none() {
            problems.push(at(
                doc.severity.line,
                format!("unknown severity {:?} (use {})", doc.severity.value, Severity::NAMES),
            ));
        }
        let mut classes = Vec::new();
        if let Some(located) = &doc.classes {
            for &class in &located.value {
                match i32::try_from(class).ok().filter(|c| KNOWN_CLASSES.contains(c)) {
                    Some(c) if !classes.contains(&c) => classes.push(c),
                    Some(_) => {}
                    None => problems.push(at(
                        located.line,
                        format!("class {class} is not an OCSF class Weir's events carry (known: {KNOWN_CLASSES:?})"),
                    )),
                }
            }
            classes.sort_unstable();
        }
        let condition = compile(env, &doc.condition).map_err(|reason| {
            problems.push(at(reason.0, format!("condition {}", reason.1)));
        });
        let subject = match &doc.subject {
            Some(source) => compile(env, source)
                .map(Some)
                .map_err(|reason| problems.push(at(reason.0, format!("subject {}", reason.1)))),
            None => Ok(None),
        };
        let mut tests = Vec::new();
        for RawTest { line, name, expect, input } in doc.tests {
            match input {
                Ok(input) => tests.push(RuleTest { name, line, expect, input }),
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
            description: doc.description.value,
            owner: doc.owner.value,
            classes,
            condition_source: doc.condition.text,
            condition,
            decision,
            severity,
            labels: doc.labels,
            subject_source: doc.subject.map(|s| s.text),
            subject,
            auto_resolve: doc.auto_resolve,
            file: path.to_path_buf(),
            line: id_line,
            tests,
        });
    }
}

/// Compiles a CEL expression from a policy file; on error, the file line of the problem and why.
fn compile(env: &Env, source: &Source) -> Result<Program, (usize, String)> {
    let key_line = source.key_line;
    let expression = &source.text;
    if expression.trim().is_empty() {
        return Err((key_line, "is empty".into()));
    }
    let program = env.compile(expression).map_err(|errors| match errors.errors.first() {
        Some(e) => {
            let line = source.first_line + usize::try_from(e.pos.0 - 1).unwrap_or(0);
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

/// A TOML test's `event`: a table, or a string holding a JSON object.
fn toml_test_input(value: &toml::Value) -> Result<serde_json::Value, String> {
    let json = match value {
        toml::Value::String(text) => {
            serde_json::from_str::<serde_json::Value>(text).map_err(|e| format!("invalid JSON: {e}"))?
        }
        toml::Value::Table(_) => serde_json::to_value(value).map_err(|e| e.to_string())?,
        other => return Err(format!("must be a table or a JSON string, not a {}", other.type_str())),
    };
    checked_test_input(json)
}

/// A test's `event` must be an object with known keys.
fn checked_test_input(json: serde_json::Value) -> Result<serde_json::Value, String> {
    if !json.is_object() {
        return Err("must be an object".into());
    }
    super::testing::check_input_keys(&json)?;
    Ok(json)
}
