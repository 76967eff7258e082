//! `GET /api/admin/stats` over the memory store and the fake runtime:
//! totals that match `/api/usage` to the nano-dollar, zero-filled days,
//! histogram percentiles, active leases counted, and who may read it.

mod harness;

use axum::http::{Method, StatusCode};
use chrono::Duration;
use harness::{Harness, Options};
use lease_core::testing::conformance::finished;
use lease_core::{Admission, EndReason, Lease, LeaseId, Money};
use serde_json::Value;

/// An amount in a JSON answer (a number of dollars or a decimal string).
fn money(value: &Value) -> Money {
    let text = match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    text.parse()
        .unwrap_or_else(|error| panic!("`{text}` is not an amount: {error}"))
}

fn harness() -> Harness {
    Harness::with(Options {
        auth: true,
        manual_clock: true,
        ..Options::default()
    })
}

async fn stats(h: &Harness, query: &str) -> Value {
    let reply = h
        .get(&format!("/api/admin/stats{query}"), Some(&h.tokens.admin))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()
}

fn owner_entry<'a>(json: &'a Value, owner: &str) -> &'a Value {
    json["owners"]
        .as_array()
        .expect("owners")
        .iter()
        .find(|entry| entry["owner"] == owner)
        .unwrap_or_else(|| panic!("no entry for {owner}: {json}"))
}

#[tokio::test]
async fn admin_totals_match_usage_to_the_nano_dollar_for_two_owners() {
    let h = harness();
    let clock = h.clock.clone().expect("manual clock");
    let (alice, bob) = (h.tokens.alice.clone(), h.tokens.bob.clone());
    let short = h
        .provision(
            Some(&alice),
            r#"{"imageType":"alpine","durationMinutes":1}"#,
        )
        .await;
    let early = h
        .provision(
            Some(&alice),
            r#"{"imageType":"ubuntu","durationMinutes":10}"#,
        )
        .await;
    let kept = h
        .provision(
            Some(&alice),
            r#"{"imageType":"alpine","durationMinutes":30}"#,
        )
        .await;
    let bobs = h
        .provision(Some(&bob), r#"{"imageType":"ubuntu","durationMinutes":20}"#)
        .await;
    for (lease, token) in [
        (&short, &alice),
        (&early, &alice),
        (&kept, &alice),
        (&bobs, &bob),
    ] {
        h.wait_status(lease["id"].as_str().expect("id"), Some(token), "running")
            .await;
    }
    clock.advance(Duration::seconds(17));
    let early_id = early["id"].as_str().expect("id");
    let deleted = h
        .call(
            Method::DELETE,
            &format!("/api/containers/{early_id}"),
            Some(&alice),
            None,
        )
        .await;
    assert!(deleted.status.is_success(), "{}", deleted.text());
    h.wait_status(early_id, Some(&alice), "deleted").await;
    clock.advance(Duration::seconds(61));
    let short_id = short["id"].as_str().expect("id");
    h.wait_status(short_id, Some(&alice), "deleted").await;
    clock.advance(Duration::milliseconds(1234));

    let json = stats(&h, "?days=7").await;
    for (owner, token) in [("alice", &alice), ("bob", &bob)] {
        let usage = h.get("/api/usage", Some(token)).await.json();
        let expected = money(&usage["endedCost"]) + money(&usage["accruedCost"]);
        let entry = owner_entry(&json, owner);
        assert_eq!(
            money(&entry["accrued"]),
            expected,
            "{owner}: accrued = usage's ended cost + active accrued"
        );
        assert_eq!(entry["active"], usage["activeLeases"], "{owner}");
    }
    assert!(
        money(&owner_entry(&json, "alice")["accrued"]) > Money::ZERO,
        "alice's finished leases cost something"
    );
    let totals = &json["totals"];
    assert_eq!(totals["active"], 2);
    assert_eq!(totals["provisions"], 4);
    assert_eq!(totals["failures"], 0);
    assert_eq!(
        money(&totals["accrued"]),
        money(&owner_entry(&json, "alice")["accrued"])
            + money(&owner_entry(&json, "bob")["accrued"])
    );
    assert_eq!(json["active"]["by_status"]["running"], 2);
    assert_eq!(json["active"]["by_offering"]["alpine"], 1);
    assert_eq!(json["active"]["by_offering"]["ubuntu"], 1);
    let days = json["days"].as_array().expect("days");
    assert_eq!(days.len(), 7);
    let today = &days[6];
    assert_eq!(today["day"], json["to"]);
    assert_eq!(
        (today["provisions"].as_i64(), today["finished"].as_i64()),
        (Some(4), Some(2))
    );
    assert_eq!(money(&today["accrued"]), money(&totals["accrued"]));
    // Every money figure is a decimal string, like "0.000333333".
    assert!(totals["booked"].is_string() && today["accrued"].is_string());
    let offerings: Vec<&str> = json["offerings"]
        .as_array()
        .expect("offerings")
        .iter()
        .map(|entry| entry["offering"].as_str().expect("key"))
        .collect();
    assert_eq!(offerings.len(), 2);
    assert_eq!(
        json["reap_lateness_ms"]["counts"].as_array().map(Vec::len),
        Some(14)
    );
    assert_eq!(
        json["reap_lateness_ms"]["counts"]
            .as_array()
            .expect("counts")
            .iter()
            .filter_map(Value::as_i64)
            .sum::<i64>(),
        1,
        "one lease ended by expiry"
    );
    assert_eq!(json["capacity"]["leases"], 2);
}

#[tokio::test]
async fn days_are_zero_filled_oldest_first_and_the_range_is_checked() {
    let h = harness();
    let json = stats(&h, "").await;
    let days = json["days"].as_array().expect("days");
    assert_eq!(days.len(), 30, "30 days by default");
    assert_eq!(days[0]["day"], json["from"]);
    assert_eq!(days[29]["day"], json["to"]);
    assert!(
        days.iter()
            .all(|day| day["provisions"] == 0 && day["accrued"] == "0")
    );
    assert!(
        days.windows(2)
            .all(|pair| pair[0]["day"].as_str() < pair[1]["day"].as_str()),
        "oldest first"
    );
    assert_eq!(json["provision_ms"]["p50"], Value::Null, "no sample: null");
    assert_eq!(json["owners"], serde_json::json!([]));
    for (query, length) in [("?days=1", 1), ("?days=90", 90)] {
        let days = stats(&h, query).await["days"].as_array().map(Vec::len);
        assert_eq!(days, Some(length), "{query}");
    }
    for bad in ["0", "91", "abc", "-1", "1.5", "99999999999"] {
        let reply = h
            .get(
                &format!("/api/admin/stats?days={bad}"),
                Some(&h.tokens.admin),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "days={bad}");
        assert_eq!(reply.error_code(), "bad_request", "days={bad}");
    }
    let reply = h
        .get("/api/admin/stats?owner=alice", Some(&h.tokens.admin))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "unknown parameters are refused"
    );
}

