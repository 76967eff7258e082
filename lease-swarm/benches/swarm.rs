//! The Swarm runtime against raw bollard on the same swarm, in one run:
//!
//! 1. **provision → running**: `LeaseManager::provision` (memory store,
//!    this runtime) until the lease's `running` event, vs a raw
//!    `create_service` of the same image and command on the same swarm
//!    network, polling its tasks every 10 ms until one runs. Runs
//!    alternate (engine, raw, engine, …) so both see the same load; each
//!    lease or service is removed (untimed) before the next.
//! 2. **50 leases reaped**: 50 running leases whose expiry a manual clock
//!    has passed, `reap_once()` until it returns (the runtime's removal
//!    returns once each task's container is gone), vs 50 raw
//!    `delete_service` calls (16 at a time, the reaper's default
//!    concurrency) each followed by polling until its container is gone.
//!    Both sides place on the manager's node (`node.role==manager`), whose
//!    engine the raw side can watch.
//!    Per-lease latency is the time from the start of the batch to the
//!    lease's `deleted` event, or to the raw container's disappearance.
//!
//! Prints p50/p99 of each, the ratios (goals: provision ≤ 1.1×, reap ≤
//! 1.2×) and the load average (`uptime`) before and after.
//!
//! ```text
//! eval "$(scripts/swarm.sh start)"
//! cargo bench -p lease-swarm --bench swarm
//! LEASE_BENCH_SWARM_RUNS=40 LEASE_BENCH_SWARM_REAP=50 cargo bench -p lease-swarm --bench swarm
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    NetworkAttachmentConfig, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec,
    TaskSpecContainerSpec, TaskSpecPlacement, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{ListContainersOptionsBuilder, ListTasksOptionsBuilder};
use chrono::Utc;
use futures::StreamExt;
use lease_core::runtime::{NetworkMode, labels};
use lease_core::{
    Catalog, ContainerRuntime, EventKind, LeaseManager, ManagerConfig, ManualClock,
    ProvisionRequest,
};
use lease_store_memory::MemoryStore;
use lease_swarm::{NodeRoutes, SwarmOptions, SwarmRuntime};
use lease_testkit::IMAGE;
use lease_testkit::swarm::SwarmGuard;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Goals of the issue.
const GOAL_PROVISION: f64 = 1.1;
const GOAL_REAP: f64 = 1.2;
/// Removals in flight at once, for both sides (the reaper's default).
const CONCURRENCY: usize = 16;
/// Both sides place on the manager's node, whose engine the raw side
/// watches (the runtime's own routing is not what is measured here).
const PLACEMENT: &str = "node.role==manager";

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .filter(|count| *count > 0)
        .unwrap_or(default)
}

fn main() -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

fn uptime() -> String {
    std::process::Command::new("uptime")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|_| "uptime unavailable".to_owned())
}

fn ms(values: &[Duration], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[rank].as_secs_f64() * 1e3
}

/// The route to `scripts/swarm.sh`'s second node, if it made one.
fn routes() -> NodeRoutes {
    match (
        std::env::var("LEASE_TEST_SWARM_WORKER"),
        std::env::var("LEASE_TEST_SWARM_WORKER_HOSTNAME"),
    ) {
        (Ok(endpoint), Ok(hostname)) if !endpoint.is_empty() && !hostname.is_empty() => {
            format!("{hostname}={endpoint}").parse().unwrap_or_default()
        }
        _ => NodeRoutes::new(),
    }
}

