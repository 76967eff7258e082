//! A lease cannot reach past itself, on the real engine: leases of one
//! namespace network (egress, or isolated: an internal one) cannot open
//! connections to each other nor to leases of the other network, while the
//! host reaches their ports; a `none` lease has no network; a read-only lease writes only to its sized scratch; a
//! non-root lease runs as its user; a disk limit is refused where the
//! storage driver cannot enforce it. And the namespace networks themselves:
//! ours only, created once under a race, removed with the namespace.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::models::NetworkCreateRequest;
use common::{TestDocker, raw_list, wait_for};
use lease_core::runtime::{Confinement, ContainerSpec, NetworkMode, labels};
use lease_core::{
    Catalog, ContainerRuntime, EventKind, LeaseManager, ManagerConfig, ProvisionRequest,
    RuntimeError,
};
use lease_docker::DockerRuntime;
use lease_docker::network::{ICC_OPTION, network_name};
use lease_store_memory::MemoryStore;
use lease_testkit::docker::networks_of;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const KEEP_ALIVE: &[&str] = &["sleep", "infinity"];

/// Port lease A's web server listens on.
const PORT: u16 = 8080;

/// What lease A serves.
const GREETING: &str = "hello-from-lease-a";

/// Lease A: a web server on [`PORT`] serving [`GREETING`].
fn serve_greeting() -> Vec<String> {
    let script = format!(
        "mkdir -p /tmp/www && echo {GREETING} > /tmp/www/index.html && exec httpd -f -p {PORT} -h /tmp/www"
    );
    vec!["sh".into(), "-c".into(), script]
}

/// A spec of this test's namespace running `command`, confined as given.
fn confined(test: &TestDocker, command: &[&str], confinement: Confinement) -> ContainerSpec {
    ContainerSpec {
        confinement,
        ..test.spec(command)
    }
}

fn on_network(network: NetworkMode) -> Confinement {
    Confinement {
        network,
        ..Confinement::default()
    }
}

/// The container's address on `network` (by name), from the raw client.
async fn address_on(test: &TestDocker, container: &str, network: &str) -> String {
    let inspected = test
        .raw
        .inspect_container(container, None)
        .await
        .expect("inspect");
    let networks = inspected
        .network_settings
        .and_then(|settings| settings.networks)
        .unwrap_or_default();
    let endpoint = networks
        .get(network)
        .unwrap_or_else(|| panic!("{container} is not on {network}: {networks:?}"));
    let address = endpoint.ip_address.clone().unwrap_or_default();
    assert!(
        !address.is_empty(),
        "{container} has no address on {network}"
    );
    address
}

/// GET / from this process (the host, where the server runs): the body, or
/// `None` if the connection or the answer failed within 2 s.
async fn fetch_from_host(address: &str) -> Option<String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((address, PORT)).await.ok()?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.ok()?;
        Some(answer)
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .ok()
        .flatten()
}

/// GET / of `address`:[`PORT`] from inside `container` (busybox nc, 3 s
/// timeout): exit code and output.
async fn fetch_from_lease(test: &TestDocker, container: &str, address: &str) -> common::Ran {
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {address} {PORT}");
    test.run(container, &["sh", "-c", &script]).await
}

