//! The `policy` operator: enriched events → policy decisions and violations.
//!
//! Input records hold [`EnrichedEvent`]s (topic `enriched`). Rules live in a policy directory of
//! TOML or YAML files (format in [`rules`], inline tests in [`testing`]), each with a CEL condition over
//! the event and its context (variables in [`eval`]). For every input the operator emits one
//! [`PolicyDecision`]:
//!
//! - `decision`: the strongest decision of the rules that matched (deny > review > allow), allow
//!   when none did; `matched_rules`: their ids, sorted; `severity_id`: the highest of theirs (0 when
//!   none matched); `labels`: the union of theirs (on a clash, the rule whose id sorts first wins);
//! - `policy_set_version`: the content hash of the set that decided, and `decision_uid` =
//!   `<event_uid>/<first 12 hex digits of the version>`, so a replay through the same set yields
//!   the same id and a replay through a new set a new one;
//! - `violations`: the violations this event opened, updated or resolved.
//!
//! A deny or review rule that matches opens a violation of the rule by the event's subject (its
//! `subject` expression, by default the user; see [`eval::Activation::default_subject`]), keyed
//! by a stable hash of rule id and subject ([`violations::violation_key`]); matching again updates
//! it; an event about the same subject that the rule evaluates to false resolves it (unless the
//! rule sets `auto_resolve = false`, for rules about single actions). Allow rules never open
//! violations. Every violation change also goes to the side output `violations` (topic
//! `<operator>.violations`), keyed by its violation key. Open violations live in the state table
//! `open`, so resolution survives restarts.
//!
//! Rules only run on the classes they name (`classes`, empty = all). A condition that cannot be
//! evaluated (a missing field, a type error) does not match; the first such error of each rule is
//! logged once per policy-set version, and [`Policy::stats`] counts them all.
//!
//! Conditions and subjects of the common shapes are compiled to native code ([`fast`]) that reads
//! only the fields rules use, straight from the input's Avro bytes; an event goes through the CEL
//! interpreter instead when a rule that applies to it does not compile or when a compiled rule is
//! not sure (where CEL would report an error), so both ways give the same bytes.
//!
//! The directory is checked for changes (file names, sizes, modification times) at most once per
//! `reload_interval_ms` of wall time; a changed set is loaded and used from the next event on. A
//! set that fails to load is logged (file, line, reason) and the previous set keeps running. This
//! is the only non-determinism: which set decides. Every decision records its version.
//!
//! Guarantees: bad input is rejected with a reason, never panics or stops the operator; the same
//! input, state and policy set give byte-identical output.

pub mod bench;
pub mod eval;
pub mod fast;
pub mod rules;
pub mod testing;
pub mod udf;
pub mod violations;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use weir_schemas::component::{ComponentError, Operator, Output, State};
use weir_schemas::events::{Decision, EnrichedEvent, PolicyDecision, Violation, ViolationStatus};
use weir_schemas::record::{Record, StoredRecord};

pub use rules::{load_dir, PolicyLoadError, PolicySet, Problem};
pub use testing::{test_policies, TestReport};
pub use udf::{UdfSpec, Udfs};

use eval::{condition_holds, subject_value, Activation};
use fast::encode::{DecisionFields, Encoder};
use fast::SubjectPlan;
use rules::{precedence, Rule};
use violations::{violation_key, OpenEntry, OpenIndex, OpenViolation, OPEN_TABLE};

/// The side output violations go to (topic `<operator>.violations`).
pub const VIOLATIONS_OUTPUT: &str = "violations";

fn default_reload_interval_ms() -> u64 {
    2000
}

/// The `[operators.NAME]` options of a `type = "policy"` operator.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The policy directory: every `*.toml`, `*.yaml` and `*.yml` file in it is loaded as one set.
    pub policies: PathBuf,
    /// How often (wall time) to check the directory for changes; 0 = never reload.
    #[serde(default = "default_reload_interval_ms")]
    pub reload_interval_ms: u64,
    /// UDF libraries built with `arroyo-udf-plugin`, callable from conditions.
    #[serde(default)]
    pub udfs: Vec<UdfSpec>,
}

/// Counters for monitoring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyStats {
    /// Events decided.
    pub events: u64,
    /// Inputs rejected.
    pub rejected: u64,
    /// Rule evaluations that failed (counted as no match).
    pub rule_errors: u64,
    /// Policy sets loaded after the first.
    pub reloads: u64,
    /// Reloads that failed (the previous set kept running).
    pub failed_reloads: u64,
}

