//! Issue 8, scenarios 5 and 6: scale through the real `lease-server`
//! binaries on real Docker and a private Redis (scenario 5 also on a private
//! PostgreSQL).
//!
//! - **5, two replicas**: two servers on one Redis (same prefix and
//!   namespace), no balancer, clients alternating between them; N leases
//!   of one minute (three in the long form, so that 200 containers are up
//!   before they expire) expiring together → each container destroyed exactly once (from
//!   Docker's event stream), each lease finished exactly once (history and
//!   the store's usage totals), no errors; reap lateness p50/p99 from the
//!   `destroy` events against each lease's exact expiry (the container's
//!   `io.containerlease.expires-at` label: `expiryAt` in the JSON is rounded
//!   down to the second). The same on a private PostgreSQL cluster (issue
//!   20; same schema, claims with `FOR UPDATE SKIP LOCKED` and the
//!   database's clock): figures `scenario5.postgres.*`.
//! - **6, churn**: M leases from concurrent clients on the same two-replica
//!   set-up, each with a random plan (expire, delete — sometimes while still
//!   pending —, extend then expire, extend then delete), actions sent to the
//!   other replica than the one that provisioned → zero containers at the
//!   end, every lease in history once with the end its plan calls for, and
//!   the store's total (`/api/usage` `endedCost`) equal to the sum of the
//!   per-lease `finalCost` to the nano-dollar, both read as exact decimals
//!   from the JSON text.
//!
//! Quick form by default; `LEASE_RELIABILITY=long` for the issue's counts
//! (200 and 500 leases, 32 clients). With `LEASE_FIGURES=1` each test prints
//! `FIGURE name=value` lines (collected by `scripts/bench.sh`).
//!
//! `cargo test -p lease-reliability --test scale`

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use lease_reliability::api::{Api, lease_id, lease_status};
use lease_reliability::check::assert_consistent;
use lease_reliability::docker::{self, EventWatcher, NamespaceGuard};
use lease_reliability::labels::{EXPIRES_AT, LEASE_ID, NAMESPACE};
use lease_reliability::server::{self, Server, ServerApi};
use lease_reliability::store::{ScenarioStore, StoreKind};
use lease_reliability::{Scale, figure, quantile, random_namespace, wait_for};
use rand::{Rng, SeedableRng};
use serde_json::Value;

/// The offering every lease here rents (`sleep infinity` on the test image).
const OFFERING: &str = "alpine";

/// Two replicas of one deployment: same store, same namespace (on Redis the
/// same prefix, on PostgreSQL the same schema).
fn two_replicas(store: &ScenarioStore, namespace: &str) -> Option<[Server; 2]> {
    // The product's default sweep (60 s): reaping on time must come from the
    // reaper sleeping until the earliest due lease, not from polling.
    let mut config = store
        .configure(server::config(namespace))
        .sweep_interval("60s");
    if store.kind() == StoreKind::Redis {
        config = config.args(["--redis-prefix", &format!("containerlease-{namespace}")]);
    }
    let first = Server::start(config.clone())?;
    let second = Server::start(config)?;
    Some([first, second])
}

