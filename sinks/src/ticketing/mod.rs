//! Ticketing sinks: [`servicenow`] (Table API incidents) and [`jira`] (Jira Cloud issues).
//!
//! Both read `io.weir.Violation` records and keep one ticket per violation key. Neither
//! destination has an idempotency key, so both look the ticket up before writing (ServiceNow by
//! `correlation_id`, Jira by a label derived from the key): a retry after a lost response, a
//! restart or a replay finds the ticket the first attempt created instead of opening another.
//! Records go one at a time, in order, so two changes of one violation never race inside a sink.
//!
//! What they share lives here: the per-record delivery loop (like the chat sinks', it leaves the
//! records not yet handled for the runner's retry as soon as one fails retryably), the severity
//! mapping option, the explanation of refused credentials and the reading of ticket timestamps.

pub mod jira;
pub mod servicenow;

use async_trait::async_trait;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use weir_schemas::component::{ComponentError, RecordFailure};
use weir_schemas::events::Violation;
use weir_schemas::StoredRecord;

use crate::chat::decode_violation;
use crate::http::{truncate_reason, FailureClass, HttpFailure, Secret};

/// A value per OCSF severity, for urgency, impact or priority: `critical` (severity ids 5 and 6),
/// `high` (4), `medium` (3), `low` (2) and `informational` (1, 0 and anything else). Unset entries
/// take the sink's defaults.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SeverityMap {
    /// Severity ids 5 (critical) and 6 (fatal).
    pub critical: Option<String>,
    /// Severity id 4.
    pub high: Option<String>,
    /// Severity id 3.
    pub medium: Option<String>,
    /// Severity id 2.
    pub low: Option<String>,
    /// Severity id 1, unknown (0) and anything out of range.
    pub informational: Option<String>,
}

