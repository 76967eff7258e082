//! [`CredentialStore`] on the same file as the leases: browser sessions in
//! `web_sessions`, personal tokens in `personal_tokens` (schema version 3,
//! `src/schema/v3.sql`).
//!
//! Writes go through the writer like every lease write, so each runs in the
//! writer's `BEGIN IMMEDIATE` transaction: a token's limit is counted in the
//! same transaction as its insert, which makes the limit hold across the
//! processes sharing the file. Reads run on the read pool.
//!
//! Storing a session also deletes up to [`PRUNED_PER_INSERT`] sessions that
//! had expired by the new session's creation, so sign-ins keep the table
//! small on their own; tokens stay (their owner sees them as expired) until
//! [`CredentialStore::purge_expired`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lease_core::{CredentialError, CredentialStore, PersonalToken, StoreError, WebSession};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::SqliteStore;
use crate::codec::{nanos, saturating_nanos, time};
use crate::error::During;

/// Most expired sessions one session insert deletes.
pub(crate) const PRUNED_PER_INSERT: i64 = 100;

/// The session columns in the order [`session_from_row`] reads them.
const SESSION_COLUMNS: &str = "id_sha256, owner, admin, subject, csrf, created_at, expires_at";

/// The token columns in the order [`token_from_row`] reads them.
const TOKEN_COLUMNS: &str =
    "id, token_sha256, owner, admin, name, created_at, expires_at, last_used_at";

/// What a token insert did.
#[derive(Debug, PartialEq, Eq)]
enum Written {
    /// Stored.
    Stored,
    /// The id or hash is taken; nothing was written.
    Exists,
    /// The owner holds the most tokens allowed; nothing was written.
    TooMany,
}

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<WebSession> {
    Ok(WebSession {
        id_sha256: row.get(0)?,
        owner: row.get(1)?,
        admin: row.get(2)?,
        subject: row.get(3)?,
        csrf: row.get(4)?,
        created_at: time(row.get(5)?),
        expires_at: time(row.get(6)?),
    })
}

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<PersonalToken> {
    Ok(PersonalToken {
        id: row.get(0)?,
        token_sha256: row.get(1)?,
        owner: row.get(2)?,
        admin: row.get(3)?,
        name: row.get(4)?,
        created_at: time(row.get(5)?),
        expires_at: row.get::<_, Option<i64>>(6)?.map(time),
        last_used_at: row.get::<_, Option<i64>>(7)?.map(time),
    })
}

/// Inside the writer's transaction: stores `session` unless its hash is
/// taken (then `false`), after deleting some sessions expired by its
/// creation.
fn insert_session(transaction: &Connection, session: &WebSession) -> Result<bool, StoreError> {
    const OPERATION: &str = "store a session";
    let created = nanos(session.created_at).during(OPERATION)?;
    let expires = nanos(session.expires_at).during(OPERATION)?;
    transaction
        .prepare_cached(
            "DELETE FROM web_sessions WHERE id_sha256 IN \
             (SELECT id_sha256 FROM web_sessions WHERE expires_at <= ?1 LIMIT ?2)",
        )
        .and_then(|mut statement| statement.execute(params![created, PRUNED_PER_INSERT]))
        .during(OPERATION)?;
    let inserted = transaction
        .prepare_cached(&format!(
            "INSERT INTO web_sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (id_sha256) DO NOTHING"
        ))
        .and_then(|mut statement| {
            statement.execute(params![
                session.id_sha256,
                session.owner,
                session.admin,
                session.subject,
                session.csrf,
                created,
                expires
            ])
        })
        .during(OPERATION)?;
    Ok(inserted == 1)
}

