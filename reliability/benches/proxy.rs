//! HTTP through lease-server's port proxy against straight to the
//! container's address: what the proxy's hop costs, in one run.
//!
//! One lease (offering `ubuntu` of the offline catalog: the local busybox
//! image), one release `lease-server` (single-user, on loopback, memory
//! store), three upstream apps in the lease, each serving 1 KiB:
//!
//! - **busybox `httpd`** on port 8081 (what issue 13 names): it forks per
//!   connection and closes every one, so direct clients connect per request
//!   and the proxy opens an upstream connection per request;
//! - **the same static app closing each connection** on port 8082
//!   (`keepalive_httpd PORT SIZE close`): a connection per request like
//!   httpd, but no fork and a 128-deep accept queue, where busybox's is 9
//!   deep and drops SYNs (a 1 s retransmit) whenever its one accepting
//!   process is off the CPU for a few milliseconds — on a shared 2-CPU
//!   machine that sets the p99 of both paths. Each paced measure prints
//!   the app's `ListenOverflows` (from the container's
//!   `/proc/net/netstat`), so such drops are counted, not guessed;
//! - **a keep-alive app** on port 8080 (`bench-apps/keepalive_httpd.rs`,
//!   standard library only, compiled here with `rustc` as a static binary
//!   and copied into the container; nothing is pulled): it does nothing but
//!   copy 1 KiB per request on kept connections, so against it the ratio is
//!   the proxy's own cost per request against the cheapest possible app.
//!
//! Paths: **direct** `http://<container address>:<port>/file`; **proxy**
//! `http://127.0.0.1:<server>/leases/{id}/ports/<port>/file` (keep-alive to
//! the server, which checks the caller and the lease per request).
//!
//! `PROXY_BENCH_UPSTREAMS=httpd,closing,keepalive` picks the upstreams
//! (default all). Two measures per upstream, the paths taking turns (`PROXY_BENCH_TURNS`,
//! default 3, of `PROXY_BENCH_SECONDS`, default 4) so both see the same
//! machine:
//!
//! 1. **Throughput, closed loop**: `PROXY_BENCH_CLIENTS` (64) clients each
//!    send the next request as soon as the last is answered. Requests/s
//!    proxy ÷ direct is the ratio (goal ≥ 0.7×). At saturation a
//!    closed loop's latency is clients ÷ throughput (Little's law) — the
//!    throughput figure again — so its p50/p99 are printed but labelled.
//! 2. **Added latency, paced (open loop)**: the same 64 clients each send
//!    one request every `N` ms on a fixed schedule (client `i` offset by
//!    `i·N/64`), the same schedule on both paths, at `PROXY_BENCH_PACE`
//!    (default 0.25) of the slower path's closed-loop rate: the machine is
//!    not saturated, so the latency is what a request costs, not a queue.
//!    A request due while its client still waits for the last one counts
//!    from when it was due (no coordinated omission). p50 and p99 of proxy
//!    minus direct is the added latency (goal: p99 ≤ 1 ms). For httpd the
//!    paced measure first waits out `TIME_WAIT` (62 s) of the closed loop's
//!    tens of thousands of connections, so it starts from a clean state;
//!    requests over 200 ms are counted (a SYN retransmit takes 1 s).
//!
//! 3. **The same paced schedule, paths interleaved**: each client takes
//!    turns between the direct path and each proxy path request by
//!    request (client `i` starting with path `i mod n`), so a burst of
//!    stolen or busy CPU on this shared machine lands on every path alike,
//!    where the 4-second turns of measure 2 give it to whichever path runs.
//!
//! Also printed: lease-server's CPU time per proxied request (from
//! `/proc`, closed loop), steadier than rates on a shared machine, the
//! load average before and after, and one `VERDICT` line per goal.
//!
//! **Two servers in one run** (`PROXY_BENCH_BASELINE=/path/to/lease-server`,
//! named by `PROXY_BENCH_BASELINE_LABEL`, default `baseline`): a second
//! server (another build: the previous commit, or the system allocator)
//! with a lease of its own in its own namespace, the same apps in it, its
//! proxy path taking turns with the other two; its rows say what the
//! change bought, measured on the same machine at the same time. Skips with a reason without Docker, the
//! test image or a static `rustc` build (fails under `CI=true`). Run with
//! `cargo bench -p lease-reliability --bench proxy`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use lease_reliability::cpu::{CpuMeter, load_line};
use lease_reliability::server::{self, Server, ServerApi};
use lease_reliability::{quantile, skip_or_fail};
use lease_testkit::docker::{NamespaceGuard, docker_ready};
use tokio::net::TcpStream;