/// Every line of the servers' logs (replicas of one namespace share a log
/// file: each file is read once).
fn log_lines(servers: &[Server]) -> Vec<String> {
    let mut files = HashSet::new();
    servers
        .iter()
        .filter(|s| files.insert(s.log_path().to_path_buf()))
        .flat_map(|s| s.log_text().lines().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

/// Lines of the servers' logs at ERROR level.
fn error_lines(servers: &[Server]) -> Vec<String> {
    log_lines(servers)
        .into_iter()
        .filter(|l| l.contains("\"level\":\"ERROR\""))
        .collect()
}

/// How many lines of the servers' logs are at WARN level.
fn warn_count(servers: &[Server]) -> usize {
    log_lines(servers)
        .iter()
        .filter(|l| l.contains("\"level\":\"WARN\""))
        .count()
}

/// The reaper's own lateness per finished lease (`lateness_ms` of its
/// "lease finished" lines: from due to hand-off to the runtime).
fn handoff_lateness(servers: &[Server]) -> Vec<Duration> {
    log_lines(servers)
        .iter()
        .filter(|l| l.contains("lease finished"))
        .filter_map(|l| {
            let rest = &l[l.find("\"lateness_ms\":")? + "\"lateness_ms\":".len()..];
            let end = rest.find([',', '}']).unwrap_or(rest.len());
            rest[..end].trim().parse::<u64>().ok()
        })
        .map(Duration::from_millis)
        .collect()
}

/// The exact expiry of each lease of `namespace` that has a container, from
/// its `expires-at` label (full precision, set at create time).
fn label_expiries(namespace: &str) -> HashMap<String, SystemTime> {
    let output = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label={NAMESPACE}={namespace}"),
            "--format",
            &format!("{{{{.Label \"{LEASE_ID}\"}}}}\t{{{{.Label \"{EXPIRES_AT}\"}}}}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (id, at) = line.split_once('\t')?;
            let at = chrono::DateTime::parse_from_rfc3339(at.trim()).ok()?;
            let nanos = u64::try_from(at.timestamp_nanos_opt()?).ok()?;
            Some((
                id.to_owned(),
                SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos),
            ))
        })
        .collect()
}

// --- exact money from the JSON text ----------------------------------------

/// One GET with the body as text (HTTP/1.0, so no chunking).
fn get_text(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).expect("read");
    let text = String::from_utf8(bytes).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, body.to_owned())
}

/// Exact nano-dollars of a JSON number's text (`0.000333333`, `1e-9`,
/// `12`), or of a decimal string's content. `None` if it is not a number or
/// not a whole number of nano-dollars.
fn nanos_of(text: &str) -> Option<i128> {
    let text = text.trim().trim_matches('"');
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let digits: i128 = format!("{whole}{fraction}").parse().ok()?;
    // value = digits × 10^(exponent − len(fraction)); nanos = value × 10^9.
    let shift = exponent - i32::try_from(fraction.len()).ok()? + 9;
    let nanos = if shift >= 0 {
        digits.checked_mul(10_i128.checked_pow(u32::try_from(shift).ok()?)?)?
    } else {
        let divisor = 10_i128.checked_pow(u32::try_from(-shift).ok()?)?;
        if digits % divisor != 0 {
            return None;
        }
        digits / divisor
    };
    Some(if negative { -nanos } else { nanos })
}

/// Every value of `"field":` in a JSON text, as written (number or string).
fn raw_values<'a>(text: &'a str, field: &str) -> Vec<&'a str> {
    let key = format!("\"{field}\":");
    let mut values = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(&key) {
        rest = rest[at + key.len()..].trim_start();
        let end = if let Some(quoted) = rest.strip_prefix('"') {
            quoted.find('"').map_or(rest.len(), |e| e + 2)
        } else {
            rest.find([',', '}', ']']).unwrap_or(rest.len())
        };
        values.push(rest[..end].trim());
        rest = &rest[end..];
    }
    values
}

/// Renders nano-dollars as dollars (`0.000333333`).
fn dollars(nanos: i128) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let nanos = nanos.abs();
    format!(
        "{sign}{}.{:09}",
        nanos / 1_000_000_000,
        nanos % 1_000_000_000
    )
}

