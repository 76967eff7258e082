//! [`CredentialStore`] on the same Redis and prefix as the leases: browser
//! sessions and personal tokens (key layout in the crate docs).
//!
//! Every write is one Lua script (`src/lua/credentials/*.lua`, each after
//! `src/lua/lib/credentials.lua`): a token's limit is counted in the script
//! that stores it, so replicas minting at once cannot pass it, and a
//! revocation checks the owner in the script that deletes.
//!
//! Expiry: a session's record expires in Redis at its `expires_at`
//! (`PEXPIREAT`), its owner's index with the owner's last session, and
//! storing a session deletes up to 100 sessions that had expired by its
//! creation, so sign-ins keep the indexes small. Reads still check expiry
//! against the caller's `now`, exactly. Tokens never expire in Redis: their
//! owner sees them listed as expired until [`CredentialStore::purge_expired`]
//! (the server calls it). The expiry indexes are kept to the millisecond: a
//! token that expires within the millisecond a new one is created still
//! counts toward the limit, and a purge leaves what expires within its
//! millisecond to the next one.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lease_core::{CredentialError, CredentialStore, PersonalToken, StoreError, WebSession};
use redis::Script;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::RedisStore;
use crate::error::{RedisStoreError, corrupt, other};
use crate::keys::{ceil_millis, from_nanos, nanos};

/// Most sessions and tokens one purge script deletes (it runs again until
/// fewer are left).
const PURGE_BATCH: u64 = 1000;

/// A credential script: `lua/lib/credentials.lua`, then its own file.
macro_rules! credential_script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("../lua/lib/credentials.lua"),
            include_str!(concat!("../lua/credentials/", $file))
        ))
    };
}

/// The credential scripts, loaded once per server and invoked by SHA.
pub(super) struct CredentialScripts {
    insert_session: Script,
    delete_session: Script,
    delete_sessions_of: Script,
    insert_token: Script,
    revoke_token: Script,
    touch_token: Script,
    tokens_of: Script,
    purge: Script,
}

impl CredentialScripts {
    pub(super) fn new() -> Self {
        CredentialScripts {
            insert_session: credential_script!("insert_session.lua"),
            delete_session: credential_script!("delete_session.lua"),
            delete_sessions_of: credential_script!("delete_sessions_of.lua"),
            insert_token: credential_script!("insert_token.lua"),
            revoke_token: credential_script!("revoke_token.lua"),
            touch_token: credential_script!("touch_token.lua"),
            tokens_of: credential_script!("tokens_of.lua"),
            purge: credential_script!("purge.lua"),
        }
    }
}

fn to_json(value: &impl Serialize, operation: &str) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|error| StoreError::Other {
        operation: operation.to_owned(),
        source: Box::new(error),
    })
}

fn from_json<T: DeserializeOwned>(key: &str, data: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(data).map_err(|error| corrupt(key.to_owned(), error))
}

/// The record at `key` names `found` where its key says `expected`.
fn wrong_record(key: &str, expected: &str, found: &str) -> StoreError {
    corrupt(
        key.to_owned(),
        RedisStoreError::WrongId {
            expected: expected.to_owned(),
            found: found.to_owned(),
        },
    )
}

/// A token's record with its last use (`used`, ns, empty or absent when
/// the record's own value stands).
fn token_record(key: &str, data: &[u8], used: Option<&str>) -> Result<PersonalToken, StoreError> {
    let mut token: PersonalToken = from_json(key, data)?;
    if let Some(used) = used.filter(|used| !used.is_empty()) {
        let at = used
            .parse::<i128>()
            .ok()
            .and_then(from_nanos)
            .ok_or_else(|| corrupt(key.to_owned(), RedisStoreError::NotANumber(used.to_owned())))?;
        token.last_used_at = Some(at);
    }
    Ok(token)
}

/// What a script that stores a credential answered.
fn stored(reply: &str, id: &str, limit: usize) -> Result<(), CredentialError> {
    match reply {
        "ok" => Ok(()),
        "exists" => Err(CredentialError::AlreadyExists(id.to_owned())),
        "limit" => Err(CredentialError::TooManyTokens { limit }),
        other_reply => Err(CredentialError::Store(other(
            "store a credential",
            RedisStoreError::UnexpectedReply(other_reply.to_owned()),
        ))),
    }
}

