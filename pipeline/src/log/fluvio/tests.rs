//! The Fluvio backend against a live cluster, and its topic-name mapping.
//!
//! The conformance suite runs when `WEIR_FLUVIO_ENDPOINT` names a cluster's SC (e.g.
//! `127.0.0.1:9003`); without it the test prints why it skipped. The producer-retry check also
//! needs `WEIR_FLUVIO_RESTART_SPU`: a shell command that restarts the SPU leading the test's
//! partition (kill it, start it again, return once started); without it that check is skipped
//! with a printed reason. Topics are named after the run, so runs never share them.

use std::future::Future;
use std::pin::Pin;

use super::*;
use crate::log::conformance::{self, BACKLOG};

fn endpoint_or_skip(test: &str) -> Option<String> {
    match std::env::var("WEIR_FLUVIO_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ => {
            eprintln!(
                "{test}: skipped: WEIR_FLUVIO_ENDPOINT is not set (the address of a Fluvio SC, e.g. 127.0.0.1:9003)"
            );
            None
        }
    }
}

/// A prefix no earlier run used: topics stay on a cluster between runs.
fn run_prefix() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("c{}x{}", now.as_millis() % 100_000_000, std::process::id() % 10_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fluvio_backend_conforms() {
    let Some(endpoint) = endpoint_or_skip("the_fluvio_backend_conforms") else { return };
    let config = FluvioConfig::new(endpoint);
    let open = move || {
        let config = config.clone();
        Box::pin(async move {
            let log: Box<dyn Log> = Box::new(FluvioLog::connect(&config).await?);
            Ok(log)
        }) as Pin<Box<dyn Future<Output = Result<Box<dyn Log>, LogError>> + Send>>
    };
    let prefix = run_prefix();
    conformance::check_all(&open, &prefix, BACKLOG).await.unwrap();

    let Ok(restart_command) = std::env::var("WEIR_FLUVIO_RESTART_SPU") else {
        eprintln!("producer retry across an SPU restart: skipped: WEIR_FLUVIO_RESTART_SPU is not set (a shell command that restarts the SPU)");
        return;
    };
    let log = open().await.unwrap();
    let restart = Box::pin(async move {
        let status = tokio::task::spawn_blocking(move || {
            std::process::Command::new("sh").arg("-c").arg(&restart_command).status()
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("running WEIR_FLUVIO_RESTART_SPU: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("WEIR_FLUVIO_RESTART_SPU exited with {status}"))
        }
    });
    let report =
        conformance::producer_retry_across_restart(log.as_ref(), &format!("{prefix}.restart"), restart).await.unwrap();
    eprintln!("producer retry across an SPU restart: {report:?}");
}

#[tokio::test]
async fn connecting_to_nothing_is_one_error_naming_the_endpoint() {
    // A port on loopback nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("127.0.0.1:{port}");
    let err = FluvioLog::connect(&FluvioConfig::new(endpoint.clone())).await.err().expect("connected to nothing");
    let message = err.to_string();
    assert!(message.contains(&endpoint) && message.contains("connecting"), "{message}");
    assert!(!message.contains('\n'), "not one line: {message}");
}

#[test]
fn topic_names_map_to_fluvio_and_back() {
    for (weir, fluvio) in [
        ("events", "events"),
        ("raw.okta", "raw-dokta"),
        ("okta_logs", "okta-ulogs"),
        ("a-b", "a-hb"),
        ("Okta", "-cokta"),
        ("oK", "o-ck"),
        ("dlq", "dlq"),
    ] {
        if fluvio.starts_with('-') {
            assert!(fluvio_topic_name(weir).is_err(), "{weir} maps to a name Fluvio refuses");
            continue;
        }
        assert_eq!(fluvio_topic_name(weir).unwrap(), fluvio, "{weir}");
        assert_eq!(weir_topic_name(fluvio).as_deref(), Some(weir), "{fluvio}");
    }
}

#[test]
fn names_that_weir_did_not_make_are_not_weir_topics() {
    for name in ["a-", "a-x", "a-c", "a-c1", "UPPER", "a.b", "-cokta"] {
        assert_eq!(weir_topic_name(name), None, "{name}");
    }
}

#[test]
fn a_name_too_long_for_fluvio_is_refused_with_the_reason() {
    let err = fluvio_topic_name(&"a".repeat(64)).unwrap_err();
    assert!(err.to_string().contains("63"), "{err}");
    assert!(fluvio_topic_name(&"a".repeat(63)).is_ok());
}

proptest::proptest! {
    #[test]
    fn every_weir_name_fluvio_can_hold_maps_back(name in "[a-z0-9][A-Za-z0-9._-]{0,30}") {
        let fluvio = fluvio_topic_name(&name);
        if let Ok(fluvio) = fluvio {
            proptest::prop_assert!(fluvio.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            proptest::prop_assert!(!fluvio.ends_with('-'));
            proptest::prop_assert_eq!(weir_topic_name(&fluvio), Some(name));
        }
    }
}

fn stored(offset: u64, record: &Record) -> StoredRecord {
    StoredRecord { topic: "t".into(), partition: 0, offset, record: record.clone() }
}

#[test]
fn records_a_lost_answer_left_on_the_partition_are_found_in_order_among_other_writers() {
    let ours: Vec<Record> =
        (0..4).map(|i| Record::new(i, vec![i as u8]).with_header("weir-id", format!("a/{i}"))).collect();
    let theirs = Record::new(9, b"other writer".to_vec());
    // Ours 0 and 1 landed (answer lost), with another writer's record between them.
    let tail = vec![stored(10, &theirs), stored(11, &ours[0]), stored(12, &theirs), stored(13, &ours[1])];
    assert_eq!(landed(&ours, &tail), vec![11, 13]);
    // Nothing of ours landed.
    assert_eq!(landed(&ours, &[stored(10, &theirs)]), Vec::<u64>::new());
    // A later record without the earlier ones is not a prefix: it is not taken.
    assert_eq!(landed(&ours, &[stored(10, &ours[2])]), Vec::<u64>::new());
    // All of them.
    let all: Vec<StoredRecord> = ours.iter().enumerate().map(|(i, r)| stored(20 + i as u64, r)).collect();
    assert_eq!(landed(&ours, &all), vec![20, 21, 22, 23]);
}
