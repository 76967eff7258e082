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
    let bytes = response.into_body().collect().await?.to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok((status, value))
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
        ["--store", "postgres://x"].as_slice(),
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
