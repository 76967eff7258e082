//! A stand-in runtime for commands that only use the store (`ls`, `status`,
//! `extend`, `usage`), so they work where Docker is not running.

use async_trait::async_trait;
use lease_core::runtime::{
    ContainerInfo, ContainerSpec, ExecRequest, ExecSession, LogOptions, LogStream, ProgressFn,
};
use lease_core::{ContainerRuntime, RuntimeError};

/// Fails every call: the command that built it promised not to use Docker.
#[derive(Debug, Clone, Copy)]
pub struct OfflineRuntime;

fn offline() -> RuntimeError {
    RuntimeError::Unavailable {
        endpoint: "(not connected)".to_owned(),
        source: "this command does not connect to Docker".into(),
    }
}

#[async_trait]
impl ContainerRuntime for OfflineRuntime {
    async fn ping(&self) -> Result<(), RuntimeError> {
        Err(offline())
    }

    async fn ensure_image(&self, _: &str, _: ProgressFn<'_>) -> Result<(), RuntimeError> {
        Err(offline())
    }

    async fn create_and_start(&self, _: &ContainerSpec) -> Result<String, RuntimeError> {
        Err(offline())
    }

    async fn remove(&self, _: &str, _: &str) -> Result<(), RuntimeError> {
        Err(offline())
    }

    async fn inspect(&self, _: &str, _: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        Err(offline())
    }

    async fn logs(&self, _: &str, _: &str, _: LogOptions) -> Result<LogStream, RuntimeError> {
        Err(offline())
    }

    async fn exec(&self, _: &str, _: &str, _: ExecRequest) -> Result<ExecSession, RuntimeError> {
        Err(offline())
    }

    async fn exec_resize(&self, _: &str, _: &str, _: u16, _: u16) -> Result<(), RuntimeError> {
        Err(offline())
    }

    async fn exec_exit_code(&self, _: &str, _: &str) -> Result<Option<i64>, RuntimeError> {
        Err(offline())
    }

    async fn list_managed(&self, _: &str) -> Result<Vec<ContainerInfo>, RuntimeError> {
        Err(offline())
    }
}
