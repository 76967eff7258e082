//! `lease reconcile --dry-run`: what a reconciliation pass would do, worked
//! out read-only from the store and Docker's labelled containers.
//!
//! It follows the rules of lease-core's reconciler (`reconcile_once`), which
//! offers no dry run: leases are read before containers; a labelled
//! container with no live lease is removed, or adopted back from its labels
//! when the store has never heard of its lease; a running lease whose
//! container is gone or stopped becomes `exited`; a pending lease past the
//! provisioning timeout becomes `error`, one stuck for a while is retried.
//! The end-to-end tests check that it agrees with a real pass.

use std::collections::HashMap;

use lease_core::runtime::{ContainerInfo, labels};
use lease_core::{Lease, LeaseId, LeaseManager, ListQuery, OrphanPolicy, Status, StoreError};
use serde::Serialize;

use crate::error::CliError;

/// What a reconciliation pass would change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Remove a container that no live lease owns.
    RemoveContainer,
    /// Rebuild an unknown lease from its container's labels.
    Adopt,
    /// Mark a running lease whose container is gone or stopped `exited`.
    MarkExited,
    /// Restart a pending lease's stuck provisioning.
    RetryProvisioning,
    /// Mark a pending lease past the provisioning timeout `error`.
    TimeOut,
}

/// One planned change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Planned {
    /// The change.
    pub action: Action,
    /// The lease concerned, if known.
    pub lease_id: Option<String>,
    /// The container concerned (name), if any.
    pub container: Option<String>,
    /// Why.
    pub reason: String,
}

/// Works out the plan without changing anything.
pub async fn plan(manager: &LeaseManager) -> Result<Vec<Planned>, CliError> {
    let config = manager.config();
    let leases = manager.list_all(&ListQuery::default()).await?;
    let containers = manager.runtime().list_managed(&config.namespace).await?;
    let mut planned = Vec::new();

    let mut by_lease: HashMap<LeaseId, &ContainerInfo> = HashMap::new();
    for container in &containers {
        match container.lease_id() {
            Some(id) => {
                by_lease.insert(id, container);
            }
            None => planned.push(Planned {
                action: Action::RemoveContainer,
                lease_id: None,
                container: Some(container.name.clone()),
                reason: "no lease id label".into(),
            }),
        }
    }
    let known: HashMap<&LeaseId, &Lease> = leases.iter().map(|l| (&l.id, l)).collect();
    let mut unknown: Vec<(&LeaseId, &&ContainerInfo)> = by_lease
        .iter()
        .filter(|(id, _)| !known.contains_key(id))
        .collect();
    unknown.sort_by(|a, b| a.0.cmp(b.0));
    for (id, container) in unknown {
        let remove = |reason: &str| Planned {
            action: Action::RemoveContainer,
            lease_id: Some(id.to_string()),
            container: Some(container.name.clone()),
            reason: reason.to_owned(),
        };
        match manager.store().get(id).await {
            Ok(lease) if lease.status != Status::Deleted => {}
            Ok(_) => planned.push(remove("its lease has ended")),
            Err(StoreError::NotFound(_)) => {
                if config.orphan_policy == OrphanPolicy::Adopt && adoptable(manager, container) {
                    planned.push(Planned {
                        action: Action::Adopt,
                        lease_id: Some(id.to_string()),
                        container: Some(container.name.clone()),
                        reason: "the store has no such lease; rebuilt from the container's labels"
                            .into(),
                    });
                } else {
                    planned.push(remove("the store has no such lease"));
                }
            }
            Err(other) => return Err(other.into()),
        }
    }
    let now = manager.clock().now();
    for lease in &leases {
        let container = by_lease.get(&lease.id).copied();
        let item = |action: Action, reason: String| Planned {
            action,
            lease_id: Some(lease.id.to_string()),
            container: container.map(|c| c.name.clone()),
            reason,
        };
        match lease.status {
            Status::Running if container.is_none_or(|c| !c.running) => {
                let reason = container.map_or_else(
                    || "its container vanished".to_owned(),
                    |c| format!("its container is {}", c.state),
                );
                planned.push(item(Action::MarkExited, reason));
            }
            Status::Pending => {
                let age = (now - lease.created_at).to_std().unwrap_or_default();
                if age >= config.provision_timeout {
                    let reason = format!("pending for {} s", age.as_secs());
                    planned.push(item(Action::TimeOut, reason));
                } else if age >= config.stuck_pending_after {
                    let reason =
                        format!("pending for {} s with no provisioning here", age.as_secs());
                    planned.push(item(Action::RetryProvisioning, reason));
                }
            }
            _ => {}
        }
    }
    Ok(planned)
}

/// Whether the reconciler could rebuild a lease from this container's labels.
fn adoptable(manager: &LeaseManager, container: &ContainerInfo) -> bool {
    let owner = container.labels.contains_key(labels::OWNER);
    let offering = container
        .labels
        .get(labels::IMAGE_TYPE)
        .is_some_and(|key| manager.catalog().get(key).is_some());
    match (
        container.label_time(labels::CREATED_AT),
        container.label_time(labels::EXPIRES_AT),
    ) {
        (Some(created), Some(expires)) => owner && offering && expires > created,
        _ => false,
    }
}
