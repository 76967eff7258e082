//! [`DockerRuntime`]: the [`ContainerRuntime`] port on the Docker Engine.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use lease_core::files::{ArchiveInput, ArchiveOut, CopyReport};
use lease_core::runtime::{
    ContainerInfo, ContainerSpec, ExecRequest, ExecSession, LogOptions, LogStream, ProgressSender,
    RuntimeCapabilities,
};
use lease_core::{Catalog, ContainerRuntime, RuntimeError};
use tokio::sync::{Mutex, OnceCell, Semaphore};

use crate::connection::{self, ConnectOptions};
use crate::container::check_namespace_arg;
use crate::error::DockerError;
use crate::storage::StorageDriver;

/// A [`ContainerRuntime`] on the Docker Engine API. Cheap to clone: clones
/// share one connection pool.
///
/// Scoped to one namespace, given when it connects: it labels what it
/// creates with it (and `io.containerlease.managed=true`) and acts only on
/// containers that carry both; anything else is reported as
/// [`RuntimeError::NotManaged`] (or not at all by `status` and
/// `list_managed`) and left alone.
#[derive(Clone)]
pub struct DockerRuntime {
    pub(crate) docker: Docker,
    namespace: Arc<str>,
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
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl DockerRuntime {
    /// Connects like the docker CLI (`DOCKER_HOST` if set, `unix://…` or
    /// `tcp://…`, else the local socket), scoped to `namespace`.
    ///
    /// An engine that cannot be reached within the connect timeout (1.5 s)
    /// is [`RuntimeError::Unavailable`], naming where it tried; a host this
    /// crate cannot speak to (ssh, TLS) or an invalid namespace is
    /// [`RuntimeError::Invalid`].
    pub async fn connect(namespace: &str) -> Result<Self, RuntimeError> {
        DockerRuntime::connect_with(ConnectOptions::from_env(), namespace).await
    }

    /// Connects with explicit options, scoped to `namespace`.
    pub async fn connect_with(
        options: ConnectOptions,
        namespace: &str,
    ) -> Result<Self, RuntimeError> {
        check_namespace_arg(namespace)?;
        let (docker, endpoint) = connection::connect(&options).await?;
        tracing::debug!(endpoint = %endpoint, namespace, api = %docker.client_version(), "connected to the Docker engine");
        Ok(DockerRuntime {
            docker,
            namespace: namespace.into(),
            endpoint: endpoint.into(),
            ping_timeout: options.connect_timeout,
            creations: Arc::new(Semaphore::new(options.max_concurrent_creations.max(1))),
            storage: Arc::new(OnceCell::new()),
            network_creation: Arc::new(Mutex::new(())),
        })
    }

    /// The same engine and connection pool, scoped to another namespace.
    pub fn in_namespace(&self, namespace: &str) -> Result<Self, RuntimeError> {
        check_namespace_arg(namespace)?;
        Ok(DockerRuntime {
            namespace: namespace.into(),
            ..self.clone()
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
        progress: ProgressSender,
    ) -> Result<(), RuntimeError> {
        crate::image::ensure_image(&self.docker, &self.endpoint, image, &progress).await
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        self.create_impl(&self.namespace, spec).await
    }

    async fn status(&self, container: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        self.status_impl(&self.namespace, container).await
    }

    async fn remove(&self, container: &str) -> Result<(), RuntimeError> {
        self.remove_impl(&self.namespace, container).await
    }

    async fn logs(&self, container: &str, options: LogOptions) -> Result<LogStream, RuntimeError> {
        self.logs_impl(&self.namespace, container, options).await
    }

    async fn exec(
        &self,
        container: &str,
        request: ExecRequest,
    ) -> Result<ExecSession, RuntimeError> {
        self.exec_impl(&self.namespace, container, request).await
    }

    async fn copy_from(&self, container: &str, path: &str) -> Result<ArchiveOut, RuntimeError> {
        self.copy_from_impl(&self.namespace, container, path).await
    }

    async fn copy_to(
        &self,
        container: &str,
        dir: &str,
        archive: ArchiveInput,
    ) -> Result<CopyReport, RuntimeError> {
        self.copy_to_impl(&self.namespace, container, dir, archive)
            .await
    }

    async fn list_managed(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        self.list_managed_impl(&self.namespace).await
    }
}