/// The whole history (every page) as JSON, with the exact sum of the
/// `finalCost`s read from the text, and how many there were.
fn history_with_exact_costs(address: SocketAddr) -> (Vec<Value>, i128, usize) {
    let mut leases = Vec::new();
    let mut sum = 0_i128;
    let mut costs = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/history?limit=1000&cursor={c}"),
            None => "/api/history?limit=1000".to_owned(),
        };
        let (status, text) = get_text(address, &path);
        assert_eq!(status, 200, "{path}: {text}");
        for raw in raw_values(&text, "finalCost") {
            sum += nanos_of(raw).unwrap_or_else(|| panic!("finalCost `{raw}` is not exact"));
            costs += 1;
        }
        let body: Value = serde_json::from_str(&text).expect("history JSON");
        leases.extend(body["leases"].as_array().expect("leases").iter().cloned());
        match body.get("nextCursor").and_then(Value::as_str) {
            Some(next) if !next.is_empty() => cursor = Some(next.to_owned()),
            _ => return (leases, sum, costs),
        }
    }
}

/// `/api/usage` as JSON and its `endedCost` read exactly from the text.
fn usage_with_exact_cost(address: SocketAddr) -> (Value, i128, i128) {
    let (status, text) = get_text(address, "/api/usage");
    assert_eq!(status, 200, "/api/usage: {text}");
    let exact = |field: &str| {
        let raw = raw_values(&text, field);
        assert_eq!(raw.len(), 1, "one {field} in {text}");
        nanos_of(raw[0]).unwrap_or_else(|| panic!("{field} `{}` is not exact", raw[0]))
    };
    (
        serde_json::from_str(&text).expect("usage JSON"),
        exact("endedCost"),
        exact("totalSpend"),
    )
}

/// Milliseconds of `d`, with one decimal.
fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// Waits until neither replica lists an active lease and the history holds
/// `n` leases; panics with what is left after `limit`.
fn wait_all_finished(replicas: &[Api], n: usize, limit: Duration) {
    let done = wait_for(limit, Duration::from_millis(500), || {
        let empty = replicas
            .iter()
            .all(|api| api.list().is_ok_and(|l| l.is_empty()));
        let finished = replicas[0].history().map(|h| h.len()).unwrap_or(0);
        (empty && finished >= n).then_some(())
    });
    if done.is_none() {
        let left = replicas[0].list();
        let finished = replicas[0].history().map(|h| h.len());
        panic!(
            "not all finished within {limit:?}: history {finished:?} of {n}; still active: {left:?}"
        );
    }
}

// --- scenario 5 ------------------------------------------------------------

#[test]
fn two_replicas_reap_leases_expiring_together_exactly_once() {
    two_replicas_reap(
        "two_replicas_reap_leases_expiring_together_exactly_once",
        StoreKind::Redis,
        "scenario5",
    );
}

/// Scenario 5 on PostgreSQL (issue 20): two servers on one database race
/// for the same expired leases (claims with `FOR UPDATE SKIP LOCKED`).
#[test]
fn two_replicas_on_postgres_reap_leases_expiring_together_exactly_once() {
    two_replicas_reap(
        "two_replicas_on_postgres_reap_exactly_once",
        StoreKind::Postgres,
        "scenario5.postgres",
    );
}

