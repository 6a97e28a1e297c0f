//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("pipeline/ has a parent").to_path_buf()
}

/// A `weir` command on a data directory.
pub fn weir(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command.arg("--data-dir").arg(data_dir).env_remove("WEIR_LOG").env_remove("RUST_BACKTRACE");
    command
}

/// Runs a command, returning its output.
pub fn run(command: &mut Command) -> Output {
    command.output().expect("the weir binary runs")
}

/// Standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the command succeeded, showing its stderr otherwise.
pub fn assert_ok(output: &Output) {
    assert!(output.status.success(), "weir failed ({}):\n{}", output.status, stderr(output));
}

/// Asserts a user error: exit code 1, no panic, no backtrace.
pub fn assert_user_error(output: &Output) {
    assert_eq!(output.status.code(), Some(1), "stderr:\n{}", stderr(output));
    let err = stderr(output);
    assert!(!err.contains("panicked") && !err.contains("stack backtrace"), "a user error must not panic:\n{err}");
}

/// `weir log consume TOPIC` as parsed JSON lines.
pub fn consume(data_dir: &Path, topic: &str) -> Vec<serde_json::Value> {
    let output = run(weir(data_dir).args(["log", "consume", topic]));
    assert_ok(&output);
    stdout(&output).lines().map(|l| serde_json::from_str(l).expect("consume prints JSON lines")).collect()
}

/// A small deterministic random number generator (xorshift), seeded per test so failures replay.
pub struct Rng(pub u64);

impl Rng {
    /// The next number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A seed from the clock, printed so a failing run can be replayed with `WEIR_TEST_SEED`.
pub fn seed() -> u64 {
    let seed = std::env::var("WEIR_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
    });
    eprintln!("WEIR_TEST_SEED={seed}");
    seed
}

/// `n` Okta System Log events with distinct uuids and users, one JSON object per line.
pub fn okta_events(n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        let event = serde_json::json!({
            "uuid": format!("00000000-0000-4000-8000-{i:012}"),
            "published": format!("2024-05-02T18:{:02}:{:02}.{:03}Z", (i / 60) % 60, i % 60, i % 1000),
            "eventType": if i % 3 == 0 { "user.session.start" } else { "user.lifecycle.deactivate" },
            "severity": "INFO",
            "displayMessage": "demo",
            "actor": {"id": format!("00u{i}"), "alternateId": format!("user{i}@example.com"), "type": "User"},
            "outcome": {"result": "SUCCESS"},
            "client": {"ipAddress": "192.0.2.1"},
            "target": [{"id": format!("00u{i}"), "type": "User", "alternateId": format!("user{i}@example.com")}]
        });
        out.push_str(&event.to_string());
        out.push('\n');
    }
    out
}
