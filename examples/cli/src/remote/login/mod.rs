//! `lease login --server URL`: a personal token for this machine.
//!
//! When the server signs people in with OpenID Connect (`GET /api/auth`
//! says `oidc`):
//! - **loopback** (the default): listen on 127.0.0.1, open the browser on
//!   `{server}/auth/cli?port=P&state=S&code_challenge=C&name=N` (the URL is
//!   printed too), where the person signs in and allows `lease`; the server
//!   sends the browser back to `http://127.0.0.1:P/callback?code=K&state=S`,
//!   and `K` with the verifier of `C` buys a token at `POST /auth/cli/token`.
//! - **device** (`--device`, or no display and no BROWSER): print a URL and
//!   a code to enter there from any device, and poll until it is allowed.
//!
//! Otherwise (or with `--token`) a token is pasted, as before. The token is
//! kept 0600 by [`credentials::store`].

mod browser;
mod loopback;
mod pkce;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use lease_client::Client;
use lease_client::auth::{DevicePoll, MintedToken, poll_interval};

use super::credentials::{self, Credentials};
use crate::cli::LoginArgs;
use crate::commands::interrupt_token;
use crate::error::CliError;
use crate::output::note;

/// How long the loopback sign-in waits for the browser.
const LOOPBACK_WAIT: Duration = Duration::from_secs(5 * 60);
/// Longest a device sign-in waits, whatever the server says.
const DEVICE_WAIT_MAX: Duration = Duration::from_secs(15 * 60);
/// Longest token name the server accepts, in characters.
const MAX_NAME: usize = 64;

/// `lease login`.
pub async fn login(server: &str, args: LoginArgs) -> Result<ExitCode, CliError> {
    let server = credentials::normalised(server)?;
    if args.token {
        return credentials::login_with_pasted_token(&server).await;
    }
    let client = Client::new(&server, None).map_err(|e| CliError::Usage(e.to_string()))?;
    let auth = client.auth_info().await?;
    if !auth.is_oidc() {
        if args.device {
            return Err(CliError::Usage(format!(
                "the lease-server at {server} does not sign people in with OpenID Connect \
                 (it uses {}): run `lease login --token` and paste a token",
                auth.mode
            )));
        }
        return credentials::login_with_pasted_token(&server).await;
    }
    let name = token_name(args.name.as_deref())?;
    let minted = if args.device || !browser::available() {
        device(&client, &name).await?
    } else {
        loopback(&client, &name).await?
    };
    keep(&server, minted)
}

/// Stores the minted token and says so.
fn keep(server: &str, minted: MintedToken) -> Result<ExitCode, CliError> {
    let path = credentials::store(&Credentials {
        server: server.to_owned(),
        token: minted.token,
    })?;
    note(&format!(
        "logged in to {server} as `{}` with the personal token “{}”; it is in {} (readable by \
         you only). `lease logout` revokes it.",
        minted.owner,
        minted.name,
        path.display()
    ));
    Ok(ExitCode::SUCCESS)
}

/// The token's name: `--name`, else `lease on <host>`; 1 to 64 printable
/// characters.
fn token_name(given: Option<&str>) -> Result<String, CliError> {
    let name = match given {
        Some(name) => name.trim().to_owned(),
        None => format!("lease on {}", host_name()),
    };
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(CliError::Usage(
            "--name must be 1 to 64 printable characters".to_owned(),
        ));
    }
    if name.chars().count() > MAX_NAME {
        if given.is_some() {
            return Err(CliError::Usage(
                "--name must be 1 to 64 printable characters".to_owned(),
            ));
        }
        return Ok(name.chars().take(MAX_NAME).collect());
    }
    Ok(name)
}

/// This machine's name, for the default token name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty() && !name.chars().any(char::is_control))
        .unwrap_or_else(|| "this machine".to_owned())
}

