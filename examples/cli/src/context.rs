//! Wiring: the global flags turned into a store, a runtime and a `LeaseManager`.

use std::sync::Arc;

use lease_core::StoreError;
use lease_core::{Catalog, ContainerRuntime, LeaseManager, LeaseStore, ManagerConfig};
use lease_store_memory::MemoryStore;
use lease_store_postgres::{PostgresStore, PostgresStoreConfig};
use lease_store_redis::{RedisStore, RedisStoreConfig};
use lease_store_sqlite::{SqliteStore, SqliteStoreConfig};

use crate::cli::{GlobalArgs, Output};
use crate::error::CliError;
use crate::offline::OfflineRuntime;

/// Where leases are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSpec {
    /// In this process only.
    Memory,
    /// A SQLite file, shared by the processes of this host.
    Sqlite(SqliteStoreConfig),
    /// A Redis URL.
    Redis(String),
    /// A PostgreSQL URL (`postgres://…`, `postgresql://…`); the tables live
    /// in the schema of the namespace.
    Postgres(String),
}

impl StoreSpec {
    /// Parses `memory`, a `sqlite:` URL, a Redis URL or a PostgreSQL URL.
    pub fn parse(text: &str) -> Result<Self, CliError> {
        let spec = text.trim();
        if spec == "memory" {
            Ok(StoreSpec::Memory)
        } else if lease_store_sqlite::is_store_url(spec) {
            lease_store_sqlite::config_from_url(spec)
                .map(StoreSpec::Sqlite)
                .map_err(|error| CliError::Usage(format!("--store: {error}")))
        } else if lease_store_redis::is_store_url(spec) {
            Ok(StoreSpec::Redis(spec.to_owned()))
        } else if lease_store_postgres::is_store_url(spec) {
            Ok(StoreSpec::Postgres(spec.to_owned()))
        } else {
            Err(CliError::Usage(format!(
                "--store must be a sqlite: URL (sqlite:///path/leases.db), `memory`, a Redis URL (redis://host:6379/0) \
                 or a PostgreSQL URL (postgres://user@host/db), not `{}`",
                redact(spec)
            )))
        }
    }
}

/// The resolved global settings.
#[derive(Debug)]
pub struct Context {
    /// The flags as given.
    pub args: GlobalArgs,
    /// The store to use.
    pub store: StoreSpec,
    /// `--store` as given, or the default SQLite URL of the namespace.
    pub store_url: String,
    /// Whose leases.
    pub owner: String,
}

/// Whether a command uses Docker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Docker {
    /// Connect (and fail early if it cannot be reached).
    Needed,
    /// The command only reads and writes the store.
    NotNeeded,
}

impl Context {
    /// Resolves the global flags (no I/O).
    pub fn new(args: GlobalArgs) -> Result<Self, CliError> {
        let store_url = args
            .store
            .clone()
            .unwrap_or_else(|| lease_store_sqlite::default_store_url(&args.namespace));
        let store = match StoreSpec::parse(&store_url)? {
            // A SQLite file belongs to one namespace (refused otherwise).
            StoreSpec::Sqlite(config) => StoreSpec::Sqlite(config.namespace(&args.namespace)),
            other => other,
        };
        let owner = args
            .owner
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .map(|owner| owner.trim().to_owned())
            .filter(|owner| !owner.is_empty())
            .unwrap_or_else(|| lease_http::LOCAL_OWNER.to_owned());
        Ok(Context {
            args,
            store,
            store_url,
            owner,
        })
    }

    /// How results are printed.
    pub fn output(&self) -> Output {
        self.args.output
    }

    /// Refuses the memory store for a command that needs shared state.
    pub fn require_shared_store(&self, command: &'static str) -> Result<(), CliError> {
        match self.store {
            StoreSpec::Memory => Err(CliError::NeedsSharedStore { command }),
            StoreSpec::Sqlite(_) | StoreSpec::Redis(_) | StoreSpec::Postgres(_) => Ok(()),
        }
    }

    /// Whether leases live only in this process.
    pub fn is_memory(&self) -> bool {
        self.store == StoreSpec::Memory
    }

    /// The catalog: `--catalog`, else the built-in one.
    pub fn catalog(&self) -> Result<Catalog, CliError> {
        Ok(match &self.args.catalog {
            Some(path) => Catalog::from_path(path)?,
            None => Catalog::default(),
        })
    }

    /// The Redis key prefix: `--redis-prefix`, else lease-server's default.
    pub fn redis_prefix(&self) -> String {
        self.args
            .redis_prefix
            .clone()
            .unwrap_or_else(|| format!("containerlease-{}", self.args.namespace))
    }

    /// The engine settings (the same defaults as lease-server).
    pub fn config(&self) -> ManagerConfig {
        let limit = self.args.max_leases_per_owner;
        ManagerConfig {
            max_minutes: self.args.max_minutes,
            max_leases_per_owner: (limit > 0).then_some(limit),
            max_daily_spend: self.args.max_daily_spend,
            ..ManagerConfig::with_namespace(self.args.namespace.clone())
        }
    }

