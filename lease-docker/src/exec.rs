//! Commands run inside a lease's container, with an optional terminal.

use std::sync::Arc;

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::exec::{ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use futures::StreamExt;
use lease_core::RuntimeError;
use lease_core::runtime::{ExecChunk, ExecControl, ExecRequest, ExecSession, LogSource};

use crate::error::{DockerError, status_of};
use crate::runtime::DockerRuntime;

/// An exec's output as the runtime port gives it.
type ExecOutput = futures::stream::BoxStream<'static, Result<ExecChunk, RuntimeError>>;
/// An exec's input.
type ExecInput = std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

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
            // Engines from API 1.42 size the terminal at once (older ones
            // ignore it and get the resize below).
            console_size: request
                .size
                .map(|(columns, rows)| vec![usize::from(rows), usize::from(columns)]),
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
        let (output, input) = self.start(&exec_id).await?;
        if let Some((columns, rows)) = request.size {
            // The process may not have its terminal yet; the caller can resize again.
            if let Err(error) = self.resize(&exec_id, columns, rows).await {
                tracing::debug!(exec = %exec_id, error = %error.chain(), "initial exec resize failed");
            }
        }
        tracing::debug!(namespace, container, exec = %exec_id, tty = request.tty, "exec started");
        let control = Arc::new(DockerExec {
            runtime: self.clone(),
            exec_id,
        });
        Ok(ExecSession {
            output,
            input: request.stdin.then_some(input),
            control,
        })
    }

    /// Starts an exec, attached.
    ///
    /// Always with `tty: false` in the start request, even for an exec that
    /// has a terminal (which it keeps: that comes from its creation). The
    /// flag only chooses how the engine sends the output: framed
    /// (stdout/stderr headers) or raw. bollard's decoder reads raw output
    /// whose read begins with byte 0, 1 or 2 as a frame header — eight bytes
    /// lost, and a wait for a "payload" as long as the next four bytes say —
    /// so a terminal's raw output such as `printf '\001…'` lost bytes or
    /// stalled. Framed, every byte arrives as written.
    async fn start(&self, exec_id: &str) -> Result<(ExecOutput, ExecInput), RuntimeError> {
        let start = StartExecOptions {
            detach: false,
            tty: false,
            output_capacity: None,
        };
        let started = self
            .docker
            .start_exec(exec_id, Some(start))
            .await
            .map_err(|source| {
                self.fail(DockerError::StartExec {
                    exec: exec_id.to_owned(),
                    source,
                })
            })?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(RuntimeError::operation(
                "run exec",
                "the engine detached an attached exec",
            ));
        };
        let runtime = self.clone();
        let output_exec = exec_id.to_owned();
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
        Ok((output, input))
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
}

/// The control of one exec on this engine: resize and exit code by its
/// exec id (made by this runtime on a container of its namespace, so no
/// further check is needed).
struct DockerExec {
    runtime: DockerRuntime,
    exec_id: String,
}

impl std::fmt::Debug for DockerExec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerExec")
            .field("exec_id", &self.exec_id)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl ExecControl for DockerExec {
    async fn resize(&self, columns: u16, rows: u16) -> Result<(), RuntimeError> {
        self.runtime.resize(&self.exec_id, columns, rows).await
    }

    async fn exit_code(&self) -> Result<Option<i64>, RuntimeError> {
        let exec = match self.runtime.docker.inspect_exec(&self.exec_id).await {
            Ok(exec) => exec,
            Err(source) if status_of(&source) == Some(404) => {
                return Err(RuntimeError::NotFound {
                    container: self.exec_id.clone(),
                });
            }
            Err(source) => {
                return Err(self.runtime.fail(DockerError::InspectExec {
                    exec: self.exec_id.clone(),
                    source,
                }));
            }
        };
        if exec.running.unwrap_or(false) {
            return Ok(None);
        }
        Ok(exec.exit_code)
    }
}
