//! Several `LeaseManager` "replicas" sharing one Redis, each with its own
//! reaper, over one counting fake Docker host: every expired lease is reaped
//! exactly once, a dead claimer's leases are finished by another replica
//! once its claim lapses, and a replica whose clock runs ahead reaps nothing
//! early (the Redis server's clock decides).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Duration, DurationRound, Utc};
use lease_core::testing::fake_runtime::FakeRuntime;
use lease_core::{
    Clock, ContainerRuntime, EventKind, Lease, LeaseEvent, LeaseManager, LeaseStore, ListQuery,
    ManagerConfig, ProvisionRequest, Status, SystemClock,
};
use lease_store_redis::{RedisStore, RedisStoreConfig};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// The wall clock shifted by an offset, or frozen at a chosen instant (to
/// make many leases expire at the same moment). Sleeps poll, so a change of
/// offset or an unfreeze takes effect at once.
#[derive(Debug, Default)]
struct TestClock {
    offset_ms: AtomicI64,
    frozen: Mutex<Option<DateTime<Utc>>>,
}

impl TestClock {
    fn ahead(by: Duration) -> Self {
        let clock = TestClock::default();
        clock
            .offset_ms
            .store(by.num_milliseconds(), Ordering::SeqCst);
        clock
    }

    fn freeze(&self, at: DateTime<Utc>) {
        *self
            .frozen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(at);
    }

    fn unfreeze(&self) {
        *self
            .frozen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

#[async_trait]
impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        match *self
            .frozen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Some(at) => at,
            None => Utc::now() + Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst)),
        }
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        loop {
            let Ok(left) = (deadline - self.now()).to_std() else {
                return;
            };
            if left.is_zero() {
                return;
            }
            tokio::time::sleep(left.min(StdDuration::from_millis(20))).await;
        }
    }
}

/// One shared Redis prefix; each replica gets its own connection (as
/// separate processes would).
struct Deployment {
    config: RedisStoreConfig,
    namespace: String,
}

impl Deployment {
    fn new(tag: &str) -> Option<Self> {
        let config = common::config(tag)?;
        let namespace = config.prefix.to_ascii_lowercase();
        Some(Deployment { config, namespace })
    }

    async fn store(&self) -> Option<Arc<RedisStore>> {
        common::connect(self.config.clone()).await
    }

    async fn replica(
        &self,
        runtime: Arc<dyn ContainerRuntime>,
        clock: Arc<dyn Clock>,
        config: ManagerConfig,
    ) -> Option<LeaseManager> {
        let store: Arc<dyn LeaseStore> = self.store().await?;
        let config = ManagerConfig {
            namespace: self.namespace.clone(),
            ..config
        };
        Some(
            LeaseManager::builder(store, runtime)
                .config(config)
                .clock(clock)
                .build()
                .expect("build the manager"),
        )
    }
}

/// Active leases (any status) in the deployment.
async fn active(store: &RedisStore, status: Option<Status>) -> Vec<Lease> {
    let mut query = ListQuery {
        statuses: status.into_iter().collect(),
        ..ListQuery::default()
    };
    let mut all = Vec::new();
    loop {
        let page = store.list(&query).await.expect("list");
        all.extend(page.items);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return all,
        }
    }
}

/// Counts `Deleted` events (finished leases) a replica emitted.
fn count_deleted(
    mut events: broadcast::Receiver<LeaseEvent>,
) -> tokio::task::JoinHandle<Vec<LeaseEvent>> {
    tokio::spawn(async move {
        let mut deleted = Vec::new();
        loop {
            match events.recv().await {
                Ok(event) if event.kind == EventKind::Deleted => deleted.push(event),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    panic!("event receiver lagged by {missed}")
                }
                Err(broadcast::error::RecvError::Closed) => return deleted,
            }
        }
    })
}

