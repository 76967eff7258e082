//! Two `lease-server` replicas on one Redis hold a limit together: 40
//! simultaneous provisions split between them against a limit of 5 get
//! exactly 5 × 202, whichever replica each one reached (the Redis store
//! admits in the same script as the write, so no read-then-write gap); the
//! same for the host's `--max-leases 3` (3 × 202, 37 × 503).
//!
//! Real Docker (the 5 admitted leases start containers of the local test
//! image) and the test Redis (`LEASE_TEST_REDIS_URL`, under a prefix of its
//! own, deleted at the end). The namespace guard removes the containers
//! even when the test fails; without Docker or Redis the test skips with a
//! printed reason, and fails under `CI=true`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use lease_testkit::docker::{NamespaceGuard, docker_ready};
use lease_testkit::server::{Server, ServerConfig};
use serde_json::Value;
use tokio::sync::Barrier;

const BINARY: &str = env!("CARGO_BIN_EXE_lease-server");

/// How many provisions race.
const RACERS: usize = 40;

/// A replica of this crate's `lease-server` on `namespace`, storing in Redis
/// at `url` under `prefix`, with `extra` flags.
fn replica(namespace: &str, url: &str, prefix: &str, extra: &[&str]) -> Server {
    let config = ServerConfig::new(namespace)
        .binary(BINARY)
        .store(url)
        .args(["--redis-prefix", prefix])
        .args(extra.iter().copied())
        .ready_path("/healthz")
        .ready_within(Duration::from_secs(30));
    Server::start(config).expect("cargo builds the binary of this crate's tests")
}

/// One HTTP/1.1 request on a connection of its own: status and JSON body
/// (or the body as a JSON string).
async fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    json: Option<&str>,
) -> (u16, Value) {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .unwrap_or_else(|e| panic!("connect to {address}: {e}"));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap_or_else(|e| panic!("handshake with {address}: {e}"));
    tokio::spawn(connection);
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", address.to_string());
    if json.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let body = Full::new(Bytes::from(json.unwrap_or_default().to_owned()));
    let request = builder.body(body).expect("a valid request");
    let response = sender
        .send_request(request)
        .await
        .unwrap_or_else(|e| panic!("{method} {path} on {address}: {e}"));
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("read the body of {method} {path}: {e}"))
        .to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

/// Sends `RACERS` provisions at once (released together by a barrier),
/// alternating between `replicas`; each answer's status and body.
async fn provision_race(replicas: &[SocketAddr]) -> Vec<(u16, Value)> {
    let start = Arc::new(Barrier::new(RACERS));
    let racers: Vec<_> = (0..RACERS)
        .map(|n| {
            let (address, start) = (replicas[n % replicas.len()], Arc::clone(&start));
            tokio::spawn(async move {
                start.wait().await;
                let body = r#"{"imageType":"busybox","durationMinutes":5}"#;
                request(address, "POST", "/api/provision", Some(body)).await
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(RACERS);
    for racer in racers {
        answers.push(racer.await.expect("a provision task panicked"));
    }
    answers
}

/// Deletes the test's keys from the test Redis.
async fn delete_prefix(url: &str, prefix: &str) {
    let config = lease_store_redis::RedisStoreConfig::new(url).prefix(prefix);
    if let Ok(store) = lease_store_redis::RedisStore::connect(config).await {
        let _ = store.delete_all().await;
    }
}

/// What a race must end with: `accepted` × 202, the rest refused with
/// `status` and an error `code` naming `limit`.
struct Expected {
    accepted: usize,
    status: u16,
    code: &'static str,
    limit: &'static str,
}

/// Two replicas with `flags` on one Redis prefix; `RACERS` provisions split
/// between them must end as `expected`, and both replicas then list the
/// admitted leases. Skips without Docker or Redis.
async fn two_replicas_race(tag: &str, flags: &[&str], expected: Expected) {
    if !docker_ready() {
        return;
    }
    let Some(url) = lease_testkit::redis::test_redis_url() else {
        return;
    };
    let guard = NamespaceGuard::random();
    let prefix = format!("{tag}-{}", guard.namespace());
    let replicas = [
        replica(guard.namespace(), &url, &prefix, flags),
        replica(guard.namespace(), &url, &prefix, flags),
    ];
    let addresses: Vec<SocketAddr> = replicas.iter().map(Server::address).collect();

    let answers = provision_race(&addresses).await;

    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    let accepted = statuses.iter().filter(|s| **s == 202).count();
    let refused = statuses.iter().filter(|s| **s == expected.status).count();
    assert_eq!(
        (accepted, refused),
        (expected.accepted, RACERS - expected.accepted),
        "statuses: {statuses:?}"
    );
    // Every refusal is the limit's, naming it (not some other 429 or 503).
    for (status, body) in answers.iter().filter(|(status, _)| *status != 202) {
        assert_eq!(body["error"]["code"], expected.code, "{status}: {body}");
        assert_eq!(body["error"]["limit"], expected.limit, "{status}: {body}");
    }
    // Both replicas see the same admitted leases.
    for address in &addresses {
        let (status, list) = request(*address, "GET", "/api/containers", None).await;
        assert_eq!(status, 200, "{list}");
        let count = list["containers"].as_array().map_or(0, Vec::len);
        assert_eq!(count, expected.accepted, "{list}");
    }

    drop(replicas);
    delete_prefix(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_one_redis_admit_exactly_five_of_forty_provisions() {
    let expected = Expected {
        accepted: 5,
        status: 429,
        code: "quota_exceeded",
        limit: "max_leases_per_owner",
    };
    two_replicas_race("replicas-owner", &["--max-leases-per-owner", "5"], expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_one_redis_share_the_host_capacity() {
    let expected = Expected {
        accepted: 3,
        status: 503,
        code: "capacity_exhausted",
        limit: "max_leases",
    };
    let flags = ["--max-leases-per-owner", "0", "--max-leases", "3"];
    two_replicas_race("replicas-host", &flags, expected).await;
}
