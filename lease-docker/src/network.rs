//! The networks a namespace's leases sit on: one bridge network per
//! namespace and [`NetworkMode`], with inter-container traffic off, so that
//! a lease cannot open a connection to another lease while the host (the
//! server) still reaches every lease's ports.
//!
//! - `containerlease-<namespace>-egress`: a bridge with
//!   `com.docker.network.bridge.enable_icc=false`; outbound traffic is
//!   NATed through the host as on Docker's default bridge;
//! - `containerlease-<namespace>-isolated`: the same, `internal`: no route
//!   out of the bridge at all;
//! - `none`: no network (`NetworkMode: none`), nothing to create.
//!
//! Networks carry the labels containers carry
//! (`io.containerlease.managed=true`, `io.containerlease.namespace`), are
//! created on first use, and are looked up by name *and* labels: a network
//! of the same name without them is someone else's and is refused, never
//! used or changed. Creating is race-safe:
//!
//! - within one runtime, creations are serialised (a burst of first
//!   provisions makes one network);
//! - across replicas, an engine that refuses a second network of the same
//!   name (409, API 1.44 and later) leaves the first, and on older engines,
//!   which create both, every replica uses the *earliest created* one and a
//!   replica whose own creation lost removes it at once (nothing can be on
//!   it yet: everyone else chose the earlier one);
//! - containers are attached by network id, never by name, so a moment with
//!   two same-named networks cannot make a start ambiguous.
//!
//! The runtime never removes a network: a lease's container may be
//! created on it at any moment, and the engine refuses to remove a network
//! that still has containers anyway. Whoever retires a namespace removes
//! them (`lease_testkit::docker::NamespaceGuard` for tests).

use std::collections::HashMap;

use bollard::models::{EndpointSettings, Network, NetworkCreateRequest, NetworkingConfig};
use bollard::query_parameters::ListNetworksOptionsBuilder;
use chrono::{DateTime, Utc};
use lease_core::RuntimeError;
use lease_core::runtime::{NetworkMode, labels};

use crate::error::{DockerError, status_of};
use crate::runtime::DockerRuntime;

/// The bridge driver's option that lets containers on one network talk to
/// each other; set to `false` on every namespace network.
pub const ICC_OPTION: &str = "com.docker.network.bridge.enable_icc";

/// `HostConfig.NetworkMode` of a container without a network.
const NO_NETWORK: &str = "none";

/// The name of `namespace`'s network for `mode`; `None` for
/// [`NetworkMode::None`], which has no network.
///
/// ```
/// use lease_core::runtime::NetworkMode;
/// use lease_docker::network::network_name;
/// assert_eq!(network_name("prod", NetworkMode::Egress).as_deref(), Some("containerlease-prod-egress"));
/// assert_eq!(network_name("prod", NetworkMode::None), None);
/// ```
pub fn network_name(namespace: &str, mode: NetworkMode) -> Option<String> {
    (mode != NetworkMode::None).then(|| format!("containerlease-{namespace}-{mode}"))
}

/// The create request of `namespace`'s network `name` for `mode`.
fn create_request(namespace: &str, name: &str, mode: NetworkMode) -> NetworkCreateRequest {
    NetworkCreateRequest {
        name: name.to_owned(),
        driver: Some("bridge".to_owned()),
        internal: Some(mode == NetworkMode::Isolated),
        attachable: Some(false),
        options: Some(HashMap::from([(ICC_OPTION.to_owned(), "false".to_owned())])),
        labels: Some(HashMap::from([
            (labels::MANAGED.to_owned(), "true".to_owned()),
            (labels::NAMESPACE.to_owned(), namespace.to_owned()),
        ])),
        ..NetworkCreateRequest::default()
    }
}

/// Whether `network` carries `namespace`'s labels.
fn is_ours(network: &Network, namespace: &str) -> bool {
    let label = |key: &str| {
        network
            .labels
            .as_ref()
            .and_then(|labels| labels.get(key))
            .map(String::as_str)
    };
    label(labels::MANAGED) == Some("true") && label(labels::NAMESPACE) == Some(namespace)
}

/// Whether one of ours is set up as `mode` asks: a bridge with
/// inter-container traffic off, internal exactly for `isolated`.
fn is_configured_for(network: &Network, mode: NetworkMode) -> bool {
    let icc = network
        .options
        .as_ref()
        .and_then(|options| options.get(ICC_OPTION))
        .map(String::as_str);
    network.driver.as_deref() == Some("bridge")
        && icc == Some("false")
        && network.internal.unwrap_or(false) == (mode == NetworkMode::Isolated)
}

