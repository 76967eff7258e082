//! A lease's container: create and start it from the core's spec, inspect,
//! list and remove it — always within one namespace.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummary,
    EndpointSettings, NetworkSettings,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use lease_core::RuntimeError;
use lease_core::config::validate_namespace;
use lease_core::runtime::{BelongsTo, ContainerInfo, ContainerSpec, Limits, UnitState, labels};

use crate::error::{DockerError, message_of, status_of};
use crate::hardening;
use crate::runtime::DockerRuntime;

/// How long a removal that another caller already started is waited for.
const REMOVAL_IN_PROGRESS_WAIT: Duration = Duration::from_secs(10);

/// Bytes in a MiB.
const MIB: i64 = 1024 * 1024;

/// Checks a namespace argument.
pub(crate) fn check_namespace_arg(namespace: &str) -> Result<(), RuntimeError> {
    validate_namespace(namespace).map_err(|error| RuntimeError::Invalid(error.to_string()))
}

/// Whether `reference` is an id or name the engine's API takes in a URL
/// path (containers and Swarm services alike): 1-255 ASCII letters, digits,
/// `_`, `.` and `-`, starting with a letter or digit.
///
/// ```
/// assert!(lease_docker::is_engine_reference("containerlease-abc_1.2"));
/// assert!(!lease_docker::is_engine_reference("../containers"));
/// ```
pub fn is_engine_reference(reference: &str) -> bool {
    !reference.is_empty()
        && reference.len() <= 255
        && reference
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Checks a container reference (id or name) before it goes into a URL.
pub(crate) fn check_reference(container: &str) -> Result<(), RuntimeError> {
    if is_engine_reference(container) {
        Ok(())
    } else {
        Err(RuntimeError::Invalid(format!(
            "`{container}` is not a container id or name"
        )))
    }
}

/// `Ok` when `labels` put the container in `namespace` (managed and with
/// our namespace label), [`RuntimeError::NotManaged`] otherwise.
pub(crate) fn check_ours(
    labels: Option<&HashMap<String, String>>,
    namespace: &str,
    container: &str,
) -> Result<(), RuntimeError> {
    let label = |key: &str| {
        labels
            .and_then(|labels| labels.get(key))
            .map(String::as_str)
    };
    if label(labels::MANAGED) == Some("true") && label(labels::NAMESPACE) == Some(namespace) {
        Ok(())
    } else {
        Err(RuntimeError::NotManaged {
            container: container.to_owned(),
            namespace: namespace.to_owned(),
        })
    }
}

/// Refuses a spec the engine should never have built; else returns every
/// label of its container in `namespace` (the managed and namespace
/// labels added).
fn check_spec(
    spec: &ContainerSpec,
    namespace: &str,
) -> Result<BTreeMap<String, String>, RuntimeError> {
    check_namespace_arg(namespace)?;
    let all_labels = spec.unit_labels(namespace)?;
    let invalid = |problem: String| {
        Err(RuntimeError::Invalid(format!(
            "container spec of {}: {problem}",
            spec.belongs_to
        )))
    };
    let label = |key: &str| all_labels.get(key).map(String::as_str);
    match &spec.belongs_to {
        BelongsTo::Lease(id) => {
            if label(labels::LEASE_ID) != Some(id.as_str()) {
                return invalid(format!("label {} must be the lease id", labels::LEASE_ID));
            }
        }
        BelongsTo::PoolSlot(slot) => {
            if label(labels::POOL_SLOT) != Some(slot.as_str()) || label(labels::LEASE_ID).is_some()
            {
                return invalid(format!(
                    "label {} must be the slot id, and no lease id label",
                    labels::POOL_SLOT
                ));
            }
        }
    }
    let name = spec.belongs_to.container_name();
    if spec.name != name {
        return invalid(format!("name must be `{name}`"));
    }
    if spec.image.trim().is_empty() || spec.command.is_empty() {
        return invalid("image and command must not be empty".to_owned());
    }
    let limits = spec.limits;
    if limits.nano_cpus <= 0 || limits.memory_bytes <= 0 || limits.pids <= 0 {
        return invalid("every limit must be above zero".to_owned());
    }
    let confinement = &spec.confinement;
    if confinement.read_only_root != confinement.scratch_bytes.is_some() {
        return invalid("a read-only root needs a scratch size, and only it has one".to_owned());
    }
    let positive = |size: Option<i64>| size.is_none_or(|bytes| bytes > 0);
    if !positive(confinement.scratch_bytes) || !positive(confinement.disk_bytes) {
        return invalid("scratch and disk sizes must be above zero".to_owned());
    }
    if let Some(user) = &confinement.user
        && !is_numeric_user(user)
    {
        return invalid(format!(
            "user `{user}` must be a numeric non-root `uid` or `uid:gid`"
        ));
    }
    Ok(all_labels)
}

/// A numeric `uid` or `uid:gid` whose uid is not 0 (the catalog refuses
/// anything else; checked again before it reaches the engine).
fn is_numeric_user(user: &str) -> bool {
    let numeric =
        |id: &str| !id.is_empty() && id.len() <= 10 && id.bytes().all(|b| b.is_ascii_digit());
    let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
    numeric(uid) && numeric(gid) && uid.bytes().any(|b| b != b'0')
}

/// The create request of a spec: image, keep-alive command, user, `labels`
/// (all of them, see [`check_spec`]), and the hardened host configuration
/// with the spec's limits and confinement, on `network_mode` (`none` or a
/// network id).
pub(crate) fn create_body(
    spec: &ContainerSpec,
    labels: BTreeMap<String, String>,
    network_mode: String,
) -> ContainerCreateBody {
    ContainerCreateBody {
        networking_config: crate::network::networking_config(&network_mode),
        image: Some(spec.image.clone()),
        cmd: Some(spec.command.clone()),
        user: spec.confinement.user.clone(),
        labels: Some(labels.into_iter().collect()),
        tty: Some(false),
        open_stdin: Some(false),
        attach_stdin: Some(false),
        attach_stdout: Some(false),
        attach_stderr: Some(false),
        host_config: Some(hardening::host_config(
            &spec.limits,
            &spec.confinement,
            network_mode,
        )),
        ..ContainerCreateBody::default()
    }
}

impl DockerRuntime {
    /// See [`lease_core::ContainerRuntime::create`]: creates and starts the
    /// container, so it runs when this returns.
    pub(crate) async fn create_impl(
        &self,
        namespace: &str,
        spec: &ContainerSpec,
    ) -> Result<String, RuntimeError> {
        let all_labels = check_spec(spec, namespace)?;
        if let Some(bytes) = spec.confinement.disk_bytes {
            let offering = spec
                .labels
                .get(labels::IMAGE_TYPE)
                .map_or("(unnamed)", String::as_str);
            self.check_disk_limit(offering, bytes / MIB).await?;
        }
        let network_mode = self
            .network_for(namespace, spec.confinement.network)
            .await?;
        // The semaphore is never closed, so this always gets a permit.
        let _permit = self.creations.acquire().await.ok();
        let lease = spec.belongs_to.to_string();
        let options = CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        let created = match self
            .docker
            .create_container(Some(options), create_body(spec, all_labels, network_mode))
            .await
        {
            Ok(created) => created,
            Err(source) if status_of(&source) == Some(409) => {
                return self.adopt_existing(namespace, spec).await;
            }
            // 404 is a missing image, unless the network went away meanwhile
            // (`network … not found`): that is an operation failure.
            Err(source)
                if status_of(&source) == Some(404) && !message_of(&source).contains("network") =>
            {
                let error = DockerError::CreateContainer {
                    lease,
                    name: spec.name.clone(),
                    source,
                };
                return Err(RuntimeError::ImageUnavailable {
                    image: spec.image.clone(),
                    source: Box::new(error),
                });
            }
            Err(source) => {
                return Err(self.fail(DockerError::CreateContainer {
                    lease,
                    name: spec.name.clone(),
                    source,
                }));
            }
        };
        for warning in created
            .warnings
            .iter()
            .filter(|warning| !warning.is_empty())
        {
            tracing::warn!(belongs_to = %spec.belongs_to, container = %created.id, warning, "engine warning on create");
        }
        if let Err(source) = self.docker.start_container(&created.id, None).await {
            let error = self.fail(DockerError::StartContainer {
                lease,
                container: created.id.clone(),
                source,
            });
            // Do not leave a dead container behind; if this fails too, the
            // reaper or the reconciler removes it by its labels.
            if let Err(cleanup) = self.remove_impl(namespace, &created.id).await {
                tracing::warn!(belongs_to = %spec.belongs_to, error = %cleanup.chain(), "cannot remove a container that failed to start");
            }
            return Err(error);
        }
        tracing::debug!(belongs_to = %spec.belongs_to, container = %created.id, "container started");
        Ok(created.id)
    }

    /// The spec's name is taken: if it is this lease's container in our
    /// namespace, start it if needed and return its id.
    async fn adopt_existing(
        &self,
        namespace: &str,
        spec: &ContainerSpec,
    ) -> Result<String, RuntimeError> {
        let Some(existing) = self.inspect_raw(&spec.name).await? else {
            // Removed between the create and this inspect: the caller retries.
            return Err(RuntimeError::operation(
                "create container",
                format!(
                    "container name {} was in use by a container that is now gone; retry",
                    spec.name
                ),
            ));
        };
        let container_labels = existing
            .config
            .as_ref()
            .and_then(|config| config.labels.as_ref());
        check_ours(container_labels, namespace, &spec.name)?;
        let (key, wanted) = match &spec.belongs_to {
            BelongsTo::Lease(id) => (labels::LEASE_ID, id.to_string()),
            BelongsTo::PoolSlot(slot) => (labels::POOL_SLOT, slot.clone()),
        };
        if container_labels.and_then(|labels| labels.get(key)) != Some(&wanted) {
            return Err(RuntimeError::NotManaged {
                container: spec.name.clone(),
                namespace: namespace.to_owned(),
            });
        }
        let id = existing.id.clone().unwrap_or_else(|| spec.name.clone());
        let running = existing
            .state
            .as_ref()
            .and_then(|state| state.running)
            .unwrap_or(false);
        if !running {
            self.docker
                .start_container(&id, None)
                .await
                .map_err(|source| {
                    self.fail(DockerError::StartContainer {
                        lease: spec.belongs_to.to_string(),
                        container: id.clone(),
                        source,
                    })
                })?;
        }
        tracing::debug!(belongs_to = %spec.belongs_to, container = %id, was_running = running, "container already existed");
        Ok(id)
    }

    /// Inspects a container; `None` if it does not exist.
    pub(crate) async fn inspect_raw(
        &self,
        container: &str,
    ) -> Result<Option<ContainerInspectResponse>, RuntimeError> {
        check_reference(container)?;
        match self.docker.inspect_container(container, None).await {
            Ok(response) => Ok(Some(response)),
            Err(source) if status_of(&source) == Some(404) => Ok(None),
            Err(source) => Err(self.fail(DockerError::InspectContainer {
                container: container.to_owned(),
                source,
            })),
        }
    }

    /// Inspects a container of `namespace`: `NotFound` if it does not
    /// exist, `NotManaged` if it is not ours. Returns its id.
    pub(crate) async fn require_ours(
        &self,
        namespace: &str,
        container: &str,
    ) -> Result<String, RuntimeError> {
        check_namespace_arg(namespace)?;
        let Some(response) = self.inspect_raw(container).await? else {
            return Err(RuntimeError::NotFound {
                container: container.to_owned(),
            });
        };
        check_ours(
            response
                .config
                .as_ref()
                .and_then(|config| config.labels.as_ref()),
            namespace,
            container,
        )?;
        Ok(response.id.unwrap_or_else(|| container.to_owned()))
    }

    /// See [`lease_core::ContainerRuntime::status`]: another namespace's
    /// container is `None`, as a missing one.
    pub(crate) async fn status_impl(
        &self,
        namespace: &str,
        container: &str,
    ) -> Result<Option<ContainerInfo>, RuntimeError> {
        check_namespace_arg(namespace)?;
        let Some(response) = self.inspect_raw(container).await? else {
            return Ok(None);
        };
        let labels = response
            .config
            .as_ref()
            .and_then(|config| config.labels.as_ref());
        if check_ours(labels, namespace, container).is_err() {
            return Ok(None);
        }
        Ok(Some(info_from_inspect(response, container)))
    }

    /// See [`lease_core::ContainerRuntime::remove`].
    pub(crate) async fn remove_impl(
        &self,
        namespace: &str,
        container: &str,
    ) -> Result<(), RuntimeError> {
        check_namespace_arg(namespace)?;
        let Some(response) = self.inspect_raw(container).await? else {
            return Ok(());
        };
        check_ours(
            response
                .config
                .as_ref()
                .and_then(|config| config.labels.as_ref()),
            namespace,
            container,
        )?;
        // Remove by id: the name could be taken by another container by now.
        let id = response.id.unwrap_or_else(|| container.to_owned());
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(&id, Some(options)).await {
            Ok(()) => {}
            Err(source) if status_of(&source) == Some(404) => {}
            Err(source)
                if status_of(&source) == Some(409)
                    && message_of(&source).contains("already in progress") =>
            {
                self.wait_until_gone(&id).await?;
            }
            Err(source) => {
                return Err(self.fail(DockerError::RemoveContainer {
                    container: id,
                    source,
                }));
            }
        }
        tracing::debug!(namespace, container = %id, "container removed");
        Ok(())
    }

    /// Another removal of `id` is in progress: waits (bounded) until the
    /// container is gone, removing it again if that removal failed and left
    /// it dead. Counts as removed either way, as the port asks; a container
    /// still there after the wait is left to the reconciler.
    async fn wait_until_gone(&self, id: &str) -> Result<(), RuntimeError> {
        let deadline = tokio::time::Instant::now() + REMOVAL_IN_PROGRESS_WAIT;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let Some(response) = self.inspect_raw(id).await? else {
                return Ok(());
            };
            let dead = response.state.and_then(|state| state.status)
                == Some(ContainerStateStatusEnum::DEAD);
            if dead {
                let options = RemoveContainerOptionsBuilder::new()
                    .force(true)
                    .v(true)
                    .build();
                match self.docker.remove_container(id, Some(options)).await {
                    Ok(()) => return Ok(()),
                    Err(source) if status_of(&source) == Some(404) => return Ok(()),
                    Err(_) => {}
                }
            }
        }
        tracing::warn!(
            container = id,
            "another removal of this container did not finish in time"
        );
        Ok(())
    }

    /// See [`lease_core::ContainerRuntime::list_managed`].
    pub(crate) async fn list_managed_impl(
        &self,
        namespace: &str,
    ) -> Result<Vec<ContainerInfo>, RuntimeError> {
        check_namespace_arg(namespace)?;
        let filters = HashMap::from([(
            "label",
            vec![
                format!("{}=true", labels::MANAGED),
                format!("{}={namespace}", labels::NAMESPACE),
            ],
        )]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|source| {
                self.fail(DockerError::ListContainers {
                    namespace: namespace.to_owned(),
                    source,
                })
            })?;
        Ok(summaries
            .into_iter()
            .filter(|summary| check_ours(summary.labels.as_ref(), namespace, "").is_ok())
            .filter_map(info_from_summary)
            .collect())
    }
}

