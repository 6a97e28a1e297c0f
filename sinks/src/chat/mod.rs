//! Chat and paging sinks: [`pagerduty`] (Events API v2), [`slack`] (incoming webhooks or the
//! `chat.postMessage` Web API) and [`teams`] (Workflows or legacy connector webhooks).
//!
//! All send one request per record through the shared [`crate::http::HttpDelivery`] and read
//! `io.weir.Violation` records; Slack and Teams also render an `io.weir.WindowAggregate` (an
//! `aggregate` operator's result, e.g. `preset = "daily_digest"`) as a digest message. What they
//! share lives here: decoding a violation or a digest (`decode_chat_record`), the digest's
//! title and window text, and the one-request-per-record delivery loop (which, like the webhook
//! sink, leaves the records not yet sent for the runner's retry as soon as one request fails
//! retryably).

pub mod pagerduty;
pub mod slack;
pub mod teams;

use std::collections::HashMap;

use weir_schemas::avro::{fingerprint_of, Registry};
use weir_schemas::component::{ComponentError, RecordFailure};
use weir_schemas::events::{Violation, ViolationStatus, WindowAggregate};
use weir_schemas::{AvroRecord, StoredRecord};

use crate::encoding::{record_id, rfc3339_ms, value_to_json};
use crate::http::{FailureClass, HttpDelivery, HttpFailure, Reply};
use crate::template::Template;

/// Most top-k items listed in a digest message: a chat message is read at a glance, and the
/// daily digest's lists are 10 long by default.
pub const MAX_DIGEST_TOP: usize = 10;

/// A record the Slack and Teams sinks have a message layout for.
#[derive(Debug)]
pub(crate) enum ChatRecord {
    /// An `io.weir.Violation`: one alert message.
    Violation(Violation),
    /// An `io.weir.WindowAggregate`: one digest message (one metric of one window).
    Digest(WindowAggregate),
}

/// One chat message to send: the batch's records it stands for, and what it shows.
#[derive(Debug)]
pub(crate) struct ChatMessage {
    /// Indexes into the batch, in batch order.
    pub indexes: Vec<usize>,
    /// What the message shows.
    pub content: ChatContent,
}

/// What a chat message shows.
#[derive(Debug)]
pub(crate) enum ChatContent {
    /// One alert.
    Violation(Violation),
    /// An aggregate operator's results for one window and group key, in batch order — the
    /// `daily_digest` preset's six metrics make one message, not six. `id` is the first
    /// record's stable id.
    Digest { digests: Vec<WindowAggregate>, id: String },
    /// Any other record: its decoded value.
    Other(serde_json::Value),
}

/// The messages for a batch. Results of one window of one aggregate operator for one key are
/// emitted together, so they arrive in the same batch and become one digest message (a window
/// cut by a batch boundary, rare, makes two). Every other record is a message of its own.
pub(crate) fn chat_messages(batch: &[StoredRecord]) -> Vec<ChatMessage> {
    let mut messages: Vec<ChatMessage> = Vec::new();
    let mut digest_at: HashMap<(String, i64, i64, String), usize> = HashMap::new();
    for (index, record) in batch.iter().enumerate() {
        let content = match decode_chat_record(&record.record.value) {
            Ok(ChatRecord::Violation(violation)) => ChatContent::Violation(violation),
            Ok(ChatRecord::Digest(digest)) => {
                let window = (digest.operator.clone(), digest.window_start, digest.window_end, digest.key.clone());
                if let Some(&at) = digest_at.get(&window) {
                    let message = &mut messages[at];
                    if let ChatContent::Digest { digests, .. } = &mut message.content {
                        message.indexes.push(index);
                        digests.push(digest);
                        continue;
                    }
                }
                digest_at.insert(window, messages.len());
                ChatContent::Digest { digests: vec![digest], id: record_id(record) }
            }
            Err(_) => ChatContent::Other(value_to_json(&record.record.value).1),
        };
        messages.push(ChatMessage { indexes: vec![index], content });
    }
    messages
}

/// The title of a group of digests: [`digest_title`] for one metric; the operator (and the
/// group key) for several.
pub(crate) fn digests_title(digests: &[WindowAggregate]) -> String {
    match digests {
        [one] => digest_title(one),
        [first, ..] => {
            let operator = if first.operator.trim().is_empty() { "aggregate" } else { first.operator.as_str() };
            if first.key.is_empty() {
                format!("Digest {operator}")
            } else {
                format!("Digest {operator} for {}", first.key)
            }
        }
        [] => "Digest".to_string(),
    }
}

