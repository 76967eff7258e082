//! Picking the runtime at start-up — one Docker engine or a swarm — the
//! same way in every binary (lease-server, the `lease` CLI).

use std::sync::Arc;

use lease_core::{Catalog, ContainerRuntime, RuntimeError};

use crate::{NodeRoutes, SwarmOptions, SwarmRuntime};

/// Where leases run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RuntimeChoice {
    /// One Docker engine (lease-docker).
    #[default]
    Docker,
    /// A Docker Swarm, through its manager (this crate).
    Swarm,
}

impl RuntimeChoice {
    /// `docker` or `swarm`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeChoice::Docker => "docker",
            RuntimeChoice::Swarm => "swarm",
        }
    }
}

impl std::fmt::Display for RuntimeChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RuntimeChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<RuntimeChoice, String> {
        match text {
            "docker" => Ok(RuntimeChoice::Docker),
            "swarm" => Ok(RuntimeChoice::Swarm),
            other => Err(format!("`{other}` is not a runtime (docker, swarm)")),
        }
    }
}

/// What to connect to.
#[derive(Clone, Debug, Default)]
pub struct RuntimeSettings {
    /// Docker or Swarm.
    pub choice: RuntimeChoice,
    /// Swarm only: the node engines.
    pub routes: NodeRoutes,
    /// Swarm only: limits without reservations.
    pub overcommit: bool,
}

/// Connects the chosen runtime for `namespace` (the engine from
/// `DOCKER_HOST`, else the local socket) and checks that it can run every
/// offering of `catalog` as asked.
///
/// On Docker, an offering with placement constraints is refused: only a
/// cluster places leases, and a constraint says where a lease *must* run
/// (ignoring it would run a `node.labels.gpu==true` lease on a host without
/// one). Node engines given without Swarm are refused too.
///
/// # Errors
///
/// [`RuntimeError::Unavailable`] when the engine cannot be reached,
/// [`RuntimeError::Invalid`] for a catalog or settings it cannot honour.
pub async fn connect_runtime(
    namespace: &str,
    settings: RuntimeSettings,
    catalog: &Catalog,
) -> Result<Arc<dyn ContainerRuntime>, RuntimeError> {
    match settings.choice {
        RuntimeChoice::Docker => {
            if let Some(offering) = catalog.constrained().next() {
                return Err(RuntimeError::Invalid(format!(
                    "offering `{}` has placement constraints ({}), which only --runtime swarm can honour: \
                     run on a swarm, or drop `constraints` from the offering",
                    offering.key,
                    offering.constraints.join(", ")
                )));
            }
            if !settings.routes.is_empty() || settings.overcommit {
                return Err(RuntimeError::Invalid(
                    "--swarm-node-engine and --swarm-overcommit need --runtime swarm".to_owned(),
                ));
            }
            let docker = crate::runtime::docker_runtime_with(
                lease_docker::ConnectOptions::from_env(),
                namespace,
            )
            .await?;
            docker.check_catalog(catalog).await?;
            tracing::info!(endpoint = %docker.endpoint(), namespace, "container runtime: Docker");
            Ok(Arc::new(docker))
        }
        RuntimeChoice::Swarm => {
            crate::runtime::check_catalog(catalog)?;
            let options = SwarmOptions::from_env()
                .routes(settings.routes)
                .overcommit(settings.overcommit);
            let swarm = SwarmRuntime::connect(namespace, options).await?;
            tracing::info!(endpoint = %swarm.endpoint(), manager_node = %swarm.manager_node(), namespace, "container runtime: Docker Swarm");
            Ok(Arc::new(swarm))
        }
    }
}
