//! The credential conformance suite: what every [`CredentialStore`] must do.
//!
//! Each case is a plain `pub async fn` that takes a **fresh, empty** store
//! and panics (with a message saying what broke) when the store misbehaves.
//! A store crate runs all of them, directly and through
//! `Arc<dyn CredentialStore>`, with one line in its tests:
//!
//! ```rust,ignore
//! use lease_store_memory::MemoryStore;
//!
//! lease_core::credential_conformance_tests!(MemoryStore, async {
//!     Some(std::sync::Arc::new(MemoryStore::new()))
//! });
//! ```
//!
//! The second argument is evaluated once per test and yields
//! `Option<Arc<Store>>`; `None` means "the service is not there, skip", as
//! for [`crate::store_conformance_tests!`]. The macro needs `tokio` (with
//! `macros` and `rt-multi-thread`) among the caller's dev-dependencies.
//!
//! Times are based on [`Utc::now`], truncated to whole milliseconds, and
//! every case only ever moves `now` *forward* from the real clock, by whole
//! seconds or more: a store may also drop a session once the real clock
//! passes its expiry (Redis expires the key), and may keep expiry indexes to
//! the millisecond.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::conformance::{now_ms, unique_owner};
use crate::credentials::{CredentialError, CredentialStore, PersonalToken, WebSession};
use crate::id::LeaseId;

/// Tasks in the token-limit race: 40 simultaneous mints.
const RACERS: usize = 40;
/// The limit the race is run against.
const RACE_LIMIT: usize = 5;

/// A random 64-hex-digit string, like the SHA-256 of a secret.
pub fn random_sha256() -> String {
    let mut hex = String::with_capacity(64);
    while hex.len() < 64 {
        hex.push_str(LeaseId::generate().short(16));
    }
    hex.truncate(64);
    hex
}

/// A session of `owner` created now (to the millisecond) that expires
/// `expires_in` from now.
pub fn sample_session(owner: &str, expires_in: Duration) -> WebSession {
    let now = now_ms();
    WebSession {
        id_sha256: random_sha256(),
        owner: owner.to_owned(),
        admin: false,
        subject: format!("http://127.0.0.1:1/ {owner}"),
        csrf: random_sha256(),
        created_at: now,
        expires_at: now + expires_in,
    }
}

/// A personal token of `owner` named `name`, created at `created_at`,
/// expiring at `expires_at` (if ever), never used.
pub fn sample_token(
    owner: &str,
    name: &str,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
) -> PersonalToken {
    PersonalToken {
        id: format!("pt_{}", LeaseId::generate().short(20)),
        token_sha256: random_sha256(),
        owner: owner.to_owned(),
        admin: false,
        name: name.to_owned(),
        created_at,
        expires_at,
        last_used_at: None,
    }
}

/// Stores `session`, panicking on failure (a helper, not a case: its
/// bounds are in a `where` clause).
pub async fn insert_session<S>(store: &S, session: &WebSession)
where
    S: CredentialStore + ?Sized,
{
    store
        .insert_session(session)
        .await
        .unwrap_or_else(|error| panic!("insert_session of {} failed: {error}", session.owner));
}

/// Stores `token` under a limit of 100, panicking on failure.
pub async fn insert_token<S>(store: &S, token: &PersonalToken)
where
    S: CredentialStore + ?Sized,
{
    store
        .insert_token(token, 100)
        .await
        .unwrap_or_else(|error| panic!("insert_token {} failed: {error}", token.id));
}

async fn session<S: CredentialStore + ?Sized>(
    store: &S,
    id_sha256: &str,
    now: DateTime<Utc>,
) -> Option<WebSession> {
    store
        .session(id_sha256, now)
        .await
        .unwrap_or_else(|error| panic!("session({id_sha256}) failed: {error}"))
}

async fn token_by_hash<S: CredentialStore + ?Sized>(
    store: &S,
    token_sha256: &str,
    now: DateTime<Utc>,
) -> Option<PersonalToken> {
    store
        .token_by_hash(token_sha256, now)
        .await
        .unwrap_or_else(|error| panic!("token_by_hash({token_sha256}) failed: {error}"))
}

