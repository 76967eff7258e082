//! The server stays up under hostile clients: `lease_http::serve`'s
//! connection limits and the router's per-caller limits, tried over real
//! loopback TCP connections.
// Test code: a panic is how a check reports failure, helpers included.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use lease_core::testing::fake_runtime::FakeRuntime;
use lease_core::{LeaseManager, ManagerConfig, ProvisionRequest};
use lease_http::auth::{TokenFile, mint_token};
use lease_http::{ApiConfig, Auth, Limits, RateLimit, ServeConfig, router, serve};
use lease_store_memory::MemoryStore;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

/// A served API: its address, engine, fake runtime and callers' tokens.
struct Served {
    address: SocketAddr,
    manager: LeaseManager,
    runtime: Arc<FakeRuntime>,
    alice: String,
    bob: String,
    stop: CancellationToken,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Serves the API with `limits` and `connections`, with tokens for alice
/// and bob when `tokens`, else single-user.
async fn start(tokens: bool, limits: Limits, connections: ServeConfig) -> Served {
    let runtime = Arc::new(FakeRuntime::new(
        "test-limits",
        Arc::new(lease_core::SystemClock),
    ));
    let manager = LeaseManager::builder(Arc::new(MemoryStore::new()), runtime.clone())
        .config(ManagerConfig::with_namespace("test-limits"))
        .build()
        .unwrap();
    let stop = CancellationToken::new();
    let _background = manager.start(stop.clone());
    let alice = mint_token("alice", false).unwrap();
    let bob = mint_token("bob", false).unwrap();
    let auth = if tokens {
        let file = TokenFile::from_toml(&format!("{}{}", alice.toml_entry, bob.toml_entry));
        Auth::tokens(file.unwrap())
    } else {
        Auth::single_user()
    };
    let app = router(
        manager.clone(),
        ApiConfig::default()
            .auth(auth)
            .limits(limits)
            .shutdown(stop.clone())
            .sse_keep_alive(Duration::from_secs(3600)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let signal = stop.clone();
    tokio::spawn(serve(listener, app, connections, async move {
        signal.cancelled().await;
    }));
    Served {
        address,
        manager,
        runtime,
        alice: alice.token,
        bob: bob.token,
        stop,
    }
}

/// A connection from `from` (another loopback address than 127.0.0.1
/// stands for another client).
async fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(to).await.unwrap()
}

async fn connect(to: SocketAddr) -> TcpStream {
    TcpStream::connect(to).await.unwrap()
}

/// An answer read off a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn error_code(&self) -> String {
        let json = self.json();
        assert!(json["error"]["message"].is_string(), "error shape: {json}");
        json["error"]["code"].as_str().unwrap().to_owned()
    }
}

