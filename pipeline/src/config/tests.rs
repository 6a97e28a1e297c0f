use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<PipelineConfig, ConfigErrors> {
    PipelineConfig::parse(Path::new("p.toml"), text, &|name| (name == "TOKEN").then(|| "s3cr3t-value".to_string()))
}

fn errors(text: &str) -> Vec<String> {
    parse(text).unwrap_err().0.iter().map(ToString::to_string).collect()
}

const GOOD: &str = r#"
[log]
fsync = "always"
partitions = 2

[sources.okta]
type = "file"
path = "a.ndjson"
token = "${TOKEN}"

[operators.events]
type = "normalize"
inputs = ["okta"]

[sinks.out]
type = "console"
inputs = ["events", "dlq"]
"#;

#[test]
fn a_good_config_parses() {
    let config = parse(GOOD).unwrap();
    assert_eq!(config.log.partitions, 2);
    assert_eq!(config.log.embedded.fsync, crate::log::embedded::FsyncPolicy::Always);
    let names: Vec<_> = config.components.iter().map(|c| (c.name.as_str(), c.role)).collect();
    assert_eq!(names, vec![("okta", Role::Source), ("events", Role::Operator), ("out", Role::Sink)]);
    let okta = config.component("okta").unwrap();
    assert_eq!(okta.output_topic().as_deref(), Some("raw.okta"));
    assert_eq!(okta.options["token"].as_str(), Some("s3cr3t-value"));
    assert_eq!(okta.option_lines["path"], 8);
    assert_eq!(config.input_topic("okta").as_deref(), Some("raw.okta"));
    assert_eq!(config.input_topic("dlq").as_deref(), Some("dlq"));
}

#[test]
fn every_error_is_reported_with_line_and_key() {
    let text = r#"
[log]
fsync = "sometimes"

[sources.okta]
path = "a.ndjson"

[operators.events]
type = "normalize"
inputs = ["nowhere"]

[sinks.out]
type = "console"
"#;
    let found = errors(text);
    assert_eq!(
        found,
        vec![
            "p.toml:3: log.fsync: unknown variant `sometimes`, expected one of `always`, `interval`, `never`",
            "p.toml:5: sources.okta.type: missing: every component needs a `type`",
            "p.toml:8: operators.events.inputs: `nowhere` is not a component of this pipeline",
            "p.toml:12: sinks.out.inputs: missing: list the components it reads",
        ]
    );
}

#[test]
fn syntax_errors_name_the_line() {
    let found = errors("[sources.a]\ntype = \"file\"\npath = \n");
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("p.toml:3: "), "{found:?}");
}

#[test]
fn unset_variables_duplicates_and_cycles_are_errors() {
    let text = r#"
[sources.a]
type = "file"
path = "${NOT_SET}"

[operators.b]
type = "x"
inputs = ["c"]

[operators.c]
type = "x"
inputs = ["b"]

[sinks.a]
type = "console"
inputs = ["b"]
"#;
    let found = errors(text).join("\n");
    assert!(found.contains("p.toml:4: sources.a.path: environment variable `NOT_SET` is not set"), "{found}");
    assert!(found.contains("sinks.a: the name is already used by sources.a (line 2)"), "{found}");
    assert!(found.contains("operators form a cycle: b -> c -> b"), "{found}");
}

#[test]
fn interpolated_values_never_appear_in_errors() {
    let text = "[log]\nfsync = \"${TOKEN}\"\n";
    let found = errors(text).join("\n");
    assert!(!found.contains("s3cr3t-value"), "{found}");
    assert!(found.contains("***"), "{found}");
}

#[test]
fn dollar_dollar_escapes() {
    let config = parse("[sources.a]\ntype = \"file\"\npath = \"$${HOME}/x\"\n").unwrap();
    assert_eq!(config.components[0].options["path"].as_str(), Some("${HOME}/x"));
}

#[test]
fn operators_cannot_read_dlq_and_inputs_are_listed_once() {
    let text = r#"
[sources.a]
type = "file"

[operators.b]
type = "normalize"
inputs = ["a", "dlq"]

[sinks.c]
type = "console"
inputs = ["b", "b", "dlq"]
"#;
    let found = errors(text).join("\n");
    assert!(found.contains("p.toml:5: operators.b.inputs: an operator cannot read `dlq`"), "{found}");
    assert!(found.contains("p.toml:9: sinks.c.inputs: `b` is listed twice"), "{found}");
    assert!(!found.contains("sinks.c.inputs: `dlq`"), "sinks may read dlq: {found}");
}

#[test]
fn redaction_replaces_the_longest_secret_first() {
    let secrets = vec!["abc".to_string(), "abcdef".to_string()];
    assert_eq!(redact("token=abcdef", &secrets), "token=***");
}

#[test]
fn the_server_table_takes_a_listen_address() {
    let config = parse(&format!("[server]\nlisten = \"127.0.0.1:8686\"\n{GOOD}")).unwrap();
    assert_eq!(config.server.map(|s| s.listen.to_string()).as_deref(), Some("127.0.0.1:8686"));
    assert_eq!(parse(GOOD).unwrap().server, None);
    assert_eq!(
        errors(&format!("[server]\nlisten = \"localhost\"\nport = 1\n{GOOD}")),
        vec![
            "p.toml:2: server.listen: must be an address with a port, e.g. \"127.0.0.1:8686\"",
            "p.toml:3: server.port: unknown option (known: listen)",
        ]
    );
    assert_eq!(
        errors(&format!("[server]\n{GOOD}")),
        vec!["p.toml:1: server.listen: missing: the address to listen on, e.g. \"127.0.0.1:8686\""]
    );
}

#[test]
fn two_push_sources_cannot_share_a_path() {
    let text = r#"
[server]
listen = "127.0.0.1:8686"

[sources.okta_hook]
type = "okta_event_hook"
path = "/hooks/in"
secret = "s3cr3t-hook"

[sources.eventbridge]
type = "aws_eventbridge"
path = "/hooks/in"
api_key_header = "x-api-key"
api_key = "s3cr3t-key"
"#;
    let config = parse(text).unwrap();
    let errors: Vec<String> =
        crate::components::build_all(&config).err().expect("refused").0.iter().map(ToString::to_string).collect();
    // Sources are taken in name order: the second one by name is the one in error.
    assert_eq!(
        errors,
        vec!["p.toml:7: sources.okta_hook.path: `/hooks/in` is already the path of source `eventbridge`"]
    );
}
