//! Command-line flags, each with a `LEASE_*` environment variable.

use std::path::PathBuf;

use axum::http::HeaderValue;
use clap::{Args, Parser, Subcommand, ValueEnum};
use lease_core::Money;

/// The ContainerLease server: rents short-lived Docker containers over HTTP.
#[derive(Debug, Parser)]
#[command(name = "lease-server", version, about, long_about = None)]
pub struct Cli {
    /// A subcommand; without one the server runs.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server settings.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// Token subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a token; prints it and the entry to add to the tokens file.
    New {
        /// The owner the token acts as.
        #[arg(long)]
        owner: String,
        /// Whether the token may see and manage every owner's leases.
        #[arg(long)]
        admin: bool,
    },
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where leases run: flags shared in spirit with the `lease` CLI.
#[derive(Debug, Args)]
pub struct RuntimeArgs {
    /// `docker`: one Docker engine (DOCKER_HOST, else the local socket).
    /// `swarm`: a Docker Swarm through its manager (DOCKER_HOST, else the
    /// local socket); every lease is a service the cluster places.
    #[arg(long = "runtime", env = "LEASE_RUNTIME", value_enum, default_value_t = RuntimeKind::Docker)]
    pub kind: RuntimeKind,

    /// With `--runtime swarm`: the engine of swarm node NODE (its id or
    /// hostname), `NODE=unix:///path/docker.sock`, `NODE=tcp://host:port`,
    /// or `NODE=tcp://host:port?certs=DIR` for TLS (DIR holds ca.pem,
    /// cert.pem and key.pem, as DOCKER_CERT_PATH), for shells, files and the
    /// address of the leases it runs. Repeatable (comma-separated in the variable). The
    /// manager's own node needs none.
    #[arg(long = "swarm-node-engine", env = "LEASE_SWARM_NODE_ENGINES", value_name = "NODE=ENDPOINT", value_delimiter = ',', value_parser = parse_node_engine)]
    pub swarm_node_engines: Vec<lease_swarm::NodeRoutes>,

    /// With `--runtime swarm`: set each lease's CPU and memory limits
    /// without reserving them on its node (overcommit). By default they are
    /// reserved, so the scheduler never places more than a node has.
    #[arg(long, env = "LEASE_SWARM_OVERCOMMIT")]
    pub swarm_overcommit: bool,
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

impl RuntimeArgs {
    /// The settings lease-swarm's `connect_runtime` takes.
    pub fn settings(&self) -> lease_swarm::RuntimeSettings {
        lease_swarm::RuntimeSettings {
            choice: match self.kind {
                RuntimeKind::Docker => lease_swarm::RuntimeChoice::Docker,
                RuntimeKind::Swarm => lease_swarm::RuntimeChoice::Swarm,
            },
            routes: self.swarm_node_engines.iter().cloned().collect(),
            overcommit: self.swarm_overcommit,
        }
    }
}

/// Server settings.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Without --tokens only a loopback address is
    /// allowed, unless --insecure-open.
    #[arg(long, env = "LEASE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Lease store: a SQLite file (`sqlite:///absolute/path.db`,
    /// `sqlite://relative/path.db`; `?synchronous=normal` trades the last
    /// commits on power loss for speed), `memory` (lost at exit), a Redis
    /// URL for several hosts (`redis://host:6379/0`, `rediss://…`,
    /// `redis+unix:///path`, `redis+sentinel://host:26379/mymaster`), or a
    /// PostgreSQL URL for several hosts (`postgres://user:pw@host:5432/db`,
    /// `postgresql://…`; the tables live in the schema
    /// `containerlease_<namespace>`).
    /// Default: the SQLite file in the state directory
    /// ($XDG_STATE_HOME or ~/.local/state, then containerlease/leases.db;
    /// leases-<namespace>.db for a namespace other than `default`).
    #[arg(long, env = "LEASE_STORE")]
    pub store: Option<String>,

    /// Redis key prefix (default `containerlease-<namespace>`).
    #[arg(long, env = "LEASE_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,

    /// PostgreSQL store: connections in this server's pool (default: the
    /// store's own).
    #[arg(long, env = "LEASE_POSTGRES_POOL_SIZE", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub postgres_pool_size: Option<u16>,

    /// How long a finished lease stays in history (usage totals are kept
    /// forever), with any store.
    #[arg(long, env = "LEASE_HISTORY_RETENTION", default_value = "7days")]
    pub history_retention: humantime::Duration,

    /// Catalog of offerings (TOML `[[offering]]` tables); default: the
    /// built-in alpine and ubuntu.
    #[arg(long, env = "LEASE_CATALOG")]
    pub catalog: Option<PathBuf>,

    /// Tokens file (TOML `[[tokens]]` with owner, token_sha256, admin);
    /// re-read on SIGHUP. Without it the server is single-user (owner
    /// `local`) and serves only requests for localhost, 127.0.0.1 or [::1]
    /// that come from no web page or a loopback one.
    #[arg(long, env = "LEASE_TOKENS")]
    pub tokens: Option<PathBuf>,

    /// A file holding a bearer token (the token itself, e.g. from
    /// `openssl rand -hex 32`) that may read /metrics and nothing else, for
    /// a Prometheus scraper; re-read on SIGHUP. Admin tokens read /metrics
    /// too.
    #[arg(long, env = "LEASE_METRICS_TOKEN_FILE")]
    pub metrics_token_file: Option<PathBuf>,

    /// Without a tokens file: allow listening on a non-loopback address and
    /// serve requests for any host name from any web page. Anyone who can
    /// reach the server (or make a browser reach it) can run containers.
    #[arg(long, env = "LEASE_INSECURE_OPEN")]
    pub insecure_open: bool,

