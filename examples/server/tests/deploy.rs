//! The deployment files in `deploy/` against the real binary and the real
//! systemd tools, so that what an operator copies is known to work:
//!
//! - every `LEASE_*` name in `deploy/containerlease.env` (commented or not)
//!   is a flag's variable of this `lease-server`, every active value parses,
//!   and the server starts with them and serves `/metrics`, where every
//!   metric the operator guide alerts on exists;
//! - `systemd-analyze verify` accepts `deploy/containerlease.service` with
//!   no warning (it exits 0 on unknown keys, so its output must be empty),
//!   `systemd-analyze security` rates it at most [`MAX_EXPOSURE`], and
//!   `systemd-sysusers --dry-run` accepts the user file.
//!
//! Without systemd's tools or Docker a test skips with a printed reason;
//! with `CI=true` it fails instead.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use lease_testkit::docker::{NamespaceGuard, docker_ready};
use lease_testkit::server::{Server, ServerConfig, mint_token};
use lease_testkit::{TempDir, random_namespace, skip_or_fail, workspace_root};

const BINARY: &str = env!("CARGO_BIN_EXE_lease-server");

/// Highest `systemd-analyze security` exposure the unit may have, in tenths
/// as `--threshold` takes it: 20 is 2.0 on its scale from 0 (locked down) to
/// 10 (unprotected). The Docker socket and the network the server needs
/// cost about 1.3.
const MAX_EXPOSURE: u32 = 20;

/// The variables of the env file.
#[derive(Debug, Default)]
struct EnvFile {
    /// `NAME=value` lines, in order.
    active: Vec<(String, String)>,
    /// Every `LEASE_*` name on a `NAME=` or `#NAME=` line.
    mentioned: BTreeSet<String>,
}

fn deploy_file(name: &str) -> PathBuf {
    workspace_root().join("deploy").join(name)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn is_variable_name(name: &str) -> bool {
    name.strip_prefix("LEASE_").is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// Parses the env file the way systemd's `EnvironmentFile=` reads the
/// subset this file may use: `NAME=value`, `#` comments, blank lines; no
/// quotes or `$` (systemd does not expand them the way a shell would).
fn parse_env_file(text: &str) -> EnvFile {
    let mut env = EnvFile::default();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        let (commented, body) = match line.strip_prefix('#') {
            Some(rest) => (true, rest.trim_start()),
            None => (false, line),
        };
        let assignment = body
            .split_once('=')
            .filter(|(name, _)| is_variable_name(name));
        match assignment {
            Some((name, value)) => {
                env.mentioned.insert(name.to_owned());
                if !commented {
                    assert!(
                        !value.contains(['"', '\'', '$', '\\']) && !value.is_empty(),
                        "line {}: `{line}`: keep values plain (no quotes, `$`, `\\`)",
                        number + 1
                    );
                    env.active.push((name.to_owned(), value.to_owned()));
                }
            }
            None => assert!(
                commented || line.is_empty(),
                "line {}: `{line}` is neither a comment nor LEASE_NAME=value",
                number + 1
            ),
        }
    }
    env
}

/// The `[env: NAME=…]` names of `lease-server --help`.
fn accepted_variables() -> BTreeSet<String> {
    let output = run(Command::new(BINARY).arg("--help"));
    assert!(output.status.success(), "lease-server --help failed");
    let help = String::from_utf8_lossy(&output.stdout).into_owned();
    help.split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split(['=', ']']).next())
        .map(str::to_owned)
        .collect()
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"))
}

fn env_file() -> EnvFile {
    parse_env_file(&read(&deploy_file("containerlease.env")))
}

#[test]
fn env_file_names_only_variables_the_server_accepts() {
    let env = env_file();
    let accepted = accepted_variables();
    assert!(accepted.len() > 40, "few [env: …] in --help: {accepted:?}");
    let unknown: Vec<_> = env.mentioned.difference(&accepted).collect();
    assert!(
        unknown.is_empty(),
        "not lease-server variables: {unknown:?}"
    );
    let mut seen = BTreeSet::new();
    for (name, _) in &env.active {
        assert!(seen.insert(name), "{name} is set twice");
    }
    for required in ["LEASE_TOKENS", "LEASE_LISTEN", "LEASE_LOG_FORMAT"] {
        assert!(seen.contains(&required.to_owned()), "{required} is not set");
    }
}

