//! Shell sessions through lease-server against a direct `docker exec` on the
//! same container: what the server's hop costs.
//!
//! One run, one lease (offering `ubuntu` of the offline catalog: the local
//! busybox image with 2 CPUs and a writable root), one release
//! `lease-server` (single-user, on loopback):
//!
//! - **Keystroke echo**: a terminal (`tty`) in raw mode running `cat`, which
//!   echoes each byte it reads, as a shell's line editor does per key. One
//!   byte is sent, its echo awaited, N times each way (`SHELL_BENCH_ECHOES`,
//!   default 2000, after 100 to warm up). Through the server: the attach
//!   WebSocket (binary stdin frames, output frames). Direct: a bollard exec
//!   attached over the engine's socket. Both terminals stay open and the
//!   two take turns in blocks of 100, so both see the same machine load.
//!   p50 and p99 of the round trip. For scale, the same turns include a
//!   bare loopback TCP round trip of one byte to an echo thread: the least
//!   any extra hop (the server's) can add.
//! - **Throughput**: `cat` of a 50 MiB file (written into the container's
//!   `/tmp` first) without a terminal, timed from the byte that starts it to
//!   the last output byte; median and best of `SHELL_BENCH_RUNS` (default
//!   5) runs each way, taking turns, in MiB/s.
//!
//! Prints a table with the ratios (goals: echo ≤ 1.2×, throughput ≥ 0.8×).
//! Skips with a reason without Docker or the test image (fails under
//! `CI=true`). Run with `cargo bench -p lease-reliability --bench shell`.

use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use futures::{SinkExt, StreamExt};
use lease_reliability::api::Api;
use lease_reliability::server::{self, Server, ServerApi};
use lease_reliability::{quantile, skip_or_fail};
use lease_testkit::docker::{NamespaceGuard, docker_ready};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Size of the file `cat` streams.
const FILE_BYTES: u64 = 50 * 1024 * 1024;
/// Where it is written in the container.
const FILE_PATH: &str = "/tmp/shell-bench";
/// The echoing terminal: raw mode (no line discipline echo, no output
/// processing), a marker once set up, then `cat`.
const ECHO_COMMAND: &str = "stty raw -echo; printf R; exec cat";
/// Round trips before the measured ones.
const WARM_UP: usize = 100;
/// Round trips of one path before the other takes its turn.
const ECHO_BLOCK: usize = 100;
/// Longest wait for one echo or one run.
const LIMIT: Duration = Duration::from_secs(60);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if !docker_ready() {
        skip_or_fail("shell bench: Docker is not reachable");
        return;
    }
    let guard = NamespaceGuard::random();
    let config = server::config(guard.namespace()).args(["--shell-detach-timeout", "60s"]);
    let Some(server) = Server::start(config) else {
        return;
    };
    let api = server.api();
    let (lease, container) = api.running_lease("ubuntu", LIMIT);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let echoes = env_number("SHELL_BENCH_ECHOES", 2000);
    let runs = env_number("SHELL_BENCH_RUNS", 5).max(1);
    let docker = Docker::connect_with_defaults().expect("the Docker engine");
    let report = runtime.block_on(async {
        let echo = echoes_in_turn(&api, &lease, &docker, &container, echoes).await;
        write_file(&docker, &container).await;
        let mut server_rates = Vec::new();
        let mut direct_rates = Vec::new();
        for _ in 0..runs {
            server_rates.push(server_cat(&api, &lease).await);
            direct_rates.push(direct_cat(&docker, &container).await);
        }
        Report {
            echoes,
            echo,
            server_rates,
            direct_rates,
        }
    });
    report.print();
    let _ = api.delete(&lease);
    drop(server);
    drop(guard);
}

/// `POST /api/containers/{id}/sessions` → the attach WebSocket, past its
/// `attached` message.
async fn attach(api: &Api, lease: &str, command: &str, tty: bool) -> Socket {
    let body = json!({ "command": ["sh", "-c", command], "tty": tty });
    let created = api
        .request(
            "POST",
            &format!("/api/containers/{lease}/sessions"),
            Some(&body),
        )
        .and_then(|response| response.ok())
        .expect("a session");
    let path = created["attachPath"].as_str().expect("its attach path");
    let url = format!("ws://{}{path}", api.address());
    // Nagle off, as a terminal client has it; a small read buffer, as
    // tungstenite clears the whole of it before every read attempt.
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    let (mut socket, _) =
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true)
            .await
            .expect("the attach WebSocket");
    match next(&mut socket).await {
        Message::Text(text) => {
            let first: Value = serde_json::from_str(&text).expect("JSON");
            assert_eq!(first["type"], "attached", "{first}");
        }
        other => panic!("expected `attached`, got {other:?}"),
    }
    socket
}

async fn next(socket: &mut Socket) -> Message {
    tokio::time::timeout(LIMIT, socket.next())
        .await
        .expect("a message in time")
        .expect("the socket open")
        .expect("a frame")
}

