//! `weir validate`: every error with file, line and key; no panics.

use crate::common::*;

#[test]
fn reports_every_error_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        r#"[log]
fsync = "sometimes"

[sources.okta]
type = "file"
vendor = "okta"
path = "x.ndjson"
batch_lines = "many"

[operators.events]
type = "normalise"
inputs = ["okta"]

[sinks.out]
type = "file"
inputs = ["nowhere"]
"#,
    )
    .unwrap();
    let output = run(weir(dir.path()).arg("validate").arg("-c").arg(&config));
    assert_user_error(&output);
    let err = stderr(&output);
    let file = config.display().to_string();
    for expected in [
        format!("{file}:2: log.fsync: unknown variant `sometimes`"),
        format!("{file}:14: sinks.out.inputs: `nowhere` is not a component of this pipeline"),
    ] {
        assert!(err.contains(&expected), "missing `{expected}` in:\n{err}");
    }
    // Component options are checked once the structure is right: fix the structure and look again.
    let text = std::fs::read_to_string(&config).unwrap().replace("sometimes", "always").replace("nowhere", "events");
    std::fs::write(&config, text).unwrap();
    let output = run(weir(dir.path()).arg("validate").arg("-c").arg(&config));
    assert_user_error(&output);
    let err = stderr(&output);
    for expected in [
        format!("{file}:8: sources.okta.batch_lines: invalid type: string \"many\", expected usize"),
        format!("{file}:11: operators.events.type: unknown operator type `normalise`; known: normalize"),
        format!("{file}:14: sinks.out.path: missing field `path`"),
    ] {
        assert!(err.contains(&expected), "missing `{expected}` in:\n{err}");
    }
}

#[test]
fn a_good_config_validates_and_a_missing_file_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(weir(dir.path()).current_dir(repo_root()).args(["validate", "-c", "examples/demo.toml"]));
    assert_ok(&output);
    assert!(stdout(&output).contains("ok (2 sources, 5 operators, 3 sinks)"), "{}", stdout(&output));

    let output = run(weir(dir.path()).args(["validate", "-c", "/nonexistent/p.toml"]));
    assert_user_error(&output);
    assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
    assert!(stderr(&output).contains("/nonexistent/p.toml"), "{}", stderr(&output));
}

#[test]
fn secrets_from_the_environment_never_appear_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        "[sources.a]\ntype = \"file\"\nvendor = \"okta\"\npath = \"x\"\nbatch_lines = \"${WEIR_TEST_SECRET}\"\n",
    )
    .unwrap();
    let output = run(weir(dir.path()).arg("validate").arg("-c").arg(&config).env("WEIR_TEST_SECRET", "hunter2-secret"));
    assert_user_error(&output);
    let err = stderr(&output);
    assert!(!err.contains("hunter2-secret"), "{err}");
    assert!(err.contains("sources.a.batch_lines"), "{err}");
}