/// Writes one request on `stream` (kept alive) and reads its answer
/// (`Content-Length` bodies only); `None` if the server closed instead.
async fn exchange(
    stream: &mut TcpStream,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Option<Answer> {
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\n");
    if let Some(token) = token {
        request.push_str(&format!("authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() {
        request.push_str("content-type: application/json\r\n");
    }
    request.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.ok()?;
    read_answer(stream, true).await
}

/// Reads a response head (and, if `with_body`, its `Content-Length` body).
async fn read_answer(stream: &mut TcpStream, with_body: bool) -> Option<Answer> {
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 4096];
    let end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("an answer within 5 s")
            .ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buffer[end + 4..].to_vec();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    if let (true, Some(length)) = (with_body, length) {
        while body.len() < length {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Some(Answer {
        status,
        headers,
        body,
    })
}

/// How long until the server closes `stream` (reading and dropping what
/// it sends); panics after `within`.
async fn closed_after(stream: &mut TcpStream, within: Duration) -> Duration {
    let started = Instant::now();
    let mut chunk = [0_u8; 4096];
    loop {
        let read = tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + within),
            stream.read(&mut chunk),
        )
        .await
        .unwrap_or_else(|_| panic!("the server kept the connection open for {within:?}"));
        match read {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
    }
}

const PROVISION: &str = r#"{"imageType":"alpine","durationMinutes":5}"#;

#[tokio::test]
async fn a_half_sent_header_is_cut_after_the_header_read_timeout() {
    let connections = ServeConfig::default().header_read_timeout(Duration::from_millis(500));
    let served = start(false, Limits::default(), connections).await;
    let mut slow = connect(served.address).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: local")
        .await
        .unwrap();
    let cut = closed_after(&mut slow, Duration::from_secs(5)).await;
    assert!(cut >= Duration::from_millis(400), "cut too early: {cut:?}");
    // The server still serves others.
    let mut other = connect(served.address).await;
    let answer = exchange(&mut other, "GET", "/healthz", None, None).await;
    assert_eq!(answer.map(|a| a.status), Some(200));
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let connections = ServeConfig::default()
        .header_read_timeout(Duration::from_secs(30))
        .idle_timeout(Duration::from_millis(400));
    let served = start(false, Limits::default(), connections).await;
    let mut client = connect(served.address).await;
    let answer = exchange(&mut client, "GET", "/healthz", None, None).await;
    assert_eq!(answer.map(|a| a.status), Some(200));
    // Kept alive, then closed for idleness (not by the 30 s header timeout).
    let closed = closed_after(&mut client, Duration::from_secs(5)).await;
    assert!(
        closed >= Duration::from_millis(300),
        "closed too early: {closed:?}"
    );
    // A connection that keeps talking stays open past the idle timeout.
    let mut busy = connect(served.address).await;
    for _ in 0..8 {
        let answer = exchange(&mut busy, "GET", "/healthz", None, None).await;
        assert_eq!(answer.map(|a| a.status), Some(200));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test]
async fn the_per_ip_cap_refuses_one_more_connection_while_others_are_served() {
    let connections = ServeConfig::default()
        .max_connections_per_ip(Some(3))
        .max_connections(Some(10));
    let served = start(false, Limits::default(), connections).await;
    let local: IpAddr = [127, 0, 0, 1].into();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect_from(local, served.address).await;
        let answer = exchange(&mut stream, "GET", "/healthz", None, None).await;
        assert_eq!(answer.map(|a| a.status), Some(200));
        held.push(stream);
    }
    // The fourth from the same address is closed at accept, unanswered.
    let mut fourth = connect_from(local, served.address).await;
    let answer = exchange(&mut fourth, "GET", "/healthz", None, None).await;
    assert!(
        answer.is_none(),
        "the 4th connection was served: {answer:?}"
    );
    // Another client address is served, and so are the three held ones.
    let mut other = connect_from([127, 0, 0, 2].into(), served.address).await;
    let answer = exchange(&mut other, "GET", "/healthz", None, None).await;
    assert_eq!(answer.map(|a| a.status), Some(200));
    for stream in &mut held {
        let answer = exchange(stream, "GET", "/healthz", None, None).await;
        assert_eq!(answer.map(|a| a.status), Some(200));
    }
    // Closing one frees its slot.
    drop(held.pop());
    let mut again = None;
    for _ in 0..50 {
        let mut stream = connect_from(local, served.address).await;
        if let Some(answer) = exchange(&mut stream, "GET", "/healthz", None, None).await {
            again = Some(answer.status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(again, Some(200), "a freed slot is usable again");
}

#[tokio::test]
async fn the_overall_cap_refuses_connections_from_any_address() {
    let connections = ServeConfig::default()
        .max_connections(Some(2))
        .max_connections_per_ip(None);
    let served = start(false, Limits::default(), connections).await;
    let mut held = Vec::new();
    for last in [1, 2] {
        let mut stream = connect_from([127, 0, 0, last].into(), served.address).await;
        let answer = exchange(&mut stream, "GET", "/healthz", None, None).await;
        assert_eq!(answer.map(|a| a.status), Some(200));
        held.push(stream);
    }
    let mut third = connect_from([127, 0, 0, 3].into(), served.address).await;
    assert!(
        exchange(&mut third, "GET", "/healthz", None, None)
            .await
            .is_none()
    );
}

/// Opens `GET /api/events` as `token` and returns the connection after
/// its answer's head.
async fn open_events(address: SocketAddr, token: &str) -> (TcpStream, Answer) {
    let mut stream = connect(address).await;
    let request = format!(
        "GET /api/events HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = read_answer(&mut stream, false).await.expect("an answer");
    (stream, answer)
}

#[tokio::test]
async fn streams_over_the_cap_per_token_get_429_before_any_upgrade() {
    let limits = Limits::default().max_streams_per_caller(Some(2));
    let served = start(true, limits, ServeConfig::default()).await;
    let (first, answer) = open_events(served.address, &served.alice).await;
    assert_eq!(answer.status, 200);
    let (_second, answer) = open_events(served.address, &served.alice).await;
    assert_eq!(answer.status, 200);
    // A third event stream: refused.
    let mut third = connect(served.address).await;
    let answer = exchange(&mut third, "GET", "/api/events", Some(&served.alice), None)
        .await
        .unwrap();
    assert_eq!(answer.status, 429);
    assert_eq!(answer.error_code(), "too_many_streams");
    // A log WebSocket counts against the same cap and is refused before
    // the upgrade (a 429, not a 101).
    let lease = served
        .manager
        .provision(ProvisionRequest::new("alice", "alpine").minutes(5))
        .await
        .unwrap();
    let mut request = format!("ws://{}/ws/logs/{}", served.address, lease.id)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", served.alice).parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429);
        }
        other => panic!("the log WebSocket was not refused: {other:?}"),
    }
    // Bob has his own budget.
    let (_bob, answer) = open_events(served.address, &served.bob).await;
    assert_eq!(answer.status, 200);
    // Once one of alice's streams closes, she may open another.
    drop(first);
    let mut reopened = None;
    for _ in 0..100 {
        let (stream, answer) = open_events(served.address, &served.alice).await;
        if answer.status == 200 {
            reopened = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // (Hyper notices the client's close while the stream is idle.)
    assert!(
        reopened.is_some(),
        "alice could not open a stream after closing one"
    );
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after_and_changes_nothing() {
    let rate = RateLimit {
        per_second: NonZeroU32::new(1).unwrap(),
        burst: NonZeroU32::new(3).unwrap(),
    };
    let served = start(
        true,
        Limits::default().rate(Some(rate)),
        ServeConfig::default(),
    )
    .await;
    let mut alice = connect(served.address).await;
    for _ in 0..3 {
        let answer = exchange(
            &mut alice,
            "POST",
            "/api/provision",
            Some(&served.alice),
            Some(PROVISION),
        )
        .await
        .unwrap();
        assert_eq!(
            answer.status,
            202,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    let refused = exchange(
        &mut alice,
        "POST",
        "/api/provision",
        Some(&served.alice),
        Some(PROVISION),
    )
    .await
    .unwrap();
    assert_eq!(refused.status, 429);
    assert_eq!(refused.error_code(), "rate_limited");
    let retry: u64 = refused
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    // Nothing was created by the refused request: exactly three leases.
    let list = exchange(
        &mut alice,
        "GET",
        "/api/containers",
        Some(&served.alice),
        None,
    )
    .await
    .unwrap();
    assert_eq!(list.status, 200, "reads are not rate limited");
    let ids: Vec<String> = list.json()["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    // DELETE spends the same budget, and a refused one deletes nothing.
    let path = format!("/api/containers/{}", ids[0]);
    let answer = exchange(&mut alice, "DELETE", &path, Some(&served.alice), None)
        .await
        .unwrap();
    assert_eq!(answer.status, 429);
    assert_eq!(answer.error_code(), "rate_limited");
    let status = exchange(
        &mut alice,
        "GET",
        &format!("{path}/status"),
        Some(&served.alice),
        None,
    )
    .await
    .unwrap();
    assert_ne!(status.json()["status"], "deleting");
    assert_ne!(status.json()["status"], "deleted");
    // Bob's budget is his own.
    let mut bob = connect(served.address).await;
    let answer = exchange(
        &mut bob,
        "POST",
        "/api/provision",
        Some(&served.bob),
        Some(PROVISION),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 202);
    // After Retry-After, alice may go on.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let answer = exchange(&mut alice, "DELETE", &path, Some(&served.alice), None)
        .await
        .unwrap();
    assert_eq!(answer.status, 202);
}

#[tokio::test]
async fn single_user_mode_rate_limits_per_client_ip() {
    let rate = RateLimit {
        per_second: NonZeroU32::new(1).unwrap(),
        burst: NonZeroU32::new(2).unwrap(),
    };
    let served = start(
        false,
        Limits::default().rate(Some(rate)),
        ServeConfig::default(),
    )
    .await;
    let mut one = connect_from([127, 0, 0, 1].into(), served.address).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let answer = exchange(&mut one, "POST", "/api/provision", None, Some(PROVISION)).await;
        statuses.push(answer.unwrap().status);
    }
    assert_eq!(statuses, [202, 202, 429]);
    let mut two = connect_from([127, 0, 0, 2].into(), served.address).await;
    let answer = exchange(&mut two, "POST", "/api/provision", None, Some(PROVISION)).await;
    assert_eq!(
        answer.unwrap().status,
        202,
        "another address has its own budget"
    );
}

/// Opens the log WebSocket of a lease that stays pending (its container
/// never comes), so the server is reading from the client.
async fn pending_logs_socket(
    served: &Served,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    served.runtime.hang_creates(true);
    let lease = served
        .manager
        .provision(ProvisionRequest::new("local", "alpine").minutes(5))
        .await
        .unwrap();
    let url = format!("ws://{}/ws/logs/{}", served.address, lease.id);
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    socket
}

#[tokio::test]
async fn a_websocket_message_over_the_limit_closes_the_socket() {
    let limits = Limits::default().ws_max_message(1024);
    let served = start(false, limits, ServeConfig::default()).await;
    let mut socket = pending_logs_socket(&served).await;
    // A small message is fine (ignored).
    socket.send(Message::text("x".repeat(100))).await.unwrap();
    // One over the limit ends the socket, with 1009 when the close frame
    // makes it.
    let _ = socket.send(Message::text("x".repeat(4096))).await;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return None,
            }
        }
    })
    .await
    .expect("the socket ended within 5 s");
    if let Some(code) = ended {
        assert_eq!(code, CloseCode::Size);
    }
    served.runtime.release_hung_creates();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_an_event_stream_is_dropped_and_its_slot_freed() {
    // One stream per caller: the slot must be given back for a second one.
    let limits = Limits::default().max_streams_per_caller(Some(1)).rate(None);
    let connections = ServeConfig::default().idle_timeout(Duration::from_millis(400));
    let served = start(true, limits, connections).await;
    // A client with a small receive buffer that never reads.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(served.address).await.unwrap();
    let request = format!(
        "GET /api/events HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\n\r\n",
        served.alice
    );
    stalled.write_all(request.as_bytes()).await.unwrap();
    // A flood of alice's events (each provision is `created` and `running`).
    let flood = Instant::now();
    let provisioned = 2_000;
    for _ in 0..provisioned {
        served
            .manager
            .provision(ProvisionRequest::new("alice", "alpine").minutes(5))
            .await
            .unwrap();
    }
    eprintln!("{provisioned} provisions in {:?}", flood.elapsed());
    // Once its socket is full nothing moves: after the idle timeout (twice:
    // shut down, then dropped) the stream's slot is freed and alice may
    // open a new one.
    let waited = Instant::now();
    let mut fresh = None;
    while fresh.is_none() && waited.elapsed() < Duration::from_secs(15) {
        let (stream, answer) = open_events(served.address, &served.alice).await;
        if answer.status == 200 {
            fresh = Some(stream);
        } else {
            assert_eq!(answer.status, 429);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert!(
        fresh.is_some(),
        "15 s after {provisioned} provisions the stalled stream still holds the slot"
    );
    eprintln!("slot freed {:?} after the flood", waited.elapsed());
    // And the stalled connection was closed by the server: reading it to
    // the end finds EOF (what it buffered, then nothing more).
    closed_after(&mut stalled, Duration::from_secs(10)).await;
}

#[test]
fn openapi_documents_429_on_mutating_and_stream_routes() {
    let doc = serde_json::to_value(lease_http::openapi()).unwrap();
    for (path, method) in [
        ("/api/provision", "post"),
        ("/api/containers/{id}", "delete"),
        ("/api/containers/{id}/extend", "post"),
        ("/api/events", "get"),
        ("/ws/logs/{id}", "get"),
    ] {
        let answer = &doc["paths"][path][method]["responses"]["429"];
        assert!(answer.is_object(), "{method} {path} documents no 429");
    }
}
