//! A lease's unit on Swarm: its service and the service's current task —
//! created, reported, listed cluster-wide and removed, always within the
//! runtime's namespace.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use bollard::models::{Service, Task};
use bollard::query_parameters::{ListServicesOptionsBuilder, ListTasksOptionsBuilder};
use lease_core::RuntimeError;
use lease_core::runtime::{BelongsTo, ContainerInfo, ContainerSpec, Limits, UnitState, labels};

use crate::error::{SwarmError, message_of, status_of};
use crate::network;
use crate::runtime::SwarmRuntime;
use crate::service::{ServiceSetup, check_spec, service_spec};
use crate::task::{Phase, container_id, current, phase};

/// How often a freshly created service's task is looked at while
/// [`SwarmRuntime::create`](lease_core::ContainerRuntime::create) waits for
/// it to run.
const CREATE_POLL: Duration = Duration::from_millis(20);

/// How long `create` waits for the task to run before it returns and
/// leaves the rest of the wait to the engine (a task still pending: no
/// node yet, an image being pulled).
pub(crate) const CREATE_WAIT: Duration = Duration::from_secs(5);

/// How often a removal looks whether the task's container is gone.
const REMOVAL_POLL: Duration = Duration::from_millis(50);

/// Checks a unit reference (service id or name) before it goes into a URL.
pub(crate) fn check_reference(reference: &str) -> Result<(), RuntimeError> {
    if lease_docker::is_engine_reference(reference) {
        Ok(())
    } else {
        Err(RuntimeError::Invalid(format!(
            "`{reference}` is not a service id or name"
        )))
    }
}

/// The labels of a service's spec.
fn service_labels(service: &Service) -> Option<&HashMap<String, String>> {
    service.spec.as_ref()?.labels.as_ref()
}

/// Whether `labels` put a unit in `namespace`.
fn is_ours(labels: Option<&HashMap<String, String>>, namespace: &str) -> bool {
    let label = |key: &str| {
        labels
            .and_then(|labels| labels.get(key))
            .map(String::as_str)
    };
    label(labels::MANAGED) == Some("true") && label(labels::NAMESPACE) == Some(namespace)
}

/// The limits a service's tasks run under, as its spec says.
fn limits_of(service: &Service) -> Option<Limits> {
    let limits = service
        .spec
        .as_ref()?
        .task_template
        .as_ref()?
        .resources
        .as_ref()?
        .limits
        .as_ref()?;
    Some(Limits {
        nano_cpus: limits.nano_cpus?,
        memory_bytes: limits.memory_bytes?,
        pids: limits.pids?,
    })
}

/// The port's unit state of a task phase.
fn unit_state(phase: Phase) -> UnitState {
    match phase {
        Phase::Pending { reason } => UnitState::Pending { reason },
        Phase::Running => UnitState::Running,
        Phase::Exited { code } => UnitState::Exited { code },
        Phase::Failed { reason } => UnitState::Failed { reason },
    }
}

/// Reports a service and its current task.
fn info_of(service: &Service, task: Option<&Task>, address: Option<IpAddr>) -> ContainerInfo {
    let spec = service.spec.as_ref();
    ContainerInfo {
        id: service.id.clone().unwrap_or_default(),
        name: spec.and_then(|spec| spec.name.clone()).unwrap_or_default(),
        state: unit_state(phase(task.and_then(|task| task.status.as_ref()))),
        labels: service_labels(service)
            .map(|labels| labels.clone().into_iter().collect())
            .unwrap_or_default(),
        address,
        limits: limits_of(service),
    }
}

