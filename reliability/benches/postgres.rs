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
//!    container), 64 clients, each its own owner (a token each):
//!    - **saturation**: the clients in a closed loop (each sends when
//!      answered) on PostgreSQL without limits: the provisions per second
//!      this machine sustains, the provisioning tasks' writes included;
//!    - **paced** (target p99 ≤ 10 ms), at four offered rates: the first
//!      bench's one request per client every 50 ms (1,280/s),
//!      [`PACE_FRACTION`] (50 %) and half that of the saturation rate just
//!      measured — loads the machine carries with room, so the latency is
//!      what a provision costs rather than a queue — and one per client
//!      per second (64/s). At each: the memory and SQLite
//!      stores (baselines, no limits), PostgreSQL without limits, with the
//!      owners' quotas, and with a host limit besides (set too high to
//!      refuse: what checking them costs, under their locks).
//!
//!    At each rate, first the **raw baseline**: the same writes on the
//!    same schedule with bare `tokio-postgres` clients (the store's insert
//!    statement, then the provisioning task's two compare-and-sets), no
//!    store, engine or HTTP — what the database and its disk alone cost
//!    at that rate; the verdict gives the store's p99 against it.
//!
//!    Each run prints its CPU (the machine's, the bench process's and
//!    PostgreSQL's per provision) and, on PostgreSQL, `pg_stat_activity`
//!    and the store's pool sampled every 50 ms: backends running (on a CPU
//!    or queued for one), waiting for locks, LWLocks, I/O, or idle in a
//!    transaction; requests waiting for a pooled connection.
//!
//! The database: `LEASE_TEST_POSTGRES_URL` (scripts/postgres.sh), else a
//! private cluster of `lease-testkit` (its settings are printed: the
//! private cluster runs with `fsync=off`, so writes do not wait for the
//! disk on either side). Every run uses its own schemas, dropped at the end.
//!
//! ```text
//! cargo bench -p lease-reliability --bench postgres
//! LEASE_BENCH_PG_OPS=500 LEASE_BENCH_PG_LEASES=20000 cargo bench -p lease-reliability --bench postgres
//! LEASE_BENCH_PG_PARTS=provision LEASE_BENCH_PG_PACE_FRACTION=0.25 cargo bench -p lease-reliability --bench postgres
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
use lease_reliability::cpu::CpuMeter;
use lease_reliability::postgres::{PrivatePostgres, test_postgres_url};
use lease_reliability::quantile;
use lease_store_memory::MemoryStore;
use lease_store_postgres::{PostgresStore, PostgresStoreConfig};
use lease_store_sqlite::{SqliteStore, SqliteStoreConfig};
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

/// Concurrent clients of the provision runs.
const CLIENTS: usize = 64;
/// Requests each client sends in a paced run.
const REQUESTS_PER_CLIENT: usize = 40;
/// The first paced point: one request per client this often (64 clients:
/// 1,280 requests/s offered), a rate chosen by the first bench.
const FIXED_PACE: Duration = Duration::from_millis(50);
/// The second paced point: this fraction of PostgreSQL's closed-loop
/// provision rate measured in the same run (`LEASE_BENCH_PG_PACE_FRACTION`).
const PACE_FRACTION: f64 = 0.5;
/// The last paced point: one provision per client per second (64/s, 230,000
/// an hour: far above what a team provisions, yet every commit waits for
/// the disk).
const SLOW_PACE: Duration = Duration::from_secs(1);
/// The closed loop's warm-up (the provisioning tasks' writes start
/// [`CREATE_LATENCY`] after the first inserts) and its counted window.
const CLOSED_WARM: Duration = Duration::from_secs(3);
const CLOSED_MEASURE: Duration = Duration::from_secs(6);
/// The fake runtime's create latency.
const CREATE_LATENCY: Duration = Duration::from_secs(2);

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(default)
}

fn env_fraction(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|text| text.parse().ok())
        .filter(|fraction: &f64| *fraction > 0.0 && *fraction <= 1.0)
        .unwrap_or(default)
}

