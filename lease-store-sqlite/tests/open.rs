//! Opening files: a new one is created (with its directory), an old one
//! reopens with its data; a file that is not a lease database, is damaged
//! or truncated, or has a newer schema is refused and left byte for byte
//! as it was.

mod common;

use std::path::Path;

use chrono::Duration;
use common::db_path;
use lease_core::testing::conformance::{finished, sample_lease, unique_owner};
use lease_core::{Admission, LeaseStore, Money};
use lease_store_sqlite::{OpenError, SCHEMA_VERSION, SqliteStore, SqliteStoreConfig};

async fn open(path: &Path) -> Result<SqliteStore, OpenError> {
    SqliteStore::open(SqliteStoreConfig::new(path)).await
}

/// A closed database at `path` with `leases` active leases and one finished.
async fn filled(path: &Path, leases: usize) -> Vec<lease_core::LeaseId> {
    let store = open(path).await.expect("a new database");
    let owner = unique_owner("open");
    let mut ids = Vec::new();
    for _ in 0..leases {
        let lease = store
            .insert(
                &sample_lease(&owner, Duration::hours(1)),
                &Admission::default(),
            )
            .await
            .expect("insert");
        ids.push(lease.id);
    }
    let done = store
        .insert(
            &sample_lease(&owner, Duration::hours(1)),
            &Admission::default(),
        )
        .await
        .expect("insert");
    store
        .finish(&finished(&done, chrono::Utc::now(), Money::from_nanos(5)))
        .await
        .expect("finish");
    ids
}

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read the file")
}

/// Opening `path` fails as `check` expects, and the file is unchanged.
async fn refused(path: &Path, check: impl FnOnce(&OpenError) -> bool) -> OpenError {
    let before = bytes(path);
    let error = match open(path).await {
        Ok(store) => panic!("{} was opened: {store:?}", path.display()),
        Err(error) => error,
    };
    assert!(check(&error), "unexpected refusal: {error:?}");
    assert!(
        bytes(path) == before,
        "a refused file must be left untouched ({error})"
    );
    let wal = std::fs::metadata(path.with_extension("db-wal")).map_or(0, |meta| meta.len());
    assert_eq!(wal, 0, "nothing written beside it either");
    error
}

#[tokio::test]
async fn a_missing_directory_is_created_and_data_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a/b/c/leases.db");
    let ids = filled(&path, 3).await;
    let store = open(&path).await.expect("reopen");
    for id in &ids {
        store.get(id).await.expect("kept across a reopen");
    }
}

#[tokio::test]
async fn an_empty_file_becomes_a_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(dir.path());
    std::fs::write(&path, b"").expect("empty file");
    let store = open(&path).await.expect("an empty file is a new database");
    store.ping().await.expect("ping");
}

#[tokio::test]
async fn a_directory_that_cannot_be_created_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, b"a file where a directory should be").expect("write");
    let error = open(&blocker.join("leases.db"))
        .await
        .expect_err("cannot create");
    assert!(
        matches!(&error, OpenError::CreateDirectory { path, .. } if *path == blocker),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("cannot create the directory"),
        "{error}"
    );
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(dir.path());
    filled(&path, 2).await;
    {
        let connection = rusqlite::Connection::open(&path).expect("open");
        connection
            .execute_batch(&format!("PRAGMA user_version = {};", SCHEMA_VERSION + 1))
            .expect("bump the version");
    }
    let error = refused(&path, |error| {
        matches!(error, OpenError::NewerSchema { found, supported, .. }
            if *found == SCHEMA_VERSION + 1 && *supported == SCHEMA_VERSION)
    })
    .await;
    assert!(
        error.to_string().contains("use a newer ContainerLease"),
        "{error}"
    );
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(dir.path());
    std::fs::write(&path, "name,owner\nnot,a database\n".repeat(200)).expect("write");
    refused(&path, |error| {
        matches!(error, OpenError::NotALeaseDatabase { .. })
    })
    .await;
}

#[tokio::test]
async fn another_programs_sqlite_database_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(dir.path());
    {
        let connection = rusqlite::Connection::open(&path).expect("open");
        connection
            .execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');")
            .expect("someone else's data");
    }
    refused(&path, |error| {
        matches!(error, OpenError::NotALeaseDatabase { .. })
    })
    .await;
}

