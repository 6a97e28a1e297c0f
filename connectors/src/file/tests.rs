use std::io::Write;

use weir_schemas::component::{Source, SourcePoll};
use weir_schemas::events::RawEnvelope;

use super::{FileSource, FileSourceConfig};

fn config(path: &std::path::Path, batch_lines: usize) -> FileSourceConfig {
    FileSourceConfig { path: path.to_path_buf(), vendor: "okta".into(), batch_lines, follow: false }
}

async fn drain(source: &mut FileSource) -> (Vec<RawEnvelope>, Vec<String>, Option<String>) {
    let (mut records, mut rejected, mut cursor) = (Vec::new(), Vec::new(), None);
    loop {
        match source.poll().await.unwrap() {
            SourcePoll::Batch(batch) => {
                records.extend(batch.records.iter().map(|r| weir_schemas::decode::<RawEnvelope>(&r.value).unwrap()));
                rejected.extend(batch.rejected.into_iter().map(|r| r.reason));
                cursor = batch.cursor;
            }
            SourcePoll::Finished => return (records, rejected, cursor),
            SourcePoll::Idle(_) => panic!("a file that is not followed finishes"),
        }
    }
}

#[tokio::test]
async fn reads_every_line_rejects_bad_ones_and_resumes_from_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    std::fs::write(&path, "{\"a\":1}\n\nnot json\n{\"a\":2}\n{\"a\":3}").unwrap();

    let mut source = FileSource::new("okta", config(&path, 2));
    source.open(None).await.unwrap();
    let first = source.poll().await.unwrap();
    let SourcePoll::Batch(first) = first else { panic!("expected a batch") };
    assert_eq!(first.records.len(), 1, "line 2 is blank");
    let cursor = first.cursor.clone().unwrap();
    assert_eq!(cursor, "9");

    // A restart from the committed cursor reads the rest, exactly once.
    let mut restarted = FileSource::new("okta", config(&path, 2));
    restarted.open(Some(cursor)).await.unwrap();
    let (records, rejected, end) = drain(&mut restarted).await;
    let payloads: Vec<_> = records.iter().map(|r| String::from_utf8(r.payload.clone()).unwrap()).collect();
    assert_eq!(payloads, vec!["{\"a\":2}", "{\"a\":3}"], "the last line has no newline and is still read");
    assert_eq!(rejected.len(), 1);
    assert!(rejected[0].contains("events.ndjson at byte 9: not valid JSON"), "{}", rejected[0]);
    assert_eq!(end.unwrap(), std::fs::metadata(&path).unwrap().len().to_string());
    assert!(records.iter().all(|r| r.source == "okta" && r.vendor == "okta"));
}

#[tokio::test]
async fn a_half_written_last_line_is_left_for_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.ndjson");
    std::fs::write(&path, "{\"a\":1}\n{\"a\":").unwrap();
    let mut source = FileSource::new("s", config(&path, 10));
    source.open(None).await.unwrap();
    let (records, rejected, cursor) = drain(&mut source).await;
    assert_eq!((records.len(), rejected.len()), (1, 0), "the partial line is neither read nor rejected");
    assert_eq!(cursor.as_deref(), Some("8"));
    std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"2}\n").unwrap();
    let mut next_run = FileSource::new("s", config(&path, 10));
    next_run.open(cursor).await.unwrap();
    let (records, rejected, _) = drain(&mut next_run).await;
    assert_eq!((records.len(), rejected.len()), (1, 0));
    assert_eq!(records[0].payload, b"{\"a\":2}");
}

#[tokio::test]
async fn line_numbers_are_given_when_reading_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.ndjson");
    std::fs::write(&path, "{}\n{oops\n").unwrap();
    let mut source = FileSource::new("s", config(&path, 10));
    source.open(None).await.unwrap();
    let (_, rejected, _) = drain(&mut source).await;
    assert!(rejected[0].starts_with(&format!("{}:2: not valid JSON", path.display())), "{}", rejected[0]);
}

#[tokio::test]
async fn following_waits_for_complete_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.ndjson");
    std::fs::write(&path, "{\"a\":1}\n{\"a\":").unwrap();
    let mut source = FileSource::new("s", FileSourceConfig { follow: true, ..config(&path, 10) });
    source.open(None).await.unwrap();
    let SourcePoll::Batch(batch) = source.poll().await.unwrap() else { panic!("expected a batch") };
    assert_eq!(batch.records.len(), 1);
    assert!(matches!(source.poll().await.unwrap(), SourcePoll::Idle(_)), "the partial line waits");
    std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"2}\n").unwrap();
    let SourcePoll::Batch(batch) = source.poll().await.unwrap() else { panic!("expected a batch") };
    let envelope = weir_schemas::decode::<RawEnvelope>(&batch.records[0].value).unwrap();
    assert_eq!(envelope.payload, b"{\"a\":2}");
}

#[tokio::test]
async fn a_missing_file_or_a_cursor_past_its_end_is_a_clear_fatal_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.ndjson");
    let err = FileSource::new("s", config(&path, 10)).open(None).await.unwrap_err();
    assert!(err.message.contains("cannot open") && err.message.contains("nope.ndjson"), "{}", err.message);
    std::fs::write(&path, "{}\n").unwrap();
    let err = FileSource::new("s", config(&path, 10)).open(Some("100".into())).await.unwrap_err();
    assert!(err.message.contains("shorter"), "{}", err.message);
}
