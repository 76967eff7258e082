//! ContainerLease's HTTP adapter: the seed's JSON API (and more) as an axum
//! [`Router`] over a [`LeaseManager`]. No `main`, no Docker or Redis code:
//! the binary (`lease-server`) wires the store and the runtime.
//!
//! ```
//! use std::sync::Arc;
//! use axum::body::Body;
//! use axum::http::{Request, StatusCode};
//! use lease_core::LeaseManager;
//! use lease_core::testing::fake_runtime::FakeRuntime;
//! use lease_http::{ApiConfig, router};
//! use lease_store_memory::MemoryStore;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let manager = LeaseManager::builder(
//!     Arc::new(MemoryStore::new()),
//!     Arc::new(FakeRuntime::default()),
//! )
//! .build()?;
//! // Single-user (owner `local`); `ApiConfig::default().auth(..)` for tokens.
//! let app = router(manager, ApiConfig::default());
//!
//! // Single-user mode answers only requests for a loopback name.
//! let request = Request::post("/api/provision")
//!     .header("host", "127.0.0.1:8080")
//!     .header("content-type", "application/json")
//!     .body(Body::from(r#"{"imageType":"alpine","durationMinutes":2}"#))?;
//! let response = app.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::ACCEPTED); // a pending lease
//! // In a binary: lease_http::serve(listener, app, ServeConfig::default(), shutdown).await
//! # Ok(())
//! # }
//! ```
//!
//! # Endpoints
//!
//! | method | path | |
//! |---|---|---|
//! | POST | `/api/provision` | `{"imageType":"alpine","durationMinutes":2}` → 202, the pending lease |
//! | GET | `/api/containers` | `{"containers":[…]}`: the caller's active leases |
//! | GET | `/api/containers/{id}/status` | one lease, with pull progress while pending |
//! | DELETE | `/api/containers/{id}` | early removal → 202 |
//! | POST | `/api/containers/{id}/extend` | `{"minutes":30}` → the lease, new expiry and cost |
//! | GET | `/ws/logs/{id}` | WebSocket, one text frame per log line |
//! | POST, GET | `/api/containers/{id}/sessions` | start / list shell sessions ([`shell`]) |
//! | DELETE | `/api/containers/{id}/sessions/{sid}` | end a shell session |
//! | GET | `/api/containers/{id}/sessions/{sid}/attach` | WebSocket: the session's terminal |
//! | GET | `/api/containers/{id}/ports/{port}/tcp` | WebSocket: a TCP connection to the port ([`forward`]) |
//! | GET | `/api/catalog` | the offerings, prices and limits |
//! | GET | `/api/usage` | the caller's spend and counts |
//! | GET | `/api/history` | finished leases with final cost and end reason |
//! | GET | `/api/events` | Server-Sent Events of the caller's leases |
//! | POST | `/api/tickets` | a single-use ticket for one stream (browsers) → 201 |
//! | GET | `/healthz`, `/readyz` | liveness; readiness (`{"ready":…}`; details for operators) |
//! | GET | `/metrics` | Prometheus text (admins or the scrape token) |
//! | GET | `/openapi.json` | the OpenAPI document ([`openapi`]) |
//!
//! Leases are JSON in the seed's camelCase ([`wire::LeaseJson`]). Every
//! error, axum's own rejections included, is
//! `{"error":{"code","message"}}` ([`error::ErrorBody`]) with a 4xx status
//! for what the caller got wrong and a 5xx only for the server's faults.
//!
//! # Limits
//!
//! [`serve()`] serves the router with connection limits (header-read and
//! idle timeouts, connection caps overall and per client IP, graceful
//! shutdown); [`Limits`] ([`ApiConfig::limits`]) bounds what one caller may
//! take: a request timeout on non-streaming routes, a rate limit on POST and
//! DELETE (429 `rate_limited` with `Retry-After`), a cap on open streams
//! ([`StreamPermit`]) and on WebSocket client messages.
//!
//! # Auth
//!
//! [`auth::Auth::Tokens`]: every `/api/*` and `/ws/*` request needs
//! `Authorization: Bearer <token>`; callers see only their own leases
//! (another owner's id answers 404). A token in a URL (`?token=`) is
//! refused everywhere. Browsers, which cannot set headers on an
//! `EventSource` or a `WebSocket`, open those streams with `?ticket=`: a
//! single-use ticket for that one stream, minted by `POST /api/tickets`,
//! valid 30 s ([`ApiConfig::ticket_ttl`]). Admins see all leases. `/metrics` takes an admin token or the scrape token
//! ([`ApiConfig::metrics_token`]); `/readyz` gives its details to admins only.
//! The tokens can be replaced while serving ([`auth::TokenSet`]).
//!
//! [`auth::Auth::SingleUser`] (the default): every request is owner `local`,
//! and only requests for a loopback name (`Host`), from no web page or a
//! loopback one (`Origin`), are served (421 `wrong_host`, 403
//! `foreign_origin`), unless [`ApiConfig::insecure_open`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod account;
mod admin_stats;
pub mod auth;
pub mod error;
mod events;
pub mod extract;
pub mod files;
pub mod forward;
mod health;
mod leases;
pub mod limits;
mod local_only;
mod logs;
mod metrics;
mod metrics_token;
pub mod oidc;
mod openapi;
pub mod pacing;
mod ports;
pub mod serve;
pub mod shell;
mod tickets;
mod ui;
pub mod wire;

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{from_fn_with_state, map_response_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use lease_core::LeaseManager;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use auth::{Auth, Caller, LOCAL_OWNER};
pub use error::ApiError;
pub use files::{DEFAULT_MAX_TRANSFER, FilesConfig};
pub use limits::{Limits, RateLimit, StreamPermit};
pub use openapi::openapi;
pub use serve::{ServeConfig, serve};
pub use shell::ShellConfig;
pub use tickets::{DEFAULT_TICKET_TTL, MAX_TICKET_TTL, MAX_TICKETS_PER_CALLER};

/// Default limit on request bodies: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// How the router behaves.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ApiConfig {
    /// How callers are authenticated. Default: single-user `local`.
    pub auth: Auth,
    /// Largest request body accepted (413 above). Default 64 KiB.
    pub body_limit: usize,
    /// Cancelled when the server shuts down: event streams and log
    /// WebSockets end, so a graceful shutdown does not wait on them.
    pub shutdown: CancellationToken,
    /// Interval of SSE keep-alive comments. Default 15 s.
    pub sse_keep_alive: Duration,
    /// How long `/readyz` waits for the store and the runtime. Default 2 s.
    pub ready_timeout: Duration,
    /// Browser origins allowed to call the API from another page (CORS),
    /// e.g. `http://localhost:5173` for the seed's dev frontend. Default
    /// none: only same-origin pages (and non-browser clients).
    pub cors_origins: Vec<HeaderValue>,
    /// A token that may read `/metrics` (and nothing else), besides admins.
    /// Default none.
    pub metrics_token: Option<auth::MetricsToken>,
    /// Single-user mode only: serve requests whatever their `Host` and
    /// `Origin` (normally only loopback names and no or loopback origins).
    /// Anyone who can reach the server then acts as the local user. Default
    /// false.
    pub insecure_open: bool,
    /// Per-caller limits: request timeout, rate limit, stream cap
    /// ([`Limits`]).
    pub limits: Limits,
    /// How long a stream ticket (`POST /api/tickets`) stays valid. Default
    /// [`DEFAULT_TICKET_TTL`] (30 s); at most [`MAX_TICKET_TTL`] (60 s).
    pub ticket_ttl: Duration,
    /// Shell sessions: limits, detach timeout, keepalive, replay buffer
    /// ([`ShellConfig`]).
    pub shell: ShellConfig,
    /// Size limits of file copies (`/api/containers/{id}/files`).
    pub files: FilesConfig,
    /// The preview domain (`leases.example.com`): requests for host
    /// `{port}-{shortid}.{domain}` go to that port of that lease
    /// ([`ports`]). Default none: the path form only.
    pub preview_domain: Option<String>,
    /// Sign-in with an OpenID Connect provider: browser sessions, personal
    /// tokens, the CLI's login ([`oidc`]). Works beside the tokens file;
    /// with OIDC the server is never single-user (no tokens file: only
    /// personal tokens and sessions). Default none.
    pub oidc: Option<oidc::OidcAuth>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            auth: Auth::default(),
            body_limit: DEFAULT_BODY_LIMIT,
            shutdown: CancellationToken::new(),
            sse_keep_alive: Duration::from_secs(15),
            ready_timeout: Duration::from_secs(2),
            cors_origins: Vec::new(),
            metrics_token: None,
            insecure_open: false,
            limits: Limits::default(),
            ticket_ttl: DEFAULT_TICKET_TTL,
            shell: ShellConfig::default(),
            files: FilesConfig::default(),
            preview_domain: None,
            oidc: None,
        }
    }
}

