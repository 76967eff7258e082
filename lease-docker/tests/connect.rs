//! An engine that cannot be reached is `Unavailable`, quickly, naming where
//! it was looked for. None of these tests needs Docker.

use std::process::Command;
use std::time::{Duration, Instant};

use lease_core::{ContainerRuntime, RuntimeError};
use lease_docker::{ConnectOptions, DockerRuntime};

/// Set in the child process of [`docker_host_pointing_nowhere_is_unavailable_quickly`].
const CHILD: &str = "LEASE_DOCKER_TEST_CHILD";

/// Connects with `options` and checks the error and how long it took.
async fn assert_unavailable(options: ConnectOptions, endpoint: &str) {
    let started = Instant::now();
    let error = DockerRuntime::connect_with(options, "test-connect")
        .await
        .expect_err("unreachable");
    let elapsed = started.elapsed();
    match &error {
        RuntimeError::Unavailable {
            endpoint: reported, ..
        } => assert_eq!(reported, endpoint),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(error.to_string().contains(endpoint), "{error}");
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
}

/// `DOCKER_HOST` is read by `connect()`; it is set only in a child process
/// (this same test binary), so no test changes its own environment.
#[test]
fn docker_host_pointing_nowhere_is_unavailable_quickly() {
    let socket =
        std::env::temp_dir().join(format!("lease-docker-missing-{}.sock", std::process::id()));
    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "child_connects_from_env",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .env_remove("DOCKER_TLS_VERIFY")
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "child ran nothing:\n{stdout}");
}

/// The child half of the test above: does nothing unless run by it.
#[tokio::test]
async fn child_connects_from_env() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let host = std::env::var("DOCKER_HOST").expect("DOCKER_HOST set by the parent");
    let started = Instant::now();
    let error = DockerRuntime::connect("test-connect")
        .await
        .expect_err("nothing listens there");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    match &error {
        RuntimeError::Unavailable { endpoint, .. } => assert_eq!(endpoint, &host),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    println!("unavailable as expected: {}", error.chain());
}

#[tokio::test]
async fn a_missing_socket_is_unavailable() {
    let socket =
        std::env::temp_dir().join(format!("lease-docker-none-{}.sock", std::process::id()));
    let host = format!("unix://{}", socket.display());
    assert_unavailable(ConnectOptions::default().host(&host), &host).await;
}

#[tokio::test]
async fn an_engine_that_never_answers_times_out_under_two_seconds() {
    // A socket that accepts connections and then says nothing.
    let dir = std::env::temp_dir().join(format!("lease-docker-silent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("docker.sock");
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let host = format!("unix://{}", path.display());
    assert_unavailable(ConnectOptions::default().host(&host), &host).await;
    silent.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_refused_tcp_connection_is_unavailable() {
    // Bind and drop to find a local port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("tcp://127.0.0.1:{port}");
    assert_unavailable(ConnectOptions::default().host(&host), &host).await;
}

#[tokio::test]
async fn unsupported_hosts_are_invalid() {
    for host in ["ssh://me@example.invalid", "npipe:////./pipe/docker_engine"] {
        let error =
            DockerRuntime::connect_with(ConnectOptions::default().host(host), "test-connect")
                .await
                .expect_err(host);
        assert!(
            matches!(error, RuntimeError::Invalid(_)),
            "{host}: {error:?}"
        );
    }
}

#[tokio::test]
async fn ping_reports_an_engine_that_went_away() {
    // A fake engine that answers the version handshake once, then vanishes.
    let dir = std::env::temp_dir().join(format!("lease-docker-vanish-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("docker.sock");
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request).await.unwrap();
        let body = r#"{"ApiVersion":"1.41","Version":"20.10.24"}"#;
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).await.unwrap();
        // Dropping the listener closes the socket; removing the path makes it vanish.
    });
    let host = format!("unix://{}", path.display());
    let runtime =
        DockerRuntime::connect_with(ConnectOptions::default().host(&host), "test-connect")
            .await
            .expect("handshake");
    server.await.unwrap();
    std::fs::remove_file(&path).unwrap();
    let started = Instant::now();
    let error = runtime.ping().await.expect_err("gone");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(&error, RuntimeError::Unavailable { endpoint, .. } if *endpoint == host),
        "{error:?}"
    );
    let list = runtime.list_managed().await.expect_err("gone");
    assert!(matches!(list, RuntimeError::Unavailable { .. }), "{list:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
