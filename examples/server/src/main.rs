//! `lease-server`: ContainerLease's HTTP API over Docker and a SQLite,
//! memory or Redis lease store.
//!
//! ```text
//! cargo run --release -p lease-server                 # 127.0.0.1:8080, SQLite in ~/.local/state, Docker
//! lease-server --store sqlite:///var/lib/containerlease/leases.db
//! lease-server --store redis://127.0.0.1:6379/0 --tokens tokens.toml --listen 0.0.0.0:8080
//! lease-server token new --owner alice [--admin]      # prints a token and its TOML entry
//! ```
//!
//! Every flag has a `LEASE_*` environment variable (`lease-server --help`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod capacity;
mod cli;
mod credentials;
mod files;
mod limits;
mod oidc;
mod serve;
mod shell;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, TokenCommand};

/// mimalloc rather than the C library's malloc: a request through the
/// port proxy or the API makes many small, short-lived allocations (header
/// maps, bodies, futures), which it serves from per-thread pages without
/// locks; BENCHMARKS.md (proxy) measures both in one run.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Token(TokenCommand::New { owner, admin })) => mint(&owner, admin),
        None => serve::run(cli.serve),
    }
}

fn mint(owner: &str, admin: bool) -> ExitCode {
    match lease_http::auth::mint_token(owner, admin) {
        Ok(minted) => {
            println!("token: {}", minted.token);
            println!();
            println!(
                "# Add this entry to the tokens file (--tokens); the token itself is not stored."
            );
            print!("{}", minted.toml_entry);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("lease-server: {error}");
            ExitCode::from(2)
        }
    }
}