/// Whether `part` (`ops`, `claim`, `provision`) is to run:
/// `LEASE_BENCH_PG_PARTS` lists them, comma-separated (default: all).
fn part(part: &str) -> bool {
    std::env::var("LEASE_BENCH_PG_PARTS").map_or(true, |parts| {
        parts.split(',').any(|named| named.trim() == part)
    })
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
        if part("ops") {
            let store = open_store(&url, "bench_pg_ops").await?;
            let result = store_vs_bare(&store, &bare, ops).await;
            lease_store_postgres::drop_schema(&store).await?;
            result?;
        }
        if part("claim") {
            let store = open_store(&url, "bench_pg_claim").await?;
            let result = claim_among(&store, &bare, leases).await;
            lease_store_postgres::drop_schema(&store).await?;
            result?;
        }
        if !part("provision") {
            return Ok(());
        }
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
        let copy = Bare::copy_tables(client, store).await?;
        Bare::prepare_in(client, &copy).await
    }

    /// Creates the copy of the store's tables (schema `<store>_bare`) and
    /// returns its name.
    async fn copy_tables(client: &Client, store: &PostgresStore) -> Result<String, Error> {
        let source = store.schema();
        let copy = format!("{source}_bare");
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {copy} CASCADE; CREATE SCHEMA {copy}; \
                 CREATE TABLE {copy}.active (LIKE {source}.active INCLUDING ALL); \
                 CREATE TABLE {copy}.finished (LIKE {source}.finished INCLUDING ALL)"
            ))
            .await?;
        Ok(copy)
    }

    /// The statements, prepared on `client` against the tables in `copy`.
    async fn prepare_in(client: &Client, copy: &str) -> Result<Bare, Error> {
        client
            .batch_execute(&format!("SET search_path TO {copy}"))
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

/// The store under a provision run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    /// `lease-store-memory`, no limits: the engine and HTTP without a database.
    Memory,
    /// `lease-store-sqlite` in a temporary file (synchronous=FULL), no limits.
    Sqlite,
    /// The PostgreSQL store with these limits.
    Postgres(Quotas),
}

impl Backend {
    fn label(self) -> String {
        match self {
            Backend::Memory => "memory (baseline)".to_owned(),
            Backend::Sqlite => "SQLite (baseline)".to_owned(),
            Backend::Postgres(quotas) => format!("PostgreSQL, {}", quotas.label()),
        }
    }
}

/// How the clients send.
#[derive(Clone, Copy, Debug)]
enum Pacing {
    /// Each client sends its next request as soon as the last is answered,
    /// for `warm` + `measure`; answers in `measure` count.
    Closed { warm: Duration, measure: Duration },
    /// Each client sends one request every `interval` (the clients
    /// staggered over it), `requests` each.
    Paced { interval: Duration, requests: usize },
}

/// What one provision run measured.
#[derive(Debug, Default)]
struct Run {
    /// Every answered provision's latency (closed loop: in the window).
    latencies: Vec<Duration>,
    /// Provisions answered per second (closed loop: in the window).
    rate: f64,
    /// CPU seconds of the machine (all CPUs), the bench process (HTTP
    /// server, engine, clients) and PostgreSQL's processes, from the first
    /// request until the engine's background work was done.
    machine_busy: f64,
    wall: f64,
    bench_cpu: f64,
    postgres_cpu: Option<f64>,
    /// Provisions sent (warm-up excluded), for CPU per provision.
    provisions: usize,
    /// PostgreSQL's backends and the store's pool, sampled.
    activity: Option<Activity>,
    /// Provisions answered with another status than 202 (not in
    /// `latencies`): a store that cannot keep up answers 503 once a
    /// request waited its pool's timeout for a connection.
    refusals: Vec<String>,
}

