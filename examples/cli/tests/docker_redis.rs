//! The `lease` binary against real Docker and Redis: the whole life of a
//! lease, `--detach`, `run`, reconciliation, a lease-server on the same
//! Redis. Each test has its own namespace (and so its own Redis prefix);
//! its guard removes every container with that namespace label. Skipped
//! with a printed reason without Docker or Redis, except under CI=true.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use common::{TestNamespace, eventually, json_of, stdout_of};
use lease_testkit::server::{Server, ServerConfig};
use predicates::prelude::*;
use predicates::str::contains;

/// A lease's short id as `lease ls` shows it.
fn short(id: &str) -> &str {
    &id["container-".len().."container-".len() + 12]
}

#[test]
fn up_ls_logs_shell_extend_rm() {
    let Some(ns) = TestNamespace::new() else {
        return;
    };
    // up: waits until running; prints the id on stdout.
    let up = stdout_of(ns.lease().args(["up", "busybox", "--for", "10m"]));
    let id = up.trim().to_owned();
    assert!(id.starts_with("container-"), "{up}");
    assert_eq!(ns.containers(), [format!("containerlease-{id}")]);

    // ls: table and JSON.
    ns.lease()
        .arg("ls")
        .assert()
        .success()
        .stdout(
            predicate::str::is_match(format!(
                r"ID\s+IMAGE\s+STATUS\s+COST\s+ACCRUED\s+EXPIRES IN\n{}\s+busybox\s+running\s+\$0.001666667\s+\$\S+\s+9m\d\ds\n",
                short(&id)
            ))
            .expect("regex"),
        );
    let listed = json_of(ns.lease().args(["ls", "--output", "json"]));
    let listed = listed.as_array().expect("array");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["status"], "running");
    assert_eq!(listed[0]["owner"], "tester");
    assert_eq!(listed[0]["cost"].as_f64(), Some(0.001666667));
    assert_eq!(listed[0]["durationMinutes"], 10);
    // Someone else's leases are not listed.
    let others = json_of(ns.lease_as("someone-else").args(["ls", "-o", "json"]));
    assert_eq!(others, serde_json::json!([]));
    ns.lease_as("someone-else")
        .args(["rm", &id])
        .assert()
        .code(1)
        .stderr(contains("belongs to `tester`; pass --owner tester"));
    ns.lease_as("someone-else")
        .args(["status", short(&id)])
        .assert()
        .code(1)
        .stderr(contains("no lease"));

    // logs: the keep-alive command's output.
    eventually("log lines", Duration::from_secs(10), || {
        let out = stdout_of(ns.lease().args(["logs", short(&id)]));
        out.contains("ready").then_some(())
    });
    let tail = stdout_of(ns.lease().args(["logs", &id, "--tail", "1"]));
    assert_eq!(tail.lines().count(), 1, "{tail}");

    // shell -- cmd: output and exit code.
    ns.lease()
        .args(["shell", short(&id), "--", "echo", "hi"])
        .assert()
        .success()
        .stdout("hi\n");
    ns.lease()
        .args([
            "shell",
            short(&id),
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ])
        .assert()
        .code(3)
        .stdout("out\n")
        .stderr(contains("err"));
    // stdin is passed through and its end too.
    ns.lease()
        .args(["shell", short(&id), "--", "cat"])
        .write_stdin("piped\n")
        .assert()
        .success()
        .stdout("piped\n");

    // extend: 10m + 30m.
    let extended = json_of(ns.lease().args(["extend", short(&id), "30m", "-o", "json"]));
    assert_eq!(extended["durationMinutes"], 40);
    assert!(extended["expiresIn"].as_i64().expect("expiresIn") > 35 * 60);
    ns.lease()
        .args(["extend", short(&id), "1000h"])
        .assert()
        .code(1)
        .stderr(contains("480 minutes"));

    // status and usage.
    let status = json_of(ns.lease().args(["status", &id, "-o", "json"]));
    assert_eq!(status["durationMinutes"], 40);
    ns.lease()
        .args(["status", short(&id)])
        .assert()
        .success()
        .stdout(contains("running").and(contains("40m at $0.01/h")));
    let usage = json_of(ns.lease().args(["usage", "-o", "json"]));
    assert_eq!(usage[0]["owner"], "tester");
    assert_eq!(usage[0]["active"], 1);
    assert_eq!(usage[0]["estimated"].as_f64(), Some(0.006666667));
    ns.lease().arg("usage").assert().success().stdout(
        predicate::str::is_match(r"OWNER\s+ACTIVE\s+LIVE.*\ntester\s+1\s+1\s").expect("regex"),
    );

    // rm: the container is gone when it returns.
    ns.lease()
        .args(["rm", short(&id)])
        .assert()
        .success()
        .stdout(contains(format!("{id} removed")));
    assert!(ns.containers().is_empty(), "{:?}", ns.containers());
    let ended = json_of(ns.lease().args(["status", &id, "-o", "json"]));
    assert_eq!(ended["status"], "deleted");
    assert_eq!(ended["endReason"], "deleted");
    assert!(ended["finalCost"].as_f64().is_some());
    let all = json_of(ns.lease().args(["ls", "--all", "-o", "json"]));
    assert_eq!(all.as_array().map(Vec::len), Some(1));
    // Every owner's spend (an operator's view).
    let everyone = json_of(
        ns.lease_as("someone-else")
            .args(["usage", "--all", "-o", "json"]),
    );
    assert_eq!(everyone.as_array().map(Vec::len), Some(1), "{everyone}");
    assert_eq!(everyone[0]["owner"], "tester");
    assert_eq!(everyone[0]["endedCount"], 1);
    assert_eq!(everyone[0]["endedCost"], all[0]["finalCost"]);
    assert_eq!(
        json_of(ns.lease().args(["ls", "-o", "json"])),
        serde_json::json!([])
    );
    // A removed lease has nothing to shell into.
    ns.lease()
        .args(["shell", &id, "--", "true"])
        .assert()
        .code(1)
        .stderr(contains("is deleted: the lease has no container"));
    ns.lease()
        .args(["shell", short(&id), "--", "true"])
        .assert()
        .code(1)
        .stderr(contains("no lease"));
}

