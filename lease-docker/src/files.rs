//! Copying files into and out of a lease's container, as tar streams.
//!
//! Through `tar` run inside the container (an exec), not the engine's
//! archive endpoints (`GET`/`PUT /containers/{id}/archive`): those act on the
//! container's root filesystem from outside it, so they refuse every upload
//! into a read-only lease ("container rootfs is marked read-only", even to
//! its writable `/tmp`) and do not see tmpfs mounts at all (a file in `/tmp`
//! is "not found"), and they write as root whatever the lease's user. An
//! exec runs as the lease's user and sees the container as it does: the
//! kernel says what is allowed (read-only filesystem, permissions) and the
//! files belong to that user. The image needs a `tar` and a POSIX `sh`
//! (busybox's do).
//!
//! An upload is all or nothing: the archive is unpacked into a staging
//! directory next to its destination (`<dir>/.lease-upload-<random>`),
//! whose entries are moved into place only once the whole archive arrived
//! and unpacked; a failed or aborted upload removes the staging directory.

use std::time::Duration;

use futures::StreamExt;
use lease_core::RuntimeError;
use lease_core::files::{
    ArchiveInput, ArchiveOut, ArchiveStream, CopyReport, PathKind, check_container_path,
    split_parent,
};
use lease_core::runtime::{ExecHandle, ExecRequest, LogSource};
use tokio::io::AsyncWriteExt;

use crate::runtime::DockerRuntime;

/// Most bytes of a helper script's output kept (its answers are one line).
const MAX_SCRIPT_OUTPUT: usize = 16 * 1024;
/// How long an ended exec may take to report its exit code.
const EXIT_CODE_WAIT: Duration = Duration::from_secs(5);
/// Between two reads of an exec's exit code.
const EXIT_CODE_POLL: Duration = Duration::from_millis(20);

/// What a path to download is: `missing`, `denied <reason>`, or
/// `file|dir <KiB>`.
const PROBE_SOURCE: &str = r#"p="$1"
if [ ! -e "$p" ] && [ ! -L "$p" ]; then echo missing; exit 0; fi
if [ -d "$p" ]; then k=dir; else k=file; fi
if [ ! -r "$p" ] || { [ "$k" = dir ] && [ ! -x "$p" ]; }; then echo "denied permission denied"; exit 0; fi
s=$(du -sk "$p" 2>/dev/null | cut -f1)
echo "$k ${s:-0}""#;

/// Writes the archive of `$2` (a name in the directory `$1`) to stdout.
const PACK: &str = r#"cd "$1" && exec tar -c -f - "./$2""#;

/// Makes the staging directory `$1/.lease-upload-$2`: `ok`, `missing`,
/// `notdir` or `denied <mkdir's reason>`.
const STAGE: &str = r#"d="$1"
if [ ! -e "$d" ]; then echo missing; exit 0; fi
if [ ! -d "$d" ]; then echo notdir; exit 0; fi
if e=$(mkdir -m 700 "$d/.lease-upload-$2" 2>&1); then echo ok; else echo "denied ${e##*: }"; fi"#;

/// Unpacks stdin into the staging directory, without restoring owners (the
/// files belong to the container's user).
const UNPACK: &str = r#"exec tar -x -o -f - -C "$1/.lease-upload-$2""#;

/// Moves the staged entries into `$1` (directories merge into existing
/// ones), then removes the staging directory.
const COMMIT: &str = r#"s="$1/.lease-upload-$2"
cd "$s" || exit 1
for e in * .[!.]* ..?*; do
  if [ ! -e "$e" ] && [ ! -L "$e" ]; then continue; fi
  if [ -d "$e" ] && [ ! -L "$e" ] && [ -d "$1/$e" ] && [ ! -L "$1/$e" ]; then
    cp -a "$e/." "$1/$e/" || exit 1
  else
    rm -rf "$1/$e" && mv "$e" "$1/$e" || exit 1
  fi
done
cd / && rm -rf "$s""#;

/// Removes the staging directory.
const ABORT: &str = r#"rm -rf "$1/.lease-upload-$2""#;

/// The output and exit code of a helper script.
struct ScriptOutput {
    stdout: String,
    stderr: String,
    code: Option<i64>,
}

fn script(body: &str, args: &[&str]) -> Vec<String> {
    let mut command = vec!["/bin/sh".to_owned(), "-c".to_owned(), body.to_owned()];
    command.push("sh".to_owned());
    command.extend(args.iter().map(|arg| (*arg).to_owned()));
    command
}

/// A random name part for a staging directory.
fn staging_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    // Two independently seeded hashers: 128 random bits, without a new dependency.
    let a = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let b = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{a:016x}{b:016x}")
}

