//! A stand-in runtime for commands that only use the store (`ls`, `status`,
//! `extend`, `usage`), so they work where Docker is not running.

use async_trait::async_trait;
use lease_core::runtime::{
    ContainerInfo, ContainerSpec, ExecRequest, ExecSession, LogOptions, LogStream, ProgressSender,
};
use lease_core::{ContainerRuntime, RuntimeError};

/// Fails every call: the command that built it promised not to use Docker.
/// Scoped to the namespace of the flags, as the engine requires.
#[derive(Debug, Clone)]
pub struct OfflineRuntime {
    namespace: String,
}

impl OfflineRuntime {
    /// A stand-in for `namespace`'s runtime.
    pub fn new(namespace: &str) -> Self {
        OfflineRuntime {
            namespace: namespace.to_owned(),
        }
    }
}

fn offline() -> RuntimeError {
    RuntimeError::Unavailable {
        endpoint: "(not connected)".to_owned(),
        source: "this command does not connect to Docker".into(),
    }
}

#[async_trait]
impl ContainerRuntime for OfflineRuntime {
    fn namespace(&self) -> &str {
        &self.namespace
    }

    async fn ping(&self) -> Result<(), RuntimeError> {
        Err(offline())
    }

    async fn ensure_image(&self, _: &str, _: ProgressSender) -> Result<(), RuntimeError> {
        Err(offline())
    }

    async fn create(&self, _: &ContainerSpec) -> Result<String, RuntimeError> {
        Err(offline())
    }

    async fn status(&self, _: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        Err(offline())
    }

    async fn remove(&self, _: &str) -> Result<(), RuntimeError> {
        Err(offline())
    }

    async fn logs(&self, _: &str, _: LogOptions) -> Result<LogStream, RuntimeError> {
        Err(offline())
    }

    async fn exec(&self, _: &str, _: ExecRequest) -> Result<ExecSession, RuntimeError> {
        Err(offline())
    }

    async fn list_managed(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        Err(offline())
    }
}
