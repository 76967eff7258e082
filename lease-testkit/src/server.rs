//! The real `lease-server` binary as a child process: found (and built),
//! started on a free loopback port with a test namespace, waited for,
//! crashed (`kill -9`), stopped (SIGTERM) and restarted on the same store.
//! Its stderr goes to a log file, printed (last lines) when a test fails.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How many log lines a failing test prints.
const LOG_TAIL: usize = 200;

/// The `lease-server` binary: `LEASE_SERVER_BIN` if set, else
/// `target/<profile>/lease-server` beside the running test binary. Outside
/// CI it is built first (`cargo build -q -p lease-server`, once per
/// process) so that it is fresh; under `CI=true` the workspace build has
/// just made it. `None` if there is none.
///
/// `lease-server`'s own tests pass `env!("CARGO_BIN_EXE_lease-server")` to
/// [`ServerConfig::binary`] instead.
pub fn binary() -> Option<PathBuf> {
    static BINARY: OnceLock<Option<PathBuf>> = OnceLock::new();
    BINARY.get_or_init(find_or_build).clone()
}

fn find_or_build() -> Option<PathBuf> {
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
        if !matches!(build.status(), Ok(status) if status.success()) {
            eprintln!(
                "`cargo build -p lease-server` failed; using {} if present",
                path.display()
            );
        }
    }
    path.exists().then_some(path)
}

/// A token minted by `lease-server token new`.
#[derive(Clone, Debug)]
pub struct MintedToken {
    /// The bearer token (`clt_…`).
    pub token: String,
    /// Its `[[tokens]]` entry for a `--tokens` file.
    pub toml_entry: String,
}

/// Runs `<binary> token new --owner <owner> [--admin]`.
///
/// # Panics
///
/// If the command fails or prints no token and entry.
pub fn mint_token(binary: &Path, owner: &str, admin: bool) -> MintedToken {
    let mut command = Command::new(binary);
    command.args(["token", "new", "--owner", owner]);
    if admin {
        command.arg("--admin");
    }
    let output = command.output().expect("run lease-server token new");
    assert!(output.status.success(), "lease-server token new failed");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let token = text
        .lines()
        .find_map(|line| line.strip_prefix("token: "))
        .expect("a `token:` line")
        .trim()
        .to_owned();
    let entry = text.find("[[tokens]]").expect("a [[tokens]] entry");
    MintedToken {
        token,
        toml_entry: text[entry..].to_owned(),
    }
}

/// How to start a server: [`ServerConfig::new`], then the setters. Flags
/// left unset are the binary's defaults.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The binary; [`binary`] when `None`.
    pub binary: Option<PathBuf>,
    /// `--namespace`.
    pub namespace: String,
    /// `--store` (`memory` or a Redis URL); the binary's default if `None`.
    pub store: Option<String>,
    /// `--catalog` (default: [`crate::local_catalog`]).
    pub catalog: PathBuf,
    /// `--sweep-interval`, if set.
    pub sweep_interval: Option<String>,
    /// `--max-leases-per-owner`, if set (0: unlimited).
    pub max_leases_per_owner: Option<u32>,
    /// More flags, after the ones above (clap: the last one wins).
    pub args: Vec<String>,
    /// Extra environment, e.g. `DOCKER_HOST` for a proxy. Every `LEASE_*`
    /// variable of the test's own environment is removed.
    pub env: Vec<(String, String)>,
    /// `RUST_LOG` (default `info`).
    pub rust_log: String,
    /// The path polled until it answers 200 (default `/readyz`).
    pub ready_path: String,
    /// How long a start may take before the test fails (default 60 s).
    pub ready_within: Duration,
}

impl ServerConfig {
    /// A server on `namespace` with the offline catalog and JSON logs; every
    /// other setting is the binary's default.
    pub fn new(namespace: &str) -> ServerConfig {
        ServerConfig {
            binary: None,
            namespace: namespace.to_owned(),
            store: None,
            catalog: crate::local_catalog(),
            sweep_interval: None,
            max_leases_per_owner: None,
            args: Vec::new(),
            env: Vec::new(),
            rust_log: "info".to_owned(),
            ready_path: "/readyz".to_owned(),
            ready_within: Duration::from_secs(60),
        }
    }

    /// Runs this binary (e.g. `env!("CARGO_BIN_EXE_lease-server")`).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> ServerConfig {
        self.binary = Some(path.into());
        self
    }

    /// `--store` (`memory` or `redis://…`).
    pub fn store(mut self, store: impl Into<String>) -> ServerConfig {
        self.store = Some(store.into());
        self
    }

    /// `--catalog`.
    pub fn catalog(mut self, path: impl Into<PathBuf>) -> ServerConfig {
        self.catalog = path.into();
        self
    }

    /// `--sweep-interval` (e.g. `1s`).
    pub fn sweep_interval(mut self, interval: impl Into<String>) -> ServerConfig {
        self.sweep_interval = Some(interval.into());
        self
    }

    /// `--max-leases-per-owner` (0: unlimited).
    pub fn max_leases_per_owner(mut self, max: u32) -> ServerConfig {
        self.max_leases_per_owner = Some(max);
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

    /// `RUST_LOG` for the server.
    pub fn rust_log(mut self, filter: impl Into<String>) -> ServerConfig {
        self.rust_log = filter.into();
        self
    }

    /// Waits for `path` (e.g. `/healthz`) instead of `/readyz` at start.
    pub fn ready_path(mut self, path: impl Into<String>) -> ServerConfig {
        self.ready_path = path.into();
        self
    }

    /// How long a start may take.
    pub fn ready_within(mut self, limit: Duration) -> ServerConfig {
        self.ready_within = limit;
        self
    }
}

