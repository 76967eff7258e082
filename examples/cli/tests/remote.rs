//! `lease --server URL`: every lease command through a real lease-server
//! (tokens mode) and nothing else — the CLI runs with `DOCKER_HOST`
//! pointing nowhere and no store, so anything that reached for Docker or a
//! store here would fail. Output and exit codes are the local ones; `shell`
//! and `run` use the exec-session endpoints (with a PTY, with pipes, and
//! across a dropped connection); `login` stores a 0600 file that `logout`
//! removes; operator commands refuse.
//!
//! Each test has its own namespace (`NamespaceGuard`, created before the
//! server, removes its containers even on failure) and its own server.

mod common;

use common::Screen;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use lease_testkit::TempDir;
use lease_testkit::docker::{NamespaceGuard, containers_of, docker_ready};
use lease_testkit::server::{Server, ServerConfig, mint_token};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use predicates::str::contains;
use serde_json::Value;

/// Where Docker is not: the CLI must never need it in remote mode.
const NO_DOCKER: &str = "unix:///nonexistent/docker.sock";

/// A lease-server with two owners' tokens, and a scratch config directory.
struct Remote {
    server: Server,
    alice: String,
    bob: String,
    config: TempDir,
    tokens: PathBuf,
    // Declared last: dropped after the server is killed.
    guard: NamespaceGuard,
}

impl Remote {
    /// A server on a fresh namespace, or `None` after a printed skip
    /// (a failure under CI=true).
    fn start() -> Option<Remote> {
        if !docker_ready() {
            return None;
        }
        let guard = NamespaceGuard::random();
        let binary = lease_testkit::server::binary()?;
        let alice = mint_token(&binary, "alice", false);
        let bob = mint_token(&binary, "bob", false);
        let config = TempDir::new("lease-remote-config");
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
        Some(Remote {
            server,
            alice: alice.token,
            bob: bob.token,
            config,
            tokens,
            guard,
        })
    }

    fn url(&self) -> String {
        self.server.url()
    }

    /// `lease` with no token, no Docker, a scratch config dir, through `url`.
    fn bare(&self, url: &str) -> Command {
        let mut command = common::lease();
        command
            .env("LEASE_SERVER", url)
            .env("DOCKER_HOST", NO_DOCKER)
            .env("XDG_CONFIG_HOME", self.config.path())
            .timeout(Duration::from_secs(60));
        command
    }

    /// `lease` as alice through the server.
    fn lease(&self) -> Command {
        self.lease_with(&self.alice)
    }

    fn lease_with(&self, token: &str) -> Command {
        let mut command = self.bare(&self.url());
        command.env("LEASE_TOKEN", token);
        command
    }

    /// `lease <args>` as alice through `url`, as a child process with
    /// stdout and stderr piped and no stdin.
    fn spawn(&self, url: &str, args: &[&str]) -> Child {
        std::process::Command::new(common::bin())
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LEASE_SERVER", url)
            .env("LEASE_TOKEN", &self.alice)
            .env("DOCKER_HOST", NO_DOCKER)
            .env("XDG_CONFIG_HOME", self.config.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lease")
    }

    /// `lease up busybox` as alice; the lease id.
    fn up(&self) -> String {
        common::stdout_of(self.lease().args(["up", "busybox", "--for", "5m"]))
            .trim()
            .to_owned()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tokens);
    }
}

