//! The PostgreSQL store (issue 20) against a bare `tokio-postgres` client
//! sending the same statements, in the same run, on the same database:
//!
//! 1. insert / get / compare-and-set / claim of one due lease, one at a
//!    time: mean time per operation, the store's rate as a fraction of the
//!    bare client's (target ≥ 0.5×). The bare client runs the store's
//!    statement shapes on a copy of its tables (`CREATE TABLE … (LIKE …
//!    INCLUDING ALL)`), prepared once, without decoding rows into leases;
//! 2. `claim_expired` of 100 due leases among 100,000 (target ≤ 5 ms), with
//!    the bare claim statement on the same table beside it;
//! 3. `POST /api/provision` through the HTTP API (`lease_http::router` and
//!    `lease_http::serve`, in process, the runtime a fake taking 2 s per
//!    container): p50 / p99 of 64 clients each sending one request every
//!    50 ms (target p99 ≤ 10 ms), with the memory store in the same run as
//!    the baseline; each client is its own owner (a token each). Then the
//!    same with the owners' quotas set, and with a host limit besides (set
//!    too high to refuse: what checking them costs, under their locks).
//!
//! The database: `LEASE_TEST_POSTGRES_URL` (scripts/postgres.sh), else a
//! private cluster of `lease-testkit` (its settings are printed: the
//! private cluster runs with `fsync=off`, so writes do not wait for the
//! disk on either side). Every run uses its own schemas, dropped at the end.
//!
//! ```text
//! cargo bench -p lease-reliability --bench postgres
//! LEASE_BENCH_PG_OPS=500 LEASE_BENCH_PG_LEASES=20000 cargo bench -p lease-reliability --bench postgres
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use lease_core::testing::conformance::sample_lease;
use lease_core::testing::fake_runtime::FakeRuntime;
use lease_core::{Admission, Lease, LeaseId, LeaseManager, LeaseStore, ManagerConfig};
use lease_reliability::postgres::{PrivatePostgres, test_postgres_url};
use lease_reliability::quantile;
use lease_store_memory::MemoryStore;
use lease_store_postgres::{PostgresStore, PostgresStoreConfig};
use tokio_postgres::{Client, NoTls, Statement};
use tokio_util::sync::CancellationToken;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The lease columns, in the store's order.
const COLUMNS: &str = "id, owner, offering, container_id, status, created_at, expires_at, \
     ended_at, end_reason, hourly_rate, estimated_cost, final_cost, error, provision_attempts, \
     removal_failures, revision, nano_cpus, memory_mb";

/// The database's clock in nanoseconds, as the store reads it.
const NOW_NANOS: &str = "((extract(epoch from clock_timestamp()) * 1000000000)::bigint)";

/// Leases claimed per call in the claim run.
const CLAIM: usize = 100;

/// Concurrent clients of the provision run.
const CLIENTS: usize = 64;
/// Requests each client sends.
const REQUESTS_PER_CLIENT: usize = 40;
/// One request per client this often (64 clients: 1,280 requests/s offered).
const PACE: Duration = Duration::from_millis(50);
/// The fake runtime's create latency.
const CREATE_LATENCY: Duration = Duration::from_secs(2);

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Error> {
    let ops = env_count("LEASE_BENCH_PG_OPS", 2_000);
    let leases = env_count("LEASE_BENCH_PG_LEASES", 100_000);
    // Kept until the end: a private cluster stops on drop.
    let mut private = None;
    let url = match test_postgres_url() {
        Some(url) => url,
        None => match PrivatePostgres::start("bench-postgres") {
            Some(cluster) => {
                let url = cluster.url();
                private = Some(cluster);
                url
            }
            None => {
                println!("postgres bench: skipped (no PostgreSQL)");
                return Ok(());
            }
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let bare = bare_client(&url).await?;
        print_settings(&bare, private.is_some()).await?;
        let store = open_store(&url, "bench_pg_ops").await?;
        let result = store_vs_bare(&store, &bare, ops).await;
        lease_store_postgres::drop_schema(&store).await?;
        result?;
        let store = open_store(&url, "bench_pg_claim").await?;
        let result = claim_among(&store, &bare, leases).await;
        lease_store_postgres::drop_schema(&store).await?;
        result?;
        // A connection per client (lease-server --postgres-pool-size 64):
        // concurrent commits then share the WAL flushes.
        let pool = env_count("LEASE_BENCH_PG_POOL", CLIENTS);
        provision_latency(&url, pool).await
    })?;
    drop(private);
    Ok(())
}

