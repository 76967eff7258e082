//! Scenarios 3 and 4 — the services the server depends on fail under it.
//!
//! 3. **Docker engine unreachable** for a while: the server reaches the
//!    engine through a proxy of the test's own ([`DockerProxy`]), which is
//!    cut (the machine's daemon is never touched). Provisions meanwhile end
//!    in `error` with a clear message; leases that expire meanwhile stay
//!    live (not dropped) and are reaped once the engine is back; nothing
//!    leaks.
//! 4. **Redis restarted under load** (a private redis-server with AOF
//!    `appendfsync always`): while it is down the API answers 503 with the
//!    JSON error shape; the same server process recovers by itself; every
//!    provision acknowledged with 202 is still found afterwards; nothing
//!    leaks; `/readyz` answers 503 while it is down.
//!    **4 on PostgreSQL** (issue 20): the same load while a private
//!    PostgreSQL cluster's postmaster is killed with `kill -9` and restarted
//!    (crash recovery from its WAL): the same promises, figures
//!    `scenario4.postgres.*`.
//!
//! All end with THE CHECK and then delete everything and check Docker is
//! empty for the namespace.

// Test code: a panic is how a check reports failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lease_reliability::api::{Api, Response, lease_id, lease_status};
use lease_reliability::check::{assert_consistent, delete_all_and_assert_empty};
use lease_reliability::docker::{self, NamespaceGuard};
use lease_reliability::postgres::PrivatePostgres;
use lease_reliability::proxy::{DockerProxy, engine_socket};
use lease_reliability::redis::{Persistence, PrivateRedis};
use lease_reliability::server::{self, Server, ServerApi};
use lease_reliability::{Scale, figure, random_namespace, skip_or_fail, wait_for};
use serde_json::Value;

/// The offering used (offline catalog, the busybox test image).
const OFFERING: &str = "busybox";

/// Whether `body` is `{"error":{"code":…,"message":…}}`.
fn is_error_shape(body: &Value) -> bool {
    body.pointer("/error/code").is_some_and(Value::is_string)
        && body.pointer("/error/message").is_some_and(Value::is_string)
}

/// Polls one lease until `done` holds; panics with the last answer after `limit`.
fn poll_lease(api: &Api, id: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let found = wait_for(limit, Duration::from_millis(200), || {
        let response = api.status(id).ok()?;
        if response.status != 200 {
            last = response.body;
            return None;
        }
        last = response.body.clone();
        done(&response.body).then_some(response.body)
    });
    found.unwrap_or_else(|| panic!("lease {id}: gave up after {limit:?}; last answer {last}"))
}

fn provision_ok(api: &Api, minutes: u32) -> String {
    let response = api
        .provision(OFFERING, minutes)
        .expect("POST /api/provision");
    assert_eq!(response.status, 202, "provision: {}", response.body);
    lease_id(&response.body).expect("the lease id")
}

// ---------------------------------------------------------------------------
// Scenario 3.

