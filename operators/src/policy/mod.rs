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

use std::collections::{BTreeMap, HashMap, HashSet};
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
            set: Arc::new(set),
            seen,
            last_check: Instant::now(),
            open: OpenIndex::default(),
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
            set: Arc::new(set),
            seen: None,
            last_check: Instant::now(),
            open: OpenIndex::default(),
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
        self.finish(&set, verdicts, &enriched.event_uid, enriched.time, state).map(Ok)
    }

    /// Decides a single-object encoded `EnrichedEvent` the compiled way: `None` when it must go
    /// the interpreted way (see [`fast`]), else the decision (violations written to `state`).
    pub fn decide_compiled(
        &mut self,
        bytes: &[u8],
        state: &mut dyn State,
    ) -> Result<Option<(PolicyDecision, i64)>, ComponentError> {
        let set = Arc::clone(&self.set);
        let Some(enriched) = set.fast().decode_enriched(bytes) else {
            return Ok(None);
        };
        let event = set.fast().decode_event(enriched.event);
        let Some(verdicts) = self.evaluate_compiled(&set, &enriched, event.as_ref()) else {
            return Ok(None);
        };
        let decision = self.finish(&set, verdicts, enriched.event_uid, enriched.time, state)?;
        Ok(Some((decision, enriched.time)))
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
            let open = self.open.of_rule(&rule.id);
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
            verdicts.push(rule, subject, holds, &enriched.event_uid, self.open.of_rule(&rule.id));
        }
        if let Some(reason) = activation.event_error() {
            return Err(reason.to_string());
        }
        Ok(verdicts)
    }

    /// Every applicable rule's verdict, compiled; `None` when a rule is not compiled or not sure.
    fn evaluate_compiled<'r>(
        &self,
        set: &'r PolicySet,
        enriched: &fast::Enriched<'_>,
        event: Option<&fast::avro::Node<'_>>,
    ) -> Option<Verdicts<'r>> {
        let fast = set.fast();
        let vars = enriched.vars(event);
        let mut verdicts = Verdicts::default();
        for &index in set.rules_for(enriched.class_uid) {
            let rule = &set.rules[index];
            let holds = fast.condition(index)?.holds(&vars)?;
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
                match self.open.of_rule(&rule.id) {
                    Some(open) if !open.is_empty() => Some(open),
                    _ => continue,
                }
            };
            let subject = match fast.subject(index) {
                SubjectPlan::Default => enriched.default_subject(event)?,
                SubjectPlan::Compiled(program) => program.subject(&vars)?,
                SubjectPlan::Interpreted => return None,
            };
            verdicts.push(rule, subject, holds, enriched.event_uid, open);
        }
        Some(verdicts)
    }

    /// Applies the verdicts: violations opened, updated or resolved (in `state`), and the decision.
    fn finish(
        &mut self,
        set: &PolicySet,
        verdicts: Verdicts<'_>,
        event_uid: &str,
        time: i64,
        state: &mut dyn State,
    ) -> Result<PolicyDecision, ComponentError> {
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
        let decision = matched.iter().map(|r| r.decision).max_by_key(|d| precedence(*d)).unwrap_or(Decision::Allow);
        let mut labels = BTreeMap::new();
        for rule in &matched {
            for (k, v) in &rule.labels {
                labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        Ok(PolicyDecision {
            decision_uid: [event_uid, "/", set.short_version()].concat(),
            event_uid: event_uid.to_string(),
            time,
            decision,
            policy_set_version: set.version.clone(),
            matched_rules: matched.iter().map(|r| r.id.clone()).collect(),
            severity_id: matched.iter().map(|r| r.severity.id()).max().unwrap_or(0),
            labels,
            violations: changes,
        })
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

    /// Emits a decision and its violations (or rejects the input if one cannot be encoded).
    fn emit(&mut self, decision: PolicyDecision, input: &StoredRecord, time: i64, out: &mut Output) {
        let original = &input.record.value;
        let mut side = Vec::with_capacity(decision.violations.len());
        // The compiled way encodes without serde (same bytes); the interpreted way as it always did.
        let encoder = if self.compiled { self.encoder } else { None };
        for v in &decision.violations {
            let encoded = match encoder {
                Some(encoder) => Ok(encoder.violation(v)),
                None => weir_schemas::encode(v),
            };
            match encoded {
                Ok(value) => side.push(Record::new(time, value).with_key(v.violation_key.as_bytes())),
                Err(e) => {
                    let reason = format!("enriched event {}: cannot encode a violation: {e}", decision.event_uid);
                    out.reject(reason, original);
                    return;
                }
            }
        }
        let key = input.record.key.clone().unwrap_or_else(|| decision.event_uid.as_bytes().to_vec());
        let encoded = match encoder {
            Some(encoder) => Ok(encoder.decision(&decision)),
            None => weir_schemas::encode(&decision),
        };
        match encoded {
            Ok(value) => out.emit(Record::new(time, value).with_key(key)),
            Err(e) => {
                out.reject(format!("enriched event {}: cannot encode its decision: {e}", decision.event_uid), original);
                return;
            }
        }
        for record in side {
            out.emit_side(VIOLATIONS_OUTPUT, record);
        }
    }
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
        subject: Option<String>,
        holds: bool,
        event_uid: &str,
        open: Option<&HashMap<String, OpenEntry>>,
    ) {
        let subject = match subject {
            Some(subject) => subject,
            // A match nobody can be named for is a violation of its own event.
            None if holds => format!("event:{event_uid}"),
            None => return,
        };
        if holds || open.is_some_and(|open| open.contains_key(&subject)) {
            self.pending.push(Pending { rule, subject, holds });
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
        self.open = OpenIndex::restore(state)?;
        Ok(())
    }

    fn process(&mut self, input: &StoredRecord, state: &mut dyn State, out: &mut Output) -> Result<(), ComponentError> {
        self.maybe_reload();
        let original = &input.record.value;
        if self.compiled {
            if let Some((decision, time)) = self.decide_compiled(original, state)? {
                self.emit(decision, input, time, out);
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
            Ok(decision) => self.emit(decision, input, enriched.time, out),
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