/// The keep-alive app's port in the lease.
const KEEPALIVE_PORT: u16 = 8080;
/// busybox httpd's port in the lease.
const HTTPD_PORT: u16 = 8081;
/// The app's port in the lease in its closing mode (a connection per request).
const CLOSING_PORT: u16 = 8082;
/// The file served.
const FILE_BYTES: usize = 1024;
/// Longest wait for the lease.
const LIMIT: Duration = Duration::from_secs(60);

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn env_fraction(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .filter(|value: &f64| *value > 0.0 && *value <= 1.0)
        .unwrap_or(default)
}

/// The bench's settings.
#[derive(Clone, Copy, Debug)]
struct Settings {
    clients: usize,
    turn: Duration,
    turns: usize,
    pace: f64,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            clients: env_number("PROXY_BENCH_CLIENTS", 64).max(1),
            turn: Duration::from_secs(env_number("PROXY_BENCH_SECONDS", 4).max(1) as u64),
            turns: env_number("PROXY_BENCH_TURNS", 3).max(1),
            pace: env_fraction("PROXY_BENCH_PACE", 0.25),
        }
    }
}

fn main() {
    if !docker_ready() {
        skip_or_fail("proxy bench: Docker is not reachable");
        return;
    }
    let Some(app) = build_app() else {
        return;
    };
    let Some(ours) = Arm::start("this build", None, &app) else {
        return;
    };
    let baseline = match std::env::var("PROXY_BENCH_BASELINE") {
        Ok(binary) if !binary.is_empty() => {
            let label = std::env::var("PROXY_BENCH_BASELINE_LABEL")
                .unwrap_or_else(|_| "baseline".to_owned());
            let Some(arm) = Arm::start(&label, Some(PathBuf::from(binary)), &app) else {
                return;
            };
            Some(arm)
        }
        _ => None,
    };
    let arms: Vec<&Arm> = std::iter::once(&ours).chain(baseline.as_ref()).collect();
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let load_before = load_line();
    let upstreams = [
        Upstream {
            name: "busybox httpd (a connection per request)",
            port: HTTPD_PORT,
            closes: true,
        },
        Upstream {
            name: "the app closing each connection (keepalive_httpd.rs close: a connection per request, a 128-deep accept queue)",
            port: CLOSING_PORT,
            closes: true,
        },
        Upstream {
            name: "keep-alive app (bench-apps/keepalive_httpd.rs)",
            port: KEEPALIVE_PORT,
            closes: false,
        },
    ];
    let meter = CpuMeter::new();
    let mut reports = Vec::new();
    for upstream in upstreams.iter().filter(|upstream| upstream.wanted()) {
        let direct = Target {
            connect: SocketAddr::new(ours.address, upstream.port),
            path: "/file".to_owned(),
        };
        let proxies: Vec<Target> = arms.iter().map(|arm| arm.target(upstream.port)).collect();
        let report = runtime.block_on(measure(
            &direct,
            &proxies,
            settings,
            upstream.closes,
            |arm: usize| arms[arm].server.pid().and_then(|pid| meter.seconds(pid)),
            |arm: usize| listen_overflows(&arms[arm].container),
        ));
        reports.push((upstream, report));
    }
    let load_after = load_line();
    println!(
        "proxy bench: {} clients, GET of {FILE_BYTES} B, {} turns of {} s per path and measure",
        settings.clients,
        settings.turns,
        settings.turn.as_secs()
    );
    println!("machine before: {load_before}; after: {load_after}");
    for arm in &arms {
        println!("server `{}`: {}", arm.label, arm.server.binary().display());
    }
    let labels: Vec<&str> = arms.iter().map(|arm| arm.label.as_str()).collect();
    for (upstream, report) in &reports {
        report.print(upstream, settings, &labels);
    }
    println!();
    for (upstream, report) in &reports {
        report.verdicts(upstream);
    }
    drop(baseline);
    drop(ours);
}

