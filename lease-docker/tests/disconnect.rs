//! The engine connection dies in the middle of a reap.
//!
//! How: the runtime reaches the real engine through a unix-socket proxy of
//! our own (`lease_testkit::proxy`) in front of the engine's socket, so a test can
//! cut the connection at the exact moment that matters without touching the
//! daemon:
//!
//! 1. `KillDeletes`: the runtime's namespace check (an inspect) goes
//!    through, and the connection carrying the `DELETE /containers/…`
//!    request is closed before the engine sees it. The runtime reports
//!    `Unavailable`; the reaper's quick retries (exponential backoff) run
//!    while the test restores the proxy, and the same pass then removes the
//!    container and finishes the lease.
//! 2. `Down`: every connection is cut and new ones refused for a whole
//!    pass. The lease is kept (status `deleting`, its removal failures
//!    counted, the error recorded, a `reap_failed` event), its container is
//!    still there — a lease never leaves the active set before its
//!    container's removal is confirmed. Once the engine is back, the next
//!    sweep removes the container and finishes the lease.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::{TestDocker, manager, raw_exists, wait_for};
use lease_core::{
    ContainerRuntime, EventKind, LeaseManager, ManualClock, ProvisionRequest, Status,
};
use lease_docker::{ConnectOptions, DockerRuntime};
use lease_testkit::proxy::{DockerProxy, Mode, engine_socket};

struct Setup {
    test: TestDocker,
    proxy: DockerProxy,
    clock: Arc<ManualClock>,
    manager: LeaseManager,
}

/// A manager whose runtime goes through a proxy; `None` when skipping.
async fn setup() -> Option<Setup> {
    let test = TestDocker::start().await?;
    let Some(upstream) = engine_socket() else {
        return lease_testkit::skip(
            "the engine is reached over tcp; the proxy test needs its unix socket",
        );
    };
    let proxy = DockerProxy::start(&upstream).expect("proxy");
    let runtime = DockerRuntime::connect_with(
        ConnectOptions::default().host(proxy.host()),
        &test.namespace,
    )
    .await
    .expect("runtime through the proxy");
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(runtime);
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let manager = manager(&test.namespace, runtime, clock.clone(), |config| {
        config.quick_retries = 3;
        config.quick_retry_base = Duration::from_millis(200);
        config.sweep_interval = Duration::from_secs(60);
    });
    Some(Setup {
        test,
        proxy,
        clock,
        manager,
    })
}

/// Provisions a lease, waits for its container, and moves the clock past
/// its expiry. Returns the lease id and container id.
async fn expired_running_lease(setup: &Setup) -> (lease_core::LeaseId, String) {
    let mut events = setup.manager.subscribe();
    let lease = setup
        .manager
        .provision(ProvisionRequest::new("alice", "alpine").minutes(1))
        .await
        .expect("provision");
    let running = wait_for(
        &mut events,
        &lease.id,
        EventKind::Running,
        Duration::from_secs(30),
    )
    .await
    .lease;
    let container = running.container_id.expect("container id");
    setup.clock.advance(chrono::Duration::seconds(61));
    (lease.id, container)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_mid_reap_is_retried_within_the_pass() {
    let Some(setup) = setup().await else { return };
    let (lease, container) = expired_running_lease(&setup).await;

    setup.proxy.set_mode(Mode::KillDeletes);
    // What the reaper will see: the runtime's namespace check passes, the
    // removal's connection dies, and that is `Unavailable`, not success.
    let direct = setup.manager.runtime().remove(&container).await;
    assert!(
        matches!(direct, Err(lease_core::RuntimeError::Unavailable { .. })),
        "{direct:?}"
    );
    assert!(raw_exists(&setup.test.raw, &container).await);
    let killed_before = setup.proxy.killed();
    // The engine comes back while the reaper is between its quick retries.
    let (report, ()) = tokio::join!(setup.manager.reap_once(), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        setup.proxy.set_mode(Mode::Pass);
    });
    let report = report.expect("reap pass");
    assert!(
        setup.proxy.killed() > killed_before,
        "a removal's connection was killed during the pass"
    );
    assert_eq!(
        (report.claimed, report.finished, report.failed),
        (1, 1, 0),
        "{report:?}"
    );
    assert!(
        !raw_exists(&setup.test.raw, &container).await,
        "container removed after the retry"
    );
    assert_eq!(
        setup.manager.get(&lease).await.unwrap().status,
        Status::Deleted
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_gone_for_a_whole_pass_keeps_the_lease_until_removal_is_confirmed() {
    let Some(setup) = setup().await else { return };
    let (lease, container) = expired_running_lease(&setup).await;
    let mut events = setup.manager.subscribe();

    setup.proxy.set_mode(Mode::Down);
    let report = setup.manager.reap_once().await.expect("reap pass");
    assert_eq!(
        (report.claimed, report.finished, report.failed),
        (1, 0, 1),
        "{report:?}"
    );
    let failed = wait_for(
        &mut events,
        &lease,
        EventKind::ReapFailed,
        Duration::from_secs(5),
    )
    .await
    .lease;
    assert_eq!(failed.status, Status::Deleting);
    assert!(failed.removal_failures >= 1);
    let error = failed.error.clone().unwrap_or_default();
    assert!(error.contains("unavailable at unix://"), "{error}");

    // Not dropped: still active, and its container is still there.
    let kept = setup.manager.get(&lease).await.unwrap();
    assert_eq!(kept.status, Status::Deleting);
    assert!(
        raw_exists(&setup.test.raw, &container).await,
        "container still there"
    );

    // The engine comes back; the next sweep finishes the job.
    setup.proxy.set_mode(Mode::Pass);
    setup.clock.advance(chrono::Duration::seconds(61));
    let report = setup.manager.reap_once().await.expect("reap pass");
    assert_eq!((report.claimed, report.finished), (1, 1), "{report:?}");
    wait_for(
        &mut events,
        &lease,
        EventKind::Deleted,
        Duration::from_secs(5),
    )
    .await;
    assert!(
        !raw_exists(&setup.test.raw, &container).await,
        "container removed"
    );
    let done = setup.manager.get(&lease).await.unwrap();
    assert_eq!(done.status, Status::Deleted);
    assert_eq!(done.error, None, "the transient failure is cleared");
}
