//! Test support shared by every ContainerLease integration suite, so that no
//! suite keeps its own copy of a server launcher, a namespace guard or a
//! private Redis. A dev-dependency only (the reliability suite, itself test
//! tooling, depends on it normally).
//!
//! - [`skip`]: THE policy for a missing service — skip with a printed
//!   reason locally, fail under `CI=true`.
//! - [`docker`]: is Docker there (with the test image); the containers of a
//!   namespace; [`docker::NamespaceGuard`], which removes them on drop.
//! - [`server`]: the real `lease-server` binary — found (and built), started
//!   on a free port, waited for, killed (`kill -9`), stopped (SIGTERM),
//!   restarted, its log kept and printed when a test fails.
//! - [`redis`]: the suite's Redis (`LEASE_TEST_REDIS_URL`) and private
//!   `redis-server` processes (AOF, TLS, Sentinel), killed on drop.
//! - [`swarm`]: is the engine a swarm manager (`scripts/swarm.sh`); the
//!   services of a namespace; [`swarm::SwarmGuard`], which removes them,
//!   their containers and networks on drop.
//! - [`proxy`]: a unix-socket proxy in front of the Docker engine that a
//!   test cuts.
//! - [`labels`]: the container labels, from `lease_core` (never spelled out
//!   in a test).
//!
//! ```no_run
//! use lease_testkit::docker::{NamespaceGuard, docker_ready};
//! use lease_testkit::random_namespace;
//! use lease_testkit::server::{Server, ServerConfig};
//!
//! if docker_ready() {
//!     let namespace = random_namespace();
//!     // First, so it drops last: removes the namespace's containers.
//!     let _guard = NamespaceGuard::new(&namespace);
//!     if let Some(server) = Server::start(ServerConfig::new(&namespace)) {
//!         println!("lease-server on {}", server.address());
//!     }
//! }
//! ```

pub mod docker;
pub mod oidc;
pub mod postgres;
pub mod proxy;
pub mod redis;
pub mod server;
pub mod skip;
pub mod swarm;
pub mod tls;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use lease_core::runtime::labels;
use rand::Rng;
pub use skip::{in_ci, skip, skip_or_fail};

/// The local test image built by `scripts/test-images.sh` (never pulled).
pub const IMAGE: &str = "containerlease-test/busybox:latest";

/// Ten random lowercase letters and digits.
pub fn random_suffix() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(10)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect()
}

/// A unique test namespace `test-<random>` (scripts/test.sh fails if any
/// container of a `test-` namespace is left behind).
pub fn random_namespace() -> String {
    format!("test-{}", random_suffix())
}

/// A loopback port nothing listens on right now (bound, then released).
///
/// # Panics
///
/// If no loopback port can be bound at all.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate has a parent directory")
        .to_path_buf()
}

/// The workspace's target directory: `CARGO_TARGET_DIR`, else `target/`
/// under the workspace root.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The offline catalog `examples/catalog.local.toml` (offerings `alpine`,
/// `ubuntu`, `busybox` and the locked-down `sandboxed`, all on [`IMAGE`]).
pub fn local_catalog() -> PathBuf {
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

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<temp>/<prefix>-<random>`.
    ///
    /// # Panics
    ///
    /// If the directory cannot be created.
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", random_suffix()));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
