//! Signing in with the organisation's identity provider (OpenID Connect).
//!
//! With [`OidcAuth`] in [`ApiConfig::oidc`](crate::ApiConfig::oidc), people
//! sign in in the browser (`GET /auth/login` → the provider →
//! `GET /auth/callback`) and get a server-side session in an `HttpOnly`,
//! `SameSite=Lax` cookie (`cl_session`); state-changing requests made with
//! the cookie must echo the session's CSRF token (`X-CSRF-Token`) and come
//! from our own origin. Signed-in people mint personal tokens (`/api/tokens`)
//! for automation, and the CLI gets one by a loopback redirect
//! (`/auth/cli`) or a device code (`/auth/device`). Sessions and tokens live
//! hashed in a [`CredentialStore`].
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/auth/login?return_to=/path` | 302 to the provider (PKCE S256, state, nonce) |
//! | GET | `/auth/callback` | the provider's redirect: checks, session cookie, 302 to `return_to` |
//! | POST | `/auth/logout`, `/auth/logout-everywhere` | ends this session / all of the owner's (CSRF) |
//! | GET | `/api/auth` | `{"mode","signIn","provider"}`, public |
//! | GET | `/api/me` | `{"owner","admin","via","csrf"}` |
//! | GET, POST | `/api/tokens` | list / mint personal tokens |
//! | DELETE | `/api/tokens/{id}`, `/api/tokens/current` | revoke |
//! | GET | `/auth/cli` | the CLI's loopback login: confirm page |
//! | POST | `/auth/cli/allow`, `/auth/cli/token` | allow; the CLI trades its code for a token |
//! | POST | `/auth/device`, `/auth/device/token` | the headless CLI login: start; poll for the token |
//! | GET | `/auth/device` | the page where a signed-in person enters the user code |
//! | POST | `/auth/device/verify`, `/auth/device/allow` | that page's forms: check the code; allow |

use std::fmt;
use std::sync::Arc;

use lease_core::CredentialStore;

pub mod config;
pub mod provider;

pub(crate) mod cli_login;
pub(crate) mod device;
pub(crate) mod login;
pub(crate) mod pages;
pub(crate) mod session;
pub(crate) mod tokens;

pub use config::{ClaimsRefused, IdentityClaims, OidcSettings, SettingsError};
pub use provider::{OidcProvider, ProviderError};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "cl_session";
/// Name of the cookie that binds a pending sign-in to the browser.
pub const LOGIN_COOKIE: &str = "cl_login";
/// The prefix of personal tokens.
pub const PERSONAL_TOKEN_PREFIX: &str = "clp_";

/// OIDC sign-in, ready to be given to the router: the discovered provider
/// and the store of sessions and personal tokens. Cheap to clone.
#[derive(Clone)]
pub struct OidcAuth {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) provider: OidcProvider,
    pub(crate) store: Arc<dyn CredentialStore>,
    pub(crate) pending: login::PendingLogins,
    pub(crate) cli_codes: cli_login::CliCodes,
    pub(crate) devices: device::DeviceLogins,
}

impl OidcAuth {
    /// Sign-in with `provider`, keeping sessions and tokens in `store`.
    pub fn new(provider: OidcProvider, store: Arc<dyn CredentialStore>) -> Self {
        OidcAuth {
            inner: Arc::new(Inner {
                provider,
                store,
                pending: login::PendingLogins::default(),
                cli_codes: cli_login::CliCodes::default(),
                devices: device::DeviceLogins::default(),
            }),
        }
    }

    /// The provider in use.
    pub fn provider(&self) -> &OidcProvider {
        &self.inner.provider
    }

    /// The settings in use.
    pub fn settings(&self) -> &OidcSettings {
        self.inner.provider.settings()
    }

    /// The credential store.
    pub fn store(&self) -> &Arc<dyn CredentialStore> {
        &self.inner.store
    }
}

impl fmt::Debug for OidcAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcAuth")
            .field("issuer", &self.settings().issuer)
            .finish_non_exhaustive()
    }
}

/// 32 random bytes in hex (session ids, CSRF tokens, codes).
pub(crate) fn random_hex() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The hex SHA-256 of `secret`.
pub(crate) fn sha256_hex(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `a` and `b` are equal, in time that does not depend on where
/// they differ.
pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl From<lease_core::StoreError> for crate::error::ApiError {
    fn from(error: lease_core::StoreError) -> Self {
        crate::error::ApiError::from(lease_core::LeaseError::from(error))
    }
}

/// A credential store failure as an API error.
pub(crate) fn credential_error(error: lease_core::CredentialError) -> crate::error::ApiError {
    use axum::http::StatusCode;
    use lease_core::CredentialError;
    match error {
        CredentialError::TooManyTokens { limit } => crate::error::ApiError::new(
            StatusCode::CONFLICT,
            "too_many_tokens",
            format!("an owner may hold at most {limit} personal tokens: revoke one first"),
        ),
        CredentialError::Store(store) => store.into(),
        other => crate::error::ApiError::internal(&other),
    }
}

/// The `/auth/*` routes (no bearer token needed; each checks what it
/// needs). `rated`: the rate limit of changes, per client IP here.
pub(crate) fn routes<L>(rated: L) -> axum::Router<crate::AppState>
where
    L: tower::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
    L::Service: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as tower::Service<axum::extract::Request>>::Future: Send + 'static,
{
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/auth/login", get(login::login))
        .route("/auth/callback", get(login::callback))
        .route("/auth/logout", post(session::logout).layer(rated.clone()))
        .route(
            "/auth/logout-everywhere",
            post(session::logout_everywhere).layer(rated.clone()),
        )
        .route("/auth/cli", get(cli_login::confirm))
        .route(
            "/auth/cli/allow",
            post(cli_login::allow).layer(rated.clone()),
        )
        .route(
            "/auth/cli/token",
            post(cli_login::token).layer(rated.clone()),
        )
        .route(
            "/auth/device",
            post(device::start).layer(rated.clone()).get(device::page),
        )
        .route(
            "/auth/device/verify",
            post(device::verify).layer(rated.clone()),
        )
        .route("/auth/device/allow", post(device::allow).layer(rated))
        // Polls pace themselves (`slow_down`), the rate limit stays out.
        .route("/auth/device/token", post(device::token))
}
