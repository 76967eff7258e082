//! [`CredentialStore`] on PostgreSQL: browser sessions and personal
//! tokens, in the namespace's schema beside the leases (schema version 1).
//!
//! Only hashes are stored (see [`lease_core::credentials`]). Storing a
//! session also deletes up to [`PRUNED_PER_INSERT`] expired ones, so a
//! server that never purges still keeps the table small. A token's
//! per-owner limit is checked under an advisory lock of that owner, in the
//! inserting transaction: parallel mints cannot pass it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use lease_core::{CredentialError, CredentialStore, PersonalToken, StoreError, WebSession};
use tokio_postgres::Row;

use crate::codec::{nanos, time};
use crate::config::fnv1a;
use crate::error::{During, is_unique_violation, store_error};
use crate::store::PostgresStore;

/// Expired sessions deleted at most with each new session.
pub(crate) const PRUNED_PER_INSERT: i64 = 100;

/// The session columns in the order [`session_from_row`] reads them.
const SESSION_COLUMNS: &str = "id_sha256, owner, admin, subject, csrf, created_at, expires_at";

/// The token columns in the order [`token_from_row`] reads them.
const TOKEN_COLUMNS: &str =
    "id, token_sha256, owner, admin, name, created_at, expires_at, last_used_at";

fn session_from_row(row: &Row) -> Result<WebSession, tokio_postgres::Error> {
    Ok(WebSession {
        id_sha256: row.try_get(0)?,
        owner: row.try_get(1)?,
        admin: row.try_get(2)?,
        subject: row.try_get(3)?,
        csrf: row.try_get(4)?,
        created_at: time(row.try_get(5)?),
        expires_at: time(row.try_get(6)?),
    })
}

fn token_from_row(row: &Row) -> Result<PersonalToken, tokio_postgres::Error> {
    Ok(PersonalToken {
        id: row.try_get(0)?,
        token_sha256: row.try_get(1)?,
        owner: row.try_get(2)?,
        admin: row.try_get(3)?,
        name: row.try_get(4)?,
        created_at: time(row.try_get(5)?),
        expires_at: row.try_get::<_, Option<i64>>(6)?.map(time),
        last_used_at: row.try_get::<_, Option<i64>>(7)?.map(time),
    })
}

/// Runs one statement with `params`, answering the changed row count.
async fn execute(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    operation: &'static str,
) -> Result<u64, StoreError> {
    let statement = client.prepare_cached(sql).await.during(operation)?;
    client.execute(&statement, params).await.during(operation)
}

/// Runs one query with `params`, answering its rows.
async fn query(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    operation: &'static str,
) -> Result<Vec<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.during(operation)?;
    client.query(&statement, params).await.during(operation)
}

