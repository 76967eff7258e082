//! The headless Chromium the browser tests drive (chromedriver over
//! WebDriver with `fantoccini`): finding the binaries, a fresh profile per
//! browser, the page helpers (scripts, waits, clicks, typing, screenshots,
//! the network log), and cleanup even on failure. Shared by `browser.rs`
//! and `browser_oidc.rs`; each test binary uses a part of it.
#![allow(dead_code)]

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use serde_json::{Value, json};

use lease_testkit::docker::docker_ready;
use lease_testkit::{TempDir, free_port, skip_or_fail, target_dir};

/// chromedriver's `POST /session/{id}/se/log` for one log (`performance`:
/// the DevTools events, `browser`: the console), the entries recorded since
/// the last read.
#[derive(Debug)]
pub struct SeLog(pub &'static str);

impl fantoccini::wd::WebDriverCompatibleCommand for SeLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (hyper::Method, Option<String>) {
        (
            hyper::Method::POST,
            Some(json!({ "type": self.0 }).to_string()),
        )
    }
}

/// The browser and driver binaries found.
pub struct Tools {
    /// The Chromium binary.
    pub chromium: PathBuf,
    /// chromedriver.
    pub chromedriver: PathBuf,
}

pub fn find_binary(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(env) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for candidate in candidates {
        let candidate = Path::new(candidate);
        if candidate.is_absolute() {
            if candidate.is_file() {
                return Some(candidate.to_owned());
            }
            continue;
        }
        if let Some(found) = std::env::split_paths(&path)
            .map(|dir| dir.join(candidate))
            .find(|p| p.is_file())
        {
            return Some(found);
        }
    }
    None
}

/// Docker, the test image, Chromium and chromedriver; `None` (after a
/// printed reason, or a panic in CI) when something is missing.
pub fn prerequisites() -> Option<Tools> {
    if !docker_ready() {
        return None;
    }
    // Debian's /usr/bin/chromium is a wrapper script; the binary is beside it.
    let Some(chromium) = find_binary(
        "CHROMIUM",
        &[
            "/usr/lib/chromium/chromium",
            "chromium",
            "chromium-browser",
            "google-chrome",
        ],
    ) else {
        skip_or_fail("Chromium is not installed (apt-get install chromium chromium-driver)");
        return None;
    };
    let Some(chromedriver) = find_binary(
        "CHROMEDRIVER",
        &["chromedriver", "/usr/lib/chromium/chromedriver"],
    ) else {
        skip_or_fail("chromedriver is not installed (apt-get install chromium-driver)");
        return None;
    };
    Some(Tools {
        chromium,
        chromedriver,
    })
}

/// chromedriver and the Chromium it starts; stopped on drop.
pub struct Driver {
    child: Option<Child>,
    profile: TempDir,
}

impl Driver {
    /// Kills the Chromium processes of this profile that survived their
    /// driver (found by the profile directory in their command line).
    pub fn kill_stray_browsers(&self) {
        let marker = format!("--user-data-dir={}", self.profile.path().display());
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            if String::from_utf8_lossy(&cmdline).contains(&marker) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.kill_stray_browsers();
    }
}

/// A Chromium session and the helpers the tests use.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    /// The test's name (screenshot file names).
    pub name: &'static str,
    /// Where screenshots go.
    pub shots: PathBuf,
    _driver: Driver,
}

