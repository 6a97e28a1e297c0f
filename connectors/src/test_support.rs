//! Helpers for the connectors' tests: a loopback server for fake vendor APIs, and a poll loop
//! that behaves like the runner (commit the cursor after each batch, retry what is retryable)
//! and can "crash" between a batch and its commit.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use weir_schemas::component::{ComponentError, ErrorKind, Source, SourceBatch, SourcePoll};
use weir_schemas::events::RawEnvelope;

use crate::http::HttpOptions;

/// Serves `app` on 127.0.0.1 (an ephemeral port) until the test ends; returns its base URL.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// HTTP options for tests: retries start at 1 ms and give up after 5 s, so failure paths run
/// fast (server-requested waits still apply: keep them to a second or two in fakes).
pub fn fast_http() -> HttpOptions {
    HttpOptions { timeout_secs: 5, max_retry_secs: 5, initial_backoff_ms: 1, min_interval_ms: 0 }
}

/// What a run of [`poll_like_the_runner`] delivered.
#[derive(Debug, Default)]
pub struct Delivered {
    /// Committed records in order: (weir-id, vendor payload as text).
    pub events: Vec<(String, String)>,
    /// Dead-letter reasons of committed batches.
    pub rejected: Vec<String>,
    /// The last committed cursor.
    pub cursor: Option<String>,
    /// Every error `poll` returned (retryable ones were retried).
    pub errors: Vec<ComponentError>,
}

impl Delivered {
    /// weir-ids that were committed more than once (must be empty).
    pub fn duplicates(&self) -> Vec<String> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (id, _) in &self.events {
            *counts.entry(id).or_default() += 1;
        }
        counts.into_iter().filter(|(_, n)| *n > 1).map(|(id, _)| id.to_string()).collect()
    }

    /// The committed weir-ids, in order.
    pub fn ids(&self) -> Vec<String> {
        self.events.iter().map(|(id, _)| id.clone()).collect()
    }
}

/// When to stop polling.
#[derive(Clone, Copy, Debug)]
pub enum StopAt {
    /// At the first `Idle` or `Finished` (like `weir run --until-idle`).
    Idle,
    /// After this many batches are committed; the next batch is polled and then lost, as if
    /// the process died before it was durable (its cursor is not committed).
    CrashAfter(usize),
}

/// Opens `source` at `cursor` and polls it like the runner: each batch's records are "appended"
/// and its cursor committed before `committed` is called; retryable errors are retried (at most
/// 50 in a row, without sleeping: the client's own backoff already waited); a fatal error stops
/// the loop and is returned in `errors`.
pub async fn poll_like_the_runner(source: &mut dyn Source, cursor: Option<String>, stop: StopAt) -> Delivered {
    let mut delivered = Delivered { cursor: cursor.clone(), ..Delivered::default() };
    if let Err(e) = source.open(cursor).await {
        delivered.errors.push(e);
        return delivered;
    }
    let mut batches = 0;
    let mut errors_in_a_row = 0;
    loop {
        match source.poll().await {
            Ok(SourcePoll::Batch(batch)) => {
                errors_in_a_row = 0;
                if let StopAt::CrashAfter(n) = stop {
                    if batches == n {
                        return delivered;
                    }
                }
                commit(&mut delivered, batch);
                source.committed(delivered.cursor.as_deref()).await.expect("committed succeeds");
                batches += 1;
            }
            Ok(SourcePoll::Idle(_)) | Ok(SourcePoll::Finished) => return delivered,
            Err(e) => {
                let fatal = e.kind == ErrorKind::Fatal;
                delivered.errors.push(e);
                errors_in_a_row += 1;
                if fatal || errors_in_a_row >= 50 {
                    return delivered;
                }
            }
        }
    }
}

fn commit(delivered: &mut Delivered, batch: SourceBatch) {
    for record in batch.records {
        let id = record.header("weir-id").map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
        let envelope: RawEnvelope = weir_schemas::decode(&record.value).expect("raw records hold RawEnvelopes");
        delivered.events.push((id, String::from_utf8_lossy(&envelope.payload).into_owned()));
    }
    delivered.rejected.extend(batch.rejected.into_iter().map(|r| r.reason));
    if batch.cursor.is_some() {
        delivered.cursor = batch.cursor;
    }
}
