//! Stream tickets: `POST /api/tickets` and `?ticket=` on the stream routes.
// Test code: a panic is how a check reports failure, helpers included.
#![allow(clippy::unwrap_used)]

mod harness;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use futures::StreamExt;
use harness::{Harness, Options};
use lease_http::{Limits, MAX_TICKETS_PER_CALLER};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// A well-formed lease id that no lease has.
const NO_LEASE: &str = "container-zzzzzzzzzzzzzzzzzzzz";
/// A well-formed session id.
const SESSION: &str = "abcdefghijklmnopqrstuvwxyz";

fn events_ticket() -> &'static str {
    r#"{"route":"events"}"#
}

fn logs_ticket(lease: &str) -> String {
    format!(r#"{{"route":"logs","leaseId":"{lease}"}}"#)
}

/// The status of `GET uri` with no header (a browser's stream request).
/// Only the head is read: an event stream's body never ends.
async fn open_status(h: &Harness, uri: &str) -> StatusCode {
    let request = Request::get(uri).body(Body::empty()).unwrap();
    h.response(request).await.status()
}

/// Harness with tokens and without the rate limit (the cap tests mint many).
fn unrated() -> Harness {
    Harness::with(Options {
        auth: true,
        limits: Some(Limits::default().rate(None)),
        ..Options::default()
    })
}

async fn alice_lease(h: &Harness) -> String {
    let alice = h.tokens.alice.clone();
    let lease = h.provision(Some(&alice), r#"{"imageType":"alpine"}"#).await;
    let id = lease["id"].as_str().unwrap().to_owned();
    h.wait_status(&id, Some(&alice), "running").await;
    id
}

fn attach_ticket(lease: &str, session: &str) -> String {
    format!(r#"{{"route":"attach","leaseId":"{lease}","sessionId":"{session}"}}"#)
}

/// A shell session of alice's on `lease` (the fake runtime echoes its command).
async fn alice_session(h: &Harness, lease: &str) -> String {
    let reply = h
        .call(
            Method::POST,
            &format!("/api/containers/{lease}/sessions"),
            Some(&h.tokens.alice),
            Some(r#"{"command":["echo","hi"],"tty":false}"#),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    reply.json()["sessionId"].as_str().unwrap().to_owned()
}

/// The HTTP status a WebSocket upgrade to `url` was refused with.
async fn refused_upgrade(url: &str) -> StatusCode {
    match tokio_tungstenite::connect_async(url).await {
        Err(WsError::Http(response)) => response.status(),
        Ok(_) => panic!("{url}: the upgrade was accepted"),
        Err(other) => panic!("{url}: {other}"),
    }
}

#[tokio::test]
async fn a_ticket_is_good_for_one_use() {
    let h = Harness::with_auth();
    let reply = h
        .call(
            Method::POST,
            "/api/tickets",
            Some(&h.tokens.alice),
            Some(events_ticket()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["expiresInSeconds"], 30);
    assert!(json["expiresAt"].as_str().unwrap().ends_with('Z'));
    let ticket = json["ticket"].as_str().unwrap();
    // 256 random bits in hex after the prefix.
    assert!(ticket.len() >= 64, "{ticket}");
    let uri = format!("/api/events?ticket={ticket}");
    assert_eq!(open_status(&h, &uri).await, StatusCode::OK);
    let again = h.get(&uri, None).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert_eq!(again.error_code(), "unauthorized");
    // No ticket at all, or a made-up one.
    assert_eq!(
        open_status(&h, "/api/events").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        open_status(&h, &format!("/api/events?ticket=tkt_{}", "0".repeat(64))).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_ticket_expires_by_the_managers_clock() {
    let h = Harness::with(Options {
        auth: true,
        manual_clock: true,
        ..Options::default()
    });
    let clock = h.clock.clone().unwrap();
    let alice = h.tokens.alice.clone();
    let stale = h.ticket(&alice, events_ticket()).await;
    let fresh = h.ticket(&alice, events_ticket()).await;
    clock.advance(chrono::Duration::seconds(29));
    assert_eq!(
        open_status(&h, &format!("/api/events?ticket={fresh}")).await,
        StatusCode::OK
    );
    clock.advance(chrono::Duration::seconds(1));
    assert_eq!(
        open_status(&h, &format!("/api/events?ticket={stale}")).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_ticket_opens_only_its_route_and_lease() {
    let h = Harness::with_auth();
    let alice = h.tokens.alice.clone();
    let first = alice_lease(&h).await;
    let second = alice_lease(&h).await;
    // An events ticket does not open logs (and is spent by trying).
    let ticket = h.ticket(&alice, events_ticket()).await;
    let logs = h
        .get(&format!("/ws/logs/{first}?ticket={ticket}"), None)
        .await;
    assert_eq!(logs.status, StatusCode::UNAUTHORIZED);
    assert!(logs.text().contains("another stream"), "{}", logs.text());
    assert_eq!(
        open_status(&h, &format!("/api/events?ticket={ticket}")).await,
        StatusCode::UNAUTHORIZED
    );
    // A logs ticket opens that lease's logs only, not another of hers.
    let ticket = h.ticket(&alice, &logs_ticket(&first)).await;
    let other = h
        .get(&format!("/ws/logs/{second}?ticket={ticket}"), None)
        .await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED);
    // Nor the event stream, nor an ordinary route.
    let ticket = h.ticket(&alice, &logs_ticket(&first)).await;
    assert_eq!(
        open_status(&h, &format!("/api/events?ticket={ticket}")).await,
        StatusCode::UNAUTHORIZED
    );
    let ticket = h.ticket(&alice, events_ticket()).await;
    let list = h
        .get(&format!("/api/containers?ticket={ticket}"), None)
        .await;
    assert_eq!(list.status, StatusCode::UNAUTHORIZED);
    assert!(list.text().contains("Authorization"), "{}", list.text());
    // An attach ticket does not open the lease's logs.
    let session = alice_session(&h, &first).await;
    let ticket = h.ticket(&alice, &attach_ticket(&first, &session)).await;
    let logs = h
        .get(&format!("/ws/logs/{first}?ticket={ticket}"), None)
        .await;
    assert_eq!(logs.status, StatusCode::UNAUTHORIZED);
    // The right one gets past authentication (to the WebSocket handshake,
    // which this plain GET is not).
    let ticket = h.ticket(&alice, &logs_ticket(&first)).await;
    let logs = h
        .get(&format!("/ws/logs/{first}?ticket={ticket}"), None)
        .await;
    assert_ne!(logs.status, StatusCode::UNAUTHORIZED, "{}", logs.text());
    assert_ne!(logs.status, StatusCode::NOT_FOUND, "{}", logs.text());
}

#[tokio::test]
async fn tickets_are_for_the_callers_own_leases_admins_any() {
    let h = Harness::with_auth();
    let lease = alice_lease(&h).await;
    // Bob cannot get one for alice's lease: 404, as everywhere.
    for body in [
        logs_ticket(&lease),
        attach_ticket(&lease, &alice_session(&h, &lease).await),
    ] {
        let reply = h
            .call(
                Method::POST,
                "/api/tickets",
                Some(&h.tokens.bob),
                Some(&body),
            )
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(reply.error_code(), "not_found");
    }
    // Nor anyone for a lease that does not exist.
    let reply = h
        .call(
            Method::POST,
            "/api/tickets",
            Some(&h.tokens.alice),
            Some(&logs_ticket(NO_LEASE)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    // A ticket alice minted is alice's: her lease's logs, which bob's
    // header could not open.
    let bobs = h
        .get(&format!("/ws/logs/{lease}"), Some(&h.tokens.bob))
        .await;
    assert_eq!(bobs.status, StatusCode::NOT_FOUND);
    // The admin may, and the ticket opens the logs.
    let ticket = h.ticket(&h.tokens.admin, &logs_ticket(&lease)).await;
    let logs = h
        .get(&format!("/ws/logs/{lease}?ticket={ticket}"), None)
        .await;
    assert_ne!(logs.status, StatusCode::UNAUTHORIZED, "{}", logs.text());
    assert_ne!(logs.status, StatusCode::NOT_FOUND, "{}", logs.text());
    // Without a token, no ticket.
    let reply = h
        .call(Method::POST, "/api/tickets", None, Some(events_ticket()))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tokens_in_urls_are_refused_on_every_stream_route() {
    let h = Harness::with_auth();
    let alice = h.tokens.alice.clone();
    let lease = alice_lease(&h).await;
    let session = alice_session(&h, &lease).await;
    for uri in [
        format!("/api/events?token={alice}"),
        format!("/ws/logs/{lease}?token={alice}"),
        format!("/api/containers/{lease}/sessions/{session}/attach?token={alice}"),
        // With a valid ticket beside it, too.
        format!(
            "/api/events?ticket={}&token={alice}",
            h.ticket(&alice, events_ticket()).await
        ),
    ] {
        let reply = h.get(&uri, None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{uri}");
        let json = reply.json();
        let message = json["error"]["message"].as_str().unwrap();
        assert!(message.contains("/api/tickets"), "{message}");
        assert!(!message.contains(&alice), "the token is echoed: {message}");
    }
}

#[tokio::test]
async fn a_caller_holds_at_most_64_unused_tickets() {
    let h = unrated();
    let alice = h.tokens.alice.clone();
    let mut tickets = Vec::new();
    for _ in 0..MAX_TICKETS_PER_CALLER {
        tickets.push(h.ticket(&alice, events_ticket()).await);
    }
    let over = h
        .call(
            Method::POST,
            "/api/tickets",
            Some(&alice),
            Some(events_ticket()),
        )
        .await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(over.error_code(), "too_many_tickets");
    // Another caller is not affected.
    h.ticket(&h.tokens.bob, events_ticket()).await;
    // Spending one makes room for one.
    assert_eq!(
        open_status(&h, &format!("/api/events?ticket={}", tickets[0])).await,
        StatusCode::OK
    );
    h.ticket(&alice, events_ticket()).await;
    let over = h
        .call(
            Method::POST,
            "/api/tickets",
            Some(&alice),
            Some(events_ticket()),
        )
        .await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn expired_tickets_make_room_again() {
    let h = Harness::with(Options {
        auth: true,
        manual_clock: true,
        limits: Some(Limits::default().rate(None)),
        ..Options::default()
    });
    let alice = h.tokens.alice.clone();
    for _ in 0..MAX_TICKETS_PER_CALLER {
        h.ticket(&alice, events_ticket()).await;
    }
    h.clock
        .as_ref()
        .unwrap()
        .advance(chrono::Duration::seconds(30));
    for _ in 0..MAX_TICKETS_PER_CALLER {
        h.ticket(&alice, events_ticket()).await;
    }
}

#[tokio::test]
async fn minting_is_rate_limited_like_other_writes() {
    let h = Harness::with_auth();
    let alice = h.tokens.alice.clone();
    let mut statuses = Vec::new();
    for _ in 0..MAX_TICKETS_PER_CALLER {
        let reply = h
            .call(
                Method::POST,
                "/api/tickets",
                Some(&alice),
                Some(events_ticket()),
            )
            .await;
        let code = reply.status.is_client_error().then(|| reply.error_code());
        statuses.push((reply.status, code));
    }
    // The default burst is 60.
    assert!(
        statuses
            .iter()
            .any(|(status, code)| *status == StatusCode::TOO_MANY_REQUESTS
                && code.as_deref() == Some("rate_limited")),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn hostile_bodies_are_refused() {
    let h = unrated();
    let alice = h.tokens.alice.clone();
    let lease = alice_lease(&h).await;
    let cases: Vec<(String, &str)> = vec![
        (r#"{"route":"shell"}"#.into(), "invalid_request"),
        (r#"{"route":""}"#.into(), "invalid_request"),
        (r#"{"route":7}"#.into(), "invalid_request"),
        (r#"{}"#.into(), "invalid_request"),
        (r#"{"route":"events","extra":1}"#.into(), "invalid_request"),
        (
            format!(r#"{{"route":"events","leaseId":"{lease}"}}"#),
            "invalid_request",
        ),
        (r#"{"route":"logs"}"#.into(), "invalid_request"),
        (
            r#"{"route":"logs","leaseId":"nope"}"#.into(),
            "invalid_request",
        ),
        (
            r#"{"route":"logs","leaseId":"container-a/../b"}"#.into(),
            "invalid_request",
        ),
        (
            format!(r#"{{"route":"logs","leaseId":"{}"}}"#, "x".repeat(5000)),
            "invalid_request",
        ),
        (
            format!(r#"{{"route":"logs","leaseId":"{lease}","sessionId":"{SESSION}"}}"#),
            "invalid_request",
        ),
        (
            format!(r#"{{"route":"attach","leaseId":"{lease}"}}"#),
            "invalid_request",
        ),
        (
            format!(r#"{{"route":"attach","leaseId":"{lease}","sessionId":"ABC"}}"#),
            "invalid_request",
        ),
        (
            format!(
                r#"{{"route":"attach","leaseId":"{lease}","sessionId":"{}"}}"#,
                "a".repeat(27)
            ),
            "invalid_request",
        ),
        (
            format!(
                r#"{{"route":"attach","leaseId":"{lease}","sessionId":"abcdefghijklmnopqrstuvwxy\u0000"}}"#
            ),
            "invalid_request",
        ),
        (r#"["events"]"#.into(), "invalid_request"),
        (r#"{"route":"events""#.into(), "invalid_json"),
        ("not json".into(), "invalid_json"),
    ];
    for (body, code) in cases {
        let reply = h
            .call(Method::POST, "/api/tickets", Some(&alice), Some(&body))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text()
        );
        assert_eq!(reply.error_code(), code, "{body}");
    }
    // Bigger than the body limit: 413, as on every route.
    let huge = format!(r#"{{"route":"events","pad":"{}"}}"#, "x".repeat(70_000));
    let reply = h
        .call(Method::POST, "/api/tickets", Some(&alice), Some(&huge))
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.error_code(), "payload_too_large");
    // Not JSON at all.
    let reply = h
        .send(
            Request::post("/api/tickets")
                .header("authorization", format!("Bearer {alice}"))
                .body(Body::from(r#"{"route":"events"}"#))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Hostile tickets in the URL.
    for ticket in ["", "%00", "tkt_", &"a".repeat(10_000), "tkt_%ff%fe"] {
        let reply = h.get(&format!("/api/events?ticket={ticket}"), None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{ticket}");
    }
}

#[tokio::test]
async fn single_user_streams_need_no_ticket_but_take_one() {
    let h = Harness::new();
    assert_eq!(open_status(&h, "/api/events").await, StatusCode::OK);
    let reply = h
        .call(Method::POST, "/api/tickets", None, Some(events_ticket()))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let ticket = reply.json()["ticket"].as_str().unwrap().to_owned();
    assert_eq!(
        open_status(&h, &format!("/api/events?ticket={ticket}")).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn attach_tickets_open_that_session_once() {
    let h = Harness::with_auth();
    let address = h.serve().await;
    let alice = h.tokens.alice.clone();
    let lease = alice_lease(&h).await;
    let session = alice_session(&h, &lease).await;
    let url = format!("ws://{address}/api/containers/{lease}/sessions/{session}/attach");
    let ticket = h.ticket(&alice, &attach_ticket(&lease, &session)).await;
    let with_ticket = format!("{url}?offset=0&ticket={ticket}");
    let (mut socket, _) = tokio_tungstenite::connect_async(with_ticket.as_str())
        .await
        .expect("the ticket opens the attach socket");
    let first = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("a message within 5 s")
        .expect("socket open")
        .expect("a frame");
    let Message::Text(text) = first else {
        panic!("expected the attached message, got {first:?}")
    };
    let attached: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(attached["type"], "attached");
    assert_eq!(attached["sessionId"], session.as_str());
    drop(socket);
    // Spent.
    assert_eq!(
        refused_upgrade(&with_ticket).await,
        StatusCode::UNAUTHORIZED
    );
    // The token in the URL, no credential, a logs ticket: refused.
    assert_eq!(
        refused_upgrade(&format!("{url}?token={alice}")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(refused_upgrade(&url).await, StatusCode::UNAUTHORIZED);
    let logs = h.ticket(&alice, &logs_ticket(&lease)).await;
    assert_eq!(
        refused_upgrade(&format!("{url}?ticket={logs}")).await,
        StatusCode::UNAUTHORIZED
    );
    // A ticket for another session of the same lease does not open this one.
    let other = alice_session(&h, &lease).await;
    let ticket = h.ticket(&alice, &attach_ticket(&lease, &other)).await;
    assert_eq!(
        refused_upgrade(&format!("{url}?ticket={ticket}")).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn attach_tickets_need_the_callers_session() {
    let h = Harness::with_auth();
    let lease = alice_lease(&h).await;
    let session = alice_session(&h, &lease).await;
    let mint = |token: String, body: String| {
        let h = &h;
        async move {
            h.call(Method::POST, "/api/tickets", Some(&token), Some(&body))
                .await
        }
    };
    // A well-formed session id that is not there: 404.
    let reply = mint(h.tokens.alice.clone(), attach_ticket(&lease, SESSION)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "not_found");
    // Bob: 404 for alice's session.
    let reply = mint(h.tokens.bob.clone(), attach_ticket(&lease, &session)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    // A session of another lease: 404.
    let second = alice_lease(&h).await;
    let reply = mint(h.tokens.alice.clone(), attach_ticket(&second, &session)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    // Alice and the admin: 201.
    for token in [h.tokens.alice.clone(), h.tokens.admin.clone()] {
        let reply = mint(token, attach_ticket(&lease, &session)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    }
}
