//! The store a scenario's server runs on, chosen by the test: one scenario
//! body serves every store ([`StoreKind`]), and [`ScenarioStore`] holds what
//! the store needs (a private Redis, a SQLite file's directory) for as long
//! as the test runs, server restarts included.
//!
//! ```no_run
//! use lease_reliability::server::{self, Server};
//! use lease_reliability::store::{ScenarioStore, StoreKind};
//!
//! let namespace = lease_reliability::random_namespace();
//! // Before the server, so that it outlives every restart.
//! if let Some(store) = ScenarioStore::start(StoreKind::Sqlite, "example") {
//!     let config = store.configure(server::config(&namespace));
//!     if let Some(mut server) = Server::start(config) {
//!         server.kill9();
//!         server.restart();
//!         store.assert_opened_by(&server.log_text(), server.starts());
//!     }
//! }
//! ```

use std::path::PathBuf;

use lease_testkit::TempDir;
use lease_testkit::postgres::PrivatePostgres;
use lease_testkit::redis::{Persistence, PrivateRedis};
use lease_testkit::server::ServerConfig;
use serde_json::Value;

/// The database file's name inside the test's directory.
const DATABASE_FILE: &str = "leases.db";

/// The message `lease-store-sqlite` logs once per open, with the file's
/// `path` and its `synchronous` mode as fields.
const SQLITE_OPENED: &str = "lease store: SQLite";

/// Which store a scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// `--store memory`: gone with the process.
    Memory,
    /// A private `redis-server` of the test (no persistence: only the
    /// server crashes, Redis keeps running).
    Redis,
    /// A SQLite file in a temporary directory of the test, the server's
    /// default mode (`synchronous=FULL`).
    Sqlite,
    /// The same with `?synchronous=normal`: a process crash must lose
    /// nothing either (only a power loss may cost the last commits).
    SqliteNormal,
    /// A private PostgreSQL cluster of the test (`initdb` in a scratch
    /// directory, its own port); the tables live in the schema of the
    /// server's namespace.
    Postgres,
}

impl StoreKind {
    /// Its name in figures (`scenario1.<name>.lost`): `memory`, `redis`,
    /// `sqlite`, `sqlite_normal`, `postgres`.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Redis => "redis",
            StoreKind::Sqlite => "sqlite",
            StoreKind::SqliteNormal => "sqlite_normal",
            StoreKind::Postgres => "postgres",
        }
    }

    /// Whether an acknowledged lease must survive a crash of the server.
    pub fn is_durable(self) -> bool {
        !matches!(self, StoreKind::Memory)
    }

    /// The `synchronous` mode the server must report opening the file with.
    fn synchronous(self) -> Option<&'static str> {
        match self {
            StoreKind::Sqlite => Some("FULL"),
            StoreKind::SqliteNormal => Some("NORMAL"),
            StoreKind::Memory | StoreKind::Redis | StoreKind::Postgres => None,
        }
    }
}

/// A started store of some [`StoreKind`]: its `--store` URL and what keeps
/// it alive. Create it before the server (locals drop in reverse order) and
/// keep it until the end of the test; the Redis or PostgreSQL process is
/// killed and the directory removed on drop.
#[derive(Debug)]
pub struct ScenarioStore {
    kind: StoreKind,
    url: String,
    database: Option<PathBuf>,
    // Held for their `Drop` only.
    _redis: Option<PrivateRedis>,
    _postgres: Option<PrivatePostgres>,
    _dir: Option<TempDir>,
}

impl ScenarioStore {
    /// Starts a store of `kind`; `test` names its files. `None` after a
    /// printed skip reason (a panic under `CI=true`) when the store needs a
    /// service that is missing (redis-server, PostgreSQL's binaries).
    pub fn start(kind: StoreKind, test: &str) -> Option<ScenarioStore> {
        let mut store = ScenarioStore {
            kind,
            url: "memory".to_owned(),
            database: None,
            _redis: None,
            _postgres: None,
            _dir: None,
        };
        match kind {
            StoreKind::Memory => {}
            StoreKind::Redis => {
                let redis = PrivateRedis::start(test, Persistence::None)?;
                store.url = redis.url();
                store._redis = Some(redis);
            }
            StoreKind::Postgres => {
                let postgres = PrivatePostgres::start(test)?;
                store.url = postgres.url();
                store._postgres = Some(postgres);
            }
            StoreKind::Sqlite | StoreKind::SqliteNormal => {
                let dir = TempDir::new(&format!("lease-sqlite-{test}"));
                let database = dir.path().join(DATABASE_FILE);
                // An absolute path gives `sqlite:///…`.
                store.url = format!("sqlite://{}", database.display());
                if kind == StoreKind::SqliteNormal {
                    store.url.push_str("?synchronous=normal");
                }
                store.database = Some(database);
                store._dir = Some(dir);
            }
        }
        Some(store)
    }

