//! Connection loss on a private cluster: while PostgreSQL is away every
//! method fails with `StoreError::Unavailable` (the HTTP adapter's 503),
//! and the same store works again once it is back (the pool reconnects by
//! itself), with everything acknowledged before still there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use lease_core::store::{HistoryQuery, ListQuery};
use lease_core::testing::conformance::sample_lease;
use lease_core::{Admission, CredentialStore, LeaseStore, StoreError};
use lease_store_postgres::{PostgresStore, PostgresStoreConfig};
use lease_testkit::postgres::PrivatePostgres;

fn assert_unavailable<T: std::fmt::Debug>(what: &str, result: Result<T, StoreError>) {
    match result {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("{what} while PostgreSQL is down: expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_loss_is_unavailable_and_the_store_recovers_after_a_restart() {
    let Some(mut postgres) = PrivatePostgres::start("faults") else {
        return;
    };
    let config = PostgresStoreConfig::new(postgres.url())
        .namespace("faults")
        .pool_size(4)
        .connect_timeout(Duration::from_secs(1));
    let store = Arc::new(PostgresStore::connect(config).await.expect("connect"));
    let before = sample_lease("faults-owner", chrono::Duration::hours(1));
    store
        .insert(&before, &Admission::default())
        .await
        .expect("insert before the crash");

    postgres.kill9();
    // The killed postmaster's backends serve an instant longer, until they
    // notice; then every request is refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.ping().await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "still answering 10 s after kill -9"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let during = sample_lease("faults-owner", chrono::Duration::hours(1));
    assert_unavailable("ping", store.ping().await);
    assert_unavailable("insert", store.insert(&during, &Admission::default()).await);
    assert_unavailable("get", store.get(&before.id).await);
    assert_unavailable("list", store.list(&ListQuery::default()).await);
    assert_unavailable(
        "claim",
        store
            .claim_expired(Utc::now(), 10, Duration::from_secs(30))
            .await,
    );
    assert_unavailable("history", store.history(&HistoryQuery::default()).await);
    assert_unavailable("session", store.session("x", Utc::now()).await);

    postgres.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.ping().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the store did not recover within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        store
            .get(&before.id)
            .await
            .expect("acknowledged before the crash")
            .id,
        before.id
    );
    store
        .insert(&during, &Admission::default())
        .await
        .expect("the refused insert can be retried");
    assert_eq!(
        store
            .list(&ListQuery::default())
            .await
            .expect("list")
            .items
            .len(),
        2
    );
}