impl ApiConfig {
    /// Uses `auth`.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Uses `shutdown` as the token that ends streams.
    pub fn shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Sets the body limit.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Allows these browser origins (CORS).
    pub fn cors_origins(mut self, origins: Vec<HeaderValue>) -> Self {
        self.cors_origins = origins;
        self
    }

    /// Lets `token` read `/metrics`.
    pub fn metrics_token(mut self, token: auth::MetricsToken) -> Self {
        self.metrics_token = Some(token);
        self
    }

    /// Single-user mode without the loopback-only checks (see the field).
    pub fn insecure_open(mut self, open: bool) -> Self {
        self.insecure_open = open;
        self
    }

    /// Uses these per-caller limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets how long a stream ticket stays valid (capped at
    /// [`MAX_TICKET_TTL`]).
    pub fn ticket_ttl(mut self, ttl: Duration) -> Self {
        self.ticket_ttl = ttl;
        self
    }

    /// Uses these shell session settings.
    pub fn shell(mut self, shell: ShellConfig) -> Self {
        self.shell = shell;
        self
    }

    /// Uses these file copy limits.
    pub fn files(mut self, files: FilesConfig) -> Self {
        self.files = files;
        self
    }

    /// Serves the host form of the port proxy under `domain`
    /// (`leases.example.com`; lowercase, no dots around).
    pub fn preview_domain(mut self, domain: Option<String>) -> Self {
        self.preview_domain = domain.map(|d| d.trim_matches('.').to_ascii_lowercase());
        self
    }

