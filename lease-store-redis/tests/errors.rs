//! Connection and error handling against a real Redis: unreachable servers,
//! corrupt records, invalid settings, and the server clock deciding claims.

mod common;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use lease_core::testing::conformance::{finished, sample_lease, unique_owner};
use lease_core::{Admission, HistoryQuery, LeaseId, LeaseStore, ListQuery, Money, StoreError};
use lease_store_redis::{RedisStore, RedisStoreConfig};

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn quick(url: String) -> RedisStoreConfig {
    RedisStoreConfig::new(url)
        .connection_timeout(StdDuration::from_millis(500))
        .response_timeout(StdDuration::from_secs(2))
        .reconnect_retries(1)
}

#[tokio::test]
async fn unreachable_redis_is_unavailable() {
    let url = format!("redis://127.0.0.1:{}/0", closed_port());
    match RedisStore::connect(quick(url.clone())).await {
        Err(StoreError::Unavailable(source)) => {
            assert!(!source.to_string().is_empty());
        }
        other => panic!("connect to a closed port: expected Unavailable, got {other:?}"),
    }

    // A lazily created store fails each call the same way, and keeps failing
    // (no panic, no hang) on every method.
    let store = RedisStore::connect_lazy(quick(url)).expect("lazy store");
    let id = LeaseId::generate();
    let lease = sample_lease("nobody", Duration::minutes(5));
    let results: Vec<(&str, Result<(), StoreError>)> = vec![
        ("ping", store.ping().await),
        ("get", store.get(&id).await.map(drop)),
        (
            "insert",
            store.insert(&lease, &Admission::default()).await.map(drop),
        ),
        (
            "update",
            store.update(&lease, &Admission::default()).await.map(drop),
        ),
        ("list", store.list(&ListQuery::default()).await.map(drop)),
        (
            "claim",
            store
                .claim_expired(Utc::now(), 10, StdDuration::from_secs(5))
                .await
                .map(drop),
        ),
        ("release", store.release(&id, Utc::now()).await),
        ("next_due", store.next_due().await.map(drop)),
        ("finish", store.finish(&lease).await.map(drop)),
        (
            "history",
            store.history(&HistoryQuery::default()).await.map(drop),
        ),
        ("usage", store.usage("nobody").await.map(drop)),
    ];
    for (call, result) in results {
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{call} against a closed port: expected Unavailable, got {result:?}"
        );
    }
}

#[tokio::test]
async fn invalid_settings_are_refused() {
    for prefix in ["", "a{b", "c}"] {
        let config = RedisStoreConfig::new("redis://127.0.0.1:1/0").prefix(prefix);
        match RedisStore::connect_lazy(config) {
            Err(StoreError::Other { source, .. }) => {
                assert!(source.to_string().contains("prefix"), "{source}")
            }
            other => panic!("prefix {prefix:?}: expected a configuration error, got {other:?}"),
        }
    }
    let config = RedisStoreConfig::new("redis://127.0.0.1:1/0")
        .history_retention(StdDuration::from_millis(10));
    assert!(matches!(
        RedisStore::connect_lazy(config),
        Err(StoreError::Other { .. })
    ));
    let config = RedisStoreConfig::new("not a url");
    assert!(matches!(
        RedisStore::connect_lazy(config),
        Err(StoreError::Other { .. })
    ));
}

/// Runs a raw command on the test Redis.
async fn raw(url: &str, args: &[&str]) {
    let client = redis::Client::open(url).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    let _: redis::Value = cmd.query_async(&mut conn).await.expect("raw command");
}