/// How long a runtime that has just created a namespace network waits for
/// a racing replica's creation to show before it picks the earliest.
const NETWORK_SETTLE: std::time::Duration = std::time::Duration::from_millis(300);

/// When a network was created; unknown sorts last.
fn created_at(network: &Network) -> DateTime<Utc> {
    network
        .created
        .as_deref()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map_or(DateTime::<Utc>::MAX_UTC, |time| time.with_timezone(&Utc))
}

/// Out of the networks named exactly `name`: the id of ours (the earliest
/// created, then the smallest id, should there be several), `None` if there
/// is none, an error if the name belongs to someone else only or ours is
/// not set up as `mode` asks.
fn choose(
    networks: Vec<Network>,
    namespace: &str,
    name: &str,
    mode: NetworkMode,
) -> Result<Option<String>, DockerError> {
    let named: Vec<Network> = networks
        .into_iter()
        .filter(|network| network.name.as_deref() == Some(name))
        .collect();
    let foreign = named.iter().any(|network| !is_ours(network, namespace));
    let ours = named
        .into_iter()
        .filter(|network| is_ours(network, namespace))
        .filter_map(|network| Some(((created_at(&network), network.id.clone()?), network)))
        .min_by(|(a, _), (b, _)| a.cmp(b));
    match ours {
        Some((_, network)) if !is_configured_for(&network, mode) => {
            Err(DockerError::MisconfiguredNetwork {
                name: name.to_owned(),
                mode,
            })
        }
        Some(((_, id), _)) => Ok(Some(id)),
        None if foreign => Err(DockerError::ForeignNetwork {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
        }),
        None => Ok(None),
    }
}

impl DockerRuntime {
    /// `HostConfig.NetworkMode` for a container of `namespace` in `mode`:
    /// `none`, or the id of the namespace's network for `mode`, created if
    /// it does not exist yet.
    pub(crate) async fn network_for(
        &self,
        namespace: &str,
        mode: NetworkMode,
    ) -> Result<String, RuntimeError> {
        let Some(name) = network_name(namespace, mode) else {
            return Ok(NO_NETWORK.to_owned());
        };
        if let Some(id) = self.find_network(namespace, &name, mode).await? {
            return Ok(id);
        }
        let _one_creator = self.network_creation.lock().await;
        if let Some(id) = self.find_network(namespace, &name, mode).await? {
            return Ok(id);
        }
        let created = self.create_network(namespace, &name, mode).await?;
        if created.is_some() {
            // On an engine that allows duplicate names, another replica's
            // creation may have started first and be listed only later: let
            // it land before choosing (once per namespace and mode).
            tokio::time::sleep(NETWORK_SETTLE).await;
        }
        // Whether this call or another replica's made it, the listing decides.
        let chosen = self
            .find_network(namespace, &name, mode)
            .await?
            .ok_or_else(|| self.fail(DockerError::NetworkVanished { name: name.clone() }))?;
        if let Some(mine) = created.filter(|mine| *mine != chosen) {
            self.remove_lost_network(&name, &mine).await;
        }
        Ok(chosen)
    }

    /// Removes a network this runtime just created when another replica's
    /// same-named one was created first (an engine that allows duplicates).
    async fn remove_lost_network(&self, name: &str, id: &str) {
        match self.docker.remove_network(id).await {
            Ok(()) => tracing::info!(network = name, id, "removed a duplicate namespace network"),
            Err(error) => {
                tracing::warn!(network = name, id, error = %error, "cannot remove a duplicate namespace network");
            }
        }
    }

    /// The id of our network named `name`, if it exists.
    async fn find_network(
        &self,
        namespace: &str,
        name: &str,
        mode: NetworkMode,
    ) -> Result<Option<String>, RuntimeError> {
        // The name filter matches parts of names: `choose` keeps exact ones.
        let filters = HashMap::from([("name", vec![name.to_owned()])]);
        let options = ListNetworksOptionsBuilder::new().filters(&filters).build();
        let networks = self
            .docker
            .list_networks(Some(options))
            .await
            .map_err(|source| {
                self.fail(DockerError::ListNetworks {
                    namespace: namespace.to_owned(),
                    source,
                })
            })?;
        choose(networks, namespace, name, mode).map_err(|error| self.fail(error))
    }

