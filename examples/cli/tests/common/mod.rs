//! Helpers shared by the `lease` binary tests: a clean command, and a test
//! namespace on Docker and Redis (or a printed skip, see `lease_testkit`)
//! whose guard removes every container carrying its label, even on failure.
#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use lease_testkit::docker::{self, NamespaceGuard, docker_ready};

/// Every environment variable the binary reads, removed so the caller's
/// shell cannot leak into a test.
pub const LEASE_ENV: [&str; 13] = [
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
    "LEASE_SERVER",
    "LEASE_TOKEN",
    "RUST_LOG",
];

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
    lease_testkit::local_catalog()
}

/// A test's namespace on Docker and Redis. Dropping it removes every
/// container labelled with it — only those.
pub struct TestNamespace {
    /// The namespace (`test-…`).
    pub name: String,
    /// The Redis URL.
    pub redis: String,
    _guard: NamespaceGuard,
}

impl TestNamespace {
    /// Docker and Redis for the current test, or `None` after a printed skip.
    pub fn new() -> Option<Self> {
        let redis = lease_testkit::redis::test_redis_url()?;
        if !docker_ready() {
            return None;
        }
        let guard = NamespaceGuard::random();
        Some(TestNamespace {
            name: guard.namespace().to_owned(),
            redis,
            _guard: guard,
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
        docker::container_names_of(&self.name)
    }

    /// Removes the container of lease `id` behind the engine's back (it
    /// carries this namespace's label, so it is ours to touch).
    pub fn remove_container_of(&self, id: &str) {
        docker::remove_containers(&docker::containers_of_lease(&self.name, id));
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
pub fn eventually<T>(what: &str, limit: Duration, check: impl FnMut() -> Option<T>) -> T {
    lease_testkit::wait_for(limit, Duration::from_millis(200), check)
        .unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// Everything a terminal (or a pipe) has shown so far, filled by a thread.
#[derive(Clone, Default)]
pub struct Screen(Arc<Mutex<Vec<u8>>>);

impl Screen {
    /// Collects what `reader` (a PTY master, a child's stdout) gives, on a thread.
    pub fn collect(mut reader: impl Read + Send + 'static) -> Screen {
        let screen = Screen::default();
        let shared = screen.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                shared
                    .0
                    .lock()
                    .expect("screen")
                    .extend_from_slice(&buffer[..n]);
            }
        });
        screen
    }

    /// The text so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("screen")).into_owned()
    }

    /// Waits until `needle` appears after byte `from`; returns where it ends.
    pub fn wait_for(&self, needle: &str, from: usize, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let text = self.text();
            if let Some(at) = text.get(from..).and_then(|rest| rest.find(needle)) {
                return from + at + needle.len();
            }
            assert!(
                Instant::now() < deadline,
                "`{needle}` did not appear; the terminal shows:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