fn sorted(labels: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    labels.unwrap_or_default().into_iter().collect()
}

/// Reports an inspected container.
pub(crate) fn info_from_inspect(response: ContainerInspectResponse, asked: &str) -> ContainerInfo {
    let state = response.state.unwrap_or_default();
    let status = state.status.unwrap_or(ContainerStateStatusEnum::EMPTY);
    let running = state.running.unwrap_or(false);
    let unit_state = unit_state(status, running, state.exit_code, state.error.as_deref());
    let limits = response.host_config.as_ref().and_then(limits_of);
    let labels = sorted(response.config.and_then(|config| config.labels));
    let address = if running {
        address_of(response.network_settings.as_ref(), &labels)
    } else {
        None
    };
    ContainerInfo {
        id: response.id.unwrap_or_else(|| asked.to_owned()),
        name: response
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        state: unit_state,
        labels,
        address,
        limits,
    }
}

/// The port's state of a container: `running` (and `paused`,
/// `restarting`: it has run) is running, `created` is pending (Docker's
/// create starts at once, so only a failed start leaves it there),
/// `exited` and `removing` are exited, `dead` is failed.
fn unit_state(
    status: ContainerStateStatusEnum,
    running: bool,
    exit_code: Option<i64>,
    error: Option<&str>,
) -> UnitState {
    match status {
        ContainerStateStatusEnum::DEAD => UnitState::Failed {
            reason: error
                .filter(|e| !e.is_empty())
                .unwrap_or("the container is dead")
                .to_owned(),
        },
        ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::REMOVING => {
            UnitState::Exited { code: exit_code }
        }
        ContainerStateStatusEnum::CREATED => UnitState::Pending {
            reason: Some(
                error
                    .filter(|e| !e.is_empty())
                    .unwrap_or("created, not started")
                    .to_owned(),
            ),
        },
        _ if running => UnitState::Running,
        _ => UnitState::Pending { reason: None },
    }
}

