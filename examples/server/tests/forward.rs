//! The TCP tunnel (`GET /api/containers/{id}/ports/{port}/tcp`) at the
//! WebSocket level: the real `lease-server` binary, real Docker (busybox
//! `nc -ll -e cat` echoing in the lease), a tokio-tungstenite client with
//! the `Authorization` header. Half-closes both ways and close 1000; the
//! largest message taken, and one byte more (1009); bad text (1008); the
//! stream permit (429); idle tunnels kept alive by pings; the lease's
//! deletion ending a tunnel (`ended`, 1001).
//! `examples/cli/tests/port_forward.rs` covers the same route through
//! `lease port-forward`, with 10 MiB and the HTTP refusals.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use lease_http::forward::MAX_DATA_MESSAGE;
use lease_testkit::docker::{NamespaceGuard, containers_of, docker_ready};
use lease_testkit::server::{Server, ServerConfig, mint_token};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const BINARY: &str = env!("CARGO_BIN_EXE_lease-server");
/// Longest wait for any one thing a test expects.
const WAIT: Duration = Duration::from_secs(15);
/// The echo server's port in the container.
const ECHO: u16 = 7000;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Fixture {
    server: Server,
    alice: String,
    lease: String,
    _tokens: lease_testkit::TempDir,
    guard: NamespaceGuard,
}

impl Fixture {
    fn start(extra: &[&str]) -> Option<Fixture> {
        if !docker_ready() {
            return None;
        }
        let guard = NamespaceGuard::random();
        let alice = mint_token(BINARY.as_ref(), "alice", false);
        let dir = lease_testkit::TempDir::new("lease-forward-tokens");
        let tokens = dir.path().join("tokens.toml");
        std::fs::write(&tokens, alice.toml_entry).expect("tokens file");
        let config = ServerConfig::new(guard.namespace())
            .binary(BINARY)
            .store("memory")
            .rust_log("info,lease_http=debug")
            .sweep_interval("1s")
            .ready_path("/healthz")
            .ready_within(Duration::from_secs(30))
            .args(["--tokens", &tokens.display().to_string()])
            .args(extra.iter().copied());
        let server = Server::start(config)?;
        let mut fixture = Fixture {
            server,
            alice: alice.token,
            lease: String::new(),
            _tokens: dir,
            guard,
        };
        fixture.lease = fixture.running_lease();
        fixture.start_echo();
        Some(fixture)
    }

    fn address(&self) -> SocketAddr {
        self.server.address()
    }

    fn curl(&self, method: &str, path: &str, body: Option<&str>) -> Value {
        let mut command = std::process::Command::new("curl");
        command
            .args(["-s", "-X", method, "-H"])
            .arg(format!("Authorization: Bearer {}", self.alice))
            .args(["-H", "Content-Type: application/json"]);
        if let Some(body) = body {
            command.args(["-d", body]);
        }
        let output = command
            .arg(format!("http://{}{path}", self.address()))
            .output()
            .expect("curl");
        serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
    }