async fn tokens_of<S: CredentialStore + ?Sized>(store: &S, owner: &str) -> Vec<PersonalToken> {
    store
        .tokens_of(owner)
        .await
        .unwrap_or_else(|error| panic!("tokens_of({owner}) failed: {error}"))
}

fn ids(tokens: &[PersonalToken]) -> Vec<&str> {
    tokens.iter().map(|token| token.id.as_str()).collect()
}

async fn revoke<S: CredentialStore + ?Sized>(store: &S, owner: &str, id: &str) -> bool {
    store
        .revoke_token(owner, id)
        .await
        .unwrap_or_else(|error| panic!("revoke_token({owner}, {id}) failed: {error}"))
}

async fn purge<S: CredentialStore + ?Sized>(store: &S, now: DateTime<Utc>) -> u64 {
    store
        .purge_expired(now)
        .await
        .unwrap_or_else(|error| panic!("purge_expired failed: {error}"))
}

// ---------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------

/// A stored session reads back whole, by its hash only.
pub async fn session_insert_then_get<S: CredentialStore + ?Sized>(store: Arc<S>) {
    let mut stored = sample_session(&unique_owner("session"), Duration::hours(12));
    stored.admin = true;
    insert_session(&*store, &stored).await;
    assert_eq!(
        session(&*store, &stored.id_sha256, now_ms()).await,
        Some(stored.clone()),
        "a session reads back as stored"
    );
    assert_eq!(
        session(&*store, &random_sha256(), now_ms()).await,
        None,
        "an unknown hash is no session"
    );
    assert_eq!(
        session(&*store, &stored.csrf, now_ms()).await,
        None,
        "the CSRF token is not a session id"
    );
}

/// A session is valid strictly before its `expires_at`, judged by the
/// caller's `now`.
pub async fn session_expires_by_now<S: CredentialStore + ?Sized>(store: Arc<S>) {
    let stored = sample_session(&unique_owner("expiry"), Duration::hours(1));
    insert_session(&*store, &stored).await;
    let at = stored.expires_at;
    assert!(
        session(&*store, &stored.id_sha256, at - Duration::seconds(1))
            .await
            .is_some(),
        "valid a second before its expiry"
    );
    assert_eq!(
        session(&*store, &stored.id_sha256, at).await,
        None,
        "expired at its expiry"
    );
    assert_eq!(
        session(&*store, &stored.id_sha256, at + Duration::hours(1)).await,
        None,
        "expired after it"
    );
    assert!(
        session(&*store, &stored.id_sha256, now_ms())
            .await
            .is_some(),
        "asking with a later `now` changed nothing"
    );
}

/// A second session with a hash already stored is refused and the first
/// stays as it was.
pub async fn session_duplicate_is_refused<S: CredentialStore + ?Sized>(store: Arc<S>) {
    let first = sample_session(&unique_owner("dup"), Duration::hours(1));
    insert_session(&*store, &first).await;
    let mut second = sample_session(&unique_owner("dup-other"), Duration::hours(2));
    second.id_sha256 = first.id_sha256.clone();
    match store.insert_session(&second).await {
        Err(CredentialError::AlreadyExists(_)) => {}
        other => panic!("a taken session hash: expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        session(&*store, &first.id_sha256, now_ms()).await,
        Some(first),
        "the first session is unchanged"
    );
}

/// Deleting a session (sign-out) removes it and only it, once.
pub async fn delete_session_removes_only_it<S: CredentialStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("signout");
    let (gone, kept) = (
        sample_session(&owner, Duration::hours(1)),
        sample_session(&owner, Duration::hours(1)),
    );
    insert_session(&*store, &gone).await;
    insert_session(&*store, &kept).await;
    let deleted = store.delete_session(&gone.id_sha256).await;
    assert!(
        matches!(deleted, Ok(true)),
        "deleting a stored session: {deleted:?}"
    );
    assert_eq!(session(&*store, &gone.id_sha256, now_ms()).await, None);
    assert_eq!(
        session(&*store, &kept.id_sha256, now_ms()).await,
        Some(kept),
        "the owner's other session stays"
    );
    let again = store.delete_session(&gone.id_sha256).await;
    assert!(matches!(again, Ok(false)), "deleting it again: {again:?}");
    let unknown = store.delete_session(&random_sha256()).await;
    assert!(
        matches!(unknown, Ok(false)),
        "deleting an unknown session: {unknown:?}"
    );
}

