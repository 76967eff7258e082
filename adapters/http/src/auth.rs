//! Who is calling: bearer tokens from a tokens file, or one local user.
//!
//! A tokens file lists owners and the SHA-256 of their tokens (never the
//! tokens themselves):
//!
//! ```toml
//! [[tokens]]
//! owner = "alice"
//! token_sha256 = "<hex sha-256 of the bearer token>"
//! admin = false
//! ```
//!
//! ```
//! use lease_http::auth::{TokenFile, mint_token};
//!
//! let minted = mint_token("alice", false).unwrap();
//! let file = TokenFile::from_toml(&minted.toml_entry).unwrap();
//! let caller = file.verify(&minted.token).unwrap();
//! assert_eq!(caller.owner, "alice");
//! assert!(file.verify("not-a-token").is_none());
//! ```
//!
//! The tokens in effect live in a [`TokenSet`], which the server replaces
//! when the file changes (SIGHUP). `/metrics` also takes a scrape token
//! ([`MetricsToken`]), and [`world_readable`] tells whether a secrets file
//! is readable by every user.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lease_core::Clock;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tracing::{debug, warn};

use crate::error::ApiError;
pub use crate::metrics_token::{MetricsToken, MetricsTokenError};
use crate::oidc::OidcAuth;
use crate::oidc::session::{self, Via};
use crate::tickets::{StreamPath, Tickets};

/// The owner of every lease when the server runs without a tokens file.
pub const LOCAL_OWNER: &str = "local";

/// The authenticated caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The owner name leases are made and listed under.
    pub owner: String,
    /// Admins see and manage every owner's leases.
    pub admin: bool,
}

/// How requests are authenticated.
#[derive(Clone, Debug)]
pub enum Auth {
    /// No tokens: every request acts as one owner (normally [`LOCAL_OWNER`]).
    /// Unless the router is told otherwise (`ApiConfig::insecure_open`),
    /// only requests addressed to a loopback name are served.
    SingleUser(Caller),
    /// Bearer tokens checked against the tokens in effect, which can be
    /// replaced while the server runs ([`TokenSet::replace`]).
    Tokens(TokenSet),
}

impl Auth {
    /// Single-user mode as [`LOCAL_OWNER`].
    pub fn single_user() -> Self {
        Auth::SingleUser(Caller {
            owner: LOCAL_OWNER.to_owned(),
            admin: false,
        })
    }

    /// Token mode with `file` (fixed: keep a [`TokenSet`] and use
    /// [`Auth::token_set`] to replace the tokens later).
    pub fn tokens(file: TokenFile) -> Self {
        Auth::Tokens(TokenSet::new(file))
    }

    /// Token mode with `tokens`, a handle whose clones can replace them.
    pub fn token_set(tokens: TokenSet) -> Self {
        Auth::Tokens(tokens)
    }

    /// Whether this is single-user mode.
    pub fn is_single_user(&self) -> bool {
        matches!(self, Auth::SingleUser(_))
    }

