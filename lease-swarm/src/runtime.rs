//! [`SwarmRuntime`]: the connection to a swarm manager, the node routes and
//! the engines of the nodes, and the options of the runtime.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::models::LocalNodeState;
use lease_core::RuntimeError;
use lease_core::config::validate_namespace;
use lease_core::runtime::NetworkMode;
use lease_docker::{ConnectOptions, DockerRuntime};
use tokio::sync::Mutex;

use crate::error::SwarmError;
use crate::routes::{NoRouteError, NodeRoutes};

/// How to reach the swarm and its nodes.
///
/// ```
/// use std::time::Duration;
/// use lease_swarm::{NodeRoutes, SwarmOptions};
/// let routes: NodeRoutes = "worker-1=unix:///run/worker-1.sock".parse().unwrap();
/// let options = SwarmOptions::from_env().routes(routes).overcommit(true);
/// assert!(!options.reserve);
/// assert_eq!(options.removal_timeout, Duration::from_secs(60));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SwarmOptions {
    /// The manager's engine (lease-docker's options: `DOCKER_HOST`, else
    /// the local socket).
    pub manager: ConnectOptions,
    /// Node id or hostname → that node's engine endpoint, for exec, files
    /// and addresses of the containers on it.
    pub routes: NodeRoutes,
    /// Reserve each lease's CPU and memory limits on its node (the
    /// default), so the scheduler never places more than a node has;
    /// `false` sets limits only (overcommit).
    pub reserve: bool,
    /// How long [`SwarmRuntime::remove`](lease_core::ContainerRuntime::remove)
    /// waits for the task's container to be gone after the service is.
    pub removal_timeout: Duration,
    /// Reach the manager's own node through the manager connection when no
    /// route names it (the default). `false`: every node needs a route,
    /// the manager's too (a manager reached over the network whose node
    /// engine should be addressed otherwise).
    pub route_manager_node: bool,
}

impl SwarmOptions {
    /// The manager from `DOCKER_HOST` (else the local socket), no routes,
    /// limits reserved, removals waited for up to 60 s.
    pub fn from_env() -> SwarmOptions {
        SwarmOptions {
            manager: ConnectOptions::from_env(),
            routes: NodeRoutes::new(),
            reserve: true,
            removal_timeout: Duration::from_secs(60),
            route_manager_node: true,
        }
    }

    /// Whether the manager's own node is reached through the manager
    /// connection when no route names it.
    pub fn route_manager_node(mut self, through_manager: bool) -> SwarmOptions {
        self.route_manager_node = through_manager;
        self
    }

    /// With these node routes.
    pub fn routes(mut self, routes: NodeRoutes) -> SwarmOptions {
        self.routes = routes;
        self
    }

    /// With the manager at `manager`.
    pub fn manager(mut self, manager: ConnectOptions) -> SwarmOptions {
        self.manager = manager;
        self
    }

    /// Limits only, no reservations (`true`), or both (`false`).
    pub fn overcommit(mut self, overcommit: bool) -> SwarmOptions {
        self.reserve = !overcommit;
        self
    }
}

/// A node's engine: its client (networks) and lease-docker on it
/// (exec, files, container state).
#[derive(Clone)]
struct Engine {
    docker: Docker,
    runtime: DockerRuntime,
}

/// A [`lease_core::ContainerRuntime`] on Docker Swarm: every lease is a
/// service of one replica. Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct SwarmRuntime {
    pub(crate) manager: Docker,
    pub(crate) endpoint: Arc<str>,
    pub(crate) namespace: Arc<str>,
    /// The manager's own node: reached through the manager connection
    /// unless a route names it (and unless `route_manager_node` is off).
    manager_node: Arc<str>,
    route_manager_node: bool,
    /// lease-docker on the manager's engine: images, and the containers on
    /// the manager's node.
    pub(crate) local: DockerRuntime,
    routes: Arc<NodeRoutes>,
    /// Each routed node's engine, by endpoint, connected on first use.
    engines: Arc<Mutex<HashMap<String, Engine>>>,
    /// Node id → hostname, as the manager said.
    hostnames: Arc<Mutex<HashMap<String, String>>>,
    /// The swarm network of each mode, once set up.
    pub(crate) networks: Arc<Mutex<HashMap<NetworkMode, String>>>,
    pub(crate) reserve: bool,
    pub(crate) removal_timeout: Duration,
    ping_timeout: Duration,
}

