//! Connecting: migrations racing on a fresh schema, a newer schema
//! refused, URLs refused with a clear error, namespaces kept apart.

mod common;

use lease_core::store::ListQuery;
use lease_core::testing::conformance::sample_lease;
use lease_core::{Admission, LeaseStore};
use lease_store_postgres::{
    PostgresError, PostgresStore, PostgresStoreConfig, SCHEMA_VERSION, drop_schema,
};

/// A plain driver connection to the test database (for inspecting and
/// tampering with the schema).
async fn raw_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("a plain connection to the test database");
    tokio::spawn(connection);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn servers_starting_together_migrate_once_and_all_connect() {
    let Some(config) = common::config("race") else {
        return;
    };
    let connects = (0..8).map(|_| PostgresStore::connect(config.clone()));
    let stores: Vec<PostgresStore> = futures::future::join_all(connects)
        .await
        .into_iter()
        .map(|result| result.expect("every racing connect succeeds"))
        .collect();
    let client = raw_client(&test_url()).await;
    let row = client
        .query_one(
            &format!(
                "SELECT value FROM {}.meta WHERE key = 'schema_version'",
                stores[0].schema()
            ),
            &[],
        )
        .await
        .expect("the schema version");
    assert_eq!(row.get::<_, String>(0), SCHEMA_VERSION.to_string());
    // All of them work on the same tables.
    let lease = sample_lease("race-owner", chrono::Duration::hours(1));
    stores[0]
        .insert(&lease, &Admission::default())
        .await
        .expect("insert through the first store");
    for store in &stores {
        assert_eq!(
            store.get(&lease.id).await.expect("seen by every store").id,
            lease.id
        );
    }
    drop_schema(&stores[0]).await.expect("drop the schema");
}

/// The test database's URL (checked by `common::config` before).
fn test_url() -> String {
    lease_testkit::postgres::test_postgres_url().expect("checked by common::config")
}

#[tokio::test]
async fn a_newer_schema_is_refused_untouched() {
    let Some(config) = common::config("newer") else {
        return;
    };
    let store = common::connect(config.clone())
        .await
        .expect("a fresh store");
    let client = raw_client(&test_url()).await;
    let future = SCHEMA_VERSION + 1;
    client
        .execute(
            &format!(
                "UPDATE {}.meta SET value = $1 WHERE key = 'schema_version'",
                store.schema()
            ),
            &[&future.to_string()],
        )
        .await
        .expect("pretend a newer ContainerLease migrated it");
    match PostgresStore::connect(config.clone()).await {
        Err(PostgresError::NewerSchema {
            found, supported, ..
        }) => {
            assert_eq!((found, supported), (future, SCHEMA_VERSION));
        }
        other => panic!("a newer schema must be refused, got {other:?}"),
    }
    let message = PostgresStore::connect(config)
        .await
        .expect_err("still refused")
        .to_string();
    assert!(message.contains("newer than this build"), "{message}");
    let row = client
        .query_one(
            &format!(
                "SELECT value FROM {}.meta WHERE key = 'schema_version'",
                store.schema()
            ),
            &[],
        )
        .await
        .expect("the version");
    assert_eq!(
        row.get::<_, String>(0),
        future.to_string(),
        "left untouched"
    );
    drop_schema(&store).await.expect("drop the schema");
}

