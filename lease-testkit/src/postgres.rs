//! PostgreSQL for the tests: the suite's shared cluster
//! (`LEASE_TEST_POSTGRES_URL`, started by `scripts/postgres.sh`) and private
//! clusters of a test's own — for `kill -9` and restarts — made with
//! `initdb` in a fresh directory under the target dir, on a free loopback
//! port, stopped and removed on drop.
//!
//! PostgreSQL refuses to run as root: when the tests run as root, a private
//! cluster runs as the `postgres` user that Debian's package creates (its
//! directory is handed to that user).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The variable naming the suite's PostgreSQL.
pub const URL_VAR: &str = "LEASE_TEST_POSTGRES_URL";

/// The variable naming the server binaries' directory.
pub const BIN_VAR: &str = "LEASE_TEST_POSTGRES_BIN";

/// The user a cluster runs as when the tests run as root.
const SERVER_USER: &str = "postgres";

/// The suite's PostgreSQL URL, or `None` after the current test is skipped
/// with the reason (a failure under `CI=true`).
pub fn test_postgres_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => crate::skip(format!(
            "{URL_VAR} is not set (scripts/test.sh starts a private PostgreSQL; or \
             eval \"$(scripts/postgres.sh start)\")"
        )),
    }
}

/// The directory of the server binaries (`initdb`, `postgres`):
/// `LEASE_TEST_POSTGRES_BIN`, else the newest `/usr/lib/postgresql/*/bin`
/// (Debian's layout), if it holds `initdb`.
pub fn binaries() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_VAR).filter(|dir| !dir.is_empty()) {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").is_file().then_some(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// Whether this process runs as root (then clusters run as `postgres`).
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// A command running `program` as the cluster's user.
fn as_owner(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", SERVER_USER, "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// A private PostgreSQL cluster on a loopback port: `initdb` into a fresh
/// directory under the target dir, trust authentication, user `postgres`.
/// Stopped (SIGKILL) and its directory removed on drop.
#[derive(Debug)]
pub struct PrivatePostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl PrivatePostgres {
    /// Makes and starts a cluster (`tag` names its directory) and waits
    /// until it accepts connections; `None` (after a printed skip reason, a
    /// panic under `CI=true`) if PostgreSQL is not installed.
    ///
    /// # Panics
    ///
    /// If `initdb` fails or the server does not come up within 30 s.
    pub fn start(tag: &str) -> Option<PrivatePostgres> {
        let Some(bin) = binaries() else {
            return crate::skip(
                "PostgreSQL server binaries not found (scripts/postgres.sh installs them)",
            );
        };
        let dir = crate::target_dir()
            .join("test-postgres")
            .join(format!("{tag}-{}", crate::random_suffix()));
        std::fs::create_dir_all(&dir).expect("create the cluster directory");
        if running_as_root() {
            let status = Command::new("chown")
                .arg(format!("{SERVER_USER}:"))
                .arg(&dir)
                .status()
                .expect("run chown");
            assert!(status.success(), "chown {} failed", dir.display());
        }
        let output = as_owner(&bin.join("initdb"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["--auth=trust", "--username=postgres", "--encoding=UTF8"])
            .args(["--locale=C.UTF-8", "--no-sync"])
            .output()
            .expect("run initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut postgres = PrivatePostgres {
            bin,
            dir,
            port: crate::free_port(),
            child: None,
        };
        postgres.spawn();
        Some(postgres)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory (`data/`, `postgres.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// SIGKILL to the postmaster, like a crash: no shutdown checkpoint.
    /// Its backends exit on their own when they notice (the next start
    /// waits for them).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // runuser passes SIGKILL on only by dying: kill the server itself.
            if let Some(pid) = self.postmaster_pid() {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again (killed first if running) on the same port and
    /// directory, and waits until it accepts connections (crash recovery
    /// included).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// The postmaster's pid, from `data/postmaster.pid`.
    fn postmaster_pid(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).ok()?;
        let pid = text.lines().next()?.trim();
        (!pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())).then(|| pid.to_owned())
    }

    /// Runs the server in the foreground (its output to `postgres.log`).
    fn launch(&self) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("postgres.log"))
            .expect("open postgres.log");
        let log_err = log.try_clone().expect("clone the log handle");
        as_owner(&self.bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-c", "listen_addresses=127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.dir)
            .args(["-c", "max_connections=100", "-c", "fsync=off"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .expect("spawn postgres")
    }

    fn spawn(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut child = self.launch();
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() && self.accepts() {
                self.child = Some(child);
                return;
            }
            if let Ok(Some(_)) = child.try_wait() {
                // Exited: a killed postmaster's backends still held the
                // data directory. Try again.
                std::thread::sleep(Duration::from_millis(200));
                child = self.launch();
                continue;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "PostgreSQL on port {} did not come up; see {}/postgres.log",
            self.port,
            self.dir.display()
        );
    }

    /// Whether `pg_isready` says it accepts connections.
    fn accepts(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
            .status()
            .is_ok_and(|status| status.success())
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