#[tokio::test]
async fn a_truncated_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(dir.path());
    filled(&path, 2000).await;
    let length = std::fs::metadata(&path).expect("metadata").len();
    assert!(length > 64 * 1024, "big enough to cut: {length}");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    file.set_len(length / 2).expect("truncate");
    drop(file);
    let error = refused(&path, |error| matches!(error, OpenError::Corrupt { .. })).await;
    assert!(error.to_string().contains("truncated"), "{error}");

    // Cut inside the header: still refused, never taken for a new database.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|file| file.set_len(40))
        .expect("truncate");
    refused(&path, |error| matches!(error, OpenError::Corrupt { .. })).await;
}

#[tokio::test]
async fn a_damaged_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(dir.path());
    filled(&path, 2000).await;
    let mut data = bytes(&path);
    // Garbage over pages 3 to 6 (page 1 holds the header and the schema).
    for (n, byte) in data[2 * 4096..6 * 4096].iter_mut().enumerate() {
        *byte = (n * 7 + 13) as u8;
    }
    std::fs::write(&path, &data).expect("write");
    refused(&path, |error| {
        matches!(
            error,
            OpenError::Corrupt { .. } | OpenError::NotALeaseDatabase { .. }
        )
    })
    .await;
}

#[tokio::test]
async fn refusals_map_to_store_errors_with_the_cause() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(dir.path());
    std::fs::write(&path, "plain text").expect("write");
    let error = open(&path).await.expect_err("refused");
    let store_error: lease_core::StoreError = error.into();
    let chain = lease_core::error::error_chain(&store_error);
    assert!(
        chain.contains("not a ContainerLease lease database"),
        "{chain}"
    );
}

async fn open_for(path: &Path, namespace: &str) -> Result<SqliteStore, OpenError> {
    SqliteStore::open(SqliteStoreConfig::new(path).namespace(namespace)).await
}

#[tokio::test]
async fn a_file_belongs_to_the_first_namespace_that_opens_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = db_path(dir.path());
    let ids = filled(&path, 2).await;
    // The file had no namespace: the first store with one stamps it.
    drop(open_for(&path, "team-a").await.expect("stamped by team-a"));
    let again = open_for(&path, "team-a").await.expect("team-a again");
    assert!(again.get(&ids[0]).await.is_ok(), "the data is still there");
    drop(again);
    drop(open(&path).await.expect("a store that names no namespace"));

    let before = bytes(&path);
    match open_for(&path, "team-b").await {
        Err(OpenError::OtherNamespace { found, wanted, .. }) => {
            assert_eq!((found.as_str(), wanted.as_str()), ("team-a", "team-b"));
        }
        other => panic!("another namespace must be refused, got {other:?}"),
    }
    assert!(bytes(&path) == before, "the refused file is left untouched");
    let error = open_for(&path, "team-b").await.expect_err("refused again");
    assert!(
        error.to_string().contains("leases-team-b.db"),
        "the message says what to do: {error}"
    );
}

#[tokio::test]
async fn two_namespaces_racing_for_a_new_file_get_one_owner() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = db_path(dir.path());
    let (a, b) = tokio::join!(open_for(&path, "team-a"), open_for(&path, "team-b"));
    match (a, b) {
        (Ok(_), Err(OpenError::OtherNamespace { .. }))
        | (Err(OpenError::OtherNamespace { .. }), Ok(_)) => {}
        other => panic!("exactly one namespace must own the file: {other:?}"),
    }
}

