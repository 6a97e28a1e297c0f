//! Helpers for the HTTP sinks' tests: records, a loopback server, and a delivery loop that
//! behaves like the runner's (retry what is retryable, dead-letter what is not; no sleeping).

use std::net::SocketAddr;

use weir_schemas::component::{ErrorKind, Sink};
use weir_schemas::{Record, StoredRecord};

/// Record `i` with a JSON value, an event time and a `weir-id` header `raw.test/0/{i}`.
pub fn record(i: u64, value: &str) -> StoredRecord {
    StoredRecord {
        topic: "raw.test".into(),
        partition: 0,
        offset: i,
        record: Record::new(1_714_675_581_121 + i as i64, value.as_bytes().to_vec())
            .with_header("weir-id", format!("raw.test/0/{i}")),
    }
}

/// Serves `app` on 127.0.0.1 (an ephemeral port) until the test ends.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// What a runner-like delivery loop saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Indexes of records the sink dead-lettered (permanent failures).
    pub dead: Vec<usize>,
    /// Every error and failure reason seen along the way.
    pub reasons: Vec<String>,
}

/// Delivers `batch` like the runner: resend only what failed retryably; panics on a fatal error
/// or after 20 attempts.
pub async fn deliver_like_the_runner(sink: &mut dyn Sink, batch: &[StoredRecord]) -> Outcome {
    let mut outcome = Outcome::default();
    let mut pending: Vec<usize> = (0..batch.len()).collect();
    for _ in 0..20 {
        if pending.is_empty() {
            return outcome;
        }
        let attempt: Vec<StoredRecord> = pending.iter().map(|&i| batch[i].clone()).collect();
        match sink.deliver(&attempt).await {
            Ok(failures) => {
                let mut retry = Vec::new();
                for failure in failures {
                    outcome.reasons.push(failure.reason.clone());
                    let index = pending[failure.index];
                    if failure.retryable {
                        retry.push(index);
                    } else {
                        outcome.dead.push(index);
                    }
                }
                pending = retry;
            }
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::Retryable, "unexpected fatal error: {}", e.message);
                outcome.reasons.push(e.message);
            }
        }
    }
    panic!("not delivered after 20 attempts: {:?}", outcome.reasons);
}
