//! Helpers shared by the `lease` binary tests: a clean command, services
//! (Docker, Redis) or a printed skip, and a namespace guard that removes
//! every container carrying the test's namespace label, even on failure.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use rand::Rng;

/// Every environment variable the binary reads, removed so the caller's
/// shell cannot leak into a test.
pub const LEASE_ENV: [&str; 11] = [
    "LEASE_STORE",
    "LEASE_REDIS_PREFIX",
    "LEASE_NAMESPACE",
    "LEASE_CATALOG",
    "LEASE_OWNER",
    "LEASE_OUTPUT",
    "LEASE_MAX_MINUTES",
    "LEASE_MAX_LEASES_PER_OWNER",
    "LEASE_MAX_DAILY_SPEND",
    "LEASE_TOKENS",
    "RUST_LOG",
];

/// The local test image (scripts/test-images.sh).
pub const TEST_IMAGE: &str = "containerlease-test/busybox:latest";

/// The `lease` binary with a clean environment and a time limit.
pub fn lease() -> Command {
    let mut command = Command::new(bin());
    for name in LEASE_ENV {
        command.env_remove(name);
    }
    // The default store is a file in the state directory: never the user's.
    command.env(
        "XDG_STATE_HOME",
        std::env::temp_dir().join("lease-cli-tests-state"),
    );
    command.timeout(Duration::from_secs(120));
    command
}

/// Path of the `lease` binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_lease")
}

/// The offline catalog (offerings on the local test image).
pub fn catalog() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog.local.toml")
}

/// `test-` and random lowercase letters and digits.
pub fn unique_namespace() -> String {
    let suffix: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(10)
        .map(|b| char::from(b).to_ascii_lowercase())
        .collect();
    format!("test-{suffix}")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips the test with a printed reason, or fails it under CI=true.
pub fn skip(test: &str, reason: &str) {
    assert!(!in_ci(), "{test}: {reason} (CI=true: required)");
    eprintln!("SKIPPED {test}: {reason}");
}

/// The private Redis of scripts/test.sh (scripts/redis.sh), if any.
pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var("LEASE_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            skip(
                test,
                "LEASE_TEST_REDIS_URL is not set (run scripts/test.sh, or eval \"$(scripts/redis.sh start)\")",
            );
            None
        }
    }
}

/// Whether Docker answers and has the test image.
pub fn docker_ready(test: &str) -> bool {
    let reachable = StdCommand::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !reachable {
        skip(test, "Docker is not reachable");
        return false;
    }
    let image = StdCommand::new("docker")
        .args(["image", "inspect", TEST_IMAGE])
        .output()
        .is_ok_and(|o| o.status.success());
    if !image {
        skip(
            test,
            &format!("{TEST_IMAGE} is missing (scripts/test-images.sh)"),
        );
        return false;
    }
    true
}

/// A test's namespace on Docker and Redis. Dropping it removes every
/// container labelled with it — only those.
pub struct TestNamespace {
    /// The namespace (`test-…`).
    pub name: String,
    /// The Redis URL.
    pub redis: String,
}

impl TestNamespace {
    /// Docker and Redis for `test`, or `None` after a printed skip.
    pub fn new(test: &str) -> Option<Self> {
        let redis = redis_url(test)?;
        if !docker_ready(test) {
            return None;
        }
        Some(TestNamespace {
            name: unique_namespace(),
            redis,
        })
    }

    /// `lease` on this namespace's Redis, catalog and namespace, as `owner`.
    pub fn lease_as(&self, owner: &str) -> Command {
        let mut command = lease();
        command
            .arg("--store")
            .arg(&self.redis)
            .arg("--namespace")
            .arg(&self.name)
            .arg("--catalog")
            .arg(catalog())
            .arg("--owner")
            .arg(owner);
        command
    }

    /// `lease` as owner `tester`.
    pub fn lease(&self) -> Command {
        self.lease_as("tester")
    }

    /// Names of the containers labelled with this namespace.
    pub fn containers(&self) -> Vec<String> {
        let filter = format!("label=io.containerlease.namespace={}", self.name);
        let output = StdCommand::new("docker")
            .args(["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"])
            .output()
            .expect("docker ps");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Removes the container of lease `id` behind the engine's back (it
    /// carries this namespace's label, so it is ours to touch).
    pub fn remove_container_of(&self, id: &str) {
        let filter_ns = format!("label=io.containerlease.namespace={}", self.name);
        let filter_id = format!("label=io.containerlease.lease-id={id}");
        let output = StdCommand::new("docker")
            .args(["ps", "-aq", "--filter", &filter_ns, "--filter", &filter_id])
            .output()
            .expect("docker ps");
        for container in String::from_utf8_lossy(&output.stdout).split_whitespace() {
            let _ = StdCommand::new("docker")
                .args(["rm", "-f", container])
                .output();
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let filter = format!("label=io.containerlease.namespace={}", self.name);
        if let Ok(output) = StdCommand::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .output()
        {
            let ids: Vec<String> = String::from_utf8_lossy(&output.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if !ids.is_empty() {
                let _ = StdCommand::new("docker")
                    .arg("rm")
                    .arg("-f")
                    .args(&ids)
                    .output();
            }
        }
    }
}

/// Stdout of a successful run, as text.
pub fn stdout_of(command: &mut Command) -> String {
    let output = command.output().expect("run lease");
    assert!(
        output.status.success(),
        "lease failed ({}): stdout: {} stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Stdout of a successful run, as JSON.
pub fn json_of(command: &mut Command) -> serde_json::Value {
    let text = stdout_of(command);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after `limit`.
pub fn eventually<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