/// Inside the writer's transaction: stores `token` unless its id or hash is
/// taken or its owner already holds `max_per_owner` tokens unexpired at its
/// creation.
fn insert_token(
    transaction: &Connection,
    token: &PersonalToken,
    max_per_owner: usize,
) -> Result<Written, StoreError> {
    const OPERATION: &str = "store a personal token";
    let created = nanos(token.created_at).during(OPERATION)?;
    let expires = token.expires_at.map(nanos).transpose().during(OPERATION)?;
    let used = token
        .last_used_at
        .map(nanos)
        .transpose()
        .during(OPERATION)?;
    let taken = transaction
        .prepare_cached("SELECT 1 FROM personal_tokens WHERE id = ?1 OR token_sha256 = ?2")
        .and_then(|mut statement| statement.exists(params![token.id, token.token_sha256]))
        .during(OPERATION)?;
    if taken {
        return Ok(Written::Exists);
    }
    let held: i64 = transaction
        .prepare_cached(
            "SELECT count(*) FROM personal_tokens \
             WHERE owner = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
        )
        .and_then(|mut statement| {
            statement.query_row(params![token.owner, created], |row| row.get(0))
        })
        .during(OPERATION)?;
    if usize::try_from(held).unwrap_or(usize::MAX) >= max_per_owner {
        return Ok(Written::TooMany);
    }
    transaction
        .prepare_cached(&format!(
            "INSERT INTO personal_tokens ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ))
        .and_then(|mut statement| {
            statement.execute(params![
                token.id,
                token.token_sha256,
                token.owner,
                token.admin,
                token.name,
                created,
                expires,
                used
            ])
        })
        .during(OPERATION)?;
    Ok(Written::Stored)
}

fn session(
    connection: &Connection,
    id_sha256: &str,
    now: i64,
) -> Result<Option<WebSession>, StoreError> {
    connection
        .prepare_cached(&format!(
            "SELECT {SESSION_COLUMNS} FROM web_sessions WHERE id_sha256 = ?1 AND expires_at > ?2"
        ))
        .and_then(|mut statement| {
            statement
                .query_row(params![id_sha256, now], session_from_row)
                .optional()
        })
        .during("read a session")
}

fn token_by_hash(
    connection: &Connection,
    token_sha256: &str,
    now: i64,
) -> Result<Option<PersonalToken>, StoreError> {
    connection
        .prepare_cached(&format!(
            "SELECT {TOKEN_COLUMNS} FROM personal_tokens \
             WHERE token_sha256 = ?1 AND (expires_at IS NULL OR expires_at > ?2)"
        ))
        .and_then(|mut statement| {
            statement
                .query_row(params![token_sha256, now], token_from_row)
                .optional()
        })
        .during("read a personal token")
}

fn tokens_of(connection: &Connection, owner: &str) -> Result<Vec<PersonalToken>, StoreError> {
    connection
        .prepare_cached(&format!(
            "SELECT {TOKEN_COLUMNS} FROM personal_tokens WHERE owner = ?1 \
             ORDER BY created_at DESC, id DESC"
        ))
        .and_then(|mut statement| {
            statement
                .query_map([owner], token_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .during("list personal tokens")
}

/// Runs `sql` with `values` in the writer's transaction: how many rows it
/// changed.
fn change(
    transaction: &Connection,
    sql: &'static str,
    values: impl rusqlite::Params,
    operation: &'static str,
) -> Result<usize, StoreError> {
    transaction
        .prepare_cached(sql)
        .and_then(|mut statement| statement.execute(values))
        .during(operation)
}

fn purge(transaction: &Connection, now: i64) -> Result<u64, StoreError> {
    const OPERATION: &str = "purge expired credentials";
    let sessions = change(
        transaction,
        "DELETE FROM web_sessions WHERE expires_at <= ?1",
        [now],
        OPERATION,
    )?;
    let tokens = change(
        transaction,
        "DELETE FROM personal_tokens WHERE expires_at IS NOT NULL AND expires_at <= ?1",
        [now],
        OPERATION,
    )?;
    Ok(u64::try_from(sessions.saturating_add(tokens)).unwrap_or(u64::MAX))
}

#[async_trait]
impl CredentialStore for SqliteStore {
    async fn insert_session(&self, session: &WebSession) -> Result<(), CredentialError> {
        let stored = session.clone();
        let stored = self
            .writer
            .write(move |transaction| insert_session(transaction, &stored))
            .await?;
        if !stored {
            return Err(CredentialError::AlreadyExists(session.id_sha256.clone()));
        }
        tracing::debug!(owner = %session.owner, "session stored");
        Ok(())
    }

    async fn session(
        &self,
        id_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebSession>, StoreError> {
        let (id_sha256, now) = (id_sha256.to_owned(), saturating_nanos(now));
        self.read(move |connection| session(connection, &id_sha256, now))
            .await
    }

    async fn delete_session(&self, id_sha256: &str) -> Result<bool, StoreError> {
        let id_sha256 = id_sha256.to_owned();
        let deleted = self
            .writer
            .write(move |transaction| {
                change(
                    transaction,
                    "DELETE FROM web_sessions WHERE id_sha256 = ?1",
                    [id_sha256],
                    "delete a session",
                )
            })
            .await?;
        Ok(deleted > 0)
    }

    async fn delete_sessions_of(&self, owner: &str) -> Result<u64, StoreError> {
        let who = owner.to_owned();
        let deleted = self
            .writer
            .write(move |transaction| {
                change(
                    transaction,
                    "DELETE FROM web_sessions WHERE owner = ?1",
                    [who],
                    "delete an owner's sessions",
                )
            })
            .await?;
        tracing::debug!(owner, deleted, "sessions deleted");
        Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
    }

    async fn insert_token(
        &self,
        token: &PersonalToken,
        max_per_owner: usize,
    ) -> Result<(), CredentialError> {
        let stored = token.clone();
        let written = self
            .writer
            .write(move |transaction| insert_token(transaction, &stored, max_per_owner))
            .await?;
        match written {
            Written::Stored => {
                tracing::debug!(owner = %token.owner, token_id = %token.id, "personal token stored");
                Ok(())
            }
            Written::Exists => Err(CredentialError::AlreadyExists(token.id.clone())),
            Written::TooMany => Err(CredentialError::TooManyTokens {
                limit: max_per_owner,
            }),
        }
    }

    async fn token_by_hash(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PersonalToken>, StoreError> {
        let (token_sha256, now) = (token_sha256.to_owned(), saturating_nanos(now));
        self.read(move |connection| token_by_hash(connection, &token_sha256, now))
            .await
    }

    async fn tokens_of(&self, owner: &str) -> Result<Vec<PersonalToken>, StoreError> {
        let owner = owner.to_owned();
        self.read(move |connection| tokens_of(connection, &owner))
            .await
    }

    async fn revoke_token(&self, owner: &str, id: &str) -> Result<bool, StoreError> {
        let (who, token_id) = (owner.to_owned(), id.to_owned());
        let revoked = self
            .writer
            .write(move |transaction| {
                change(
                    transaction,
                    "DELETE FROM personal_tokens WHERE id = ?1 AND owner = ?2",
                    [token_id, who],
                    "revoke a personal token",
                )
            })
            .await?;
        if revoked > 0 {
            tracing::debug!(owner, token_id = id, "personal token revoked");
        }
        Ok(revoked > 0)
    }

    async fn touch_token(&self, id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let (id, at) = (id.to_owned(), saturating_nanos(at));
        self.writer
            .write(move |transaction| {
                change(
                    transaction,
                    "UPDATE personal_tokens SET last_used_at = ?2 WHERE id = ?1",
                    params![id, at],
                    "record a personal token's use",
                )
            })
            .await
            .map(drop)
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let now = saturating_nanos(now);
        let purged = self
            .writer
            .write(move |transaction| purge(transaction, now))
            .await?;
        if purged > 0 {
            tracing::debug!(purged, "expired credentials purged");
        }
        Ok(purged)
    }
}
