//! The networks a namespace's services sit on, keeping the meaning of
//! lease-docker's modes: leases cannot reach each other, the server (the
//! host) reaches a lease's ports, and `isolated` has no route out.
//!
//! Swarm services can join only swarm-scoped networks. An overlay cannot
//! turn inter-container traffic off, so each namespace and mode gets a
//! **swarm-scoped bridge** whose driver options come from a config-only
//! network (Docker's `--config-only` / `--config-from`, the way macvlan
//! swarm networks are made; options given on a swarm-scoped bridge itself
//! are dropped by the engine, so its containers could talk):
//!
//! - `containerlease-<namespace>-swarm-<mode>-config`: a config-only network
//!   on **every node's engine**, with `enable_icc=false`, labelled
//!   `io.containerlease.managed=true` and the namespace;
//! - `containerlease-<namespace>-swarm-<mode>`: the swarm-scoped `bridge`
//!   network made from it (`internal` for `isolated`), created through the
//!   manager. The engine allows no labels on a network made from a config,
//!   so it counts as ours when its config is our labelled config network.
//!
//! The runtime creates the config network on the manager's engine and on
//! every engine of its node routes; on a node without a route the operator
//! creates it once (`docker network create --config-only --opt
//! com.docker.network.bridge.enable_icc=false --label
//! io.containerlease.managed=true --label io.containerlease.namespace=<ns>
//! containerlease-<ns>-swarm-egress-config`, and `…-isolated-config`);
//! otherwise its tasks are rejected with the engine's "configuration network
//! … does not exist", which fails the lease with that reason.
//!
//! The bridge is local to each node: a lease's address is its container's
//! address on its node (read from that node's engine). The server reaches it
//! when it runs on that node; for leases on other nodes the operator routes
//! each node's bridge subnet to the server (give each node's config network
//! its own `--subnet`), or the server cannot reach their ports (shells,
//! logs and files still work: they go through the engines).
//!
//! As on lease-docker, the runtime never removes these networks.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{ConfigReference, Network, NetworkCreateRequest};
use bollard::query_parameters::ListNetworksOptionsBuilder;
use lease_core::runtime::{NetworkMode, labels};
use lease_docker::network::ICC_OPTION;

use crate::error::{SwarmError, status_of};

/// The swarm network of `namespace` for `mode`.
///
/// ```
/// use lease_core::runtime::NetworkMode;
/// assert_eq!(lease_swarm::network::network_name("prod", NetworkMode::Egress), "containerlease-prod-swarm-egress");
/// ```
pub fn network_name(namespace: &str, mode: NetworkMode) -> String {
    format!("containerlease-{namespace}-swarm-{mode}")
}

/// The config-only network (on every node) the swarm network of
/// `namespace` and `mode` takes its options from.
pub fn config_network_name(namespace: &str, mode: NetworkMode) -> String {
    format!("{}-config", network_name(namespace, mode))
}

fn our_labels(namespace: &str) -> HashMap<String, String> {
    HashMap::from([
        (labels::MANAGED.to_owned(), "true".to_owned()),
        (labels::NAMESPACE.to_owned(), namespace.to_owned()),
    ])
}

fn has_our_labels(network: &Network, namespace: &str) -> bool {
    let label = |key: &str| {
        network
            .labels
            .as_ref()
            .and_then(|labels| labels.get(key))
            .map(String::as_str)
    };
    label(labels::MANAGED) == Some("true") && label(labels::NAMESPACE) == Some(namespace)
}

/// The networks named exactly `name` on `docker`.
async fn named(docker: &Docker, name: &str) -> Result<Vec<Network>, SwarmError> {
    let filters = HashMap::from([("name", vec![name.to_owned()])]);
    let options = ListNetworksOptionsBuilder::new().filters(&filters).build();
    let networks = docker
        .list_networks(Some(options))
        .await
        .map_err(|source| SwarmError::ListNetworks {
            name: name.to_owned(),
            source,
        })?;
    Ok(networks
        .into_iter()
        .filter(|network| network.name.as_deref() == Some(name))
        .collect())
}

