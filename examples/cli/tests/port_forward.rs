//! `lease port-forward` through a real lease-server (tokens mode) to a real
//! container: an echo server in the lease (busybox `nc -ll -e cat`) gets
//! 10 MiB through the forward and sends them back intact (SHA-256), with
//! other connections open at once; a port nothing listens on closes the
//! local connection and says why; another owner gets 404; hostile ports and
//! plain HTTP are refused before the upgrade; Ctrl-C ends a forward (exit
//! 0); removing the lease ends one with a message and exit 1.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Child, ChildStderr, Stdio};
use std::time::{Duration, Instant};

use lease_testkit::TempDir;
use lease_testkit::docker::{NamespaceGuard, containers_of, docker_ready};
use lease_testkit::server::{Server, ServerConfig, mint_token};
use sha2::{Digest, Sha256};

/// Where Docker is not: the CLI must never need it in remote mode.
const NO_DOCKER: &str = "unix:///nonexistent/docker.sock";
/// The echo server's port in the container.
const ECHO: u16 = 7000;
/// A port nothing listens on in the container.
const EMPTY: u16 = 7001;

struct Setup {
    server: Server,
    alice: String,
    bob: String,
    config: TempDir,
    // Declared last: dropped after the server is killed.
    guard: NamespaceGuard,
}

impl Setup {
    fn start() -> Option<Setup> {
        if !docker_ready() {
            return None;
        }
        let guard = NamespaceGuard::random();
        let binary = lease_testkit::server::binary()?;
        let alice = mint_token(&binary, "alice", false);
        let bob = mint_token(&binary, "bob", false);
        let config = TempDir::new("lease-forward-config");
        let tokens = config.path().join("tokens.toml");
        std::fs::write(&tokens, format!("{}\n{}", alice.toml_entry, bob.toml_entry))
            .expect("tokens file");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600))
                .expect("chmod the tokens file");
        }
        let server = Server::start(
            ServerConfig::new(guard.namespace())
                .binary(binary)
                .ready_path("/healthz")
                .ready_within(Duration::from_secs(30))
                .args(["--tokens", &tokens.display().to_string()]),
        )?;
        Some(Setup {
            server,
            alice: alice.token,
            bob: bob.token,
            config,
            guard,
        })
    }

    /// `lease <args>` as the owner of `token`, a child process with stdout
    /// and stderr piped.
    fn spawn(&self, token: &str, args: &[&str]) -> Child {
        std::process::Command::new(common::bin())
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LEASE_SERVER", self.server.url())
            .env("LEASE_TOKEN", token)
            .env("DOCKER_HOST", NO_DOCKER)
            .env("XDG_CONFIG_HOME", self.config.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lease")
    }

    fn run(&self, token: &str, args: &[&str]) -> std::process::Output {
        self.spawn(token, args).wait_with_output().expect("lease")
    }
}

/// A running `lease port-forward`: the local ports it printed, in order.
struct Forward {
    child: Child,
    ports: Vec<u16>,
    stderr: Option<ChildStderr>,
}

impl Forward {
    fn start(setup: &Setup, id: &str, pairs: &[&str]) -> Forward {
        let mut args = vec!["port-forward", id];
        args.extend_from_slice(pairs);
        let mut child = setup.spawn(&setup.alice, &args);
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut ports = Vec::new();
        for _ in pairs {
            let line = lines
                .next()
                .and_then(Result::ok)
                .unwrap_or_else(|| panic!("no Forwarding line: {:?}", child.try_wait()));
            // `Forwarding 127.0.0.1:54321 -> <id>:7000`
            let local = line
                .strip_prefix("Forwarding 127.0.0.1:")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|port| port.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line: {line}"));
            assert!(line.ends_with(&format!("-> {id}:{}", remote_of(pairs[ports.len()]))));
            ports.push(local);
        }
        let stderr = child.stderr.take();
        Forward {
            child,
            ports,
            stderr,
        }
    }

    /// Waits for the exit; its status and stderr.
    fn wait(mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "port-forward did not exit");
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut text = String::new();
        if let Some(mut stderr) = self.stderr.take() {
            let _ = stderr.read_to_string(&mut text);
        }
        (status, text)
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn remote_of(pair: &str) -> &str {
    pair.rsplit(':').next().unwrap_or(pair)
}

/// Deterministic bytes (xorshift), every value of a byte included.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Sends `data` through `port` and reads the echo until the far side
/// closes (after our half-close); returns what came back.
fn echo_through(port: u16, data: Vec<u8>) -> Vec<u8> {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the forward");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        writer.write_all(&data).expect("write through the forward");
        // Half-close: the echo server reads EOF, finishes, closes.
        writer.shutdown(Shutdown::Write).expect("shutdown");
    });
    let mut back = Vec::new();
    (&stream).read_to_end(&mut back).expect("read the echo");
    sender.join().expect("sender");
    back
}

