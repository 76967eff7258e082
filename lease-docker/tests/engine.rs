//! End to end: lease-core's engine + the memory store + this runtime on the
//! real Docker engine. Time comes from a manual clock, so a lease "runs
//! out" the moment the test moves the clock past its expiry.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use common::{TestDocker, manager, raw_exists, raw_list, wait_for};
use lease_core::runtime::{
    ContainerInfo, ContainerSpec, ExecRequest, ExecSession, LogOptions, LogStream, ProgressSender,
    labels,
};
use lease_core::{
    Clock, ContainerRuntime, EventKind, ManualClock, OrphanPolicy, ProvisionRequest, RuntimeError,
    Status,
};
use lease_docker::DockerRuntime;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_runs_a_real_container_and_the_reaper_removes_it_at_expiry() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(test.runtime.clone());
    let manager = manager(&test.namespace, runtime, clock.clone(), |_| {});
    let mut events = manager.subscribe();
    let shutdown = CancellationToken::new();
    let background = manager.start(shutdown.clone());

    let lease = manager
        .provision(ProvisionRequest::new("alice", "alpine").minutes(1))
        .await
        .unwrap();
    assert_eq!(lease.status, Status::Pending);
    let running = wait_for(
        &mut events,
        &lease.id,
        EventKind::Running,
        Duration::from_secs(30),
    )
    .await
    .lease;
    let container = running.container_id.clone().expect("container id");

    // A real, running container carrying the labels of invariant 1.
    let raw = test.raw.inspect_container(&container, None).await.unwrap();
    assert_eq!(raw.state.as_ref().and_then(|s| s.running), Some(true));
    let raw_labels = raw.config.and_then(|c| c.labels).unwrap();
    assert_eq!(
        raw_labels.get(labels::MANAGED).map(String::as_str),
        Some("true")
    );
    assert_eq!(raw_labels.get(labels::NAMESPACE), Some(&test.namespace));
    assert_eq!(
        raw_labels.get(labels::LEASE_ID),
        Some(&lease.id.to_string())
    );
    assert_eq!(
        raw_labels.get(labels::OWNER).map(String::as_str),
        Some("alice")
    );
    assert_eq!(
        raw_labels.get(labels::IMAGE_TYPE).map(String::as_str),
        Some("alpine")
    );
    assert!(
        raw_labels.contains_key(labels::EXPIRES_AT) && raw_labels.contains_key(labels::CREATED_AT)
    );
    assert_eq!(
        raw.host_config.and_then(|h| h.memory),
        Some(256 << 20),
        "the catalog's limits"
    );
    let info = manager.runtime().status(&container).await.unwrap().unwrap();
    assert!(info.running());

    // The lease's shell works through the engine too.
    let session = manager
        .exec(
            &lease.id,
            ExecRequest {
                command: vec!["echo".into(), "hi".into()],
                ..ExecRequest::default()
            },
        )
        .await
        .unwrap();
    drop(session);

    // Its time runs out: the reaper removes the container and ends the lease.
    let moved = Instant::now();
    clock.advance(chrono::Duration::seconds(61));
    let deleted = wait_for(
        &mut events,
        &lease.id,
        EventKind::Deleted,
        Duration::from_secs(10),
    )
    .await;
    let took = moved.elapsed();
    eprintln!(
        "reaped {took:?} after expiry (lateness by the clock: {:?} ms)",
        deleted.lateness_ms
    );
    assert!(
        took < Duration::from_secs(2),
        "reaped {took:?} after expiry"
    );
    assert!(!raw_exists(&test.raw, &container).await, "container gone");
    assert_eq!(
        manager.get(&lease.id).await.unwrap().status,
        Status::Deleted
    );
    assert!(raw_list(&test.raw, &test.namespace).await.is_empty());

    shutdown.cancel();
    background.join().await;
}

/// A runtime that holds a created container back for a moment before
/// reporting it, so a delete lands while the lease is still pending and
/// its container already exists.
#[derive(Debug)]
struct SlowStart {
    inner: DockerRuntime,
    delay: Duration,
}