    fn running_lease(&self) -> String {
        let lease = self.curl(
            "POST",
            "/api/provision",
            Some(r#"{"imageType":"busybox","durationMinutes":5}"#),
        );
        let id = lease["id"].as_str().expect("a lease id").to_owned();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let lease = self.curl("GET", &format!("/api/containers/{id}/status"), None);
            if lease["status"] == "running" {
                return id;
            }
            assert!(Instant::now() < deadline, "never running: {lease}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn start_echo(&self) {
        let containers = containers_of(self.guard.namespace());
        let container = containers.first().expect("the lease's container");
        let port = ECHO.to_string();
        let started = std::process::Command::new("docker")
            .args([
                "exec", "-d", container, "nc", "-ll", "-p", &port, "-e", "cat",
            ])
            .status()
            .expect("docker exec");
        assert!(started.success());
        let listening = lease_testkit::wait_for(WAIT, Duration::from_millis(100), || {
            let out = std::process::Command::new("docker")
                .args(["exec", container, "netstat", "-ltn"])
                .output()
                .ok()?;
            String::from_utf8_lossy(&out.stdout)
                .contains(&format!(":{ECHO} "))
                .then_some(())
        });
        assert!(listening.is_some(), "the echo server did not start");
    }

    async fn tunnel(&self) -> Result<Ws, WsError> {
        let path = format!("/api/containers/{}/ports/{ECHO}/tcp", self.lease);
        let mut request = format!("ws://{}{path}", self.address()).into_client_request()?;
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", self.alice).parse().expect("header"),
        );
        tokio_tungstenite::connect_async(request)
            .await
            .map(|(ws, _)| ws)
    }
}

/// What came next on a tunnel (pings skipped).
#[derive(Debug, PartialEq)]
enum Got {
    Data(Vec<u8>),
    Text(Value),
    Closed(Option<(u16, String)>),
}

async fn next(ws: &mut Ws) -> Got {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time");
        return match message {
            Some(Ok(Message::Binary(bytes))) => Got::Data(bytes.to_vec()),
            Some(Ok(Message::Text(text))) => {
                Got::Text(serde_json::from_str(text.as_str()).expect("JSON"))
            }
            Some(Ok(Message::Close(frame))) => {
                Got::Closed(frame.map(|f| (u16::from(f.code), f.reason.as_str().to_owned())))
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => Got::Closed(None),
        };
    }
}

/// Reads data until `want` bytes arrived.
async fn read_exactly(ws: &mut Ws, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < want {
        match next(ws).await {
            Got::Data(bytes) => {
                assert!(bytes.len() <= MAX_DATA_MESSAGE, "{} bytes", bytes.len());
                got.extend_from_slice(&bytes);
            }
            other => panic!("expected data, got {other:?}"),
        }
    }
    got
}

fn eof() -> Message {
    Message::text(r#"{"type":"eof"}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_half_close_refuse_bad_messages_and_end_with_the_lease() {
    let Some(fixture) = Fixture::start(&[
        "--max-streams-per-caller",
        "3",
        "--shell-keepalive",
        "300ms",
        "--idle-timeout",
        "1s",
    ]) else {
        return;
    };

    // Half-close: our eof reaches `cat`, which ends; its eof comes back
    // after the echo, then close 1000.
    let mut ws = fixture.tunnel().await.expect("tunnel");
    ws.send(Message::binary(b"hello\x00\xff".to_vec()))
        .await
        .expect("send");
    ws.send(eof()).await.expect("eof");
    assert_eq!(read_exactly(&mut ws, 7).await, b"hello\x00\xff");
    assert_eq!(
        next(&mut ws).await,
        Got::Text(serde_json::json!({"type": "eof"}))
    );
    assert_eq!(
        next(&mut ws).await,
        Got::Closed(Some((1000, "closed".into())))
    );
    drop(ws);

    // A message as large as the route takes comes back intact (in
    // messages no larger); one byte more is refused with 1009.
    let mut ws = fixture.tunnel().await.expect("tunnel");
    let big: Vec<u8> = (0..MAX_DATA_MESSAGE).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(big.clone())).await.expect("send");
    assert!(
        read_exactly(&mut ws, big.len()).await == big,
        "echoed intact"
    );
    drop(ws);
    let mut ws = fixture.tunnel().await.expect("tunnel");
    let _ = ws
        .send(Message::binary(vec![0u8; MAX_DATA_MESSAGE + 1]))
        .await;
    assert!(matches!(next(&mut ws).await, Got::Closed(Some((1009, _)))));
    drop(ws);
    // Text that is not eof: 1008.
    let mut ws = fixture.tunnel().await.expect("tunnel");
    ws.send(Message::text(r#"{"type":"resize"}"#))
        .await
        .expect("send");
    assert!(matches!(next(&mut ws).await, Got::Closed(Some((1008, _)))));
    drop(ws);

    // Three tunnels at once is the cap (--max-streams-per-caller 3): the
    // fourth is refused before the upgrade.
    // (The closed tunnels above give their permits back as their server
    // tasks end, a moment after the close.)
    // Each of the three waits for a permit, as any of those tasks may
    // still be ending.
    let mut open = Vec::new();
    for _ in 0..3 {
        let tunnel = lease_testkit::wait_for(WAIT, Duration::from_millis(50), || {
            futures::executor::block_on(fixture.tunnel()).ok()
        });
        open.push(tunnel.unwrap_or_else(|| {
            panic!(
                "a tunnel once the closed ones are gone\n{}",
                fixture.server.log_text()
            )
        }));
    }
    match fixture.tunnel().await {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 429),
        other => panic!("expected 429, got {other:?}"),
    }

    // An idle tunnel outlives the server's idle timeout (1 s) thanks to
    // its pings (every 300 ms), and still carries bytes.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let idle = &mut open[0];
    idle.send(Message::binary(b"still here".to_vec()))
        .await
        .expect("send after idling");
    assert_eq!(read_exactly(idle, 10).await, b"still here");

    // Deleting the lease ends its tunnels: `ended` `deleted`, close 1001.
    let deleted = fixture.curl(
        "DELETE",
        &format!("/api/containers/{}", fixture.lease),
        None,
    );
    assert!(deleted["id"].is_string(), "{deleted}");
    // (The container's processes may die first: the port's `eof` can come
    // before `ended`.)
    for ws in &mut open {
        let mut ended = next(ws).await;
        if ended == Got::Text(serde_json::json!({"type": "eof"})) {
            ended = next(ws).await;
        }
        let Got::Text(ended) = ended else {
            panic!(
                "expected `ended`, got {ended:?}\n{}",
                fixture.server.log_text()
            );
        };
        assert_eq!(ended["type"], "ended", "{ended}");
        assert_eq!(ended["reason"], "deleted", "{ended}");
        assert_eq!(next(ws).await, Got::Closed(Some((1001, "deleted".into()))));
    }
}