/// What a digest metric shows: its value when it has one (sum, distinct count), else its count.
pub(crate) fn shown_value(digest: &WindowAggregate) -> String {
    digest.value.map_or(digest.count.to_string(), |v| v.to_string())
}

/// The fields every digest message shows, as (label, value): the window's start and end; the
/// count and value of one metric, or each count metric of several; late events when there were
/// any. Empty for no digests.
pub(crate) fn digest_fields(digests: &[WindowAggregate]) -> Vec<(String, String)> {
    let Some(first) = digests.first() else { return Vec::new() };
    let mut fields = vec![
        ("Window start".to_string(), chat_time(first.window_start)),
        ("Window end".to_string(), chat_time(first.window_end)),
    ];
    if let [one] = digests {
        fields.push(("Count".to_string(), one.count.to_string()));
        if let Some(value) = one.value {
            fields.push(("Value".to_string(), value.to_string()));
        }
    } else {
        fields.extend(digests.iter().filter(|d| d.top.is_empty()).map(|d| (d.metric.clone(), shown_value(d))));
    }
    let late = digests.iter().map(|d| d.late_events).max().unwrap_or(0);
    if late > 0 {
        fields.push(("Late events (not counted)".to_string(), late.to_string()));
    }
    fields
}

/// The one-line summary (notification text) of a group of digests: [`digest_summary`] for one
/// metric; for several, the title, each count metric and the window.
pub(crate) fn digests_summary(digests: &[WindowAggregate]) -> String {
    match digests {
        [one] => digest_summary(one),
        [first, ..] => {
            let counts: Vec<String> = digests
                .iter()
                .filter(|d| d.top.is_empty())
                .map(|d| format!("{} {}", d.metric, shown_value(d)))
                .collect();
            format!("{}: {}, {}", digests_title(digests), counts.join(", "), digest_window(first))
        }
        [] => "Digest".to_string(),
    }
}

/// Decodes a record's value as a Violation or a WindowAggregate, chosen by the writer schema's
/// name (looked up by the fingerprint in its single-object header), or says why it is neither.
pub(crate) fn decode_chat_record(value: &[u8]) -> Result<ChatRecord, String> {
    let registry = Registry::embedded();
    let fingerprint = fingerprint_of(value).ok_or("not a Weir record (no single-object header)")?;
    let writer = registry.get(fingerprint).ok_or_else(|| format!("unknown schema fingerprint {fingerprint:016x}"))?;
    match writer.name() {
        Violation::SCHEMA_NAME => {
            registry.decode(value).map(ChatRecord::Violation).map_err(|e| format!("not an io.weir.Violation: {e}"))
        }
        WindowAggregate::SCHEMA_NAME => {
            registry.decode(value).map(ChatRecord::Digest).map_err(|e| format!("not an io.weir.WindowAggregate: {e}"))
        }
        other => Err(format!("an {other}, neither an io.weir.Violation nor an io.weir.WindowAggregate")),
    }
}

/// A time for people and machines alike (RFC 3339, UTC), or the raw number when out of range.
pub(crate) fn chat_time(ms: i64) -> String {
    rfc3339_ms(ms).unwrap_or_else(|| ms.to_string())
}

/// A digest's title: `Digest <operator>: <metric>` and the group key when there is one. The
/// sinks' `title_template` is not used: it is written against a violation's fields, and a
/// digest has none of them.
pub(crate) fn digest_title(digest: &WindowAggregate) -> String {
    let operator = if digest.operator.trim().is_empty() { "aggregate" } else { digest.operator.as_str() };
    if digest.key.is_empty() {
        format!("Digest {operator}: {}", digest.metric)
    } else {
        format!("Digest {operator}: {} for {}", digest.metric, digest.key)
    }
}

/// A digest's window, `start – end` (the end exclusive).
pub(crate) fn digest_window(digest: &WindowAggregate) -> String {
    format!("{} – {}", chat_time(digest.window_start), chat_time(digest.window_end))
}

/// A digest's one-line summary (the notification text): title, count, value and window.
pub(crate) fn digest_summary(digest: &WindowAggregate) -> String {
    let value = digest.value.map(|v| format!(", value {v}")).unwrap_or_default();
    format!("{}: {} events{value}, {}", digest_title(digest), digest.count, digest_window(digest))
}

/// Decodes a record's value as an `io.weir.Violation`, or says why it is not one.
pub(crate) fn decode_violation(value: &[u8]) -> Result<Violation, String> {
    weir_schemas::decode::<Violation>(value).map_err(|e| format!("not an io.weir.Violation: {e}"))
}