/// A bare client on `url`, its connection driven by a task.
async fn bare_client(url: &str) -> Result<Client, Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn print_settings(client: &Client, private: bool) -> Result<(), Error> {
    let mut settings = Vec::new();
    for name in [
        "server_version",
        "fsync",
        "synchronous_commit",
        "shared_buffers",
    ] {
        let row = client.query_one(&format!("SHOW {name}"), &[]).await?;
        settings.push(format!("{name}={}", row.get::<_, String>(0)));
    }
    let origin = if private {
        "private lease-testkit cluster"
    } else {
        "LEASE_TEST_POSTGRES_URL"
    };
    println!("PostgreSQL ({origin}): {}", settings.join(" "));
    Ok(())
}

/// A store in a fresh schema named after `tag` and this process.
async fn open_store(url: &str, tag: &str) -> Result<Arc<PostgresStore>, Error> {
    open_store_with(url, tag, lease_store_postgres::DEFAULT_POOL_SIZE).await
}

/// [`open_store`] with `pool` connections.
async fn open_store_with(url: &str, tag: &str, pool: usize) -> Result<Arc<PostgresStore>, Error> {
    let namespace = format!("{tag}_{}", std::process::id());
    let config = PostgresStoreConfig::new(url)
        .namespace(&namespace)
        .pool_size(pool);
    Ok(Arc::new(PostgresStore::connect(config).await?))
}

fn nanos(at: chrono::DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

// --- 1. store vs bare statements -------------------------------------------

/// The store's statements, prepared on the bare client against a copy of
/// the store's tables (schema `<store>_bare`).
struct Bare {
    insert: Statement,
    get: Statement,
    update: Statement,
    claim: Statement,
}

impl Bare {
    async fn prepare(client: &Client, store: &PostgresStore) -> Result<Bare, Error> {
        let source = store.schema();
        let copy = format!("{source}_bare");
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {copy} CASCADE; CREATE SCHEMA {copy}; \
                 CREATE TABLE {copy}.active (LIKE {source}.active INCLUDING ALL); \
                 CREATE TABLE {copy}.finished (LIKE {source}.finished INCLUDING ALL); \
                 SET search_path TO {copy}"
            ))
            .await?;
        let placeholders: Vec<String> = (1..=18).map(|i| format!("${i}")).collect();
        let insert = format!(
            "INSERT INTO active ({COLUMNS}, due_at, claimed_until) \
             SELECT {}, $19, NULL WHERE NOT EXISTS (SELECT 1 FROM finished WHERE id = $1)",
            placeholders.join(", ")
        );
        let get = format!(
            "SELECT {COLUMNS} FROM active WHERE id = $1 UNION ALL SELECT {COLUMNS} FROM finished \
             WHERE id = $1 AND ended_key >= {NOW_NANOS} - $2 LIMIT 1"
        );
        let sets: Vec<String> = COLUMNS
            .split(',')
            .map(str::trim)
            .enumerate()
            .skip(1)
            .map(|(index, column)| format!("{column} = ${}", index + 1))
            .collect();
        let update = format!(
            "UPDATE active SET {}, due_at = $19 WHERE id = $1 AND revision = $20",
            sets.join(", ")
        );
        Ok(Bare {
            insert: client.prepare(&insert).await?,
            get: client.prepare(&get).await?,
            update: client.prepare(&update).await?,
            claim: client.prepare(&claim_sql()).await?,
        })
    }
}

/// The 18 lease values and the due time, as the store binds them.
#[derive(Clone)]
struct Row {
    id: String,
    owner: String,
    offering: String,
    status: String,
    created_at: i64,
    expires_at: i64,
    hourly_rate: i64,
    estimated_cost: i64,
    revision: i64,
}

impl Row {
    fn of(lease: &Lease, revision: i64) -> Row {
        Row {
            id: lease.id.as_str().to_owned(),
            owner: lease.owner.clone(),
            offering: lease.offering.clone(),
            status: lease.status.as_str().to_owned(),
            created_at: nanos(lease.created_at),
            expires_at: nanos(lease.expires_at),
            hourly_rate: lease.hourly_rate.nanos(),
            estimated_cost: lease.estimated_cost.nanos(),
            revision,
        }
    }

