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
        self.read_to_end_but(&[]).await
    }

    /// [`Socket::read_to_end`], skipping `error` messages of these codes.
    async fn read_to_end_but(&mut self, errors: &[&str]) -> (Vec<u8>, Value) {
        let mut output = Vec::new();
        loop {
            match self.next().await {
                Event::Output(_, bytes) => output.extend(bytes),
                Event::Json(message)
                    if message["type"] == "error"
                        && errors.iter().any(|code| message["code"] == *code) => {}
                Event::Json(message) if message["type"] == "exit" || message["type"] == "ended" => {
                    assert_eq!(self.next().await.closed_code(), Some(1000));
                    return (output, message);
                }
                other => panic!("{other:?} before the end"),
            }
        }
    }

    /// The next JSON message, skipping output.
    async fn next_json(&mut self) -> Value {
        loop {
            match self.next().await {
                Event::Output(..) => {}
                Event::Json(message) => return message,
                Event::Closed(code) => panic!("closed {code:?} before a message"),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_carried_unchanged_with_its_channel_and_exit_code() {
    let Some(fixture) = Fixture::start(&[]).await else {
        return;
    };
    // Every byte value, without a terminal (a terminal would turn \n into \r\n).
    let script = r#"i=0; while [ $i -lt 256 ]; do printf "\\$(printf %o $i)"; i=$((i+1)); done"#;
    let (output, end) = fixture.run(script).await;
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(output, all);
    assert_eq!(end["code"], 0);

    // stderr on channel 2, stdout on 1; the exit code at the end.
    let session = fixture
        .session(json!({"command": ["sh", "-c", "echo out; echo err >&2; exit 3"], "tty": false}))
        .await;
    let mut socket = fixture.attach(&session, 0).await;
    let mut channels = Vec::new();
    let end = loop {
        match socket.next().await {
            Event::Output(channel, bytes) => channels.push((channel, bytes)),
            Event::Json(message) => break message,
            Event::Closed(code) => panic!("closed {code:?} before the end"),
        }
    };
    assert!(channels.contains(&(1, b"out\n".to_vec())), "{channels:?}");
    assert!(channels.contains(&(2, b"err\n".to_vec())), "{channels:?}");
    assert_eq!(end, json!({"type": "exit", "code": 3}));

    // A session that exited is listed with its code until its end is
    // delivered, then dropped: the server drops it just after sending the
    // end, so the list empties within moments (not necessarily before the
    // client has read the end).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let sessions = fixture
            .call(
                "GET",
                &format!("/api/containers/{}/sessions", fixture.lease),
                None,
            )
            .await
            .1;
        let listed = sessions["sessions"].as_array().map(Vec::len);
        if listed == Some(0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the exited session is still listed after 10 s: {sessions}"
        );
        assert_eq!(sessions["sessions"][0]["exitCode"], 3, "{sessions}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_resizes_and_ctrl_c_interrupts() {
    let Some(fixture) = Fixture::start(&[]).await else {
        return;
    };
    let session = fixture
        .session(json!({"command": ["sh"], "cols": 90, "rows": 20}))
        .await;
    let mut socket = fixture.attach(&session, 0).await;
    socket.send_bytes(b"stty size\n").await;
    socket.output_until("20 90").await;
    socket
        .send_json(json!({"type": "resize", "cols": 132, "rows": 43}))
        .await;
    // The resize is applied before the next input is read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    socket.send_bytes(b"stty size\n").await;
    socket.output_until("43 132").await;

    // Ctrl-C is the byte 0x03 on stdin.
    let started = Instant::now();
    socket.send_bytes(b"sleep 100; echo slept\n").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    socket.send_bytes(&[0x03]).await;
    socket.send_bytes(b"echo after$((1+1))\n").await;
    let text = socket.output_until("after2").await;
    // The command line is echoed; its output line is not there.
    assert!(text.contains("^C"), "{text:?}");
    assert!(!text.contains("\nslept\r\n"), "{text:?}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // A bad resize or message is answered; the session goes on.
    socket
        .send_json(json!({"type": "resize", "cols": 0, "rows": 43}))
        .await;
    let error = socket.next_json().await;
    assert_eq!(error["code"], "invalid_message", "{error}");
    socket.send_json(json!({"type": "ping"})).await;
    assert_eq!(socket.next_json().await, json!({"type": "pong"}));
    socket.send_bytes(b"exit\n").await;
    let (_, end) = socket.read_to_end().await;
    assert_eq!(end["type"], "exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_and_eof_without_a_terminal() {
    let Some(fixture) = Fixture::start(&[]).await else {
        return;
    };
    // `signal INT` stops the whole tree (sh and its sleep).
    let session = fixture
        .session(json!({"command": ["sh", "-c", "sleep 100; echo slept"], "tty": false}))
        .await;
    let mut socket = fixture.attach(&session, 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    socket
        .send_json(json!({"type": "signal", "name": "INT"}))
        .await;
    let (output, end) = socket.read_to_end().await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(output.is_empty(), "{:?}", String::from_utf8_lossy(&output));
    assert_eq!(end["type"], "exit", "{end}");
    assert_ne!(end["code"], 0, "{end}");

    // `eof` closes stdin: cat ends after echoing what it got.
    let session = fixture
        .session(json!({"command": ["cat"], "tty": false}))
        .await;
    let mut socket = fixture.attach(&session, 0).await;
    socket.send_bytes(b"to cat\n").await;
    socket.output_until("to cat\n").await;
    socket.send_json(json!({"type": "eof"})).await;
    let (_, end) = socket.read_to_end().await;
    assert_eq!(end, json!({"type": "exit", "code": 0}));

    // A process that never reads its input still sends output and obeys
    // signals, however much input it is sent.
    let session = fixture
        .session(json!({"command": ["sh", "-c", "exec 0</dev/null; while true; do echo tick; sleep 0.2; done"], "tty": false}))
        .await;
    let mut socket = fixture.attach(&session, 0).await;
    let block = vec![b'x'; 60 * 1024];
    for _ in 0..64 {
        socket.send_bytes(&block).await;
    }
    socket
        .send_json(json!({"type": "signal", "name": "TERM"}))
        .await;
    let (output, end) = socket
        .read_to_end_but(&["input_overflow", "input_closed"])
        .await;
    assert!(String::from_utf8_lossy(&output).contains("tick"));
    assert_eq!(end["type"], "exit", "{end}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_socket_reattaches_with_the_output_in_between() {
    let Some(fixture) = Fixture::start(&[]).await else {
        return;
    };
    let script =
        "echo first; read go; i=0; while [ $i -lt 5 ]; do echo line$i; i=$((i+1)); done; read done";
    let session = fixture
        .session(json!({"command": ["sh", "-c", script], "tty": false}))
        .await;
    let mut socket = fixture.attach(&session, 0).await;
    socket.output_until("first\n").await;
    let offset = socket.offset;
    assert_eq!(offset, 6);
    // Input, then the socket is dropped while the output it causes is made.
    socket.send_bytes(b"go\n").await;
    drop(socket);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut again = fixture.attach(&session, offset).await;
    assert_eq!(again.attached["offset"], 6, "{}", again.attached);
    assert_eq!(again.attached["missed"], 0);
    let text = again.output_until("line4\n").await;
    assert_eq!(text, "line0\nline1\nline2\nline3\nline4\n");

    // A second socket takes the session over: the first is told and closed 4001.
    let mut third = fixture.attach(&session, again.offset).await;
    let Event::Json(detached) = again.next().await else {
        panic!("a detached message");
    };
    assert_eq!(
        detached,
        json!({"type": "detached", "reason": "attached elsewhere"})
    );
    assert_eq!(again.next().await.closed_code(), Some(4001));
    third.send_bytes(b"done\n").await;
    let (output, end) = third.read_to_end().await;
    assert!(output.is_empty());
    assert_eq!(end, json!({"type": "exit", "code": 0}));

    // Attaching from offset 0 replays everything (it is under 64 KiB)… but
    // the session is gone once its end was delivered.
    let path = session["attachPath"].as_str().expect("path");
    let refused = connect(fixture.address(), &fixture.alice, path).await;
    assert!(refused.is_err(), "the delivered session is gone");
}

/// Counts the processes in the lease running `needle` (from another session).
async fn processes(fixture: &Fixture, needle: &str) -> usize {
    let script = format!("ps -o args | grep -c '^{needle}' || true");
    let (output, _) = fixture.run(&script).await;
    String::from_utf8_lossy(&output)
        .trim()
        .parse()
        .expect("a count")
}

/// Waits until no process runs `needle`.
async fn until_gone(fixture: &Fixture, needle: &str) {
    let deadline = Instant::now() + WAIT;
    while processes(fixture, needle).await > 0 {
        assert!(Instant::now() < deadline, "{needle} still runs");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detach_timeout_and_delete_kill_the_process_tree() {
    let Some(fixture) = Fixture::start(&["--shell-detach-timeout", "2s"]).await else {
        return;
    };
    // Nobody attaches: after 2 s the session and its processes are gone.
    let lonely = fixture
        .session(json!({"command": ["sh", "-c", "sleep 4321; echo never"], "tty": false}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(processes(&fixture, "sleep 4321").await, 1);
    until_gone(&fixture, "sleep 4321").await;
    let sessions_path = format!("/api/containers/{}/sessions", fixture.lease);
    let (_, list) = fixture.call("GET", &sessions_path, None).await;
    let ids: Vec<_> = list["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s["sessionId"].clone())
        .collect();
    assert!(!ids.contains(&lonely["sessionId"]), "{list}");

    // DELETE: the attached client is told, the process tree is killed.
    let session = fixture
        .session(json!({"command": ["sh", "-c", "sleep 4322 & sleep 4323; wait"], "tty": false}))
        .await;
    let mut socket = fixture.attach(&session, 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(processes(&fixture, "sleep 432[23]").await, 2);
    let sid = session["sessionId"].as_str().expect("sid");
    let (status, _) = fixture
        .call("DELETE", &format!("{sessions_path}/{sid}"), None)
        .await;
    assert_eq!(status, 204);
    let (_, end) = socket.read_to_end().await;
    assert_eq!(end["type"], "ended", "{end}");
    assert_eq!(end["reason"], "closed", "{end}");
    assert_eq!(processes(&fixture, "sleep 432[23]").await, 0);
    let (status, _) = fixture
        .call("DELETE", &format!("{sessions_path}/{sid}"), None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_ending_ends_its_sessions() {
    let Some(fixture) = Fixture::start_with(&[], 1).await else {
        return;
    };
    // Deleted: the attached client gets `ended` `deleted`.
    let other = fixture.running_lease(5).await;
    let session = fixture
        .session_on(&other, json!({"command": ["sh"], "tty": true}))
        .await;
    let mut socket = fixture.attach(&session, 0).await;
    let (status, _) = fixture
        .call("DELETE", &format!("/api/containers/{other}"), None)
        .await;
    assert_eq!(status, 202);
    let (_, end) = socket.read_to_end().await;
    assert_eq!(end["type"], "ended", "{end}");
    assert_eq!(end["reason"], "deleted", "{end}");

    // Expired: the fixture's one-minute lease runs out while a client is attached.
    let session = fixture
        .session(json!({"command": ["sh"], "tty": true}))
        .await;
    let mut socket = fixture.attach(&session, 0).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let end = loop {
        assert!(Instant::now() < deadline, "the lease never expired");
        let next = tokio::time::timeout(Duration::from_secs(5), socket.ws.next()).await;
        match next {
            Err(_) => continue,
            Ok(Some(Ok(Message::Text(text)))) => {
                break serde_json::from_str::<Value>(text.as_str()).expect("JSON");
            }
            Ok(Some(Ok(_))) => continue,
            Ok(other) => panic!("socket ended without a message: {other:?}"),
        }
    };
    assert_eq!(end["type"], "ended", "{end}");
    assert_eq!(end["reason"], "expired", "{end}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_pings_keep_a_silent_session_alive() {
    let Some(fixture) =
        Fixture::start(&["--idle-timeout", "2s", "--shell-keepalive", "500ms"]).await
    else {
        return;
    };
    let session = fixture.session(json!({"command": ["sh"]})).await;
    let mut socket = fixture.attach(&session, 0).await;
    // Six seconds of silence from both sides (the client only answers pings).
    let quiet_until = Instant::now() + Duration::from_secs(6);
    let mut pings = 0;
    while Instant::now() < quiet_until {
        let left = quiet_until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.ws.next()).await {
            Err(_) => break,
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(Some(Ok(Message::Binary(_)))) => {}
            Ok(other) => panic!("the socket did not stay quiet: {other:?}"),
        }
    }
    assert!(pings >= 8, "{pings} pings in 6 s");
    socket.send_bytes(b"echo still$((1+1))\n").await;
    socket.output_until("still2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_close_and_streams_are_counted() {
    let Some(fixture) = Fixture::start(&["--max-streams-per-caller", "2"]).await else {
        return;
    };
    let session = fixture
        .session(json!({"command": ["cat"], "tty": false}))
        .await;
    let mut socket = fixture.attach(&session, 0).await;
    socket.send_bytes(&vec![b'y'; 64 * 1024 + 1]).await;
    let mut code = None;
    for _ in 0..4 {
        if let Event::Closed(closed) = socket.next().await {
            code = closed;
            break;
        }
    }
    assert_eq!(code, Some(1009));

    // The session survives its socket: re-attach, and it counts as a stream.
    let _first = fixture.attach(&session, 0).await;
    let other = fixture
        .session(json!({"command": ["cat"], "tty": false}))
        .await;
    let _second = fixture.attach(&other, 0).await;
    let path = other["attachPath"].as_str().expect("path");
    let refused = connect(fixture.address(), &fixture.alice, path).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429);
        }
        other => panic!("a third stream: {other:?}"),
    }
    // Another owner's socket is not counted against alice, and cannot see her lease.
    let refused = connect(fixture.address(), &fixture.bob, path).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 404);
        }
        other => panic!("bob attaching to alice's session: {other:?}"),
    }
}

#[test]
fn shell_flags_refuse_zero() {
    for args in [
        ["--max-sessions-per-lease", "0"],
        ["--max-sessions-per-owner", "0"],
        ["--shell-detach-timeout", "0s"],
        ["--shell-keepalive", "0s"],
        ["--shell-keepalive", "soon"],
    ] {
        let output = std::process::Command::new(BINARY)
            .args(args)
            .args(["--namespace", "test-flags", "--listen", "127.0.0.1:0"])
            .output()
            .expect("runs");
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(args[0]), "{args:?}: {stderr}");
    }
    // The environment variables are read too.
    let output = std::process::Command::new(BINARY)
        .env("LEASE_SHELL_DETACH_TIMEOUT", "0s")
        .args(["--namespace", "test-flags", "--listen", "127.0.0.1:0"])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("shell-detach-timeout"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_shutdown_ends_sessions_and_kills_their_processes() {
    let Some(mut fixture) = Fixture::start(&[]).await else {
        return;
    };
    let (_, lease) = fixture
        .call(
            "GET",
            &format!("/api/containers/{}/status", fixture.lease),
            None,
        )
        .await;
    let container = lease["dockerId"].as_str().expect("dockerId").to_owned();
    let attached = fixture
        .session(json!({"command": ["sh", "-c", "sleep 4331"], "tty": false}))
        .await;
    let _detached = fixture
        .session(json!({"command": ["sh", "-c", "sleep 4332"], "tty": true}))
        .await;
    let mut socket = fixture.attach(&attached, 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(processes(&fixture, "sleep 433[12]").await, 2);

    let exit = fixture.server.terminate(Duration::from_secs(30));
    assert!(
        exit.success(),
        "exit {exit}:\n{}",
        fixture.server.log_text()
    );
    let (_, end) = socket.read_to_end().await;
    assert_eq!(end["type"], "ended", "{end}");
    assert_eq!(end["reason"], "shutdown", "{end}");
    // The container outlives the server (its lease goes on); the sessions' processes do not.
    let ps = std::process::Command::new("docker")
        .args(["exec", &container, "ps", "-o", "args"])
        .output()
        .expect("docker exec");
    let listing = String::from_utf8_lossy(&ps.stdout);
    assert!(ps.status.success(), "{listing}");
    assert!(!listing.contains("sleep 433"), "{listing}");
}