/// One server with its lease and the apps in it.
struct Arm {
    label: String,
    lease: String,
    address: IpAddr,
    server: Server,
    /// The lease's container.
    container: String,
    /// Removes the lease's container (and network) after the server.
    _guard: NamespaceGuard,
}

impl Arm {
    /// A server (`binary`, else the default one) in a namespace of its
    /// own, a running lease, and both apps started in it.
    fn start(label: &str, binary: Option<PathBuf>, app: &Path) -> Option<Arm> {
        let guard = NamespaceGuard::random();
        let mut config = server::config(guard.namespace());
        if let Some(binary) = binary {
            config = config.binary(binary);
        }
        let server = Server::start(config)?;
        let api = server.api();
        let (lease, container) = api.running_lease("ubuntu", LIMIT);
        start_app(app, &container);
        start_httpd(&container);
        let address: IpAddr = docker_inspect_ip(&container).parse().expect("an IP");
        Some(Arm {
            label: label.to_owned(),
            lease,
            address,
            server,
            container,
            _guard: guard,
        })
    }

    /// The proxy path to `port` of this arm's lease.
    fn target(&self, port: u16) -> Target {
        Target {
            connect: self.server.address(),
            path: format!("/leases/{}/ports/{port}/file", self.lease),
        }
    }
}

impl Drop for Arm {
    fn drop(&mut self) {
        let _ = self.server.api().delete(&self.lease);
    }
}

/// An app in the lease.
struct Upstream {
    name: &'static str,
    port: u16,
    /// It closes every connection: wait out the connections' `TIME_WAIT`
    /// before the paced measure (see [`measure`]).
    closes: bool,
}

/// Where one path's requests go.
#[derive(Clone, Debug)]
struct Target {
    connect: SocketAddr,
    path: String,
}

/// What a path did across turns.
#[derive(Default)]
struct Run {
    latencies: Vec<Duration>,
    elapsed: Duration,
    errors: usize,
}

impl Run {
    fn add(&mut self, other: Run) {
        self.latencies.extend(other.latencies);
        self.elapsed += other.elapsed;
        self.errors += other.errors;
    }

    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Requests slower than `limit` (a SYN retransmit takes 1 s).
    fn slower_than(&self, limit: Duration) -> usize {
        self.latencies.iter().filter(|l| **l > limit).count()
    }

    fn ms(&self, q: f64) -> f64 {
        quantile(&self.latencies, q).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    }
}

/// Both measures of one upstream: the direct path, and each server's
/// proxy path (this build's first).
struct Report {
    closed_direct: Run,
    closed_proxy: Vec<Run>,
    /// Each server's CPU seconds during its closed-loop proxy turns.
    server_cpu: Vec<Option<f64>>,
    /// Each paced client's interval.
    interval: Duration,
    paced_direct: Run,
    paced_proxy: Vec<Run>,
    /// SYNs the app's full accept queue dropped during the paced turns of
    /// the direct path and of each proxy path (see [`listen_overflows`]).
    dropped_direct: Option<u64>,
    dropped_proxy: Vec<Option<u64>>,
    /// The paced schedule again, each client taking turns between the
    /// paths request by request (direct, then each proxy).
    mixed_direct: Run,
    mixed_proxy: Vec<Run>,
}

/// How each client sends.
#[derive(Clone, Copy, Debug)]
enum Pacing {
    /// The next request as soon as the last is answered.
    Closed,
    /// One request every `interval`, client `i` of `n` starting
    /// `i·interval/n` in.
    Every(Duration),
}

