//! Single-user mode serves this machine only: DNS rebinding (a foreign
//! `Host`) and cross-site requests (a foreign `Origin`) are refused before
//! they reach any handler; `insecure_open` and token mode turn the check off.
// Test code: a panic is how a check reports failure, helpers included.
#![allow(clippy::unwrap_used)]

mod harness;

use std::net::SocketAddr;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use harness::{Harness, Options, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const PROVISION: &str = r#"{"imageType":"alpine","durationMinutes":5}"#;

/// A request with exactly these headers (the harness adds no `Host`).
async fn send(
    h: &Harness,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    json: Option<&str>,
) -> Reply {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let body = match json {
        Some(json) => {
            builder = builder.header("content-type", "application/json");
            Body::from(json.to_owned())
        }
        None => Body::empty(),
    };
    h.send_as_is(builder.body(body).unwrap()).await
}

fn assert_refused(reply: &Reply, status: StatusCode, code: &str, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.text());
    assert_eq!(reply.error_code(), code, "{what}");
}

#[tokio::test]
async fn requests_for_other_host_names_are_refused() {
    let h = Harness::new();
    for host in [
        "evil.example",
        "evil.example:8080",
        "localhost.evil.example",
        "localhost.evil.example:8080",
        "127.0.0.1.nip.io:8080",
        "10.1.2.3:8080",
        "0.0.0.0:8080",
        "2130706433:8080",
        "user@localhost:8080",
        "",
    ] {
        for (method, uri, json) in [
            (Method::GET, "/api/containers", None),
            (Method::POST, "/api/provision", Some(PROVISION)),
            (Method::GET, "/", None),
            (Method::GET, "/metrics", None),
            (Method::GET, "/api/events", None),
        ] {
            let reply = send(&h, method.clone(), uri, &[("host", host)], json).await;
            let what = format!("{method} {uri} Host: {host}");
            assert_refused(&reply, StatusCode::MISDIRECTED_REQUEST, "wrong_host", &what);
        }
    }
    // No Host at all, two of them, or an absolute target naming another host.
    let missing = send(&h, Method::POST, "/api/provision", &[], Some(PROVISION)).await;
    assert_refused(
        &missing,
        StatusCode::MISDIRECTED_REQUEST,
        "wrong_host",
        "no Host",
    );
    let twice = send(
        &h,
        Method::GET,
        "/api/containers",
        &[("host", "127.0.0.1:8080"), ("host", "evil.example")],
        None,
    )
    .await;
    assert_refused(
        &twice,
        StatusCode::MISDIRECTED_REQUEST,
        "wrong_host",
        "two Hosts",
    );
    let absolute = send(
        &h,
        Method::POST,
        "http://evil.example/api/provision",
        &[("host", "127.0.0.1:8080")],
        Some(PROVISION),
    )
    .await;
    assert_refused(
        &absolute,
        StatusCode::MISDIRECTED_REQUEST,
        "wrong_host",
        "absolute URI",
    );
    // Nothing was created.
    assert_eq!(h.runtime.create_calls(), 0);
    let list = h.get("/api/containers", None).await.json();
    assert_eq!(list["containers"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn loopback_host_names_are_served() {
    let h = Harness::new();
    for host in [
        "127.0.0.1:8080",
        "127.0.0.1",
        "127.8.9.10:1234",
        "localhost:8080",
        "LocalHost",
        "app.localhost:8080",
        "[::1]:8080",
    ] {
        let reply = send(&h, Method::GET, "/api/containers", &[("host", host)], None).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "Host: {host}: {}",
            reply.text()
        );
    }
    let absolute = send(&h, Method::GET, "http://localhost:8080/healthz", &[], None).await;
    assert_eq!(absolute.status, StatusCode::OK);
    let created = send(
        &h,
        Method::POST,
        "/api/provision",
        &[("host", "localhost:8080")],
        Some(PROVISION),
    )
    .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text());
}

#[tokio::test]
async fn requests_from_foreign_web_pages_are_refused() {
    let h = Harness::with(Options {
        cors_origins: vec!["https://dev.example.com"],
        ..Options::default()
    });
    let lease = h.provision(None, PROVISION).await;
    let id = lease["id"].as_str().unwrap().to_owned();
    h.wait_status(&id, None, "running").await;
    let host = ("host", "127.0.0.1:8080");
    let websocket = [
        host,
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ];
    for origin in [
        "http://evil.example",
        "https://evil.example:8080",
        "http://localhost.evil.example:8080",
        "null",
        "file://",
        "http://127.0.0.1:8080/page",
    ] {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut headers = extra.to_vec();
            headers.push(("origin", origin));
            headers
        };
        for (method, uri, json) in [
            (Method::POST, "/api/provision".to_owned(), Some(PROVISION)),
            (Method::DELETE, format!("/api/containers/{id}"), None),
            (
                Method::POST,
                format!("/api/containers/{id}/extend"),
                Some(r#"{"minutes":5}"#),
            ),
            (Method::GET, "/api/events".to_owned(), None),
        ] {
            let reply = send(&h, method.clone(), &uri, &with(&[host]), json).await;
            let what = format!("{method} {uri} Origin: {origin}");
            assert_refused(&reply, StatusCode::FORBIDDEN, "foreign_origin", &what);
        }
        // A cross-site WebSocket (browsers send it without asking).
        let uri = format!("/ws/logs/{id}");
        let reply = send(&h, Method::GET, &uri, &with(&websocket), None).await;
        let what = format!("WebSocket Origin: {origin}");
        assert_refused(&reply, StatusCode::FORBIDDEN, "foreign_origin", &what);
    }
    // Nothing changed: one lease, still running, still 5 minutes.
    assert_eq!(h.runtime.create_calls(), 1);
    let still = h.wait_status(&id, None, "running").await;
    assert_eq!(still["durationMinutes"], 5);

    // No Origin (curl, the CLI), a loopback page, a configured origin: served.
    for origin in [
        None,
        Some("http://127.0.0.1:8080"),
        Some("http://localhost:5173"),
        Some("http://[::1]:8080"),
        Some("https://dev.example.com"),
    ] {
        let mut headers = vec![host];
        headers.extend(origin.map(|o| ("origin", o)));
        let reply = send(
            &h,
            Method::POST,
            "/api/provision",
            &headers,
            Some(PROVISION),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::ACCEPTED,
            "Origin {origin:?}: {}",
            reply.text()
        );
    }
    // Two Origin headers are not one allowed origin.
    let two = send(
        &h,
        Method::POST,
        "/api/provision",
        &[
            host,
            ("origin", "http://127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ],
        Some(PROVISION),
    )
    .await;
    assert_refused(&two, StatusCode::FORBIDDEN, "foreign_origin", "two Origins");
}

#[tokio::test]
async fn insecure_open_serves_any_host_and_origin() {
    let h = Harness::with(Options {
        insecure_open: true,
        ..Options::default()
    });
    let reply = send(
        &h,
        Method::POST,
        "/api/provision",
        &[
            ("host", "lease.example.com"),
            ("origin", "http://evil.example"),
        ],
        Some(PROVISION),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    let missing = send(&h, Method::GET, "/api/containers", &[], None).await;
    assert_eq!(missing.status, StatusCode::OK);
}

#[tokio::test]
async fn with_tokens_any_host_name_is_served_and_the_token_decides() {
    let h = Harness::with_auth();
    let alice = format!("Bearer {}", h.tokens.alice);
    let reply = send(
        &h,
        Method::POST,
        "/api/provision",
        &[("host", "lease.example.com"), ("authorization", &alice)],
        Some(PROVISION),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    let anonymous = send(
        &h,
        Method::GET,
        "/api/containers",
        &[("host", "lease.example.com")],
        None,
    )
    .await;
    assert_refused(
        &anonymous,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "no token",
    );
}

/// The router on a real loopback listener.
async fn serve(h: &Harness) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = h.app.clone();
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// The status line of one raw HTTP/1.1 request.
async fn raw_status(address: SocketAddr, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn over_a_real_connection_rebinding_and_cross_site_websockets_get_nothing() {
    let h = Harness::new();
    let lease = h.provision(None, PROVISION).await;
    let id = lease["id"].as_str().unwrap().to_owned();
    h.wait_status(&id, None, "running").await;
    let address = serve(&h).await;

    let rebound = format!(
        "GET /api/containers HTTP/1.1\r\nHost: evil.example:{}\r\nConnection: close\r\n\r\n",
        address.port()
    );
    assert!(raw_status(address, &rebound).await.contains(" 421 "));
    let no_host = "GET /api/containers HTTP/1.1\r\nConnection: close\r\n\r\n";
    assert!(raw_status(address, no_host).await.contains(" 421 "));
    let local =
        format!("GET /api/containers HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    assert!(raw_status(address, &local).await.contains(" 200 "));

    let url = format!("ws://{address}/ws/logs/{id}");
    let mut cross_site = url.as_str().into_client_request().unwrap();
    cross_site
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(cross_site).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::FORBIDDEN);
        }
        other => panic!("a cross-site WebSocket was not refused: {other:?}"),
    }
    let mut same_site = url.as_str().into_client_request().unwrap();
    let origin = format!("http://{address}");
    same_site
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(same_site)
        .await
        .expect("the page's own WebSocket is accepted");
    drop(socket);
}
