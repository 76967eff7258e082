//! Schema migrations: versioned SQL files (`src/schema/vN.sql`), applied at
//! connect in one transaction under a transaction-scoped advisory lock
//! keyed by the namespace's schema, so servers starting together migrate
//! once (the others wait, then find the schema current).
//!
//! The version lives in the schema's `meta` table (`schema_version`). A
//! schema newer than this build knows is refused without writing to it.

use deadpool_postgres::Object;
use tracing::info;

use crate::config::fnv1a;
use crate::error::PostgresError;

/// The schema migrations, in order: entry `n` takes version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("schema/v1.sql"),
    include_str!("schema/v2.sql"),
    include_str!("schema/v3.sql"),
    include_str!("schema/v4.sql"),
    // Warm pools. Numbered 5 to follow versions 3 and 4, which are merged
    // before it; it does not depend on them.
    include_str!("schema/v5.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// The advisory lock key of migrations of `schema`.
pub(crate) fn migration_lock(schema: &str) -> i64 {
    i64::from_ne_bytes(fnv1a(format!("containerlease migrate {schema}").as_bytes()).to_ne_bytes())
}

/// Brings `schema` (created if missing) to [`SCHEMA_VERSION`].
pub(crate) async fn migrate(client: &mut Object, schema: &str) -> Result<(), PostgresError> {
    let failed = |operation: &'static str| {
        move |source: tokio_postgres::Error| PostgresError::Migrate {
            schema: schema.to_owned(),
            operation,
            source: Box::new(source),
        }
    };
    let transaction = client
        .transaction()
        .await
        .map_err(failed("begin the migration"))?;
    transaction
        .execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&migration_lock(schema)],
        )
        .await
        .map_err(failed("take the migration lock"))?;
    // The name is made of [a-z0-9_] only (config::schema_name).
    transaction
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}; \
             CREATE TABLE IF NOT EXISTS {schema}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        ))
        .await
        .map_err(failed("create the schema"))?;
    let found = version(&transaction, schema).await?;
    if found > SCHEMA_VERSION {
        return Err(PostgresError::NewerSchema {
            schema: schema.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return transaction
            .commit()
            .await
            .map_err(failed("commit the migration"));
    }
    let from = usize::try_from(found).unwrap_or(0);
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(from) {
        transaction
            .batch_execute(sql)
            .await
            .map_err(failed("apply a migration"))?;
        info!(schema, version = step + 1, "lease schema migrated");
    }
    transaction
        .execute(
            &format!(
                "INSERT INTO {schema}.meta (key, value) VALUES ('schema_version', $1) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            ),
            &[&SCHEMA_VERSION.to_string()],
        )
        .await
        .map_err(failed("record the schema version"))?;
    transaction
        .commit()
        .await
        .map_err(failed("commit the migration"))
}

/// The schema's recorded version (0: none yet).
async fn version(
    transaction: &deadpool_postgres::Transaction<'_>,
    schema: &str,
) -> Result<i32, PostgresError> {
    let row = transaction
        .query_opt(
            &format!("SELECT value FROM {schema}.meta WHERE key = 'schema_version'"),
            &[],
        )
        .await
        .map_err(|source| PostgresError::Migrate {
            schema: schema.to_owned(),
            operation: "read the schema version",
            source: Box::new(source),
        })?;
    let Some(row) = row else { return Ok(0) };
    let text: String = row.try_get(0).map_err(|source| PostgresError::Migrate {
        schema: schema.to_owned(),
        operation: "read the schema version",
        source: Box::new(source),
    })?;
    text.parse().map_err(|_| PostgresError::Migrate {
        schema: schema.to_owned(),
        operation: "read the schema version",
        source: format!("schema_version is `{text}`, not a number").into(),
    })
}