/// How long a closed TCP connection's 4-tuple stays in `TIME_WAIT` on
/// Linux (on the app's side when the app closes first), and a margin.
const TIME_WAIT: Duration = Duration::from_secs(62);

/// Runs both measures on the `direct` path and each of the `proxies`
/// (taking turns); `server_cpu(i)` reads the CPU seconds so far of the
/// server behind `proxies[i]`. When the app `closes` every connection, the
/// closed loop leaves tens of thousands of 4-tuples in `TIME_WAIT` in the
/// container, which a new connection's port may land on: the paced measure
/// waits them out first, so it does not inherit the closed loop's
/// after-effects (the same wait for every path).
async fn measure(
    direct: &Target,
    proxies: &[Target],
    settings: Settings,
    closes: bool,
    server_cpu: impl Fn(usize) -> Option<f64>,
    overflows: impl Fn(usize) -> Option<u64>,
) -> Report {
    let Settings {
        clients,
        turn,
        turns,
        pace,
    } = settings;
    // Warm up every path (connections, the servers' pools).
    let warm = Duration::from_millis(500);
    load(direct, clients, warm, Pacing::Closed).await;
    for proxy in proxies {
        load(proxy, clients, warm, Pacing::Closed).await;
    }
    let mut closed_direct = Run::default();
    let mut closed_proxy: Vec<Run> = proxies.iter().map(|_| Run::default()).collect();
    let mut cpu: Vec<Option<f64>> = proxies.iter().map(|_| Some(0.0)).collect();
    for _ in 0..turns {
        closed_direct.add(load(direct, clients, turn, Pacing::Closed).await);
        for (i, proxy) in proxies.iter().enumerate() {
            let before = server_cpu(i);
            closed_proxy[i].add(load(proxy, clients, turn, Pacing::Closed).await);
            cpu[i] = cpu[i]
                .zip(before.zip(server_cpu(i)))
                .map(|(sum, (before, after))| sum + after - before);
        }
    }
    // Paced at a fraction of what the slowest path sustains, the same
    // schedule on all.
    let sustained = closed_proxy
        .iter()
        .map(Run::rate)
        .fold(closed_direct.rate(), f64::min)
        .max(1.0);
    let interval = Duration::from_secs_f64(clients as f64 / (sustained * pace));
    if closes {
        tokio::time::sleep(TIME_WAIT).await;
    }
    let mut paced_direct = Run::default();
    let mut paced_proxy: Vec<Run> = proxies.iter().map(|_| Run::default()).collect();
    let mut dropped_direct = Some(0);
    let mut dropped_proxy: Vec<Option<u64>> = proxies.iter().map(|_| Some(0)).collect();
    // The SYNs dropped during `turn`, added to `sum` (the direct path's
    // app is arm 0's).
    let counted = |sum: Option<u64>, arm: usize, before: Option<u64>| {
        sum.zip(before.zip(overflows(arm)))
            .map(|(sum, (before, after))| sum + after.saturating_sub(before))
    };
    for _ in 0..turns {
        let before = overflows(0);
        paced_direct.add(load(direct, clients, turn, Pacing::Every(interval)).await);
        dropped_direct = counted(dropped_direct, 0, before);
        for (i, proxy) in proxies.iter().enumerate() {
            let before = overflows(i);
            paced_proxy[i].add(load(proxy, clients, turn, Pacing::Every(interval)).await);
            dropped_proxy[i] = counted(dropped_proxy[i], i, before);
        }
    }
    // The same schedule with every client taking turns between all the
    // paths request by request: a burst of stolen or busy CPU then lands
    // on each path alike, where the turns above give it to one path.
    let mut paths = vec![direct.clone()];
    paths.extend(proxies.iter().cloned());
    let mut mixed: Vec<Run> = paths.iter().map(|_| Run::default()).collect();
    for _ in 0..turns {
        let runs = load_all(&paths, clients, turn, Pacing::Every(interval)).await;
        for (sum, run) in mixed.iter_mut().zip(runs) {
            sum.add(run);
        }
    }
    let mixed_direct = mixed.remove(0);
    Report {
        mixed_direct,
        mixed_proxy: mixed,
        closed_direct,
        closed_proxy,
        server_cpu: cpu,
        interval,
        paced_direct,
        paced_proxy,
        dropped_direct,
        dropped_proxy,
    }
}