/// A running (or stopped) `lease-server` process. Killed (SIGKILL) on drop;
/// when the test panics, the end of its log is printed. Its containers are
/// *not* removed on drop: hold a [`crate::docker::NamespaceGuard`] for
/// that, created before the server (it outlives restarts).
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    binary: PathBuf,
    child: Option<Child>,
    address: SocketAddr,
    log: PathBuf,
    /// Its `XDG_STATE_HOME`: where the default store (a SQLite file) lives,
    /// so a test never writes into the user's state directory. Kept across
    /// restarts, removed on drop.
    state: crate::TempDir,
    starts: u32,
}

impl Server {
    /// Starts the server on a free port and waits until it is ready (see
    /// [`ServerConfig::ready_path`]). `None` after a printed skip reason
    /// (a panic under `CI=true`) if there is no binary.
    ///
    /// # Panics
    ///
    /// With the log, if the process exits or is not ready in time.
    pub fn start(config: ServerConfig) -> Option<Server> {
        let Some(binary) = config.binary.clone().or_else(binary) else {
            return crate::skip("the lease-server binary does not exist and cannot be built");
        };
        let log = std::env::temp_dir().join(format!(
            "lease-server-{}-{}.log",
            config.namespace,
            crate::random_suffix()
        ));
        let mut server = Server {
            config,
            binary,
            child: None,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            state: crate::TempDir::new("lease-server-state"),
            starts: 0,
        };
        server.spawn_on(crate::free_port());
        server.wait_ready(server.config.ready_within);
        Some(server)
    }

    fn spawn_on(&mut self, port: u16) {
        self.address = SocketAddr::from(([127, 0, 0, 1], port));
        self.starts += 1;
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the server log file");
        let _ = writeln!(
            &log_file,
            "=== start #{} on {} ===",
            self.starts, self.address
        );
        let config = &self.config;
        let mut command = Command::new(&self.binary);
        for (name, _) in std::env::vars() {
            if name.starts_with("LEASE_") {
                command.env_remove(name);
            }
        }
        command
            .args(["--listen", &self.address.to_string()])
            .args(["--namespace", &config.namespace])
            .arg("--catalog")
            .arg(&config.catalog)
            .args(["--log-format", "json"]);
        if let Some(store) = &config.store {
            command.args(["--store", store]);
        }
        if let Some(interval) = &config.sweep_interval {
            command.args(["--sweep-interval", interval]);
        }
        if let Some(max) = config.max_leases_per_owner {
            command.args(["--max-leases-per-owner", &max.to_string()]);
        }
        command
            .args(&config.args)
            .env("RUST_LOG", &config.rust_log)
            .env("NO_COLOR", "1")
            .env("XDG_STATE_HOME", self.state.path())
            .envs(config.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        self.child = Some(command.spawn().expect("spawn lease-server"));
    }

    /// Waits until the ready path answers 200.
    ///
    /// # Panics
    ///
    /// With the log, if the process exits or `limit` passes.
    pub fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                panic!("lease-server exited with {status}:\n{}", self.log_tail());
            }
            if get_status(self.address, &self.config.ready_path) == Some(200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "lease-server not ready within {limit:?}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address it listens on now (a [`Server::restart`] changes it).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://<address>/`
    pub fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    /// Its configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The binary it runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
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

    fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n")
    }

    /// `kill -9`: no shutdown, no cleanup, like a crash.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and waits for the exit (`limit` at most, then SIGKILL).
    /// The exit status, or `None` if it had to be killed (or was not
    /// running).
    pub fn stop(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// [`Server::stop`] that must end by itself: the exit status.
    ///
    /// # Panics
    ///
    /// With the log, if it is not running or does not exit within `limit`
    /// of SIGTERM.
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        assert!(self.child.is_some(), "the server is not running");
        match self.stop(limit) {
            Some(status) => status,
            None => panic!(
                "lease-server did not exit within {limit:?} of SIGTERM:\n{}",
                self.log_tail()
            ),
        }
    }

    /// Starts it again (killed first if still running) with the same
    /// configuration and store on a new free port, and waits until ready.
    pub fn restart(&mut self) {
        self.restart_on(crate::free_port());
    }

    /// The same on the port it had, e.g. so that a browser page reconnects.
    pub fn restart_same_port(&mut self) {
        self.restart_on(self.address.port());
    }

    fn restart_on(&mut self, port: u16) {
        self.kill9();
        self.spawn_on(port);
        self.wait_ready(self.config.ready_within);
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
            eprintln!(
                "lease-server log ({}), last {LOG_TAIL} lines at most:\n{}",
                self.log.display(),
                self.log_tail()
            );
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// The status of a plain HTTP/1.1 `GET path`, or `None` if nothing answers.
fn get_status(address: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0_u8; 32];
    let read = stream.read(&mut head).ok()?;
    std::str::from_utf8(&head[..read])
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
