//! Hostile inputs: owner names with quotes, SQL and unicode are plain data;
//! text PostgreSQL cannot hold is a typed error that stores nothing; huge
//! limits and times saturate; foreign cursors are refused.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use lease_core::store::{HistoryQuery, ListQuery, MAX_PAGE};
use lease_core::testing::conformance::sample_lease;
use lease_core::{Admission, LeaseStore, Status, StoreError};
use lease_store_postgres::drop_schema;

#[tokio::test]
async fn owner_names_are_data_not_sql() {
    let Some(store) = common::store().await else {
        return;
    };
    let owners = [
        "o'brien",
        "x'; DROP TABLE active; --",
        "\"quoted\"",
        "Ådä 🚀 名前",
        "back\\slash",
        "%_wild",
    ];
    for owner in owners {
        let lease = sample_lease(owner, chrono::Duration::hours(1));
        store
            .insert(
                &lease,
                &Admission {
                    max_leases_per_owner: Some(1),
                    ..Admission::default()
                },
            )
            .await
            .unwrap_or_else(|error| panic!("insert for {owner:?}: {error}"));
        let page = store.list(&ListQuery::owner(owner)).await.expect("list");
        assert_eq!(page.items.len(), 1, "{owner:?}");
        assert_eq!(page.items[0].owner, owner);
        assert_eq!(store.usage(owner).await.expect("usage").ended_count, 0);
    }
    assert_eq!(
        store
            .list(&ListQuery::default())
            .await
            .expect("list")
            .items
            .len(),
        owners.len()
    );
    // Not a pattern: `%_wild` matches only itself.
    assert!(
        store
            .list(&ListQuery::owner("%"))
            .await
            .expect("list")
            .items
            .is_empty()
    );
    drop_schema(&store).await.expect("drop");
}

#[tokio::test]
async fn text_postgres_cannot_hold_is_a_typed_error_that_stores_nothing() {
    let Some(store) = common::store().await else {
        return;
    };
    let lease = sample_lease("nul\0owner", chrono::Duration::hours(1));
    match store.insert(&lease, &Admission::default()).await {
        Err(StoreError::Other { .. }) => {}
        other => panic!("a NUL byte must be refused with a typed error, got {other:?}"),
    }
    assert!(matches!(
        store.get(&lease.id).await,
        Err(StoreError::NotFound(_))
    ));
    store.ping().await.expect("the store still works");
    drop_schema(&store).await.expect("drop");
}

#[tokio::test]
async fn huge_limits_and_times_saturate() {
    let Some(store) = common::store().await else {
        return;
    };
    let due = store
        .insert(
            &sample_lease("huge", chrono::Duration::minutes(-1)),
            &Admission::default(),
        )
        .await
        .expect("insert");
    let query = ListQuery {
        limit: usize::MAX,
        ..ListQuery::default()
    };
    assert_eq!(query.effective_limit(), MAX_PAGE);
    assert_eq!(store.list(&query).await.expect("list").items.len(), 1);
    let history = HistoryQuery {
        limit: usize::MAX,
        ..HistoryQuery::default()
    };
    assert!(
        store
            .history(&history)
            .await
            .expect("history")
            .items
            .is_empty()
    );
    let claimed = store
        .claim_expired(Utc::now(), usize::MAX, Duration::MAX)
        .await
        .expect("claim with no bounds");
    assert_eq!(claimed.len(), 1);
    store
        .release(&due.id, DateTime::<Utc>::MAX_UTC)
        .await
        .expect("release far in the future");
    let next = store
        .next_due()
        .await
        .expect("next due")
        .expect("one lease");
    assert!(next > Utc::now() + chrono::Duration::days(365 * 100));
    // A time the store cannot keep exactly is refused, nothing stored.
    let mut far = sample_lease("huge", chrono::Duration::hours(1));
    far.expires_at = DateTime::<Utc>::MAX_UTC;
    assert!(store.insert(&far, &Admission::default()).await.is_err());
    assert!(matches!(
        store.get(&far.id).await,
        Err(StoreError::NotFound(_))
    ));
    drop_schema(&store).await.expect("drop");
}

#[tokio::test]
async fn foreign_cursors_are_refused() {
    let Some(store) = common::store().await else {
        return;
    };
    for cursor in [
        "",
        "garbage",
        "1.5/x",
        "9999999999999999999.0/container-x",
        "'; --",
    ] {
        let query = ListQuery {
            cursor: Some(cursor.to_owned()),
            statuses: vec![Status::Running],
            ..ListQuery::default()
        };
        assert!(
            matches!(store.list(&query).await, Err(StoreError::InvalidCursor(_))),
            "{cursor:?}"
        );
        let query = HistoryQuery {
            cursor: Some(cursor.to_owned()),
            ..HistoryQuery::default()
        };
        assert!(
            matches!(
                store.history(&query).await,
                Err(StoreError::InvalidCursor(_))
            ),
            "{cursor:?}"
        );
    }
    drop_schema(&store).await.expect("drop");
}