/// The limits an inspected container runs under, when the engine reports
/// all three.
fn limits_of(host: &bollard::models::HostConfig) -> Option<Limits> {
    Some(Limits {
        nano_cpus: host.nano_cpus?,
        memory_bytes: host.memory?,
        pids: host.pids_limit?,
    })
}

/// The container's address on its namespace's network
/// (`containerlease-<namespace>-…`), else on any network it is on.
fn address_of(
    settings: Option<&NetworkSettings>,
    labels: &BTreeMap<String, String>,
) -> Option<IpAddr> {
    let networks = settings?.networks.as_ref()?;
    let ours = labels
        .get(labels::NAMESPACE)
        .map(|namespace| format!("containerlease-{namespace}-"));
    let address = |endpoint: &EndpointSettings| {
        endpoint
            .ip_address
            .as_deref()
            .filter(|ip| !ip.is_empty())
            .and_then(|ip| ip.parse::<IpAddr>().ok())
    };
    let mut sorted: Vec<_> = networks.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let on_ours = sorted
        .iter()
        .filter(|(name, _)| ours.as_ref().is_some_and(|prefix| name.starts_with(prefix)))
        .find_map(|(_, endpoint)| address(endpoint));
    on_ours.or_else(|| sorted.iter().find_map(|(_, endpoint)| address(endpoint)))
}

