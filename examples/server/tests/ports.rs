//! The port proxy end to end: the real `lease-server` binary, real Docker
//! (the local test image; busybox `httpd` with a CGI echo and a slow event
//! stream, and a WebSocket echo server in busybox `sh` under `nc -ll -e`,
//! see `ports_apps/`).
//!
//! Each test has its own namespace (removed by a guard even on failure) and
//! server.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use lease_testkit::docker::{NamespaceGuard, containers_of_lease, docker_ready};
use lease_testkit::server::{Server, ServerConfig, mint_token};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const BINARY: &str = env!("CARGO_BIN_EXE_lease-server");
const WAIT: Duration = Duration::from_secs(15);
const WS_SH: &str = include_str!("ports_apps/ws.sh");
const ECHO_CGI: &str = include_str!("ports_apps/echo.cgi");
const SLOW_CGI: &str = include_str!("ports_apps/slow.cgi");
/// The app ports in the lease.
const HTTP_PORT: u16 = 8080;
const WS_PORT: u16 = 9000;
/// Nothing listens here.
const EMPTY_PORT: u16 = 7070;

/// A reply: status, headers, body.
struct Reply {
    status: u16,
    headers: hyper::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A server with tokens for alice and bob, and a running lease of alice's
/// with the test apps started.
struct Fixture {
    server: Server,
    alice: String,
    bob: String,
    lease: String,
    namespace: String,
    _tokens: lease_testkit::TempDir,
    _guard: NamespaceGuard,
}

impl Fixture {
    async fn start(extra: &[&str]) -> Option<Fixture> {
        if !docker_ready() {
            return None;
        }
        let guard = NamespaceGuard::random();
        let alice = mint_token(BINARY.as_ref(), "alice", false);
        let bob = mint_token(BINARY.as_ref(), "bob", false);
        let dir = lease_testkit::TempDir::new("lease-ports-tokens");
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
            namespace: guard.namespace().to_owned(),
            _tokens: dir,
            _guard: guard,
        };
        fixture.lease = fixture.running_lease().await;
        fixture.start_apps();
        Some(fixture)
    }

