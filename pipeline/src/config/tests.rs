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

const SINK_ONLY: &str = "\n[sources.okta]\ntype = \"file\"\npath = \"a.ndjson\"\n";

#[test]
fn the_fluvio_backend_takes_its_options() {
    let text = format!(
        r#"[log]
partitions = 3
endpoint = "127.0.0.1:9003"
backend = "fluvio"
replication = 2
retention_ms = 86400000
retention_bytes = 1000000000
compression = "zstd"
linger_ms = 20
batch_size = 65536
tls = {{ ca_cert = "ca.pem", cert = "client.pem", key = "client.key", domain = "fluvio.local" }}
{SINK_ONLY}"#
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.log.partitions, 3);
    let fluvio = config.log.fluvio.expect("backend = fluvio gives a Fluvio config");
    assert_eq!(fluvio.endpoint, "127.0.0.1:9003");
    assert_eq!(fluvio.replication, 2);
    assert_eq!(fluvio.retention_ms, Some(86_400_000));
    assert_eq!(fluvio.retention_bytes, Some(1_000_000_000));
    assert_eq!(fluvio.compression, crate::log::fluvio::FluvioCompression::Zstd);
    assert_eq!((fluvio.linger_ms, fluvio.batch_size), (20, 65536));
    let tls = fluvio.tls.expect("tls");
    assert_eq!((tls.ca_cert.to_str(), tls.domain.as_str()), (Some("ca.pem"), "fluvio.local"));
}

#[test]
fn the_embedded_backend_has_no_fluvio_config() {
    let config = parse(&format!("[log]\nbackend = \"embedded\"\n{SINK_ONLY}")).unwrap();
    assert_eq!(config.log.fluvio, None);
    assert_eq!(parse(SINK_ONLY).unwrap().log.fluvio, None);
}

#[test]
fn fluvio_options_are_refused_on_the_embedded_log_and_embedded_ones_on_fluvio() {
    let embedded = errors(&format!("[log]\nfsync = \"always\"\nendpoint = \"127.0.0.1:9003\"\n{SINK_ONLY}"));
    assert_eq!(embedded.len(), 1, "{embedded:?}");
    assert!(embedded[0].starts_with("p.toml:3: log.endpoint: only for backend = \"fluvio\""), "{embedded:?}");

    let fluvio = errors(&format!(
        "[log]\nbackend = \"fluvio\"\nendpoint = \"h:1\"\nsegment_bytes = 4096\nfsync = \"always\"\n{SINK_ONLY}"
    ));
    assert_eq!(fluvio.len(), 2, "{fluvio:?}");
    assert!(fluvio[0].starts_with("p.toml:4: log.segment_bytes: only for the embedded backend"), "{fluvio:?}");
    assert!(fluvio[1].starts_with("p.toml:5: log.fsync: only for the embedded backend"), "{fluvio:?}");
}

#[test]
fn fluvio_option_errors_name_the_option_and_line() {
    let cases = [
        ("backend = \"fluvio\"\n", "p.toml:1: log.endpoint: missing: the address of the Fluvio SC"),
        ("backend = \"fluvio\"\nendpoint = \"localhost\"\n", "p.toml:3: log.endpoint: must be `host:port`"),
        (
            "backend = \"fluvio\"\nendpoint = \"h:1\"\ncompression = \"brotli\"\n",
            "p.toml:4: log.compression: unknown variant `brotli`",
        ),
        (
            "backend = \"fluvio\"\nendpoint = \"h:1\"\nreplication = 0\n",
            "p.toml:4: log.replication: must be from 1 to 16",
        ),
        ("backend = \"fluvio\"\nendpoint = \"h:1\"\nbatch_size = 10\n", "p.toml:4: log.batch_size: must be from 1024"),
        (
            "backend = \"fluvio\"\nendpoint = \"h:1\"\ntls = { ca_cert = \"a\" }\n",
            "p.toml:4: log.tls.cert: missing field `cert`",
        ),
        ("backend = \"fluvio\"\nendpoint = \"h:1\"\nbrokers = 3\n", "p.toml:4: log.brokers: unknown field `brokers`"),
        ("backend = \"kafka\"\n", "p.toml:2: log.backend: must be \"embedded\" or \"fluvio\""),
    ];
    for (log, expected) in cases {
        let errors = errors(&format!("[log]\n{log}{SINK_ONLY}"));
        assert_eq!(errors.len(), 1, "{log}: {errors:?}");
        assert!(errors[0].starts_with(expected), "{log}: {errors:?}");
    }
}

#[test]
fn a_fluvio_endpoint_from_the_environment_is_never_echoed() {
    let errors = errors(&format!("[log]\nbackend = \"fluvio\"\nendpoint = \"${{TOKEN}}\"\n{SINK_ONLY}"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("log.endpoint") && !errors[0].contains("s3cr3t"), "{errors:?}");
}
