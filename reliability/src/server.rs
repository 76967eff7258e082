//! The real `lease-server` binary: locate (and build) it, start it with a
//! test namespace on a free port, wait for `/readyz`, crash it (`kill -9`),
//! stop it (SIGTERM) and restart it on the same store.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::api::Api;

/// The `lease-server` binary: `LEASE_SERVER_BIN` if set, else
/// `target/<profile>/lease-server` beside this test binary. Outside CI it is
/// built first (`cargo build -q -p lease-server`, once per process) so it is
/// fresh; under `CI=true` the workspace build has just made it. `None` if
/// there is none.
pub fn binary() -> Option<PathBuf> {
    static BINARY: OnceLock<Option<PathBuf>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Ok(path) = std::env::var("LEASE_SERVER_BIN")
                && !path.is_empty()
            {
                return Some(PathBuf::from(path));
            }
            // target/<profile>/deps/<test binary> → target/<profile>/lease-server
            let exe = std::env::current_exe().ok()?;
            let mut dir = exe.parent()?;
            if dir.ends_with("deps") {
                dir = dir.parent()?;
            }
            let path = dir.join("lease-server");
            if !(crate::in_ci() && path.exists()) {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
                let mut build = Command::new(cargo);
                build
                    .args(["build", "-q", "-p", "lease-server"])
                    .current_dir(crate::workspace_root())
                    .stdin(Stdio::null());
                if dir.file_name().is_some_and(|name| name == "release") {
                    build.arg("--release");
                }
                let built = build.status();
                if !matches!(built, Ok(status) if status.success()) {
                    eprintln!(
                        "`cargo build -p lease-server` failed; using {} if present",
                        path.display()
                    );
                }
            }
            path.exists().then_some(path)
        })
        .clone()
}

/// How to start a server. Build with [`ServerConfig::new`] and the setters.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The namespace (`--namespace`).
    pub namespace: String,
    /// `memory` or a Redis URL (`--store`).
    pub store: String,
    /// `--sweep-interval` (default here: `1s`).
    pub sweep_interval: String,
    /// `--max-leases-per-owner` (default here: `0`, unlimited).
    pub max_leases_per_owner: u32,
    /// More flags, appended as they are (they may repeat one set above:
    /// the last wins for clap).
    pub args: Vec<String>,
    /// Extra environment, e.g. `DOCKER_HOST` for a proxy.
    pub env: Vec<(String, String)>,
    /// `RUST_LOG` (default `info`).
    pub rust_log: String,
}

impl ServerConfig {
    /// A single-user server on `namespace` with the memory store and the
    /// offline catalog, sweeping every second, no lease quota.
    pub fn new(namespace: &str) -> ServerConfig {
        ServerConfig {
            namespace: namespace.to_owned(),
            store: "memory".to_owned(),
            sweep_interval: "1s".to_owned(),
            max_leases_per_owner: 0,
            args: Vec::new(),
            env: Vec::new(),
            rust_log: "info".to_owned(),
        }
    }

    /// `--store` (`memory` or `redis://…`); the Redis prefix defaults to
    /// `containerlease-<namespace>`, unique per test.
    pub fn store(mut self, store: impl Into<String>) -> ServerConfig {
        self.store = store.into();
        self
    }

    /// Appends flags, e.g. `["--provision-timeout", "20s"]`.
    pub fn args<I, S>(mut self, args: I) -> ServerConfig
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds an environment variable for the server process.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> ServerConfig {
        self.env.push((name.into(), value.into()));
        self
    }

    /// `--sweep-interval`.
    pub fn sweep_interval(mut self, interval: impl Into<String>) -> ServerConfig {
        self.sweep_interval = interval.into();
        self
    }

    /// `--max-leases-per-owner` (0: unlimited).
    pub fn max_leases_per_owner(mut self, max: u32) -> ServerConfig {
        self.max_leases_per_owner = max;
        self
    }
}

/// A running (or stopped) `lease-server` process. Killed (SIGKILL) on drop;
/// on a panic its log is printed. Its containers are *not* removed on drop:
/// keep a [`crate::docker::NamespaceGuard`] for that (it outlives restarts).
pub struct Server {
    config: ServerConfig,
    binary: PathBuf,
    child: Option<Child>,
    address: SocketAddr,
    log: PathBuf,
    /// How many times it was started (1 after [`Server::start`]).
    starts: u32,
}

impl Server {
    /// Starts the server and waits until `/readyz` answers 200 (60 s at
    /// most; panics with the log otherwise). `None` (after a printed skip
    /// reason, or a panic under `CI=true`) if there is no binary.
    pub fn start(test: &str, config: ServerConfig) -> Option<Server> {
        let Some(binary) = binary() else {
            crate::skip_or_fail(
                test,
                "the lease-server binary does not exist and cannot be built",
            );
            return None;
        };
        let log = std::env::temp_dir().join(format!("lease-server-{}.log", config.namespace));
        let mut server = Server {
            config,
            binary,
            child: None,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            starts: 0,
        };
        server.spawn();
        server.wait_ready(Duration::from_secs(60));
        Some(server)
    }

    fn spawn(&mut self) {
        let port = crate::free_port();
        self.address = SocketAddr::from(([127, 0, 0, 1], port));
        self.starts += 1;
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the server log file");
        use std::io::Write;
        let _ = writeln!(
            &log_file,
            "=== start #{} on {} ===",
            self.starts, self.address
        );
        let mut command = Command::new(&self.binary);
        for (name, _) in std::env::vars() {
            if name.starts_with("LEASE_") {
                command.env_remove(name);
            }
        }
        command
            .args(["--listen", &self.address.to_string()])
            .args(["--namespace", &self.config.namespace])
            .args(["--store", &self.config.store])
            .arg("--catalog")
            .arg(crate::local_catalog())
            .args(["--sweep-interval", &self.config.sweep_interval])
            .args([
                "--max-leases-per-owner",
                &self.config.max_leases_per_owner.to_string(),
            ])
            .args(["--log-format", "json"])
            .args(&self.config.args)
            .env("RUST_LOG", &self.config.rust_log)
            .env("NO_COLOR", "1")
            .envs(self.config.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        self.child = Some(command.spawn().expect("spawn lease-server"));
    }

    /// Waits until `/readyz` answers 200; panics with the log if the
    /// process exits or `limit` passes.
    pub fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let api = self.api().with_timeout(Duration::from_secs(2));
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                panic!("lease-server exited with {status}:\n{}", self.log_text());
            }
            if api.ready() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "lease-server not ready within {limit:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A client of this server (its address changes on restart: ask again).
    pub fn api(&self) -> Api {
        Api::new(self.address)
    }

    /// The address it listens on now.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Its configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The log file (stderr of every start, appended).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole log so far.
    pub fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// `kill -9`: no shutdown, no cleanup, like a crash.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the exit (at most `limit`; then SIGKILL
    /// and a panic). Returns the exit status.
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("the server is running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        assert!(
            sent.is_ok_and(|s| s.success()),
            "kill -TERM {} failed",
            child.id()
        );
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status;
            }
            if Instant::now() >= deadline {
                self.kill9();
                panic!(
                    "lease-server did not exit within {limit:?} of SIGTERM:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts it again (after [`Server::kill9`] or [`Server::terminate`];
    /// kills it first if still running) with the same configuration and
    /// store, on a new free port, and waits until ready.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
        self.wait_ready(Duration::from_secs(60));
    }

    /// How many times the process was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(200).collect();
            eprintln!(
                "lease-server log ({}), last {} lines:",
                self.log.display(),
                tail.len()
            );
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}