impl SwarmRuntime {
    /// The service `reference` of our namespace: `None` if it does not
    /// exist, [`RuntimeError::NotManaged`] if it is not ours.
    pub(crate) async fn our_service(
        &self,
        reference: &str,
    ) -> Result<Option<Service>, RuntimeError> {
        check_reference(reference)?;
        let service = match self.manager.inspect_service(reference, None).await {
            Ok(service) => service,
            Err(source) if status_of(&source) == Some(404) => return Ok(None),
            Err(source) => {
                return Err(self.fail(SwarmError::InspectService {
                    service: reference.to_owned(),
                    source,
                }));
            }
        };
        if !is_ours(service_labels(&service), &self.namespace) {
            return Err(RuntimeError::NotManaged {
                container: reference.to_owned(),
                namespace: self.namespace.to_string(),
            });
        }
        Ok(Some(service))
    }

    /// The tasks of the services `ids` (at least one: an empty filter
    /// would list every task of the swarm).
    async fn tasks_of(&self, ids: &[String]) -> Result<Vec<Task>, RuntimeError> {
        let filters = HashMap::from([("service", ids.to_vec())]);
        let options = ListTasksOptionsBuilder::new().filters(&filters).build();
        let tasks = self
            .manager
            .list_tasks(Some(options))
            .await
            .map_err(|source| {
                self.fail(SwarmError::ListTasks {
                    service: ids.join(","),
                    source,
                })
            })?;
        // The filter also matches by name and prefix: keep exact ids.
        Ok(tasks
            .into_iter()
            .filter(|task| task.service_id.as_ref().is_some_and(|id| ids.contains(id)))
            .collect())
    }

    /// The id of the swarm network of the spec's mode, set up on first use
    /// (the config network on every known engine, then the swarm network).
    async fn network_for(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let mode = spec.confinement.network;
        let mut networks = self.networks.lock().await;
        if let Some(id) = networks.get(&mode) {
            return Ok(id.clone());
        }
        for (endpoint, docker) in self.all_engines().await? {
            network::ensure_config_network(&docker, &endpoint, &self.namespace, mode)
                .await
                .map_err(|error| error.into_runtime(&endpoint))?;
        }
        let id = network::ensure_swarm_network(&self.manager, &self.namespace, mode)
            .await
            .map_err(|error| self.fail(error))?;
        networks.insert(mode, id.clone());
        Ok(id)
    }

    /// See [`lease_core::ContainerRuntime::create`]: creates the service,
    /// then waits up to [`CREATE_WAIT`] for its task to run.
    pub(crate) async fn create_unit(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        check_spec(&self.namespace, spec)?;
        let network = self.network_for(spec).await?;
        let setup = ServiceSetup {
            namespace: &self.namespace,
            network: &network,
            constraints: &spec.confinement.placement,
            reserve: self.reserve,
        };
        let id = match self
            .manager
            .create_service(service_spec(spec, &setup), None)
            .await
        {
            Ok(created) => created.id.unwrap_or_else(|| spec.name.clone()),
            Err(source) if status_of(&source) == Some(409) => self.adopt(spec).await?,
            Err(source) => {
                if status_of(&source) == Some(404) && message_of(&source).contains("network") {
                    // Removed behind our back: set it up again next time.
                    self.networks.lock().await.clear();
                }
                return Err(self.fail(SwarmError::CreateService {
                    name: spec.name.clone(),
                    belongs_to: spec.belongs_to.to_string(),
                    source,
                }));
            }
        };
        tracing::debug!(belongs_to = %spec.belongs_to, service = %id, "service created");
        self.wait_placed(&id).await?;
        Ok(id)
    }

    /// The spec's name is taken: the id of that service if it is this
    /// lease's (or slot's) in our namespace.
    async fn adopt(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let Some(service) = self.our_service(&spec.name).await? else {
            return Err(RuntimeError::operation(
                "create service",
                format!(
                    "service name {} was in use by a service that is now gone; retry",
                    spec.name
                ),
            ));
        };
        let (key, wanted) = match &spec.belongs_to {
            BelongsTo::Lease(id) => (labels::LEASE_ID, id.to_string()),
            BelongsTo::PoolSlot(slot) => (labels::POOL_SLOT, slot.clone()),
        };
        if service_labels(&service).and_then(|labels| labels.get(key)) != Some(&wanted) {
            return Err(RuntimeError::NotManaged {
                container: spec.name.clone(),
                namespace: self.namespace.to_string(),
            });
        }
        tracing::debug!(belongs_to = %spec.belongs_to, service = ?service.id, "service already existed");
        Ok(service.id.unwrap_or_else(|| spec.name.clone()))
    }

