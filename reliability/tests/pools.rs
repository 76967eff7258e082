//! Warm pools under crashes and replicas: the real `lease-server` with
//! `examples/catalog.pool.toml` (alpine keeps a pool of 4) against real
//! Docker, on the durable stores.
//!
//! - `kill -9` during assignment: a burst larger than the pool, the server
//!   killed while it is being answered; after the restart every
//!   acknowledged lease is live with its own container, and THE CHECK
//!   holds.
//! - `kill -9` during refill: killed right after start-up while the pools
//!   fill; after the restart the half-made slots are dropped with their
//!   containers and the pools are full again, and THE CHECK holds.
//! - two replicas racing for a pool of one: exactly one of two
//!   simultaneous provisions (one per server) is running at once; the
//!   other is provisioned the usual way; no container is shared.
//!
//! THE CHECK with pools ([`pool_check`]): the namespace's containers are
//! exactly the live leases' containers (by lease label, or by the
//! container id a lease that took a pooled container holds) plus pool
//! containers that no lease holds, all running, at most the catalog's
//! pools' sizes, no container held twice, no running lease without one.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use lease_reliability::api::{Api, Burst, acknowledged_ids, lease_id, lease_status};
use lease_reliability::check::settle;
use lease_reliability::docker::NamespaceGuard;
use lease_reliability::server::{self, Server, ServerApi};
use lease_reliability::store::{ScenarioStore, StoreKind};
use lease_reliability::{labels, random_namespace};

/// Σ of the pools in `examples/catalog.pool.toml` by offering.
const POOLS: [(&str, usize); 3] = [("alpine", 4), ("ubuntu", 1), ("sandboxed", 2)];

fn catalog() -> std::path::PathBuf {
    lease_testkit::local_catalog().with_file_name("catalog.pool.toml")
}

/// The recovery flags of the crash scenarios: a pending lease nobody
/// provisions is retried after 3 s, the reconciler runs every 2 s, and a
/// slot still filling after 20 s (the provisioning timeout) is dropped.
fn flags() -> [&'static str; 8] {
    [
        "--stuck-pending-after",
        "3s",
        "--reconcile-interval",
        "2s",
        "--provision-timeout",
        "20s",
        "--pool-check-interval",
        "1s",
    ]
}

/// One container of the namespace with the labels the check needs.
#[derive(Clone, Debug)]
struct Seen {
    id: String,
    lease_id: String,
    pool: String,
    state: String,
}

fn containers(namespace: &str) -> Vec<Seen> {
    let format = format!(
        "{{{{.ID}}}}\t{{{{.Label \"{}\"}}}}\t{{{{.Label \"{}\"}}}}\t{{{{.State}}}}",
        labels::LEASE_ID,
        labels::POOL
    );
    let output = Command::new("docker")
        .args(["ps", "-a", "--no-trunc", "--filter"])
        .arg(format!("label={}={namespace}", labels::NAMESPACE))
        .args(["--format", &format])
        .output()
        .expect("docker ps");
    assert!(output.status.success(), "docker ps failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut fields = line.split('\t').map(str::to_owned);
            Seen {
                id: fields.next().unwrap_or_default(),
                lease_id: fields.next().unwrap_or_default(),
                pool: fields.next().unwrap_or_default(),
                state: fields.next().unwrap_or_default(),
            }
        })
        .collect()
}

