//! A lease as a Swarm service: one replica, restart condition `none`, the
//! catalog's limits (and, unless overcommitted, the same reservations so
//! the scheduler never packs more onto a node than it has), the placement
//! constraints of the offering, and the hardening of lease-docker as far as
//! a service spec can carry it (see the crate docs for what it cannot).

use std::collections::HashMap;

use bollard::models::{
    Limit, Mount, MountTmpfsOptions, MountType, NetworkAttachmentConfig, ResourceObject,
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec,
    TaskSpecContainerSpecPrivileges, TaskSpecLogDriver, TaskSpecPlacement, TaskSpecResources,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use lease_core::RuntimeError;
use lease_core::runtime::{BelongsTo, ContainerSpec, NetworkMode, SCRATCH_PATH, labels};
use lease_docker::hardening::{
    ADDED_CAPABILITIES, DROPPED_CAPABILITIES, LOG_MAX_FILES, LOG_MAX_SIZE,
};

/// How long a task's container gets between SIGTERM and SIGKILL when its
/// service is removed. Short: a lease that ends is removed, as lease-docker
/// force-removes its containers.
pub(crate) const STOP_GRACE_NANOS: i64 = 1_000_000_000;

/// Mode bits of the scratch tmpfs (world-writable, sticky, as `/tmp`).
const SCRATCH_MODE: i64 = 0o1777;

/// The labels a service and its container carry: the spec's, plus the
/// managed and namespace labels the runtime owns.
pub(crate) fn labels_of(namespace: &str, spec: &ContainerSpec) -> HashMap<String, String> {
    spec.labels
        .iter()
        .map(|(key, value)| (key.clone(), value.clone()))
        .chain([
            (labels::MANAGED.to_owned(), "true".to_owned()),
            (labels::NAMESPACE.to_owned(), namespace.to_owned()),
        ])
        .collect()
}

/// Refuses a spec that tries to choose its own namespace (or to be
/// unmanaged), names the wrong owner, or asks for what a Swarm service
/// cannot honour.
pub(crate) fn check_spec(namespace: &str, spec: &ContainerSpec) -> Result<(), RuntimeError> {
    let invalid = |problem: &str| {
        Err(RuntimeError::Invalid(format!(
            "container spec of {}: {problem}",
            spec.belongs_to
        )))
    };
    let label = |key: &str| spec.labels.get(key).map(String::as_str);
    if label(labels::NAMESPACE).is_some_and(|value| value != namespace) {
        return invalid(&format!(
            "label {} is the runtime's own (`{namespace}`)",
            labels::NAMESPACE
        ));
    }
    if label(labels::MANAGED).is_some_and(|value| value != "true") {
        return invalid(&format!("label {} is the runtime's own", labels::MANAGED));
    }
    let owner_ok = match &spec.belongs_to {
        BelongsTo::Lease(id) => label(labels::LEASE_ID) == Some(id.as_str()),
        BelongsTo::PoolSlot(slot) => {
            label(labels::POOL_SLOT) == Some(slot.as_str()) && label(labels::LEASE_ID).is_none()
        }
    };
    if !owner_ok {
        return invalid("its lease id (or pool slot) label must match whom it belongs to");
    }
    let name = spec.belongs_to.container_name();
    if spec.name != name {
        return invalid(&format!("name must be `{name}`"));
    }
    if spec.image.trim().is_empty() || spec.command.is_empty() {
        return invalid("image and command must not be empty");
    }
    let limits = spec.limits;
    if limits.nano_cpus <= 0 || limits.memory_bytes <= 0 || limits.pids <= 0 {
        return invalid("every limit must be above zero");
    }
    if spec.confinement.disk_bytes.is_some() {
        return invalid(
            "a disk limit (disk_mb) cannot be set on a Swarm service (no storage options in a service spec)",
        );
    }
    if spec.confinement.network == NetworkMode::None {
        return invalid(
            "network = \"none\" is not available on Swarm: a service cannot join the engine's `none` network, \
             and one without networks lands on the default bridge, where leases could reach each other",
        );
    }
    if spec.confinement.read_only_root != spec.confinement.scratch_bytes.is_some() {
        return invalid("a read-only root needs a scratch size, and only it has one");
    }
    Ok(())
}

/// What else a service needs besides the container spec.
#[derive(Clone, Debug)]
pub(crate) struct ServiceSetup<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// The swarm network's id.
    pub network: &'a str,
    /// Placement constraints (`node.labels.gpu==true`).
    pub constraints: &'a [String],
    /// Reserve the limits on the node (else limits only: overcommit).
    pub reserve: bool,
}

