//! End to end: the real `lease-server` binary with `--oidc-*` flags and its
//! default store (a SQLite file), signing in against a real OpenID Connect
//! provider (PyPI's oidc-provider-mock, `scripts/oidc-provider.sh ensure`).
//! A browser (a plain HTTP client keeping cookies by hand) signs in, mints a
//! personal token, the CLI's device login gets another; both, and the
//! session, survive a restart of the server (they are in the SQLite file);
//! sign-out ends the session. Without Docker or the provider the test skips
//! with a printed reason; with `CI=true` it fails instead.

use std::collections::HashMap;
use std::time::Duration;

use lease_testkit::docker::{NamespaceGuard, docker_ready};
use lease_testkit::oidc::OidcProvider;
use lease_testkit::server::{Server, ServerConfig};
use reqwest::StatusCode;
use reqwest::header::{LOCATION, SET_COOKIE};
use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_lease-server");

/// A browser: no automatic redirects, cookies kept by name.
struct Browser {
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .header("cookie", self.cookie_header())
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let response = request.send().await.expect("HTTP");
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().expect("ascii cookie");
            let pair = text.split(';').next().expect("a pair");
            let (name, value) = pair.split_once('=').expect("name=value");
            self.cookies.insert(name.to_owned(), value.to_owned());
        }
        response
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        let request = self.request(reqwest::Method::GET, url);
        self.send(request).await
    }

    /// Signs in as `sub`, starting at `/auth/login`.
    async fn sign_in(&mut self, base: &str, sub: &str) {
        let start = self.get(&format!("{base}/auth/login?return_to=/")).await;
        assert_eq!(start.status(), StatusCode::FOUND);
        let form = self
            .http
            .post(location(&start))
            .form(&[("sub", sub)])
            .send()
            .await
            .expect("the provider's form");
        assert_eq!(form.status(), StatusCode::FOUND);
        let done = self.get(&location(&form)).await;
        assert_eq!(done.status(), StatusCode::FOUND, "{:?}", done.text().await);
        assert!(self.cookies.contains_key("cl_session"));
    }

    async fn me(&mut self, base: &str) -> (StatusCode, Value) {
        let response = self.get(&format!("{base}/api/me")).await;
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .expect("a Location")
        .to_str()
        .expect("ascii")
        .to_owned()
}

