//! End to end: the real `lease-server` binary against real Docker (and once
//! with Redis), with the local test image `containerlease-test/busybox`
//! (scripts/test-images.sh) and the catalog `examples/catalog.local.toml`.
//!
//! Each test uses its own namespace `test-<random>` and a free port
//! (`lease_testkit`): the server is killed on drop and a namespace guard
//! removes every container carrying that namespace label, even when the test
//! fails. Without Docker (or Redis) a test skips with a printed reason; with
//! `CI=true` it fails instead.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use lease_testkit::docker::{NamespaceGuard, containers_of, docker_ready};
use lease_testkit::labels;
use lease_testkit::server::{Server, ServerConfig, mint_token};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const BINARY: &str = env!("CARGO_BIN_EXE_lease-server");

/// This crate's `lease-server` on `namespace` with the offline catalog, JSON
/// logs and a 5 s sweep, once `/healthz` answers (30 s at most).
fn start(namespace: &str, extra: &[&str]) -> Server {
    let config = ServerConfig::new(namespace)
        .binary(BINARY)
        .sweep_interval("5s")
        .ready_path("/healthz")
        .ready_within(Duration::from_secs(30))
        .args(extra.iter().copied());
    Server::start(config).expect("cargo builds the binary of this crate's tests")
}

/// One HTTP/1.1 request; returns the status and the body as JSON (or a JSON string).
async fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    json: Option<&str>,
) -> Result<(u16, Value), Box<dyn std::error::Error + Send + Sync>> {
    let (status, _, value) = request_with_headers(address, method, path, token, json).await?;
    Ok((status, value))
}

/// [`request`], also returning the response headers.
async fn request_with_headers(
    address: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    json: Option<&str>,
) -> Result<(u16, hyper::HeaderMap, Value), Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", address.to_string());
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    if json.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let body = Full::new(Bytes::from(json.unwrap_or_default().to_owned()));
    let response = sender.send_request(builder.body(body)?).await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await?.to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok((status, headers, value))
}

async fn call(server: &Server, method: &str, path: &str, json: Option<&str>) -> (u16, Value) {
    request(server.address(), method, path, None, json)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", server.log_text()))
}

/// Polls a lease until `done` holds (`limit` at most).
async fn poll_until(
    server: &Server,
    id: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (status, lease) =
            call(server, "GET", &format!("/api/containers/{id}/status"), None).await;
        assert_eq!(status, 200, "{lease}");
        if done(&lease) {
            return lease;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {lease}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn parse_time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().expect("a time"))
        .expect("RFC 3339")
        .with_timezone(&chrono::Utc)
}