/// What the directory looked like: (file name, size, modification time) of each policy file.
type DirState = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn dir_state(dir: &Path) -> Result<DirState, PolicyLoadError> {
    let files = rules::policy_files(dir)?;
    Ok(files
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(&path).ok();
            let size = meta.as_ref().map_or(0, |m| m.len());
            let modified = meta.and_then(|m| m.modified().ok());
            (path, size, modified)
        })
        .collect())
}

/// The policy operator. See the module documentation.
pub struct Policy {
    config: PolicyConfig,
    udfs: Udfs,
    set: Arc<PolicySet>,
    /// The directory as the current set (or the last failed attempt) saw it.
    seen: Option<DirState>,
    last_check: Instant,
    open: OpenIndex,
    /// Rules whose evaluation error was logged under the current set.
    logged_errors: HashSet<String>,
    stats: PolicyStats,
    /// Whether `process` tries the compiled way first (off only to compare the two in tests).
    pub(crate) compiled: bool,
    /// Encodes outputs without serde, when the schemas are the ones it knows.
    encoder: Option<fast::encode::Encoder>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy").field("config", &self.config).field("set", &self.set).finish()
    }
}

impl Policy {
    /// Loads the UDFs and the policy set the config names; fails with every problem (file, line,
    /// reason) if either cannot be loaded.
    pub fn new(config: PolicyConfig) -> Result<Policy, PolicyLoadError> {
        let udfs = Udfs::load(&config.udfs)?;
        Policy::with_udfs(config, udfs)
    }

    /// Like [`Policy::new`], with UDFs already loaded (ignores `config.udfs`).
    pub fn with_udfs(config: PolicyConfig, udfs: Udfs) -> Result<Policy, PolicyLoadError> {
        let seen = dir_state(&config.policies).ok();
        let set = load_dir(&config.policies, &udfs)?;
        tracing::info!(
            version = %set.version,
            rules = set.rules.len(),
            dir = %config.policies.display(),
            "policy set loaded"
        );
        Ok(Policy {
            config,
            udfs,
            open: bound_index(OpenIndex::default(), &set),
            set: Arc::new(set),
            seen,
            last_check: Instant::now(),
            logged_errors: HashSet::new(),
            stats: PolicyStats::default(),
            compiled: true,
            encoder: fast::encode::Encoder::new(),
        })
    }

    /// An operator deciding with `set`, never reloading: for benchmarks, tests and tools.
    pub fn from_set(set: PolicySet) -> Policy {
        Policy {
            config: PolicyConfig { policies: PathBuf::new(), reload_interval_ms: 0, udfs: Vec::new() },
            udfs: Udfs::none(),
            open: bound_index(OpenIndex::default(), &set),
            set: Arc::new(set),
            seen: None,
            last_check: Instant::now(),
            logged_errors: HashSet::new(),
            stats: PolicyStats::default(),
            compiled: true,
            encoder: fast::encode::Encoder::new(),
        }
    }

    /// The policy set deciding now.
    pub fn policy_set(&self) -> &Arc<PolicySet> {
        &self.set
    }

    /// Counters since construction.
    pub fn stats(&self) -> &PolicyStats {
        &self.stats
    }

    /// How many violations are open (as of the last restore and the records processed since).
    pub fn open_violations(&self) -> usize {
        self.open.len()
    }

    /// Checks the directory now (whatever the interval) and loads the set if it changed. Returns
    /// whether a new set was loaded; on failure, logs the problems, keeps the current set and
    /// returns them.
    pub fn reload_now(&mut self) -> Result<bool, PolicyLoadError> {
        self.last_check = Instant::now();
        let state = dir_state(&self.config.policies);
        if let (Ok(state), Some(seen)) = (&state, &self.seen) {
            if state == seen {
                return Ok(false);
            }
        }
        self.seen = state.ok();
        match load_dir(&self.config.policies, &self.udfs) {
            Ok(set) if set.version == self.set.version => Ok(false),
            Ok(set) => {
                tracing::info!(
                    version = %set.version,
                    previous = %self.set.version,
                    rules = set.rules.len(),
                    "policy set reloaded"
                );
                self.open.bind(set.rules.iter().map(|r| r.id.as_str()));
                self.set = Arc::new(set);
                self.logged_errors.clear();
                self.stats.reloads += 1;
                Ok(true)
            }
            Err(e) => {
                self.stats.failed_reloads += 1;
                e.log(&format!("policy set not reloaded, version {} keeps running", self.set.short_version()));
                Err(e)
            }
        }
    }

