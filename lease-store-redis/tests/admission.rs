//! Admission on Redis beyond the conformance suite: two store instances
//! (two connections, like two replicas) racing at a limit, arithmetic past
//! what a Lua double holds exactly, the counters against a recount after a
//! mixed workload, and a database written by the version that kept no
//! counters.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Duration, Utc};
use lease_core::testing::conformance::{finished, sample_lease, unique_owner};
use lease_core::{Admission, Lease, LeaseStore, Limit, ListQuery, Money, Status, StoreError};
use lease_store_redis::{RedisStore, RedisStoreConfig};

/// Two stores on a fresh prefix.
async fn two_stores(tag: &str) -> Option<(Arc<RedisStore>, Arc<RedisStore>, RedisStoreConfig)> {
    two_stores_on(common::config(tag)?).await
}

/// Today's admission with nothing limited.
fn today() -> Admission {
    Admission::today(Utc::now())
}

/// The limit that refused, or `None` if the write went through.
fn refused_by(result: &Result<Lease, StoreError>) -> Option<Limit> {
    match result {
        Ok(_) => None,
        Err(StoreError::LimitReached { limit, .. }) => Some(*limit),
        Err(other) => panic!("expected Ok or LimitReached, got {other}"),
    }
}

/// Inserts every lease at once, alternating between the two stores; the
/// results in lease order.
async fn race(
    stores: [&Arc<RedisStore>; 2],
    leases: Vec<Lease>,
    admission: &Admission,
) -> Vec<Result<Lease, StoreError>> {
    let tasks: Vec<_> = leases
        .into_iter()
        .enumerate()
        .map(|(n, lease)| {
            let store = Arc::clone(stores[n % 2]);
            let admission = admission.clone();
            tokio::spawn(async move { store.insert(&lease, &admission).await })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.expect("an insert task panicked"));
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_admit_exactly_five_of_forty_inserts() {
    let Some((a, b, _)) = two_stores("two-stores").await else {
        return;
    };
    let owner = unique_owner("racer");
    let admission = Admission {
        max_leases_per_owner: Some(5),
        ..today()
    };
    let leases = (0..40)
        .map(|_| sample_lease(&owner, Duration::hours(1)))
        .collect();
    let results = race([&a, &b], leases, &admission).await;
    let refusals: Vec<_> = results.iter().map(refused_by).collect();
    let admitted = refusals.iter().filter(|r| r.is_none()).count();
    let per_owner = refusals
        .iter()
        .filter(|r| **r == Some(Limit::LeasesPerOwner))
        .count();
    assert_eq!((admitted, per_owner), (5, 35), "{refusals:?}");
    // Both stores admitted from the same count: each sees the five.
    for store in [&a, &b] {
        let page = store.list(&ListQuery::owner(&owner)).await.expect("list");
        assert_eq!(page.items.len(), 5);
    }
    a.delete_all().await.expect("clean up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_share_the_host_budget() {
    let Some((a, b, _)) = two_stores("two-stores-host").await else {
        return;
    };
    // 40 owners, each lease 0.5 CPU and 300 MiB, against 2.5 CPUs and 16 GiB:
    // the CPUs run out after five.
    let admission = Admission {
        max_nano_cpus: Some(2_500_000_000),
        max_memory_mb: Some(16_384),
        ..today()
    };
    let leases = (0..40)
        .map(|_| {
            sample_lease(&unique_owner("host"), Duration::hours(1)).with_size(500_000_000, 300)
        })
        .collect();
    let results = race([&a, &b], leases, &admission).await;
    let refusals: Vec<_> = results.iter().map(refused_by).collect();
    assert_eq!(
        refusals.iter().filter(|r| r.is_none()).count(),
        5,
        "{refusals:?}"
    );
    assert_eq!(
        refusals.iter().filter(|r| **r == Some(Limit::Cpus)).count(),
        35
    );
    let all = a.list(&ListQuery::default()).await.expect("list");
    assert_eq!(all.items.len(), 5);
    a.delete_all().await.expect("clean up");
}

#[tokio::test]
async fn sums_past_two_to_the_53_are_exact() {
    let Some(store) = common::store().await else {
        return;
    };
    // 2^53 + 1 is the first integer a double cannot hold.
    let big = (1_i64 << 53) + 1;
    let owner = unique_owner("exact");
    let admission = Admission {
        max_daily_spend: Some(Money::from_nanos(2 * big)),
        max_nano_cpus: Some(2 * big),
        ..today()
    };
    let weighty = |charge: i64, nano_cpus: i64| {
        let mut lease = sample_lease(&owner, Duration::hours(1)).with_size(nano_cpus, 1);
        lease.estimated_cost = Money::from_nanos(charge);
        lease
    };
    for _ in 0..2 {
        let result = store.insert(&weighty(big, 0), &admission).await;
        assert_eq!(refused_by(&result), None, "exactly at the spend limit");
    }
    // One nano-dollar more is over; a double would have rounded it away.
    let result = store.insert(&weighty(1, 0), &admission).await;
    assert_eq!(refused_by(&result), Some(Limit::DailySpend));

    let other = unique_owner("exact-cpus");
    let cpus = |nano_cpus: i64| {
        let mut lease = weighty(0, nano_cpus);
        lease.owner.clone_from(&other);
        lease
    };
    for _ in 0..2 {
        let result = store.insert(&cpus(big), &admission).await;
        assert_eq!(refused_by(&result), None, "exactly at the CPU limit");
    }
    let result = store.insert(&cpus(1), &admission).await;
    match result {
        Err(StoreError::LimitReached { limit, message }) => {
            assert_eq!(limit, Limit::Cpus);
            // The figure in the message is the exact sum.
            let used = Money::from_nanos(2 * big).to_string();
            assert!(message.contains(&used), "{message} should name {used}");
        }
        other => panic!("expected the CPU limit, got {other:?}"),
    }
    store.delete_all().await.expect("clean up");
}

/// The host's totals and each owner's spend per day, read raw.
async fn counters(url: &str, prefix: &str, owners: &[String]) -> (i64, i64, HashMap<String, i64>) {
    let client = redis::Client::open(url).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let (cpus, memory): (Option<i64>, Option<i64>) = redis::cmd("HMGET")
        .arg((format!("{{{prefix}}}:capacity"), "nano_cpus", "memory_mb"))
        .query_async(&mut conn)
        .await
        .expect("read the host's totals");
    let mut spend = HashMap::new();
    for owner in owners {
        let days: HashMap<String, i64> = redis::cmd("HGETALL")
            .arg(format!("{{{prefix}}}:spend:{owner}"))
            .query_async(&mut conn)
            .await
            .expect("read a spend hash");
        spend.insert(owner.clone(), days.values().sum());
    }
    (cpus.unwrap_or(0), memory.unwrap_or(0), spend)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counters_match_a_recount_after_a_mixed_workload() {
    let Some((a, b, config)) = two_stores("recount").await else {
        return;
    };
    let owners: Vec<String> = (0..3).map(|_| unique_owner("mixed")).collect();
    let tasks: Vec<_> = (0..30_usize)
        .map(|n| {
            let store = Arc::clone(if n % 2 == 0 { &a } else { &b });
            let owner = owners[n % owners.len()].clone();
            tokio::spawn(async move {
                let lease = sample_lease(&owner, Duration::hours(1))
                    .with_size(100_000_000 * (n as i64 + 1), 64 * (n as u32 + 1));
                let stored = store.insert(&lease, &today()).await.expect("insert");
                match n % 3 {
                    // Extended: a higher charge.
                    0 => {
                        let mut longer = stored.clone();
                        longer.expires_at += Duration::hours(1);
                        longer.estimated_cost = longer.estimated_cost + longer.estimated_cost;
                        store.update(&longer, &today()).await.expect("extend");
                    }
                    // Ended early: deleting with the accrued cost, then finished.
                    1 => {
                        let mut deleting = stored.clone();
                        deleting.status = Status::Deleting;
                        deleting.ended_at = Some(stored.created_at + Duration::minutes(30));
                        let deleting = store.update(&deleting, &today()).await.expect("end");
                        let done = finished(
                            &deleting,
                            stored.created_at + Duration::minutes(30),
                            Money::from_nanos(1_234_567),
                        );
                        store.finish(&done).await.expect("finish");
                    }
                    _ => {}
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a workload task panicked");
    }

    // The recount: active sizes; charges of active and finished leases.
    let active = a.list(&ListQuery::default()).await.expect("list").items;
    let cpus: i64 = active.iter().map(|l| l.nano_cpus).sum();
    let memory: i64 = active.iter().map(|l| i64::from(l.memory_mb)).sum();
    let mut spend: HashMap<String, i64> = owners.iter().map(|o| (o.clone(), 0)).collect();
    for lease in &active {
        *spend.entry(lease.owner.clone()).or_default() += lease.charge().nanos();
    }
    let history = a
        .history(&lease_core::HistoryQuery::default())
        .await
        .expect("history")
        .items;
    assert_eq!((active.len(), history.len()), (20, 10));
    for lease in &history {
        *spend.entry(lease.owner.clone()).or_default() += lease.charge().nanos();
    }
    let url = config.url.clone();
    assert_eq!(
        counters(&url, a.prefix(), &owners).await,
        (cpus, memory, spend)
    );
    a.delete_all().await.expect("clean up");
}

/// Makes the store's data look written by the version that kept no
/// counters: no weights in the lease hashes, no totals, no spend, no layout
/// version.
async fn strip_counters(url: &str, prefix: &str, owners: &[String], ids: &[String]) {
    let client = redis::Client::open(url).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.hdel(
            format!("{{{prefix}}}:lease:{id}"),
            &["charge", "day", "cpus", "memory"],
        )
        .ignore();
    }
    pipe.del(format!("{{{prefix}}}:capacity")).ignore();
    pipe.del(format!("{{{prefix}}}:layout")).ignore();
    for owner in owners {
        pipe.del(format!("{{{prefix}}}:spend:{owner}")).ignore();
    }
    let () = pipe
        .query_async(&mut conn)
        .await
        .expect("strip the counters");
}

#[tokio::test]
async fn a_database_from_before_the_counters_is_counted_at_connect() {
    let Some(config) = common::config("upgrade") else {
        return;
    };
    let Some(old) = common::connect(config.clone()).await else {
        return;
    };
    let owner = unique_owner("legacy");
    let sized = |expires_in| sample_lease(&owner, expires_in).with_size(1_000_000_000, 512);
    let mut ids = Vec::new();
    let mut kept = Vec::new();
    for _ in 0..3 {
        let stored = old
            .insert(&sized(Duration::hours(1)), &today())
            .await
            .expect("insert");
        ids.push(stored.id.to_string());
        kept.push(stored);
    }
    // One finished today at a known cost: it counts toward today's spend.
    let done = kept.pop().expect("a lease");
    let ended = Utc::now();
    old.finish(&finished(&done, ended, Money::from_nanos(70_000_000)))
        .await
        .expect("finish");
    let charges: i64 = kept.iter().map(|l| l.charge().nanos()).sum::<i64>() + 70_000_000;
    strip_counters(
        &config.url,
        old.prefix(),
        std::slice::from_ref(&owner),
        &ids,
    )
    .await;
    drop(old);

    // Two replicas of the new version start on it: counted once.
    let Some((a, b, _)) = two_stores_on(config.clone()).await else {
        return;
    };
    assert_eq!(
        counters(&config.url, a.prefix(), std::slice::from_ref(&owner)).await,
        (
            2_000_000_000,
            1024,
            HashMap::from([(owner.clone(), charges)])
        )
    );
    // The limits see them: 2 CPUs used of 3, and the spend so far.
    let admission = Admission {
        max_nano_cpus: Some(3_000_000_000),
        max_daily_spend: Some(Money::from_nanos(charges) + sized(Duration::hours(1)).charge()),
        ..today()
    };
    b.insert(&sized(Duration::hours(1)), &admission)
        .await
        .expect("exactly fits");
    let result = a.insert(&sized(Duration::hours(1)), &admission).await;
    assert_eq!(refused_by(&result), Some(Limit::DailySpend));
    // Finishing a lease the old version wrote frees its share.
    let first = a.get(&kept[0].id).await.expect("get");
    a.finish(&finished(&first, Utc::now(), Money::ZERO))
        .await
        .expect("finish");
    let (cpus, memory, _) = counters(&config.url, a.prefix(), std::slice::from_ref(&owner)).await;
    assert_eq!((cpus, memory), (2_000_000_000, 1024));
    a.delete_all().await.expect("clean up");
}

/// Two stores on one Redis and one prefix, connected at the same time.
async fn two_stores_on(
    config: RedisStoreConfig,
) -> Option<(Arc<RedisStore>, Arc<RedisStore>, RedisStoreConfig)> {
    let (a, b) = tokio::join!(
        common::connect(config.clone()),
        common::connect(config.clone())
    );
    Some((a?, b?, config))
}

#[tokio::test]
async fn the_upgrade_counts_nothing_when_the_active_set_moved_since_it_was_read() {
    let Some(config) = common::config("upgrade-moved") else {
        return;
    };
    let Some(old) = common::connect(config.clone()).await else {
        return;
    };
    let owner = unique_owner("moved");
    let lease = sample_lease(&owner, Duration::hours(1)).with_size(1_000_000_000, 512);
    let stored = old.insert(&lease, &today()).await.expect("insert");
    let id = stored.id.to_string();
    strip_counters(
        &config.url,
        old.prefix(),
        std::slice::from_ref(&owner),
        std::slice::from_ref(&id),
    )
    .await;

    // What a replica read before an old-version replica wrote: a stale
    // revision, or one lease fewer than there are.
    let client = redis::Client::open(config.url.as_str()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let base = format!("{{{}}}:", old.prefix());
    let keys = [
        format!("{base}layout"),
        format!("{base}active"),
        format!("{base}capacity"),
    ];
    let script = redis::Script::new(include_str!("../src/lua/upgrade.lua"));
    let charge = stored.charge().nanos().to_string();
    let stale: [&str; 10] = [
        &base,
        "1",
        "0",
        &id,
        "7",
        &owner,
        &charge,
        "20000",
        "1000000000",
        "512",
    ];
    let missing: [&str; 3] = [&base, "0", "0"];
    for args in [&stale[..], &missing[..]] {
        let mut call = script.prepare_invoke();
        call.key(&keys[..]).arg(args);
        let reply: String = call.invoke_async(&mut conn).await.expect("run upgrade.lua");
        assert_eq!(reply, "retry", "{args:?}");
    }
    let exists: u64 = redis::cmd("EXISTS")
        .arg(&keys[..])
        .query_async(&mut conn)
        .await
        .expect("exists");
    assert_eq!(exists, 1, "only the active index: no layout, no totals");

    // A store of this version reads again and counts it once.
    let Some(new) = common::connect(config.clone()).await else {
        return;
    };
    assert_eq!(
        counters(&config.url, new.prefix(), std::slice::from_ref(&owner)).await,
        (
            1_000_000_000,
            512,
            HashMap::from([(owner.clone(), stored.charge().nanos())])
        )
    );
    new.delete_all().await.expect("clean up");
}
