//! Warm pools end to end on the real Docker engine: lease-core's engine +
//! the memory store + this runtime. Pool containers are real, started and
//! hardened exactly as lease containers are; a provision that finds one is
//! running at once; THE CHECK (the namespace's containers are exactly the
//! live leases' containers and the ready pool) holds after every step.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;
use common::{TestDocker, local_catalog, raw_list};
use lease_core::runtime::labels;
use lease_core::store::LeaseStoreExt;
use lease_core::{
    Catalog, ContainerRuntime, LeaseManager, LeaseStore, ListQuery, ManagerConfig, ManualClock,
    ProvisionRequest, SlotState, Status,
};
use lease_store_memory::MemoryStore;

/// The offline catalog with a pool of `pool` on alpine.
fn pooled_catalog(pool: u32) -> Catalog {
    let catalog = local_catalog();
    let offerings = catalog.offerings().cloned().map(|mut offering| {
        if offering.key == "alpine" {
            offering.pool = pool;
        }
        offering
    });
    Catalog::new(offerings.collect::<Vec<_>>()).expect("catalog")
}

struct Pooled {
    test: TestDocker,
    store: Arc<dyn LeaseStore>,
    manager: LeaseManager,
    clock: Arc<ManualClock>,
}

async fn pooled(pool: u32) -> Option<Pooled> {
    let test = TestDocker::start().await?;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryStore::new());
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(test.runtime.clone());
    let manager = LeaseManager::builder(store.clone(), runtime)
        .catalog(pooled_catalog(pool))
        .config(ManagerConfig::with_namespace(&test.namespace))
        .clock(clock.clone())
        .build()
        .expect("manager");
    Some(Pooled {
        test,
        store,
        manager,
        clock,
    })
}

impl Pooled {
    /// THE CHECK, against the engine itself (all states).
    async fn check(&self) {
        let leases = self
            .store
            .list_all(&ListQuery::default())
            .await
            .expect("leases");
        let mut expected: Vec<String> = leases
            .iter()
            .filter(|lease| lease.status.is_live())
            .filter_map(|lease| lease.container_id.clone())
            .collect();
        let slots = self.store.pool_slots().await.expect("slots");
        expected.extend(
            slots
                .iter()
                .filter(|slot| slot.state == SlotState::Ready)
                .filter_map(|slot| slot.container_id.clone()),
        );
        let count = expected.len();
        let expected: BTreeSet<String> = expected.into_iter().collect();
        assert_eq!(expected.len(), count, "a container is held twice");
        let actual: BTreeSet<String> = raw_list(&self.test.raw, &self.test.namespace)
            .await
            .into_iter()
            .collect();
        assert_eq!(
            actual, expected,
            "namespace containers ≠ live leases' + pool"
        );
    }