impl std::fmt::Debug for SwarmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmRuntime")
            .field("endpoint", &self.endpoint)
            .field("namespace", &self.namespace)
            .field("manager_node", &self.manager_node)
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl SwarmRuntime {
    /// Connects to the swarm manager of `options` for `namespace`.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Unavailable`] when the engine cannot be reached,
    /// [`RuntimeError::Invalid`] for a bad namespace, a host lease-docker
    /// cannot speak to, or an engine that is not a swarm manager.
    pub async fn connect(namespace: &str, options: SwarmOptions) -> Result<Self, RuntimeError> {
        validate_namespace(namespace).map_err(|error| RuntimeError::Invalid(error.to_string()))?;
        let (manager, endpoint) = lease_docker::connect(&options.manager).await?;
        let info = manager
            .info()
            .await
            .map_err(|source| SwarmError::Info { source }.into_runtime(&endpoint))?;
        let swarm = info.swarm.unwrap_or_default();
        let active = swarm.local_node_state == Some(LocalNodeState::ACTIVE);
        let node = swarm.node_id.filter(|id| !id.is_empty());
        let (Some(node), true, true) = (node, active, swarm.control_available == Some(true)) else {
            let state = swarm
                .local_node_state
                .map_or_else(|| "unknown".to_owned(), |state| state.to_string());
            return Err(RuntimeError::Invalid(
                SwarmError::NotManager { endpoint, state }.to_string(),
            ));
        };
        let local = docker_runtime_with(options.manager.clone(), namespace).await?;
        tracing::debug!(endpoint = %endpoint, node = %node, namespace, routes = ?options.routes, "connected to the swarm manager");
        Ok(SwarmRuntime {
            manager,
            endpoint: endpoint.into(),
            namespace: namespace.into(),
            manager_node: node.into(),
            route_manager_node: options.route_manager_node,
            local,
            routes: Arc::new(options.routes),
            engines: Arc::new(Mutex::new(HashMap::new())),
            hostnames: Arc::new(Mutex::new(HashMap::new())),
            networks: Arc::new(Mutex::new(HashMap::new())),
            reserve: options.reserve,
            removal_timeout: options.removal_timeout,
            ping_timeout: options.manager.connect_timeout,
        })
    }

    /// Where the manager is, as `unix:///path` or `tcp://host:port`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The manager's own node id.
    pub fn manager_node(&self) -> &str {
        &self.manager_node
    }

    /// Maps one of this crate's errors into the core's.
    pub(crate) fn fail(&self, error: SwarmError) -> RuntimeError {
        error.into_runtime(&self.endpoint)
    }

    /// The manager's ping, bounded by the connect timeout.
    pub(crate) async fn ping_manager(&self) -> Result<(), RuntimeError> {
        match tokio::time::timeout(self.ping_timeout, self.manager.ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(source)) => Err(self.fail(SwarmError::Info { source })),
            Err(_elapsed) => Err(RuntimeError::Unavailable {
                endpoint: self.endpoint.to_string(),
                source: format!("no answer within {:?}", self.ping_timeout).into(),
            }),
        }
    }

    /// The hostname of node `node_id` (cached; the id itself when the
    /// manager does not say).
    async fn hostname_of(&self, node_id: &str) -> Result<String, RuntimeError> {
        if let Some(hostname) = self.hostnames.lock().await.get(node_id) {
            return Ok(hostname.clone());
        }
        let node = self.manager.inspect_node(node_id).await.map_err(|source| {
            self.fail(SwarmError::InspectNode {
                node: node_id.to_owned(),
                source,
            })
        })?;
        let hostname = node
            .description
            .and_then(|description| description.hostname)
            .unwrap_or_else(|| node_id.to_owned());
        self.hostnames
            .lock()
            .await
            .insert(node_id.to_owned(), hostname.clone());
        Ok(hostname)
    }

    /// lease-docker on the engine of node `node_id`: its route, else the
    /// manager's connection for the manager's own node, else
    /// [`NoRouteError`].
    pub(crate) async fn engine_of_node(
        &self,
        node_id: &str,
    ) -> Result<DockerRuntime, RuntimeError> {
        let hostname = self.hostname_of(node_id).await?;
        let Some(endpoint) = self.routes.endpoint_for(node_id, &hostname) else {
            if self.route_manager_node && node_id == &*self.manager_node {
                return Ok(self.local.clone());
            }
            return Err(RuntimeError::operation(
                "route to the task's node",
                NoRouteError {
                    node_id: node_id.to_owned(),
                    hostname,
                },
            ));
        };
        Ok(self.engine_at(endpoint).await?.runtime)
    }

    /// The engine at `endpoint`, connected on first use.
    async fn engine_at(&self, endpoint: &str) -> Result<Engine, RuntimeError> {
        let mut engines = self.engines.lock().await;
        if let Some(engine) = engines.get(endpoint) {
            return Ok(engine.clone());
        }
        let options = crate::routes::connect_options(endpoint);
        let (docker, _) = lease_docker::connect(&options).await?;
        let runtime = docker_runtime_with(options, &self.namespace).await?;
        let engine = Engine { docker, runtime };
        engines.insert(endpoint.to_owned(), engine.clone());
        tracing::debug!(endpoint, "connected to a node's engine");
        Ok(engine)
    }

    /// Every engine the runtime knows: the manager's and each route's.
    pub(crate) async fn all_engines(&self) -> Result<Vec<(String, Docker)>, RuntimeError> {
        let mut all = vec![(self.endpoint.to_string(), self.manager.clone())];
        for endpoint in self.routes.endpoints() {
            if all.iter().any(|(known, _)| known == endpoint) {
                continue;
            }
            let engine = self.engine_at(endpoint).await?;
            all.push((endpoint.to_owned(), engine.docker));
        }
        Ok(all)
    }
}