/// Makes sure `docker` (a node's engine) has the config network of
/// `namespace` and `mode`: ours if it exists, created otherwise.
pub(crate) async fn ensure_config_network(
    docker: &Docker,
    endpoint: &str,
    namespace: &str,
    mode: NetworkMode,
) -> Result<(), SwarmError> {
    let name = config_network_name(namespace, mode);
    let existing = named(docker, &name).await?;
    if let Some(network) = existing.first() {
        return if has_our_labels(network, namespace) && network.config_only == Some(true) {
            Ok(())
        } else {
            Err(SwarmError::ForeignNetwork { name })
        };
    }
    let request = NetworkCreateRequest {
        name: name.clone(),
        config_only: Some(true),
        options: Some(HashMap::from([(ICC_OPTION.to_owned(), "false".to_owned())])),
        labels: Some(our_labels(namespace)),
        ..NetworkCreateRequest::default()
    };
    match docker.create_network(request).await {
        Ok(_) => {
            tracing::info!(namespace, network = %name, endpoint, %mode, "config network created on a node's engine");
            Ok(())
        }
        Err(source) if status_of(&source) == Some(409) => Ok(()),
        Err(source) => Err(SwarmError::CreateNetwork { name, source }),
    }
}

/// Whether `network` is the swarm network made from our config for `mode`.
fn is_ours(network: &Network, config: &str, mode: NetworkMode) -> bool {
    network.scope.as_deref() == Some("swarm")
        && network
            .config_from
            .as_ref()
            .and_then(|from| from.network.as_deref())
            == Some(config)
        && network.internal.unwrap_or(false) == (mode == NetworkMode::Isolated)
}

/// The id of the swarm network of `namespace` and `mode` on the manager,
/// created from the config network if it does not exist.
pub(crate) async fn ensure_swarm_network(
    manager: &Docker,
    namespace: &str,
    mode: NetworkMode,
) -> Result<String, SwarmError> {
    let name = network_name(namespace, mode);
    let config = config_network_name(namespace, mode);
    let find = || async {
        let networks = named(manager, &name).await?;
        let ours = networks
            .iter()
            .filter(|network| is_ours(network, &config, mode))
            .filter_map(|network| network.id.clone())
            .min();
        match ours {
            Some(id) => Ok(Some(id)),
            None if networks.is_empty() => Ok(None),
            None => Err(SwarmError::ForeignNetwork { name: name.clone() }),
        }
    };
    if let Some(id) = find().await? {
        return Ok(id);
    }
    let request = NetworkCreateRequest {
        name: name.clone(),
        driver: Some("bridge".to_owned()),
        scope: Some("swarm".to_owned()),
        internal: Some(mode == NetworkMode::Isolated),
        config_from: Some(ConfigReference {
            network: Some(config.clone()),
        }),
        ..NetworkCreateRequest::default()
    };
    match manager.create_network(request).await {
        Ok(created) => {
            tracing::info!(namespace, network = %name, id = %created.id, %mode, "swarm network created");
            Ok(created.id)
        }
        Err(source) if status_of(&source) == Some(409) => {
            find().await?.ok_or(SwarmError::NetworkVanished { name })
        }
        Err(source) => Err(SwarmError::CreateNetwork { name, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_swarm_network_made_from_our_config_is_ours() {
        let config = config_network_name("ns", NetworkMode::Egress);
        assert_eq!(config, "containerlease-ns-swarm-egress-config");
        let network = |scope: &str, from: &str, internal: bool| Network {
            scope: Some(scope.to_owned()),
            config_from: Some(ConfigReference {
                network: Some(from.to_owned()),
            }),
            internal: Some(internal),
            ..Network::default()
        };
        assert!(is_ours(
            &network("swarm", &config, false),
            &config,
            NetworkMode::Egress
        ));
        assert!(!is_ours(
            &network("local", &config, false),
            &config,
            NetworkMode::Egress
        ));
        assert!(!is_ours(
            &network("swarm", "theirs", false),
            &config,
            NetworkMode::Egress
        ));
        assert!(
            !is_ours(
                &network("swarm", &config, false),
                &config,
                NetworkMode::Isolated
            ),
            "an isolated network must be internal"
        );
        let mut labelled = Network::default();
        assert!(!has_our_labels(&labelled, "ns"));
        labelled.labels = Some(our_labels("ns"));
        assert!(has_our_labels(&labelled, "ns"));
        assert!(!has_our_labels(&labelled, "other"));
    }
}
