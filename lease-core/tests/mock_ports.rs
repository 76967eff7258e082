//! How the engine drives its ports, proven with mockall: which calls the
//! [`LeaseManager`] and its reaper make on [`LeaseStore`] and
//! [`ContainerRuntime`], how often, in which order and with which arguments.
//!
//! The mocks are strict: a call no expectation matches panics. Calls made by
//! the background provisioning task panic inside that task, so every test
//! that provisions waits for a definite signal (a lease event or a message
//! from a mock) under a timeout, then shuts the manager down (which waits for
//! its tasks) and drops it, so the mocks verify their call counts on the
//! test's own thread.

use std::cell::Cell;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use lease_core::runtime::{BelongsTo, ContainerInfo, Limits, NetworkMode, UnitState};
use lease_core::{
    Admission, Catalog, Clock, ContainerSpec, EndReason, EventKind, HistoryQuery, Lease,
    LeaseError, LeaseEvent, LeaseId, LeaseManager, LeaseStore, ListQuery, ManagerConfig,
    ManualClock, Money, Offering, Page, ProvisionRequest, ReapReport, RuntimeError, Status,
    StoreError, UsageTotals, ValidationError,
};
use mockall::{Sequence, mock};
use tokio::sync::{broadcast, mpsc};

mock! {
    #[derive(Debug)]
    Store {}

    #[async_trait]
    impl LeaseStore for Store {
        async fn ping(&self) -> Result<(), StoreError>;
        async fn insert(&self, lease: &Lease, admission: &Admission) -> Result<Lease, StoreError>;
        async fn get(&self, id: &LeaseId) -> Result<Lease, StoreError>;
        async fn update(&self, lease: &Lease, admission: &Admission) -> Result<Lease, StoreError>;
        async fn list(&self, query: &ListQuery) -> Result<Page<Lease>, StoreError>;
        async fn claim_expired(
            &self,
            now: DateTime<Utc>,
            limit: usize,
            claim_ttl: Duration,
        ) -> Result<Vec<Lease>, StoreError>;
        async fn release(&self, id: &LeaseId, retry_at: DateTime<Utc>) -> Result<(), StoreError>;
        async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
        async fn finish(&self, lease: &Lease) -> Result<Lease, StoreError>;
        async fn history(&self, query: &HistoryQuery) -> Result<Page<Lease>, StoreError>;
        async fn usage(&self, owner: &str) -> Result<UsageTotals, StoreError>;
        async fn daily_stats(
            &self,
            from: chrono::NaiveDate,
            to: chrono::NaiveDate,
        ) -> Result<Vec<lease_core::StatsRow>, StoreError>;
        async fn share_stats(
            &self,
            from: chrono::NaiveDate,
            to: chrono::NaiveDate,
        ) -> Result<Vec<lease_core::StatsRow>, StoreError>;
    }
}

/// Expectations on the container runtime port: the trait's own automock
/// (feature `test-utils`), scoped to [`NS`] with every unit running as soon
/// as it is created (see [`scoped`]).
use lease_core::runtime::MockContainerRuntime as MockRuntime;

/// `runtime`, scoped to [`NS`], and reporting any unit the engine asks
/// about as running (the placement wait's one status call).
fn scoped(mut runtime: MockRuntime) -> MockRuntime {
    runtime.expect_namespace().return_const(NS.to_owned());
    runtime
        .expect_status()
        .returning(|unit| Ok(Some(running_unit(unit))));
    runtime
}

/// What the runtime reports about a running unit `id`.
fn running_unit(id: &str) -> ContainerInfo {
    ContainerInfo {
        id: id.to_owned(),
        name: id.to_owned(),
        state: UnitState::Running,
        labels: Default::default(),
        address: None,
        limits: None,
    }
}

/// The namespace of every manager built here.
const NS: &str = "test-mock";
/// The offering the provisioning tests rent; its values differ from the
/// built-in catalog's so nothing matches by accident.
const OFFERING: &str = "tiny";
const IMAGE: &str = "registry.example/tiny:1.2";
const MEMORY_MB: u32 = 300;
const NANO_CPUS: i64 = 750_000_000;
const PIDS: u32 = 77;
/// A second offering with a lower max lifetime than the configuration's.
const SHORT: &str = "short";
const SHORT_MAX: u32 = 60;
/// $0.01 an hour.
const RATE_NANOS: i64 = 10_000_000;
/// The configuration's default max lifetime (DESIGN/issue: 480 minutes).
const MAX_MINUTES: u32 = 480;
/// How long a test waits for background work before failing.
const WAIT: Duration = Duration::from_secs(10);

/// The one lease a stateful mock store holds.
type Slot = Arc<Mutex<Option<Lease>>>;

fn tiny() -> Offering {
    Offering {
        key: OFFERING.into(),
        image: IMAGE.into(),
        command: vec!["sh".into(), "-c".into(), "sleep 1d".into()],
        hourly_rate: Money::from_nanos(RATE_NANOS),
        nano_cpus: NANO_CPUS,
        memory_mb: MEMORY_MB,
        pids: PIDS,
        default_minutes: 30,
        max_minutes: MAX_MINUTES,
        network: NetworkMode::default(),
        read_only: false,
        scratch_mb: None,
        user: None,
        disk_mb: None,
        pool: 0,
        constraints: Vec::new(),
    }
}

fn catalog() -> Catalog {
    let short = Offering {
        key: SHORT.into(),
        default_minutes: 10,
        max_minutes: SHORT_MAX,
        ..tiny()
    };
    Catalog::new([tiny(), short]).expect("test catalog is valid")
}

fn config() -> ManagerConfig {
    ManagerConfig {
        quick_retry_base: Duration::from_millis(1),
        ..ManagerConfig::with_namespace(NS)
    }
}

fn manager(store: MockStore, runtime: MockRuntime, clock: &Arc<ManualClock>) -> LeaseManager {
    manager_with(store, runtime, clock, config())
}

fn manager_with(
    store: MockStore,
    runtime: MockRuntime,
    clock: &Arc<ManualClock>,
    config: ManagerConfig,
) -> LeaseManager {
    watch_panics();
    LeaseManager::builder(Arc::new(store), Arc::new(scoped(runtime)))
        .catalog(catalog())
        .config(config)
        .clock(clock.clone())
        .build()
        .expect("valid manager config")
}