    /// Whether the caller presenting `headers` may see operators' details
    /// (`/readyz` failures): in single-user mode the local user, who runs
    /// the server; with tokens, an admin. The scrape token (`scrape`) is
    /// not one. `Err` (401) for a token that is presented but unknown, so a
    /// mistyped admin token is not silently treated as anonymous. With OIDC
    /// sign-in (`oidc`), an admin's personal token counts too.
    pub(crate) async fn is_operator(
        &self,
        scrape: Option<&MetricsToken>,
        oidc: Option<&OidcAuth>,
        headers: &HeaderMap,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, ApiError> {
        match self {
            Auth::SingleUser(_) => Ok(true),
            Auth::Tokens(tokens) => match bearer_header(headers)? {
                None => Ok(false),
                Some(token) if scrape.is_some_and(|scrape| scrape.matches(token)) => Ok(false),
                Some(token) => bearer_caller(tokens, oidc, token, now)
                    .await?
                    .map(|caller| caller.admin)
                    .ok_or_else(|| ApiError::unauthorized("the bearer token is not valid")),
            },
        }
    }

    /// Whether the caller presenting `headers` may read `/metrics`: an admin
    /// or the scrape token (`scrape`); in single-user mode, the local user.
    /// 401 without a valid token, 403 for a valid non-admin one. With OIDC
    /// sign-in (`oidc`), an admin's personal token counts too.
    pub(crate) async fn may_read_metrics(
        &self,
        scrape: Option<&MetricsToken>,
        oidc: Option<&OidcAuth>,
        headers: &HeaderMap,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ApiError> {
        let Auth::Tokens(tokens) = self else {
            return Ok(());
        };
        let Some(token) = bearer_header(headers)? else {
            return Err(ApiError::unauthorized("a bearer token is required"));
        };
        if scrape.is_some_and(|scrape| scrape.matches(token)) {
            return Ok(());
        }
        match bearer_caller(tokens, oidc, token, now).await? {
            Some(caller) if caller.admin => Ok(()),
            Some(_) => Err(ApiError::forbidden(
                "only admins and the metrics scrape token may read /metrics",
            )),
            None => Err(ApiError::unauthorized("the bearer token is not valid")),
        }
    }
}

/// The tokens in effect: a cheap-to-clone handle whose clones all see a
/// [`TokenSet::replace`] at once (readers never wait: the file is swapped
/// atomically, a request checks against the old or the new one whole).
///
/// ```
/// use lease_http::auth::{TokenFile, TokenSet, mint_token};
///
/// let alice = mint_token("alice", false).unwrap();
/// let bob = mint_token("bob", false).unwrap();
/// let tokens = TokenSet::new(TokenFile::from_toml(&alice.toml_entry).unwrap());
/// let server_side = tokens.clone();
/// assert!(server_side.verify(&alice.token).is_some());
///
/// // Revoke alice, admit bob: every clone sees it.
/// let change = tokens.replace(TokenFile::from_toml(&bob.toml_entry).unwrap());
/// assert_eq!((change.added, change.removed, change.total), (1, 1, 1));
/// assert!(server_side.verify(&alice.token).is_none());
/// assert!(server_side.verify(&bob.token).is_some());
/// ```
#[derive(Clone, Debug)]
pub struct TokenSet {
    current: Arc<ArcSwap<TokenFile>>,
}

/// What a [`TokenSet::replace`] changed, in numbers (never the tokens).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenChange {
    /// Tokens that were not known before.
    pub added: usize,
    /// Tokens that are no longer accepted.
    pub removed: usize,
    /// Tokens kept with another owner or admin flag.
    pub changed: usize,
    /// Tokens known now.
    pub total: usize,
}

impl TokenSet {
    /// A set holding `file`.
    pub fn new(file: TokenFile) -> Self {
        TokenSet {
            current: Arc::new(ArcSwap::from_pointee(file)),
        }
    }

    /// The caller a bearer token belongs to now, if it is known.
    pub fn verify(&self, token: &str) -> Option<Caller> {
        self.current.load().verify(token).cloned()
    }

    /// How many tokens are known now.
    pub fn len(&self) -> usize {
        self.current.load().len()
    }

    /// Whether no token is known now.
    pub fn is_empty(&self) -> bool {
        self.current.load().is_empty()
    }

    /// Puts `file` in effect for every clone of this handle; says what changed.
    pub fn replace(&self, file: TokenFile) -> TokenChange {
        let change = self.current.load().change_to(&file);
        self.current.store(Arc::new(file));
        change
    }

