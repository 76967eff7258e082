//! What the engine costs on top of Docker, on the real engine and the local
//! test image (`scripts/test-images.sh`). Run with `cargo bench -p lease-docker`.
//!
//! - (a) raw bollard: create + start + remove of one container;
//! - (b) the same through `LeaseManager` (memory store, this runtime):
//!   provision → running → reaped at expiry (a manual clock is moved past
//!   the expiry as soon as the lease runs, so no waiting is measured);
//!   (a) and (b) alternate, and the medians are compared: target b/a ≤ 1.10;
//! - (c) 50 running containers removed by the reaper (default settings: 16
//!   removals in flight) against 50 removed by raw parallel bollard calls:
//!   target ≤ 1.2.
//!
//! Everything runs under a `test-bench-…` namespace and is removed at the
//! end, also on panic. Without Docker or the image it prints why and exits.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use chrono::Utc;
use common::{TestDocker, manager};
use futures::StreamExt;
use lease_core::runtime::labels;
use lease_core::{
    ContainerRuntime, EventKind, LeaseId, LeaseManager, ManualClock, ProvisionRequest,
};
use lease_docker::hardening::{ADDED_CAPABILITIES, DROPPED_CAPABILITIES, SECURITY_OPTIONS};
use lease_testkit::IMAGE;
use lease_testkit::docker::NamespaceGuard;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Alternating rounds of (a) and (b), after one warm-up each.
const ROUNDS: usize = 9;
/// Containers in (c).
const MANY: usize = 50;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let Some(mut test) = TestDocker::start().await else {
        return;
    };
    // Namespaces of test containers start with `test-`, so scripts/test.sh
    // would also catch a leak from here.
    test.namespace = format!("test-bench-{}", &test.namespace["test-".len()..]);
    test.guard = NamespaceGuard::new(&test.namespace);
    println!(
        "lease-docker lifecycle benchmark on {IMAGE}, namespace {}",
        test.namespace
    );

    let clock = Arc::new(ManualClock::new(Utc::now()));
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(test.runtime.clone());
    let manager = manager(&test.namespace, runtime, clock.clone(), |_| {});
    let shutdown = CancellationToken::new();
    let background = manager.start(shutdown.clone());

    // (a) and (b), alternating so drift in the engine hits both alike.
    let _ = raw_lifecycle(&test).await;
    let _ = managed_lifecycle(&manager, &clock).await;
    let mut raw = Vec::new();
    let mut managed = Vec::new();
    for _ in 0..ROUNDS {
        raw.push(raw_lifecycle(&test).await);
        managed.push(managed_lifecycle(&manager, &clock).await);
    }
    let (a, b) = (median(&mut raw), median(&mut managed));
    println!(
        "(a) raw bollard create+start+remove:        median {a:>8.1?}  (runs: {})",
        show(&raw)
    );
    println!(
        "(b) LeaseManager provision→running→reaped:  median {b:>8.1?}  (runs: {})",
        show(&managed)
    );
    println!(
        "    b/a = {:.3}  (target ≤ 1.10)",
        b.as_secs_f64() / a.as_secs_f64()
    );

    // (c) 50 removals.
    let raw_many = raw_parallel_removal(&test).await;
    let reaped_many = reaper_removal(&manager, &clock).await;
    println!("(c) {MANY} removals, raw parallel bollard:      {raw_many:>8.1?}");
    println!("    {MANY} removals through the reaper:         {reaped_many:>8.1?}");
    println!(
        "    reaper/raw = {:.3}  (target ≤ 1.2)",
        reaped_many.as_secs_f64() / raw_many.as_secs_f64()
    );

    shutdown.cancel();
    background.join().await;
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn show(samples: &[Duration]) -> String {
    samples
        .iter()
        .map(|d| format!("{:.0}", d.as_secs_f64() * 1000.0))
        .collect::<Vec<_>>()
        .join(" ")
        + " ms"
}

