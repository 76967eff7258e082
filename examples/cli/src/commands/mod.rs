//! One module per command (or family of commands).

mod catalog;
mod leases;
mod maintenance;
mod session;
pub mod shapes;
mod token;
mod up;

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command, TokenCommand};
use crate::context::Context;
use crate::error::CliError;

/// Runs the parsed command line.
pub async fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    let context = Context::new(cli.global)?;
    match (cli.command, context.args.server.clone()) {
        (Command::Login(args), Some(server)) => crate::remote::login::login(&server, args).await,
        (Command::Login(_), None) => Err(CliError::Usage(
            "`lease login` needs the server: lease login --server URL (or LEASE_SERVER)".to_owned(),
        )),
        (Command::Logout, server) => crate::remote::credentials::logout(server.as_deref()).await,
        (Command::Completions(args), _) => catalog::completions(args),
        (command, Some(server)) => crate::remote::dispatch(&context, &server, command).await,
        (command, None) => local(&context, command).await,
    }
}

/// Runs a command on this host's store and Docker.
async fn local(context: &Context, command: Command) -> Result<ExitCode, CliError> {
    match command {
        Command::Up(args) => up::up(context, args).await,
        Command::Ls(args) => leases::ls(context, args).await,
        Command::Status(args) => leases::status(context, args).await,
        Command::Extend(args) => leases::extend(context, args).await,
        Command::Rm(args) => leases::rm(context, args).await,
        Command::Usage(args) => leases::usage(context, args).await,
        Command::Logs(args) => session::logs(context, args).await,
        Command::Shell(args) => session::shell(context, args).await,
        Command::Run(args) => session::run(context, args).await,
        Command::Cp(_) => Err(CliError::Usage(
            "lease cp goes through a lease-server: pass --server URL (or LEASE_SERVER)".to_owned(),
        )),
        Command::PortForward(_) => Err(CliError::Usage(
            "port-forward goes through a lease-server: pass --server URL (or LEASE_SERVER). \
             On the server's own host, a running lease's ports are also reachable directly \
             at its container's address (docker inspect)"
                .to_owned(),
        )),
        Command::Prices(args) => catalog::prices(context, args),
        Command::Reap(args) => maintenance::reap(context, args).await,
        Command::Reconcile(args) => maintenance::reconcile(context, args).await,
        Command::Token(TokenCommand::New(args)) => token::new(context, args),
        Command::Completions(args) => catalog::completions(args),
        Command::Login(_) | Command::Logout => Err(CliError::Usage(
            "login and logout are about a lease-server: pass --server URL".to_owned(),
        )),
    }
}

/// A token cancelled by Ctrl-C, SIGTERM or SIGHUP. Once asked for, those
/// signals no longer kill the process: the command must watch the token.
pub fn interrupt_token() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        crate::signals::interrupted().await;
        cancel.cancel();
    });
    token
}
