//! Live streams: Server-Sent Events and log WebSockets.
// Test code: a panic is how a check reports failure, helpers included.
#![allow(clippy::unwrap_used)]

mod harness;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use futures::{SinkExt, StreamExt};
use harness::{Harness, Options};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Reads Server-Sent Events from a response body.
struct Events {
    body: Body,
    buffer: String,
}

impl Events {
    async fn open(h: &Harness, token: Option<&str>) -> Events {
        let mut request = Request::get("/api/events");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = h.response(request.body(Body::empty()).unwrap()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(content_type.starts_with("text/event-stream"));
        Events {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The next named event (name, data), skipping comments; `None` when the
    /// stream ends; panics after 5 s.
    async fn next(&mut self) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if let Some(name) = name {
                    let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                    return Some((name, data));
                }
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .expect("an event within 5 s");
            match frame {
                None => return None,
                Some(frame) => {
                    if let Ok(bytes) = frame.expect("frame").into_data() {
                        self.buffer.push_str(&String::from_utf8_lossy(&bytes));
                    }
                }
            }
        }
    }

    /// The next event about `id`.
    async fn next_for(&mut self, id: &str) -> (String, Value) {
        loop {
            let (name, data) = self.next().await.expect("stream open");
            if data["lease"]["id"] == id {
                return (name, data);
            }
        }
    }
}

#[tokio::test]
async fn sse_delivers_only_the_callers_events() {
    let h = Harness::with_auth();
    let (alice, bob, admin) = (
        h.tokens.alice.clone(),
        h.tokens.bob.clone(),
        h.tokens.admin.clone(),
    );
    let mut alice_events = Events::open(&h, Some(&alice)).await;
    let mut bob_events = Events::open(&h, Some(&bob)).await;
    let mut admin_events = Events::open(&h, Some(&admin)).await;

    let a = h.provision(Some(&alice), r#"{"imageType":"alpine"}"#).await;
    let a_id = a["id"].as_str().unwrap();
    let (name, data) = alice_events.next().await.unwrap();
    assert_eq!(name, "created");
    assert_eq!(data["kind"], "created");
    assert_eq!(data["lease"]["id"], a_id);
    assert_eq!(data["lease"]["status"], "pending");
    let (name, data) = alice_events.next_for(a_id).await;
    assert_eq!(name, "running");
    assert_eq!(data["lease"]["status"], "running");

    let b = h.provision(Some(&bob), r#"{"imageType":"alpine"}"#).await;
    // Bob's first event is about his own lease: alice's never reached him.
    let (name, data) = bob_events.next().await.unwrap();
    assert_eq!(name, "created");
    assert_eq!(data["lease"]["id"], b["id"]);
    assert_eq!(data["lease"]["owner"], "bob");

    // The admin sees both.
    let (_, first) = admin_events.next().await.unwrap();
    assert_eq!(first["lease"]["id"], a_id);
    let mut seen_b = false;
    for _ in 0..4 {
        let (_, data) = admin_events.next().await.unwrap();
        if data["lease"]["id"] == b["id"] {
            seen_b = true;
            break;
        }
    }
    assert!(seen_b);
}

#[tokio::test]
async fn sse_reports_extend_and_delete_with_reap_lateness() {
    let h = Harness::with(Options {
        manual_clock: true,
        ..Options::default()
    });
    let mut events = Events::open(&h, None).await;
    let lease = h
        .provision(None, r#"{"imageType":"alpine","durationMinutes":10}"#)
        .await;
    let id = lease["id"].as_str().unwrap();
    assert_eq!(events.next_for(id).await.0, "created");
    assert_eq!(events.next_for(id).await.0, "running");
    h.call(
        Method::POST,
        &format!("/api/containers/{id}/extend"),
        None,
        Some(r#"{"minutes":5}"#),
    )
    .await;
    let (name, data) = events.next_for(id).await;
    assert_eq!(name, "extended");
    assert_eq!(data["lease"]["durationMinutes"], 15);
    // Five minutes before expiry: expiring_soon; at expiry: deleted.
    let clock = h.clock.clone().unwrap();
    clock.advance(chrono::Duration::minutes(11));
    let (name, _) = events.next_for(id).await;
    assert_eq!(name, "expiring_soon");
    clock.advance(chrono::Duration::minutes(4));
    let (name, data) = events.next_for(id).await;
    assert_eq!(name, "deleted");
    assert_eq!(data["lease"]["status"], "deleted");
    assert_eq!(data["lease"]["endReason"], "expired");
    assert!(data["latenessMs"].as_i64().is_some(), "{data}");
}

#[tokio::test]
async fn shutdown_ends_event_streams() {
    let h = Harness::new();
    let mut events = Events::open(&h, None).await;
    h.shutdown.cancel();
    assert!(events.next().await.is_none());
}

/// Serves the harness's router on a loopback port.
/// Reads text frames until the close frame; returns (lines, close code, reason).
async fn read_logs(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> (Vec<String>, u16, String) {
    let mut lines = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a frame within 5 s")
            .expect("socket open")
            .expect("frame");
        match message {
            Message::Text(text) => lines.push(text.to_string()),
            Message::Close(frame) => {
                let frame = frame.expect("a close frame with a reason");
                return (lines, u16::from(frame.code), frame.reason.to_string());
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn websocket_streams_log_lines_then_closes_normally() {
    let h = Harness::new();
    let address = h.serve().await;
    let lease = h.provision(None, r#"{"imageType":"alpine"}"#).await;
    let id = lease["id"].as_str().unwrap();
    h.wait_status(id, None, "running").await;

    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/ws/logs/{id}"))
        .await
        .expect("websocket");
    let (lines, code, reason) = read_logs(&mut socket).await;
    assert_eq!(
        lines,
        (1..=3)
            .map(|n| format!("containerlease-{id} line {n}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(code, 1000);
    assert_eq!(reason, "log stream ended");
    // The tail parameter limits the past lines.
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{address}/ws/logs/{id}?tail=1"))
            .await
            .expect("websocket");
    let (lines, _, _) = read_logs(&mut socket).await;
    assert_eq!(lines, [format!("containerlease-{id} line 3")]);
}

#[tokio::test]
async fn websocket_waits_for_a_pending_lease() {
    let h = Harness::new();
    let address = h.serve().await;
    h.runtime.hang_creates(true);
    let lease = h.provision(None, r#"{"imageType":"alpine"}"#).await;
    let id = lease["id"].as_str().unwrap().to_owned();
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/ws/logs/{id}"))
        .await
        .expect("websocket");
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.runtime.release_hung_creates();
    let (lines, code, _) = read_logs(&mut socket).await;
    assert_eq!(lines.len(), 3);
    assert_eq!(code, 1000);
}

#[tokio::test]
async fn websocket_of_an_ended_lease_says_so() {
    let h = Harness::new();
    let address = h.serve().await;
    let lease = h.provision(None, r#"{"imageType":"alpine"}"#).await;
    let id = lease["id"].as_str().unwrap();
    h.call(Method::DELETE, &format!("/api/containers/{id}"), None, None)
        .await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/ws/logs/{id}"))
        .await
        .expect("websocket");
    let (lines, code, reason) = read_logs(&mut socket).await;
    assert!(lines.is_empty());
    assert_eq!(code, 1000);
    assert_eq!(reason, "lease ended");
}

#[tokio::test]
async fn websocket_takes_a_token_by_header_or_a_ticket_by_query() {
    let h = Harness::with_auth();
    let address = h.serve().await;
    let alice = h.tokens.alice.clone();
    let lease = h.provision(Some(&alice), r#"{"imageType":"alpine"}"#).await;
    let id = lease["id"].as_str().unwrap();
    h.wait_status(id, Some(&alice), "running").await;

    let url = format!("ws://{address}/ws/logs/{id}");
    // No token: the upgrade is refused with 401.
    let refused = tokio_tungstenite::connect_async(url.as_str()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    // Bob's token: 404.
    let mut request = url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", h.tokens.bob).parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::NOT_FOUND);
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    // Alice by header.
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {alice}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(read_logs(&mut socket).await.0.len(), 3);
    // Alice by ticket (browsers); her token in the URL is refused.
    let ticket = h
        .ticket(&alice, &format!(r#"{{"route":"logs","leaseId":"{id}"}}"#))
        .await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{url}?ticket={ticket}"))
        .await
        .unwrap();
    assert_eq!(read_logs(&mut socket).await.0.len(), 3);
    match tokio_tungstenite::connect_async(format!("{url}?token={alice}")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    // A client that closes first is fine.
    let ticket = h
        .ticket(&alice, &format!(r#"{{"route":"logs","leaseId":"{id}"}}"#))
        .await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{url}?ticket={ticket}"))
        .await
        .unwrap();
    socket.send(Message::Close(None)).await.unwrap();
}
