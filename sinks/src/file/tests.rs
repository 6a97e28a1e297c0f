use weir_schemas::component::Sink;
use weir_schemas::{Record, StoredRecord};

use super::{FileSink, FileSinkConfig};

#[tokio::test]
async fn appends_one_json_line_per_record_and_creates_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out/records.ndjson");
    let mut sink = FileSink::new(FileSinkConfig { path: path.clone(), values_only: false });
    let batch: Vec<StoredRecord> = (0..3)
        .map(|i| StoredRecord {
            topic: "t".into(),
            partition: 0,
            offset: i,
            record: Record::new(0, format!("{{\"n\":{i}}}").into_bytes()),
        })
        .collect();
    assert!(sink.deliver(&batch[..2]).await.unwrap().is_empty());
    assert!(sink.deliver(&batch[2..]).await.unwrap().is_empty());
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["offset"], 2);
    assert_eq!(lines[2]["value"]["n"], 2);
}

#[tokio::test]
async fn an_unwritable_path_is_fatal_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "").unwrap();
    let mut sink = FileSink::new(FileSinkConfig { path: dir.path().join("file/sub/x.ndjson"), values_only: false });
    let record = StoredRecord { topic: "t".into(), partition: 0, offset: 0, record: Record::new(0, b"{}".to_vec()) };
    let err = sink.deliver(&[record]).await.unwrap_err();
    assert!(err.message.contains("file/sub"), "{}", err.message);
}

#[tokio::test]
async fn a_partial_line_left_by_a_crash_is_cut_before_appending() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.ndjson");
    std::fs::write(&path, "{\"offset\":0}\n{\"offs").unwrap();
    let mut sink = FileSink::new(FileSinkConfig { path: path.clone(), values_only: true });
    let record =
        StoredRecord { topic: "t".into(), partition: 0, offset: 1, record: Record::new(0, b"{\"n\":1}".to_vec()) };
    assert!(sink.deliver(&[record]).await.unwrap().is_empty());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"offset\":0}\n{\"n\":1}\n");

    // A file that is only a partial line is emptied.
    std::fs::write(&path, "{\"par").unwrap();
    let mut sink = FileSink::new(FileSinkConfig { path: path.clone(), values_only: true });
    let record = StoredRecord { topic: "t".into(), partition: 0, offset: 2, record: Record::new(0, b"{}".to_vec()) };
    sink.deliver(&[record]).await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n");
}