fn ms(values: &[Duration], q: f64) -> f64 {
    quantile(values, q).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

impl Run {
    fn print(&self, name: &str) {
        println!(
            "  {name:<36} {:>6.0} req/s  p50 {:>6.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
            self.rate,
            ms(&self.latencies, 0.5),
            ms(&self.latencies, 0.99),
            ms(&self.latencies, 1.0),
        );
        let per = |seconds: f64| seconds * 1e6 / self.provisions.max(1) as f64;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut cpu = format!(
            "      CPU: machine {:.0}% of {cpus} CPUs busy; per provision: bench process {:.0} µs",
            100.0 * self.machine_busy / (self.wall * cpus as f64).max(f64::MIN_POSITIVE),
            per(self.bench_cpu),
        );
        if let Some(postgres) = self.postgres_cpu {
            cpu.push_str(&format!(", PostgreSQL {:.0} µs", per(postgres)));
        }
        println!("{cpu}");
        if let Some(activity) = &self.activity {
            activity.print();
        }
        if let Some(first) = self.refusals.first() {
            println!(
                "      refused: {} provisions (not counted above), the first: {first}",
                self.refusals.len()
            );
        }
    }
}

/// Machine CPU time so far (seconds, all CPUs): busy and total, from
/// `/proc/stat`.
fn machine_cpu(meter_ticks: f64) -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else {
        return (0.0, 0.0);
    };
    let fields: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    let total: f64 = fields.iter().sum();
    // idle and iowait.
    let idle = fields.get(3).copied().unwrap_or(0.0) + fields.get(4).copied().unwrap_or(0.0);
    ((total - idle) / meter_ticks, total / meter_ticks)
}

/// CPU seconds of PostgreSQL's processes (every `pg_stat_activity` pid:
/// backends and the server's own workers), by pid.
async fn postgres_cpu(client: &Client, meter: &CpuMeter) -> Vec<(u32, f64)> {
    let Ok(rows) = client.query("SELECT pid FROM pg_stat_activity", &[]).await else {
        return Vec::new();
    };
    rows.iter()
        .filter_map(|row| row.try_get::<_, i32>(0).ok())
        .filter_map(|pid| u32::try_from(pid).ok())
        .filter_map(|pid| meter.seconds(pid).map(|seconds| (pid, seconds)))
        .collect()
}

/// CPU seconds PostgreSQL used between the two readings (a process that
/// started in between counts from zero).
fn postgres_cpu_used(before: &[(u32, f64)], after: &[(u32, f64)]) -> f64 {
    after
        .iter()
        .map(|(pid, seconds)| {
            let start = before
                .iter()
                .find(|(old, _)| old == pid)
                .map_or(0.0, |(_, s)| *s);
            (seconds - start).max(0.0)
        })
        .sum()
}

/// PostgreSQL's backends of the store and its connection pool, sampled
/// every [`SAMPLE_EVERY`] during a run (`pg_stat_activity` and
/// [`PostgresStore::pool_status`]): mean counts per sample.
#[derive(Debug, Default)]
struct Activity {
    samples: u32,
    /// Running a statement, no wait event: on a CPU or waiting for one.
    on_cpu: u64,
    /// Waiting for a heavyweight lock (advisory locks: `advisory`).
    lock: u64,
    advisory: u64,
    /// Waiting for a lightweight lock (WAL insertion and writes, buffers).
    lwlock: u64,
    /// Waiting for I/O (the WAL flush: `WALSync`).
    io: u64,
    /// Inside a transaction, waiting for the client's next statement.
    idle_in_transaction: u64,
    /// Requests waiting for a pooled connection.
    pool_waiting: u64,
    pool_waiting_max: usize,
    /// Connections in use (open and not idle in the pool).
    pool_busy: u64,
}

/// How often [`Activity`] samples.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

impl Activity {
    fn print(&self) {
        let mean = |count: u64| count as f64 / f64::from(self.samples.max(1));
        println!(
            "      PostgreSQL backends (mean of {} samples): running {:.1} (on a CPU or queued for one), lock wait {:.1} (advisory {:.1}), LWLock {:.1}, IO {:.1}, idle in transaction {:.1}; pool: {:.1} connections in use, {:.1} requests waiting (max {})",
            self.samples,
            mean(self.on_cpu),
            mean(self.lock),
            mean(self.advisory),
            mean(self.lwlock),
            mean(self.io),
            mean(self.idle_in_transaction),
            mean(self.pool_busy),
            mean(self.pool_waiting),
            self.pool_waiting_max,
        );
    }