async fn bearer_me(base: &str, token: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(format!("{base}/api/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The CLI's device login, allowed by `browser`: the token it gets.
async fn device_login(base: &str, browser: &mut Browser, csrf: &str) -> Value {
    let http = reqwest::Client::new();
    let started: Value = http
        .post(format!("{base}/auth/device"))
        .json(&json!({"name": "ci box"}))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("json");
    let user_code = started["userCode"].as_str().expect("userCode").to_owned();
    let device = started["deviceCode"]
        .as_str()
        .expect("deviceCode")
        .to_owned();
    let verify = browser.request(reqwest::Method::POST, &format!("{base}/auth/device/verify"));
    let confirm = browser
        .send(verify.form(&[("user_code", user_code.as_str()), ("csrf", csrf)]))
        .await;
    assert_eq!(confirm.status(), StatusCode::OK);
    let allow = browser.request(reqwest::Method::POST, &format!("{base}/auth/device/allow"));
    let allowed = browser
        .send(allow.form(&[
            ("user_code", user_code.as_str()),
            ("csrf", csrf),
            ("decision", "allow"),
        ]))
        .await;
    assert_eq!(allowed.status(), StatusCode::OK);
    let token = http
        .post(format!("{base}/auth/device/token"))
        .json(&json!({"deviceCode": device}))
        .send()
        .await
        .expect("POST");
    assert_eq!(token.status(), StatusCode::OK);
    token.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_sign_in_with_the_default_sqlite_store_survives_a_restart() {
    let Some(idp) = OidcProvider::start() else {
        return;
    };
    if !docker_ready() {
        return;
    }
    idp.set_user(
        "alice",
        r#"{"email":"alice@example.com","groups":["lease-admins"]}"#,
    );
    let secrets = tempfile::tempdir().expect("temp dir");
    let secret_file = secrets.path().join("client-secret");
    std::fs::write(&secret_file, "s3cret\n").expect("write the secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
    }
    let guard = NamespaceGuard::random();
    let config = ServerConfig::new(guard.namespace())
        .binary(BINARY)
        .ready_path("/healthz")
        .ready_within(Duration::from_secs(30))
        .args([
            "--oidc-issuer".to_owned(),
            idp.issuer(),
            "--oidc-client-id".to_owned(),
            "containerlease".to_owned(),
            "--oidc-client-secret-file".to_owned(),
            secret_file.display().to_string(),
            "--oidc-admin-group".to_owned(),
            "lease-admins".to_owned(),
        ]);
    let mut server = Server::start(config).expect("cargo builds the binary of this crate's tests");
    let base = server.url().trim_end_matches('/').to_owned();
    let log = server.log_text();
    assert!(
        log.contains("leases.db") || log.contains("leases-"),
        "the default store: {log}"
    );
    assert!(
        log.contains("client secret file is readable by every user"),
        "a world-readable secret is warned about: {log}"
    );

    let auth = reqwest::get(format!("{base}/api/auth")).await.expect("GET");
    let status = auth.status();
    let auth = auth.text().await.expect("text");
    assert_eq!(status, StatusCode::OK, "{auth}");
    let auth: Value = serde_json::from_str(&auth).expect("json");
    assert_eq!(auth["mode"], "oidc");

    // Sign in; mint a personal token with the session (CSRF token).
    let mut alice = Browser::new();
    alice.sign_in(&base, "alice").await;
    let (status, me) = alice.me(&base).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["owner"], "alice@example.com");
    assert_eq!(me["admin"], true);
    let csrf = me["csrf"].as_str().expect("csrf").to_owned();
    let mint = alice
        .request(reqwest::Method::POST, &format!("{base}/api/tokens"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "laptop"}));
    let minted = alice.send(mint).await;
    assert_eq!(minted.status(), StatusCode::CREATED);
    let minted: Value = minted.json().await.expect("json");
    let personal = minted["token"].as_str().expect("token").to_owned();
    let device = device_login(&base, &mut alice, &csrf).await;
    let from_device = device["token"].as_str().expect("token").to_owned();
    for token in [&personal, &from_device] {
        let (status, me) = bearer_me(&base, token).await;
        assert_eq!(status, StatusCode::OK, "{me}");
        assert_eq!(me["owner"], "alice@example.com");
    }
    let leases = reqwest::Client::new()
        .get(format!("{base}/api/containers"))
        .bearer_auth(&personal)
        .send()
        .await
        .expect("GET");
    assert_eq!(leases.status(), StatusCode::OK);

    // Restart: sessions and tokens are in the SQLite file.
    server.restart_same_port();
    let (status, me) = alice.me(&base).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the session survives a restart: {me}"
    );
    assert_eq!(me["csrf"], csrf.as_str());
    for token in [&personal, &from_device] {
        assert_eq!(bearer_me(&base, token).await.0, StatusCode::OK);
    }
    let listed: Value = alice
        .get(&format!("{base}/api/tokens"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed["tokens"].as_array().map(Vec::len), Some(2));

    // Sign-out ends the session on the server: the old cookie gets 401.
    let old_cookie = alice.cookie_header();
    let logout = alice
        .request(reqwest::Method::POST, &format!("{base}/auth/logout"))
        .header("x-csrf-token", &csrf);
    assert_eq!(alice.send(logout).await.status(), StatusCode::NO_CONTENT);
    let replayed = reqwest::Client::new()
        .get(format!("{base}/api/me"))
        .header("cookie", old_cookie)
        .send()
        .await
        .expect("GET");
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
    drop(server);
    drop(guard);
}
