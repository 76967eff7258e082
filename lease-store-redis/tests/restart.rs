//! Redis restarted in the middle of a run, on a server of the test's own
//! with AOF `appendfsync always`: calls fail with `Unavailable` while it is
//! down and succeed again afterwards in the same process without restarting
//! the store, and no write acknowledged before the crash is lost.

mod common;

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, Utc};
use lease_core::testing::conformance::{sample_lease, unique_owner};
use lease_core::{Admission, LeaseStore, ListQuery, Status, StoreError};
use lease_store_redis::{RedisStore, RedisStoreConfig};
use lease_testkit::redis::{Persistence, PrivateRedis};
use tokio::sync::Mutex;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_with_aof_always_loses_no_acknowledged_write() {
    let Some(mut server) = PrivateRedis::start("restart", Persistence::AofAlways) else {
        return;
    };
    let config = RedisStoreConfig::new(server.url())
        .prefix(common::unique_prefix("restart"))
        .connection_timeout(StdDuration::from_millis(500))
        .response_timeout(StdDuration::from_secs(2))
        .reconnect_retries(1);
    let store = Arc::new(RedisStore::connect(config).await.expect("connect"));
    let owner = unique_owner("restart");

    // Writers insert and then update leases as fast as they can; every write
    // Redis acknowledged is recorded.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (store, acknowledged, stop, owner) = (
            Arc::clone(&store),
            Arc::clone(&acknowledged),
            stop.clone(),
            owner.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            while !stop.is_cancelled() {
                let lease = sample_lease(&owner, Duration::minutes(30));
                match store.insert(&lease, &Admission::default()).await {
                    Ok(stored) => {
                        let mut running = stored.clone();
                        running.status = Status::Running;
                        match store.update(&running, &Admission::default()).await {
                            Ok(updated) => acknowledged.lock().await.push(updated),
                            Err(error) => {
                                acknowledged.lock().await.push(stored);
                                errors.push(error);
                            }
                        }
                    }
                    Err(error) => errors.push(error),
                }
                if !errors.is_empty() {
                    tokio::time::sleep(StdDuration::from_millis(20)).await;
                }
            }
            errors
        }));
    }

    tokio::time::sleep(StdDuration::from_millis(300)).await;
    let before_crash = acknowledged.lock().await.len();
    assert!(before_crash > 0, "nothing was written before the crash");
    server.crash();

    // While it is down every call fails as Unavailable.
    let down_since = Instant::now();
    for _ in 0..3 {
        match store.ping().await {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("ping while Redis is down: expected Unavailable, got {other:?}"),
        }
        match store.list(&ListQuery::owner(&owner)).await {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("list while Redis is down: expected Unavailable, got {other:?}"),
        }
    }
    let failing_for = down_since.elapsed();
    tokio::time::sleep(StdDuration::from_millis(200)).await;

    server.restart();
    // The same store recovers by itself (scripts are reloaded on NOSCRIPT).
    let deadline = Instant::now() + StdDuration::from_secs(15);
    loop {
        match store.ping().await {
            Ok(()) => break,
            Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(StdDuration::from_millis(100)).await;
            }
            other => panic!("ping after restart: expected to recover, got {other:?}"),
        }
    }
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    stop.cancel();
    let mut errors = Vec::new();
    for writer in writers {
        errors.extend(writer.await.expect("writer panicked"));
    }
    for error in &errors {
        assert!(
            matches!(
                error,
                StoreError::Unavailable(_) | StoreError::Conflict { .. }
            ),
            "writes during the outage may only fail as Unavailable (or Conflict for an \
             update whose first attempt was applied): {error:?}"
        );
    }
    assert!(
        !errors.is_empty(),
        "no write failed: the outage was not seen"
    );

    // Every acknowledged write survived the crash, as acknowledged or newer.
    let acknowledged = acknowledged.lock().await.clone();
    assert!(
        acknowledged.len() > before_crash,
        "no writes after the restart"
    );
    for lease in &acknowledged {
        let stored = store.get(&lease.id).await.unwrap_or_else(|error| {
            panic!("acknowledged lease {} lost in the crash: {error}", lease.id)
        });
        assert!(
            stored.revision >= lease.revision,
            "lease {} went back from revision {} to {}",
            lease.id,
            lease.revision,
            stored.revision
        );
    }
    let listed = store
        .list(&ListQuery::owner(&owner))
        .await
        .expect("list after restart");
    assert!(listed.items.len() >= acknowledged.len().min(1000));

    // Scripts work again after the restart emptied the script cache.
    let due = store
        .insert(
            &sample_lease(&owner, Duration::seconds(-1)),
            &Admission::default(),
        )
        .await
        .expect("insert");
    let claimed = store
        .claim_expired(Utc::now(), 10, StdDuration::from_secs(60))
        .await
        .expect("claim after restart");
    assert_eq!(claimed, [due]);
    eprintln!(
        "restart: {} acknowledged writes ({} before the crash), {} failed during the outage, \
         calls failed fast while down ({failing_for:?} for 6 calls)",
        acknowledged.len(),
        before_crash,
        errors.len()
    );
}

/// A primary demoted to a replica (as in a managed service's failover, where
/// the old primary stays up): writes fail with `Unavailable` (`READONLY`),
/// reads still work, and writes succeed again once a primary answers.
#[tokio::test]
async fn a_demoted_primary_is_unavailable_for_writes_until_promoted() {
    let Some(server) = PrivateRedis::start("demoted", Persistence::AofAlways) else {
        return;
    };
    let config = RedisStoreConfig::new(server.url()).prefix(common::unique_prefix("demoted"));
    let store = RedisStore::connect(config).await.expect("connect");
    let owner = unique_owner("demoted");
    let kept = store
        .insert(
            &sample_lease(&owner, Duration::minutes(5)),
            &Admission::default(),
        )
        .await
        .expect("insert");

    let admin = redis::Client::open(server.url()).expect("client");
    let mut admin = admin
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    // Follow a primary that does not exist: the data stays, writes are refused.
    let port = lease_testkit::free_port().to_string();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(&port)
        .query_async(&mut admin)
        .await
        .expect("REPLICAOF");
    for _ in 0..2 {
        match store
            .insert(
                &sample_lease(&owner, Duration::minutes(5)),
                &Admission::default(),
            )
            .await
        {
            Err(StoreError::Unavailable(source)) => {
                assert!(
                    source.to_string().to_lowercase().contains("read"),
                    "{source}"
                )
            }
            other => panic!("insert on a replica: expected Unavailable, got {other:?}"),
        }
    }
    assert_eq!(store.get(&kept.id).await.expect("reads still work"), kept);

    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut admin)
        .await
        .expect("promote");
    let again = store
        .insert(
            &sample_lease(&owner, Duration::minutes(5)),
            &Admission::default(),
        )
        .await
        .expect("insert after promotion");
    assert_eq!(store.get(&again.id).await.expect("get"), again);
}