#[tokio::test]
async fn only_admins_read_the_statistics() {
    let h = harness();
    h.provision(
        Some(&h.tokens.alice),
        r#"{"imageType":"alpine","durationMinutes":5}"#,
    )
    .await;
    for token in [&h.tokens.alice, &h.tokens.bob] {
        let reply = h.get("/api/admin/stats", Some(token)).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert_eq!(reply.error_code(), "forbidden");
        assert!(
            !reply.text().contains("alice\""),
            "nothing leaks: {}",
            reply.text()
        );
    }
    let reply = h.get("/api/admin/stats", None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = h.get("/api/admin/stats", Some("not-a-token")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    // A single-user server's local user runs it, and may read them.
    let local = Harness::new();
    let reply = local.get("/api/admin/stats?days=2", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

/// A lease of `owner` created `days_ago` days before `now` that became
/// running `provision_ms` after its creation.
fn lease_at(
    owner: &str,
    now: chrono::DateTime<chrono::Utc>,
    days_ago: i64,
    provision_ms: i64,
) -> Lease {
    let created = now - Duration::days(days_ago) - Duration::hours(2);
    let mut lease = Lease::new(
        LeaseId::generate(),
        owner,
        "alpine",
        Money::from_nanos(10_000_000),
        created,
        created + Duration::hours(1),
    );
    lease.running_at = Some(created + Duration::milliseconds(provision_ms));
    lease
}

#[tokio::test]
async fn percentiles_count_finished_and_active_leases_in_the_window() {
    let h = harness();
    let store = h.manager.store().clone();
    let now = h.manager.clock().now();
    // Ten finished leases in the window: provisioning 10 ms ×5, 300 ms ×4,
    // 2 s ×1; reaped 5 ms late ×9 and 700 ms late ×1.
    let samples = [10, 10, 10, 10, 10, 300, 300, 300, 300, 2_000];
    for (index, provision_ms) in samples.into_iter().enumerate() {
        let lease = lease_at("carol", now, (index % 3) as i64, provision_ms);
        let stored = store
            .insert(&lease, &Admission::default())
            .await
            .expect("insert");
        let mut done = finished(&stored, stored.expires_at, Money::from_nanos(7));
        done.end_reason = Some(EndReason::Expired);
        let late = if index == 9 { 700 } else { 5 };
        done.finished_at = Some(stored.expires_at + Duration::milliseconds(late));
        store.finish(&done).await.expect("finish");
    }
    // One outside a 3-day window: not counted there.
    let old = lease_at("carol", now, 10, 50_000);
    let old = store
        .insert(&old, &Admission::default())
        .await
        .expect("insert");
    store
        .finish(&finished(&old, old.expires_at, Money::from_nanos(1_000)))
        .await
        .expect("finish");

    let json = stats(&h, "?days=3").await;
    let provisioning = &json["provision_ms"];
    assert_eq!(provisioning["p50"], 50, "rank 5 of 10 is in (0, 50]");
    assert_eq!(provisioning["p90"], 500, "rank 9 is in (250, 500]");
    assert_eq!(provisioning["p99"], 2_500, "rank 10 is in (1000, 2500]");
    let lateness = &json["reap_lateness_ms"];
    assert_eq!(
        (lateness["p50"].as_i64(), lateness["p99"].as_i64()),
        (Some(10), Some(1_000))
    );
    assert_eq!(json["totals"]["provisions"], 10);
    assert_eq!(money(&json["totals"]["accrued"]), Money::from_nanos(70));

    // An active lease that took 100 s to come up counts in the percentiles
    // (and in the totals) at once.
    let mut slow = lease_at("dave", now, 0, 100_000);
    slow.expires_at = now + Duration::hours(1);
    let mut slow_running = store
        .insert(&slow, &Admission::default())
        .await
        .expect("insert");
    slow_running.status = lease_core::Status::Running;
    store
        .update(&slow_running, &Admission::default())
        .await
        .expect("update");
    let json = stats(&h, "?days=3").await;
    assert_eq!(json["provision_ms"]["p99"], 120_000);
    assert_eq!(json["totals"]["provisions"], 11);
    assert_eq!(json["totals"]["active"], 1);
    assert_eq!(owner_entry(&json, "dave")["active"], 1);
    let wide = stats(&h, "?days=30").await;
    assert_eq!(
        wide["totals"]["provisions"], 12,
        "the old lease is in a 30-day window"
    );
    assert_eq!(
        money(&owner_entry(&wide, "carol")["accrued"]),
        Money::from_nanos(1_070)
    );
}