    /// Samples until `stop`.
    async fn sample(
        client: Client,
        store: Arc<PostgresStore>,
        stop: CancellationToken,
    ) -> Activity {
        let query = "SELECT \
               count(*) FILTER (WHERE state = 'active' AND wait_event IS NULL), \
               count(*) FILTER (WHERE wait_event_type = 'Lock'), \
               count(*) FILTER (WHERE wait_event = 'advisory'), \
               count(*) FILTER (WHERE wait_event_type = 'LWLock'), \
               count(*) FILTER (WHERE wait_event_type = 'IO'), \
               count(*) FILTER (WHERE state LIKE 'idle in transaction%') \
             FROM pg_stat_activity \
             WHERE application_name = 'containerlease' AND pid <> pg_backend_pid()";
        let mut activity = Activity::default();
        let Ok(statement) = client.prepare(query).await else {
            return activity;
        };
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return activity,
            }
            let status = store.pool_status();
            let Ok(row) = client.query_one(&statement, &[]).await else {
                continue;
            };
            let count = |index: usize| u64::try_from(row.get::<_, i64>(index)).unwrap_or(0);
            activity.samples += 1;
            activity.on_cpu += count(0);
            activity.lock += count(1);
            activity.advisory += count(2);
            activity.lwlock += count(3);
            activity.io += count(4);
            activity.idle_in_transaction += count(5);
            activity.pool_waiting += status.waiting as u64;
            activity.pool_waiting_max = activity.pool_waiting_max.max(status.waiting);
            activity.pool_busy += status.size.saturating_sub(status.available) as u64;
        }
    }
}

async fn provision_latency(url: &str, pool: usize) -> Result<(), Error> {
    let fraction = env_fraction("LEASE_BENCH_PG_PACE_FRACTION", PACE_FRACTION);
    println!(
        "POST /api/provision through the HTTP API: {CLIENTS} clients (an owner each), runtime create {CREATE_LATENCY:?}, {pool} PostgreSQL connections; {}",
        lease_reliability::cpu::load_line()
    );
    // 1. What PostgreSQL sustains: a closed loop, no limits.
    let closed = Pacing::Closed {
        warm: CLOSED_WARM,
        measure: CLOSED_MEASURE,
    };
    println!(
        "saturation: closed loop ({CLIENTS} clients, each sends when answered), {CLOSED_WARM:?} warm-up then {CLOSED_MEASURE:?} counted (the provisioning tasks' writes, {CREATE_LATENCY:?} after each insert, included)"
    );
    let saturation = provision_run(url, pool, Backend::Postgres(Quotas::Off), closed).await?;
    saturation.print("PostgreSQL, no limits (closed loop)");
    let sustained = saturation.rate.max(1.0);

    // 2. Paced: the rate chosen at first, and a fraction of the sustained one.
    let points = [
        (
            format!("the first bench's 1 request per client every {FIXED_PACE:?}"),
            FIXED_PACE,
        ),
        (
            format!(
                "{:.0}% of PostgreSQL's closed-loop rate ({sustained:.0}/s)",
                fraction * 100.0
            ),
            Duration::from_secs_f64(CLIENTS as f64 / (fraction * sustained)),
        ),
        (
            format!(
                "{:.0}% of PostgreSQL's closed-loop rate ({sustained:.0}/s)",
                fraction * 50.0
            ),
            Duration::from_secs_f64(CLIENTS as f64 / (fraction / 2.0 * sustained)),
        ),
        (
            format!("one provision per client every {SLOW_PACE:?}"),
            SLOW_PACE,
        ),
    ];
    let mut verdicts = Vec::new();
    for (why, interval) in points {
        let offered = CLIENTS as f64 / interval.as_secs_f64();
        println!(
            "paced: {offered:.0} req/s offered ({why}): each client every {:.1} ms, {REQUESTS_PER_CLIENT} requests each; {}",
            interval.as_secs_f64() * 1e3,
            lease_reliability::cpu::load_line()
        );
        let pacing = Pacing::Paced {
            interval,
            requests: REQUESTS_PER_CLIENT,
        };
        let bare = bare_paced_run(url, interval, REQUESTS_PER_CLIENT).await?;
        bare.print("bare statements (baseline)");
        let bare_p99 = ms(&bare.latencies, 0.99);
        let mut memory_p99 = f64::NAN;
        for backend in [
            Backend::Memory,
            Backend::Sqlite,
            Backend::Postgres(Quotas::Off),
            Backend::Postgres(Quotas::Owner),
            Backend::Postgres(Quotas::OwnerAndHost),
        ] {
            let run = provision_run(url, pool, backend, pacing).await?;
            run.print(&backend.label());
            let p99 = ms(&run.latencies, 0.99);
            match backend {
                Backend::Memory => memory_p99 = p99,
                Backend::Postgres(quotas) => verdicts.push(format!(
                    "  at {offered:>5.0} req/s offered, PostgreSQL {:<26} p99 {p99:>7.2} ms (target <= 10 ms: {}); vs memory {:.1}x; vs the bare statements {:.2}x (their p99 {bare_p99:.2} ms)",
                    quotas.label(),
                    if p99 <= 10.0 { "ok" } else { "MISSED" },
                    p99 / memory_p99,
                    p99 / bare_p99,
                )),
                Backend::Sqlite => {}
            }
        }
    }
    println!("verdict (provision p99 through the HTTP API, {CLIENTS} paced clients):");
    for verdict in verdicts {
        println!("{verdict}");
    }
    println!("  {}", lease_reliability::cpu::load_line());
    Ok(())
}