fn short(id: &str) -> &str {
    &id["container-".len().."container-".len() + 12]
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn lease_commands_through_the_server() {
    let Some(remote) = Remote::start() else {
        return;
    };
    // prices: the server's catalog.
    let prices = common::stdout_of(remote.lease().args(["prices", "--for", "1h"]));
    assert!(prices.starts_with("OFFERING"), "{prices}");
    assert!(
        prices.contains("busybox") && prices.contains("$0.01"),
        "{prices}"
    );
    let prices = json(&common::stdout_of(
        remote.lease().args(["prices", "-o", "json"]),
    ));
    assert!(
        prices
            .as_array()
            .expect("array")
            .iter()
            .any(|p| p["imageType"] == "busybox" && p["cost"].is_number()),
        "{prices}"
    );

    // up: the id on stdout once running, the rest on stderr.
    let output = remote
        .lease()
        .args(["up", "busybox", "--for", "5m"])
        .output()
        .expect("up");
    assert!(output.status.success(), "{output:?}");
    let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(id.starts_with("container-"), "{id}");
    let notes = String::from_utf8_lossy(&output.stderr);
    assert!(notes.contains("busybox is running"), "{notes}");
    assert_eq!(containers_of(remote.guard.namespace()).len(), 1);

    // ls, status (by a unique start of the id), in both forms.
    let ls = common::stdout_of(remote.lease().arg("ls"));
    assert!(ls.starts_with("ID"), "{ls}");
    assert!(ls.contains(short(&id)) && ls.contains("running"), "{ls}");
    let listed = json(&common::stdout_of(
        remote.lease().args(["ls", "-o", "json"]),
    ));
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
    let status = common::stdout_of(remote.lease().args(["status", &short(&id)[..6]]));
    assert!(status.contains("STATUS     running"), "{status}");
    assert!(status.contains("OWNER      alice"), "{status}");
    let status = json(&common::stdout_of(remote.lease().args([
        "status",
        short(&id),
        "-o",
        "json",
    ])));
    assert_eq!(status["durationMinutes"], 5);

    // extend.
    remote
        .lease()
        .args(["extend", short(&id), "10m"])
        .assert()
        .success()
        .stdout(contains("extended by 10m"));
    let extended = json(&common::stdout_of(remote.lease().args([
        "extend",
        short(&id),
        "1m",
        "-o",
        "json",
    ])));
    assert_eq!(extended["durationMinutes"], 16, "{extended}");

    // usage: the local JSON shape.
    let usage = json(&common::stdout_of(
        remote.lease().args(["usage", "-o", "json"]),
    ));
    assert_eq!(usage[0]["owner"], "alice", "{usage}");
    assert_eq!(usage[0]["active"], 1, "{usage}");

    // logs: the container's output so far, then the command returns.
    let logs = common::stdout_of(remote.lease().args(["logs", short(&id), "-n", "1000"]));
    assert!(logs.lines().next() == Some("ready"), "{logs}");

    // Owners are isolated: bob sees no lease of alice's, not even by its full id.
    remote
        .lease_with(&remote.bob)
        .args(["status", &id])
        .assert()
        .code(1)
        .stderr(contains(format!("no lease `{id}`")));
    let bobs = json(&common::stdout_of(
        remote.lease_with(&remote.bob).args(["ls", "-o", "json"]),
    ));
    assert_eq!(bobs, serde_json::json!([]));

    // Failures keep the local exit codes and messages.
    remote
        .lease()
        .args(["status", "zzzzzz"])
        .assert()
        .code(1)
        .stderr(contains("no lease `zzzzzz`"));
    remote
        .lease()
        .args(["up", "nosuch"])
        .assert()
        .code(1)
        .stderr(contains(
            "unknown offering `nosuch`; choose one of: alpine, busybox",
        ));
    remote
        .lease_with("clt_not-a-token")
        .arg("ls")
        .assert()
        .code(1)
        .stderr(contains("set LEASE_TOKEN or run `lease login --server"));

    // rm waits until the server has removed the container.
    remote
        .lease()
        .args(["rm", short(&id)])
        .assert()
        .success()
        .stdout(contains(format!("{id} removed (cost $")));
    assert!(containers_of(remote.guard.namespace()).is_empty());
    let all = json(&common::stdout_of(
        remote.lease().args(["ls", "--all", "-o", "json"]),
    ));
    assert_eq!(all[0]["status"], "deleted", "{all}");
    assert!(all[0]["finalCost"].is_number(), "{all}");
    // up --detach: the pending lease at once; rm -o json: the ended leases.
    let pending = json(&common::stdout_of(
        remote
            .lease()
            .args(["up", "busybox", "--detach", "-o", "json"]),
    ));
    assert_eq!(pending["status"], "pending", "{pending}");
    let pending_id = pending["id"].as_str().expect("id");
    let removed = json(&common::stdout_of(
        remote.lease().args(["rm", pending_id, "-o", "json"]),
    ));
    assert_eq!(removed[0]["status"], "deleted", "{removed}");
}

#[test]
fn run_and_shell_through_exec_sessions() {
    let Some(remote) = Remote::start() else {
        return;
    };
    // run: the command's exit code is ours; the lease is gone afterwards.
    let output = remote
        .lease()
        .args([
            "run",
            "busybox",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ])
        .write_stdin("")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "out\n");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("err\n"), "{stderr}");
    assert!(stderr.contains("removed; cost $"), "{stderr}");
    assert!(containers_of(remote.guard.namespace()).is_empty());

    // shell: one command, stdout and stderr apart, its exit code.
    let id = remote.up();
    remote
        .lease()
        .args([
            "shell",
            short(&id),
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 5",
        ])
        .write_stdin("")
        .assert()
        .code(5)
        .stdout("out\n")
        .stderr(contains("err"));
    // stdin is forwarded, and its end passed on.
    remote
        .lease()
        .args(["shell", short(&id), "--", "sh"])
        .write_stdin("echo $((6*7))\n")
        .assert()
        .success()
        .stdout("42\n");
    // Without a terminal, Ctrl-C reaches the remote process as SIGINT.
    let script = "trap 'echo got-int; exit 9' INT; echo ready; while true; do sleep 0.2; done";
    let mut child = remote.spawn(
        &remote.url(),
        &["shell", short(&id), "--", "sh", "-c", script],
    );
    let stdout = collect(&mut child);
    stdout.wait_for("ready\n", 0, Duration::from_secs(20));
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(sent.success());
    let (status, stderr) = finish(&mut child, &stdout);
    assert_eq!(stdout.text(), "ready\ngot-int\n", "stderr: {stderr}");
    assert_eq!(status.code(), Some(9), "stderr: {stderr}");

    // A lease that is not running: the local message.
    remote.lease().args(["rm", short(&id)]).assert().success();
    remote
        .lease()
        .args(["shell", &id, "--", "true"])
        .write_stdin("")
        .assert()
        .code(1)
        .stderr(contains(format!("lease {id} is deleted")));
}