impl SeverityMap {
    /// The value for `severity_id`: the configured one, else `defaults` (critical, high, medium,
    /// low, informational).
    pub fn get<'a>(&'a self, severity_id: i32, defaults: [&'a str; 5]) -> &'a str {
        let (configured, default) = match severity_id {
            5 | 6 => (&self.critical, defaults[0]),
            4 => (&self.high, defaults[1]),
            3 => (&self.medium, defaults[2]),
            2 => (&self.low, defaults[3]),
            _ => (&self.informational, defaults[4]),
        };
        configured.as_deref().unwrap_or(default)
    }

    /// The configured values, with their option names, for validation.
    pub(crate) fn entries(&self) -> [(&'static str, Option<&str>); 5] {
        [
            ("critical", self.critical.as_deref()),
            ("high", self.high.as_deref()),
            ("medium", self.medium.as_deref()),
            ("low", self.low.as_deref()),
            ("informational", self.informational.as_deref()),
        ]
    }
}

/// `key` when it is at most `max` bytes of `[A-Za-z0-9._:@-]` (safe in an encoded query, a JQL
/// string and a label), else `sha256:<64 hex>` of it (71 bytes) with `:` replaced by `sep`.
pub(crate) fn plain_or_hashed(key: &str, max: usize, sep: char) -> String {
    let plain = !key.is_empty()
        && key.len() <= max
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'));
    if plain {
        return key.to_string();
    }
    let hex: String = Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256{sep}{hex}")
}

/// Milliseconds since the epoch of a ticket timestamp: ServiceNow's `2024-05-02 18:48:01` (UTC,
/// as the Table API returns it without `sysparm_display_value`), Jira's
/// `2024-05-02T18:48:01.121+0000`, or RFC 3339. `None` when it is none of those.
pub(crate) fn parse_ticket_time(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    let text = text.trim();
    let servicenow = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let jira = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond][offset_hour sign:mandatory][offset_minute]"
    );
    let time = if let Ok(t) = time::PrimitiveDateTime::parse(text, servicenow) {
        t.assume_utc()
    } else if let Ok(t) = time::OffsetDateTime::parse(text, jira) {
        t
    } else {
        time::OffsetDateTime::parse(text, &Rfc3339).ok()?
    };
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Whether a violation belongs to an episode that began no later than the ticket was created:
/// then a closed ticket already covered it, and a replayed OPEN or UPDATED must not reopen or
/// duplicate it. A violation that opens again after being resolved gets a new `first_seen`
/// (the event time of the reopening), later than the old ticket. `created` unreadable: assume
/// covered, because a missed reopening is cheaper to notice than a duplicate ticket.
pub(crate) fn covered_by(violation: &Violation, created: Option<&str>) -> bool {
    match created.and_then(parse_ticket_time) {
        Some(created_ms) => violation.first_seen <= created_ms,
        None => true,
    }
}

/// A 401/403 rewritten to name the credential options, with the (scrubbed) answer; any other
/// failure unchanged. Credentials are the only thing a 401/403 can mean for these sinks, so the
/// operator gets told which options to fix.
pub(crate) fn explain_refusal(
    mut failure: HttpFailure,
    system: &str,
    options: &str,
    secrets: &[Secret],
) -> HttpFailure {
    let Some(status) = failure.status else { return failure };
    if status.as_u16() != 401 && status.as_u16() != 403 {
        return failure;
    }
    let mut reason = format!(
        "{system} refused the credentials (HTTP {status}): check the {options} options and the account's roles"
    );
    let body = truncate_reason(&failure.body);
    if !body.is_empty() {
        reason.push_str(": ");
        reason.push_str(&body);
    }
    failure.reason = scrub(&reason, secrets);
    failure.class = FailureClass::Fatal;
    failure
}

/// `text` with every secret replaced by `***`.
pub(crate) fn scrub(text: &str, secrets: &[Secret]) -> String {
    secrets.iter().fold(text.to_string(), |text, secret| secret.scrub(&text))
}

/// The secrets of a Basic `user:password` login: the password and the header's base64 form (a
/// server that echoes the `Authorization` header must not leak it either).
pub(crate) fn basic_auth_secrets(user: &str, password: &Secret) -> Vec<Secret> {
    use base64::Engine;
    let pair = format!("{user}:{}", password.expose());
    vec![password.clone(), Secret::new(base64::engine::general_purpose::STANDARD.encode(pair))]
}

/// One ticketing system: applies a violation to its ticket (look up, then create or change it).
#[async_trait]
pub(crate) trait Tracker: Send {
    /// Applies one violation; `Err` with the failure of the request that did not succeed.
    async fn apply(&mut self, violation: &Violation) -> Result<(), HttpFailure>;
}

/// Applies each record in order. A record that is not a Violation is a permanent failure without
/// a request. After a retryable failure the rest are not tried (retryable, "not sent"); if then
/// nothing was delivered or dead-lettered, the whole batch is a retryable error. A fatal failure
/// stops the batch with a fatal error.
pub(crate) async fn deliver_each(
    tracker: &mut dyn Tracker,
    batch: &[StoredRecord],
) -> Result<Vec<RecordFailure>, ComponentError> {
    let mut failures = Vec::new();
    let mut records = batch.iter().enumerate();
    while let Some((index, record)) = records.next() {
        let violation = match decode_violation(&record.record.value) {
            Ok(violation) => violation,
            Err(reason) => {
                failures.push(RecordFailure { index, retryable: false, reason });
                continue;
            }
        };
        let failure = match tracker.apply(&violation).await {
            Ok(()) => continue,
            Err(failure) => failure,
        };
        failures.extend(failure.for_records([index])?);
        if failure.class == FailureClass::Retryable {
            // The destination is struggling: leave the rest for the runner's retry.
            for (rest, record) in records.by_ref() {
                let (retryable, reason) = match decode_violation(&record.record.value) {
                    Ok(_) => (true, format!("not sent: {}", failure.reason)),
                    Err(reason) => (false, reason),
                };
                failures.push(RecordFailure { index: rest, retryable, reason });
            }
            if failures.len() == batch.len() && failures.iter().all(|f| f.retryable) {
                return Err(ComponentError::retryable(failure.reason));
            }
            break;
        }
    }
    Ok(failures)
}

/// The OCSF severity word of a violation (for ticket text).
pub(crate) fn severity_word(severity_id: i32) -> &'static str {
    crate::chat::ocsf_severity(severity_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_times_parse_in_both_vendor_formats() {
        assert_eq!(parse_ticket_time("2024-05-02 18:48:01"), Some(1_714_675_681_000));
        assert_eq!(parse_ticket_time("2024-05-02T18:48:01.121+0000"), Some(1_714_675_681_121));
        assert_eq!(parse_ticket_time("2024-05-02T20:48:01.121+0200"), Some(1_714_675_681_121));
        assert_eq!(parse_ticket_time("2024-05-02T18:48:01.121Z"), Some(1_714_675_681_121));
        assert_eq!(parse_ticket_time("yesterday"), None);
    }

    #[test]
    fn keys_stay_plain_when_safe_and_short() {
        assert_eq!(plain_or_hashed("0123abcd", 100, ':'), "0123abcd");
        let hashed = plain_or_hashed("a^b", 100, ':');
        assert!(hashed.starts_with("sha256:") && hashed.len() == 71, "{hashed}");
        assert_eq!(plain_or_hashed(&"k".repeat(101), 100, '-').len(), 71);
        assert_eq!(plain_or_hashed("", 100, '-').len(), 71);
    }

    #[test]
    fn the_example_config_reads() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/ticketing.toml")).unwrap();
        // What the config loader would substitute.
        let text = text
            .replace("${SERVICENOW_URL}", "https://acme.service-now.com")
            .replace("${JIRA_URL}", "https://acme.atlassian.net");
        let file: toml::Table = toml::from_str(&text).unwrap();
        // The runner takes `type` and `inputs`; the rest is the sink's own options.
        let options = |name: &str| {
            let mut table = file["sinks"][name].as_table().unwrap().clone();
            assert_eq!(table.remove("inputs").unwrap(), toml::Value::Array(vec!["decisions.violations".into()]));
            assert_eq!(table.remove("type").unwrap().as_str(), Some(name));
            toml::Value::Table(table)
        };
        let servicenow: servicenow::ServiceNowConfig = options("servicenow").try_into().unwrap();
        servicenow::ServiceNowSink::new(servicenow).unwrap();
        let jira: jira::JiraConfig = options("jira").try_into().unwrap();
        jira::JiraSink::new(jira).unwrap();
    }

    #[test]
    fn severity_map_falls_back_to_defaults() {
        let map = SeverityMap { high: Some("H".into()), ..SeverityMap::default() };
        let defaults = ["c", "h", "m", "l", "i"];
        assert_eq!(map.get(6, defaults), "c");
        assert_eq!(map.get(5, defaults), "c");
        assert_eq!(map.get(4, defaults), "H");
        assert_eq!(map.get(3, defaults), "m");
        assert_eq!(map.get(2, defaults), "l");
        assert_eq!(map.get(0, defaults), "i");
        assert_eq!(map.get(-7, defaults), "i");
    }
}
