//! Command-line syntax: every flag, with its `LEASE_*` environment variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use lease_core::Money;

use crate::duration::parse_minutes;

/// Rent short-lived containers: priced up front, removed when their time runs out.
///
/// Leases live in a store: by default a SQLite file in the state directory,
/// shared with a lease-server and other `lease` commands on this host;
/// `memory` (this command only); a Redis (`--store redis://…`) or a
/// PostgreSQL database (`--store postgres://…`).
#[derive(Debug, Parser)]
#[command(
    name = "lease",
    version,
    about,
    propagate_version = true,
    // The last of a repeated flag wins (`alias lease='lease --store …'` stays overridable).
    args_override_self = true,
    after_help = "Durations are written like 90m, 2h or 1h30m (whole minutes).\n\
                  Every option has an environment variable: LEASE_STORE, LEASE_NAMESPACE, \
                  LEASE_OWNER, LEASE_OUTPUT, LEASE_SERVER, …\n\
                  With --server URL (or LEASE_SERVER) every lease command goes through \
                  that lease-server, with the token in LEASE_TOKEN or stored by `lease login`."
)]
pub struct Cli {
    /// Settings shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// JSON for scripts (the lease-server's field names).
    Json,
}

/// `--runtime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// One Docker engine.
    Docker,
    /// A Docker Swarm.
    Swarm,
}

fn parse_node_engine(text: &str) -> Result<lease_swarm::NodeRoutes, String> {
    text.parse()
        .map_err(|error: lease_core::RuntimeError| error.to_string())
}

impl GlobalArgs {
    /// The runtime settings lease-swarm's `connect_runtime` takes.
    pub fn runtime_settings(&self) -> lease_swarm::RuntimeSettings {
        lease_swarm::RuntimeSettings {
            choice: match self.runtime {
                RuntimeKind::Docker => lease_swarm::RuntimeChoice::Docker,
                RuntimeKind::Swarm => lease_swarm::RuntimeChoice::Swarm,
            },
            routes: self.swarm_node_engines.iter().cloned().collect(),
            overcommit: self.swarm_overcommit,
        }
    }
}