    /// Re-reads the tokens file at `path` and puts it in effect. A file that
    /// cannot be read or parsed changes nothing: the tokens in effect stay.
    pub fn reload_from(&self, path: impl AsRef<Path>) -> Result<TokenChange, TokenFileError> {
        let file = TokenFile::from_path(path)?;
        Ok(self.replace(file))
    }
}

impl Default for Auth {
    fn default() -> Self {
        Auth::single_user()
    }
}

/// Why a tokens file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("cannot read tokens file {path}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML of the expected shape.
    #[error("tokens file is not valid: expected [[tokens]] tables with owner, token_sha256, admin")]
    Parse(#[from] toml::de::Error),
    /// An entry breaks a rule.
    #[error("tokens entry {index}: {problem}")]
    Invalid {
        /// Its position, from 1.
        index: usize,
        /// What is wrong with it.
        problem: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    #[serde(default)]
    tokens: Vec<EntryRepr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryRepr {
    owner: String,
    token_sha256: String,
    #[serde(default)]
    admin: bool,
}

/// The known tokens, by the SHA-256 of each.
#[derive(Clone, Debug, Default)]
pub struct TokenFile {
    by_hash: HashMap<[u8; 32], Caller>,
}

impl TokenFile {
    /// Parses a tokens file's TOML.
    pub fn from_toml(text: &str) -> Result<Self, TokenFileError> {
        let repr: FileRepr = toml::from_str(text)?;
        let mut by_hash = HashMap::new();
        for (position, entry) in repr.tokens.into_iter().enumerate() {
            let index = position + 1;
            let invalid = |problem: &str| TokenFileError::Invalid {
                index,
                problem: problem.to_owned(),
            };
            let owner = entry.owner.trim();
            if owner.is_empty() || owner.len() > 128 || owner.chars().any(char::is_control) {
                return Err(invalid("owner must be 1-128 printable characters"));
            }
            let mut hash = [0u8; 32];
            hex::decode_to_slice(entry.token_sha256.trim(), &mut hash)
                .map_err(|_| invalid("token_sha256 must be 64 hexadecimal digits"))?;
            let caller = Caller {
                owner: owner.to_owned(),
                admin: entry.admin,
            };
            if by_hash.insert(hash, caller).is_some() {
                return Err(invalid("the same token_sha256 appears twice"));
            }
        }
        Ok(TokenFile { by_hash })
    }

    /// Reads a tokens file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, TokenFileError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        TokenFile::from_toml(&text)
    }

    /// The caller a bearer token belongs to, if it is known.
    pub fn verify(&self, token: &str) -> Option<&Caller> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.by_hash.get(&hash)
    }

    /// How many tokens are known.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether no token is known.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// What replacing this file by `next` adds, removes and changes.
    fn change_to(&self, next: &TokenFile) -> TokenChange {
        let mut change = TokenChange {
            total: next.len(),
            ..TokenChange::default()
        };
        for (hash, caller) in &next.by_hash {
            match self.by_hash.get(hash) {
                None => change.added += 1,
                Some(before) if before != caller => change.changed += 1,
                Some(_) => {}
            }
        }
        change.removed = self
            .by_hash
            .keys()
            .filter(|hash| !next.by_hash.contains_key(*hash))
            .count();
        change
    }
}

/// Whether anyone on the machine may read the file at `path` (its mode has
/// the "others may read" bit, `0o004`). Secrets files (the tokens file, the
/// metrics token file) should not be; the server warns when they are.
/// Always `false` where file modes do not exist.
pub fn world_readable(path: impl AsRef<Path>) -> std::io::Result<bool> {
    let metadata = std::fs::metadata(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(metadata.permissions().mode() & 0o004 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        Ok(false)
    }
}

/// The hex SHA-256 of a token, as written in a tokens file.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A newly minted token and its tokens-file entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MintedToken {
    /// The bearer token: give it to the user; it is not stored anywhere.
    pub token: String,
    /// The `[[tokens]]` entry to append to the tokens file.
    pub toml_entry: String,
}

/// Mints a random token (`clt_` and 256 random bits in hex) for `owner`.
pub fn mint_token(owner: &str, admin: bool) -> Result<MintedToken, TokenFileError> {
    let owner = owner.trim();
    if owner.is_empty() || owner.len() > 128 || owner.chars().any(char::is_control) {
        return Err(TokenFileError::Invalid {
            index: 1,
            problem: "owner must be 1-128 printable characters".to_owned(),
        });
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("clt_{}", hex::encode(bytes));
    let quoted_owner = toml::Value::String(owner.to_owned()).to_string();
    let toml_entry = format!(
        "[[tokens]]\nowner = {quoted_owner}\ntoken_sha256 = \"{}\"\nadmin = {admin}\n",
        token_sha256(&token)
    );
    Ok(MintedToken { token, toml_entry })
}

/// The token of an `Authorization: Bearer` header: `Ok(None)` without the
/// header, 401 for another scheme or an unreadable value.
pub(crate) fn bearer_header(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let refused = || ApiError::unauthorized("the Authorization header must be `Bearer <token>`");
    let text = value.to_str().map_err(|_| refused())?;
    let (scheme, token) = text.trim().split_once(' ').ok_or_else(refused)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(refused());
    }
    Ok(Some(token.trim()))
}

/// What the authentication middleware needs: the tokens (or single-user
/// mode), OIDC sign-in if configured, the stream tickets and the clock.
#[derive(Clone, Debug)]
pub(crate) struct Gate {
    pub(crate) auth: Auth,
    pub(crate) oidc: Option<OidcAuth>,
    pub(crate) tickets: Arc<Tickets>,
    pub(crate) clock: Arc<dyn Clock>,
}

/// The answer to a bearer token in a URL.
const TOKEN_IN_URL: &str = "tokens are not accepted in URLs (`?token=`): send `Authorization: Bearer <token>`, \
                            or, for a browser stream, get a single-use ticket from POST /api/tickets \
                            and pass it as `?ticket=`";

/// A personal token is touched (last-used time) at most this often.
const TOUCH_EVERY: chrono::Duration = chrono::Duration::minutes(1);

/// The request's query parameters; a token in the URL is refused.
fn url_params(uri: &Uri) -> Result<HashMap<String, String>, ApiError> {
    let params = Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|Query(params)| params)
        .unwrap_or_default();
    if params.contains_key("token") {
        return Err(ApiError::unauthorized(TOKEN_IN_URL));
    }
    Ok(params)
}

