//! Docker Swarm seen directly, through the `docker` CLI: whether the engine
//! is a swarm manager (`scripts/swarm.sh` makes it one), the services of a
//! test namespace, and [`SwarmGuard`], which removes them, their
//! containers and their networks. Everything filters on the managed label
//! and a namespace of the test's own (or, for the swarm networks, which
//! cannot carry labels, on names holding that namespace).

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::docker::{containers_of, networks_of, remove_containers, remove_networks};
use crate::labels;

/// Whether Docker and the test image are there ([`crate::docker::docker_ready`])
/// and the engine is a swarm manager; otherwise the current test is
/// skipped with the reason (or fails under `CI=true`).
pub fn swarm_ready() -> bool {
    if !crate::docker::docker_ready() {
        return false;
    }
    let manager = output(Command::new("docker").args([
        "info",
        "--format",
        "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
    ]))
    .unwrap_or_default();
    if manager.trim() != "active true" {
        crate::skip_or_fail(format!(
            "the Docker engine is not a swarm manager (swarm state and manager: `{}`; run `eval \"$(scripts/swarm.sh start)\"`)",
            manager.trim()
        ));
        return false;
    }
    true
}

/// The id of the manager's own node.
///
/// # Panics
///
/// If `docker info` cannot be run.
pub fn manager_node() -> String {
    output(Command::new("docker").args(["info", "--format", "{{.Swarm.NodeID}}"]))
        .expect("docker info")
        .trim()
        .to_owned()
}

/// Ids of the services of `namespace` (managed and carrying its label).
///
/// # Panics
///
/// If `docker service ls` cannot be run.
pub fn services_of(namespace: &str) -> Vec<String> {
    try_services_of(namespace).unwrap_or_else(|error| panic!("{error}"))
}

fn try_services_of(namespace: &str) -> Result<Vec<String>, String> {
    let listing = output(
        Command::new("docker")
            .args(["service", "ls", "-q"])
            .args(["--filter", &format!("label={}=true", labels::MANAGED)])
            .args([
                "--filter",
                &format!("label={}={namespace}", labels::NAMESPACE),
            ]),
    )?;
    Ok(listing.split_whitespace().map(str::to_owned).collect())
}

/// Names of the swarm networks of `namespace`: `containerlease-<ns>-swarm-…`
/// (a network made from a config network cannot carry labels; the name
/// holds the test's own random namespace).
fn swarm_networks_of(namespace: &str) -> Vec<String> {
    let prefix = format!("containerlease-{namespace}-swarm-");
    output(Command::new("docker").args([
        "network",
        "ls",
        "--filter",
        "scope=swarm",
        "--format",
        "{{.Name}}",
    ]))
    .unwrap_or_default()
    .split_whitespace()
    .filter(|name| name.starts_with(&prefix))
    .map(str::to_owned)
    .collect()
}

/// Removes every service of its namespace, waits for their containers to
/// go (removing any that stay), then removes the namespace's swarm and
/// config networks, when dropped — panics included. Create it first in a
/// test, so that it drops last.
#[derive(Debug)]
pub struct SwarmGuard {
    namespace: String,
}

impl SwarmGuard {
    /// Guards `namespace`.
    ///
    /// # Panics
    ///
    /// If `namespace` does not start with `test-`.
    pub fn new(namespace: &str) -> SwarmGuard {
        assert!(
            namespace.starts_with("test-"),
            "test namespaces start with `test-`: {namespace}"
        );
        SwarmGuard {
            namespace: namespace.to_owned(),
        }
    }

    /// Guards a fresh [`crate::random_namespace`].
    pub fn random() -> SwarmGuard {
        SwarmGuard::new(&crate::random_namespace())
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Removes what is left; never panics.
    fn sweep(&self) {
        let services = try_services_of(&self.namespace).unwrap_or_else(|error| {
            eprintln!(
                "SwarmGuard: cannot list the services of {}: {error}",
                self.namespace
            );
            Vec::new()
        });
        if !services.is_empty() {
            let _ = quiet(
                Command::new("docker")
                    .args(["service", "rm"])
                    .args(&services),
            );
            if !std::thread::panicking() {
                eprintln!(
                    "SwarmGuard: removed {} service(s) of {} left by the test",
                    services.len(),
                    self.namespace
                );
            }
        }
        // The swarm stops and removes the tasks' containers on its own.
        let gone = crate::wait_for(Duration::from_secs(30), Duration::from_millis(200), || {
            containers_of(&self.namespace).is_empty().then_some(())
        });
        if gone.is_none() {
            remove_containers(&containers_of(&self.namespace));
        }
        // The swarm networks first: their config networks are in use until
        // the node has dropped its instance of them.
        remove_networks(&swarm_networks_of(&self.namespace));
        let _ = crate::wait_for(Duration::from_secs(15), Duration::from_millis(300), || {
            remove_networks(&swarm_networks_of(&self.namespace));
            remove_networks(&networks_of(&self.namespace));
            (swarm_networks_of(&self.namespace).is_empty()
                && networks_of(&self.namespace).is_empty())
            .then_some(())
        });
        // The runtime also made config networks on the second node's engine.
        if let Some(worker) = worker_engine() {
            let _ = crate::wait_for(Duration::from_secs(15), Duration::from_millis(300), || {
                let left = labelled_networks_on(&worker, &self.namespace);
                if !left.is_empty() {
                    let _ = quiet(
                        Command::new("docker")
                            .args(["-H", &worker, "network", "rm"])
                            .args(&left),
                    );
                }
                labelled_networks_on(&worker, &self.namespace)
                    .is_empty()
                    .then_some(())
            });
        }
    }
}

impl Drop for SwarmGuard {
    fn drop(&mut self) {
        self.sweep();
    }
}

/// The second node's engine (`LEASE_TEST_SWARM_WORKER`, set by
/// `scripts/swarm.sh` when it made one).
pub fn worker_engine() -> Option<String> {
    std::env::var("LEASE_TEST_SWARM_WORKER")
        .ok()
        .filter(|endpoint| !endpoint.is_empty())
}

/// Ids of the networks of `namespace` (managed and carrying its label) on
/// the engine at `host`.
fn labelled_networks_on(host: &str, namespace: &str) -> Vec<String> {
    output(
        Command::new("docker")
            .args(["-H", host, "network", "ls", "-q"])
            .args(["--filter", &format!("label={}=true", labels::MANAGED)])
            .args([
                "--filter",
                &format!("label={}={namespace}", labels::NAMESPACE),
            ]),
    )
    .unwrap_or_default()
    .split_whitespace()
    .map(str::to_owned)
    .collect()
}

fn output(command: &mut Command) -> Result<String, String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run docker: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "docker failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn quiet(command: &mut Command) -> bool {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