/// Scenario 5 on a shared store of `kind`; figures `<prefix>.<what>`.
fn two_replicas_reap(test: &str, kind: StoreKind, prefix: &str) {
    if !docker::docker_ready() {
        return;
    }
    let scale = Scale::from_env();
    let n: usize = scale.pick(36, 200);
    // The minimum, one minute; the long form's 200 containers need longer
    // than that to start on a small machine, and must be up before expiry.
    let minutes: u32 = scale.pick(1, 3);
    let Some(store) = ScenarioStore::start(kind, test) else {
        return;
    };
    let namespace = random_namespace();
    let _guard = NamespaceGuard::new(&namespace);
    let events = EventWatcher::start(&namespace);
    let Some(servers) = two_replicas(&store, &namespace) else {
        return;
    };
    let replicas: Vec<Api> = servers.iter().map(Server::api).collect();
    let started = Instant::now();

    // N leases, as fast as 8 clients can ask, alternating replicas.
    let next = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let next = next.clone();
            let replicas = replicas.clone();
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        return answers;
                    }
                    answers.push(replicas[i % 2].provision(OFFERING, minutes));
                }
            })
        })
        .collect();
    let mut ids = Vec::new();
    let mut refused = Vec::new();
    for handle in handles {
        for answer in handle.join().expect("client thread") {
            match answer {
                Ok(r) if r.status == 202 => ids.push(lease_id(&r.body).expect("id")),
                other => refused.push(format!("{other:?}")),
            }
        }
    }
    let provisioned_in = started.elapsed();
    assert!(refused.is_empty(), "provisions refused: {refused:?}");
    assert_eq!(ids.len(), n);
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), n, "duplicate lease ids");

    // All running before they expire, every one with its container.
    let up_within = Duration::from_secs(u64::from(minutes) * 60 - 10);
    let running = wait_for(up_within, Duration::from_millis(250), || {
        let leases = replicas[1].list().ok()?;
        (leases.len() == n && leases.iter().all(|l| lease_status(l) == "running")).then_some(leases)
    });
    let running = running.unwrap_or_else(|| {
        panic!(
            "not all {n} running within {up_within:?}: {:?}",
            replicas[1].list().map(|l| l
                .iter()
                .map(|l| format!("{} {}", lease_status(l), l["error"]))
                .collect::<Vec<_>>())
        )
    });
    let look = assert_consistent(&replicas[0], &namespace, Duration::from_secs(10));
    assert_eq!(look.containers.len(), n, "{look}");
    let expiries = label_expiries(&namespace);
    assert_eq!(expiries.len(), n, "an expires-at label per container");
    let spread = expiries
        .values()
        .max()
        .expect("n > 0")
        .duration_since(*expiries.values().min().expect("n > 0"))
        .unwrap_or_default();
    eprintln!(
        "{n} leases provisioned in {provisioned_in:?}, all running after {:?}; expiries within {spread:?}",
        started.elapsed()
    );

    // Wait out the lease; both replicas' reapers race for them.
    wait_all_finished(
        &replicas,
        n,
        Duration::from_secs(u64::from(minutes) * 60 + 90),
    );
    let reaped_after = started.elapsed();
    assert!(
        events.wait_until(Duration::from_secs(30), |_| events.destroy_counts().len()
            >= n),
        "destroy events: {} of {n}",
        events.destroy_counts().len()
    );
    // Late duplicates would show up here.
    std::thread::sleep(Duration::from_secs(3));

    // Each container created once and destroyed exactly once.
    let destroys = events.destroy_counts();
    let creates = events.create_counts();
    let twice: Vec<_> = destroys.iter().filter(|(_, c)| **c != 1).collect();
    assert!(twice.is_empty(), "destroyed other than once: {twice:?}");
    let created_twice: Vec<_> = creates.iter().filter(|(_, c)| **c != 1).collect();
    assert!(
        created_twice.is_empty(),
        "created other than once: {created_twice:?}"
    );
    let destroyed: HashSet<&String> = destroys.keys().collect();
    assert_eq!(destroyed, unique, "destroyed containers ≠ leases");

    // Each lease finished exactly once: once in history (seen from both
    // replicas), expired, charged its estimate; the store counted N ends.
    for api in &replicas {
        let history = api.history().expect("history");
        let mut seen: HashMap<String, usize> = HashMap::new();
        for lease in &history {
            *seen.entry(lease_id(lease).expect("id")).or_insert(0) += 1;
            assert_eq!(lease["endReason"], "expired", "{lease}");
            assert_eq!(lease["status"], "deleted", "{lease}");
            assert_eq!(lease["finalCost"], lease["cost"], "{lease}");
            assert!(lease["error"].is_null(), "{lease}");
        }
        assert_eq!(seen.len(), n, "history size");
        assert!(seen.values().all(|c| *c == 1), "a lease twice in history");
        assert_eq!(seen.keys().collect::<HashSet<_>>(), unique);
    }
    let (history, history_sum, costs) = history_with_exact_costs(replicas[0].address());
    assert_eq!((history.len(), costs), (n, n));
    let (usage, ended_cost, _) = usage_with_exact_cost(replicas[1].address());
    assert_eq!(usage["endedLeases"], n, "{usage}");
    assert_eq!(usage["activeLeases"], 0, "{usage}");
    assert_eq!(ended_cost, history_sum, "usage {usage} vs history sum");

    // Lateness: each container's destroy event after its lease's exact expiry.
    let destroy_times = events.destroy_times();
    let mut lateness = Vec::new();
    let mut early = Vec::new();
    for (id, due) in &expiries {
        let at = destroy_times[id];
        match at.duration_since(*due) {
            Ok(late) => lateness.push(late),
            Err(ahead) => early.push((id.clone(), ahead.duration())),
        }
    }
    assert!(early.is_empty(), "destroyed before expiry: {early:?}");
    let p50 = quantile(&lateness, 0.5).expect("n > 0");
    let p99 = quantile(&lateness, 0.99).expect("n > 0");
    let max = quantile(&lateness, 1.0).expect("n > 0");
    let errors = error_lines(&servers);
    let warnings = warn_count(&servers);
    let handoff = handoff_lateness(&servers);

    figure(&format!("{prefix}.leases"), n);
    figure(&format!("{prefix}.replicas"), 2);
    figure(&format!("{prefix}.expiry_spread_ms"), ms(spread));
    figure(&format!("{prefix}.destroyed_exactly_once"), destroys.len());
    figure(
        &format!("{prefix}.destroyed_twice_or_more"),
        destroys.values().filter(|c| **c > 1).count(),
    );
    figure(&format!("{prefix}.finished_exactly_once"), n);
    figure(&format!("{prefix}.lost"), n - destroys.len().min(n));
    figure(&format!("{prefix}.reap_lateness_p50_ms"), ms(p50));
    figure(&format!("{prefix}.reap_lateness_p99_ms"), ms(p99));
    figure(&format!("{prefix}.reap_lateness_max_ms"), ms(max));
    figure(&format!("{prefix}.reaper_handoffs"), handoff.len());
    if let (Some(h50), Some(h99)) = (quantile(&handoff, 0.5), quantile(&handoff, 0.99)) {
        figure(&format!("{prefix}.reaper_handoff_lateness_p50_ms"), ms(h50));
        figure(&format!("{prefix}.reaper_handoff_lateness_p99_ms"), ms(h99));
    }
    figure(&format!("{prefix}.server_error_log_lines"), errors.len());
    figure(&format!("{prefix}.server_warn_log_lines"), warnings);
    figure(
        &format!("{prefix}.wall_s"),
        format!("{:.1}", reaped_after.as_secs_f64()),
    );
    let _ = running;

    assert!(
        errors.is_empty(),
        "ERROR lines in the servers' logs: {errors:#?}"
    );
    // The design's target is 1 s for a lease; a burst on this shared
    // 2-core machine gets slack, but a lease must never wait a sweep (60 s).
    // Long form: 200 removals queue behind the engine (~10-15/s here).
    let bound = Duration::from_secs(scale.pick(15, 60));
    assert!(max < bound, "reaped {max:?} late");
    let look = assert_consistent(&replicas[1], &namespace, Duration::from_secs(10));
    assert!(look.containers.is_empty(), "{look}");
}

