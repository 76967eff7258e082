//! Grants to one port of one lease: the viewer cookies made from a ticket,
//! and preview links. Each is a 256-bit secret kept only as its SHA-256,
//! bound to a lease and a port, standing for the caller who made it, with
//! an expiry no later than the lease's.
//!
//! Grants live in this server process's memory, like tickets and shell
//! sessions: they are short-lived (at most a lease's life), a restart ends
//! them (the owner mints new links), and no store method is needed.
//! Behind several replicas, a link must reach the replica that minted it
//! (sticky routing), as tickets must.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use lease_core::{Clock, LeaseId};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::auth::Caller;

/// Most live grants (links and viewer cookies) one owner may hold.
pub(crate) const MAX_GRANTS_PER_OWNER: usize = 256;
/// What a grant's secret starts with.
const SECRET_PREFIX: &str = "prv_";
/// What a link id starts with.
const LINK_PREFIX: &str = "lnk_";
/// Longer presented secrets are refused without hashing them.
const MAX_SECRET_LEN: usize = 128;

/// What a grant is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GrantKind {
    /// A viewer's cookie, made from a ticket of the owner's page.
    Viewer,
    /// A preview link; public ones open `/p/{secret}/` on their own.
    Link {
        /// Whether the URL alone opens the port.
        public: bool,
    },
}

/// One grant.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    /// `lnk_…` (links are listed and revoked by it).
    pub(crate) id: String,
    /// The lease.
    pub(crate) lease: LeaseId,
    /// The port it opens.
    pub(crate) port: u16,
    /// Who made it: the proxy acts with this caller's rights on the lease.
    pub(crate) caller: Caller,
    /// When it was made.
    pub(crate) created_at: DateTime<Utc>,
    /// When it stops opening the port.
    pub(crate) expires_at: DateTime<Utc>,
    /// Its kind.
    pub(crate) kind: GrantKind,
}

impl Grant {
    /// Whether it opens `port` of `lease` (as written in a path).
    pub(crate) fn opens(&self, lease: &str, port: u16) -> bool {
        self.lease.as_str() == lease && self.port == port
    }
}

/// The live grants of this process.
#[derive(Debug)]
pub(crate) struct Grants {
    clock: Arc<dyn Clock>,
    by_hash: Mutex<HashMap<[u8; 32], Grant>>,
}

fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    hex::encode(buffer)
}

/// Whether `text` looks like a grant secret (so a bearer value can be told
/// from an API token cheaply).
pub(crate) fn is_secret(text: &str) -> bool {
    text.starts_with(SECRET_PREFIX) && text.len() <= MAX_SECRET_LEN
}

impl Grants {
    /// No grants, timed by `clock`.
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Grants {
            clock,
            by_hash: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<[u8; 32], Grant>> {
        // A panic while holding the lock leaves a valid map: keep using it.
        self.by_hash.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Now, by the manager's clock.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// A new grant: its secret (shown once) and the grant; `None` when the
    /// owner already holds [`MAX_GRANTS_PER_OWNER`].
    pub(crate) fn mint(
        &self,
        caller: &Caller,
        lease: &LeaseId,
        port: u16,
        expires_at: DateTime<Utc>,
        kind: GrantKind,
    ) -> Option<(String, Grant)> {
        let now = self.clock.now();
        let mut map = self.map();
        map.retain(|_, grant| grant.expires_at > now);
        let held = map
            .values()
            .filter(|g| g.caller.owner == caller.owner)
            .count();
        if held >= MAX_GRANTS_PER_OWNER {
            return None;
        }
        let secret = format!("{SECRET_PREFIX}{}", random_hex(32));
        let grant = Grant {
            id: format!("{LINK_PREFIX}{}", random_hex(12)),
            lease: lease.clone(),
            port,
            caller: caller.clone(),
            created_at: now,
            expires_at,
            kind,
        };
        map.insert(hash(&secret), grant.clone());
        Some((secret, grant))
    }

    /// A viewer grant made from `parent` (a link opened in a browser):
    /// same id (revoking the link ends it too), port and expiry.
    pub(crate) fn derive(&self, parent: &Grant) -> Option<String> {
        let (secret, _) = self.mint(
            &parent.caller,
            &parent.lease,
            parent.port,
            parent.expires_at,
            GrantKind::Viewer,
        )?;
        if let Some(grant) = self.map().get_mut(&hash(&secret)) {
            grant.id = parent.id.clone();
        }
        Some(secret)
    }

    /// The live grant of `secret`, if any.
    pub(crate) fn find(&self, secret: &str) -> Option<Grant> {
        if !is_secret(secret) {
            return None;
        }
        let now = self.clock.now();
        self.map()
            .get(&hash(secret))
            .filter(|grant| grant.expires_at > now)
            .cloned()
    }

    /// The live links of `port` of `lease` (every port with `None`),
    /// oldest first.
    pub(crate) fn links(&self, lease: &LeaseId, port: Option<u16>) -> Vec<Grant> {
        let now = self.clock.now();
        let mut found: Vec<Grant> = self
            .map()
            .values()
            .filter(|g| matches!(g.kind, GrantKind::Link { .. }))
            .filter(|g| &g.lease == lease && port.is_none_or(|p| g.port == p))
            .filter(|g| g.expires_at > now)
            .cloned()
            .collect();
        found.sort_by_key(|g| g.created_at);
        found
    }

    /// The live links of `port` of `lease` as written in a path
    /// (preflights pass when there is one).
    pub(crate) fn links_of(&self, lease: &str, port: u16) -> Vec<Grant> {
        let now = self.clock.now();
        self.map()
            .values()
            .filter(|g| {
                matches!(g.kind, GrantKind::Link { .. })
                    && g.opens(lease, port)
                    && g.expires_at > now
            })
            .cloned()
            .collect()
    }

    /// Revokes link `id` of `lease`, with the viewer grants made from it;
    /// false when there is none.
    pub(crate) fn revoke(&self, lease: &LeaseId, id: &str) -> bool {
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, g| !(g.id == id && &g.lease == lease));
        map.len() != before
    }
}

#[cfg(test)]
mod tests {
    use lease_core::clock::ManualClock;

    use super::*;

    fn caller(owner: &str) -> Caller {
        Caller {
            owner: owner.into(),
            admin: false,
        }
    }

    #[test]
    fn a_grant_opens_its_port_until_expiry_or_revocation() {
        let clock = Arc::new(ManualClock::default());
        let grants = Grants::new(clock.clone());
        let lease = LeaseId::generate();
        let expiry = clock.now() + chrono::Duration::seconds(60);
        let (secret, grant) = grants
            .mint(
                &caller("alice"),
                &lease,
                8080,
                expiry,
                GrantKind::Link { public: false },
            )
            .unwrap_or_else(|| panic!("minted"));
        let found = grants.find(&secret).unwrap_or_else(|| panic!("found"));
        assert!(found.opens(lease.as_str(), 8080));
        assert!(!found.opens(lease.as_str(), 8081));
        assert!(grants.find("prv_0000").is_none());
        assert_eq!(grants.links_of(lease.as_str(), 8080).len(), 1);
        assert!(grants.links_of(lease.as_str(), 8081).is_empty());
        assert!(grants.revoke(&lease, &grant.id));
        assert!(grants.find(&secret).is_none(), "revoked");
        let (secret, _) = grants
            .mint(&caller("alice"), &lease, 8080, expiry, GrantKind::Viewer)
            .unwrap_or_else(|| panic!("minted"));
        clock.advance(chrono::Duration::seconds(61));
        assert!(grants.find(&secret).is_none(), "expired");
    }
}