/// A version 1 file (made with the version 1 DDL, holding an active and a
/// finished lease written with the version 1 columns) opens, is upgraded to
/// the current schema in place, keeps its leases (sized 0, as they were
/// never sized) and takes sized leases and admission checks afterwards.
#[tokio::test]
async fn a_version_1_file_is_upgraded_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(dir.path());
    let owner = unique_owner("v1");
    let (active, done) = (
        sample_lease(&owner, Duration::hours(1)),
        sample_lease(&owner, Duration::hours(1)),
    );
    {
        let connection = rusqlite::Connection::open(&path).expect("create a v1 file");
        connection
            .execute_batch(include_str!("../src/schema/v1.sql"))
            .expect("the v1 DDL");
        connection
            .execute_batch("PRAGMA application_id = 1129083749; PRAGMA user_version = 1;")
            .expect("mark it a v1 lease database");
        let columns = "id, owner, offering, status, created_at, expires_at, hourly_rate, \
                       estimated_cost, provision_attempts, removal_failures, revision";
        let nanos = |at: chrono::DateTime<chrono::Utc>| at.timestamp_nanos_opt().expect("in range");
        connection
            .execute(
                &format!(
                    "INSERT INTO active ({columns}, due_at, claimable_at) \
                     VALUES (?1, ?2, 'alpine', 'pending', ?3, ?4, 10000000, 10000000, 0, 0, 1, ?4, ?4)"
                ),
                rusqlite::params![
                    active.id.as_str(),
                    owner,
                    nanos(active.created_at),
                    nanos(active.expires_at)
                ],
            )
            .expect("a v1 active row");
        connection
            .execute(
                &format!(
                    "INSERT INTO finished ({columns}, final_cost, ended_at, ended_key) \
                     VALUES (?1, ?2, 'alpine', 'deleted', ?3, ?4, 10000000, 10000000, 1, 0, 3, 7, ?4, ?4)"
                ),
                rusqlite::params![
                    done.id.as_str(),
                    owner,
                    nanos(done.created_at),
                    nanos(done.expires_at)
                ],
            )
            .expect("a v1 finished row");
    }

    let store = open(&path).await.expect("a v1 file opens");
    let read = store.get(&active.id).await.expect("the v1 active lease");
    assert_eq!((read.owner.as_str(), read.revision), (owner.as_str(), 1));
    assert_eq!(
        (read.nano_cpus, read.memory_mb),
        (0, 0),
        "unsized before v2"
    );
    let ended = store.get(&done.id).await.expect("the v1 finished lease");
    assert_eq!(ended.final_cost, Some(Money::from_nanos(7)));
    assert_eq!((ended.nano_cpus, ended.memory_mb), (0, 0));

    let sized = store
        .insert(
            &sample_lease(&owner, Duration::hours(1)),
            &Admission::default(),
        )
        .await
        .expect("a sized lease after the upgrade");
    assert_eq!(
        store.get(&sized.id).await.expect("get").memory_mb,
        256,
        "sizes are kept from version 2 on"
    );
    let two_leases = Admission {
        max_leases_per_owner: Some(2),
        ..Admission::default()
    };
    let refused = store
        .insert(&sample_lease(&owner, Duration::hours(1)), &two_leases)
        .await;
    assert!(
        matches!(refused, Err(lease_core::StoreError::LimitReached { .. })),
        "the upgraded file counts its v1 leases: {refused:?}"
    );
    drop(store);

    let connection = rusqlite::Connection::open(&path).expect("reopen");
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .expect("version");
    assert_eq!(version, SCHEMA_VERSION);
    let index: i64 = connection
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'finished_by_owner_created'",
            [],
            |row| row.get(0),
        )
        .expect("schema");
    assert_eq!(index, 1, "the version 2 index exists");
}

/// A version 2 file (made with the version 1 and 2 DDL, holding a sized
/// active lease and a namespace) opened by two stores at once is upgraded
/// to the current version in place, once: its lease and namespace are kept, and
/// sessions and personal tokens are stored from then on and survive a
/// reopen.
#[tokio::test]
async fn a_version_2_file_is_upgraded_in_place_to_keep_credentials() {
    use lease_core::CredentialStore;
    use lease_core::testing::credential_conformance::{sample_session, sample_token};

    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(dir.path());
    let owner = unique_owner("v2");
    let active = sample_lease(&owner, Duration::hours(1));
    {
        let connection = rusqlite::Connection::open(&path).expect("create a v2 file");
        connection
            .execute_batch(include_str!("../src/schema/v1.sql"))
            .expect("the v1 DDL");
        connection
            .execute_batch(include_str!("../src/schema/v2.sql"))
            .expect("the v2 DDL");
        connection
            .execute_batch(
                "PRAGMA application_id = 1129083749; PRAGMA user_version = 2; \
                 INSERT INTO meta (key, value) VALUES ('namespace', 'team-v2');",
            )
            .expect("mark it a v2 lease database");
        let nanos = |at: chrono::DateTime<chrono::Utc>| at.timestamp_nanos_opt().expect("in range");
        connection
            .execute(
                "INSERT INTO active (id, owner, offering, status, created_at, expires_at, \
                 hourly_rate, estimated_cost, provision_attempts, removal_failures, revision, \
                 nano_cpus, memory_mb, due_at, claimable_at) \
                 VALUES (?1, ?2, 'alpine', 'pending', ?3, ?4, 10000000, 10000000, 0, 0, 1, \
                 500000000, 256, ?4, ?4)",
                rusqlite::params![
                    active.id.as_str(),
                    owner,
                    nanos(active.created_at),
                    nanos(active.expires_at)
                ],
            )
            .expect("a v2 active row");
    }

    let config = || SqliteStoreConfig::new(&path).namespace("team-v2");
    let (first, second) = tokio::join!(SqliteStore::open(config()), SqliteStore::open(config()));
    let (store, other) = (
        first.expect("a v2 file opens"),
        second.expect("a v2 file opens beside another store"),
    );
    drop(other);
    let read = store.get(&active.id).await.expect("the v2 lease");
    assert_eq!((read.nano_cpus, read.memory_mb), (500_000_000, 256));

    let session = sample_session(&owner, Duration::hours(12));
    store
        .insert_session(&session)
        .await
        .expect("a session after the upgrade");
    let now = lease_core::testing::conformance::now_ms();
    let token = sample_token(&owner, "laptop", now, Some(now + Duration::days(90)));
    store
        .insert_token(&token, 20)
        .await
        .expect("a personal token after the upgrade");
    drop(store);

    let store = SqliteStore::open(config()).await.expect("reopen");
    assert_eq!(
        store.session(&session.id_sha256, now).await.expect("read"),
        Some(session),
        "sessions survive a reopen"
    );
    assert_eq!(
        store.tokens_of(&owner).await.expect("list"),
        [token],
        "tokens survive a reopen"
    );
    drop(store);

    let connection = rusqlite::Connection::open(&path).expect("reopen");
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .expect("version");
    assert_eq!(version, SCHEMA_VERSION, "upgraded to the current version");
    let objects: Vec<String> = connection
        .prepare(
            "SELECT name FROM sqlite_master WHERE tbl_name IN ('web_sessions', 'personal_tokens') \
             AND name NOT LIKE 'sqlite_autoindex%' ORDER BY name",
        )
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .expect("schema");
    assert_eq!(
        objects,
        [
            "personal_tokens",
            "personal_tokens_by_expiry",
            "personal_tokens_by_owner",
            "web_sessions",
            "web_sessions_by_expiry",
            "web_sessions_by_owner"
        ],
        "the version 3 tables and indexes exist"
    );
}