// --- scenario 6 ------------------------------------------------------------

/// What a client does with one lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// Nothing: it runs out its minute.
    Expire,
    /// Deletes it after the delay (0: while it is most likely pending).
    Delete(Duration),
    /// Extends it by a minute after the delay, then lets it run out.
    ExtendThenExpire(Duration),
    /// Extends it by a minute, then deletes it.
    ExtendThenDelete(Duration, Duration),
}

impl Plan {
    fn random(rng: &mut impl Rng) -> Plan {
        let delay = |rng: &mut dyn rand::RngCore| Duration::from_millis(rng.random_range(0..6_000));
        match rng.random_range(0..100) {
            0..30 => Plan::Expire,
            30..40 => Plan::Delete(Duration::ZERO),
            40..65 => Plan::Delete(delay(rng)),
            65..80 => Plan::ExtendThenExpire(delay(rng)),
            _ => Plan::ExtendThenDelete(delay(rng), delay(rng)),
        }
    }

    /// The end reason history must show.
    fn end_reason(self) -> &'static str {
        match self {
            Plan::Expire | Plan::ExtendThenExpire(_) => "expired",
            Plan::Delete(_) | Plan::ExtendThenDelete(..) => "deleted",
        }
    }

    /// The booked minutes at the end.
    fn minutes(self) -> i64 {
        match self {
            Plan::Expire | Plan::Delete(_) => 1,
            Plan::ExtendThenExpire(_) | Plan::ExtendThenDelete(..) => 2,
        }
    }
}