/// Signing out everywhere deletes every session of that owner and none of
/// another's.
pub async fn delete_sessions_of_only_that_owner<S: CredentialStore + ?Sized>(store: Arc<S>) {
    let (owner, other) = (unique_owner("everywhere"), unique_owner("bystander"));
    let mine: Vec<WebSession> = (0..3)
        .map(|_| sample_session(&owner, Duration::hours(1)))
        .collect();
    let theirs = sample_session(&other, Duration::hours(1));
    for stored in mine.iter().chain([&theirs]) {
        insert_session(&*store, stored).await;
    }
    let deleted = store.delete_sessions_of(&owner).await;
    assert!(
        matches!(deleted, Ok(3)),
        "three sessions of the owner: {deleted:?}"
    );
    for stored in &mine {
        assert_eq!(session(&*store, &stored.id_sha256, now_ms()).await, None);
    }
    assert_eq!(
        session(&*store, &theirs.id_sha256, now_ms()).await,
        Some(theirs),
        "another owner's session stays"
    );
    let again = store.delete_sessions_of(&owner).await;
    assert!(matches!(again, Ok(0)), "none left: {again:?}");

    // The owner signs in again afterwards.
    let later = sample_session(&owner, Duration::hours(1));
    insert_session(&*store, &later).await;
    assert_eq!(
        session(&*store, &later.id_sha256, now_ms()).await,
        Some(later)
    );
}

// ---------------------------------------------------------------------------
// Personal tokens
// ---------------------------------------------------------------------------

/// A stored token reads back whole by its hash, with or without an expiry.
pub async fn token_insert_then_by_hash<S: CredentialStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("token");
    let now = now_ms();
    let mut expiring = sample_token(&owner, "laptop", now, Some(now + Duration::days(90)));
    expiring.admin = true;
    let forever = sample_token(&owner, "ci ünïcode ✓", now, None);
    insert_token(&*store, &expiring).await;
    insert_token(&*store, &forever).await;
    assert_eq!(
        token_by_hash(&*store, &expiring.token_sha256, now).await,
        Some(expiring.clone()),
        "an expiring token reads back as stored"
    );
    assert_eq!(
        token_by_hash(&*store, &forever.token_sha256, now).await,
        Some(forever.clone()),
        "a token without expiry reads back as stored"
    );
    assert_eq!(
        token_by_hash(&*store, &random_sha256(), now).await,
        None,
        "an unknown hash is no token"
    );
    assert_eq!(
        token_by_hash(&*store, &expiring.id, now).await,
        None,
        "the public id is not the token"
    );
}

/// A token whose hash or id is taken is refused, and nothing changes.
pub async fn token_duplicate_is_refused<S: CredentialStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("token-dup");
    let now = now_ms();
    let first = sample_token(&owner, "first", now, None);
    insert_token(&*store, &first).await;

    let mut same_hash = sample_token(&owner, "same hash", now, None);
    same_hash.token_sha256 = first.token_sha256.clone();
    let mut same_id = sample_token(&unique_owner("token-dup-other"), "same id", now, None);
    same_id.id = first.id.clone();
    for (what, token) in [("hash", &same_hash), ("id", &same_id)] {
        match store.insert_token(token, 100).await {
            Err(CredentialError::AlreadyExists(_)) => {}
            other => panic!("a taken token {what}: expected AlreadyExists, got {other:?}"),
        }
    }
    assert_eq!(
        token_by_hash(&*store, &first.token_sha256, now).await,
        Some(first.clone())
    );
    assert_eq!(
        token_by_hash(&*store, &same_id.token_sha256, now).await,
        None
    );
    assert_eq!(ids(&tokens_of(&*store, &owner).await), [first.id.as_str()]);
    assert!(tokens_of(&*store, &same_id.owner).await.is_empty());
}

