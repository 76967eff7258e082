//! This crate's own errors, one per Swarm operation, keeping bollard's
//! error as the source. Callers see them inside the core's
//! [`RuntimeError`].

use std::time::Duration;

use bollard::errors::Error as BollardError;
use lease_core::RuntimeError;

/// A failed Swarm operation.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SwarmError {
    #[error("cannot read the engine's swarm state")]
    Info {
        #[source]
        source: BollardError,
    },
    #[error(
        "the engine at {endpoint} is not a swarm manager (swarm state `{state}`): run `docker swarm init` or point the runtime at a manager"
    )]
    NotManager { endpoint: String, state: String },
    #[error("cannot create service {name} for {belongs_to}")]
    CreateService {
        name: String,
        belongs_to: String,
        #[source]
        source: BollardError,
    },
    #[error("cannot inspect service {service}")]
    InspectService {
        service: String,
        #[source]
        source: BollardError,
    },
    #[error("cannot remove service {service}")]
    RemoveService {
        service: String,
        #[source]
        source: BollardError,
    },
    #[error("cannot list the services of namespace {namespace}")]
    ListServices {
        namespace: String,
        #[source]
        source: BollardError,
    },
    #[error("cannot list the tasks of service {service}")]
    ListTasks {
        service: String,
        #[source]
        source: BollardError,
    },
    #[error("cannot inspect swarm node {node}")]
    InspectNode {
        node: String,
        #[source]
        source: BollardError,
    },
    #[error("cannot read the logs of service {service}")]
    Logs {
        service: String,
        #[source]
        source: BollardError,
    },
    #[error("cannot list networks named {name}")]
    ListNetworks {
        name: String,
        #[source]
        source: BollardError,
    },
    #[error("cannot create network {name}")]
    CreateNetwork {
        name: String,
        #[source]
        source: BollardError,
    },
    #[error(
        "network {name} exists but is not this namespace's (labels or configuration differ); it is left alone"
    )]
    ForeignNetwork { name: String },
    #[error("network {name} was created but is not listed")]
    NetworkVanished { name: String },
    #[error(
        "service {service} is removed but its container {container} is still on node {node} after {after:?}"
    )]
    ContainerLingers {
        service: String,
        container: String,
        node: String,
        after: Duration,
    },
    #[error(
        "task of service {service} is not running (state: {state}); its container cannot be reached"
    )]
    NotRunning { service: String, state: String },
}

/// The engine's message of an error it answered with.
pub(crate) fn message_of(error: &BollardError) -> &str {
    match error {
        BollardError::DockerResponseServerError { message, .. } => message,
        _ => "",
    }
}

/// The HTTP status of an engine's error answer.
pub(crate) fn status_of(error: &BollardError) -> Option<u16> {
    match error {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Whether bollard's error means the engine could not be reached at all.
fn is_unreachable(error: &BollardError) -> bool {
    matches!(
        error,
        BollardError::SocketNotFoundError(_)
            | BollardError::RequestTimeoutError
            | BollardError::HyperLegacyError { .. }
            | BollardError::HyperResponseError { .. }
            | BollardError::IOError { .. }
    )
}

impl SwarmError {
    /// The bollard error underneath, if any.
    fn bollard(&self) -> Option<&BollardError> {
        match self {
            SwarmError::Info { source }
            | SwarmError::CreateService { source, .. }
            | SwarmError::InspectService { source, .. }
            | SwarmError::RemoveService { source, .. }
            | SwarmError::ListServices { source, .. }
            | SwarmError::ListTasks { source, .. }
            | SwarmError::InspectNode { source, .. }
            | SwarmError::Logs { source, .. }
            | SwarmError::ListNetworks { source, .. }
            | SwarmError::CreateNetwork { source, .. } => Some(source),
            _ => None,
        }
    }

    /// What was being done, for [`RuntimeError::Operation`].
    fn operation(&self) -> &'static str {
        match self {
            SwarmError::Info { .. } | SwarmError::NotManager { .. } => "reach the swarm manager",
            SwarmError::CreateService { .. } => "create service",
            SwarmError::InspectService { .. } | SwarmError::ListTasks { .. } => "inspect service",
            SwarmError::RemoveService { .. } | SwarmError::ContainerLingers { .. } => {
                "remove service"
            }
            SwarmError::ListServices { .. } => "list services",
            SwarmError::InspectNode { .. } | SwarmError::NotRunning { .. } => {
                "reach the task's container"
            }
            SwarmError::Logs { .. } => "read service logs",
            SwarmError::ListNetworks { .. }
            | SwarmError::CreateNetwork { .. }
            | SwarmError::ForeignNetwork { .. }
            | SwarmError::NetworkVanished { .. } => "set up the namespace network",
        }
    }

    /// Into the core's error: `Unavailable` when the manager could not be
    /// reached, `Operation` otherwise.
    pub(crate) fn into_runtime(self, endpoint: &str) -> RuntimeError {
        if self.bollard().is_some_and(is_unreachable) {
            return RuntimeError::Unavailable {
                endpoint: endpoint.to_owned(),
                source: Box::new(self),
            };
        }
        RuntimeError::Operation {
            operation: self.operation().to_owned(),
            source: Box::new(self),
        }
    }
}