/// `clients` clients sending GETs to `target` for `length`.
async fn load(target: &Target, clients: usize, length: Duration, pacing: Pacing) -> Run {
    let mut runs = load_all(std::slice::from_ref(target), clients, length, pacing).await;
    runs.pop().unwrap_or_default()
}

/// `clients` clients sending GETs for `length`, each taking turns between
/// the `targets` request by request (client `i` starting with target
/// `i mod n`); a run per target. With one target, [`load`].
async fn load_all(
    targets: &[Target],
    clients: usize,
    length: Duration,
    pacing: Pacing,
) -> Vec<Run> {
    let targets = Arc::new(targets.to_vec());
    let started = Instant::now();
    let deadline = started + length;
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let schedule = match pacing {
                Pacing::Closed => None,
                Pacing::Every(interval) => Some((
                    started + interval.mul_f64(i as f64 / clients as f64),
                    interval,
                )),
            };
            tokio::spawn(client(targets.clone(), i, deadline, schedule))
        })
        .collect();
    let mut runs: Vec<Run> = targets.iter().map(|_| Run::default()).collect();
    for task in tasks {
        for (run, (latencies, errors)) in runs.iter_mut().zip(task.await.expect("a client")) {
            run.latencies.extend(latencies);
            run.errors += errors;
        }
    }
    let elapsed = started.elapsed();
    for run in &mut runs {
        run.elapsed = elapsed;
    }
    runs
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// A connection to `target`, closed with a reset when dropped (as the
/// proxy closes its own upstream connections): a client closing first with
/// a FIN keeps its side in `TIME_WAIT` for a minute, and a closed loop
/// against an app that closes every connection leaves ~16k of them per
/// 4-second turn towards the app's address, which every later `connect` to
/// it, on either path, has to search past in the kernel. Neither path
/// leaves that for the other.
async fn connect(target: &Target) -> Option<Sender> {
    let stream = TcpStream::connect(target.connect).await.ok()?;
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(sender)
}

/// When the next request starts: at once (closed loop), or at its due
/// time — counted from then even when the client is late because the
/// last answer came after it.
async fn next_start(schedule: &mut Option<(Instant, Duration)>) -> Instant {
    let Some((due, interval)) = schedule else {
        return Instant::now();
    };
    let start = *due;
    *due += *interval;
    if Instant::now() >= start {
        return start;
    }
    tokio::time::sleep_until(start.into()).await;
    // The timer's own lateness (up to its 1 ms tick) is not the server's.
    Instant::now()
}

/// One client: GETs until `deadline`, keeping each connection while the
/// other side does, closed loop or on `schedule` (first due, interval).
/// Request `k` goes to `targets[(first + k) % n]`: with several targets
/// the client takes turns between them request by request. The latencies
/// and errors of each target.
async fn client(
    targets: Arc<Vec<Target>>,
    first: usize,
    deadline: Instant,
    mut schedule: Option<(Instant, Duration)>,
) -> Vec<(Vec<Duration>, usize)> {
    let mut results: Vec<(Vec<Duration>, usize)> =
        targets.iter().map(|_| (Vec::new(), 0)).collect();
    let mut senders: Vec<Option<Sender>> = targets.iter().map(|_| None).collect();
    for turn in first.. {
        let started = next_start(&mut schedule).await;
        if started >= deadline {
            break;
        }
        let index = turn % targets.len();
        let (target, sender) = (&targets[index], &mut senders[index]);
        let (latencies, errors) = &mut results[index];
        let host = target.connect.to_string();
        let mut current = match sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => match connect(target).await {
                Some(sender) => sender,
                None => {
                    *errors += 1;
                    continue;
                }
            },
        };
        if current.ready().await.is_err() {
            *errors += 1;
            continue;
        }
        let request = hyper::Request::get(target.path.as_str())
            .header("host", host.as_str())
            .body(Empty::<Bytes>::new())
            .expect("a request");
        let Ok(response) = current.send_request(request).await else {
            *errors += 1;
            continue;
        };
        let ok = response.status() == 200;
        let keep = !response
            .headers()
            .get("connection")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let length = response
            .into_body()
            .collect()
            .await
            .map(|body| body.to_bytes().len());
        if ok && length.is_ok_and(|length| length == FILE_BYTES) {
            latencies.push(started.elapsed());
        } else {
            *errors += 1;
        }
        if keep {
            *sender = Some(current);
        }
    }
    results
}