    /// Sends `statement` with this row's values, then `extra` ($19, …).
    async fn execute(
        &self,
        client: &Client,
        statement: &Statement,
        extra: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, Error> {
        let none_text: Option<String> = None;
        let none_int: Option<i64> = None;
        let zero = 0i64;
        let mut values: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
            &self.id,
            &self.owner,
            &self.offering,
            &none_text,
            &self.status,
            &self.created_at,
            &self.expires_at,
            &none_int,
            &none_text,
            &self.hourly_rate,
            &self.estimated_cost,
            &none_int,
            &none_text,
            &zero,
            &zero,
            &self.revision,
            &zero,
            &zero,
        ];
        values.extend_from_slice(extra);
        Ok(client.execute(statement, &values).await?)
    }
}

/// Turns the store and the bare client take over `0..ops`, in slices.
const ROUNDS: usize = 8;

/// Runs `store_op` and `bare_op` for each index of `0..ops`, one at a
/// time, in [`ROUNDS`] slices that take turns (which side goes first
/// alternates, so that neither always meets a fuller table or a busier
/// moment); the mean time per operation of each.
async fn alternate<S, SF, B, BF>(
    ops: usize,
    mut store_op: S,
    mut bare_op: B,
) -> Result<(Duration, Duration), Error>
where
    S: FnMut(usize) -> SF,
    SF: std::future::Future<Output = Result<(), Error>>,
    B: FnMut(usize) -> BF,
    BF: std::future::Future<Output = Result<(), Error>>,
{
    let (mut store, mut bare) = (Duration::ZERO, Duration::ZERO);
    for round in 0..ROUNDS {
        let slice = round * ops / ROUNDS..(round + 1) * ops / ROUNDS;
        if round % 2 == 0 {
            store += timed(slice.clone(), &mut store_op).await?;
            bare += timed(slice, &mut bare_op).await?;
        } else {
            bare += timed(slice.clone(), &mut bare_op).await?;
            store += timed(slice, &mut store_op).await?;
        }
    }
    let count = u32::try_from(ops.max(1)).unwrap_or(u32::MAX);
    Ok((store / count, bare / count))
}

/// The time `op` takes for each index of `slice`, one after the other.
async fn timed<F, Fut>(slice: std::ops::Range<usize>, op: &mut F) -> Result<Duration, Error>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    let start = Instant::now();
    for index in slice {
        op(index).await?;
    }
    Ok(start.elapsed())
}

/// One line of the comparison: mean times and the store's rate as a
/// fraction of the bare client's.
fn compare(what: &str, store: Duration, bare: Duration) {
    let ratio = bare.as_secs_f64() / store.as_secs_f64();
    let verdict = if ratio >= 0.5 { "ok" } else { "MISSED" };
    println!(
        "  {what:<24} store {:>8.1} µs   bare {:>8.1} µs   store/bare rate {ratio:.2}x  (target >= 0.5x: {verdict})",
        store.as_secs_f64() * 1e6,
        bare.as_secs_f64() * 1e6,
    );
}

