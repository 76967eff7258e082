//! Commands run inside a lease's container, with an optional terminal.

use bollard::container::LogOutput;
use bollard::exec::{ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use futures::StreamExt;
use lease_core::RuntimeError;
use lease_core::runtime::{ExecChunk, ExecRequest, ExecSession, LogSource};

use crate::container::{check_namespace_arg, check_reference};
use crate::error::{DockerError, status_of};
use crate::runtime::DockerRuntime;

/// Checks an exec id (hex, as the engine makes them) before it goes into a URL.
fn check_exec_id(exec_id: &str) -> Result<(), RuntimeError> {
    if !exec_id.is_empty() && exec_id.len() <= 128 && exec_id.bytes().all(|b| b.is_ascii_hexdigit())
    {
        Ok(())
    } else {
        Err(RuntimeError::Invalid(format!(
            "`{exec_id}` is not an exec id"
        )))
    }
}

/// Whether an exec environment entry is `KEY=VALUE` with a non-empty key
/// and no NUL anywhere.
fn valid_env_entry(entry: &str) -> bool {
    !entry.contains('\0')
        && entry
            .split_once('=')
            .is_some_and(|(key, _)| !key.is_empty())
}

impl DockerRuntime {
    /// See [`lease_core::ContainerRuntime::exec`].
    pub(crate) async fn exec_impl(
        &self,
        namespace: &str,
        container: &str,
        request: ExecRequest,
    ) -> Result<ExecSession, RuntimeError> {
        if request.command.is_empty() {
            return Err(RuntimeError::Invalid("exec command is empty".to_owned()));
        }
        if request.size.is_some() && !request.tty {
            return Err(RuntimeError::Invalid(
                "a terminal size needs `tty`".to_owned(),
            ));
        }
        if let Some(bad) = request.env.iter().find(|entry| !valid_env_entry(entry)) {
            return Err(RuntimeError::Invalid(format!(
                "exec environment entry `{bad}` is not KEY=VALUE"
            )));
        }
        let id = self.require_ours(namespace, container).await?;
        let config = ExecConfig {
            attach_stdin: Some(request.stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(request.tty),
            cmd: Some(request.command.clone()),
            env: (!request.env.is_empty()).then(|| request.env.clone()),
            privileged: Some(false),
            ..ExecConfig::default()
        };
        let created = self
            .docker
            .create_exec(&id, config)
            .await
            .map_err(|source| {
                self.fail(DockerError::CreateExec {
                    container: container.to_owned(),
                    source,
                })
            })?;
        let exec_id = created.id;
        let start = StartExecOptions {
            detach: false,
            tty: request.tty,
            output_capacity: None,
        };
        let started = self
            .docker
            .start_exec(&exec_id, Some(start))
            .await
            .map_err(|source| {
                self.fail(DockerError::StartExec {
                    exec: exec_id.clone(),
                    source,
                })
            })?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(RuntimeError::operation(
                "run exec",
                "the engine detached an attached exec",
            ));
        };
        if let Some((columns, rows)) = request.size {
            // The process may not have its terminal yet; the caller can resize again.
            if let Err(error) = self.resize(&exec_id, columns, rows).await {
                tracing::debug!(exec = %exec_id, error = %error.chain(), "initial exec resize failed");
            }
        }
        let runtime = self.clone();
        let output_exec = exec_id.clone();
        let output = output
            .filter_map(move |item| {
                let item = match item {
                    Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                        Some(Ok(ExecChunk {
                            source: LogSource::Stdout,
                            bytes: message.to_vec(),
                        }))
                    }
                    Ok(LogOutput::StdErr { message }) => Some(Ok(ExecChunk {
                        source: LogSource::Stderr,
                        bytes: message.to_vec(),
                    })),
                    Ok(LogOutput::StdIn { .. }) => None,
                    Err(source) => Some(Err(runtime.fail(DockerError::ExecOutput {
                        exec: output_exec.clone(),
                        source,
                    }))),
                };
                futures::future::ready(item)
            })
            .boxed();
        tracing::debug!(namespace, container, exec = %exec_id, tty = request.tty, "exec started");
        Ok(ExecSession {
            id: exec_id,
            output,
            input: request.stdin.then_some(input),
        })
    }

    /// See [`lease_core::ContainerRuntime::exec_resize`].
    pub(crate) async fn exec_resize_impl(
        &self,
        namespace: &str,
        exec_id: &str,
        columns: u16,
        rows: u16,
    ) -> Result<(), RuntimeError> {
        self.inspect_our_exec(namespace, exec_id).await?;
        self.resize(exec_id, columns, rows).await
    }

    async fn resize(&self, exec_id: &str, columns: u16, rows: u16) -> Result<(), RuntimeError> {
        let size = ResizeExecOptions {
            width: columns,
            height: rows,
        };
        self.docker
            .resize_exec(exec_id, size)
            .await
            .map_err(|source| {
                self.fail(DockerError::ResizeExec {
                    exec: exec_id.to_owned(),
                    source,
                })
            })
    }

    /// See [`lease_core::ContainerRuntime::exec_exit_code`].
    pub(crate) async fn exec_exit_code_impl(
        &self,
        namespace: &str,
        exec_id: &str,
    ) -> Result<Option<i64>, RuntimeError> {
        let exec = self.inspect_our_exec(namespace, exec_id).await?;
        if exec.running.unwrap_or(false) {
            return Ok(None);
        }
        Ok(exec.exit_code)
    }

    /// Inspects an exec and checks that its container is ours: managed and
    /// in `namespace` ([`RuntimeError::NotManaged`] otherwise).
    async fn inspect_our_exec(
        &self,
        namespace: &str,
        exec_id: &str,
    ) -> Result<bollard::models::ExecInspectResponse, RuntimeError> {
        check_namespace_arg(namespace)?;
        check_exec_id(exec_id)?;
        let exec = match self.docker.inspect_exec(exec_id).await {
            Ok(exec) => exec,
            Err(source) if status_of(&source) == Some(404) => {
                return Err(RuntimeError::NotFound {
                    container: exec_id.to_owned(),
                });
            }
            Err(source) => {
                return Err(self.fail(DockerError::InspectExec {
                    exec: exec_id.to_owned(),
                    source,
                }));
            }
        };
        let container = exec.container_id.clone().unwrap_or_default();
        check_reference(&container)?;
        self.require_ours(namespace, &container).await?;
        Ok(exec)
    }
}
