//! This crate's own errors: one variant per Docker operation, so a message
//! says what failed, each keeping bollard's error as its source. They are
//! private; callers see them as the source of a [`RuntimeError`].

use std::time::Duration;

use bollard::errors::Error as BollardError;
use lease_core::RuntimeError;
use lease_core::runtime::NetworkMode;

/// A failed Docker operation.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DockerError {
    #[error("cannot set up a client for the Docker engine at {endpoint}")]
    Connect {
        endpoint: String,
        #[source]
        source: BollardError,
    },
    #[error("no answer from the Docker engine at {endpoint} within {after:?}")]
    ConnectTimeout { endpoint: String, after: Duration },
    #[error("cannot ping the Docker engine")]
    Ping {
        #[source]
        source: BollardError,
    },
    #[error("cannot inspect image {image}")]
    InspectImage {
        image: String,
        #[source]
        source: BollardError,
    },
    #[error("cannot pull image {image}")]
    PullImage {
        image: String,
        #[source]
        source: BollardError,
    },
    #[error("pull of image {image} finished but the image is not present")]
    PullIncomplete {
        image: String,
        #[source]
        source: BollardError,
    },
    #[error("cannot create container {name} for lease {lease}")]
    CreateContainer {
        lease: String,
        name: String,
        #[source]
        source: BollardError,
    },
    #[error("cannot start container {container} of lease {lease}")]
    StartContainer {
        lease: String,
        container: String,
        #[source]
        source: BollardError,
    },
    #[error("cannot inspect container {container}")]
    InspectContainer {
        container: String,
        #[source]
        source: BollardError,
    },
    #[error("cannot remove container {container}")]
    RemoveContainer {
        container: String,
        #[source]
        source: BollardError,
    },
    #[error("cannot list the containers of namespace {namespace}")]
    ListContainers {
        namespace: String,
        #[source]
        source: BollardError,
    },
    #[error("cannot read the logs of container {container}")]
    Logs {
        container: String,
        #[source]
        source: BollardError,
    },
    #[error("cannot create an exec in container {container}")]
    CreateExec {
        container: String,
        #[source]
        source: BollardError,
    },
    #[error("cannot start exec {exec}")]
    StartExec {
        exec: String,
        #[source]
        source: BollardError,
    },
    #[error("exec {exec} output failed")]
    ExecOutput {
        exec: String,
        #[source]
        source: BollardError,
    },
    #[error("cannot resize exec {exec}")]
    ResizeExec {
        exec: String,
        #[source]
        source: BollardError,
    },
    #[error("cannot inspect exec {exec}")]
    InspectExec {
        exec: String,
        #[source]
        source: BollardError,
    },
    #[error("cannot read the Docker engine's information")]
    Info {
        #[source]
        source: BollardError,
    },
    #[error("cannot list the networks of namespace {namespace}")]
    ListNetworks {
        namespace: String,
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
        "network {name} exists but is not managed by namespace {namespace} (it lacks our labels); it was left alone: remove or rename it, or use another namespace"
    )]
    ForeignNetwork { name: String, namespace: String },
    #[error(
        "network {name} is ours but not set up for `{mode}` leases (a bridge with inter-container traffic off, internal exactly for `isolated`); remove it once it has no containers and it is created again"
    )]
    MisconfiguredNetwork { name: String, mode: NetworkMode },
    #[error("network {name} was created but is gone again")]
    NetworkVanished { name: String },
}

impl DockerError {
    /// bollard's error, where there is one.
    pub(crate) fn bollard(&self) -> Option<&BollardError> {
        use DockerError::*;
        match self {
            ConnectTimeout { .. }
            | ForeignNetwork { .. }
            | MisconfiguredNetwork { .. }
            | NetworkVanished { .. } => None,
            Connect { source, .. }
            | Ping { source }
            | InspectImage { source, .. }
            | PullImage { source, .. }
            | PullIncomplete { source, .. }
            | CreateContainer { source, .. }
            | StartContainer { source, .. }
            | InspectContainer { source, .. }
            | RemoveContainer { source, .. }
            | ListContainers { source, .. }
            | Logs { source, .. }
            | CreateExec { source, .. }
            | StartExec { source, .. }
            | ExecOutput { source, .. }
            | ResizeExec { source, .. }
            | InspectExec { source, .. }
            | Info { source }
            | ListNetworks { source, .. }
            | CreateNetwork { source, .. } => Some(source),
        }
    }