    /// Its kind.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// The `--store` value.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The SQLite database file (SQLite kinds only).
    pub fn database(&self) -> Option<&PathBuf> {
        self.database.as_ref()
    }

    /// `config` with `--store` set to this store.
    pub fn configure(&self, config: ServerConfig) -> ServerConfig {
        config.store(self.url.clone())
    }

    /// For the SQLite kinds: asserts from the server's log (`log`, JSON
    /// lines, every start appended) that each of its `starts` opened this
    /// very file with this kind's `synchronous` mode — so that a scenario
    /// named after a mode cannot silently run on another one, or on a file
    /// that did not survive the restart. Nothing to check for other kinds.
    ///
    /// # Panics
    ///
    /// If the log shows another count of opens, another file or mode.
    pub fn assert_opened_by(&self, log: &str, starts: u32) {
        let (Some(database), Some(synchronous)) = (&self.database, self.kind.synchronous()) else {
            return;
        };
        let opens: Vec<(String, String)> = sqlite_opens(log);
        let expected = database.display().to_string();
        assert_eq!(
            opens.len(),
            usize::try_from(starts).expect("a start count fits usize"),
            "one `{SQLITE_OPENED}` log line per start expected: {opens:?}"
        );
        for (path, mode) in &opens {
            assert_eq!(path, &expected, "the server opened another database file");
            assert_eq!(
                mode, synchronous,
                "the server opened {path} with synchronous={mode}"
            );
        }
    }
}

/// `(path, synchronous)` of every SQLite open in a JSON log.
fn sqlite_opens(log: &str) -> Vec<(String, String)> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|entry| {
            let fields = entry.get("fields")?;
            if fields.get("message")?.as_str()? != SQLITE_OPENED {
                return None;
            }
            Some((
                fields.get("path")?.as_str()?.to_owned(),
                fields.get("synchronous")?.as_str()?.to_owned(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"=== start #1 on 127.0.0.1:1 ===
{"timestamp":"t","level":"INFO","fields":{"message":"lease store: SQLite","path":"/tmp/a/leases.db","synchronous":"NORMAL","readers":2},"target":"lease_store_sqlite::store"}
lease-server: leases in /tmp/a/leases.db
{"timestamp":"t","level":"INFO","fields":{"message":"listening on http://127.0.0.1:1"},"target":"lease_server::serve"}
"#;

    #[test]
    fn reads_the_file_and_mode_of_each_open() {
        assert_eq!(
            sqlite_opens(LOG),
            vec![("/tmp/a/leases.db".to_owned(), "NORMAL".to_owned())]
        );
        assert!(sqlite_opens("not json\n{}\n").is_empty());
    }

    #[test]
    fn sqlite_urls_name_the_file_and_the_mode() {
        let full = ScenarioStore::start(StoreKind::Sqlite, "unit").expect("no service needed");
        let normal =
            ScenarioStore::start(StoreKind::SqliteNormal, "unit").expect("no service needed");
        let path = full.database().expect("a file").display().to_string();
        assert!(path.starts_with('/'), "{path}");
        assert_eq!(full.url(), format!("sqlite://{path}"));
        assert!(full.url().starts_with("sqlite:///"));
        assert!(normal.url().ends_with("/leases.db?synchronous=normal"));
        assert_ne!(full.database(), normal.database());
        let dir = full.database().and_then(|p| p.parent()).map(PathBuf::from);
        drop(full);
        assert!(dir.is_some_and(|dir| !dir.exists()), "removed on drop");
    }

    /// A store of `kind` on `path`, without creating anything.
    fn on(kind: StoreKind, path: &str) -> ScenarioStore {
        ScenarioStore {
            kind,
            url: String::new(),
            database: Some(PathBuf::from(path)),
            _redis: None,
            _postgres: None,
            _dir: None,
        }
    }

    #[test]
    fn a_log_of_another_mode_file_or_count_fails_the_check() {
        on(StoreKind::SqliteNormal, "/tmp/a/leases.db").assert_opened_by(LOG, 1);
        let cases = [
            (
                StoreKind::Sqlite,
                "/tmp/a/leases.db",
                1,
                "FULL expected, the log says NORMAL",
            ),
            (
                StoreKind::SqliteNormal,
                "/tmp/b/leases.db",
                1,
                "another file",
            ),
            (
                StoreKind::SqliteNormal,
                "/tmp/a/leases.db",
                2,
                "two starts, one open",
            ),
        ];
        for (kind, path, starts, why) in cases {
            let store = on(kind, path);
            let outcome = std::panic::catch_unwind(|| store.assert_opened_by(LOG, starts));
            assert!(outcome.is_err(), "{why}");
        }
        // Nothing to check for stores without a file.
        on(StoreKind::Redis, "/tmp/a/leases.db").assert_opened_by("", 3);
    }
}
