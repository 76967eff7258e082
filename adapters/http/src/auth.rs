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

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

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
    SingleUser(Caller),
    /// Bearer tokens checked against a tokens file.
    Tokens(Arc<TokenFile>),
}

impl Auth {
    /// Single-user mode as [`LOCAL_OWNER`].
    pub fn single_user() -> Self {
        Auth::SingleUser(Caller {
            owner: LOCAL_OWNER.to_owned(),
            admin: false,
        })
    }

    /// Token mode with `file`.
    pub fn tokens(file: TokenFile) -> Self {
        Auth::Tokens(Arc::new(file))
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

/// The bearer token of a request: the `Authorization: Bearer` header, or,
/// where `allow_query` (WebSocket and SSE, for browsers), `?token=`.
fn presented_token(request: &Request, allow_query: bool) -> Option<String> {
    if let Some(value) = request.headers().get(AUTHORIZATION) {
        let text = value.to_str().ok()?;
        let (scheme, token) = text.trim().split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    if allow_query {
        let Query(params) = Query::<HashMap<String, String>>::try_from_uri(request.uri()).ok()?;
        return params.get("token").cloned();
    }
    None
}

/// Middleware: resolves the caller and stores it in the request's extensions,
/// or answers 401 with `WWW-Authenticate: Bearer`.
pub(crate) async fn authenticate(
    State(auth): State<Auth>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = match &auth {
        Auth::SingleUser(caller) => caller.clone(),
        Auth::Tokens(file) => {
            let path = request.uri().path();
            let allow_query = path.starts_with("/ws/") || path == "/api/events";
            match presented_token(&request, allow_query) {
                None => {
                    return ApiError::unauthorized("a bearer token is required").into_response();
                }
                Some(token) => match file.verify(&token) {
                    Some(caller) => caller.clone(),
                    None => {
                        return ApiError::unauthorized("the bearer token is not valid")
                            .into_response();
                    }
                },
            }
        }
    };
    request.extensions_mut().insert(caller);
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