/// Carries out `plan` on a fresh lease: provisions on `home`, acts on
/// `other`. Returns the lease id, or what went wrong.
fn run_plan(home: &Api, other: &Api, plan: Plan) -> Result<String, String> {
    let answer = home.provision(OFFERING, 1).map_err(|e| e.to_string())?;
    if answer.status != 202 {
        return Err(format!(
            "provision: HTTP {}: {}",
            answer.status, answer.body
        ));
    }
    let id = lease_id(&answer.body).map_err(|e| e.to_string())?;
    let extend = |after: Duration| -> Result<(), String> {
        std::thread::sleep(after);
        let r = other.extend(&id, 1).map_err(|e| e.to_string())?;
        if r.status != 200 || r.body["durationMinutes"] != 2 {
            return Err(format!("extend {id}: HTTP {}: {}", r.status, r.body));
        }
        Ok(())
    };
    let delete = |after: Duration| -> Result<(), String> {
        std::thread::sleep(after);
        let r = other.delete(&id).map_err(|e| e.to_string())?;
        if r.status != 202 {
            return Err(format!("delete {id}: HTTP {}: {}", r.status, r.body));
        }
        Ok(())
    };
    match plan {
        Plan::Expire => {}
        Plan::Delete(after) => delete(after)?,
        Plan::ExtendThenExpire(after) => extend(after)?,
        Plan::ExtendThenDelete(first, then) => {
            extend(first)?;
            delete(then)?;
        }
    }
    Ok(id)
}

