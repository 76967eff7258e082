//! The sessions of this server by id: limits per lease and per owner, the
//! detach timer, and the ends that come from outside a session (DELETE,
//! the lease ending, shutdown).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::StatusCode;
use lease_core::runtime::ExecRequest;
use lease_core::{EventKind, Lease, LeaseEvent, LeaseId, LeaseManager};
use rand::RngCore;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::ShellConfig;
use super::frames::EndReason;
use super::kill::SESSION_ENV;
use super::session::{Session, SessionEnd, SessionInfo, lease_end};
use crate::auth::Caller;
use crate::error::ApiError;

/// What to run in a new session (checked by the route).
#[derive(Clone, Debug)]
pub(crate) struct SessionPlan {
    /// Program and arguments.
    pub(crate) command: Vec<String>,
    /// With a terminal.
    pub(crate) tty: bool,
    /// Columns and rows (with a terminal).
    pub(crate) size: (u16, u16),
}

/// The sessions of this server.
#[derive(Debug)]
pub(crate) struct Registry {
    config: ShellConfig,
    manager: LeaseManager,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    shutdown: CancellationToken,
}

/// A fresh session id: 128 random bits as 26 lowercase base32 characters.
pub(crate) fn new_session_id() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let value = u128::from_be_bytes(bytes);
    // 26 groups of 5 bits cover 130 bits: the top group has 3.
    (0..26)
        .rev()
        .map(|group| {
            let index = ((value >> (group * 5)) & 0x1f) as usize;
            char::from(ALPHABET[index])
        })
        .collect()
}

impl Registry {
    /// An empty registry; starts its listener of lease events and of the
    /// shutdown (tracked by `config.tasks`).
    pub(crate) fn start(
        manager: LeaseManager,
        config: ShellConfig,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let registry = Arc::new(Registry {
            config,
            manager,
            sessions: Mutex::new(HashMap::new()),
            shutdown,
        });
        let events = registry.manager.subscribe();
        registry.config.tasks.spawn(registry.clone().listen(events));
        registry
    }