/// Waits (up to 10 s) until the host fetches [`GREETING`] from `address`.
async fn host_fetches_greeting(address: &str) {
    let mut answer = None;
    for _ in 0..50 {
        answer = fetch_from_host(address).await;
        if answer
            .as_deref()
            .is_some_and(|body| body.contains(GREETING))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the host cannot fetch from the lease at {address}: {answer:?}");
}

/// `container` cannot fetch from `address`.
async fn cannot_fetch(test: &TestDocker, container: &str, address: &str) {
    let ran = fetch_from_lease(test, container, address).await;
    assert_ne!(ran.code, 0, "{container} reached {address}: {ran:?}");
    assert!(
        !ran.stdout.contains(GREETING),
        "{container} fetched from {address}: {ran:?}"
    );
}

/// Two leases on the namespace network of `mode`: the host fetches from A,
/// A fetches from itself, B cannot fetch from A.
async fn neighbours_cannot_reach_each_other(mode: NetworkMode) {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let serve = serve_greeting();
    let serve: Vec<&str> = serve.iter().map(String::as_str).collect();
    let a = test
        .runtime
        .create(&confined(&test, &serve, on_network(mode)))
        .await
        .expect("lease A");
    let b = test
        .runtime
        .create(&confined(&test, KEEP_ALIVE, on_network(mode)))
        .await
        .expect("lease B");

    // One network of ours for the mode, inter-container traffic off.
    let name = network_name(&test.namespace, mode).expect("a network mode");
    let network = test
        .raw
        .inspect_network(&name, None)
        .await
        .expect("the namespace network exists");
    let network_labels = network.labels.clone().unwrap_or_default();
    assert_eq!(
        network_labels.get(labels::MANAGED).map(String::as_str),
        Some("true")
    );
    assert_eq!(network_labels.get(labels::NAMESPACE), Some(&test.namespace));
    assert_eq!(
        network
            .options
            .unwrap_or_default()
            .get(ICC_OPTION)
            .map(String::as_str),
        Some("false")
    );
    assert_eq!(network.internal, Some(mode == NetworkMode::Isolated));
    assert_eq!(networks_of(&test.namespace).len(), 1);

    let address_a = address_on(&test, &a, &name).await;
    address_on(&test, &b, &name).await;

    // The host (the server, for port access) reaches A's port.
    host_fetches_greeting(&address_a).await;
    // The probe works from inside a lease: A fetches from itself.
    let itself = fetch_from_lease(&test, &a, "127.0.0.1").await;
    assert!(itself.stdout.contains(GREETING), "A from A: {itself:?}");
    // B cannot open a connection to A.
    cannot_fetch(&test, &b, &address_a).await;

    // Nor to a lease on the namespace's other network.
    let other_mode = match mode {
        NetworkMode::Egress => NetworkMode::Isolated,
        _ => NetworkMode::Egress,
    };
    let c = test
        .runtime
        .create(&confined(&test, &serve, on_network(other_mode)))
        .await
        .expect("lease C");
    let other_network = network_name(&test.namespace, other_mode).expect("a network mode");
    let address_c = address_on(&test, &c, &other_network).await;
    host_fetches_greeting(&address_c).await;
    cannot_fetch(&test, &b, &address_c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_leases_cannot_reach_each_other_but_the_host_reaches_them() {
    neighbours_cannot_reach_each_other(NetworkMode::Egress).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leases_cannot_reach_each_other_but_the_host_reaches_them() {
    neighbours_cannot_reach_each_other(NetworkMode::Isolated).await;
}

#[tokio::test]
async fn a_lease_without_a_network_has_only_loopback() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let id = test
        .runtime
        .create(&confined(&test, KEEP_ALIVE, on_network(NetworkMode::None)))
        .await
        .expect("create");
    let interfaces = test.run(&id, &["ls", "/sys/class/net"]).await;
    assert_eq!(interfaces.code, 0, "{interfaces:?}");
    assert_eq!(
        interfaces.stdout.split_whitespace().collect::<Vec<_>>(),
        ["lo"]
    );
    let inspected = test.raw.inspect_container(&id, None).await.unwrap();
    assert_eq!(
        inspected
            .host_config
            .and_then(|h| h.network_mode)
            .as_deref(),
        Some("none")
    );
    assert!(
        networks_of(&test.namespace).is_empty(),
        "no network is made for `none`"
    );
}

#[tokio::test]
async fn a_read_only_lease_writes_only_to_its_sized_scratch() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let confinement = Confinement {
        read_only_root: true,
        scratch_bytes: Some(4 << 20),
        ..Confinement::default()
    };
    let id = test
        .runtime
        .create(&confined(&test, KEEP_ALIVE, confinement))
        .await
        .expect("create");

    // Root (with its capabilities) cannot write anywhere on the root.
    for target in [
        "/probe",
        "/etc/probe",
        "/root/probe",
        "/home/probe",
        "/var/tmp/probe",
        "/bin/probe",
    ] {
        let ran = test.run(&id, &["touch", target]).await;
        assert_ne!(ran.code, 0, "{target} was writable: {ran:?}");
        assert!(
            ran.stderr.contains("Read-only file system"),
            "{target}: {ran:?}"
        );
    }
    // The scratch is writable, up to its size and no further.
    let scratch = test
        .run(
            &id,
            &["sh", "-c", "echo scratch-ok > /tmp/probe && cat /tmp/probe"],
        )
        .await;
    assert_eq!(scratch.stdout.trim(), "scratch-ok", "{scratch:?}");
    let within = test
        .run(
            &id,
            &["dd", "if=/dev/zero", "of=/tmp/first", "bs=1M", "count=3"],
        )
        .await;
    assert_eq!(within.code, 0, "3 MiB of a 4 MiB scratch: {within:?}");
    let beyond = test
        .run(
            &id,
            &["dd", "if=/dev/zero", "of=/tmp/second", "bs=1M", "count=3"],
        )
        .await;
    assert_ne!(beyond.code, 0, "6 MiB fit in a 4 MiB scratch: {beyond:?}");
    assert!(
        beyond.stderr.contains("No space left on device"),
        "{beyond:?}"
    );
    let size = test.run(&id, &["df", "-k", "/tmp"]).await;
    let total_kib = size
        .stdout
        .lines()
        .nth(1)
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<u64>().ok());
    assert_eq!(total_kib, Some(4096), "{size:?}");

    let inspected = test.raw.inspect_container(&id, None).await.unwrap();
    let host = inspected.host_config.expect("host config");
    assert_eq!(host.readonly_rootfs, Some(true));
    assert!(host.tmpfs.unwrap_or_default().contains_key("/tmp"));
}

#[tokio::test]
async fn a_non_root_lease_runs_its_command_and_execs_as_that_user() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let confinement = Confinement {
        user: Some("1000:1001".into()),
        ..Confinement::default()
    };
    let id = test
        .runtime
        .create(&confined(&test, KEEP_ALIVE, confinement))
        .await
        .expect("create");
    let ids = test.run(&id, &["sh", "-c", "id -u; id -g"]).await;
    assert_eq!(
        ids.stdout.split_whitespace().collect::<Vec<_>>(),
        ["1000", "1001"],
        "{ids:?}"
    );
    // The container's first process (init, then the keep-alive command) too.
    let status = test.run(&id, &["cat", "/proc/1/status"]).await;
    let field = |name: &str| {
        status
            .stdout
            .lines()
            .find(|line| line.starts_with(name))
            .map(|line| line.split_whitespace().skip(1).collect::<Vec<_>>())
    };
    assert_eq!(field("Uid:"), Some(vec!["1000"; 4]), "{status:?}");
    assert_eq!(field("Gid:"), Some(vec!["1001"; 4]), "{status:?}");
    let root_only = test.run(&id, &["touch", "/root/probe"]).await;
    assert_ne!(root_only.code, 0, "{root_only:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandboxed_offering_of_the_example_catalog_is_confined_end_to_end() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/catalog.local.toml"
    );
    let catalog = Catalog::from_path(path).expect("examples/catalog.local.toml");
    test.runtime
        .check_catalog(&catalog)
        .await
        .expect("this engine can run the example catalog");
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(test.runtime.clone());
    let manager = LeaseManager::builder(Arc::new(MemoryStore::new()), runtime)
        .catalog(catalog)
        .config(ManagerConfig::with_namespace(&test.namespace))
        .build()
        .expect("manager");
    let mut events = manager.subscribe();
    let shutdown = CancellationToken::new();
    let background = manager.start(shutdown.clone());

    let lease = manager
        .provision(ProvisionRequest::new("alice", "sandboxed").minutes(10))
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

    let inspected = test.raw.inspect_container(&container, None).await.unwrap();
    let host = inspected.host_config.clone().expect("host config");
    assert_eq!(host.readonly_rootfs, Some(true));
    assert_eq!(
        host.tmpfs
            .unwrap_or_default()
            .get("/tmp")
            .map(|options| options.contains(&format!("size={}", 8 << 20))),
        Some(true)
    );
    assert_eq!(
        inspected.config.and_then(|c| c.user).as_deref(),
        Some("1000:1000")
    );
    let name = network_name(&test.namespace, NetworkMode::Isolated).unwrap();
    address_on(&test, &container, &name).await;
    let ids = test.run(&container, &["id", "-u"]).await;
    assert_eq!(ids.stdout.trim(), "1000");
    let root = test.run(&container, &["touch", "/probe"]).await;
    assert!(root.stderr.contains("Read-only file system"), "{root:?}");

    shutdown.cancel();
    background.join().await;
}