/// A version 3 file (made with the version 1 to 3 DDL, holding an active
/// lease written with the version 3 columns) opens and is upgraded to
/// version 4 in place: the lease reads with no `running_at`, keeps the new
/// times once written, and finishing it adds to the daily statistics.
#[tokio::test]
async fn a_version_3_file_is_upgraded_to_keep_daily_statistics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(dir.path());
    let owner = unique_owner("v3");
    let active = sample_lease(&owner, Duration::hours(1));
    {
        let connection = rusqlite::Connection::open(&path).expect("create a v3 file");
        for ddl in [
            include_str!("../src/schema/v1.sql"),
            include_str!("../src/schema/v2.sql"),
            include_str!("../src/schema/v3.sql"),
        ] {
            connection.execute_batch(ddl).expect("the v1..v3 DDL");
        }
        connection
            .execute_batch("PRAGMA application_id = 1129083749; PRAGMA user_version = 3;")
            .expect("mark it a v3 lease database");
        let nanos = |at: chrono::DateTime<chrono::Utc>| at.timestamp_nanos_opt().expect("in range");
        connection
            .execute(
                "INSERT INTO active (id, owner, offering, status, created_at, expires_at, \
                 hourly_rate, estimated_cost, provision_attempts, removal_failures, revision, \
                 nano_cpus, memory_mb, due_at, claimable_at) \
                 VALUES (?1, ?2, 'alpine', 'pending', ?3, ?4, 10000000, 10000000, 0, 0, 1, \
                 500000000, 256, ?4, ?4)",
                rusqlite::params![
                    active.id.as_str(),
                    owner,
                    nanos(active.created_at),
                    nanos(active.expires_at)
                ],
            )
            .expect("a v3 active row");
    }

    let store = open(&path).await.expect("a v3 file opens");
    let read = store.get(&active.id).await.expect("the v3 lease");
    assert_eq!((read.running_at, read.finished_at), (None, None));
    let mut running = read.clone();
    running.status = lease_core::Status::Running;
    running.running_at = Some(read.created_at + Duration::milliseconds(80));
    let running = store
        .update(&running, &Admission::default())
        .await
        .expect("update after the upgrade");
    let mut done = finished(&running, running.expires_at, Money::from_nanos(7));
    done.finished_at = Some(running.expires_at + Duration::milliseconds(3));
    let done = store.finish(&done).await.expect("finish after the upgrade");
    assert_eq!(store.get(&active.id).await.expect("in history"), done);
    let day = lease_core::stats::day_of(done.created_at);
    let rows = store.daily_stats(day, day).await.expect("daily stats");
    assert_eq!(rows, [lease_core::finish_contribution(&done)]);
    drop(store);

    let connection = rusqlite::Connection::open(&path).expect("reopen");
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .expect("version");
    assert_eq!(version, SCHEMA_VERSION, "upgraded to the current version");
}