#[test]
fn docker_unreachable_provisions_fail_clearly_and_expired_leases_are_reaped_once_back() {
    const TEST: &str = "docker_unreachable";
    if !docker::docker_ready() {
        return;
    }
    let Some(engine) = engine_socket() else {
        skip_or_fail("DOCKER_HOST is not a unix socket; the proxy cannot stand in front of it");
        return;
    };
    let scale = Scale::from_env();
    let before_cut: usize = scale.pick(4, 20);
    let during_cut: usize = scale.pick(4, 20);
    let namespace = random_namespace();
    let _guard = NamespaceGuard::new(&namespace);
    let proxy = DockerProxy::start(&engine).expect("start the Docker proxy");
    let config = server::config(&namespace)
        .sweep_interval("2s")
        .env("DOCKER_HOST", proxy.host());
    let Some(server) = Server::start(config) else {
        return;
    };
    let api = server.api().with_timeout(Duration::from_secs(20));

    // 1-minute leases (the minimum), running before the engine goes away.
    let expiring: Vec<String> = (0..before_cut).map(|_| provision_ok(&api, 1)).collect();
    let mut latest_expiry = String::new();
    for id in &expiring {
        let lease = poll_lease(&api, id, Duration::from_secs(60), |l| {
            lease_status(l) == "running"
        });
        let expiry = lease["expiryAt"].as_str().unwrap_or_default().to_owned();
        latest_expiry = latest_expiry.max(expiry);
    }
    let running_containers = docker::containers_of(&namespace).len();
    assert_eq!(
        running_containers, before_cut,
        "one container per running lease"
    );

    // The engine becomes unreachable.
    proxy.cut();
    let cut_at = Instant::now();
    eprintln!(
        "{TEST}: {before_cut} running 1-minute leases; engine cut (latest expiry {latest_expiry})"
    );

    // Provisions meanwhile are accepted (the store is fine) and end in
    // `error` with a message that says what is wrong.
    let failing: Vec<String> = (0..during_cut).map(|_| provision_ok(&api, 1)).collect();
    let mut messages = BTreeMap::new();
    for id in &failing {
        let lease = poll_lease(&api, id, Duration::from_secs(60), |l| {
            matches!(lease_status(l), "error" | "running")
        });
        assert_eq!(
            lease_status(&lease),
            "error",
            "provisioned with the engine cut: {lease}"
        );
        let message = lease["error"].as_str().unwrap_or_default().to_owned();
        let lowered = message.to_lowercase();
        assert!(
            [
                "docker",
                "engine",
                "runtime",
                "connect",
                "unreachable",
                "unavailable"
            ]
            .iter()
            .any(|word| lowered.contains(word)),
            "the error of {id} does not say the engine is unreachable: {message:?}"
        );
        *messages.entry(message).or_insert(0_usize) += 1;
    }
    eprintln!(
        "{TEST}: {during_cut} provisions with the engine cut ended in `error` within {:.1?}: {messages:?}",
        cut_at.elapsed()
    );
    figure("scenario3.running_leases_at_cut", before_cut);
    figure("scenario3.provisions_during_cut", during_cut);
    figure(
        "scenario3.provisions_ended_error_clearly",
        messages.values().sum::<usize>(),
    );
    figure(
        "scenario3.all_errors_within_ms",
        cut_at.elapsed().as_millis(),
    );

    // The API keeps answering.
    let listed = api.list().expect("GET /api/containers with the engine cut");
    assert_eq!(
        listed.len(),
        before_cut + during_cut,
        "live leases: {listed:?}"
    );

    // Wait until every 1-minute lease has expired and the reaper has failed
    // on it a few sweeps: they stay live, their containers are still there.
    let expired_wait = wait_for(Duration::from_secs(120), Duration::from_millis(500), || {
        let leases = api.list().ok()?;
        let all_expired = leases
            .iter()
            .filter(|l| expiring.contains(&lease_id(l).unwrap_or_default()))
            .all(|l| l["expiresIn"].as_i64() == Some(0));
        all_expired.then_some(())
    });
    assert!(expired_wait.is_some(), "the 1-minute leases did not expire");
    std::thread::sleep(Duration::from_secs(6));
    let leases = api.list().expect("GET /api/containers");
    let mut stuck_statuses = BTreeMap::new();
    let mut removal_errors = BTreeMap::new();
    for id in &expiring {
        let lease = leases
            .iter()
            .find(|l| lease_id(l).ok().as_deref() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("expired lease {id} left the active set while its removal cannot have succeeded: {leases:?}"));
        *stuck_statuses
            .entry(lease_status(lease).to_owned())
            .or_insert(0_usize) += 1;
        if let Some(error) = lease["error"].as_str() {
            *removal_errors.entry(error.to_owned()).or_insert(0_usize) += 1;
        }
    }
    let still_there = docker::containers_of(&namespace).len();
    assert_eq!(
        still_there, before_cut,
        "the containers cannot have been removed"
    );
    eprintln!(
        "{TEST}: {:.0?} into the outage, the expired leases are still live: {stuck_statuses:?}; their errors {removal_errors:?}; proxy refused/cut {} connection(s)",
        cut_at.elapsed(),
        proxy.killed()
    );
    figure(
        "scenario3.expired_kept_live_during_outage",
        stuck_statuses.values().sum::<usize>(),
    );
    figure("scenario3.outage_s", cut_at.elapsed().as_secs());

    // The engine comes back: the reaper finishes every expired lease.
    proxy.restore();
    let restored_at = Instant::now();
    let reaped = wait_for(Duration::from_secs(60), Duration::from_millis(200), || {
        let live = api.list().ok()?;
        let none_live = !live
            .iter()
            .any(|l| expiring.contains(&lease_id(l).unwrap_or_default()));
        (none_live && docker::containers_of(&namespace).is_empty()).then_some(restored_at.elapsed())
    });
    let reaped_after = reaped.unwrap_or_else(|| {
        panic!(
            "expired leases not reaped 60 s after the engine came back: live {:?}, containers {:?}",
            api.list(),
            docker::containers_of(&namespace)
        )
    });
    eprintln!(
        "{TEST}: engine back; every expired lease reaped and its container gone {reaped_after:.1?} later"
    );
    figure(
        "scenario3.reaped_after_restore_ms",
        reaped_after.as_millis(),
    );
    for id in &expiring {
        let lease = poll_lease(&api, id, Duration::from_secs(10), |_| true);
        assert_eq!(
            lease_status(&lease),
            "deleted",
            "expired lease after the outage: {lease}"
        );
        assert_eq!(lease["endReason"].as_str(), Some("expired"), "{lease}");
    }

    // A provision works again.
    let fresh = provision_ok(&api, 1);
    poll_lease(&api, &fresh, Duration::from_secs(60), |l| {
        lease_status(l) == "running"
    });

    let look = assert_consistent(&api, &namespace, Duration::from_secs(60));
    eprintln!("{TEST}: THE CHECK: {look}");
    look.figures("scenario3");
    delete_all_and_assert_empty(&api, &namespace, Duration::from_secs(60));
}