async fn run() -> Result<(), Error> {
    let docker = Docker::connect_with_defaults()?.negotiate_version().await?;
    let runs = env_count("LEASE_BENCH_SWARM_RUNS", 20);
    let reap = env_count("LEASE_BENCH_SWARM_REAP", 50);
    let guard = SwarmGuard::random();
    let namespace = guard.namespace().to_owned();
    let options = SwarmOptions::from_env().overcommit(true).routes(routes());
    let swarm = SwarmRuntime::connect(&namespace, options).await?;
    let nodes = docker.list_nodes(None).await?.len();
    let before = uptime();
    println!("Swarm runtime vs raw bollard, {nodes} node(s), namespace {namespace}");
    println!("  load before: {before}");

    let clock = Arc::new(ManualClock::new(Utc::now()));
    let catalog = Catalog::from_toml(&format!(
        "[[offering]]\nkey = 'box'\nimage = '{IMAGE}'\nhourly_rate = '0.01'\ncpus = '0.25'\nmemory_mb = 64\npids = 64\nconstraints = ['{PLACEMENT}']\n"
    ))?;
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(swarm.clone());
    let manager = LeaseManager::builder(Arc::new(MemoryStore::new()), runtime)
        .catalog(catalog)
        .config(ManagerConfig::with_namespace(namespace.clone()))
        .clock(clock.clone())
        .build()?;

    // Warm-up (networks created, image checked): one of each, untimed.
    let lease = provision(&manager).await?;
    manager.delete(&lease).await?;
    let network = lease_swarm::network::network_name(&namespace, NetworkMode::Egress);

    let (mut engine, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let started = Instant::now();
        let lease = provision(&manager).await?;
        engine.push(started.elapsed());
        manager.delete(&lease).await?;

        let started = Instant::now();
        let id = raw_create(&docker, &namespace, &network).await?;
        raw.push(started.elapsed());
        raw_remove(&docker, &id).await?;
    }
    report("provision → running", &engine, &raw, GOAL_PROVISION);

    // Reaping: engine leases expire on the manual clock.
    let mut leases = Vec::new();
    for _ in 0..reap {
        leases.push(provision(&manager).await?);
    }
    clock.advance(chrono::TimeDelta::minutes(10));
    let mut events = manager.subscribe();
    let started = Instant::now();
    let reaper = manager.clone();
    let reaping = tokio::spawn(async move { reaper.reap_once().await });
    let mut reaped = Vec::new();
    while reaped.len() < reap {
        let event = tokio::time::timeout(Duration::from_secs(300), events.recv()).await??;
        if event.kind == EventKind::Deleted {
            reaped.push(started.elapsed());
        }
    }
    reaping.await??;
    let engine_total = started.elapsed();
    let left = containers(&docker, &namespace).await?;
    assert_eq!(left, 0, "every reaped lease's container is gone");

    let mut ids = Vec::new();
    for _ in 0..reap {
        ids.push(raw_create(&docker, &namespace, &network).await?);
    }
    let started = Instant::now();
    let raw_removed: Vec<Duration> = futures::stream::iter(ids)
        .map(|id| {
            let docker = docker.clone();
            async move {
                raw_remove(&docker, &id).await?;
                Ok::<_, Error>(started.elapsed())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let raw_total = started.elapsed();
    report(
        &format!("{reap} reaped, per lease"),
        &reaped,
        &raw_removed,
        GOAL_REAP,
    );
    let ratio = engine_total.as_secs_f64() / raw_total.as_secs_f64();
    println!(
        "  {reap} reaped in total: engine {:.0} ms, raw {:.0} ms, ratio {ratio:.3} (goal ≤ {GOAL_REAP}: {})",
        engine_total.as_secs_f64() * 1e3,
        raw_total.as_secs_f64() * 1e3,
        if ratio <= GOAL_REAP { "met" } else { "MISSED" }
    );
    println!("  load after: {}", uptime());
    drop(guard);
    Ok(())
}

fn report(what: &str, engine: &[Duration], raw: &[Duration], goal: f64) {
    println!("  {what}:");
    for (name, values) in [("engine", engine), ("raw bollard", raw)] {
        println!(
            "    {name:<12} p50 {:>8.1} ms  p99 {:>8.1} ms  (n = {})",
            ms(values, 0.5),
            ms(values, 0.99),
            values.len()
        );
    }
    let (p50, p99) = (
        ms(engine, 0.5) / ms(raw, 0.5),
        ms(engine, 0.99) / ms(raw, 0.99),
    );
    println!(
        "    ratio p50 {p50:.3}, p99 {p99:.3} (goal ≤ {goal}: {})",
        if p50 <= goal {
            "met at p50"
        } else {
            "MISSED at p50"
        }
    );
}

/// Provisions a `box` lease and waits for its `running` event.
async fn provision(manager: &LeaseManager) -> Result<lease_core::LeaseId, Error> {
    let mut events = manager.subscribe();
    let lease = manager
        .provision(ProvisionRequest::new("bench", "box").minutes(5))
        .await?;
    loop {
        let event = tokio::time::timeout(Duration::from_secs(120), events.recv()).await??;
        if event.lease.id != lease.id {
            continue;
        }
        match event.kind {
            EventKind::Running => return Ok(lease.id),
            EventKind::Error => {
                return Err(format!("lease failed: {:?}", event.lease.error).into());
            }
            _ => {}
        }
    }
}

/// A raw service like a lease's (same image, command, network, labels),
/// polled every 10 ms until its task runs; its id.
async fn raw_create(docker: &Docker, namespace: &str, network: &str) -> Result<String, Error> {
    let labels: HashMap<String, String> = BTreeMap::from([
        (labels::MANAGED.to_owned(), "true".to_owned()),
        (labels::NAMESPACE.to_owned(), namespace.to_owned()),
    ])
    .into_iter()
    .collect();
    let spec = ServiceSpec {
        labels: Some(labels.clone()),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..ServiceSpecMode::default()
        }),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(IMAGE.to_owned()),
                args: Some(vec!["sleep".into(), "infinity".into()]),
                labels: Some(labels),
                stop_grace_period: Some(1_000_000_000),
                ..TaskSpecContainerSpec::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                ..TaskSpecRestartPolicy::default()
            }),
            placement: Some(TaskSpecPlacement {
                constraints: Some(vec![PLACEMENT.to_owned()]),
                ..TaskSpecPlacement::default()
            }),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some(network.to_owned()),
                ..NetworkAttachmentConfig::default()
            }]),
            ..TaskSpec::default()
        }),
        ..ServiceSpec::default()
    };
    let id = docker
        .create_service(spec, None)
        .await?
        .id
        .ok_or("no service id")?;
    let filters = HashMap::from([("service", vec![id.clone()])]);
    loop {
        let options = ListTasksOptionsBuilder::new().filters(&filters).build();
        let tasks = docker.list_tasks(Some(options)).await?;
        let state = tasks.iter().find_map(|task| task.status.as_ref()?.state);
        match state {
            Some(TaskState::RUNNING) => return Ok(id),
            Some(TaskState::FAILED | TaskState::REJECTED) => {
                return Err(format!("raw task failed: {tasks:?}").into());
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Removes a raw service and polls (every 50 ms, as the runtime does) until
/// its task's container is gone from the manager's engine (both sides run
/// on the manager's node, see `PLACEMENT`).
async fn raw_remove(docker: &Docker, id: &str) -> Result<(), Error> {
    let filters = HashMap::from([("service", vec![id.to_owned()])]);
    let options = ListTasksOptionsBuilder::new().filters(&filters).build();
    let containers: Vec<String> = docker
        .list_tasks(Some(options))
        .await?
        .into_iter()
        .filter_map(|task| task.status?.container_status?.container_id)
        .collect();
    docker.delete_service(id).await?;
    for container in &containers {
        while docker.inspect_container(container, None).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// Containers of `namespace` on the manager's engine.
async fn containers(docker: &Docker, namespace: &str) -> Result<usize, Error> {
    let filters = HashMap::from([("label", vec![format!("{}={namespace}", labels::NAMESPACE)])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    Ok(docker.list_containers(Some(options)).await?.len())
}