/// The caller of a `?ticket=` on a stream route (the ticket is spent).
fn ticket_caller(
    tickets: &Tickets,
    params: &HashMap<String, String>,
    uri: &Uri,
    missing: &str,
) -> Result<(Caller, Via), ApiError> {
    let Some(ticket) = params.get("ticket") else {
        return Err(ApiError::unauthorized(missing));
    };
    let Some(stream) = StreamPath::of(uri.path()) else {
        return Err(ApiError::unauthorized(
            "tickets open only the event stream, log and attach WebSockets: send `Authorization: Bearer <token>`",
        ));
    };
    tickets
        .redeem(ticket, &stream)
        .map(|caller| (caller, Via::Ticket))
        .map_err(|refused| ApiError::unauthorized(refused.to_string()))
}

/// The caller of a request in token mode: the `Authorization: Bearer`
/// header, or on a stream route a `?ticket=` (spent here). A token in the
/// URL is refused everywhere.
fn token_caller(
    tokens: &TokenSet,
    tickets: &Tickets,
    request: &Request,
) -> Result<(Caller, Via), ApiError> {
    let params = url_params(request.uri())?;
    if let Some(token) = bearer_header(request.headers())? {
        return tokens
            .verify(token)
            .map(|caller| (caller, Via::TokensFile))
            .ok_or_else(|| ApiError::unauthorized("the bearer token is not valid"));
    }
    ticket_caller(
        tickets,
        &params,
        request.uri(),
        "a bearer token is required",
    )
}

/// The caller of a request with OIDC sign-in: a bearer token (tokens file,
/// then personal tokens), else the session cookie (CSRF checked), else a
/// stream ticket.
async fn oidc_caller(
    tokens: &TokenSet,
    oidc: &OidcAuth,
    gate: &Gate,
    request: &RequestHead,
) -> Result<(Caller, Via), ApiError> {
    let params = url_params(&request.uri)?;
    let now = gate.clock.now();
    let headers = &request.headers;
    if let Some(token) = bearer_header(headers)? {
        if let Some(caller) = tokens.verify(token) {
            return Ok((caller, Via::TokensFile));
        }
        return personal_token_caller(oidc, token, now).await;
    }
    if let Some(session) = session::session_of(oidc, headers, now).await? {
        session::check_csrf(oidc, &session, &request.method, headers, None)?;
        let caller = Caller {
            owner: session.owner,
            admin: session.admin,
        };
        let via = Via::Session {
            id_sha256: session.id_sha256,
            csrf: session.csrf,
        };
        return Ok((caller, via));
    }
    let missing = if session::cookie(headers, crate::oidc::SESSION_COOKIE).is_some() {
        "the session has ended (signed out or expired): sign in again"
    } else {
        "sign in (GET /auth/login) or send `Authorization: Bearer <token>`"
    };
    ticket_caller(&gate.tickets, &params, &request.uri, missing)
}