/// The throughput goal: proxy ÷ direct requests/s.
const GOAL_RATIO: f64 = 0.7;
/// The added-latency goal: paced p99, proxy − direct, in ms.
const GOAL_ADDED_P99_MS: f64 = 1.0;

impl Report {
    fn ratio(&self, arm: usize) -> f64 {
        self.closed_proxy[arm].rate() / self.closed_direct.rate().max(f64::EPSILON)
    }

    fn added_ms(&self, arm: usize, q: f64) -> f64 {
        self.paced_proxy[arm].ms(q) - self.paced_direct.ms(q)
    }

    /// Proxy − direct at quantile `q`, the paths interleaved.
    fn mixed_added_ms(&self, arm: usize, q: f64) -> f64 {
        self.mixed_proxy[arm].ms(q) - self.mixed_direct.ms(q)
    }

    fn print(&self, upstream: &Upstream, settings: Settings, labels: &[&str]) {
        let (cd, pd) = (&self.closed_direct, &self.paced_direct);
        let paced_rate = settings.clients as f64 / self.interval.as_secs_f64();
        println!();
        println!("upstream: {} on port {}", upstream.name, upstream.port);
        println!("| measure | direct | proxy | proxy vs direct | goal |");
        println!("|---|---|---|---|---|");
        for (arm, label) in labels.iter().enumerate() {
            let (cp, pp) = (&self.closed_proxy[arm], &self.paced_proxy[arm]);
            let ratio = self.ratio(arm);
            let proxy = if labels.len() > 1 {
                format!("proxy `{label}`")
            } else {
                "proxy".to_owned()
            };
            println!(
                "| {proxy}: closed loop requests/s | {:.0} | {:.0} | {ratio:.2}× | ≥ {GOAL_RATIO}× |",
                cd.rate(),
                cp.rate()
            );
            println!(
                "| {proxy}: closed loop p50 / p99 ms (saturated: clients ÷ rate, not the hop) | {:.2} / {:.2} | {:.2} / {:.2} | {:+.2} / {:+.2} | — |",
                cd.ms(0.5),
                cd.ms(0.99),
                cp.ms(0.5),
                cp.ms(0.99),
                cp.ms(0.5) - cd.ms(0.5),
                cp.ms(0.99) - cd.ms(0.99)
            );
            println!(
                "| {proxy}: paced {paced_rate:.0} req/s (each client every {:.1} ms, {:.0}% of the slowest path's rate): p50 ms | {:.3} | {:.3} | {:+.3} | — |",
                self.interval.as_secs_f64() * 1000.0,
                settings.pace * 100.0,
                pd.ms(0.5),
                pp.ms(0.5),
                self.added_ms(arm, 0.5)
            );
            println!(
                "| {proxy}: paced p99 ms | {:.3} | {:.3} | {:+.3} | ≤ +{GOAL_ADDED_P99_MS} ms |",
                pd.ms(0.99),
                pp.ms(0.99),
                self.added_ms(arm, 0.99)
            );
            answered_row(&format!("{proxy}: paced"), pd, pp);
            let slow = Duration::from_millis(200);
            println!(
                "| {proxy}: paced requests over 200 ms (SYN retransmits are 1 s) | {} | {} | | |",
                pd.slower_than(slow),
                pp.slower_than(slow)
            );
            let (md, mp) = (&self.mixed_direct, &self.mixed_proxy[arm]);
            println!(
                "| {proxy}: paced, paths interleaved request by request: p50 / p99 ms | {:.3} / {:.3} | {:.3} / {:.3} | {:+.3} / {:+.3} | ≤ +{GOAL_ADDED_P99_MS} ms (p99) |",
                md.ms(0.5),
                md.ms(0.99),
                mp.ms(0.5),
                mp.ms(0.99),
                self.mixed_added_ms(arm, 0.5),
                self.mixed_added_ms(arm, 0.99)
            );
            answered_row(&format!("{proxy}: paced interleaved:"), md, mp);
            let shown = |count: Option<u64>| count.map_or("?".to_owned(), |n| n.to_string());
            println!(
                "| {proxy}: paced SYNs dropped by the app's full accept queue (its ListenOverflows) | {} | {} | | |",
                shown(self.dropped_direct),
                shown(self.dropped_proxy[arm])
            );
            println!(
                "| {proxy}: closed loop errors | {} | {} | | |",
                cd.errors, cp.errors
            );
            match self.server_cpu[arm] {
                Some(cpu) if !cp.latencies.is_empty() => println!(
                    "| {proxy}: lease-server CPU per proxied request (closed loop) | | {:.1} µs | | |",
                    cpu * 1e6 / cp.latencies.len() as f64
                ),
                _ => println!(
                    "| {proxy}: lease-server CPU per proxied request | | not measurable here | | |"
                ),
            }
            let key = upstream.key();
            let suffix = if arm == 0 {
                String::new()
            } else {
                format!("_{}", figure_name(label))
            };
            println!("FIGURE proxy_{key}{suffix}_rps_ratio={ratio:.2}");
            println!(
                "FIGURE proxy_{key}{suffix}_paced_added_p50_ms={:.3}",
                self.added_ms(arm, 0.5)
            );
            println!(
                "FIGURE proxy_{key}{suffix}_paced_added_p99_ms={:.3}",
                self.added_ms(arm, 0.99)
            );
            println!(
                "FIGURE proxy_{key}{suffix}_interleaved_added_p99_ms={:.3}",
                self.mixed_added_ms(arm, 0.99)
            );
        }
    }

