//! Tokens, isolation between owners, and admins.
// Test code: a panic is how a check reports failure, helpers included.
#![allow(clippy::unwrap_used)]

mod harness;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use harness::Harness;

#[tokio::test]
async fn missing_or_wrong_tokens_get_401_with_www_authenticate() {
    let h = Harness::with_auth();
    for (uri, token) in [
        ("/api/containers", None),
        ("/api/containers", Some("clt_wrong")),
        ("/api/catalog", None),
        ("/api/usage", None),
        ("/api/history", None),
        ("/api/events", None),
        ("/metrics", None),
        ("/ws/logs/container-aaaaaaaaaaaaaaaaaaaa", None),
    ] {
        let reply = h.get(uri, token).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(reply.error_code(), "unauthorized");
        let challenge = reply.headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
    }
    let provision = h
        .call(
            Method::POST,
            "/api/provision",
            None,
            Some(r#"{"imageType":"alpine"}"#),
        )
        .await;
    assert_eq!(provision.status, StatusCode::UNAUTHORIZED);
    // A non-bearer scheme is refused too.
    let basic = h
        .send(
            Request::get("/api/containers")
                .header("authorization", format!("Basic {}", h.tokens.alice))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.runtime.create_calls(), 0);
}

#[tokio::test]
async fn health_readiness_and_openapi_need_no_token() {
    let h = Harness::with_auth();
    for uri in ["/healthz", "/readyz", "/openapi.json"] {
        assert_eq!(h.get(uri, None).await.status, StatusCode::OK, "{uri}");
    }
    // Every owner's figures: not for a non-admin (tests/operators.rs has the rest).
    let metrics = h.get("/metrics", Some(&h.tokens.bob)).await;
    assert_eq!(metrics.status, StatusCode::FORBIDDEN);
    assert_eq!(metrics.error_code(), "forbidden");
}

#[tokio::test]
async fn owners_only_see_and_touch_their_own_leases() {
    let h = Harness::with_auth();
    let (alice, bob) = (h.tokens.alice.clone(), h.tokens.bob.clone());
    let lease = h
        .provision(
            Some(&alice),
            r#"{"imageType":"alpine","durationMinutes":10}"#,
        )
        .await;
    assert_eq!(lease["owner"], "alice");
    let id = lease["id"].as_str().unwrap();
    h.wait_status(id, Some(&alice), "running").await;

    // Bob's list is empty; each of alice's ids is 404 for him, exactly like an unknown id.
    let bobs = h.get("/api/containers", Some(&bob)).await.json();
    assert_eq!(bobs["containers"].as_array().unwrap().len(), 0);
    let unknown = "container-zzzzzzzzzzzzzzzzzzzz";
    for (method, path, body) in [
        (Method::GET, "/api/containers/{}/status", None),
        (Method::DELETE, "/api/containers/{}", None),
        (
            Method::POST,
            "/api/containers/{}/extend",
            Some(r#"{"minutes":5}"#),
        ),
        (Method::GET, "/ws/logs/{}", None),
    ] {
        let theirs = h
            .call(method.clone(), &path.replace("{}", id), Some(&bob), body)
            .await;
        let nobodys = h
            .call(
                method.clone(),
                &path.replace("{}", unknown),
                Some(&bob),
                body,
            )
            .await;
        assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(nobodys.status, StatusCode::NOT_FOUND);
        assert_eq!(theirs.error_code(), nobodys.error_code());
    }
    // Nothing bob did touched it.
    let still = h.wait_status(id, Some(&alice), "running").await;
    assert_eq!(still["durationMinutes"], 10);

    // Usage and history are per owner.
    let usage = h.get("/api/usage", Some(&bob)).await.json();
    assert_eq!(usage["owner"], "bob");
    assert_eq!(usage["activeLeases"], 0);
    let peek = h.get("/api/usage?owner=alice", Some(&bob)).await;
    assert_eq!(peek.status, StatusCode::FORBIDDEN);
    assert_eq!(peek.error_code(), "forbidden");
    let peek_list = h.get("/api/containers?owner=alice", Some(&bob)).await;
    assert_eq!(peek_list.status, StatusCode::FORBIDDEN);
    let own = h.get("/api/containers?owner=bob", Some(&bob)).await;
    assert_eq!(own.status, StatusCode::OK);
}

#[tokio::test]
async fn admins_see_and_manage_all() {
    let h = Harness::with_auth();
    let (alice, bob, admin) = (
        h.tokens.alice.clone(),
        h.tokens.bob.clone(),
        h.tokens.admin.clone(),
    );
    let a = h.provision(Some(&alice), r#"{"imageType":"alpine"}"#).await;
    let b = h.provision(Some(&bob), r#"{"imageType":"ubuntu"}"#).await;
    let all = h.get("/api/containers", Some(&admin)).await.json();
    assert_eq!(all["containers"].as_array().unwrap().len(), 2);
    let only_bob = h
        .get("/api/containers?owner=bob", Some(&admin))
        .await
        .json();
    let only_bob = only_bob["containers"].as_array().unwrap();
    assert_eq!(only_bob.len(), 1);
    assert_eq!(only_bob[0]["id"], b["id"]);
    let usage = h.get("/api/usage?owner=alice", Some(&admin)).await.json();
    assert_eq!(usage["owner"], "alice");
    assert_eq!(usage["activeLeases"], 1);

    let id = a["id"].as_str().unwrap();
    let status = h
        .get(&format!("/api/containers/{id}/status"), Some(&admin))
        .await;
    assert_eq!(status.status, StatusCode::OK);
    let deleted = h
        .call(
            Method::DELETE,
            &format!("/api/containers/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    h.wait_status(id, Some(&alice), "deleted").await;
}

#[tokio::test]
async fn tokens_in_urls_are_refused_everywhere() {
    let h = Harness::with_auth();
    let token = h.tokens.alice.clone();
    // Tokens in URLs end up in logs: refused, with a pointer to tickets.
    for uri in [
        format!("/api/containers?token={token}"),
        format!("/api/events?token={token}"),
        format!("/ws/logs/container-zzzzzzzzzzzzzzzzzzzz?token={token}"),
    ] {
        let reply = h.get(&uri, None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(reply.error_code(), "unauthorized");
        assert!(
            reply.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("/api/tickets")
        );
    }
    // Even beside a valid header.
    let reply = h
        .get(&format!("/api/containers?token={token}"), Some(&token))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // The header alone still works on the streams.
    let events = h
        .response(
            Request::get("/api/events")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(events.status(), StatusCode::OK);
}

#[tokio::test]
async fn single_user_mode_acts_as_local() {
    let h = Harness::new();
    let lease = h.provision(None, r#"{"imageType":"alpine"}"#).await;
    assert_eq!(lease["owner"], "local");
    // A stray token header changes nothing.
    let list = h.get("/api/containers", Some("anything")).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json()["containers"].as_array().unwrap().len(), 1);
}

/// The host's capacity is shared by all owners: bob is refused with 503
/// `capacity_exhausted` (with `Retry-After`) when alice's lease fills it,
/// without learning who holds it; everyone sees the limits in
/// `/api/usage`, only admins what is in use.
#[tokio::test]
async fn host_capacity_is_503_and_only_admins_see_what_is_in_use() {
    let h = Harness::with(harness::Options {
        auth: true,
        config: lease_core::ManagerConfig {
            max_leases: Some(1),
            max_nano_cpus: Some(4_500_000_000),
            max_memory_mb: Some(4096),
            ..lease_core::ManagerConfig::with_namespace("test-http")
        },
        ..harness::Options::default()
    });
    let (alice, bob, admin) = (
        h.tokens.alice.clone(),
        h.tokens.bob.clone(),
        h.tokens.admin.clone(),
    );
    h.provision(Some(&alice), r#"{"imageType":"alpine"}"#).await;
    let full = h
        .call(
            Method::POST,
            "/api/provision",
            Some(&bob),
            Some(r#"{"imageType":"alpine"}"#),
        )
        .await;
    assert_eq!(
        full.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        full.text()
    );
    assert_eq!(full.error_code(), "capacity_exhausted");
    assert_eq!(full.json()["error"]["limit"], "max_leases");
    assert_eq!(full.headers["retry-after"], "30");
    let message = full.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("the limit is 1"), "{message}");
    assert!(
        !message.contains("alice"),
        "another owner is not named: {message}"
    );
    let bobs = h.get("/api/containers", Some(&bob)).await.json();
    assert_eq!(
        bobs["containers"].as_array().unwrap().len(),
        0,
        "nothing stored"
    );

    let usage = h.get("/api/usage", Some(&bob)).await.json();
    let capacity = &usage["limits"]["capacity"];
    assert_eq!(capacity["maxLeases"], 1);
    assert_eq!(capacity["maxCpus"], 4.5);
    assert_eq!(capacity["maxMemoryMb"], 4096);
    assert!(capacity.get("inUse").is_none(), "{capacity}");

    let usage = h.get("/api/usage", Some(&admin)).await.json();
    let in_use = &usage["limits"]["capacity"]["inUse"];
    assert_eq!(in_use["leases"], 1, "{usage}");
    assert_eq!(in_use["cpus"], 0.5, "{usage}");
    assert_eq!(in_use["memoryMb"], 256, "{usage}");
}