    async fn host_config(&self, container: &str) -> bollard::models::HostConfig {
        self.test
            .raw
            .inspect_container(container, None)
            .await
            .expect("inspect")
            .host_config
            .expect("host config")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_runs_at_once_on_a_hardened_pool_container_and_the_pool_refills() {
    let Some(p) = pooled(2).await else { return };
    assert_eq!(p.manager.fill_pools_once().await.expect("fill"), 2);
    p.check().await;
    let ready: Vec<String> = p
        .store
        .pool_slots()
        .await
        .expect("slots")
        .into_iter()
        .filter_map(|slot| slot.container_id)
        .collect();
    let pooled = p
        .test
        .raw
        .inspect_container(&ready[0], None)
        .await
        .expect("inspect");
    assert_eq!(pooled.state.and_then(|s| s.running), Some(true));
    let pool_labels = pooled.config.and_then(|c| c.labels).expect("labels");
    assert_eq!(
        pool_labels.get(labels::POOL).map(String::as_str),
        Some("alpine")
    );
    assert!(!pool_labels.contains_key(labels::LEASE_ID));

    let lease = p
        .manager
        .provision(ProvisionRequest::new("alice", "alpine").minutes(5))
        .await
        .expect("provision");
    assert_eq!(lease.status, Status::Running, "running at once");
    let container = lease.container_id.clone().expect("container");
    assert!(ready.contains(&container));
    // The lease's container works like any lease's.
    let ran = p.test.run(&container, &["echo", "hi"]).await;
    assert_eq!((ran.code, ran.stdout.trim()), (0, "hi"));

    // Hardened exactly as a container provisioned the usual way.
    let usual = p
        .manager
        .provision(ProvisionRequest::new("alice", "alpine").minutes(5))
        .await
        .expect("provision");
    assert_eq!(usual.status, Status::Running, "the second pooled container");
    assert_eq!(p.manager.fill_pools_once().await.expect("fill"), 2);
    p.check().await;
    let miss_catalog_manager = LeaseManager::builder(
        Arc::new(MemoryStore::new()),
        Arc::new(p.test.runtime.clone()),
    )
    .catalog(local_catalog())
    .config(ManagerConfig::with_namespace(&p.test.namespace))
    .build()
    .expect("manager");
    let plain = miss_catalog_manager
        .provision(ProvisionRequest::new("alice", "alpine").minutes(5))
        .await
        .expect("provision");
    let mut plain_container = None;
    for _ in 0..300 {
        let stored = miss_catalog_manager.get(&plain.id).await.expect("get");
        if stored.status == Status::Running {
            plain_container = stored.container_id;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let plain_container = plain_container.expect("the usual path ran");
    let (a, b) = (
        p.host_config(&container).await,
        p.host_config(&plain_container).await,
    );
    assert_eq!(a.cap_drop, b.cap_drop);
    assert_eq!(a.cap_add, b.cap_add);
    assert_eq!(a.security_opt, b.security_opt);
    assert_eq!(a.init, b.init);
    assert_eq!(
        (a.memory, a.nano_cpus, a.pids_limit),
        (b.memory, b.nano_cpus, b.pids_limit)
    );
    assert_eq!(a.network_mode, b.network_mode);
    assert_eq!(a.log_config, b.log_config);
    miss_catalog_manager
        .delete(&plain.id)
        .await
        .expect("delete");
    miss_catalog_manager.reap_once().await.expect("reap");

    // Ended: the used container goes and never returns to the pool.
    p.manager.delete(&lease.id).await.expect("delete");
    p.manager.reap_once().await.expect("reap");
    let report = p.manager.reconcile_once().await.expect("reconcile");
    assert_eq!(report.pool_slots_dropped, 1);
    assert_eq!(report.orphans_removed, 0);
    p.check().await;
    assert!(
        !raw_list(&p.test.raw, &p.test.namespace)
            .await
            .contains(&container),
        "the used container is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_larger_than_the_pool_gets_distinct_containers() {
    let Some(p) = pooled(2).await else { return };
    assert_eq!(p.manager.fill_pools_once().await.expect("fill"), 2);
    let provisions = (0..5).map(|n| {
        let manager = p.manager.clone();
        async move {
            manager
                .provision(ProvisionRequest::new(format!("user-{n}"), "alpine").minutes(5))
                .await
                .expect("provision")
        }
    });
    let leases = futures::future::join_all(provisions).await;
    assert_eq!(
        leases
            .iter()
            .filter(|l| l.status == Status::Running)
            .count(),
        2,
        "exactly the pool ran at once"
    );
    let mut containers = BTreeSet::new();
    for lease in &leases {
        let mut container = None;
        for _ in 0..300 {
            let stored = p.manager.get(&lease.id).await.expect("get");
            if stored.status == Status::Running {
                container = stored.container_id;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(
            containers.insert(container.expect("running")),
            "shared container"
        );
    }
    p.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconciler_replaces_stale_pool_containers_and_removes_unknown_ones() {
    let Some(p) = pooled(1).await else { return };
    assert_eq!(p.manager.fill_pools_once().await.expect("fill"), 1);
    let old = p.store.pool_slots().await.expect("slots")[0].clone();
    // A pool container whose record is gone (a crashed drop): an orphan.
    assert!(
        p.store
            .pool_drop(&old.id, SlotState::Ready)
            .await
            .expect("drop")
    );
    let report = p.manager.reconcile_once().await.expect("reconcile");
    assert_eq!(report.orphans_removed, 1);
    p.check().await;

    assert_eq!(p.manager.fill_pools_once().await.expect("fill"), 1);
    p.clock.advance(chrono::Duration::hours(2));
    let report = p.manager.reconcile_once().await.expect("reconcile");
    assert_eq!(report.pool_slots_dropped, 1, "older than the max age");
    p.check().await;
    assert_eq!(p.manager.fill_pools_once().await.expect("fill"), 1);
    p.check().await;
}