/// Runs the clients against the API over a fresh store of `backend`,
/// measuring latency, rate and CPU; the store is removed afterwards.
async fn provision_run(
    url: &str,
    pool: usize,
    backend: Backend,
    pacing: Pacing,
) -> Result<Run, Error> {
    let (store, postgres, _dir): (Arc<dyn LeaseStore>, _, _) = match backend {
        Backend::Memory => (Arc::new(MemoryStore::new()), None, None),
        Backend::Sqlite => {
            let dir = lease_testkit::TempDir::new("bench-postgres-sqlite");
            let config = SqliteStoreConfig::new(dir.path().join("leases.db"));
            (Arc::new(SqliteStore::open(config).await?), None, Some(dir))
        }
        Backend::Postgres(_) => {
            // A fresh schema each: no run starts with the leases of the
            // last (which its engine's start-up reconciliation would walk).
            let store = open_store_with(url, "bench_pg_http", pool).await?;
            (store.clone(), Some(store), None)
        }
    };
    let quotas = match backend {
        Backend::Postgres(quotas) => quotas,
        Backend::Memory | Backend::Sqlite => Quotas::Off,
    };
    let result = measured_provisions(url, store, postgres.clone(), quotas, pacing).await;
    if let Some(postgres) = postgres {
        lease_store_postgres::drop_schema(&postgres).await?;
    }
    result
}

