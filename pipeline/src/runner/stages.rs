//! The three stage loops: source, operator and sink. Each commits only what is durable
//! downstream of it (see the module above).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;
use weir_schemas::component::{ComponentError, ErrorKind, Operator, Output, Rejected, Sink, Source, SourcePoll};
use weir_schemas::events::{DeadLetter, Stage};
use weir_schemas::{Record, StoredRecord};

use super::replay::ReplayGuard;
use super::state::StateOverlay;
use super::{StageContext, READ_BATCH};
use crate::config::{Role, DLQ_TOPIC};
use crate::log::{partition_for_key, LogError};
use crate::store::{Checkpoint, Store};

/// How long an operator or sink waits before looking at its inputs again when they are empty.
const IDLE_POLL: Duration = Duration::from_millis(50);

/// The header carrying a record's deterministic id.
pub const ID_HEADER: &str = "weir-id";

fn new_backoff() -> ExponentialBackoff {
    ExponentialBackoff {
        initial_interval: Duration::from_millis(100),
        current_interval: Duration::from_millis(100),
        max_interval: Duration::from_secs(30),
        max_elapsed_time: None,
        ..ExponentialBackoff::default()
    }
}

/// A record's deterministic id: its `weir-id` header (set by sources from the vendor position,
/// so a batch a source delivers twice gets the same ids), else its position on the log.
fn record_id(record: &StoredRecord) -> String {
    match record.record.header(ID_HEADER) {
        Some(id) => String::from_utf8_lossy(id).into_owned(),
        None => format!("{}/{}/{}", record.topic, record.partition, record.offset),
    }
}

/// Counts a retry and waits (jittered, exponential); false when shutting down.
async fn retry_wait(cx: &mut StageContext, backoff: &mut ExponentialBackoff, error: &ComponentError) -> bool {
    cx.progress.retries.fetch_add(1, Ordering::Relaxed);
    let delay = backoff.next_backoff().unwrap_or(Duration::from_secs(30));
    tracing::warn!(stage = %cx.name, error = %(cx.redact)(&error.message), retry_in_ms = delay.as_millis() as u64, "retryable error");
    cx.sleep(delay).await
}

/// After a retryable error of an operator: waits (see [`retry_wait`]), then brings its memory back
/// to the committed state. `false` when the stage ends instead (shutdown, or the restore failed,
/// which is reported).
async fn back_to_committed(
    cx: &mut StageContext,
    backoff: &mut ExponentialBackoff,
    error: &ComponentError,
    operator: &mut dyn Operator,
    store: &Store,
) -> bool {
    if !retry_wait(cx, backoff, error).await {
        return false;
    }
    if let Err(e) = operator.restore(&StateOverlay::new(store, &cx.name)) {
        cx.fail(format!("restoring state: {}", e.message));
        return false;
    }
    true
}

/// Groups records by the partition of their key, keeping their order within a partition.
fn by_partition(cx: &StageContext, topic: &str, records: Vec<Record>) -> BTreeMap<u32, Vec<Record>> {
    let mut groups: BTreeMap<u32, Vec<Record>> = BTreeMap::new();
    for record in records {
        groups.entry(partition_for_key(record.key.as_deref(), cx.partitions(topic))).or_default().push(record);
    }
    groups
}

/// Appends records to a topic, each to the partition of its key, in order within a partition.
async fn append_partitioned(cx: &StageContext, topic: &str, records: Vec<Record>) -> Result<(), LogError> {
    for (partition, records) in by_partition(cx, topic, records) {
        cx.log.append(topic, partition, &records).await?;
    }
    Ok(())
}

/// Appends a stage's own outputs: like [`append_partitioned`], but records already on the log
/// from an uncommitted batch before a crash are not appended again (see [`ReplayGuard`]), and
/// the log's end after the appends is noted in `produced` for the commit.
async fn append_outputs(
    cx: &StageContext,
    topic: &str,
    records: Vec<Record>,
    guard: &mut ReplayGuard,
    produced: &mut BTreeMap<(String, u32), u64>,
) -> Result<(), LogError> {
    for (partition, records) in by_partition(cx, topic, records) {
        let records = guard.filter(cx, topic, partition, records);
        let end = if records.is_empty() {
            cx.log.offsets(topic, partition).await?.end
        } else {
            cx.log.append(topic, partition, &records).await?.last_offset + 1
        };
        produced.insert((topic.to_string(), partition), end);
    }
    Ok(())
}