#[tokio::test]
async fn urls_that_are_not_postgres_are_refused_with_the_password_hidden() {
    for url in [
        "redis://127.0.0.1/0",
        "postgres://ada:hunter2@[::1",
        "host=db",
    ] {
        let error = PostgresStore::connect(PostgresStoreConfig::new(url))
            .await
            .expect_err("not a usable URL");
        assert!(
            matches!(error, PostgresError::Url { .. }),
            "{url}: {error:?}"
        );
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}

#[tokio::test]
async fn an_unreachable_database_is_a_connect_error_with_the_password_hidden() {
    let port = lease_testkit::free_port();
    let config = PostgresStoreConfig::new(format!("postgres://ada:hunter2@127.0.0.1:{port}/x"))
        .connect_timeout(std::time::Duration::from_secs(2));
    let error = PostgresStore::connect(config)
        .await
        .expect_err("nothing listens there");
    assert!(matches!(error, PostgresError::Connect { .. }), "{error:?}");
    let chain = lease_core::error::error_chain(&error);
    assert!(!chain.contains("hunter2"), "{chain}");
}

#[tokio::test]
async fn namespaces_on_one_database_do_not_see_each_other() {
    let (Some(a), Some(b)) = (common::store().await, common::store().await) else {
        return;
    };
    assert_ne!(a.schema(), b.schema());
    let lease = sample_lease("shared-owner", chrono::Duration::hours(1));
    a.insert(&lease, &Admission::default())
        .await
        .expect("insert");
    assert!(b.get(&lease.id).await.is_err());
    assert!(
        b.list(&ListQuery::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
    drop_schema(&a).await.expect("drop");
    drop_schema(&b).await.expect("drop");
}

/// Inserts an active lease row the way schema v2 stored it (with
/// `claimable_at`): due `due` ns, claimed until `claimed` ns if any.
async fn insert_v2_row(
    client: &tokio_postgres::Client,
    schema: &str,
    id: &str,
    due: i64,
    claimed: Option<i64>,
) {
    let claimable = claimed.map_or(due, |until| until.max(due));
    client
        .execute(
            &format!(
                "INSERT INTO {schema}.active (id, owner, offering, status, created_at, \
                 expires_at, hourly_rate, estimated_cost, provision_attempts, removal_failures, \
                 revision, nano_cpus, memory_mb, due_at, claimed_until, claimable_at) \
                 VALUES ($1, 'v2-owner', 'alpine', 'running', $2 - 3600000000000, $2, 10000000, \
                 10000000, 1, 0, 3, 0, 0, $2, $3, $4)"
            ),
            &[&id, &due, &claimed, &claimable],
        )
        .await
        .expect("a version 2 row");
}

/// A schema at version 2 (due times and claims in `claimable_at`) migrates
/// to the current version keeping what is due and what is claimed.
#[tokio::test]
async fn a_version_2_schema_migrates_keeping_due_times_and_claims() {
    let Some(config) = common::config("v2") else {
        return;
    };
    let schema = config.schema();
    let client = raw_client(&test_url()).await;
    let v1 = include_str!("../src/schema/v1.sql");
    let v2 = include_str!("../src/schema/v2.sql");
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET search_path TO {schema}; {v1} {v2} \
             CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); \
             INSERT INTO meta VALUES ('schema_version', '2'); RESET search_path"
        ))
        .await
        .expect("a version 2 schema");
    let now = chrono::Utc::now()
        .timestamp_nanos_opt()
        .expect("now in range");
    let minute = 60_000_000_000i64;
    let [claimed, due, later] = [(); 3].map(|()| lease_core::LeaseId::generate());
    insert_v2_row(
        &client,
        &schema,
        claimed.as_str(),
        now - minute,
        Some(now + 60 * minute),
    )
    .await;
    insert_v2_row(&client, &schema, due.as_str(), now - 2 * minute, None).await;
    insert_v2_row(
        &client,
        &schema,
        later.as_str(),
        now + 10 * minute,
        Some(now - 5 * minute),
    )
    .await;

    let Some(store) = common::connect(config).await else {
        return;
    };
    let version = client
        .query_one(
            &format!("SELECT value FROM {schema}.meta WHERE key = 'schema_version'"),
            &[],
        )
        .await
        .expect("the schema version");
    assert_eq!(version.get::<_, String>(0), SCHEMA_VERSION.to_string());
    let at = |nanos: i64| chrono::DateTime::from_timestamp_nanos(nanos);
    assert_eq!(
        store.next_due().await.expect("next_due"),
        Some(at(now - 2 * minute)),
        "the unclaimed due lease comes first"
    );
    let got = store
        .claim_expired(chrono::Utc::now(), 10, std::time::Duration::from_secs(600))
        .await
        .expect("claim");
    let ids: Vec<&lease_core::LeaseId> = got.iter().map(|lease| &lease.id).collect();
    assert_eq!(
        ids,
        [&due],
        "the claimed lease stays claimed ({claimed}), the later one ({later}) is not due"
    );
    assert_eq!(got[0].revision, 3, "the lease as stored");
    assert_eq!(
        store.next_due().await.expect("next_due"),
        Some(at(now + 10 * minute)),
        "a release in the past does not make a lease due early"
    );
    let column = client
        .query_opt(
            "SELECT 1 FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = 'active' AND column_name = 'claimable_at'",
            &[&schema],
        )
        .await
        .expect("the columns");
    assert!(column.is_none(), "claimable_at is gone");
    let options = client
        .query_one(
            "SELECT c.reloptions::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = 'active'",
            &[&schema],
        )
        .await
        .expect("the table's options");
    assert_eq!(
        options.get::<_, Option<String>>(0).as_deref(),
        Some("{fillfactor=75}")
    );
    drop_schema(&store).await.expect("drop the schema");
}

