//! `lease login` against a lease-server that signs people in with OpenID
//! Connect, and a real identity provider (PyPI's oidc-provider-mock,
//! started per test by lease-testkit):
//!
//! - the loopback login: `BROWSER` is a script that hands the URL to the
//!   test, which plays the browser with a plain HTTP client (cookies kept
//!   by hand, no automatic redirects) through our server, the provider's
//!   authorization form and our confirm page, back to the CLI's listener on
//!   127.0.0.1; the token lands in a 0600 file, works, and `lease logout`
//!   revokes it on the server;
//! - a refusal on the confirm page ends `lease login` with an error and
//!   stores nothing;
//! - the device login (`--device`): the CLI prints a URL and a code, the
//!   "browser" signs in and enters the code, the CLI's polls get the token.
//!
//! Each test has its own provider, server, namespace and config directory.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lease_testkit::TempDir;
use lease_testkit::docker::{NamespaceGuard, docker_ready};
use lease_testkit::oidc::OidcProvider;
use lease_testkit::server::{Server, ServerConfig};
use reqwest::StatusCode;
use reqwest::header::{LOCATION, SET_COOKIE};
use serde_json::Value;

/// Where Docker is not: the CLI must never need it in remote mode.
const NO_DOCKER: &str = "unix:///nonexistent/docker.sock";

/// A provider, a lease-server signing in with it, and a config directory.
struct Setup {
    server: Server,
    idp: OidcProvider,
    config: TempDir,
    // Declared last: dropped after the server is killed.
    _guard: NamespaceGuard,
}

impl Setup {
    /// `None` after a printed skip (a failure under CI=true).
    fn start() -> Option<Setup> {
        if !docker_ready() {
            return None;
        }
        let idp = OidcProvider::start()?;
        idp.set_user("alice", r#"{"email":"alice@example.com"}"#);
        let guard = NamespaceGuard::random();
        let binary = lease_testkit::server::binary()?;
        let config = TempDir::new("lease-oidc-login");
        let secret = config.path().join("client-secret");
        std::fs::write(&secret, "s3cret\n").expect("secret file");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))
                .expect("chmod the secret file");
        }
        let server = Server::start(
            ServerConfig::new(guard.namespace())
                .binary(binary)
                .store("memory")
                .ready_path("/healthz")
                .ready_within(Duration::from_secs(30))
                .args([
                    "--oidc-issuer".to_owned(),
                    idp.issuer(),
                    "--oidc-client-id".to_owned(),
                    "containerlease".to_owned(),
                    "--oidc-client-secret-file".to_owned(),
                    secret.display().to_string(),
                ]),
        )?;
        Some(Setup {
            server,
            idp,
            config,
            _guard: guard,
        })
    }

    /// The server's base URL without the trailing `/`.
    fn base(&self) -> String {
        self.server.url().trim_end_matches('/').to_owned()
    }

    fn credentials(&self) -> PathBuf {
        self.config
            .path()
            .join("containerlease")
            .join("credentials.json")
    }

    /// `lease --server URL ARGS` with this setup's config directory, no
    /// Docker, no display, and `browser` (a script) as BROWSER if given.
    fn lease(&self, args: &[&str], browser: Option<&Path>) -> Command {
        let mut command = Command::new(common::bin());
        for name in common::LEASE_ENV {
            command.env_remove(name);
        }
        command
            .args(["--server", &self.server.url()])
            .args(args)
            .env("XDG_CONFIG_HOME", self.config.path())
            .env("DOCKER_HOST", NO_DOCKER)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("BROWSER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(browser) = browser {
            command.env("BROWSER", browser);
        }
        command
    }

    /// A BROWSER script that writes the URL it is given to the returned file.
    fn recording_browser(&self) -> (PathBuf, PathBuf) {
        let script = self.config.path().join("browser.sh");
        let seen = self.config.path().join("browser-url");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s' \"$1\" > '{}.tmp' && mv '{0}.tmp' '{0}'\n",
                seen.display()
            ),
        )
        .expect("browser script");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700))
                .expect("chmod the script");
        }
        (script, seen)
    }
}

