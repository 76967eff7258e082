//! Waiting for a created unit to run: the runtime port's
//! [`create`](crate::ContainerRuntime::create) may return before the unit
//! runs anywhere (a cluster still placing it), so the engine polls
//! [`status`](crate::ContainerRuntime::status) until it is
//! [`UnitState::Running`], with a deadline
//! ([`ManagerConfig::placement_timeout`](crate::ManagerConfig::placement_timeout)).
//!
//! The first status is asked at once, so a runtime that starts units
//! synchronously (Docker) costs one status call and no wait.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use tracing::debug;

use crate::clock::Clock;
use crate::error::RuntimeError;
use crate::runtime::{ContainerRuntime, UnitState};

/// First delay between two status polls; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Longest delay between two status polls.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Waits until `unit` runs, polling its status at once and then with a
/// doubling backoff, until `timeout` (by `clock`) has passed.
///
/// [`RuntimeError::Placement`] with the runtime's own reason when the unit
/// failed, stopped, vanished, or was still pending at the deadline (then
/// with its last pending reason).
pub(crate) async fn wait_running(
    runtime: &dyn ContainerRuntime,
    clock: &Arc<dyn Clock>,
    unit: &str,
    timeout: Duration,
) -> Result<(), RuntimeError> {
    let deadline = clock.now() + TimeDelta::from_std(timeout).unwrap_or(TimeDelta::MAX);
    let mut backoff = FIRST_BACKOFF;
    let mut polls = 0u32;
    loop {
        polls += 1;
        let pending_reason = match runtime.status(unit).await? {
            Some(info) => match info.state {
                UnitState::Running => {
                    debug!(container = unit, polls, "unit running");
                    return Ok(());
                }
                UnitState::Pending { reason } => reason,
                UnitState::Failed { reason } => return Err(not_placed(unit, reason)),
                UnitState::Exited { code } => {
                    let code = code.map_or_else(|| "unknown".to_owned(), |c| c.to_string());
                    return Err(not_placed(
                        unit,
                        format!("it exited (code {code}) before running"),
                    ));
                }
            },
            None => return Err(not_placed(unit, "it vanished before running".to_owned())),
        };
        let now = clock.now();
        if now >= deadline {
            let waited = timeout.as_secs();
            let reason = match pending_reason {
                Some(reason) => format!("still pending after {waited} s: {reason}"),
                None => format!("still pending after {waited} s"),
            };
            return Err(not_placed(unit, reason));
        }
        debug!(container = unit, polls, reason = ?pending_reason, "unit pending");
        let step = TimeDelta::from_std(backoff).unwrap_or(TimeDelta::MAX);
        clock.sleep_until((now + step).min(deadline)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn not_placed(unit: &str, reason: String) -> RuntimeError {
    RuntimeError::Placement {
        container: unit.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::runtime::{ContainerInfo, MockContainerRuntime};

    fn info(state: UnitState) -> Option<ContainerInfo> {
        Some(ContainerInfo {
            id: "u1".into(),
            name: "unit".into(),
            state,
            labels: Default::default(),
            address: None,
            limits: None,
        })
    }

    fn clock() -> Arc<dyn Clock> {
        Arc::new(SystemClock)
    }

    #[tokio::test]
    async fn a_running_unit_costs_one_status_call() {
        let mut runtime = MockContainerRuntime::new();
        runtime
            .expect_status()
            .times(1)
            .returning(|_| Ok(info(UnitState::Running)));
        wait_running(&runtime, &clock(), "u1", Duration::from_secs(5))
            .await
            .expect("running");
    }

    #[tokio::test]
    async fn a_pending_unit_is_polled_until_it_runs() {
        let mut runtime = MockContainerRuntime::new();
        let mut calls = 0;
        runtime.expect_status().times(3).returning(move |_| {
            calls += 1;
            Ok(info(if calls < 3 {
                UnitState::Pending { reason: None }
            } else {
                UnitState::Running
            }))
        });
        wait_running(&runtime, &clock(), "u1", Duration::from_secs(5))
            .await
            .expect("running");
    }

    #[tokio::test]
    async fn a_failed_unit_fails_with_the_runtimes_reason() {
        let mut runtime = MockContainerRuntime::new();
        runtime.expect_status().times(1).returning(|_| {
            Ok(info(UnitState::Failed {
                reason: "no suitable node (scheduling constraints not satisfied)".into(),
            }))
        });
        let error = wait_running(&runtime, &clock(), "u1", Duration::from_secs(5))
            .await
            .expect_err("failed");
        assert!(error.to_string().contains("no suitable node"), "{error}");
    }

    #[tokio::test]
    async fn a_unit_pending_past_the_deadline_fails_with_its_last_reason() {
        let mut runtime = MockContainerRuntime::new();
        runtime.expect_status().returning(|_| {
            Ok(info(UnitState::Pending {
                reason: Some("no suitable node (insufficient resources on 1 node)".into()),
            }))
        });
        let error = wait_running(&runtime, &clock(), "u1", Duration::from_millis(200))
            .await
            .expect_err("deadline");
        let text = error.to_string();
        assert!(text.contains("still pending"), "{text}");
        assert!(text.contains("insufficient resources"), "{text}");
    }

    #[tokio::test]
    async fn a_vanished_or_exited_unit_is_not_placed() {
        for state in [None, info(UnitState::Exited { code: Some(1) })] {
            let mut runtime = MockContainerRuntime::new();
            runtime
                .expect_status()
                .times(1)
                .returning(move |_| Ok(state.clone()));
            let error = wait_running(&runtime, &clock(), "u1", Duration::from_secs(5))
                .await
                .expect_err("not placed");
            assert!(matches!(error, RuntimeError::Placement { .. }), "{error}");
        }
    }
}
