//! The few `sh -c` scripts the [fake runtime](super::fake_runtime)
//! understands, so that its containers' logs and its execs behave as the
//! same commands do in a real container (the
//! [runtime conformance suite](super::runtime_conformance) runs the same
//! commands on every runtime).
//!
//! A script is statements separated by `;` or newlines, each one of:
//! `echo WORD…` (optionally `>&2`; `$NAME` expands a variable read
//! before), `read NAME` (one line of input), `cat` (input to output until
//! it is closed), `exit N`, `sleep N` (a pause, taken as none) and
//! `exec sleep N` (a container's keep-alive: the script stops there and
//! the container keeps running).
//! Words may be single-quoted. Anything else makes the script unknown and
//! the fake falls back to its plain behaviour.

use std::collections::HashMap;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

use crate::runtime::LogSource;

/// One statement of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Statement {
    /// `echo …`, to stdout or (with `>&2`) stderr.
    Echo {
        /// The words, `$NAME`s unexpanded.
        words: Vec<String>,
        /// Where it goes.
        to: LogSource,
    },
    /// `read NAME`.
    Read(String),
    /// `cat`.
    Cat,
    /// `exit N`.
    Exit(i64),
    /// `sleep N`: a pause (none, in the fake).
    Pause,
    /// `exec sleep N`: keep running.
    Sleep,
}

/// A parsed script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Script(Vec<Statement>);

/// How a script ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// It reached a `sleep`: still running.
    KeptRunning,
    /// It ended with this exit code.
    Exited(i64),
}

impl Script {
    /// The script of `command` when it is `sh -c SCRIPT` and every
    /// statement is one this module knows; else `None`.
    pub(crate) fn of(command: &[String]) -> Option<Script> {
        match command {
            [shell, flag, text] if (shell == "sh" || shell == "/bin/sh") && flag == "-c" => text
                .split([';', '\n'])
                .map(str::trim)
                .filter(|statement| !statement.is_empty())
                .map(parse_statement)
                .collect::<Option<Vec<_>>>()
                .map(Script),
            _ => None,
        }
    }

    /// The lines the script writes with no input, up to its first `sleep`
    /// or `exit`, and how it ends: a container's logs and state.
    pub(crate) fn run_without_input(&self) -> (Vec<(LogSource, String)>, Ending) {
        let mut lines = Vec::new();
        let variables = HashMap::new();
        for statement in &self.0 {
            match statement {
                Statement::Echo { words, to } => lines.push((*to, expand(words, &variables))),
                Statement::Read(_) | Statement::Cat | Statement::Pause => {}
                Statement::Exit(code) => return (lines, Ending::Exited(*code)),
                Statement::Sleep => return (lines, Ending::KeptRunning),
            }
        }
        (lines, Ending::Exited(0))
    }

    /// Runs the script as an exec: output chunks go to `emit` (each line
    /// with its `\n`, `\r\n` with a terminal, where stderr is stdout too),
    /// input is read from `input`. Returns the exit code.
    pub(crate) async fn run(
        &self,
        input: impl AsyncRead + Unpin,
        tty: bool,
        mut emit: impl FnMut(LogSource, Vec<u8>),
    ) -> i64 {
        let mut input = BufReader::new(input);
        let mut variables = HashMap::new();
        let newline = if tty { "\r\n" } else { "\n" };
        for statement in &self.0 {
            match statement {
                Statement::Echo { words, to } => {
                    let to = if tty { LogSource::Stdout } else { *to };
                    let line = expand(words, &variables) + newline;
                    emit(to, line.into_bytes());
                }
                Statement::Read(name) => {
                    let mut line = String::new();
                    let read = input.read_line(&mut line).await.unwrap_or(0);
                    if tty && read > 0 {
                        // A terminal echoes what is typed.
                        emit(LogSource::Stdout, line.replace('\n', "\r\n").into_bytes());
                    }
                    let value = line.trim_end_matches(['\r', '\n']).to_owned();
                    variables.insert(name.clone(), value);
                }
                Statement::Cat => {
                    let mut buffer = vec![0; 8192];
                    while let Ok(read @ 1..) = input.read(&mut buffer).await {
                        emit(LogSource::Stdout, buffer[..read].to_vec());
                    }
                }
                Statement::Exit(code) => return *code,
                Statement::Pause => {}
                Statement::Sleep => return 0,
            }
        }
        0
    }
}

