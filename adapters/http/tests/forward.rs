//! The TCP tunnel route in process, over the fake runtime (whose containers
//! have no network address): isolation, hostile ports, the refusals before
//! the upgrade. The tunnel itself (bytes, half-closes, the lease's end) is
//! tested against real containers in examples/server/tests/forward.rs and
//! examples/cli/tests/port_forward.rs.
// Test code: a panic is how a check reports failure, helpers included.
#![allow(clippy::unwrap_used)]

mod harness;

use axum::http::{Method, StatusCode};
use harness::{Harness, Options};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn tcp(lease: &str, port: &str) -> String {
    format!("/api/containers/{lease}/ports/{port}/tcp")
}

#[tokio::test]
async fn the_tunnel_route_refuses_before_the_upgrade() {
    let h = Harness::with(Options {
        auth: true,
        ..Options::default()
    });
    let alice = h.tokens.alice.clone();
    let lease = h
        .provision(
            Some(&alice),
            r#"{"imageType":"alpine","durationMinutes":5}"#,
        )
        .await;
    let id = lease["id"].as_str().unwrap().to_owned();
    h.wait_status(&id, Some(&alice), "running").await;
    let code = |reply: &harness::Reply| reply.json()["error"]["code"].as_str().unwrap().to_owned();

    // Another owner, an unknown or malformed id: 404, whatever the port.
    for (token, lease, port) in [
        (h.tokens.bob.as_str(), id.as_str(), "80"),
        (h.tokens.bob.as_str(), id.as_str(), "0"),
        (alice.as_str(), "container-aaaaaaaaaaaaaaaaaaaa", "80"),
        (alice.as_str(), "..%2F..%2Fetc", "80"),
    ] {
        let reply = h
            .call(Method::GET, &tcp(lease, port), Some(token), None)
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{lease} {port}");
    }
    // No token: 401.
    let reply = h.call(Method::GET, &tcp(&id, "80"), None, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // Ports outside 1–65535: 400 invalid_port.
    for port in ["0", "65536", "-1", "80a", "%20", "99999999999999999999"] {
        let reply = h
            .call(Method::GET, &tcp(&id, port), Some(&alice), None)
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{port}");
        assert_eq!(code(&reply), "invalid_port", "{port}");
    }
    // Not a WebSocket request: 400 websocket_required; other methods 405.
    let reply = h
        .call(Method::GET, &tcp(&id, "80"), Some(&alice), None)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&reply), "websocket_required");
    let reply = h
        .call(Method::POST, &tcp(&id, "80"), Some(&alice), Some("{}"))
        .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);

    // A real upgrade to a container without an address: 409 no_network;
    // to a deleted lease: 409 not_running.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = h.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let upgrade = |path: String| {
        let alice = alice.clone();
        async move {
            let mut request = format!("ws://{address}{path}")
                .into_client_request()
                .unwrap();
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {alice}").parse().unwrap());
            match tokio_tungstenite::connect_async(request).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                    let body = response.body().as_deref().unwrap_or_default();
                    (
                        response.status().as_u16(),
                        String::from_utf8_lossy(body).into_owned(),
                    )
                }
                other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
            }
        }
    };
    let (status, body) = upgrade(tcp(&id, "80")).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("no_network"), "{body}");
    let reply = h
        .call(
            Method::DELETE,
            &format!("/api/containers/{id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let (status, body) = upgrade(tcp(&id, "80")).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("not_running"), "{body}");
}
