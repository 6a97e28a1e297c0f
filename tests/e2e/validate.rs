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

/// Every example config in `examples/` is valid once its environment variables are set (with
/// placeholder values: validation builds every component but contacts nothing).
#[test]
fn every_example_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    // A service-account key file of the shape Google issues, with the connector's test-only key.
    let pem = std::fs::read_to_string(
        repo_root().join("connectors/src/gcp_audit/testdata/TEST_ONLY_service_account_rsa_key.pem"),
    )
    .unwrap();
    let key_file = dir.path().join("gcp_key.json");
    let key = serde_json::json!({
        "type": "service_account", "project_id": "p", "private_key_id": "k1", "private_key": pem,
        "client_email": "weir@p.iam.gserviceaccount.com", "token_uri": "https://oauth2.googleapis.com/token"
    });
    std::fs::write(&key_file, key.to_string()).unwrap();
    let placeholders = [
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "placeholder"),
        ("AWS_SESSION_TOKEN", "placeholder"),
        ("AZURE_TENANT_ID", "00000000-0000-0000-0000-000000000000"),
        ("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000000"),
        ("AZURE_CLIENT_SECRET", "placeholder"),
        ("EVENTBRIDGE_API_KEY", "placeholder"),
        ("FALCON_CLIENT_ID", "placeholder"),
        ("FALCON_CLIENT_SECRET", "placeholder"),
        ("NETSKOPE_API_TOKEN", "placeholder"),
        ("OKTA_BASE_URL", "https://example.okta.com"),
        ("OKTA_API_TOKEN", "placeholder"),
        ("OKTA_HOOK_SECRET", "placeholder"),
        ("OKTA_HOOK_EXTRA", "placeholder"),
        ("SERVICENOW_URL", "https://example.service-now.com"),
        ("SERVICENOW_USER", "weir"),
        ("SERVICENOW_PASSWORD", "placeholder"),
        ("JIRA_URL", "https://example.atlassian.net"),
        ("JIRA_EMAIL", "weir@example.com"),
        ("JIRA_API_TOKEN", "placeholder"),
        ("TEAMS_WEBHOOK_URL", "https://example.webhook.office.com/workflows/placeholder"),
        ("SLACK_BOT_TOKEN", "xoxb-placeholder"),
        ("SENTINEL_ENDPOINT", "https://example-dce.westeurope-1.ingest.monitor.azure.com"),
        ("SENTINEL_DCR_ID", "dcr-00000000000000000000000000000000"),
    ];
    let mut examples: Vec<_> = std::fs::read_dir(repo_root().join("examples"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 9, "{examples:?}");
    for example in examples {
        let mut command = weir(dir.path());
        command.current_dir(repo_root()).arg("validate").arg("-c").arg(&example);
        command.env("GCP_SERVICE_ACCOUNT_KEY_FILE", &key_file);
        for (name, value) in placeholders {
            command.env(name, value);
        }
        let output = run(&mut command);
        assert!(output.status.success(), "{}:\n{}", example.display(), stderr(&output));
    }
}