/// What is wrong with the namespace now (empty: THE CHECK holds); with
/// `full`, pools below their size count as wrong too.
fn problems(api: &Api, namespace: &str, full: bool) -> Vec<String> {
    let Ok(leases) = api.list() else {
        return vec!["cannot list leases".to_owned()];
    };
    let live: HashMap<String, (String, String)> = leases
        .iter()
        .filter_map(|lease| {
            let id = lease_id(lease).ok()?;
            let docker_id = lease["dockerId"].as_str().unwrap_or_default().to_owned();
            Some((id, (lease_status(lease).to_owned(), docker_id)))
        })
        .collect();
    let held: HashMap<&str, &str> = live
        .iter()
        .filter(|(_, (_, docker_id))| !docker_id.is_empty())
        .map(|(id, (_, docker_id))| (docker_id.as_str(), id.as_str()))
        .collect();
    let mut wrong = Vec::new();
    let mut per_lease: HashMap<String, usize> = HashMap::new();
    let mut pooled: HashMap<String, usize> = HashMap::new();
    for container in containers(namespace) {
        if let Some(lease) = held.get(container.id.as_str()) {
            *per_lease.entry((*lease).to_owned()).or_default() += 1;
        } else if !container.lease_id.is_empty() {
            if live.contains_key(&container.lease_id) {
                *per_lease.entry(container.lease_id.clone()).or_default() += 1;
            } else {
                wrong.push(format!("orphan lease container {container:?}"));
            }
        } else if !container.pool.is_empty() {
            if container.state != "running" {
                wrong.push(format!("pool container not running {container:?}"));
            }
            *pooled.entry(container.pool.clone()).or_default() += 1;
        } else {
            wrong.push(format!("unlabelled container {container:?}"));
        }
    }
    for (lease, count) in &per_lease {
        if *count > 1 {
            wrong.push(format!("{lease} has {count} containers"));
        }
    }
    for (id, (status, _)) in &live {
        if status == "running" && !per_lease.contains_key(id) {
            wrong.push(format!("running lease {id} has no container"));
        }
    }
    for (offering, size) in POOLS {
        let have = pooled.get(offering).copied().unwrap_or(0);
        if have > size || (full && have < size) {
            wrong.push(format!("pool {offering}: {have} containers, size {size}"));
        }
    }
    wrong
}

