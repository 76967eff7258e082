//! The reliability suite's harness (issue 8): runs the real `lease-server`
//! binary against real Docker and real Redis, injects faults (kill -9,
//! SIGTERM, Redis restarts, …) and checks the promise — no container
//! outlives its lease, no lease is lost.
//!
//! - [`server`]: spawn, kill, terminate and restart `lease-server`.
//! - [`api`]: a small blocking HTTP client for the lease API.
//! - [`docker`]: containers by namespace label, the event stream, cleanup.
//! - [`redis`]: private `redis-server` processes (AOF optional).
//! - [`check`]: THE CHECK every scenario ends with.
//!
//! Every scenario uses its own namespace `test-<random>`
//! ([`random_namespace`]); [`docker::NamespaceGuard`] removes the namespace's
//! containers and [`server::Server`] kills its process on drop, panics
//! included. A missing service skips with a printed reason
//! ([`skip_or_fail`]), or fails under `CI=true`.
//!
//! The suite has two sizes ([`Scale`]): quick by default (scripts/test.sh),
//! long with `LEASE_RELIABILITY=long` (scripts/reliability.sh).

// Modules, one per concept; add yours here (alphabetical).
pub mod api;
pub mod check;
pub mod docker;
pub mod proxy;
pub mod raw_http;
pub mod redis;
pub mod server;

use std::time::{Duration, Instant};

use rand::Rng;

/// The local test image built by `scripts/test-images.sh`.
pub const IMAGE: &str = "containerlease-test/busybox:latest";

/// How big the scenarios are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// scripts/test.sh: small counts, the whole suite in a few minutes.
    Quick,
    /// scripts/reliability.sh (`LEASE_RELIABILITY=long`): the counts.
    Long,
}

impl Scale {
    /// `LEASE_RELIABILITY=long` → [`Scale::Long`], anything else → quick.
    pub fn from_env() -> Scale {
        match std::env::var("LEASE_RELIABILITY") {
            Ok(value) if value.eq_ignore_ascii_case("long") => Scale::Long,
            _ => Scale::Quick,
        }
    }

    /// `quick` in the quick form, `long` in the long one.
    pub fn pick<T>(self, quick: T, long: T) -> T {
        match self {
            Scale::Quick => quick,
            Scale::Long => long,
        }
    }
}

/// Whether this is a CI run (`CI=true`), where a missing service is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Prints why `test` is skipped, or panics under `CI=true`.
pub fn skip_or_fail(test: &str, reason: &str) {
    if in_ci() {
        panic!("{test}: CI=true and {reason}");
    }
    eprintln!("SKIPPED {test}: {reason}");
}

/// Ten random lowercase letters and digits.
pub fn random_suffix() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(10)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect()
}

/// A unique test namespace `test-<random>` (scripts/test.sh fails if any
/// container of a `test-` namespace is left).
pub fn random_namespace() -> String {
    format!("test-{}", random_suffix())
}

/// A loopback port nothing listens on right now (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate has a parent directory")
        .to_path_buf()
}

/// The offline catalog (`examples/catalog.local.toml`: offerings `alpine`,
/// `ubuntu`, `busybox`, all on [`IMAGE`]).
pub fn local_catalog() -> std::path::PathBuf {
    workspace_root().join("examples/catalog.local.toml")
}

/// Polls `probe` every `every` until it returns `Some`, or `None` after `limit`.
pub fn wait_for<T>(
    limit: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// The `q`-quantile (0.0–1.0, nearest rank) of `values`; `None` if empty.
pub fn quantile(values: &[Duration], q: f64) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).max(1) - 1;
    Some(sorted[rank.min(sorted.len() - 1)])
}

/// Prints a figure for `scripts/bench.sh`: `FIGURE name=value` on stdout
/// when `LEASE_FIGURES=1` (run with `--nocapture`), and `name: value` on
/// stderr always. Names are `scenario<N>.<what>`; times in ms.
pub fn figure(name: &str, value: impl std::fmt::Display) {
    eprintln!("{name}: {value}");
    if std::env::var("LEASE_FIGURES").is_ok_and(|v| v == "1") {
        println!("FIGURE {name}={value}");
    }
}