    fn maybe_reload(&mut self) {
        if self.config.reload_interval_ms == 0 {
            return;
        }
        if self.last_check.elapsed() >= Duration::from_millis(self.config.reload_interval_ms) {
            // Failures are logged by reload_now; the previous set keeps running.
            let _ = self.reload_now();
        }
    }

    /// Decides one enriched event with the current set: the decision, and the violations it
    /// changed (already written to `state`). `Err` is a reason to reject the input. This is the
    /// interpreted way (CEL over the whole decoded event); `process` goes the compiled way when it
    /// can, with the same result.
    pub fn decide(
        &mut self,
        enriched: &EnrichedEvent,
        state: &mut dyn State,
    ) -> Result<Result<PolicyDecision, String>, ComponentError> {
        let set = Arc::clone(&self.set);
        let verdicts = match self.evaluate(&set, enriched) {
            Ok(verdicts) => verdicts,
            Err(reason) => return Ok(Err(reason)),
        };
        let decided = self.finish(verdicts, &enriched.event_uid, enriched.time, state)?;
        Ok(Ok(decided.into_decision(&set, &enriched.event_uid, enriched.time)))
    }

    /// Decides a single-object encoded `EnrichedEvent` the compiled way: `None` when it must go
    /// the interpreted way (see [`fast`]), else how many rules matched and how many violations
    /// changed (written to `state`). For the benchmark's stages; `process` also encodes.
    pub fn decide_compiled(&mut self, bytes: &[u8], state: &mut dyn State) -> Result<Option<usize>, ComponentError> {
        self.decide_compiled_then(bytes, state, |_, _, decided| decided.matched.len() + decided.changes.len())
    }

    /// Decides the compiled way (see [`Policy::decide_compiled`]) and hands the result to `then`.
    fn decide_compiled_then<T>(
        &mut self,
        bytes: &[u8],
        state: &mut dyn State,
        then: impl FnOnce(&PolicySet, &fast::Enriched<'_>, Decided<'_>) -> T,
    ) -> Result<Option<T>, ComponentError> {
        let set = Arc::clone(&self.set);
        let Some(mut enriched) = set.fast().decode_enriched(bytes) else {
            return Ok(None);
        };
        if !set.fast().decode_event(&mut enriched) {
            // The interpreted way rejects the input when a rule reads the event it cannot decode.
            return Ok(None);
        }
        let Some(verdicts) = self.evaluate_compiled(&set, &enriched) else {
            return Ok(None);
        };
        let decided = self.finish(verdicts, enriched.event_uid, enriched.time, state)?;
        Ok(Some(then(&set, &enriched, decided)))
    }

