//! The reliability suite's harness (issue 8): runs the real `lease-server`
//! binary against real Docker and a real store (Redis, SQLite), injects faults (kill -9,
//! SIGTERM, Redis restarts, …) and checks the promise — no container
//! outlives its lease, no lease is lost.
//!
//! It builds on `lease-testkit`, which every integration suite shares (the
//! server launcher, private Redis, Docker proxy, namespace guard, skip
//! policy); what is here is the suite's own:
//!
//! - [`server`]: the suite's server settings, and its API client per server.
//! - [`api`]: a small blocking HTTP client for the lease API.
//! - [`raw_http`]: hostile input over a raw socket.
//! - [`docker`]: containers of a namespace with their labels, the event
//!   stream.
//! - [`check`]: THE CHECK every scenario ends with.
//! - [`cpu`]: a process's CPU time and the machine's load, for the benches.
//! - [`store`]: the store a scenario runs on (memory, a private Redis, a
//!   SQLite file in `FULL` or `NORMAL` mode, a private PostgreSQL cluster),
//!   so one scenario body serves every store.
//! - [`redis`], [`postgres`], [`proxy`]: `lease-testkit`'s, re-exported.
//!
//! Every scenario uses its own namespace `test-<random>`
//! ([`random_namespace`]); [`docker::NamespaceGuard`] removes the namespace's
//! containers and [`server::Server`] kills its process on drop, panics
//! included. A missing service skips with a printed reason
//! ([`skip_or_fail`]), or fails under `CI=true`.
//!
//! The suite has two sizes ([`Scale`]): quick by default (scripts/test.sh),
//! long with `LEASE_RELIABILITY=long` (scripts/reliability.sh).
//!
//! `benches/shell.rs` (`cargo bench -p lease-reliability --bench shell`, in
//! scripts/bench.sh) measures shell sessions through the server against a
//! direct `docker exec` on the same lease: keystroke echo and throughput.

// Modules, one per concept; add yours here (alphabetical).
pub mod api;
pub mod check;
pub mod cpu;
pub mod docker;
pub mod raw_http;
pub mod server;
pub mod store;

use std::time::Duration;

pub use lease_testkit::{labels, postgres, proxy, random_namespace, redis, skip_or_fail, wait_for};

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

/// The resident set of process `pid` in KiB, from `/proc/<pid>/status`.
///
/// # Panics
///
/// If the process is gone or the file has no `VmRSS` line.
pub fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}