/// Provisions `count` leases through `manager`, all expiring exactly at
/// `expires_at` (the manager's clock is frozen 60 s before it), spread over
/// `owners` owners, and waits until they are all running.
async fn provision_expiring_at(
    manager: &LeaseManager,
    clock: &TestClock,
    store: &RedisStore,
    count: usize,
    owners: usize,
    expires_at: DateTime<Utc>,
) -> HashSet<String> {
    clock.freeze(expires_at - Duration::minutes(1));
    let mut ids = HashSet::new();
    let requests: Vec<_> = (0..count)
        .map(|n| ProvisionRequest::new(format!("owner-{}", n % owners), "alpine").minutes(1))
        .collect();
    let mut stream = futures::stream::iter(requests)
        .map(|request| {
            let manager = manager.clone();
            async move { manager.provision(request).await }
        })
        .buffer_unordered(16);
    use futures::StreamExt;
    while let Some(result) = stream.next().await {
        let lease = result.expect("provision");
        assert_eq!(lease.expires_at, expires_at);
        ids.insert(lease.id.to_string());
    }
    clock.unfreeze();
    common::wait_for(
        "every lease running",
        StdDuration::from_secs(30),
        async || active(store, Some(Status::Running)).await.len() == count,
    )
    .await;
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_reap_1000_leases_expiring_together_exactly_once() {
    const LEASES: usize = 1000;
    let Some(deployment) = Deployment::new("replicas") else {
        return;
    };
    let Some(store) = deployment.store().await else {
        return;
    };
    // One Docker host, shared by both replicas; removals take a little time
    // so both reapers get work.
    let docker = Arc::new(FakeRuntime::new(
        &deployment.namespace,
        Arc::new(SystemClock),
    ));
    docker.set_remove_latency(StdDuration::from_millis(2));
    let config = ManagerConfig {
        reap_batch: 50,
        max_concurrent_removals: 16,
        claim_ttl: StdDuration::from_secs(30),
        ..ManagerConfig::default()
    };
    let (clock_a, clock_b) = (
        Arc::new(TestClock::default()),
        Arc::new(TestClock::default()),
    );
    let a = deployment
        .replica(docker.clone(), clock_a.clone(), config.clone())
        .await
        .unwrap();
    let b = deployment
        .replica(docker.clone(), clock_b.clone(), config)
        .await
        .unwrap();

    // All expire in the same instant, a few seconds from now.
    let expires_at = (Utc::now() + Duration::seconds(6))
        .duration_trunc(Duration::seconds(1))
        .unwrap();
    let ids = provision_expiring_at(&a, &clock_a, &store, LEASES, 50, expires_at).await;
    assert_eq!(ids.len(), LEASES);
    assert!(
        Utc::now() < expires_at,
        "provisioning took too long for the test to mean anything"
    );
    assert_eq!(docker.create_calls(), LEASES);

    let (events_a, events_b) = (count_deleted(a.subscribe()), count_deleted(b.subscribe()));
    let shutdown = CancellationToken::new();
    let tasks = [a.start(shutdown.clone()), b.start(shutdown.clone())];

    common::wait_for(
        "every lease finished",
        StdDuration::from_secs(60),
        async || active(&store, None).await.is_empty(),
    )
    .await;
    let all_done = Utc::now();
    shutdown.cancel();
    for task in tasks {
        task.join().await;
    }
    drop((a, b));
    let (deleted_a, deleted_b) = (events_a.await.unwrap(), events_b.await.unwrap());

    // Exactly 1,000 removals in total, none twice, all finished.
    let by_lease = docker.removals_by_lease();
    assert_eq!(
        docker.remove_calls(),
        LEASES,
        "one remove call per lease, no repeats"
    );
    assert_eq!(by_lease.len(), LEASES);
    assert!(
        by_lease.values().all(|&n| n == 1),
        "a container removed twice"
    );
    assert_eq!(by_lease.keys().cloned().collect::<HashSet<_>>(), ids);
    assert!(docker.containers_in(&deployment.namespace).is_empty());
    let removals = docker.removals();
    assert!(
        removals.iter().all(|removal| removal.at >= expires_at),
        "a container was removed before its lease expired"
    );
    for id in &ids {
        let lease = store.get(&id.parse().unwrap()).await.expect("in history");
        assert_eq!(lease.status, Status::Deleted, "{id}");
        assert!(lease.final_cost.is_some());
    }
    assert_eq!(
        deleted_a.len() + deleted_b.len(),
        LEASES,
        "one Deleted event per lease"
    );
    let events: HashSet<_> = deleted_a
        .iter()
        .chain(&deleted_b)
        .map(|e| e.lease.id.to_string())
        .collect();
    assert_eq!(events, ids);
    assert!(
        !deleted_a.is_empty() && !deleted_b.is_empty(),
        "both replicas should have reaped: {} / {}",
        deleted_a.len(),
        deleted_b.len()
    );
    let last_removal = removals.iter().map(|r| r.at).max().unwrap();
    let first_removal = removals.iter().map(|r| r.at).min().unwrap();
    let mut lateness: Vec<i64> = deleted_a
        .iter()
        .chain(&deleted_b)
        .filter_map(|e| e.lateness_ms)
        .collect();
    lateness.sort_unstable();
    eprintln!(
        "replicas: {LEASES} leases expiring at {expires_at}: replica A finished {}, B {}; \
         first removal +{} ms, last +{} ms after expiry, all finished +{} ms; \
         claim lateness p50 {} ms, max {} ms",
        deleted_a.len(),
        deleted_b.len(),
        (first_removal - expires_at).num_milliseconds(),
        (last_removal - expires_at).num_milliseconds(),
        (all_done - expires_at).num_milliseconds(),
        lateness[lateness.len() / 2],
        lateness[lateness.len() - 1],
    );
    store.delete_all().await.expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_claimers_leases_are_finished_after_its_claim_lapses() {
    const LEASES: usize = 40;
    let claim_ttl = StdDuration::from_secs(2);
    let Some(deployment) = Deployment::new("dead-claimer") else {
        return;
    };
    let Some(store) = deployment.store().await else {
        return;
    };
    let docker = Arc::new(FakeRuntime::new(
        &deployment.namespace,
        Arc::new(SystemClock),
    ));
    let clock_b = Arc::new(TestClock::default());
    let b = deployment
        .replica(
            docker.clone(),
            clock_b.clone(),
            ManagerConfig {
                claim_ttl,
                ..ManagerConfig::default()
            },
        )
        .await
        .unwrap();
    let expires_at = (Utc::now() + Duration::seconds(2))
        .duration_trunc(Duration::milliseconds(1))
        .unwrap();
    let ids = provision_expiring_at(&b, &clock_b, &store, LEASES, 4, expires_at).await;
    common::wait_for("expiry", StdDuration::from_secs(10), async || {
        Utc::now() > expires_at
    })
    .await;

    // Replica A claims everything, moves it to `deleting`, and hangs in the
    // removal (its Docker never answers) until it dies.
    let hung_docker = Arc::new(FakeRuntime::new(
        &deployment.namespace,
        Arc::new(SystemClock),
    ));
    hung_docker.set_remove_latency(StdDuration::from_secs(3600));
    let a = deployment
        .replica(
            hung_docker.clone(),
            Arc::new(SystemClock),
            ManagerConfig {
                claim_ttl,
                max_concurrent_removals: 64,
                ..ManagerConfig::default()
            },
        )
        .await
        .unwrap();
    let claimer = tokio::spawn(async move { a.reap_once().await });
    common::wait_for(
        "the claimer to take every lease",
        StdDuration::from_secs(10),
        async || active(&store, Some(Status::Deleting)).await.len() == LEASES,
    )
    .await;
    let claimed_at = Instant::now();
    claimer.abort();
    assert!(
        claimer.await.unwrap_err().is_cancelled(),
        "the claimer died"
    );
    assert_eq!(hung_docker.remove_calls(), LEASES);

    // Replica B finds nothing claimable while the dead claim holds.
    let report = b.reap_once().await.expect("reap");
    assert_eq!(report.claimed, 0, "a live claim must hold: {report:?}");
    assert!(docker.removals().is_empty());

    // Then B's reaper wakes at the claim deadline and finishes them all.
    let events = count_deleted(b.subscribe());
    let shutdown = CancellationToken::new();
    let tasks = b.start(shutdown.clone());
    common::wait_for(
        "B to finish the dead claimer's leases",
        StdDuration::from_secs(20),
        async || active(&store, None).await.is_empty(),
    )
    .await;
    let took = claimed_at.elapsed();
    shutdown.cancel();
    tasks.join().await;
    drop(b);
    let deleted = events.await.unwrap();
    assert_eq!(deleted.len(), LEASES);
    let first_removal = docker.removals().iter().map(|r| r.at).min().unwrap();
    let by_lease = docker.removals_by_lease();
    assert_eq!(by_lease.keys().cloned().collect::<HashSet<_>>(), ids);
    assert!(by_lease.values().all(|&n| n == 1));
    for id in &ids {
        let lease = store.get(&id.parse().unwrap()).await.expect("in history");
        assert_eq!(lease.status, Status::Deleted);
    }
    assert!(
        took >= claim_ttl - StdDuration::from_millis(300),
        "finished {took:?} after the claim, before the {claim_ttl:?} claim could lapse"
    );
    eprintln!(
        "dead claimer: {LEASES} leases finished by the other replica {took:?} after the claim \
         (claim ttl {claim_ttl:?}); first removal {} ms after expiry",
        (first_removal - expires_at).num_milliseconds()
    );
    store.delete_all().await.expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_whose_clock_runs_30s_ahead_reaps_nothing_early() {
    const LEASES: usize = 20;
    let Some(deployment) = Deployment::new("skew") else {
        return;
    };
    let Some(store) = deployment.store().await else {
        return;
    };
    let docker = Arc::new(FakeRuntime::new(
        &deployment.namespace,
        Arc::new(SystemClock),
    ));
    let honest_clock = Arc::new(TestClock::default());
    let honest = deployment
        .replica(
            docker.clone(),
            honest_clock.clone(),
            ManagerConfig::default(),
        )
        .await
        .unwrap();
    let expires_at = (Utc::now() + Duration::seconds(3))
        .duration_trunc(Duration::milliseconds(1))
        .unwrap();
    let ids = provision_expiring_at(&honest, &honest_clock, &store, LEASES, 2, expires_at).await;

    // Only the skewed replica runs a reaper until well after expiry.
    let skewed = deployment
        .replica(
            docker.clone(),
            Arc::new(TestClock::ahead(Duration::seconds(30))),
            ManagerConfig::default(),
        )
        .await
        .unwrap();
    let report = skewed.reap_once().await.expect("reap");
    assert_eq!(
        report.claimed, 0,
        "30 s ahead, nothing is due yet: {report:?}"
    );
    let shutdown = CancellationToken::new();
    let tasks = skewed.start(shutdown.clone());
    common::wait_for(
        "every lease finished",
        StdDuration::from_secs(30),
        async || active(&store, None).await.is_empty(),
    )
    .await;
    shutdown.cancel();
    tasks.join().await;

    let removals = docker.removals();
    assert_eq!(removals.len(), LEASES);
    let early: Vec<_> = removals.iter().filter(|r| r.at < expires_at).collect();
    assert!(
        early.is_empty(),
        "removed before expiry by a skewed clock: {early:?}"
    );
    let by_lease: HashMap<_, _> = docker.removals_by_lease();
    assert_eq!(by_lease.keys().cloned().collect::<HashSet<_>>(), ids);
    let first = removals.iter().map(|r| r.at).min().unwrap();
    eprintln!(
        "skew: replica 30 s ahead removed its first container {} ms after expiry, none early",
        (first - expires_at).num_milliseconds()
    );
    store.delete_all().await.expect("cleanup");
}