/// Reads output frames until `wanted` is among the output bytes.
async fn server_wait_for(socket: &mut Socket, wanted: u8) {
    loop {
        if let Message::Binary(frame) = next(socket).await
            && frame.get(1..).is_some_and(|bytes| bytes.contains(&wanted))
        {
            return;
        }
    }
}

/// The server's echoing terminal, ready (past the marker).
async fn server_terminal(api: &Api, lease: &str) -> Socket {
    let mut socket = attach(api, lease, ECHO_COMMAND, true).await;
    server_wait_for(&mut socket, b'R').await;
    socket
}

/// One keystroke through the server and its echo.
async fn server_keystroke(socket: &mut Socket) -> Duration {
    let started = Instant::now();
    socket
        .send(Message::Binary(vec![b'x'].into()))
        .await
        .expect("stdin sent");
    server_wait_for(socket, b'x').await;
    started.elapsed()
}

/// Round trip times of each path.
struct Echoes {
    server: Vec<Duration>,
    direct: Vec<Duration>,
    loopback: Vec<Duration>,
}

/// `n` echo round trips each way, the paths taking turns.
async fn echoes_in_turn(
    api: &Api,
    lease: &str,
    docker: &Docker,
    container: &str,
    n: usize,
) -> Echoes {
    let mut socket = server_terminal(api, lease).await;
    let (mut output, mut input) = exec(docker, container, ECHO_COMMAND, true).await;
    direct_wait_for(&mut output, b'R').await;
    let mut bare = loopback_echo().await;
    for _ in 0..WARM_UP {
        server_keystroke(&mut socket).await;
        direct_keystroke(&mut output, &mut input).await;
        loopback_keystroke(&mut bare).await;
    }
    let mut echoes = Echoes {
        server: Vec::with_capacity(n),
        direct: Vec::with_capacity(n),
        loopback: Vec::with_capacity(n),
    };
    while echoes.server.len() < n {
        let block = ECHO_BLOCK.min(n - echoes.server.len());
        for _ in 0..block {
            echoes.server.push(server_keystroke(&mut socket).await);
        }
        for _ in 0..block {
            echoes
                .direct
                .push(direct_keystroke(&mut output, &mut input).await);
        }
        for _ in 0..block {
            echoes.loopback.push(loopback_keystroke(&mut bare).await);
        }
    }
    let _ = socket.close(None).await;
    let _ = input.write_all(&[0x04]).await; // ^D: cat ends
    let _ = input.shutdown().await;
    echoes
}

/// A connection to a thread that echoes every byte back over loopback TCP
/// (Nagle off both ends); the thread ends when the connection closes.
async fn loopback_echo() -> tokio::net::TcpStream {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let address = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let mut byte = [0u8; 1];
        while matches!(stream.read(&mut byte), Ok(1)) {
            if stream.write_all(&byte).is_err() {
                return;
            }
        }
    });
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("the echo thread");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    stream
}

/// One byte to the echo thread and back.
async fn loopback_keystroke(stream: &mut tokio::net::TcpStream) -> Duration {
    let started = Instant::now();
    stream.write_all(b"x").await.expect("sent");
    let mut byte = [0u8; 1];
    tokio::time::timeout(LIMIT, stream.read_exact(&mut byte))
        .await
        .expect("the echo in time")
        .expect("the echo");
    started.elapsed()
}

async fn server_cat(api: &Api, lease: &str) -> f64 {
    let command = format!("read go; exec cat {FILE_PATH}");
    let mut socket = attach(api, lease, &command, false).await;
    let started = Instant::now();
    socket
        .send(Message::Binary(b"\n".to_vec().into()))
        .await
        .expect("stdin sent");
    let mut received: u64 = 0;
    while received < FILE_BYTES {
        match next(&mut socket).await {
            Message::Binary(frame) => received += frame.len().saturating_sub(1) as u64,
            Message::Text(text) => panic!("the cat ended early at {received} bytes: {text}"),
            Message::Close(close) => panic!("closed at {received} bytes: {close:?}"),
            _ => {}
        }
    }
    let rate = mib_per_second(received, started.elapsed());
    let _ = socket.close(None).await;
    rate
}

/// A direct exec of `sh -c command`, attached; its output and stdin.
async fn exec(
    docker: &Docker,
    container: &str,
    command: &str,
    tty: bool,
) -> (
    std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
    >,
    std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
) {
    let config = ExecConfig {
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(tty),
        cmd: Some(vec!["sh".to_owned(), "-c".to_owned(), command.to_owned()]),
        ..ExecConfig::default()
    };
    let created = docker
        .create_exec(container, config)
        .await
        .expect("exec created");
    let options = StartExecOptions {
        detach: false,
        tty,
        output_capacity: None,
    };
    match docker
        .start_exec(&created.id, Some(options))
        .await
        .expect("exec started")
    {
        StartExecResults::Attached { output, input } => (output, input),
        StartExecResults::Detached => panic!("the engine detached the exec"),
    }
}