/// Reports a listed container; the exit code comes from the status text
/// (`Exited (137) 5 seconds ago`).
fn info_from_summary(summary: ContainerSummary) -> Option<ContainerInfo> {
    let word = summary
        .state
        .map(|state| state.to_string())
        .unwrap_or_default();
    let exit_code = summary.status.as_deref().and_then(parse_exit_code);
    let status = word
        .parse::<ContainerStateStatusEnum>()
        .unwrap_or(ContainerStateStatusEnum::EMPTY);
    let state = unit_state(status, word == "running", exit_code, None);
    Some(ContainerInfo {
        id: summary.id?,
        name: summary
            .names
            .and_then(|names| names.into_iter().next())
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        state,
        labels: sorted(summary.labels),
        // A listing does not say; `status` does.
        address: None,
        limits: None,
    })
}

fn parse_exit_code(status: &str) -> Option<i64> {
    let rest = status.strip_prefix("Exited (")?;
    rest.split_once(')')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use lease_core::LeaseId;
    use lease_core::runtime::{Confinement, Limits};

    use super::*;

    const NS: &str = "test-unit";

    fn spec() -> ContainerSpec {
        let lease_id = LeaseId::generate();
        let labels = BTreeMap::from([(labels::LEASE_ID.to_owned(), lease_id.to_string())]);
        ContainerSpec {
            name: lease_core::runtime::container_name(&lease_id),
            belongs_to: BelongsTo::Lease(lease_id),
            image: "containerlease-test/busybox:latest".into(),
            command: vec!["sleep".into(), "infinity".into()],
            labels,
            limits: Limits {
                nano_cpus: 1,
                memory_bytes: 1,
                pids: 1,
            },
            confinement: Confinement::default(),
        }
    }

    #[test]
    fn specs_without_our_labels_are_refused() {
        assert!(check_spec(&spec(), NS).is_ok());
        let mut unmanaged = spec();
        unmanaged
            .labels
            .insert(labels::MANAGED.into(), "false".into());
        assert!(matches!(
            check_spec(&unmanaged, NS),
            Err(RuntimeError::Invalid(_))
        ));
        let mut other_namespace = spec();
        other_namespace
            .labels
            .insert(labels::NAMESPACE.into(), "someone-else".into());
        assert!(matches!(
            check_spec(&other_namespace, NS),
            Err(RuntimeError::Invalid(_))
        ));
        let mut renamed = spec();
        renamed.name = "anything".into();
        assert!(check_spec(&renamed, NS).is_err());
        let mut no_limit = spec();
        no_limit.limits.memory_bytes = 0;
        assert!(check_spec(&no_limit, NS).is_err());
    }

    #[test]
    fn confinement_the_catalog_would_refuse_is_refused_again() {
        let with = |change: fn(&mut Confinement)| {
            let mut spec = spec();
            change(&mut spec.confinement);
            check_spec(&spec, NS)
        };
        assert!(
            with(|c| {
                c.read_only_root = true;
                c.scratch_bytes = Some(1 << 20);
                c.user = Some("1000:1000".into());
                c.disk_bytes = Some(1 << 20);
            })
            .is_ok()
        );
        assert!(with(|c| c.user = Some("4242".into())).is_ok());
        assert!(with(|c| c.read_only_root = true).is_err(), "no scratch");
        assert!(
            with(|c| c.scratch_bytes = Some(1)).is_err(),
            "not read-only"
        );
        assert!(with(|c| c.disk_bytes = Some(0)).is_err());
        for user in [
            "0",
            "00:1",
            "0:0",
            "root",
            "1000:",
            ":1",
            "1 000",
            "1000:1000:1",
            "",
        ] {
            let mut spec = spec();
            spec.confinement.user = Some(user.to_owned());
            assert!(check_spec(&spec, NS).is_err(), "user `{user}`");
        }
    }

    #[test]
    fn create_body_keeps_labels_command_and_limits() {
        let spec = spec();
        let labels = check_spec(&spec, NS).expect("valid");
        let body = create_body(&spec, labels, "none".into());
        assert_eq!(body.cmd.as_deref(), Some(&spec.command[..]));
        assert_eq!(body.user, None);
        assert_eq!(
            body.labels
                .unwrap()
                .get(labels::NAMESPACE)
                .map(String::as_str),
            Some("test-unit")
        );
        assert_eq!(body.host_config.unwrap().pids_limit, Some(1));
    }

    #[test]
    fn references_and_labels_are_checked() {
        assert!(check_reference("containerlease-container-abc").is_ok());
        assert!(check_reference("0123abcdef").is_ok());
        for bad in ["", "../images/x", "a/b", "a?b", "-a", "a b"] {
            assert!(check_reference(bad).is_err(), "{bad}");
        }
        let ours = HashMap::from([
            (labels::MANAGED.to_owned(), "true".to_owned()),
            (labels::NAMESPACE.to_owned(), "ns".to_owned()),
        ]);
        assert!(check_ours(Some(&ours), "ns", "c").is_ok());
        assert!(matches!(
            check_ours(Some(&ours), "other", "c"),
            Err(RuntimeError::NotManaged { .. })
        ));
        assert!(check_ours(None, "ns", "c").is_err());
        assert_eq!(parse_exit_code("Exited (137) 5 seconds ago"), Some(137));
        assert_eq!(parse_exit_code("Up 3 seconds"), None);
    }
}
