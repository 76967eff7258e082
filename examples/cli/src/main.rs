//! `lease`: ContainerLease on the command line.
//!
//! ```text
//! lease prices --for 2h                              # what it costs
//! lease run alpine --for 30m                         # a shell; the container goes when it exits
//! # leases live in ~/.local/state/containerlease/leases.db (SQLite), shared
//! # with a lease-server on this host that uses the same file (its default)
//! export LEASE_STORE=redis://127.0.0.1:6379/0        # or share them through Redis
//! export LEASE_STORE=postgres://lease@db/leases      # or through PostgreSQL
//! lease up ubuntu --for 2h                           # rent; waits until running
//! # (on SQLite a background reaper removes it at expiry, no server needed)
//! lease ls                                           # your leases
//! lease shell k3x9q2m7v1b8                           # a shell in it
//! lease extend k3x9 30m && lease rm k3x9
//!
//! # from another machine, through a lease-server's API (no Docker, no store here)
//! export LEASE_SERVER=https://leases.example.com
//! lease login                                        # or LEASE_TOKEN
//! lease up alpine && lease shell k3x9                # the same commands and output
//! ```
//!
//! It wires the same engine as lease-server — `lease_core::LeaseManager`
//! over a SQLite, memory or Redis store and the Docker runtime — so on the same
//! Redis and namespace both see the same leases. Every flag has a `LEASE_*`
//! environment variable (`lease --help`). With `--server` the lease commands
//! go through [`lease_client`] instead (`remote`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cli;
mod commands;
mod context;
mod duration;
mod error;
mod exec;
mod lifetime;
mod lookup;
mod offline;
mod output;
mod provisioning;
mod reconcile_plan;
mod remote;
mod removal;
mod signals;
mod terminal;
mod watch_lock;
mod watcher;

use std::process::ExitCode;

use clap::Parser;
use lease_core::error::error_chain;
use tracing_subscriber::EnvFilter;

use crate::cli::Cli;
use crate::error::CliError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&CliError::io("cannot start the async runtime", error)),
    };
    let outcome = runtime.block_on(commands::dispatch(cli));
    // Nothing may hold the exit up (a stdin reader thread, a hung connection).
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match outcome {
        Ok(code) => code,
        Err(error) => fail(&error),
    }
}

/// Diagnostics on stderr: errors only by default, `-v` info, `-vv` debug;
/// `RUST_LOG` wins.
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "error",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn fail(error: &CliError) -> ExitCode {
    if !matches!(error, CliError::BrokenPipe) {
        output::note(&format!("lease: {}", error_chain(error)));
    }
    error.exit_code()
}