/// A running `lease` whose stderr is collected as it comes.
struct Running {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    fn spawn(mut command: Command) -> Running {
        let mut child = command.spawn().expect("lease starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Ok(mut text) = sink.lock() {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
        });
        Running { child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .map(|text| text.clone())
            .unwrap_or_default()
    }

    /// Waits (60 s at most) for the exit; `(success, stderr)`.
    fn finish(mut self) -> (bool, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Let the reader thread drain the pipe.
                std::thread::sleep(Duration::from_millis(100));
                return (status.success(), self.stderr());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("lease login did not end; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `what` to be `Some`, 30 s at most.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ------------------------------------------------------------ the "browser"

/// An HTML form: where it goes, and its fields (hidden and text inputs
/// with their values; submit buttons separately).
#[derive(Debug, Clone)]
struct Form {
    action: String,
    fields: Vec<(String, String)>,
    buttons: Vec<(String, String)>,
    text_inputs: Vec<String>,
}

/// `&amp;`-style entities in an attribute value.
fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The attributes of one tag's text (`<input type="hidden" name=x>`).
fn attributes(tag: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = tag
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim_end_matches('/');
    // Skip the element name.
    rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return out;
        }
        let name_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..].trim_start();
        let Some(after) = rest.strip_prefix('=') else {
            out.insert(name, String::new());
            continue;
        };
        let after = after.trim_start();
        let (value, tail) = match after.chars().next() {
            Some(quote @ ('"' | '\'')) => {
                let body = &after[1..];
                let end = body.find(quote).unwrap_or(body.len());
                (&body[..end], body.get(end + 1..).unwrap_or(""))
            }
            _ => {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        out.insert(name, unescape(value));
        rest = tail;
    }
}

/// Every `<form>` of `html`.
fn forms(html: &str) -> Vec<Form> {
    let lower = html.to_ascii_lowercase();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(start) = lower[from..].find("<form").map(|i| i + from) {
        let tag_end = lower[start..]
            .find('>')
            .map_or(lower.len(), |i| i + start + 1);
        let end = lower[tag_end..]
            .find("</form")
            .map_or(lower.len(), |i| i + tag_end);
        let action = attributes(&html[start..tag_end])
            .remove("action")
            .unwrap_or_default();
        let mut form = Form {
            action,
            fields: Vec::new(),
            buttons: Vec::new(),
            text_inputs: Vec::new(),
        };
        let body = &html[tag_end..end];
        let body_lower = &lower[tag_end..end];
        for element in ["<input", "<button"] {
            let mut at = 0;
            while let Some(i) = body_lower[at..].find(element).map(|i| i + at) {
                let close = body_lower[i..].find('>').map_or(body.len(), |j| j + i + 1);
                let attrs = attributes(&body[i..close]);
                let name = attrs.get("name").cloned().unwrap_or_default();
                let value = attrs.get("value").cloned().unwrap_or_default();
                let kind = attrs.get("type").cloned().unwrap_or_default();
                if element == "<button" || kind == "submit" {
                    form.buttons.push((name, value));
                } else if kind == "hidden" {
                    form.fields.push((name, value));
                } else if !name.is_empty() {
                    form.text_inputs.push(name);
                }
                at = close;
            }
        }
        found.push(form);
        from = end;
    }
    found
}

/// A browser without JavaScript: cookies by name (as browsers ignore
/// ports, and the provider and our server share 127.0.0.1), redirects by
/// hand.
struct WebClient {
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

/// One answer: status, Location (absolute), body.
struct Page {
    status: StatusCode,
    location: Option<String>,
    body: String,
    url: String,
}

impl WebClient {
    fn new() -> WebClient {
        WebClient {
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
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn page(&mut self, url: &str, response: reqwest::Response) -> Page {
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().expect("ascii cookie");
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                let expired = text.to_ascii_lowercase().contains("max-age=0") || value.is_empty();
                if expired {
                    self.cookies.remove(name.trim());
                } else {
                    self.cookies
                        .insert(name.trim().to_owned(), value.trim().to_owned());
                }
            }
        }
        let status = response.status();
        let base = reqwest::Url::parse(url).expect("a URL");
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(|value| base.join(value).expect("a Location").to_string());
        let body = response.text().await.unwrap_or_default();
        Page {
            status,
            location,
            body,
            url: url.to_owned(),
        }
    }

    async fn get(&mut self, url: &str) -> Page {
        let response = self
            .http
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        self.page(url, response).await
    }

    /// Posts `fields` as a form to `action` (relative to `page`), with
    /// the Origin a browser sends.
    async fn submit(&mut self, page: &Page, action: &str, fields: &[(String, String)]) -> Page {
        let base = reqwest::Url::parse(&page.url).expect("page URL");
        let target = base.join(action).expect("form action").to_string();
        let origin = base.origin().ascii_serialization();
        let response = self
            .http
            .post(&target)
            .header("cookie", self.cookie_header())
            .header("origin", origin)
            .form(fields)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {target}: {e}"));
        self.page(&target, response).await
    }

    /// GETs `url` and follows redirects while they stay off `stop` (a
    /// URL prefix); the last page (or the redirect to `stop`).
    async fn follow(&mut self, url: &str, stop: &str) -> Page {
        let mut page = self.get(url).await;
        for _ in 0..10 {
            match &page.location {
                Some(next) if page.status.is_redirection() && !next.starts_with(stop) => {
                    let next = next.clone();
                    page = self.get(&next).await;
                }
                _ => return page,
            }
        }
        panic!("too many redirects from {url}");
    }

    /// From a page that sent us to sign in: the provider's form as `sub`,
    /// then our callback and back to where the sign-in was asked from.
    async fn sign_in_at_provider(
        &mut self,
        page: Page,
        idp: &OidcProvider,
        sub: &str,
        back_to: &str,
    ) -> Page {
        assert!(
            page.url.starts_with(&idp.issuer()),
            "expected the provider's form, got {} {}",
            page.status,
            page.url
        );
        let form = forms(&page.body)
            .into_iter()
            .find(|form| form.text_inputs.iter().any(|name| name == "sub"))
            .expect("the provider's form with a `sub` field");
        let answer = self
            .submit(&page, &form.action, &[("sub".to_owned(), sub.to_owned())])
            .await;
        assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
        let callback = answer.location.expect("the provider's redirect");
        self.follow(&callback, back_to).await
    }
}

/// The form on `page` whose action contains `path`, and its submit
/// button whose value or name contains `choice` (added to the fields).
fn choose(page: &Page, path: &str, choice: &str) -> (String, Vec<(String, String)>) {
    let all = forms(&page.body);
    let form = all
        .iter()
        .find(|form| {
            form.action.contains(path)
                && (form
                    .buttons
                    .iter()
                    .any(|(n, v)| n.contains(choice) || v.contains(choice))
                    || form.buttons.iter().all(|(n, _)| n.is_empty()))
        })
        .unwrap_or_else(|| panic!("no form to {path} ({choice}) on:\n{}", page.body));
    let mut fields = form.fields.clone();
    if let Some(button) = form
        .buttons
        .iter()
        .find(|(n, v)| !n.is_empty() && (n.contains(choice) || v.contains(choice)))
    {
        fields.push(button.clone());
    }
    (form.action.clone(), fields)
}

/// The stored token, checked to be readable by the owner only.
fn stored_token(path: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .expect("credentials file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "credentials mode {mode:o}");
    let stored: Value = serde_json::from_slice(&std::fs::read(path).expect("read")).expect("JSON");
    stored["token"].as_str().expect("a token").to_owned()
}

async fn me(server: &Server, token: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}api/me", server.url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /api/me");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

// ------------------------------------------------------------ tests

/// The CLI's loopback URL, as its BROWSER script received it (and
/// printed, for when no browser opens).
fn browser_url(seen: &Path, running: &Running) -> String {
    let url = eventually("the CLI to open the browser", || {
        std::fs::read_to_string(seen)
            .ok()
            .map(|url| url.trim().to_owned())
            .filter(|url| !url.is_empty())
    });
    eventually("the CLI to print the URL", || {
        running.stderr().contains(&url).then_some(())
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_login_stores_a_working_token_and_logout_revokes_it() {
    let Some(setup) = Setup::start() else {
        return;
    };
    let (script, seen) = setup.recording_browser();
    let running = Running::spawn(setup.lease(&["login", "--name", "ci laptop"], Some(&script)));
    let url = browser_url(&seen, &running);
    let parsed = reqwest::Url::parse(&url).expect("the login URL");
    assert!(
        url.starts_with(&format!("{}/auth/cli?", setup.base())),
        "{url}"
    );
    let query: HashMap<String, String> = parsed.query_pairs().into_owned().collect();
    assert_eq!(query.get("name").map(String::as_str), Some("ci laptop"));
    assert_eq!(query.get("code_challenge").map(String::len), Some(43));
    let port: u16 = query["port"].parse().expect("a port");

    // Not signed in: to the provider, and back to the confirm page.
    let mut browser = WebClient::new();
    let at_provider = browser.follow(&url, &setup.idp.issuer()).await;
    let at_provider = match at_provider.location.clone() {
        Some(next) if next.starts_with(&setup.idp.issuer()) => browser.get(&next).await,
        _ => at_provider,
    };
    let confirm = browser
        .sign_in_at_provider(at_provider, &setup.idp, "alice", "http://127.0.0.1:0")
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert!(
        confirm.body.contains("alice@example.com"),
        "{}",
        confirm.body
    );
    // Allow: the server sends the browser to the CLI's listener.
    let (action, fields) = choose(&confirm, "/auth/cli/allow", "allow");
    let allowed = browser.submit(&confirm, &action, &fields).await;
    let back = allowed
        .location
        .clone()
        .unwrap_or_else(|| panic!("{} {}", allowed.status, allowed.body));
    assert!(
        back.starts_with(&format!("http://127.0.0.1:{port}/callback?")),
        "{back}"
    );
    let landing = browser.get(&back).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    assert!(landing.body.contains("Signed in"));

    let (ok, stderr) = running.finish();
    assert!(ok, "lease login failed:\n{stderr}");
    assert!(stderr.contains("alice@example.com"), "{stderr}");
    let token = stored_token(&setup.credentials());
    assert!(token.starts_with("clp_"), "a personal token");
    let (status, who) = me(&setup.server, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(who["owner"], "alice@example.com");
    // The stored token is what the other commands use.
    let usage = setup
        .lease(&["usage", "--output", "json"], None)
        .output()
        .expect("lease usage");
    assert!(
        usage.status.success(),
        "{}",
        String::from_utf8_lossy(&usage.stderr)
    );
    assert!(String::from_utf8_lossy(&usage.stdout).contains("alice@example.com"));

    // The code was spent: trading it again gets nothing.
    let code = reqwest::Url::parse(&back)
        .expect("callback URL")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let again = reqwest::Client::new()
        .post(format!("{}/auth/cli/token", setup.base()))
        .json(&serde_json::json!({"code": code, "codeVerifier": "x".repeat(43)}))
        .send()
        .await
        .expect("POST /auth/cli/token");
    assert!(again.status().is_client_error(), "{}", again.status());

    // Logout revokes it on the server and forgets it here.
    let out = setup
        .lease(&["logout"], None)
        .output()
        .expect("lease logout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("revoked"), "{stderr}");
    assert!(!setup.credentials().exists());
    let (status, _) = me(&setup.server, &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the token is revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_loopback_login_stores_nothing() {
    let Some(setup) = Setup::start() else {
        return;
    };
    let (script, seen) = setup.recording_browser();
    let running = Running::spawn(setup.lease(&["login"], Some(&script)));
    let url = browser_url(&seen, &running);
    let mut browser = WebClient::new();
    let at_provider = browser.follow(&url, &setup.idp.issuer()).await;
    let at_provider = match at_provider.location.clone() {
        Some(next) => browser.get(&next).await,
        None => at_provider,
    };
    let confirm = browser
        .sign_in_at_provider(at_provider, &setup.idp, "alice", "http://127.0.0.1:0")
        .await;
    let (action, fields) = choose(&confirm, "/auth/cli/allow", "deny");
    let denied = browser.submit(&confirm, &action, &fields).await;
    let back = denied.location.clone().expect("back to the CLI");
    assert!(back.contains("error=access_denied"), "{back}");
    browser.get(&back).await;
    let (ok, stderr) = running.finish();
    assert!(!ok, "a refusal must fail lease login");
    assert!(stderr.contains("access_denied"), "{stderr}");
    assert!(!setup.credentials().exists(), "nothing stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_login_prints_a_code_and_polls_until_allowed() {
    let Some(setup) = Setup::start() else {
        return;
    };
    let running = Running::spawn(setup.lease(&["login", "--device", "--name", "build box"], None));
    let (uri, code) = eventually("the CLI to print the URL and the code", || {
        let text = running.stderr();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let uri = lines.iter().find(|l| l.starts_with("http"))?.to_string();
        let code = lines
            .iter()
            .find(|l| {
                l.len() == 9
                    && l.as_bytes()[4] == b'-'
                    && l.chars().all(|c| c == '-' || c.is_ascii_alphanumeric())
            })?
            .to_string();
        Some((uri, code))
    });
    assert_eq!(uri, format!("{}/auth/device", setup.base()));

    // The person opens the URL, signs in, types the code, allows.
    let mut browser = WebClient::new();
    let at_provider = browser.follow(&uri, &setup.idp.issuer()).await;
    let at_provider = match at_provider.location.clone() {
        Some(next) => browser.get(&next).await,
        None => at_provider,
    };
    let entry = browser
        .sign_in_at_provider(at_provider, &setup.idp, "alice", "http://127.0.0.1:0")
        .await;
    assert_eq!(entry.status, StatusCode::OK, "{}", entry.body);
    let form = forms(&entry.body)
        .into_iter()
        .find(|form| !form.text_inputs.is_empty())
        .unwrap_or_else(|| panic!("a form to enter the code:\n{}", entry.body));
    let mut fields = form.fields.clone();
    fields.push((form.text_inputs[0].clone(), code.clone()));
    let confirm = browser.submit(&entry, &form.action, &fields).await;
    let confirm = match confirm.location.clone() {
        Some(next) if confirm.status.is_redirection() => browser.get(&next).await,
        _ => confirm,
    };
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert!(
        confirm.body.contains("alice@example.com"),
        "{}",
        confirm.body
    );
    let (action, fields) = choose(&confirm, "/auth/device", "allow");
    let allowed = browser.submit(&confirm, &action, &fields).await;
    assert!(
        allowed.status.is_success() || allowed.status.is_redirection(),
        "{}",
        allowed.body
    );

    let (ok, stderr) = running.finish();
    assert!(ok, "lease login --device failed:\n{stderr}");
    let token = stored_token(&setup.credentials());
    let (status, who) = me(&setup.server, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(who["owner"], "alice@example.com");
}

#[test]
fn forms_are_read_from_html() {
    let html = r#"<p>x</p><FORM method="post" action="/auth/cli/allow?a=1&amp;b=2">
        <input type="hidden" name="csrf" value="c&quot;1"><input type=hidden name=state value='s'>
        <button type="submit" name="decision" value="allow">Allow</button>
        <button name="decision" value="deny">Deny</button></form>
        <form action="/x"><input name="user_code" placeholder="ABCD-EFGH"/></form>"#;
    let found = forms(html);
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].action, "/auth/cli/allow?a=1&b=2");
    assert_eq!(
        found[0].fields,
        vec![
            ("csrf".to_owned(), "c\"1".to_owned()),
            ("state".to_owned(), "s".to_owned())
        ]
    );
    assert_eq!(found[0].buttons.len(), 2);
    assert_eq!(found[1].text_inputs, vec!["user_code".to_owned()]);
}
