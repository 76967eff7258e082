//! Operators' endpoints: `/metrics` for admins and the scrape token only,
//! `/readyz` details for operators only, and tokens replaced while serving.
// Test code: a panic is how a check reports failure, helpers included.
#![allow(clippy::unwrap_used)]

mod harness;

use axum::http::StatusCode;
use harness::{Harness, Options};
use lease_http::auth::{TokenFile, mint_token};

const SCRAPE: &str = "scrape-6c0d1f2e3a4b5c6d7e8f";

fn with_scrape_token() -> Harness {
    Harness::with(Options {
        auth: true,
        metrics_token: Some(SCRAPE.to_owned()),
        ..Options::default()
    })
}

#[tokio::test]
async fn metrics_are_for_admins_and_the_scrape_token() {
    let h = with_scrape_token();
    h.provision(Some(&h.tokens.alice), r#"{"imageType":"alpine"}"#)
        .await;

    for (token, status, code) in [
        (None, StatusCode::UNAUTHORIZED, "unauthorized"),
        (Some("clt_wrong"), StatusCode::UNAUTHORIZED, "unauthorized"),
        (
            Some(h.tokens.bob.as_str()),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            Some(h.tokens.alice.as_str()),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
    ] {
        let reply = h.get("/metrics", token).await;
        assert_eq!(reply.status, status, "{token:?}: {}", reply.text());
        assert_eq!(reply.error_code(), code);
        assert!(!reply.text().contains("containerlease_"), "figures leaked");
    }
    for token in [h.tokens.admin.as_str(), SCRAPE] {
        let reply = h.get("/metrics", Some(token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let text = reply.text();
        assert!(text.contains("containerlease_leases{status="), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
    // The scrape token reads metrics and nothing else, and only from the header.
    for uri in ["/api/containers", "/api/usage", "/api/events"] {
        let reply = h.get(uri, Some(SCRAPE)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let in_url = h.get(&format!("/metrics?token={SCRAPE}"), None).await;
    assert_eq!(in_url.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn without_a_scrape_token_only_admins_read_metrics() {
    let h = Harness::with_auth();
    assert_eq!(
        h.get("/metrics", Some(SCRAPE)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.get("/metrics", Some(&h.tokens.admin)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn readiness_tells_anonymous_callers_ready_or_not_and_nothing_more() {
    let h = with_scrape_token();
    let ready = h.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json(), serde_json::json!({"ready": true}));
    // A non-admin and the scrape token (a prober may send it) get no more.
    for token in [h.tokens.bob.as_str(), SCRAPE] {
        let reply = h.get("/readyz", Some(token)).await;
        assert_eq!(reply.json(), serde_json::json!({"ready": true}));
    }
    let admin = h.get("/readyz", Some(&h.tokens.admin)).await;
    assert_eq!(admin.status, StatusCode::OK);
    assert_eq!(admin.json()["checks"]["runtime"], "ok");

    h.runtime.set_unavailable(true);
    for token in [None, Some(h.tokens.bob.as_str()), Some(SCRAPE)] {
        let down = h.get("/readyz", token).await;
        assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.error_code(), "not_ready");
        let body = down.json();
        assert_eq!(body["ready"], false);
        let text = down.text().to_lowercase();
        assert!(
            !text.contains("runtime") && !text.contains("store") && !text.contains("docker"),
            "details leaked: {text}"
        );
    }
    let admin = h.get("/readyz", Some(&h.tokens.admin)).await;
    assert_eq!(admin.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(admin.error_code(), "not_ready");
    assert!(admin.text().contains("runtime"), "{}", admin.text());

    let wrong = h.get("/readyz", Some("clt_wrong")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    h.runtime.set_unavailable(false);
    assert_eq!(h.get("/readyz", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn replaced_tokens_take_effect_at_once() {
    let h = Harness::with_auth();
    let carol = mint_token("carol", false).unwrap();
    let admin_entry = h.get("/api/containers", Some(&h.tokens.admin)).await.status;
    assert_eq!(admin_entry, StatusCode::OK);
    assert_eq!(
        h.get("/api/containers", Some(&h.tokens.bob)).await.status,
        StatusCode::OK
    );

    // Bob revoked, carol added; alice and the admin are gone too in this file.
    let change = h
        .token_set
        .as_ref()
        .unwrap()
        .replace(TokenFile::from_toml(&carol.toml_entry).unwrap());
    assert_eq!((change.added, change.removed, change.total), (1, 3, 1));
    for revoked in [&h.tokens.bob, &h.tokens.alice, &h.tokens.admin] {
        let reply = h.get("/api/containers", Some(revoked)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let reply = h.get("/api/usage", Some(&carol.token)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["owner"], "carol");
    // The admin token no longer reads metrics either.
    assert_eq!(
        h.get("/metrics", Some(&h.tokens.admin)).await.status,
        StatusCode::UNAUTHORIZED
    );
}