    /// Polls the new service's task until it runs or ends, for at most
    /// [`CREATE_WAIT`]; a task still waiting then is the engine's to wait
    /// for (with its deadline and the cluster's reason).
    async fn wait_placed(&self, id: &str) -> Result<(), RuntimeError> {
        let deadline = tokio::time::Instant::now() + CREATE_WAIT;
        let ids = [id.to_owned()];
        while tokio::time::Instant::now() < deadline {
            let tasks = self.tasks_of(&ids).await?;
            let task_phase = phase(current(&tasks).and_then(|task| task.status.as_ref()));
            match task_phase {
                Phase::Pending {
                    reason: Some(reason),
                } if reason.starts_with("no suitable node") => {
                    return Ok(());
                }
                Phase::Pending { .. } => tokio::time::sleep(CREATE_POLL).await,
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// See [`lease_core::ContainerRuntime::status`].
    pub(crate) async fn unit_status(
        &self,
        reference: &str,
    ) -> Result<Option<ContainerInfo>, RuntimeError> {
        let service = match self.our_service(reference).await {
            Ok(Some(service)) => service,
            Ok(None) | Err(RuntimeError::NotManaged { .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        let id = service.id.clone().unwrap_or_else(|| reference.to_owned());
        let tasks = self.tasks_of(&[id]).await?;
        let task = current(&tasks);
        let mut info = info_of(&service, task, None);
        if let (UnitState::Running, Some(task)) = (&info.state, task) {
            info.address = self.address_of(task).await;
        }
        Ok(Some(info))
    }

    /// A running task's address: its container's, read from its node's
    /// engine; `None` (logged) when that engine cannot be reached or has no
    /// route.
    async fn address_of(&self, task: &Task) -> Option<IpAddr> {
        let (node, container) = (task.node_id.as_deref()?, container_id(task)?);
        let engine = match self.engine_of_node(node).await {
            Ok(engine) => engine,
            Err(error) => {
                tracing::debug!(node, error = %error.chain(), "no address for a task on this node");
                return None;
            }
        };
        match lease_core::ContainerRuntime::status(&engine, container).await {
            Ok(info) => info.and_then(|info| info.address),
            Err(error) => {
                tracing::debug!(node, container, error = %error.chain(), "cannot read a task container's address");
                None
            }
        }
    }

    /// The engine and container id of a unit's running task, for exec and
    /// files.
    pub(crate) async fn running_container(
        &self,
        reference: &str,
    ) -> Result<(lease_docker::DockerRuntime, String), RuntimeError> {
        let Some(service) = self.our_service(reference).await? else {
            return Err(RuntimeError::NotFound {
                container: reference.to_owned(),
            });
        };
        let id = service.id.clone().unwrap_or_else(|| reference.to_owned());
        let tasks = self.tasks_of(&[id]).await?;
        let task = current(&tasks);
        let running = task.filter(|task| phase(task.status.as_ref()) == Phase::Running);
        let Some((task, node, container)) = running
            .and_then(|task| Some((task, task.node_id.clone()?, container_id(task)?.to_owned())))
        else {
            let state = task
                .and_then(|task| task.status.as_ref()?.state)
                .map_or_else(|| "no task".to_owned(), |state| state.to_string());
            return Err(self.fail(SwarmError::NotRunning {
                service: reference.to_owned(),
                state,
            }));
        };
        tracing::trace!(service = reference, task = ?task.id, node = %node, container = %container, "routing to the task's node");
        Ok((self.engine_of_node(&node).await?, container))
    }

    /// See [`lease_core::ContainerRuntime::remove`]: deletes the service,
    /// then waits until its task's container is gone.
    pub(crate) async fn remove_unit(&self, reference: &str) -> Result<(), RuntimeError> {
        let Some(service) = self.our_service(reference).await? else {
            return Ok(());
        };
        let id = service.id.clone().unwrap_or_else(|| reference.to_owned());
        let ids = [id.clone()];
        let tasks = self.tasks_of(&ids).await?;
        match self.manager.delete_service(&id).await {
            Ok(()) => {}
            Err(source) if status_of(&source) == Some(404) => {}
            Err(source) => {
                return Err(self.fail(SwarmError::RemoveService {
                    service: reference.to_owned(),
                    source,
                }));
            }
        }
        for task in &tasks {
            self.wait_container_gone(&id, task).await?;
        }
        tracing::debug!(namespace = %self.namespace, service = %id, "service removed, its container gone");
        Ok(())
    }

    /// Waits until the container of `task` (of the removed service
    /// `service`) is gone from its node, up to the removal timeout. Where
    /// the node has no route, the manager's word is taken: the task is
    /// gone from its listing.
    async fn wait_container_gone(&self, service: &str, task: &Task) -> Result<(), RuntimeError> {
        let (Some(node), Some(container)) = (task.node_id.as_deref(), container_id(task)) else {
            return Ok(());
        };
        let engine = self.engine_of_node(node).await.ok();
        let deadline = tokio::time::Instant::now() + self.removal_timeout;
        loop {
            let gone = match &engine {
                Some(engine) => lease_core::ContainerRuntime::status(engine, container)
                    .await?
                    .is_none(),
                None => self.tasks_of(&[service.to_owned()]).await?.is_empty(),
            };
            if gone {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.fail(SwarmError::ContainerLingers {
                    service: service.to_owned(),
                    container: container.to_owned(),
                    node: node.to_owned(),
                    after: self.removal_timeout,
                }));
            }
            tokio::time::sleep(REMOVAL_POLL).await;
        }
    }

    /// See [`lease_core::ContainerRuntime::list_managed`]: every service of
    /// the namespace in the cluster, with its current task's state.
    pub(crate) async fn list_units(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let filters = HashMap::from([(
            "label",
            vec![
                format!("{}=true", labels::MANAGED),
                format!("{}={}", labels::NAMESPACE, self.namespace),
            ],
        )]);
        let options = ListServicesOptionsBuilder::new().filters(&filters).build();
        let services = self
            .manager
            .list_services(Some(options))
            .await
            .map_err(|source| {
                self.fail(SwarmError::ListServices {
                    namespace: self.namespace.to_string(),
                    source,
                })
            })?;
        let services: Vec<Service> = services
            .into_iter()
            .filter(|service| is_ours(service_labels(service), &self.namespace))
            .collect();
        let ids: Vec<String> = services.iter().filter_map(|s| s.id.clone()).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let tasks = self.tasks_of(&ids).await?;
        Ok(services
            .iter()
            .map(|service| {
                let own: Vec<Task> = tasks
                    .iter()
                    .filter(|task| task.service_id == service.id)
                    .cloned()
                    .collect();
                info_of(service, current(&own), None)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_checked() {
        assert!(check_reference("containerlease-container-abc").is_ok());
        assert!(check_reference("x8t2k").is_ok());
        for bad in ["", "../x", "a/b", "a?b", "-a", "a b"] {
            assert!(check_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_our_namespace_is_ours() {
        let ours = HashMap::from([
            (labels::MANAGED.to_owned(), "true".to_owned()),
            (labels::NAMESPACE.to_owned(), "ns".to_owned()),
        ]);
        assert!(is_ours(Some(&ours), "ns"));
        assert!(!is_ours(Some(&ours), "other"));
        assert!(!is_ours(None, "ns"));
    }
}
