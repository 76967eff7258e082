//! Redis for the tests: the suite's shared one (`LEASE_TEST_REDIS_URL`,
//! started by `scripts/redis.sh`) and private `redis-server` processes of a
//! test's own — for restarts and crashes, AOF, TLS, replicas and Sentinel —
//! on free loopback ports, their files in a fresh directory under the
//! target dir, killed and removed on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The variable naming the suite's Redis.
pub const URL_VAR: &str = "LEASE_TEST_REDIS_URL";

/// The suite's Redis URL, or `None` after the current test is skipped with
/// the reason (a failure under `CI=true`).
pub fn test_redis_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => crate::skip(format!(
            "{URL_VAR} is not set (scripts/test.sh starts a private Redis; or \
             eval \"$(scripts/redis.sh start)\")"
        )),
    }
}

/// The redis-server binary: `LEASE_TEST_REDIS_SERVER` (set by
/// scripts/redis.sh), else `redis-server` on the PATH, if it runs.
pub fn binary() -> Option<String> {
    let candidate = std::env::var("LEASE_TEST_REDIS_SERVER")
        .ok()
        .filter(|path| !path.is_empty())
        .unwrap_or_else(|| "redis-server".to_owned());
    let runs = Command::new(&candidate)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    runs.then_some(candidate)
}

/// A fresh directory `<target>/test-redis/<tag>-<random>` (removed with the
/// [`PrivateRedis`] given it).
///
/// # Panics
///
/// If it cannot be created.
pub fn scratch_dir(tag: &str) -> PathBuf {
    let dir = crate::target_dir()
        .join("test-redis")
        .join(format!("{tag}-{}", crate::random_suffix()));
    std::fs::create_dir_all(&dir).expect("create the redis directory");
    dir
}

/// Persistence of a private Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// None: a restart loses everything.
    None,
    /// AOF with `appendfsync always`: a restart, even after SIGKILL, keeps
    /// every acknowledged write.
    AofAlways,
}

/// How to start a [`PrivateRedis`]: [`PrivateRedis::builder`], setters,
/// then [`RedisBuilder::start`].
#[derive(Clone, Debug)]
pub struct RedisBuilder {
    tag: String,
    persistence: Persistence,
    dir: Option<PathBuf>,
    port: Option<u16>,
    tls: bool,
    sentinel_config: Option<PathBuf>,
    args: Vec<String>,
}

impl RedisBuilder {
    /// [`Persistence`] (default: none).
    pub fn persistence(mut self, persistence: Persistence) -> RedisBuilder {
        self.persistence = persistence;
        self
    }