/// Settings shared by every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Lease store: a SQLite file shared with lease-server on this host
    /// (`sqlite:///absolute/path.db`, `sqlite://relative/path.db`; default:
    /// containerlease/leases.db in $XDG_STATE_HOME or ~/.local/state, or
    /// leases-<namespace>.db for a namespace other than `default`),
    /// `memory` (lives only as long as this command) or a Redis URL
    /// (`redis://host:6379/0`, `rediss://…`, `redis+unix:///path`,
    /// `redis+sentinel://…`) or a PostgreSQL URL (`postgres://user@host/db`,
    /// `postgresql://…`; tables in the schema `containerlease_<namespace>`,
    /// as lease-server).
    #[arg(long, env = "LEASE_STORE", global = true)]
    pub store: Option<String>,

    /// Redis key prefix [default: containerlease-<namespace>, as lease-server].
    #[arg(long, env = "LEASE_REDIS_PREFIX", global = true)]
    pub redis_prefix: Option<String>,

    /// The deployment's namespace: the container label that scopes what is managed.
    #[arg(
        long,
        env = "LEASE_NAMESPACE",
        default_value = "default",
        global = true
    )]
    pub namespace: String,

    /// Where leases run (as lease-server): `docker`, one engine (DOCKER_HOST,
    /// else the local socket), or `swarm`, a Docker Swarm through its manager.
    #[arg(long = "runtime", env = "LEASE_RUNTIME", value_enum, default_value_t = RuntimeKind::Docker, global = true, hide_short_help = true)]
    pub runtime: RuntimeKind,

    /// With `--runtime swarm`: NODE=ENDPOINT, the engine of swarm node NODE
    /// (id or hostname; `unix:///path`, `tcp://host:port`, or
    /// `tcp://host:port?certs=DIR` for TLS) for shells and
    /// files of its leases. Repeatable. The manager's own node needs none.
    #[arg(long = "swarm-node-engine", env = "LEASE_SWARM_NODE_ENGINES", value_name = "NODE=ENDPOINT", value_delimiter = ',', value_parser = parse_node_engine, global = true, hide_short_help = true)]
    pub swarm_node_engines: Vec<lease_swarm::NodeRoutes>,

    /// With `--runtime swarm`: limits without reservations (as lease-server).
    #[arg(
        long,
        env = "LEASE_SWARM_OVERCOMMIT",
        global = true,
        hide_short_help = true
    )]
    pub swarm_overcommit: bool,

    /// Catalog of offerings (TOML `[[offering]]` tables) [default: built-in alpine and ubuntu].
    #[arg(long, env = "LEASE_CATALOG", global = true)]
    pub catalog: Option<PathBuf>,

    /// Whose leases [default: $USER, else `local`].
    #[arg(long, env = "LEASE_OWNER", global = true)]
    pub owner: Option<String>,

    /// How results are printed.
    #[arg(short = 'o', long, env = "LEASE_OUTPUT", value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,

    /// Longest lifetime of a lease in minutes, extensions included (as lease-server).
    #[arg(
        long,
        env = "LEASE_MAX_MINUTES",
        default_value_t = 480,
        global = true,
        hide_short_help = true
    )]
    pub max_minutes: u32,

    /// Most active leases per owner, 0 for no limit (as lease-server).
    #[arg(
        long,
        env = "LEASE_MAX_LEASES_PER_OWNER",
        default_value_t = 20,
        global = true,
        hide_short_help = true
    )]
    pub max_leases_per_owner: u32,

    /// Most estimated spend per owner per UTC day, in dollars (as lease-server).
    #[arg(long, env = "LEASE_MAX_DAILY_SPEND", value_parser = Money::parse_non_negative, global = true, hide_short_help = true)]
    pub max_daily_spend: Option<Money>,

    /// A lease-server to work through (`https://leases.example`): the
    /// commands then go over its HTTP API — no Docker socket, no store on
    /// this machine. The token comes from LEASE_TOKEN, else from
    /// `lease login`.
    #[arg(long, env = "LEASE_SERVER", value_name = "URL", global = true)]
    pub server: Option<String>,

    /// More diagnostics on stderr (-v: info, -vv: debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Rent a container; waits (with pull progress) until it is running.
    Up(UpArgs),
    /// List your leases.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show one lease.
    #[command(visible_alias = "inspect")]
    Status(IdArgs),
    /// Book more time on a lease.
    Extend(ExtendArgs),
    /// End leases now and remove their containers.
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Print a lease's container output.
    Logs(LogsArgs),
    /// Open a shell in a lease's container, or run one command there.
    Shell(ShellArgs),
    /// Copy files and directories into or out of a lease (with --server).
    Cp(crate::remote::copy::CpArgs),
    /// Rent a container for as long as a shell in it runs, then remove it.
    Run(RunArgs),
    /// Forward local TCP ports to a lease's container (with --server).
    PortForward(PortForwardArgs),
    /// The offerings, their hourly rates and what a booking costs.
    Prices(PricesArgs),
    /// Spend and lease counts per owner (yours, or everyone's with --all).
    Usage(UsageArgs),
    /// Remove the containers of expired and deleted leases (operators, cron).
    Reap(ReapArgs),
    /// Make the store and Docker agree (operators, cron).
    Reconcile(ReconcileArgs),
    /// Manage lease-server API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Sign in to --server: in the browser when it uses OpenID Connect (or
    /// with a code on another device), else with a pasted token.
    Login(LoginArgs),
    /// Revoke the token `lease login` got (personal tokens) and forget it.
    Logout,
    /// Print shell completions.
    Completions(CompletionsArgs),
}

/// `lease login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Sign in on another device: print a URL and a code to enter there
    /// (for machines without a browser; the default when there is no
    /// display and BROWSER is not set).
    #[arg(long, conflicts_with = "token")]
    pub device: bool,
    /// Paste a token instead of signing in (asked for on the terminal, or
    /// read from stdin).
    #[arg(long)]
    pub token: bool,
    /// The name of the personal token the sign-in creates, as listed in
    /// the page's Tokens panel [default: lease on <this host>].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// `lease up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// The catalog offering (see `lease prices`).
    pub offering: String,
    /// How long to book [default: the offering's default, 2h].
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_minutes, allow_hyphen_values = true)]
    pub minutes: Option<u32>,
    /// Return at once with the pending lease; it comes up in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// Internal: the background half of `--detach`.
    #[arg(long, hide = true)]
    pub background_child: bool,
}

