//! The [`ContainerRuntime`] port on [`SwarmRuntime`].

use async_trait::async_trait;
use lease_core::files::{ArchiveInput, ArchiveOut, CopyReport};
use lease_core::runtime::{
    ContainerInfo, ContainerSpec, ExecRequest, ExecSession, LogOptions, LogStream, ProgressSender,
    RuntimeCapabilities,
};
use lease_core::{ContainerRuntime, RuntimeError};

use crate::runtime::SwarmRuntime;

#[async_trait]
impl ContainerRuntime for SwarmRuntime {
    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn capabilities(&self) -> RuntimeCapabilities {
        RuntimeCapabilities {
            copy_files: true,
            reports_limits: true,
        }
    }

    async fn ping(&self) -> Result<(), RuntimeError> {
        self.ping_manager().await
    }

    /// On the manager's engine (progress reported); every other node pulls
    /// the image itself when its task starts, as Swarm does.
    async fn ensure_image(
        &self,
        image: &str,
        progress: ProgressSender,
    ) -> Result<(), RuntimeError> {
        self.local.ensure_image(image, progress).await
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        self.create_unit(spec).await
    }

    async fn status(&self, container: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        self.unit_status(container).await
    }

    async fn remove(&self, container: &str) -> Result<(), RuntimeError> {
        self.remove_unit(container).await
    }

    async fn logs(&self, container: &str, options: LogOptions) -> Result<LogStream, RuntimeError> {
        self.unit_logs(container, options).await
    }

    /// On the engine of the node that runs the task (its route, or the
    /// manager's for the manager's own node).
    async fn exec(
        &self,
        container: &str,
        request: ExecRequest,
    ) -> Result<ExecSession, RuntimeError> {
        let (engine, id) = self.running_container(container).await?;
        engine.exec(&id, request).await
    }

    async fn copy_from(&self, container: &str, path: &str) -> Result<ArchiveOut, RuntimeError> {
        let (engine, id) = self.running_container(container).await?;
        engine.copy_from(&id, path).await
    }

    async fn copy_to(
        &self,
        container: &str,
        dir: &str,
        archive: ArchiveInput,
    ) -> Result<CopyReport, RuntimeError> {
        let (engine, id) = self.running_container(container).await?;
        engine.copy_to(&id, dir, archive).await
    }

    async fn list_managed(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        self.list_units().await
    }
}
