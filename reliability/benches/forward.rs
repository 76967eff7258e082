//! TCP port-forward throughput: `lease port-forward` through lease-server
//! against a direct connection to the container's address.
//!
//! One run, one lease (offering `ubuntu` of the offline catalog: the local
//! busybox image with 2 CPUs), one release `lease-server` (single-user, on
//! loopback) and one release `lease port-forward` of two ports. In the
//! container, busybox `nc -ll` serves:
//!
//! - **download** (port → client): `dd if=/dev/zero bs=64k` of
//!   `FORWARD_BENCH_MIB` MiB (default 256) per connection, timed from the
//!   connect to the end of file;
//! - **upload** (client → port): `dd of=/dev/null bs=64k`, then `done`; the
//!   client sends the same amount, half-closes and is timed until `done`
//!   arrives.
//!
//! Through the forward the path is: local TCP → the CLI → a WebSocket (one
//! per connection) → lease-server → TCP to the container. Direct is a TCP
//! connection from this process to the container's address on the
//! namespace network (what the server itself dials). The two take turns,
//! `FORWARD_BENCH_RUNS` (default 5) runs each way; median and best MiB/s,
//! and the ratio (goal ≥ 0.5×, a `VERDICT` line each way). Beside them,
//! the CPU time lease-server and `lease port-forward` used per GiB carried
//! (from `/proc`): the forward's cost, which other load on the machine
//! changes little, where the throughputs move with it. Skips with a reason
//! without Docker or the test image (fails under `CI=true`). Run with
//! `cargo bench -p lease-reliability --bench forward`, or with the proxy
//! bench in one run: `cargo bench -p lease-reliability --bench proxy
//! --bench forward`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lease_reliability::server::{self, Server, ServerApi};
use lease_reliability::skip_or_fail;
use lease_testkit::docker::{NamespaceGuard, docker_ready};

/// The download server's port in the container.
const DOWNLOAD: u16 = 7100;
/// The upload server's port in the container.
const UPLOAD: u16 = 7101;
/// Longest wait for the lease, a server, or one run.
const LIMIT: Duration = Duration::from_secs(60);
/// Size of the transfers' reads and writes.
const CHUNK: usize = 64 * 1024;
/// The goal: forward throughput ÷ direct, medians.
const GOAL_RATIO: f64 = 0.5;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if !docker_ready() {
        skip_or_fail("forward bench: Docker is not reachable");
        return;
    }
    let Some(cli) = cli_binary() else {
        skip_or_fail("forward bench: no `lease` binary (cargo build -p lease-cli failed)");
        return;
    };
    let guard = NamespaceGuard::random();
    let Some(server) = Server::start(server::config(guard.namespace())) else {
        return;
    };
    let api = server.api();
    let (lease, container) = api.running_lease("ubuntu", LIMIT);
    let mib = env_number("FORWARD_BENCH_MIB", 256).max(1);
    let runs = env_number("FORWARD_BENCH_RUNS", 5).max(1);
    let bytes = (mib as u64) << 20;
    start_servers(&container, bytes);
    let address = container_address(&container);
    let mut forward = PortForward::start(&cli, &server.url(), &lease);
    let through = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let direct = |port: u16| SocketAddr::new(address, port);
    let mut report = Report {
        mib,
        ..Report::default()
    };
    // One of each to warm up (connections, the CLI's first tunnel).
    download(through(forward.download), bytes);
    download(direct(DOWNLOAD), bytes);
    let cpu = CpuMeter::new(server.pid(), forward.child.id());
    report.load_before = lease_reliability::cpu::load_line();
    for _ in 0..runs {
        let (took, used) = cpu.during(|| download(through(forward.download), bytes));
        report.down_forward.push(rate(bytes, took));
        report.down_cpu.add(used);
        report
            .down_direct
            .push(rate(bytes, download(direct(DOWNLOAD), bytes)));
        let (took, used) = cpu.during(|| upload(through(forward.upload), bytes));
        report.up_forward.push(rate(bytes, took));
        report.up_cpu.add(used);
        report
            .up_direct
            .push(rate(bytes, upload(direct(UPLOAD), bytes)));
    }
    report.load_after = lease_reliability::cpu::load_line();
    report.print();
    forward.stop();
    let _ = api.delete(&lease);
    drop(server);
    drop(guard);
}

