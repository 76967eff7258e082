//! Wiring and running the server: store, runtime, engine, HTTP, signals.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use lease_core::error::error_chain;
use lease_core::{Catalog, CredentialStore, LeaseManager, LeaseStore, ManagerConfig};
use lease_http::ApiConfig;
use lease_store_memory::MemoryStore;
use lease_store_postgres::{PostgresError, PostgresStore, PostgresStoreConfig};
use lease_store_redis::{RedisStore, RedisStoreConfig};
use lease_store_sqlite::SqliteStore;
use lease_swarm::connect_runtime;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

use crate::cli::{LogFormat, ServeArgs};
use crate::credentials::{Credentials, CredentialsError, reload_on_hangup};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("cannot load the catalog")]
    Catalog(#[from] lease_core::CatalogError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("cannot use the lease store")]
    Store(#[from] lease_core::StoreError),
    #[error("invalid --store")]
    SqliteUrl(#[from] lease_store_sqlite::UrlError),
    #[error("cannot use the SQLite lease store")]
    Sqlite(#[from] lease_store_sqlite::OpenError),
    /// Its message names the URL, the password replaced by `***`.
    #[error("cannot use the PostgreSQL lease store")]
    Postgres(#[from] PostgresError),
    #[error("cannot reach the container runtime (is Docker running? DOCKER_HOST? --runtime?)")]
    Runtime(#[from] lease_core::RuntimeError),
    #[error("the catalog or runtime flags ask for something this runtime cannot do")]
    Unsupported(#[source] lease_core::RuntimeError),
    #[error("invalid engine settings")]
    Engine(#[from] lease_core::LeaseError),
    #[error("cannot listen on {address}")]
    Listen {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up OpenID Connect sign-in")]
    Oidc(#[from] crate::oidc::OidcSetupError),
    #[error("cannot start the async runtime")]
    Tokio(#[source] std::io::Error),
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs the server until SIGTERM/SIGINT.
pub fn run(args: ServeArgs) -> ExitCode {
    init_logging(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(StartError::Tokio)
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&error),
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &StartError) -> ExitCode {
    error!(error = %error_chain(error), "lease-server cannot start");
    eprintln!("lease-server: {}", error_chain(error));
    ExitCode::from(1)
}

/// The store, opened once: as the lease store and as the keeper of
/// sessions and personal tokens (every store implements both).
type Stores = (Arc<dyn LeaseStore>, Arc<dyn CredentialStore>);

/// One store as both ports.
fn both<S: LeaseStore + CredentialStore + 'static>(store: S) -> Stores {
    let store = Arc::new(store);
    let credentials: Arc<dyn CredentialStore> = store.clone();
    (store, credentials)
}

async fn open_store(args: &ServeArgs) -> Result<Stores, StartError> {
    let spec = args
        .store
        .clone()
        .unwrap_or_else(|| lease_store_sqlite::default_store_url(&args.namespace));
    let spec = spec.trim();
    if spec == "memory" {
        return Ok(both(MemoryStore::with_history_retention(
            args.history_retention.into(),
        )));
    }
    if lease_store_sqlite::is_store_url(spec) {
        let config = lease_store_sqlite::config_from_url(spec)?
            .namespace(&args.namespace)
            .history_retention(args.history_retention.into());
        let store = SqliteStore::open(config).await?;
        // Said where anyone looks first: the file is where the leases are.
        eprintln!("lease-server: leases in {}", store.path().display());
        return Ok(both(store));
    }
    if lease_store_redis::is_store_url(spec) {
        let prefix = args
            .redis_prefix
            .clone()
            .unwrap_or_else(|| format!("containerlease-{}", args.namespace));
        let store = RedisStore::connect(
            RedisStoreConfig::new(spec)
                .prefix(prefix.clone())
                .history_retention(args.history_retention.into()),
        )
        .await?;
        info!(prefix = %prefix, "lease store: Redis");
        return Ok(both(store));
    }
    if lease_store_postgres::is_store_url(spec) {
        return open_postgres(args, spec).await;
    }
    Err(StartError::Config(format!(
        "--store must be a sqlite: URL (sqlite:///path/leases.db), `memory`, a redis:// URL \
         or a postgres:// URL, not `{}`",
        lease_store_postgres::redact(spec)
    )))
}

/// Connects to PostgreSQL (migrating its schema under an advisory lock);
/// the password never appears in a message or a log line.
async fn open_postgres(args: &ServeArgs, url: &str) -> Result<Stores, StartError> {
    let mut config = PostgresStoreConfig::new(url)
        .namespace(&args.namespace)
        .history_retention(args.history_retention.into());
    if let Some(size) = args.postgres_pool_size {
        config = config.pool_size(usize::from(size));
    }
    let store = PostgresStore::connect(config).await?;
    info!(
        url = %lease_store_postgres::redact(url),
        schema = %store.schema(),
        "lease store: PostgreSQL"
    );
    Ok(both(store))
}

/// Resolves the listen address, refusing a non-loopback one without tokens
/// unless `--insecure-open`.
async fn listen_address(args: &ServeArgs) -> Result<Vec<SocketAddr>, StartError> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host(args.listen.as_str())
        .await
        .map_err(|source| StartError::Listen {
            address: args.listen.clone(),
            source,
        })?
        .collect();
    if addresses.is_empty() {
        return Err(StartError::Config(format!(
            "--listen {} resolves to no address",
            args.listen
        )));
    }
    let open = addresses.iter().any(|a| !a.ip().is_loopback());
    if open && args.tokens.is_none() && !args.oidc.enabled() {
        if !args.insecure_open {
            return Err(StartError::Config(format!(
                "refusing to listen on non-loopback {} without --tokens: anyone who can reach it could run containers. \
                 Use --tokens FILE (see `lease-server token new`), or --insecure-open if you really mean it",
                args.listen
            )));
        }
        warn!(listen = %args.listen, "listening on a non-loopback address WITHOUT authentication (--insecure-open)");
    }
    Ok(addresses)
}

/// Logs the host's capacity limits, and warns when there is none: then
/// nothing but the per-owner quotas keeps the owners together from
/// exhausting the machine.
fn log_capacity(config: &ManagerConfig) {
    if config.max_leases.is_none()
        && config.max_nano_cpus.is_none()
        && config.max_memory_mb.is_none()
    {
        warn!(
            "no host capacity limit: set --max-leases, --max-cpus or --max-memory so that all owners together cannot exhaust the machine"
        );
    } else {
        info!(
            max_leases = ?config.max_leases,
            max_cpus = ?config.max_nano_cpus.map(lease_core::Money::from_nanos).map(|cpus| cpus.to_string()),
            max_memory_mb = ?config.max_memory_mb,
            "host capacity limits"
        );
    }
}

async fn serve(args: ServeArgs) -> Result<(), StartError> {
    let catalog = match &args.catalog {
        Some(path) => Catalog::from_path(path)?,
        None => Catalog::default(),
    };
    let credentials =
        Credentials::load(args.tokens.as_deref(), args.metrics_token_file.as_deref())?;
    if args.insecure_open && args.tokens.is_none() && !args.oidc.enabled() {
        warn!(
            "--insecure-open without --tokens: requests for ANY host name from ANY web page are served as the local user (DNS rebinding and cross-site requests are not refused)"
        );
    }
    let hangup_stop = CancellationToken::new();
    let hangups = reload_on_hangup(credentials.clone(), hangup_stop.clone());
    let addresses = listen_address(&args).await?;
    let (store, credential_store) = open_store(&args).await?;
    let oidc = args
        .oidc
        .setup(&args.listen, credential_store.clone())
        .await?;
    let runtime = connect_runtime(&args.namespace, args.runtime.settings(), &catalog)
        .await
        .map_err(|error| match error {
            lease_core::RuntimeError::Invalid(_) => StartError::Unsupported(error),
            other => StartError::Runtime(other),
        })?;

    let config = ManagerConfig {
        sweep_interval: args.sweep_interval.into(),
        provision_timeout: args.provision_timeout.into(),
        placement_timeout: args.placement_timeout.into(),
        stuck_pending_after: args.stuck_pending_after.into(),
        reconcile_interval: args.reconcile_interval.into(),
        pool_max_age: args.pool_max_age.into(),
        pool_check_interval: args.pool_check_interval.into(),
        claim_ttl: args.claim_ttl.into(),
        max_minutes: args.max_minutes,
        max_leases_per_owner: (args.max_leases_per_owner > 0).then_some(args.max_leases_per_owner),
        max_daily_spend: args.max_daily_spend,
        max_leases: args.max_leases,
        max_nano_cpus: args.max_cpus,
        max_memory_mb: args.max_memory,
        ..ManagerConfig::with_namespace(args.namespace.clone())
    };
    log_capacity(&config);
    let manager = LeaseManager::builder(store, runtime)
        .catalog(catalog)
        .config(config)
        .build()?;

    // Make the store and Docker agree before taking requests.
    let report = manager.reconcile_once().await?;
    info!(?report, namespace = %args.namespace, "start-up reconciliation done");

    let background_stop = CancellationToken::new();
    let background = manager.start(background_stop.clone());

    let listener = TcpListener::bind(addresses.as_slice())
        .await
        .map_err(|source| StartError::Listen {
            address: args.listen.clone(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| StartError::Listen {
        address: args.listen.clone(),
        source,
    })?;
    info!(address = %local, "listening on http://{local}");

    let streams_stop = CancellationToken::new();
    let shell = args.shell.config();
    let shell_tasks = shell.tasks.clone();
    let mut api_config = ApiConfig::default()
        .auth(credentials.auth())
        .insecure_open(args.insecure_open)
        .preview_domain(args.preview_domain.clone())
        .cors_origins(args.cors_origins.clone())
        .limits(args.limits.limits())
        .shell(shell)
        .files(args.files.config())
        .shutdown(streams_stop.clone());
    if let Some(token) = credentials.metrics_token() {
        api_config = api_config.metrics_token(token);
    }
    let purge = match &oidc {
        Some(oidc) => {
            api_config = api_config.oidc(oidc.clone());
            Some(crate::oidc::purge_periodically(
                credential_store,
                manager.clock().clone(),
                background_stop.clone(),
            ))
        }
        None => None,
    };
    let app = lease_http::router(manager.clone(), api_config);
    let signalled = CancellationToken::new();
    let server = {
        let signalled = signalled.clone();
        let connections = args.limits.serve_config();
        tokio::spawn(async move {
            lease_http::serve(listener, app, connections, async move {
                signalled.cancelled().await;
            })
            .await
        })
    };
    let mut server = server;
    tokio::select! {
        () = shutdown_signal() => {}
        finished = &mut server => {
            // The server stopped on its own: an accept loop failure.
            error!(?finished, "the HTTP server stopped");
        }
    }
    let grace: Duration = args.shutdown_grace.into();
    info!(grace = ?grace, "shutting down: no new connections, ending event streams");
    signalled.cancel();
    streams_stop.cancel();
    if !server.is_finished() && tokio::time::timeout(grace, &mut server).await.is_err() {
        warn!("open requests did not finish within the grace period");
        server.abort();
    }
    // Shell sessions were ended with the streams: wait for their processes' kills.
    shell_tasks.close();
    if tokio::time::timeout(grace, shell_tasks.wait())
        .await
        .is_err()
    {
        warn!("shell sessions' processes were not all killed within the grace period");
    }
    background_stop.cancel();
    if let Some(purge) = purge {
        let _ = purge.await;
    }
    hangup_stop.cancel();
    let _ = hangups.await;
    background.join().await;
    manager.shutdown(grace).await;
    info!("stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => info!("SIGINT received"),
        () = terminate => info!("SIGTERM received"),
    }
}