fn sha(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

/// The status line of a raw HTTP/1.1 request for the tunnel of `path`.
fn raw_status(setup: &Setup, path: &str, token: &str, websocket: bool) -> (u16, String) {
    let mut stream = TcpStream::connect(setup.server.address()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let upgrade = if websocket {
        "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    } else {
        ""
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n{upgrade}\r\n",
        setup.server.address()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    let mut buffer = [0; 4096];
    // Enough for the head and a short JSON body.
    while let Ok(read) = stream.read(&mut buffer) {
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&answer);
        if text.contains("}}") || text.starts_with("HTTP/1.1 101") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn tcp_path(id: &str, port: &str) -> String {
    format!("/api/containers/{id}/ports/{port}/tcp")
}

/// Starts the echo server in the lease's container and waits until it listens.
fn start_echo(container: &str) {
    let started = std::process::Command::new("docker")
        .args([
            "exec",
            "-d",
            container,
            "nc",
            "-ll",
            "-p",
            &ECHO.to_string(),
        ])
        .args(["-e", "cat"])
        .status()
        .expect("docker exec");
    assert!(started.success());
    let listening =
        lease_testkit::wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
            let out = std::process::Command::new("docker")
                .args(["exec", container, "netstat", "-ltn"])
                .output()
                .ok()?;
            String::from_utf8_lossy(&out.stdout)
                .contains(&format!(":{ECHO} "))
                .then_some(())
        });
    assert!(listening.is_some(), "the echo server did not start");
}

fn up(setup: &Setup) -> String {
    let output = setup.run(&setup.alice, &["up", "busybox", "--for", "5m"]);
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn port_forward_carries_tcp_and_ends_with_the_lease() {
    let Some(setup) = Setup::start() else {
        return;
    };
    let id = up(&setup);
    let containers = containers_of(setup.guard.namespace());
    assert_eq!(containers.len(), 1, "{containers:?}");
    start_echo(&containers[0]);

    let forward = Forward::start(&setup, &id, &[&format!(":{ECHO}"), &format!("0:{EMPTY}")]);
    let (echo_port, empty_port) = (forward.ports[0], forward.ports[1]);

    // 10 MiB both ways, intact, with three more connections at once.
    let big = noise(10 << 20, 1);
    let want = sha(&big);
    let others: Vec<_> = (2..5)
        .map(|seed| {
            let data = noise(256 << 10, seed);
            let want = sha(&data);
            (
                want,
                std::thread::spawn(move || sha(&echo_through(echo_port, data))),
            )
        })
        .collect();
    let started = Instant::now();
    let back = echo_through(echo_port, big);
    let took = started.elapsed();
    assert_eq!(back.len(), 10 << 20);
    assert_eq!(sha(&back), want);
    for (want, other) in others {
        assert_eq!(other.join().expect("connection"), want);
    }
    eprintln!("10 MiB echoed through the forward in {took:?}");

    // Nothing listening: the local connection is closed at once.
    let mut empty = TcpStream::connect(("127.0.0.1", empty_port)).expect("connect");
    empty
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut sink = Vec::new();
    let read = empty.read_to_end(&mut sink);
    assert!(read.is_ok() && sink.is_empty(), "{read:?} {sink:?}");

    // The API: 502 JSON for an empty port, 400 for bad ports and plain
    // HTTP, 404 for another owner (whatever the port), 401 without a token.
    let (status, text) = raw_status(
        &setup,
        &tcp_path(&id, &EMPTY.to_string()),
        &setup.alice,
        true,
    );
    assert_eq!(status, 502, "{text}");
    assert!(
        text.contains("upstream_unreachable") && text.contains("nothing is listening on port 7001"),
        "{text}"
    );
    for bad in ["0", "65536", "-1", "80a", "%00"] {
        let (status, text) = raw_status(&setup, &tcp_path(&id, bad), &setup.alice, true);
        assert_eq!(status, 400, "{bad}: {text}");
    }
    let (status, text) = raw_status(&setup, &tcp_path(&id, "7000"), &setup.alice, false);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("websocket_required"), "{text}");
    let (status, text) = raw_status(&setup, &tcp_path(&id, "7000"), &setup.bob, true);
    assert_eq!(status, 404, "{text}");
    let (status, _) = raw_status(&setup, &tcp_path(&id, "7000"), "not-a-token", true);
    assert_eq!(status, 401);
    let (status, _) = raw_status(
        &setup,
        &tcp_path("container-../../x", "7000"),
        &setup.alice,
        true,
    );
    assert!(status == 404 || status == 400, "{status}");
    let bob = setup.run(&setup.bob, &["port-forward", &id, "7000"]);
    assert!(!bob.status.success());
    let said = String::from_utf8_lossy(&bob.stderr);
    assert!(
        said.contains("no lease") || said.contains("not found"),
        "{said}"
    );

    // Ctrl-C (SIGINT) ends a forward: exit 0.
    let second = Forward::start(&setup, &id, &[&format!(":{ECHO}")]);
    let pid = second.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let (status, said) = second.wait(Duration::from_secs(10));
    assert!(status.success(), "{status:?}: {said}");
    assert!(said.contains("port-forward stopped"), "{said}");

    // The lease ending closes the forward: its connection and itself.
    let mut open = TcpStream::connect(("127.0.0.1", echo_port)).expect("connect");
    open.write_all(b"ping\n").expect("write");
    open.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let mut pong = [0; 5];
    open.read_exact(&mut pong).expect("echo");
    assert_eq!(&pong, b"ping\n");
    let removed = setup.run(&setup.alice, &["rm", &id]);
    assert!(removed.status.success(), "{removed:?}");
    let mut rest = Vec::new();
    // Closed (EOF or reset), not left hanging until the read timeout.
    if let Err(error) = open.read_to_end(&mut rest) {
        assert!(
            !matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the connection stayed open after the lease ended"
        );
    }
    let (status, said) = forward.wait(Duration::from_secs(15));
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(said.contains("port-forward ended"), "{said}");
    assert!(
        said.contains("port 7001: nothing is listening on port 7001"),
        "{said}"
    );
    drop(setup);
}