#[test]
fn env_file_values_parse() {
    // clap reads every server variable before it runs a subcommand, so a
    // value it refuses fails `token new` with the variable's name; the
    // subcommand itself only prints a fresh token.
    let env = env_file();
    let output = run(Command::new(BINARY)
        .args(["token", "new", "--owner", "deploy-check"])
        .env_clear()
        .envs(env.active.iter().map(|(name, value)| (name, value))));
    assert!(
        output.status.success(),
        "the env file's values are refused:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Writes a secret file readable by its owner only, as the guide says.
fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// The metric names the operator guide mentions (`containerlease_…`).
fn guide_metrics() -> BTreeSet<String> {
    let guide = read(&deploy_file("README.md"));
    guide
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("containerlease_"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn server_starts_with_the_env_file_and_serves_the_guides_metrics() {
    if !docker_ready() {
        return skip_or_fail("Docker (with the local test image) is not available");
    }
    let namespace = random_namespace();
    let _guard = NamespaceGuard::new(&namespace);
    let files = TempDir::new("deploy-env");
    let user = mint_token(Path::new(BINARY), "deploy-user", false);
    let tokens = files.path().join("tokens.toml");
    write_private(&tokens, &user.toml_entry);
    let metrics_token = "deploy-scrape-token-0123456789abcdef";
    let metrics_file = files.path().join("metrics-token");
    write_private(&metrics_file, metrics_token);

    // The env file as systemd passes it; the test's own port, namespace,
    // catalog and files replace the host paths (flags win over variables).
    let mut config = ServerConfig::new(&namespace)
        .binary(BINARY)
        .ready_path("/healthz")
        .ready_within(Duration::from_secs(30))
        .args(["--tokens".into(), tokens.display().to_string()])
        .args([
            "--metrics-token-file".into(),
            metrics_file.display().to_string(),
        ]);
    for (name, value) in env_file().active {
        config = config.env(name, value);
    }
    let server = Server::start(config).expect("the binary of this crate's tests");

    let http = reqwest::Client::new();
    let leases = http
        .get(format!("{}api/containers", server.url()))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("GET /api/containers");
    assert_eq!(leases.status(), 200, "{}", server.log_text());
    let metrics = http
        .get(format!("{}metrics", server.url()))
        .bearer_auth(metrics_token)
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.expect("metrics body");
    let families: BTreeSet<&str> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .collect();
    let wanted = guide_metrics();
    assert!(wanted.len() >= 5, "the guide names few metrics: {wanted:?}");
    let missing: Vec<_> = wanted
        .iter()
        .filter(|name| !families.contains(name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "deploy/README.md names metrics /metrics does not have: {missing:?}\n{text}"
    );
}

/// `systemd-analyze`, or `None` after a printed skip (a panic in CI).
fn systemd_analyze() -> Option<&'static str> {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if found {
        Some("systemd-analyze")
    } else {
        skip_or_fail("systemd-analyze is not installed (Debian: apt-get install systemd)");
        None
    }
}

/// The unit with `ExecStart=` on this test's binary, in a scratch
/// directory: `verify` fails on a command that does not exist, and the
/// unit names the installed path, /usr/local/bin/lease-server.
fn unit_for_this_binary(dir: &TempDir) -> PathBuf {
    let unit = read(&deploy_file("containerlease.service"));
    let exec_start = "ExecStart=/usr/local/bin/lease-server\n";
    assert!(unit.contains(exec_start), "the unit's ExecStart changed");
    let path = dir.path().join("containerlease.service");
    let text = unit.replace(exec_start, &format!("ExecStart={BINARY}\n"));
    std::fs::write(&path, text).expect("write the unit copy");
    path
}

/// `systemd-analyze` and the unit copy in its scratch directory (kept while
/// the `TempDir` lives), or `None` after a printed skip.
fn unit_under_test() -> Option<(&'static str, TempDir, PathBuf)> {
    let analyze = systemd_analyze()?;
    let dir = TempDir::new("deploy-unit");
    let unit = unit_for_this_binary(&dir);
    Some((analyze, dir, unit))
}

#[test]
fn systemd_unit_verifies_without_warnings() {
    let Some((analyze, _dir, unit)) = unit_under_test() else {
        return;
    };
    let output = run(Command::new(analyze).arg("verify").arg(&unit));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {}\n{said}",
        output.status
    );
}

#[test]
fn systemd_unit_is_hardened() {
    let Some((analyze, _dir, unit)) = unit_under_test() else {
        return;
    };
    let output = run(Command::new(analyze)
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(format!("--threshold={MAX_EXPOSURE}"))
        .arg(&unit));
    assert!(
        output.status.success(),
        "exposure above {MAX_EXPOSURE} tenths:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let unit = read(&unit);
    for directive in [
        "User=containerlease",
        "SupplementaryGroups=docker",
        "StateDirectory=containerlease",
        "Environment=XDG_STATE_HOME=%S",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "CapabilityBoundingSet=\n",
    ] {
        assert!(unit.contains(directive), "the unit lacks {directive}");
    }
}

#[test]
fn sysusers_file_is_accepted() {
    let found = Command::new("systemd-sysusers")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        return skip_or_fail("systemd-sysusers is not installed (Debian: apt-get install systemd)");
    }
    let output = run(Command::new("systemd-sysusers")
        .arg("--dry-run")
        .arg(deploy_file("containerlease.sysusers")));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        // Its complaints name the file ("…containerlease.sysusers:1: …").
        output.status.success() && !stderr.contains("containerlease.sysusers"),
        "systemd-sysusers --dry-run: {}\n{stderr}",
        output.status
    );
}