fn pty_size(rows: u16, cols: u16) -> PtySize {
    PtySize {
        rows,
        cols,
        pixel_width: 0,
        pixel_height: 0,
    }
}

#[test]
fn interactive_shell_in_a_terminal_through_the_server() {
    let Some(remote) = Remote::start() else {
        return;
    };
    let id = remote.up();
    let pair = native_pty_system()
        .openpty(pty_size(30, 100))
        .expect("open a pty");
    let script = format!("'{}' shell {}; echo \"rc=$?\"", common::bin(), short(&id));
    let mut command = CommandBuilder::new("/bin/sh");
    command.args(["-c", &script]);
    for name in common::LEASE_ENV {
        command.env_remove(name);
    }
    command.env("LEASE_SERVER", remote.url());
    command.env("LEASE_TOKEN", &remote.alice);
    command.env("DOCKER_HOST", NO_DOCKER);
    command.env("XDG_CONFIG_HOME", remote.config.path());
    let mut child = pair.slave.spawn_command(command).expect("spawn in the pty");
    drop(pair.slave);
    let screen = Screen::collect(pair.master.try_clone_reader().expect("reader"));
    let mut writer = pair.master.take_writer().expect("writer");
    let mut type_line = |line: &str| {
        writer
            .write_all(format!("{line}\r").as_bytes())
            .expect("type");
        writer.flush().expect("flush");
    };
    let limit = Duration::from_secs(20);

    // busybox sh's root prompt, then arithmetic in the container.
    let mut at = screen.wait_for("# ", 0, limit);
    type_line("echo $((6*7))");
    at = screen.wait_for("42", at, limit);
    // The session got our terminal's size and follows a resize.
    type_line("stty size");
    at = screen.wait_for("30 100", at, limit);
    pair.master.resize(pty_size(40, 120)).expect("resize");
    std::thread::sleep(Duration::from_millis(500));
    type_line("stty size");
    at = screen.wait_for("40 120", at, limit);
    type_line("exit 6");
    screen.wait_for("rc=6", at, limit);
    let deadline = Instant::now() + limit;
    while child.try_wait().ok().flatten().is_none() {
        assert!(Instant::now() < deadline, "the host shell did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
    remote.lease().args(["rm", &id]).assert().success();
}

/// A TCP relay in front of the server that can drop every connection at
/// once and refuse new ones for a while.
struct CuttableProxy {
    address: SocketAddr,
    links: Arc<Mutex<Vec<TcpStream>>>,
    refusing_until: Arc<Mutex<Option<Instant>>>,
    stop: Arc<AtomicBool>,
}

impl CuttableProxy {
    fn start(upstream: SocketAddr) -> CuttableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let address = listener.local_addr().expect("proxy address");
        let proxy = CuttableProxy {
            address,
            links: Arc::default(),
            refusing_until: Arc::default(),
            stop: Arc::default(),
        };
        let (links, refusing, stop) = (
            proxy.links.clone(),
            proxy.refusing_until.clone(),
            proxy.stop.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let refused = refusing
                    .lock()
                    .expect("lock")
                    .is_some_and(|until| Instant::now() < until);
                if refused {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                relay(client, server, &links);
            }
        });
        proxy
    }

    /// Drops every open connection and refuses new ones for `refuse`.
    fn cut(&self, refuse: Duration) {
        *self.refusing_until.lock().expect("lock") = Some(Instant::now() + refuse);
        for link in self.links.lock().expect("lock").drain(..) {
            let _ = link.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.address);
    }
}