/// Milliseconds since the Unix epoch, now.
pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A `dlq` record for rejected input; `n` numbers the rejections of one input.
fn dead_letter(
    cx: &StageContext,
    input: Option<&StoredRecord>,
    n: usize,
    rejected: Rejected,
    attempts: i32,
) -> Result<Record, String> {
    let stage = match cx.role {
        Role::Source => Stage::Source,
        Role::Operator => Stage::Operator,
        Role::Sink => Stage::Sink,
    };
    let letter = DeadLetter {
        component: cx.name.clone(),
        stage,
        input_topic: input.map(|r| r.topic.clone()),
        input_partition: input.map(|r| r.partition as i32),
        input_offset: input.map(|r| r.offset as i64),
        reason: (cx.redact)(&rejected.reason),
        original: rejected.original,
        time: now_ms(),
        attempts,
    };
    let value = weir_schemas::encode(&letter).map_err(|e| format!("encoding a dead letter: {e}"))?;
    let mut record = Record::new(letter.time, value).with_key(cx.name.clone());
    if let Some(input) = input {
        let id = format!("{}/{}/dlq/{n}", cx.name, record_id(input));
        record.headers.push((ID_HEADER.into(), id.into_bytes()));
    }
    Ok(record)
}

async fn write_dead_letters(cx: &StageContext, letters: Vec<Record>) -> Result<(), LogError> {
    let count = letters.len() as u64;
    append_partitioned(cx, DLQ_TOPIC, letters).await?;
    cx.progress.dead_lettered.fetch_add(count, Ordering::Relaxed);
    Ok(())
}

/// Runs a source: poll, append, commit the cursor, tell the source.
pub(crate) async fn run_source(mut cx: StageContext, mut source: Box<dyn Source>) {
    let cursor = match cx.store.cursor(&cx.name) {
        Ok(cursor) => cursor,
        Err(e) => return cx.fail(e.to_string()),
    };
    let mut backoff = new_backoff();
    loop {
        match source.open(cursor.clone()).await {
            Ok(()) => break,
            Err(e) if e.kind == ErrorKind::Retryable => {
                if !retry_wait(&mut cx, &mut backoff, &e).await {
                    return;
                }
            }
            Err(e) => return cx.fail(e.message),
        }
    }
    backoff.reset();
    let topic = cx.output_topic.clone().expect("a source has an output topic");
    let mut guard = match ReplayGuard::load(&cx, std::slice::from_ref(&topic)).await {
        Ok(guard) => guard,
        Err(e) => return cx.fail(e),
    };
    loop {
        if cx.stopping() {
            return;
        }
        let mut shutdown = cx.shutdown.clone();
        let poll = tokio::select! {
            poll = source.poll() => poll,
            _ = shutdown.changed() => return,
        };
        let stats = source.stats();
        cx.progress.source_retries.store(stats.retries, Ordering::Relaxed);
        if let Some(cursor_time) = stats.cursor_time_ms {
            cx.progress.cursor_time_ms.store(cursor_time, Ordering::Relaxed);
        }
        match poll {
            Ok(SourcePoll::Batch(batch)) => {
                backoff.reset();
                let received = (batch.records.len() + batch.rejected.len()) as u64;
                let appended = batch.records.len() as u64;
                let bytes: u64 = batch.records.iter().map(|r| r.value.len() as u64).sum();
                let letters: Result<Vec<Record>, String> =
                    batch.rejected.into_iter().map(|r| dead_letter(&cx, None, 0, r, 1)).collect();
                let letters = match letters {
                    Ok(letters) => letters,
                    Err(e) => return cx.fail(e),
                };
                let mut produced = BTreeMap::new();
                if let Err(e) = append_outputs(&cx, &topic, batch.records, &mut guard, &mut produced).await {
                    return cx.fail(e.to_string());
                }
                if let Err(e) = write_dead_letters(&cx, letters).await {
                    return cx.fail(e.to_string());
                }
                // The batch must be on disk before the cursor that says it was received.
                if let Err(e) = cx.log.flush().await {
                    return cx.fail(e.to_string());
                }
                if let Err(e) = guard.mark_unmarked(&cx, &mut produced).await {
                    return cx.fail(e.to_string());
                }
                let checkpoint = Checkpoint {
                    consumer: cx.name.clone(),
                    cursor: batch.cursor.clone(),
                    produced,
                    ..Default::default()
                };
                if let Err(e) = cx.store.commit(&checkpoint) {
                    return cx.fail(e.to_string());
                }
                guard.marked();
                cx.progress.records_in.fetch_add(received, Ordering::Relaxed);
                cx.progress.records_out.fetch_add(appended, Ordering::Relaxed);
                cx.progress.bytes_in.fetch_add(bytes, Ordering::Relaxed);
                if let Err(e) = source.committed(batch.cursor.as_deref()).await {
                    return cx.fail(e.message);
                }
            }
            Ok(SourcePoll::Idle(delay)) => {
                if cx.options.until_idle {
                    return cx.progress.input_ended.store(true, Ordering::SeqCst);
                }
                if !cx.sleep(delay).await {
                    return;
                }
            }
            Ok(SourcePoll::Finished) => return cx.progress.input_ended.store(true, Ordering::SeqCst),
            Err(e) if e.kind == ErrorKind::Retryable => {
                if !retry_wait(&mut cx, &mut backoff, &e).await {
                    return;
                }
            }
            Err(e) => return cx.fail(e.message),
        }
    }
}