/// Starts the API over `store`, sends the clients' provisions as `pacing`
/// says and measures them.
async fn measured_provisions(
    url: &str,
    store: Arc<dyn LeaseStore>,
    postgres: Option<Arc<PostgresStore>>,
    quotas: Quotas,
    pacing: Pacing,
) -> Result<Run, Error> {
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

    let mut senders = Vec::new();
    for _ in 0..CLIENTS {
        senders.push(connect(address).await?);
    }
    warm_up(&mut senders, address).await?;
    let meter = CpuMeter::new();
    let ticks = ticks_per_second();
    let watcher = match &postgres {
        Some(_) => Some(bare_client(url).await?),
        None => None,
    };
    let postgres_before = match &watcher {
        Some(client) => postgres_cpu(client, &meter).await,
        None => Vec::new(),
    };
    let sampling = CancellationToken::new();
    let sampler = match &postgres {
        Some(store) => Some(tokio::spawn(Activity::sample(
            bare_client(url).await?,
            store.clone(),
            sampling.clone(),
        ))),
        None => None,
    };
    let (busy_before, total_before) = machine_cpu(ticks);
    let bench_before = meter.seconds(std::process::id()).unwrap_or(0.0);

    let started = tokio::time::Instant::now();
    let mut clients = Vec::new();
    for (index, sender) in senders.into_iter().enumerate() {
        clients.push(tokio::spawn(client_loop(
            sender, address, index, started, pacing,
        )));
    }
    let mut answers = Vec::new();
    let mut refusals = Vec::new();
    for client in clients {
        let (answered, refused) = client.await??;
        answers.extend(answered);
        refusals.extend(refused);
    }
    sampling.cancel();
    stop.cancel();
    background.join().await;
    manager.shutdown(Duration::from_secs(10)).await;
    let activity = match sampler {
        Some(sampler) => Some(sampler.await?),
        None => None,
    };
    let (busy_after, total_after) = machine_cpu(ticks);
    let bench_cpu = meter.seconds(std::process::id()).unwrap_or(0.0) - bench_before;
    let postgres_cpu = match &watcher {
        Some(client) => Some(postgres_cpu_used(
            &postgres_before,
            &postgres_cpu(client, &meter).await,
        )),
        None => None,
    };
    let provisions = answers.len();
    let (latencies, rate) = match pacing {
        Pacing::Closed { warm, measure } => {
            let window = started + warm..started + warm + measure;
            let counted: Vec<Duration> = answers
                .iter()
                .filter(|(answered, _)| window.contains(answered))
                .map(|(_, latency)| *latency)
                .collect();
            let rate = counted.len() as f64 / measure.as_secs_f64();
            (counted, rate)
        }
        Pacing::Paced { .. } => {
            let last = answers.iter().map(|(at, _)| *at).max().unwrap_or(started);
            let rate = provisions as f64 / (last - started).as_secs_f64().max(f64::MIN_POSITIVE);
            (
                answers.into_iter().map(|(_, latency)| latency).collect(),
                rate,
            )
        }
    };
    Ok(Run {
        latencies,
        rate,
        machine_busy: busy_after - busy_before,
        // The machine's CPU seconds over all CPUs, back to wall seconds.
        wall: (total_after - total_before)
            / std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
        bench_cpu,
        postgres_cpu,
        provisions,
        activity,
        refusals,
    })
}

/// Connections the bare run's follow-up writes share, as the store's
/// provisioning writes share its pool with the inserts.
const BARE_FOLLOW_UP_CONNECTIONS: usize = 8;

/// The raw baseline of a paced run: the same writes on the same schedule
/// without the store, the engine or HTTP. Each of the [`CLIENTS`] sends the
/// store's insert statement on a connection of its own (prepared, rows not
/// decoded); after each insert, the provisioning task's two
/// compare-and-sets (the attempt at once, `running` [`CREATE_LATENCY`]
/// later) go on shared connections. The disk sees the same commits per
/// second and the CPUs the same backends: what the database alone costs at
/// this rate, the floor the store's p99 is compared with.
async fn bare_paced_run(url: &str, interval: Duration, requests: usize) -> Result<Run, Error> {
    let store = open_store_with(url, "bench_pg_bare_paced", 1).await?;
    let setup = bare_client(url).await?;
    let copy = Bare::copy_tables(&setup, &store).await?;
    let result = bare_paced(url, &copy, interval, requests).await;
    setup
        .batch_execute(&format!("DROP SCHEMA {copy} CASCADE"))
        .await?;
    lease_store_postgres::drop_schema(&store).await?;
    result
}

/// A bare connection with the statements prepared on the tables in `copy`.
async fn bare_connection(url: &str, copy: &str) -> Result<Arc<(Client, Bare)>, Error> {
    let client = bare_client(url).await?;
    let bare = Bare::prepare_in(&client, copy).await?;
    Ok(Arc::new((client, bare)))
}

