//! Remote mode (`--server URL`): the lease commands through a lease-server's
//! HTTP API with [`lease_client`] — no Docker socket, no store here — with
//! the same output, exit codes and `--output json` as the local commands.

mod attach;
pub mod copy;
pub mod credentials;
pub mod forward;
mod leases;
pub mod login;
mod lookup;
mod session;

use std::process::ExitCode;

use lease_client::{Client, ClientError};

use crate::cli::{Command, Output, TokenCommand};
use crate::context::Context;
use crate::error::CliError;

/// The environment variable with the bearer token.
pub const TOKEN_VAR: &str = "LEASE_TOKEN";

/// A lease-server to talk to, and how to print.
#[derive(Debug)]
pub struct Remote {
    /// The API client (with the token, if any).
    pub client: Client,
    /// `--owner` as given: an admin's view of another owner (never `$USER`).
    pub owner: Option<String>,
    /// How results are printed.
    pub output: Output,
}

impl Remote {
    /// The client of `server`, with the token from LEASE_TOKEN or the one
    /// `lease login` stored for this server.
    pub fn new(context: &Context, server: &str) -> Result<Self, CliError> {
        let token = match std::env::var(TOKEN_VAR) {
            Ok(token) if !token.trim().is_empty() => Some(token.trim().to_owned()),
            _ => credentials::token_for(server)?,
        };
        let client = Client::new(server, token).map_err(|e| CliError::Usage(e.to_string()))?;
        Ok(Remote {
            client,
            owner: context.args.owner.clone(),
            output: context.output(),
        })
    }

    /// The server's base URL, for messages.
    pub fn server(&self) -> String {
        self.client.base().as_str().trim_end_matches('/').to_owned()
    }

    /// A client error as the CLI reports it: a refused token gets a hint.
    pub fn error(&self, error: ClientError) -> CliError {
        match error {
            ClientError::Api {
                status: 401,
                message,
                ..
            } => CliError::Unauthorized {
                server: self.server(),
                message,
            },
            other => CliError::Remote(other),
        }
    }
}

/// Runs `command` through the lease-server at `server`.
pub async fn dispatch(
    context: &Context,
    server: &str,
    command: Command,
) -> Result<ExitCode, CliError> {
    let refuse = |command| Err(CliError::LocalOnly { command });
    match command {
        Command::Reap(_) => return refuse("reap"),
        Command::Reconcile(_) => return refuse("reconcile"),
        Command::Token(TokenCommand::New(_)) => return refuse("token new"),
        _ => {}
    }
    let remote = Remote::new(context, server)?;
    match command {
        Command::Up(args) => leases::up(&remote, args).await,
        Command::Ls(args) => leases::ls(&remote, args).await,
        Command::Status(args) => leases::status(&remote, args).await,
        Command::Extend(args) => leases::extend(&remote, args).await,
        Command::Rm(args) => leases::rm(&remote, args).await,
        Command::Usage(args) => leases::usage(&remote, args).await,
        Command::Prices(args) => leases::prices(&remote, args).await,
        Command::Logs(args) => session::logs(&remote, args).await,
        Command::Shell(args) => session::shell(&remote, args).await,
        Command::Run(args) => session::run(&remote, args).await,
        Command::Cp(args) => copy::cp(&remote, args).await,
        Command::PortForward(args) => forward::port_forward(&remote, args).await,
        Command::Reap(_)
        | Command::Reconcile(_)
        | Command::Token(_)
        | Command::Login(_)
        | Command::Logout
        | Command::Completions(_) => Err(CliError::Usage(
            "this command does not go through a lease-server".to_owned(),
        )),
    }
}
