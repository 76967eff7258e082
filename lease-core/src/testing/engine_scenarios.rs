//! Engine scenarios: the whole [`LeaseManager`] (provisioning, reaper,
//! reconciler) over a store under test and the [fake runtime](super::fake_runtime),
//! with a [`ManualClock`] so expiry is tested without sleeping.
//!
//! Each scenario is a plain `pub async fn` that takes a **fresh, empty**
//! store as `Arc<dyn LeaseStore>` and panics when the engine misbehaves
//! over it. A store crate runs them with one line in its tests:
//!
//! ```rust,ignore
//! use lease_store_memory::MemoryStore;
//!
//! lease_core::engine_scenario_tests!(async {
//!     Some(std::sync::Arc::new(MemoryStore::new()))
//! });
//! ```
//!
//! # Whose clock claims
//!
//! The manual clock starts at the real now and only moves forward. Most
//! scenarios never need the store to agree with it: the leases they reap
//! are due by the real clock too (a deleted lease is due at once). Some
//! move the manual clock past an expiry and then reap; they need a store
//! that decides what is due by the caller's `now` (the memory store). A
//! store that claims by its own clock (Redis, by its server's `TIME`) would
//! see nothing due for minutes of real time, so it runs the suite with
//! `server_clock`, which leaves those scenarios out:
//!
//! ```rust,ignore
//! lease_core::engine_scenario_tests!(server_clock, async { common::store().await });
//! ```
//!
//! Starting the manual clock in the past instead would not help: leases
//! would then be due by the server's clock before the scenario says so,
//! and the reaper trusts the store's claim.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use tokio::sync::broadcast::Receiver;
use tokio_util::sync::CancellationToken;

use super::conformance::sample_lease;
use super::fake_runtime::{FakeRuntime, Placement};
use crate::admission::Admission;
use crate::runtime::{container_name, labels};
use crate::{
    Clock, EndReason, EventKind, HistoryQuery, Lease, LeaseError, LeaseEvent, LeaseId,
    LeaseManager, LeaseStore, ListQuery, ManagerConfig, ManualClock, Money, OrphanPolicy,
    ProvisionRequest, ReapReport, ReconcileReport, Status, ValidationError,
};

const NS: &str = "test-scenarios";
const WAIT: StdDuration = StdDuration::from_secs(5);

/// One scenario's engine: a manager over the store under test and a fake
/// runtime, driven by a manual clock that starts at the real now.
struct Harness {
    clock: Arc<ManualClock>,
    runtime: Arc<FakeRuntime>,
    store: Arc<dyn LeaseStore>,
    manager: LeaseManager,
    events: Receiver<LeaseEvent>,
}

fn harness_with(store: Arc<dyn LeaseStore>, config: ManagerConfig) -> Harness {
    let clock = Arc::new(ManualClock::default());
    let runtime = Arc::new(FakeRuntime::new(&config.namespace, clock.clone()));
    let manager = LeaseManager::builder(store.clone(), runtime.clone())
        .config(config)
        .clock(clock.clone())
        .build()
        .expect("valid config");
    let events = manager.subscribe();
    Harness {
        clock,
        runtime,
        store,
        manager,
        events,
    }
}

fn config() -> ManagerConfig {
    ManagerConfig {
        quick_retry_base: StdDuration::from_millis(1),
        ..ManagerConfig::with_namespace(NS)
    }
}

fn harness(store: Arc<dyn LeaseStore>) -> Harness {
    harness_with(store, config())
}

impl Harness {
    /// One reaper pass, which must not fail.
    async fn reap(&self) -> ReapReport {
        self.manager.reap_once().await.expect("reap pass failed")
    }

    /// One reconciliation pass, which must not fail.
    async fn reconcile(&self) -> ReconcileReport {
        self.manager
            .reconcile_once()
            .await
            .expect("reconciliation pass failed")
    }

    /// A lease of `owner` for `offering` booked for `minutes`, which the
    /// engine must accept (it comes back pending).
    async fn provision(&self, owner: &str, offering: &str, minutes: u32) -> Lease {
        self.manager
            .provision(ProvisionRequest::new(owner, offering).minutes(minutes))
            .await
            .expect("provision failed")
    }

    /// The lease as the store has it.
    async fn stored(&self, id: &LeaseId) -> Lease {
        self.store
            .get(id)
            .await
            .unwrap_or_else(|error| panic!("get {id} failed: {error}"))
    }
}

/// The container of a lease that is running.
fn container_of(lease: &Lease) -> &str {
    lease
        .container_id
        .as_deref()
        .expect("a running lease has a container")
}

/// Waits (in real time, bounded) for an event of `kind` about `id`.
async fn wait_event(
    events: &mut Receiver<LeaseEvent>,
    kind: EventKind,
    id: &LeaseId,
) -> LeaseEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.recv().await.expect("event channel open");
            if event.kind == kind && event.lease.id == *id {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind:?} event for {id} within {WAIT:?}"))
}

/// Polls `check` until it holds (bounded, real time).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
}