    /// Serve each lease port at its own origin too:
    /// `{port}-{shortid}.<domain>` (point a wildcard DNS record and TLS
    /// certificate at this server). Must not be the portal's own host.
    #[arg(long, env = "LEASE_PREVIEW_DOMAIN")]
    pub preview_domain: Option<String>,

    /// This deployment's namespace: the label value that scopes which
    /// containers it manages.
    #[arg(long, env = "LEASE_NAMESPACE", default_value = "default")]
    pub namespace: String,

    /// Where leases run.
    #[command(flatten)]
    pub runtime: RuntimeArgs,

    /// The reaper wakes at least this often (e.g. `60s`, `5m`).
    #[arg(long, env = "LEASE_SWEEP_INTERVAL", default_value = "60s")]
    pub sweep_interval: humantime::Duration,

    /// A pending lease not running after this becomes `error`.
    #[arg(long, env = "LEASE_PROVISION_TIMEOUT", default_value = "10m")]
    pub provision_timeout: humantime::Duration,

    /// A created container not running after this (a cluster that cannot
    /// place it) fails its lease with the runtime's reason.
    #[arg(long, env = "LEASE_PLACEMENT_TIMEOUT", default_value = "2m")]
    pub placement_timeout: humantime::Duration,

    /// A pending lease that no task of this process is provisioning (say,
    /// after a crash) is retried once it is this old.
    #[arg(long, env = "LEASE_STUCK_PENDING_AFTER", default_value = "30s")]
    pub stuck_pending_after: humantime::Duration,

    /// The reconciler (store against Docker) runs this often after start-up.
    #[arg(long, env = "LEASE_RECONCILE_INTERVAL", default_value = "5m")]
    pub reconcile_interval: humantime::Duration,

    /// A ready warm-pool container (catalog `pool = N`) older than this is
    /// replaced by the reconciler.
    #[arg(long, env = "LEASE_POOL_MAX_AGE", default_value = "1h")]
    pub pool_max_age: humantime::Duration,

    /// How often the warm-pool filler checks every pool's size when no
    /// take wakes it.
    #[arg(long, env = "LEASE_POOL_CHECK_INTERVAL", default_value = "5s")]
    pub pool_check_interval: humantime::Duration,

    /// How long a reaper's claim on an expired lease lasts before another
    /// reaper (or this one after a restart) may take it over.
    #[arg(long, env = "LEASE_CLAIM_TTL", default_value = "60s")]
    pub claim_ttl: humantime::Duration,

    /// Longest lifetime of a lease in minutes, extensions included.
    #[arg(long, env = "LEASE_MAX_MINUTES", default_value_t = 480)]
    pub max_minutes: u32,

    /// Most active leases per owner (0: unlimited).
    #[arg(long, env = "LEASE_MAX_LEASES_PER_OWNER", default_value_t = 20)]
    pub max_leases_per_owner: u32,

    /// Most estimated spend per owner per UTC day, in dollars (e.g. `5`,
    /// `0.50`); default unlimited.
    #[arg(long, env = "LEASE_MAX_DAILY_SPEND", value_parser = Money::parse_non_negative)]
    pub max_daily_spend: Option<Money>,

    /// Host capacity: most active leases of all owners together (at least
    /// 1); default unlimited.
    #[arg(long, env = "LEASE_MAX_LEASES", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_leases: Option<u32>,

    /// Host capacity: most CPUs all active leases may reserve together
    /// (their offerings' `cpus`), an exact decimal such as `4.5`; default
    /// unlimited.
    #[arg(long, env = "LEASE_MAX_CPUS", value_name = "CPUS", value_parser = crate::capacity::parse_cpus)]
    pub max_cpus: Option<i64>,

    /// Host capacity: most memory all active leases may reserve together
    /// (their offerings' `memory_mb`): MiB (`2048`) or with a unit
    /// (`2048MiB`, `16GiB`, `1.5GiB`, `1TiB`); default unlimited.
    #[arg(long, env = "LEASE_MAX_MEMORY", value_name = "SIZE", value_parser = crate::capacity::parse_memory_mb)]
    pub max_memory: Option<u64>,

    /// Browser origins allowed to call the API from other pages (CORS),
    /// comma-separated, e.g. `http://localhost:5173`; default none.
    #[arg(long = "cors-origin", env = "LEASE_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<HeaderValue>,

    /// Log format.
    #[arg(long, env = "LEASE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// On SIGTERM/SIGINT: how long to wait for open requests and
    /// provisioning in flight before exiting.
    #[arg(long, env = "LEASE_SHUTDOWN_GRACE", default_value = "30s")]
    pub shutdown_grace: humantime::Duration,

    /// Connection and per-caller limits.
    #[command(flatten)]
    pub limits: crate::limits::LimitArgs,

    /// Shell sessions.
    #[command(flatten)]
    pub shell: crate::shell::ShellArgs,

    /// File copy limits.
    #[command(flatten)]
    pub files: crate::files::FilesArgs,

    /// OpenID Connect sign-in.
    #[command(flatten)]
    pub oidc: crate::oidc::OidcArgs,
}

fn parse_origin(text: &str) -> Result<HeaderValue, String> {
    let text = text.trim();
    let scheme_ok = text.starts_with("http://") || text.starts_with("https://");
    if !scheme_ok || text.ends_with('/') {
        return Err(format!(
            "`{text}` is not an origin like http://localhost:5173"
        ));
    }
    HeaderValue::from_str(text).map_err(|e| e.to_string())
}