thread_local! {
    /// Panics on this thread since [`watch_panics`]: `#[tokio::test]` runs
    /// spawned tasks on the test's thread, and a mock that panics inside a
    /// background task would otherwise only end that task.
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

/// Counts this thread's panics from now on (the hook is installed once and
/// still prints every panic).
fn watch_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let print = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|count| count.set(count.get() + 1));
            print(info);
        }));
    });
    PANICS.with(|count| count.set(0));
}

/// Waits for the manager's background tasks, fails if a mock panicked in
/// one of them, then drops the manager (and with it the mocks, which check
/// their call counts on this thread).
async fn finish(manager: LeaseManager) {
    manager.shutdown(WAIT).await;
    let panics = PANICS.with(Cell::get);
    assert_eq!(
        panics, 0,
        "a mock panicked in a background task (an unexpected call; see its message above)"
    );
    drop(manager);
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().expect("test mutex poisoned")
}

/// `insert` for a stateful store: keeps the lease at revision 1.
fn insert_into(
    slot: &Slot,
) -> impl FnMut(&Lease, &Admission) -> Result<Lease, StoreError> + Send + 'static {
    let slot = slot.clone();
    move |lease, _admission| {
        let mut stored = lease.clone();
        stored.revision = 1;
        *lock(&slot) = Some(stored.clone());
        Ok(stored)
    }
}

/// `get` for a stateful store.
fn get_from(slot: &Slot) -> impl FnMut(&LeaseId) -> Result<Lease, StoreError> + Send + 'static {
    let slot = slot.clone();
    move |id| match lock(&slot).as_ref() {
        Some(lease) if lease.id == *id => Ok(lease.clone()),
        _ => Err(StoreError::NotFound(id.clone())),
    }
}

/// `update` for a stateful store: [`cas_in`], with no limit to check.
fn cas_update(
    slot: &Slot,
) -> impl FnMut(&Lease, &Admission) -> Result<Lease, StoreError> + Send + 'static {
    let mut cas = cas_in(slot);
    move |lease, _admission| cas(lease)
}

/// `update` (and `finish`) for a stateful store: compare-and-set on the revision.
fn cas_in(slot: &Slot) -> impl FnMut(&Lease) -> Result<Lease, StoreError> + Send + 'static {
    let slot = slot.clone();
    move |lease| {
        let mut guard = lock(&slot);
        match guard.as_mut() {
            Some(current) if current.id == lease.id => {
                if current.revision != lease.revision {
                    return Err(StoreError::Conflict {
                        id: lease.id.clone(),
                        expected: lease.revision,
                    });
                }
                let mut next = lease.clone();
                next.revision += 1;
                *current = next.clone();
                Ok(next)
            }
            _ => Err(StoreError::NotFound(lease.id.clone())),
        }
    }
}

/// Waits for the event `kind` of lease `id`; fails on a timeout, and on an
/// `error` event when waiting for something else (with its message).
async fn wait_for(
    events: &mut broadcast::Receiver<LeaseEvent>,
    id: &LeaseId,
    kind: EventKind,
) -> LeaseEvent {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(event) if event.lease.id == *id && event.kind == kind => return event,
                Ok(event) if event.lease.id == *id && event.kind == EventKind::Error => {
                    panic!(
                        "waiting for {kind:?}, the lease failed: {:?}",
                        event.lease.error
                    )
                }
                Ok(_) => {}
                Err(error) => panic!("event channel closed or lagged: {error}"),
            }
        }
    };
    tokio::time::timeout(WAIT, wait).await.unwrap_or_else(|_| {
        panic!("no {kind:?} event within {WAIT:?} (a mock may have panicked in a background task; see its output above)")
    })
}

fn runtime_failure(message: &str) -> RuntimeError {
    RuntimeError::operation(
        "remove container",
        std::io::Error::other(message.to_owned()),
    )
}

// ---------------------------------------------------------------------------
// Provisioning
// ---------------------------------------------------------------------------