/// `lease ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Include ended leases (history).
    #[arg(short, long)]
    pub all: bool,
}

/// One lease id.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// Lease id, or a unique start of it as `lease ls` shows.
    pub id: String,
}

/// `lease extend`.
#[derive(Debug, Args)]
pub struct ExtendArgs {
    /// Lease id, or a unique start of it.
    pub id: String,
    /// Time to add, e.g. 30m or 1h.
    #[arg(value_name = "DURATION", value_parser = parse_minutes, allow_hyphen_values = true)]
    pub minutes: u32,
}

/// `lease rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Lease ids, or unique starts of them.
    #[arg(required = true, num_args = 1..)]
    pub ids: Vec<String>,
}

/// `lease logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Lease id, or a unique start of it.
    pub id: String,
    /// Keep printing new output until the container stops (Ctrl-C to stop).
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<u32>,
}

/// Whether an exec gets a terminal.
#[derive(Debug, Args, Clone, Copy)]
pub struct TtyArgs {
    /// Allocate a terminal even when stdin or stdout is not one.
    #[arg(short = 't', long, conflicts_with = "no_tty")]
    pub tty: bool,
    /// Never allocate a terminal.
    #[arg(short = 'T', long)]
    pub no_tty: bool,
}

/// `lease shell`.
#[derive(Debug, Args)]
pub struct ShellArgs {
    /// Lease id, or a unique start of it.
    pub id: String,
    /// Terminal settings.
    #[command(flatten)]
    pub tty: TtyArgs,
    /// A command to run instead of a shell (after `--`); its exit code becomes ours.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `lease run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The catalog offering (see `lease prices`).
    pub offering: String,
    /// Longest the lease may last [default: the offering's default, 2h].
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_minutes, allow_hyphen_values = true)]
    pub minutes: Option<u32>,
    /// Terminal settings.
    #[command(flatten)]
    pub tty: TtyArgs,
    /// A command to run instead of a shell (after `--`); its exit code becomes ours.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `lease port-forward`.
#[derive(Debug, Args)]
pub struct PortForwardArgs {
    /// Lease id, or a unique start of it.
    pub id: String,
    /// `REMOTE` (the same port on 127.0.0.1), `LOCAL:REMOTE`, or `:REMOTE`
    /// / `0:REMOTE` (any free local port; the one chosen is printed).
    #[arg(required = true, num_args = 1.., value_name = "[LOCAL:]REMOTE",
          value_parser = crate::remote::forward::parse_pair)]
    pub ports: Vec<crate::remote::forward::PortPair>,
}

/// `lease prices`.
#[derive(Debug, Args)]
pub struct PricesArgs {
    /// Price a booking of this length [default: each offering's default].
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_minutes, allow_hyphen_values = true)]
    pub minutes: Option<u32>,
}

/// `lease usage`.
#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Every owner with leases active or in history, not just --owner.
    #[arg(short, long)]
    pub all: bool,
}

/// `lease reap`.
#[derive(Debug, Args)]
pub struct ReapArgs {
    /// Keep reaping as leases come due, until Ctrl-C.
    #[arg(short, long)]
    pub watch: bool,
    /// Internal: the background reaper of a SQLite store, which exits once
    /// no active lease is left (started by `up` and `run`).
    #[arg(long, hide = true, conflicts_with = "watch")]
    pub until_idle: bool,
}

/// `lease reconcile`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Only report what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `lease token`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a token for --owner; prints it and the entry for lease-server's tokens file.
    New(TokenNewArgs),
}

/// `lease token new`.
#[derive(Debug, Args)]
pub struct TokenNewArgs {
    /// The token may see and manage every owner's leases.
    #[arg(long)]
    pub admin: bool,
}

/// `lease completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}
