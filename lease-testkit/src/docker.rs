//! Docker seen directly, through the `docker` CLI and never through the
//! product: whether the engine and the test image are there, the containers
//! and networks of a test namespace, and their removal. Everything filters
//! on `io.containerlease.managed=true` and a namespace label of the test's
//! own, so nothing that is not ours is ever touched.

use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::labels;

/// Whether the Docker engine answers and the test image ([`crate::IMAGE`])
/// is there; otherwise the current test is skipped with the reason (or
/// fails under `CI=true`, see [`crate::skip`]).
pub fn docker_ready() -> bool {
    let engine = quiet(Command::new("docker").args(["version", "--format", "{{.Server.Version}}"]));
    if !engine {
        crate::skip_or_fail("the Docker engine is not reachable");
        return false;
    }
    if !quiet(Command::new("docker").args(["image", "inspect", crate::IMAGE])) {
        crate::skip_or_fail(format!(
            "{} is missing (run scripts/test-images.sh)",
            crate::IMAGE
        ));
        return false;
    }
    true
}

/// Ids of every container (any state) carrying `label=value`.
///
/// # Panics
///
/// If `docker ps` cannot be run.
pub fn containers_with(label: &str, value: &str) -> Vec<String> {
    ps(&[&format!("label={label}={value}")], "{{.ID}}")
}

/// Ids of every container (any state) of `namespace`.
pub fn containers_of(namespace: &str) -> Vec<String> {
    containers_with(labels::NAMESPACE, namespace)
}

/// Names of every container (any state) of `namespace`.
pub fn container_names_of(namespace: &str) -> Vec<String> {
    ps(
        &[&format!("label={}={namespace}", labels::NAMESPACE)],
        "{{.Names}}",
    )
}

/// Ids of the containers of lease `lease_id` in `namespace`.
pub fn containers_of_lease(namespace: &str, lease_id: &str) -> Vec<String> {
    ps(
        &[
            &format!("label={}={namespace}", labels::NAMESPACE),
            &format!("label={}={lease_id}", labels::LEASE_ID),
        ],
        "{{.ID}}",
    )
}

/// `docker rm -f -v` of `containers` (ids or names); missing ones are fine.
pub fn remove_containers(containers: &[String]) {
    if containers.is_empty() {
        return;
    }
    let _ = quiet(
        Command::new("docker")
            .args(["rm", "-f", "-v"])
            .args(containers),
    );
}

/// Ids of the networks of `namespace` (managed and carrying its label):
/// the ones lease-docker creates for its leases.
///
/// # Panics
///
/// If `docker network ls` cannot be run.
pub fn networks_of(namespace: &str) -> Vec<String> {
    try_networks_of(namespace).unwrap_or_else(|error| panic!("{error}"))
}

/// `docker network rm` of `networks` (ids); missing ones are fine. A
/// network that still has containers stays (the engine refuses).
pub fn remove_networks(networks: &[String]) {
    if networks.is_empty() {
        return;
    }
    let _ = quiet(
        Command::new("docker")
            .args(["network", "rm"])
            .args(networks),
    );
}

/// Removes every container of `namespace`, then its networks; returns how
/// many containers there were.
pub fn remove_namespace(namespace: &str) -> usize {
    let ids = containers_of(namespace);
    remove_containers(&ids);
    remove_networks(&networks_of(namespace));
    ids.len()
}

/// Removes every container of its namespace (and any registered with
/// [`NamespaceGuard::also_remove`]), then the namespace's networks, when
/// dropped, panics included. Create it first in a test, before any server,
/// so that it drops last.
#[derive(Debug)]
pub struct NamespaceGuard {
    namespace: String,
    extra: Mutex<Vec<String>>,
    extra_networks: Mutex<Vec<String>>,
}

impl NamespaceGuard {
    /// Guards `namespace`.
    ///
    /// # Panics
    ///
    /// If `namespace` does not start with `test-` (scripts/test.sh checks
    /// that no `test-` container is left; anything else is not a test's).
    pub fn new(namespace: &str) -> NamespaceGuard {
        assert!(
            namespace.starts_with("test-"),
            "test namespaces start with `test-`: {namespace}"
        );
        NamespaceGuard {
            namespace: namespace.to_owned(),
            extra: Mutex::new(Vec::new()),
            extra_networks: Mutex::new(Vec::new()),
        }
    }

    /// Guards a fresh [`crate::random_namespace`].
    pub fn random() -> NamespaceGuard {
        NamespaceGuard::new(&crate::random_namespace())
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Also removes this container (id or name) on drop: one the test made
    /// outside the namespace on purpose.
    pub fn also_remove(&self, container: &str) {
        self.extra
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(container.to_owned());
    }

    /// Also removes this network (id or name) on drop, after the
    /// containers: one the test made without our labels on purpose.
    pub fn also_remove_network(&self, network: &str) {
        self.extra_networks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(network.to_owned());
    }
}

/// How long a guard waits before its second sweep: a server killed just
/// before may still have a create (container or network) in flight at the
/// engine, which lands after the first sweep listed the namespace (a
/// bridge network's iptables set-up takes over a second on a loaded host).
const LATE_CREATE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

impl NamespaceGuard {
    /// Removes the namespace's containers, then its networks (and the
    /// extra ones registered). Never panics: it runs during a test's panic
    /// too.
    fn sweep(&self) {
        let extra = std::mem::take(
            &mut *self
                .extra
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        remove_containers(&extra);
        let filter = format!("label={}={}", labels::NAMESPACE, self.namespace);
        let ids = match try_ps(&[&filter], "{{.ID}}") {
            Ok(ids) => ids,
            Err(error) => {
                eprintln!("NamespaceGuard: cannot list {}: {error}", self.namespace);
                Vec::new()
            }
        };
        remove_containers(&ids);
        if !ids.is_empty() && !std::thread::panicking() {
            eprintln!(
                "NamespaceGuard: removed {} container(s) of {} left by the test",
                ids.len(),
                self.namespace
            );
        }
        // After the containers: the engine keeps a network that has any.
        let extra_networks = std::mem::take(
            &mut *self
                .extra_networks
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        remove_networks(&extra_networks);
        let networks = match try_networks_of(&self.namespace) {
            Ok(networks) => networks,
            Err(error) => {
                eprintln!(
                    "NamespaceGuard: cannot list the networks of {}: {error}",
                    self.namespace
                );
                Vec::new()
            }
        };
        remove_networks(&networks);
    }
}

impl Drop for NamespaceGuard {
    fn drop(&mut self) {
        self.sweep();
        std::thread::sleep(LATE_CREATE_GRACE);
        self.sweep();
    }
}

fn try_networks_of(namespace: &str) -> Result<Vec<String>, String> {
    let output = Command::new("docker")
        .args(["network", "ls", "--no-trunc", "--format", "{{.ID}}"])
        .args(["--filter", &format!("label={}=true", labels::MANAGED)])
        .args([
            "--filter",
            &format!("label={}={namespace}", labels::NAMESPACE),
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run docker network ls: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "docker network ls failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect())
}

fn ps(filters: &[&str], format: &str) -> Vec<String> {
    try_ps(filters, format).unwrap_or_else(|error| panic!("{error}"))
}

fn try_ps(filters: &[&str], format: &str) -> Result<Vec<String>, String> {
    let mut command = Command::new("docker");
    command.args(["ps", "-a", "--no-trunc"]);
    for filter in filters {
        command.args(["--filter", filter]);
    }
    let output = command
        .args(["--format", format])
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run docker ps: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "docker ps failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect())
}

fn quiet(command: &mut Command) -> bool {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