impl Browser {
    pub async fn launch(tools: &Tools, name: &'static str) -> Browser {
        let profile = TempDir::new("lease-browser-profile");
        let port = free_port();
        let child = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child: Some(child),
            profile,
        };
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--lang=en-US".to_owned(),
            "--window-size=1280,900".to_owned(),
            "--force-device-scale-factor=1".to_owned(),
            format!("--user-data-dir={}", driver.profile.path().display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({ "binary": tools.chromium, "args": args }),
        );
        // Chromium's network events (DevTools' `Network.*`), read by
        // `Browser::request_urls`, and its console, printed on a timeout.
        capabilities.insert(
            "goog:loggingPrefs".to_owned(),
            json!({ "performance": "ALL", "browser": "ALL" }),
        );
        // Plain HTTP to the local driver: fantoccini's own hyper-util
        // connector (it enables `client-legacy`), no TLS.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            match ClientBuilder::new(connector.clone())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(error) if Instant::now() > deadline => {
                    panic!("cannot start Chromium through chromedriver: {error}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let shots = target_dir().join("ui-screenshots");
        std::fs::create_dir_all(&shots).expect("screenshot dir");
        Browser {
            client,
            name,
            shots,
            _driver: driver,
        }
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    /// The URL of every request the page made (HTTP, EventSource, WebSocket)
    /// since the last call, from Chromium's network log (DevTools protocol
    /// events through chromedriver's performance log). Only the URLs: the
    /// events also carry request headers, `Authorization` included.
    pub async fn request_urls(&self) -> Vec<String> {
        self.network_events()
            .await
            .into_iter()
            .filter_map(|(method, params)| match method.as_str() {
                "Network.requestWillBeSent" => params["request"]["url"].as_str().map(str::to_owned),
                "Network.webSocketCreated" => params["url"].as_str().map(str::to_owned),
                _ => None,
            })
            .collect()
    }

    /// The DevTools events (method, params) recorded since the last read.
    async fn network_events(&self) -> Vec<(String, Value)> {
        let entries = self
            .client
            .issue_cmd(SeLog("performance"))
            .await
            .expect("chromedriver's performance log");
        let mut events = Vec::new();
        for entry in entries.as_array().expect("log entries") {
            let message = entry["message"].as_str().expect("a log message");
            let event: Value = serde_json::from_str(message).expect("a DevTools event");
            let method = event["message"]["method"].as_str().unwrap_or_default();
            events.push((method.to_owned(), event["message"]["params"].clone()));
        }
        events
    }

    /// What the page did, for a failure message: the console and each
    /// request with its answer or failure (this is how Chromium's
    /// `ERR_NETWORK_CHANGED`, when Docker adds an interface, was found).
    async fn diagnosis(&self) -> String {
        let mut lines = Vec::new();
        if let Ok(console) = self.client.issue_cmd(SeLog("browser")).await {
            for entry in console.as_array().into_iter().flatten() {
                lines.push(format!("console {}: {}", entry["level"], entry["message"]));
            }
        }
        for (method, params) in self.network_events().await {
            let line = match method.as_str() {
                "Network.requestWillBeSent" => format!(
                    "request {} {} {}",
                    params["requestId"], params["request"]["method"], params["request"]["url"]
                ),
                "Network.responseReceived" => format!(
                    "response {} {}",
                    params["requestId"], params["response"]["status"]
                ),
                "Network.loadingFailed" => {
                    format!("failed {} {}", params["requestId"], params["errorText"])
                }
                _ => continue,
            };
            lines.push(line);
        }
        lines.join("\n")
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` until it returns something truthy, and returns that.
    pub async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        script: &str,
        args: Vec<Value>,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let value = self
                .client
                .execute(script, args.clone())
                .await
                .unwrap_or(Value::Null);
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() > deadline {
                self.shot("TIMEOUT").await;
                let page = self
                    .js("return document.body.innerText", vec![])
                    .await
                    .to_string();
                let diagnosis = self.diagnosis().await;
                panic!(
                    "timed out after {limit:?} waiting for {what}; page text:\n{page}\nwhat the page did:\n{diagnosis}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn text(&self, selector: &str) -> String {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : null;",
            vec![json!(selector)],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Clicks `selector` as a user would (scrolled to the middle of the view first).
    pub async fn click(&self, selector: &str) {
        self.js(
            "document.querySelector(arguments[0]).scrollIntoView({block: 'center'});",
            vec![json!(selector)],
        )
        .await;
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no {selector}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {selector}: {e}"));
    }

    /// Replaces the value of the input `selector` by typing `text`.
    pub async fn type_into(&self, selector: &str, text: &str) {
        let input = self
            .client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no {selector}: {e}"));
        input.clear().await.expect("clear");
        input.send_keys(text).await.expect("type");
    }

    /// Saves a screenshot as `target/ui-screenshots/<test>-<name>.png`.
    pub async fn shot(&self, name: &str) {
        match self.client.screenshot().await {
            Ok(png) => {
                let path = self.shots.join(format!("{}-{name}.png", self.name));
                std::fs::write(&path, png).expect("screenshot written");
                eprintln!("screenshot: {}", path.display());
            }
            Err(error) => eprintln!("no screenshot {name}: {error}"),
        }
    }

    /// Starts recording page errors, CSP violations and each lease card's
    /// statuses, and marks the page so a reload would be noticed.
    pub async fn watch_page(&self) {
        self.js(
            r#"
            window.__errors = [];
            window.addEventListener('error', (e) => __errors.push(`error: ${e.message}`));
            window.addEventListener('unhandledrejection', (e) => __errors.push(`rejection: ${e.reason}`));
            document.addEventListener('securitypolicyviolation',
                (e) => __errors.push(`CSP: ${e.violatedDirective} ${e.blockedURI}`));
            window.__seen = {};
            const record = () => {
                for (const li of document.querySelectorAll('#lease-list > li')) {
                    const seen = (__seen[li.dataset.id] ||= []);
                    if (seen[seen.length - 1] !== li.dataset.status) seen.push(li.dataset.status);
                }
            };
            new MutationObserver(record).observe(document.getElementById('lease-list'),
                { subtree: true, childList: true, attributes: true, attributeFilter: ['data-status'] });
            record();
            window.__live = [];
            const live = document.getElementById('live');
            new MutationObserver(() => __live.push(`${performance.now() | 0} ${live.dataset.state}`))
                .observe(live, { attributes: true, attributeFilter: ['data-state'] });
            window.__notReloaded = true;
            "#,
            vec![],
        )
        .await;
    }

    /// Fails if the page logged an error or was reloaded since `watch_page`.
    pub async fn assert_page_healthy(&self) {
        let state = self
            .js(
                "return { errors: window.__errors ?? null, same: window.__notReloaded === true,
                          live: window.__live };",
                vec![],
            )
            .await;
        eprintln!("event stream states seen: {}", state["live"]);
        assert_eq!(state["same"], json!(true), "the page was reloaded");
        assert_eq!(state["errors"], json!([]), "errors in the page");
    }

    /// Ids of the lease cards shown.
    pub async fn lease_ids(&self) -> Vec<String> {
        let ids = self
            .js(
                "return [...document.querySelectorAll('#lease-list > li')].map((li) => li.dataset.id);",
                vec![],
            )
            .await;
        serde_json::from_value(ids).unwrap_or_default()
    }

    /// Rents `offering` for `minutes` through the form; returns the new lease id.
    pub async fn rent(&self, offering: &str, minutes: &str) -> String {
        let before = self.lease_ids().await;
        self.client
            .find(Locator::Css("#offering"))
            .await
            .expect("offering picker")
            .select_by_value(offering)
            .await
            .expect("offering chosen");
        // Typed, then Enter: the form works from the keyboard.
        self.type_into("#minutes", &format!("{minutes}\u{e007}"))
            .await;
        let id = self
            .wait_for(
                &format!("a new {offering} lease card"),
                Duration::from_secs(10),
                "return [...document.querySelectorAll('#lease-list > li')]
                    .map((li) => li.dataset.id).find((id) => !arguments[0].includes(id)) ?? null;",
                vec![json!(before)],
            )
            .await;
        id.as_str().expect("lease id").to_owned()
    }

    /// Opens `url` and signs in with `token` through the sign-in form;
    /// returns once the portal shows `owner`, live.
    pub async fn sign_in_with_token(&self, url: &str, token: &str, owner: &str) {
        self.client.goto(url).await.expect("page loads");
        self.wait_for(
            "the sign-in form",
            Duration::from_secs(15),
            "return !document.getElementById('signin').hidden;",
            vec![],
        )
        .await;
        self.type_into("#token-input", token).await;
        self.click("#signin-submit").await;
        self.wait_for(
            &format!("the portal as {owner}, live"),
            Duration::from_secs(15),
            "return !document.getElementById('app').hidden
                && document.getElementById('who').textContent.startsWith('Signed in as ' + arguments[0])
                && document.getElementById('live').dataset.state === 'live';",
            vec![json!(owner)],
        )
        .await;
    }

    pub async fn wait_status(&self, id: &str, status: &str, limit: Duration) {
        self.wait_for(
            &format!("lease {id} to be {status}"),
            limit,
            "const li = document.querySelector(`li[data-id='${arguments[0]}']`);
             return li?.dataset.status === arguments[1];",
            vec![json!(id), json!(status)],
        )
        .await;
    }

    pub async fn wait_gone(&self, id: &str) {
        self.wait_for(
            &format!("lease {id}'s card to go"),
            Duration::from_secs(20),
            "return !document.querySelector(`li[data-id='${arguments[0]}']`);",
            vec![json!(id)],
        )
        .await;
    }
}

/// One test at a time in a browser test binary, from before its first
/// container to after its namespace's clean-up: a container coming up or
/// going adds or removes a network interface (and a namespace's first
/// lease adds a bridge network with an address), and Chromium then fails the
/// requests waiting for a connection (`ERR_NETWORK_CHANGED`), loopback
/// included. The page retries reads, but a write it must not repeat would
/// fail the test. A lock around the page alone was not enough: another
/// test's set-up (a lease provisioned through the API) or its
/// `NamespaceGuard` sweeping after the page closed still changed the
/// interfaces under a page (seen in CI, on a `POST /api/provision`).
static ONE_TEST_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A test's turn with the browser and the engine (see
/// [`ONE_TEST_AT_A_TIME`]). Take it on the test's first line, before its
/// `NamespaceGuard`, so that it is dropped after the guard's sweep (locals
/// drop in reverse order).
pub struct PageTurn {
    _held: tokio::sync::MutexGuard<'static, ()>,
}

/// Waits for this test's turn (see [`PageTurn`]).
pub async fn page_turn() -> PageTurn {
    PageTurn {
        _held: ONE_TEST_AT_A_TIME.lock().await,
    }
}

/// Runs `body` during the test's `turn`; on failure saves a screenshot
/// first. Always closes the browser.
pub async fn with_browser<F>(_turn: &PageTurn, browser: Browser, body: F)
where
    F: for<'a> AsyncFnOnce(&'a Browser),
{
    let outcome = AssertUnwindSafe(body(&browser)).catch_unwind().await;
    if outcome.is_err() {
        browser.shot("FAILED").await;
    }
    browser.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
