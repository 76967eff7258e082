//! `lease reconcile --dry-run`: lease-core's reconciliation plan
//! ([`LeaseManager::reconcile_plan`]), as the CLI prints it. The plan is
//! what a real pass applies; the end-to-end tests check that they agree.

use lease_core::{LeaseManager, PlannedChange, ReconcileAction};
use serde::Serialize;

use crate::error::CliError;

/// One planned change as printed (JSON fields in camelCase).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Planned {
    /// The change.
    pub action: ReconcileAction,
    /// The lease concerned, if known.
    pub lease_id: Option<String>,
    /// The container concerned (name), if any.
    pub container: Option<String>,
    /// Why.
    pub reason: String,
}

impl From<PlannedChange> for Planned {
    fn from(change: PlannedChange) -> Self {
        Planned {
            action: change.action,
            lease_id: change.lease_id.map(|id| id.to_string()),
            container: change.container.map(|container| container.name),
            reason: change.reason,
        }
    }
}

/// Works out the plan without changing anything.
pub async fn plan(manager: &LeaseManager) -> Result<Vec<Planned>, CliError> {
    let plan = manager.reconcile_plan().await?;
    Ok(plan.changes.into_iter().map(Planned::from).collect())
}