/// A version 2 schema's statistics rows (per day, owner and offering, every
/// counter) are carried over by the version 3 migration: the day totals sum
/// every owner and offering of a day, the shares of any window are the sums
/// of the old rows' share counters, and the old table is gone.
#[tokio::test]
async fn a_version_2_schema_keeps_its_statistics_in_the_split_rollup() {
    use lease_core::stats::{self, StatsKey, StatsRow, counter};

    let Some(config) = common::config("v2stats") else {
        return;
    };
    let schema = config.schema();
    let day = |text: &str| -> chrono::NaiveDate { text.parse().expect("a date") };
    // Days on both sides of span boundaries, one before 1970.
    let old_rows = [
        ("1969-12-30", "ada", "alpine", counter::PROVISIONS, 2_i64),
        ("1969-12-30", "ada", "alpine", counter::SPENT_NANOS, 5),
        ("2026-11-30", "ada", "alpine", counter::PROVISIONS, 1),
        (
            "2026-11-30",
            "ada",
            "alpine",
            counter::BOOKED_NANOS,
            9_000_000_000_000_000_000,
        ),
        (
            "2026-11-30",
            "ada",
            "alpine",
            counter::SPENT_NANOS,
            333_333_333,
        ),
        ("2026-11-30", "ada", "alpine", "provision_ms_b02", 1),
        ("2026-11-30", "bob", "alpine", counter::PROVISIONS, 3),
        ("2026-11-30", "bob", "alpine", "provision_ms_b02", 2),
        ("2026-12-01", "bob", "ubuntu", counter::PROVISIONS, 4),
        ("2026-12-01", "bob", "ubuntu", counter::SPENT_NANOS, 7),
        ("2026-12-01", "bob", "ubuntu", "reap_late_ms_b01", 4),
    ];
    let client = raw_client(&test_url()).await;
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET search_path TO {schema}; \
             CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); \
             INSERT INTO meta VALUES ('schema_version', '2');"
        ))
        .await
        .expect("an empty schema");
    for ddl in [
        include_str!("../src/schema/v1.sql"),
        include_str!("../src/schema/v2.sql"),
    ] {
        client.batch_execute(ddl).await.expect("the v1..v2 DDL");
    }
    for (d, owner, offering, name, value) in old_rows {
        client
            .execute(
                "INSERT INTO daily_stats (day, owner, offering, name, value) \
                 VALUES (CAST($1::text AS date), $2, $3, $4, $5)",
                &[&d, &owner, &offering, &name, &value],
            )
            .await
            .expect("a v2 statistics row");
    }
    let old: Vec<StatsRow> =
        stats::merge_rows(old_rows.iter().map(|(d, owner, offering, name, value)| {
            let mut row = StatsRow::new(StatsKey {
                day: day(d),
                owner: (*owner).to_owned(),
                offering: (*offering).to_owned(),
            });
            row.add(name, *value);
            row
        }));

    let store = PostgresStore::connect(config)
        .await
        .expect("a v2 schema migrates");
    let totals = store
        .daily_stats(day("1969-12-01"), day("1969-12-31"))
        .await
        .expect("totals");
    assert_eq!(
        totals,
        stats::merge_rows(old[..1].iter().map(stats::day_total))
    );
    let totals = store
        .daily_stats(day("2026-11-30"), day("2026-12-01"))
        .await
        .expect("totals");
    assert_eq!(
        totals,
        stats::merge_rows(old[1..].iter().map(stats::day_total))
    );
    assert_eq!(totals[0].get("provision_ms_b02"), 3, "ada's and bob's");
    for (from, to) in [
        ("1969-12-30", "1969-12-30"),
        ("1969-11-01", "1970-12-01"),
        ("2026-11-30", "2026-11-30"),
        ("2026-08-01", "2026-12-01"),
        ("2026-12-01", "2026-12-31"),
        ("2025-11-01", "2026-11-30"),
    ] {
        let (from, to) = (day(from), day(to));
        let inside = old
            .iter()
            .filter(|row| (from..=to).contains(&row.key.day))
            .map(stats::share_of);
        assert_eq!(
            store.share_stats(from, to).await.expect("shares"),
            stats::sum_shares(from, inside),
            "shares {from}..={to}"
        );
    }
    let old_table = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables \
             WHERE table_schema = $1 AND table_name = 'daily_stats'",
            &[&schema],
        )
        .await
        .expect("the catalogue");
    assert_eq!(old_table.get::<_, i64>(0), 0, "the version 2 table is gone");
    drop_schema(&store).await.expect("drop the schema");
}
