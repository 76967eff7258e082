//! [`PostgresStore`]: the [`LeaseStore`] port on a PostgreSQL database.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, QueueMode, RecyclingMethod, Runtime,
};
use lease_core::pool::Taken;
use lease_core::stats::StatsRow;
use lease_core::store::{HistoryQuery, LeaseStore, ListQuery, Page, UsageTotals};
use lease_core::{Admission, Lease, LeaseId, PoolSlot, SlotState, StoreError};
use tokio_postgres_rustls::MakeRustlsConnect;
use tracing::{debug, info, warn};

use crate::admission::AdmissionLocks;
use crate::config::PostgresStoreConfig;
use crate::error::{During, PostgresError, pool_error};
use crate::{active, codec, history, pool, schema, tls};

/// A [`LeaseStore`] (and [`lease_core::CredentialStore`]) on PostgreSQL,
/// shared by every server that connects to the same database and
/// namespace.
///
/// - **Atomicity**: every write is one statement or one transaction;
///   admission takes a per-namespace advisory lock, so parallel inserts at
///   a limit are admitted one after the other (a lock per owner for the
///   owners' quotas, one per namespace for the host's limits).
/// - **Clock**: claims, `next_due` and history retention use the
///   database's clock (`clock_timestamp()`), so servers with skewed clocks
///   agree; the caller's `now` is not used.
/// - **Connections**: a pool ([`PostgresStoreConfig::pool_size`]) that
///   reconnects by itself. While the database is away every method fails
///   with [`StoreError::Unavailable`] (the HTTP adapter answers 503).
///
/// Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    schema: String,
    url: String,
    /// History retention in nanoseconds (saturating).
    retention: i64,
    /// The advisory lock keys of admission checks in this namespace.
    admission_locks: AdmissionLocks,
    /// When history was last purged of what fell out of the retention.
    last_purge: Mutex<Option<Instant>>,
}

/// How often a store deletes history rows older than the retention (reads
/// hide them at once).
const PURGE_EVERY: Duration = Duration::from_secs(60);

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.inner.url)
            .field("schema", &self.inner.schema)
            .finish_non_exhaustive()
    }
}

/// The driver's configuration for `config`: its URL (TLS parameters taken
/// out, see [`tls`]), the schema as the search path, timeouts and
/// keepalives; and the TLS connector for the URL's `sslmode`.
fn driver_config(
    config: &PostgresStoreConfig,
    schema: &str,
) -> Result<(tokio_postgres::Config, MakeRustlsConnect), PostgresError> {
    let url_error = |reason: String| PostgresError::Url {
        url: config.redacted_url(),
        reason,
    };
    if !crate::is_store_url(&config.url) {
        return Err(url_error(
            "it must start with postgres:// or postgresql://".to_owned(),
        ));
    }
    let (url, tls_settings) = tls::split_url(&config.url).map_err(url_error)?;
    let connector = tls::connector(&tls_settings).map_err(url_error)?;
    let mut driver: tokio_postgres::Config = url
        .parse()
        .map_err(|error: tokio_postgres::Error| url_error(error.to_string()))?;
    // The server sets the search path for the whole session: every
    // statement's bare table names are the namespace's.
    let options = match driver.get_options() {
        Some(options) if !options.is_empty() => format!("{options} -c search_path={schema}"),
        _ => format!("-c search_path={schema}"),
    };
    // The URL's `application_name` (one per server, say) wins.
    if driver.get_application_name().is_none() {
        driver.application_name("containerlease");
    }
    driver
        .options(&options)
        .connect_timeout(config.connect_timeout)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .ssl_mode(tls_settings.mode.driver());
    Ok((driver, connector))
}