/// The service spec of a lease (or pool slot) of `spec`.
pub(crate) fn service_spec(spec: &ContainerSpec, setup: &ServiceSetup<'_>) -> ServiceSpec {
    let labels = labels_of(setup.namespace, spec);
    let limits = spec.limits;
    let reservations = setup.reserve.then_some(ResourceObject {
        nano_cpus: Some(limits.nano_cpus),
        memory_bytes: Some(limits.memory_bytes),
        generic_resources: None,
    });
    ServiceSpec {
        name: Some(spec.name.clone()),
        labels: Some(labels.clone()),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..ServiceSpecMode::default()
        }),
        task_template: Some(TaskSpec {
            container_spec: Some(container_spec(spec, labels)),
            resources: Some(TaskSpecResources {
                limits: Some(Limit {
                    nano_cpus: Some(limits.nano_cpus),
                    memory_bytes: Some(limits.memory_bytes),
                    pids: Some(limits.pids),
                }),
                reservations,
                ..TaskSpecResources::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                max_attempts: Some(0),
                ..TaskSpecRestartPolicy::default()
            }),
            placement: Some(TaskSpecPlacement {
                constraints: Some(setup.constraints.to_vec()),
                ..TaskSpecPlacement::default()
            }),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some(setup.network.to_owned()),
                ..NetworkAttachmentConfig::default()
            }]),
            log_driver: Some(TaskSpecLogDriver {
                name: Some("json-file".to_owned()),
                options: Some(HashMap::from([
                    ("max-size".to_owned(), LOG_MAX_SIZE.to_owned()),
                    ("max-file".to_owned(), LOG_MAX_FILES.to_owned()),
                ])),
            }),
            ..TaskSpec::default()
        }),
        ..ServiceSpec::default()
    }
}