/// The violation as the JSON templates are rendered against: its fields by their schema names
/// (`rule_id`, `summary`, `labels.team`, `status` as `OPEN`, times as ms since the epoch).
pub(crate) fn violation_json(violation: &Violation) -> serde_json::Value {
    // Cannot fail for a Violation (string-keyed maps only); `null` would render every field as missing.
    serde_json::to_value(violation).unwrap_or_default()
}

/// `template` rendered against the violation, or `default()` when there is no template or it
/// renders blank: every destination refuses an empty title, and a violation dead-lettered for a
/// cosmetic reason would be an alert lost.
pub(crate) fn render_or(
    template: Option<&Template>,
    violation: &Violation,
    default: impl FnOnce() -> String,
) -> String {
    match template.map(|t| t.render(&violation_json(violation))) {
        Some(text) if !text.trim().is_empty() => text,
        _ => default(),
    }
}

/// The OCSF severity id as a word: 5/6 critical/fatal, 4 high, 3 medium, 2 low, 1 informational.
pub(crate) fn ocsf_severity(severity_id: i32) -> &'static str {
    match severity_id {
        6 => "fatal",
        5 => "critical",
        4 => "high",
        3 => "medium",
        2 => "low",
        1 => "informational",
        _ => "unknown",
    }
}

/// `OPEN`, `UPDATED` or `RESOLVED`.
pub(crate) fn status_name(status: ViolationStatus) -> &'static str {
    match status {
        ViolationStatus::Open => "OPEN",
        ViolationStatus::Updated => "UPDATED",
        ViolationStatus::Resolved => "RESOLVED",
    }
}

/// `text` cut to at most `max` characters (with `…` when cut).
pub(crate) fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Sends one request per record, in order. `Err(reason)` entries are permanent failures without
/// a request (the record could not be turned into one). After a retryable failure the rest are
/// not sent (retryable, "not sent"); if nothing was delivered or dead-lettered then, the whole
/// batch is a retryable error. A fatal failure stops the batch with a fatal error.
pub(crate) async fn send_each(
    delivery: &mut HttpDelivery,
    requests: Vec<Result<reqwest::RequestBuilder, String>>,
) -> Result<Vec<RecordFailure>, ComponentError> {
    send_each_prebuilt(
        delivery,
        requests.into_iter().enumerate().map(|(i, request)| (vec![i], request)).collect(),
        |_, _| Ok(()),
    )
    .await
}

/// [`send_each_checked`] with every request built beforehand.
pub(crate) async fn send_each_prebuilt(
    delivery: &mut HttpDelivery,
    requests: Vec<(Vec<usize>, Result<reqwest::RequestBuilder, String>)>,
    check: impl FnMut(usize, &Reply) -> Result<(), HttpFailure>,
) -> Result<Vec<RecordFailure>, ComponentError> {
    let (groups, mut built): (Vec<_>, Vec<_>) = requests.into_iter().map(|(group, r)| (group, Some(r))).unzip();
    let build = |position: usize| built[position].take().expect("each request is built once");
    send_each_checked(delivery, groups, build, check).await
}

