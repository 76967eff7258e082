//! Lease events, broadcast to adapters (HTTP, UI, metrics).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::lease::Lease;

/// What happened to a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Stored as pending.
    Created,
    /// Its container is up.
    Running,
    /// Provisioning failed or timed out.
    Error,
    /// Its container stopped or vanished.
    Exited,
    /// Its expiry moved.
    Extended,
    /// It expires within the configured lead.
    ExpiringSoon,
    /// It ended and its container is confirmed gone.
    Deleted,
    /// A removal of its container failed (it will be retried).
    ReapFailed,
}

impl EventKind {
    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Running => "running",
            EventKind::Error => "error",
            EventKind::Exited => "exited",
            EventKind::Extended => "extended",
            EventKind::ExpiringSoon => "expiring_soon",
            EventKind::Deleted => "deleted",
            EventKind::ReapFailed => "reap_failed",
        }
    }
}

/// One event: what happened, when, and the lease as it was then.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseEvent {
    /// What happened.
    pub kind: EventKind,
    /// When, by the engine's clock.
    pub at: DateTime<Utc>,
    /// The lease after the change.
    pub lease: Lease,
    /// For `deleted`: how late the removal was handed to the runtime after
    /// the lease became due, in milliseconds (reap lateness).
    pub lateness_ms: Option<i64>,
}