fn output_bytes(item: Option<Result<LogOutput, bollard::errors::Error>>) -> Vec<u8> {
    match item {
        Some(Ok(
            LogOutput::StdOut { message }
            | LogOutput::Console { message }
            | LogOutput::StdErr { message },
        )) => message.to_vec(),
        Some(Ok(LogOutput::StdIn { .. })) => Vec::new(),
        Some(Err(error)) => panic!("exec output failed: {error}"),
        None => panic!("exec output ended early"),
    }
}

async fn direct_wait_for<S>(output: &mut S, wanted: u8)
where
    S: futures::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Unpin,
{
    loop {
        let item = tokio::time::timeout(LIMIT, output.next())
            .await
            .expect("output in time");
        if output_bytes(item).contains(&wanted) {
            return;
        }
    }
}

/// One keystroke straight to the engine and its echo.
async fn direct_keystroke<S>(
    output: &mut S,
    input: &mut std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
) -> Duration
where
    S: futures::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Unpin,
{
    let started = Instant::now();
    input.write_all(b"x").await.expect("stdin sent");
    input.flush().await.expect("stdin flushed");
    direct_wait_for(output, b'x').await;
    started.elapsed()
}

async fn direct_cat(docker: &Docker, container: &str) -> f64 {
    let command = format!("read go; exec cat {FILE_PATH}");
    let (mut output, mut input) = exec(docker, container, &command, false).await;
    let started = Instant::now();
    input.write_all(b"\n").await.expect("stdin sent");
    input.flush().await.expect("stdin flushed");
    let mut received: u64 = 0;
    while received < FILE_BYTES {
        let item = tokio::time::timeout(LIMIT, output.next())
            .await
            .expect("output in time");
        received += output_bytes(item).len() as u64;
    }
    let rate = mib_per_second(received, started.elapsed());
    let _ = input.shutdown().await;
    rate
}

/// Writes the 50 MiB file in the container (random bytes: nothing on the way
/// can shrink them).
async fn write_file(docker: &Docker, container: &str) {
    let command = format!("head -c {FILE_BYTES} /dev/urandom > {FILE_PATH} && wc -c < {FILE_PATH}");
    let (mut output, _input) = exec(docker, container, &command, false).await;
    let mut text = Vec::new();
    while let Some(item) = tokio::time::timeout(LIMIT, output.next())
        .await
        .expect("the file written in time")
    {
        text.extend(output_bytes(Some(item)));
    }
    let written = String::from_utf8_lossy(&text);
    assert_eq!(
        written.trim(),
        FILE_BYTES.to_string(),
        "writing the file: {written}"
    );
}

fn mib_per_second(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64()
}

struct Report {
    echoes: usize,
    echo: Echoes,
    server_rates: Vec<f64>,
    direct_rates: Vec<f64>,
}

fn micros(times: &[Duration], q: f64) -> f64 {
    quantile(times, q).map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn best(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NAN, f64::max)
}

impl Report {
    fn print(&self) {
        let echo = &self.echo;
        let (s50, s99) = (micros(&echo.server, 0.5), micros(&echo.server, 0.99));
        let (d50, d99) = (micros(&echo.direct, 0.5), micros(&echo.direct, 0.99));
        let (l50, l99) = (micros(&echo.loopback, 0.5), micros(&echo.loopback, 0.99));
        let (s_med, s_best) = (median(&self.server_rates), best(&self.server_rates));
        let (d_med, d_best) = (median(&self.direct_rates), best(&self.direct_rates));
        println!(
            "shell: keystroke echo round trip (TTY, raw `cat`), N={}",
            self.echoes
        );
        println!();
        println!("| path | p50 µs | p99 µs |");
        println!("|---|---|---|");
        println!("| through lease-server (attach WebSocket) | {s50:.0} | {s99:.0} |");
        println!("| direct docker exec (bollard) | {d50:.0} | {d99:.0} |");
        println!(
            "| ratio server / direct (goal ≤ 1.2) | {:.2} | {:.2} |",
            s50 / d50,
            s99 / d99
        );
        println!("| server − direct | {:.0} | {:.0} |", s50 - d50, s99 - d99);
        println!(
            "| for scale: a bare loopback TCP round trip (the least one more hop adds) | {l50:.0} | {l99:.0} |"
        );
        println!();
        println!(
            "shell: `cat` of 50 MiB (no TTY), {} runs each",
            self.server_rates.len()
        );
        println!();
        println!("| path | median MiB/s | best MiB/s |");
        println!("|---|---|---|");
        println!("| through lease-server (attach WebSocket) | {s_med:.0} | {s_best:.0} |");
        println!("| direct docker exec (bollard) | {d_med:.0} | {d_best:.0} |");
        println!(
            "| ratio server / direct (goal ≥ 0.8) | {:.2} | {:.2} |",
            s_med / d_med,
            s_best / d_best
        );
    }
}