fn parse_statement(text: &str) -> Option<Statement> {
    let words = split_words(text)?;
    // Pipes, lists, redirections and substitutions are beyond the fake.
    let special =
        |word: &String| word != ">&2" && word.contains(['&', '|', '<', '>', '`', '(', ')']);
    if words.iter().any(special) {
        return None;
    }
    let (head, rest) = words.split_first()?;
    match (head.as_str(), rest) {
        ("echo", [words @ .., redirect]) if redirect == ">&2" => Some(Statement::Echo {
            words: words.to_vec(),
            to: LogSource::Stderr,
        }),
        ("echo", words) => Some(Statement::Echo {
            words: words.to_vec(),
            to: LogSource::Stdout,
        }),
        ("read", [name]) => Some(Statement::Read(name.clone())),
        ("cat", []) => Some(Statement::Cat),
        ("exit", [code]) => code.parse().ok().map(Statement::Exit),
        ("sleep", [_]) => Some(Statement::Pause),
        ("exec", [sleep, _]) if sleep == "sleep" => Some(Statement::Sleep),
        _ => None,
    }
}

/// Splits on whitespace, keeping single-quoted words whole; `None` on an
/// unterminated quote.
fn split_words(text: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        quoted => current.push(quoted),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                current.push(c);
            }
        }
    }
    if in_word {
        words.push(current);
    }
    Some(words)
}

/// The words joined by spaces, each `$NAME` replaced by its value (empty
/// when unset).
fn expand(words: &[String], variables: &HashMap<String, String>) -> String {
    words
        .iter()
        .map(|word| expand_word(word, variables))
        .collect::<Vec<_>>()
        .join(" ")
}

fn expand_word(word: &str, variables: &HashMap<String, String>) -> String {
    let Some((before, after)) = word.split_once('$') else {
        return word.to_owned();
    };
    let end = after
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(after.len());
    let (name, rest) = after.split_at(end);
    let value = variables.get(name).map(String::as_str).unwrap_or_default();
    format!("{before}{value}{}", expand_word(rest, variables))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn known_scripts_parse_and_unknown_ones_do_not() {
        assert!(Script::of(&sh("echo a; echo 'b c' >&2; exec sleep 600")).is_some());
        assert!(Script::of(&sh("echo a && rm -rf /")).is_none());
        assert!(Script::of(&["sleep".into(), "600".into()]).is_none());
        assert!(Script::of(&sh("echo 'open")).is_none());
    }

    #[test]
    fn a_container_script_logs_until_its_sleep() {
        let script = Script::of(&sh(
            "echo one; sleep 1; echo two >&2; exec sleep 5; echo never",
        ))
        .expect("known");
        let (lines, ending) = script.run_without_input();
        assert_eq!(
            lines,
            vec![
                (LogSource::Stdout, "one".to_owned()),
                (LogSource::Stderr, "two".to_owned())
            ]
        );
        assert_eq!(ending, Ending::KeptRunning);
        let exits = Script::of(&sh("echo bye; exit 4")).expect("known");
        assert_eq!(exits.run_without_input().1, Ending::Exited(4));
    }

    #[tokio::test]
    async fn an_exec_script_reads_its_input() {
        let script = Script::of(&sh("read name; echo got-$name; exit 2")).expect("known");
        let mut out = Vec::new();
        let code = script
            .run(&b"ada\n"[..], false, |source, bytes| {
                out.push((source, bytes))
            })
            .await;
        assert_eq!(code, 2);
        assert_eq!(out, vec![(LogSource::Stdout, b"got-ada\n".to_vec())]);
    }
}