// ---------------------------------------------------------------------------
// Scenario 4.

/// What the load saw.
#[derive(Default)]
struct LoadLog {
    /// Provision ids answered 202.
    acknowledged: Vec<String>,
    /// Status counts, by phase (`before`, `down`, `after`) and status code.
    statuses: BTreeMap<(&'static str, u16), usize>,
    /// 5xx answers: (phase, status, body).
    server_errors: Vec<(&'static str, u16, Value)>,
    /// Transport errors (no answer), by phase.
    transport_errors: Vec<(&'static str, String)>,
    /// The first 202 after the latest restart, counted from the restart.
    first_ack_after_restart: Option<Duration>,
    /// The slowest answer, by phase.
    slowest: BTreeMap<&'static str, Duration>,
}

/// The phase of the Redis outage the load is in.
#[derive(Default)]
struct Phase {
    name: Mutex<&'static str>,
    restarted_at: Mutex<Option<Instant>>,
}

impl Phase {
    fn get(&self) -> &'static str {
        *self.name.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, name: &'static str) {
        *self.name.lock().unwrap_or_else(|p| p.into_inner()) = name;
        if name == "after" {
            *self.restarted_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
    }

    fn since_restart(&self) -> Option<Duration> {
        self.restarted_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|at| at.elapsed())
    }
}

fn note(
    log: &Mutex<LoadLog>,
    phase: &Phase,
    call: impl FnOnce() -> Result<Response, lease_reliability::api::ApiError>,
) -> Option<Response> {
    let started = Instant::now();
    let answer = call();
    let took = started.elapsed();
    let name = phase.get();
    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
    let slowest = log.slowest.entry(name).or_default();
    *slowest = (*slowest).max(took);
    match answer {
        Ok(response) => {
            *log.statuses.entry((name, response.status)).or_insert(0) += 1;
            if response.status >= 500 {
                log.server_errors
                    .push((name, response.status, response.body.clone()));
            }
            Some(response)
        }
        Err(error) => {
            log.transport_errors.push((name, error.to_string()));
            None
        }
    }
}

/// A store's service that scenario 4 crashes and restarts under load.
trait StoreService {
    /// `redis`, `postgres`.
    fn name(&self) -> &'static str;
    /// The server's `--store`.
    fn url(&self) -> String;
    /// Gone at once, connections cut.
    fn crash(&mut self);
    /// Back on the same port with the same data.
    fn restart(&mut self);
}

impl StoreService for PrivateRedis {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn url(&self) -> String {
        PrivateRedis::url(self)
    }

    fn crash(&mut self) {
        PrivateRedis::crash(self);
    }

    fn restart(&mut self) {
        PrivateRedis::restart(self);
    }
}

impl StoreService for PrivatePostgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn url(&self) -> String {
        PrivatePostgres::url(self)
    }

    /// `kill -9` of the postmaster.
    fn crash(&mut self) {
        self.kill9();
    }

    fn restart(&mut self) {
        PrivatePostgres::restart(self);
    }
}

#[test]
fn redis_restart_under_load_answers_503_recovers_and_loses_no_acknowledged_lease() {
    const TEST: &str = "redis_restart";
    if !docker::docker_ready() {
        return;
    }
    let Some(mut redis) = PrivateRedis::start(TEST, Persistence::AofAlways) else {
        return;
    };
    restart_under_load(TEST, &mut redis, "scenario4");
}

/// Scenario 4 on PostgreSQL (issue 20): the postmaster killed with
/// `kill -9` and restarted (crash recovery from its WAL) under load.
#[test]
fn postgres_kill9_under_load_answers_503_recovers_and_loses_no_acknowledged_lease() {
    const TEST: &str = "postgres_kill9";
    if !docker::docker_ready() {
        return;
    }
    let Some(mut postgres) = PrivatePostgres::start(TEST) else {
        return;
    };
    restart_under_load(TEST, &mut postgres, "scenario4.postgres");
}

/// Scenario 4's body: load on one server while `service` is crashed and
/// restarted; figures `<prefix>.<what>`.
fn restart_under_load(test: &str, service: &mut dyn StoreService, prefix: &str) {
    let scale = Scale::from_env();
    let restarts: usize = scale.pick(1, 3);
    let provision_every = Duration::from_millis(scale.pick(300, 150));
    let readers: usize = scale.pick(2, 6);
    let namespace = random_namespace();
    let _guard = NamespaceGuard::new(&namespace);
    let config = server::config(&namespace)
        .store(service.url())
        .sweep_interval("2s")
        .args(["--stuck-pending-after", "5s", "--reconcile-interval", "3s"]);
    let Some(mut server) = Server::start(config) else {
        return;
    };
    let pid = server.pid().expect("running");
    let api = server.api().with_timeout(Duration::from_secs(20));

    let log = Arc::new(Mutex::new(LoadLog::default()));
    let phase = Arc::new(Phase::default());
    phase.set("before");
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    // One provisioner (30-minute leases, one every `provision_every`).
    {
        let (api, log, phase, stop) = (api.clone(), log.clone(), phase.clone(), stop.clone());
        load.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Some(response) = note(&log, &phase, || api.provision(OFFERING, 30))
                    && response.status == 202
                {
                    let id = lease_id(&response.body).expect("the lease id");
                    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                    log.acknowledged.push(id);
                    if log.first_ack_after_restart.is_none()
                        && let Some(since) = phase.since_restart()
                    {
                        log.first_ack_after_restart = Some(since);
                    }
                }
                std::thread::sleep(provision_every);
            }
        }));
    }
    // Readers: the list, and one acknowledged lease.
    for reader in 0..readers {
        let (api, log, phase, stop) = (api.clone(), log.clone(), phase.clone(), stop.clone());
        load.push(std::thread::spawn(move || {
            let mut round = reader;
            while !stop.load(Ordering::SeqCst) {
                round += 1;
                let known = {
                    let log = log.lock().unwrap_or_else(|p| p.into_inner());
                    (!log.acknowledged.is_empty())
                        .then(|| log.acknowledged[round % log.acknowledged.len()].clone())
                };
                note(&log, &phase, || match known {
                    Some(id) if round % 2 == 0 => api.status(&id),
                    _ => api.request("GET", "/api/containers", None),
                });
                std::thread::sleep(Duration::from_millis(50));
            }
        }));
    }

    let mut outages = Vec::new();
    let mut readyz_while_down = Vec::new();
    let mut recoveries = Vec::new();
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..restarts {
        phase.set("down");
        service.crash();
        let down_at = Instant::now();
        std::thread::sleep(Duration::from_millis(1500));
        let ready = api.request("GET", "/readyz", None);
        readyz_while_down.push(ready.map(|r| r.status).map_err(|e| e.to_string()));
        std::thread::sleep(Duration::from_millis(1500));
        service.restart();
        phase.set("after");
        outages.push(down_at.elapsed());
        // Recovers by itself: a provision is acknowledged again.
        let recovered = wait_for(Duration::from_secs(30), Duration::from_millis(100), || {
            log.lock()
                .unwrap_or_else(|p| p.into_inner())
                .first_ack_after_restart
        });
        let recovered = recovered.unwrap_or_else(|| {
            panic!(
                "no provision acknowledged within 30 s of the store's restart:\n{}",
                server.log_text()
            )
        });
        eprintln!(
            "{test}: store down {:.1?}; first 202 {recovered:.1?} after it was back",
            down_at.elapsed()
        );
        recoveries.push(recovered);
        std::thread::sleep(Duration::from_secs(2));
        log.lock()
            .unwrap_or_else(|p| p.into_inner())
            .first_ack_after_restart = None;
        phase.set("before");
    }
    stop.store(true, Ordering::SeqCst);
    for thread in load {
        thread.join().expect("a load thread");
    }
    assert!(
        server.is_running(),
        "the server died:\n{}",
        server.log_text()
    );
    assert_eq!(server.pid(), Some(pid), "the same process must recover");

    let log = Arc::try_unwrap(log)
        .ok()
        .expect("load threads are done")
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    let mut codes = BTreeMap::new();
    for (_, _, body) in &log.server_errors {
        let code = body
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        *codes.entry(code).or_insert(0_usize) += 1;
    }
    eprintln!(
        "{test}: {restarts} restart(s); answers by (phase, status) {:?}; slowest answer by phase {:?}; 5xx error codes {codes:?}; transport errors {}; acknowledged provisions {}",
        log.statuses,
        log.slowest,
        log.transport_errors.len(),
        log.acknowledged.len()
    );
    if let Some((_, status, body)) = log.server_errors.first() {
        eprintln!("{test}: first 5xx: {status} {body}");
    }
    let other_5xx = log
        .server_errors
        .iter()
        .filter(|(_, status, body)| *status != 503 || !is_error_shape(body))
        .count();
    figure(&format!("{prefix}.{}_restarts", service.name()), restarts);
    figure(
        &format!("{prefix}.answers_while_down_503_json"),
        log.server_errors.len() - other_5xx,
    );
    figure(&format!("{prefix}.other_5xx"), other_5xx);
    figure(
        &format!("{prefix}.unanswered_requests"),
        log.transport_errors.len(),
    );
    figure(
        &format!("{prefix}.slowest_recovery_ms"),
        recoveries.iter().max().map_or(0, Duration::as_millis),
    );

    // `/readyz` fails while the store is away.
    eprintln!("{test}: /readyz while down: {readyz_while_down:?}");
    assert!(
        readyz_while_down.iter().all(|answer| answer == &Ok(503)),
        "/readyz while the store was down: {readyz_while_down:?}"
    );

    // While down: 503 with the JSON error, and no other 5xx ever.
    let unavailable = log
        .statuses
        .iter()
        .filter(|((phase, status), _)| *phase == "down" && *status == 503)
        .map(|(_, n)| *n)
        .sum::<usize>();
    assert!(
        unavailable > 0,
        "no 503 while the store was down: {:?}",
        log.statuses
    );
    for (phase, status, body) in &log.server_errors {
        assert_eq!(*status, 503, "a 5xx other than 503 ({phase}): {body}");
        assert!(
            is_error_shape(body),
            "a 503 without the JSON error shape: {body}"
        );
    }
    assert!(
        log.transport_errors.is_empty(),
        "requests got no answer: {:?}",
        log.transport_errors.iter().take(5).collect::<Vec<_>>()
    );

    // No acknowledged lease is lost.
    let mut lost = Vec::new();
    for id in &log.acknowledged {
        let response = api.status(id).expect("GET status");
        if response.status != 200 {
            lost.push((id.clone(), response.status, response.body));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged leases lost: {lost:?}",
        lost.len(),
        log.acknowledged.len()
    );
    eprintln!(
        "{test}: all {} acknowledged leases found after the restart(s)",
        log.acknowledged.len()
    );
    figure(&format!("{prefix}.acknowledged"), log.acknowledged.len());
    figure(&format!("{prefix}.acknowledged_lost"), lost.len());

    let look = assert_consistent(&api, &namespace, Duration::from_secs(120));
    eprintln!("{test}: THE CHECK: {look}");
    look.figures(prefix);
    let live_ids: Vec<String> = look.live.keys().cloned().collect();
    for id in &log.acknowledged {
        assert!(
            live_ids.contains(id),
            "acknowledged lease {id} is not live any more"
        );
    }
    delete_all_and_assert_empty(&api, &namespace, Duration::from_secs(120));
}
