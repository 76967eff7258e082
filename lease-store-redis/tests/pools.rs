//! The warm-pool conformance cases and engine scenarios against a real
//! Redis; every test gets a fresh prefix.

mod common;

use lease_store_redis::RedisStore;

lease_core::pool_conformance_tests!(RedisStore, async { common::store().await });

lease_core::pool_scenario_tests!(async { common::store().await });

/// A damaged ready set that names another offering's slot never hands that
/// container out: the take is a miss and the slot stays ready for its own
/// offering.
#[tokio::test]
async fn a_slot_in_another_offerings_ready_set_is_never_taken() {
    use chrono::{Duration, Utc};
    use lease_core::LeaseStore;
    use lease_core::pool::{PoolSlot, SlotState};
    use lease_core::testing::conformance::{sample_lease, unique_owner};

    let Some(config) = common::config("wrongset") else {
        return;
    };
    let Some(store) = common::connect(config.clone()).await else {
        return;
    };
    let now = Utc::now();
    let slot = PoolSlot::filling("ubuntu", "img:1", now);
    assert!(store.pool_add(&slot, 1).await.expect("pool_add"));
    assert!(
        store
            .pool_ready(&slot.id, "c-ubuntu")
            .await
            .expect("pool_ready")
    );
    // Damage: the ubuntu slot listed as ready for alpine.
    let client = redis::Client::open(config.url.as_str()).expect("a Redis client");
    let mut raw = client
        .get_multiplexed_async_connection()
        .await
        .expect("a raw connection");
    let _: i64 = redis::cmd("ZADD")
        .arg(format!("{{{}}}:pool:ready:alpine", config.prefix))
        .arg(0)
        .arg(&slot.id)
        .query_async(&mut raw)
        .await
        .expect("ZADD");

    let lease = sample_lease(&unique_owner("wrongset"), Duration::hours(1));
    let lease = store
        .insert(&lease, &lease_core::Admission::default())
        .await
        .expect("insert");
    let taken = store
        .pool_take("alpine", &lease, now)
        .await
        .expect("pool_take");
    assert!(
        taken.is_none(),
        "another offering's container was taken: {taken:?}"
    );
    let stored = store.get(&lease.id).await.expect("get");
    assert_eq!(stored.status, lease.status, "the lease is unchanged");
    let slots = store.pool_slots().await.expect("pool_slots");
    assert_eq!(slots.len(), 1);
    assert_eq!(slots[0].state, SlotState::Ready, "still ready for ubuntu");
    let taken = store
        .pool_take("ubuntu", &lease, now)
        .await
        .expect("pool_take");
    assert_eq!(
        taken.map(|t| t.slot.container_id),
        Some(Some("c-ubuntu".to_owned())),
        "its own offering takes it"
    );
}