#[async_trait]
impl ContainerRuntime for SlowStart {
    fn namespace(&self) -> &str {
        self.inner.namespace()
    }
    async fn ping(&self) -> Result<(), RuntimeError> {
        self.inner.ping().await
    }
    async fn ensure_image(
        &self,
        image: &str,
        progress: ProgressSender,
    ) -> Result<(), RuntimeError> {
        self.inner.ensure_image(image, progress).await
    }
    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let id = self.inner.create(spec).await?;
        tokio::time::sleep(self.delay).await;
        Ok(id)
    }
    async fn status(&self, container: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        self.inner.status(container).await
    }
    async fn remove(&self, container: &str) -> Result<(), RuntimeError> {
        self.inner.remove(container).await
    }
    async fn logs(&self, container: &str, options: LogOptions) -> Result<LogStream, RuntimeError> {
        self.inner.logs(container, options).await
    }
    async fn exec(
        &self,
        container: &str,
        request: ExecRequest,
    ) -> Result<ExecSession, RuntimeError> {
        self.inner.exec(container, request).await
    }
    async fn list_managed(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        self.inner.list_managed().await
    }
}

/// Waits until the namespace has no container and the lease is deleted,
/// then makes sure no container shows up afterwards.
async fn assert_nothing_left(
    test: &TestDocker,
    manager: &lease_core::LeaseManager,
    lease: &lease_core::LeaseId,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = manager.get(lease).await.expect("lease").status;
        if status == Status::Deleted && raw_list(&test.raw, &test.namespace).await.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lease {status:?}, containers {:?}",
            raw_list(&test.raw, &test.namespace).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        raw_list(&test.raw, &test.namespace).await.is_empty(),
        "a container came back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_while_pending_leaves_no_container() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Utc::now()));

    // At once, before provisioning has done anything.
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(test.runtime.clone());
    let manager = manager(&test.namespace, runtime, clock.clone(), |_| {});
    let shutdown = CancellationToken::new();
    let background = manager.start(shutdown.clone());
    let lease = manager
        .provision(ProvisionRequest::new("alice", "alpine").minutes(5))
        .await
        .unwrap();
    let deleting = manager.delete(&lease.id).await.unwrap();
    assert_eq!(deleting.status, Status::Deleting);
    assert_nothing_left(&test, &manager, &lease.id).await;
    shutdown.cancel();
    background.join().await;

    // With the container already created but not yet reported: the
    // provisioning task finds its lease ended and removes what it made.
    let slow: Arc<dyn ContainerRuntime> = Arc::new(SlowStart {
        inner: test.runtime.clone(),
        delay: Duration::from_millis(1500),
    });
    let manager = common::manager(&test.namespace, slow, clock, |_| {});
    let shutdown = CancellationToken::new();
    let background = manager.start(shutdown.clone());
    let lease = manager
        .provision(ProvisionRequest::new("bob", "ubuntu").minutes(5))
        .await
        .unwrap();
    let name = lease_core::runtime::container_name(&lease.id);
    let appeared = Instant::now() + Duration::from_secs(10);
    while !raw_exists(&test.raw, &name).await {
        assert!(Instant::now() < appeared, "the container was never created");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        manager.get(&lease.id).await.unwrap().status,
        Status::Pending
    );
    manager.delete(&lease.id).await.unwrap();
    assert_nothing_left(&test, &manager, &lease.id).await;
    shutdown.cancel();
    background.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_removes_orphans_and_notices_vanished_containers() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Utc::now()));
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(test.runtime.clone());
    let manager = manager(&test.namespace, runtime, clock, |config| {
        config.orphan_policy = OrphanPolicy::Remove
    });
    let mut events = manager.subscribe();

    // A labelled container of a lease the store never heard of.
    let orphan = test
        .runtime
        .create(&test.spec(&["sleep", "infinity"]))
        .await
        .unwrap();
    // A running lease whose container is removed behind the engine's back.
    let lease = manager
        .provision(ProvisionRequest::new("alice", "alpine").minutes(5))
        .await
        .unwrap();
    let running = wait_for(
        &mut events,
        &lease.id,
        EventKind::Running,
        Duration::from_secs(30),
    )
    .await
    .lease;
    let container = running.container_id.unwrap();
    test.runtime.remove(&container).await.unwrap();

    let report = manager.reconcile_once().await.unwrap();
    eprintln!("{report:?}");
    assert!(!raw_exists(&test.raw, &orphan).await, "orphan removed");
    assert_eq!(manager.get(&lease.id).await.unwrap().status, Status::Exited);
}
