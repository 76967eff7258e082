//! TLS to a tcp engine, for real: a CA, a server and two client
//! certificates made with the `openssl` CLI, and Debian's `stunnel4` in
//! front of the local engine's socket on a free loopback port, requiring a
//! client certificate signed by the CA (`verify = 2`; `lease_testkit::tls`).
//! lease-docker reaches the engine through it with the right certificates,
//! and is refused with a clear error without them.
//!
//! Without Docker (or the test image), `openssl` or `stunnel4` the tests
//! print SKIPPED; with `CI=true` they fail (`scripts/test.sh` installs
//! `stunnel4`).

mod common;

use std::path::Path;
use std::time::Duration;

use common::TestDocker;
use lease_core::{ContainerRuntime, RuntimeError};
use lease_docker::{CertFileError, ConnectOptions, DockerRuntime};
use lease_testkit::tls::{Certs, Stunnel, tls_ready};
use lease_testkit::{TempDir, free_port};

/// Generous for a loaded CI machine: a TLS handshake through stunnel.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
    let Some(socket) = tls_ready() else {
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