/// The loopback sign-in: browser, callback, code exchange.
async fn loopback(client: &Client, name: &str) -> Result<MintedToken, CliError> {
    let secrets = pkce::Secrets::new();
    let listener = loopback::Listener::bind().await?;
    let port = listener.port()?;
    let mut url = client.base().clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(["auth", "cli"]);
    }
    url.query_pairs_mut()
        .append_pair("port", &port.to_string())
        .append_pair("state", &secrets.state)
        .append_pair("code_challenge", &secrets.challenge)
        .append_pair("name", name);
    let opened = browser::open(url.as_str());
    note(&format!(
        "{} sign in and allow `lease` there:\n\n    {url}\n\nWaiting for the browser (up to {} \
         min; Ctrl-C gives up; `lease login --device` signs in from another device)…",
        if opened {
            "Your browser is opening; if it does not, open this URL yourself,"
        } else {
            "Open this URL in a browser,"
        },
        LOOPBACK_WAIT.as_secs() / 60
    ));
    let interrupt = interrupt_token();
    let answer = tokio::select! {
        answer = listener.wait(&secrets.state) => answer?,
        () = tokio::time::sleep(LOOPBACK_WAIT) => {
            return Err(CliError::SignIn(format!(
                "nobody signed in within {} minutes", LOOPBACK_WAIT.as_secs() / 60
            )));
        }
        () = interrupt.cancelled() => return Err(CliError::Interrupted),
    };
    let code = match answer {
        loopback::Answer::Code(code) => code,
        loopback::Answer::Refused(error) => {
            return Err(CliError::SignIn(format!(
                "the browser answered `{}`",
                printable(&error)
            )));
        }
    };
    tracing::debug!(port, "the browser came back; trading the code");
    client
        .cli_token(&code, &secrets.verifier)
        .await
        .map_err(|error| match error.status() {
            Some(400 | 401 | 403 | 404) => CliError::SignIn(format!(
                "the server refused the code ({error}); run `lease login` again"
            )),
            _ => error.into(),
        })
}

/// The device-style sign-in: print URL and code, poll.
async fn device(client: &Client, name: &str) -> Result<MintedToken, CliError> {
    let start = client.device_start(name).await?;
    let wait = Duration::from_secs(start.expires_in).min(DEVICE_WAIT_MAX);
    note(&format!(
        "To sign in, open this URL on any device:\n\n    {}\n\nand enter the code:\n\n    {}\n\n\
         Waiting (the code expires in {} min; Ctrl-C gives up)…",
        printable(&start.verification_uri),
        printable(&start.user_code),
        wait.as_secs().div_ceil(60)
    ));
    let deadline = Instant::now() + wait;
    let mut interval = poll_interval(start.interval);
    let interrupt = interrupt_token();
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = interrupt.cancelled() => return Err(CliError::Interrupted),
        }
        if Instant::now() > deadline {
            return Err(CliError::SignIn(
                "the code expired before anyone allowed it".to_owned(),
            ));
        }
        match client.device_poll(&start.device_code).await? {
            DevicePoll::Token(minted) => return Ok(minted),
            DevicePoll::Pending => {}
            DevicePoll::SlowDown => interval = poll_interval(interval.as_secs() + 5),
            DevicePoll::Denied => {
                return Err(CliError::SignIn(
                    "the sign-in was refused in the browser".to_owned(),
                ));
            }
            DevicePoll::Expired => {
                return Err(CliError::SignIn(
                    "the code expired before anyone allowed it".to_owned(),
                ));
            }
        }
    }
}

/// `text` without control characters (it came from the network and goes
/// to a terminal), at most 300 characters.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_names_are_checked() {
        assert_eq!(token_name(Some(" laptop ")).ok(), Some("laptop".to_owned()));
        assert!(token_name(Some("")).is_err());
        assert!(token_name(Some("a\u{7}b")).is_err());
        assert!(token_name(Some(&"x".repeat(65))).is_err());
        let default = token_name(None).unwrap_or_default();
        assert!(default.starts_with("lease on "));
        assert!(default.chars().count() <= MAX_NAME);
    }

    #[test]
    fn network_text_is_made_printable() {
        assert_eq!(printable("ABCD-EFGH"), "ABCD-EFGH");
        assert_eq!(printable("a\u{1b}[2Jb\r\n"), "a[2Jb");
        assert_eq!(printable(&"y".repeat(400)).len(), 300);
    }
}
