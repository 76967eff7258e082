//! Wiring and running the server: store, runtime, engine, HTTP, signals.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use lease_core::error::error_chain;
use lease_core::{Catalog, ContainerRuntime, LeaseManager, LeaseStore, ManagerConfig};
use lease_docker::DockerRuntime;
use lease_http::auth::TokenFile;
use lease_http::{ApiConfig, Auth};
use lease_store_memory::MemoryStore;
use lease_store_redis::{RedisStore, RedisStoreConfig};
use lease_store_sqlite::SqliteStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

use crate::cli::{LogFormat, ServeArgs};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("cannot load the catalog")]
    Catalog(#[from] lease_core::CatalogError),
    #[error("cannot load the tokens file")]
    Tokens(#[from] lease_http::auth::TokenFileError),
    #[error("cannot use the lease store")]
    Store(#[from] lease_core::StoreError),
    #[error("invalid --store")]
    SqliteUrl(#[from] lease_store_sqlite::UrlError),
    #[error("cannot use the SQLite lease store")]
    Sqlite(#[from] lease_store_sqlite::OpenError),
    #[error("cannot reach Docker (is it running? DOCKER_HOST?)")]
    Runtime(#[from] lease_core::RuntimeError),
    #[error("invalid engine settings")]
    Engine(#[from] lease_core::LeaseError),
    #[error("cannot listen on {address}")]
    Listen {
        address: String,
        #[source]
        source: std::io::Error,
    },
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

async fn open_store(args: &ServeArgs) -> Result<Arc<dyn LeaseStore>, StartError> {
    let spec = args
        .store
        .clone()
        .unwrap_or_else(|| lease_store_sqlite::default_store_url(&args.namespace));
    let spec = spec.trim();
    if spec == "memory" {
        return Ok(Arc::new(MemoryStore::with_history_retention(
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
        return Ok(Arc::new(store));
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
        return Ok(Arc::new(store));
    }
    Err(StartError::Config(format!(
        "--store must be a sqlite: URL (sqlite:///path/leases.db), `memory` or a redis:// URL, not `{spec}`"
    )))
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
    if open && args.tokens.is_none() {
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

async fn serve(args: ServeArgs) -> Result<(), StartError> {
    let catalog = match &args.catalog {
        Some(path) => Catalog::from_path(path)?,
        None => Catalog::default(),
    };
    let auth = match &args.tokens {
        Some(path) => {
            let file = TokenFile::from_path(path)?;
            if file.is_empty() {
                warn!(path = %path.display(), "the tokens file has no tokens: every request will be refused");
            }
            info!(tokens = file.len(), "auth: bearer tokens");
            Auth::tokens(file)
        }
        None => {
            info!(
                owner = lease_http::LOCAL_OWNER,
                "auth: single-user, no tokens"
            );
            Auth::single_user()
        }
    };
    let addresses = listen_address(&args).await?;
    let store = open_store(&args).await?;
    let docker = DockerRuntime::connect().await?;
    info!(endpoint = %docker.endpoint(), "container runtime: Docker");
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(docker);

    let config = ManagerConfig {
        sweep_interval: args.sweep_interval.into(),
        provision_timeout: args.provision_timeout.into(),
        stuck_pending_after: args.stuck_pending_after.into(),
        reconcile_interval: args.reconcile_interval.into(),
        claim_ttl: args.claim_ttl.into(),
        max_minutes: args.max_minutes,
        max_leases_per_owner: (args.max_leases_per_owner > 0).then_some(args.max_leases_per_owner),
        max_daily_spend: args.max_daily_spend,
        ..ManagerConfig::with_namespace(args.namespace.clone())
    };
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
    let app = lease_http::router(
        manager.clone(),
        ApiConfig::default()
            .auth(auth)
            .cors_origins(args.cors_origins.clone())
            .limits(args.limits.limits())
            .shutdown(streams_stop.clone()),
    );
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
    background_stop.cancel();
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