/// Copies both ways between `client` and `server` on two threads.
fn relay(client: TcpStream, server: TcpStream, links: &Mutex<Vec<TcpStream>>) {
    let mut registered = links.lock().expect("lock");
    for stream in [&client, &server] {
        if let Ok(clone) = stream.try_clone() {
            registered.push(clone);
        }
    }
    let pairs = [
        (client.try_clone(), server.try_clone()),
        (server.try_clone(), client.try_clone()),
    ];
    for pair in pairs {
        if let (Ok(mut from), Ok(mut to)) = pair {
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from, &mut to);
                let _ = to.shutdown(Shutdown::Both);
                let _ = from.shutdown(Shutdown::Both);
            });
        }
    }
}

/// Waits (30 s at most) for `child` to end; its status and stderr.
fn finish(child: &mut Child, stdout: &Screen) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("lease did not end; stdout so far: {}", stdout.text());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    // The reader thread may still be copying the last bytes.
    std::thread::sleep(Duration::from_millis(100));
    (status, stderr)
}

/// Reads a child's stdout on a thread.
fn collect(child: &mut Child) -> Screen {
    Screen::collect(child.stdout.take().expect("piped stdout"))
}

#[test]
fn a_dropped_connection_is_reattached_without_losing_output() {
    let Some(remote) = Remote::start() else {
        return;
    };
    let id = remote.up();
    let proxy = CuttableProxy::start(remote.server.address());
    let script = "echo before; sleep 1; echo meanwhile; sleep 2; echo after; exit 4";
    let mut child = remote.spawn(
        &format!("http://{}", proxy.address),
        &["shell", short(&id), "--", "sh", "-c", script],
    );
    let stdout = collect(&mut child);
    stdout.wait_for("before\n", 0, Duration::from_secs(20));
    // Down for 2 s: `meanwhile` is written while nobody is attached.
    proxy.cut(Duration::from_millis(2000));
    let (status, stderr) = finish(&mut child, &stdout);
    assert_eq!(
        stdout.text(),
        "before\nmeanwhile\nafter\n",
        "stderr: {stderr}"
    );
    assert_eq!(status.code(), Some(4), "stderr: {stderr}");
    assert!(stderr.contains("reconnecting"), "{stderr}");
    assert!(stderr.contains("reconnected"), "{stderr}");
    remote.lease().args(["rm", &id]).assert().success();
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("credentials file")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn login_stores_a_private_token_and_logout_forgets_it() {
    let Some(remote) = Remote::start() else {
        return;
    };
    let file = remote
        .config
        .path()
        .join("containerlease")
        .join("credentials.json");
    // A token the server refuses is not stored.
    remote
        .bare(&remote.url())
        .arg("login")
        .write_stdin("clt_wrong\n")
        .assert()
        .code(2)
        .stderr(contains("does not accept this token"));
    assert!(!file.exists());
    // Without a token nothing works.
    remote.bare(&remote.url()).arg("ls").assert().code(1);

    remote
        .bare(&remote.url())
        .arg("login")
        .write_stdin(format!("{}\n", remote.alice))
        .assert()
        .success()
        .stderr(contains("as `alice`"));
    assert_eq!(mode_of(&file), 0o600);
    let stored = json(&std::fs::read_to_string(&file).expect("read"));
    assert_eq!(stored["token"], remote.alice.as_str());
    // The stored token is used for that server (with or without a final slash)…
    remote
        .bare(remote.url().trim_end_matches('/'))
        .args(["usage", "-o", "json"])
        .assert()
        .success()
        .stdout(contains("\"owner\": \"alice\""));
    // …and LEASE_TOKEN wins over it.
    remote
        .lease_with(&remote.bob)
        .args(["usage", "-o", "json"])
        .assert()
        .success()
        .stdout(contains("\"owner\": \"bob\""));

    remote
        .bare(&remote.url())
        .arg("logout")
        .assert()
        .success()
        .stderr(contains("forgot the token"));
    assert!(!file.exists());
    remote.bare(&remote.url()).arg("ls").assert().code(1);

    // On a terminal the token is asked for and not echoed.
    let pair = native_pty_system()
        .openpty(pty_size(24, 80))
        .expect("open a pty");
    let mut command = CommandBuilder::new(common::bin());
    command.arg("login");
    for name in common::LEASE_ENV {
        command.env_remove(name);
    }
    command.env("LEASE_SERVER", remote.url());
    command.env("XDG_CONFIG_HOME", remote.config.path());
    let mut child = pair.slave.spawn_command(command).expect("spawn in the pty");
    drop(pair.slave);
    let screen = Screen::collect(pair.master.try_clone_reader().expect("reader"));
    let mut writer = pair.master.take_writer().expect("writer");
    let at = screen.wait_for("Token for", 0, Duration::from_secs(10));
    writer
        .write_all(format!("{}\r", remote.bob).as_bytes())
        .expect("type");
    writer.flush().expect("flush");
    screen.wait_for("as `bob`", at, Duration::from_secs(10));
    let status = child.wait().expect("login ends");
    assert!(status.success());
    assert!(!screen.text().contains(&remote.bob), "{}", screen.text());
    assert_eq!(mode_of(&file), 0o600);
    remote.bare(&remote.url()).arg("logout").assert().success();
}

#[test]
fn operator_commands_refuse_a_server() {
    // No server needed: they refuse before any connection.
    for args in [&["reap"][..], &["reconcile"], &["token", "new"]] {
        common::lease()
            .args(["--server", "http://127.0.0.1:9"])
            .args(args)
            .env("DOCKER_HOST", NO_DOCKER)
            .assert()
            .code(2)
            .stderr(contains("is an operator command"));
    }
    // login needs a server; a malformed one is a usage error.
    common::lease()
        .arg("login")
        .write_stdin("x\n")
        .assert()
        .code(2)
        .stderr(contains("needs the server"));
    common::lease()
        .args(["--server", "ftp://h/", "ls"])
        .assert()
        .code(2)
        .stderr(contains("invalid server URL"));
}
