//! History retention: counted back from the system clock; usage forever.

mod common;

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use common::TempStore;
use lease_core::testing::conformance::{finished, sample_lease, unique_owner};
use lease_core::{
    Admission, DEFAULT_HISTORY_RETENTION, HistoryQuery, LeaseId, LeaseStore, Money, StoreError,
};
use lease_store_sqlite::{SqliteStore, SqliteStoreConfig};

fn owner_history(owner: &str) -> HistoryQuery {
    HistoryQuery {
        owner: Some(owner.to_owned()),
        ..HistoryQuery::default()
    }
}

#[tokio::test]
async fn a_lease_older_than_the_retention_is_gone_and_usage_keeps_it() {
    let temp = TempStore::new().await;
    let store = &temp.store;
    let owner = unique_owner("retention");
    let retention = Duration::from_std(DEFAULT_HISTORY_RETENTION).expect("fits");
    let now = Utc::now();
    let mut ids = Vec::new();
    for (ended_at, cost) in [
        (now - retention - Duration::hours(1), 111_111_111),
        (now - retention + Duration::hours(1), 2_222),
        (now, 3),
    ] {
        let lease = store
            .insert(
                &sample_lease(&owner, Duration::hours(1)),
                &Admission::default(),
            )
            .await
            .expect("insert");
        store
            .finish(&finished(&lease, ended_at, Money::from_nanos(cost)))
            .await
            .expect("finish");
        ids.push(lease.id);
    }
    check_retention(store, &owner, &ids).await;
    // The same after a restart.
    let dir = temp.close();
    let store = SqliteStore::open(SqliteStoreConfig::new(common::db_path(dir.path())))
        .await
        .expect("reopen");
    check_retention(&store, &owner, &ids).await;
}

/// `ids` are A (past retention), B (within), C (now).
async fn check_retention(store: &SqliteStore, owner: &str, ids: &[LeaseId]) {
    let [a, b, c] = [&ids[0], &ids[1], &ids[2]];
    let history = store.history(&owner_history(owner)).await.expect("history");
    let listed: Vec<_> = history.items.iter().map(|lease| &lease.id).collect();
    assert_eq!(
        listed,
        [c, b],
        "newest first, without the one past retention"
    );
    match store.get(a).await {
        Err(StoreError::NotFound(id)) => assert_eq!(&id, a),
        other => panic!("get of a lease past retention: {other:?}"),
    }
    assert_eq!(&store.get(b).await.expect("within retention").id, b);
    let usage = store.usage(owner).await.expect("usage");
    assert_eq!(usage.ended_count, 3, "usage counts every finished lease");
    assert_eq!(usage.ended_cost, Money::from_nanos(111_111_111 + 2_222 + 3));
}

#[tokio::test]
async fn a_lease_leaves_history_when_its_time_passes_without_another_finish() {
    let temp = TempStore::with(|config| config.history_retention(StdDuration::from_secs(2))).await;
    let store = &temp.store;
    let owner = unique_owner("retention-clock");
    let lease = store
        .insert(
            &sample_lease(&owner, Duration::hours(1)),
            &Admission::default(),
        )
        .await
        .expect("insert");
    let ended_at = Utc::now() - Duration::milliseconds(1500);
    store
        .finish(&finished(&lease, ended_at, Money::from_nanos(7)))
        .await
        .expect("finish");
    assert_eq!(store.get(&lease.id).await.expect("still kept").id, lease.id);
    assert_eq!(
        store
            .history(&owner_history(&owner))
            .await
            .expect("history")
            .items
            .len(),
        1
    );

    tokio::time::sleep(StdDuration::from_millis(800)).await;
    assert!(
        matches!(store.get(&lease.id).await, Err(StoreError::NotFound(_))),
        "past the retention by the system clock"
    );
    assert!(
        store
            .history(&owner_history(&owner))
            .await
            .expect("history")
            .items
            .is_empty()
    );
    assert_eq!(store.usage(&owner).await.expect("usage").ended_count, 1);
}