    /// Creates our network `name`, returning its id; one that another
    /// caller created meanwhile (409) counts as created (`None`).
    async fn create_network(
        &self,
        namespace: &str,
        name: &str,
        mode: NetworkMode,
    ) -> Result<Option<String>, RuntimeError> {
        match self
            .docker
            .create_network(create_request(namespace, name, mode))
            .await
        {
            Ok(created) => {
                tracing::info!(namespace, network = name, id = %created.id, %mode, "namespace network created");
                Ok(Some(created.id))
            }
            Err(source) if status_of(&source) == Some(409) => Ok(None),
            Err(source) => Err(self.fail(DockerError::CreateNetwork {
                name: name.to_owned(),
                source,
            })),
        }
    }
}

/// The networking part of a create request: the endpoint on network `id`
/// pinned by id (the engine would otherwise look it up by name when the
/// container starts); nothing for `none`.
pub(crate) fn networking_config(network_mode: &str) -> Option<NetworkingConfig> {
    (network_mode != NO_NETWORK).then(|| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            network_mode.to_owned(),
            EndpointSettings {
                network_id: Some(network_mode.to_owned()),
                ..EndpointSettings::default()
            },
        )])),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(id: &str, name: &str, namespace: Option<&str>, mode: NetworkMode) -> Network {
        let request = create_request(namespace.unwrap_or("x"), name, mode);
        Network {
            id: Some(id.to_owned()),
            name: Some(name.to_owned()),
            driver: request.driver,
            internal: request.internal,
            options: request.options,
            labels: namespace.and(request.labels),
            ..Network::default()
        }
    }

    #[test]
    fn names_and_requests_follow_the_mode() {
        assert_eq!(
            network_name("ns", NetworkMode::Isolated).as_deref(),
            Some("containerlease-ns-isolated")
        );
        let isolated = create_request("ns", "n", NetworkMode::Isolated);
        assert_eq!(isolated.internal, Some(true));
        assert_eq!(
            isolated.options.as_ref().and_then(|o| o.get(ICC_OPTION)),
            Some(&"false".to_owned())
        );
        let labels = isolated.labels.unwrap();
        assert_eq!(
            labels.get(labels::MANAGED).map(String::as_str),
            Some("true")
        );
        assert_eq!(
            labels.get(labels::NAMESPACE).map(String::as_str),
            Some("ns")
        );
        assert_eq!(
            create_request("ns", "n", NetworkMode::Egress).internal,
            Some(false)
        );
    }

    #[test]
    fn only_our_exactly_named_network_is_chosen() {
        let mode = NetworkMode::Egress;
        let name = "containerlease-ns-egress";
        let longer = network("a", "containerlease-ns-egress-2", Some("ns"), mode);
        assert_eq!(
            choose(vec![longer.clone()], "ns", name, mode).unwrap(),
            None
        );
        let ours_b = network("b", name, Some("ns"), mode);
        let ours_c = network("c", name, Some("ns"), mode);
        assert_eq!(
            choose(
                vec![ours_c.clone(), longer, ours_b.clone()],
                "ns",
                name,
                mode
            )
            .unwrap(),
            Some("b".to_owned()),
            "the same creation time: the smallest id"
        );
        let created = |mut network: Network, at: &str| {
            network.created = Some(at.to_owned());
            network
        };
        let later = created(ours_b.clone(), "2026-12-01T10:00:00.51Z");
        let earlier = created(ours_c, "2026-12-01T10:00:00.5Z");
        assert_eq!(
            choose(vec![later, earlier], "ns", name, mode).unwrap(),
            Some("c".to_owned()),
            "the earliest created, read as a time, not as text"
        );
        let foreign = network("0", name, None, mode);
        assert!(matches!(
            choose(vec![foreign.clone()], "ns", name, mode),
            Err(DockerError::ForeignNetwork { .. })
        ));
        let other_namespace = network("0", name, Some("other"), mode);
        assert!(matches!(
            choose(vec![other_namespace], "ns", name, mode),
            Err(DockerError::ForeignNetwork { .. })
        ));
        assert_eq!(
            choose(vec![foreign, ours_b], "ns", name, mode).unwrap(),
            Some("b".to_owned())
        );
    }

    #[test]
    fn a_network_of_ours_that_lets_containers_talk_is_refused() {
        let mode = NetworkMode::Isolated;
        let name = "containerlease-ns-isolated";
        let mut open = network("a", name, Some("ns"), mode);
        open.options = Some(HashMap::new());
        assert!(matches!(
            choose(vec![open], "ns", name, mode),
            Err(DockerError::MisconfiguredNetwork { .. })
        ));
        let mut routed = network("a", name, Some("ns"), mode);
        routed.internal = Some(false);
        assert!(choose(vec![routed], "ns", name, mode).is_err());
        let right = network("a", name, Some("ns"), mode);
        assert!(choose(vec![right], "ns", name, mode).is_ok());
    }
}
