//! The port proxy's routes with hostile input (no Docker: the fake
//! runtime's leases have no address; the proxy itself is tested end to end
//! in `examples/server/tests/ports.rs`).
// Test code: a panic is how a check reports failure, helpers included.
#![allow(clippy::unwrap_used)]

mod harness;

use axum::http::{Method, StatusCode};
use harness::Harness;

async fn running(h: &Harness, token: &str) -> String {
    let lease = h
        .provision(Some(token), r#"{"imageType":"alpine","durationMinutes":2}"#)
        .await;
    let id = lease["id"].as_str().unwrap().to_owned();
    h.wait_status(&id, Some(token), "running").await;
    id
}

#[tokio::test]
async fn link_requests_with_hostile_input_are_refused_clearly() {
    let h = Harness::with_auth();
    let tokens = h.tokens.clone();
    let id = running(&h, &tokens.alice).await;
    let links = format!("/api/containers/{id}/ports/8080/links");
    let post = |uri: String, body: &'static str| {
        let h = &h;
        let token = tokens.alice.clone();
        async move { h.call(Method::POST, &uri, Some(&token), Some(body)).await }
    };
    for (body, code) in [
        (r#"{"expiresInSeconds":0}"#, "invalid_request"),
        (r#"{"expiresInSeconds":-5}"#, "invalid_request"),
        (r#"{"expiresInSeconds":"soon"}"#, "invalid_request"),
        (r#"{"public":"yes"}"#, "invalid_request"),
        (r#"{"unknown":1}"#, "invalid_request"),
        (r#"[1,2]"#, "invalid_request"),
    ] {
        let reply = post(links.clone(), body).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text()
        );
        assert_eq!(reply.error_code(), code, "{body}");
    }
    for port in ["0", "65536", "x", "-1", "99999999999999999999"] {
        let reply = post(format!("/api/containers/{id}/ports/{port}/links"), "{}").await;
        assert_eq!(reply.error_code(), "invalid_port", "{port}");
    }
    // Another owner and unknown leases: 404; no token: 401.
    let bob = h
        .call(Method::POST, &links, Some(&tokens.bob), Some("{}"))
        .await;
    assert_eq!(bob.status, StatusCode::NOT_FOUND);
    let listed = h.get(&links, Some(&tokens.bob)).await;
    assert_eq!(listed.status, StatusCode::NOT_FOUND);
    let anonymous = h.call(Method::POST, &links, None, Some("{}")).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    // A link: its expiry is cut at the lease's end (2 minutes here).
    let reply = post(links.clone(), r#"{"expiresInSeconds":86400,"public":true}"#).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let link = reply.json();
    let lease = h
        .get(&format!("/api/containers/{id}/status"), Some(&tokens.alice))
        .await
        .json();
    assert_eq!(link["expiresAt"], lease["expiryAt"], "{link} {lease}");
    // Its secret is no API token.
    let secret = link["secret"].as_str().unwrap();
    let api = h.get("/api/containers", Some(secret)).await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
    // Revoking: someone else's or an unknown link is 404.
    let link_id = link["linkId"].as_str().unwrap();
    let revoke = format!("/api/containers/{id}/links/{link_id}");
    let by_bob = h
        .call(Method::DELETE, &revoke, Some(&tokens.bob), None)
        .await;
    assert_eq!(by_bob.status, StatusCode::NOT_FOUND);
    let unknown = format!("/api/containers/{id}/links/lnk_nope");
    let reply = h
        .call(Method::DELETE, &unknown, Some(&tokens.alice), None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = h
        .call(Method::DELETE, &revoke, Some(&tokens.alice), None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn the_proxy_refuses_bad_ports_strangers_and_leases_without_an_address() {
    let h = Harness::with_auth();
    let tokens = h.tokens.clone();
    let id = running(&h, &tokens.alice).await;
    for port in ["0", "65536", "http"] {
        let reply = h
            .get(&format!("/leases/{id}/ports/{port}/"), Some(&tokens.alice))
            .await;
        assert_eq!(reply.error_code(), "invalid_port", "{port}");
    }
    let bob = h
        .get(&format!("/leases/{id}/ports/80/"), Some(&tokens.bob))
        .await;
    assert_eq!(bob.status, StatusCode::NOT_FOUND);
    let none = h.get(&format!("/leases/{id}/ports/80/"), None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    let forged = h
        .get(&format!("/leases/{id}/ports/80/"), Some("prv_forged"))
        .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    let public = h.get("/p/prv_forged/", None).await;
    assert_eq!(public.status, StatusCode::NOT_FOUND);
    // The fake runtime reports no address: as a lease with network = none.
    let reply = h
        .get(&format!("/leases/{id}/ports/80/"), Some(&tokens.alice))
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text());
    assert_eq!(reply.error_code(), "no_network");
}

#[tokio::test]
async fn single_user_mode_refuses_preview_hosts_without_a_preview_domain() {
    let h = Harness::new();
    let request = axum::http::Request::get("/index.html")
        .header("host", "8080-abcdefghijklmnopqrst.leases.test")
        .body(axum::body::Body::empty())
        .unwrap();
    let reply = h.send_as_is(request).await;
    assert_eq!(
        reply.status,
        StatusCode::MISDIRECTED_REQUEST,
        "{}",
        reply.text()
    );
    // The path form answers loopback hosts only, whatever the page's origin.
    let request = axum::http::Request::get("/leases/container-abcdefghijklmnopqrst/ports/80/")
        .header("host", "evil.example:8080")
        .body(axum::body::Body::empty())
        .unwrap();
    let reply = h.send_as_is(request).await;
    assert_eq!(
        reply.status,
        StatusCode::MISDIRECTED_REQUEST,
        "{}",
        reply.text()
    );
}
