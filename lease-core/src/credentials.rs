//! The credential store port: browser sessions and personal tokens of
//! people who sign in with the organisation's identity provider.
//!
//! Neither a session id nor a personal token is ever stored: only the hex
//! SHA-256 of each (both are 256-bit random strings, so a plain hash is
//! enough). Sessions expire at a fixed time and can be deleted at once
//! (sign-out, revocation); personal tokens live until their owner revokes
//! them or they reach their optional expiry.
//!
//! Conformance: `lease_core::testing::credential_conformance` (feature
//! `test-utils`) holds the cases every store must pass.

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// A signed-in browser, as the server keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebSession {
    /// Hex SHA-256 of the session cookie's value.
    pub id_sha256: String,
    /// The owner name the person acts as.
    pub owner: String,
    /// Whether the person was an admin (group claim) when signing in.
    pub admin: bool,
    /// The identity provider's subject (`iss` and `sub`), for audit logs.
    pub subject: String,
    /// The anti-CSRF token the page must echo on state-changing requests.
    pub csrf: String,
    /// When the person signed in.
    pub created_at: DateTime<Utc>,
    /// When the session stops being valid.
    pub expires_at: DateTime<Utc>,
}

/// A personal token a signed-in person minted for automation or the CLI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalToken {
    /// Public id (`pt_…`), shown in lists and used to revoke.
    pub id: String,
    /// Hex SHA-256 of the token itself (shown once, never stored).
    pub token_sha256: String,
    /// The owner it acts as.
    pub owner: String,
    /// Whether it carries admin rights (its minter's, when minted).
    pub admin: bool,
    /// The name its owner gave it.
    pub name: String,
    /// When it was minted.
    pub created_at: DateTime<Utc>,
    /// When it stops being valid, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last presented (updated at most about once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Why a personal token was not stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The owner already holds the most tokens allowed; nothing was stored.
    #[error("an owner may hold at most {limit} personal tokens: revoke one first")]
    TooManyTokens {
        /// The limit.
        limit: usize,
    },
    /// A token or session with this id or hash already exists.
    #[error("a credential with id {0} already exists")]
    AlreadyExists(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where sessions and personal tokens live. Every lease store of the
/// project implements it too, so credentials survive restarts and are
/// shared by every server on the same store.
#[async_trait]
pub trait CredentialStore: Send + Sync + Debug + 'static {
    /// Stores a new session ([`CredentialError::AlreadyExists`] if its hash
    /// is taken).
    async fn insert_session(&self, session: &WebSession) -> Result<(), CredentialError>;

    /// The session with this hash, if it exists and has not expired at
    /// `now` (valid while `now < expires_at`).
    ///
    /// A store may delete an expired session on its own: when a later
    /// session is stored (SQLite, Redis) or when its own clock passes the
    /// expiry (Redis expires the record), so a `now` earlier than the real
    /// time does not bring an expired session back.
    async fn session(
        &self,
        id_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebSession>, StoreError>;

    /// Deletes a session (sign-out). Whether it existed.
    async fn delete_session(&self, id_sha256: &str) -> Result<bool, StoreError>;

    /// Deletes every session of `owner` (sign out everywhere). How many.
    async fn delete_sessions_of(&self, owner: &str) -> Result<u64, StoreError>;

    /// Stores a new personal token unless its owner already holds
    /// `max_per_owner` unexpired ones at `token.created_at` (checked in the
    /// same step as the write, so parallel mints cannot pass the limit).
    async fn insert_token(
        &self,
        token: &PersonalToken,
        max_per_owner: usize,
    ) -> Result<(), CredentialError>;

    /// The token with this hash, if it exists and has not expired at `now`.
    async fn token_by_hash(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PersonalToken>, StoreError>;

    /// The owner's tokens (expired ones included until removed), newest
    /// first.
    async fn tokens_of(&self, owner: &str) -> Result<Vec<PersonalToken>, StoreError>;

    /// Revokes the owner's token `id`. Whether it existed (another owner's
    /// token is not found).
    async fn revoke_token(&self, owner: &str, id: &str) -> Result<bool, StoreError>;

    /// Revokes every token of `owner` (an admin's off-boarding). How many.
    /// The default revokes them one by one (an owner holds a bounded
    /// number); a store may do it in one step.
    async fn revoke_tokens_of(&self, owner: &str) -> Result<u64, StoreError> {
        let mut revoked = 0;
        for token in self.tokens_of(owner).await? {
            if self.revoke_token(owner, &token.id).await? {
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    /// Records that token `id` was presented at `at`.
    async fn touch_token(&self, id: &str, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Removes sessions and tokens that have expired at `now` (expiry at
    /// or before it). How many. Nothing else removes expired tokens: the
    /// server calls this periodically.
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}