/// The per-owner limit refuses exactly past its boundary, counts only the
/// owner's tokens unexpired at the new token's creation, stores nothing
/// when it refuses, and a revocation frees a place.
pub async fn token_limit_refuses_at_the_boundary<S: CredentialStore + ?Sized>(store: Arc<S>) {
    let (owner, other) = (unique_owner("limit"), unique_owner("limit-other"));
    let now = now_ms();
    let short = sample_token(&owner, "short", now, Some(now + Duration::hours(1)));
    let forever = sample_token(&owner, "forever", now, None);
    for token in [&short, &forever] {
        store
            .insert_token(token, 2)
            .await
            .unwrap_or_else(|error| panic!("within the limit of 2: {error}"));
    }
    let third = sample_token(&owner, "third", now + Duration::seconds(1), None);
    match store.insert_token(&third, 2).await {
        Err(CredentialError::TooManyTokens { limit: 2 }) => {}
        other => panic!("a third token under a limit of 2: expected TooManyTokens, got {other:?}"),
    }
    assert_eq!(
        token_by_hash(&*store, &third.token_sha256, now).await,
        None,
        "a refused token is not stored"
    );
    assert_eq!(tokens_of(&*store, &owner).await.len(), 2);

    let theirs = sample_token(&other, "theirs", now, None);
    store
        .insert_token(&theirs, 2)
        .await
        .unwrap_or_else(|error| panic!("another owner has their own limit: {error}"));

    // Two hours on, the short token has expired and no longer counts.
    let later = sample_token(&owner, "later", now + Duration::hours(2), None);
    store
        .insert_token(&later, 2)
        .await
        .unwrap_or_else(|error| panic!("an expired token must not count: {error}"));
    match store
        .insert_token(
            &sample_token(&owner, "one more", now + Duration::hours(2), None),
            2,
        )
        .await
    {
        Err(CredentialError::TooManyTokens { limit: 2 }) => {}
        other => panic!("at the limit again: expected TooManyTokens, got {other:?}"),
    }

    // Revoking one frees its place.
    assert!(revoke(&*store, &owner, &forever.id).await);
    let replacement = sample_token(&owner, "replacement", now + Duration::hours(2), None);
    store
        .insert_token(&replacement, 2)
        .await
        .unwrap_or_else(|error| panic!("a revoked token frees a place: {error}"));
}

/// Many mints racing at the limit store exactly the limit: the count and
/// the write are one step.
pub async fn token_limit_race_stores_exactly_the_limit<S: CredentialStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("token-race");
    let now = now_ms();
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut tasks = Vec::with_capacity(RACERS);
    for n in 0..RACERS {
        let store = Arc::clone(&store);
        let barrier = Arc::clone(&barrier);
        let token = sample_token(&owner, &format!("racer {n}"), now, None);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            (
                token.id.clone(),
                store.insert_token(&token, RACE_LIMIT).await,
            )
        }));
    }
    let mut stored = BTreeSet::new();
    for task in tasks {
        let (id, result) = task.await.expect("a racing mint panicked");
        match result {
            Ok(()) => {
                stored.insert(id);
            }
            Err(CredentialError::TooManyTokens { limit }) => assert_eq!(limit, RACE_LIMIT),
            Err(other) => panic!("racing mint: expected Ok or TooManyTokens, got {other:?}"),
        }
    }
    assert_eq!(
        stored.len(),
        RACE_LIMIT,
        "exactly the limit of racing mints succeed"
    );
    let listed: BTreeSet<String> = tokens_of(&*store, &owner)
        .await
        .into_iter()
        .map(|token| token.id)
        .collect();
    assert_eq!(listed, stored, "exactly the winners are stored");
}