    /// Signs people in with `oidc` (see the field).
    pub fn oidc(mut self, oidc: oidc::OidcAuth) -> Self {
        self.oidc = Some(oidc);
        self
    }

    /// Sets the SSE keep-alive interval.
    pub fn sse_keep_alive(mut self, interval: Duration) -> Self {
        self.sse_keep_alive = interval;
        self
    }
}

/// What every handler shares.
#[derive(Clone, Debug)]
pub(crate) struct AppState(Arc<Shared>);

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) manager: LeaseManager,
    pub(crate) auth: Auth,
    pub(crate) metrics_token: Option<auth::MetricsToken>,
    pub(crate) metrics: Arc<metrics::Metrics>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) sse_keep_alive: Duration,
    pub(crate) ready_timeout: Duration,
    pub(crate) openapi_json: String,
    pub(crate) limits: Limits,
    pub(crate) streams: Arc<limits::StreamLimiter>,
    pub(crate) tickets: Arc<tickets::Tickets>,
    pub(crate) shell: Arc<shell::Registry>,
    pub(crate) files: FilesConfig,
    pub(crate) lease_ends: Arc<ports::LeaseEnds>,
    pub(crate) grants: Arc<ports::Grants>,
    pub(crate) preview_domain: Option<String>,
    pub(crate) oidc: Option<oidc::OidcAuth>,
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Builds the API's router over `manager`.
///
/// Must be called inside a Tokio runtime: it starts a task that counts the
/// manager's events for `/metrics` (it ends with the manager or when
/// `config.shutdown` is cancelled). The manager's background loops are the
/// caller's to start ([`LeaseManager::start`]).
pub fn router(manager: LeaseManager, mut config: ApiConfig) -> Router {
    if config.oidc.is_some() && config.auth.is_single_user() {
        // Signed-in people are told apart: no one is the local user.
        config.auth = Auth::tokens(auth::TokenFile::default());
    }
    let metrics = Arc::new(metrics::Metrics::new());
    metrics.spawn_listener(manager.subscribe(), config.shutdown.clone());
    let openapi_json = openapi().to_json().unwrap_or_else(|_| "{}".to_owned());
    // Single-user mode has no token to tell callers apart: limits go per IP.
    let per_ip = matches!(config.auth, Auth::SingleUser(_));
    let limits = &config.limits;
    let rate_limiter = limits
        .rate
        .map(|rate| limits::RateLimiter::start(rate, per_ip, config.shutdown.clone()));
    let streams = limits::StreamLimiter::new(limits.max_streams_per_caller, per_ip);
    let timeout = limits::request_timeout(limits.request_timeout);
    let tickets = Arc::new(tickets::Tickets::new(
        config.ticket_ttl,
        manager.clock().clone(),
    ));
    let gate = auth::Gate {
        auth: config.auth.clone(),
        oidc: config.oidc.clone(),
        tickets: tickets.clone(),
        clock: manager.clock().clone(),
    };
    let manager_clock = manager.clock().clone();
    let lease_ends = ports::LeaseEnds::start(
        manager.clone(),
        config.shutdown.clone(),
        &config.shell.tasks,
    );
    let shell = shell::Registry::start(
        manager.clone(),
        config.shell.clone(),
        config.shutdown.clone(),
    );
    let state = AppState(Arc::new(Shared {
        manager,
        auth: config.auth.clone(),
        metrics_token: config.metrics_token.clone(),
        metrics,
        shutdown: config.shutdown.clone(),
        sse_keep_alive: config.sse_keep_alive,
        ready_timeout: config.ready_timeout,
        openapi_json,
        limits: config.limits.clone(),
        streams,
        tickets,
        shell,
        files: config.files,
        lease_ends,
        grants: Arc::new(ports::Grants::new(manager_clock)),
        preview_domain: config.preview_domain.clone(),
        oidc: config.oidc.clone(),
    }));
    // The rate limit spends only on the routes that change something.
    let rated = from_fn_with_state(rate_limiter, limits::rate_limit);
    let rated_sign_in = rated.clone();
    let protected = Router::new()
        .route(
            "/api/provision",
            post(leases::provision).layer(rated.clone()),
        )
        .route("/api/containers", get(leases::list))
        .route("/api/containers/{id}/status", get(leases::status))
        .route(
            "/api/containers/{id}",
            delete(leases::delete).layer(rated.clone()),
        )
        .route(
            "/api/containers/{id}/extend",
            post(leases::extend).layer(rated.clone()),
        )
        .route(
            "/api/containers/{id}/sessions",
            post(shell::routes::create)
                .layer(rated.clone())
                .get(shell::routes::list),
        )
        .route(
            "/api/containers/{id}/sessions/{sid}",
            delete(shell::routes::delete).layer(rated.clone()),
        )
        .merge(ports::api_routes(rated.clone()))
        .route("/api/tickets", post(tickets::mint).layer(rated.clone()))
        .route("/api/me", get(oidc::session::me))
        .route(
            "/api/tokens",
            post(oidc::tokens::mint)
                .layer(rated.clone())
                .get(oidc::tokens::list),
        )
        .route(
            "/api/tokens/{id}",
            delete(oidc::tokens::revoke).layer(rated.clone()),
        )
        .route(
            "/api/admin/owners/{owner}/credentials",
            delete(oidc::tokens::revoke_owner).layer(rated.clone()),
        )
        .route("/api/catalog", get(account::catalog))
        .route("/api/usage", get(account::usage))
        .route("/api/admin/stats", get(admin_stats::admin_stats))
        .route("/api/history", get(account::history))
        // Streams take no request timeout (a StreamPermit caps them).
        .route_layer(timeout)
        .route("/api/events", get(events::events))
        .route("/ws/logs/{id}", get(logs::logs))
        .route(
            "/api/containers/{id}/sessions/{sid}/attach",
            get(shell::routes::attach),
        )
        .route("/api/containers/{id}/files", get(files::download))
        .route(
            "/api/containers/{id}/files",
            axum::routing::put(files::upload).layer(rated),
        )
        .route("/api/containers/{id}/ports/{port}/tcp", get(forward::tcp))
        .route_layer(from_fn_with_state(gate, auth::authenticate));
    let open = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        // Admins or the scrape token: checked by the handler.
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/api/auth", get(oidc::session::auth_mode))
        .merge(oidc::routes(rated_sign_in))
        // The portal page (`/`, `/ui/…`): open, it asks for a token itself.
        .merge(ui::routes())
        .route_layer(timeout);
    let app = protected
        .merge(open)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(config.body_limit))
        // A panicking handler answers 500 (as JSON, below); the server goes on.
        .layer(CatchPanicLayer::new())
        .layer(map_response_with_state(
            config.limits.request_timeout,
            json_errors,
        ))
        .with_state(state.clone());
    let guarded = config.auth.is_single_user() && !config.insecure_open;
    let app = if guarded {
        let allowed = local_only::LocalOnly {
            extra_origins: config.cors_origins.clone().into(),
        };
        app.layer(from_fn_with_state(allowed, local_only::guard))
    } else {
        app
    };
    let app = if config.cors_origins.is_empty() {
        app
    } else {
        with_cors(app, config.cors_origins)
    };
    // The port proxy: its own rules, outside the API's layers.
    ports::mount(app, state, guarded)
}

fn with_cors(app: Router, origins: Vec<HeaderValue>) -> Router {
    app.layer(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([AUTHORIZATION, CONTENT_TYPE])
            .max_age(Duration::from_secs(3600)),
    )
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {}", error::echo(uri.path())),
    )
}

/// Turns any error response without a JSON body (axum's 405, rejections
/// of extractors, …) into the API's error JSON.
async fn json_errors(State(request_timeout): State<Duration>, response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || error::is_json(&response) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok());
    // Our own 503s are JSON: an empty one is the request timeout's.
    let error = if status == StatusCode::SERVICE_UNAVAILABLE && text.as_deref() == Some("") {
        limits::timed_out(request_timeout)
    } else {
        ApiError::from_status(status, text)
    };
    let mut converted = error.into_response();
    for name in [ALLOW, WWW_AUTHENTICATE, RETRY_AFTER] {
        if let Some(value) = parts.headers.get(&name) {
            converted.headers_mut().insert(name, value.clone());
        }
    }
    converted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_statuses_to_codes() {
        let error = ApiError::from_status(StatusCode::METHOD_NOT_ALLOWED, None);
        assert_eq!(error.detail.code, "method_not_allowed");
        assert_eq!(error.detail.message, "Method Not Allowed");
    }
}
