//! Engine scenarios: the whole `LeaseManager` (provisioning, reaper,
//! reconciler) over the memory store and the fake runtime, with a manual
//! clock so expiry is tested without sleeping.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use lease_core::runtime::{container_name, labels};
use lease_core::testing::fake_runtime::FakeRuntime;
use lease_core::{
    Clock, EndReason, EventKind, HistoryQuery, LeaseError, LeaseEvent, LeaseId, LeaseManager,
    LeaseStore, ListQuery, ManagerConfig, ManualClock, Money, OrphanPolicy, ProvisionRequest,
    Status, ValidationError,
};
use lease_store_memory::MemoryStore;
use tokio::sync::broadcast::Receiver;
use tokio_util::sync::CancellationToken;

const NS: &str = "test-scenarios";
const WAIT: StdDuration = StdDuration::from_secs(5);

struct Harness {
    clock: Arc<ManualClock>,
    runtime: Arc<FakeRuntime>,
    store: Arc<MemoryStore>,
    manager: LeaseManager,
    events: Receiver<LeaseEvent>,
}

fn harness_with(config: ManagerConfig) -> Harness {
    let clock = Arc::new(ManualClock::default());
    let runtime = Arc::new(FakeRuntime::new(clock.clone()));
    let store = Arc::new(MemoryStore::new());
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

fn harness() -> Harness {
    harness_with(config())
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

async fn running_lease(h: &mut Harness, offering: &str, minutes: u32) -> lease_core::Lease {
    let lease = h
        .manager
        .provision(ProvisionRequest::new("alice", offering).minutes(minutes))
        .await
        .expect("provision");
    wait_event(&mut h.events, EventKind::Running, &lease.id)
        .await
        .lease
}

#[tokio::test]
async fn provision_returns_pending_then_runs_with_labels() {
    let mut h = harness();
    let lease = h
        .manager
        .provision(ProvisionRequest::new("alice", "alpine").minutes(2))
        .await
        .unwrap();
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
    assert_eq!(
        h.store.get(&lease.id).await.unwrap().status,
        Status::Running
    );
}

#[tokio::test]
async fn seed_prices_are_exact() {
    let h = harness();
    let ubuntu = h
        .manager
        .provision(ProvisionRequest::new("bob", "ubuntu").minutes(120))
        .await
        .unwrap();
    assert_eq!(ubuntu.estimated_cost, Money::from_nanos(80_000_000));
    let default = h
        .manager
        .provision(ProvisionRequest::new("bob", "alpine"))
        .await
        .unwrap();
    assert_eq!(
        default.booked_minutes(),
        120,
        "durationMinutes defaults to 120"
    );
}

#[tokio::test]
async fn runtime_failure_marks_error_and_keeps_message() {
    let mut h = harness();
    h.runtime.fail_next_creates(1);
    let lease = h
        .manager
        .provision(ProvisionRequest::new("alice", "alpine").minutes(5))
        .await
        .unwrap();
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
    let report = h.manager.reap_once().await.unwrap();
    assert_eq!(report.finished, 1);
    let ended = h.manager.get(&lease.id).await.unwrap();
    assert_eq!(ended.status, Status::Deleted);
    assert_eq!(ended.end_reason, Some(EndReason::Error));
}

#[tokio::test]
async fn missing_image_is_an_error_naming_it() {
    let mut h = harness();
    h.runtime.set_image_missing("alpine:3.20");
    let lease = h
        .manager
        .provision(ProvisionRequest::new("alice", "alpine").minutes(5))
        .await
        .unwrap();
    let failed = wait_event(&mut h.events, EventKind::Error, &lease.id)
        .await
        .lease;
    assert!(failed.error.unwrap().contains("alpine:3.20"));
    assert_eq!(h.runtime.create_calls(), 0);
}

#[tokio::test]
async fn delete_while_pending_leaves_no_container() {
    let mut h = harness();
    h.runtime.hang_creates(true);
    let lease = h
        .manager
        .provision(ProvisionRequest::new("alice", "alpine").minutes(30))
        .await
        .unwrap();
    eventually("create called", || h.runtime.create_calls() == 1).await;
    let deleting = h.manager.delete(&lease.id).await.unwrap();
    assert_eq!(deleting.status, Status::Deleting);
    assert_eq!(deleting.end_reason, Some(EndReason::Deleted));
    let report = h.manager.reap_once().await.unwrap();
    assert_eq!(report.finished, 1);
    assert_eq!(
        h.manager.get(&lease.id).await.unwrap().status,
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

#[tokio::test]
async fn expiry_is_reaped_within_target_by_the_background_reaper() {
    let mut h = harness();
    let token = CancellationToken::new();
    let tasks = h.manager.start(token.clone());
    let lease = running_lease(&mut h, "alpine", 2).await;
    h.clock.advance(Duration::minutes(2));
    let deleted = wait_event(&mut h.events, EventKind::Deleted, &lease.id).await;
    assert!(
        deleted.lateness_ms.unwrap() <= 100,
        "handed to the runtime {:?} ms late",
        deleted.lateness_ms
    );
    let removal = h.runtime.removals().pop().expect("one removal");
    assert!(removal.at - lease.expires_at <= Duration::milliseconds(100));
    assert!(h.runtime.containers_in(NS).is_empty());
    let finished = h.manager.get(&lease.id).await.unwrap();
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
            .unwrap()
            .items
            .is_empty()
    );
    token.cancel();
    tasks.join().await;
}

#[tokio::test]
async fn removal_failing_five_times_keeps_the_lease_until_it_succeeds() {
    let mut h = harness();
    let lease = running_lease(&mut h, "alpine", 1).await;
    h.runtime.fail_next_removes(5);
    h.clock.advance(Duration::minutes(1));
    // First round: one attempt and three quick retries, all failing.
    let report = h.manager.reap_once().await.unwrap();
    assert_eq!((report.claimed, report.failed), (1, 1));
    wait_event(&mut h.events, EventKind::ReapFailed, &lease.id).await;
    let kept = h.store.get(&lease.id).await.unwrap();
    assert_eq!(kept.status, Status::Deleting);
    assert_eq!(kept.removal_failures, 4);
    assert!(
        kept.error
            .as_deref()
            .unwrap_or("")
            .contains("removal failed")
    );
    // Not retried before the next sweep…
    assert_eq!(h.manager.reap_once().await.unwrap().claimed, 0);
    // …then once per sweep.
    h.clock.advance(Duration::seconds(60));
    assert_eq!(h.manager.reap_once().await.unwrap().failed, 1);
    assert_eq!(h.store.get(&lease.id).await.unwrap().removal_failures, 5);
    h.clock.advance(Duration::seconds(60));
    assert_eq!(h.manager.reap_once().await.unwrap().finished, 1);
    let done = h.manager.get(&lease.id).await.unwrap();
    assert_eq!(done.status, Status::Deleted);
    assert_eq!(
        done.error, None,
        "a removal that finally worked is not an error"
    );
    assert_eq!(h.runtime.remove_calls(), 6);
    assert!(h.runtime.containers_in(NS).is_empty());
}

#[tokio::test]
async fn extend_moves_the_reap_and_is_bounded() {
    let mut h = harness();
    let lease = running_lease(&mut h, "alpine", 10).await;
    let extended = h.manager.extend(&lease.id, 30).await.unwrap();
    assert_eq!(
        extended.expires_at,
        lease.expires_at + Duration::minutes(30)
    );
    assert_eq!(
        extended.estimated_cost,
        lease_core::pricing::estimate(lease.hourly_rate, 40)
    );
    h.clock.advance(Duration::minutes(10));
    assert_eq!(
        h.manager.reap_once().await.unwrap().claimed,
        0,
        "not due at the old expiry"
    );
    // 40 booked of 480: 441 more is too many, nothing changes.
    let refused = h.manager.extend(&lease.id, 441).await.unwrap_err();
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
    assert_eq!(
        h.store.get(&lease.id).await.unwrap().revision,
        extended.revision
    );
    h.clock.advance(Duration::minutes(30));
    assert_eq!(h.manager.reap_once().await.unwrap().finished, 1);
    let wrong = h.manager.extend(&lease.id, 5).await.unwrap_err();
    assert!(matches!(wrong, LeaseError::WrongState { .. }), "{wrong:?}");
}

#[tokio::test]
async fn expiring_soon_fires_at_the_lead() {
    let mut h = harness();
    let lease = running_lease(&mut h, "alpine", 10).await;
    h.clock.advance(Duration::minutes(5));
    let warned = wait_event(&mut h.events, EventKind::ExpiringSoon, &lease.id).await;
    assert_eq!(warned.at, lease.expires_at - Duration::minutes(5));
}

#[tokio::test]
async fn provisioning_timeout_marks_error() {
    let mut h = harness();
    h.runtime.hang_creates(true);
    let lease = h
        .manager
        .provision(ProvisionRequest::new("alice", "alpine").minutes(60))
        .await
        .unwrap();
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
    h.manager.reap_once().await.unwrap();
    let ended = h.manager.get(&lease.id).await.unwrap();
    assert_eq!(ended.final_cost, Some(Money::ZERO));
    assert_eq!(
        h.manager.usage("alice").await.unwrap().ended_cost,
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

#[tokio::test]
async fn reconcile_removes_orphans_and_never_touches_foreign_containers() {
    let h = harness_with(ManagerConfig {
        orphan_policy: OrphanPolicy::Remove,
        ..config()
    });
    let orphan_id = LeaseId::generate();
    h.runtime.insert_container(
        &container_name(&orphan_id),
        labels_for(&orphan_id, h.clock.now(), 30),
        true,
    );
    let mut foreign = labels_for(&LeaseId::generate(), h.clock.now(), 30);
    foreign.insert(labels::NAMESPACE.into(), "someone-else".into());
    h.runtime.insert_container("not-ours", foreign, true);
    let report = h.manager.reconcile_once().await.unwrap();
    assert_eq!(report.orphans_removed, 1);
    assert!(h.runtime.containers_in(NS).is_empty());
    assert_eq!(
        h.runtime.containers().len(),
        1,
        "the other namespace's container is untouched"
    );
    assert!(h.runtime.containers_in("someone-else").len() == 1);
}

#[tokio::test]
async fn reconcile_adopts_unknown_leases_from_labels_then_reaps_them() {
    let h = harness();
    let id = LeaseId::generate();
    let created = h.clock.now() - Duration::minutes(10);
    h.runtime
        .insert_container(&container_name(&id), labels_for(&id, created, 30), true);
    let report = h.manager.reconcile_once().await.unwrap();
    assert_eq!(report.adopted, 1);
    let adopted = h.store.get(&id).await.unwrap();
    assert_eq!(
        (adopted.status, adopted.owner.as_str()),
        (Status::Running, "carol")
    );
    assert_eq!(adopted.expires_at, created + Duration::minutes(30));
    h.clock.advance(Duration::minutes(20));
    assert_eq!(h.manager.reap_once().await.unwrap().finished, 1);
    assert!(h.runtime.containers_in(NS).is_empty());
}

#[tokio::test]
async fn reconcile_removes_the_container_of_a_finished_lease() {
    let mut h = harness();
    let lease = running_lease(&mut h, "alpine", 5).await;
    h.manager.delete(&lease.id).await.unwrap();
    h.manager.reap_once().await.unwrap();
    // A stray container with the finished lease's labels (e.g. a late duplicate).
    h.runtime
        .insert_container("stray", labels_for(&lease.id, lease.created_at, 5), true);
    assert_eq!(h.manager.reconcile_once().await.unwrap().orphans_removed, 1);
    assert!(h.runtime.containers_in(NS).is_empty());
}

#[tokio::test]
async fn reconcile_marks_vanished_and_stopped_containers_exited() {
    let mut h = harness();
    let gone = running_lease(&mut h, "alpine", 30).await;
    let stopped = running_lease(&mut h, "alpine", 30).await;
    h.runtime.vanish(gone.container_id.as_deref().unwrap());
    h.runtime
        .stop_container(stopped.container_id.as_deref().unwrap());
    h.clock.advance(Duration::minutes(3));
    let report = h.manager.reconcile_once().await.unwrap();
    assert_eq!(report.exited, 2);
    let gone = h.store.get(&gone.id).await.unwrap();
    assert_eq!(
        (gone.status, gone.error.as_deref()),
        (Status::Exited, Some("container vanished"))
    );
    assert_eq!(
        gone.accrued_cost(h.clock.now() + Duration::hours(1)),
        gone.accrued_cost(h.clock.now()),
        "billing stopped"
    );
    let stopped = h.store.get(&stopped.id).await.unwrap();
    assert!(stopped.error.unwrap().contains("137"));
    // Exited leases are still reaped at expiry, removing the stopped container.
    h.clock.advance(Duration::minutes(27));
    assert_eq!(h.manager.reap_once().await.unwrap().finished, 2);
    assert!(h.runtime.containers_in(NS).is_empty());
}

#[tokio::test]
async fn reconcile_retries_stuck_pending_and_times_out_old_ones() {
    let mut h = harness();
    // Pending leases whose provisioning died with another process.
    let stuck = lease_core::testing::conformance::sample_lease("dave", Duration::minutes(30));
    let stuck = lease_core::Lease {
        created_at: h.clock.now(),
        expires_at: h.clock.now() + Duration::minutes(30),
        ..stuck
    };
    let stuck = h.store.insert(&stuck).await.unwrap();
    let ancient = lease_core::testing::conformance::sample_lease("dave", Duration::minutes(60));
    let ancient = lease_core::Lease {
        created_at: h.clock.now(),
        expires_at: h.clock.now() + Duration::minutes(60),
        ..ancient
    };
    let ancient = h.store.insert(&ancient).await.unwrap();
    h.clock.advance(Duration::seconds(31));
    // Make `ancient` older than the provisioning timeout.
    h.store
        .update(&lease_core::Lease {
            created_at: h.clock.now() - Duration::minutes(11),
            ..ancient.clone()
        })
        .await
        .unwrap();
    let report = h.manager.reconcile_once().await.unwrap();
    assert_eq!((report.retried, report.timed_out), (1, 1));
    let running = wait_event(&mut h.events, EventKind::Running, &stuck.id)
        .await
        .lease;
    assert_eq!(running.provision_attempts, 1);
    let timed_out = h.store.get(&ancient.id).await.unwrap();
    assert_eq!(timed_out.status, Status::Error);
}

#[tokio::test]
async fn reconcile_plan_changes_nothing_and_is_what_a_pass_does() {
    use lease_core::ReconcileAction as A;
    let mut h = harness();
    let pending = |created: chrono::DateTime<chrono::Utc>| lease_core::Lease {
        created_at: created,
        expires_at: created + Duration::minutes(30),
        ..lease_core::testing::conformance::sample_lease("dave", Duration::minutes(30))
    };
    let gone = running_lease(&mut h, "alpine", 30).await;
    h.runtime.vanish(gone.container_id.as_deref().unwrap());
    let stuck = h.store.insert(&pending(h.clock.now())).await.unwrap();
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
    let young = h.store.insert(&pending(h.clock.now())).await.unwrap();

    let plan = h.manager.reconcile_plan().await.unwrap();
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
    assert_eq!(h.store.get(&gone.id).await.unwrap().status, Status::Running);
    assert!(matches!(
        h.store.get(&unknown).await,
        Err(lease_core::StoreError::NotFound(_))
    ));

    let report = h.manager.reconcile_once().await.unwrap();
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
    assert_eq!(h.store.get(&gone.id).await.unwrap().status, Status::Exited);
    let after = h.manager.reconcile_plan().await.unwrap();
    assert!(
        after
            .changes
            .iter()
            .all(|change| change.lease_id.as_ref() == Some(&young.id)),
        "only the young pending lease may be left: {after:?}"
    );
}

#[tokio::test]
async fn bad_input_is_typed_and_stores_nothing() {
    let h = harness();
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
            .unwrap()
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

#[tokio::test]
async fn usage_adds_up_to_the_nano_dollar() {
    let mut h = harness();
    let kept = running_lease(&mut h, "ubuntu", 120).await;
    let early = running_lease(&mut h, "ubuntu", 120).await;
    h.clock.advance(Duration::minutes(30));
    h.manager.delete(&early.id).await.unwrap();
    h.manager.reap_once().await.unwrap();
    let usage = h.manager.usage("alice").await.unwrap();
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
        .unwrap();
    assert_eq!(history.items.len(), 1);
    assert_eq!(history.items[0].end_reason, Some(EndReason::Deleted));
}

#[tokio::test]
async fn quotas_limit_active_leases_and_daily_spend() {
    let h = harness_with(ManagerConfig {
        max_leases_per_owner: Some(2),
        max_daily_spend: Some("0.05".parse().unwrap()),
        ..config()
    });
    let first = h
        .manager
        .provision(ProvisionRequest::new("alice", "alpine").minutes(10))
        .await
        .unwrap();
    h.manager
        .provision(ProvisionRequest::new("alice", "alpine").minutes(10))
        .await
        .unwrap();
    let third = h
        .manager
        .provision(ProvisionRequest::new("alice", "alpine").minutes(10))
        .await
        .unwrap_err();
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
            .unwrap()
            .items
            .len(),
        2,
        "nothing stored"
    );
    // Another owner has their own quota; a finished lease frees a slot.
    h.manager
        .provision(ProvisionRequest::new("bob", "alpine").minutes(10))
        .await
        .unwrap();
    h.manager.delete(&first.id).await.unwrap();
    h.manager.reap_once().await.unwrap();
    h.manager
        .provision(ProvisionRequest::new("alice", "alpine").minutes(10))
        .await
        .unwrap();

    // Spend: $0.04 of a $0.05 day, then a $0.02 lease is refused.
    let big = h
        .manager
        .provision(ProvisionRequest::new("erin", "ubuntu").minutes(60))
        .await
        .unwrap();
    let over = h
        .manager
        .provision(ProvisionRequest::new("erin", "ubuntu").minutes(30))
        .await
        .unwrap_err();
    match over {
        LeaseError::QuotaExceeded {
            limit: "max_daily_spend",
            message,
        } => assert!(message.contains("0.04"), "{message}"),
        other => panic!("{other:?}"),
    }
    // Extending by $0.01 reaches the limit exactly; one more minute is over it.
    h.manager.extend(&big.id, 15).await.unwrap();
    let refused = h.manager.extend(&big.id, 1).await.unwrap_err();
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
}
