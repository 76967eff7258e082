//! Shared set-up of the tests on the real swarm (`scripts/swarm.sh`).
//!
//! Every test gets its own namespace `test-<random>` and a [`SwarmGuard`]
//! that removes the namespace's services, containers and networks when it
//! is dropped — also when the test panics. Without a swarm manager or the
//! test image a test prints why and returns early; with `CI=true` it fails.
#![allow(dead_code, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use lease_core::runtime::{
    BelongsTo, Confinement, ContainerSpec, ExecRequest, Limits, LogSource, UnitState,
    container_name, labels,
};
use lease_core::testing::runtime_conformance::RuntimeFixture;
use lease_core::{
    Catalog, ContainerRuntime, EventKind, LeaseEvent, LeaseId, LeaseManager, ManagerConfig,
};
use lease_store_memory::MemoryStore;
use lease_swarm::{NodeRoutes, SwarmOptions, SwarmRuntime};
use lease_testkit::swarm::{SwarmGuard, swarm_ready};
use lease_testkit::{IMAGE, skip};
use tokio::sync::broadcast;

/// One test's swarm: its namespace, the runtime and the cleanup guard.
pub struct TestSwarm {
    pub namespace: String,
    pub runtime: SwarmRuntime,
    pub guard: SwarmGuard,
}

/// The options every test runs with: limits without reservations, so that
/// a loaded 2-CPU test machine still places every lease, and the route to
/// the second node when `scripts/swarm.sh` made one (the scheduler may put
/// any lease there).
pub fn options() -> SwarmOptions {
    SwarmOptions::from_env()
        .overcommit(true)
        .routes(worker_routes())
}

/// The second node's engine and hostname (`scripts/swarm.sh`), if any.
pub fn worker() -> Option<(String, String)> {
    let endpoint = std::env::var("LEASE_TEST_SWARM_WORKER").ok()?;
    let hostname = std::env::var("LEASE_TEST_SWARM_WORKER_HOSTNAME").ok()?;
    (!endpoint.is_empty() && !hostname.is_empty()).then_some((endpoint, hostname))
}

/// The route to the second node, if there is one.
pub fn worker_routes() -> NodeRoutes {
    match worker() {
        Some((endpoint, hostname)) => format!("{hostname}={endpoint}")
            .parse()
            .expect("the worker's route"),
        None => NodeRoutes::new(),
    }
}

impl TestSwarm {
    /// Connects to the swarm manager, or skips.
    pub async fn start() -> Option<TestSwarm> {
        TestSwarm::start_with(options()).await
    }

    /// Connects with `options`, or skips.
    pub async fn start_with(options: SwarmOptions) -> Option<TestSwarm> {
        if !swarm_ready() {
            return None;
        }
        let guard = SwarmGuard::random();
        let namespace = guard.namespace().to_owned();
        let runtime = match SwarmRuntime::connect(&namespace, options).await {
            Ok(runtime) => runtime,
            Err(error) => return skip(format!("swarm manager unusable: {}", error.chain())),
        };
        Some(TestSwarm {
            namespace,
            runtime,
            guard,
        })
    }

    /// A spec for a new lease running `command` on the test image.
    pub fn spec(&self, command: &[&str]) -> ContainerSpec {
        spec(command)
    }

    /// Polls the unit's status until `wanted` says yes (up to 60 s).
    pub async fn wait_state(&self, unit: &str, wanted: impl Fn(&UnitState) -> bool) -> UnitState {
        let mut last = None;
        for _ in 0..600 {
            let info = self.runtime.status(unit).await.expect("status");
            if let Some(info) = info {
                if wanted(&info.state) {
                    return info.state;
                }
                last = Some(info.state);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("unit {unit} never reached the wanted state; last {last:?}");
    }

    /// Runs `command` in `unit` through the runtime's exec until it ends:
    /// its exit code and stdout.
    pub async fn run(&self, unit: &str, command: &[&str]) -> (i64, String) {
        run(&self.runtime, unit, command).await
    }
}

/// Runs `command` in `unit` through `runtime`'s exec: exit code and stdout.
pub async fn run(runtime: &dyn ContainerRuntime, unit: &str, command: &[&str]) -> (i64, String) {
    let request = ExecRequest {
        command: command.iter().map(|part| (*part).to_owned()).collect(),
        ..ExecRequest::default()
    };
    let session = runtime.exec(unit, request).await.expect("exec");
    let chunks: Vec<_> = session.output.try_collect().await.expect("exec output");
    let stdout: Vec<u8> = chunks
        .iter()
        .filter(|chunk| chunk.source == LogSource::Stdout)
        .flat_map(|chunk| chunk.bytes.iter().copied())
        .collect();
    for _ in 0..100 {
        if let Some(code) = session.control.exit_code().await.expect("exit code") {
            return (code, String::from_utf8_lossy(&stdout).into_owned());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("exec in {unit} did not finish");
}

/// The conformance suite's fixture: two runtimes of two fresh namespaces
/// on the swarm (each with its [`SwarmGuard`]) and the test image; `None`
/// (printed, a failure under `CI=true`) without a swarm manager.
pub async fn fixture() -> Option<RuntimeFixture<SwarmRuntime>> {
    let first = TestSwarm::start().await?;
    let second = TestSwarm::start().await?;
    Some(
        RuntimeFixture::new(Arc::new(first.runtime), Arc::new(second.runtime), IMAGE)
            .guard(first.guard)
            .guard(second.guard),
    )
}

/// A lease's spec on the test image running `command`, labelled as the
/// engine labels it (the runtime adds the managed and namespace labels).
pub fn spec(command: &[&str]) -> ContainerSpec {
    let lease_id = LeaseId::generate();
    ContainerSpec {
        name: container_name(&lease_id),
        labels: BTreeMap::from([(labels::LEASE_ID.to_owned(), lease_id.to_string())]),
        belongs_to: BelongsTo::Lease(lease_id),
        image: IMAGE.to_owned(),
        command: command.iter().map(|part| (*part).to_owned()).collect(),
        limits: Limits {
            nano_cpus: 250_000_000,
            memory_bytes: 64 << 20,
            pids: 64,
        },
        confinement: Confinement::default(),
    }
}

/// The engine over the memory store and `runtime`, with `catalog`.
pub fn manager(
    namespace: &str,
    runtime: Arc<dyn ContainerRuntime>,
    catalog: Catalog,
    change: impl FnOnce(&mut ManagerConfig),
) -> LeaseManager {
    let mut config = ManagerConfig::with_namespace(namespace);
    change(&mut config);
    LeaseManager::builder(Arc::new(MemoryStore::new()), runtime)
        .catalog(catalog)
        .config(config)
        .build()
        .expect("manager")
}

/// Waits for the event `kind` of lease `id`.
pub async fn wait_for(
    events: &mut broadcast::Receiver<LeaseEvent>,
    id: &LeaseId,
    kind: EventKind,
    limit: Duration,
) -> LeaseEvent {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no {kind:?} event for {id} within {limit:?}"))
            .expect("event stream");
        if &event.lease.id == id && event.kind == kind {
            return event;
        }
    }
}

/// A catalog of the test image with one offering `box` (0.25 CPU, 64 MiB)
/// and the given extra TOML lines.
pub fn catalog(extra: &str) -> Catalog {
    Catalog::from_toml(&format!(
        "[[offering]]\nkey = 'box'\nimage = '{IMAGE}'\nhourly_rate = '0.01'\ncpus = '0.25'\nmemory_mb = 64\npids = 64\n{extra}\n"
    ))
    .expect("test catalog")
}