async fn store_vs_bare(store: &PostgresStore, client: &Client, ops: usize) -> Result<(), Error> {
    let bare = Bare::prepare(client, store).await?;
    let admission = &Admission::default();
    let leases: Vec<Lease> = (0..ops)
        .map(|_| sample_lease("ada", chrono::Duration::hours(1)))
        .collect();
    let rows: Vec<Row> = (0..ops)
        .map(|_| Row::of(&sample_lease("ada", chrono::Duration::hours(1)), 1))
        .collect();
    println!(
        "store vs bare tokio-postgres, {ops} operations each, one at a time, taking turns (mean per operation)"
    );

    // Warm-up: a connection in the pool, the statements prepared.
    let warm = sample_lease("warm", chrono::Duration::hours(1));
    store.insert(&warm, admission).await?;
    store.get(&warm.id).await?;

    let (store_insert, bare_insert) = alternate(
        ops,
        |i| {
            let lease = &leases[i];
            async move {
                store.insert(lease, admission).await?;
                Ok(())
            }
        },
        |i| {
            let (row, insert) = (&rows[i], &bare.insert);
            async move {
                let due = row.expires_at;
                assert_eq!(row.execute(client, insert, &[&due]).await?, 1);
                Ok(())
            }
        },
    )
    .await?;
    compare("insert", store_insert, bare_insert);

    let retention = i64::MAX / 4;
    let (store_get, bare_get) = alternate(
        ops,
        |i| {
            let id = &leases[i].id;
            async move {
                store.get(id).await?;
                Ok(())
            }
        },
        |i| {
            let (row, get) = (&rows[i], &bare.get);
            async move {
                let found = client.query_opt(get, &[&row.id, &retention]).await?;
                assert!(found.is_some());
                Ok(())
            }
        },
    )
    .await?;
    compare("get", store_get, bare_get);

    let (store_cas, bare_cas) = alternate(
        ops,
        |i| {
            let mut lease = leases[i].clone();
            lease.revision = 1;
            lease.expires_at += chrono::Duration::minutes(30);
            async move {
                store.update(&lease, admission).await?;
                Ok(())
            }
        },
        |i| {
            let (row, update) = (&rows[i], &bare.update);
            async move {
                let next = Row {
                    revision: 2,
                    expires_at: row.expires_at + 1_800_000_000_000,
                    ..row.clone()
                };
                let (due, expected) = (next.expires_at, 1i64);
                assert_eq!(next.execute(client, update, &[&due, &expected]).await?, 1);
                Ok(())
            }
        },
    )
    .await?;
    compare("compare-and-set", store_cas, bare_cas);

    // Claims: 100 due leases on each side; a claim of zero length puts the
    // claimed lease behind the others, so every call claims one.
    for _ in 0..CLAIM {
        let due = sample_lease("ada", chrono::Duration::minutes(-1));
        store.insert(&due, admission).await?;
        let row = Row::of(&sample_lease("ada", chrono::Duration::minutes(-1)), 1);
        row.execute(client, &bare.insert, &[&row.expires_at])
            .await?;
    }
    let (store_claim, bare_claim) = alternate(
        ops,
        |_| async move {
            let claimed = store.claim_expired(Utc::now(), 1, Duration::ZERO).await?;
            assert_eq!(claimed.len(), 1);
            Ok(())
        },
        |_| {
            let claim = &bare.claim;
            async move {
                let claimed = client.query(claim, &[&1i64, &0i64]).await?;
                assert_eq!(claimed.len(), 1);
                Ok(())
            }
        },
    )
    .await?;
    compare("claim 1 due lease", store_claim, bare_claim);
    client
        .batch_execute(&format!(
            "DROP SCHEMA {}_bare CASCADE; RESET search_path",
            store.schema()
        ))
        .await?;
    Ok(())
}

/// The store's claim statement (schema version 4): `$1` leases at most,
/// each for `$2` ns.
fn claim_sql() -> String {
    format!(
        "WITH clock AS MATERIALIZED (SELECT {NOW_NANOS} AS now) \
         UPDATE active SET claimed_until = \
             (SELECT LEAST(now::numeric + $2::bigint, 9223372036854775807)::bigint FROM clock) \
         WHERE id = ANY(ARRAY( \
             SELECT id FROM active \
             WHERE due_at <= (SELECT now FROM clock) \
               AND (claimed_until IS NULL OR claimed_until <= (SELECT now FROM clock)) \
             ORDER BY due_at LIMIT $1 \
             FOR UPDATE SKIP LOCKED)) \
         RETURNING {COLUMNS}"
    )
}

// --- 2. claim among many ---------------------------------------------------

