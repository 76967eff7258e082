//! The portal page signed in with OpenID Connect, in a real headless
//! Chromium (the helpers of `tests/common/browser.rs`), against the real
//! `lease-server` binary, real Docker and a real identity provider
//! (PyPI's oidc-provider-mock, started per test by lease-testkit): the
//! provider's own authorization form is filled in Chromium.
//!
//! - sign-in → the page shows the owner; renting works (the page sends the
//!   CSRF header; the same request without it, with the cookie taken from
//!   the browser, is refused and changes nothing); no credential in any
//!   URL or in localStorage; a personal token minted in the page works as
//!   a bearer token from outside the browser, and stops working once
//!   revoked in the page; sign-out brings the sign-in back and the old
//!   cookie is refused;
//! - an admin (by the provider's `groups` claim) is shown as one and sees
//!   everyone's leases and the server's capacity in use.
//!
//! Without Docker, Chromium or the provider's venv a test skips with a
//! printed reason; with `CI=true` it fails (scripts/test.sh installs them).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};

use common::browser::{Browser, page_turn, prerequisites, with_browser};
use lease_testkit::TempDir;
use lease_testkit::docker::NamespaceGuard;
use lease_testkit::oidc::OidcProvider;
use lease_testkit::server::{Server, ServerConfig, mint_token};

/// The admin group the servers here are given.
const ADMIN_GROUP: &str = "lease-admins";

/// Starts this crate's server signing in with `idp` (plus `extra` flags),
/// on `guard`'s namespace, once `/healthz` answers.
fn start_server(
    guard: &NamespaceGuard,
    dir: &TempDir,
    idp: &OidcProvider,
    extra: &[&str],
) -> Server {
    let secret = dir.path().join("oidc-client-secret");
    std::fs::write(&secret, "s3cret\n").expect("client secret file");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))
            .expect("chmod the secret file");
    }
    let secret = secret.display().to_string();
    let issuer = idp.issuer();
    let mut args: Vec<String> = [
        "--oidc-issuer",
        issuer.as_str(),
        "--oidc-client-id",
        "containerlease",
        "--oidc-client-secret-file",
        secret.as_str(),
        "--oidc-admin-group",
        ADMIN_GROUP,
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let config = ServerConfig::new(guard.namespace())
        .binary(env!("CARGO_BIN_EXE_lease-server"))
        .catalog(lease_testkit::local_catalog())
        .store("memory")
        .sweep_interval("5s")
        .ready_path("/healthz")
        .ready_within(Duration::from_secs(30))
        .args(args);
    Server::start(config).expect("cargo builds the binary of this crate's tests")
}