/// An expiry as an index score: milliseconds rounded up, or `+inf`.
fn expiry_score(expires_at: Option<DateTime<Utc>>) -> String {
    expires_at.map_or_else(|| "+inf".to_owned(), |at| ceil_millis(at).to_string())
}

#[async_trait]
impl CredentialStore for RedisStore {
    async fn insert_session(&self, session: &WebSession) -> Result<(), CredentialError> {
        let k = &self.keys;
        let sha = session.id_sha256.as_str();
        let keys = (k.session(sha), k.sessions_of(&session.owner), k.sessions());
        let args = (
            sha,
            to_json(session, "store a session")?,
            &session.owner,
            ceil_millis(session.expires_at),
            session.created_at.timestamp_millis(),
            k.base(),
        );
        let reply: String = self
            .link
            .run_script(
                "store a session",
                &self.credential_scripts.insert_session,
                keys,
                args,
            )
            .await?;
        stored(&reply, sha, 0)?;
        tracing::debug!(owner = %session.owner, "session stored");
        Ok(())
    }

    async fn session(
        &self,
        id_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebSession>, StoreError> {
        let key = self.keys.session(id_sha256);
        let read = redis::cmd("HGET").arg((&key, "data")).take();
        let data: Option<Vec<u8>> = self.link.run("read a session", &read).await?;
        let Some(data) = data else { return Ok(None) };
        let session: WebSession = from_json(&key, &data)?;
        if session.id_sha256 != id_sha256 {
            return Err(wrong_record(&key, id_sha256, &session.id_sha256));
        }
        Ok((session.expires_at > now).then_some(session))
    }

    async fn delete_session(&self, id_sha256: &str) -> Result<bool, StoreError> {
        let keys = self.keys.session(id_sha256);
        let args = (id_sha256, self.keys.base());
        let deleted: u64 = self
            .link
            .run_script(
                "delete a session",
                &self.credential_scripts.delete_session,
                keys,
                args,
            )
            .await?;
        Ok(deleted > 0)
    }

    async fn delete_sessions_of(&self, owner: &str) -> Result<u64, StoreError> {
        let (keys, args) = (self.keys.sessions_of(owner), self.keys.base());
        let deleted: u64 = self
            .link
            .run_script(
                "delete an owner's sessions",
                &self.credential_scripts.delete_sessions_of,
                keys,
                args,
            )
            .await?;
        tracing::debug!(owner, deleted, "sessions deleted");
        Ok(deleted)
    }

    async fn insert_token(
        &self,
        token: &PersonalToken,
        max_per_owner: usize,
    ) -> Result<(), CredentialError> {
        let k = &self.keys;
        let keys = (
            k.token(&token.token_sha256),
            k.token_ids(),
            k.tokens_of(&token.owner),
            k.token_expiry(),
        );
        let args = (
            (&token.id, &token.token_sha256),
            to_json(token, "store a personal token")?,
            &token.owner,
            expiry_score(token.expires_at),
            token.created_at.timestamp_millis(),
            u64::try_from(max_per_owner).unwrap_or(u64::MAX),
        );
        let reply: String = self
            .link
            .run_script(
                "store a personal token",
                &self.credential_scripts.insert_token,
                keys,
                args,
            )
            .await?;
        stored(&reply, &token.id, max_per_owner)?;
        tracing::debug!(owner = %token.owner, token_id = %token.id, "personal token stored");
        Ok(())
    }

    async fn token_by_hash(
        &self,
        token_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PersonalToken>, StoreError> {
        let key = self.keys.token(token_sha256);
        let read = redis::cmd("HMGET").arg((&key, "data", "used")).take();
        let (data, used): (Option<Vec<u8>>, Option<String>) =
            self.link.run("read a personal token", &read).await?;
        let Some(data) = data else { return Ok(None) };
        let token = token_record(&key, &data, used.as_deref())?;
        if token.token_sha256 != token_sha256 {
            return Err(wrong_record(&key, token_sha256, &token.token_sha256));
        }
        Ok(token.expires_at.is_none_or(|at| at > now).then_some(token))
    }

    async fn tokens_of(&self, owner: &str) -> Result<Vec<PersonalToken>, StoreError> {
        let k = &self.keys;
        let keys = (k.tokens_of(owner), k.token_ids());
        let records: Vec<(Vec<u8>, String)> = self
            .link
            .run_script(
                "list personal tokens",
                &self.credential_scripts.tokens_of,
                keys,
                k.base(),
            )
            .await?;
        let key = k.tokens_of(owner);
        let mut tokens = records
            .iter()
            .map(|(data, used)| token_record(&key, data, Some(used)))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(stray) = tokens.iter().find(|token| token.owner != owner) {
            return Err(wrong_record(&key, owner, &stray.owner));
        }
        tokens.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(tokens)
    }

    async fn revoke_token(&self, owner: &str, id: &str) -> Result<bool, StoreError> {
        let (keys, args) = (self.keys.token_ids(), (id, owner, self.keys.base()));
        let revoked: u64 = self
            .link
            .run_script(
                "revoke a personal token",
                &self.credential_scripts.revoke_token,
                keys,
                args,
            )
            .await?;
        if revoked > 0 {
            tracing::debug!(owner, token_id = id, "personal token revoked");
        }
        Ok(revoked > 0)
    }

    async fn touch_token(&self, id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let keys = self.keys.token_ids();
        let args = (id, nanos(at).to_string(), self.keys.base());
        let _: u64 = self
            .link
            .run_script(
                "record a personal token's use",
                &self.credential_scripts.touch_token,
                keys,
                args,
            )
            .await?;
        Ok(())
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let k = &self.keys;
        let mut purged = 0_u64;
        loop {
            let keys = (k.sessions(), k.token_expiry());
            let args = (now.timestamp_millis(), k.base(), PURGE_BATCH);
            let (sessions, tokens): (u64, u64) = self
                .link
                .run_script(
                    "purge expired credentials",
                    &self.credential_scripts.purge,
                    keys,
                    args,
                )
                .await?;
            purged = purged.saturating_add(sessions).saturating_add(tokens);
            if sessions < PURGE_BATCH && tokens < PURGE_BATCH {
                break;
            }
        }
        if purged > 0 {
            tracing::debug!(purged, "expired credentials purged");
        }
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_scores_round_up_and_never_is_infinite() {
        let at = DateTime::from_timestamp(1_700_000_000, 1).expect("a time");
        assert_eq!(expiry_score(Some(at)), "1700000000001");
        assert_eq!(expiry_score(None), "+inf");
    }

    #[test]
    fn a_token_record_takes_its_last_use_from_the_hash() {
        let token = PersonalToken {
            id: "pt_1".to_owned(),
            token_sha256: "ab".repeat(32),
            owner: "ada".to_owned(),
            admin: false,
            name: "laptop".to_owned(),
            created_at: DateTime::from_timestamp(1_700_000_000, 0).expect("a time"),
            expires_at: None,
            last_used_at: None,
        };
        let data = serde_json::to_vec(&token).expect("json");
        let used = DateTime::from_timestamp(1_700_000_100, 5).expect("a time");
        let read = token_record("k", &data, Some(&nanos(used).to_string())).expect("record");
        assert_eq!(read.last_used_at, Some(used));
        assert_eq!(
            token_record("k", &data, Some("")).expect("record"),
            token,
            "no use recorded"
        );
        match token_record("token-key", &data, Some("soon")) {
            Err(StoreError::Corrupt { key, .. }) => assert_eq!(key, "token-key"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        match token_record("token-key", b"{", None) {
            Err(StoreError::Corrupt { key, .. }) => assert_eq!(key, "token-key"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn script_replies_map_to_credential_errors() {
        assert!(stored("ok", "pt_1", 3).is_ok());
        assert!(matches!(
            stored("exists", "pt_1", 3),
            Err(CredentialError::AlreadyExists(id)) if id == "pt_1"
        ));
        assert!(matches!(
            stored("limit", "pt_1", 3),
            Err(CredentialError::TooManyTokens { limit: 3 })
        ));
        assert!(matches!(
            stored("maybe", "pt_1", 3),
            Err(CredentialError::Store(StoreError::Other { .. }))
        ));
    }
}
