//! Where a node's own engine is: Swarm has no cluster-wide exec (nor file
//! copy, nor container inspect; moby/moby#27552), so everything that needs
//! the task's container goes to the engine of the node that runs the task.
//!
//! The operator configures one endpoint per node, keyed by the node's id or
//! hostname (`--swarm-node-engine NODE=ENDPOINT`, repeatable). The endpoint
//! is what lease-docker connects to: `unix:///path/to/docker.sock`,
//! `tcp://host:port`, or `tcp://host:port?certs=DIR` for TLS with the
//! docker CLI's certificate directory (`ca.pem` verifies the engine,
//! `cert.pem` and `key.pem` are the client's; see lease-docker's `tls`).
//! The manager's own node needs no entry: it is reached through the manager
//! connection unless an entry names it.

use std::collections::BTreeMap;

use lease_core::RuntimeError;
use lease_docker::ConnectOptions;

/// What follows `?` in a TLS endpoint: its certificate directory.
const CERTS_QUERY: &str = "certs=";

/// A node of the swarm whose engine no route names: its containers cannot
/// be exec'd into, copied to or from, or given an address.
///
/// Reaches callers as the source of a [`RuntimeError::Operation`]
/// (`downcast_ref::<NoRouteError>()` on it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "no engine endpoint is configured for swarm node {hostname} (id {node_id}): \
     add --swarm-node-engine {hostname}=unix:///path/to/docker.sock (or tcp://host:port, \
     tcp://host:port?certs=DIR for TLS) \
     so that its containers can be reached"
)]
pub struct NoRouteError {
    /// The node's id.
    pub node_id: String,
    /// The node's hostname (its id again when the manager did not say).
    pub hostname: String,
}

/// The configured node → engine endpoint map.
///
/// ```
/// use lease_swarm::NodeRoutes;
/// let routes: NodeRoutes = [
///     "worker-1=unix:///run/worker-1.sock",
///     "k3x9=tcp://10.0.0.3:2375",
///     "worker-2=tcp://10.0.0.4:2376?certs=/etc/lease/worker-2",
/// ]
/// .into_iter()
/// .map(str::parse)
/// .collect::<Result<_, _>>()
/// .unwrap();
/// assert_eq!(routes.endpoint_for("nope", "worker-1"), Some("unix:///run/worker-1.sock"));
/// assert_eq!(routes.endpoint_for("k3x9", "other"), Some("tcp://10.0.0.3:2375"));
/// assert!("w=unix:///run/w.sock?certs=/etc/certs".parse::<NodeRoutes>().is_err());
/// assert!("no-endpoint".parse::<NodeRoutes>().is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeRoutes {
    by_node: BTreeMap<String, String>,
}

impl NodeRoutes {
    /// No routes: only the manager's own node is reachable.
    pub fn new() -> NodeRoutes {
        NodeRoutes::default()
    }

    /// Adds (or replaces) the route of `node` (id or hostname) to `endpoint`.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Invalid`] for an empty node or an endpoint that is
    /// not `unix:///…`, `tcp://…` or `tcp://…?certs=DIR`.
    pub fn insert(&mut self, node: &str, endpoint: &str) -> Result<(), RuntimeError> {
        let node = node.trim();
        let endpoint = endpoint.trim();
        if node.is_empty() || node.contains(char::is_whitespace) {
            return Err(RuntimeError::Invalid(format!(
                "swarm node `{node}` must be a node id or hostname"
            )));
        }
        let (host, cert_dir) = split_endpoint(endpoint);
        let known = ["unix:///", "tcp://", "http://"]
            .iter()
            .any(|scheme| host.starts_with(scheme) && host.len() > scheme.len());
        let tls_ok = match cert_dir {
            None => !endpoint.contains('?'),
            Some(dir) => !dir.trim().is_empty() && !host.starts_with("unix://"),
        };
        if !known || !tls_ok {
            return Err(RuntimeError::Invalid(format!(
                "engine endpoint `{endpoint}` of swarm node `{node}` must be unix:///path, \
                 tcp://host:port or tcp://host:port?certs=DIR (TLS)"
            )));
        }
        self.by_node.insert(node.to_owned(), endpoint.to_owned());
        Ok(())
    }