#[tokio::test]
async fn a_disk_limit_is_enforced_or_refused_never_ignored() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let driver = test
        .runtime
        .storage_driver()
        .await
        .expect("storage driver")
        .clone();
    let info = test.raw.info().await.expect("docker info");
    assert_eq!(Some(&driver.driver), info.driver.as_ref());
    let catalog = Catalog::from_toml(
        "[[offering]]\nkey='disky'\nimage='x'\nhourly_rate='0.01'\ncpus=1\nmemory_mb=64\ndisk_mb=256\n",
    )
    .unwrap();
    let spec = confined(
        &test,
        KEEP_ALIVE,
        Confinement {
            disk_bytes: Some(256 << 20),
            ..Confinement::default()
        },
    );
    let created = test.runtime.create(&spec).await;
    if driver.supports_disk_limit() {
        eprintln!("storage driver {driver}: disk limits are enforced");
        test.runtime
            .check_catalog(&catalog)
            .await
            .expect("a driver that can enforce disk_mb");
        match created {
            Ok(id) => {
                let host = test.raw.inspect_container(&id, None).await.unwrap();
                let size = host
                    .host_config
                    .and_then(|h| h.storage_opt)
                    .and_then(|options| options.get("size").cloned());
                assert_eq!(size, Some((256u64 << 20).to_string()));
            }
            // overlay2 on xfs without pquota: the engine itself refuses.
            Err(error) => assert!(error.chain().contains("pquota"), "{}", error.chain()),
        }
    } else {
        eprintln!("storage driver {driver}: disk limits are refused");
        let refused = test.runtime.check_catalog(&catalog).await;
        let Err(RuntimeError::Invalid(message)) = refused else {
            panic!("check_catalog must refuse disk_mb on {driver}: {refused:?}");
        };
        assert!(
            message.contains("disky") && message.contains(&driver.driver),
            "{message}"
        );
        assert!(
            matches!(created, Err(RuntimeError::Invalid(_))),
            "{created:?}"
        );
        assert!(
            raw_list(&test.raw, &test.namespace).await.is_empty(),
            "nothing is created without its disk limit"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_racing_to_create_the_network_all_land_on_ours_and_the_guard_removes_it() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let other = DockerRuntime::connect(&test.namespace)
        .await
        .expect("a second connection");
    let namespace = test.namespace.clone();
    let creations = (0..6).map(|index| {
        let runtime = if index % 2 == 0 {
            test.runtime.clone()
        } else {
            other.clone()
        };
        let spec = test.spec(KEEP_ALIVE);
        tokio::spawn(async move { runtime.create(&spec).await })
    });
    let mut containers = Vec::new();
    for creation in futures::future::join_all(creations).await {
        containers.push(creation.expect("task").expect("create"));
    }
    let name = network_name(&namespace, NetworkMode::Egress).unwrap();
    // Each runtime waits for a racing creation to show and removes its own
    // if it lost; a creation slower than that wait can still leave a second
    // network of ours on an engine that allows duplicate names (each
    // runtime then keeps one; both isolate, and later leases join the
    // earliest).
    let ours = networks_of(&namespace);
    assert!(
        (1..=2).contains(&ours.len()),
        "one network per racing runtime at most: {ours:?}"
    );
    for container in &containers {
        address_on(&test, container, &name).await;
    }
    let later = test.runtime.create(&test.spec(KEEP_ALIVE)).await.unwrap();
    let inspected = test.raw.inspect_container(&later, None).await.unwrap();
    let joined = inspected
        .network_settings
        .and_then(|settings| settings.networks)
        .and_then(|networks| networks.get(&name).cloned())
        .and_then(|endpoint| endpoint.network_id);
    assert!(
        joined.as_ref().is_some_and(|id| ours.contains(id)),
        "{joined:?} in {ours:?}"
    );

    drop(test);
    assert!(
        networks_of(&namespace).is_empty(),
        "NamespaceGuard removes the namespace's networks"
    );
    assert!(lease_testkit::docker::containers_of(&namespace).is_empty());
}

#[tokio::test]
async fn a_same_named_network_that_is_not_ours_is_refused_and_left_alone() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let name = network_name(&test.namespace, NetworkMode::Egress).unwrap();
    // Someone else's: our namespace label, but not managed by us.
    let foreign = test
        .raw
        .create_network(NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            labels: Some(HashMap::from([(
                labels::NAMESPACE.to_owned(),
                test.namespace.clone(),
            )])),
            ..NetworkCreateRequest::default()
        })
        .await
        .expect("create a foreign network");
    test.guard.also_remove_network(&foreign.id);

    let refused = test.runtime.create(&test.spec(KEEP_ALIVE)).await;
    let error = refused.expect_err("a foreign network must not be used");
    assert!(
        error.chain().contains("not managed by namespace"),
        "{}",
        error.chain()
    );
    assert!(raw_list(&test.raw, &test.namespace).await.is_empty());
    let still = test
        .raw
        .inspect_network(&foreign.id, None)
        .await
        .expect("the foreign network is still there");
    assert_eq!(
        still.labels.unwrap_or_default().get(labels::MANAGED),
        None,
        "and unchanged"
    );
}

