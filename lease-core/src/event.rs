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

/// Where the engine's parts publish lease events: this process's
/// subscribers, stamped with the engine's clock.
#[derive(Clone, Debug)]
pub(crate) struct EventSink {
    sender: tokio::sync::broadcast::Sender<LeaseEvent>,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
}

impl EventSink {
    /// A sink keeping up to `capacity` events for slow subscribers.
    pub(crate) fn new(capacity: usize, clock: std::sync::Arc<dyn crate::clock::Clock>) -> Self {
        let (sender, _) = tokio::sync::broadcast::channel(capacity);
        EventSink { sender, clock }
    }

    /// A new subscription to the events published from now on.
    pub(crate) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<LeaseEvent> {
        self.sender.subscribe()
    }

    /// Publishes `kind` about `lease`.
    pub(crate) fn emit(&self, kind: EventKind, lease: &Lease) {
        self.emit_with_lateness(kind, lease, None);
    }

    /// Publishes `kind` about `lease` with its reap lateness.
    pub(crate) fn emit_with_lateness(
        &self,
        kind: EventKind,
        lease: &Lease,
        lateness_ms: Option<i64>,
    ) {
        tracing::debug!(lease_id = %lease.id, event = kind.as_str(), status = %lease.status, "lease event");
        let event = LeaseEvent {
            kind,
            at: self.clock.now(),
            lease: lease.clone(),
            lateness_ms,
        };
        // No subscribers is fine.
        let _ = self.sender.send(event);
    }
}