/// One plain HTTP/1.1 request to `address` (the way curl would send it):
/// `(status, JSON body or Null)`.
fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).expect("request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("response");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// `GET /api/containers` with `headers`: the lease ids seen.
fn lease_ids_via(address: SocketAddr, headers: &[(&str, &str)]) -> (u16, Vec<String>) {
    let (status, body) = http(address, "GET", "/api/containers", headers, "");
    let ids = body["containers"]
        .as_array()
        .map(|leases| {
            leases
                .iter()
                .filter_map(|lease| lease["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (status, ids)
}

/// Signs in through the page: the "Sign in with …" button, then the
/// provider's own form as `sub`; waits for the portal.
async fn sign_in(b: &Browser, server: &Server, idp: &OidcProvider, sub: &str) {
    b.client.goto(&server.url()).await.expect("open the page");
    let label = b
        .wait_for(
            "the provider's sign-in button",
            Duration::from_secs(15),
            "const link = document.getElementById('signin-oidc-link');
             return !document.getElementById('signin').hidden && link.offsetParent ? link.textContent : null;",
            vec![],
        )
        .await;
    let provider_host = format!("127.0.0.1:{}", idp.port());
    assert_eq!(label, json!(format!("Sign in with {provider_host}")));
    // The token form is folded away, one keyboard-reachable button down.
    assert_eq!(
        b.js(
            "return [document.getElementById('signin-token').hidden,
                     document.getElementById('signin-use-token').getAttribute('aria-expanded')];",
            vec![],
        )
        .await,
        json!([true, "false"])
    );
    assert_eq!(
        b.js(
            "return document.getElementById('signin-oidc-link').getAttribute('href');",
            vec![]
        )
        .await,
        json!("/auth/login?return_to=%2F")
    );
    b.shot("signin").await;
    b.click("#signin-oidc-link").await;
    // The provider's authorization form (its own HTML, on its own origin).
    b.wait_for(
        "the provider's authorization form",
        Duration::from_secs(15),
        "return location.host === arguments[0] && document.querySelector('input[name=sub]') !== null;",
        vec![json!(provider_host)],
    )
    .await;
    b.shot("provider-form").await;
    b.type_into("input[name=sub]", &format!("{sub}\u{e007}"))
        .await;
    b.wait_for(
        "the portal after sign-in",
        Duration::from_secs(20),
        "return location.host === arguments[0] && !document.getElementById('app').hidden
                && !document.getElementById('who').hidden;",
        vec![json!(server.address().to_string())],
    )
    .await;
}

/// The browser's `cl_session` cookie (WebDriver sees HttpOnly cookies).
async fn session_cookie(b: &Browser) -> String {
    let cookies = b.client.get_all_cookies().await.expect("cookies");
    let cookie = cookies
        .iter()
        .find(|cookie| cookie.name() == "cl_session")
        .expect("a cl_session cookie after sign-in");
    assert_eq!(
        cookie.http_only(),
        Some(true),
        "the session cookie is HttpOnly"
    );
    cookie.value().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_sign_in_rents_mints_a_token_and_signs_out() {
    let Some(tools) = prerequisites() else {
        return;
    };
    let turn = page_turn().await;
    let Some(idp) = OidcProvider::start() else {
        return;
    };
    idp.set_user(
        "alice",
        r#"{"email":"alice@example.com","groups":["developers"]}"#,
    );
    let guard = NamespaceGuard::random();
    let dir = TempDir::new("lease-browser-oidc");
    let server = start_server(&guard, &dir, &idp, &["--max-leases", "10"]);
    let address = server.address();
    let browser = Browser::launch(&tools, "oidc-sign-in").await;
    with_browser(&turn, browser, async |b| {
        sign_in(b, &server, &idp, "alice").await;
        assert_eq!(b.text("#who").await, "Signed in as alice@example.com");
        b.watch_page().await;
        // No admin bits for alice.
        b.wait_for(
            "the usage strip",
            Duration::from_secs(10),
            "return !document.getElementById('usage-capacity').hidden;",
            vec![],
        )
        .await;
        assert!(!b.text("#usage-capacity").await.contains("Now in use"));
        let cookie = session_cookie(b).await;
        let cookie_header = format!("cl_session={cookie}");

        // Rent through the form: a cookie POST, so the page sent the CSRF token.
        let id = b.rent("alpine", "15").await;
        b.wait_status(&id, "running", Duration::from_secs(60)).await;
        b.shot("rented").await;
        // The same request without it (or with a wrong one) is refused and rents nothing.
        let provision = r#"{"imageType":"alpine","durationMinutes":5}"#;
        for headers in [
            vec![("Cookie", cookie_header.as_str())],
            vec![("Cookie", cookie_header.as_str()), ("X-CSRF-Token", "0000")],
        ] {
            let (status, body) = http(address, "POST", "/api/provision", &headers, provision);
            assert_eq!(
                (status, &body["error"]["code"]),
                (403, &json!("csrf")),
                "{body}"
            );
        }
        let (status, ids) = lease_ids_via(address, &[("Cookie", cookie_header.as_str())]);
        assert_eq!((status, ids), (200, vec![id.clone()]));

        // Nothing secret in localStorage or in any URL the page asked for.
        let stored = b
            .js(
                "return JSON.stringify(Object.entries(localStorage));",
                vec![],
            )
            .await;
        assert_eq!(stored, json!("[]"), "localStorage holds {stored}");
        assert!(
            !b.js("return document.cookie;", vec![])
                .await
                .to_string()
                .contains(&cookie)
        );
        let urls = b.request_urls().await;
        assert!(
            urls.iter()
                .any(|url| url.contains("/api/events?") && url.contains("ticket=tkt_")),
            "the event stream opens with a ticket: {urls:?}"
        );
        for url in &urls {
            assert!(!url.contains(&cookie), "the session is in a URL: {url}");
        }

        // A personal token minted in the page…
        b.click("#tokens summary").await;
        b.wait_for(
            "the tokens list",
            Duration::from_secs(10),
            "return !document.getElementById('tokens-empty').hidden;",
            vec![],
        )
        .await;
        b.type_into("#token-name", "ci laptop").await;
        b.client
            .find(fantoccini::Locator::Css("#token-expiry"))
            .await
            .expect("expiry picker")
            .select_by_value("30")
            .await
            .expect("30 days");
        b.click("#token-mint-submit").await;
        let token = b
            .wait_for(
                "the new token, shown once",
                Duration::from_secs(10),
                "const box = document.getElementById('token-new');
                 return box.hidden ? null : document.getElementById('token-new-value').value;",
                vec![],
            )
            .await;
        let token = token.as_str().expect("the token").to_owned();
        assert!(token.starts_with("clp_"), "{token}");
        assert_eq!(b.text("#token-new-name").await, "ci laptop");
        b.shot("token-minted").await;
        let row = b
            .wait_for(
                "the token's row",
                Duration::from_secs(10),
                "const row = [...document.querySelectorAll('#tokens-body tr')]
                     .find((r) => r.querySelector('.token-name').textContent === 'ci laptop');
                 return row ? row.dataset.id : null;",
                vec![],
            )
            .await;
        let token_id = row.as_str().expect("row id").to_owned();
        // …works from outside the browser as a bearer token…
        let bearer = format!("Bearer {token}");
        let (status, me) = http(
            address,
            "GET",
            "/api/me",
            &[("Authorization", bearer.as_str())],
            "",
        );
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["owner"], json!("alice@example.com"));
        assert_eq!(me["via"], json!("token"));
        assert_eq!(
            lease_ids_via(address, &[("Authorization", bearer.as_str())]),
            (200, vec![id.clone()])
        );
        // …needs no CSRF token (it is not a cookie)…
        let (status, _) = http(
            address,
            "POST",
            &format!("/api/containers/{id}/extend"),
            &[("Authorization", bearer.as_str())],
            r#"{"minutes":5}"#,
        );
        assert_eq!(status, 200);
        // …and is never kept by the page.
        b.click("#token-new-done").await;
        assert_eq!(
            b.js(
                "return document.getElementById('token-new-value').value;",
                vec![]
            )
            .await,
            json!("")
        );
        assert!(
            !b.js("return document.body.innerText;", vec![])
                .await
                .to_string()
                .contains(&token)
        );

        // Revoked in the page: refused at once.
        b.click(&format!(
            "#tokens-body tr[data-id='{token_id}'] .act-revoke"
        ))
        .await;
        b.click(&format!(
            "#tokens-body tr[data-id='{token_id}'] .act-revoke-confirm"
        ))
        .await;
        b.wait_for(
            "the revoked token's row to go",
            Duration::from_secs(10),
            "return !document.querySelector(`#tokens-body tr[data-id='${arguments[0]}']`);",
            vec![json!(token_id)],
        )
        .await;
        let (status, _) = http(
            address,
            "GET",
            "/api/me",
            &[("Authorization", bearer.as_str())],
            "",
        );
        assert_eq!(status, 401, "a revoked token is refused");

        b.assert_page_healthy().await;

        // Sign out: the sign-in is back, and the old cookie is refused.
        b.click("#signout").await;
        b.wait_for(
            "the sign-in after sign-out",
            Duration::from_secs(10),
            "return !document.getElementById('signin').hidden
                    && !document.getElementById('signin-oidc').hidden;",
            vec![],
        )
        .await;
        b.shot("signed-out").await;
        let (status, _) = http(
            address,
            "GET",
            "/api/me",
            &[("Cookie", cookie_header.as_str())],
            "",
        );
        assert_eq!(
            status, 401,
            "the old session cookie is refused after sign-out"
        );
        let (status, _) = http(
            address,
            "GET",
            "/api/containers",
            &[("Cookie", cookie_header.as_str())],
            "",
        );
        assert_eq!(status, 401);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_by_group_sees_everyones_leases() {
    let Some(tools) = prerequisites() else {
        return;
    };
    let turn = page_turn().await;
    let Some(idp) = OidcProvider::start() else {
        return;
    };
    idp.set_user(
        "root",
        &format!(r#"{{"email":"root@example.com","groups":["{ADMIN_GROUP}","developers"]}}"#),
    );
    let guard = NamespaceGuard::random();
    let dir = TempDir::new("lease-browser-oidc-admin");
    // OIDC alongside a tokens file: carol (an automation account) rents by token.
    let carol = mint_token(
        std::path::Path::new(env!("CARGO_BIN_EXE_lease-server")),
        "carol",
        false,
    );
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, &carol.toml_entry).expect("tokens file");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let tokens = tokens.display().to_string();
    let server = start_server(
        &guard,
        &dir,
        &idp,
        &["--tokens", &tokens, "--max-leases", "10"],
    );
    let address = server.address();
    let carol_bearer = format!("Bearer {}", carol.token);
    let (status, lease) = http(
        address,
        "POST",
        "/api/provision",
        &[("Authorization", carol_bearer.as_str())],
        r#"{"imageType":"alpine","durationMinutes":10}"#,
    );
    assert_eq!(status, 202, "{lease}");
    let carols = lease["id"].as_str().expect("lease id").to_owned();
    let browser = Browser::launch(&tools, "oidc-admin").await;
    with_browser(&turn, browser, async |b| {
        sign_in(b, &server, &idp, "root").await;
        assert_eq!(b.text("#who").await, "Signed in as root@example.com (admin)");
        b.wait_for(
            "carol's lease in the admin's list",
            Duration::from_secs(15),
            "return document.querySelector(`li[data-id='${arguments[0]}']`) !== null;",
            vec![json!(carols)],
        )
        .await;
        let capacity = b
            .wait_for(
                "the capacity in use (admins only)",
                Duration::from_secs(10),
                "const text = document.getElementById('usage-capacity').textContent;
                 return text.includes('Now in use') ? text : null;",
                vec![],
            )
            .await;
        assert!(capacity.to_string().contains("1 leases"), "{capacity}");
        b.shot("admin").await;
        // A token minted by an admin is an admin's token.
        b.click("#tokens summary").await;
        b.type_into("#token-name", "ops\u{e007}").await;
        b.wait_for(
            "the admin badge on the new token",
            Duration::from_secs(10),
            "return [...document.querySelectorAll('#tokens-body .token-name')]
                .some((th) => th.textContent.startsWith('ops') && th.querySelector('.badge-admin'));",
            vec![],
        )
        .await;
        // "Sign out of every browser" ends this session and any other.
        let cookie = session_cookie(b).await;
        let mut other = WebSession::sign_in(address, &idp, "root");
        assert_eq!(other.me().0, 200);
        b.click("#signout-everywhere").await;
        b.wait_for(
            "the sign-in after signing out everywhere",
            Duration::from_secs(10),
            "return !document.getElementById('signin').hidden;",
            vec![],
        )
        .await;
        let cookie_header = format!("cl_session={cookie}");
        let (status, _) = http(address, "GET", "/api/me", &[("Cookie", cookie_header.as_str())], "");
        assert_eq!(status, 401);
        assert_eq!(other.me().0, 401, "the other browser's session ended too");
    })
    .await;
}

/// A second "browser" without JavaScript: signs in by following the
/// redirects and posting the provider's form over plain HTTP.
struct WebSession {
    address: SocketAddr,
    cookie: String,
}

impl WebSession {
    fn sign_in(address: SocketAddr, idp: &OidcProvider, sub: &str) -> WebSession {
        let issuer = idp.issuer();
        let provider: SocketAddr = issuer
            .trim_start_matches("http://")
            .parse()
            .expect("the provider's address");
        let (status, headers) = raw(address, "GET", "/auth/login?return_to=/", "", "");
        assert_eq!(status, 302);
        let login_cookie = set_cookie(&headers, "cl_login").expect("a cl_login cookie");
        let authorize = header(&headers, "location").expect("to the provider");
        let path = authorize.trim_start_matches(&issuer);
        let (status, headers) = raw(provider, "POST", path, "", &format!("sub={sub}"));
        assert_eq!(status, 302, "the provider's form");
        let callback = header(&headers, "location").expect("back to us");
        let base = format!("http://{address}");
        let (status, headers) = raw(
            address,
            "GET",
            callback.trim_start_matches(&base),
            &format!("cl_login={login_cookie}"),
            "",
        );
        assert_eq!(status, 302, "the callback");
        let cookie = set_cookie(&headers, "cl_session").expect("a session");
        WebSession { address, cookie }
    }

    fn me(&mut self) -> (u16, Value) {
        let cookie = format!("cl_session={}", self.cookie);
        http(
            self.address,
            "GET",
            "/api/me",
            &[("Cookie", cookie.as_str())],
            "",
        )
    }
}

/// One HTTP/1.1 request: status and the response's header lines.
/// `body` (if any) is sent as a form.
fn raw(
    address: SocketAddr,
    method: &str,
    path: &str,
    cookie: &str,
    body: &str,
) -> (u16, Vec<String>) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    if !cookie.is_empty() {
        request.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if !body.is_empty() {
        request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).expect("request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("response");
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, lines.map(str::to_owned).collect())
}

fn header(headers: &[String], name: &str) -> Option<String> {
    headers.iter().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

fn set_cookie(headers: &[String], name: &str) -> Option<String> {
    headers.iter().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        if !key.trim().eq_ignore_ascii_case("set-cookie") {
            return None;
        }
        let pair = value.trim().split(';').next()?;
        let (cookie, value) = pair.split_once('=')?;
        (cookie == name && !value.is_empty()).then(|| value.to_owned())
    })
}
