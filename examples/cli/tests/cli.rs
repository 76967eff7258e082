//! The `lease` binary without Docker or Redis: help, input errors, the
//! memory-store refusals, prices, tokens, completions, JSON output.

mod common;

use common::{catalog, lease};
use predicates::prelude::*;
use predicates::str::contains;

#[test]
fn help_lists_every_command_and_env_vars() {
    let assert = lease().arg("--help").assert().success();
    let help = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    for command in [
        "up",
        "ls",
        "status",
        "extend",
        "rm",
        "logs",
        "shell",
        "run",
        "cp",
        "prices",
        "usage",
        "reap",
        "reconcile",
        "token",
        "completions",
    ] {
        assert!(
            help.contains(&format!("\n  {command} ")),
            "{command} missing:\n{help}"
        );
    }
    for variable in [
        "LEASE_STORE",
        "LEASE_NAMESPACE",
        "LEASE_OWNER",
        "LEASE_OUTPUT",
        "LEASE_CATALOG",
    ] {
        assert!(help.contains(variable), "{variable} missing:\n{help}");
    }
    lease()
        .args(["up", "--help"])
        .assert()
        .success()
        .stdout(contains("--for <DURATION>").and(contains("--detach")));
    lease()
        .args(["shell", "--help"])
        .assert()
        .success()
        .stdout(contains("[COMMAND]..."));
    lease()
        .arg("--version")
        .assert()
        .success()
        .stdout(contains("lease"));
}

#[test]
fn no_command_is_a_usage_error() {
    lease().assert().code(2).stderr(contains("Usage"));
    lease()
        .arg("frobnicate")
        .assert()
        .code(2)
        .stderr(contains("unrecognized subcommand"));
}

#[test]
fn bad_durations_are_refused_with_a_reason() {
    let cases = [
        ("90s", "not a whole number of minutes"),
        ("1m30s", "not a whole number of minutes"),
        ("90", "no unit"),
        ("abc", "is not a duration"),
        ("-5m", "is not a duration"),
        ("0m", "at least 1m"),
        ("", "required"),
        ("99999999999h", "too long"),
    ];
    for (text, reason) in cases {
        for args in [
            vec!["prices", "--for", text],
            vec!["up", "alpine", "--for", text],
            vec!["run", "alpine", "--for", text],
            vec!["extend", "abc", text],
        ] {
            lease()
                .args(&args)
                .assert()
                .code(2)
                .stderr(contains(reason).and(contains("panicked").not()));
        }
    }
}

#[test]
fn good_durations_are_read() {
    for (text, minutes) in [("90m", 90), ("2h", 120), ("1h30m", 90), ("120s", 2)] {
        let out = lease()
            .args(["prices", "-o", "json", "--for", text])
            .output()
            .expect("run");
        assert!(out.status.success());
        let prices: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(prices[0]["minutes"], minutes, "{text}");
    }
}

#[test]
fn unknown_offering_names_the_choices() {
    // Checked before any store or Docker connection.
    for args in [
        vec!["up", "windows"],
        vec!["run", "windows"],
        vec![
            "--store",
            "redis://127.0.0.1:1/0",
            "up",
            "windows",
            "--detach",
        ],
    ] {
        lease()
            .args(&args)
            .assert()
            .code(1)
            .stderr(contains("unknown offering `windows`").and(contains("alpine, ubuntu")));
    }
}

#[test]
fn prices_are_exact() {
    lease()
        .args(["prices", "--for", "2m"])
        .assert()
        .success()
        .stdout(
            contains("OFFERING").and(
                predicate::str::is_match(
                    r"alpine\s+alpine:3.20\s+\$0.01\s.*\s2m\s+\$0.000333333\n",
                )
                .expect("regex"),
            ),
        );
    lease()
        .args(["prices", "--for", "2h"])
        .assert()
        .success()
        .stdout(
            predicate::str::is_match(r"ubuntu\s+ubuntu:24.04\s+\$0.04\s.*\s2h\s+\$0.08\n")
                .expect("regex"),
        );
    // Each offering's own default booking without --for (2h).
    lease()
        .arg("prices")
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"alpine\s.*\s2h\s+\$0.02\n").expect("regex"));
}