/// Where a consuming stage is on one input partition.
struct InputPosition {
    topic: String,
    partition: u32,
    next: u64,
    /// This worker processes the partition; else (global tables) its records only update the
    /// operator's tables.
    owned: bool,
}

/// The committed positions of a consuming stage on every input partition it reads: those its
/// worker owns, or all of them for an operator with global tables. A committed offset beyond
/// the end of the log means log data was lost (an OS crash with `fsync = "never"`): the stage
/// refuses to start rather than silently skip what is appended next.
async fn input_positions(cx: &StageContext) -> Result<Vec<InputPosition>, String> {
    let worker = cx.options.worker;
    let mut positions = Vec::new();
    for (topic, _) in &cx.inputs {
        for partition in super::read_partitions(worker, cx.all_partitions, cx.partitions(topic)) {
            let next = cx.store.offset(&cx.name, topic, partition).map_err(|e| e.to_string())?.unwrap_or(0);
            let end = cx.log.offsets(topic, partition).await.map_err(|e| e.to_string())?.end;
            if next > end {
                return Err(format!(
                    "committed offset {next} of {topic}/{partition} is beyond the log's end ({end}): \
                     log data this stage already consumed is gone"
                ));
            }
            positions.push(InputPosition { topic: topic.clone(), partition, next, owned: worker.owns(partition) });
        }
    }
    Ok(positions)
}

/// Reads the next batch from the inputs, round robin; `None` when every input is at its end.
async fn next_batch(
    cx: &StageContext,
    positions: &mut [InputPosition],
    round_robin: &mut usize,
) -> Result<Option<(usize, Vec<StoredRecord>)>, LogError> {
    for i in 0..positions.len() {
        let at = (*round_robin + i) % positions.len();
        let position = &mut positions[at];
        let batch = match cx.log.read(&position.topic, position.partition, position.next, READ_BATCH).await {
            Ok(batch) => batch,
            Err(LogError::OffsetOutOfRange { start, .. }) => {
                tracing::error!(
                    stage = %cx.name, topic = %position.topic, partition = position.partition,
                    lost = start - position.next,
                    "records were deleted by retention before this stage read them; resuming at the oldest held"
                );
                position.next = start;
                cx.log.read(&position.topic, position.partition, position.next, READ_BATCH).await?
            }
            Err(e) => return Err(e),
        };
        if !batch.records.is_empty() {
            *round_robin = at + 1;
            return Ok(Some((at, batch.records)));
        }
    }
    Ok(None)
}

/// What a consuming stage reads next.
enum Next {
    /// A batch from the input at this index of the positions.
    Batch(usize, Vec<StoredRecord>),
    /// `--until-idle`: every input is at its end and every stage writing them is done.
    Idle,
    /// Shutting down.
    Stop,
}

/// Reads the next batch, or waits.
async fn wait_for_batch(
    cx: &mut StageContext,
    positions: &mut [InputPosition],
    round_robin: &mut usize,
) -> Result<Next, LogError> {
    loop {
        if cx.stopping() {
            return Ok(Next::Stop);
        }
        // Sampled before reading: if the writers were done before the read found nothing, nothing
        // more will ever come.
        let upstream_done = cx.upstream_done();
        if let Some((at, batch)) = next_batch(cx, positions, round_robin).await? {
            return Ok(Next::Batch(at, batch));
        }
        if cx.options.until_idle && upstream_done {
            return Ok(Next::Idle);
        }
        if !cx.sleep(IDLE_POLL).await {
            return Ok(Next::Stop);
        }
    }
}