    /// Every applicable rule's verdict, interpreted; `Err` is a reason to reject the input.
    fn evaluate<'r>(&mut self, set: &'r PolicySet, enriched: &EnrichedEvent) -> Result<Verdicts<'r>, String> {
        let activation = Activation::new(enriched);
        let scope = activation.scope(set.root());
        let mut verdicts = Verdicts::default();
        for &index in set.rules_for(enriched.class_uid) {
            let rule = &set.rules[index];
            let holds = match condition_holds(&rule.condition, &scope) {
                Ok(holds) => holds,
                Err(reason) => {
                    if let Some(reason) = activation.event_error() {
                        return Err(reason.to_string());
                    }
                    self.rule_error(rule, &enriched.event_uid, &reason);
                    continue;
                }
            };
            if holds {
                verdicts.matched.push(rule);
            }
            let open = self.open.of_bound(index);
            if !may_change_violation(rule, holds, open) {
                continue;
            }
            let subject = match &rule.subject {
                Some(program) => match subject_value(program, &scope) {
                    Ok(subject) => subject,
                    Err(reason) => {
                        self.rule_error(rule, &enriched.event_uid, &format!("subject: {reason}"));
                        None
                    }
                },
                None => activation.default_subject(),
            };
            verdicts.push(rule, subject.map(Cow::Owned), holds, &enriched.event_uid, self.open.of_bound(index));
        }
        if let Some(reason) = activation.event_error() {
            return Err(reason.to_string());
        }
        Ok(verdicts)
    }

    /// Every applicable rule's verdict, compiled; `None` when a rule is not compiled or not sure.
    fn evaluate_compiled<'r>(&self, set: &'r PolicySet, enriched: &fast::Enriched<'_>) -> Option<Verdicts<'r>> {
        let fast = set.fast();
        let vars = enriched.vars();
        let mut memo = fast.guard_memo();
        let mut verdicts = Verdicts::default();
        for &index in set.rules_for(enriched.class_uid) {
            let rule = &set.rules[index];
            let condition = fast.condition(index)?;
            let holds = !fast.excluded(index, &vars, &mut memo) && condition.holds(&vars)?;
            if holds {
                verdicts.matched.push(rule);
            }
            // As `may_change_violation`, looking the rule's open violations up only when a false
            // verdict may resolve one of them (a match opens or updates whatever is open).
            if !rule.opens_violations() {
                continue;
            }
            let open = if holds {
                None
            } else if !rule.auto_resolve {
                continue;
            } else {
                match self.open.of_bound(index) {
                    Some(open) if !open.is_empty() => Some(open),
                    _ => continue,
                }
            };
            let subject = match fast.subject(index) {
                SubjectPlan::Default => fast.default_subject(&vars)?,
                SubjectPlan::Compiled(program) => program.subject(&vars)?,
                SubjectPlan::Interpreted => return None,
            };
            verdicts.push(rule, subject, holds, enriched.event_uid, open);
        }
        Some(verdicts)
    }

    /// Applies the verdicts: violations opened, updated or resolved (in `state`).
    fn finish<'r>(
        &mut self,
        verdicts: Verdicts<'r>,
        event_uid: &str,
        time: i64,
        state: &mut dyn State,
    ) -> Result<Decided<'r>, ComponentError> {
        let Verdicts { matched, pending } = verdicts;
        let mut changes: Vec<Violation> = Vec::with_capacity(pending.len());
        for Pending { rule, subject, holds } in pending {
            if holds {
                changes.push(self.open_or_update(rule, subject, event_uid, time, state));
            } else if let Some(resolved) = self.resolve(rule, subject, event_uid, time, state)? {
                changes.push(resolved);
            }
        }
        self.stats.events += 1;
        Ok(Decided { matched, changes })
    }

    fn rule_error(&mut self, rule: &Rule, event_uid: &str, reason: &str) {
        self.stats.rule_errors += 1;
        if self.logged_errors.insert(rule.id.clone()) {
            tracing::warn!(
                rule = %rule.id,
                file = %rule.file.display(),
                line = rule.line,
                event_uid = %event_uid,
                "rule cannot be evaluated (counts as no match; logged once per rule and policy set): {reason}"
            );
        }
    }

    fn open_or_update(
        &mut self,
        rule: &Rule,
        subject: String,
        event_uid: &str,
        time: i64,
        state: &mut dyn State,
    ) -> Violation {
        let (status, first_seen, key) = match self.open.get(&rule.id, &subject) {
            Some(open) => (ViolationStatus::Updated, open.first_seen, open.key.clone()),
            None => (ViolationStatus::Open, time, violation_key(&rule.id, &subject)),
        };
        let open = OpenViolation {
            rule_id: rule.id.clone(),
            subject,
            first_seen,
            last_seen: time,
            event_uid: event_uid.to_string(),
        };
        open.put(state, &key);
        if status == ViolationStatus::Open {
            // An update keeps the entry's key and first_seen: the index already holds them.
            self.open.insert(&rule.id, &open.subject, OpenEntry { key: key.clone(), first_seen });
        }
        let verb = if status == ViolationStatus::Open { "opened" } else { "seen again" };
        let summary = [rule.description.as_str(), ": ", open.subject.as_str(), " (", verb, ")"].concat();
        violation(rule, key, status, open, summary)
    }

    fn resolve(
        &mut self,
        rule: &Rule,
        subject: String,
        event_uid: &str,
        time: i64,
        state: &mut dyn State,
    ) -> Result<Option<Violation>, ComponentError> {
        let Some(key) = self.open.get(&rule.id, &subject).map(|open| open.key.clone()) else {
            return Ok(None);
        };
        self.open.remove(&rule.id, &subject);
        let Some(open) = OpenViolation::get(state, &key)? else {
            // The index ran ahead of the state: nothing to resolve.
            return Ok(None);
        };
        state.delete(OPEN_TABLE, key.as_bytes());
        let resolved =
            OpenViolation { rule_id: rule.id.clone(), last_seen: time, event_uid: event_uid.to_string(), ..open };
        let summary = [rule.description.as_str(), ": ", subject.as_str(), " (resolved)"].concat();
        Ok(Some(violation(rule, key, ViolationStatus::Resolved, resolved, summary)))
    }

    /// Emits a decision and its violations, encoded the generic way (or rejects the input if one
    /// cannot be encoded).
    fn emit(decision: PolicyDecision, input: &StoredRecord, out: &mut Output) {
        let violations = decision.violations.iter().map(weir_schemas::encode);
        let encoded = weir_schemas::encode(&decision);
        emit_encoded(&decision.event_uid, decision.time, encoded, violations, &decision.violations, input, out);
    }
}

