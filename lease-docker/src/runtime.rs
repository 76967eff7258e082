//! [`DockerRuntime`]: the [`ContainerRuntime`] port on the Docker Engine.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use lease_core::files::{ArchiveInput, ArchiveOut, CopyReport};
use lease_core::runtime::{
    ContainerInfo, ContainerSpec, ExecRequest, ExecSession, LogOptions, LogStream, ProgressFn,
};
use lease_core::{Catalog, ContainerRuntime, RuntimeError};
use tokio::sync::{Mutex, OnceCell, Semaphore};

use crate::connection::{self, ConnectOptions};
use crate::error::DockerError;
use crate::storage::StorageDriver;

/// A [`ContainerRuntime`] on the Docker Engine API. Cheap to clone: clones
/// share one connection pool.
///
/// Every method acts only on containers that carry the namespace label it is
/// given (and `io.containerlease.managed=true`); anything else is reported
/// as [`RuntimeError::NotManaged`] and left alone.
#[derive(Clone)]
pub struct DockerRuntime {
    pub(crate) docker: Docker,
    endpoint: Arc<str>,
    ping_timeout: Duration,
    /// Permits for container creations in flight
    /// ([`ConnectOptions::max_concurrent_creations`]).
    pub(crate) creations: Arc<Semaphore>,
    /// The engine's storage driver, read from `/info` when first needed.
    storage: Arc<OnceCell<StorageDriver>>,
    /// Held while a namespace network is created, so that concurrent
    /// first provisions make one.
    pub(crate) network_creation: Arc<Mutex<()>>,
}

impl std::fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRuntime")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl DockerRuntime {
    /// Connects like the docker CLI: `DOCKER_HOST` if set (`unix://…` or
    /// `tcp://…`), else the local socket.
    ///
    /// An engine that cannot be reached within the connect timeout (1.5 s)
    /// is [`RuntimeError::Unavailable`], naming where it tried; a host this
    /// crate cannot speak to (ssh, TLS) is [`RuntimeError::Invalid`].
    pub async fn connect() -> Result<Self, RuntimeError> {
        DockerRuntime::connect_with(ConnectOptions::from_env()).await
    }

    /// Connects with explicit options.
    pub async fn connect_with(options: ConnectOptions) -> Result<Self, RuntimeError> {
        let (docker, endpoint) = connection::connect(&options).await?;
        tracing::debug!(endpoint = %endpoint, api = %docker.client_version(), "connected to the Docker engine");
        Ok(DockerRuntime {
            docker,
            endpoint: endpoint.into(),
            ping_timeout: options.connect_timeout,
            creations: Arc::new(Semaphore::new(options.max_concurrent_creations.max(1))),
            storage: Arc::new(OnceCell::new()),
            network_creation: Arc::new(Mutex::new(())),
        })
    }

    /// The engine's storage driver and its backing filesystem (read once).
    pub async fn storage_driver(&self) -> Result<&StorageDriver, RuntimeError> {
        self.storage
            .get_or_try_init(|| async {
                let info = self
                    .docker
                    .info()
                    .await
                    .map_err(|source| self.fail(DockerError::Info { source }))?;
                let driver = StorageDriver::from_info(&info);
                tracing::debug!(storage = %driver, disk_limits = driver.supports_disk_limit(), "engine storage driver");
                Ok(driver)
            })
            .await
    }

    /// Refuses a disk limit of `disk_mib` MiB for `offering` when the
    /// engine's storage driver cannot enforce one.
    pub(crate) async fn check_disk_limit(
        &self,
        offering: &str,
        disk_mib: i64,
    ) -> Result<(), RuntimeError> {
        let driver = self.storage_driver().await?;
        if driver.supports_disk_limit() {
            return Ok(());
        }
        Err(RuntimeError::Invalid(format!(
            "offering `{offering}` asks for a disk limit ({disk_mib} MiB) but this Docker engine's storage driver ({driver}) cannot enforce one: \
             drop `disk_mb` from the offering, or run the engine on overlay2 over xfs mounted with pquota, btrfs, zfs or devicemapper"
        )))
    }

    /// Checks that this engine can run every offering of `catalog` as it
    /// asks: today, that a `disk_mb` limit can be enforced by the storage
    /// driver. Servers call it at start-up, so a catalog the engine cannot
    /// honour stops them with a clear error instead of failing each lease.
    pub async fn check_catalog(&self, catalog: &Catalog) -> Result<(), RuntimeError> {
        for offering in catalog.offerings() {
            if let Some(disk_mb) = offering.disk_mb {
                self.check_disk_limit(&offering.key, i64::from(disk_mb))
                    .await?;
            }
        }
        Ok(())
    }

    /// Where the engine is, as `unix:///path` or `tcp://host:port`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Maps one of this crate's errors into the core's.
    pub(crate) fn fail(&self, error: DockerError) -> RuntimeError {
        error.into_runtime(&self.endpoint)
    }
}

#[async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn ping(&self) -> Result<(), RuntimeError> {
        match tokio::time::timeout(self.ping_timeout, self.docker.ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(source)) => Err(RuntimeError::Unavailable {
                endpoint: self.endpoint.to_string(),
                source: Box::new(DockerError::Ping { source }),
            }),
            Err(_elapsed) => Err(self.fail(DockerError::ConnectTimeout {
                endpoint: self.endpoint.to_string(),
                after: self.ping_timeout,
            })),
        }
    }

    async fn ensure_image(
        &self,
        image: &str,
        progress: ProgressFn<'_>,
    ) -> Result<(), RuntimeError> {
        crate::image::ensure_image(&self.docker, &self.endpoint, image, progress).await
    }

    async fn create_and_start(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        self.create_and_start_impl(spec).await
    }

    async fn remove(&self, namespace: &str, container: &str) -> Result<(), RuntimeError> {
        self.remove_impl(namespace, container).await
    }

    async fn inspect(
        &self,
        namespace: &str,
        container: &str,
    ) -> Result<Option<ContainerInfo>, RuntimeError> {
        self.inspect_impl(namespace, container).await
    }

    async fn logs(
        &self,
        namespace: &str,
        container: &str,
        options: LogOptions,
    ) -> Result<LogStream, RuntimeError> {
        self.logs_impl(namespace, container, options).await
    }

    async fn exec(
        &self,
        namespace: &str,
        container: &str,
        request: ExecRequest,
    ) -> Result<ExecSession, RuntimeError> {
        self.exec_impl(namespace, container, request).await
    }

    async fn exec_resize(
        &self,
        namespace: &str,
        exec_id: &str,
        columns: u16,
        rows: u16,
    ) -> Result<(), RuntimeError> {
        self.exec_resize_impl(namespace, exec_id, columns, rows)
            .await
    }

    async fn exec_exit_code(
        &self,
        namespace: &str,
        exec_id: &str,
    ) -> Result<Option<i64>, RuntimeError> {
        self.exec_exit_code_impl(namespace, exec_id).await
    }

    async fn copy_from(
        &self,
        namespace: &str,
        container: &str,
        path: &str,
    ) -> Result<ArchiveOut, RuntimeError> {
        self.copy_from_impl(namespace, container, path).await
    }

    async fn copy_to(
        &self,
        namespace: &str,
        container: &str,
        dir: &str,
        archive: ArchiveInput,
    ) -> Result<CopyReport, RuntimeError> {
        self.copy_to_impl(namespace, container, dir, archive).await
    }

    async fn list_managed(&self, namespace: &str) -> Result<Vec<ContainerInfo>, RuntimeError> {
        self.list_managed_impl(namespace).await
    }
}
