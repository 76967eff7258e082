//! The `lease` binary alone on its zero-setup default — a SQLite file in
//! the state directory, no lease-server — against real Docker: the
//! background reaper it starts removes containers at expiry and then exits,
//! one per file and namespace; `up --detach` works on SQLite.

mod common;

use std::fs::File;
use std::path::PathBuf;
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use chrono::{DateTime, Utc};
use common::{eventually, json_of};
use lease_testkit::TempDir;
use lease_testkit::docker::{self, NamespaceGuard, docker_ready};

/// A test namespace on Docker with its own state directory (so its own
/// default SQLite file). Dropping it stops its background reapers (they
/// carry its namespace) and removes its containers.
struct SqliteNamespace {
    name: String,
    state: TempDir,
    _guard: NamespaceGuard,
}

impl SqliteNamespace {
    fn new() -> Option<Self> {
        if !docker_ready() {
            return None;
        }
        let guard = NamespaceGuard::random();
        Some(SqliteNamespace {
            name: guard.namespace().to_owned(),
            state: TempDir::new("lease-cli-sqlite-state"),
            _guard: guard,
        })
    }

    /// `lease` on the default store of this state directory.
    fn lease(&self) -> Command {
        let mut command = common::lease();
        command
            .env("XDG_STATE_HOME", self.state.path())
            .arg("--namespace")
            .arg(&self.name)
            .arg("--catalog")
            .arg(common::catalog())
            .arg("--owner")
            .arg("tester");
        command
    }

    fn lock_file(&self) -> PathBuf {
        self.state.path().join(format!(
            "containerlease/leases-{0}.db.reaper-{0}.lock",
            self.name
        ))
    }

    /// Whether some process holds the background reaper's lock.
    fn lock_held(&self) -> bool {
        let file = File::options()
            .write(true)
            .open(self.lock_file())
            .expect("open the lock file");
        match file.try_lock() {
            Ok(()) => false,
            Err(std::fs::TryLockError::WouldBlock) => true,
            Err(std::fs::TryLockError::Error(e)) => panic!("cannot probe the lock: {e}"),
        }
    }

    /// Pids of the living background reapers of this namespace (found by
    /// their command line and environment; zombies have neither).
    /// The pid of the one background reaper, once there is exactly one
    /// (10 s at most).
    fn single_watcher(&self) -> u32 {
        eventually(
            "one background reaper",
            Duration::from_secs(10),
            || match self.watchers().as_slice() {
                [pid] => Some(*pid),
                _ => None,
            },
        )
    }

    fn watchers(&self) -> Vec<u32> {
        let wanted = format!("LEASE_NAMESPACE={}", self.name);
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            let read = |what: &str| std::fs::read(entry.path().join(what)).unwrap_or_default();
            let cmdline = read("cmdline");
            let is_watcher = cmdline.split(|b| *b == 0).any(|arg| arg == b"--until-idle");
            let ours = read("environ")
                .split(|b| *b == 0)
                .any(|var| var == wanted.as_bytes());
            if is_watcher && ours {
                pids.push(pid);
            }
        }
        pids
    }

    fn status(&self, id: &str) -> serde_json::Value {
        json_of(self.lease().args(["status", id, "-o", "json"]))
    }
}

impl Drop for SqliteNamespace {
    fn drop(&mut self) {
        for pid in self.watchers() {
            let _ = StdCommand::new("kill").arg(pid.to_string()).status();
        }
    }
}

fn expiry_of(lease: &serde_json::Value) -> DateTime<Utc> {
    lease["expiryAt"]
        .as_str()
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .map(|at| at.to_utc())
        .unwrap_or_else(|| panic!("no expiryAt in {lease}"))
}

#[test]
fn the_background_reaper_removes_expired_containers_then_exits() {
    let Some(ns) = SqliteNamespace::new() else {
        return;
    };
    // A long lease first: the reaper then sleeps towards its far expiry.
    let output = ns
        .lease()
        .args(["up", "busybox", "--for", "10m"])
        .output()
        .expect("run lease up");
    assert!(output.status.success(), "{output:?}");
    let long = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("background reaper removes the container"),
        "{said}"
    );
    let watcher = ns.single_watcher();
    assert!(ns.lock_held());
    let recorded = std::fs::read_to_string(ns.lock_file()).expect("lock file");
    assert_eq!(recorded.trim(), watcher.to_string());

    // A shorter lease from another process: it does not wake the reaper,
    // whose short sweep must still catch its earlier expiry.
    let short = json_of(
        ns.lease()
            .args(["up", "busybox", "--for", "1m", "-o", "json"]),
    );
    let short_id = short["id"].as_str().expect("id").to_owned();
    assert_eq!(short["status"], "running", "{short}");
    let expiry = expiry_of(&short);
    // No second watcher, neither from `up` nor started by hand.
    let hand = ns
        .lease()
        .args(["reap", "--until-idle"])
        .timeout(Duration::from_secs(20))
        .output()
        .expect("run a second watcher");
    assert!(hand.status.success(), "{hand:?}");
    assert_eq!(ns.watchers(), vec![watcher]);
    assert_eq!(docker::containers_of(&ns.name).len(), 2);

    let lateness = eventually(
        "the expired lease's container removed",
        Duration::from_secs(90),
        || {
            let gone = docker::containers_of_lease(&ns.name, &short_id).is_empty();
            gone.then(|| Utc::now() - expiry)
        },
    );
    eprintln!(
        "container removed {} ms after expiry",
        lateness.num_milliseconds()
    );
    assert!(
        lateness < chrono::Duration::seconds(6),
        "removed {lateness} after expiry"
    );
    eventually(
        "the expired lease in history",
        Duration::from_secs(5),
        || (ns.status(&short_id)["status"] == "deleted").then_some(()),
    );
    assert_eq!(ns.watchers(), vec![watcher], "the reaper keeps watching");
    assert_eq!(ns.status(&long)["status"], "running");

    // The last lease ends: the reaper lets go and exits.
    ns.lease().args(["rm", &long]).assert().success();
    eventually(
        "the background reaper gone",
        Duration::from_secs(15),
        || (ns.watchers().is_empty() && !ns.lock_held()).then_some(()),
    );
    let history = json_of(ns.lease().args(["ls", "--all", "-o", "json"]));
    let ended: Vec<_> = history
        .as_array()
        .expect("a list")
        .iter()
        .filter(|lease| lease["status"] == "deleted")
        .filter_map(|lease| lease["id"].as_str())
        .collect();
    assert!(
        ended.contains(&short_id.as_str()) && ended.contains(&long.as_str()),
        "{history}"
    );
    assert!(docker::containers_of(&ns.name).is_empty());
}

#[test]
fn detach_works_on_sqlite_and_is_watched() {
    let Some(ns) = SqliteNamespace::new() else {
        return;
    };
    let started = Instant::now();
    let lease = json_of(
        ns.lease()
            .args(["up", "busybox", "--for", "5m", "--detach", "-o", "json"]),
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let id = lease["id"].as_str().expect("id").to_owned();
    eventually(
        "the detached lease running",
        Duration::from_secs(30),
        || (ns.status(&id)["status"] == "running").then_some(()),
    );
    assert_eq!(docker::containers_of(&ns.name).len(), 1);
    let watcher = ns.single_watcher();
    assert!(ns.lock_held(), "reaper {watcher} holds the lock");
    ns.lease().args(["rm", &id]).assert().success();
    assert!(docker::containers_of(&ns.name).is_empty());
    eventually(
        "the background reaper gone",
        Duration::from_secs(15),
        || (ns.watchers().is_empty() && !ns.lock_held()).then_some(()),
    );
}