fn denied(path: &str, reason: &str) -> RuntimeError {
    let reason = reason.trim();
    RuntimeError::PathNotAllowed {
        path: path.to_owned(),
        reason: if reason.is_empty() {
            "not allowed".to_owned()
        } else {
            reason.to_lowercase()
        },
    }
}

/// `du -k`'s figure in bytes.
fn kib_to_bytes(kib: &str) -> u64 {
    kib.trim().parse::<u64>().unwrap_or(0).saturating_mul(1024)
}

fn stderr_reason(stderr: &str) -> String {
    let text = stderr.trim();
    let text = text.lines().last().unwrap_or(text);
    text.chars().take(500).collect()
}

impl DockerRuntime {
    /// Runs a helper script without input and collects its output.
    async fn run_script(
        &self,
        namespace: &str,
        container: &str,
        command: Vec<String>,
    ) -> Result<ScriptOutput, RuntimeError> {
        let session = self
            .exec_impl(
                namespace,
                container,
                ExecRequest {
                    command,
                    ..ExecRequest::default()
                },
            )
            .await?;
        let (stdout, stderr) = collect(session.output).await?;
        let code = wait_exit_code(&session.control).await?;
        Ok(ScriptOutput {
            stdout,
            stderr,
            code,
        })
    }

    /// See [`lease_core::ContainerRuntime::copy_from`].
    pub(crate) async fn copy_from_impl(
        &self,
        namespace: &str,
        container: &str,
        path: &str,
    ) -> Result<ArchiveOut, RuntimeError> {
        let path = check_container_path(path)?;
        let probe = self
            .run_script(namespace, container, script(PROBE_SOURCE, &[path]))
            .await?;
        let answer = probe.stdout.trim();
        let (kind, size) = match answer.split_once(' ') {
            _ if answer == "missing" => {
                return Err(RuntimeError::PathNotFound {
                    path: path.to_owned(),
                });
            }
            Some(("denied", reason)) => return Err(denied(path, reason)),
            Some(("file", kib)) => (PathKind::File, kib_to_bytes(kib)),
            Some(("dir", kib)) => (PathKind::Directory, kib_to_bytes(kib)),
            _ => {
                return Err(RuntimeError::operation(
                    "read a path in the container",
                    format!(
                        "the container cannot run the copy helper (needs `sh`, `du`, `tar`): {}",
                        stderr_reason(&probe.stderr)
                    ),
                ));
            }
        };
        let (parent, name) = split_parent(path);
        let session = self
            .exec_impl(
                namespace,
                container,
                ExecRequest {
                    command: script(PACK, &[parent, name]),
                    ..ExecRequest::default()
                },
            )
            .await?;
        tracing::debug!(namespace, container, path, size, exec = ?session.control, "copying out of a container");
        let archive = archive_stream(path.to_owned(), session);
        Ok(ArchiveOut {
            kind,
            size,
            archive,
        })
    }

    /// See [`lease_core::ContainerRuntime::copy_to`].
    pub(crate) async fn copy_to_impl(
        &self,
        namespace: &str,
        container: &str,
        dir: &str,
        archive: ArchiveInput,
    ) -> Result<CopyReport, RuntimeError> {
        let dir = check_container_path(dir)?;
        let token = staging_token();
        let stage = self
            .run_script(namespace, container, script(STAGE, &[dir, &token]))
            .await?;
        match stage.stdout.trim() {
            "ok" => {}
            "missing" => {
                return Err(RuntimeError::PathNotFound {
                    path: dir.to_owned(),
                });
            }
            "notdir" => return Err(denied(dir, "not a directory")),
            other => match other.strip_prefix("denied") {
                Some(reason) => return Err(denied(dir, reason)),
                None => {
                    return Err(RuntimeError::operation(
                        "write a path in the container",
                        format!(
                            "the container cannot run the copy helper (needs `sh`, `mkdir`, `tar`): {}",
                            stderr_reason(&stage.stderr)
                        ),
                    ));
                }
            },
        }
        let unpacked = self
            .unpack(namespace, container, dir, &token, archive)
            .await;
        let finish = match &unpacked {
            Ok(_) => COMMIT,
            Err(_) => ABORT,
        };
        let finished = self
            .run_script(namespace, container, script(finish, &[dir, &token]))
            .await;
        let report = unpacked?;
        let finished = finished?;
        if finished.code != Some(0) {
            // The commit failed part way: take the rest away.
            let _ = self
                .run_script(namespace, container, script(ABORT, &[dir, &token]))
                .await;
            return Err(denied(dir, &stderr_reason(&finished.stderr)));
        }
        tracing::debug!(
            namespace,
            container,
            dir,
            bytes = report.archive_bytes,
            "copied into a container"
        );
        Ok(report)
    }