/// Stores `token` unless its id or hash is taken (`Ok(false)`), or its
/// owner already holds `max_per_owner` tokens unexpired at its creation.
async fn insert_token(
    client: &mut deadpool_postgres::Object,
    lock: i64,
    token: &PersonalToken,
    max_per_owner: usize,
) -> Result<(), CredentialError> {
    const OPERATION: &str = "store a personal token";
    let created = nanos(token.created_at, OPERATION)?;
    let expires = token
        .expires_at
        .map(|at| nanos(at, OPERATION))
        .transpose()?;
    let used = token
        .last_used_at
        .map(|at| nanos(at, OPERATION))
        .transpose()?;
    let transaction = client.transaction().await.during(OPERATION)?;
    crate::admission::lock(&transaction, lock).await?;
    let taken = query(
        &transaction,
        "SELECT 1 FROM personal_tokens WHERE id = $1 OR token_sha256 = $2",
        &[&token.id, &token.token_sha256],
        OPERATION,
    )
    .await?;
    if !taken.is_empty() {
        return Err(CredentialError::AlreadyExists(token.id.clone()));
    }
    let held = query(
        &transaction,
        "SELECT count(*) FROM personal_tokens \
         WHERE owner = $1 AND (expires_at IS NULL OR expires_at > $2)",
        &[&token.owner, &created],
        OPERATION,
    )
    .await?;
    let held: i64 = match held.first() {
        Some(row) => row.try_get(0).during(OPERATION)?,
        None => 0,
    };
    if usize::try_from(held).unwrap_or(usize::MAX) >= max_per_owner {
        return Err(CredentialError::TooManyTokens {
            limit: max_per_owner,
        });
    }
    let statement = transaction
        .prepare_cached(&format!(
            "INSERT INTO personal_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .await
        .during(OPERATION)?;
    match transaction
        .execute(
            &statement,
            &[
                &token.id,
                &token.token_sha256,
                &token.owner,
                &token.admin,
                &token.name,
                &created,
                &expires,
                &used,
            ],
        )
        .await
    {
        Ok(_) => {}
        Err(error) if is_unique_violation(&error) => {
            return Err(CredentialError::AlreadyExists(token.id.clone()));
        }
        Err(error) => return Err(store_error(OPERATION, error).into()),
    }
    transaction.commit().await.during(OPERATION)?;
    Ok(())
}

impl PostgresStore {
    /// The advisory lock key serializing `owner`'s token mints.
    fn token_lock(&self, owner: &str) -> i64 {
        let key = fnv1a(format!("containerlease tokens {} {owner}", self.schema()).as_bytes());
        i64::from_ne_bytes(key.to_ne_bytes())
    }
}

#[async_trait]
impl CredentialStore for PostgresStore {
    async fn insert_session(&self, session: &WebSession) -> Result<(), CredentialError> {
        const OPERATION: &str = "store a session";
        let created = nanos(session.created_at, OPERATION)?;
        let expires = nanos(session.expires_at, OPERATION)?;
        let client = self.client().await?;
        execute(
            &client,
            "DELETE FROM web_sessions WHERE id_sha256 IN \
             (SELECT id_sha256 FROM web_sessions WHERE expires_at <= $1 LIMIT $2)",
            &[&created, &PRUNED_PER_INSERT],
            OPERATION,
        )
        .await?;
        let inserted = execute(
            &client,
            &format!(
                "INSERT INTO web_sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (id_sha256) DO NOTHING"
            ),
            &[
                &session.id_sha256,
                &session.owner,
                &session.admin,
                &session.subject,
                &session.csrf,
                &created,
                &expires,
            ],
            OPERATION,
        )
        .await?;
        if inserted == 0 {
            return Err(CredentialError::AlreadyExists(session.id_sha256.clone()));
        }
        Ok(())
    }

    async fn session(
        &self,
        id_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebSession>, StoreError> {
        const OPERATION: &str = "read a session";
        let now = crate::codec::saturating_nanos(now);
        let client = self.client().await?;
        let rows = query(
            &client,
            &format!(
                "SELECT {SESSION_COLUMNS} FROM web_sessions WHERE id_sha256 = $1 AND expires_at > $2"
            ),
            &[&id_sha256, &now],
            OPERATION,
        )
        .await?;
        rows.first()
            .map(session_from_row)
            .transpose()
            .during(OPERATION)
    }

    async fn delete_session(&self, id_sha256: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let deleted = execute(
            &client,
            "DELETE FROM web_sessions WHERE id_sha256 = $1",
            &[&id_sha256],
            "delete a session",
        )
        .await?;
        Ok(deleted > 0)
    }

    async fn delete_sessions_of(&self, owner: &str) -> Result<u64, StoreError> {
        let client = self.client().await?;
        execute(
            &client,
            "DELETE FROM web_sessions WHERE owner = $1",
            &[&owner],
            "delete an owner's sessions",
        )
        .await
    }

    async fn insert_token(
        &self,
        token: &PersonalToken,
        max_per_owner: usize,
    ) -> Result<(), CredentialError> {
        let mut client = self.client().await?;
        insert_token(
            &mut client,
            self.token_lock(&token.owner),
            token,
            max_per_owner,
        )
        .await
    }

    async fn token_by_hash(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PersonalToken>, StoreError> {
        const OPERATION: &str = "read a personal token";
        let now = crate::codec::saturating_nanos(now);
        let client = self.client().await?;
        let rows = query(
            &client,
            &format!(
                "SELECT {TOKEN_COLUMNS} FROM personal_tokens \
                 WHERE token_sha256 = $1 AND (expires_at IS NULL OR expires_at > $2)"
            ),
            &[&token_sha256, &now],
            OPERATION,
        )
        .await?;
        rows.first()
            .map(token_from_row)
            .transpose()
            .during(OPERATION)
    }

    async fn tokens_of(&self, owner: &str) -> Result<Vec<PersonalToken>, StoreError> {
        const OPERATION: &str = "list personal tokens";
        let client = self.client().await?;
        let rows = query(
            &client,
            &format!(
                "SELECT {TOKEN_COLUMNS} FROM personal_tokens WHERE owner = $1 \
                 ORDER BY created_at DESC, id DESC"
            ),
            &[&owner],
            OPERATION,
        )
        .await?;
        rows.iter()
            .map(token_from_row)
            .collect::<Result<_, _>>()
            .during(OPERATION)
    }

    async fn revoke_token(&self, owner: &str, id: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let deleted = execute(
            &client,
            "DELETE FROM personal_tokens WHERE id = $1 AND owner = $2",
            &[&id, &owner],
            "revoke a personal token",
        )
        .await?;
        Ok(deleted > 0)
    }

    async fn revoke_tokens_of(&self, owner: &str) -> Result<u64, StoreError> {
        let client = self.client().await?;
        execute(
            &client,
            "DELETE FROM personal_tokens WHERE owner = $1",
            &[&owner],
            "revoke an owner's personal tokens",
        )
        .await
    }

    async fn touch_token(&self, id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        const OPERATION: &str = "record a token's use";
        let at = nanos(at, OPERATION)?;
        let client = self.client().await?;
        execute(
            &client,
            "UPDATE personal_tokens SET last_used_at = $2 WHERE id = $1",
            &[&id, &at],
            OPERATION,
        )
        .await
        .map(drop)
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        const OPERATION: &str = "purge expired credentials";
        let now = crate::codec::saturating_nanos(now);
        let client = self.client().await?;
        let sessions = execute(
            &client,
            "DELETE FROM web_sessions WHERE expires_at <= $1",
            &[&now],
            OPERATION,
        )
        .await?;
        let tokens = execute(
            &client,
            "DELETE FROM personal_tokens WHERE expires_at IS NOT NULL AND expires_at <= $1",
            &[&now],
            OPERATION,
        )
        .await?;
        Ok(sessions + tokens)
    }
}