#[tokio::test]
async fn with_two_networks_of_ours_of_one_name_leases_join_the_earliest_by_id() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let name = network_name(&test.namespace, NetworkMode::Egress).unwrap();
    let ours = || NetworkCreateRequest {
        name: name.clone(),
        driver: Some("bridge".into()),
        internal: Some(false),
        options: Some(HashMap::from([(ICC_OPTION.to_owned(), "false".to_owned())])),
        labels: Some(HashMap::from([
            (labels::MANAGED.to_owned(), "true".to_owned()),
            (labels::NAMESPACE.to_owned(), test.namespace.clone()),
        ])),
        ..NetworkCreateRequest::default()
    };
    let first = test
        .raw
        .create_network(ours())
        .await
        .expect("first network");
    // Engines before API 1.44 make a second network of the same name (a
    // race between replicas can); later ones refuse it.
    let second = test.raw.create_network(ours()).await;
    match &second {
        Ok(second) => eprintln!("this engine made a duplicate network {}", second.id),
        Err(error) => eprintln!("this engine refused a duplicate network: {error}"),
    }
    let id = test
        .runtime
        .create(&test.spec(KEEP_ALIVE))
        .await
        .expect("a lease starts even while the name is ambiguous");
    let inspected = test.raw.inspect_container(&id, None).await.unwrap();
    let joined = inspected
        .network_settings
        .and_then(|settings| settings.networks)
        .and_then(|networks| networks.get(&name).cloned())
        .and_then(|endpoint| endpoint.network_id);
    assert_eq!(joined, Some(first.id.clone()), "the earliest created");
    if second.is_ok() {
        assert_eq!(
            networks_of(&test.namespace).len(),
            2,
            "the runtime removes none it did not just create"
        );
    }
}