/// A token is valid strictly before its `expires_at` (by the caller's
/// `now`); one without an expiry is valid at any time.
pub async fn token_by_hash_respects_expiry<S: CredentialStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("token-expiry");
    let now = now_ms();
    let at = now + Duration::days(1);
    let expiring = sample_token(&owner, "expiring", now, Some(at));
    let forever = sample_token(&owner, "forever", now, None);
    insert_token(&*store, &expiring).await;
    insert_token(&*store, &forever).await;
    assert!(
        token_by_hash(&*store, &expiring.token_sha256, at - Duration::seconds(1))
            .await
            .is_some(),
        "valid a second before its expiry"
    );
    assert_eq!(
        token_by_hash(&*store, &expiring.token_sha256, at).await,
        None,
        "expired at its expiry"
    );
    assert_eq!(
        token_by_hash(&*store, &forever.token_sha256, now + Duration::days(3650)).await,
        Some(forever),
        "no expiry: valid ten years on"
    );
    assert_eq!(
        ids(&tokens_of(&*store, &owner).await).len(),
        2,
        "an expired token is still listed until purged"
    );
}

/// An owner's tokens come newest first (ties by id, descending), expired
/// ones included, and never another owner's.
pub async fn tokens_of_is_newest_first_and_owner_scoped<S: CredentialStore + ?Sized>(
    store: Arc<S>,
) {
    let (owner, other) = (unique_owner("list"), unique_owner("list-other"));
    let now = now_ms();
    let oldest = sample_token(&owner, "oldest", now, Some(now + Duration::seconds(2)));
    let middle = sample_token(&owner, "middle", now + Duration::seconds(1), None);
    let mut twin_a = sample_token(&owner, "twin a", now + Duration::seconds(2), None);
    let mut twin_b = sample_token(&owner, "twin b", now + Duration::seconds(2), None);
    twin_a.id = format!("pt_a{}", &twin_a.id[3..]);
    twin_b.id = format!("pt_b{}", &twin_b.id[3..]);
    let theirs = sample_token(&other, "theirs", now + Duration::seconds(5), None);
    // Inserted out of order.
    for token in [&twin_a, &oldest, &theirs, &twin_b, &middle] {
        insert_token(&*store, token).await;
    }
    let listed = tokens_of(&*store, &owner).await;
    assert_eq!(
        ids(&listed),
        [
            twin_b.id.as_str(),
            twin_a.id.as_str(),
            middle.id.as_str(),
            oldest.id.as_str()
        ],
        "newest first, ties by id descending"
    );
    assert_eq!(listed[3], oldest, "listed tokens are whole");
    assert_eq!(ids(&tokens_of(&*store, &other).await), [theirs.id.as_str()]);
    assert!(
        tokens_of(&*store, &unique_owner("nobody")).await.is_empty(),
        "an owner without tokens has none"
    );
}

/// An owner revokes their own token, once; another owner's id is not
/// found and nothing changes.
pub async fn revoke_is_scoped_to_the_owner<S: CredentialStore + ?Sized>(store: Arc<S>) {
    let (owner, other) = (unique_owner("revoke"), unique_owner("revoke-other"));
    let now = now_ms();
    let token = sample_token(&owner, "laptop", now, None);
    let kept = sample_token(&owner, "desktop", now, None);
    insert_token(&*store, &token).await;
    insert_token(&*store, &kept).await;

    assert!(
        !revoke(&*store, &other, &token.id).await,
        "another owner cannot revoke it"
    );
    assert_eq!(
        token_by_hash(&*store, &token.token_sha256, now).await,
        Some(token.clone()),
        "a refused revocation changes nothing"
    );
    assert!(!revoke(&*store, &owner, "pt_unknown").await, "unknown id");

    assert!(revoke(&*store, &owner, &token.id).await, "its owner can");
    assert_eq!(token_by_hash(&*store, &token.token_sha256, now).await, None);
    assert_eq!(ids(&tokens_of(&*store, &owner).await), [kept.id.as_str()]);
    assert!(!revoke(&*store, &owner, &token.id).await, "only once");
    assert_eq!(
        token_by_hash(&*store, &kept.token_sha256, now).await,
        Some(kept),
        "the owner's other token stays"
    );
}