/// Emits an encoded decision and its encoded violations, keyed (or rejects the input with the
/// first encoding error).
fn emit_encoded<E: std::fmt::Display>(
    event_uid: &str,
    time: i64,
    decision: Result<Vec<u8>, E>,
    encoded_violations: impl Iterator<Item = Result<Vec<u8>, E>>,
    violations: &[Violation],
    input: &StoredRecord,
    out: &mut Output,
) {
    let original = &input.record.value;
    let mut side = Vec::with_capacity(violations.len());
    for (v, encoded) in violations.iter().zip(encoded_violations) {
        match encoded {
            Ok(value) => side.push(Record::new(time, value).with_key(v.violation_key.as_bytes())),
            Err(e) => {
                out.reject(format!("enriched event {event_uid}: cannot encode a violation: {e}"), original);
                return;
            }
        }
    }
    let key = input.record.key.clone().unwrap_or_else(|| event_uid.as_bytes().to_vec());
    match decision {
        Ok(value) => out.emit(Record::new(time, value).with_key(key)),
        Err(e) => {
            out.reject(format!("enriched event {event_uid}: cannot encode its decision: {e}"), original);
            return;
        }
    }
    for record in side {
        out.emit_side(VIOLATIONS_OUTPUT, record);
    }
}

/// What deciding one event found: the rules that matched (in id order) and the violations it
/// opened, updated or resolved (already in the state).
struct Decided<'r> {
    matched: Vec<&'r Rule>,
    changes: Vec<Violation>,
}

impl Decided<'_> {
    /// The strongest decision of the rules that matched (deny > review > allow), allow when none did.
    fn decision(&self) -> Decision {
        self.matched.iter().map(|r| r.decision).max_by_key(|d| precedence(*d)).unwrap_or(Decision::Allow)
    }

    /// The highest severity of the rules that matched, 0 when none did.
    fn severity_id(&self) -> i32 {
        self.matched.iter().map(|r| r.severity.id()).max().unwrap_or(0)
    }

    /// The union of the matched rules' labels, sorted by name; on a clash the first rule's.
    fn labels(&self) -> Vec<(&str, &str)> {
        let mut labels: Vec<(&str, &str)> =
            self.matched.iter().flat_map(|r| r.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))).collect();
        // A stable sort keeps the rules' order among equal names; dedup keeps the first of each.
        labels.sort_by_key(|(k, _)| *k);
        labels.dedup_by_key(|(k, _)| *k);
        labels
    }

    /// The decision as a record.
    fn into_decision(self, set: &PolicySet, event_uid: &str, time: i64) -> PolicyDecision {
        PolicyDecision {
            decision_uid: [event_uid, "/", set.short_version()].concat(),
            event_uid: event_uid.to_string(),
            time,
            decision: self.decision(),
            policy_set_version: set.version.clone(),
            matched_rules: self.matched.iter().map(|r| r.id.clone()).collect(),
            severity_id: self.severity_id(),
            labels: self.labels().into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            violations: self.changes,
        }
    }

    /// The decision, encoded directly (the same bytes as the record through serde).
    fn encode(&self, encoder: Encoder, set: &PolicySet, event_uid: &str, time: i64) -> Vec<u8> {
        let labels = self.labels();
        encoder.decision_fields(DecisionFields {
            decision_uid: &[event_uid, "/", set.short_version()],
            event_uid,
            time,
            decision: self.decision(),
            policy_set_version: &set.version,
            matched_rules: self.matched.iter().map(|r| r.id.as_str()),
            severity_id: self.severity_id(),
            labels: labels.iter().copied(),
            violations: &self.changes,
        })
    }
}

