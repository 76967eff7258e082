//! Opening a database file safely: recognise it, refuse what is not ours or
//! is damaged or too new (without writing a byte), then bring an older
//! schema up to date.
//!
//! A lease database carries `PRAGMA application_id` = [`APPLICATION_ID`]
//! and `PRAGMA user_version` = its schema version. Migrations run at open,
//! in one `BEGIN IMMEDIATE` transaction, so two processes opening an old
//! file at once migrate it once.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::error::OpenError;

/// `PRAGMA application_id` of a lease database ("CLse").
pub(crate) const APPLICATION_ID: i64 = 0x434c_7365;

/// The schema migrations, in order: entry `n` takes version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("schema/v1.sql"),
    include_str!("schema/v2.sql"),
    include_str!("schema/v3.sql"),
    include_str!("schema/v4.sql"),
    include_str!("schema/v5.sql"),
    // Warm pools. Numbered 6 to follow the daily statistics' version 5,
    // which is merged before it; it does not depend on it.
    include_str!("schema/v6.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// What an SQLite database file starts with.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// What is at the path before SQLite opens it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// No file, or an empty one: a new database.
    Nothing,
    /// An SQLite file whose header is whole.
    Database,
}

/// Reads the file's header (without SQLite) and refuses anything that is
/// not a whole SQLite file: SQLite itself would take a truncated or empty
/// header for a new database and write over it.
pub(crate) fn inspect_file(path: &Path) -> Result<Found, OpenError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Nothing),
        Err(error) => {
            return Err(OpenError::Open {
                path: path.to_owned(),
                source: Box::new(error),
            });
        }
    };
    let open_error = |error: std::io::Error| OpenError::Open {
        path: path.to_owned(),
        source: Box::new(error),
    };
    let length = file.metadata().map_err(open_error)?.len();
    if length == 0 {
        return Ok(Found::Nothing);
    }
    let mut header = Vec::with_capacity(100);
    file.by_ref()
        .take(100)
        .read_to_end(&mut header)
        .map_err(open_error)?;
    let not_ours = |reason: &str| OpenError::NotALeaseDatabase {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if !header.starts_with(MAGIC) {
        return Err(not_ours("it is not an SQLite file"));
    }
    if header.len() < 100 {
        return Err(OpenError::Corrupt {
            path: path.to_owned(),
            reason: format!("the file is truncated to {length} bytes"),
        });
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        size => u64::from(size),
    };
    let pages = u64::from(u32::from_be_bytes([
        header[28], header[29], header[30], header[31],
    ]));
    let change_counter = &header[24..28];
    let valid_for = &header[92..96];
    // The page count is meaningful only when it was written with the
    // current change counter (SQLite's own rule).
    if change_counter == valid_for && length < pages.saturating_mul(page_size) {
        return Err(OpenError::Corrupt {
            path: path.to_owned(),
            reason: format!(
                "the file is truncated: {length} bytes, its header says {pages} pages of {page_size}"
            ),
        });
    }
    Ok(Found::Database)
}

fn pragma_i64(connection: &Connection, path: &Path, name: &'static str) -> Result<i64, OpenError> {
    connection
        .query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
        .map_err(|source| read_error(path, name, source))
}

/// An error reading an existing file: damage is [`OpenError::Corrupt`].
fn read_error(path: &Path, operation: &'static str, source: rusqlite::Error) -> OpenError {
    match source.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => OpenError::Corrupt {
            path: path.to_owned(),
            reason: source.to_string(),
        },
        Some(rusqlite::ErrorCode::NotADatabase) => OpenError::NotALeaseDatabase {
            path: path.to_owned(),
            reason: source.to_string(),
        },
        _ => OpenError::Setup {
            path: path.to_owned(),
            operation,
            source: Box::new(source),
        },
    }
}