    /// This build's verdict on each goal against `upstream`.
    fn verdicts(&self, upstream: &Upstream) {
        let ratio = self.ratio(0);
        let added = self.added_ms(0, 0.99);
        let said = |met: bool| if met { "met" } else { "MISSED" };
        println!(
            "VERDICT {}: throughput {ratio:.2}× of direct (goal ≥ {GOAL_RATIO}×): {}",
            upstream.key(),
            said(ratio >= GOAL_RATIO)
        );
        println!(
            "VERDICT {}: added p99 {added:+.3} ms paced (goal ≤ +{GOAL_ADDED_P99_MS} ms): {}",
            upstream.key(),
            said(added <= GOAL_ADDED_P99_MS)
        );
        let mixed = self.mixed_added_ms(0, 0.99);
        println!(
            "VERDICT {}: added p99 {mixed:+.3} ms paced, paths interleaved (goal ≤ +{GOAL_ADDED_P99_MS} ms): {}",
            upstream.key(),
            said(mixed <= GOAL_ADDED_P99_MS)
        );
    }
}

impl Upstream {
    /// Whether `PROXY_BENCH_UPSTREAMS` (comma-separated keys: `httpd`,
    /// `closing`, `keepalive`; default all) names it.
    fn wanted(&self) -> bool {
        std::env::var("PROXY_BENCH_UPSTREAMS").map_or(true, |keys| {
            keys.split(',').any(|key| key.trim() == self.key())
        })
    }

    /// Its short name in `FIGURE` and `VERDICT` lines.
    fn key(&self) -> &'static str {
        match self.port {
            HTTPD_PORT => "httpd",
            CLOSING_PORT => "closing",
            _ => "keepalive",
        }
    }
}

