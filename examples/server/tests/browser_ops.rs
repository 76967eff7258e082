//! The Operations view (issue 19) in a real headless Chromium against the
//! real `lease-server`, real Docker and the local test image: an admin sees
//! two owners' spend with totals equal, to the nano-dollar, to what
//! `/api/usage?owner=X` says; the charts draw one point per day of the
//! window (7 or 30); a lease rented meanwhile shows up without a reload
//! (the event stream); an owner who is not an admin never sees the view,
//! the page never asks for its figures, and the API answers 403.
//!
//! Own namespace, port and profile; the guards stop everything and remove
//! the namespace's containers even on failure. Without Docker, the test
//! image, Chromium or chromedriver it prints SKIPPED (`CI=true`: fails).

mod common;

use std::time::{Duration, Instant};

use lease_core::Money;
use serde_json::{Value, json};

use common::browser::{Browser, page_turn, prerequisites, with_browser};
use lease_testkit::TempDir;
use lease_testkit::docker::NamespaceGuard;
use lease_testkit::server::{Server, ServerConfig, mint_token};

/// The API as one caller (a bearer token) sees it.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(server: &Server, token: &str) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: server.url().trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    /// `method path` with `body` (JSON) if any: the status and the JSON answer.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let value = response.json().await.unwrap_or(Value::Null);
        (status, value)
    }

    async fn get(&self, path: &str) -> Value {
        let (status, value) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {value}");
        value
    }

    /// Rents `offering` for `minutes`: the lease's JSON.
    async fn rent(&self, offering: &str, minutes: u32) -> Value {
        let body = json!({ "imageType": offering, "durationMinutes": minutes });
        let (status, lease) = self
            .call(reqwest::Method::POST, "/api/provision", Some(body))
            .await;
        assert!(
            status == 200 || status == 201 || status == 202,
            "provision: {status} {lease}"
        );
        lease
    }

    /// Waits (60 s at most) until lease `id` is `status`.
    async fn wait_status(&self, id: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let lease = self.get(&format!("/api/containers/{id}/status")).await;
            if lease["status"] == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "lease {id} never {status}: {lease}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Deletes lease `id` and waits (30 s at most) until it has ended: gone
    /// from the caller's active leases (moved into history, where
    /// `/status` still finds it).
    async fn finish(&self, id: &str) {
        let path = format!("/api/containers/{id}");
        let (status, answer) = self.call(reqwest::Method::DELETE, &path, None).await;
        assert!(status < 300, "delete {id}: {status} {answer}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let active = self.get("/api/containers").await;
            let listed = active["containers"]
                .as_array()
                .is_some_and(|all| all.iter().any(|lease| lease["id"] == id));
            if !listed {
                return;
            }
            assert!(Instant::now() < deadline, "lease {id} never ended");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// An amount of the API (a JSON number or decimal string) as exact money.
fn money(value: &Value) -> Money {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("not money: {value}: {e}"))
}

/// A server with tokens for `root` (admin), `ada` and `bob`; their tokens.
fn start_server(guard: &NamespaceGuard, dir: &TempDir) -> (Server, [String; 3]) {
    let binary = env!("CARGO_BIN_EXE_lease-server");
    let root = mint_token(binary.as_ref(), "root", true);
    let ada = mint_token(binary.as_ref(), "ada", false);
    let bob = mint_token(binary.as_ref(), "bob", false);
    let tokens_file = dir.path().join("tokens.toml");
    let entries = [&root, &ada, &bob]
        .map(|m| m.toml_entry.as_str())
        .join("\n");
    std::fs::write(&tokens_file, entries).expect("tokens file");
    let config = ServerConfig::new(guard.namespace())
        .binary(binary)
        .catalog(lease_testkit::local_catalog())
        .store("memory")
        .sweep_interval("5s")
        .ready_path("/healthz")
        .ready_within(Duration::from_secs(30))
        .args(["--tokens".to_owned(), tokens_file.display().to_string()]);
    let server = Server::start(config).expect("cargo builds the binary of this crate's tests");
    (server, [root.token, ada.token, bob.token])
}

/// The exact nano-dollars the owners table shows for `owner`'s `field`.
async fn owner_nanos(b: &Browser, owner: &str, field: &str) -> i64 {
    let text = b
        .js(
            "const row = document.querySelector(`#ops-owners tr[data-owner='${arguments[0]}']`);
             return row?.querySelector(`td[data-field='${arguments[1]}']`)?.dataset.nanos ?? null;",
            vec![json!(owner), json!(field)],
        )
        .await;
    text.as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no {field} for {owner} in the owners table: {text}"))
}

/// Waits until the view shows a window of `days` days, drawn.
async fn wait_window(b: &Browser, days: usize) {
    b.wait_for(
        &format!("the operations view over {days} days"),
        Duration::from_secs(15),
        "const ops = document.getElementById('ops');
         return !ops.hidden && ops.dataset.days === String(arguments[0])
             && ops.getAttribute('aria-busy') === 'false';",
        vec![json!(days)],
    )
    .await;
}

/// The `data-days` of the window buttons shown pressed.
async fn pressed_window(b: &Browser) -> Value {
    b.js(
        "return [...document.querySelectorAll('.ops-window[aria-pressed=\"true\"]')].map((e) => e.dataset.days);",
        vec![],
    )
    .await
}

/// How many points of `series` the chart `figure` draws.
async fn points(b: &Browser, figure: &str, series: &str) -> u64 {
    b.js(
        "return document.querySelectorAll(`#${arguments[0]} .point[data-series='${arguments[1]}']`).length;",
        vec![json!(figure), json!(series)],
    )
    .await
    .as_u64()
    .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_view_shows_admins_the_spend_and_hides_from_owners() {
    let Some(tools) = prerequisites() else {
        return;
    };
    let turn = page_turn().await;
    let guard = NamespaceGuard::random();
    let dir = TempDir::new("lease-browser-ops");
    let (server, [root_token, ada_token, bob_token]) = start_server(&guard, &dir);
    let url = server.url();
    let root = Api::new(&server, &root_token);
    let ada = Api::new(&server, &ada_token);
    let bob = Api::new(&server, &bob_token);

    // Only admins: an owner is refused (403), nobody at all is 401.
    let (status, refusal) = ada
        .call(reqwest::Method::GET, "/api/admin/stats?days=7", None)
        .await;
    assert_eq!(status, 403, "{refusal}");
    assert_eq!(refusal["error"]["code"], "forbidden");
    let anonymous = Api::new(&server, "");
    let (status, _) = anonymous
        .call(reqwest::Method::GET, "/api/admin/stats", None)
        .await;
    assert_eq!(status, 401);

    // Two owners rent and end leases: one for ada, two for bob.
    let leases = [
        (&ada, ada.rent("busybox", 10).await),
        (&bob, bob.rent("busybox", 20).await),
        (&bob, bob.rent("alpine", 30).await),
    ];
    for (api, lease) in &leases {
        api.wait_status(lease["id"].as_str().expect("id"), "running")
            .await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await; // some cost accrues
    for (api, lease) in &leases {
        api.finish(lease["id"].as_str().expect("id")).await;
    }
    let ended = |usage: &Value| {
        assert_eq!(usage["activeLeases"], 0, "{usage}");
        money(&usage["endedCost"]).nanos()
    };
    let ada_spent = ended(&root.get("/api/usage?owner=ada").await);
    let bob_spent = ended(&root.get("/api/usage?owner=bob").await);
    assert!(ada_spent > 0 && bob_spent > 0, "{ada_spent} {bob_spent}");

    let browser = Browser::launch(&tools, "operations").await;
    with_browser(&turn, browser, async |b| {
        b.sign_in_with_token(&url, &root_token, "root").await;
        b.watch_page().await;
        assert_eq!(
            b.js("return document.getElementById('views').hidden;", vec![])
                .await,
            json!(false),
            "an admin has the view switch"
        );
        b.click("#view-ops").await;
        wait_window(b, 30).await;
        b.wait_for(
            "both owners in the table",
            Duration::from_secs(10),
            "return document.querySelectorAll('#ops-owners tbody tr').length === 2;",
            vec![],
        )
        .await;
        b.shot("01-operations-30-days").await;

        // Each owner's spend is exactly what /api/usage says; the totals add up.
        assert_eq!(owner_nanos(b, "ada", "accrued").await, ada_spent);
        assert_eq!(owner_nanos(b, "bob", "accrued").await, bob_spent);
        // Ended leases are booked at their final cost.
        assert_eq!(owner_nanos(b, "ada", "booked").await, ada_spent);
        let total = b
            .js(
                "return document.getElementById('ops-accrued').dataset.nanos;",
                vec![],
            )
            .await;
        assert_eq!(total, json!((ada_spent + bob_spent).to_string()));
        // Sorted by accrued, largest first.
        let order = b
            .js(
                "return [...document.querySelectorAll('#ops-owners tbody tr')].map((r) => r.dataset.owner);",
                vec![],
            )
            .await;
        let expected = if bob_spent >= ada_spent { ["bob", "ada"] } else { ["ada", "bob"] };
        assert_eq!(order, json!(expected));
        assert_eq!(b.text("#ops-provisions").await, "3");

        // 30 days: 30 points per series; 7 days: 7, and 7 table rows.
        assert_eq!(points(b, "ops-spend", "accrued").await, 30);
        assert_eq!(pressed_window(b).await, json!(["30"]));
        let minutes = b
            .js("return document.getElementById('minutes').value;", vec![])
            .await;
        b.click(".ops-window[data-days='7']").await;
        wait_window(b, 7).await;
        // The window buttons are not the rent form's duration chips.
        assert_eq!(pressed_window(b).await, json!(["7"]));
        let after = b
            .js("return document.getElementById('minutes').value;", vec![])
            .await;
        assert_eq!(after, minutes, "the window button changed the duration");
        assert_eq!(points(b, "ops-spend", "accrued").await, 7);
        assert_eq!(points(b, "ops-spend", "booked").await, 7);
        assert_eq!(points(b, "ops-leases", "provisions").await, 7);
        let rows = b
            .js(
                "return document.querySelectorAll('#ops-spend .chart-table tbody tr').length;",
                vec![],
            )
            .await;
        assert_eq!(rows, json!(7));
        // Today's point (the last) holds every lease, exactly, on focus too.
        let today = b
            .js(
                "const all = document.querySelectorAll('#ops-spend .point[data-series=\"accrued\"]');
                 const last = all[all.length - 1];
                 last.focus();
                 return { label: last.getAttribute('aria-label'),
                          readout: document.querySelector('#ops-spend .chart-readout').textContent,
                          focused: document.activeElement === last };",
                vec![],
            )
            .await;
        let exact = format!("${}", Money::from_nanos(ada_spent + bob_spent));
        let label = today["label"].as_str().unwrap_or_default();
        assert!(
            label.contains(exact.trim_end_matches('0')),
            "{label} vs {exact}"
        );
        assert_eq!(today["readout"], today["label"]);
        assert_eq!(today["focused"], json!(true));
        let provisions_today = b
            .js(
                "const all = document.querySelectorAll('#ops-leases .point[data-series=\"provisions\"]');
                 return all[all.length - 1].getAttribute('aria-label');",
                vec![],
            )
            .await;
        assert!(
            provisions_today.as_str().unwrap_or_default().ends_with(": 3 provisions"),
            "{provisions_today}"
        );
        b.shot("02-operations-7-days").await;

        // Live: a lease rented meanwhile shows up without a reload.
        let live = bob.rent("busybox", 15).await;
        b.wait_for(
            "the new lease among the active ones",
            Duration::from_secs(20),
            "return document.getElementById('ops-active').textContent === '1'
                && document.getElementById('ops-provisions').textContent === '4';",
            vec![],
        )
        .await;
        let booked = money(&live["cost"]).nanos();
        b.wait_for(
            "bob's booking with the new lease",
            Duration::from_secs(10),
            "const row = document.querySelector(`#ops-owners tr[data-owner='bob']`);
             return row?.querySelector(`td[data-field='booked']`)?.dataset.nanos === arguments[0];",
            vec![json!((bob_spent + booked).to_string())],
        )
        .await;
        b.assert_page_healthy().await;
        b.shot("03-operations-live").await;
        bob.finish(live["id"].as_str().expect("id")).await;

        // An owner who is not an admin: no view switch, no view, even when
        // the address asks for it, and the page never asks for the figures.
        b.click("#signout").await;
        b.request_urls().await;
        let ops_url = format!("{url}#operations");
        b.sign_in_with_token(&ops_url, &ada_token, "ada").await;
        let hidden = b
            .js(
                "return [document.getElementById('views').hidden, document.getElementById('ops').hidden,
                         document.getElementById('portal-view').hidden];",
                vec![],
            )
            .await;
        assert_eq!(hidden, json!([true, true, false]));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let asked = b.request_urls().await;
        assert!(
            !asked.iter().any(|u| u.contains("/api/admin/")),
            "a non-admin page asked for admin figures: {asked:?}"
        );
        b.shot("04-owner-no-operations").await;
    })
    .await;
}
