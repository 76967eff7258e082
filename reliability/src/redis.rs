//! Private `redis-server` processes: one per test, on a free loopback port,
//! its files in a fresh directory under the target dir; optionally with AOF
//! `appendfsync always` (no acknowledged write lost); crash (SIGKILL),
//! graceful stop, restart on the same port and data. Killed and its
//! directory removed on drop.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// Persistence of a private Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// None: a restart loses everything.
    None,
    /// AOF with `appendfsync always`: a restart (even after SIGKILL) keeps
    /// every acknowledged write.
    AofAlways,
}

/// A private redis-server. Killed and its directory removed on drop.
pub struct PrivateRedis {
    binary: String,
    dir: PathBuf,
    port: u16,
    persistence: Persistence,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts one; `None` (after a printed skip reason, or a panic under
    /// `CI=true`) if there is no redis-server.
    pub fn start(test: &str, persistence: Persistence) -> Option<PrivateRedis> {
        let Some(binary) = binary() else {
            crate::skip_or_fail(
                test,
                "redis-server is not installed (scripts/redis.sh installs it)",
            );
            return None;
        };
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| crate::workspace_root().join("target"));
        let dir = target
            .join("reliability-redis")
            .join(format!("{test}-{}", crate::random_suffix()));
        std::fs::create_dir_all(&dir).expect("create the redis directory");
        let mut redis = PrivateRedis {
            binary,
            dir,
            port: crate::free_port(),
            persistence,
            child: None,
        };
        redis.spawn();
        Some(redis)
    }

    /// `redis://127.0.0.1:<port>/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether it is running.
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

    /// Starts it again (after [`PrivateRedis::crash`] or
    /// [`PrivateRedis::stop`]; crashes it first if running) on the same
    /// port and data directory, and waits for PONG.
    pub fn restart(&mut self) {
        self.crash();
        self.spawn();
    }

    fn spawn(&mut self) {
        let mut command = Command::new(&self.binary);
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--daemonize", "no", "--logfile", "redis.log", "--save", ""]);
        if self.persistence == Persistence::AofAlways {
            command.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            command.args(["--appendonly", "no"]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.pings() {
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

    /// Whether it answers PING with PONG.
    pub fn pings(&self) -> bool {
        let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let mut reply = [0_u8; 16];
        let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
        conn.write_all(b"PING\r\n").is_ok()
            && conn
                .read(&mut reply)
                .is_ok_and(|n| reply[..n].starts_with(b"+PONG"))
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.crash();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