/// The "requests answered / errors" row of a measure, direct and proxy.
fn answered_row(measure: &str, direct: &Run, proxy: &Run) {
    println!(
        "| {measure} requests answered / errors | {} / {} | {} / {} | | |",
        direct.latencies.len(),
        direct.errors,
        proxy.latencies.len(),
        proxy.errors
    );
}

/// `label` as a figure name: lowercase letters, digits and `_`.
fn figure_name(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Compiles `bench-apps/keepalive_httpd.rs` into a static binary beside
/// the bench's own, or says why it cannot.
fn build_app() -> Option<PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-apps/keepalive_httpd.rs");
    let dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_else(std::env::temp_dir);
    let binary = dir.join("keepalive_httpd");
    let output = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned()))
        .args(["--edition", "2021", "-O", "-C", "strip=symbols"])
        .args(["-C", "target-feature=+crt-static", "-o"])
        .arg(&binary)
        .arg(&source)
        .output();
    match output {
        Ok(output) if output.status.success() => Some(binary),
        Ok(output) => {
            skip_or_fail(format!(
                "proxy bench: cannot build the static app server (is the C library's static \
                 part, libc6-dev, installed?): {}",
                String::from_utf8_lossy(&output.stderr)
            ));
            None
        }
        Err(error) => {
            skip_or_fail(format!("proxy bench: cannot run rustc: {error}"));
            None
        }
    }
}

/// The keep-alive app on [`KEEPALIVE_PORT`] of `container`, answering
/// [`FILE_BYTES`] bytes.
fn start_app(binary: &Path, container: &str) {
    let status = Command::new("docker")
        .arg("cp")
        .arg(binary)
        .arg(format!("{container}:/tmp/keepalive_httpd"))
        .stdin(Stdio::null())
        .status()
        .expect("docker cp");
    assert!(status.success(), "the app copied into the lease");
    for (port, mode) in [(KEEPALIVE_PORT, "keep-alive"), (CLOSING_PORT, "close")] {
        let status = Command::new("docker")
            .args(["exec", "-d", container, "/tmp/keepalive_httpd"])
            .args([port.to_string(), FILE_BYTES.to_string(), mode.to_owned()])
            .stdin(Stdio::null())
            .status()
            .expect("docker exec");
        assert!(status.success(), "the app started on port {port}");
    }
    std::thread::sleep(Duration::from_millis(300));
}

/// busybox `httpd` on [`HTTPD_PORT`] of `container`, serving a
/// [`FILE_BYTES`] file.
fn start_httpd(container: &str) {
    let script = format!(
        "mkdir -p /tmp/www && head -c {FILE_BYTES} /dev/zero | tr '\\0' x > /tmp/www/file \
         && httpd -p {HTTPD_PORT} -h /tmp/www"
    );
    let status = Command::new("docker")
        .args(["exec", container, "sh", "-c", &script])
        .stdin(Stdio::null())
        .status()
        .expect("docker exec");
    assert!(status.success(), "httpd started");
    std::thread::sleep(Duration::from_millis(300));
}

/// The `ListenOverflows` counter of `container`'s network namespace (read
/// from its `/proc/net/netstat`): SYNs dropped because a listening
/// socket's accept queue was full. `None` when it cannot be read.
fn listen_overflows(container: &str) -> Option<u64> {
    let output = Command::new("docker")
        .args(["exec", container, "cat", "/proc/net/netstat"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines().filter(|line| line.starts_with("TcpExt:"));
    let names = lines.next()?.split_whitespace();
    let values = lines.next()?.split_whitespace();
    names
        .zip(values)
        .find(|(name, _)| *name == "ListenOverflows")
        .and_then(|(_, value)| value.parse().ok())
}

fn docker_inspect_ip(container: &str) -> String {
    let output = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            container,
        ])
        .output()
        .expect("docker inspect");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .expect("the container's address")
        .to_owned()
}