/// Touching a token records when it was last used; touching an unknown id
/// is no error.
pub async fn touch_records_the_last_use<S: CredentialStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("touch");
    let now = now_ms();
    let token = sample_token(&owner, "ci", now, Some(now + Duration::days(1)));
    insert_token(&*store, &token).await;
    let used = now + Duration::seconds(30);
    store
        .touch_token(&token.id, used)
        .await
        .unwrap_or_else(|error| panic!("touch_token failed: {error}"));
    let read = token_by_hash(&*store, &token.token_sha256, now)
        .await
        .expect("the touched token");
    assert_eq!(read.last_used_at, Some(used));
    assert_eq!(
        PersonalToken {
            last_used_at: None,
            ..read
        },
        token,
        "nothing else changed"
    );
    assert_eq!(tokens_of(&*store, &owner).await[0].last_used_at, Some(used));

    let again = used + Duration::minutes(2);
    store
        .touch_token(&token.id, again)
        .await
        .unwrap_or_else(|error| panic!("touch_token failed: {error}"));
    assert_eq!(
        token_by_hash(&*store, &token.token_sha256, now)
            .await
            .and_then(|token| token.last_used_at),
        Some(again)
    );
    store
        .touch_token("pt_unknown", again)
        .await
        .unwrap_or_else(|error| panic!("touching an unknown token must not fail: {error}"));
    assert!(revoke(&*store, &owner, &token.id).await);
    store
        .touch_token(&token.id, again)
        .await
        .unwrap_or_else(|error| panic!("touching a revoked token must not fail: {error}"));
    assert_eq!(
        token_by_hash(&*store, &token.token_sha256, now).await,
        None,
        "a touch does not bring a revoked token back"
    );
}

/// Purging removes exactly the sessions and tokens expired at `now`, says
/// how many, and leaves the rest usable.
pub async fn purge_expired_removes_only_the_expired<S: CredentialStore + ?Sized>(store: Arc<S>) {
    let owner = unique_owner("purge");
    let now = now_ms();
    let soon = sample_session(&owner, Duration::hours(1));
    let late = sample_session(&owner, Duration::hours(3));
    let short = sample_token(&owner, "short", now, Some(now + Duration::hours(1)));
    let long = sample_token(&owner, "long", now, Some(now + Duration::hours(3)));
    let forever = sample_token(&owner, "forever", now, None);
    insert_session(&*store, &soon).await;
    insert_session(&*store, &late).await;
    for token in [&short, &long, &forever] {
        insert_token(&*store, token).await;
    }

    assert_eq!(purge(&*store, now).await, 0, "nothing has expired yet");
    let two_hours = now + Duration::hours(2);
    assert_eq!(
        purge(&*store, two_hours).await,
        2,
        "one session and one token expired"
    );
    assert_eq!(purge(&*store, two_hours).await, 0, "purged once");

    assert_eq!(session(&*store, &soon.id_sha256, now).await, None);
    assert_eq!(
        session(&*store, &late.id_sha256, now).await,
        Some(late.clone())
    );
    assert_eq!(token_by_hash(&*store, &short.token_sha256, now).await, None);
    assert_eq!(
        ids(&tokens_of(&*store, &owner).await).len(),
        2,
        "the purged token is no longer listed"
    );
    assert!(
        !revoke(&*store, &owner, &short.id).await,
        "a purged token is gone"
    );
    let deleted = store.delete_sessions_of(&owner).await;
    assert!(
        matches!(deleted, Ok(1)),
        "only the unexpired session was left: {deleted:?}"
    );

    // The purged token's place is free again.
    for n in 0..2 {
        store
            .insert_token(&sample_token(&owner, &format!("new {n}"), now, None), 4)
            .await
            .unwrap_or_else(|error| panic!("a purged token frees its place: {error}"));
    }
    assert_eq!(
        purge(&*store, now + Duration::days(365)).await,
        1,
        "a year on, the three-hour token has expired too"
    );
}