impl PostgresStore {
    /// Connects, creates the namespace's schema if missing and migrates it
    /// (under an advisory lock: servers starting together migrate once).
    /// Refuses a schema written by a newer ContainerLease, without writing
    /// to it.
    pub async fn connect(config: PostgresStoreConfig) -> Result<PostgresStore, PostgresError> {
        let schema = config.schema();
        let (driver, connector) = driver_config(&config, &schema)?;
        let manager = Manager::from_config(
            driver,
            connector,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // Last in, first out: the connection used last is handed out
        // next, so a light load keeps reusing a few warm backends instead of
        // cycling through all of them (each idle backend is a process the
        // machine must wake, with cold caches); a heavy load uses them all
        // either way.
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .queue_mode(QueueMode::Lifo)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.connect_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|error| PostgresError::Connect {
                url: config.redacted_url(),
                source: Box::new(error),
            })?;
        let mut client = pool.get().await.map_err(|error| PostgresError::Connect {
            url: config.redacted_url(),
            source: Box::new(error),
        })?;
        schema::migrate(&mut client, &schema).await?;
        drop(client);
        info!(
            url = %config.redacted_url(),
            schema,
            pool_size = config.pool_size,
            "lease store: PostgreSQL"
        );
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                pool,
                admission_locks: AdmissionLocks::new(&schema),
                schema,
                url: config.redacted_url(),
                retention: codec::duration_nanos(config.history_retention),
                last_purge: Mutex::new(None),
            }),
        })
    }

    /// The PostgreSQL schema holding this namespace's tables.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// The connection pool's state now: what an operator (or a bench)
    /// reads to tell time spent waiting for a connection from time spent
    /// in the database.
    pub fn pool_status(&self) -> PoolStatus {
        let status = self.inner.pool.status();
        PoolStatus {
            max_size: status.max_size,
            size: status.size,
            available: status.available,
            waiting: status.waiting,
        }
    }

    /// A pooled connection, or [`StoreError::Unavailable`].
    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        self.inner.pool.get().await.map_err(pool_error)
    }

    /// The advisory lock keys of admission checks.
    pub(crate) fn admission_locks(&self) -> &AdmissionLocks {
        &self.inner.admission_locks
    }

    /// Deletes history older than the retention if the last purge was
    /// [`PURGE_EVERY`] ago or more; a failure is logged (reads hide those
    /// rows anyway).
    async fn purge_history(&self, client: &Object) {
        {
            let Ok(mut last) = self.inner.last_purge.lock() else {
                return;
            };
            if last.is_some_and(|at| at.elapsed() < PURGE_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        match history::purge(client, self.retention()).await {
            Ok(0) => {}
            Ok(purged) => debug!(schema = %self.inner.schema, purged, "history purged"),
            Err(error) => warn!(schema = %self.inner.schema, %error, "history purge failed"),
        }
    }

    /// History retention in nanoseconds.
    pub(crate) fn retention(&self) -> i64 {
        self.inner.retention
    }
}

#[async_trait]
impl LeaseStore for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .query_opt("SELECT 1 FROM usage LIMIT 1", &[])
            .await
            .during("ping")
            .map(drop)
    }

    async fn insert(&self, lease: &Lease, admission: &Admission) -> Result<Lease, StoreError> {
        let client = self.client().await?;
        active::insert(client, self.admission_locks(), lease, admission).await
    }

    async fn get(&self, id: &LeaseId) -> Result<Lease, StoreError> {
        let client = self.client().await?;
        active::get(&client, id, self.retention()).await
    }

    async fn update(&self, lease: &Lease, admission: &Admission) -> Result<Lease, StoreError> {
        let mut client = self.client().await?;
        active::update(&mut client, self.admission_locks(), lease, admission).await
    }

    async fn list(&self, query: &ListQuery) -> Result<Page<Lease>, StoreError> {
        let client = self.client().await?;
        active::list(&client, query).await
    }

    async fn claim_expired(
        &self,
        _now: DateTime<Utc>,
        limit: usize,
        claim_ttl: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        let client = self.client().await?;
        active::claim(&client, limit, codec::duration_nanos(claim_ttl)).await
    }

    async fn release(&self, id: &LeaseId, retry_at: DateTime<Utc>) -> Result<(), StoreError> {
        let client = self.client().await?;
        active::release(&client, id, codec::saturating_nanos(retry_at)).await
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let client = self.client().await?;
        active::next_due(&client).await
    }

    async fn finish(&self, lease: &Lease) -> Result<Lease, StoreError> {
        let client = self.client().await?;
        let finished = history::finish(&client, lease).await?;
        self.purge_history(&client).await;
        Ok(finished)
    }

    async fn history(&self, query: &HistoryQuery) -> Result<Page<Lease>, StoreError> {
        let client = self.client().await?;
        history::history(&client, query, self.retention()).await
    }

    async fn usage(&self, owner: &str) -> Result<UsageTotals, StoreError> {
        let client = self.client().await?;
        history::usage(&client, owner).await
    }

    async fn daily_stats(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<StatsRow>, StoreError> {
        let client = self.client().await?;
        history::daily_stats(&client, from, to).await
    }

    async fn share_stats(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<StatsRow>, StoreError> {
        let client = self.client().await?;
        history::share_stats(&client, from, to).await
    }

    async fn pool_add(&self, slot: &PoolSlot, target: usize) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        pool::add(&mut client, slot, target).await
    }

    async fn pool_ready(&self, slot_id: &str, container_id: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        pool::ready(&client, slot_id, container_id).await
    }

    async fn pool_take(
        &self,
        offering: &str,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Result<Option<Taken>, StoreError> {
        let mut client = self.client().await?;
        pool::take(&mut client, offering, lease, now).await
    }

    async fn pool_slots(&self) -> Result<Vec<PoolSlot>, StoreError> {
        let client = self.client().await?;
        pool::slots(&client).await
    }

    async fn pool_drop(&self, slot_id: &str, state: SlotState) -> Result<bool, StoreError> {
        let client = self.client().await?;
        pool::drop_slot(&client, slot_id, state).await
    }
}

/// The state of a [`PostgresStore`]'s connection pool
/// ([`PostgresStore::pool_status`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Most connections the pool opens.
    pub max_size: usize,
    /// Connections open now.
    pub size: usize,
    /// Of those, idle in the pool.
    pub available: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
}

/// Drops the store's schema with everything in it (its namespace's leases,
/// history, usage and credentials): for tests and for removing a
/// namespace. The store is unusable afterwards.
pub async fn drop_schema(store: &PostgresStore) -> Result<(), StoreError> {
    let client = store.client().await?;
    // The name is made of [a-z0-9_] only (config::schema_name).
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", store.schema()))
        .await
        .during("drop the schema")
}