/// [`send_each`] for messages that each stand for some records of the batch (`groups`: a digest
/// message for several metrics), built by `build` (given the message's position) only when it
/// is its turn, and for destinations that report failures inside a 2xx answer
/// (Slack's Web API `{"ok":false}`, a throttled Teams connector's `200` text): `check` reads
/// each 2xx reply and may turn it into a failure, which then counts like any other (breaker,
/// `Retry-After` hold). `check` gets the request's position and may note what the reply says
/// (Slack's message `ts`). A request's outcome applies to every record it stands for. `check`
/// must scrub secrets from the reasons it writes: [`HttpDelivery`] only scrubs its own.
pub(crate) async fn send_each_checked(
    delivery: &mut HttpDelivery,
    groups: Vec<Vec<usize>>,
    mut build: impl FnMut(usize) -> Result<reqwest::RequestBuilder, String>,
    mut check: impl FnMut(usize, &Reply) -> Result<(), HttpFailure>,
) -> Result<Vec<RecordFailure>, ComponentError> {
    let total: usize = groups.iter().map(Vec::len).sum();
    let mut failures = Vec::new();
    let mut groups = groups.into_iter().enumerate();
    while let Some((position, indexes)) = groups.next() {
        let request = match build(position) {
            Ok(request) => request,
            Err(reason) => {
                failures.extend(indexes.into_iter().map(|index| RecordFailure {
                    index,
                    retryable: false,
                    reason: reason.clone(),
                }));
                continue;
            }
        };
        let failure = match delivery.send(request).await {
            Ok(reply) => match check(position, &reply) {
                Ok(()) => continue,
                Err(failure) => {
                    delivery.note(&failure);
                    failure
                }
            },
            Err(failure) => failure,
        };
        failures.extend(failure.for_records(indexes)?);
        if failure.class == FailureClass::Retryable {
            // The destination is struggling: leave the rest for the runner's retry.
            for (rest_position, rest) in groups.by_ref() {
                // Built only to tell a record that could never be sent (dead letter) from one
                // not sent yet (retry); nothing goes out.
                let (retryable, reason) = match build(rest_position) {
                    Ok(_) => (true, format!("not sent: {}", failure.reason)),
                    Err(reason) => (false, reason),
                };
                failures.extend(rest.into_iter().map(|index| RecordFailure {
                    index,
                    retryable,
                    reason: reason.clone(),
                }));
            }
            if failures.len() == total && failures.iter().all(|f| f.retryable) {
                return Err(ComponentError::retryable(failure.reason));
            }
            break;
        }
    }
    Ok(failures)
}

/// Records for the chat sinks' tests: a daily digest's metrics and a record of another schema.
#[cfg(test)]
pub(crate) mod test_records {
    use weir_schemas::events::{DeadLetter, Stage, TopItem, WindowAggregate, WindowKind};
    use weir_schemas::{Record, StoredRecord};

    /// 2024-05-02T00:00:00Z, the digest window's start; it ends a day later.
    pub const DAY_START: i64 = 1_714_608_000_000;
    /// 2024-05-03T00:00:00Z.
    pub const DAY_END: i64 = DAY_START + 86_400_000;

    /// One metric of a `daily_digest` window, as the aggregate operator emits it.
    pub fn digest(metric: &str, count: i64, top: usize) -> WindowAggregate {
        WindowAggregate {
            operator: "digest".into(),
            window_kind: WindowKind::Tumbling,
            window_start: DAY_START,
            window_end: DAY_END,
            key: String::new(),
            metric: metric.into(),
            value: None,
            count,
            top: (0..top).map(|i| TopItem { item: format!("user{i}@example.com"), count: 20 - i as i64 }).collect(),
            late_events: 0,
            emitted_at: DAY_END + 5_000,
        }
    }

    /// `digest` as the operator's record, with its stable `weir-id`.
    pub fn digest_record(offset: u64, digest: &WindowAggregate) -> StoredRecord {
        let id = format!("digest/{}/{}/{}/1/{}", digest.window_start, digest.window_end, digest.metric, digest.key);
        StoredRecord {
            topic: "digest".into(),
            partition: 0,
            offset,
            record: Record::new(digest.window_end - 1, weir_schemas::encode(digest).unwrap())
                .with_header("weir-id", id),
        }
    }

    /// A typed record that is neither a Violation nor a WindowAggregate.
    pub fn dead_letter_record(offset: u64) -> StoredRecord {
        let dead = DeadLetter {
            component: "normalize".into(),
            stage: Stage::Operator,
            input_topic: Some("raw.okta".into()),
            input_partition: Some(0),
            input_offset: Some(7),
            reason: "not JSON".into(),
            original: b"oops".to_vec(),
            time: DAY_START,
            attempts: 1,
        };
        StoredRecord {
            topic: "dlq".into(),
            partition: 0,
            offset,
            record: Record::new(DAY_START, weir_schemas::encode(&dead).unwrap()),
        }
    }

    #[test]
    fn records_are_told_apart_by_their_writer_schema() {
        use super::{decode_chat_record, ChatRecord};
        let record = digest_record(0, &digest("total", 42, 0));
        assert!(matches!(decode_chat_record(&record.record.value), Ok(ChatRecord::Digest(d)) if d.count == 42));
        let err = decode_chat_record(&dead_letter_record(1).record.value).unwrap_err();
        assert!(err.contains("io.weir.DeadLetter"), "{err}");
        assert!(decode_chat_record(b"{\"plain\":1}").unwrap_err().contains("no single-object header"));
        // A known header over a cut body is an error, not a panic.
        let mut cut = record.record.value.clone();
        cut.truncate(12);
        assert!(decode_chat_record(&cut).unwrap_err().contains("io.weir.WindowAggregate"));
    }
}
