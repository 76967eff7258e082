//! An in-process API over the memory store and the fake runtime.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use lease_core::testing::fake_runtime::FakeRuntime;
use lease_core::{Clock, LeaseManager, LeaseStore, ManagerConfig, ManualClock, SystemClock};
use lease_http::auth::{MetricsToken, TokenFile, TokenSet, mint_token};
use lease_http::{ApiConfig, Auth, router};
use lease_store_memory::MemoryStore;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub struct Harness {
    pub app: Router,
    pub manager: LeaseManager,
    pub runtime: Arc<FakeRuntime>,
    pub clock: Option<Arc<ManualClock>>,
    pub shutdown: CancellationToken,
    pub tokens: Tokens,
    /// The tokens in effect (with auth), to replace in a test.
    pub token_set: Option<TokenSet>,
}

/// The `Host` the harness sends unless a request names one: the server's
/// loopback address, as any local client would.
pub const LOCAL_HOST: &str = "127.0.0.1:8080";

/// Tokens of alice, bob and an admin (used when the harness has auth).
#[derive(Clone, Debug)]
pub struct Tokens {
    pub alice: String,
    pub bob: String,
    pub admin: String,
}

pub struct Options {
    pub config: ManagerConfig,
    /// A store other than a fresh memory store.
    pub store: Option<Arc<dyn LeaseStore>>,
    pub auth: bool,
    pub manual_clock: bool,
    /// `ApiConfig::metrics_token`.
    pub metrics_token: Option<String>,
    /// `ApiConfig::insecure_open`.
    pub insecure_open: bool,
    /// `ApiConfig::cors_origins`.
    pub cors_origins: Vec<&'static str>,
    /// `ApiConfig::limits` (default: `Limits::default()`).
    pub limits: Option<lease_http::Limits>,
    /// `ApiConfig::shell` (default: `ShellConfig::default()`).
    pub shell: Option<lease_http::ShellConfig>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config: ManagerConfig::with_namespace("test-http"),
            store: None,
            auth: false,
            manual_clock: false,
            metrics_token: None,
            insecure_open: false,
            cors_origins: Vec::new(),
            limits: None,
            shell: None,
        }
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {:?} (status {})",
                String::from_utf8_lossy(&self.body),
                self.status
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the API's error shape and returns its code.
    pub fn error_code(&self) -> String {
        let content_type = self
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            content_type.starts_with("application/json"),
            "error content-type {content_type:?}: {}",
            self.text()
        );
        let json = self.json();
        let error = json["error"].as_object().expect("error object");
        let message = error["message"].as_str().expect("message");
        assert!(!message.is_empty());
        error["code"].as_str().expect("code").to_owned()
    }
}

impl Harness {
    pub fn new() -> Self {
        Harness::with(Options::default())
    }

    pub fn with_auth() -> Self {
        Harness::with(Options {
            auth: true,
            ..Options::default()
        })
    }

    pub fn with(options: Options) -> Self {
        let manual = options
            .manual_clock
            .then(|| Arc::new(ManualClock::default()));
        let clock: Arc<dyn Clock> = match &manual {
            Some(clock) => clock.clone(),
            None => Arc::new(SystemClock),
        };
        let runtime = Arc::new(FakeRuntime::new(&options.config.namespace, clock.clone()));
        let store = options
            .store
            .unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let manager = LeaseManager::builder(store, runtime.clone())
            .config(options.config)
            .clock(clock)
            .build()
            .expect("manager");
        let shutdown = CancellationToken::new();
        let _background = manager.start(shutdown.clone());
        let alice = mint_token("alice", false).expect("token");
        let bob = mint_token("bob", false).expect("token");
        let admin = mint_token("root", true).expect("token");
        let token_set = options.auth.then(|| {
            let text = format!("{}{}{}", alice.toml_entry, bob.toml_entry, admin.toml_entry);
            TokenSet::new(TokenFile::from_toml(&text).expect("tokens file"))
        });
        let auth = match &token_set {
            Some(tokens) => Auth::token_set(tokens.clone()),
            None => Auth::single_user(),
        };
        let mut config = ApiConfig::default()
            .auth(auth)
            .shutdown(shutdown.clone())
            .sse_keep_alive(Duration::from_secs(1))
            .insecure_open(options.insecure_open)
            .cors_origins(
                options
                    .cors_origins
                    .iter()
                    .map(|origin| origin.parse().expect("an origin"))
                    .collect(),
            );
        if let Some(limits) = options.limits.clone() {
            config = config.limits(limits);
        }
        if let Some(shell) = options.shell.clone() {
            config = config.shell(shell);
        }
        if let Some(token) = &options.metrics_token {
            config = config.metrics_token(MetricsToken::new(token).expect("a scrape token"));
        }
        let app = router(manager.clone(), config);
        Harness {
            app,
            manager,
            runtime,
            clock: manual,
            shutdown,
            tokens: Tokens {
                alice: alice.token,
                bob: bob.token,
                admin: admin.token,
            },
            token_set,
        }
    }

    /// The response, body unread (for endless streams). Sent with
    /// `Host: 127.0.0.1:8080` unless the request has a `Host` or an absolute URI.
    pub async fn response(&self, mut request: Request<Body>) -> axum::response::Response {
        if request.uri().authority().is_none() && !request.headers().contains_key("host") {
            let host = axum::http::HeaderValue::from_static(LOCAL_HOST);
            request.headers_mut().insert("host", host);
        }
        self.response_as_is(request).await
    }

    /// The response to exactly `request` (no `Host` added).
    pub async fn response_as_is(&self, request: Request<Body>) -> axum::response::Response {
        self.app.clone().oneshot(request).await.expect("infallible")
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.response(request).await;
        Reply::read(response).await
    }

    /// [`Harness::send`] without adding a `Host`.
    pub async fn send_as_is(&self, request: Request<Body>) -> Reply {
        let response = self.response_as_is(request).await;
        Reply::read(response).await
    }
}

impl Reply {
    pub async fn read(response: axum::response::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }
}

impl Harness {
    /// A request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        json: Option<&str>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let body = match json {
            Some(json) => {
                builder = builder.header("content-type", "application/json");
                Body::from(json.to_owned())
            }
            None => Body::empty(),
        };
        self.send(builder.body(body).expect("request")).await
    }

    pub async fn get(&self, uri: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, uri, token, None).await
    }

    /// Provisions and returns the lease JSON (asserting 202).
    pub async fn provision(&self, token: Option<&str>, body: &str) -> Value {
        let reply = self
            .call(Method::POST, "/api/provision", token, Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
        reply.json()
    }

    /// Serves the router on a loopback port (for WebSocket clients).
    pub async fn serve(&self) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let address = listener.local_addr().expect("its address");
        let app = self.app.clone();
        tokio::spawn(async move { axum::serve(listener, app).await });
        address
    }

    /// Mints a stream ticket for `token`'s owner (asserting 201).
    pub async fn ticket(&self, token: &str, body: &str) -> String {
        let reply = self
            .call(Method::POST, "/api/tickets", Some(token), Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        reply.json()["ticket"]
            .as_str()
            .expect("a ticket")
            .to_owned()
    }

    /// Polls a lease's status until it is `status` (2 s at most).
    pub async fn wait_status(&self, id: &str, token: Option<&str>, status: &str) -> Value {
        let uri = format!("/api/containers/{id}/status");
        for _ in 0..200 {
            let reply = self.get(&uri, token).await;
            let json = reply.json();
            if json["status"] == status {
                return json;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("lease {id} never became {status}");
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
