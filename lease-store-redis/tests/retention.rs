//! The retention contract: a finished lease whose `ended_at` is earlier than
//! the Redis server's now − retention is gone from `history` and `get`, one
//! within the retention is kept, and usage totals count every finished lease.

mod common;

use chrono::{Duration, DurationRound, Utc};
use lease_core::testing::conformance::{finished, sample_lease, unique_owner};
use lease_core::{DEFAULT_HISTORY_RETENTION, HistoryQuery, LeaseStore, Money, StoreError};

#[tokio::test]
async fn history_keeps_what_ended_within_the_retention() {
    let Some(store) = common::store().await else {
        return;
    };
    let retention = Duration::from_std(DEFAULT_HISTORY_RETENTION).expect("retention fits");
    let now = Utc::now()
        .duration_trunc(Duration::milliseconds(1))
        .expect("now truncates");
    let owner = unique_owner("retention");
    let mut done = Vec::new();
    for (ended_at, cost) in [
        (now - retention - Duration::hours(1), 1_234_567),
        (now - retention + Duration::hours(1), 2_000_001),
        (now, 40_000_000),
    ] {
        let lease = store
            .insert(&sample_lease(&owner, Duration::minutes(5)))
            .await
            .expect("insert");
        let ended = finished(&lease, ended_at, Money::from_nanos(cost));
        done.push(store.finish(&ended).await.expect("finish"));
    }
    let [a, b, c] = done.as_slice() else {
        unreachable!("three leases were finished")
    };

    let query = HistoryQuery {
        owner: Some(owner.clone()),
        ..HistoryQuery::default()
    };
    let page = store.history(&query).await.expect("history");
    assert_eq!(page.items, [c.clone(), b.clone()]);
    assert_eq!(page.next_cursor, None);
    let everyone = store
        .history(&HistoryQuery::default())
        .await
        .expect("history");
    assert_eq!(everyone.items, [c.clone(), b.clone()]);

    match store.get(&a.id).await {
        Err(StoreError::NotFound(id)) => assert_eq!(id, a.id),
        other => panic!("get of a lease that ended before the retention: {other:?}"),
    }
    assert_eq!(store.get(&b.id).await.expect("get within retention"), *b);

    let usage = store.usage(&owner).await.expect("usage");
    assert_eq!(usage.ended_count, 3);
    assert_eq!(
        usage.ended_cost,
        Money::from_nanos(1_234_567 + 2_000_001 + 40_000_000)
    );
    store.delete_all().await.expect("cleanup");
}