async fn running_lease(h: &mut Harness, offering: &str, minutes: u32) -> Lease {
    let lease = h.provision("alice", offering, minutes).await;
    wait_event(&mut h.events, EventKind::Running, &lease.id)
        .await
        .lease
}

/// Provision returns pending then runs with labels.
pub async fn provision_returns_pending_then_runs_with_labels(store: Arc<dyn LeaseStore>) {
    let mut h = harness(store);
    let lease = h.provision("alice", "alpine", 2).await;
    assert_eq!(lease.status, Status::Pending);
    assert_eq!(lease.estimated_cost.to_string(), "0.000333333");
    assert!(lease.id.as_str().starts_with("container-"));
    let running = wait_event(&mut h.events, EventKind::Running, &lease.id)
        .await
        .lease;
    assert_eq!(running.status, Status::Running);
    let containers = h.runtime.containers_in(NS);
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(running.container_id.as_deref(), Some(c.id.as_str()));
    assert_eq!(c.name, container_name(&lease.id));
    assert_eq!(c.labels[labels::MANAGED], "true");
    assert_eq!(c.labels[labels::NAMESPACE], NS);
    assert_eq!(c.labels[labels::LEASE_ID], lease.id.as_str());
    assert_eq!(c.labels[labels::OWNER], "alice");
    assert_eq!(c.label_time(labels::EXPIRES_AT), Some(lease.expires_at));
    assert_eq!(h.stored(&lease.id).await.status, Status::Running);
}

/// A container the runtime cannot place (a cluster with no suitable node)
/// fails its lease with the runtime's reason, and nothing is left.
pub async fn unplaceable_container_is_an_error_with_the_runtimes_reason(
    store: Arc<dyn LeaseStore>,
) {
    let mut h = harness(store);
    let reason = "no suitable node (scheduling constraints not satisfied on 3 nodes)";
    h.runtime.place_next_creates(
        Placement::Fails {
            reason: reason.to_owned(),
        },
        1,
    );
    let lease = h.provision("alice", "alpine", 5).await;
    let failed = wait_event(&mut h.events, EventKind::Error, &lease.id)
        .await
        .lease;
    assert_eq!(failed.status, Status::Error);
    let message = failed.error.expect("error message kept");
    assert!(message.contains(reason), "{message}");
    // The `error` event comes before the clean-up that follows it.
    eventually("what was created is removed", || {
        h.runtime.containers_in(NS).is_empty()
    })
    .await;
    assert_eq!(h.runtime.removals().len(), 1);
}

/// Seed prices are exact.
pub async fn seed_prices_are_exact(store: Arc<dyn LeaseStore>) {
    let h = harness(store);
    let ubuntu = h.provision("bob", "ubuntu", 120).await;
    assert_eq!(ubuntu.estimated_cost, Money::from_nanos(80_000_000));
    let default = h
        .manager
        .provision(ProvisionRequest::new("bob", "alpine"))
        .await
        .expect("provision failed");
    assert_eq!(
        default.booked_minutes(),
        120,
        "durationMinutes defaults to 120"
    );
}

/// Runtime failure marks error and keeps message.
pub async fn runtime_failure_marks_error_and_keeps_message(store: Arc<dyn LeaseStore>) {
    let mut h = harness(store);
    h.runtime.fail_next_creates(1);
    let lease = h.provision("alice", "alpine", 5).await;
    let failed = wait_event(&mut h.events, EventKind::Error, &lease.id)
        .await
        .lease;
    assert_eq!(failed.status, Status::Error);
    assert_eq!(failed.end_reason, Some(EndReason::Error));
    let message = failed.error.expect("error message kept");
    assert!(message.contains("injected failure"), "{message}");
    assert!(h.runtime.containers_in(NS).is_empty());
    // An error lease stays visible until expiry, then is reaped.
    h.clock.advance(Duration::minutes(5));
    let report = h.reap().await;
    assert_eq!(report.finished, 1);
    let ended = h.manager.get(&lease.id).await.expect("get failed");
    assert_eq!(ended.status, Status::Deleted);
    assert_eq!(ended.end_reason, Some(EndReason::Error));
}

/// Missing image is an error naming it.
pub async fn missing_image_is_an_error_naming_it(store: Arc<dyn LeaseStore>) {
    let mut h = harness(store);
    h.runtime.set_image_missing("alpine:3.20");
    let lease = h.provision("alice", "alpine", 5).await;
    let failed = wait_event(&mut h.events, EventKind::Error, &lease.id)
        .await
        .lease;
    assert!(
        failed
            .error
            .expect("the error is kept")
            .contains("alpine:3.20")
    );
    assert_eq!(h.runtime.create_calls(), 0);
}

