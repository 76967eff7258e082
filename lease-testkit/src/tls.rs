//! TLS for the tests, for real: certificates made with the `openssl` CLI
//! and Debian's `stunnel4` putting TLS with required client certificates
//! (`verify = 2`) in front of the local engine's unix socket on a free
//! loopback port. Without `openssl` or `stunnel4` (or with a `DOCKER_HOST`
//! that is not a unix socket) [`EngineTls::start`] skips the test, or fails
//! it under `CI=true` (`scripts/test.sh` installs `stunnel4`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{TempDir, free_port, skip, skip_or_fail};

/// Runs `openssl` with `args` in `dir`.
///
/// # Panics
///
/// If it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A self-signed CA `name` (`name.pem`, `name-key.pem`) in `dir`.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// A certificate `name` (`name.pem`, `name-key.pem`) in `dir`, signed by
/// CA `ca`, with the extensions `extensions` (an `openssl x509 -extfile`).
fn make_cert(dir: &Path, name: &str, ca: &str, extensions: &str) {
    let ext_file = format!("{name}.ext");
    std::fs::write(dir.join(&ext_file), extensions).expect("write the extensions");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "1",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}-key.pem"),
            "-CAcreateserial",
            "-extfile",
            &ext_file,
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// A client certificate directory as the docker CLI expects it
/// (`ca.pem`, `cert.pem`, `key.pem`), from files of `dir`.
fn client_dir(dir: &Path, name: &str, ca: &str, client: &str) -> PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).expect("create the client directory");
    for (from, to) in [
        (format!("{ca}.pem"), "ca.pem"),
        (format!("{client}.pem"), "cert.pem"),
        (format!("{client}-key.pem"), "key.pem"),
    ] {
        std::fs::copy(dir.join(from), out.join(to)).expect("copy a certificate");
    }
    out
}

/// The certificates of one test: the trusted CA and a rogue one, the
/// engine's (SAN IP:127.0.0.1), a client signed by the CA (`good/`) and one
/// signed by the rogue CA (`rogue/`, trusting the right CA).
pub struct Certs {
    dir: TempDir,
    /// Client certificates signed by the CA the engine's side trusts.
    pub good: PathBuf,
    /// Client certificates signed by another CA (trusting the right one).
    pub rogue: PathBuf,
}

impl Certs {
    /// Makes them in a fresh temporary directory (removed on drop).
    ///
    /// # Panics
    ///
    /// If `openssl` fails.
    pub fn make() -> Certs {
        let dir = TempDir::new("lease-docker-tls");
        let path = dir.path();
        make_ca(path, "ca");
        make_ca(path, "rogue-ca");
        make_cert(
            path,
            "server",
            "ca",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        );
        let client_ext = "extendedKeyUsage=clientAuth\n";
        make_cert(path, "client", "ca", client_ext);
        make_cert(path, "rogue-client", "rogue-ca", client_ext);
        Certs {
            good: client_dir(path, "good", "ca", "client"),
            rogue: client_dir(path, "rogue", "ca", "rogue-client"),
            dir,
        }
    }
}

/// stunnel in server mode on `127.0.0.1:port`, forwarding to the engine's
/// socket; killed on drop.
pub struct Stunnel {
    child: Child,
    port: u16,
}

impl Stunnel {
    /// Starts it with the engine's certificate of `certs`, forwarding to
    /// the unix socket `socket`, and waits until it listens.
    ///
    /// # Panics
    ///
    /// If it cannot be started or does not listen within 10 s.
    pub fn start(certs: &Certs, socket: &str) -> Stunnel {
        let port = free_port();
        let dir = certs.dir.path();
        let config = dir.join("stunnel.conf");
        let text = format!(
            "foreground = yes\npid =\ndebug = 4\n[docker]\naccept = 127.0.0.1:{port}\n\
             connect = {socket}\ncert = {server}\nkey = {key}\nCAfile = {ca}\nverify = 2\n",
            server = dir.join("server.pem").display(),
            key = dir.join("server-key.pem").display(),
            ca = dir.join("ca.pem").display(),
        );
        std::fs::write(&config, text).expect("write stunnel.conf");
        let child = Command::new("stunnel4")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start stunnel4");
        let mut stunnel = Stunnel { child, port };
        stunnel.wait_listening();
        stunnel
    }

    /// Waits (up to 10 s) until the port accepts connections.
    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("stunnel4 exited: {status}");
            }
            assert!(Instant::now() < deadline, "stunnel4 does not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its address as a Docker host: `tcp://127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `program` runs (`program args`), else skip (or fail under CI).
pub fn have(program: &str, args: &[&str]) -> bool {
    let runs = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !runs {
        skip_or_fail(format!(
            "`{program}` is not installed (Debian's openssl and stunnel4; scripts/test.sh installs stunnel4)"
        ));
    }
    runs
}

/// The engine's socket path, as the tests' own connection finds it; a
/// skip when `DOCKER_HOST` is not a unix socket.
pub fn engine_socket() -> Option<String> {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    if host.trim().is_empty() {
        return Some("/var/run/docker.sock".to_owned());
    }
    match host.strip_prefix("unix://") {
        Some(path) => Some(path.to_owned()),
        None => skip(format!(
            "DOCKER_HOST={host} is not a unix socket stunnel can forward to"
        )),
    }
}

/// Whether `openssl` and `stunnel4` are there and the engine is on a unix
/// socket: its path, else the test is skipped (or fails under `CI=true`).
pub fn tls_ready() -> Option<String> {
    if !have("openssl", &["version"]) || !have("stunnel4", &["-version"]) {
        return None;
    }
    engine_socket()
}