    /// The operation's name, as [`RuntimeError::Operation`] reports it.
    fn operation(&self) -> &'static str {
        use DockerError::*;
        match self {
            Connect { .. } | ConnectTimeout { .. } => "connect",
            Ping { .. } => "ping",
            InspectImage { .. } => "inspect image",
            PullImage { .. } | PullIncomplete { .. } => "pull image",
            CreateContainer { .. } => "create container",
            StartContainer { .. } => "start container",
            InspectContainer { .. } => "inspect container",
            RemoveContainer { .. } => "remove container",
            ListContainers { .. } => "list containers",
            Logs { .. } => "read logs",
            CreateExec { .. } => "create exec",
            StartExec { .. } | ExecOutput { .. } => "run exec",
            ResizeExec { .. } => "resize exec",
            InspectExec { .. } => "inspect exec",
            Info { .. } => "read engine information",
            ListNetworks { .. }
            | CreateNetwork { .. }
            | ForeignNetwork { .. }
            | MisconfiguredNetwork { .. }
            | NetworkVanished { .. } => "prepare network",
        }
    }

    /// Whether the engine could not be reached at all (as opposed to
    /// answering with an error).
    pub(crate) fn is_unreachable(&self) -> bool {
        match self {
            DockerError::Connect { .. } | DockerError::ConnectTimeout { .. } => true,
            other => other.bollard().is_some_and(is_transport),
        }
    }

    /// Maps into the core's error, keeping `self` as the source:
    /// unreachable engine → `Unavailable`, failed pull → `ImageUnavailable`,
    /// anything else → `Operation`.
    pub(crate) fn into_runtime(self, endpoint: &str) -> RuntimeError {
        if self.is_unreachable() {
            return RuntimeError::Unavailable {
                endpoint: endpoint.to_owned(),
                source: Box::new(self),
            };
        }
        match &self {
            DockerError::PullImage { image, .. } | DockerError::PullIncomplete { image, .. } => {
                RuntimeError::ImageUnavailable {
                    image: image.clone(),
                    source: Box::new(self),
                }
            }
            _ => RuntimeError::Operation {
                operation: self.operation().to_owned(),
                source: Box::new(self),
            },
        }
    }
}

/// The HTTP status of an error the engine answered with.
pub(crate) fn status_of(error: &BollardError) -> Option<u16> {
    match error {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The engine's message of an error it answered with.
pub(crate) fn message_of(error: &BollardError) -> &str {
    match error {
        BollardError::DockerResponseServerError { message, .. } => message,
        _ => "",
    }
}

/// Whether an error happened on the way to or from the engine (socket
/// missing, connection refused or cut, request timed out).
fn is_transport(error: &BollardError) -> bool {
    matches!(
        error,
        BollardError::SocketNotFoundError(_)
            | BollardError::RequestTimeoutError
            | BollardError::HyperLegacyError { .. }
            | BollardError::HyperResponseError { .. }
            | BollardError::IOError { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status_code: u16, message: &str) -> BollardError {
        BollardError::DockerResponseServerError {
            status_code,
            message: message.to_owned(),
        }
    }

    #[test]
    fn transport_failures_are_unavailable_naming_the_endpoint() {
        let error = DockerError::RemoveContainer {
            container: "c".into(),
            source: BollardError::SocketNotFoundError("/nowhere.sock".into()),
        };
        let mapped = error.into_runtime("unix:///nowhere.sock");
        assert!(
            matches!(&mapped, RuntimeError::Unavailable { endpoint, .. } if endpoint == "unix:///nowhere.sock")
        );
        assert!(
            mapped.chain().contains("cannot remove container c"),
            "{}",
            mapped.chain()
        );
        let timeout = DockerError::ConnectTimeout {
            endpoint: "tcp://h:1".into(),
            after: Duration::from_secs(1),
        };
        assert!(matches!(
            timeout.into_runtime("tcp://h:1"),
            RuntimeError::Unavailable { .. }
        ));
    }

    #[test]
    fn failed_pulls_name_the_image_and_the_reason() {
        let error = DockerError::PullImage {
            image: "nope:1".into(),
            source: server(500, "no such host"),
        };
        let mapped = error.into_runtime("unix:///var/run/docker.sock");
        assert!(
            matches!(&mapped, RuntimeError::ImageUnavailable { image, .. } if image == "nope:1")
        );
        let chain = mapped.chain();
        assert!(
            chain.contains("nope:1") && chain.contains("no such host"),
            "{chain}"
        );
    }

    #[test]
    fn other_failures_are_operations_with_their_source() {
        let error = DockerError::CreateContainer {
            lease: "container-x".into(),
            name: "containerlease-container-x".into(),
            source: server(500, "boom"),
        };
        let mapped = error.into_runtime("e");
        assert!(
            matches!(&mapped, RuntimeError::Operation { operation, .. } if operation == "create container")
        );
        assert!(mapped.chain().ends_with("boom"), "{}", mapped.chain());
        assert_eq!(status_of(&server(404, "x")), Some(404));
        assert_eq!(message_of(&server(409, "in progress")), "in progress");
    }
}