/// THE CHECK with pools, waited for (`limit`): leases settled, Docker
/// agreeing, pools full.
fn pool_check(api: &Api, namespace: &str, limit: Duration) {
    if let Err((error, _)) = settle(api, limit) {
        panic!("THE CHECK ({namespace}): leases did not settle: {error}");
    }
    let deadline = Instant::now() + limit;
    loop {
        let wrong = problems(api, namespace, true);
        if wrong.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "THE CHECK ({namespace}) failed: {wrong:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Deletes every lease, then waits (`limit`) until no lease is live and
/// the namespace holds only pool containers (THE CHECK with pools, full):
/// the "all removable afterwards" half, pools being meant to stay. The
/// namespace guard removes the pools at the end.
fn delete_all_leaving_only_pools(api: &Api, namespace: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let deleted = api.delete_all();
        let live = api.list().map(|leases| leases.len()).unwrap_or(usize::MAX);
        let wrong = problems(api, namespace, true);
        let only_pools = containers(namespace)
            .iter()
            .all(|container| !container.pool.is_empty() && container.lease_id.is_empty());
        if deleted.is_ok() && live == 0 && wrong.is_empty() && only_pools {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{namespace}: after deleting everything: live {live}, {wrong:?}, only pools {only_pools}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn pooled_server(store: &ScenarioStore, namespace: &str) -> Option<Server> {
    let config = store.configure(server::config(namespace).catalog(catalog()).args(flags()));
    Server::start(config)
}

fn kill9_during_assignment(kind: StoreKind, test: &str) {
    let namespace = random_namespace();
    let _guard = NamespaceGuard::new(&namespace);
    let Some(store) = ScenarioStore::start(kind, test) else {
        return;
    };
    let Some(mut server) = pooled_server(&store, &namespace) else {
        return;
    };
    pool_check(&server.api(), &namespace, Duration::from_secs(60));

    let burst = Burst::start(&server.api(), "alpine", 10, 12);
    burst.wait_acknowledged(2, Duration::from_secs(30));
    server.kill9();
    let answers = burst.join();
    let acknowledged = acknowledged_ids(&answers);
    server.restart();
    let api = server.api();
    pool_check(&api, &namespace, Duration::from_secs(90));
    let live: HashSet<String> = api
        .list()
        .expect("list")
        .iter()
        .filter_map(|lease| lease_id(lease).ok())
        .collect();
    for id in &acknowledged {
        assert!(live.contains(id), "acknowledged lease {id} was lost");
        let lease = api.status(id).expect("status").ok().expect("200");
        assert_eq!(lease_status(&lease), "running", "{id}");
    }
    delete_all_leaving_only_pools(&api, &namespace, Duration::from_secs(60));
}

fn kill9_during_refill(kind: StoreKind, test: &str) {
    let namespace = random_namespace();
    let _guard = NamespaceGuard::new(&namespace);
    let Some(store) = ScenarioStore::start(kind, test) else {
        return;
    };
    let Some(mut server) = pooled_server(&store, &namespace) else {
        return;
    };
    // The pools start filling at start-up: kill as soon as the first pool
    // container exists, with more still being made.
    let deadline = Instant::now() + Duration::from_secs(30);
    while containers(&namespace).is_empty() {
        assert!(Instant::now() < deadline, "no pool container within 30 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill9();
    server.restart();
    let api = server.api();
    // Half-made slots are dropped after the provisioning timeout (20 s).
    pool_check(&api, &namespace, Duration::from_secs(90));
    let lease = api
        .provision("alpine", 5)
        .expect("provision")
        .ok()
        .expect("202");
    assert_eq!(lease_status(&lease), "running", "a hit after recovery");
    pool_check(&api, &namespace, Duration::from_secs(60));
    delete_all_leaving_only_pools(&api, &namespace, Duration::from_secs(60));
}

fn replicas_race_for_a_pool_of_one(kind: StoreKind, test: &str) {
    let namespace = random_namespace();
    let _guard = NamespaceGuard::new(&namespace);
    let Some(store) = ScenarioStore::start(kind, test) else {
        return;
    };
    let Some(first) = pooled_server(&store, &namespace) else {
        return;
    };
    let Some(second) = pooled_server(&store, &namespace) else {
        return;
    };
    pool_check(&first.api(), &namespace, Duration::from_secs(60));
    // `ubuntu` has a pool of one: both servers ask at the same moment.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let racers: Vec<_> = [first.api(), second.api()]
        .into_iter()
        .map(|api| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                api.provision("ubuntu", 5)
                    .expect("provision")
                    .ok()
                    .expect("202")
            })
        })
        .collect();
    let leases: Vec<_> = racers
        .into_iter()
        .map(|r| r.join().expect("racer"))
        .collect();
    let at_once = leases
        .iter()
        .filter(|l| lease_status(l) == "running")
        .count();
    assert_eq!(
        at_once, 1,
        "exactly one racer took the pool of one: {leases:?}"
    );
    pool_check(&first.api(), &namespace, Duration::from_secs(60));
    let ids: HashSet<String> = leases
        .iter()
        .map(|lease| {
            let id = lease_id(lease).expect("id");
            let status = first.api().status(&id).expect("status").ok().expect("200");
            status["dockerId"].as_str().expect("container").to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 2, "the racers got distinct containers");
    delete_all_leaving_only_pools(&first.api(), &namespace, Duration::from_secs(60));
}

#[test]
fn pool_kill9_during_assignment_sqlite() {
    kill9_during_assignment(StoreKind::Sqlite, "pool-assign-sqlite");
}

#[test]
fn pool_kill9_during_assignment_redis() {
    kill9_during_assignment(StoreKind::Redis, "pool-assign-redis");
}

#[test]
fn pool_kill9_during_assignment_postgres() {
    kill9_during_assignment(StoreKind::Postgres, "pool-assign-postgres");
}

#[test]
fn pool_kill9_during_refill_sqlite() {
    kill9_during_refill(StoreKind::Sqlite, "pool-refill-sqlite");
}

#[test]
fn pool_kill9_during_refill_redis() {
    kill9_during_refill(StoreKind::Redis, "pool-refill-redis");
}

#[test]
fn pool_kill9_during_refill_postgres() {
    kill9_during_refill(StoreKind::Postgres, "pool-refill-postgres");
}

#[test]
fn pool_replicas_race_for_a_pool_of_one_redis() {
    replicas_race_for_a_pool_of_one(StoreKind::Redis, "pool-race-redis");
}

#[test]
fn pool_replicas_race_for_a_pool_of_one_postgres() {
    replicas_race_for_a_pool_of_one(StoreKind::Postgres, "pool-race-postgres");
}

#[test]
fn pool_replicas_race_for_a_pool_of_one_sqlite() {
    replicas_race_for_a_pool_of_one(StoreKind::Sqlite, "pool-race-sqlite");
}
