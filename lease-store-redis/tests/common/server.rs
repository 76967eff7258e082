//! redis-server processes of a test's own (for restarts, TLS, Sentinel),
//! killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The redis-server binary: `LEASE_TEST_REDIS_SERVER`, else `redis-server`
/// on the PATH if it runs.
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

/// A fresh directory under the target dir.
pub fn scratch_dir(tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "redis-{tag}-{}",
        lease_core::LeaseId::generate().short(10)
    ));
    std::fs::create_dir_all(&dir).expect("create the redis dir");
    dir
}

/// A loopback port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A private redis-server (or Sentinel) on a loopback port, its files in
/// `dir`; killed (SIGKILL, like a crash) on drop.
pub struct OwnRedis {
    binary: String,
    dir: PathBuf,
    port: u16,
    args: Vec<String>,
    /// Whether readiness is checked with PING (not over TLS).
    ping: bool,
    child: Option<Child>,
}

impl OwnRedis {
    /// Starts one with AOF `appendfsync always` in a fresh directory.
    pub fn start(binary: String, tag: &str) -> Self {
        Self::start_args(binary, scratch_dir(tag), free_port(), true, aof_args())
    }

    /// Starts one that only speaks TLS, with `cert.pem`/`key.pem`/`ca.pem`
    /// from `dir`.
    pub fn start_tls(binary: String, dir: PathBuf) -> Self {
        let port = free_port();
        let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let args = vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            file("cert.pem"),
            "--tls-key-file".into(),
            file("key.pem"),
            "--tls-ca-cert-file".into(),
            file("ca.pem"),
            "--tls-auth-clients".into(),
            "no".into(),
        ];
        Self::start_args(binary, dir, port, false, args)
    }

    /// Starts one with `args` (the port and bind address are added unless
    /// `args` start with a config file, as Sentinel's do).
    pub fn start_args(
        binary: String,
        dir: PathBuf,
        port: u16,
        ping: bool,
        args: Vec<String>,
    ) -> Self {
        let mut server = OwnRedis {
            binary,
            dir,
            port,
            args,
            ping,
            child: None,
        };
        server.spawn();
        server
    }

    /// `redis://127.0.0.1:<port>/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server as a crash would (SIGKILL: no shutdown, no save).
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data directory.
    pub fn restart(&mut self) {
        self.crash();
        self.spawn();
    }

    fn spawn(&mut self) {
        let mut command = Command::new(&self.binary);
        command.args(&self.args);
        if !self.args.iter().any(|arg| arg == "--port") {
            command.args(["--port", &self.port.to_string()]);
        }
        let child = command
            .args(["--bind", "127.0.0.1", "--dir", &self.dir.to_string_lossy()])
            .args(["--daemonize", "no", "--logfile", "redis.log"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                if !self.ping {
                    return;
                }
                let mut reply = [0_u8; 16];
                let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
                if conn.write_all(b"PING\r\n").is_ok()
                    && conn
                        .read(&mut reply)
                        .is_ok_and(|n| reply[..n].starts_with(b"+PONG"))
                {
                    return;
                }
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

/// Persistence that loses no acknowledged write.
pub fn aof_args() -> Vec<String> {
    [
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.crash();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
