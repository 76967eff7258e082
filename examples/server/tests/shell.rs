//! Shell sessions end to end: the real `lease-server` binary, real Docker
//! (the local test image), a WebSocket client speaking the attach framing
//! with the `Authorization` header.
//!
//! Each test has its own namespace (removed by a guard even on failure) and
//! server; short timeouts come from flags.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use lease_testkit::docker::{NamespaceGuard, docker_ready};
use lease_testkit::server::{Server, ServerConfig, mint_token};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const BINARY: &str = env!("CARGO_BIN_EXE_lease-server");
/// Longest wait for any one thing a test expects.
const WAIT: Duration = Duration::from_secs(15);

/// A server with tokens for alice and bob, and a running lease of alice's.
struct Fixture {
    server: Server,
    alice: String,
    bob: String,
    lease: String,
    _tokens: lease_testkit::TempDir,
    _guard: NamespaceGuard,
}

impl Fixture {
    /// `None` (after a printed reason; a failure under CI) without Docker.
    async fn start(extra: &[&str]) -> Option<Fixture> {
        Fixture::start_with(extra, 5).await
    }

    async fn start_with(extra: &[&str], minutes: u32) -> Option<Fixture> {
        if !docker_ready() {
            return None;
        }
        let guard = NamespaceGuard::random();
        let alice = mint_token(BINARY.as_ref(), "alice", false);
        let bob = mint_token(BINARY.as_ref(), "bob", false);
        let dir = lease_testkit::TempDir::new("lease-shell-tokens");
        let tokens = dir.path().join("tokens.toml");
        std::fs::write(&tokens, format!("{}\n{}", alice.toml_entry, bob.toml_entry))
            .expect("tokens file");
        let tokens_arg = tokens.display().to_string();
        let config = ServerConfig::new(guard.namespace())
            .binary(BINARY)
            .store("memory")
            .sweep_interval("1s")
            .ready_path("/healthz")
            .ready_within(Duration::from_secs(30))
            .args(["--tokens", tokens_arg.as_str()])
            .args(extra.iter().copied());
        let server = Server::start(config)?;
        let mut fixture = Fixture {
            server,
            alice: alice.token,
            bob: bob.token,
            lease: String::new(),
            _tokens: dir,
            _guard: guard,
        };
        fixture.lease = fixture.running_lease(minutes).await;
        Some(fixture)
    }

    fn address(&self) -> SocketAddr {
        self.server.address()
    }

    /// A request as alice.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(&self.alice, method, path, body).await
    }

    async fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        request(self.address(), method, path, Some(token), body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.server.log_text()))
    }

    /// Provisions a busybox lease for alice and waits until it runs.
    async fn running_lease(&self, minutes: u32) -> String {
        let body = json!({"imageType": "busybox", "durationMinutes": minutes});
        let (status, lease) = self.call("POST", "/api/provision", Some(body)).await;
        assert_eq!(status, 202, "{lease}");
        let id = lease["id"].as_str().expect("id").to_owned();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, lease) = self
                .call("GET", &format!("/api/containers/{id}/status"), None)
                .await;
            if lease["status"] == "running" {
                return id;
            }
            assert_eq!(lease["status"], "pending", "{lease}");
            assert!(Instant::now() < deadline, "never running: {lease}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts a session on the fixture's lease; returns its JSON.
    async fn session(&self, body: Value) -> Value {
        self.session_on(&self.lease, body).await
    }

    async fn session_on(&self, lease: &str, body: Value) -> Value {
        let path = format!("/api/containers/{lease}/sessions");
        let (status, session) = self.call("POST", &path, Some(body)).await;
        assert_eq!(status, 201, "{session}");
        session
    }

    /// Attaches to `session` (JSON from [`Fixture::session`]) with `offset`.
    async fn attach(&self, session: &Value, offset: u64) -> Socket {
        let path = session["attachPath"].as_str().expect("attachPath");
        Socket::connect(
            self.address(),
            &self.alice,
            &format!("{path}?offset={offset}"),
        )
        .await
    }

    /// Runs `script` in a new non-TTY session and returns its output and
    /// end message.
    async fn run(&self, script: &str) -> (Vec<u8>, Value) {
        let session = self
            .session(json!({"command": ["sh", "-c", script], "tty": false}))
            .await;
        let mut socket = self.attach(&session, 0).await;
        socket.read_to_end().await
    }
}