impl SwarmRuntime {
    /// Checks that every offering of `catalog` can run as a service:
    /// `disk_mb` and `network = "none"` cannot (see the crate docs). Servers
    /// call it at start-up, so a catalog the swarm cannot honour stops them
    /// with a clear error instead of failing each lease.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Invalid`] naming the offering and what to change.
    pub fn check_catalog(&self, catalog: &lease_core::Catalog) -> Result<(), RuntimeError> {
        check_catalog(catalog)
    }
}

/// See [`SwarmRuntime::check_catalog`].
pub(crate) fn check_catalog(catalog: &lease_core::Catalog) -> Result<(), RuntimeError> {
    for offering in catalog.offerings() {
        if offering.disk_mb.is_some() {
            return Err(RuntimeError::Invalid(format!(
                "offering `{}` asks for a disk limit (disk_mb), which a Swarm service cannot set: drop it, or use --runtime docker",
                offering.key
            )));
        }
        if offering.network == NetworkMode::None {
            return Err(RuntimeError::Invalid(format!(
                "offering `{}` asks for network = \"none\", which a Swarm service cannot have (it would land on the default bridge): use \"isolated\", or --runtime docker",
                offering.key
            )));
        }
    }
    Ok(())
}

/// lease-docker on the engine of `options`, scoped to `namespace`.
pub(crate) async fn docker_runtime_with(
    options: ConnectOptions,
    namespace: &str,
) -> Result<DockerRuntime, RuntimeError> {
    DockerRuntime::connect_with(options, namespace).await
}