    fn address(&self) -> SocketAddr {
        self.server.address()
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        send(self.address(), method, path, headers, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.server.log_text()))
    }

    /// A request as alice (`Authorization: Bearer`).
    async fn get(&self, path: &str) -> Reply {
        let auth = format!("Bearer {}", self.alice);
        self.send("GET", path, &[("authorization", &auth)], Vec::new())
            .await
    }

    async fn api(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        let auth = format!("Bearer {token}");
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.send(
            method,
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await
    }

    async fn running_lease(&self) -> String {
        let body = json!({"imageType": "alpine", "durationMinutes": 5});
        let reply = self
            .api(&self.alice, "POST", "/api/provision", Some(body))
            .await;
        assert_eq!(reply.status, 202, "{}", reply.text());
        let id = reply.json()["id"].as_str().expect("id").to_owned();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let path = format!("/api/containers/{id}/status");
            let lease = self.api(&self.alice, "GET", &path, None).await.json();
            if lease["status"] == "running" {
                return id;
            }
            assert_eq!(lease["status"], "pending", "{lease}");
            assert!(Instant::now() < deadline, "never running: {lease}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts httpd (with the CGI echo) on [`HTTP_PORT`] and the WebSocket
    /// echo on [`WS_PORT`] in the lease's container.
    fn start_apps(&self) {
        let container = containers_of_lease(&self.namespace, &self.lease)
            .into_iter()
            .next()
            .expect("the lease's container");
        let put = |path: &str, text: &str| {
            let mut child = Command::new("docker")
                .args(["exec", "-i", &container, "sh", "-c"])
                .arg(format!(
                    "mkdir -p \"$(dirname {path})\" && cat > {path} && chmod +x {path}"
                ))
                .stdin(Stdio::piped())
                .spawn()
                .expect("docker exec");
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("write");
            assert!(child.wait().expect("docker exec").success(), "put {path}");
        };
        put("/tmp/www/index.html", "<h1>hello from the lease</h1>\n");
        put("/tmp/www/cgi-bin/echo", ECHO_CGI);
        put("/tmp/www/cgi-bin/slow", SLOW_CGI);
        put("/tmp/ws.sh", WS_SH);
        for command in [
            format!("httpd -p {HTTP_PORT} -h /tmp/www"),
            format!("nc -ll -p {WS_PORT} -e /tmp/ws.sh"),
        ] {
            let status = Command::new("docker")
                .args(["exec", "-d", &container, "sh", "-c", &command])
                .status()
                .expect("docker exec");
            assert!(status.success(), "{command}");
        }
        // Both listen within moments.
        std::thread::sleep(Duration::from_millis(300));
    }

    fn port_path(&self, port: u16, rest: &str) -> String {
        format!("/leases/{}/ports/{port}/{rest}", self.lease)
    }
}

async fn send(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect(address).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut builder = hyper::Request::builder().method(method).uri(path);
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        builder = builder.header("host", address.to_string());
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = tokio::time::timeout(
        WAIT,
        sender.send_request(builder.body(Full::new(Bytes::from(body)))?),
    )
    .await??;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = tokio::time::timeout(WAIT, response.into_body().collect())
        .await??
        .to_bytes()
        .to_vec();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// The error code of an API error reply.
fn code(reply: &Reply) -> String {
    reply.json()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn http_through_the_proxy_streams_bodies_and_answers_clear_errors() {
    let Some(f) = Fixture::start(&[]).await else {
        return;
    };
    // GET a page.
    let page = f.get(&f.port_path(HTTP_PORT, "index.html")).await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(page.text(), "<h1>hello from the lease</h1>\n");
    assert_eq!(
        page.header("content-security-policy"),
        Some("sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads")
    );
    // POST a 1 MiB body through and back; the viewer's credentials stay here.
    let body: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let auth = format!("Bearer {}", f.alice);
    let echoed = f
        .send(
            "POST",
            &f.port_path(HTTP_PORT, "cgi-bin/echo?x=1&y=two"),
            &[
                ("authorization", &auth),
                ("cookie", "cl_port=prv_secret; theirs=1"),
            ],
            body.clone(),
        )
        .await;
    assert_eq!(echoed.status, 200, "{}", echoed.text());
    assert_eq!(echoed.header("x-app"), Some("echo"));
    let head = b"POST x=1&y=two cookie=[theirs=1]\n";
    assert_eq!(
        &echoed.body[..head.len()],
        head,
        "{}",
        String::from_utf8_lossy(&echoed.body[..80])
    );
    assert!(
        echoed.body[head.len()..] == body[..],
        "the body came back intact"
    );
    // The app's own error pages pass as they are (not rewritten as ours).
    let missing = f.get(&f.port_path(HTTP_PORT, "nope.html")).await;
    assert_eq!(missing.status, 404);
    assert!(missing.json().is_null(), "{}", missing.text());
    // No trailing slash: redirected to the directory form.
    let bare = f
        .get(&format!("/leases/{}/ports/{HTTP_PORT}", f.lease))
        .await;
    assert_eq!(bare.status, 308);
    // Nothing listening: 502 at once, not a hang.
    let started = Instant::now();
    let empty = f.get(&f.port_path(EMPTY_PORT, "")).await;
    assert_eq!(
        (empty.status, code(&empty).as_str()),
        (502, "upstream_unreachable"),
        "{}",
        empty.text()
    );
    assert!(
        empty.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("7070")
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // Ports out of range.
    for bad in ["0", "65536", "http", "-1"] {
        let reply = f.get(&format!("/leases/{}/ports/{bad}/", f.lease)).await;
        assert_eq!(
            (reply.status, code(&reply).as_str()),
            (400, "invalid_port"),
            "{bad}"
        );
    }
    // Another owner, an unknown lease, no credentials, a token in the URL.
    let bob = format!("Bearer {}", f.bob);
    let other = f
        .send(
            "GET",
            &f.port_path(HTTP_PORT, ""),
            &[("authorization", &bob)],
            Vec::new(),
        )
        .await;
    assert_eq!(other.status, 404, "{}", other.text());
    let unknown = f.get("/leases/container-doesnotexist0000/ports/80/").await;
    assert_eq!(unknown.status, 404);
    let anonymous = f
        .send("GET", &f.port_path(HTTP_PORT, ""), &[], Vec::new())
        .await;
    assert_eq!(anonymous.status, 401);
    let in_url = f
        .send(
            "GET",
            &format!("{}?token={}", f.port_path(HTTP_PORT, ""), f.alice),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(in_url.status, 401);
    // The lease ended: 409.
    let deleted = f
        .api(
            &f.alice,
            "DELETE",
            &format!("/api/containers/{}", f.lease),
            None,
        )
        .await;
    assert_eq!(deleted.status, 202, "{}", deleted.text());
    let deadline = Instant::now() + WAIT;
    loop {
        let gone = f.get(&f.port_path(HTTP_PORT, "")).await;
        if gone.status == 409 {
            assert_eq!(code(&gone), "not_running");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {}: {}",
            gone.status,
            gone.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn websocket(
    address: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (Socket, Option<String>) {
    let mut request = format!("ws://{address}{path}")
        .into_client_request()
        .expect("request");
    for (name, value) in headers {
        request.headers_mut().insert(
            hyper::header::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value.parse().expect("value"),
        );
    }
    let (socket, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("in time")
        .expect("the WebSocket opens");
    let protocol = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (socket, protocol)
}

#[tokio::test]
async fn websockets_pass_through_with_subprotocol_and_close_code_and_end_with_the_lease() {
    let Some(f) = Fixture::start(&[]).await else {
        return;
    };
    let auth = format!("Bearer {}", f.alice);
    let path = f.port_path(WS_PORT, "socket");
    let (mut socket, protocol) = websocket(
        f.address(),
        &path,
        &[
            ("authorization", &auth),
            ("sec-websocket-protocol", "chat, other"),
        ],
    )
    .await;
    assert_eq!(protocol.as_deref(), Some("chat"));
    for text in ["hello", "100% \u{e9}t\u{e9}"] {
        socket.send(Message::text(text)).await.expect("send");
        let echoed = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("in time");
        assert_eq!(echoed.expect("a frame").expect("ok"), Message::text(text));
    }
    socket
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(4001),
            reason: "bye".into(),
        })))
        .await
        .expect("close");
    let closed = tokio::time::timeout(WAIT, socket.next())
        .await
        .expect("in time");
    match closed {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 4001);
            assert_eq!(frame.reason.as_str(), "bye");
        }
        other => panic!("expected the close frame back, got {other:?}"),
    }
    // A socket open when the lease ends is closed.
    let (mut socket, _) = websocket(f.address(), &path, &[("authorization", &auth)]).await;
    socket
        .send(Message::text("still here"))
        .await
        .expect("send");
    let echoed = tokio::time::timeout(WAIT, socket.next())
        .await
        .expect("in time");
    assert_eq!(
        echoed.expect("a frame").expect("ok"),
        Message::text("still here")
    );
    let deleted = f
        .api(
            &f.alice,
            "DELETE",
            &format!("/api/containers/{}", f.lease),
            None,
        )
        .await;
    assert_eq!(deleted.status, 202);
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the socket was closed when the lease ended");
}

/// The idle timeout of [`quiet_exchanges_with_the_app_outlast_the_idle_timeout`].
const IDLE: Duration = Duration::from_secs(2);

/// Reads from `stream` until `done` says the bytes so far are enough, EOF
/// or [`WAIT`]: what was read, and whether the stream ended.
async fn read_until(stream: &mut TcpStream, done: impl Fn(&[u8]) -> bool) -> (Vec<u8>, bool) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done(&seen) {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (seen, true),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "nothing more within {WAIT:?}: {}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
    (seen, false)
}

/// How long a connection that sends nothing more stays open (at most
/// [`WAIT`]).
async fn time_to_close(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let (rest, closed) = read_until(stream, |_| false).await;
    assert!(
        closed && rest.is_empty(),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    started.elapsed()
}

#[tokio::test]
async fn quiet_exchanges_with_the_app_outlast_the_idle_timeout() {
    let idle = format!("{}s", IDLE.as_secs());
    let Some(f) = Fixture::start(&["--idle-timeout", &idle]).await else {
        return;
    };
    let auth = format!("Bearer {}", f.alice);
    // A proxied WebSocket quiet for 3 idle timeouts still echoes.
    let path = f.port_path(WS_PORT, "socket");
    let (mut socket, _) = websocket(f.address(), &path, &[("authorization", &auth)]).await;
    let mut echo = async |text: &str| {
        socket.send(Message::text(text)).await.expect("send");
        let echoed = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("in time");
        assert_eq!(echoed.expect("a frame").expect("ok"), Message::text(text));
    };
    echo("before").await;
    // Meanwhile an event stream whose app is quiet for 3 idle timeouts
    // between two events gets both, and a connection that says nothing is
    // closed after one idle timeout (the watchdog still works).
    let pause = (IDLE * 3).as_secs();
    let stream_path = f.port_path(HTTP_PORT, &format!("cgi-bin/slow?{pause}"));
    let mut events = TcpStream::connect(f.address()).await.expect("connect");
    let head = format!(
        "GET {stream_path} HTTP/1.1\r\nhost: {}\r\nauthorization: {auth}\r\n\r\n",
        f.address()
    );
    events.write_all(head.as_bytes()).await.expect("send");
    let contains =
        |needle: &'static str| move |seen: &[u8]| String::from_utf8_lossy(seen).contains(needle);
    let (first, _) = read_until(&mut events, contains("data: first")).await;
    assert!(String::from_utf8_lossy(&first).starts_with("HTTP/1.1 200"));
    let mut silent = TcpStream::connect(f.address()).await.expect("connect");
    let silent_for = time_to_close(&mut silent).await;
    assert!(
        silent_for >= IDLE / 2 && silent_for < IDLE * 2,
        "a silent connection closed after {silent_for:?}"
    );
    let started = Instant::now();
    // The chunked body ends with its last, empty chunk.
    let (second, closed) = read_until(&mut events, contains("\r\n0\r\n\r\n")).await;
    let text = String::from_utf8_lossy(&second);
    assert!(!closed && text.contains("data: second"), "{text}");
    assert!(started.elapsed() >= IDLE, "the app paused");
    // Once the stream is over the connection is idle again: closed.
    let idle_for = time_to_close(&mut events).await;
    assert!(
        idle_for < IDLE * 2,
        "closed {idle_for:?} after the stream ended"
    );
    echo("after").await;
}

#[tokio::test]
async fn preview_links_and_tickets_open_one_port_only() {
    let Some(f) = Fixture::start(&["--preview-domain", "leases.test"]).await else {
        return;
    };
    let links = format!("/api/containers/{}/ports/{HTTP_PORT}/links", f.lease);
    // Bob cannot mint a link to alice's lease.
    let refused = f.api(&f.bob, "POST", &links, Some(json!({}))).await;
    assert_eq!(refused.status, 404);
    // A private link: its secret as a bearer opens that port only.
    let minted = f
        .api(
            &f.alice,
            "POST",
            &links,
            Some(json!({"expiresInSeconds": 600})),
        )
        .await;
    assert_eq!(minted.status, 201, "{}", minted.text());
    let link = minted.json();
    let secret = link["secret"].as_str().expect("secret").to_owned();
    assert_eq!(link["public"], false);
    assert!(
        link["url"]
            .as_str()
            .unwrap_or_default()
            .ends_with(&format!("?link={secret}")),
        "{link}"
    );
    assert!(
        link["hostUrl"]
            .as_str()
            .unwrap_or_default()
            .contains(".leases.test/"),
        "{link}"
    );
    let bearer = format!("Bearer {secret}");
    let opened = f
        .send(
            "GET",
            &f.port_path(HTTP_PORT, "index.html"),
            &[("authorization", &bearer)],
            Vec::new(),
        )
        .await;
    assert_eq!(opened.status, 200, "{}", opened.text());
    let other_port = f
        .send(
            "GET",
            &f.port_path(WS_PORT, ""),
            &[("authorization", &bearer)],
            Vec::new(),
        )
        .await;
    assert_eq!(
        other_port.status,
        401,
        "another port: {}",
        other_port.text()
    );
    let api = f
        .send(
            "GET",
            "/api/containers",
            &[("authorization", &bearer)],
            Vec::new(),
        )
        .await;
    assert_eq!(api.status, 401, "the API: {}", api.text());
    // In a browser: the link URL is exchanged for a grant in the path
    // (`/p/…`: a sandboxed page sends no cookies with its own requests).
    let exchange = f
        .send(
            "GET",
            &f.port_path(HTTP_PORT, &format!("index.html?a=1&link={secret}")),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(exchange.status, 303, "{}", exchange.text());
    assert!(exchange.header("set-cookie").is_none());
    let location = exchange.header("location").expect("location").to_owned();
    assert!(
        location.starts_with("/p/prv_") && location.ends_with("/index.html?a=1"),
        "{location}"
    );
    assert!(
        !location.contains(&secret),
        "a new grant, not the link's secret"
    );
    let derived = f.send("GET", &location, &[], Vec::new()).await;
    assert_eq!(derived.status, 200, "{}", derived.text());
    assert_eq!(derived.header("referrer-policy"), Some("no-referrer"));
    // A CORS preflight (no credentials) reaches the app while a link is live.
    let preflight = f
        .send(
            "OPTIONS",
            &f.port_path(HTTP_PORT, "index.html"),
            &[
                ("origin", "http://elsewhere.test"),
                ("access-control-request-method", "POST"),
            ],
            Vec::new(),
        )
        .await;
    assert_ne!(preflight.status, 401, "{}", preflight.text());
    // Listed, then revoked: refused from then on.
    let listed = f.api(&f.alice, "GET", &links, None).await.json();
    assert_eq!(listed["links"][0]["linkId"], link["linkId"], "{listed}");
    assert!(listed["links"][0].get("secret").is_none());
    let revoke = format!(
        "/api/containers/{}/links/{}",
        f.lease,
        link["linkId"].as_str().unwrap_or_default()
    );
    assert_eq!(f.api(&f.bob, "DELETE", &revoke, None).await.status, 404);
    assert_eq!(f.api(&f.alice, "DELETE", &revoke, None).await.status, 204);
    let after = f
        .send(
            "GET",
            &f.port_path(HTTP_PORT, "index.html"),
            &[("authorization", &bearer)],
            Vec::new(),
        )
        .await;
    assert_eq!(after.status, 401);
    let after_derived = f.send("GET", &location, &[], Vec::new()).await;
    assert_eq!(after_derived.status, 404, "revoked with its link");
    // A public link: the URL alone, until it expires.
    let public = f
        .api(
            &f.alice,
            "POST",
            &links,
            Some(json!({"public": true, "expiresInSeconds": 2})),
        )
        .await
        .json();
    let url = public["url"].as_str().expect("url").to_owned();
    let path = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
        .expect("path");
    assert!(path.starts_with("/p/prv_"), "{path}");
    let anonymous = f
        .send("GET", &format!("{path}cgi-bin/echo?q=1"), &[], Vec::new())
        .await;
    assert_eq!(anonymous.status, 200, "{}", anonymous.text());
    assert!(
        anonymous.text().starts_with("GET q=1"),
        "{}",
        anonymous.text()
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let expired = f.send("GET", &path, &[], Vec::new()).await;
    assert_eq!(expired.status, 404, "expired: {}", expired.text());
    // The page's way in: a port ticket, exchanged once for a viewer grant.
    let ticket = port_ticket(&f).await;
    let with_ticket = f.port_path(HTTP_PORT, &format!("?ticket={ticket}"));
    let exchanged = f.send("GET", &with_ticket, &[], Vec::new()).await;
    assert_eq!(exchanged.status, 303, "{}", exchanged.text());
    let viewer = exchanged.header("location").expect("location").to_owned();
    assert!(
        viewer.starts_with("/p/prv_") && viewer.ends_with('/'),
        "{viewer}"
    );
    let page = f
        .send("GET", &format!("{viewer}index.html"), &[], Vec::new())
        .await;
    assert_eq!(page.status, 200);
    let grant = viewer.trim_start_matches("/p/").trim_end_matches('/');
    let elsewhere = f
        .send(
            "GET",
            &f.port_path(WS_PORT, ""),
            &[("authorization", &format!("Bearer {grant}"))],
            Vec::new(),
        )
        .await;
    assert_eq!(elsewhere.status, 401, "the grant opens its own port only");
    assert_eq!(
        f.send("GET", &with_ticket, &[], Vec::new()).await.status,
        401,
        "a ticket is spent once"
    );
    // The host form: the port at `/` of its own origin, no sandbox.
    let short = f.lease.trim_start_matches("container-");
    let host = format!("{HTTP_PORT}-{short}.leases.test");
    let auth = format!("Bearer {}", f.alice);
    let hosted = f
        .send(
            "GET",
            "/index.html",
            &[("host", &host), ("authorization", &auth)],
            Vec::new(),
        )
        .await;
    assert_eq!(hosted.status, 200, "{}", hosted.text());
    assert_eq!(hosted.text(), "<h1>hello from the lease</h1>\n");
    assert!(hosted.header("content-security-policy").is_none());
    // There a ticket becomes a host-only cookie.
    let ticket = port_ticket(&f).await;
    let exchanged = f
        .send(
            "GET",
            &format!("/index.html?ticket={ticket}"),
            &[("host", &host)],
            Vec::new(),
        )
        .await;
    assert_eq!(exchanged.status, 303, "{}", exchanged.text());
    assert_eq!(exchanged.header("location"), Some("/index.html"));
    let cookie = exchanged.header("set-cookie").expect("cookie").to_owned();
    assert!(
        cookie.contains("Path=/;")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Domain"), "host-only: {cookie}");
    let pair = cookie.split(';').next().expect("pair").to_owned();
    let with_cookie = f
        .send(
            "GET",
            "/index.html",
            &[("host", &host), ("cookie", &pair)],
            Vec::new(),
        )
        .await;
    assert_eq!(with_cookie.status, 200);
    let bob = format!("Bearer {}", f.bob);
    let hosted_bob = f
        .send(
            "GET",
            "/index.html",
            &[("host", &host), ("authorization", &bob)],
            Vec::new(),
        )
        .await;
    assert_eq!(hosted_bob.status, 404);
}

/// A `port` ticket of alice's for [`HTTP_PORT`] of the fixture's lease.
async fn port_ticket(f: &Fixture) -> String {
    let body = json!({"route": "port", "leaseId": f.lease, "port": HTTP_PORT});
    let reply = f.api(&f.alice, "POST", "/api/tickets", Some(body)).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    reply.json()["ticket"].as_str().expect("ticket").to_owned()
}