/// Checks, reading only, that the file is a lease database this build can
/// use: ours (or empty), not newer, and (with `integrity`) undamaged.
pub(crate) fn verify(
    connection: &Connection,
    path: &Path,
    integrity: bool,
) -> Result<(), OpenError> {
    let application_id = pragma_i64(connection, path, "application_id")?;
    let version = pragma_i64(connection, path, "user_version")?;
    let tables: i64 = connection
        .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
        .map_err(|source| read_error(path, "read the schema", source))?;
    if application_id == 0 && version == 0 && tables == 0 {
        return Ok(()); // an empty SQLite database: ours to set up
    }
    if application_id != APPLICATION_ID {
        return Err(OpenError::NotALeaseDatabase {
            path: path.to_owned(),
            reason: format!("application id {application_id:#x}, {tables} schema object(s)"),
        });
    }
    if version > SCHEMA_VERSION {
        return Err(OpenError::NewerSchema {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if integrity {
        let problems: Vec<String> = connection
            .prepare("PRAGMA quick_check(5)")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| row.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|source| read_error(path, "check integrity", source))?;
        if problems != ["ok"] {
            return Err(OpenError::Corrupt {
                path: path.to_owned(),
                reason: problems.join("; "),
            });
        }
    }
    Ok(())
}

/// The namespace written in the file, if any (reading only).
fn stamped_namespace(connection: &Connection, path: &Path) -> Result<Option<String>, OpenError> {
    connection
        .query_row(
            "SELECT value FROM meta WHERE key = 'namespace'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(|source| read_error(path, "read the namespace", source))
}

/// Refuses, reading only, a file stamped with another namespace than
/// `wanted`.
pub(crate) fn check_namespace(
    connection: &Connection,
    path: &Path,
    wanted: &str,
) -> Result<(), OpenError> {
    match stamped_namespace(connection, path)? {
        Some(found) if found != wanted => Err(OpenError::OtherNamespace {
            path: path.to_owned(),
            found,
            wanted: wanted.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Writes `namespace` into a file that has none yet (once, even with
/// several processes opening it at the same moment), or refuses a file
/// stamped with another one.
pub(crate) fn stamp_namespace(
    connection: &mut Connection,
    path: &Path,
    namespace: &str,
) -> Result<(), OpenError> {
    if stamped_namespace(connection, path)?.is_some() {
        return check_namespace(connection, path, namespace);
    }
    let setup = |source: rusqlite::Error| OpenError::Setup {
        path: path.to_owned(),
        operation: "record the namespace",
        source: Box::new(source),
    };
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(setup)?;
    transaction
        .execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('namespace', ?1)",
            [namespace],
        )
        .map_err(setup)?;
    // Another process may have stamped it first: theirs stands.
    check_namespace(&transaction, path, namespace)?;
    transaction.commit().map_err(setup)
}

/// Whether the file's schema is this build's (reading only).
pub(crate) fn current(connection: &Connection, path: &Path) -> Result<bool, OpenError> {
    Ok(pragma_i64(connection, path, "user_version")? == SCHEMA_VERSION)
}

/// Brings the schema to [`SCHEMA_VERSION`], once even with several
/// processes opening the file at the same moment.
pub(crate) fn migrate(connection: &mut Connection, path: &Path) -> Result<(), OpenError> {
    let setup = |operation: &'static str| {
        move |source: rusqlite::Error| OpenError::Setup {
            path: path.to_owned(),
            operation,
            source: Box::new(source),
        }
    };
    let current: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(setup("read the schema version"))?;
    if current == SCHEMA_VERSION {
        return Ok(()); // nothing to write
    }
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(setup("begin the migration"))?;
    // Read again under the write lock: another process may have migrated.
    let version: i64 = transaction
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(setup("read the schema version"))?;
    if version > SCHEMA_VERSION {
        return Err(OpenError::NewerSchema {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    let from = usize::try_from(version).unwrap_or(0);
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(from) {
        transaction
            .execute_batch(sql)
            .map_err(setup("migrate the schema"))?;
        tracing::info!(path = %path.display(), version = step + 1, "lease database schema migrated");
    }
    transaction
        .execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
        ))
        .map_err(setup("record the schema version"))?;
    transaction.commit().map_err(setup("commit the migration"))
}