// ---------------------------------------------------------------------------
// The macro
// ---------------------------------------------------------------------------

/// Runs the whole credential conformance suite against a store, as
/// `#[tokio::test]`s in two modules: `direct` (with `Arc<Store>`) and
/// `dynamic` (with `Arc<dyn CredentialStore>`).
///
/// ```rust,ignore
/// lease_core::credential_conformance_tests!(MemoryStore, async {
///     Some(std::sync::Arc::new(MemoryStore::new()))
/// });
/// ```
///
/// The first argument is the store type, the second an expression (usually
/// an `async` block) yielding `Option<Arc<Store>>`, evaluated once per test
/// for a fresh empty store; `None` skips the test. Put it in its own test
/// file (or module) when the lease suite runs beside it: both make modules
/// named `direct` and `dynamic`.
#[macro_export]
macro_rules! credential_conformance_tests {
    ($store:ty, $factory:expr $(,)?) => {
        $crate::__credential_conformance_cases!(@module direct, $store, $factory;);
        $crate::__credential_conformance_cases!(@module dynamic, $store, $factory;);
    };
}

/// Implementation detail of [`credential_conformance_tests!`]: the one list
/// of cases. A unit test of this file checks the list names every `pub
/// async fn` case above, so a new case cannot be left out.
#[doc(hidden)]
#[macro_export]
macro_rules! __credential_conformance_cases {
    ($($prefix:tt)*) => {
        $crate::__credential_conformance_module! { $($prefix)*
            session_insert_then_get,
            session_expires_by_now,
            session_duplicate_is_refused,
            delete_session_removes_only_it,
            delete_sessions_of_only_that_owner,
            token_insert_then_by_hash,
            token_duplicate_is_refused,
            token_limit_refuses_at_the_boundary,
            token_limit_race_stores_exactly_the_limit,
            token_by_hash_respects_expiry,
            tokens_of_is_newest_first_and_owner_scoped,
            revoke_is_scoped_to_the_owner,
            touch_records_the_last_use,
            purge_expired_removes_only_the_expired,
        }
    };
}

/// Implementation detail of [`credential_conformance_tests!`]: what is made
/// of the list of cases (a test module, or the names).
#[doc(hidden)]
#[macro_export]
macro_rules! __credential_conformance_module {
    (@names; $($case:ident),* $(,)?) => {
        [$(::core::stringify!($case)),*]
    };
    (@module $mode:ident, $store:ty, $factory:expr; $($case:ident),* $(,)?) => {
        mod $mode {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let store: ::core::option::Option<::std::sync::Arc<$store>> = $factory.await;
                    let ::core::option::Option::Some(store) = store else { return };
                    $crate::__credential_conformance_module!(@run $mode, store, $case);
                }
            )*
        }
    };
    (@run direct, $store:ident, $case:ident) => {
        $crate::testing::conformance::run_case(
            ::core::stringify!($case),
            $crate::testing::credential_conformance::$case($store),
        )
        .await
    };
    (@run dynamic, $store:ident, $case:ident) => {{
        let $store: ::std::sync::Arc<dyn $crate::CredentialStore> = $store;
        $crate::testing::conformance::run_case(
            ::core::stringify!($case),
            $crate::testing::credential_conformance::$case($store),
        )
        .await
    }};
}

#[cfg(test)]
mod tests {
    /// Every case defined in this file is in the macro's list, once, and
    /// the list names nothing else.
    #[test]
    fn the_macro_runs_every_case() {
        super::super::conformance::assert_every_case_listed_once(
            include_str!("credential_conformance.rs"),
            "<S: CredentialStore",
            &crate::__credential_conformance_cases!(@names;),
        );
    }
}
