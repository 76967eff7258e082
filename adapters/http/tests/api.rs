//! Every endpoint and status code, in process, with the seed's JSON fields.
// Test code: a panic is how a check reports failure, helpers included.
#![allow(clippy::unwrap_used)]

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use harness::{Harness, Options};
use lease_core::ManagerConfig;
use serde_json::Value;

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().expect("object").keys().cloned().collect()
}

fn is_seed_time(text: &Value) -> bool {
    let text = text.as_str().unwrap_or_default();
    chrono::DateTime::parse_from_rfc3339(text).is_ok() && text.len() == 20 && text.ends_with('Z')
}

const SEED_FIELDS: [&str; 12] = [
    "id",
    "imageType",
    "status",
    "cost",
    "createdAt",
    "expiryAt",
    "expiryTime",
    "expiresIn",
    "dockerId",
    "error",
    "accruedCost",
    "owner",
];

#[tokio::test]
async fn provision_answers_202_pending_with_the_seed_fields() {
    let h = Harness::new();
    h.runtime.hang_creates(true);
    let lease = h
        .provision(None, r#"{"imageType":"alpine","durationMinutes":2}"#)
        .await;
    let fields = keys(&lease);
    for field in SEED_FIELDS {
        assert!(fields.contains(field), "missing {field}: {lease}");
    }
    assert_eq!(lease["status"], "pending");
    assert_eq!(lease["imageType"], "alpine");
    assert_eq!(lease["owner"], "local");
    assert_eq!(lease["cost"], 0.000333333);
    assert_eq!(lease["durationMinutes"], 2);
    assert!(lease["id"].as_str().unwrap().starts_with("container-"));
    assert!(is_seed_time(&lease["createdAt"]), "{}", lease["createdAt"]);
    assert!(is_seed_time(&lease["expiryAt"]));
    assert_eq!(lease["expiryTime"], lease["expiryAt"]);
    let expires_in = lease["expiresIn"].as_i64().unwrap();
    assert!((119..=120).contains(&expires_in), "{expires_in}");
    assert_eq!(lease["dockerId"], Value::Null);
    assert_eq!(lease["error"], Value::Null);

    // While pending, the status shows the image-pull progress.
    let id = lease["id"].as_str().unwrap();
    let mut progress = Value::Null;
    for _ in 0..100 {
        let status = h
            .get(&format!("/api/containers/{id}/status"), None)
            .await
            .json();
        assert_eq!(status["status"], "pending");
        if !status["pullProgress"].is_null() {
            progress = status["pullProgress"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(progress["layersDone"], 1, "{progress}");
    assert_eq!(progress["status"], "present");
    h.runtime.release_hung_creates();
    let running = h.wait_status(id, None, "running").await;
    assert!(running["dockerId"].as_str().unwrap().starts_with("fake"));
    assert!(running.get("pullProgress").is_none());
}

#[tokio::test]
async fn duration_defaults_to_two_hours() {
    let h = Harness::new();
    let lease = h.provision(None, r#"{"imageType":"ubuntu"}"#).await;
    assert_eq!(lease["durationMinutes"], 120);
    assert_eq!(lease["cost"], 0.08);
}

#[tokio::test]
async fn list_shows_active_leases_with_cost_and_expiry() {
    let h = Harness::new();
    let empty = h.get("/api/containers", None).await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.json(), serde_json::json!({"containers": []}));

    let a = h
        .provision(None, r#"{"imageType":"alpine","durationMinutes":2}"#)
        .await;
    let b = h
        .provision(None, r#"{"imageType":"ubuntu","durationMinutes":60}"#)
        .await;
    h.wait_status(a["id"].as_str().unwrap(), None, "running")
        .await;
    let list = h.get("/api/containers", None).await.json();
    assert_eq!(keys(&list), BTreeSet::from(["containers".to_owned()]));
    let containers = list["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0]["id"], a["id"]);
    assert_eq!(containers[1]["id"], b["id"]);
    assert_eq!(containers[1]["cost"], 0.04);
    for container in containers {
        for field in SEED_FIELDS {
            assert!(container.get(field).is_some(), "missing {field}");
        }
        assert!(container["expiresIn"].as_i64().unwrap() > 0);
    }
    // Filtered by status.
    let pending_only = h.get("/api/containers?status=deleting", None).await.json();
    assert_eq!(pending_only["containers"].as_array().unwrap().len(), 0);
    let bad = h.get("/api/containers?status=bogus", None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_code(), "bad_request");
}

#[tokio::test]
async fn delete_removes_early_and_history_records_it() {
    let h = Harness::new();
    let lease = h
        .provision(None, r#"{"imageType":"alpine","durationMinutes":5}"#)
        .await;
    let id = lease["id"].as_str().unwrap();
    h.wait_status(id, None, "running").await;

    let deleted = h
        .call(Method::DELETE, &format!("/api/containers/{id}"), None, None)
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    let body = deleted.json();
    assert!(["deleting", "deleted"].contains(&body["status"].as_str().unwrap()));
    assert_eq!(body["endReason"], "deleted");
    let gone = h.wait_status(id, None, "deleted").await;
    assert_eq!(gone["expiresIn"], 0);
    assert!(gone["finalCost"].as_f64().is_some());
    assert!(h.runtime.containers_in("test-http").is_empty());
    let list = h.get("/api/containers", None).await.json();
    assert_eq!(list["containers"].as_array().unwrap().len(), 0);

    // Deleting again is harmless.
    let again = h
        .call(Method::DELETE, &format!("/api/containers/{id}"), None, None)
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.json()["status"], "deleted");

    let history = h.get("/api/history", None).await.json();
    let leases = history["leases"].as_array().unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0]["id"], id);
    assert_eq!(leases[0]["endReason"], "deleted");
    assert!(history.get("nextCursor").is_none());

    // Paging.
    let page = h.get("/api/history?limit=1", None).await;
    assert_eq!(page.status, StatusCode::OK);
    let bad_cursor = h.get("/api/history?cursor=garbage", None).await;
    assert_eq!(bad_cursor.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_cursor.error_code(), "bad_request");
    let bad_limit = h.get("/api/history?limit=0", None).await;
    assert_eq!(bad_limit.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_lease_is_404_everywhere() {
    let h = Harness::new();
    let id = "container-aaaaaaaaaaaaaaaaaaaa";
    for (method, uri, body) in [
        (Method::GET, format!("/api/containers/{id}/status"), None),
        (Method::DELETE, format!("/api/containers/{id}"), None),
        (
            Method::POST,
            format!("/api/containers/{id}/extend"),
            Some(r#"{"minutes":5}"#),
        ),
        (Method::GET, format!("/ws/logs/{id}"), None),
    ] {
        let reply = h.call(method.clone(), &uri, None, body).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {uri}");
        assert_eq!(reply.error_code(), "not_found");
    }
}

#[tokio::test]
async fn extend_moves_expiry_and_cost_within_limits() {
    let h = Harness::new();
    let lease = h
        .provision(None, r#"{"imageType":"alpine","durationMinutes":60}"#)
        .await;
    let id = lease["id"].as_str().unwrap();
    let uri = format!("/api/containers/{id}/extend");
    let extended = h
        .call(Method::POST, &uri, None, Some(r#"{"minutes":30}"#))
        .await;
    assert_eq!(extended.status, StatusCode::OK, "{}", extended.text());
    let body = extended.json();
    assert_eq!(body["durationMinutes"], 90);
    assert_eq!(body["cost"], 0.015);
    let before = chrono::DateTime::parse_from_rfc3339(lease["expiryAt"].as_str().unwrap()).unwrap();
    let after = chrono::DateTime::parse_from_rfc3339(body["expiryAt"].as_str().unwrap()).unwrap();
    assert_eq!((after - before).num_minutes(), 30);

    // Past the max lifetime (480 minutes).
    let too_long = h
        .call(Method::POST, &uri, None, Some(r#"{"minutes":400}"#))
        .await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(too_long.error_code(), "validation_failed");
    assert_eq!(too_long.json()["error"]["field"], "minutes");

    // An ended lease cannot be extended.
    h.call(Method::DELETE, &format!("/api/containers/{id}"), None, None)
        .await;
    let ended = h
        .call(Method::POST, &uri, None, Some(r#"{"minutes":5}"#))
        .await;
    assert_eq!(ended.status, StatusCode::CONFLICT, "{}", ended.text());
    assert_eq!(ended.error_code(), "wrong_state");
}

#[tokio::test]
async fn catalog_lists_offerings_for_the_cost_estimate() {
    let h = Harness::new();
    let catalog = h.get("/api/catalog", None).await;
    assert_eq!(catalog.status, StatusCode::OK);
    let json = catalog.json();
    let offerings = json["offerings"].as_array().unwrap();
    assert_eq!(offerings.len(), 2);
    let alpine = &offerings[0];
    assert_eq!(
        keys(alpine),
        [
            "key",
            "image",
            "hourlyRate",
            "cpus",
            "memoryMb",
            "defaultMinutes",
            "maxMinutes",
            "network",
            "readOnly"
        ]
        .into_iter()
        .map(String::from)
        .collect()
    );
    assert_eq!(alpine["key"], "alpine");
    assert_eq!(alpine["hourlyRate"], 0.01);
    assert_eq!(alpine["cpus"], 0.5);
    assert_eq!(alpine["network"], "egress");
    assert_eq!(alpine["readOnly"], false);
    assert_eq!(offerings[1]["hourlyRate"], 0.04);
}

#[tokio::test]
async fn usage_counts_spend() {
    let h = Harness::with(Options {
        config: ManagerConfig {
            max_leases_per_owner: Some(5),
            ..ManagerConfig::with_namespace("test-http")
        },
        ..Options::default()
    });
    h.provision(None, r#"{"imageType":"ubuntu","durationMinutes":60}"#)
        .await;
    let usage = h.get("/api/usage", None).await;
    assert_eq!(usage.status, StatusCode::OK);
    let json = usage.json();
    assert_eq!(json["owner"], "local");
    assert_eq!(json["activeLeases"], 1);
    assert_eq!(json["estimatedCost"], 0.04);
    assert_eq!(json["spentToday"], 0.04);
    assert_eq!(json["endedLeases"], 0);
    assert_eq!(json["limits"]["maxLeasesPerOwner"], 5);
    assert_eq!(json["limits"]["maxDailySpend"], Value::Null);
    assert_eq!(json["limits"]["maxMinutes"], 480);
}

#[tokio::test]
async fn quotas_answer_429_naming_the_limit() {
    let h = Harness::with(Options {
        config: ManagerConfig {
            max_leases_per_owner: Some(2),
            max_daily_spend: Some("0.10".parse().unwrap()),
            ..ManagerConfig::with_namespace("test-http")
        },
        ..Options::default()
    });
    let first = h
        .provision(None, r#"{"imageType":"ubuntu","durationMinutes":60}"#)
        .await;
    h.provision(None, r#"{"imageType":"alpine","durationMinutes":60}"#)
        .await;
    let third = h
        .call(
            Method::POST,
            "/api/provision",
            None,
            Some(r#"{"imageType":"alpine","durationMinutes":1}"#),
        )
        .await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.error_code(), "quota_exceeded");
    let error = &third.json()["error"];
    assert_eq!(error["limit"], "max_leases_per_owner");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("max_leases_per_owner") && message.contains('2'),
        "{message}"
    );

    // Extending past the daily spend ($0.04 + $0.01 spent; +2h of ubuntu = $0.08).
    let id = first["id"].as_str().unwrap();
    let extend = h
        .call(
            Method::POST,
            &format!("/api/containers/{id}/extend"),
            None,
            Some(r#"{"minutes":120}"#),
        )
        .await;
    assert_eq!(
        extend.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        extend.text()
    );
    assert_eq!(extend.json()["error"]["limit"], "max_daily_spend");
    assert!(
        extend.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("0.1")
    );
}

#[tokio::test]
async fn daily_spend_quota_refuses_a_provision() {
    let h = Harness::with(Options {
        config: ManagerConfig {
            max_daily_spend: Some("0.05".parse().unwrap()),
            ..ManagerConfig::with_namespace("test-http")
        },
        ..Options::default()
    });
    let reply = h
        .call(
            Method::POST,
            "/api/provision",
            None,
            Some(r#"{"imageType":"ubuntu","durationMinutes":120}"#),
        )
        .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.json()["error"]["limit"], "max_daily_spend");
    assert_eq!(h.runtime.create_calls(), 0);
}

#[tokio::test]
async fn health_and_readiness() {
    let h = Harness::new();
    let health = h.get("/healthz", None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["status"], "ok");
    let ready = h.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["checks"]["runtime"], "ok");

    h.runtime.set_unavailable(true);
    let not_ready = h.get("/readyz", None).await;
    assert_eq!(not_ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(not_ready.error_code(), "not_ready");
    assert!(not_ready.text().contains("runtime"));
    // The server keeps serving.
    h.runtime.set_unavailable(false);
    assert_eq!(h.get("/readyz", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_provisions_and_reap_lateness() {
    let h = Harness::with(Options {
        manual_clock: true,
        ..Options::default()
    });
    let lease = h
        .provision(None, r#"{"imageType":"alpine","durationMinutes":1}"#)
        .await;
    let id = lease["id"].as_str().unwrap().to_owned();
    h.wait_status(&id, None, "running").await;
    let clock = h.clock.clone().unwrap();
    clock.advance(chrono::Duration::seconds(61));
    h.wait_status(&id, None, "deleted").await;

    let mut text = String::new();
    for _ in 0..100 {
        let reply = h.get("/metrics", None).await;
        assert_eq!(reply.status, StatusCode::OK);
        let content_type = reply.headers["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("application/openmetrics-text"));
        text = reply.text();
        if text.contains("containerlease_reap_lateness_seconds_count 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for expected in [
        "containerlease_leases{status=\"running\"} 0",
        "containerlease_provisions_total{result=\"requested\"} 1",
        "containerlease_provisions_total{result=\"running\"} 1",
        "containerlease_reaps_total{result=\"deleted\"} 1",
        "containerlease_provision_duration_seconds_count 1",
        "containerlease_reap_lateness_seconds_count 1",
        "containerlease_accrued_cost_dollars",
        "# EOF",
    ] {
        assert!(text.contains(expected), "missing {expected}:\n{text}");
    }
}

#[tokio::test]
async fn leases_gauge_counts_by_status() {
    let h = Harness::new();
    h.runtime.hang_creates(true);
    h.provision(None, r#"{"imageType":"alpine"}"#).await;
    let text = h.get("/metrics", None).await.text();
    assert!(
        text.contains("containerlease_leases{status=\"pending\"} 1"),
        "{text}"
    );
    h.runtime.release_hung_creates();
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_json() {
    let h = Harness::new();
    let missing = h.get("/api/nope", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "not_found");
    let wrong = h.call(Method::PUT, "/api/provision", None, None).await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.error_code(), "method_not_allowed");
    let allow = wrong
        .headers
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(allow.as_deref(), Some("POST"));
}

/// (method, path) of every route the router serves.
const ROUTES: [(&str, &str); 45] = [
    ("get", "/api/admin/stats"),
    ("post", "/api/provision"),
    ("get", "/api/containers"),
    ("get", "/api/containers/{id}/status"),
    ("delete", "/api/containers/{id}"),
    ("post", "/api/containers/{id}/extend"),
    ("get", "/api/catalog"),
    ("get", "/api/usage"),
    ("get", "/api/history"),
    ("get", "/api/events"),
    ("get", "/ws/logs/{id}"),
    ("post", "/api/tickets"),
    ("post", "/api/containers/{id}/sessions"),
    ("get", "/api/containers/{id}/sessions"),
    ("delete", "/api/containers/{id}/sessions/{sid}"),
    ("get", "/api/containers/{id}/sessions/{sid}/attach"),
    ("get", "/api/containers/{id}/files"),
    ("put", "/api/containers/{id}/files"),
    ("get", "/api/containers/{id}/ports/{port}/tcp"),
    ("post", "/api/containers/{id}/ports/{port}/links"),
    ("get", "/api/containers/{id}/ports/{port}/links"),
    ("delete", "/api/containers/{id}/links/{linkId}"),
    ("get", "/leases/{id}/ports/{port}/{rest}"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/api/auth"),
    ("get", "/api/me"),
    ("get", "/api/tokens"),
    ("post", "/api/tokens"),
    ("delete", "/api/tokens/{id}"),
    ("delete", "/api/admin/owners/{owner}/credentials"),
    ("get", "/auth/login"),
    ("get", "/auth/callback"),
    ("post", "/auth/logout"),
    ("post", "/auth/logout-everywhere"),
    ("get", "/auth/cli"),
    ("post", "/auth/cli/allow"),
    ("post", "/auth/cli/token"),
    ("post", "/auth/device"),
    ("get", "/auth/device"),
    ("post", "/auth/device/verify"),
    ("post", "/auth/device/allow"),
    ("post", "/auth/device/token"),
];

#[tokio::test]
async fn openapi_document_parses_and_lists_every_route() {
    let h = Harness::new();
    let reply = h.get("/openapi.json", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json();
    // It is a valid OpenAPI document by utoipa's own model...
    let parsed: utoipa::openapi::OpenApi =
        serde_json::from_slice(&reply.body).expect("an OpenAPI document");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths: std::collections::BTreeSet<&str> = ROUTES.iter().map(|(_, path)| *path).collect();
    assert_eq!(parsed.paths.paths.len(), paths.len());
    // ...and lists every route with its method.
    for (method, path) in ROUTES {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} missing");
        assert!(operation["responses"].is_object());
    }
    assert_eq!(doc["paths"].as_object().unwrap().len(), paths.len());
    // Every $ref resolves.
    let text = reply.text();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling $ref {name}"
        );
    }
    // The lease schema has the seed's fields.
    let lease = &doc["components"]["schemas"]["LeaseJson"]["properties"];
    for field in SEED_FIELDS {
        assert!(lease[field].is_object(), "schema lacks {field}");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let session = &doc["components"]["securitySchemes"]["session"];
    assert_eq!(session["type"], "apiKey");
    assert_eq!(session["in"], "cookie");
    assert_eq!(session["name"], "cl_session");
}

#[tokio::test]
async fn cors_only_for_configured_origins() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    let manager = lease_core::LeaseManager::builder(
        std::sync::Arc::new(lease_store_memory::MemoryStore::new()),
        std::sync::Arc::new(lease_core::testing::fake_runtime::FakeRuntime::default()),
    )
    .build()
    .unwrap();
    let origin = "http://localhost:5173";
    let app = lease_http::router(
        manager,
        lease_http::ApiConfig::default().cors_origins(vec![origin.parse().unwrap()]),
    );
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/api/provision")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(preflight).await.unwrap();
    assert!(response.status().is_success());
    assert_eq!(response.headers()["access-control-allow-origin"], origin);

    let foreign = Request::get("/api/containers")
        .header("origin", "https://evil.example")
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(foreign).await.unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