/// What the OIDC middleware reads of a request (the body stays behind: it
/// is not `Sync`).
struct RequestHead {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

/// The caller of a personal token (`None`: not a valid one); its
/// last-used time is updated at most once a minute.
async fn personal_token(
    oidc: &OidcAuth,
    token: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<(Caller, Via)>, ApiError> {
    if !token.starts_with(crate::oidc::PERSONAL_TOKEN_PREFIX) || token.len() > 128 {
        return Ok(None);
    }
    let Some(found) = oidc
        .store()
        .token_by_hash(&token_sha256(token), now)
        .await?
    else {
        return Ok(None);
    };
    if found
        .last_used_at
        .is_none_or(|last| now - last >= TOUCH_EVERY)
        && let Err(error) = oidc.store().touch_token(&found.id, now).await
    {
        warn!(error = %error, id = %found.id, "cannot record a personal token's use");
    }
    let caller = Caller {
        owner: found.owner,
        admin: found.admin,
    };
    let via = Via::PersonalToken {
        id: found.id,
        expires_at: found.expires_at,
    };
    Ok(Some((caller, via)))
}

/// [`personal_token`], 401 when it is not a valid one.
async fn personal_token_caller(
    oidc: &OidcAuth,
    token: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Caller, Via), ApiError> {
    personal_token(oidc, token, now)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the bearer token is not valid"))
}

/// The caller of a bearer token outside the API's middleware (`/metrics`,
/// `/readyz`, the port proxy): a token of the tokens file, else (with OIDC
/// sign-in) a personal token. `None`: not a valid token.
pub(crate) async fn bearer_caller(
    tokens: &TokenSet,
    oidc: Option<&OidcAuth>,
    token: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Caller>, ApiError> {
    if let Some(caller) = tokens.verify(token) {
        return Ok(Some(caller));
    }
    let Some(oidc) = oidc else {
        return Ok(None);
    };
    Ok(personal_token(oidc, token, now)
        .await?
        .map(|(caller, _)| caller))
}

/// Middleware: resolves the caller and stores it (and how it proved who it
/// is) in the request's extensions, or answers 401 with
/// `WWW-Authenticate: Bearer` (403 `csrf` for a session request that fails
/// the CSRF rule).
pub(crate) async fn authenticate(
    State(gate): State<Gate>,
    mut request: Request,
    next: Next,
) -> Response {
    let resolved = match (&gate.auth, &gate.oidc) {
        // One user, no token: streams need no ticket either.
        (Auth::SingleUser(caller), _) => Ok((caller.clone(), Via::SingleUser)),
        (Auth::Tokens(tokens), None) => token_caller(tokens, &gate.tickets, &request),
        (Auth::Tokens(tokens), Some(oidc)) => {
            let head = RequestHead {
                method: request.method().clone(),
                uri: request.uri().clone(),
                headers: request.headers().clone(),
            };
            oidc_caller(tokens, oidc, &gate, &head).await
        }
    };
    let (caller, via) = match resolved {
        Ok(resolved) => resolved,
        Err(error) => {
            debug!(path = %request.uri().path(), reason = %error.detail.message, "request refused: not authenticated");
            return error.into_response();
        }
    };
    request.extensions_mut().insert(caller);
    request.extensions_mut().insert(via);
    next.run(request).await
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("a bearer token is required"))
    }
}

impl Caller {
    /// The owner whose leases a request is about: the caller's own, or, for
    /// an admin, `requested` (any owner) when given.
    pub fn scope(&self, requested: Option<&str>) -> Result<Option<String>, ApiError> {
        match requested {
            None if self.admin => Ok(None),
            None => Ok(Some(self.owner.clone())),
            Some(owner) if owner == self.owner => Ok(Some(self.owner.clone())),
            Some(owner) if self.admin => Ok(Some(owner.to_owned())),
            Some(_) => Err(ApiError::forbidden(
                "only admins can look at other owners' leases",
            )),
        }
    }
}
