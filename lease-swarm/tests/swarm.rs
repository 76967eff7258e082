//! What only Swarm does, on the real swarm: placement the cluster refuses,
//! task states, the cluster-wide listing, removal that waits for the
//! container, routes to nodes, and the namespace networks.

mod common;

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use common::{TestSwarm, catalog, manager, options, run, wait_for, worker};
use lease_core::runtime::{ContainerRuntime, UnitState, labels};
use lease_core::{EventKind, ProvisionRequest, RuntimeError, Status};
use lease_swarm::{NoRouteError, SwarmRuntime};
use lease_testkit::docker::{containers_of, containers_with};
use lease_testkit::swarm::{manager_node, services_of};
use lease_testkit::tls::{Certs, Stunnel, tls_ready};
use tokio::io::AsyncReadExt;

/// A constraint no node of any test swarm has.
const NOWHERE: &str = "node.labels.containerlease-test-nowhere==true";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_constraint_no_node_satisfies_fails_the_lease_with_the_clusters_reason() {
    let Some(test) = TestSwarm::start().await else {
        return;
    };
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(test.runtime.clone());
    let manager = manager(
        &test.namespace,
        runtime,
        catalog(&format!("constraints = ['{NOWHERE}']")),
        |config| config.placement_timeout = Duration::from_secs(4),
    );
    let mut events = manager.subscribe();
    let lease = manager
        .provision(ProvisionRequest::new("alice", "box").minutes(5))
        .await
        .expect("provision");
    let failed = wait_for(
        &mut events,
        &lease.id,
        EventKind::Error,
        Duration::from_secs(60),
    )
    .await
    .lease;
    assert_eq!(failed.status, Status::Error);
    let error = failed.error.unwrap_or_default();
    assert!(
        error.contains("no suitable node") && error.contains("constraints"),
        "the cluster's own reason: {error}"
    );
    // What was created for it is removed again (invariant 4).
    let gone = lease_testkit::wait_for(Duration::from_secs(30), Duration::from_millis(200), || {
        services_of(&test.namespace).is_empty().then_some(())
    });
    assert!(gone.is_some(), "the unplaceable service was removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_states_become_unit_states_with_the_tasks_reason() {
    let Some(test) = TestSwarm::start().await else {
        return;
    };
    let runtime = &test.runtime;
    let running = runtime.create(&test.spec(&["sleep", "600"])).await.unwrap();
    let info = runtime.status(&running).await.unwrap().expect("exists");
    assert_eq!(
        info.state,
        UnitState::Running,
        "create waits for a quick start"
    );
    assert!(
        info.address.is_some(),
        "the container's address on its node"
    );
    assert_eq!(info.limits.map(|limits| limits.pids), Some(64));

    let done = runtime
        .create(&test.spec(&["sh", "-c", "exit 0"]))
        .await
        .unwrap();
    let state = test
        .wait_state(&done, |state| matches!(state, UnitState::Exited { .. }))
        .await;
    assert_eq!(state, UnitState::Exited { code: Some(0) });

    let failing = runtime
        .create(&test.spec(&["sh", "-c", "exit 3"]))
        .await
        .unwrap();
    let state = test
        .wait_state(&failing, |state| matches!(state, UnitState::Failed { .. }))
        .await;
    assert!(
        matches!(&state, UnitState::Failed { reason } if reason.contains("non-zero exit (3)")),
        "{state:?}"
    );

    let mut missing = test.spec(&["sleep", "600"]);
    missing.image = "containerlease-test/missing:nope".into();
    let rejected = runtime.create(&missing).await.unwrap();
    let state = test
        .wait_state(&rejected, |state| matches!(state, UnitState::Failed { .. }))
        .await;
    assert!(
        matches!(&state, UnitState::Failed { reason } if reason.contains("No such image")),
        "{state:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_is_cluster_wide_by_namespace_label_with_task_states() {
    let Some(test) = TestSwarm::start().await else {
        return;
    };
    let Some(other) = TestSwarm::start().await else {
        return;
    };
    let running = test
        .runtime
        .create(&test.spec(&["sleep", "600"]))
        .await
        .unwrap();
    let mut nowhere = test.spec(&["sleep", "600"]);
    nowhere.confinement.placement = vec![NOWHERE.to_owned()];
    let pending = test.runtime.create(&nowhere).await.unwrap();
    let theirs = other
        .runtime
        .create(&other.spec(&["sleep", "600"]))
        .await
        .unwrap();

    let listed = test.runtime.list_managed().await.unwrap();
    let mut ids: Vec<&str> = listed.iter().map(|unit| unit.id.as_str()).collect();
    ids.sort_unstable();
    let mut wanted = vec![running.as_str(), pending.as_str()];
    wanted.sort_unstable();
    assert_eq!(ids, wanted, "exactly this namespace's services");
    let state_of = |id: &str| {
        listed
            .iter()
            .find(|unit| unit.id == id)
            .map(|unit| unit.state.clone())
    };
    assert_eq!(state_of(&running), Some(UnitState::Running));
    assert!(
        matches!(state_of(&pending), Some(UnitState::Pending { reason: Some(reason) }) if reason.contains("no suitable node")),
        "{:?}",
        state_of(&pending)
    );
    for unit in &listed {
        assert_eq!(
            unit.labels.get(labels::MANAGED).map(String::as_str),
            Some("true")
        );
        assert_eq!(unit.labels.get(labels::NAMESPACE), Some(&test.namespace));
    }
    // Another namespace's service is not ours: no status, no removal.
    assert_eq!(test.runtime.status(&theirs).await.unwrap(), None);
    assert!(matches!(
        test.runtime.remove(&theirs).await,
        Err(RuntimeError::NotManaged { .. })
    ));
    assert!(other.runtime.status(&theirs).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_returns_once_the_tasks_container_is_gone() {
    let Some(test) = TestSwarm::start().await else {
        return;
    };
    // On the manager's node, whose engine `docker ps` here lists.
    let mut spec = test.spec(&["sleep", "600"]);
    spec.confinement.placement = vec!["node.role==manager".to_owned()];
    let lease_id = spec.labels[labels::LEASE_ID].clone();
    let unit = test.runtime.create(&spec).await.unwrap();
    assert_eq!(containers_with(labels::LEASE_ID, &lease_id).len(), 1);
    let container = containers_with(labels::LEASE_ID, &lease_id).remove(0);
    let container_labels = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{json .Config.Labels}}", &container])
        .output()
        .expect("docker inspect");
    let container_labels = String::from_utf8_lossy(&container_labels.stdout).into_owned();
    assert!(
        container_labels.contains(&format!("\"{}\":\"{}\"", labels::NAMESPACE, test.namespace))
            && container_labels.contains(&format!("\"{}\":\"true\"", labels::MANAGED)),
        "the container carries our labels too: {container_labels}"
    );

    test.runtime.remove(&unit).await.unwrap();
    assert!(
        containers_with(labels::LEASE_ID, &lease_id).is_empty(),
        "the container is gone when remove returns, not only the service"
    );
    assert!(containers_of(&test.namespace).is_empty());
    assert_eq!(test.runtime.status(&unit).await.unwrap(), None);
    test.runtime.remove(&unit).await.expect("idempotent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_route_is_a_clear_typed_error() {
    let Some(test) = TestSwarm::start_with(options().route_manager_node(false)).await else {
        return;
    };
    // On the manager's node, which has no route now (the worker has one).
    let mut spec = test.spec(&["sleep", "600"]);
    spec.confinement.placement = vec!["node.role==manager".to_owned()];
    let unit = test.runtime.create(&spec).await.unwrap();
    let error = run_error(&test.runtime, &unit).await;
    let no_route = error
        .source()
        .and_then(|source| source.downcast_ref::<NoRouteError>())
        .unwrap_or_else(|| panic!("a NoRouteError: {}", error.chain()));
    assert_eq!(no_route.node_id, manager_node());
    assert!(
        error.chain().contains("--swarm-node-engine"),
        "{}",
        error.chain()
    );

    // Routed by hostname to the same engine, the exec works.
    let hostname = no_route.hostname.clone();
    let routes = format!("{hostname}=unix:///var/run/docker.sock")
        .parse()
        .unwrap();
    let routed = SwarmRuntime::connect(
        &test.namespace,
        options().route_manager_node(false).routes(routes),
    )
    .await
    .unwrap();
    assert_eq!(
        run(&routed, &unit, &["echo", "routed"]).await,
        (0, "routed\n".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_with_certs_reaches_the_node_over_tls() {
    let Some(socket) = tls_ready() else {
        return;
    };
    let Some(test) = TestSwarm::start_with(options().route_manager_node(false)).await else {
        return;
    };
    let certs = Certs::make();
    let stunnel = Stunnel::start(&certs, &socket);
    let mut spec = test.spec(&["sleep", "600"]);
    spec.confinement.placement = vec!["node.role==manager".to_owned()];
    let unit = test.runtime.create(&spec).await.unwrap();
    let route = |dir: &std::path::Path| {
        format!(
            "{}={}?certs={}",
            manager_node(),
            stunnel.host(),
            dir.display()
        )
        .parse()
        .unwrap()
    };

    // The manager's node routed over TLS with the CA's client certificate.
    let routed = SwarmRuntime::connect(
        &test.namespace,
        options()
            .route_manager_node(false)
            .routes(route(&certs.good)),
    )
    .await
    .unwrap();
    assert_eq!(
        run(&routed, &unit, &["echo", "over tls"]).await,
        (0, "over tls\n".to_owned())
    );

    // A client certificate from another CA: the node's engine is refused.
    let rogue = SwarmRuntime::connect(
        &test.namespace,
        options()
            .route_manager_node(false)
            .routes(route(&certs.rogue)),
    )
    .await
    .unwrap();
    let error = run_error(&rogue, &unit).await;
    assert!(
        matches!(&error, RuntimeError::Unavailable { endpoint, .. } if *endpoint == stunnel.host()),
        "{}",
        error.chain()
    );
}

async fn run_error(runtime: &SwarmRuntime, unit: &str) -> RuntimeError {
    let request = lease_core::runtime::ExecRequest {
        command: vec!["true".into()],
        ..Default::default()
    };
    match runtime.exec(unit, request).await {
        Ok(_) => panic!("exec without a route worked"),
        Err(error) => error,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_cannot_reach_each_other_and_the_host_reaches_them() {
    let Some(test) = TestSwarm::start().await else {
        return;
    };
    let serve = [
        "sh",
        "-c",
        "while true; do echo hello | nc -l -p 8080; done",
    ];
    let first = test.runtime.create(&test.spec(&serve)).await.unwrap();
    let second = test.runtime.create(&test.spec(&serve)).await.unwrap();
    let address = test
        .runtime
        .status(&second)
        .await
        .unwrap()
        .and_then(|info| info.address)
        .expect("an address");

    // The host (the server) reaches the lease's port.
    let mut text = String::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut stream = tokio::net::TcpStream::connect((address, 8080)).await?;
        stream.read_to_string(&mut text).await
    })
    .await;
    assert!(matches!(read, Ok(Ok(_))), "{read:?}");
    assert_eq!(text, "hello\n");

    // Another lease does not.
    let probe = format!("nc -w 2 {address} 8080 </dev/null && echo reached || echo blocked");
    let (_, output) = run(&test.runtime, &first, &["sh", "-c", &probe]).await;
    assert_eq!(output.trim(), "blocked", "leases cannot reach each other");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_on_the_second_node_is_reached_through_its_route() {
    let Some((_, hostname)) = worker() else {
        // Best effort: scripts/swarm.sh makes the node only where it can
        // (root, ip netns, dockerd) and only in a swarm it created.
        eprintln!(
            "SKIPPED a_lease_on_the_second_node_is_reached_through_its_route: no second node (LEASE_TEST_SWARM_WORKER unset)"
        );
        return;
    };
    let Some(test) = TestSwarm::start().await else {
        return;
    };
    let mut spec = test.spec(&[
        "sh",
        "-c",
        "echo started on the worker; while true; do echo far | nc -l -p 8080; done",
    ]);
    spec.confinement.placement = vec![format!("node.hostname=={hostname}")];
    let unit = test.runtime.create(&spec).await.unwrap();
    let info = test.runtime.status(&unit).await.unwrap().expect("exists");
    assert_eq!(info.state, UnitState::Running);
    assert!(
        containers_of(&test.namespace).is_empty(),
        "the container runs on the worker's engine, not the manager's"
    );
    // Exec and files go to the worker's engine through the route.
    let (code, output) = run(&test.runtime, &unit, &["hostname"]).await;
    assert_eq!(code, 0);
    assert!(!output.trim().is_empty());
    // The host reaches its address (routed to the node by the operator).
    let address = info.address.expect("an address on the worker's bridge");
    let mut text = String::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut stream = tokio::net::TcpStream::connect((address, 8080)).await?;
        stream.read_to_string(&mut text).await
    })
    .await;
    assert!(matches!(read, Ok(Ok(_))), "{read:?}");
    assert_eq!(text, "far\n");
    // Logs come from the manager's service logs, wherever the task runs.
    let logs = test
        .runtime
        .logs(&unit, lease_core::runtime::LogOptions::default())
        .await
        .unwrap();
    let lines: Vec<_> = futures::TryStreamExt::try_collect(logs).await.unwrap();
    assert!(
        lines
            .iter()
            .any(|line| line.text == "started on the worker"),
        "{lines:?}"
    );
    test.runtime.remove(&unit).await.unwrap();
    assert_eq!(test.runtime.status(&unit).await.unwrap(), None);
}

/// An address outside this host that answers TCP here: the first
/// nameserver of the host's resolv.conf, on port 53, if it does.
async fn outside_address() -> Option<String> {
    let conf = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    let server = conf
        .lines()
        .find_map(|line| line.strip_prefix("nameserver "))?
        .trim()
        .to_owned();
    let reachable = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect((server.as_str(), 53)),
    )
    .await;
    matches!(reachable, Ok(Ok(_))).then_some(server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_lease_reaches_nothing_outside_and_the_host_reaches_it() {
    let Some(test) = TestSwarm::start().await else {
        return;
    };
    // On the manager's node: the egress comparison needs its NAT.
    let on_manager = |mut spec: lease_core::runtime::ContainerSpec| {
        spec.confinement.placement = vec!["node.role==manager".to_owned()];
        spec
    };
    let mut spec = on_manager(test.spec(&[
        "sh",
        "-c",
        "while true; do echo inside | nc -l -p 8080; done",
    ]));
    spec.confinement.network = lease_core::runtime::NetworkMode::Isolated;
    let isolated = test.runtime.create(&spec).await.unwrap();
    let egress = test
        .runtime
        .create(&on_manager(test.spec(&["sleep", "600"])))
        .await
        .unwrap();
    let address = test
        .runtime
        .status(&isolated)
        .await
        .unwrap()
        .and_then(|info| info.address)
        .expect("an address");
    let mut text = String::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut stream = tokio::net::TcpStream::connect((address, 8080)).await?;
        stream.read_to_string(&mut text).await
    })
    .await;
    assert!(matches!(read, Ok(Ok(_))), "{read:?}");
    assert_eq!(text, "inside\n", "the host reaches an isolated lease");

    let Some(outside) = outside_address().await else {
        eprintln!("SKIPPED the outbound half: no outside address answers TCP from this host");
        return;
    };
    let probe = format!("nc -w 3 {outside} 53 </dev/null && echo out || echo blocked");
    let (_, from_egress) = run(&test.runtime, &egress, &["sh", "-c", &probe]).await;
    assert_eq!(from_egress.trim(), "out", "egress leases reach {outside}");
    let (_, from_isolated) = run(&test.runtime, &isolated, &["sh", "-c", &probe]).await;
    assert_eq!(
        from_isolated.trim(),
        "blocked",
        "isolated leases reach nothing outside"
    );
}
