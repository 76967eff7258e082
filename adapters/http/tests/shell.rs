//! Shell sessions in process, over the fake runtime (whose exec with stdin
//! is `cat`): routes, isolation, limits, hostile bodies, the attach framing.
// Test code: a panic is how a check reports failure, helpers included.
#![allow(clippy::unwrap_used)]

mod harness;

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use futures::{SinkExt, StreamExt};
use harness::{Harness, Options};
use lease_http::{Limits, RateLimit, ShellConfig};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn harness(shell: ShellConfig, limits: Option<Limits>) -> Harness {
    Harness::with(Options {
        auth: true,
        shell: Some(shell),
        limits,
        ..Options::default()
    })
}

/// A running lease of alice's.
async fn running(h: &Harness) -> String {
    let alice = Some(h.tokens.alice.as_str());
    let lease = h
        .provision(alice, r#"{"imageType":"alpine","durationMinutes":5}"#)
        .await;
    let id = lease["id"].as_str().unwrap().to_owned();
    h.wait_status(&id, alice, "running").await;
    id
}

fn sessions_path(lease: &str) -> String {
    format!("/api/containers/{lease}/sessions")
}

/// POST a session as `token` with `body`.
async fn start(h: &Harness, token: &str, lease: &str, body: Option<&str>) -> harness::Reply {
    h.call(Method::POST, &sessions_path(lease), Some(token), body)
        .await
}

/// Serves the router on a loopback port.
async fn serve(h: &Harness) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = h.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

async fn connect(
    address: SocketAddr,
    token: &str,
    path: &str,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{address}{path}").into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

async fn next(socket: &mut Socket) -> Message {
    tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("a message within 5 s")
        .expect("open")
        .expect("a message")
}

async fn next_json(socket: &mut Socket) -> Value {
    match next(socket).await {
        Message::Text(text) => serde_json::from_str(text.as_str()).unwrap(),
        other => panic!("expected JSON, got {other:?}"),
    }
}

/// Output bytes until `needle` shows up (channel bytes checked and removed).
async fn output_until(socket: &mut Socket, needle: &[u8]) -> Vec<u8> {
    let mut output = Vec::new();
    while !output.windows(needle.len()).any(|w| w == needle) {
        match next(socket).await {
            Message::Binary(bytes) => {
                assert_eq!(bytes[0], 1, "stdout channel");
                output.extend_from_slice(&bytes[1..]);
            }
            other => panic!("{other:?} before {needle:?}"),
        }
    }
    output
}

fn status_of(error: tokio_tungstenite::tungstenite::Error) -> u16 {
    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => response.status().as_u16(),
        other => panic!("not an HTTP refusal: {other}"),
    }
}

#[tokio::test]
async fn a_session_starts_lists_attaches_and_ends() {
    let h = harness(ShellConfig::default(), None);
    let alice = h.tokens.alice.clone();
    let lease = running(&h).await;

    // An empty body: the login shell in an 80x24 terminal.
    let reply = start(&h, &alice, &lease, None).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let shell = reply.json();
    let sid = shell["sessionId"].as_str().unwrap().to_owned();
    assert_eq!(sid.len(), 26);
    assert!(
        sid.bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
    );
    assert_eq!(shell["leaseId"], lease.as_str());
    assert_eq!(shell["tty"], true);
    assert_eq!(shell["command"][0], "/bin/sh");
    assert_eq!(
        shell["attachPath"],
        format!("/api/containers/{lease}/sessions/{sid}/attach")
    );
    assert!(shell["createdAt"].as_str().unwrap().ends_with('Z'));

    let reply = start(
        &h,
        &alice,
        &lease,
        Some(r#"{"command":["cat"],"tty":false}"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let cat = reply.json();
    let list = h.get(&sessions_path(&lease), Some(&alice)).await;
    assert_eq!(list.status, StatusCode::OK);
    let sessions = list.json()["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[1]["sessionId"], cat["sessionId"]);
    assert_eq!(sessions[1]["attached"], false);
    assert_eq!(sessions[1]["exitCode"], Value::Null);

    // Attach: the fake prints its command and environment, then echoes stdin.
    let address = serve(&h).await;
    let path = cat["attachPath"].as_str().unwrap();
    let mut socket = connect(address, &alice, path).await.unwrap();
    let attached = next_json(&mut socket).await;
    assert_eq!(
        attached,
        json!({"type": "attached", "sessionId": cat["sessionId"], "tty": false, "offset": 0, "missed": 0})
    );
    let env = format!(
        "CONTAINERLEASE_SESSION={}\n",
        cat["sessionId"].as_str().unwrap()
    );
    output_until(&mut socket, env.as_bytes()).await;
    let list = h.get(&sessions_path(&lease), Some(&alice)).await.json();
    assert_eq!(list["sessions"][1]["attached"], true);

    // Any bytes go through stdin and come back unchanged.
    let all: Vec<u8> = (0..=255).collect();
    socket
        .send(Message::Binary(all.clone().into()))
        .await
        .unwrap();
    let echoed = output_until(&mut socket, &all[200..]).await;
    assert_eq!(echoed, all);

    // Keepalive, errors that leave the session going, then eof ends it.
    socket
        .send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await, json!({"type": "pong"}));
    for bad in [
        r#"{"type":"resize","cols":80,"rows":24}"#,
        r#"{"type":"nope"}"#,
        "not json",
    ] {
        socket.send(Message::Text(bad.into())).await.unwrap();
        let error = next_json(&mut socket).await;
        assert_eq!(error["type"], "error", "{bad}: {error}");
        assert_eq!(error["code"], "invalid_message", "{bad}: {error}");
    }
    socket
        .send(Message::Text(r#"{"type":"eof"}"#.into()))
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut socket).await,
        json!({"type": "exit", "code": 0})
    );
    match next(&mut socket).await {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("{other:?}"),
    }
    // Delivered: the session is gone.
    let list = h.get(&sessions_path(&lease), Some(&alice)).await.json();
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);
    let refused = connect(address, &alice, path).await.err().unwrap();
    assert_eq!(status_of(refused), 404);

    // DELETE ends the other one.
    let reply = h
        .call(
            Method::DELETE,
            &format!("{}/{sid}", sessions_path(&lease)),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let list = h.get(&sessions_path(&lease), Some(&alice)).await.json();
    assert_eq!(list["sessions"], json!([]));
}

#[tokio::test]
async fn another_owners_lease_and_unknown_ids_are_404_and_admins_may() {
    let h = harness(ShellConfig::default(), None);
    let (alice, bob, admin) = (
        h.tokens.alice.clone(),
        h.tokens.bob.clone(),
        h.tokens.admin.clone(),
    );
    let lease = running(&h).await;
    let session = start(&h, &alice, &lease, None).await.json();
    let sid = session["sessionId"].as_str().unwrap();
    let session_path = format!("{}/{sid}", sessions_path(&lease));
    let address = serve(&h).await;
    let attach = format!("{session_path}/attach");

    // Bob sees none of it.
    assert_eq!(
        start(&h, &bob, &lease, None).await.error_code(),
        "not_found"
    );
    let reply = h.get(&sessions_path(&lease), Some(&bob)).await;
    assert_eq!(
        (reply.status, reply.error_code()),
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    let reply = h
        .call(Method::DELETE, &session_path, Some(&bob), None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        status_of(connect(address, &bob, &attach).await.err().unwrap()),
        404
    );

    // Unknown or malformed lease and session ids.
    for lease_id in ["container-doesnotexist0000000", "x", "%2e%2e"] {
        let reply = start(&h, &alice, lease_id, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{lease_id}");
    }
    let unknown = format!("{}/{}", sessions_path(&lease), "a".repeat(26));
    let reply = h.call(Method::DELETE, &unknown, Some(&alice), None).await;
    assert_eq!(
        (reply.status, reply.error_code()),
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    let long = format!("{}/{}", sessions_path(&lease), "z".repeat(5000));
    let reply = h.call(Method::DELETE, &long, Some(&alice), None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.json()["error"]["message"].as_str().unwrap().len() < 200);
    let refused = connect(address, &alice, &format!("{unknown}/attach")).await;
    assert_eq!(status_of(refused.err().unwrap()), 404);
    // A session id of another lease is not found through this one.
    let other = running(&h).await;
    let through_other = format!("{}/{sid}", sessions_path(&other));
    let reply = h
        .call(Method::DELETE, &through_other, Some(&alice), None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    // No token: 401.
    let reply = h
        .call(Method::POST, &sessions_path(&lease), None, None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    // An admin may list, attach to and end alice's session, and start one.
    let list = h.get(&sessions_path(&lease), Some(&admin)).await;
    assert_eq!(list.json()["sessions"].as_array().unwrap().len(), 1);
    let mut socket = connect(address, &admin, &attach).await.unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "attached");
    assert_eq!(
        start(&h, &admin, &lease, None).await.status,
        StatusCode::CREATED
    );
    let reply = h
        .call(Method::DELETE, &session_path, Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let ended = loop {
        if let Message::Text(text) = next(&mut socket).await {
            break serde_json::from_str::<Value>(text.as_str()).unwrap();
        }
    };
    assert_eq!(ended["type"], "ended");
    assert_eq!(ended["reason"], "closed");
}

#[tokio::test]
async fn only_a_running_lease_runs_sessions_and_its_end_ends_them() {
    let h = harness(ShellConfig::default(), None);
    let alice = h.tokens.alice.clone();
    let lease = running(&h).await;
    let session = start(&h, &alice, &lease, Some(r#"{"command":["cat"]}"#))
        .await
        .json();
    let address = serve(&h).await;
    let path = session["attachPath"].as_str().unwrap();
    let mut socket = connect(address, &alice, path).await.unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "attached");

    let reply = h
        .call(
            Method::DELETE,
            &format!("/api/containers/{lease}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    // The attached client is told the lease was deleted.
    let ended = loop {
        if let Message::Text(text) = next(&mut socket).await {
            break serde_json::from_str::<Value>(text.as_str()).unwrap();
        }
    };
    assert_eq!(ended["type"], "ended", "{ended}");
    assert_eq!(ended["reason"], "deleted", "{ended}");

    let reply = start(&h, &alice, &lease, None).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.error_code(), "not_running");
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("delet"), "{message}");
}

#[tokio::test]
async fn bad_bodies_are_refused() {
    let h = harness(ShellConfig::default(), None);
    let alice = h.tokens.alice.clone();
    let lease = running(&h).await;
    let too_many: Vec<String> = (0..65).map(|i| i.to_string()).collect();
    let too_long = vec!["x".repeat(16 * 1024 + 1)];
    let cases = [
        ("{", "invalid_json"),
        ("[]", "invalid_request"),
        ("null", "invalid_request"),
        (r#"{"command":[]}"#, "invalid_request"),
        (r#"{"command":[""]}"#, "invalid_request"),
        (r#"{"command":"sh"}"#, "invalid_request"),
        (r#"{"command":["sh",1]}"#, "invalid_request"),
        (r#"{"command":["echo","a\u0000b"]}"#, "invalid_request"),
        (r#"{"tty":"yes"}"#, "invalid_request"),
        (r#"{"cols":0}"#, "invalid_request"),
        (r#"{"rows":1001}"#, "invalid_request"),
        (r#"{"cols":70000}"#, "invalid_request"),
        (r#"{"cols":-1}"#, "invalid_request"),
        (r#"{"cols":1.5}"#, "invalid_request"),
        (r#"{"shell":"bash"}"#, "invalid_request"),
        (r#"{"command":["sh"]} {}"#, "invalid_json"),
    ];
    for (body, code) in cases {
        let reply = start(&h, &alice, &lease, Some(body)).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text()
        );
        assert_eq!(reply.error_code(), code, "{body}");
    }
    for command in [too_many, too_long] {
        let body = json!({ "command": command }).to_string();
        let reply = start(&h, &alice, &lease, Some(&body)).await;
        assert_eq!(reply.error_code(), "invalid_request");
    }
    // Not JSON, and over the body limit.
    let request = axum::http::Request::post(sessions_path(&lease))
        .header("authorization", format!("Bearer {alice}"))
        .header("content-type", "text/plain")
        .body(axum::body::Body::from("sh"))
        .unwrap();
    assert_eq!(
        h.send(request).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let huge = format!(r#"{{"command":["{}"]}}"#, "x".repeat(70 * 1024));
    let reply = start(&h, &alice, &lease, Some(&huge)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Nothing was started by any of it.
    let list = h.get(&sessions_path(&lease), Some(&alice)).await.json();
    assert_eq!(list["sessions"], json!([]));

    // The attach route: a bad offset, and a request that is not a WebSocket.
    let sid = start(&h, &alice, &lease, None).await.json()["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let attach = format!("{}/{sid}/attach", sessions_path(&lease));
    let reply = h.get(&format!("{attach}?offset=-1"), Some(&alice)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = h.get(&attach, Some(&alice)).await;
    assert!(reply.status.is_client_error(), "{}", reply.status);
    assert_eq!(reply.error_code(), "websocket_required");
}

#[tokio::test]
async fn sessions_are_limited_per_lease_and_per_owner() {
    let shell = ShellConfig::default()
        .max_sessions_per_lease(2)
        .max_sessions_per_owner(3);
    let h = harness(shell, None);
    let (alice, bob) = (h.tokens.alice.clone(), h.tokens.bob.clone());
    let first = running(&h).await;
    let second = running(&h).await;
    let body = Some(r#"{"command":["cat"],"tty":false}"#);
    for _ in 0..2 {
        assert_eq!(
            start(&h, &alice, &first, body).await.status,
            StatusCode::CREATED
        );
    }
    let reply = start(&h, &alice, &first, body).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.error_code(), "too_many_sessions");
    let kept = start(&h, &alice, &second, body).await.json();
    let reply = start(&h, &alice, &second, body).await;
    assert_eq!(reply.error_code(), "too_many_sessions", "the owner's limit");
    assert!(reply.text().contains("at most 3"), "{}", reply.text());
    // Ending one frees its place.
    let sid = kept["sessionId"].as_str().unwrap();
    let reply = h
        .call(
            Method::DELETE,
            &format!("{}/{sid}", sessions_path(&second)),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        start(&h, &alice, &second, body).await.status,
        StatusCode::CREATED
    );
    // Bob's own lease is not touched by alice's count.
    let bob_lease = h
        .provision(Some(&bob), r#"{"imageType":"alpine","durationMinutes":5}"#)
        .await;
    let bob_lease = bob_lease["id"].as_str().unwrap();
    h.wait_status(bob_lease, Some(&bob), "running").await;
    assert_eq!(
        start(&h, &bob, bob_lease, body).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn starting_and_ending_sessions_spend_the_rate_limit() {
    let rate = RateLimit {
        per_second: std::num::NonZeroU32::new(1).unwrap(),
        burst: std::num::NonZeroU32::new(2).unwrap(),
    };
    let h = harness(
        ShellConfig::default(),
        Some(Limits::default().rate(Some(rate))),
    );
    let alice = h.tokens.alice.clone();
    // The provision spends one of the two.
    let lease = running(&h).await;
    assert_eq!(
        start(&h, &alice, &lease, None).await.status,
        StatusCode::CREATED
    );
    let reply = start(&h, &alice, &lease, None).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.error_code(), "rate_limited");
    // Reading is not limited.
    let list = h.get(&sessions_path(&lease), Some(&alice)).await;
    assert_eq!(list.status, StatusCode::OK);
}

#[tokio::test]
async fn a_detached_session_replays_and_times_out() {
    let shell = ShellConfig::default().detach_timeout(Duration::from_millis(600));
    let h = harness(shell, None);
    let alice = h.tokens.alice.clone();
    let lease = running(&h).await;
    let session = start(
        &h,
        &alice,
        &lease,
        Some(r#"{"command":["cat"],"tty":false}"#),
    )
    .await
    .json();
    let address = serve(&h).await;
    let path = session["attachPath"].as_str().unwrap().to_owned();
    let mut socket = connect(address, &alice, &path).await.unwrap();
    next_json(&mut socket).await;
    let head = output_until(&mut socket, b"CONTAINERLEASE_SESSION").await;
    socket
        .send(Message::Binary(b"abc".to_vec().into()))
        .await
        .unwrap();
    let seen = output_until(&mut socket, b"abc").await;
    let offset = (head.len() + seen.len()) as u64;
    // Reconnect within the timeout, asking from before the last 3 bytes.
    drop(socket);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut socket = connect(address, &alice, &format!("{path}?offset={}", offset - 3))
        .await
        .unwrap();
    let attached = next_json(&mut socket).await;
    assert_eq!(attached["offset"], offset - 3);
    assert_eq!(attached["missed"], 0);
    assert_eq!(
        next(&mut socket).await,
        Message::Binary(b"\x01abc".to_vec().into())
    );
    // Gone for longer than the timeout: the session ends.
    drop(socket);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let list = h.get(&sessions_path(&lease), Some(&alice)).await.json();
    assert_eq!(list["sessions"], json!([]));
    let refused = connect(address, &alice, &path).await;
    assert_eq!(status_of(refused.err().unwrap()), 404);
}

#[test]
fn openapi_lists_the_shell_routes() {
    let doc = lease_http::openapi();
    let paths = &doc.paths.paths;
    let sessions = paths
        .get("/api/containers/{id}/sessions")
        .expect("sessions path");
    assert!(sessions.post.is_some() && sessions.get.is_some());
    let one = paths
        .get("/api/containers/{id}/sessions/{sid}")
        .expect("session path");
    assert!(one.delete.is_some());
    let attach = paths
        .get("/api/containers/{id}/sessions/{sid}/attach")
        .expect("attach path");
    let get = attach.get.as_ref().expect("GET attach");
    let text = serde_json::to_string(get).unwrap();
    assert!(text.contains("channel byte"), "the framing is documented");
    assert!(text.contains("offset"));
}