    /// Its data directory (default: a fresh [`scratch_dir`]); removed on drop.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> RedisBuilder {
        self.dir = Some(dir.into());
        self
    }

    /// Its port (default: a free one).
    pub fn port(mut self, port: u16) -> RedisBuilder {
        self.port = Some(port);
        self
    }

    /// Speaks TLS only, on its port, with `cert.pem`, `key.pem` and
    /// `ca.pem` from its directory (no client certificates).
    pub fn tls(mut self) -> RedisBuilder {
        self.tls = true;
        self
    }

    /// Runs as a Sentinel with this configuration file (which names the
    /// port: give the same one to [`RedisBuilder::port`]).
    pub fn sentinel(mut self, config: impl Into<PathBuf>) -> RedisBuilder {
        self.sentinel_config = Some(config.into());
        self
    }

    /// More `redis-server` arguments, e.g. `--replicaof 127.0.0.1 <port>`.
    pub fn args<I, S>(mut self, args: I) -> RedisBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Starts it and waits until it answers; `None` after a printed skip
    /// reason (a panic under `CI=true`) if there is no redis-server.
    ///
    /// # Panics
    ///
    /// If it does not come up within 10 s.
    pub fn start(self) -> Option<PrivateRedis> {
        let Some(binary) = binary() else {
            return crate::skip("redis-server is not installed (scripts/redis.sh installs it)");
        };
        let mut args: Vec<String> = Vec::new();
        let port = self.port.unwrap_or_else(crate::free_port);
        if let Some(config) = &self.sentinel_config {
            args.extend([config.to_string_lossy().into_owned(), "--sentinel".into()]);
        }
        if self.tls {
            args.extend(["--port".into(), "0".into(), "--tls-port".into()]);
        } else {
            args.push("--port".into());
        }
        args.push(port.to_string());
        let dir = self.dir.unwrap_or_else(|| scratch_dir(&self.tag));
        if self.tls {
            for (flag, file) in [
                ("--tls-cert-file", "cert.pem"),
                ("--tls-key-file", "key.pem"),
                ("--tls-ca-cert-file", "ca.pem"),
            ] {
                args.extend([flag.into(), dir.join(file).to_string_lossy().into_owned()]);
            }
            args.extend(["--tls-auth-clients".into(), "no".into()]);
        }
        args.extend(["--bind".into(), "127.0.0.1".into()]);
        args.extend(["--dir".into(), dir.to_string_lossy().into_owned()]);
        args.extend(["--daemonize", "no", "--logfile", "redis.log"].map(String::from));
        if self.sentinel_config.is_none() {
            args.extend(["--save".into(), String::new()]);
            match self.persistence {
                Persistence::None => args.extend(["--appendonly", "no"].map(String::from)),
                Persistence::AofAlways => args
                    .extend(["--appendonly", "yes", "--appendfsync", "always"].map(String::from)),
            }
        }
        args.extend(self.args);
        let mut redis = PrivateRedis {
            binary,
            dir,
            port,
            args,
            ping: !self.tls,
            child: None,
        };
        redis.spawn();
        Some(redis)
    }
}

/// A private redis-server (or Sentinel) on a loopback port; killed
/// (SIGKILL, like a crash) and its directory removed on drop.
#[derive(Debug)]
pub struct PrivateRedis {
    binary: String,
    dir: PathBuf,
    port: u16,
    args: Vec<String>,
    /// Whether readiness is checked with PING (not over TLS).
    ping: bool,
    child: Option<Child>,
}

impl PrivateRedis {
    /// A builder; `tag` names its directory.
    pub fn builder(tag: &str) -> RedisBuilder {
        RedisBuilder {
            tag: tag.to_owned(),
            persistence: Persistence::None,
            dir: None,
            port: None,
            tls: false,
            sentinel_config: None,
            args: Vec::new(),
        }
    }

    /// Starts a plain one with `persistence`; `None` (after a printed skip
    /// reason, or a panic under `CI=true`) if there is no redis-server.
    pub fn start(tag: &str, persistence: Persistence) -> Option<PrivateRedis> {
        PrivateRedis::builder(tag).persistence(persistence).start()
    }

    /// `redis://127.0.0.1:<port>/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory (its `redis.log` included).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// SIGKILL: no shutdown, no save, like a crash.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (Redis saves per its persistence and exits), 10 s at most,
    /// then SIGKILL.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again (crashed first if running) on the same port and data
    /// directory, and waits until it answers.
    pub fn restart(&mut self) {
        self.crash();
        self.spawn();
    }

    /// Whether it answers PING with PONG.
    pub fn pings(&self) -> bool {
        let Ok(mut conn) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let mut reply = [0_u8; 16];
        let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
        conn.write_all(b"PING\r\n").is_ok()
            && conn
                .read(&mut reply)
                .is_ok_and(|n| reply[..n].starts_with(b"+PONG"))
    }

    fn answers(&self) -> bool {
        if self.ping {
            self.pings()
        } else {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        }
    }

    fn spawn(&mut self) {
        let child = Command::new(&self.binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.answers() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "redis-server on port {} did not come up; see {}/redis.log",
            self.port,
            self.dir.display()
        );
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.crash();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