#[tokio::test]
async fn corrupt_records_are_reported_with_their_key() {
    let Some(config) = common::config("corrupt") else {
        return;
    };
    let url = config.url.clone();
    let Some(store) = common::connect(config).await else {
        return;
    };
    let prefix = store.prefix().to_owned();
    let owner = unique_owner("corrupt");

    let bad = store
        .insert(
            &sample_lease(&owner, Duration::minutes(-2)),
            &Admission::default(),
        )
        .await
        .expect("insert");
    let good = store
        .insert(
            &sample_lease(&owner, Duration::minutes(-1)),
            &Admission::default(),
        )
        .await
        .expect("insert");
    let key = format!("{{{prefix}}}:lease:{}", bad.id);
    raw(&url, &["HSET", &key, "data", "{\"id\": not json"]).await;

    match store.get(&bad.id).await {
        Err(StoreError::Corrupt { key: found, source }) => {
            assert_eq!(found, key);
            assert!(!source.to_string().is_empty());
        }
        other => panic!("get of a corrupt record: expected Corrupt, got {other:?}"),
    }
    match store.list(&ListQuery::owner(&owner)).await {
        Err(StoreError::Corrupt { key: found, .. }) => assert_eq!(found, key),
        other => panic!("list over a corrupt record: expected Corrupt, got {other:?}"),
    }
    // The reaper's path skips it (logged) and still gets the others.
    let claimed = store
        .claim_expired(Utc::now(), 10, StdDuration::from_secs(60))
        .await
        .expect("claim with a corrupt record in the batch");
    assert_eq!(claimed, std::slice::from_ref(&good));

    // Valid JSON of the wrong shape, and bytes that are not UTF-8.
    raw(&url, &["HSET", &key, "data", "{\"id\": 5}"]).await;
    assert!(matches!(
        store.get(&bad.id).await,
        Err(StoreError::Corrupt { .. })
    ));
    let client = redis::Client::open(url.as_str()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("data")
        .arg(&[0xff_u8, 0xfe, 0x00][..])
        .query_async(&mut conn)
        .await
        .expect("raw");
    assert!(matches!(
        store.get(&bad.id).await,
        Err(StoreError::Corrupt { .. })
    ));

    // A record holding another lease than its key names.
    let other = sample_lease(&owner, Duration::minutes(5));
    raw(
        &url,
        &[
            "HSET",
            &key,
            "data",
            &serde_json::to_string(&other).expect("json"),
        ],
    )
    .await;
    assert!(matches!(
        store.get(&bad.id).await,
        Err(StoreError::Corrupt { .. })
    ));

    // History records too.
    let done = store
        .finish(&finished(&good, Utc::now(), Money::from_nanos(3)))
        .await
        .expect("finish");
    let history_key = format!("{{{prefix}}}:history:{}", done.id);
    raw(&url, &["SET", &history_key, "[]"]).await;
    match store.get(&done.id).await {
        Err(StoreError::Corrupt { key: found, .. }) => assert_eq!(found, history_key),
        other => panic!("get of a corrupt history record: expected Corrupt, got {other:?}"),
    }
    match store.history(&HistoryQuery::default()).await {
        Err(StoreError::Corrupt { key: found, .. }) => assert_eq!(found, history_key),
        other => panic!("history over a corrupt record: expected Corrupt, got {other:?}"),
    }
    let usage_key = format!("{{{prefix}}}:usage:{owner}");
    raw(&url, &["HSET", &usage_key, "cost", "lots"]).await;
    assert!(matches!(
        store.usage(&owner).await,
        Err(StoreError::Corrupt { .. })
    ));
    store.delete_all().await.expect("cleanup");
}

/// The server's clock decides what is due: a caller whose clock runs 30 s
/// ahead (or a day) claims nothing early.
#[tokio::test]
async fn claims_follow_the_server_clock_not_the_callers() {
    let Some(store) = common::store().await else {
        return;
    };
    let owner = unique_owner("skew");
    let soon = store
        .insert(
            &sample_lease(&owner, Duration::seconds(20)),
            &Admission::default(),
        )
        .await
        .expect("insert");
    let due = store
        .insert(
            &sample_lease(&owner, Duration::seconds(-1)),
            &Admission::default(),
        )
        .await
        .expect("insert");
    for skew in [Duration::seconds(30), Duration::days(1)] {
        let claimed = store
            .claim_expired(Utc::now() + skew, 100, StdDuration::from_secs(60))
            .await
            .expect("claim");
        assert!(
            claimed.iter().all(|lease| lease.id != soon.id),
            "a caller {skew} ahead claimed a lease due in 20 s"
        );
        if skew == Duration::seconds(30) {
            assert_eq!(claimed, std::slice::from_ref(&due));
        }
    }
    // A caller whose clock lags still claims what is due by the server.
    let late = store
        .insert(
            &sample_lease(&owner, Duration::seconds(-1)),
            &Admission::default(),
        )
        .await
        .expect("insert");
    let claimed = store
        .claim_expired(
            Utc::now() - Duration::minutes(10),
            100,
            StdDuration::from_secs(60),
        )
        .await
        .expect("claim");
    assert_eq!(claimed, [late]);
    store.delete_all().await.expect("cleanup");
}

/// Prefixes isolate deployments sharing one Redis.
#[tokio::test]
async fn prefixes_do_not_see_each_other() {
    let (Some(a), Some(b)) = (common::store().await, common::store().await) else {
        return;
    };
    let lease = a
        .insert(
            &sample_lease("shared-name", Duration::seconds(-5)),
            &Admission::default(),
        )
        .await
        .expect("insert");
    assert!(matches!(
        b.get(&lease.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        b.list(&ListQuery::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
    assert!(
        b.claim_expired(Utc::now(), 10, StdDuration::from_secs(5))
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(b.next_due().await.expect("next_due"), None);
    // delete_all removes only its own prefix.
    b.insert(
        &sample_lease("shared-name", Duration::minutes(5)),
        &Admission::default(),
    )
    .await
    .expect("insert");
    assert!(b.delete_all().await.expect("delete_all") > 0);
    assert_eq!(a.get(&lease.id).await.expect("still there"), lease);
    assert!(a.delete_all().await.expect("delete_all") > 0);
    assert!(matches!(
        a.get(&lease.id).await,
        Err(StoreError::NotFound(_))
    ));
}

/// History entries older than the retention disappear from listing and
/// `get`; usage totals stay.
#[tokio::test]
async fn history_honours_retention() {
    let Some(config) = common::config("retention") else {
        return;
    };
    let Some(store) = common::connect(config.history_retention(StdDuration::from_secs(1))).await
    else {
        return;
    };
    let owner = unique_owner("retention");
    let lease = store
        .insert(
            &sample_lease(&owner, Duration::minutes(5)),
            &Admission::default(),
        )
        .await
        .expect("insert");
    let done = store
        .finish(&finished(&lease, Utc::now(), Money::from_nanos(11)))
        .await
        .expect("finish");
    let query = HistoryQuery {
        owner: Some(owner.clone()),
        ..HistoryQuery::default()
    };
    assert_eq!(
        store.history(&query).await.expect("history").items,
        std::slice::from_ref(&done)
    );
    assert_eq!(store.get(&done.id).await.expect("in history"), done);
    tokio::time::sleep(StdDuration::from_millis(1300)).await;
    assert!(
        store
            .history(&query)
            .await
            .expect("history")
            .items
            .is_empty()
    );
    assert!(
        store
            .history(&HistoryQuery::default())
            .await
            .expect("history")
            .items
            .is_empty()
    );
    assert!(matches!(
        store.get(&done.id).await,
        Err(StoreError::NotFound(_))
    ));
    let usage = store.usage(&owner).await.expect("usage");
    assert_eq!(
        (usage.ended_count, usage.ended_cost),
        (1, Money::from_nanos(11))
    );
    let _ = Arc::clone(&store).delete_all().await;
}