/// The create body the runtime sends, rebuilt from its public constants.
fn raw_body(namespace: &str) -> ContainerCreateBody {
    let strings = |items: &[&str]| {
        items
            .iter()
            .map(|item| (*item).to_owned())
            .collect::<Vec<_>>()
    };
    ContainerCreateBody {
        image: Some(IMAGE.to_owned()),
        cmd: Some(vec!["sleep".into(), "infinity".into()]),
        labels: Some(HashMap::from([
            (labels::MANAGED.to_owned(), "true".to_owned()),
            (labels::NAMESPACE.to_owned(), namespace.to_owned()),
        ])),
        host_config: Some(HostConfig {
            privileged: Some(false),
            cap_drop: Some(strings(&DROPPED_CAPABILITIES)),
            cap_add: Some(strings(&ADDED_CAPABILITIES)),
            security_opt: Some(strings(&SECURITY_OPTIONS)),
            init: Some(true),
            nano_cpus: Some(500_000_000),
            memory: Some(256 << 20),
            memory_swap: Some(256 << 20),
            pids_limit: Some(256),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    }
}

async fn raw_create_start(docker: &Docker, namespace: &str) -> String {
    let name = lease_core::runtime::container_name(&LeaseId::generate());
    let options = CreateContainerOptionsBuilder::new().name(&name).build();
    let id = docker
        .create_container(Some(options), raw_body(namespace))
        .await
        .expect("create")
        .id;
    docker.start_container(&id, None).await.expect("start");
    id
}

async fn raw_remove(docker: &Docker, id: &str) {
    let options = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    docker
        .remove_container(id, Some(options))
        .await
        .expect("remove");
}

/// (a): one container created, started and removed with bollard.
async fn raw_lifecycle(test: &TestDocker) -> Duration {
    let started = Instant::now();
    let id = raw_create_start(&test.raw, &test.namespace).await;
    raw_remove(&test.raw, &id).await;
    started.elapsed()
}

async fn wait(
    events: &mut broadcast::Receiver<lease_core::LeaseEvent>,
    id: &LeaseId,
    kind: EventKind,
) {
    common::wait_for(events, id, kind, Duration::from_secs(60)).await;
}

/// (b): provision → running → reaped at expiry.
async fn managed_lifecycle(manager: &LeaseManager, clock: &ManualClock) -> Duration {
    let mut events = manager.subscribe();
    let started = Instant::now();
    let lease = manager
        .provision(ProvisionRequest::new("bench", "alpine").minutes(1))
        .await
        .expect("provision");
    wait(&mut events, &lease.id, EventKind::Running).await;
    clock.advance(chrono::Duration::seconds(61));
    wait(&mut events, &lease.id, EventKind::Deleted).await;
    started.elapsed()
}

/// (c), raw: 50 running containers removed by parallel bollard calls.
async fn raw_parallel_removal(test: &TestDocker) -> Duration {
    let ids: Vec<String> = futures::stream::iter(0..MANY)
        .map(|_| raw_create_start(&test.raw, &test.namespace))
        .buffer_unordered(8)
        .collect()
        .await;
    let started = Instant::now();
    futures::future::join_all(ids.iter().map(|id| raw_remove(&test.raw, id))).await;
    started.elapsed()
}

/// (c), reaper: 50 running leases expire at once; time until all are reaped.
async fn reaper_removal(manager: &LeaseManager, clock: &ManualClock) -> Duration {
    let mut events = manager.subscribe();
    let mut pending = Vec::new();
    for _ in 0..MANY {
        let lease = manager
            .provision(ProvisionRequest::new("bench", "alpine").minutes(1))
            .await
            .expect("provision");
        pending.push(lease.id);
    }
    let mut starting: std::collections::HashSet<LeaseId> = pending.iter().cloned().collect();
    until_all(&mut events, &mut starting, EventKind::Running).await;
    let started = Instant::now();
    clock.advance(chrono::Duration::seconds(61));
    let mut left: std::collections::HashSet<LeaseId> = pending.into_iter().collect();
    until_all(&mut events, &mut left, EventKind::Deleted).await;
    started.elapsed()
}

/// Receives events until every lease in `ids` has had one of `kind`.
async fn until_all(
    events: &mut broadcast::Receiver<lease_core::LeaseEvent>,
    ids: &mut std::collections::HashSet<LeaseId>,
    kind: EventKind,
) {
    while !ids.is_empty() {
        match tokio::time::timeout(Duration::from_secs(120), events.recv()).await {
            Ok(Ok(event)) if event.kind == kind => {
                ids.remove(&event.lease.id);
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => panic!("events: {error}"),
            Err(_) => panic!("{} leases had no {kind:?} event", ids.len()),
        }
    }
}
