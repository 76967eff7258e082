//! THE CHECK every scenario ends with: the containers labelled with the
//! namespace are exactly those of the leases still live — no orphans
//! (a container whose lease is not live), no duplicates (two containers of
//! one lease), none missing (a `running` lease without its container).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::api::{Api, ApiError, lease_id, lease_status};
use crate::docker::{Container, containers_of};
use crate::figure;

/// What the check found.
#[derive(Clone, Debug, Default)]
pub struct Consistency {
    /// Live leases (the API's active set) by id, with their status.
    pub live: HashMap<String, String>,
    /// Containers of the namespace.
    pub containers: Vec<Container>,
    /// Containers whose lease is not live (or that have no lease label).
    pub orphans: Vec<Container>,
    /// Lease ids with more than one container, and how many.
    pub duplicates: Vec<(String, usize)>,
    /// `running` leases without a container.
    pub missing: Vec<String>,
}

impl Consistency {
    /// No orphans, no duplicates, none missing.
    pub fn is_clean(&self) -> bool {
        self.orphans.is_empty() && self.duplicates.is_empty() && self.missing.is_empty()
    }

    /// Counts by lease status (`running` → 3, …).
    pub fn statuses(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for status in self.live.values() {
            *counts.entry(status.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Prints the counts as figures `<prefix>.check_live`, `…_containers`,
    /// `…_orphans`, `…_duplicates` and `…_missing`.
    pub fn figures(&self, prefix: &str) {
        figure(&format!("{prefix}.check_live"), self.live.len());
        figure(&format!("{prefix}.check_containers"), self.containers.len());
        figure(&format!("{prefix}.check_orphans"), self.orphans.len());
        figure(&format!("{prefix}.check_duplicates"), self.duplicates.len());
        figure(&format!("{prefix}.check_missing"), self.missing.len());
    }
}

impl std::fmt::Display for Consistency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} live lease(s) {:?}, {} container(s); orphans {:?}; duplicates {:?}; missing {:?}",
            self.live.len(),
            self.statuses(),
            self.containers.len(),
            self.orphans,
            self.duplicates,
            self.missing
        )
    }
}

/// One look: the API's live leases, then Docker's containers of `namespace`.
pub fn check_once(api: &Api, namespace: &str) -> Result<Consistency, ApiError> {
    let leases = api.list()?;
    let containers = containers_of(namespace);
    Ok(compare(&leases, containers))
}

/// Compares live leases (lease JSON from `GET /api/containers`) with containers.
pub fn compare(leases: &[Value], containers: Vec<Container>) -> Consistency {
    let live: HashMap<String, String> = leases
        .iter()
        .filter_map(|lease| {
            lease_id(lease)
                .ok()
                .map(|id| (id, lease_status(lease).to_owned()))
        })
        .collect();
    let mut per_lease: HashMap<&str, usize> = HashMap::new();
    let mut orphans = Vec::new();
    for container in &containers {
        if container.lease_id.is_empty() || !live.contains_key(&container.lease_id) {
            orphans.push(container.clone());
        } else {
            *per_lease.entry(container.lease_id.as_str()).or_insert(0) += 1;
        }
    }
    let mut duplicates: Vec<(String, usize)> = per_lease
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| ((*id).to_owned(), *n))
        .collect();
    duplicates.sort();
    let with_container: HashSet<&str> = per_lease.keys().copied().collect();
    let mut missing: Vec<String> = live
        .iter()
        .filter(|(id, status)| *status == "running" && !with_container.contains(id.as_str()))
        .map(|(id, _)| id.clone())
        .collect();
    missing.sort();
    Consistency {
        live,
        containers,
        orphans,
        duplicates,
        missing,
    }
}

/// Waits until no live lease is `pending` or `deleting` (`limit` at most);
/// returns the live leases then, or the last list with an error.
pub fn settle(api: &Api, limit: Duration) -> Result<Vec<Value>, (ApiError, Vec<Value>)> {
    let deadline = Instant::now() + limit;
    let mut last = Vec::new();
    loop {
        match api.list() {
            Ok(leases) => {
                let busy = leases
                    .iter()
                    .any(|l| matches!(lease_status(l), "pending" | "deleting"));
                if !busy {
                    return Ok(leases);
                }
                last = leases;
            }
            Err(error) if Instant::now() >= deadline => return Err((error, last)),
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            let busy: Vec<String> = last
                .iter()
                .filter(|l| matches!(lease_status(l), "pending" | "deleting"))
                .map(|l| format!("{} {}", lease_id(l).unwrap_or_default(), lease_status(l)))
                .collect();
            return Err((
                ApiError(format!("still pending/deleting after {limit:?}: {busy:?}")),
                last,
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// THE CHECK: waits for the leases to settle (no `pending`/`deleting`),
/// then until Docker agrees with them (`limit` in all); panics with what
/// differs if they never agree. Returns the final, clean look.
pub fn assert_consistent(api: &Api, namespace: &str, limit: Duration) -> Consistency {
    let deadline = Instant::now() + limit;
    if let Err((error, _)) = settle(api, limit) {
        panic!("THE CHECK ({namespace}): leases did not settle: {error}");
    }
    loop {
        let look = check_once(api, namespace);
        match look {
            Ok(look) if look.is_clean() => return look,
            Ok(look) if Instant::now() >= deadline => {
                panic!("THE CHECK ({namespace}) failed: {look}")
            }
            Err(error) if Instant::now() >= deadline => {
                panic!("THE CHECK ({namespace}): cannot list leases: {error}")
            }
            _ => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// Deletes every live lease through the API, then waits (`limit`) until the
/// namespace has no container and no live lease; panics otherwise. The
/// "all removable afterwards" half of a scenario.
pub fn delete_all_and_assert_empty(api: &Api, namespace: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let deleted = api.delete_all();
        let leases = api.list().unwrap_or_else(|_| vec![Value::Null]);
        let containers = containers_of(namespace);
        if deleted.is_ok() && leases.is_empty() && containers.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "{namespace}: not empty {limit:?} after deleting everything: delete {deleted:?}; \
                 live {leases:?}; containers {containers:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
