//! OIDC sign-in against a real provider (PyPI's oidc-provider-mock, started
//! per test by lease-testkit): the browser flow driven with a plain HTTP
//! client that keeps cookies by hand, sessions, CSRF, sign-out, personal
//! tokens and the CLI's logins.

use std::collections::HashMap;
use std::sync::Arc;

use lease_core::testing::fake_runtime::FakeRuntime;
use lease_core::{CredentialStore, LeaseManager};
use lease_http::oidc::{OidcAuth, OidcProvider, OidcSettings};
use lease_http::{ApiConfig, router};
use lease_store_memory::MemoryStore;
use lease_testkit::oidc::OidcProvider as Idp;
use reqwest::StatusCode;
use reqwest::header::{LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Our server on a real port, signing in with `idp`.
struct Server {
    base: String,
    store: Arc<MemoryStore>,
    stop: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn server(idp: &Idp, tune: impl FnOnce(OidcSettings) -> OidcSettings) -> Server {
    server_with(idp, tune, ApiConfig::default()).await
}

/// [`server`] with `config` (limits, …) under the OIDC sign-in.
async fn server_with(
    idp: &Idp,
    tune: impl FnOnce(OidcSettings) -> OidcSettings,
    config: ApiConfig,
) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let settings = tune(
        OidcSettings::new(
            idp.issuer(),
            "containerlease",
            format!("{base}/auth/callback"),
        )
        .client_secret(Some("s3cret".to_owned()))
        .admin_groups(vec!["lease-admins".to_owned()]),
    );
    settings.validate().expect("valid settings");
    let provider = OidcProvider::discover(settings).await.expect("discovery");
    let store = Arc::new(MemoryStore::new());
    let credentials: Arc<dyn CredentialStore> = store.clone();
    let manager = LeaseManager::builder(store.clone(), Arc::new(FakeRuntime::default()))
        .build()
        .expect("manager");
    let stop = CancellationToken::new();
    let app = router(
        manager,
        config
            .oidc(OidcAuth::new(provider, credentials))
            .shutdown(stop.clone()),
    );
    let until = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move { until.cancelled().await })
        .await;
    });
    Server { base, store, stop }
}

