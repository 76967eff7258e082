//! `redis+sentinel://`: a primary, a replica and a Sentinel of the test's
//! own; the primary crashes, Sentinel promotes the replica, and the same
//! store carries on against the new primary without a restart.

mod common;

use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, Utc};
use lease_core::testing::conformance::{sample_lease, unique_owner};
use lease_core::{Admission, LeaseStore, StoreError};
use lease_store_redis::{RedisStore, RedisStoreConfig};
use lease_testkit::free_port;
use lease_testkit::redis::{Persistence, PrivateRedis, scratch_dir};

async fn query(url: &str, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(&mut conn).await
}

async fn info(url: &str) -> String {
    match query(url, &["INFO", "replication"]).await {
        Ok(redis::Value::BulkString(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        Ok(redis::Value::VerbatimString { text, .. }) => text,
        _ => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_sentinel_failover() {
    let Some(mut primary) = PrivateRedis::start("sentinel-primary", Persistence::AofAlways) else {
        return;
    };
    let Some(replica) = PrivateRedis::builder("sentinel-replica")
        .persistence(Persistence::AofAlways)
        .args(["--replicaof", "127.0.0.1", &primary.port().to_string()])
        .start()
    else {
        return;
    };
    let dir = scratch_dir("sentinel");
    let sentinel_port = free_port();
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {sentinel_port}\n\
             sentinel monitor lease-primary 127.0.0.1 {} 1\n\
             sentinel down-after-milliseconds lease-primary 500\n\
             sentinel failover-timeout lease-primary 3000\n",
            primary.port()
        ),
    )
    .expect("write sentinel.conf");
    let Some(_sentinel) = PrivateRedis::builder("sentinel")
        .dir(dir)
        .port(sentinel_port)
        .sentinel(conf)
        .start()
    else {
        return;
    };
    let sentinel_url = format!("redis://127.0.0.1:{sentinel_port}/");
    common::wait_for(
        "the replica to sync",
        StdDuration::from_secs(20),
        async || info(&replica.url()).await.contains("master_link_status:up"),
    )
    .await;
    common::wait_for(
        "Sentinel to see the replica",
        StdDuration::from_secs(30),
        async || {
            matches!(
                query(&sentinel_url, &["SENTINEL", "REPLICAS", "lease-primary"]).await,
                Ok(redis::Value::Array(replicas)) if !replicas.is_empty()
            )
        },
    )
    .await;

    let config = RedisStoreConfig::new(format!(
        "redis+sentinel://127.0.0.1:{sentinel_port}/lease-primary/0"
    ))
    .prefix(common::unique_prefix("sentinel"))
    .connection_timeout(StdDuration::from_millis(500))
    .response_timeout(StdDuration::from_secs(1))
    .reconnect_retries(0);
    let store = RedisStore::connect(config)
        .await
        .expect("connect through Sentinel");
    let owner = unique_owner("sentinel");
    let mut leases = Vec::new();
    for _ in 0..20 {
        leases.push(
            store
                .insert(
                    &sample_lease(&owner, Duration::minutes(5)),
                    &Admission::default(),
                )
                .await
                .expect("insert"),
        );
    }
    // Replication is asynchronous: wait until the replica has it all.
    let acked = query(&primary.url(), &["WAIT", "1", "5000"])
        .await
        .expect("WAIT");
    assert_eq!(
        acked,
        redis::Value::Int(1),
        "the replica acknowledged the writes"
    );

    primary.crash();
    let crashed = Instant::now();
    let mut failures = 0;
    let due = sample_lease(&owner, Duration::seconds(-1));
    loop {
        match store.insert(&due, &Admission::default()).await {
            Ok(_) => break,
            Err(StoreError::Unavailable(_)) => {
                failures += 1;
                assert!(
                    crashed.elapsed() < StdDuration::from_secs(30),
                    "no failover within 30 s"
                );
                tokio::time::sleep(StdDuration::from_millis(100)).await;
            }
            Err(other) => panic!("during the failover: expected Unavailable, got {other:?}"),
        }
    }
    let took = crashed.elapsed();
    assert!(failures > 0, "the crash was not noticed");
    assert!(
        info(&replica.url()).await.contains("role:master"),
        "the replica was promoted"
    );

    for lease in &leases {
        assert_eq!(
            &store.get(&lease.id).await.expect("replicated lease"),
            lease
        );
    }
    // Scripts are loaded on the new primary as needed.
    let claimed = store
        .claim_expired(Utc::now(), 10, StdDuration::from_secs(60))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    eprintln!(
        "sentinel: the store wrote to the promoted replica {took:?} after the primary crashed ({failures} calls failed as Unavailable meanwhile)"
    );
}