#[test]
fn unknown_ids_are_errors() {
    let Some(ns) = TestNamespace::new() else {
        return;
    };
    for args in [
        vec!["status", "nosuchlease"],
        vec!["status", "container-aaaaaaaaaaaaaaaaaaaa"],
        vec!["extend", "zzzz", "5m"],
        vec!["logs", "zzzz"],
        vec!["shell", "zzzz", "--", "true"],
        vec!["status", "../../etc"],
    ] {
        ns.lease()
            .args(&args)
            .assert()
            .code(1)
            .stderr(contains("no lease").and(contains("panicked").not()));
    }
    ns.lease()
        .args(["rm", "zzzz", "yyyy"])
        .assert()
        .code(1)
        .stderr(
            contains("zzzz")
                .and(contains("yyyy"))
                .and(contains("2 of 2")),
        );
}

#[test]
fn detach_returns_at_once_and_the_lease_comes_up() {
    let Some(ns) = TestNamespace::new() else {
        return;
    };
    let started = Instant::now();
    let lease = json_of(
        ns.lease()
            .args(["up", "busybox", "--for", "5m", "--detach", "-o", "json"]),
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let id = lease["id"].as_str().expect("id").to_owned();
    assert!(
        ["pending", "running"].contains(&lease["status"].as_str().unwrap_or_default()),
        "{lease}"
    );
    eventually(
        "the detached lease running",
        Duration::from_secs(30),
        || {
            let status = json_of(ns.lease().args(["status", &id, "-o", "json"]));
            (status["status"] == "running").then_some(())
        },
    );
    assert_eq!(ns.containers().len(), 1);
    ns.lease().args(["rm", &id]).assert().success();
    assert!(ns.containers().is_empty());
}

#[test]
fn run_removes_its_container_when_the_shell_exits() {
    let Some(ns) = TestNamespace::new() else {
        return;
    };
    // A one-off command: its output and exit code are run's.
    ns.lease()
        .args([
            "run",
            "busybox",
            "--for",
            "10m",
            "--",
            "sh",
            "-c",
            "echo inside; ls /bin/busybox; exit 4",
        ])
        .assert()
        .code(4)
        .stdout("inside\n/bin/busybox\n")
        .stderr(contains("removed"));
    assert!(ns.containers().is_empty(), "{:?}", ns.containers());
    // A shell with stdin closed (assert_cmd's default: /dev/null) exits at
    // once, and so does the lease.
    ns.lease().args(["run", "busybox"]).assert().success();
    assert!(ns.containers().is_empty(), "{:?}", ns.containers());
    // A shell reading a script from stdin.
    ns.lease()
        .args(["run", "busybox"])
        .write_stdin("echo from-script\nexit 6\n")
        .assert()
        .code(6)
        .stdout(contains("from-script"));
    assert!(ns.containers().is_empty());
    // With the memory store too (run is the memory store's command).
    common::lease()
        .args(["--store", "memory", "--namespace", &ns.name, "--catalog"])
        .arg(common::catalog())
        .args(["run", "busybox", "--", "true"])
        .assert()
        .success();
    assert!(ns.containers().is_empty());
    let history = json_of(ns.lease().args(["ls", "--all", "-o", "json"]));
    let history = history.as_array().expect("array");
    assert_eq!(history.len(), 3, "{history:?}");
    assert!(history.iter().all(|l| l["status"] == "deleted"));
}

#[test]
fn run_ends_on_sigterm_and_removes_the_container() {
    let Some(ns) = TestNamespace::new() else {
        return;
    };
    let mut child = StdCommand::new(common::bin())
        .args([
            "--store",
            &ns.redis,
            "--namespace",
            &ns.name,
            "--owner",
            "tester",
            "--catalog",
        ])
        .arg(common::catalog())
        .args(["run", "busybox", "--", "sleep", "600"])
        .env_remove("LEASE_STORE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    eventually("the run's container", Duration::from_secs(30), || {
        (ns.containers().len() == 1).then_some(())
    });
    // The shell (sleep) is up once the exec has started; give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    let killed = StdCommand::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = wait_timeout(&mut child, Duration::from_secs(60));
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    assert_eq!(status, Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(ns.containers().is_empty(), "{:?}", ns.containers());
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn reconcile_dry_run_agrees_with_a_real_pass() {
    let Some(ns) = TestNamespace::new() else {
        return;
    };
    let id = stdout_of(ns.lease().args(["up", "busybox", "--for", "10m"]))
        .trim()
        .to_owned();
    let nothing = json_of(ns.lease().args(["reconcile", "--dry-run", "-o", "json"]));
    assert_eq!(nothing, serde_json::json!([]));
    // The container vanishes behind the engine's back.
    ns.remove_container_of(&id);
    let plan = json_of(ns.lease().args(["reconcile", "--dry-run", "-o", "json"]));
    assert_eq!(
        plan,
        serde_json::json!([{
            "action": "mark_exited",
            "leaseId": id,
            "container": null,
            "reason": "container vanished",
        }])
    );
    ns.lease()
        .args(["reconcile", "--dry-run"])
        .assert()
        .success()
        .stdout(contains("mark exited").and(contains(short(&id))));
    // Dry means dry.
    let status = json_of(ns.lease().args(["status", &id, "-o", "json"]));
    assert_eq!(status["status"], "running");
    let report = json_of(ns.lease().args(["reconcile", "-o", "json"]));
    assert_eq!(report["exited"], 1, "{report}");
    assert_eq!(report["orphansRemoved"], 0, "{report}");
    let status = json_of(ns.lease().args(["status", &id, "-o", "json"]));
    assert_eq!(status["status"], "exited");
    assert_eq!(
        json_of(ns.lease().args(["reconcile", "--dry-run", "-o", "json"])),
        serde_json::json!([])
    );
    // An exited lease is still removed on request.
    ns.lease().args(["rm", short(&id)]).assert().success();
    let reaped = json_of(ns.lease().args(["reap", "-o", "json"]));
    assert_eq!(reaped["failed"], 0);
}

#[test]
fn reap_watch_stops_on_ctrl_c() {
    let Some(ns) = TestNamespace::new() else {
        return;
    };
    let mut child = StdCommand::new(common::bin())
        .args([
            "--store",
            &ns.redis,
            "--namespace",
            &ns.name,
            "reap",
            "--watch",
        ])
        .env_remove("LEASE_STORE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_secs(1));
    let sent = StdCommand::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    assert_eq!(wait_timeout(&mut child, Duration::from_secs(20)), Some(0));
}

fn http_get(address: &str, path: &str, token: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect to lease-server");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

#[test]
fn a_cli_lease_is_visible_to_lease_server_on_the_same_redis() {
    let Some(ns) = TestNamespace::new() else {
        return;
    };
    // A token minted by the CLI (lease-http's code) admits alice to the server.
    let minted = json_of(common::lease().args(["token", "new", "--owner", "alice", "-o", "json"]));
    let token = minted["token"].as_str().expect("token").to_owned();
    let tokens = std::env::temp_dir().join(format!("{}-tokens.toml", ns.name));
    std::fs::write(&tokens, minted["tomlEntry"].as_str().expect("entry")).expect("write tokens");
    let config = ServerConfig::new(&ns.name)
        .store(&ns.redis)
        .args(["--tokens".to_owned(), tokens.display().to_string()]);
    let Some(server) = Server::start(config) else {
        return;
    };
    let address = server.address().to_string();

    let id = stdout_of(ns.lease_as("alice").args(["up", "busybox", "--for", "15m"]))
        .trim()
        .to_owned();
    let (status, body) = http_get(&address, "/api/containers", &token);
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let containers = listed["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "{body}");
    assert_eq!(containers[0]["id"], id.as_str());
    assert_eq!(containers[0]["status"], "running");
    assert_eq!(containers[0]["owner"], "alice");
    let (status, body) = http_get(&address, &format!("/api/containers/{id}/status"), &token);
    assert_eq!(status, 200, "{body}");
    // The CLI's JSON is the server's.
    let mine = json_of(ns.lease_as("alice").args(["status", &id, "-o", "json"]));
    let theirs: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    for field in [
        "id",
        "imageType",
        "status",
        "owner",
        "cost",
        "createdAt",
        "expiryAt",
        "dockerId",
    ] {
        assert_eq!(mine[field], theirs[field], "{field}");
    }
    // Removed by the CLI: gone for the server too.
    ns.lease_as("alice").args(["rm", &id]).assert().success();
    let (_, body) = http_get(&address, "/api/containers", &token);
    let listed: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(listed["containers"], serde_json::json!([]));
    drop(server);
    let _ = std::fs::remove_file(&tokens);
    assert!(ns.containers().is_empty());
}

#[test]
fn a_failed_provisioning_is_reported_and_nothing_is_left() {
    let Some(ns) = TestNamespace::new() else {
        return;
    };
    // An image that is neither local nor pullable (no registry here).
    let catalog = std::env::temp_dir().join(format!("{}-catalog.toml", ns.name));
    std::fs::write(
        &catalog,
        "[[offering]]\nkey = \"ghost\"\nimage = \"containerlease-test/does-not-exist:latest\"\n\
         hourly_rate = \"0.01\"\ncpus = \"0.25\"\nmemory_mb = 64\n",
    )
    .expect("write catalog");
    let lease = |args: &[&str]| {
        let mut command = ns.lease();
        command.arg("--catalog").arg(&catalog).args(args);
        command
    };
    lease(&["up", "ghost", "--for", "5m"])
        .assert()
        .code(1)
        .stderr(contains("is error").and(contains("does-not-exist")));
    assert_eq!(
        json_of(&mut lease(&["ls", "-o", "json"])),
        serde_json::json!([])
    );
    let history = json_of(&mut lease(&["ls", "--all", "-o", "json"]));
    assert_eq!(history[0]["endReason"], "error", "{history}");
    assert!(
        history[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("does-not-exist"),
        "{history}"
    );
    lease(&["run", "ghost", "--", "true"]).assert().code(1);
    assert!(ns.containers().is_empty());
    let _ = std::fs::remove_file(&catalog);
}