/// Fills the store's table with `size - CLAIM` leases due in an hour (one
/// bare statement copying a template row under fresh ids) and `CLAIM` due
/// ones through the store; then times `claim_expired` of the 100.
async fn claim_among(store: &PostgresStore, client: &Client, size: usize) -> Result<(), Error> {
    let admission = Admission::default();
    let template = sample_lease("ada", chrono::Duration::hours(1));
    store.insert(&template, &admission).await?;
    let started = Instant::now();
    let ids: Vec<String> = (1..size.saturating_sub(CLAIM))
        .map(|_| LeaseId::generate().as_str().to_owned())
        .collect();
    client
        .batch_execute(&format!("SET search_path TO {}", store.schema()))
        .await?;
    for chunk in ids.chunks(20_000) {
        client
            .execute(
                "INSERT INTO active \
                 SELECT (jsonb_populate_record(a, jsonb_build_object('id', g.new_id))).* \
                 FROM active a, unnest($2::text[]) AS g(new_id) WHERE a.id = $1",
                &[&template.id.as_str(), &chunk.to_vec()],
            )
            .await?;
    }
    for _ in 0..CLAIM {
        store
            .insert(
                &sample_lease("ada", chrono::Duration::minutes(-1)),
                &admission,
            )
            .await?;
    }
    client.batch_execute("ANALYZE active").await?;
    println!(
        "claim_expired of {CLAIM} due among {size} leases (filled in {:.1?})",
        started.elapsed()
    );
    let mut store_times = Vec::new();
    let mut bare_times = Vec::new();
    let bare_claim = client.prepare(&claim_sql()).await?;
    let (limit, ttl) = (CLAIM as i64, 0i64);
    for _ in 0..5 {
        store
            .claim_expired(Utc::now(), CLAIM, Duration::ZERO)
            .await?;
        client.query(&bare_claim, &[&limit, &ttl]).await?;
    }
    for _ in 0..100 {
        let start = Instant::now();
        let claimed = store
            .claim_expired(Utc::now(), CLAIM, Duration::ZERO)
            .await?;
        store_times.push(start.elapsed());
        assert_eq!(claimed.len(), CLAIM);
        let start = Instant::now();
        let claimed = client.query(&bare_claim, &[&limit, &ttl]).await?;
        bare_times.push(start.elapsed());
        assert_eq!(claimed.len(), CLAIM);
    }
    let ms = |values: &[Duration], q: f64| {
        quantile(values, q).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    let p50 = ms(&store_times, 0.5);
    let verdict = if p50 <= 5.0 { "ok" } else { "MISSED" };
    println!(
        "  store p50 {p50:.2} ms  p99 {:.2} ms   bare statement p50 {:.2} ms  p99 {:.2} ms   store/bare rate {:.2}x  (target p50 <= 5 ms: {verdict})",
        ms(&store_times, 0.99),
        ms(&bare_times, 0.5),
        ms(&bare_times, 0.99),
        ms(&bare_times, 0.5) / p50,
    );
    // A reaper pass with nothing due: every lease claimed (for an hour) or
    // due later. The statement must stop at the due ones, not read the table.
    store
        .claim_expired(Utc::now(), CLAIM, Duration::from_secs(3600))
        .await?;
    let mut idle_times = Vec::new();
    for _ in 0..100 {
        let start = Instant::now();
        let claimed = store
            .claim_expired(Utc::now(), 256, Duration::from_secs(60))
            .await?;
        idle_times.push(start.elapsed());
        assert!(claimed.is_empty());
    }
    println!(
        "  nothing due (the reaper's usual pass): claim_expired p50 {:.2} ms  p99 {:.2} ms",
        ms(&idle_times, 0.5),
        ms(&idle_times, 0.99),
    );
    client.batch_execute("RESET search_path").await?;
    Ok(())
}

// --- 3. provision latency through the HTTP API -----------------------------

/// The provision request body.
const PROVISION: &str = r#"{"imageType":"alpine","durationMinutes":60}"#;

/// The admission limits a provision run sets. They are set high enough
/// never to refuse: the run measures what checking them costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quotas {
    /// No limit (lease-server with `--max-leases-per-owner 0` and no host limit).
    Off,
    /// The owners' quotas (leases per owner, daily spend): each client is
    /// its own owner, the store takes that owner's lock.
    Owner,
    /// The owners' quotas and a host limit: the store also takes the
    /// namespace's lock, so admissions are one at a time.
    OwnerAndHost,
}

impl Quotas {
    fn label(self) -> &'static str {
        match self {
            Quotas::Off => "no limits",
            Quotas::Owner => "owner quotas",
            Quotas::OwnerAndHost => "owner quotas + host limit",
        }
    }

    /// `config` with these limits.
    fn apply(self, mut config: ManagerConfig) -> ManagerConfig {
        if self != Quotas::Off {
            config.max_leases_per_owner = Some(1_000_000);
            config.max_daily_spend = Some(lease_core::Money::from_nanos(i64::MAX / 4));
        }
        if self == Quotas::OwnerAndHost {
            config.max_leases = Some(1_000_000);
        }
        config
    }
}