/// A browser: no automatic redirects, cookies kept by hand (by name; the
/// provider sets none that matter).
#[derive(Default)]
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

    fn keep(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().expect("ascii cookie");
            let pair = text.split(';').next().expect("a pair");
            let (name, value) = pair.split_once('=').expect("name=value");
            self.cookies.insert(name.to_owned(), value.to_owned());
        }
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        let response = self
            .http
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("GET");
        self.keep(&response);
        response
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .header("cookie", self.cookie_header())
    }

    /// Starts a sign-in: the provider's authorization URL.
    async fn start(&mut self, server: &Server, return_to: &str) -> String {
        let response = self
            .get(&format!("{}/auth/login?return_to={return_to}", server.base))
            .await;
        assert_eq!(response.status(), StatusCode::FOUND);
        location(&response)
    }

    /// Signs in as `sub` at the provider: our callback URL.
    async fn authorize(&mut self, authorize_url: &str, sub: &str) -> String {
        let response = self
            .http
            .post(authorize_url)
            .form(&[("sub", sub)])
            .send()
            .await
            .expect("provider form");
        assert_eq!(
            response.status(),
            StatusCode::FOUND,
            "{:?}",
            response.text().await
        );
        location(&response)
    }

    /// The whole sign-in as `sub`; the callback's response.
    async fn sign_in(&mut self, server: &Server, sub: &str) -> reqwest::Response {
        let authorize = self.start(server, "/ui/").await;
        let callback = self.authorize(&authorize, sub).await;
        self.get(&callback).await
    }

    async fn me(&mut self, server: &Server) -> (StatusCode, Value) {
        let response = self.get(&format!("{}/api/me", server.base)).await;
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

fn set_cookie_of(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no Set-Cookie {name}"))
        .to_owned()
}

macro_rules! provider {
    () => {
        match Idp::start() {
            Some(idp) => idp,
            None => return,
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_a_session_cookie_and_groups_make_admins() {
    let idp = provider!();
    idp.set_user("alice", r#"{"email":"alice@example.com","groups":["dev"]}"#);
    idp.set_user(
        "root",
        r#"{"email":"root@example.com","groups":["lease-admins"]}"#,
    );
    let server = server(&idp, |s| s).await;

    let mut alice = Browser::new();
    let done = alice.sign_in(&server, "alice").await;
    assert_eq!(done.status(), StatusCode::FOUND);
    assert_eq!(location(&done), "/ui/");
    let cookie = set_cookie_of(&done, "cl_session");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    let (status, me) = alice.me(&server).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["owner"], "alice@example.com");
    assert_eq!(me["admin"], false);
    assert_eq!(me["via"], "session");
    assert_eq!(me["csrf"].as_str().map(str::len), Some(64));
    // The session is stored hashed: the cookie's value is not a key.
    let value = alice.cookies["cl_session"].clone();
    let now = chrono::Utc::now();
    assert!(
        server
            .store
            .session(&value, now)
            .await
            .expect("store")
            .is_none()
    );

    let mut root = Browser::new();
    root.sign_in(&server, "root").await;
    let (_, me) = root.me(&server).await;
    assert_eq!(me["admin"], true);

    let auth: Value = reqwest::get(format!("{}/api/auth", server.base))
        .await
        .expect("GET /api/auth")
        .json()
        .await
        .expect("json");
    assert_eq!(auth["mode"], "oidc");
    assert_eq!(auth["signIn"], "/auth/login");
    assert_eq!(auth["provider"], format!("127.0.0.1:{}", idp.port()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_lists_refuse_others_with_a_403_page() {
    let idp = provider!();
    idp.set_user(
        "eve",
        r#"{"email":"eve@evil.com","email_verified":true,"groups":["staff"]}"#,
    );
    idp.set_user(
        "bob",
        r#"{"email":"bob@example.com","email_verified":true,"groups":["guests"]}"#,
    );
    // The right domain, but an address the provider did not verify.
    idp.set_user("dan", r#"{"email":"dan@example.com","groups":["staff"]}"#);
    idp.set_user(
        "ann",
        r#"{"email":"ann@example.com","email_verified":true,"groups":["staff"]}"#,
    );
    let server = server(&idp, |s| {
        s.allowed_domains(vec!["example.com".to_owned()])
            .allowed_groups(vec!["staff".to_owned()])
    })
    .await;
    for sub in ["eve", "bob", "dan"] {
        let mut browser = Browser::new();
        let refused = browser.sign_in(&server, sub).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{sub}");
        assert!(!browser.cookies.contains_key("cl_session"));
        let page = refused.text().await.expect("page");
        let why = if sub == "dan" {
            "verified"
        } else {
            "is not allowed to use this server"
        };
        assert!(page.contains(why), "{sub}: {page}");
    }
    let mut ann = Browser::new();
    assert_eq!(
        ann.sign_in(&server, "ann").await.status(),
        StatusCode::FOUND
    );
    assert_eq!(ann.me(&server).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_replayed_and_foreign_states_are_refused() {
    let idp = provider!();
    let server = server(&idp, |s| s).await;

    // A made-up state.
    let mut browser = Browser::new();
    let authorize = browser.start(&server, "/").await;
    let callback = browser.authorize(&authorize, "alice@example.com").await;
    let forged = callback.replace("state=", "state=x");
    let refused = browser.get(&forged).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(
        refused
            .text()
            .await
            .expect("page")
            .contains("sign-in failed")
    );

    // The real state, from another browser (no cl_login cookie): refused,
    // and the state still works for its own browser.
    let mut other = Browser::new();
    let refused = other.get(&callback).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(
        refused
            .text()
            .await
            .expect("page")
            .contains("another browser")
    );
    let mut thief = Browser::new();
    thief.cookies.insert("cl_login".to_owned(), "0".repeat(64));
    assert_eq!(thief.get(&callback).await.status(), StatusCode::BAD_REQUEST);

    let done = browser.get(&callback).await;
    assert_eq!(done.status(), StatusCode::FOUND);
    // Replayed: the state was spent.
    let replayed = browser.get(&callback).await;
    assert_eq!(replayed.status(), StatusCode::BAD_REQUEST);

    // Hostile parameters.
    for query in [
        String::new(),
        "?state=".to_owned(),
        format!("?state={}&code=x", "s".repeat(5000)),
        "?code=%ff%fe&state=%00".to_owned(),
        "?error=access_denied&state=nope".to_owned(),
    ] {
        let response = browser
            .get(&format!("{}/auth/callback{query}", server.base))
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_swapped_into_another_sign_in_fails_the_nonce_check() {
    let idp = provider!();
    let server = server(&idp, |s| s).await;
    let mut browser = Browser::new();
    let authorize_a = browser.start(&server, "/").await;
    let authorize_b = browser.start(&server, "/").await;
    let callback_a = browser.authorize(&authorize_a, "alice@example.com").await;
    let code_a = url::Url::parse(&callback_a)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let state_b = url::Url::parse(&authorize_b)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    let swapped = format!(
        "{}/auth/callback?code={code_a}&state={state_b}",
        server.base
    );
    let refused = browser.get(&swapped).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let page = refused.text().await.expect("page");
    assert!(page.to_lowercase().contains("nonce"), "{page}");
    assert!(
        browser
            .cookies
            .get("cl_session")
            .is_none_or(String::is_empty)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_refusal_is_shown_escaped() {
    let idp = provider!();
    let server = server(&idp, |s| s).await;
    let mut browser = Browser::new();
    let authorize = browser.start(&server, "/").await;
    let state = url::Url::parse(&authorize)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    let url = format!(
        "{}/auth/callback?error=access_denied&error_description=%3Cscript%3Ex%3C%2Fscript%3E&state={state}",
        server.base
    );
    let refused = browser.get(&url).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let page = refused.text().await.expect("page");
    assert!(
        page.contains("access_denied") && page.contains("&lt;script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_at_the_provider_is_picked_up() {
    let mut idp = provider!();
    let server = server(&idp, |s| s).await;
    let mut before = Browser::new();
    assert_eq!(
        before.sign_in(&server, "alice@example.com").await.status(),
        StatusCode::FOUND
    );
    // Same port, new process: a new signing key our server has never seen.
    idp.restart();
    let mut after = Browser::new();
    let done = after.sign_in(&server, "alice@example.com").await;
    assert_eq!(done.status(), StatusCode::FOUND, "{:?}", done.text().await);
    assert_eq!(after.me(&server).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_with_the_cookie_need_the_csrf_token_and_our_origin() {
    let idp = provider!();
    let server = server(&idp, |s| s).await;
    let mut alice = Browser::new();
    alice.sign_in(&server, "alice@example.com").await;
    let (_, me) = alice.me(&server).await;
    let csrf = me["csrf"].as_str().expect("csrf").to_owned();
    let tokens = format!("{}/api/tokens", server.base);
    let body = json!({"name": "laptop"});
    let attempts = [
        alice.request(reqwest::Method::POST, &tokens).json(&body),
        alice
            .request(reqwest::Method::POST, &tokens)
            .header("x-csrf-token", "0".repeat(64))
            .json(&body),
        alice
            .request(reqwest::Method::POST, &tokens)
            .header("x-csrf-token", &csrf)
            .header("origin", "https://evil.example")
            .json(&body),
    ];
    for attempt in attempts {
        let refused = attempt.send().await.expect("POST");
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let error: Value = refused.json().await.expect("json");
        assert_eq!(error["error"]["code"], "csrf");
    }
    // Nothing was minted.
    let listed: Value = alice.get(&tokens).await.json().await.expect("json");
    assert_eq!(listed["tokens"], json!([]));
    // A foreign origin is refused on reads too (WebSockets, EventSource).
    let foreign = alice
        .request(reqwest::Method::GET, &tokens)
        .header("origin", "http://preview.example")
        .send()
        .await
        .expect("GET");
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    // With the token and our own origin: minted.
    let minted = alice
        .request(reqwest::Method::POST, &tokens)
        .header("x-csrf-token", &csrf)
        .header("origin", &server.base)
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert_eq!(minted.status(), StatusCode::CREATED);
    // A ticket with the session, like with a bearer token.
    let ticket = alice
        .request(
            reqwest::Method::POST,
            &format!("{}/api/tickets", server.base),
        )
        .header("x-csrf-token", &csrf)
        .json(&json!({"route": "events"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(
        ticket.status(),
        StatusCode::CREATED,
        "{:?}",
        ticket.text().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_ends_the_session_on_the_server() {
    let idp = provider!();
    let server = server(&idp, |s| s).await;
    let mut alice = Browser::new();
    alice.sign_in(&server, "alice@example.com").await;
    let (_, me) = alice.me(&server).await;
    let csrf = me["csrf"].as_str().expect("csrf").to_owned();
    let old_cookie = alice.cookies["cl_session"].clone();
    let logout = format!("{}/auth/logout", server.base);

    let refused = alice
        .request(reqwest::Method::POST, &logout)
        .send()
        .await
        .expect("POST");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(alice.me(&server).await.0, StatusCode::OK, "still signed in");

    let done = alice
        .request(reqwest::Method::POST, &logout)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .expect("POST");
    assert_eq!(done.status(), StatusCode::NO_CONTENT);
    assert!(set_cookie_of(&done, "cl_session").contains("Max-Age=0"));
    // The old cookie, replayed: the session is gone server-side.
    let mut replay = Browser::new();
    replay.cookies.insert("cl_session".to_owned(), old_cookie);
    let (status, error) = replay.me(&server).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{error}");

    // Everywhere: both browsers' sessions end.
    let mut one = Browser::new();
    one.sign_in(&server, "alice@example.com").await;
    let mut two = Browser::new();
    two.sign_in(&server, "alice@example.com").await;
    let (_, me) = one.me(&server).await;
    let everywhere = one
        .request(
            reqwest::Method::POST,
            &format!("{}/auth/logout-everywhere", server.base),
        )
        .header("x-csrf-token", me["csrf"].as_str().expect("csrf"))
        .send()
        .await
        .expect("POST");
    assert_eq!(everywhere.status(), StatusCode::NO_CONTENT);
    assert_eq!(two.me(&server).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_tokens_are_minted_listed_used_and_revoked() {
    let idp = provider!();
    idp.set_user(
        "root",
        r#"{"email":"root@example.com","groups":["lease-admins"]}"#,
    );
    let server = server(&idp, |s| s.max_personal_tokens(2)).await;
    let mut root = Browser::new();
    root.sign_in(&server, "root").await;
    let (_, me) = root.me(&server).await;
    let csrf = me["csrf"].as_str().expect("csrf").to_owned();
    let tokens = format!("{}/api/tokens", server.base);
    let mint = |name: &str, days: Value| {
        root.request(reqwest::Method::POST, &tokens)
            .header("x-csrf-token", &csrf)
            .json(&json!({"name": name, "expiresInDays": days}))
    };
    let first = mint("laptop", json!(30)).send().await.expect("POST");
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.expect("json");
    let secret = first["token"].as_str().expect("token").to_owned();
    assert!(secret.starts_with("clp_") && secret.len() == 68, "{secret}");
    assert_eq!(first["admin"], true);
    assert_eq!(first["name"], "laptop");
    for bad in [json!(0), json!(366)] {
        let refused = mint("x", bad).send().await.expect("POST");
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let refused = mint("", json!(1)).send().await.expect("POST");
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        mint("ci", json!(1)).send().await.expect("POST").status(),
        StatusCode::CREATED
    );
    let over = mint("third", json!(1)).send().await.expect("POST");
    assert_eq!(over.status(), StatusCode::CONFLICT);
    let error: Value = over.json().await.expect("json");
    assert_eq!(error["error"]["code"], "too_many_tokens");

    // Used as a bearer token: it acts as root (admin), and is touched.
    let http = reqwest::Client::new();
    let me: Value = http
        .get(format!("{}/api/me", server.base))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(me["owner"], "root@example.com");
    assert_eq!(me["via"], "token");
    assert!(me.get("csrf").is_none());
    let listed: Value = root.get(&tokens).await.json().await.expect("json");
    let list = listed["tokens"].as_array().expect("array");
    assert_eq!(list.len(), 2);
    assert!(
        list.iter().all(|t| t.get("token").is_none()),
        "never listed"
    );
    let laptop = list.iter().find(|t| t["name"] == "laptop").expect("laptop");
    assert!(laptop["lastUsedAt"].is_string(), "{laptop}");

    // Another owner cannot see or revoke it.
    let mut bob = Browser::new();
    bob.sign_in(&server, "bob@example.com").await;
    let (_, bob_me) = bob.me(&server).await;
    let id = first["id"].as_str().expect("id");
    let theirs = bob
        .request(reqwest::Method::DELETE, &format!("{tokens}/{id}"))
        .header("x-csrf-token", bob_me["csrf"].as_str().expect("csrf"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);
    let bobs: Value = bob.get(&tokens).await.json().await.expect("json");
    assert_eq!(bobs["tokens"], json!([]));
    // `current` without a personal token: 404.
    let current = bob
        .request(reqwest::Method::DELETE, &format!("{tokens}/current"))
        .header("x-csrf-token", bob_me["csrf"].as_str().expect("csrf"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(current.status(), StatusCode::NOT_FOUND);

    // A token mints no tokens: a stolen one cannot leave others behind
    // that outlive its revocation.
    let by_token = http
        .post(&tokens)
        .bearer_auth(&secret)
        .json(&json!({"name": "more"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(by_token.status(), StatusCode::FORBIDDEN);
    // An admin's token lives at most 7 days, whatever was asked (30 here).
    let at = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(first[field].as_str().expect(field)).expect(field)
    };
    assert_eq!(
        at("expiresAt") - at("createdAt"),
        chrono::Duration::days(7),
        "{first}"
    );

    // Off-boarding: only an admin ends another owner's sessions and tokens.
    let bob_csrf = bob.csrf(&server).await;
    let bob_token: Value = bob
        .request(reqwest::Method::POST, &tokens)
        .header("x-csrf-token", &bob_csrf)
        .json(&json!({"name": "bob's laptop"}))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("json");
    let bob_secret = bob_token["token"].as_str().expect("token").to_owned();
    let offboard = |who: &str| format!("{}/api/admin/owners/{who}/credentials", server.base);
    let not_admin = bob
        .request(reqwest::Method::DELETE, &offboard("root@example.com"))
        .header("x-csrf-token", &bob_csrf)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(not_admin.status(), StatusCode::FORBIDDEN);
    let ended: Value = root
        .request(reqwest::Method::DELETE, &offboard("bob@example.com"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .expect("DELETE")
        .json()
        .await
        .expect("json");
    assert_eq!(
        ended,
        json!({"owner": "bob@example.com", "sessions": 1, "tokens": 1})
    );
    assert_eq!(bob.me(&server).await.0, StatusCode::UNAUTHORIZED);
    let bob_refused = http
        .get(format!("{}/api/me", server.base))
        .bearer_auth(&bob_secret)
        .send()
        .await
        .expect("GET");
    assert_eq!(bob_refused.status(), StatusCode::UNAUTHORIZED);

    // `lease logout`: the token revokes itself; then it is refused.
    let revoked = http
        .delete(format!("{tokens}/current"))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let refused = http
        .get(format!("{}/api/me", server.base))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("GET");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    for garbage in ["clp_", "clp_zz", "nope", &"clp_0".repeat(100)] {
        let refused = http
            .get(format!("{}/api/me", server.base))
            .bearer_auth(garbage)
            .send()
            .await
            .expect("GET");
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{garbage}");
    }
}

impl Browser {
    /// Follows a 302 to `/auth/login` through the provider as `sub`: where
    /// the sign-in comes back to.
    async fn sign_in_from(&mut self, server: &Server, login: &str, sub: &str) -> String {
        assert!(login.starts_with("/auth/login?return_to="), "{login}");
        let authorize = self.get(&format!("{}{login}", server.base)).await;
        assert_eq!(authorize.status(), StatusCode::FOUND);
        let callback = self.authorize(&location(&authorize), sub).await;
        let done = self.get(&callback).await;
        assert_eq!(done.status(), StatusCode::FOUND);
        location(&done)
    }

    async fn csrf(&mut self, server: &Server) -> String {
        let (_, me) = self.me(server).await;
        me["csrf"].as_str().expect("csrf").to_owned()
    }

    async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.request(reqwest::Method::POST, url)
            .form(form)
            .send()
            .await
            .expect("POST form")
    }
}

/// The query pairs of a URL.
fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .expect("a URL")
        .query_pairs()
        .into_owned()
        .collect()
}

async fn error_code(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("json error");
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_loopback_login_trades_a_one_time_code_for_a_token() {
    let idp = provider!();
    idp.set_user(
        "alice",
        r#"{"email":"alice@example.com","groups":["lease-admins"]}"#,
    );
    let server = server(&idp, |s| s).await;
    let (challenge, verifier) = openidconnect::PkceCodeChallenge::new_random_sha256();
    let state = "st4te-0f-the-cli-0123";
    let cli_path = format!(
        "/auth/cli?port=4711&state={state}&code_challenge={}&name=my%20laptop",
        challenge.as_str()
    );
    let cli_url = format!("{}{cli_path}", server.base);

    // Not signed in: to the sign-in, which comes back to the same request.
    let mut alice = Browser::new();
    let first = alice.get(&cli_url).await;
    assert_eq!(first.status(), StatusCode::FOUND);
    let back = alice
        .sign_in_from(&server, &location(&first), "alice")
        .await;
    assert_eq!(back, cli_path);
    let page = alice.get(&format!("{}{back}", server.base)).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .expect("ascii")
            .contains("frame-ancestors 'none'")
    );
    let html = page.text().await.expect("html");
    assert!(
        html.contains("act as <strong>alice@example.com</strong>"),
        "{html}"
    );
    assert!(html.contains("my laptop"), "{html}");
    let csrf = alice.csrf(&server).await;
    assert!(html.contains(&csrf), "the form carries the CSRF token");

    let allow_url = format!("{}/auth/cli/allow", server.base);
    let fields = |csrf: &str, decision: &str| -> Vec<(&'static str, String)> {
        vec![
            ("port", "4711".to_owned()),
            ("state", state.to_owned()),
            ("code_challenge", challenge.as_str().to_owned()),
            ("name", "my laptop".to_owned()),
            ("csrf", csrf.to_owned()),
            ("decision", decision.to_owned()),
        ]
    };
    // CSRF: without the token, with a wrong one, from a foreign origin.
    for (form, origin) in [
        (fields("", "allow"), None),
        (fields("wrong", "allow"), None),
        (fields(&csrf, "allow"), Some("https://evil.example")),
    ] {
        let mut request = alice.request(reqwest::Method::POST, &allow_url).form(&form);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let refused = request.send().await.expect("POST");
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    }
    // Not signed in at all: 401.
    let stranger = Browser::new();
    let refused = stranger
        .request(reqwest::Method::POST, &allow_url)
        .form(&fields(&csrf, "allow"))
        .send()
        .await
        .expect("POST");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    // Deny: the loopback hears access_denied.
    let denied = alice
        .request(reqwest::Method::POST, &allow_url)
        .header("origin", &server.base)
        .form(&fields(&csrf, "deny"))
        .send()
        .await
        .expect("POST");
    assert_eq!(denied.status(), StatusCode::FOUND);
    let to = location(&denied);
    assert!(to.starts_with("http://127.0.0.1:4711/callback?"), "{to}");
    let query = query_of(&to);
    assert_eq!(query["error"], "access_denied");
    assert_eq!(query["state"], state);
    assert!(!query.contains_key("code"));

    // Allow: a code; a wrong verifier spends it.
    let allow = || async {
        let allowed = alice
            .request(reqwest::Method::POST, &allow_url)
            .form(&fields(&csrf, "allow"))
            .send()
            .await
            .expect("POST");
        assert_eq!(allowed.status(), StatusCode::FOUND);
        let query = query_of(&location(&allowed));
        assert_eq!(query["state"], state);
        query["code"].clone()
    };
    let http = reqwest::Client::new();
    let trade = |code: String, verifier: String| {
        http.post(format!("{}/auth/cli/token", server.base))
            .json(&json!({"code": code, "codeVerifier": verifier}))
            .send()
    };
    let code = allow().await;
    let (_, other_verifier) = openidconnect::PkceCodeChallenge::new_random_sha256();
    let wrong = trade(code.clone(), other_verifier.secret().clone())
        .await
        .expect("POST");
    assert_eq!(
        error_code(wrong).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".to_owned())
    );
    let spent = trade(code, verifier.secret().clone()).await.expect("POST");
    assert_eq!(
        spent.status(),
        StatusCode::BAD_REQUEST,
        "spent by the wrong try"
    );

    // The right verifier: a personal token acting as alice (admin).
    let code = allow().await;
    let minted = trade(code.clone(), verifier.secret().clone())
        .await
        .expect("POST");
    assert_eq!(minted.status(), StatusCode::OK);
    let minted: Value = minted.json().await.expect("json");
    assert_eq!(minted["owner"], "alice@example.com");
    assert_eq!(minted["name"], "my laptop");
    assert!(
        minted["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("pt_"))
    );
    let secret = minted["token"].as_str().expect("token");
    let me: Value = http
        .get(format!("{}/api/me", server.base))
        .bearer_auth(secret)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(me["owner"], "alice@example.com");
    assert_eq!(me["admin"], true);
    let replay = trade(code, verifier.secret().clone()).await.expect("POST");
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST, "one-time code");
    let listed: Value = alice
        .get(&format!("{}/api/tokens", server.base))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed["tokens"].as_array().map(Vec::len), Some(1));

    // Hostile requests: a 400 page, nothing echoed unescaped.
    for hostile in [
        format!(
            "/auth/cli?port=80&state={state}&code_challenge={}&name=x",
            challenge.as_str()
        ),
        format!(
            "/auth/cli?port=4711&state=%3Cscript%3Ealert(1)%3C%2Fscript%3E&code_challenge={}&name=x",
            challenge.as_str()
        ),
        format!("/auth/cli?port=4711&state={state}&code_challenge=short&name=x"),
        format!(
            "/auth/cli?port=4711&state={state}&code_challenge={}&name=",
            challenge.as_str()
        ),
        format!(
            "/auth/cli?port=4711&state={}&code_challenge={}&name=x",
            "s".repeat(5000),
            challenge.as_str()
        ),
        "/auth/cli".to_owned(),
    ] {
        let refused = alice.get(&format!("{}{hostile}", server.base)).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{hostile}");
        let html = refused.text().await.expect("html");
        assert!(!html.contains("<script>"), "{html}");
    }
    for garbage in [
        json!({"code": "", "codeVerifier": verifier.secret()}),
        json!({"code": "x".repeat(5000), "codeVerifier": "y"}),
        json!({"code": "abc", "codeVerifier": "short"}),
    ] {
        let refused = http
            .post(format!("{}/auth/cli/token", server.base))
            .json(&garbage)
            .send()
            .await
            .expect("POST");
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    }
    let missing = http
        .post(format!("{}/auth/cli/token", server.base))
        .json(&json!({"code": "abc"}))
        .send()
        .await
        .expect("POST");
    assert!(missing.status().is_client_error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_login_is_polled_until_a_signed_in_person_allows_it() {
    let idp = provider!();
    idp.set_user("bob", r#"{"email":"bob@example.com"}"#);
    idp.set_user("carol", r#"{"email":"carol@example.com"}"#);
    let server = server(&idp, |s| s).await;
    let http = reqwest::Client::new();
    let start = || async {
        let response = http
            .post(format!("{}/auth/device", server.base))
            .json(&json!({"name": "build box"}))
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), StatusCode::OK);
        let started: Value = response.json().await.expect("json");
        started
    };
    let poll = |device: String| {
        http.post(format!("{}/auth/device/token", server.base))
            .json(&json!({"deviceCode": device}))
            .send()
    };
    let started = start().await;
    let device = started["deviceCode"]
        .as_str()
        .expect("deviceCode")
        .to_owned();
    let user_code = started["userCode"].as_str().expect("userCode").to_owned();
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert!(
        user_code
            .chars()
            .all(|c| c == '-' || "BCDFGHJKLMNPQRSTVWXZ".contains(c))
    );
    assert_eq!(
        started["verificationUri"],
        format!("{}/auth/device", server.base)
    );
    assert_eq!(started["expiresIn"], 600);
    assert_eq!(started["interval"], 2);
    let pending = poll(device.clone()).await.expect("POST");
    assert_eq!(
        error_code(pending).await,
        (StatusCode::BAD_REQUEST, "authorization_pending".to_owned())
    );
    let fast = poll(device.clone()).await.expect("POST");
    assert_eq!(
        error_code(fast).await,
        (StatusCode::BAD_REQUEST, "slow_down".to_owned())
    );

    // The person: not signed in → sign-in → back to the form.
    let mut bob = Browser::new();
    let first = bob.get(&format!("{}/auth/device", server.base)).await;
    assert_eq!(first.status(), StatusCode::FOUND);
    let back = bob.sign_in_from(&server, &location(&first), "bob").await;
    assert_eq!(back, "/auth/device");
    let form = bob.get(&format!("{}{back}", server.base)).await;
    assert_eq!(form.status(), StatusCode::OK);
    let html = form.text().await.expect("html");
    assert!(html.contains("action=\"/auth/device/verify\""), "{html}");
    let csrf = bob.csrf(&server).await;
    let verify = format!("{}/auth/device/verify", server.base);
    let allow = format!("{}/auth/device/allow", server.base);

    // CSRF refused; a wrong code counts; 5 wrong codes a minute, then 429.
    let refused = bob
        .post_form(&verify, &[("user_code", &user_code), ("csrf", "nope")])
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    for _ in 0..5 {
        let wrong = bob
            .post_form(&verify, &[("user_code", "BBBB-BBBB"), ("csrf", &csrf)])
            .await;
        assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    }
    let limited = bob
        .post_form(&verify, &[("user_code", &user_code), ("csrf", &csrf)])
        .await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);

    // The count is bob's, not his session's: a fresh sign-in is limited
    // too, on the allow form as on the code form.
    let mut again_bob = Browser::new();
    let start_login = again_bob.get(&format!("{}/auth/device", server.base)).await;
    again_bob
        .sign_in_from(&server, &location(&start_login), "bob")
        .await;
    let bob_csrf = again_bob.csrf(&server).await;
    for target in [&verify, &allow] {
        let limited = again_bob
            .post_form(
                target,
                &[
                    ("user_code", &user_code),
                    ("csrf", &bob_csrf),
                    ("decision", "allow"),
                ],
            )
            .await;
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS, "{target}");
    }

    // Carol: the right code (typed loosely) → confirm.
    let mut laptop = Browser::new();
    let start_login = laptop.get(&format!("{}/auth/device", server.base)).await;
    laptop
        .sign_in_from(&server, &location(&start_login), "carol")
        .await;
    let csrf = laptop.csrf(&server).await;
    let typed = user_code.to_lowercase().replace('-', " ");
    let confirm = laptop
        .post_form(&verify, &[("user_code", &typed), ("csrf", &csrf)])
        .await;
    assert_eq!(confirm.status(), StatusCode::OK);
    let html = confirm.text().await.expect("html");
    assert!(
        html.contains(&user_code) && html.contains("build box"),
        "{html}"
    );
    assert!(html.contains("action=\"/auth/device/allow\""), "{html}");
    let no_csrf = laptop
        .post_form(&allow, &[("user_code", &user_code), ("decision", "allow")])
        .await;
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);
    let allowed = laptop
        .post_form(
            &allow,
            &[
                ("user_code", &user_code),
                ("csrf", &csrf),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(allowed.status(), StatusCode::OK);
    let again = laptop
        .post_form(
            &allow,
            &[
                ("user_code", &user_code),
                ("csrf", &csrf),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST, "decided once");

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let done = poll(device.clone()).await.expect("POST");
    assert_eq!(done.status(), StatusCode::OK);
    let token: Value = done.json().await.expect("json");
    assert_eq!(token["owner"], "carol@example.com");
    assert_eq!(token["name"], "build box");
    let me = http
        .get(format!("{}/api/me", server.base))
        .bearer_auth(token["token"].as_str().expect("token"))
        .send()
        .await
        .expect("GET");
    assert_eq!(me.status(), StatusCode::OK);
    let spent = poll(device).await.expect("POST");
    assert_eq!(
        error_code(spent).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".to_owned())
    );

    // Denied: the CLI hears access_denied.
    let started = start().await;
    let device = started["deviceCode"]
        .as_str()
        .expect("deviceCode")
        .to_owned();
    let user_code = started["userCode"].as_str().expect("userCode").to_owned();
    let denied = laptop
        .post_form(
            &allow,
            &[
                ("user_code", &user_code),
                ("csrf", &csrf),
                ("decision", "deny"),
            ],
        )
        .await;
    assert_eq!(denied.status(), StatusCode::OK);
    assert_eq!(
        error_code(poll(device).await.expect("POST")).await,
        (StatusCode::BAD_REQUEST, "access_denied".to_owned())
    );

    // Garbage.
    for body in [
        json!({"deviceCode": "x".repeat(5000)}),
        json!({"deviceCode": ""}),
    ] {
        let refused = http
            .post(format!("{}/auth/device/token", server.base))
            .json(&body)
            .send()
            .await
            .expect("POST");
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    }
    for body in [json!({"name": ""}), json!({"name": "a\nb"}), json!({})] {
        let refused = http
            .post(format!("{}/auth/device", server.base))
            .json(&body)
            .send()
            .await
            .expect("POST");
        assert!(refused.status().is_client_error(), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_tokens_count_for_metrics_readyz_and_the_port_proxy() {
    let idp = provider!();
    idp.set_user(
        "root",
        r#"{"email":"root@example.com","groups":["lease-admins"]}"#,
    );
    idp.set_user("ann", r#"{"email":"ann@example.com"}"#);
    let server = server(&idp, |s| s).await;
    let mut minted = HashMap::new();
    for sub in ["root", "ann"] {
        let mut browser = Browser::new();
        browser.sign_in(&server, sub).await;
        let csrf = browser.csrf(&server).await;
        let token: Value = browser
            .request(
                reqwest::Method::POST,
                &format!("{}/api/tokens", server.base),
            )
            .header("x-csrf-token", csrf)
            .json(&json!({"name": "ops"}))
            .send()
            .await
            .expect("POST")
            .json()
            .await
            .expect("json");
        minted.insert(sub, token["token"].as_str().expect("token").to_owned());
    }
    let http = reqwest::Client::new();
    let get = |path: &str, token: &str| {
        http.get(format!("{}{path}", server.base))
            .bearer_auth(token)
            .send()
    };
    // /metrics: an admin's personal token reads it, another's is refused.
    assert_eq!(
        get("/metrics", &minted["root"])
            .await
            .expect("GET")
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        get("/metrics", &minted["ann"]).await.expect("GET").status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get("/metrics", "clp_nope").await.expect("GET").status(),
        StatusCode::UNAUTHORIZED
    );
    // /readyz: the admin sees the checks, the other the short answer.
    let ready: Value = get("/readyz", &minted["root"])
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["checks"]["store"], "ok", "{ready}");
    let ready: Value = get("/readyz", &minted["ann"])
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(ready, json!({"ready": true}));
    // The port proxy takes the token: an unknown lease (404), not a 401.
    let proxied = get("/leases/nope/ports/8080/", &minted["ann"])
        .await
        .expect("GET");
    assert_eq!(proxied.status(), StatusCode::NOT_FOUND);
    let refused = get("/leases/nope/ports/8080/", "clp_nope")
        .await
        .expect("GET");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
}

/// Hostile input on every sign-in route, signed in and not: never a 5xx,
/// never a redirect off the server (but to the provider or the loopback),
/// never an unescaped `<script>`, and nothing minted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_on_the_sign_in_routes_gets_clean_refusals() {
    let idp = provider!();
    // No rate limit: every request reaches its handler.
    let server = server_with(
        &idp,
        |s| s,
        ApiConfig::default().limits(lease_http::Limits::unlimited()),
    )
    .await;
    let mut signed_in = Browser::new();
    signed_in.sign_in(&server, "mallory@example.com").await;
    let huge = "z".repeat(9000);
    let targets = [
        "/auth/login?return_to=//evil.com".to_owned(),
        "/auth/login?return_to=javascript:alert(1)".to_owned(),
        "/auth/login?return_to=%2F%2Fevil.com".to_owned(),
        "/auth/login?return_to=/%0d%0aSet-Cookie:x=1".to_owned(),
        format!("/auth/login?return_to=/{huge}"),
        "/auth/callback?state=<script>&code=<script>".to_owned(),
        format!("/auth/callback?state={huge}&code={huge}"),
        "/auth/cli?port=-1&state=<script>alert(1)</script>&code_challenge=x&name=<b>".to_owned(),
        format!("/auth/cli?port=99999&state={huge}&code_challenge={huge}&name={huge}"),
        "/auth/cli?port=4711&port=4712".to_owned(),
        "/auth/device?user_code=<script>".to_owned(),
        format!("/auth/device?user_code={huge}"),
    ];
    let bodies = [
        "".to_owned(),
        "csrf=x&decision=allow".to_owned(),
        "port=4711&state=abcdefghijklmnopq&code_challenge=<script>&csrf=&decision=allow".to_owned(),
        format!("user_code={huge}&csrf={huge}"),
        "%ff%fe=%00&&&==".to_owned(),
        "{\"code\":1}".to_owned(),
    ];
    let posts = [
        "/auth/cli/allow",
        "/auth/cli/token",
        "/auth/device",
        "/auth/device/verify",
        "/auth/device/allow",
        "/auth/device/token",
        "/auth/logout",
        "/auth/logout-everywhere",
    ];
    let cookies = [
        String::new(),
        format!("cl_session={huge}"),
        "cl_session=; cl_login=%00".to_owned(),
        format!("cl_login={}", "0".repeat(64)),
    ];
    let check = |what: &str, response: &reqwest::Response| {
        assert!(
            response.status().as_u16() < 500,
            "{what}: {}",
            response.status()
        );
        if let Some(to) = response.headers().get(LOCATION) {
            let to = to.to_str().expect("ascii location");
            let ours = to.starts_with('/') && !to.starts_with("//");
            let provider = to.starts_with(&idp.issuer());
            let loopback = to.starts_with("http://127.0.0.1:");
            assert!(ours || provider || loopback, "{what}: redirect to {to}");
            if let Some(back) = to.strip_prefix("/auth/login?return_to=") {
                assert!(!back.starts_with("%2F%2F"), "{what}: {to}");
            }
        }
    };
    for cookie in &cookies {
        let jar = if cookie.is_empty() {
            signed_in.cookie_header()
        } else {
            cookie.clone()
        };
        for target in &targets {
            let response = signed_in
                .http
                .get(format!("{}{target}", server.base))
                .header("cookie", &jar)
                .send()
                .await
                .expect("GET");
            check(target, &response);
            let html = response.text().await.unwrap_or_default();
            assert!(!html.contains("<script>"), "{target}: {html}");
        }
        for path in posts {
            for body in &bodies {
                for content_type in ["application/x-www-form-urlencoded", "application/json"] {
                    let response = signed_in
                        .http
                        .post(format!("{}{path}", server.base))
                        .header("cookie", &jar)
                        .header("content-type", content_type)
                        .body(body.clone())
                        .send()
                        .await
                        .expect("POST");
                    check(&format!("{path} {body:.40}"), &response);
                }
            }
        }
    }
    // Where `return_to` was hostile, the sign-in comes back to `/`.
    let mut fresh = Browser::new();
    let authorize = fresh.start(&server, "//evil.com").await;
    let callback = fresh.authorize(&authorize, "mallory@example.com").await;
    let done = fresh.get(&callback).await;
    assert_eq!(location(&done), "/");
    // Nothing was minted.
    let listed: Value = signed_in
        .get(&format!("{}/api/tokens", server.base))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed["tokens"], json!([]));
    assert!(
        signed_in.me(&server).await.0 == StatusCode::OK,
        "still signed in"
    );
}
