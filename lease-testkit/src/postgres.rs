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
    /// The CA of the server certificate, when it serves TLS.
    tls: Option<TestCa>,
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
        Self::start_with(tag, None)
    }

    /// Like [`PrivatePostgres::start`], serving TLS (`ssl = on`) with a
    /// server certificate for `options.server_names` issued by a fresh
    /// test CA ([`PrivatePostgres::ca_file`]); with `options.tls_only`,
    /// `pg_hba.conf` admits TCP clients over TLS only (`hostssl`).
    /// `None` (after a skip) also if the `openssl` CLI is missing.
    ///
    /// # Panics
    ///
    /// As `start`, and if `openssl` fails.
    pub fn start_tls(tag: &str, options: TlsOptions) -> Option<PrivatePostgres> {
        if !openssl_available() {
            return crate::skip("the openssl CLI is not installed (Debian's postgresql brings it)");
        }
        Self::start_with(tag, Some(options))
    }

    fn start_with(tag: &str, tls: Option<TlsOptions>) -> Option<PrivatePostgres> {
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
        let tls = tls.map(|options| serve_tls(&dir, &options));
        let mut postgres = PrivatePostgres {
            bin,
            dir,
            port: crate::free_port(),
            child: None,
            tls,
        };
        postgres.spawn();
        Some(postgres)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The PEM file of the CA that issued the server certificate, when
    /// the cluster serves TLS.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(TestCa::cert_file)
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
        let mut command = as_owner(&self.bin.join("postgres"));
        command
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-c", "listen_addresses=127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.dir)
            .args(["-c", "max_connections=100", "-c", "fsync=off"]);
        if self.tls.is_some() {
            let tls = self.dir.join(TLS_DIR);
            command
                .args(["-c", "ssl=on", "-c"])
                .arg(format!(
                    "ssl_cert_file={}",
                    tls.join("server.pem").display()
                ))
                .arg("-c")
                .arg(format!("ssl_key_file={}", tls.join("server.key").display()));
        }
        command
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

/// The directory, in a cluster's, of its TLS files.
const TLS_DIR: &str = "tls";

/// How a private cluster serves TLS ([`PrivatePostgres::start_tls`]).
#[derive(Clone, Debug)]
pub struct TlsOptions {
    /// The DNS names and IP addresses the server certificate is valid for.
    pub server_names: Vec<String>,
    /// Whether `pg_hba.conf` admits TCP clients over TLS only (`hostssl`).
    pub tls_only: bool,
}

impl Default for TlsOptions {
    /// Valid for `localhost` and `127.0.0.1`; plain TCP admitted too.
    fn default() -> Self {
        TlsOptions {
            server_names: vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            tls_only: false,
        }
    }
}

/// Makes the cluster's CA and server certificate (the key readable by its
/// owner only, as PostgreSQL demands) and, for `tls_only`, a
/// `pg_hba.conf` with `hostssl` lines only.
fn serve_tls(dir: &Path, options: &TlsOptions) -> TestCa {
    let tls = dir.join(TLS_DIR);
    std::fs::create_dir_all(&tls).expect("create the TLS directory");
    let ca = TestCa::generate(&tls, "ca");
    ca.issue_server(&options.server_names, &tls.join("server"));
    let key = tls.join("server.key");
    if running_as_root() {
        let status = Command::new("chown")
            .arg(format!("{SERVER_USER}:"))
            .arg(&key)
            .arg(tls.join("server.pem"))
            .status()
            .expect("run chown");
        assert!(status.success(), "chown {} failed", key.display());
    }
    if options.tls_only {
        let hba = "local all all trust\n\
                   hostssl all all 127.0.0.1/32 trust\n\
                   hostssl all all ::1/128 trust\n";
        std::fs::write(dir.join("data/pg_hba.conf"), hba).expect("write pg_hba.conf");
    }
    ca
}

/// Whether the `openssl` command runs.
fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Runs an `openssl` command.
///
/// # Panics
///
/// If it cannot run or fails (its stderr in the message).
fn run_openssl(command: &mut Command) {
    let output = command.output().expect("run openssl");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `openssl req` making a new ECDSA P-256 key (unencrypted) for `subject`.
fn new_key_request(subject: &str) -> Command {
    let mut command = Command::new("openssl");
    command.args([
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ]);
    command.args(["-subj", subject]);
    command
}

/// A certificate authority for tests, made with the `openssl` CLI: an
/// ECDSA P-256 key and a self-signed CA certificate, valid 30 days.
#[derive(Debug, Clone)]
pub struct TestCa {
    /// The stem of `<stem>.pem` (certificate) and `<stem>.key`.
    stem: PathBuf,
}

impl TestCa {
    /// Makes `<dir>/<name>.pem` and `<dir>/<name>.key`.
    ///
    /// # Panics
    ///
    /// If `openssl` fails.
    pub fn generate(dir: &Path, name: &str) -> TestCa {
        let ca = TestCa {
            stem: dir.join(name),
        };
        let subject = format!("/CN=ContainerLease test CA {name}");
        run_openssl(
            new_key_request(&subject)
                .args(["-x509", "-days", "30"])
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
                .arg("-keyout")
                .arg(ca.key_file())
                .arg("-out")
                .arg(ca.cert_file()),
        );
        ca
    }

    /// The CA certificate (PEM): what a client trusts.
    pub fn cert_file(&self) -> PathBuf {
        self.stem.with_extension("pem")
    }

    /// The CA's private key (PEM).
    fn key_file(&self) -> PathBuf {
        self.stem.with_extension("key")
    }

    /// Issues a server certificate for `names` (DNS names, or IP
    /// addresses) into `<stem>.pem`, its key into `<stem>.key` (mode 0600).
    ///
    /// # Panics
    ///
    /// If `openssl` fails.
    pub fn issue_server(&self, names: &[String], stem: &Path) {
        let sans: Vec<String> = names
            .iter()
            .map(|name| match name.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{name}"),
                Err(_) => format!("DNS:{name}"),
            })
            .collect();
        let extensions = stem.with_extension("ext");
        std::fs::write(
            &extensions,
            format!(
                "subjectAltName={}\nbasicConstraints=critical,CA:FALSE\n\
                 keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
                sans.join(",")
            ),
        )
        .expect("write the extensions file");
        let (key, csr, cert) = (
            stem.with_extension("key"),
            stem.with_extension("csr"),
            stem.with_extension("pem"),
        );
        let subject = format!("/CN={}", names.first().map_or("server", String::as_str));
        run_openssl(
            new_key_request(&subject)
                .arg("-new")
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&csr),
        );
        run_openssl(
            Command::new("openssl")
                .args(["x509", "-req", "-days", "30", "-set_serial", "1", "-in"])
                .arg(&csr)
                .arg("-CA")
                .arg(self.cert_file())
                .arg("-CAkey")
                .arg(self.key_file())
                .arg("-extfile")
                .arg(&extensions)
                .arg("-out")
                .arg(&cert),
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .expect("chmod 0600 the server key");
    }
}