/// The whole life of leases through the real server: provision, running,
/// list, logs, extend, delete, and a one-minute lease reaped on time.
async fn lease_life(server: &mut Server) {
    let namespace = server.config().namespace.clone();
    let (status, ready) = call(server, "GET", "/readyz", None).await;
    assert_eq!(status, 200, "{ready}");

    // Provision: 202 and pending at once.
    let (status, lease) = call(
        server,
        "POST",
        "/api/provision",
        Some(r#"{"imageType":"busybox","durationMinutes":2}"#),
    )
    .await;
    assert_eq!(status, 202, "{lease}");
    assert_eq!(lease["status"], "pending");
    let id = lease["id"].as_str().expect("id").to_owned();

    // Poll to running.
    let running = poll_until(server, &id, Duration::from_secs(60), |l| {
        l["status"] != "pending"
    })
    .await;
    assert_eq!(running["status"], "running", "{running}");
    let docker_id = running["dockerId"].as_str().expect("docker id").to_owned();
    assert_eq!(containers_of(&namespace).len(), 1);
    let inspected = Command::new("docker")
        .args(["inspect", "--format", "{{json .Config.Labels}}", &docker_id])
        .output()
        .expect("docker inspect");
    let container_labels: Value = serde_json::from_slice(&inspected.stdout).expect("labels");
    assert_eq!(container_labels[labels::LEASE_ID], id.as_str());
    assert_eq!(container_labels[labels::NAMESPACE], namespace.as_str());

    // List.
    let (status, list) = call(server, "GET", "/api/containers", None).await;
    assert_eq!(status, 200);
    let containers = list["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0]["id"], id.as_str());
    assert!(containers[0]["expiresIn"].as_i64().expect("expiresIn") > 60);

    // Logs over the WebSocket: the command prints `ready`, then a tick a second.
    let url = format!("ws://{}/ws/logs/{id}", server.address());
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("websocket");
    let mut lines = Vec::new();
    while lines.len() < 3 {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a log line within 10 s")
            .expect("open")
            .expect("frame");
        if let Message::Text(text) = frame {
            lines.push(text.to_string());
        }
    }
    assert_eq!(lines[0], "ready", "{lines:?}");
    assert!(lines[1].starts_with("tick "), "{lines:?}");

    // Extend.
    let (status, extended) = call(
        server,
        "POST",
        &format!("/api/containers/{id}/extend"),
        Some(r#"{"minutes":3}"#),
    )
    .await;
    assert_eq!(status, 200, "{extended}");
    assert_eq!(extended["durationMinutes"], 5);
    assert_eq!(
        (parse_time(&extended["expiryAt"]) - parse_time(&lease["expiryAt"])).num_minutes(),
        3
    );

    // Delete: the container goes, and the open log socket ends normally.
    let (status, deleting) = call(server, "DELETE", &format!("/api/containers/{id}"), None).await;
    assert_eq!(status, 202, "{deleting}");
    let gone = poll_until(server, &id, Duration::from_secs(30), |l| {
        l["status"] == "deleted"
    })
    .await;
    assert_eq!(gone["endReason"], "deleted");
    assert!(containers_of(&namespace).is_empty());
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(frame)) = socket.next().await {
            if let Message::Close(frame) = frame {
                return frame;
            }
        }
        None
    })
    .await
    .expect("the socket closes after the delete");
    if let Some(frame) = close {
        assert_eq!(u16::from(frame.code), 1000, "{frame:?}");
    }

    // A one-minute lease is reaped on time.
    let (status, short) = call(
        server,
        "POST",
        "/api/provision",
        Some(r#"{"imageType":"busybox","durationMinutes":1}"#),
    )
    .await;
    assert_eq!(status, 202, "{short}");
    let short_id = short["id"].as_str().expect("id").to_owned();
    let expiry = parse_time(&short["expiryAt"]);
    poll_until(server, &short_id, Duration::from_secs(30), |l| {
        l["status"] == "running"
    })
    .await;
    let mut removed_at = None;
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if containers_of(&namespace).is_empty() {
            removed_at = Some(chrono::Utc::now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let removed_at = removed_at.expect("the one-minute lease's container was removed");
    // expiryAt is rounded down to the second; allow for that and the poll.
    let late = (removed_at - expiry).num_milliseconds();
    eprintln!("one-minute lease: container gone {late} ms after expiryAt");
    assert!(late < 3_000, "reaped {late} ms after expiry");
    let ended = poll_until(server, &short_id, Duration::from_secs(10), |l| {
        l["status"] == "deleted"
    })
    .await;
    assert_eq!(ended["endReason"], "expired");
    assert_eq!(ended["finalCost"], short["cost"]);

    let (status, history) = call(server, "GET", "/api/history", None).await;
    assert_eq!(status, 200);
    assert_eq!(history["leases"].as_array().expect("leases").len(), 2);

    // SIGTERM: a clean exit, and nothing left behind.
    let exit = server.terminate(Duration::from_secs(30));
    assert!(exit.success(), "exit {exit}:\n{}", server.log_text());
    assert!(containers_of(&namespace).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_life_with_the_memory_store() {
    if !docker_ready() {
        return;
    }
    let guard = NamespaceGuard::random();
    let mut server = start(guard.namespace(), &["--store", "memory"]);
    lease_life(&mut server).await;
}

/// The default store: a SQLite file, here in a directory that does not
/// exist yet (the server creates it and names the file at start-up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_life_with_sqlite() {
    if !docker_ready() {
        return;
    }
    let guard = NamespaceGuard::random();
    let dir = lease_testkit::TempDir::new("lease-e2e-sqlite");
    let url = format!("sqlite://{}", dir.path().join("state/leases.db").display());
    let mut server = start(guard.namespace(), &["--store", &url]);
    lease_life(&mut server).await;
    assert!(
        server.log_text().contains("leases in"),
        "the file is named at start-up:\n{}",
        server.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_life_with_redis() {
    if !docker_ready() {
        return;
    }
    let Some(url) = lease_testkit::redis::test_redis_url() else {
        return;
    };
    let guard = NamespaceGuard::random();
    let prefix = format!("e2e-{}", guard.namespace());
    let mut server = start(
        guard.namespace(),
        &["--store", &url, "--redis-prefix", &prefix],
    );
    lease_life(&mut server).await;
    let store = lease_store_redis::RedisStore::connect(
        lease_store_redis::RedisStoreConfig::new(url).prefix(prefix),
    )
    .await
    .expect("redis");
    let _ = store.delete_all().await;
}

/// PostgreSQL (issue 20): the same life on the database of
/// `LEASE_TEST_POSTGRES_URL` (scripts/postgres.sh), in the schema of a
/// random namespace, dropped at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_life_with_postgres() {
    if !docker_ready() {
        return;
    }
    let Some(url) = lease_testkit::postgres::test_postgres_url() else {
        return;
    };
    let guard = NamespaceGuard::random();
    let mut server = start(guard.namespace(), &["--store", &url]);
    lease_life(&mut server).await;
    let log = server.log_text();
    assert!(
        log.contains("lease store: PostgreSQL"),
        "the store is named at start-up:\n{log}"
    );
    drop_schema(&url, guard.namespace()).await;
}

/// Drops the schema of `namespace`'s tables.
async fn drop_schema(url: &str, namespace: &str) {
    let config = lease_store_postgres::PostgresStoreConfig::new(url).namespace(namespace);
    let store = lease_store_postgres::PostgresStore::connect(config)
        .await
        .expect("connect");
    lease_store_postgres::drop_schema(&store)
        .await
        .expect("drop the test's schema");
}

/// A PostgreSQL URL's password shows in no message and no log line, also
/// when the database cannot be reached (nothing listens on port 1): the
/// server exits 1 with the URL redacted.
#[test]
fn a_postgres_password_never_shows() {
    let output = Command::new(BINARY)
        .args([
            "--store",
            "postgres://lease:s3cret-pw@127.0.0.1:1/leases?connect_timeout=2",
            "--namespace",
            "test-pg-redact",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("s3cret"), "{stderr}");
    assert!(
        stderr.contains("cannot use the PostgreSQL lease store")
            && stderr.contains("postgres://lease:***@127.0.0.1:1/leases"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_isolation_through_the_binary() {
    if !docker_ready() {
        return;
    }
    let alice = mint_token(BINARY.as_ref(), "alice", false);
    let bob = mint_token(BINARY.as_ref(), "bob", false);
    let guard = NamespaceGuard::random();
    let tokens = std::env::temp_dir().join(format!("tokens-{}.toml", guard.namespace()));
    std::fs::write(&tokens, format!("{}\n{}", alice.toml_entry, bob.toml_entry))
        .expect("tokens file");
    let tokens_arg = tokens.display().to_string();
    let mut server = start(guard.namespace(), &["--tokens", &tokens_arg]);
    let (alice, bob) = (alice.token, bob.token);
    let address = server.address();

    let (status, body) = request(address, "GET", "/api/containers", None, None)
        .await
        .expect("call");
    assert_eq!(status, 401, "{body}");
    let (status, lease) = request(
        address,
        "POST",
        "/api/provision",
        Some(&alice),
        Some(r#"{"imageType":"busybox","durationMinutes":5}"#),
    )
    .await
    .expect("call");
    assert_eq!(status, 202, "{lease}");
    assert_eq!(lease["owner"], "alice");
    let id = lease["id"].as_str().expect("id");
    let path = format!("/api/containers/{id}/status");
    let (status, _) = request(address, "GET", &path, Some(&bob), None)
        .await
        .expect("call");
    assert_eq!(status, 404);
    let (status, _) = request(
        address,
        "DELETE",
        &format!("/api/containers/{id}"),
        Some(&bob),
        None,
    )
    .await
    .expect("call");
    assert_eq!(status, 404);
    let (status, _) = request(
        address,
        "DELETE",
        &format!("/api/containers/{id}"),
        Some(&alice),
        None,
    )
    .await
    .expect("call");
    assert_eq!(status, 202);
    let exit = server.terminate(Duration::from_secs(30));
    assert!(exit.success());
    let _ = std::fs::remove_file(tokens);
}

#[test]
fn refuses_an_open_address_without_tokens() {
    let output = Command::new(BINARY)
        .args(["--listen", "0.0.0.0:0", "--namespace", "test-refuse"])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--insecure-open"), "{stderr}");
}

#[test]
fn mints_tokens_with_a_toml_entry() {
    let output = Command::new(BINARY)
        .args(["token", "new", "--owner", "carol", "--admin"])
        .output()
        .expect("runs");
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .expect("a token line");
    let entry = &text[text.find("[[tokens]]").expect("an entry")..];
    let file = lease_http::auth::TokenFile::from_toml(entry).expect("a valid entry");
    let caller = file.verify(token).expect("the token verifies");
    assert_eq!(caller.owner, "carol");
    assert!(caller.admin);
}

#[test]
fn rejects_bad_flags() {
    for args in [
        ["--store", "mysql://x"].as_slice(),
        ["--postgres-pool-size", "0"].as_slice(),
        ["--max-daily-spend", "-1"].as_slice(),
        ["--log-format", "xml"].as_slice(),
        ["--sweep-interval", "soon"].as_slice(),
        ["--header-read-timeout", "0s"].as_slice(),
        ["--idle-timeout", "0s"].as_slice(),
        ["--request-timeout", "0s"].as_slice(),
        ["--rate-limit-burst", "0"].as_slice(),
        ["--max-connections-per-ip", "-1"].as_slice(),
    ] {
        let output = Command::new(BINARY)
            .args(args)
            .args(["--namespace", "test-flags", "--listen", "127.0.0.1:0"])
            .output()
            .expect("runs");
        assert!(!output.status.success(), "{args:?}");
    }
}

/// A catalog asking for a disk limit starts only on an engine whose
/// storage driver enforces one; elsewhere the server refuses to start and
/// says why, instead of running leases without the limit.
#[test]
fn a_disk_limit_the_engine_cannot_enforce_stops_the_start() {
    if !docker_ready() {
        return;
    }
    let dir = lease_testkit::TempDir::new("disk-catalog");
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(
        &catalog,
        "[[offering]]\nkey = \"disky\"\nimage = \"containerlease-test/busybox:latest\"\n\
         hourly_rate = \"0.01\"\ncpus = \"0.25\"\nmemory_mb = 64\ndisk_mb = 256\n",
    )
    .expect("catalog");
    let namespace = lease_testkit::random_namespace();
    let _guard = NamespaceGuard::new(&namespace);
    let mut child = Command::new(BINARY)
        .args(["--namespace", &namespace, "--listen", "127.0.0.1:0"])
        .args(["--store", "memory", "--catalog"])
        .arg(&catalog)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let driver = Command::new("docker")
        .args(["info", "--format", "{{.Driver}} {{json .DriverStatus}}"])
        .output()
        .expect("docker info");
    let driver = String::from_utf8_lossy(&driver.stdout).into_owned();
    if child.try_wait().expect("wait").is_none() {
        let _ = child.kill();
        let _ = child.wait();
        let enforcing = ["btrfs", "zfs", "devicemapper", "windowsfilter"]
            .iter()
            .any(|name| driver.starts_with(name))
            || (driver.starts_with("overlay2") && driver.contains("\"xfs\""));
        assert!(enforcing, "the server started with disk_mb on {driver}");
        return;
    }
    let output = child.wait_with_output().expect("output");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot do") && stderr.contains("disky") && stderr.contains("disk_mb"),
        "{stderr}"
    );
}

/// Writes `text` to `path` with `mode` (replacing the file).
#[cfg(unix)]
fn write_with_mode(path: &std::path::Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write a secrets file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Polls `GET path` with `token` until it answers `status` (10 s at most).
async fn wait_for_status(server: &Server, path: &str, token: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (got, body) = request(server.address(), "GET", path, Some(token), None)
            .await
            .expect("call");
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "GET {path} still answers {got} ({body}), not {status}:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hangup(server: &Server) {
    let pid = server.pid().expect("running");
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
}

/// Revocation without a restart: the tokens file and the metrics token file
/// are re-read on SIGHUP; a broken file keeps the tokens in effect; a
/// world-readable tokens file gets a warning. Also: `/metrics` for admins
/// and the scrape token only, `/readyz` without details for anonymous callers.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_re_reads_the_tokens_and_the_metrics_token() {
    if !docker_ready() {
        return;
    }
    let alice = mint_token(BINARY.as_ref(), "alice", false);
    let bob = mint_token(BINARY.as_ref(), "bob", false);
    let admin = mint_token(BINARY.as_ref(), "root", true);
    let guard = NamespaceGuard::random();
    let dir = tempfile::tempdir().expect("temp dir");
    let tokens = dir.path().join("tokens.toml");
    let scrape_file = dir.path().join("metrics-token");
    // World-readable on purpose: the server must warn about it.
    write_with_mode(
        &tokens,
        &format!("{}\n{}", alice.toml_entry, admin.toml_entry),
        0o644,
    );
    let (scrape, scrape_next) = ("scrape-0123456789abcdef", "scrape-fedcba9876543210");
    write_with_mode(&scrape_file, &format!("{scrape}\n"), 0o600);
    let (tokens_arg, scrape_arg) = (
        tokens.display().to_string(),
        scrape_file.display().to_string(),
    );
    let mut server = start(
        guard.namespace(),
        &["--tokens", &tokens_arg, "--metrics-token-file", &scrape_arg],
    );
    let log = server.log_text();
    assert!(log.contains("readable by every user"), "{log}");
    assert!(
        !log.contains(scrape) && !log.contains(&alice.token),
        "a secret is in the log"
    );

    wait_for_status(&server, "/api/usage", &alice.token, 200).await;
    wait_for_status(&server, "/api/usage", &bob.token, 401).await;
    wait_for_status(&server, "/metrics", &alice.token, 403).await;
    wait_for_status(&server, "/metrics", &admin.token, 200).await;
    wait_for_status(&server, "/metrics", scrape, 200).await;
    let (status, ready) = request(server.address(), "GET", "/readyz", None, None)
        .await
        .expect("call");
    assert_eq!((status, ready), (200, serde_json::json!({"ready": true})));

    // Revoke alice, admit bob; a new scrape token. No restart.
    write_with_mode(
        &tokens,
        &format!("{}\n{}", bob.toml_entry, admin.toml_entry),
        0o600,
    );
    write_with_mode(&scrape_file, scrape_next, 0o600);
    hangup(&server);
    wait_for_status(&server, "/api/usage", &alice.token, 401).await;
    wait_for_status(&server, "/api/usage", &bob.token, 200).await;
    wait_for_status(&server, "/metrics", scrape, 401).await;
    wait_for_status(&server, "/metrics", scrape_next, 200).await;
    let log = server.log_text();
    assert!(log.contains("SIGHUP: tokens file re-read"), "{log}");
    assert!(
        log.contains("\"added\":1") && log.contains("\"removed\":1"),
        "{log}"
    );

    // A broken file keeps the tokens in effect, and says so.
    write_with_mode(&tokens, "[[tokens]]\nowner = \"x\"\n", 0o600);
    hangup(&server);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log_text().contains("the tokens in effect are kept") {
        assert!(Instant::now() < deadline, "{}", server.log_text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for_status(&server, "/api/usage", &bob.token, 200).await;
    assert!(server.is_running());
    assert_eq!(server.starts(), 1);
    let exit = server.terminate(Duration::from_secs(30));
    assert!(exit.success());
}

/// 40 provisions sent at once; returns each answer's status, headers and body.
async fn provision_race(server: &Server) -> Vec<(u16, hyper::HeaderMap, Value)> {
    let address = server.address();
    let requests = (0..40).map(|_| async move {
        request_with_headers(
            address,
            "POST",
            "/api/provision",
            None,
            Some(r#"{"imageType":"busybox","durationMinutes":5}"#),
        )
        .await
    });
    futures::future::join_all(requests)
        .await
        .into_iter()
        .map(|answer| answer.unwrap_or_else(|e| panic!("provision: {e}\n{}", server.log_text())))
        .collect()
}

/// How many answers had each status.
fn count_statuses(
    answers: &[(u16, hyper::HeaderMap, Value)],
) -> std::collections::BTreeMap<u16, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for (status, _, _) in answers {
        *counts.entry(*status).or_default() += 1;
    }
    counts
}

/// 40 simultaneous provisions against `--max-leases-per-owner 5`: exactly
/// 5 leases (202) and 35 `quota_exceeded` (429) naming the limit; exactly 5
/// leases listed afterwards.
async fn owner_quota_race(server: &Server) {
    let answers = provision_race(server).await;
    assert_eq!(
        count_statuses(&answers),
        [(202, 5), (429, 35)].into_iter().collect(),
        "{:?}\n{}",
        answers.iter().map(|(_, _, body)| body).collect::<Vec<_>>(),
        server.log_text()
    );
    for (status, _, body) in &answers {
        if *status == 429 {
            assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
            assert_eq!(body["error"]["limit"], "max_leases_per_owner", "{body}");
        }
    }
    let (status, listed) = call(server, "GET", "/api/containers", None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed["containers"].as_array().map(Vec::len),
        Some(5),
        "exactly the admitted leases exist: {listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_parallel_provisions_against_an_owner_limit_of_5_with_sqlite() {
    if !docker_ready() {
        return;
    }
    let guard = NamespaceGuard::random();
    let dir = lease_testkit::TempDir::new("lease-e2e-race");
    let url = format!("sqlite://{}", dir.path().join("leases.db").display());
    let server = start(
        guard.namespace(),
        &["--store", &url, "--max-leases-per-owner", "5"],
    );
    owner_quota_race(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_parallel_provisions_against_an_owner_limit_of_5_in_memory() {
    if !docker_ready() {
        return;
    }
    let guard = NamespaceGuard::random();
    let server = start(
        guard.namespace(),
        &["--store", "memory", "--max-leases-per-owner", "5"],
    );
    owner_quota_race(&server).await;
}

/// `--max-leases 3`: of 40 simultaneous provisions 3 get a lease and 37 a
/// 503 `capacity_exhausted` naming `max_leases`, with `Retry-After`;
/// `/api/usage` shows the capacity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_capacity_refuses_with_503_naming_the_limit() {
    if !docker_ready() {
        return;
    }
    let guard = NamespaceGuard::random();
    let server = start(
        guard.namespace(),
        &[
            "--store",
            "memory",
            "--max-leases",
            "3",
            "--max-cpus",
            "4.5",
            "--max-memory",
            "1GiB",
        ],
    );
    let answers = provision_race(&server).await;
    assert_eq!(
        count_statuses(&answers),
        [(202, 3), (503, 37)].into_iter().collect(),
        "{}",
        server.log_text()
    );
    for (status, headers, body) in &answers {
        if *status == 503 {
            assert_eq!(body["error"]["code"], "capacity_exhausted", "{body}");
            assert_eq!(body["error"]["limit"], "max_leases", "{body}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("max_leases"), "{message}");
            assert!(message.contains("the limit is 3"), "{message}");
            assert_eq!(
                headers.get("retry-after").and_then(|v| v.to_str().ok()),
                Some("30"),
                "{headers:?}"
            );
        }
    }
    let (status, usage) = call(&server, "GET", "/api/usage", None).await;
    assert_eq!(status, 200, "{usage}");
    let capacity = &usage["limits"]["capacity"];
    assert_eq!(capacity["maxLeases"], 3, "{usage}");
    assert_eq!(capacity["maxCpus"], 4.5, "{usage}");
    assert_eq!(capacity["maxMemoryMb"], 1024, "{usage}");
    assert!(
        server.log_text().contains("host capacity limits"),
        "{}",
        server.log_text()
    );
}

/// Bad capacity values are refused before the server starts, naming the flag.
#[test]
fn bad_capacity_flags_are_refused() {
    for args in [
        ["--max-leases", "0"].as_slice(),
        ["--max-cpus", "0"].as_slice(),
        ["--max-cpus", "lots"].as_slice(),
        ["--max-memory", "16GB"].as_slice(),
        ["--max-memory", "1.5"].as_slice(),
    ] {
        let output = Command::new(BINARY)
            .args(args)
            .args([
                "--namespace",
                "test-flags",
                "--listen",
                "127.0.0.1:0",
                "--store",
                "memory",
            ])
            .output()
            .expect("run the binary");
        assert!(!output.status.success(), "{args:?} must be refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(args[0]), "{args:?}: {stderr}");
    }
}

/// Without any host limit the server warns at start-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_host_limit_is_warned_about_at_start_up() {
    if !docker_ready() {
        return;
    }
    let guard = NamespaceGuard::random();
    let server = start(guard.namespace(), &["--store", "memory"]);
    assert!(
        server.log_text().contains("no host capacity limit"),
        "{}",
        server.log_text()
    );
}