/// Delete while pending leaves no container.
pub async fn delete_while_pending_leaves_no_container(store: Arc<dyn LeaseStore>) {
    let mut h = harness(store);
    h.runtime.hang_creates(true);
    let lease = h.provision("alice", "alpine", 30).await;
    eventually("create called", || h.runtime.create_calls() == 1).await;
    let deleting = h.manager.delete(&lease.id).await.expect("delete failed");
    assert_eq!(deleting.status, Status::Deleting);
    assert_eq!(deleting.end_reason, Some(EndReason::Deleted));
    let report = h.reap().await;
    assert_eq!(report.finished, 1);
    assert_eq!(
        h.manager.get(&lease.id).await.expect("get failed").status,
        Status::Deleted
    );
    // The provisioning task finishes creating, finds its lease ended, and removes it.
    h.runtime.release_hung_creates();
    eventually("late container removed", || {
        h.runtime.create_calls() == 1 && h.runtime.removals().len() == 1
    })
    .await;
    assert!(h.runtime.containers_in(NS).is_empty());
    let _ = &mut h.events;
}

/// Expiry is reaped within target by the background reaper.
pub async fn expiry_is_reaped_within_target_by_the_background_reaper(store: Arc<dyn LeaseStore>) {
    let mut h = harness(store);
    let token = CancellationToken::new();
    let tasks = h.manager.start(token.clone());
    let lease = running_lease(&mut h, "alpine", 2).await;
    h.clock.advance(Duration::minutes(2));
    let deleted = wait_event(&mut h.events, EventKind::Deleted, &lease.id).await;
    assert!(
        deleted
            .lateness_ms
            .expect("a deleted event carries its lateness")
            <= 100,
        "handed to the runtime {:?} ms late",
        deleted.lateness_ms
    );
    let removal = h.runtime.removals().pop().expect("one removal");
    assert!(removal.at - lease.expires_at <= Duration::milliseconds(100));
    assert!(h.runtime.containers_in(NS).is_empty());
    let finished = h.manager.get(&lease.id).await.expect("get failed");
    assert_eq!(finished.end_reason, Some(EndReason::Expired));
    assert_eq!(
        finished.final_cost,
        Some(finished.estimated_cost),
        "held for the whole booking"
    );
    assert!(
        h.manager
            .list(&ListQuery::owner("alice"))
            .await
            .expect("list failed")
            .items
            .is_empty()
    );
    token.cancel();
    tasks.join().await;
}

/// A lease that comes due while a reaping pass is busy is reaped as soon
/// as that pass ends, not after the clock moves again: the pass never had
/// the chance to claim it, so the loop's spin guard must not delay it.
pub async fn a_lease_due_during_a_slow_pass_is_reaped_when_it_ends(store: Arc<dyn LeaseStore>) {
    let mut h = harness(store);
    let token = CancellationToken::new();
    let tasks = h.manager.start(token.clone());
    let first = running_lease(&mut h, "alpine", 1).await;
    let second = running_lease(&mut h, "alpine", 2).await;
    h.runtime
        .set_remove_latency(std::time::Duration::from_millis(300));
    h.clock.advance(Duration::minutes(1));
    // The pass that claimed `first` is inside its removal when `second`
    // comes due; the clock then stands still.
    eventually("the first removal started", || {
        h.runtime.remove_calls() == 1
    })
    .await;
    h.clock.advance(Duration::minutes(1));
    wait_event(&mut h.events, EventKind::Deleted, &first.id).await;
    let deleted = wait_event(&mut h.events, EventKind::Deleted, &second.id).await;
    assert_eq!(deleted.lease.end_reason, Some(EndReason::Expired));
    assert!(h.runtime.containers_in(NS).is_empty());
    token.cancel();
    tasks.join().await;
}

/// Removal failing five times keeps the lease until it succeeds.
pub async fn removal_failing_five_times_keeps_the_lease_until_it_succeeds(
    store: Arc<dyn LeaseStore>,
) {
    let mut h = harness(store);
    let lease = running_lease(&mut h, "alpine", 1).await;
    h.runtime.fail_next_removes(5);
    h.clock.advance(Duration::minutes(1));
    // First round: one attempt and three quick retries, all failing.
    let report = h.reap().await;
    assert_eq!((report.claimed, report.failed), (1, 1));
    wait_event(&mut h.events, EventKind::ReapFailed, &lease.id).await;
    let kept = h.stored(&lease.id).await;
    assert_eq!(kept.status, Status::Deleting);
    assert_eq!(kept.removal_failures, 4);
    assert!(
        kept.error
            .as_deref()
            .unwrap_or("")
            .contains("removal failed")
    );
    // Not retried before the next sweep…
    assert_eq!(h.reap().await.claimed, 0);
    // …then once per sweep.
    h.clock.advance(Duration::seconds(60));
    assert_eq!(h.reap().await.failed, 1);
    assert_eq!(h.stored(&lease.id).await.removal_failures, 5);
    h.clock.advance(Duration::seconds(60));
    assert_eq!(h.reap().await.finished, 1);
    let done = h.manager.get(&lease.id).await.expect("get failed");
    assert_eq!(done.status, Status::Deleted);
    assert_eq!(
        done.error, None,
        "a removal that finally worked is not an error"
    );
    assert_eq!(h.runtime.remove_calls(), 6);
    assert!(h.runtime.containers_in(NS).is_empty());
}

