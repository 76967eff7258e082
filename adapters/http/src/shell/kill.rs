//! Signals for a session's whole process tree.
//!
//! Every session's exec runs with `CONTAINERLEASE_SESSION=<session id>` in
//! its environment, which its children inherit. A signal is sent by a second
//! exec in the same container that walks `/proc` and signals every process
//! whose environment holds that entry: the shell, whatever it started in
//! the background, and their children, without the server knowing their
//! pids. (A process that scrubs its own environment escapes it; removing the
//! container at the lease's end stops those too.)

use std::time::Duration;

use futures::StreamExt;
use lease_core::runtime::ExecRequest;
use lease_core::{ContainerRuntime, RuntimeError};

use super::frames::SignalName;

/// The environment variable naming a process's session.
pub(crate) const SESSION_ENV: &str = "CONTAINERLEASE_SESSION";

/// The longest a kill exec may take.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// The script of the kill exec: `$1` the session id, `$2` the signal name.
///
/// It finds every process first and signals them all with one `kill`, in
/// pid order (parents before their children, as a rule): signalling while
/// walking `/proc` would let a shell whose child was killed first run on
/// before its own turn came.
const KILL_SCRIPT: &str = concat!(
    r#"pids=; for p in /proc/[0-9]*; do "#,
    r#"tr "\0" "\n" 2>/dev/null < "$p/environ" | grep -qx "CONTAINERLEASE_SESSION=$1" "#,
    r#"&& pids="$pids ${p#/proc/}"; done; "#,
    r#"[ -z "$pids" ] || kill -"$2" $(echo $pids | tr " " "\n" | sort -n) 2>/dev/null; true"#,
);

/// The kill exec's command line.
pub(crate) fn kill_command(session_id: &str, signal: SignalName) -> Vec<String> {
    vec![
        "sh".to_owned(),
        "-c".to_owned(),
        KILL_SCRIPT.to_owned(),
        "kill".to_owned(),
        session_id.to_owned(),
        signal.as_str().to_owned(),
    ]
}

/// Sends `signal` to every process of session `session_id` in `container`,
/// waiting (10 s at most) for the kill exec to finish.
pub(crate) async fn signal_tree(
    runtime: &dyn ContainerRuntime,
    container: &str,
    session_id: &str,
    signal: SignalName,
) -> Result<(), RuntimeError> {
    let request = ExecRequest {
        command: kill_command(session_id, signal),
        ..ExecRequest::default()
    };
    let run = async {
        let mut exec = runtime.exec(container, request).await?;
        // Its output is nothing; reading it to the end waits for the walk.
        while let Some(chunk) = exec.output.next().await {
            chunk?;
        }
        Ok(())
    };
    tokio::time::timeout(KILL_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| {
            Err(RuntimeError::operation(
                "signal a session",
                "the kill exec did not finish in time",
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_passes_id_and_signal_as_arguments_not_script() {
        let command = kill_command("abc234", SignalName::Kill);
        assert_eq!(command[0], "sh");
        assert!(command[2].contains("CONTAINERLEASE_SESSION=$1"));
        assert!(command[2].contains(SESSION_ENV));
        assert_eq!(&command[3..], ["kill", "abc234", "KILL"]);
    }
}
