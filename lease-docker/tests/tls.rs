//! TLS to a tcp engine, for real: a CA, a server and two client
//! certificates made with the `openssl` CLI, and Debian's `stunnel4` in
//! front of the local engine's socket on a free loopback port, requiring a
//! client certificate signed by the CA (`verify = 2`). lease-docker reaches
//! the engine through it with the right certificates, and is refused with a
//! clear error without them.
//!
//! Without Docker (or the test image), `openssl` or `stunnel4` the tests
//! print SKIPPED; with `CI=true` they fail (`scripts/test.sh` installs
//! `stunnel4`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestDocker;
use lease_core::{ContainerRuntime, RuntimeError};
use lease_docker::{CertFileError, ConnectOptions, DockerRuntime};
use lease_testkit::{TempDir, free_port, skip, skip_or_fail};

/// Generous for a loaded CI machine: a TLS handshake through stunnel.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
struct Certs {
    dir: TempDir,
    good: PathBuf,
    rogue: PathBuf,
}

impl Certs {
    fn make() -> Certs {
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
struct Stunnel {
    child: Child,
    port: u16,
}

impl Stunnel {
    fn start(certs: &Certs, socket: &str) -> Stunnel {
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

    fn host(&self) -> String {
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
fn have(program: &str, args: &[&str]) -> bool {
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

/// The engine's socket path, as the tests' own connection finds it.
fn engine_socket() -> Option<String> {
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

/// Connects to `host` with TLS from `certs`.
async fn connect_tls(
    host: &str,
    certs: &Path,
    namespace: &str,
) -> Result<DockerRuntime, RuntimeError> {
    let options = ConnectOptions::default()
        .host(host)
        .tls(certs)
        .connect_timeout(CONNECT_TIMEOUT);
    DockerRuntime::connect_with(options, namespace).await
}

#[tokio::test]
async fn tls_with_client_certificates_reaches_the_engine_and_without_them_is_refused() {
    if !have("openssl", &["version"]) || !have("stunnel4", &["-version"]) {
        return;
    }
    let Some(socket) = engine_socket() else {
        return;
    };
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let certs = Certs::make();
    let stunnel = Stunnel::start(&certs, &socket);
    let host = stunnel.host();

    // A container of the test's namespace, made over the local socket.
    let id = test
        .runtime
        .create(&test.spec(&["sleep", "infinity"]))
        .await
        .expect("create");

    // Over TLS with the CA's client certificate: the same engine.
    let runtime = connect_tls(&host, &certs.good, &test.namespace)
        .await
        .expect("connect over TLS");
    runtime.ping().await.expect("ping over TLS");
    let listed: Vec<String> = runtime
        .list_managed()
        .await
        .expect("list over TLS")
        .into_iter()
        .map(|info| info.id)
        .collect();
    assert_eq!(listed, std::slice::from_ref(&id));
    let status = runtime.status(&id).await.expect("status over TLS");
    assert!(status.is_some_and(|info| info.id == id));
    runtime.remove(&id).await.expect("remove over TLS");
    assert!(runtime.list_managed().await.expect("list").is_empty());
    assert!(
        common::raw_list(&test.raw, &test.namespace)
            .await
            .is_empty()
    );

    // A client certificate the engine's side does not trust: refused.
    let error = connect_tls(&host, &certs.rogue, &test.namespace)
        .await
        .expect_err("a client certificate from another CA");
    let chain = error.chain();
    assert!(
        matches!(&error, RuntimeError::Unavailable { endpoint, .. } if *endpoint == host),
        "{chain}"
    );
    println!("rogue client refused: {chain}");

    // Plain text to the TLS port: refused too.
    let plain = DockerRuntime::connect_with(
        ConnectOptions::default()
            .host(&host)
            .connect_timeout(CONNECT_TIMEOUT),
        &test.namespace,
    )
    .await
    .expect_err("plain text to a TLS port");
    assert!(
        matches!(plain, RuntimeError::Unavailable { .. }),
        "{plain:?}"
    );
}

#[tokio::test]
async fn a_missing_certificate_file_is_a_typed_error_naming_it() {
    let dir = TempDir::new("lease-docker-tls-missing");
    std::fs::write(dir.path().join("ca.pem"), "not used").expect("write ca.pem");
    // Nothing listens there: the error must come before any connection.
    let host = format!("tcp://127.0.0.1:{}", free_port());
    let error = connect_tls(&host, dir.path(), "test-tls")
        .await
        .expect_err("cert.pem and key.pem are missing");
    let RuntimeError::Operation { source, .. } = &error else {
        panic!("expected Operation, got {error:?}");
    };
    let missing = source
        .downcast_ref::<CertFileError>()
        .unwrap_or_else(|| panic!("expected a CertFileError, got {error:?}"));
    assert_eq!(missing.path, dir.path().join("cert.pem"));
    assert_eq!(missing.endpoint, host);
    assert!(error.chain().contains("cert.pem"), "{}", error.chain());
}
