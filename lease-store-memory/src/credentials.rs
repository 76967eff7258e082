//! [`CredentialStore`] in process memory: sessions and personal tokens
//! under one lock, gone when the process ends.

use std::collections::HashMap;
use std::sync::{MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lease_core::{CredentialError, CredentialStore, PersonalToken, StoreError, WebSession};

use crate::MemoryStore;

/// The credentials of a [`MemoryStore`].
#[derive(Debug, Default)]
pub(crate) struct Credentials {
    /// Sessions by the hash of their id.
    sessions: HashMap<String, WebSession>,
    /// Personal tokens by the hash of the token.
    tokens: HashMap<String, PersonalToken>,
}

impl Credentials {
    fn token_hash_of(&self, id: &str) -> Option<String> {
        self.tokens
            .values()
            .find(|token| token.id == id)
            .map(|token| token.token_sha256.clone())
    }
}

fn live(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expires_at.is_none_or(|at| at > now)
}

impl MemoryStore {
    fn credentials(&self) -> MutexGuard<'_, Credentials> {
        // A panic under the lock leaves whole records: keep going.
        self.credentials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl CredentialStore for MemoryStore {
    async fn insert_session(&self, session: &WebSession) -> Result<(), CredentialError> {
        let mut credentials = self.credentials();
        if credentials.sessions.contains_key(&session.id_sha256) {
            return Err(CredentialError::AlreadyExists(session.id_sha256.clone()));
        }
        credentials
            .sessions
            .insert(session.id_sha256.clone(), session.clone());
        Ok(())
    }

    async fn session(
        &self,
        id_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebSession>, StoreError> {
        Ok(self
            .credentials()
            .sessions
            .get(id_sha256)
            .filter(|session| session.expires_at > now)
            .cloned())
    }

    async fn delete_session(&self, id_sha256: &str) -> Result<bool, StoreError> {
        Ok(self.credentials().sessions.remove(id_sha256).is_some())
    }

    async fn delete_sessions_of(&self, owner: &str) -> Result<u64, StoreError> {
        let mut credentials = self.credentials();
        let before = credentials.sessions.len();
        credentials
            .sessions
            .retain(|_, session| session.owner != owner);
        Ok((before - credentials.sessions.len()) as u64)
    }

    async fn insert_token(
        &self,
        token: &PersonalToken,
        max_per_owner: usize,
    ) -> Result<(), CredentialError> {
        let mut credentials = self.credentials();
        if credentials.tokens.contains_key(&token.token_sha256)
            || credentials.token_hash_of(&token.id).is_some()
        {
            return Err(CredentialError::AlreadyExists(token.id.clone()));
        }
        let held = credentials
            .tokens
            .values()
            .filter(|t| t.owner == token.owner && live(t.expires_at, token.created_at))
            .count();
        if held >= max_per_owner {
            return Err(CredentialError::TooManyTokens {
                limit: max_per_owner,
            });
        }
        credentials
            .tokens
            .insert(token.token_sha256.clone(), token.clone());
        Ok(())
    }

    async fn token_by_hash(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PersonalToken>, StoreError> {
        Ok(self
            .credentials()
            .tokens
            .get(token_sha256)
            .filter(|token| live(token.expires_at, now))
            .cloned())
    }

    async fn tokens_of(&self, owner: &str) -> Result<Vec<PersonalToken>, StoreError> {
        let mut tokens: Vec<PersonalToken> = self
            .credentials()
            .tokens
            .values()
            .filter(|token| token.owner == owner)
            .cloned()
            .collect();
        tokens.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(tokens)
    }

    async fn revoke_token(&self, owner: &str, id: &str) -> Result<bool, StoreError> {
        let mut credentials = self.credentials();
        let Some(hash) = credentials.token_hash_of(id) else {
            return Ok(false);
        };
        if credentials
            .tokens
            .get(&hash)
            .is_some_and(|t| t.owner == owner)
        {
            credentials.tokens.remove(&hash);
            return Ok(true);
        }
        Ok(false)
    }

    async fn touch_token(&self, id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut credentials = self.credentials();
        if let Some(hash) = credentials.token_hash_of(id)
            && let Some(token) = credentials.tokens.get_mut(&hash)
        {
            token.last_used_at = Some(at);
        }
        Ok(())
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut credentials = self.credentials();
        let before = credentials.sessions.len() + credentials.tokens.len();
        credentials
            .sessions
            .retain(|_, session| session.expires_at > now);
        credentials
            .tokens
            .retain(|_, token| live(token.expires_at, now));
        Ok((before - credentials.sessions.len() - credentials.tokens.len()) as u64)
    }
}