    /// The settings.
    pub(crate) fn config(&self) -> &ShellConfig {
        &self.config
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        // A panic while holding the lock leaves a valid map: keep using it.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session running `plan` in `lease` (running, the caller's)
    /// for `caller`.
    pub(crate) async fn create(
        self: &Arc<Self>,
        caller: &Caller,
        lease: &Lease,
        container: String,
        plan: SessionPlan,
    ) -> Result<Arc<Session>, ApiError> {
        if self.shutdown.is_cancelled() {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is stopping; no new sessions",
            ));
        }
        let info = SessionInfo {
            id: new_session_id(),
            lease_id: lease.id.clone(),
            owner: caller.owner.clone(),
            command: plan.command.clone(),
            tty: plan.tty,
            created_at: self.manager.clock().now(),
            container,
        };
        let size = plan.tty.then_some(plan.size);
        let session = Session::new(info, &self.manager, self.config.replay_bytes, size);
        self.reserve(&session)?;
        let request = ExecRequest {
            command: plan.command,
            tty: plan.tty,
            stdin: true,
            size,
            env: vec![format!("{SESSION_ENV}={}", session.info.id)],
        };
        let exec = match self.manager.exec(&lease.id, request).await {
            Ok(exec) => exec,
            Err(error) => {
                self.remove(&session.info.id);
                return Err(error.into());
            }
        };
        session.start(exec, self.manager.clone());
        tokio::spawn(self.clone().watch_detached(session.clone()));
        info!(
            lease_id = %lease.id,
            owner = %caller.owner,
            session_id = %session.info.id,
            tty = plan.tty,
            "shell session started"
        );
        Ok(session)
    }

    /// Holds a place for `session` within the limits.
    fn reserve(&self, session: &Arc<Session>) -> Result<(), ApiError> {
        let mut sessions = self.sessions();
        let live = sessions.values().filter(|s| s.is_live());
        let (mut on_lease, mut of_owner) = (0u32, 0u32);
        for other in live {
            on_lease += u32::from(other.info.lease_id == session.info.lease_id);
            of_owner += u32::from(other.info.owner == session.info.owner);
        }
        let too_many = |message: String| {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_sessions", message)
        };
        if on_lease >= self.config.max_sessions_per_lease {
            return Err(too_many(format!(
                "a lease may have at most {} sessions at once; end one first",
                self.config.max_sessions_per_lease
            )));
        }
        if of_owner >= self.config.max_sessions_per_owner {
            return Err(too_many(format!(
                "at most {} sessions may be open at once; end one first",
                self.config.max_sessions_per_owner
            )));
        }
        sessions.insert(session.info.id.clone(), session.clone());
        Ok(())
    }

    /// Session `id` of lease `lease`.
    pub(crate) fn get(&self, lease: &LeaseId, id: &str) -> Option<Arc<Session>> {
        self.sessions()
            .get(id)
            .filter(|s| &s.info.lease_id == lease)
            .cloned()
    }

    /// The sessions of `lease`, oldest first.
    pub(crate) fn of_lease(&self, lease: &LeaseId) -> Vec<Arc<Session>> {
        let mut found: Vec<_> = self
            .sessions()
            .values()
            .filter(|s| &s.info.lease_id == lease)
            .cloned()
            .collect();
        found.sort_by_key(|s| s.info.created_at);
        found
    }

    /// Forgets session `id`.
    pub(crate) fn remove(&self, id: &str) {
        if let Some(session) = self.sessions().remove(id) {
            session.removed.cancel();
        }
    }

    /// Ends `session` for `reason`, kills its processes and forgets it.
    pub(crate) async fn close(&self, session: &Arc<Session>, reason: EndReason, message: &str) {
        if session.finish(SessionEnd::ended(reason, message)) {
            session.kill().await;
        }
        self.remove(&session.info.id);
    }

    /// Waits while `session` is attached; ends it once nobody was attached
    /// for the detach timeout (an ended session is then forgotten).
    async fn watch_detached(self: Arc<Self>, session: Arc<Session>) {
        let mut changes = session.changes();
        let timeout = self.config.detach_timeout;
        loop {
            changes.borrow_and_update();
            let deadline = session.detach_deadline(timeout);
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = sleep_until(deadline) => {
                    if session.detach_deadline(timeout).is_some_and(|d| d <= tokio::time::Instant::now()) {
                        if session.is_live() {
                            info!(
                                lease_id = %session.info.lease_id,
                                owner = %session.info.owner,
                                session_id = %session.info.id,
                                "nobody attached within the detach timeout: ending the session"
                            );
                        }
                        self.close(&session, EndReason::Timeout, "nobody attached within the detach timeout").await;
                        return;
                    }
                }
                () = session.removed.cancelled() => return,
            }
        }
    }

    /// Ends sessions whose lease ended, and every session at shutdown.
    async fn listen(self: Arc<Self>, mut events: broadcast::Receiver<LeaseEvent>) {
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => {
                        if matches!(event.kind, EventKind::Deleted | EventKind::Exited) {
                            self.lease_ended(&event.lease);
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        warn!(missed, "shell sessions missed lease events: checking their leases");
                        self.check_leases().await;
                    }
                    Err(RecvError::Closed) => break,
                },
                () = self.shutdown.cancelled() => break,
            }
        }
        self.end_all().await;
    }

    /// Ends the live sessions of `lease`, which has ended (its container
    /// is gone or going: nothing to kill).
    fn lease_ended(&self, lease: &Lease) {
        for session in self.of_lease(&lease.id) {
            session.finish(SessionEnd::lease_ended(lease.end_reason));
        }
    }

    /// After missed events: ends the sessions whose lease has ended.
    async fn check_leases(&self) {
        let sessions: Vec<_> = self.sessions().values().cloned().collect();
        for session in sessions.iter().filter(|s| s.is_live()) {
            if let Some(end) = lease_end(&self.manager, &session.info.lease_id).await {
                session.finish(end);
            }
        }
    }

    /// At shutdown: ends every session and kills its processes.
    async fn end_all(&self) {
        let sessions: Vec<_> = self.sessions().drain().map(|(_, s)| s).collect();
        let kills = sessions.into_iter().map(|session| async move {
            if session.finish(SessionEnd::ended(
                EndReason::Shutdown,
                "the server is stopping",
            )) {
                session.kill().await;
            }
            session.removed.cancel();
        });
        futures::future::join_all(kills).await;
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_26_lowercase_base32_characters() {
        let ids: Vec<String> = (0..100).map(|_| new_session_id()).collect();
        for id in &ids {
            assert_eq!(id.len(), 26, "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)),
                "{id}"
            );
        }
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }
}