    async fn open_store(&self) -> Result<Arc<dyn LeaseStore>, CliError> {
        match &self.store {
            StoreSpec::Memory => Ok(Arc::new(MemoryStore::new())),
            StoreSpec::Sqlite(config) => {
                let path = config.path().display().to_string();
                tracing::debug!(path = %path, "lease store: SQLite");
                let store = SqliteStore::open(config.clone()).await.map_err(|source| {
                    CliError::OpenStore {
                        store: path,
                        source: source.into(),
                    }
                })?;
                Ok(Arc::new(store))
            }
            StoreSpec::Redis(url) => {
                let config = RedisStoreConfig::new(url.clone()).prefix(self.redis_prefix());
                let store =
                    RedisStore::connect(config)
                        .await
                        .map_err(|source| CliError::OpenStore {
                            store: redact(url),
                            source,
                        })?;
                Ok(Arc::new(store))
            }
            StoreSpec::Postgres(url) => self.open_postgres(url).await,
        }
    }

    /// Connects to PostgreSQL, the tables in the namespace's schema (as
    /// lease-server); the password never appears in a message.
    async fn open_postgres(&self, url: &str) -> Result<Arc<dyn LeaseStore>, CliError> {
        let config = PostgresStoreConfig::new(url).namespace(&self.args.namespace);
        let store = PostgresStore::connect(config)
            .await
            .map_err(|source| CliError::OpenStore {
                store: lease_store_postgres::redact(url),
                source: StoreError::Unavailable(Box::new(source)),
            })?;
        tracing::debug!(schema = %store.schema(), "lease store: PostgreSQL");
        Ok(Arc::new(store))
    }

    /// Builds the engine over the store and (if needed) Docker.
    pub async fn manager(&self, docker: Docker) -> Result<LeaseManager, CliError> {
        self.manager_with(docker, self.config()).await
    }

    /// Builds the engine with `config` instead of the flags' settings.
    pub async fn manager_with(
        &self,
        docker: Docker,
        config: ManagerConfig,
    ) -> Result<LeaseManager, CliError> {
        // Checked first, so a bad namespace is reported before any connection.
        config
            .validate()
            .map_err(|e| CliError::Usage(format!("--namespace: {e}")))?;
        let catalog = self.catalog()?;
        let store = self.open_store().await?;
        let runtime: Arc<dyn ContainerRuntime> = match docker {
            Docker::Needed => {
                let runtime = lease_swarm::connect_runtime(
                    &config.namespace,
                    self.args.runtime_settings(),
                    &catalog,
                )
                .await
                .map_err(CliError::Docker)?;
                runtime.ping().await.map_err(CliError::Docker)?;
                runtime
            }
            Docker::NotNeeded => Arc::new(OfflineRuntime::new(&config.namespace)),
        };
        Ok(LeaseManager::builder(store, runtime)
            .catalog(catalog)
            .config(config)
            .build()?)
    }
}

/// A URL with its password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_store_specs() {
        assert_eq!(StoreSpec::parse("memory").ok(), Some(StoreSpec::Memory));
        assert_eq!(
            StoreSpec::parse(" redis://h:1/0 ").ok(),
            Some(StoreSpec::Redis("redis://h:1/0".into()))
        );
        assert!(StoreSpec::parse("redis+sentinel://s1:26379,s2:26379/mymaster/0").is_ok());
        assert_eq!(
            StoreSpec::parse("sqlite:///var/lib/l.db").ok(),
            Some(StoreSpec::Sqlite(SqliteStoreConfig::new("/var/lib/l.db")))
        );
        assert!(StoreSpec::parse("sqlite://").is_err());
        assert_eq!(
            StoreSpec::parse(" postgres://u@h:5432/db ").ok(),
            Some(StoreSpec::Postgres("postgres://u@h:5432/db".into()))
        );
        assert_eq!(
            StoreSpec::parse("postgresql:///db?host=/run/postgresql").ok(),
            Some(StoreSpec::Postgres(
                "postgresql:///db?host=/run/postgresql".into()
            ))
        );
        assert!(StoreSpec::parse("postgre://h/db").is_err());
        assert!(StoreSpec::parse("mysql://h/db").is_err());
        assert!(StoreSpec::parse("").is_err());
    }

    #[test]
    fn hides_passwords() {
        assert_eq!(redact("redis://:pw@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact("redis://u:pw@h/0"), "redis://u:***@h/0");
        assert_eq!(redact("redis://h:1/0"), "redis://h:1/0");
        assert_eq!(
            redact("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
    }

    #[test]
    fn a_refused_store_url_is_not_echoed_with_its_password() {
        let Err(CliError::Usage(message)) = StoreSpec::parse("mysql://u:secret@h/db") else {
            panic!("a mysql URL is refused");
        };
        assert!(!message.contains("secret"), "{message}");
        assert!(message.contains("postgres://"), "{message}");
    }
}
