//! A request dropped mid-way (a client that hung up while its insert was
//! being admitted) never hands a pooled connection back inside a
//! transaction: such a connection would hold the owner's admission lock,
//! and the next statements sent on it would never be committed.

mod common;

use std::time::Duration;

use lease_core::testing::conformance::sample_lease;
use lease_core::{Admission, LeaseStore};
use lease_store_postgres::PostgresStoreConfig;
use tokio_postgres::NoTls;

/// How long a dropped insert's connection may take to go.
const SETTLE: Duration = Duration::from_secs(3);

/// The store's connections, named so that this test finds only them.
const APPLICATION: &str = "lease_dropped_test";

/// A plain connection to `url`, to watch the store's from.
async fn watcher(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    tokio::spawn(connection);
    client
}

/// How many of the store's connections are idle inside a transaction.
async fn idle_in_transaction(watcher: &tokio_postgres::Client) -> i64 {
    let row = watcher
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = $1 AND state LIKE 'idle in transaction%'",
            &[&APPLICATION],
        )
        .await
        .unwrap_or_else(|e| panic!("pg_stat_activity: {e}"));
    row.get(0)
}

#[tokio::test]
async fn a_dropped_checked_insert_never_hands_back_a_connection_in_a_transaction() {
    let Some(url) = lease_testkit::postgres::test_postgres_url() else {
        return;
    };
    let separator = if url.contains('?') { '&' } else { '?' };
    let config =
        PostgresStoreConfig::new(format!("{url}{separator}application_name={APPLICATION}"))
            .namespace(&common::unique_namespace("dropped"))
            .pool_size(2);
    let Some(store) = common::connect(config).await else {
        return;
    };
    let admission = Admission {
        max_leases_per_owner: Some(1_000),
        ..Admission::default()
    };
    let watcher = watcher(&url).await;
    // The watcher sees the store's connections (the URL names them).
    store.ping().await.unwrap_or_else(|e| panic!("ping: {e}"));
    let named = watcher
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&APPLICATION],
        )
        .await
        .unwrap_or_else(|e| panic!("pg_stat_activity: {e}"));
    assert!(
        named.get::<_, i64>(0) > 0,
        "the store's connections carry the URL's name"
    );
    // Dropped at every point of the insert's round trips: before its
    // `BEGIN`, between the figures and the insert, before its `COMMIT`.
    // After each, once the server has read what was sent, no connection of
    // the store may sit idle in a transaction (the next insert would
    // otherwise run inside it and commit it, hiding the leak).
    for step in 0..100u64 {
        let lease = sample_lease("ada", chrono::Duration::hours(1));
        let insert = store.insert(&lease, &admission);
        let _ = tokio::time::timeout(Duration::from_micros(step * 30), insert).await;
        // A closed connection's backend goes once the driver's task has
        // said goodbye (soon, on a busy machine not at once); a leaked one
        // stays idle in its transaction until the pool hands it out again.
        let waited = std::time::Instant::now();
        while idle_in_transaction(&watcher).await > 0 {
            assert!(
                waited.elapsed() < SETTLE,
                "an insert dropped after {} µs left a pooled connection inside its transaction",
                step * 30
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // The pool still works, and what it writes is committed: seen at once.
    for _ in 0..5 {
        let lease = sample_lease("ada", chrono::Duration::hours(1));
        let inserted =
            tokio::time::timeout(Duration::from_secs(10), store.insert(&lease, &admission))
                .await
                .unwrap_or_else(|_| panic!("an insert waited 10 s for the owner's lock"))
                .unwrap_or_else(|e| panic!("insert: {e}"));
        let read = store
            .get(&inserted.id)
            .await
            .unwrap_or_else(|e| panic!("get: {e}"));
        assert_eq!(read.id, inserted.id);
    }
    assert_eq!(idle_in_transaction(&watcher).await, 0);
    lease_store_postgres::drop_schema(&store)
        .await
        .unwrap_or_else(|e| panic!("drop schema: {e}"));
}