async fn provision_latency(url: &str, pool: usize) -> Result<(), Error> {
    println!(
        "POST /api/provision: {CLIENTS} clients (an owner each) x {REQUESTS_PER_CLIENT}, one request per client every {PACE:?}, runtime create {CREATE_LATENCY:?}, {pool} PostgreSQL connections"
    );
    let ms = |values: &[Duration], q: f64| {
        quantile(values, q).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    let line = |name: &str, latencies: &[Duration]| {
        println!(
            "  {name:<44} p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms",
            ms(latencies, 0.5),
            ms(latencies, 0.99),
            ms(latencies, 1.0),
        );
    };
    let memory = paced_provisions(Arc::new(MemoryStore::new()), Quotas::Off).await?;
    line("memory (baseline)", &memory);
    let mut first = None;
    for quotas in [Quotas::Off, Quotas::Owner, Quotas::OwnerAndHost] {
        // A fresh schema each: no run starts with the leases of the last
        // (which its engine's start-up reconciliation would walk).
        let store = open_store_with(url, "bench_pg_http", pool).await?;
        let result = paced_provisions(store.clone(), quotas).await;
        lease_store_postgres::drop_schema(&store).await?;
        let postgres = result?;
        line(&format!("PostgreSQL, {}", quotas.label()), &postgres);
        first.get_or_insert(postgres);
    }
    let postgres = first.unwrap_or_default();
    let p99 = ms(&postgres, 0.99);
    let verdict = if p99 <= 10.0 { "ok" } else { "MISSED" };
    println!(
        "  PostgreSQL (no limits) p99 {p99:.2} ms (target <= 10 ms: {verdict}); p99 vs memory {:.2}x",
        p99 / ms(&memory, 0.99)
    );
    Ok(())
}

/// The bearer token of client `index` (owner `bench-<index>`).
fn token(index: usize) -> String {
    format!("bench-postgres-token-{index}")
}

/// A tokens file giving each client its own owner.
fn client_tokens() -> Result<lease_http::auth::TokenFile, Error> {
    let mut toml = String::new();
    for index in 0..CLIENTS {
        toml.push_str(&format!(
            "[[tokens]]\nowner = \"bench-{index}\"\ntoken_sha256 = \"{}\"\n",
            lease_http::auth::token_sha256(&token(index))
        ));
    }
    Ok(lease_http::auth::TokenFile::from_toml(&toml)?)
}

/// Runs the paced clients against the API over `store` with `quotas`;
/// every latency.
async fn paced_provisions(
    store: Arc<dyn LeaseStore>,
    quotas: Quotas,
) -> Result<Vec<Duration>, Error> {
    let runtime = Arc::new(FakeRuntime::new(
        "bench-postgres",
        Arc::new(lease_core::SystemClock),
    ));
    runtime.set_create_latency(CREATE_LATENCY);
    let manager = LeaseManager::builder(store, runtime)
        .config(quotas.apply(ManagerConfig::with_namespace("bench-postgres")))
        .build()?;
    let stop = CancellationToken::new();
    let background = manager.start(stop.clone());
    let rate = lease_http::RateLimit {
        per_second: std::num::NonZeroU32::new(1_000_000).unwrap_or(std::num::NonZeroU32::MIN),
        burst: std::num::NonZeroU32::new(1_000_000).unwrap_or(std::num::NonZeroU32::MIN),
    };
    let config = lease_http::ApiConfig::default()
        .auth(lease_http::Auth::tokens(client_tokens()?))
        .limits(lease_http::Limits::default().rate(Some(rate)))
        .shutdown(stop.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let stopped = stop.clone();
    tokio::spawn(lease_http::serve(
        listener,
        lease_http::router(manager.clone(), config),
        lease_http::ServeConfig::default(),
        async move { stopped.cancelled().await },
    ));

    let mut clients = Vec::new();
    for index in 0..CLIENTS {
        let mut sender = connect(address).await?;
        let bearer = format!("Bearer {}", token(index));
        provision(&mut sender, address, &bearer).await?; // warm-up
        clients.push(tokio::spawn(async move {
            let mut next = tokio::time::Instant::now() + PACE * index as u32 / CLIENTS as u32;
            let mut latencies = Vec::with_capacity(REQUESTS_PER_CLIENT);
            for _ in 0..REQUESTS_PER_CLIENT {
                tokio::time::sleep_until(next).await;
                next += PACE;
                let sent = Instant::now();
                provision(&mut sender, address, &bearer).await?;
                latencies.push(sent.elapsed());
            }
            Ok::<_, Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for client in clients {
        latencies.extend(client.await??);
    }
    stop.cancel();
    background.join().await;
    manager.shutdown(Duration::from_secs(5)).await;
    Ok(latencies)
}

async fn connect(address: SocketAddr) -> Result<SendRequest<Full<Bytes>>, Error> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One provision as the caller of `bearer`; an answer other than 202 is
/// an error.
async fn provision(
    sender: &mut SendRequest<Full<Bytes>>,
    address: SocketAddr,
    bearer: &str,
) -> Result<(), Error> {
    sender.ready().await?;
    let request = hyper::Request::post("/api/provision")
        .header("host", address.to_string())
        .header("content-type", "application/json")
        .header("authorization", bearer)
        .body(Full::new(Bytes::from_static(PROVISION.as_bytes())))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    if status != 202 {
        return Err(format!(
            "provision answered {status}: {}",
            String::from_utf8_lossy(&body)
        )
        .into());
    }
    Ok(())
}