/// Extend moves the reap and is bounded.
pub async fn extend_moves_the_reap_and_is_bounded(store: Arc<dyn LeaseStore>) {
    let mut h = harness(store);
    let lease = running_lease(&mut h, "alpine", 10).await;
    let extended = h
        .manager
        .extend(&lease.id, 30)
        .await
        .expect("extend failed");
    assert_eq!(
        extended.expires_at,
        lease.expires_at + Duration::minutes(30)
    );
    assert_eq!(
        extended.estimated_cost,
        crate::pricing::estimate(lease.hourly_rate, 40)
    );
    h.clock.advance(Duration::minutes(10));
    assert_eq!(h.reap().await.claimed, 0, "not due at the old expiry");
    // 40 booked of 480: 441 more is too many, nothing changes.
    let refused = h
        .manager
        .extend(&lease.id, 441)
        .await
        .expect_err("extend must be refused");
    assert!(
        matches!(
            refused,
            LeaseError::Invalid(ValidationError {
                field: "minutes",
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(h.stored(&lease.id).await.revision, extended.revision);
    h.clock.advance(Duration::minutes(30));
    assert_eq!(h.reap().await.finished, 1);
    let wrong = h
        .manager
        .extend(&lease.id, 5)
        .await
        .expect_err("extend must be refused");
    assert!(matches!(wrong, LeaseError::WrongState { .. }), "{wrong:?}");
}

/// Expiring soon fires at the lead.
pub async fn expiring_soon_fires_at_the_lead(store: Arc<dyn LeaseStore>) {
    let mut h = harness(store);
    let lease = running_lease(&mut h, "alpine", 10).await;
    h.clock.advance(Duration::minutes(5));
    let warned = wait_event(&mut h.events, EventKind::ExpiringSoon, &lease.id).await;
    assert_eq!(warned.at, lease.expires_at - Duration::minutes(5));
}

/// Provisioning timeout marks error.
pub async fn provisioning_timeout_marks_error(store: Arc<dyn LeaseStore>) {
    let mut h = harness(store);
    h.runtime.hang_creates(true);
    let lease = h.provision("alice", "alpine", 60).await;
    eventually("create called", || h.runtime.create_calls() == 1).await;
    h.clock.advance(Duration::minutes(10));
    let failed = wait_event(&mut h.events, EventKind::Error, &lease.id)
        .await
        .lease;
    assert!(
        failed
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("timed out")
    );
    // Ten minutes pending, but no container ever ran: it costs nothing.
    assert_eq!(failed.ended_at, Some(failed.created_at));
    assert_eq!(failed.accrued_cost(h.clock.now()), Money::ZERO);
    h.runtime.release_hung_creates();
    assert!(h.runtime.containers_in(NS).is_empty());
    h.clock.advance(Duration::minutes(50));
    h.reap().await;
    let ended = h.manager.get(&lease.id).await.expect("get failed");
    assert_eq!(ended.final_cost, Some(Money::ZERO));
    assert_eq!(
        h.manager
            .usage("alice")
            .await
            .expect("usage failed")
            .ended_cost,
        Money::ZERO
    );
}

fn labels_for(
    id: &LeaseId,
    created: chrono::DateTime<chrono::Utc>,
    minutes: i64,
) -> BTreeMap<String, String> {
    [
        (labels::MANAGED, "true".to_owned()),
        (labels::NAMESPACE, NS.to_owned()),
        (labels::LEASE_ID, id.to_string()),
        (labels::OWNER, "carol".to_owned()),
        (labels::IMAGE_TYPE, "alpine".to_owned()),
        (labels::CREATED_AT, created.to_rfc3339()),
        (
            labels::EXPIRES_AT,
            (created + Duration::minutes(minutes)).to_rfc3339(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Reconcile removes orphans and never touches foreign containers.
pub async fn reconcile_removes_orphans_and_never_touches_foreign_containers(
    store: Arc<dyn LeaseStore>,
) {
    let h = harness_with(
        store,
        ManagerConfig {
            orphan_policy: OrphanPolicy::Remove,
            ..config()
        },
    );
    let orphan_id = LeaseId::generate();
    h.runtime.insert_container(
        &container_name(&orphan_id),
        labels_for(&orphan_id, h.clock.now(), 30),
        true,
    );
    let mut foreign = labels_for(&LeaseId::generate(), h.clock.now(), 30);
    foreign.insert(labels::NAMESPACE.into(), "someone-else".into());
    h.runtime.insert_container("not-ours", foreign, true);
    let report = h.reconcile().await;
    assert_eq!(report.orphans_removed, 1);
    assert!(h.runtime.containers_in(NS).is_empty());
    assert_eq!(
        h.runtime.containers().len(),
        1,
        "the other namespace's container is untouched"
    );
    assert!(h.runtime.containers_in("someone-else").len() == 1);
}

/// Reconcile adopts unknown leases from labels then reaps them.
pub async fn reconcile_adopts_unknown_leases_from_labels_then_reaps_them(
    store: Arc<dyn LeaseStore>,
) {
    let h = harness(store);
    let id = LeaseId::generate();
    let created = h.clock.now() - Duration::minutes(10);
    h.runtime
        .insert_container(&container_name(&id), labels_for(&id, created, 30), true);
    let report = h.reconcile().await;
    assert_eq!(report.adopted, 1);
    let adopted = h.stored(&id).await;
    assert_eq!(
        (adopted.status, adopted.owner.as_str()),
        (Status::Running, "carol")
    );
    assert_eq!(adopted.expires_at, created + Duration::minutes(30));
    h.clock.advance(Duration::minutes(20));
    assert_eq!(h.reap().await.finished, 1);
    assert!(h.runtime.containers_in(NS).is_empty());
}

/// Reconcile removes the container of a finished lease.
pub async fn reconcile_removes_the_container_of_a_finished_lease(store: Arc<dyn LeaseStore>) {
    let mut h = harness(store);
    let lease = running_lease(&mut h, "alpine", 5).await;
    h.manager.delete(&lease.id).await.expect("delete failed");
    h.reap().await;
    // A stray container with the finished lease's labels (e.g. a late duplicate).
    h.runtime
        .insert_container("stray", labels_for(&lease.id, lease.created_at, 5), true);
    assert_eq!(h.reconcile().await.orphans_removed, 1);
    assert!(h.runtime.containers_in(NS).is_empty());
}

/// Reconcile marks vanished and stopped containers exited.
pub async fn reconcile_marks_vanished_and_stopped_containers_exited(store: Arc<dyn LeaseStore>) {
    let mut h = harness(store);
    let gone = running_lease(&mut h, "alpine", 30).await;
    let stopped = running_lease(&mut h, "alpine", 30).await;
    h.runtime.vanish(container_of(&gone));
    h.runtime.stop_container(container_of(&stopped));
    h.clock.advance(Duration::minutes(3));
    let report = h.reconcile().await;
    assert_eq!(report.exited, 2);
    let gone = h.stored(&gone.id).await;
    assert_eq!(
        (gone.status, gone.error.as_deref()),
        (Status::Exited, Some("container vanished"))
    );
    assert_eq!(
        gone.accrued_cost(h.clock.now() + Duration::hours(1)),
        gone.accrued_cost(h.clock.now()),
        "billing stopped"
    );
    let stopped = h.stored(&stopped.id).await;
    assert!(stopped.error.expect("the exit is recorded").contains("137"));
    // Exited leases are still reaped at expiry, removing the stopped container.
    h.clock.advance(Duration::minutes(27));
    assert_eq!(h.reap().await.finished, 2);
    assert!(h.runtime.containers_in(NS).is_empty());
}

/// Reconcile retries stuck pending and times out old ones.
pub async fn reconcile_retries_stuck_pending_and_times_out_old_ones(store: Arc<dyn LeaseStore>) {
    let mut h = harness(store);
    // Pending leases whose provisioning died with another process.
    let stuck = sample_lease("dave", Duration::minutes(30));
    let stuck = Lease {
        created_at: h.clock.now(),
        expires_at: h.clock.now() + Duration::minutes(30),
        ..stuck
    };
    let stuck = h
        .store
        .insert(&stuck, &Admission::default())
        .await
        .expect("insert failed");
    let ancient = sample_lease("dave", Duration::minutes(60));
    let ancient = Lease {
        created_at: h.clock.now(),
        expires_at: h.clock.now() + Duration::minutes(60),
        ..ancient
    };
    let ancient = h
        .store
        .insert(&ancient, &Admission::default())
        .await
        .expect("insert failed");
    h.clock.advance(Duration::seconds(31));
    // Make `ancient` older than the provisioning timeout.
    h.store
        .update(
            &Lease {
                created_at: h.clock.now() - Duration::minutes(11),
                ..ancient.clone()
            },
            &Admission::default(),
        )
        .await
        .expect("update failed");
    let report = h.reconcile().await;
    assert_eq!((report.retried, report.timed_out), (1, 1));
    let running = wait_event(&mut h.events, EventKind::Running, &stuck.id)
        .await
        .lease;
    assert_eq!(running.provision_attempts, 1);
    let timed_out = h.stored(&ancient.id).await;
    assert_eq!(timed_out.status, Status::Error);
}

/// Reconcile plan changes nothing and is what a pass does.
pub async fn reconcile_plan_changes_nothing_and_is_what_a_pass_does(store: Arc<dyn LeaseStore>) {
    use crate::ReconcileAction as A;
    let mut h = harness(store);
    let pending = |created: chrono::DateTime<chrono::Utc>| Lease {
        created_at: created,
        expires_at: created + Duration::minutes(30),
        ..sample_lease("dave", Duration::minutes(30))
    };
    let gone = running_lease(&mut h, "alpine", 30).await;
    h.runtime.vanish(container_of(&gone));
    let stuck = h
        .store
        .insert(&pending(h.clock.now()), &Admission::default())
        .await
        .expect("insert failed");
    let mut unlabelled = labels_for(&LeaseId::generate(), h.clock.now(), 30);
    unlabelled.remove(labels::LEASE_ID);
    h.runtime.insert_container("no-lease-id", unlabelled, true);
    let unknown = LeaseId::generate();
    h.runtime.insert_container(
        &container_name(&unknown),
        labels_for(&unknown, h.clock.now(), 30),
        true,
    );
    h.clock.advance(Duration::seconds(31));
    let young = h
        .store
        .insert(&pending(h.clock.now()), &Admission::default())
        .await
        .expect("insert failed");

    let plan = h
        .manager
        .reconcile_plan()
        .await
        .expect("reconcile_plan failed");
    let planned: Vec<(A, Option<LeaseId>)> = plan
        .changes
        .iter()
        .map(|change| (change.action, change.lease_id.clone()))
        .collect();
    // Containers first; the leases among themselves oldest first (these
    // two were created at the same instant).
    assert_eq!(
        planned[..2],
        [
            (A::RemoveContainer, None),
            (A::Adopt, Some(unknown.clone()))
        ]
    );
    let mut leases = planned[2..].to_vec();
    leases.sort_by_key(|(action, _)| *action == A::RetryProvisioning);
    assert_eq!(
        leases,
        [
            (A::MarkExited, Some(gone.id.clone())),
            (A::RetryProvisioning, Some(stuck.id.clone())),
        ]
    );
    let exited = plan.changes.iter().find(|c| c.action == A::MarkExited);
    assert_eq!(
        exited.map(|c| c.reason.as_str()),
        Some("container vanished")
    );
    assert_eq!(
        plan.retry_due,
        Some(young.created_at + Duration::seconds(30)),
        "the young pending lease is due for a retry later"
    );
    // Planning changed nothing.
    assert_eq!(h.runtime.containers_in(NS).len(), 2);
    assert_eq!(h.stored(&gone.id).await.status, Status::Running);
    assert!(matches!(
        h.store.get(&unknown).await,
        Err(crate::StoreError::NotFound(_))
    ));

    let report = h.reconcile().await;
    assert_eq!(
        (
            report.orphans_removed,
            report.adopted,
            report.exited,
            report.retried
        ),
        (1, 1, 1, 1)
    );
    wait_event(&mut h.events, EventKind::Running, &stuck.id).await;
    assert_eq!(h.stored(&gone.id).await.status, Status::Exited);
    let after = h
        .manager
        .reconcile_plan()
        .await
        .expect("reconcile_plan failed");
    assert!(
        after
            .changes
            .iter()
            .all(|change| change.lease_id.as_ref() == Some(&young.id)),
        "only the young pending lease may be left: {after:?}"
    );
}

/// Bad input is typed and stores nothing.
pub async fn bad_input_is_typed_and_stores_nothing(store: Arc<dyn LeaseStore>) {
    let h = harness(store);
    let cases = [
        (ProvisionRequest::new("alice", "windows"), "imageType"),
        (
            ProvisionRequest::new("alice", "alpine").minutes(0),
            "durationMinutes",
        ),
        (
            ProvisionRequest::new("alice", "alpine").minutes(481),
            "durationMinutes",
        ),
        (ProvisionRequest::new("", "alpine"), "owner"),
        (ProvisionRequest::new("a\u{7}b", "alpine"), "owner"),
    ];
    for (request, expected) in cases {
        match h.manager.provision(request.clone()).await {
            Err(LeaseError::Invalid(ValidationError { field, .. })) => {
                assert_eq!(field, expected, "{request:?}")
            }
            other => panic!("{request:?} gave {other:?}"),
        }
    }
    assert!(
        h.manager
            .list(&ListQuery::default())
            .await
            .expect("list failed")
            .items
            .is_empty()
    );
    assert_eq!(h.runtime.create_calls(), 0);
    let unknown = LeaseId::generate();
    assert!(matches!(
        h.manager.delete(&unknown).await,
        Err(LeaseError::NotFound(_))
    ));
    assert!(matches!(
        h.manager.extend(&unknown, 5).await,
        Err(LeaseError::NotFound(_))
    ));
    assert!(matches!(
        h.manager.extend(&unknown, 0).await,
        Err(LeaseError::Invalid(ValidationError {
            field: "minutes",
            ..
        }))
    ));
}

/// Usage adds up to the nano dollar.
pub async fn usage_adds_up_to_the_nano_dollar(store: Arc<dyn LeaseStore>) {
    let mut h = harness(store);
    let kept = running_lease(&mut h, "ubuntu", 120).await;
    let early = running_lease(&mut h, "ubuntu", 120).await;
    h.clock.advance(Duration::minutes(30));
    h.manager.delete(&early.id).await.expect("delete failed");
    h.reap().await;
    let usage = h.manager.usage("alice").await.expect("usage failed");
    let half_hour = Money::from_nanos(20_000_000);
    assert_eq!((usage.active, usage.ended_count), (1, 1));
    assert_eq!(
        usage.ended_cost, half_hour,
        "deleted after 30 min at $0.04/h"
    );
    assert_eq!(usage.accrued, half_hour);
    assert_eq!(usage.estimated, kept.estimated_cost);
    assert_eq!(usage.total_spend, Money::from_nanos(40_000_000));
    let history = h
        .manager
        .history(&HistoryQuery {
            owner: Some("alice".into()),
            ..HistoryQuery::default()
        })
        .await
        .expect("history failed");
    assert_eq!(history.items.len(), 1);
    assert_eq!(history.items[0].end_reason, Some(EndReason::Deleted));
}

/// Quotas limit active leases and daily spend.
pub async fn quotas_limit_active_leases_and_daily_spend(store: Arc<dyn LeaseStore>) {
    let h = harness_with(
        store,
        ManagerConfig {
            max_leases_per_owner: Some(2),
            max_daily_spend: Some("0.05".parse().expect("a decimal amount")),
            ..config()
        },
    );
    let first = h.provision("alice", "alpine", 10).await;
    h.provision("alice", "alpine", 10).await;
    let third = h
        .manager
        .provision(ProvisionRequest::new("alice", "alpine").minutes(10))
        .await
        .expect_err("provision must be refused");
    assert!(
        matches!(
            third,
            LeaseError::QuotaExceeded {
                limit: "max_leases_per_owner",
                ..
            }
        ),
        "{third:?}"
    );
    assert_eq!(
        h.manager
            .list(&ListQuery::owner("alice"))
            .await
            .expect("list failed")
            .items
            .len(),
        2,
        "nothing stored"
    );
    // Another owner has their own quota; a finished lease frees a slot.
    h.provision("bob", "alpine", 10).await;
    h.manager.delete(&first.id).await.expect("delete failed");
    h.reap().await;
    h.provision("alice", "alpine", 10).await;

    // Spend: $0.04 of a $0.05 day, then a $0.02 lease is refused.
    let big = h.provision("erin", "ubuntu", 60).await;
    let over = h
        .manager
        .provision(ProvisionRequest::new("erin", "ubuntu").minutes(30))
        .await
        .expect_err("provision must be refused");
    match over {
        LeaseError::QuotaExceeded {
            limit: "max_daily_spend",
            message,
        } => assert!(message.contains("0.04"), "{message}"),
        other => panic!("{other:?}"),
    }
    // Extending by $0.01 reaches the limit exactly; one more minute is over it.
    h.manager.extend(&big.id, 15).await.expect("extend failed");
    let refused = h
        .manager
        .extend(&big.id, 1)
        .await
        .expect_err("extend must be refused");
    assert!(
        matches!(
            refused,
            LeaseError::QuotaExceeded {
                limit: "max_daily_spend",
                ..
            }
        ),
        "{refused:?}"
    );

    // Parallel requests cannot all pass the limit: the store admits
    // atomically. 40 at once against 2 slots: exactly 2 get a lease.
    let requests = (0..40).map(|_| {
        h.manager
            .provision(ProvisionRequest::new("zed", "alpine").minutes(10))
    });
    let results = futures::future::join_all(requests).await;
    let admitted = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(admitted, 2, "40 parallel provisions against a limit of 2");
    assert!(
        results.iter().all(|result| matches!(
            result,
            Ok(_)
                | Err(LeaseError::QuotaExceeded {
                    limit: "max_leases_per_owner",
                    ..
                })
        )),
        "every refusal names the owner limit"
    );
}

/// Host capacity (leases, CPUs, memory of all owners together) refuses a
/// lease that does not fit with `CapacityExhausted` naming the limit,
/// stores nothing, and fits again once a lease has ended.
pub async fn host_capacity_limits_all_owners_together(store: Arc<dyn LeaseStore>) {
    let h = harness_with(
        store,
        ManagerConfig {
            max_leases: Some(3),
            max_nano_cpus: Some(3_000_000_000),
            max_memory_mb: Some(2304),
            ..config()
        },
    );
    // ubuntu: 2 CPUs, 2048 MiB; alpine: 0.5 CPU, 256 MiB.
    let big = h.provision("alice", "ubuntu", 10).await;
    assert_eq!((big.nano_cpus, big.memory_mb), (2_000_000_000, 2048));
    h.provision("bob", "alpine", 10).await;
    let refused = |owner: &'static str, offering: &'static str| {
        let manager = h.manager.clone();
        async move {
            manager
                .provision(ProvisionRequest::new(owner, offering).minutes(10))
                .await
                .expect_err("provision must be refused")
        }
    };
    match refused("carol", "alpine").await {
        LeaseError::CapacityExhausted {
            limit: "max_memory",
            message,
        } => assert!(message.contains("2304 MiB"), "{message}"),
        other => panic!("expected max_memory, got {other:?}"),
    }
    match refused("bob", "ubuntu").await {
        LeaseError::CapacityExhausted {
            limit: "max_cpus",
            message,
        } => assert!(message.contains("limit is 3"), "{message}"),
        other => panic!("expected max_cpus, got {other:?}"),
    }
    let active = |owner: Option<&str>| {
        let manager = h.manager.clone();
        let query = ListQuery {
            owner: owner.map(str::to_owned),
            ..ListQuery::default()
        };
        async move { manager.list(&query).await.expect("list failed").items.len() }
    };
    assert_eq!(active(None).await, 2, "nothing stored when refused");
    assert_eq!(active(Some("carol")).await, 0);

    // The big lease ends: its CPUs and memory are free again.
    h.manager.delete(&big.id).await.expect("delete failed");
    h.reap().await;
    h.provision("carol", "alpine", 10).await;
    h.provision("dave", "alpine", 10).await;
    match refused("erin", "alpine").await {
        LeaseError::CapacityExhausted {
            limit: "max_leases",
            message,
        } => assert!(message.contains("3 active lease(s)"), "{message}"),
        other => panic!("expected max_leases, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// The macro
// ---------------------------------------------------------------------------

/// Runs the engine scenarios against a store, one `#[tokio::test]` each.
///
/// ```rust,ignore
/// // Every scenario: the store claims by the caller's `now`.
/// lease_core::engine_scenario_tests!(async {
///     Some(std::sync::Arc::new(MemoryStore::new()))
/// });
/// // Only those that do not need that: the store claims by its own clock.
/// lease_core::engine_scenario_tests!(server_clock, async { common::store().await });
/// ```
///
/// The factory is an expression (usually an `async` block) yielding
/// `Option<Arc<Store>>` for a fresh, empty store, evaluated once per test;
/// `None` skips the test (the factory prints why, and fails instead under
/// `CI=true`). Items in scope where the macro is used are visible to it.
/// The caller needs `tokio` (with `macros` and `rt`) among its
/// dev-dependencies.
#[macro_export]
macro_rules! engine_scenario_tests {
    (server_clock, $factory:expr $(,)?) => {
        $crate::__engine_scenarios_any_store!(@tests $factory;);
    };
    ($factory:expr $(,)?) => {
        $crate::__engine_scenarios_any_store!(@tests $factory;);
        $crate::__engine_scenarios_caller_clock!(@tests $factory;);
    };
}

/// Implementation detail of [`engine_scenario_tests!`]: the scenarios that
/// run on every store. A unit test checks that every scenario is in exactly
/// one of the two lists.
#[doc(hidden)]
#[macro_export]
macro_rules! __engine_scenarios_any_store {
    ($($prefix:tt)*) => {
        $crate::__engine_scenario_module! { $($prefix)*
            provision_returns_pending_then_runs_with_labels,
            unplaceable_container_is_an_error_with_the_runtimes_reason,
            seed_prices_are_exact,
            missing_image_is_an_error_naming_it,
            delete_while_pending_leaves_no_container,
            expiring_soon_fires_at_the_lead,
            reconcile_removes_orphans_and_never_touches_foreign_containers,
            reconcile_removes_the_container_of_a_finished_lease,
            reconcile_retries_stuck_pending_and_times_out_old_ones,
            reconcile_plan_changes_nothing_and_is_what_a_pass_does,
            bad_input_is_typed_and_stores_nothing,
            quotas_limit_active_leases_and_daily_spend,
            host_capacity_limits_all_owners_together,
        }
    };
}

/// Implementation detail of [`engine_scenario_tests!`]: the scenarios that
/// need a store which claims by the caller's `now`.
#[doc(hidden)]
#[macro_export]
macro_rules! __engine_scenarios_caller_clock {
    ($($prefix:tt)*) => {
        $crate::__engine_scenario_module! { $($prefix)*
            runtime_failure_marks_error_and_keeps_message,
            expiry_is_reaped_within_target_by_the_background_reaper,
            a_lease_due_during_a_slow_pass_is_reaped_when_it_ends,
            removal_failing_five_times_keeps_the_lease_until_it_succeeds,
            extend_moves_the_reap_and_is_bounded,
            provisioning_timeout_marks_error,
            reconcile_adopts_unknown_leases_from_labels_then_reaps_them,
            reconcile_marks_vanished_and_stopped_containers_exited,
            usage_adds_up_to_the_nano_dollar,
        }
    };
}

/// Implementation detail of [`engine_scenario_tests!`]: what is made of a
/// list of scenarios (tests, or the names).
#[doc(hidden)]
#[macro_export]
macro_rules! __engine_scenario_module {
    (@names; $($case:ident),* $(,)?) => {
        [$(::core::stringify!($case)),*]
    };
    (@tests $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $case() {
                let ::core::option::Option::Some(store) = $factory.await else { return };
                let store: ::std::sync::Arc<dyn $crate::LeaseStore> = store;
                $crate::testing::conformance::run_case(
                    ::core::stringify!($case),
                    $crate::testing::engine_scenarios::$case(store),
                )
                .await
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    /// Every scenario defined in this file is in exactly one list, and the
    /// lists name nothing else.
    #[test]
    fn the_macro_runs_every_scenario() {
        let any_store = crate::__engine_scenarios_any_store!(@names;);
        let caller_clock = crate::__engine_scenarios_caller_clock!(@names;);
        crate::testing::conformance::assert_every_case_listed_once(
            include_str!("engine_scenarios.rs"),
            "(store: Arc<dyn LeaseStore>",
            &[&any_store[..], &caller_clock[..]].concat(),
        );
    }
}