    /// The endpoint of the node with `node_id` and `hostname`: an entry for
    /// its id wins over one for its hostname.
    pub fn endpoint_for(&self, node_id: &str, hostname: &str) -> Option<&str> {
        self.by_node
            .get(node_id)
            .or_else(|| self.by_node.get(hostname))
            .map(String::as_str)
    }

    /// Every configured endpoint (each once).
    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        let mut endpoints: Vec<&str> = self.by_node.values().map(String::as_str).collect();
        endpoints.sort_unstable();
        endpoints.dedup();
        endpoints.into_iter()
    }

    /// Whether no route is configured.
    pub fn is_empty(&self) -> bool {
        self.by_node.is_empty()
    }
}

/// An endpoint's host and, for `…?certs=DIR`, its certificate directory.
fn split_endpoint(endpoint: &str) -> (&str, Option<&str>) {
    match endpoint.split_once('?') {
        Some((host, query)) => (host, query.strip_prefix(CERTS_QUERY)),
        None => (endpoint, None),
    }
}

/// How lease-docker reaches a route's `endpoint` (as [`NodeRoutes`] keeps
/// it): the host, with TLS from the directory of `?certs=DIR`.
pub(crate) fn connect_options(endpoint: &str) -> ConnectOptions {
    let (host, cert_dir) = split_endpoint(endpoint);
    let options = ConnectOptions::default().host(host);
    match cert_dir {
        Some(dir) => options.tls(dir),
        None => options,
    }
}

impl std::str::FromStr for NodeRoutes {
    type Err = RuntimeError;

    /// One `NODE=ENDPOINT` entry (the flag's syntax).
    fn from_str(entry: &str) -> Result<NodeRoutes, RuntimeError> {
        let Some((node, endpoint)) = entry.split_once('=') else {
            return Err(RuntimeError::Invalid(format!(
                "swarm node engine `{entry}` is not NODE=ENDPOINT (e.g. worker-1=unix:///run/worker-1.sock)"
            )));
        };
        let mut routes = NodeRoutes::new();
        routes.insert(node, endpoint)?;
        Ok(routes)
    }
}

impl FromIterator<NodeRoutes> for NodeRoutes {
    fn from_iter<I: IntoIterator<Item = NodeRoutes>>(iter: I) -> NodeRoutes {
        let mut all = NodeRoutes::new();
        for routes in iter {
            all.by_node.extend(routes.by_node);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_checked() {
        for bad in [
            "",
            "node",
            "=unix:///x",
            "node=",
            "node=/var/run/docker.sock",
            "node=ssh://me@host",
            "node=unix://",
            "a b=tcp://h:1",
            "node=tcp://h:2376?certs=",
            "node=tcp://h:2376?tls=/certs",
            "node=unix:///d.sock?certs=/certs",
        ] {
            assert!(bad.parse::<NodeRoutes>().is_err(), "{bad}");
        }
        let routes: NodeRoutes = "n1=tcp://10.0.0.2:2375".parse().unwrap();
        assert_eq!(routes.endpoint_for("x", "n1"), Some("tcp://10.0.0.2:2375"));
        assert_eq!(routes.endpoint_for("x", "n2"), None);
    }

    #[test]
    fn a_certs_query_means_tls() {
        let routes: NodeRoutes = "n1=tcp://10.0.0.2:2376?certs=/etc/lease/n1"
            .parse()
            .unwrap();
        let endpoint = routes.endpoint_for("x", "n1").unwrap();
        let options = connect_options(endpoint);
        assert_eq!(options.host.as_deref(), Some("tcp://10.0.0.2:2376"));
        assert_eq!(
            options.tls_cert_dir.as_deref(),
            Some(std::path::Path::new("/etc/lease/n1"))
        );
        let plain = connect_options("tcp://10.0.0.2:2375");
        assert_eq!(plain.host.as_deref(), Some("tcp://10.0.0.2:2375"));
        assert_eq!(plain.tls_cert_dir, None);
    }

    #[test]
    fn the_node_id_wins_over_the_hostname() {
        let routes: NodeRoutes = ["id1=unix:///a.sock", "host1=unix:///b.sock"]
            .into_iter()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(routes.endpoint_for("id1", "host1"), Some("unix:///a.sock"));
        assert_eq!(routes.endpoints().count(), 2);
        let error = NoRouteError {
            node_id: "abc".into(),
            hostname: "worker-1".into(),
        };
        assert!(error.to_string().contains("--swarm-node-engine worker-1="));
    }
}