#[test]
fn churn_leaves_nothing_and_costs_add_up_to_the_nano_dollar() {
    const TEST: &str = "churn_leaves_nothing_and_costs_add_up_to_the_nano_dollar";
    if !docker::docker_ready() {
        return;
    }
    let scale = Scale::from_env();
    let m: usize = scale.pick(72, 500);
    let clients: usize = scale.pick(8, 32);
    let seed: u64 = std::env::var("LEASE_CHURN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("churn: {m} leases, {clients} clients, LEASE_CHURN_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let plans: Vec<Plan> = (0..m).map(|_| Plan::random(&mut rng)).collect();

    let Some(store) = ScenarioStore::start(StoreKind::Redis, TEST) else {
        return;
    };
    let namespace = random_namespace();
    let _guard = NamespaceGuard::new(&namespace);
    let events = EventWatcher::start(&namespace);
    let Some(servers) = two_replicas(&store, &namespace) else {
        return;
    };
    let replicas: Vec<Api> = servers.iter().map(Server::api).collect();
    let started = Instant::now();

    // Each client takes the next plan; lease i is provisioned on replica
    // i % 2 and extended/deleted through the other one.
    let next = Arc::new(AtomicUsize::new(0));
    let plans = Arc::new(plans);
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let next = next.clone();
            let plans = plans.clone();
            let replicas = replicas.clone();
            std::thread::spawn(move || {
                let mut done = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= plans.len() {
                        return done;
                    }
                    let outcome = run_plan(&replicas[i % 2], &replicas[(i + 1) % 2], plans[i]);
                    done.push((i, outcome));
                }
            })
        })
        .collect();
    let mut ids: Vec<Option<String>> = vec![None; m];
    let mut failures = Vec::new();
    for handle in handles {
        for (i, outcome) in handle.join().expect("client thread") {
            match outcome {
                Ok(id) => ids[i] = Some(id),
                Err(error) => failures.push(format!("lease {i} ({:?}): {error}", plans[i])),
            }
        }
    }
    let clients_done = started.elapsed();
    assert!(failures.is_empty(), "client calls failed: {failures:#?}");
    let ids: Vec<String> = ids
        .into_iter()
        .map(|id| id.expect("every plan ran"))
        .collect();
    let by_id: HashMap<&str, Plan> = ids
        .iter()
        .map(String::as_str)
        .zip(plans.iter().copied())
        .collect();
    assert_eq!(by_id.len(), m, "duplicate lease ids");

    // Everything ends: the last extended leases run out two minutes after
    // their creation.
    wait_all_finished(&replicas, m, Duration::from_secs(200));
    let finished_after = started.elapsed();
    let look = assert_consistent(&replicas[0], &namespace, Duration::from_secs(30));
    assert!(look.containers.is_empty(), "containers left: {look}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(docker::containers_of(&namespace).is_empty());

    // Every lease once in history, ended as its plan says.
    let (history, history_sum, costs) = history_with_exact_costs(replicas[1].address());
    assert_eq!(costs, history.len(), "a finalCost per finished lease");
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut wrong = Vec::new();
    let mut reasons: HashMap<String, usize> = HashMap::new();
    for lease in &history {
        let id = lease_id(lease).expect("id");
        *seen.entry(id.clone()).or_insert(0) += 1;
        let Some(plan) = by_id.get(id.as_str()) else {
            wrong.push(format!("not ours: {lease}"));
            continue;
        };
        let reason = lease["endReason"].as_str().unwrap_or("none");
        *reasons.entry(reason.to_owned()).or_insert(0) += 1;
        let expected_minutes = plan.minutes();
        // The engine may fail a provisioning under this load (seen in the
        // long form: container start timing out); then the lease ends
        // `error` with the runtime's message, whatever the client did.
        let failed = reason == "error" && lease["error"].as_str().is_some_and(|e| !e.is_empty());
        if (reason != plan.end_reason() && !failed)
            || lease["status"] != "deleted"
            || lease["durationMinutes"] != expected_minutes
            || (!failed && !lease["error"].is_null())
            || (reason == "expired" && lease["finalCost"] != lease["cost"])
        {
            wrong.push(format!("{plan:?}: {lease}"));
        }
        // A deleted lease is charged for the time held, never more than booked.
        let final_cost = nanos_of(&lease["finalCost"].to_string()).expect("finalCost");
        let estimate = nanos_of(&lease["cost"].to_string()).expect("cost");
        if final_cost > estimate || final_cost < 0 {
            wrong.push(format!("charged {final_cost} of {estimate}: {lease}"));
        }
    }
    assert!(wrong.is_empty(), "inconsistent ends: {wrong:#?}");
    assert_eq!(seen.len(), m, "history holds {} of {m}", seen.len());
    let twice: Vec<_> = seen.iter().filter(|(_, c)| **c != 1).collect();
    assert!(twice.is_empty(), "in history more than once: {twice:?}");

    // The store's totals equal the sum of the final costs, exactly.
    let (usage, ended_cost, total_spend) = usage_with_exact_cost(replicas[0].address());
    assert_eq!(usage["endedLeases"], m, "{usage}");
    assert_eq!(usage["activeLeases"], 0, "{usage}");
    assert_eq!(
        ended_cost,
        history_sum,
        "usage endedCost {} ≠ Σ finalCost {}",
        dollars(ended_cost),
        dollars(history_sum)
    );
    assert_eq!(
        total_spend,
        history_sum,
        "totalSpend {}",
        dollars(total_spend)
    );

    // Docker: no container destroyed twice, none created twice, every
    // created one destroyed.
    std::thread::sleep(Duration::from_secs(1));
    let destroys = events.destroy_counts();
    let creates = events.create_counts();
    let twice: Vec<_> = destroys.iter().filter(|(_, c)| **c != 1).collect();
    assert!(twice.is_empty(), "destroyed other than once: {twice:?}");
    let created_twice: Vec<_> = creates.iter().filter(|(_, c)| **c != 1).collect();
    assert!(
        created_twice.is_empty(),
        "created other than once: {created_twice:?}"
    );
    let created: HashSet<&String> = creates.keys().collect();
    let destroyed: HashSet<&String> = destroys.keys().collect();
    assert_eq!(created, destroyed, "created ≠ destroyed");
    let errors = error_lines(&servers);

    let count = |p: fn(&Plan) -> bool| plans.iter().filter(|plan| p(plan)).count();
    figure("scenario6.leases", m);
    figure("scenario6.clients", clients);
    figure(
        "scenario6.plan_expire",
        count(|p| matches!(p, Plan::Expire)),
    );
    figure(
        "scenario6.plan_delete",
        count(|p| matches!(p, Plan::Delete(_))),
    );
    figure(
        "scenario6.plan_extend_then_expire",
        count(|p| matches!(p, Plan::ExtendThenExpire(_))),
    );
    figure(
        "scenario6.plan_extend_then_delete",
        count(|p| matches!(p, Plan::ExtendThenDelete(..))),
    );
    figure(
        "scenario6.history_expired",
        reasons.get("expired").copied().unwrap_or(0),
    );
    figure(
        "scenario6.history_deleted",
        reasons.get("deleted").copied().unwrap_or(0),
    );
    figure(
        "scenario6.history_error",
        reasons.get("error").copied().unwrap_or(0),
    );
    figure("scenario6.containers_created", creates.len());
    figure("scenario6.containers_left", 0);
    figure("scenario6.ended_cost_usd", dollars(ended_cost));
    figure("scenario6.sum_final_cost_usd", dollars(history_sum));
    figure("scenario6.cost_difference_nanos", ended_cost - history_sum);
    figure("scenario6.server_error_log_lines", errors.len());
    figure("scenario6.server_warn_log_lines", warn_count(&servers));
    figure(
        "scenario6.clients_done_s",
        format!("{:.1}", clients_done.as_secs_f64()),
    );
    figure(
        "scenario6.wall_s",
        format!("{:.1}", finished_after.as_secs_f64()),
    );
    assert!(
        errors.is_empty(),
        "ERROR lines in the servers' logs: {errors:#?}"
    );
}

#[test]
fn exact_dollar_text() {
    assert_eq!(nanos_of("0.000333333"), Some(333_333));
    assert_eq!(nanos_of("1e-9"), Some(1));
    assert_eq!(nanos_of("3.33333e-4"), Some(333_333));
    assert_eq!(nanos_of("12"), Some(12_000_000_000));
    assert_eq!(nanos_of("\"0.5\""), Some(500_000_000));
    assert_eq!(nanos_of("-0.01"), Some(-10_000_000));
    assert_eq!(nanos_of("1e-10"), None);
    assert_eq!(nanos_of("abc"), None);
    assert_eq!(
        raw_values(
            r#"{"a":1,"finalCost":0.01,"x":{"finalCost":"2.5"}}"#,
            "finalCost"
        ),
        vec!["0.01", "\"2.5\""]
    );
    assert_eq!(dollars(333_333), "0.000333333");
}
