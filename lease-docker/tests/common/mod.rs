//! Shared set-up of the tests that run against the real Docker engine.
//!
//! Every test gets its own namespace `test-<random>` and a
//! [`NamespaceGuard`] that removes every container carrying that namespace
//! label (and any extra container registered with it) when it is dropped —
//! also when the test panics.
//!
//! Without a reachable engine or without the local test image
//! (`scripts/test-images.sh`), a test prints why and returns early; with
//! `CI=true` it fails instead (`lease_testkit::skip`).
#![allow(dead_code, missing_docs)]

use std::collections::{BTreeMap, HashMap};

use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;
use futures::TryStreamExt;
use lease_core::runtime::{
    Confinement, ContainerSpec, ExecHandle, ExecRequest, Limits, LogSource, container_name, labels,
};
use lease_core::{
    Catalog, Clock, ContainerRuntime, EventKind, LeaseEvent, LeaseId, LeaseManager, ManagerConfig,
};
use lease_docker::DockerRuntime;
use lease_store_memory::MemoryStore;
use lease_testkit::docker::NamespaceGuard;
use lease_testkit::{IMAGE, random_namespace, skip};
use tokio::sync::broadcast;

/// A raw bollard client on the same engine, for checks from outside the
/// runtime (`docker inspect`) and for containers the runtime must not touch.
pub async fn raw_docker() -> Result<Docker, String> {
    let docker = Docker::connect_with_defaults().map_err(|error| error.to_string())?;
    docker
        .negotiate_version()
        .await
        .map_err(|error| error.to_string())
}

/// One test's view of Docker: its namespace, the runtime, a raw client and
/// the cleanup guard.
pub struct TestDocker {
    pub namespace: String,
    pub runtime: DockerRuntime,
    pub raw: Docker,
    pub guard: NamespaceGuard,
}

impl TestDocker {
    /// Connects and checks the test image, or skips.
    pub async fn start() -> Option<TestDocker> {
        let namespace = random_namespace();
        let runtime = match DockerRuntime::connect(&namespace).await {
            Ok(runtime) => runtime,
            Err(error) => return skip(format!("engine unreachable: {}", error.chain())),
        };
        let raw = match raw_docker().await {
            Ok(raw) => raw,
            Err(error) => return skip(format!("engine unreachable: {error}")),
        };
        if raw.inspect_image(IMAGE).await.is_err() {
            return skip(format!(
                "image {IMAGE} is missing: run scripts/test-images.sh"
            ));
        }
        let guard = NamespaceGuard::new(&namespace);
        Some(TestDocker {
            namespace,
            runtime,
            raw,
            guard,
        })
    }

    /// A lease's spec running `command` on the test image.
    pub fn spec(&self, command: &[&str]) -> ContainerSpec {
        spec(command)
    }
}

/// What a command run with [`TestDocker::run`] did.
#[derive(Debug)]
pub struct Ran {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

impl TestDocker {
    /// Runs `command` in `container` (through the runtime's exec) until it
    /// ends; its exit code and output.
    pub async fn run(&self, container: &str, command: &[&str]) -> Ran {
        let request = ExecRequest {
            command: command.iter().map(|part| (*part).to_owned()).collect(),
            ..ExecRequest::default()
        };
        let session = self.runtime.exec(container, request).await.expect("exec");
        let chunks: Vec<_> = session.output.try_collect().await.expect("exec output");
        let text = |source: LogSource| {
            let bytes: Vec<u8> = chunks
                .iter()
                .filter(|chunk| chunk.source == source)
                .flat_map(|chunk| chunk.bytes.iter().copied())
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        Ran {
            code: exit_code(&session.control).await,
            stdout: text(LogSource::Stdout),
            stderr: text(LogSource::Stderr),
        }
    }
}

/// Waits (up to 5 s) for an exec's exit code.
pub async fn exit_code(control: &ExecHandle) -> i64 {
    for _ in 0..100 {
        if let Some(code) = control.exit_code().await.expect("exec exit code") {
            return code;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("exec {control:?} did not finish");
}

/// A lease's spec, labelled as the engine labels it (the runtime adds the
/// managed and namespace labels).
pub fn spec(command: &[&str]) -> ContainerSpec {
    let lease_id = LeaseId::generate();
    let now = chrono::Utc::now();
    let labels = BTreeMap::from([
        (labels::LEASE_ID.to_owned(), lease_id.to_string()),
        (labels::OWNER.to_owned(), "alice".to_owned()),
        (labels::CREATED_AT.to_owned(), now.to_rfc3339()),
        (
            labels::EXPIRES_AT.to_owned(),
            (now + chrono::Duration::minutes(5)).to_rfc3339(),
        ),
        (labels::IMAGE_TYPE.to_owned(), "alpine".to_owned()),
    ]);
    ContainerSpec {
        name: container_name(&lease_id),
        belongs_to: lease_core::runtime::BelongsTo::Lease(lease_id),
        image: IMAGE.to_owned(),
        command: command.iter().map(|part| (*part).to_owned()).collect(),
        labels,
        limits: Limits {
            nano_cpus: 500_000_000,
            memory_bytes: 64 << 20,
            pids: 64,
        },
        confinement: Confinement::default(),
    }
}

/// The labelled containers of `namespace` as the raw client sees them (all states).
pub async fn raw_list(docker: &Docker, namespace: &str) -> Vec<String> {
    let filters = HashMap::from([("label", vec![format!("{}={namespace}", labels::NAMESPACE)])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(options))
        .await
        .expect("list containers")
        .into_iter()
        .filter_map(|container| container.id)
        .collect()
}

/// Whether a container (id or name) exists, from the raw client.
pub async fn raw_exists(docker: &Docker, container: &str) -> bool {
    match docker.inspect_container(container, None).await {
        Ok(_) => true,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => false,
        Err(error) => panic!("inspect {container}: {error}"),
    }
}

/// The tests' catalog: the built-in offerings on the local test image
/// (the same as `examples/catalog.local.toml`, which `tests/catalog.rs`
/// checks; kept here so edits to the example cannot change these tests).
pub fn local_catalog() -> Catalog {
    let mut offerings: Vec<_> = Catalog::default().offerings().cloned().collect();
    for offering in &mut offerings {
        offering.image = IMAGE.to_owned();
    }
    Catalog::new(offerings).expect("catalog")
}

/// A manager over a fresh memory store and `runtime`, in `namespace`, on
/// the offline catalog, with `clock`; `tune` adjusts the settings.
pub fn manager(
    namespace: &str,
    runtime: Arc<dyn ContainerRuntime>,
    clock: Arc<dyn Clock>,
    tune: impl FnOnce(&mut ManagerConfig),
) -> LeaseManager {
    let mut config = ManagerConfig::with_namespace(namespace);
    tune(&mut config);
    LeaseManager::builder(Arc::new(MemoryStore::new()), runtime)
        .catalog(local_catalog())
        .config(config)
        .clock(clock)
        .build()
        .expect("manager")
}

/// Waits for the event `kind` of `lease`, skipping others.
pub async fn wait_for(
    events: &mut broadcast::Receiver<LeaseEvent>,
    lease: &LeaseId,
    kind: EventKind,
    within: Duration,
) -> LeaseEvent {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(event)) if event.kind == kind && &event.lease.id == lease => return event,
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) => panic!("event channel closed"),
            Err(_) => panic!("no {kind:?} event for {lease} within {within:?}"),
        }
    }
}