/// One HTTP/1.1 request with a bearer token; the status and the body as
/// JSON (or a JSON string).
async fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value), Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect(address).await?;
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
    let text = match body {
        Some(body) => {
            builder = builder.header("content-type", "application/json");
            body.to_string()
        }
        None => String::new(),
    };
    let response = sender
        .send_request(builder.body(Full::new(Bytes::from(text)))?)
        .await?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok((status, value))
}

/// What arrives on an attached socket.
#[derive(Debug)]
enum Event {
    /// Output on a channel.
    Output(u8, Vec<u8>),
    /// A JSON message.
    Json(Value),
    /// The close code.
    Closed(Option<u16>),
}

/// A client socket on a session.
struct Socket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The `attached` message.
    attached: Value,
    /// Output bytes received (the offset to re-attach with).
    offset: u64,
}

impl Socket {
    async fn connect(address: SocketAddr, token: &str, path: &str) -> Socket {
        let mut ws = connect(address, token, path).await.expect("attach");
        let first = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("an attached message in time")
            .expect("open")
            .expect("a message");
        let Message::Text(text) = first else {
            panic!("first message {first:?}");
        };
        let attached: Value = serde_json::from_str(text.as_str()).expect("JSON");
        assert_eq!(attached["type"], "attached", "{attached}");
        let offset = attached["offset"].as_u64().expect("offset");
        Socket {
            ws,
            attached,
            offset,
        }
    }

    /// The next event (pings answered on the way); panics after [`WAIT`].
    async fn next(&mut self) -> Event {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a message in time");
            match message {
                None | Some(Err(_)) => return Event::Closed(None),
                Some(Ok(Message::Binary(bytes))) => {
                    let (channel, payload) = bytes.split_first().expect("a channel byte");
                    self.offset += payload.len() as u64;
                    return Event::Output(*channel, payload.to_vec());
                }
                Some(Ok(Message::Text(text))) => {
                    return Event::Json(serde_json::from_str(text.as_str()).expect("JSON"));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Event::Closed(frame.map(|f| u16::from(f.code)));
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Reads until the output (all channels) contains `needle`; returns it.
    async fn output_until(&mut self, needle: &str) -> String {
        let mut output = Vec::new();
        loop {
            match self.next().await {
                Event::Output(_, bytes) => output.extend(bytes),
                other => panic!(
                    "{other:?} before {needle:?}; output so far {:?}",
                    String::from_utf8_lossy(&output)
                ),
            }
            let text = String::from_utf8_lossy(&output);
            if text.contains(needle) {
                return text.into_owned();
            }
        }
    }

    /// Reads output until the end message (`exit` or `ended`) and the close
    /// (1000).
    async fn read_to_end(&mut self) -> (Vec<u8>, Value) {
        let mut output = Vec::new();
        loop {
            match self.next().await {
                Event::Output(_, bytes) => output.extend(bytes),
                Event::Json(message) if message["type"] == "exit" || message["type"] == "ended" => {
                    assert_eq!(self.next().await.closed_code(), Some(1000));
                    return (output, message);
                }
                other => panic!("{other:?} before the end"),
            }
        }
    }

    async fn send_json(&mut self, message: Value) {
        self.ws
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send");
    }

    async fn send_bytes(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::Binary(bytes.to_vec().into()))
            .await
            .expect("send");
    }
}

impl Event {
    /// The close code; panics on anything but the close.
    fn closed_code(self) -> Option<u16> {
        match self {
            Event::Closed(code) => code,
            other => panic!("expected the close, got {other:?}"),
        }
    }
}

async fn connect(
    address: SocketAddr,
    token: &str,
    path: &str,
) -> Result<WebSocketStream<MaybeTlsStream<TcpStream>>, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{address}{path}").into_client_request()?;
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, _)| ws)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_works_end_to_end() {
    let Some(fixture) = Fixture::start(&[]).await else {
        return;
    };
    // A command without a terminal: its output and exit code.
    let (output, end) = fixture.run("echo $((6*7))").await;
    assert_eq!(output, b"42\n");
    assert_eq!(end, json!({"type": "exit", "code": 0}));

    // The default: the image's login shell in a terminal.
    let session = fixture.session(json!({})).await;
    assert_eq!(session["tty"], true);
    assert_eq!(session["sessionId"].as_str().map(str::len), Some(26));
    let mut socket = fixture.attach(&session, 0).await;
    assert_eq!(socket.attached["tty"], true);
    assert_eq!(socket.attached["missed"], 0);
    socket.send_bytes(b"echo $((6*7))\n").await;
    socket.output_until("42\r\n").await;
    socket.send_bytes(b"exit 7\n").await;
    let (_, end) = socket.read_to_end().await;
    assert_eq!(end, json!({"type": "exit", "code": 7}));
}