    /// Streams `archive` into `tar -x` in the staging directory.
    async fn unpack(
        &self,
        namespace: &str,
        container: &str,
        dir: &str,
        token: &str,
        mut archive: ArchiveInput,
    ) -> Result<CopyReport, RuntimeError> {
        let session = self
            .exec_impl(
                namespace,
                container,
                ExecRequest {
                    command: script(UNPACK, &[dir, token]),
                    stdin: true,
                    ..ExecRequest::default()
                },
            )
            .await?;
        let Some(mut input) = session.input else {
            return Err(RuntimeError::operation(
                "write into the container",
                "the engine gave no input to the exec",
            ));
        };
        // The output is read alongside, so that a chatty tar never blocks.
        let output = tokio::spawn(collect(session.output));
        let mut bytes = 0u64;
        let mut aborted = None;
        let mut broken = false;
        while let Some(chunk) = archive.next().await {
            match chunk {
                Ok(chunk) => {
                    bytes += chunk.len() as u64;
                    if input.write_all(&chunk).await.is_err() {
                        broken = true;
                        break;
                    }
                }
                Err(error) => {
                    aborted = Some(error);
                    break;
                }
            }
        }
        let _ = input.shutdown().await;
        drop(input);
        let (_, stderr) = match output.await {
            Ok(result) => result?,
            Err(join) => return Err(RuntimeError::operation("write into the container", join)),
        };
        if let Some(error) = aborted {
            return Err(RuntimeError::operation("receive the archive", error));
        }
        let code = wait_exit_code(&session.control).await?;
        if broken || code != Some(0) {
            let reason = stderr_reason(&stderr);
            return Err(denied(
                dir,
                &if reason.is_empty() {
                    "the archive could not be unpacked".to_owned()
                } else {
                    reason
                },
            ));
        }
        Ok(CopyReport {
            archive_bytes: bytes,
        })
    }
}

/// An ended exec's exit code (`None` if the engine never says).
async fn wait_exit_code(control: &ExecHandle) -> Result<Option<i64>, RuntimeError> {
    let deadline = tokio::time::Instant::now() + EXIT_CODE_WAIT;
    loop {
        if let Some(code) = control.exit_code().await? {
            return Ok(Some(code));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(EXIT_CODE_POLL).await;
    }
}

/// Reads an exec's whole output (each stream capped at
/// [`MAX_SCRIPT_OUTPUT`]).
async fn collect(
    mut output: futures::stream::BoxStream<
        'static,
        Result<lease_core::runtime::ExecChunk, RuntimeError>,
    >,
) -> Result<(String, String), RuntimeError> {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    while let Some(chunk) = output.next().await {
        let chunk = chunk?;
        let buffer = match chunk.source {
            LogSource::Stdout => &mut stdout,
            LogSource::Stderr => &mut stderr,
        };
        let room = MAX_SCRIPT_OUTPUT.saturating_sub(buffer.len());
        buffer.extend_from_slice(&chunk.bytes[..chunk.bytes.len().min(room)]);
    }
    Ok((
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    ))
}

/// The archive of a `tar -c` exec: its stdout, then an error item if tar
/// failed (so that a reader never takes a cut archive for a whole one).
fn archive_stream(path: String, session: lease_core::runtime::ExecSession) -> ArchiveStream {
    struct Reading {
        path: String,
        exec: ExecHandle,
        output: futures::stream::BoxStream<
            'static,
            Result<lease_core::runtime::ExecChunk, RuntimeError>,
        >,
        stderr: Vec<u8>,
        done: bool,
    }
    let reading = Reading {
        path,
        exec: session.control,
        output: session.output,
        stderr: Vec::new(),
        done: false,
    };
    futures::stream::unfold(reading, |mut reading| async move {
        if reading.done {
            return None;
        }
        loop {
            match reading.output.next().await {
                Some(Ok(chunk)) if chunk.source == LogSource::Stdout => {
                    return Some((Ok(chunk.bytes), reading));
                }
                Some(Ok(chunk)) => {
                    let room = MAX_SCRIPT_OUTPUT.saturating_sub(reading.stderr.len());
                    reading
                        .stderr
                        .extend_from_slice(&chunk.bytes[..chunk.bytes.len().min(room)]);
                }
                Some(Err(error)) => {
                    reading.done = true;
                    return Some((Err(error), reading));
                }
                None => {
                    reading.done = true;
                    let code = wait_exit_code(&reading.exec).await;
                    return match code {
                        Ok(Some(0)) => None,
                        Ok(_) => {
                            let reason = stderr_reason(&String::from_utf8_lossy(&reading.stderr));
                            let error = denied(&reading.path, &format!("tar failed: {reason}"));
                            Some((Err(error), reading))
                        }
                        Err(error) => Some((Err(error), reading)),
                    };
                }
            }
        }
    })
    .boxed()
}