/// The container part: image, keep-alive command as arguments (the image's
/// entrypoint stays, as on Docker), user, labels, capabilities, init, and
/// the read-only root with its scratch tmpfs.
fn container_spec(spec: &ContainerSpec, labels: HashMap<String, String>) -> TaskSpecContainerSpec {
    let strings = |items: &[&str]| items.iter().map(|item| (*item).to_owned()).collect();
    let scratch = spec.confinement.scratch_bytes.map(|bytes| Mount {
        target: Some(SCRATCH_PATH.to_owned()),
        typ: Some(MountType::TMPFS),
        tmpfs_options: Some(MountTmpfsOptions {
            size_bytes: Some(bytes),
            mode: Some(SCRATCH_MODE),
            options: Some(vec![vec!["nosuid".to_owned()], vec!["nodev".to_owned()]]),
        }),
        ..Mount::default()
    });
    TaskSpecContainerSpec {
        image: Some(spec.image.clone()),
        args: Some(spec.command.clone()),
        user: spec.confinement.user.clone(),
        labels: Some(labels),
        tty: Some(false),
        open_stdin: Some(false),
        read_only: Some(spec.confinement.read_only_root),
        mounts: Some(scratch.into_iter().collect()),
        init: Some(true),
        capability_drop: Some(strings(&DROPPED_CAPABILITIES)),
        capability_add: Some(strings(&ADDED_CAPABILITIES)),
        privileges: Some(TaskSpecContainerSpecPrivileges {
            no_new_privileges: Some(true),
            ..TaskSpecContainerSpecPrivileges::default()
        }),
        stop_grace_period: Some(STOP_GRACE_NANOS),
        ..TaskSpecContainerSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use lease_core::LeaseId;
    use lease_core::runtime::{BelongsTo, Confinement, Limits};

    use super::*;

    pub(crate) fn spec() -> ContainerSpec {
        let lease_id = LeaseId::generate();
        ContainerSpec {
            name: lease_core::runtime::container_name(&lease_id),
            labels: BTreeMap::from([(labels::LEASE_ID.to_owned(), lease_id.to_string())]),
            belongs_to: BelongsTo::Lease(lease_id),
            image: "containerlease-test/busybox:latest".into(),
            command: vec!["sleep".into(), "infinity".into()],
            limits: Limits {
                nano_cpus: 500_000_000,
                memory_bytes: 64 << 20,
                pids: 64,
            },
            confinement: Confinement::default(),
        }
    }

    fn setup<'a>(constraints: &'a [String]) -> ServiceSetup<'a> {
        ServiceSetup {
            namespace: "ns",
            network: "net1",
            constraints,
            reserve: true,
        }
    }

    #[test]
    fn a_lease_is_one_replica_never_restarted_with_its_limits() {
        let spec = spec();
        let constraints = vec!["node.labels.gpu==true".to_owned()];
        let service = service_spec(&spec, &setup(&constraints));
        assert_eq!(service.name.as_deref(), Some(spec.name.as_str()));
        assert_eq!(service.mode.unwrap().replicated.unwrap().replicas, Some(1));
        let task = service.task_template.unwrap();
        assert_eq!(
            task.restart_policy.unwrap().condition,
            Some(TaskSpecRestartPolicyConditionEnum::NONE)
        );
        let resources = task.resources.unwrap();
        assert_eq!(resources.limits.unwrap().pids, Some(64));
        assert_eq!(resources.reservations.unwrap().memory_bytes, Some(64 << 20));
        assert_eq!(task.placement.unwrap().constraints.unwrap(), constraints);
        let container = task.container_spec.unwrap();
        assert_eq!(container.args.as_deref(), Some(&spec.command[..]));
        assert_eq!(container.command, None, "the entrypoint stays");
        for labels in [service.labels.unwrap(), container.labels.unwrap()] {
            assert_eq!(
                labels.get(labels::MANAGED).map(String::as_str),
                Some("true")
            );
            assert_eq!(
                labels.get(labels::NAMESPACE).map(String::as_str),
                Some("ns")
            );
        }
        assert_eq!(container.capability_drop.unwrap(), vec!["ALL".to_owned()]);
    }

    #[test]
    fn what_a_service_cannot_honour_is_refused() {
        assert!(check_spec("ns", &spec()).is_ok());
        let mut disk = spec();
        disk.confinement.disk_bytes = Some(1 << 20);
        assert!(
            matches!(check_spec("ns", &disk), Err(RuntimeError::Invalid(m)) if m.contains("disk"))
        );
        let mut none = spec();
        none.confinement.network = NetworkMode::None;
        assert!(
            matches!(check_spec("ns", &none), Err(RuntimeError::Invalid(m)) if m.contains("none"))
        );
        let mut renamed = spec();
        renamed.name = "other".into();
        assert!(check_spec("ns", &renamed).is_err());
        let mut foreign = spec();
        foreign
            .labels
            .insert(labels::NAMESPACE.into(), "other".into());
        assert!(check_spec("ns", &foreign).is_err());
        let mut ours = spec();
        ours.labels.insert(labels::NAMESPACE.into(), "ns".into());
        ours.labels.insert(labels::MANAGED.into(), "true".into());
        assert!(check_spec("ns", &ours).is_ok());
        let mut unmanaged = spec();
        unmanaged
            .labels
            .insert(labels::MANAGED.into(), "false".into());
        assert!(check_spec("ns", &unmanaged).is_err());
        let mut someone_else = spec();
        someone_else
            .labels
            .insert(labels::LEASE_ID.into(), "container-other".into());
        assert!(check_spec("ns", &someone_else).is_err());
    }

    #[test]
    fn a_read_only_root_gets_its_scratch_tmpfs() {
        let mut spec = spec();
        spec.confinement.read_only_root = true;
        spec.confinement.scratch_bytes = Some(16 << 20);
        let mut unreserved = setup(&[]);
        unreserved.reserve = false;
        let service = service_spec(&spec, &unreserved);
        let task = service.task_template.unwrap();
        assert!(task.resources.unwrap().reservations.is_none());
        let container = task.container_spec.unwrap();
        assert_eq!(container.read_only, Some(true));
        let mounts = container.mounts.unwrap();
        assert_eq!(mounts[0].target.as_deref(), Some(SCRATCH_PATH));
        assert_eq!(
            mounts[0].tmpfs_options.as_ref().unwrap().size_bytes,
            Some(16 << 20)
        );
    }
}