/// The stage read everything it will ever read: says so to the stages downstream if its
/// upstream ended that way too (see [`super::StageProgress::input_ended`]); returns whether it
/// did.
fn end_input(cx: &StageContext) -> bool {
    let ended = cx.upstream_ended();
    if ended {
        cx.progress.input_ended.store(true, Ordering::SeqCst);
    }
    ended
}

/// Commits a consuming stage's batch from one input partition (`read`): the offset after it,
/// with whatever else `checkpoint` carries (state changes, produced marks), in one transaction.
/// `read` is `None` for an operator's end of input, which moves no offset. Call only once
/// everything the batch produced is durable.
fn commit_batch(
    cx: &StageContext,
    read: Option<(&mut InputPosition, &[StoredRecord])>,
    mut checkpoint: Checkpoint,
) -> Result<(), String> {
    checkpoint.consumer = cx.name.clone();
    let read = read.map(|(position, batch)| {
        let next = batch.last().expect("batches are not empty").offset + 1;
        checkpoint.offsets.insert((position.topic.clone(), position.partition), next);
        (position, next, batch.len())
    });
    cx.store.commit(&checkpoint).map_err(|e| e.to_string())?;
    if let Some((position, next, records)) = read {
        position.next = next;
        cx.progress.records_in.fetch_add(records as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// What an operator emitted for a batch, or for its end of input, ready to append.
#[derive(Default)]
struct Emitted {
    records: Vec<Record>,
    /// Side output topic → its records.
    side: BTreeMap<String, Vec<Record>>,
    letters: Vec<Record>,
}

impl Emitted {
    /// Takes what `out` holds for `input` (`None`: the end of input). A record the operator left
    /// without a `weir-id` gets one derived from the input's id, or `<stage>/end-of-input`.
    fn take(
        &mut self,
        cx: &StageContext,
        topic: &str,
        out: &mut Output,
        input: Option<&StoredRecord>,
    ) -> Result<(), String> {
        let base = match input {
            Some(input) => record_id(input),
            None => format!("{}/end-of-input", cx.name),
        };
        for (i, mut record) in out.records.drain(..).enumerate() {
            if record.header(ID_HEADER).is_none() {
                record.headers.push((ID_HEADER.into(), format!("{base}/{i}").into_bytes()));
            }
            self.records.push(record);
        }
        for (i, (side, mut record)) in out.side.drain(..).enumerate() {
            if record.header(ID_HEADER).is_none() {
                record.headers.push((ID_HEADER.into(), format!("{base}/{side}/{i}").into_bytes()));
            }
            self.side.entry(format!("{topic}.{side}")).or_default().push(record);
        }
        for (n, rejected) in out.rejected.drain(..).enumerate() {
            let mut letter = dead_letter(cx, input, n, rejected, 1)?;
            if input.is_none() {
                letter.headers.push((ID_HEADER.into(), format!("{base}/dlq/{n}").into_bytes()));
            }
            self.letters.push(letter);
        }
        Ok(())
    }
}

/// The one commit path of an operator, for a processed batch (`read`) and for its end of input
/// (`None`): appends what it emitted (the replay guard dropping what an uncommitted attempt
/// before a crash already appended), syncs it when `sync`, then commits the state changes, the
/// produced marks and the offset after the batch in one transaction.
async fn commit_operator(
    cx: &StageContext,
    topic: &str,
    guard: &mut ReplayGuard,
    emitted: Emitted,
    state: BTreeMap<(String, Vec<u8>), Option<Vec<u8>>>,
    read: Option<(&mut InputPosition, &[StoredRecord])>,
    sync: bool,
) -> Result<(), String> {
    let count = emitted.records.len() as u64;
    let mut produced = BTreeMap::new();
    append_outputs(cx, topic, emitted.records, guard, &mut produced).await.map_err(|e| e.to_string())?;
    for (side_topic, records) in emitted.side {
        if !cx.topic_partitions.contains_key(&side_topic) {
            return Err(format!("emitted to side output `{side_topic}`, which it does not list in side_outputs()"));
        }
        append_outputs(cx, &side_topic, records, guard, &mut produced).await.map_err(|e| e.to_string())?;
    }
    write_dead_letters(cx, emitted.letters).await.map_err(|e| e.to_string())?;
    // The outputs must be on disk before the offsets that say they were produced.
    if sync {
        cx.log.flush().await.map_err(|e| e.to_string())?;
    }
    guard.mark_unmarked(cx, &mut produced).await.map_err(|e| e.to_string())?;
    commit_batch(cx, read, Checkpoint { state, produced, ..Default::default() })?;
    guard.marked();
    cx.progress.records_out.fetch_add(count, Ordering::Relaxed);
    Ok(())
}

/// Runs an operator: read, process, append outputs and dead letters, commit state and offsets.
/// The records of a partition another worker owns (read only by an operator with global tables)
/// go to [`Operator::apply_context`] instead: they update its tables and emit nothing.
pub(crate) async fn run_operator(mut cx: StageContext, mut operator: Box<dyn Operator>) {
    let mut positions = match input_positions(&cx).await {
        Ok(positions) => positions,
        Err(e) => return cx.fail(e),
    };
    let topic = cx.output_topic.clone().expect("an operator has an output topic");
    let store = cx.store.clone();
    if let Err(e) = operator.restore(&StateOverlay::new(&store, &cx.name)) {
        return cx.fail(format!("restoring state: {}", e.message));
    }
    let output_topics: Vec<String> = std::iter::once(topic.clone())
        .chain(operator.side_outputs().into_iter().map(|side| format!("{topic}.{side}")))
        .collect();
    let mut guard = match ReplayGuard::load(&cx, &output_topics).await {
        Ok(guard) => guard,
        Err(e) => return cx.fail(e),
    };
    let mut round_robin = 0;
    let mut backoff = new_backoff();
    let mut out = Output::default();
    'batches: loop {
        let (at, batch) = match wait_for_batch(&mut cx, &mut positions, &mut round_robin).await {
            Ok(Next::Batch(at, batch)) => (at, batch),
            Ok(Next::Idle) => return end_operator_input(cx, operator.as_mut(), &topic, &mut guard).await,
            Ok(Next::Stop) => return,
            Err(e) => return cx.fail(e.to_string()),
        };
        let mut state = StateOverlay::new(&store, &cx.name);
        let mut emitted = Emitted::default();
        let owned = positions[at].owned;
        for input in &batch {
            out.clear();
            let processed = if owned {
                operator.process(input, &mut state, &mut out)
            } else {
                operator.apply_context(input, &mut state)
            };
            match processed {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::Retryable => {
                    // Nothing of this batch is committed: drop it, bring the operator's memory
                    // back to the committed state, and read the batch again.
                    if !back_to_committed(&mut cx, &mut backoff, &e, operator.as_mut(), &store).await {
                        return;
                    }
                    continue 'batches;
                }
                Err(e) => {
                    return cx.fail(format!("{}/{}/{}: {}", input.topic, input.partition, input.offset, e.message))
                }
            }
            if let Err(e) = emitted.take(&cx, &topic, &mut out, Some(input)) {
                return cx.fail(e);
            }
        }
        backoff.reset();
        let read = Some((&mut positions[at], batch.as_slice()));
        if let Err(e) = commit_operator(&cx, &topic, &mut guard, emitted, state.changes, read, owned).await {
            return cx.fail(e);
        }
    }
}

/// An operator's inputs ended (`--until-idle`). With `--drain`, and if every stage upstream
/// ended by reaching the end of its own input (not by failing or stopping), calls
/// [`Operator::end_of_input`] once and commits what it emitted through the batches' commit path
/// (no offset moves); the stage then ends, and the stages downstream read those outputs before
/// they end in turn.
async fn end_operator_input(mut cx: StageContext, operator: &mut dyn Operator, topic: &str, guard: &mut ReplayGuard) {
    if !cx.upstream_ended() {
        if cx.options.drain {
            tracing::warn!(
                stage = %cx.name,
                "not ending this operator's input (--drain): a stage upstream failed or stopped before the end of its input"
            );
        }
        return;
    }
    if cx.options.drain {
        let store = cx.store.clone();
        let mut backoff = new_backoff();
        let mut out = Output::default();
        loop {
            let mut state = StateOverlay::new(&store, &cx.name);
            out.clear();
            match operator.end_of_input(&mut state, &mut out) {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::Retryable => {
                    // As for a batch: nothing is committed; back to the committed state, again.
                    if !back_to_committed(&mut cx, &mut backoff, &e, operator, &store).await {
                        return;
                    }
                    continue;
                }
                Err(e) => return cx.fail(format!("end of input: {}", e.message)),
            }
            let mut emitted = Emitted::default();
            if let Err(e) = emitted.take(&cx, topic, &mut out, None) {
                return cx.fail(e);
            }
            let records = emitted.records.len();
            if let Err(e) = commit_operator(&cx, topic, guard, emitted, state.changes, None, true).await {
                return cx.fail(e);
            }
            tracing::info!(stage = %cx.name, records, "end of input committed (--drain)");
            break;
        }
    }
    end_input(&cx);
}

/// Runs a sink: read, deliver (retrying what may succeed later), dead-letter what the
/// destination refuses, then commit.
pub(crate) async fn run_sink(mut cx: StageContext, sink: Box<dyn Sink>) {
    // With `request.concurrency` > 1 the sink forks; each batch is split over the handles.
    let mut sink = super::deliver::SinkHandles::new(sink);
    let mut positions = match input_positions(&cx).await {
        Ok(positions) => positions,
        Err(e) => return cx.fail(e),
    };
    let mut round_robin = 0;
    let mut backoff = new_backoff();
    loop {
        let (at, batch) = match wait_for_batch(&mut cx, &mut positions, &mut round_robin).await {
            Ok(Next::Batch(at, batch)) => (at, batch),
            Ok(Next::Idle) => {
                end_input(&cx);
                return;
            }
            Ok(Next::Stop) => return,
            Err(e) => return cx.fail(e.to_string()),
        };
        // Records outside the sink's route are skipped: read, not delivered, and committed.
        let mut pending: Vec<usize> = match &cx.route {
            None => (0..batch.len()).collect(),
            Some(route) => (0..batch.len())
                .filter(|&i| route.matches(&weir_sinks::encoding::value_to_json(&batch[i].record.value).1))
                .collect(),
        };
        let mut attempts = 0;
        let mut letters = Vec::new();
        let mut delivered = 0u64;
        while !pending.is_empty() {
            attempts += 1;
            let attempt: Vec<StoredRecord> = pending.iter().map(|&i| batch[i].clone()).collect();
            let mut shutdown = cx.shutdown.clone();
            let started = std::time::Instant::now();
            let result = tokio::select! {
                result = sink.deliver(&attempt) => result,
                _ = shutdown.changed() => return,
            };
            cx.progress.deliver_calls.fetch_add(1, Ordering::Relaxed);
            cx.progress.deliver_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            match result {
                Ok(failures) => {
                    let mut retry = Vec::new();
                    let mut failed = std::collections::BTreeSet::new();
                    for failure in failures {
                        let Some(&index) = pending.get(failure.index) else {
                            return cx.fail(format!(
                                "the sink reported a failure for record {} of a batch of {}",
                                failure.index,
                                pending.len()
                            ));
                        };
                        if !failed.insert(index) {
                            continue;
                        }
                        if failure.retryable {
                            retry.push(index);
                        } else if batch[index].topic == DLQ_TOPIC {
                            // A dead letter the destination refuses stays where it is, on `dlq`;
                            // writing it there again would loop.
                            tracing::error!(
                                stage = %cx.name, offset = batch[index].offset,
                                reason = %(cx.redact)(&failure.reason),
                                "the destination refused a dead letter; it stays on dlq"
                            );
                        } else {
                            let rejected =
                                Rejected { reason: failure.reason, original: batch[index].record.value.clone() };
                            match dead_letter(&cx, Some(&batch[index]), 0, rejected, attempts) {
                                Ok(letter) => letters.push(letter),
                                Err(e) => return cx.fail(e),
                            }
                        }
                    }
                    delivered += (attempt.len() - failed.len()) as u64;
                    retry.sort_unstable();
                    retry.dedup();
                    pending = retry;
                    if !pending.is_empty() {
                        let error = ComponentError::retryable(format!("{} record(s) not accepted yet", pending.len()));
                        if !retry_wait(&mut cx, &mut backoff, &error).await {
                            return;
                        }
                    }
                }
                Err(e) if e.kind == ErrorKind::Retryable => {
                    if !retry_wait(&mut cx, &mut backoff, &e).await {
                        return;
                    }
                }
                Err(e) => return cx.fail(e.message),
            }
        }
        backoff.reset();
        if !letters.is_empty() {
            if let Err(e) = write_dead_letters(&cx, letters).await {
                return cx.fail(e.to_string());
            }
            if let Err(e) = cx.log.flush().await {
                return cx.fail(e.to_string());
            }
        }
        if let Err(e) = commit_batch(&cx, Some((&mut positions[at], batch.as_slice())), Checkpoint::default()) {
            return cx.fail(e);
        }
        cx.progress.records_out.fetch_add(delivered, Ordering::Relaxed);
    }
}