/// Sends the bare clients' writes and measures them (see [`bare_paced_run`]).
async fn bare_paced(
    url: &str,
    copy: &str,
    interval: Duration,
    requests: usize,
) -> Result<Run, Error> {
    let mut follow_ups = Vec::new();
    for _ in 0..BARE_FOLLOW_UP_CONNECTIONS {
        follow_ups.push(bare_connection(url, copy).await?);
    }
    let mut senders = Vec::new();
    for _ in 0..CLIENTS {
        senders.push(bare_connection(url, copy).await?);
    }
    let meter = CpuMeter::new();
    let ticks = ticks_per_second();
    let watcher = bare_client(url).await?;
    let postgres_before = postgres_cpu(&watcher, &meter).await;
    let (busy_before, total_before) = machine_cpu(ticks);
    let bench_before = meter.seconds(std::process::id()).unwrap_or(0.0);

    let started = tokio::time::Instant::now();
    let mut clients = Vec::new();
    for (index, sender) in senders.into_iter().enumerate() {
        let follow_up = follow_ups[index % follow_ups.len()].clone();
        let schedule = Schedule {
            index,
            started,
            interval,
            requests,
        };
        clients.push(tokio::spawn(bare_client_loop(sender, follow_up, schedule)));
    }
    let mut answers = Vec::new();
    let mut writes = Vec::new();
    for client in clients {
        let (answered, follow_up_writes) = client.await??;
        answers.extend(answered);
        writes.extend(follow_up_writes);
    }
    for write in writes {
        write.await??;
    }
    let (busy_after, total_after) = machine_cpu(ticks);
    let bench_cpu = meter.seconds(std::process::id()).unwrap_or(0.0) - bench_before;
    let postgres_cpu = postgres_cpu_used(&postgres_before, &postgres_cpu(&watcher, &meter).await);
    let provisions = answers.len();
    let last = answers.iter().map(|(at, _)| *at).max().unwrap_or(started);
    Ok(Run {
        latencies: answers.into_iter().map(|(_, latency)| latency).collect(),
        rate: provisions as f64 / (last - started).as_secs_f64().max(f64::MIN_POSITIVE),
        machine_busy: busy_after - busy_before,
        wall: (total_after - total_before)
            / std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
        bench_cpu,
        postgres_cpu: Some(postgres_cpu),
        provisions,
        activity: None,
        refusals: Vec::new(),
    })
}

/// When a paced client sends: `requests` times, every `interval` from
/// `started`, client `index` offset by `index / CLIENTS` of it.
#[derive(Clone, Copy, Debug)]
struct Schedule {
    index: usize,
    started: tokio::time::Instant,
    interval: Duration,
    requests: usize,
}

/// The follow-up writes a bare client started, to be awaited.
type FollowUps = Vec<tokio::task::JoinHandle<Result<(), Error>>>;

/// One bare client: each insert's latency (and when it was answered), and
/// its follow-up writes.
async fn bare_client_loop(
    sender: Arc<(Client, Bare)>,
    follow_up: Arc<(Client, Bare)>,
    schedule: Schedule,
) -> Result<(Vec<(tokio::time::Instant, Duration)>, FollowUps), Error> {
    let owner = format!("bench-{}", schedule.index);
    let (client, bare) = &*sender;
    let mut answers = Vec::new();
    let mut writes = Vec::new();
    let mut next = schedule.started + schedule.interval * schedule.index as u32 / CLIENTS as u32;
    for _ in 0..schedule.requests {
        tokio::time::sleep_until(next).await;
        next += schedule.interval;
        let row = Row::of(&sample_lease(&owner, chrono::Duration::hours(1)), 1);
        let due = row.expires_at;
        let sent = Instant::now();
        if row.execute(client, &bare.insert, &[&due]).await? != 1 {
            return Err(format!("the bare insert of {} changed nothing", row.id).into());
        }
        answers.push((tokio::time::Instant::now(), sent.elapsed()));
        writes.push(tokio::spawn(follow_up_writes(follow_up.clone(), row)));
    }
    Ok((answers, writes))
}

/// The provisioning task's two compare-and-sets of `row`: the attempt at
/// once, `running` [`CREATE_LATENCY`] later.
async fn follow_up_writes(connection: Arc<(Client, Bare)>, row: Row) -> Result<(), Error> {
    let (client, bare) = &*connection;
    let due = row.expires_at;
    for (revision, status) in [(2i64, "pending"), (3, "running")] {
        if revision == 3 {
            tokio::time::sleep(CREATE_LATENCY).await;
        }
        let next = Row {
            revision,
            status: status.to_owned(),
            ..row.clone()
        };
        let expected = revision - 1;
        if next
            .execute(client, &bare.update, &[&due, &expected])
            .await?
            != 1
        {
            return Err(format!("the bare update of {} changed nothing", row.id).into());
        }
    }
    Ok(())
}

