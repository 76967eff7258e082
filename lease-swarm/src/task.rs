//! A lease's task: which one is current, and what its state means for the
//! lease.
//!
//! | task state | lease unit |
//! |---|---|
//! | `new` `allocated` `pending` `assigned` `accepted` `preparing` `ready` `starting` | pending, with the task's own error or message (`no suitable node (scheduling constraints not satisfied on 1 node)`) |
//! | `running` | running |
//! | `complete` `shutdown` `remove` | exited, with the container's exit code when the node reported one |
//! | `failed` `rejected` `orphaned` | failed, with the task's error (`No such image: …`, `node is down`) |

use bollard::models::{Task, TaskState, TaskStatus};

/// What a task's state means for the lease, before it becomes the port's
/// unit state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not placed or not started yet; the cluster's reason when it gave one.
    Pending { reason: Option<String> },
    /// The container runs.
    Running,
    /// The container has ended (or is being removed).
    Exited { code: Option<i64> },
    /// The task failed, was rejected by its node or lost with it.
    Failed { reason: String },
}

/// The task's error, else its message, when not empty.
fn reason_of(status: &TaskStatus) -> Option<String> {
    [status.err.as_deref(), status.message.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|text| !text.is_empty())
        .map(str::to_owned)
}

/// Maps a task's status to a [`Phase`].
pub(crate) fn phase(status: Option<&TaskStatus>) -> Phase {
    let Some(status) = status else {
        return Phase::Pending { reason: None };
    };
    let exit_code = status
        .container_status
        .as_ref()
        .and_then(|container| container.exit_code);
    match status.state {
        None
        | Some(
            TaskState::NEW
            | TaskState::ALLOCATED
            | TaskState::PENDING
            | TaskState::ASSIGNED
            | TaskState::ACCEPTED
            | TaskState::PREPARING
            | TaskState::READY
            | TaskState::STARTING,
        ) => Phase::Pending {
            reason: reason_of(status),
        },
        Some(TaskState::RUNNING) => Phase::Running,
        Some(TaskState::COMPLETE | TaskState::SHUTDOWN | TaskState::REMOVE) => {
            Phase::Exited { code: exit_code }
        }
        Some(state @ (TaskState::FAILED | TaskState::REJECTED | TaskState::ORPHANED)) => {
            Phase::Failed {
                reason: reason_of(status).unwrap_or_else(|| format!("task {state}")),
            }
        }
    }
}

/// The service's current task: the one the orchestrator changed last (its
/// highest version). A service of one replica with restart condition
/// `none` has one, unless its node was lost.
pub(crate) fn current(tasks: &[Task]) -> Option<&Task> {
    tasks.iter().max_by_key(|task| {
        task.version
            .as_ref()
            .and_then(|version| version.index)
            .unwrap_or(0)
    })
}

/// The id of the task's container, once its node reported one.
pub(crate) fn container_id(task: &Task) -> Option<&str> {
    task.status
        .as_ref()?
        .container_status
        .as_ref()?
        .container_id
        .as_deref()
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use bollard::models::{ContainerStatus, ObjectVersion};

    use super::*;

    fn status(state: TaskState, message: &str, err: Option<&str>) -> TaskStatus {
        TaskStatus {
            state: Some(state),
            message: Some(message.to_owned()),
            err: err.map(str::to_owned),
            ..TaskStatus::default()
        }
    }

    #[test]
    fn waiting_states_are_pending_with_the_clusters_reason() {
        let no_node = status(
            TaskState::PENDING,
            "pending task scheduling",
            Some("no suitable node (scheduling constraints not satisfied on 1 node)"),
        );
        assert_eq!(
            phase(Some(&no_node)),
            Phase::Pending {
                reason: Some(
                    "no suitable node (scheduling constraints not satisfied on 1 node)".into()
                )
            }
        );
        for state in [
            TaskState::NEW,
            TaskState::ALLOCATED,
            TaskState::ASSIGNED,
            TaskState::ACCEPTED,
            TaskState::PREPARING,
            TaskState::READY,
            TaskState::STARTING,
        ] {
            assert_eq!(
                phase(Some(&status(state, "preparing", Some("")))),
                Phase::Pending {
                    reason: Some("preparing".into())
                },
                "{state}"
            );
        }
        assert_eq!(phase(None), Phase::Pending { reason: None });
    }

    #[test]
    fn ended_states_are_exited_or_failed() {
        assert_eq!(
            phase(Some(&status(TaskState::RUNNING, "started", None))),
            Phase::Running
        );
        let mut complete = status(TaskState::COMPLETE, "finished", None);
        complete.container_status = Some(ContainerStatus {
            exit_code: Some(3),
            ..ContainerStatus::default()
        });
        assert_eq!(phase(Some(&complete)), Phase::Exited { code: Some(3) });
        assert_eq!(
            phase(Some(&status(TaskState::SHUTDOWN, "shutdown", None))),
            Phase::Exited { code: None }
        );
        assert_eq!(
            phase(Some(&status(
                TaskState::REJECTED,
                "preparing",
                Some("No such image: nope:1")
            ))),
            Phase::Failed {
                reason: "No such image: nope:1".into()
            }
        );
        assert_eq!(
            phase(Some(&status(TaskState::ORPHANED, " ", None))),
            Phase::Failed {
                reason: "task orphaned".into()
            }
        );
        assert!(matches!(
            phase(Some(&status(TaskState::FAILED, "task: non-zero exit (1)", None))),
            Phase::Failed { reason } if reason.contains("non-zero exit")
        ));
    }

    #[test]
    fn the_current_task_is_the_last_changed() {
        let task = |id: &str, index: u64| Task {
            id: Some(id.to_owned()),
            version: Some(ObjectVersion { index: Some(index) }),
            ..Task::default()
        };
        let tasks = [task("a", 10), task("b", 30), task("c", 20)];
        assert_eq!(current(&tasks).and_then(|t| t.id.as_deref()), Some("b"));
        assert!(current(&[]).is_none());
    }
}