/// `open` bound to the rules of `set` (see [`OpenIndex::bind`]).
fn bound_index(mut open: OpenIndex, set: &PolicySet) -> OpenIndex {
    open.bind(set.rules.iter().map(|r| r.id.as_str()));
    open
}

/// Whether a verdict of `rule` may open, update or resolve a violation (`open`: the rule's open
/// violations).
fn may_change_violation(rule: &Rule, holds: bool, open: Option<&HashMap<String, OpenEntry>>) -> bool {
    rule.opens_violations() && (holds || (rule.auto_resolve && open.is_some_and(|open| !open.is_empty())))
}

/// A rule's verdict that opens, updates or resolves a violation of `subject`.
struct Pending<'r> {
    rule: &'r Rule,
    subject: String,
    holds: bool,
}

/// What the rules said about one event, before any state changes (so an input rejected halfway
/// changes no state).
#[derive(Default)]
struct Verdicts<'r> {
    /// The rules that matched, in id order.
    matched: Vec<&'r Rule>,
    /// Violations to open, update or resolve.
    pending: Vec<Pending<'r>>,
}

impl<'r> Verdicts<'r> {
    /// Notes a verdict that may change a violation of `subject` (`None`: nobody can be named).
    fn push(
        &mut self,
        rule: &'r Rule,
        subject: Option<Cow<'_, str>>,
        holds: bool,
        event_uid: &str,
        open: Option<&HashMap<String, OpenEntry>>,
    ) {
        let subject = match subject {
            Some(subject) => subject,
            // A match nobody can be named for is a violation of its own event.
            None if holds => Cow::Owned(format!("event:{event_uid}")),
            None => return,
        };
        if holds || open.is_some_and(|open| open.contains_key(subject.as_ref())) {
            self.pending.push(Pending { rule, subject: subject.into_owned(), holds });
        }
    }
}
fn violation(rule: &Rule, key: String, status: ViolationStatus, open: OpenViolation, summary: String) -> Violation {
    Violation {
        violation_key: key,
        rule_id: open.rule_id,
        rule_description: rule.description.clone(),
        severity_id: rule.severity.id(),
        status,
        first_seen: open.first_seen,
        last_seen: open.last_seen,
        subject: open.subject,
        event_uid: open.event_uid,
        labels: rule.labels.clone(),
        summary,
    }
}

impl Operator for Policy {
    fn restore(&mut self, state: &dyn State) -> Result<(), ComponentError> {
        self.open = bound_index(OpenIndex::restore(state)?, &self.set);
        Ok(())
    }

    fn process(&mut self, input: &StoredRecord, state: &mut dyn State, out: &mut Output) -> Result<(), ComponentError> {
        self.maybe_reload();
        let original = &input.record.value;
        if self.compiled {
            let encoder = self.encoder;
            let emitted = self.decide_compiled_then(original, state, |set, enriched, decided| match encoder {
                // Encoded without serde: the same bytes, without building the records first.
                Some(encoder) => {
                    let (uid, time) = (enriched.event_uid, enriched.time);
                    let decision = Ok::<_, std::convert::Infallible>(decided.encode(encoder, set, uid, time));
                    let violations = decided.changes.iter().map(|v| Ok(encoder.violation(v)));
                    emit_encoded(uid, time, decision, violations, &decided.changes, input, out);
                }
                None => Policy::emit(decided.into_decision(set, enriched.event_uid, enriched.time), input, out),
            })?;
            if emitted.is_some() {
                return Ok(());
            }
        }
        let enriched = match weir_schemas::decode::<EnrichedEvent>(original) {
            Ok(enriched) => enriched,
            Err(e) => {
                self.stats.rejected += 1;
                out.reject(format!("input is not an EnrichedEvent: {e}"), original);
                return Ok(());
            }
        };
        match self.decide(&enriched, state)? {
            Ok(decision) => Policy::emit(decision, input, out),
            Err(reason) => {
                self.stats.rejected += 1;
                out.reject(format!("enriched event {}: {reason}", enriched.event_uid), original);
            }
        }
        Ok(())
    }

    fn side_outputs(&self) -> Vec<String> {
        vec![VIOLATIONS_OUTPUT.to_string()]
    }

    /// An open violation (table `open`): rule, subject, first and last seen, last event.
    fn describe_state(&self, table: &str, _key: &[u8], value: &[u8]) -> Option<serde_json::Value> {
        match table {
            OPEN_TABLE => OpenViolation::describe(value),
            _ => None,
        }
    }
}