#[test]
fn prices_as_json() {
    let out = lease()
        .args(["prices", "--for", "2m", "--output", "json"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let prices: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let alpine = prices
        .as_array()
        .and_then(|all| all.iter().find(|p| p["imageType"] == "alpine"))
        .expect("alpine");
    assert_eq!(alpine["cost"].as_f64(), Some(0.000333333));
    assert_eq!(alpine["hourlyRate"].as_f64(), Some(0.01));
    assert_eq!(alpine["minutes"], 2);
    let out = lease()
        .args(["prices", "--for", "2h"])
        .env("LEASE_OUTPUT", "json")
        .output()
        .expect("run");
    let prices: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let ubuntu = prices
        .as_array()
        .and_then(|all| all.iter().find(|p| p["imageType"] == "ubuntu"))
        .expect("ubuntu");
    assert_eq!(ubuntu["cost"].as_f64(), Some(0.08));
}

#[test]
fn catalog_flag_and_env_are_used() {
    lease()
        .args(["prices", "--catalog"])
        .arg(catalog())
        .assert()
        .success()
        .stdout(contains("busybox").and(contains("containerlease-test/busybox:latest")));
    lease()
        .arg("prices")
        .env("LEASE_CATALOG", catalog())
        .assert()
        .success()
        .stdout(contains("busybox"));
    lease()
        .args(["prices", "--catalog", "/nonexistent/catalog.toml"])
        .assert()
        .code(1)
        .stderr(contains("cannot read catalog /nonexistent/catalog.toml"));
}

#[test]
fn commands_needing_shared_state_refuse_the_memory_store() {
    let commands: [&[&str]; 12] = [
        &["ls"],
        &["ls", "--all"],
        &["status", "abc"],
        &["extend", "abc", "30m"],
        &["rm", "abc", "def"],
        &["logs", "abc", "-f"],
        &["shell", "abc"],
        &["shell", "abc", "--", "echo", "hi"],
        &["usage"],
        &["reap", "--watch"],
        &["reconcile", "--dry-run"],
        &["up", "alpine", "--detach"],
    ];
    for args in commands {
        lease()
            .args(["--store", "memory"])
            .args(args)
            .assert()
            .code(1)
            .stderr(contains("memory store").and(contains("--store redis://")));
        // The same through the environment.
        lease()
            .args(args)
            .env("LEASE_STORE", "memory")
            .assert()
            .code(1)
            .stderr(contains("--store redis://"));
    }
}

#[test]
fn bad_store_and_namespace_are_reported() {
    lease()
        .args(["--store", "mysql://x", "ls"])
        .assert()
        .code(2)
        .stderr(contains("--store must be a sqlite: URL"));
    lease()
        .args([
            "--store",
            "redis://127.0.0.1:1/0",
            "--namespace",
            "Not Valid!",
            "ls",
        ])
        .assert()
        .code(2)
        .stderr(contains("--namespace"));
    // Nothing listens on port 1: a clear error, no panic.
    lease()
        .args(["--store", "redis://127.0.0.1:1/0", "ls"])
        .assert()
        .code(1)
        .stderr(
            contains("cannot open the lease store redis://127.0.0.1:1/0")
                .and(contains("panicked").not()),
        );
    lease()
        .args(["--store", "redis://user:secret@127.0.0.1:1/0", "usage"])
        .assert()
        .code(1)
        .stderr(contains("secret").not().and(contains("user:***@")));
    // PostgreSQL (issue 20): the same, the password also hidden in a query.
    lease()
        .args([
            "--store",
            "postgres://lease:secret@127.0.0.1:1/leases",
            "ls",
        ])
        .assert()
        .code(1)
        .stderr(
            contains("cannot open the lease store postgres://lease:***@127.0.0.1:1/leases")
                .and(contains("secret").not())
                .and(contains("panicked").not()),
        );
    lease()
        .args([
            "--store",
            "postgresql://127.0.0.1:1/leases?user=lease&password=secret",
            "usage",
        ])
        .assert()
        .code(1)
        .stderr(contains("secret").not().and(contains("password=***")));
}

#[test]
fn token_new_mints_with_lease_http() {
    let out = lease()
        .args(["token", "new", "--owner", "alice", "--admin", "-o", "json"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let token: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(token["owner"], "alice");
    assert_eq!(token["admin"], true);
    let secret = token["token"].as_str().expect("token");
    assert!(secret.starts_with("clt_"), "{secret}");
    let entry = token["tomlEntry"].as_str().expect("entry");
    assert!(
        entry.contains("owner = \"alice\"") && entry.contains("admin = true"),
        "{entry}"
    );
    assert!(!entry.contains(secret), "the entry must hold only the hash");

    lease()
        .args(["token", "new", "--owner", "bob"])
        .assert()
        .success()
        .stdout(
            contains("token: clt_")
                .and(contains("[[tokens]]"))
                .and(contains("owner = \"bob\"")),
        );
    lease()
        .args(["token", "new"])
        .assert()
        .code(2)
        .stderr(contains("needs --owner"));
    lease()
        .args(["token", "new", "--owner", "  "])
        .assert()
        .code(2)
        .stderr(contains("owner must be"));
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        lease()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(contains("lease").and(contains("reconcile")));
    }
    lease().args(["completions", "tcsh"]).assert().code(2);
}

#[test]
fn a_closed_stdout_is_not_a_panic() {
    // `lease prices | head -c 1`: the reader goes away early.
    let mut child = std::process::Command::new(common::bin())
        .args(["completions", "bash"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
