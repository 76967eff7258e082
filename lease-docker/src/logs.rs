//! A container's output as a stream of lines.
//!
//! The engine hands out output in frames that need not end at a line's end;
//! frames are cut into lines per stream (stdout, stderr), and a line longer
//! than [`MAX_LINE`] is cut too, so an untrusted container cannot make us
//! buffer without bound.

use std::collections::VecDeque;

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use lease_core::RuntimeError;
use lease_core::runtime::{LogLine, LogOptions, LogSource, LogStream};

use crate::error::{DockerError, status_of};
use crate::runtime::DockerRuntime;

/// Longest line handed out; longer output is cut into lines of this size.
pub const MAX_LINE: usize = 64 * 1024;

impl DockerRuntime {
    /// See [`lease_core::ContainerRuntime::logs`].
    pub(crate) async fn logs_impl(
        &self,
        namespace: &str,
        container: &str,
        options: LogOptions,
    ) -> Result<LogStream, RuntimeError> {
        let id = self.require_ours(namespace, container).await?;
        let tail = options
            .tail
            .map_or_else(|| "all".to_owned(), |n| n.to_string());
        let request = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(options.follow)
            .tail(&tail)
            .build();
        let frames = self.docker.logs(&id, Some(request));
        let runtime = self.clone();
        let container = container.to_owned();
        let frames = frames
            .map(move |frame| {
                frame.map_err(|source| {
                    if status_of(&source) == Some(404) {
                        RuntimeError::NotFound {
                            container: container.clone(),
                        }
                    } else {
                        runtime.fail(DockerError::Logs {
                            container: container.clone(),
                            source,
                        })
                    }
                })
            })
            .boxed();
        Ok(lines(frames))
    }
}

/// Cuts the engine's log frames into lines (per stream, at most
/// [`MAX_LINE`] bytes each); stops after the first error. Public for
/// runtimes that read the same frames elsewhere (lease-swarm's service
/// logs).
pub fn lines(frames: BoxStream<'static, Result<LogOutput, RuntimeError>>) -> LogStream {
    let state = Splitter {
        frames,
        stdout: Vec::new(),
        stderr: Vec::new(),
        ready: VecDeque::new(),
        ended: false,
    };
    stream::unfold(state, |mut state| async move {
        loop {
            if let Some(item) = state.ready.pop_front() {
                return Some((item, state));
            }
            if state.ended {
                return None;
            }
            match state.frames.next().await {
                Some(Ok(frame)) => state.push(frame),
                Some(Err(error)) => {
                    state.flush();
                    state.ready.push_back(Err(error));
                    state.ended = true;
                }
                None => {
                    state.flush();
                    state.ended = true;
                }
            }
        }
    })
    .boxed()
}

struct Splitter {
    frames: BoxStream<'static, Result<LogOutput, RuntimeError>>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    ready: VecDeque<Result<LogLine, RuntimeError>>,
    ended: bool,
}

impl Splitter {
    fn push(&mut self, frame: LogOutput) {
        let (source, bytes) = match frame {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                (LogSource::Stdout, message)
            }
            LogOutput::StdErr { message } => (LogSource::Stderr, message),
            LogOutput::StdIn { .. } => return,
        };
        let buffer = match source {
            LogSource::Stdout => &mut self.stdout,
            LogSource::Stderr => &mut self.stderr,
        };
        for &byte in bytes.iter() {
            if byte == b'\n' {
                let line = std::mem::take(buffer);
                self.ready.push_back(Ok(line_of(source, line)));
            } else {
                buffer.push(byte);
                if buffer.len() >= MAX_LINE {
                    let line = std::mem::take(buffer);
                    self.ready.push_back(Ok(line_of(source, line)));
                }
            }
        }
    }

    /// Hands out what is left without a line end.
    fn flush(&mut self) {
        for (source, buffer) in [
            (LogSource::Stdout, &mut self.stdout),
            (LogSource::Stderr, &mut self.stderr),
        ] {
            if !buffer.is_empty() {
                let line = std::mem::take(buffer);
                self.ready.push_back(Ok(line_of(source, line)));
            }
        }
    }
}

fn line_of(source: LogSource, mut bytes: Vec<u8>) -> LogLine {
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    LogLine {
        source,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use super::*;

    fn out(text: &str) -> Result<LogOutput, RuntimeError> {
        Ok(LogOutput::StdOut {
            message: text.as_bytes().to_vec().into(),
        })
    }
    fn err(text: &str) -> Result<LogOutput, RuntimeError> {
        Ok(LogOutput::StdErr {
            message: text.as_bytes().to_vec().into(),
        })
    }

    fn run(frames: Vec<Result<LogOutput, RuntimeError>>) -> Vec<Result<LogLine, RuntimeError>> {
        futures::executor::block_on(lines(stream::iter(frames).boxed()).collect())
    }

    #[test]
    fn frames_become_tagged_lines() {
        let got: Vec<LogLine> = run(vec![
            out("one\ntw"),
            err("bad\r\n"),
            out("o\nthree"),
            err("tail"),
        ])
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
        let texts: Vec<(LogSource, &str)> =
            got.iter().map(|l| (l.source, l.text.as_str())).collect();
        assert_eq!(
            texts,
            [
                (LogSource::Stdout, "one"),
                (LogSource::Stderr, "bad"),
                (LogSource::Stdout, "two"),
                (LogSource::Stdout, "three"),
                (LogSource::Stderr, "tail"),
            ]
        );
    }

    #[test]
    fn long_lines_are_cut_and_errors_end_the_stream() {
        let long = "x".repeat(MAX_LINE + 10);
        let got = run(vec![
            out(&long),
            Err(RuntimeError::NotFound {
                container: "c".into(),
            }),
            out("never\n"),
        ]);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].as_ref().unwrap().text.len(), MAX_LINE);
        assert_eq!(got[1].as_ref().unwrap().text.len(), 10);
        assert!(matches!(got[2], Err(RuntimeError::NotFound { .. })));
        let empty =
            futures::executor::block_on(lines(stream::empty().boxed()).try_collect::<Vec<_>>())
                .unwrap();
        assert!(empty.is_empty());
    }
}