/// DESIGN invariants 1 and 2: the lease is stored before its container is
/// created, and the container is created from the catalog with every label.
#[tokio::test]
async fn provision_stores_the_lease_before_creating_its_labelled_container() {
    let clock = Arc::new(ManualClock::default());
    let slot = Slot::default();
    let spec_seen: Arc<Mutex<Option<ContainerSpec>>> = Arc::default();
    let mut seq = Sequence::new();
    let mut store = MockStore::new();
    let mut runtime = MockRuntime::new();

    store
        .expect_insert()
        .withf(|lease, _admission| {
            lease.status == Status::Pending
                && lease.container_id.is_none()
                && lease.owner == "alice"
                && lease.offering == OFFERING
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(insert_into(&slot));
    store.expect_get().returning(get_from(&slot));
    // Bookkeeping while still pending (the attempt counter), in any number.
    store
        .expect_update()
        .withf(|lease, _admission| lease.status == Status::Pending)
        .returning(cas_update(&slot));
    runtime
        .expect_ensure_image()
        .withf(|image, _progress| image == IMAGE)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    let stored = slot.clone();
    let seen = spec_seen.clone();
    runtime
        .expect_create()
        // The lease must already be in the store, still pending, when its
        // container is created.
        .withf(move |spec| {
            lock(&stored).as_ref().is_some_and(|lease| {
                spec.belongs_to == BelongsTo::Lease(lease.id.clone())
                    && lease.status == Status::Pending
            })
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |spec| {
            *lock(&seen) = Some(spec.clone());
            Ok("cid-provisioned".to_owned())
        });
    store
        .expect_update()
        .withf(|lease, _admission| {
            lease.status == Status::Running
                && lease.container_id.as_deref() == Some("cid-provisioned")
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(cas_update(&slot));
    runtime.expect_remove().never();
    store.expect_finish().never();

    let manager = manager(store, runtime, &clock);
    let mut events = manager.subscribe();
    let lease = manager
        .provision(ProvisionRequest::new("alice", OFFERING).minutes(30))
        .await
        .expect("valid request");
    assert_eq!(lease.status, Status::Pending);
    assert_eq!(lease.revision, 1, "provision returns the stored lease");
    assert_eq!(lease.expires_at - lease.created_at, TimeDelta::minutes(30));

    let running = wait_for(&mut events, &lease.id, EventKind::Running).await;
    assert_eq!(
        running.lease.container_id.as_deref(),
        Some("cid-provisioned")
    );
    finish(manager).await;

    let spec = lock(&spec_seen)
        .clone()
        .expect("create_and_start was called");
    assert_eq!(spec.belongs_to, BelongsTo::Lease(lease.id.clone()));
    assert_eq!(spec.name, format!("containerlease-{}", lease.id));
    assert_eq!(spec.image, IMAGE);
    assert_eq!(spec.command, ["sh", "-c", "sleep 1d"]);
    assert_eq!(
        spec.limits,
        Limits {
            nano_cpus: NANO_CPUS,
            memory_bytes: i64::from(MEMORY_MB) * 1024 * 1024,
            pids: i64::from(PIDS),
        }
    );

    let label = |key: &str| -> &str {
        spec.labels
            .get(key)
            .unwrap_or_else(|| panic!("label {key} missing from {:?}", spec.labels))
    };
    let time_label = |key: &str| -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(label(key))
            .unwrap_or_else(|error| panic!("label {key} is not RFC 3339: {error}"))
            .with_timezone(&Utc)
    };
    // The runtime, scoped to the namespace, adds these two itself.
    assert_eq!(spec.labels.get("io.containerlease.managed"), None);
    assert_eq!(spec.labels.get("io.containerlease.namespace"), None);
    assert_eq!(label("io.containerlease.lease-id"), lease.id.as_str());
    assert_eq!(label("io.containerlease.owner"), "alice");
    assert_eq!(label("io.containerlease.image-type"), OFFERING);
    assert_eq!(time_label("io.containerlease.expires-at"), lease.expires_at);
    assert_eq!(time_label("io.containerlease.created-at"), lease.created_at);
}

/// An uncontended provision is three writes and no read: the insert, the
/// attempt and `running`, each starting from the lease the one before
/// stored (the store's round trips are what a provision costs a database).
#[tokio::test]
async fn an_uncontended_provision_writes_three_times_and_reads_nothing() {
    let clock = Arc::new(ManualClock::default());
    let slot = Slot::default();
    let mut seq = Sequence::new();
    let mut store = MockStore::new();
    let mut runtime = MockRuntime::new();
    store
        .expect_insert()
        .times(1)
        .in_sequence(&mut seq)
        .returning(insert_into(&slot));
    store
        .expect_update()
        .withf(|lease, _admission| {
            lease.status == Status::Pending && lease.revision == 1 && lease.provision_attempts == 1
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(cas_update(&slot));
    store
        .expect_update()
        .withf(|lease, _admission| lease.status == Status::Running && lease.revision == 2)
        .times(1)
        .in_sequence(&mut seq)
        .returning(cas_update(&slot));
    store.expect_get().never();
    runtime.expect_ensure_image().returning(|_, _| Ok(()));
    runtime
        .expect_create()
        .times(1)
        .returning(|_| Ok("cid-3".to_owned()));

    let manager = manager(store, runtime, &clock);
    let mut events = manager.subscribe();
    let lease = manager
        .provision(ProvisionRequest::new("alice", OFFERING).minutes(30))
        .await
        .expect("valid request");
    let running = wait_for(&mut events, &lease.id, EventKind::Running).await;
    assert_eq!(running.lease.revision, 3);
    finish(manager).await;
}

/// The provisioning task starts from the lease as stored; when someone
/// wrote it in between, the compare-and-set fails and the task reads the
/// lease again rather than overwrite the other write.
#[tokio::test]
async fn provisioning_reads_again_when_the_stored_copy_is_stale() {
    let clock = Arc::new(ManualClock::default());
    let slot = Slot::default();
    let mut store = MockStore::new();
    let mut runtime = MockRuntime::new();
    let stale = slot.clone();
    let mut insert = insert_into(&slot);
    store
        .expect_insert()
        .times(1)
        .returning(move |lease, admission| {
            let stored = insert(lease, admission)?;
            // Another writer (an extension on another replica) before the task runs.
            if let Some(current) = lock(&stale).as_mut() {
                current.revision = 2;
                current.expires_at += TimeDelta::minutes(30);
            }
            Ok(stored)
        });
    store.expect_get().times(1).returning(get_from(&slot));
    store
        .expect_update()
        .withf(|lease, _admission| lease.status == Status::Pending)
        .times(2)
        .returning(cas_update(&slot));
    store
        .expect_update()
        .withf(|lease, _admission| lease.status == Status::Running)
        .times(1)
        .returning(cas_update(&slot));
    runtime.expect_ensure_image().returning(|_, _| Ok(()));
    runtime
        .expect_create()
        .times(1)
        .returning(|_| Ok("cid-4".to_owned()));

    let manager = manager(store, runtime, &clock);
    let mut events = manager.subscribe();
    let lease = manager
        .provision(ProvisionRequest::new("alice", OFFERING).minutes(30))
        .await
        .expect("valid request");
    let running = wait_for(&mut events, &lease.id, EventKind::Running).await;
    assert_eq!(
        running.lease.expires_at,
        lease.expires_at + TimeDelta::minutes(30),
        "the other writer's change is kept"
    );
    finish(manager).await;
}

/// The reaper is woken by a new lease only when the lease is due before the
/// moment the reaper looks anyway: a lease due later is found then, and
/// costs the store no claim and no `next_due` now.
#[tokio::test]
async fn the_reaper_is_woken_only_by_leases_due_before_its_next_look() {
    let clock = Arc::new(ManualClock::default());
    let slot = Slot::default();
    let claims = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut store = MockStore::new();
    let mut runtime = MockRuntime::new();
    let counted = claims.clone();
    store.expect_claim_expired().returning(move |_, _, _| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Vec::new())
    });
    // Nothing due: the reaper looks again at the sweep (10 minutes).
    store.expect_next_due().returning(|| Ok(None));
    store.expect_insert().returning(insert_into(&slot));
    store.expect_get().returning(get_from(&slot));
    store.expect_update().returning(cas_update(&slot));
    runtime.expect_ensure_image().returning(|_, _| Ok(()));
    runtime
        .expect_create()
        .returning(|_| Ok("cid-5".to_owned()));
    let config = ManagerConfig {
        sweep_interval: Duration::from_secs(600),
        ..config()
    };
    let manager = manager_with(store, runtime, &clock, config);
    let stop = tokio_util::sync::CancellationToken::new();
    let reaper = tokio::spawn({
        let (manager, stop) = (manager.clone(), stop.clone());
        async move { manager.run_reaper(stop).await }
    });
    let passes = || claims.load(std::sync::atomic::Ordering::SeqCst);
    let settle = || tokio::time::sleep(Duration::from_millis(100));
    settle().await;
    assert_eq!(passes(), 1, "the reaper's first pass");

    // Due in 30 minutes, after the sweep in 10: no wake-up.
    manager
        .provision(ProvisionRequest::new("alice", OFFERING).minutes(30))
        .await
        .expect("valid request");
    settle().await;
    assert_eq!(passes(), 1, "a lease due after the next look wakes nothing");

    // Due in 5 minutes, before it: the reaper looks again at once.
    manager
        .provision(ProvisionRequest::new("alice", OFFERING).minutes(5))
        .await
        .expect("valid request");
    settle().await;
    assert_eq!(passes(), 2, "a lease due before the next look wakes it");

    stop.cancel();
    reaper.await.expect("reaper task");
    finish(manager).await;
}

/// DESIGN invariant 4: a provisioning task that finds its lease ended after
/// creating the container removes that container and never marks it running.
#[tokio::test]
async fn provisioning_removes_the_container_of_a_lease_that_ended_meanwhile() {
    let clock = Arc::new(ManualClock::default());
    let slot = Slot::default();
    let (removed_tx, mut removed_rx) = mpsc::unbounded_channel::<String>();
    let mut store = MockStore::new();
    let mut runtime = MockRuntime::new();

    store.expect_insert().times(1).returning(insert_into(&slot));
    store.expect_get().returning(get_from(&slot));
    store
        .expect_update()
        .withf(|lease, _admission| lease.status == Status::Pending)
        .returning(cas_update(&slot));
    // The task tries `running` on the copy it stored; the compare-and-set
    // finds the deletion's newer revision, refuses, and the task reads again.
    store
        .expect_update()
        .withf(|lease, _admission| lease.status == Status::Running)
        .times(1)
        .returning(cas_update(&slot));
    runtime.expect_ensure_image().returning(|_, _| Ok(()));
    let ended = slot.clone();
    runtime.expect_create().times(1).returning(move |_spec| {
        // Another replica deletes the lease while the container starts.
        let mut guard = lock(&ended);
        let lease = guard.as_mut().expect("lease stored before create");
        lease.status = Status::Deleting;
        lease.ended_at = Some(lease.created_at);
        lease.end_reason = Some(EndReason::Deleted);
        lease.revision += 1;
        Ok("cid-late".to_owned())
    });
    runtime
        .expect_remove()
        .withf(|container| container == "cid-late")
        .times(1)
        .returning(move |container| {
            let _ = removed_tx.send(container.to_owned());
            Ok(())
        });

    let manager = manager(store, runtime, &clock);
    manager
        .provision(ProvisionRequest::new("alice", OFFERING).minutes(30))
        .await
        .expect("valid request");
    let removed = tokio::time::timeout(WAIT, removed_rx.recv())
        .await
        .expect("the late container was removed in time")
        .expect("remove reported");
    assert_eq!(removed, "cid-late");
    finish(manager).await;
    let stored = lock(&slot).clone().expect("lease stored");
    assert_eq!(stored.status, Status::Deleting, "never marked running");
    assert_eq!(stored.container_id, None);
}

/// A failing create marks the lease `error` with the runtime's message, and
/// the engine cleans up by container name, in its own namespace only.
#[tokio::test]
async fn failed_create_marks_the_lease_error_and_removes_by_name() {
    let clock = Arc::new(ManualClock::default());
    let slot = Slot::default();
    let mut seq = Sequence::new();
    let mut store = MockStore::new();
    let mut runtime = MockRuntime::new();

    store
        .expect_insert()
        .times(1)
        .in_sequence(&mut seq)
        .returning(insert_into(&slot));
    store.expect_get().returning(get_from(&slot));
    store
        .expect_update()
        .withf(|lease, _admission| lease.status == Status::Pending)
        .returning(cas_update(&slot));
    runtime.expect_ensure_image().returning(|_, _| Ok(()));
    runtime
        .expect_create()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| {
            Err(RuntimeError::operation(
                "create container",
                std::io::Error::other("no space left on device"),
            ))
        });
    store
        .expect_update()
        .withf(|lease, _admission| {
            lease.status == Status::Error
                && lease.end_reason == Some(EndReason::Error)
                && lease
                    .error
                    .as_deref()
                    .is_some_and(|e| e.contains("no space left on device"))
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(cas_update(&slot));
    let named = slot.clone();
    runtime
        .expect_remove()
        .withf(move |container| {
            lock(&named)
                .as_ref()
                .is_some_and(|lease| container == format!("containerlease-{}", lease.id))
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    store
        .expect_update()
        .withf(|lease, _admission| lease.status == Status::Running)
        .never();

    let manager = manager(store, runtime, &clock);
    let mut events = manager.subscribe();
    let lease = manager
        .provision(ProvisionRequest::new("alice", OFFERING).minutes(30))
        .await
        .expect("valid request");
    let failed = wait_for(&mut events, &lease.id, EventKind::Error).await;
    assert_eq!(failed.lease.status, Status::Error);
    finish(manager).await;
}

/// Placement may be asynchronous: the engine asks for the created unit's
/// status until it runs; a unit the runtime gives up on fails the lease
/// with the runtime's own reason (not a timeout), and the engine removes
/// what it created, by name.
#[tokio::test]
async fn a_unit_the_runtime_cannot_place_fails_the_lease_with_its_reason() {
    let clock = Arc::new(ManualClock::default());
    let slot = Slot::default();
    let mut seq = Sequence::new();
    let mut store = MockStore::new();
    let mut runtime = MockRuntime::new();
    runtime.expect_namespace().return_const(NS.to_owned());

    store.expect_insert().times(1).returning(insert_into(&slot));
    store.expect_get().returning(get_from(&slot));
    store
        .expect_update()
        .withf(|lease, _admission| lease.status == Status::Pending)
        .returning(cas_update(&slot));
    runtime.expect_ensure_image().returning(|_, _| Ok(()));
    runtime
        .expect_create()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok("unit-1".to_owned()));
    runtime
        .expect_status()
        .withf(|unit| unit == "unit-1")
        .times(1)
        .in_sequence(&mut seq)
        .returning(|unit| {
            Ok(Some(ContainerInfo {
                state: UnitState::Pending {
                    reason: Some("no suitable node (scheduling constraints)".into()),
                },
                ..running_unit(unit)
            }))
        });
    runtime
        .expect_status()
        .withf(|unit| unit == "unit-1")
        .times(1)
        .in_sequence(&mut seq)
        .returning(|unit| {
            Ok(Some(ContainerInfo {
                state: UnitState::Failed {
                    reason: "no suitable node (insufficient resources on 2 nodes)".into(),
                },
                ..running_unit(unit)
            }))
        });
    store
        .expect_update()
        .withf(|lease, _admission| {
            lease.status == Status::Error
                && lease
                    .error
                    .as_deref()
                    .is_some_and(|e| e.contains("insufficient resources on 2 nodes"))
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(cas_update(&slot));
    let named = slot.clone();
    runtime
        .expect_remove()
        .withf(move |container| {
            lock(&named)
                .as_ref()
                .is_some_and(|lease| container == format!("containerlease-{}", lease.id))
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    store
        .expect_update()
        .withf(|lease, _admission| lease.status == Status::Running)
        .never();

    watch_panics();
    // Not `manager()`: its runtime reports every unit running.
    let manager = LeaseManager::builder(Arc::new(store), Arc::new(runtime))
        .catalog(catalog())
        .config(config())
        .clock(clock.clone())
        .build()
        .expect("valid manager config");
    let mut events = manager.subscribe();
    let lease = manager
        .provision(ProvisionRequest::new("alice", OFFERING).minutes(30))
        .await
        .expect("valid request");
    // The pending poll sleeps 50 ms by the manual clock: move it on.
    let advance = {
        let clock = clock.clone();
        tokio::spawn(async move {
            for _ in 0..50 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                clock.advance(TimeDelta::milliseconds(100));
            }
        })
    };
    let failed = wait_for(&mut events, &lease.id, EventKind::Error).await;
    advance.abort();
    assert_eq!(failed.lease.status, Status::Error);
    finish(manager).await;
}

/// A provisioning attempt that fails after the lease became `running`
/// elsewhere (another replica's attempt, or this one's racing the
/// reconciler) must leave that running lease's container alone: it has the
/// same name as the one this attempt would have created.
#[tokio::test]
async fn failed_attempt_leaves_the_container_of_a_running_lease_alone() {
    let clock = Arc::new(ManualClock::default());
    let slot = Slot::default();
    let removed: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut store = MockStore::new();
    let mut runtime = MockRuntime::new();

    store.expect_insert().times(1).returning(insert_into(&slot));
    store.expect_get().returning(get_from(&slot));
    store
        .expect_update()
        .withf(|lease, _admission| lease.status == Status::Pending)
        .returning(cas_update(&slot));
    let elsewhere = slot.clone();
    runtime
        .expect_ensure_image()
        .times(1)
        .returning(move |image, _| {
            // Meanwhile another attempt created the container and recorded it.
            let mut guard = lock(&elsewhere);
            let lease = guard.as_mut().expect("lease stored before provisioning");
            lease.status = Status::Running;
            lease.container_id = Some("cid-running".into());
            lease.revision += 1;
            Err(RuntimeError::ImageUnavailable {
                image: image.to_owned(),
                source: "registry timeout".into(),
            })
        });
    runtime.expect_create().never();
    let journal = removed.clone();
    runtime.expect_remove().returning(move |container| {
        lock(&journal).push(container.to_owned());
        Ok(())
    });

    let manager = manager(store, runtime, &clock);
    let lease = manager
        .provision(ProvisionRequest::new("alice", OFFERING).minutes(30))
        .await
        .expect("valid request");
    // The attempt's outcome is decided once its task has ended.
    finish(manager).await;
    let now = lock(&slot).clone().expect("lease kept");
    assert_eq!(now.status, Status::Running, "the lease stays running");
    assert_eq!(
        *lock(&removed),
        Vec::<String>::new(),
        "removed the container of running lease {}",
        lease.id
    );
}

/// A provisioning timeout (or any duration setting) too large for time
/// arithmetic is refused when the manager is built, naming the setting,
/// instead of overflowing later inside every provisioning task.
#[tokio::test]
async fn a_huge_provisioning_timeout_is_refused_up_front() {
    let config = ManagerConfig {
        provision_timeout: Duration::MAX,
        ..config()
    };
    let built = LeaseManager::builder(
        Arc::new(MockStore::new()),
        Arc::new(scoped(MockRuntime::new())),
    )
    .config(config)
    .build();
    match built {
        Err(LeaseError::Invalid(ValidationError { field, .. })) => {
            assert_eq!(field, "provision_timeout")
        }
        other => panic!("expected an invalid provision_timeout, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Reaper
// ---------------------------------------------------------------------------

/// A lease booked for 30 minutes that expired 5 minutes before `now`.
fn expired_lease(now: DateTime<Utc>, status: Status, container_id: Option<&str>) -> Lease {
    let expires_at = now - TimeDelta::minutes(5);
    let booked = Lease::new(
        LeaseId::generate(),
        "bob",
        OFFERING,
        Money::from_nanos(RATE_NANOS),
        expires_at - TimeDelta::minutes(30),
        expires_at,
    );
    assert_eq!(booked.estimated_cost, Money::from_nanos(RATE_NANOS / 2));
    Lease {
        container_id: container_id.map(str::to_owned),
        status,
        provision_attempts: 1,
        revision: 3,
        ..booked
    }
}

/// 30 minutes at $0.01 an hour.
const THIRTY_MINUTES_COST: Money = Money::from_nanos(RATE_NANOS / 2);

#[tokio::test]
async fn reaper_removes_an_expired_lease_once_then_finishes_it_once() {
    let clock = Arc::new(ManualClock::default());
    let now = clock.now();
    let lease = expired_lease(now, Status::Running, Some("cid-7"));
    let expires_at = lease.expires_at;
    let slot: Slot = Arc::new(Mutex::new(Some(lease.clone())));
    let mut seq = Sequence::new();
    let mut store = MockStore::new();
    let mut runtime = MockRuntime::new();

    let claimed = lease.clone();
    let claim_ttl = config().claim_ttl;
    let reap_batch = config().reap_batch;
    store
        .expect_claim_expired()
        .withf(move |at, limit, ttl| *at == now && *limit == reap_batch && *ttl == claim_ttl)
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_, _, _| Ok(vec![claimed.clone()]));
    store.expect_get().returning(get_from(&slot));
    store
        .expect_update()
        .withf(move |lease, _admission| {
            lease.status == Status::Deleting
                && lease.ended_at == Some(expires_at)
                && lease.end_reason == Some(EndReason::Expired)
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(cas_update(&slot));
    runtime
        .expect_remove()
        .withf(|container| container == "cid-7")
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    store
        .expect_finish()
        .withf(|lease| {
            lease.status == Status::Deleted && lease.final_cost == Some(THIRTY_MINUTES_COST)
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(cas_in(&slot));
    store.expect_release().never();

    let manager = manager(store, runtime, &clock);
    let mut events = manager.subscribe();
    let report = manager.reap_once().await.expect("reap pass");
    assert_eq!(
        report,
        ReapReport {
            claimed: 1,
            finished: 1,
            failed: 0,
            skipped: 0
        }
    );
    let deleted = wait_for(&mut events, &lease.id, EventKind::Deleted).await;
    assert_eq!(deleted.lease.final_cost, Some(THIRTY_MINUTES_COST));
    assert_eq!(
        deleted.lateness_ms,
        Some(5 * 60 * 1000),
        "handed to the runtime 5 minutes after expiry"
    );
    finish(manager).await;
}

/// An expired lease that never got a container is removed by its name.
#[tokio::test]
async fn reaper_removes_a_pending_lease_by_container_name() {
    let clock = Arc::new(ManualClock::default());
    let lease = expired_lease(clock.now(), Status::Pending, None);
    let name = format!("containerlease-{}", lease.id);
    let slot: Slot = Arc::new(Mutex::new(Some(lease.clone())));
    let mut store = MockStore::new();
    let mut runtime = MockRuntime::new();

    let claimed = lease.clone();
    store
        .expect_claim_expired()
        .times(1)
        .returning(move |_, _, _| Ok(vec![claimed.clone()]));
    store.expect_get().returning(get_from(&slot));
    store
        .expect_update()
        .withf(|lease, _admission| lease.status == Status::Deleting)
        .times(1)
        .returning(cas_update(&slot));
    runtime
        .expect_remove()
        .withf(move |container| container == name)
        .times(1)
        .returning(|_| Ok(()));
    store
        .expect_finish()
        .withf(|lease| lease.status == Status::Deleted)
        .times(1)
        .returning(cas_in(&slot));

    let manager = manager(store, runtime, &clock);
    let report = manager.reap_once().await.expect("reap pass");
    assert_eq!((report.claimed, report.finished), (1, 1));
    finish(manager).await;
}

/// DESIGN invariant 6: a failing removal is retried quickly (3 times), then
/// the lease is kept, marked with the failure, and released for a later
/// sweep; it is never finished.
#[tokio::test]
async fn reaper_never_finishes_a_lease_whose_removal_failed() {
    let clock = Arc::new(ManualClock::default());
    let now = clock.now();
    let lease = expired_lease(now, Status::Running, Some("cid-stuck"));
    let id = lease.id.clone();
    let slot: Slot = Arc::new(Mutex::new(Some(lease.clone())));
    let attempts = 1 + config().quick_retries;
    let sweep = TimeDelta::from_std(config().sweep_interval).expect("sweep fits");
    let mut seq = Sequence::new();
    let mut store = MockStore::new();
    let mut runtime = MockRuntime::new();

    let claimed = lease.clone();
    store
        .expect_claim_expired()
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_, _, _| Ok(vec![claimed.clone()]));
    store.expect_get().returning(get_from(&slot));
    store
        .expect_update()
        .withf(|lease, _admission| lease.status == Status::Deleting && lease.removal_failures == 0)
        .times(1)
        .in_sequence(&mut seq)
        .returning(cas_update(&slot));
    runtime
        .expect_remove()
        .withf(|container| container == "cid-stuck")
        .times(attempts as usize)
        .in_sequence(&mut seq)
        .returning(|_| Err(runtime_failure("daemon busy")));
    store
        .expect_update()
        .withf(move |lease, _admission| {
            lease.status == Status::Deleting
                && lease.removal_failures == attempts
                && lease
                    .error
                    .as_deref()
                    .is_some_and(|e| e.contains("daemon busy"))
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(cas_update(&slot));
    let released = id.clone();
    store
        .expect_release()
        .withf(move |lease_id, retry_at| {
            *lease_id == released && *retry_at > now && *retry_at <= now + sweep
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    store.expect_finish().never();

    let manager = manager(store, runtime, &clock);
    let mut events = manager.subscribe();
    let report = manager.reap_once().await.expect("reap pass");
    assert_eq!(
        report,
        ReapReport {
            claimed: 1,
            finished: 0,
            failed: 1,
            skipped: 0
        }
    );
    let failed = wait_for(&mut events, &id, EventKind::ReapFailed).await;
    assert_eq!(failed.lease.status, Status::Deleting);
    finish(manager).await;
    let kept = lock(&slot).clone().expect("lease kept");
    assert_eq!(kept.status, Status::Deleting);
    assert_eq!(kept.final_cost, None);
}

/// After the first failure, a removal is tried once per sweep (no more quick
/// retries), and the lease finishes with the error cleared once it succeeds.
#[tokio::test]
async fn reaper_retries_a_failed_removal_once_per_sweep_until_it_succeeds() {
    let clock = Arc::new(ManualClock::default());
    let now = clock.now();
    let mut lease = expired_lease(now, Status::Deleting, Some("cid-flaky"));
    lease.ended_at = Some(lease.expires_at);
    lease.end_reason = Some(EndReason::Expired);
    lease.removal_failures = 4;
    lease.error = Some("container removal failed 4 times: daemon busy".into());
    let slot: Slot = Arc::new(Mutex::new(Some(lease.clone())));
    let mut seq = Sequence::new();
    let mut store = MockStore::new();
    let mut runtime = MockRuntime::new();

    // Each sweep claims whatever the store holds now.
    let claims = slot.clone();
    store
        .expect_claim_expired()
        .times(2)
        .returning(move |_, _, _| Ok(lock(&claims).clone().into_iter().collect()));
    store.expect_get().returning(get_from(&slot));
    runtime
        .expect_remove()
        .withf(|container| container == "cid-flaky")
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Err(runtime_failure("daemon busy")));
    store
        .expect_update()
        .withf(|lease, _admission| lease.removal_failures == 5)
        .times(1)
        .in_sequence(&mut seq)
        .returning(cas_update(&slot));
    store
        .expect_release()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    runtime
        .expect_remove()
        .withf(|container| container == "cid-flaky")
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    store
        .expect_finish()
        .withf(|lease| {
            lease.status == Status::Deleted
                && lease.error.is_none()
                && lease.final_cost == Some(THIRTY_MINUTES_COST)
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(cas_in(&slot));

    let manager = manager(store, runtime, &clock);
    let first = manager.reap_once().await.expect("first sweep");
    assert_eq!((first.claimed, first.failed, first.finished), (1, 1, 0));
    clock.advance(TimeDelta::seconds(60));
    let second = manager.reap_once().await.expect("second sweep");
    assert_eq!((second.claimed, second.failed, second.finished), (1, 0, 1));
    finish(manager).await;
}

/// A claimed lease that was extended between the claim and the reaper's
/// compare-and-set (the CAS conflicts and the re-read shows the new expiry)
/// is released at its new due time and its container is left alone.
#[tokio::test]
async fn reaper_releases_a_claimed_lease_that_is_no_longer_due() {
    let clock = Arc::new(ManualClock::default());
    let lease = expired_lease(clock.now(), Status::Running, Some("cid-extended"));
    let mut extended = lease.clone();
    extended.expires_at = clock.now() + TimeDelta::minutes(10);
    extended.revision += 1;
    let (id, due) = (lease.id.clone(), extended.expires_at);
    let mut store = MockStore::new();
    let mut runtime = MockRuntime::new();

    let claimed = lease.clone();
    store
        .expect_claim_expired()
        .times(1)
        .returning(move |_, _, _| Ok(vec![claimed.clone()]));
    let conflict_id = lease.id.clone();
    store
        .expect_update()
        .times(1)
        .returning(move |l, _admission| {
            Err(StoreError::Conflict {
                id: conflict_id.clone(),
                expected: l.revision,
            })
        });
    store
        .expect_get()
        .times(1)
        .returning(move |_| Ok(extended.clone()));
    store
        .expect_release()
        .withf(move |lease_id, retry_at| *lease_id == id && *retry_at == due)
        .times(1)
        .returning(|_, _| Ok(()));
    store.expect_finish().never();
    runtime.expect_remove().never();

    let manager = manager(store, runtime, &clock);
    let report = manager.reap_once().await.expect("reap pass");
    assert_eq!(
        report,
        ReapReport {
            claimed: 1,
            finished: 0,
            failed: 0,
            skipped: 1
        }
    );
    finish(manager).await;
}

/// The store decides what is due (the Redis store by its server's clock):
/// a claimed lease is reaped even if this replica's clock says it has not
/// expired yet, and billing ends exactly at its expiry.
#[tokio::test]
async fn reaper_trusts_the_store_claim_over_a_lagging_clock() {
    let clock = Arc::new(ManualClock::default());
    let mut lease = expired_lease(clock.now(), Status::Running, Some("cid-lagging"));
    // Our clock is 2 s behind the store's: by our clock it is not due yet.
    lease.expires_at = clock.now() + TimeDelta::seconds(2);
    let expires_at = lease.expires_at;
    let mut store = MockStore::new();
    let mut runtime = MockRuntime::new();
    let claimed = lease.clone();
    store
        .expect_claim_expired()
        .times(1)
        .returning(move |_, _, _| Ok(vec![claimed.clone()]));
    store
        .expect_update()
        .times(1)
        .withf(move |l, _admission| l.status == Status::Deleting && l.ended_at == Some(expires_at))
        .returning(|l, _admission| {
            Ok(Lease {
                revision: l.revision + 1,
                ..l.clone()
            })
        });
    store.expect_release().never();
    store.expect_finish().times(1).returning(|l| {
        Ok(Lease {
            revision: l.revision + 1,
            ..l.clone()
        })
    });
    runtime
        .expect_remove()
        .withf(|container| container == "cid-lagging")
        .times(1)
        .returning(|_| Ok(()));

    let manager = manager(store, runtime, &clock);
    let report = manager.reap_once().await.expect("reap pass");
    assert_eq!((report.claimed, report.finished), (1, 1));
    finish(manager).await;
}

// ---------------------------------------------------------------------------
// Invalid requests store nothing
// ---------------------------------------------------------------------------

/// A store and a runtime that must never be written to or touched.
fn untouchable() -> (MockStore, MockRuntime) {
    let mut store = MockStore::new();
    store.expect_insert().never();
    store.expect_update().never();
    store.expect_finish().never();
    let mut runtime = MockRuntime::new();
    runtime.expect_ensure_image().never();
    runtime.expect_create().never();
    runtime.expect_remove().never();
    (store, runtime)
}

fn invalid_field(result: Result<Lease, LeaseError>) -> &'static str {
    match result {
        Err(LeaseError::Invalid(ValidationError { field, message })) => {
            assert!(!message.is_empty(), "the error explains itself");
            field
        }
        other => panic!("expected LeaseError::Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn invalid_provision_requests_name_the_field_and_store_nothing() {
    let clock = Arc::new(ManualClock::default());
    let (store, runtime) = untouchable();
    let manager = manager(store, runtime, &clock);
    let too_long_owner = "a".repeat(129);
    let cases: [(&str, &str, Option<u32>, &str); 10] = [
        ("alice", "fedora", Some(30), "imageType"),
        ("alice", "", Some(30), "imageType"),
        ("alice", "ALPINE", None, "imageType"),
        ("alice", OFFERING, Some(0), "durationMinutes"),
        ("alice", OFFERING, Some(MAX_MINUTES + 1), "durationMinutes"),
        ("alice", OFFERING, Some(u32::MAX), "durationMinutes"),
        ("alice", SHORT, Some(SHORT_MAX + 1), "durationMinutes"),
        ("", OFFERING, Some(30), "owner"),
        ("   ", OFFERING, Some(30), "owner"),
        ("bob\n", OFFERING, Some(30), "owner"),
    ];
    for (owner, offering, minutes, field) in cases {
        let request = ProvisionRequest {
            owner: owner.into(),
            offering: offering.into(),
            minutes,
        };
        let result = manager.provision(request).await;
        assert_eq!(
            invalid_field(result),
            field,
            "owner {owner:?}, offering {offering:?}, minutes {minutes:?}"
        );
    }
    let result = manager
        .provision(ProvisionRequest::new(too_long_owner, OFFERING).minutes(30))
        .await;
    assert_eq!(invalid_field(result), "owner");
    finish(manager).await;
}

/// The control for the test above: the boundary durations are accepted and
/// stored exactly once each (so the `never()` above can fail).
#[tokio::test]
async fn boundary_durations_are_accepted_and_stored_once() {
    let clock = Arc::new(ManualClock::default());
    let mut store = MockStore::new();
    let mut runtime = MockRuntime::new();
    store
        .expect_insert()
        .times(3)
        .returning(|lease, _admission| {
            let mut stored = lease.clone();
            stored.revision = 1;
            Ok(stored)
        });
    // The background task finds nothing to provision (this store keeps
    // nothing: the attempt's compare-and-set finds no lease).
    store
        .expect_update()
        .returning(|lease, _admission| Err(StoreError::NotFound(lease.id.clone())));
    // (and the expiry warnings' reads find nothing either).
    store
        .expect_get()
        .returning(|id| Err(StoreError::NotFound(id.clone())));
    runtime.expect_create().never();

    let manager = manager(store, runtime, &clock);
    for (offering, minutes) in [(OFFERING, 1), (OFFERING, MAX_MINUTES), (SHORT, SHORT_MAX)] {
        let lease = manager
            .provision(ProvisionRequest::new("alice", offering).minutes(minutes))
            .await
            .unwrap_or_else(|error| panic!("{offering} for {minutes} min: {error}"));
        assert_eq!(
            lease.expires_at - lease.created_at,
            TimeDelta::minutes(i64::from(minutes))
        );
    }
    finish(manager).await;
}

/// A running lease of `OFFERING` booked for 120 minutes, stored in `slot`.
fn running_lease(now: DateTime<Utc>) -> Lease {
    let mut lease = expired_lease(now, Status::Running, Some("cid-live"));
    lease.created_at = now;
    lease.expires_at = now + TimeDelta::minutes(120);
    lease
}

#[tokio::test]
async fn invalid_extensions_name_minutes_and_store_nothing() {
    let clock = Arc::new(ManualClock::default());
    let lease = running_lease(clock.now());
    let slot: Slot = Arc::new(Mutex::new(Some(lease.clone())));
    let (mut store, runtime) = untouchable();
    store.expect_get().returning(get_from(&slot));

    let manager = manager(store, runtime, &clock);
    for minutes in [0, MAX_MINUTES - 120 + 1, u32::MAX] {
        let result = manager.extend(&lease.id, minutes).await;
        assert_eq!(invalid_field(result), "minutes", "extend by {minutes}");
    }
    finish(manager).await;
    assert_eq!(lock(&slot).as_ref(), Some(&lease), "nothing changed");
}

/// The control for the test above: extending to exactly the max lifetime is
/// one compare-and-set update with the new expiry and estimate.
#[tokio::test]
async fn extending_to_exactly_the_max_lifetime_updates_once() {
    let clock = Arc::new(ManualClock::default());
    let lease = running_lease(clock.now());
    let new_expiry = lease.created_at + TimeDelta::minutes(i64::from(MAX_MINUTES));
    let slot: Slot = Arc::new(Mutex::new(Some(lease.clone())));
    let mut store = MockStore::new();
    let runtime = MockRuntime::new();
    store.expect_get().returning(get_from(&slot));
    store
        .expect_update()
        .withf(move |lease, _admission| {
            lease.expires_at == new_expiry
                && lease.revision == 3
                // 480 minutes at $0.01 an hour.
                && lease.estimated_cost == Money::from_nanos(RATE_NANOS * 8)
        })
        .times(1)
        .returning(cas_update(&slot));

    let manager = manager(store, runtime, &clock);
    let extended = manager
        .extend(&lease.id, MAX_MINUTES - 120)
        .await
        .expect("extension to the max is allowed");
    assert_eq!(extended.expires_at, new_expiry);
    assert_eq!(extended.revision, 4);
    finish(manager).await;
}

/// A lease that every compare-and-set loses on: after the attempts run out
/// the error is a conflict naming the revision the engine last read (the
/// lease moved on by one revision per read), and the engine wrote no more
/// than it read.
#[tokio::test]
async fn endless_contention_reports_the_revision_last_read() {
    let clock = Arc::new(ManualClock::default());
    let mut lease = expired_lease(clock.now(), Status::Running, Some("cid-contended"));
    lease.expires_at = clock.now() + TimeDelta::minutes(10);
    let id = lease.id.clone();
    let reads = Arc::new(Mutex::new(0u64));
    let mut store = MockStore::new();
    let runtime = MockRuntime::new();
    let counted = reads.clone();
    store.expect_get().returning(move |_| {
        let mut reads = lock(&counted);
        *reads += 1;
        Ok(Lease {
            revision: 10 + *reads,
            ..lease.clone()
        })
    });
    store.expect_update().returning(|l, _admission| {
        Err(StoreError::Conflict {
            id: l.id.clone(),
            expected: l.revision,
        })
    });

    let manager = manager(store, runtime, &clock);
    let error = manager.delete(&id).await.expect_err("contended delete");
    let read = *lock(&reads);
    assert!(
        read >= 2,
        "the engine must retry on a conflict: {read} reads"
    );
    match error {
        LeaseError::Store(StoreError::Conflict {
            id: conflicted,
            expected,
        }) => {
            assert_eq!(conflicted, id);
            assert_eq!(expected, 10 + read, "the revision of the last read");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    finish(manager).await;
}