/// The `lease` binary next to this profile's `lease-server`, built if
/// missing (or `LEASE_CLI_BIN`).
fn cli_binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("LEASE_CLI_BIN")
        && !path.is_empty()
    {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    let mut dir = exe.parent()?;
    if dir.ends_with("deps") {
        dir = dir.parent()?;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = Command::new(cargo);
    build
        .args(["build", "-q", "-p", "lease-cli"])
        .current_dir(lease_testkit::workspace_root())
        .stdin(Stdio::null());
    if dir.file_name().is_some_and(|name| name == "release") {
        build.arg("--release");
    }
    let built = build.status().is_ok_and(|status| status.success());
    let path = dir.join("lease");
    (built || path.exists()).then_some(path)
}

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("docker");
    assert!(output.status.success(), "docker {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The download and upload servers, once they listen.
fn start_servers(container: &str, bytes: u64) {
    let count = (bytes / CHUNK as u64).to_string();
    let down = format!("dd if=/dev/zero bs={CHUNK} count={count} 2>/dev/null");
    let up = format!("dd of=/dev/null bs={CHUNK} 2>/dev/null; echo done");
    for (port, script) in [(DOWNLOAD, down), (UPLOAD, up)] {
        let port = port.to_string();
        docker(&[
            "exec", "-d", container, "nc", "-ll", "-p", &port, "-e", "sh", "-c", &script,
        ]);
    }
    let deadline = Instant::now() + LIMIT;
    loop {
        let listening = docker(&["exec", container, "netstat", "-ltn"]);
        if [DOWNLOAD, UPLOAD]
            .iter()
            .all(|port| listening.contains(&format!(":{port} ")))
        {
            return;
        }
        assert!(Instant::now() < deadline, "the servers did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The container's address (the lease's namespace network is its only one).
fn container_address(container: &str) -> IpAddr {
    let text = docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
        container,
    ]);
    text.split_whitespace()
        .find_map(|address| address.parse().ok())
        .unwrap_or_else(|| panic!("no address in {text:?}"))
}

/// A running `lease port-forward :DOWNLOAD :UPLOAD`: its local ports.
struct PortForward {
    child: Child,
    download: u16,
    upload: u16,
}

impl PortForward {
    fn start(cli: &PathBuf, server: &str, lease: &str) -> PortForward {
        let mut child = Command::new(cli)
            .args(["port-forward", lease])
            .args([format!(":{DOWNLOAD}"), format!(":{UPLOAD}")])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LEASE_SERVER", server)
            .env(
                "XDG_CONFIG_HOME",
                std::env::temp_dir().join("lease-forward-bench"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("lease port-forward");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut port = || -> u16 {
            let line = lines
                .next()
                .and_then(Result::ok)
                .expect("a Forwarding line");
            line.strip_prefix("Forwarding 127.0.0.1:")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|port| port.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line: {line}"))
        };
        let (download, upload) = (port(), port());
        PortForward {
            child,
            download,
            upload,
        }
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&address, LIMIT).expect("connect");
    stream.set_read_timeout(Some(LIMIT)).expect("timeout");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// Reads `bytes` from `address` until end of file; how long it took.
fn download(address: SocketAddr, bytes: u64) -> Duration {
    let started = Instant::now();
    let mut stream = connect(address);
    let mut buffer = vec![0; CHUNK];
    let mut total = 0u64;
    loop {
        let read = stream.read(&mut buffer).expect("read");
        if read == 0 {
            break;
        }
        total += read as u64;
    }
    let took = started.elapsed();
    assert_eq!(total, bytes, "download from {address}");
    took
}

/// Sends `bytes` to `address`, half-closes, waits for `done`.
fn upload(address: SocketAddr, bytes: u64) -> Duration {
    let started = Instant::now();
    let mut stream = connect(address);
    let buffer = vec![0x5a; CHUNK];
    let mut sent = 0u64;
    while sent < bytes {
        let part = (bytes - sent).min(CHUNK as u64) as usize;
        stream.write_all(&buffer[..part]).expect("write");
        sent += part as u64;
    }
    stream.shutdown(Shutdown::Write).expect("half-close");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("the answer");
    let took = started.elapsed();
    assert_eq!(answer.trim(), "done", "upload to {address}");
    took
}

/// The CPU time (user + system, all threads) lease-server and `lease
/// port-forward` use: what the forward costs, whatever else runs on the
/// machine (its throughput depends on that, its CPU time hardly does).
/// Read from `/proc/<pid>/stat` (Linux); `None` elsewhere.
struct CpuMeter {
    server: Option<u32>,
    cli: u32,
    proc: lease_reliability::cpu::CpuMeter,
}

/// CPU seconds of the server and the CLI.
#[derive(Clone, Copy, Debug, Default)]
struct CpuUsed {
    server: f64,
    cli: f64,
}

impl CpuMeter {
    fn new(server: Option<u32>, cli: u32) -> CpuMeter {
        CpuMeter {
            server,
            cli,
            proc: lease_reliability::cpu::CpuMeter::new(),
        }
    }

    fn now(&self) -> Option<CpuUsed> {
        Some(CpuUsed {
            server: self.proc.seconds(self.server?)?,
            cli: self.proc.seconds(self.cli)?,
        })
    }

    /// Runs `work`: what it returned, and the CPU time used meanwhile.
    fn during(&self, work: impl FnOnce() -> Duration) -> (Duration, Option<CpuUsed>) {
        let before = self.now();
        let took = work();
        let used = before.zip(self.now()).map(|(before, after)| CpuUsed {
            server: after.server - before.server,
            cli: after.cli - before.cli,
        });
        (took, used)
    }
}

/// CPU used by the forward runs of one direction (`None` once any run
/// could not be measured).
#[derive(Debug)]
struct CpuTotal(Option<CpuUsed>);

impl Default for CpuTotal {
    fn default() -> Self {
        CpuTotal(Some(CpuUsed::default()))
    }
}

impl CpuTotal {
    fn add(&mut self, used: Option<CpuUsed>) {
        self.0 = self.0.zip(used).map(|(total, used)| CpuUsed {
            server: total.server + used.server,
            cli: total.cli + used.cli,
        });
    }
}

fn rate(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / took.as_secs_f64()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn best(values: &[f64]) -> f64 {
    values.iter().copied().fold(0.0, f64::max)
}

#[derive(Debug, Default)]
struct Report {
    mib: usize,
    down_forward: Vec<f64>,
    down_direct: Vec<f64>,
    up_forward: Vec<f64>,
    up_direct: Vec<f64>,
    down_cpu: CpuTotal,
    up_cpu: CpuTotal,
    load_before: String,
    load_after: String,
}

impl Report {
    fn print(&self) {
        println!(
            "forward: TCP throughput, {} MiB per connection, {} runs each way",
            self.mib,
            self.down_forward.len()
        );
        println!(
            "machine before: {}; after: {}",
            self.load_before, self.load_after
        );
        println!();
        println!("| direction | path | median MiB/s | best MiB/s |");
        println!("|---|---|---|---|");
        let directions = [
            ("download", &self.down_forward, &self.down_direct),
            ("upload", &self.up_forward, &self.up_direct),
        ];
        for (name, forward, direct) in directions {
            let (f_med, f_best) = (median(forward), best(forward));
            let (d_med, d_best) = (median(direct), best(direct));
            println!(
                "| {name} | lease port-forward (via lease-server) | {f_med:.0} | {f_best:.0} |"
            );
            println!("| {name} | direct to the container address | {d_med:.0} | {d_best:.0} |");
            println!(
                "| {name} | ratio forward / direct (goal ≥ {GOAL_RATIO}) | {:.2} | {:.2} |",
                f_med / d_med,
                f_best / d_best
            );
        }
        println!();
        for (name, forward, direct) in directions {
            let ratio = median(forward) / median(direct);
            let said = if ratio >= GOAL_RATIO { "met" } else { "MISSED" };
            println!(
                "VERDICT forward {name}: median throughput {ratio:.2}× of direct (goal ≥ {GOAL_RATIO}×): {said}"
            );
        }
        println!();
        println!("CPU time of the forward per GiB carried (all forward runs):");
        println!();
        println!("| direction | lease-server s/GiB | lease port-forward s/GiB |");
        println!("|---|---|---|");
        let gib = (self.mib * self.down_forward.len()) as f64 / 1024.0;
        for (name, cpu) in [("download", &self.down_cpu), ("upload", &self.up_cpu)] {
            match cpu.0 {
                Some(used) => println!(
                    "| {name} | {:.2} | {:.2} |",
                    used.server / gib,
                    used.cli / gib
                ),
                None => println!("| {name} | n/a | n/a |"),
            }
        }
    }
}