/// Clock ticks per second of `/proc/stat`.
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// What one client's provisions got: when each accepted one was answered
/// and its latency; the refusals' statuses and bodies.
type Answers = (Vec<(tokio::time::Instant, Duration)>, Vec<String>);

/// One client's provisions as `pacing` says.
async fn client_loop(
    mut sender: SendRequest<Full<Bytes>>,
    address: SocketAddr,
    index: usize,
    started: tokio::time::Instant,
    pacing: Pacing,
) -> Result<Answers, Error> {
    let bearer = bearer(index);
    let mut answers = Vec::new();
    let mut refusals = Vec::new();
    match pacing {
        Pacing::Closed { warm, measure } => {
            let end = started + warm + measure;
            while tokio::time::Instant::now() < end {
                let sent = Instant::now();
                match provision(&mut sender, address, &bearer).await? {
                    None => answers.push((tokio::time::Instant::now(), sent.elapsed())),
                    Some(refusal) => refusals.push(refusal),
                }
            }
        }
        Pacing::Paced { interval, requests } => {
            let mut next = started + interval * index as u32 / CLIENTS as u32;
            for _ in 0..requests {
                tokio::time::sleep_until(next).await;
                next += interval;
                let sent = Instant::now();
                match provision(&mut sender, address, &bearer).await? {
                    None => answers.push((tokio::time::Instant::now(), sent.elapsed())),
                    Some(refusal) => refusals.push(refusal),
                }
            }
        }
    }
    Ok((answers, refusals))
}

/// The bearer token of client `index` (owner `bench-<index>`).
fn token(index: usize) -> String {
    format!("bench-postgres-token-{index}")
}

/// The `authorization` header of client `index`.
fn bearer(index: usize) -> String {
    format!("Bearer {}", token(index))
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

async fn connect(address: SocketAddr) -> Result<SendRequest<Full<Bytes>>, Error> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Warm-up rounds before a measure, all clients at once.
const WARM_UP_ROUNDS: usize = 2;

/// Sends [`WARM_UP_ROUNDS`] rounds of one provision per client, the
/// clients at once, each round after the last one's provisioning writes
/// ([`CREATE_LATENCY`]): the store's pool then holds as many connections
/// as 64 clients at once need, each with its statements prepared and its
/// backend's caches filled, as a server's pool does after its first
/// minutes — and as the bare baseline's connections are, prepared before
/// it measures. Sent one by one, the warm-up left one pooled connection,
/// and the measure paid for opening the rest (a new backend, its first
/// statements planned on empty caches) inside its p99.
async fn warm_up(
    senders: &mut [SendRequest<Full<Bytes>>],
    address: SocketAddr,
) -> Result<(), Error> {
    for round in 0..WARM_UP_ROUNDS {
        if round > 0 {
            tokio::time::sleep(CREATE_LATENCY + Duration::from_millis(500)).await;
        }
        let sends = senders
            .iter_mut()
            .enumerate()
            .map(|(index, sender)| async move { provision(sender, address, &bearer(index)).await });
        let refusals = futures::future::try_join_all(sends).await?;
        if let Some(refusal) = refusals.into_iter().flatten().next() {
            return Err(format!("a warm-up provision was refused: {refusal}").into());
        }
    }
    tokio::time::sleep(CREATE_LATENCY + Duration::from_millis(500)).await;
    Ok(())
}

/// One provision as the caller of `bearer`: `None` when accepted (202),
/// else the status and body of the refusal.
async fn provision(
    sender: &mut SendRequest<Full<Bytes>>,
    address: SocketAddr,
    bearer: &str,
) -> Result<Option<String>, Error> {
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
        return Ok(Some(format!("{status} {}", String::from_utf8_lossy(&body))));
    }
    Ok(None)
}
