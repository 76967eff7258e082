//! `lease cp` and `/api/containers/{id}/files` end to end: the real
//! `lease-server` (tokens mode, small `--max-upload`), real Docker (the
//! local test image), the real `lease` binary in remote mode (no Docker, no
//! store on its side), and `lease_client` for the routes' error cases.
//!
//! The test has its own namespace (`NamespaceGuard`, created before the
//! server, removes its containers even on failure).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use lease_client::Client;
use lease_testkit::TempDir;
use lease_testkit::docker::{NamespaceGuard, docker_ready};
use lease_testkit::server::{Server, ServerConfig, mint_token};

/// Where Docker is not: the CLI must never need it in remote mode.
const NO_DOCKER: &str = "unix:///nonexistent/docker.sock";
/// The server's upload limit in this test.
const MAX_UPLOAD: u64 = 6 * 1024 * 1024;

struct Fixture {
    server: Server,
    alice: String,
    bob: String,
    config: TempDir,
    // Declared last: dropped after the server is killed.
    _guard: NamespaceGuard,
}

impl Fixture {
    fn start() -> Option<Fixture> {
        if !docker_ready() {
            return None;
        }
        let guard = NamespaceGuard::random();
        let binary = lease_testkit::server::binary()?;
        let alice = mint_token(&binary, "alice", false);
        let bob = mint_token(&binary, "bob", false);
        let config = TempDir::new("lease-files-config");
        let tokens = config.path().join("tokens.toml");
        std::fs::write(&tokens, format!("{}\n{}", alice.toml_entry, bob.toml_entry))
            .expect("tokens file");
        let server = Server::start(
            ServerConfig::new(guard.namespace())
                .binary(binary)
                .store("memory")
                .ready_path("/healthz")
                .ready_within(Duration::from_secs(30))
                .args(["--tokens", &tokens.display().to_string()])
                .args(["--max-upload", &MAX_UPLOAD.to_string()])
                .args(["--max-download", "4MiB"]),
        )?;
        Some(Fixture {
            server,
            alice: alice.token,
            bob: bob.token,
            config,
            _guard: guard,
        })
    }

    /// `lease` as `token` through the server.
    fn lease_with(&self, token: &str) -> Command {
        let mut command = common::lease();
        command
            .env("LEASE_SERVER", self.server.url())
            .env("LEASE_TOKEN", token)
            .env("DOCKER_HOST", NO_DOCKER)
            .env("XDG_CONFIG_HOME", self.config.path())
            .timeout(Duration::from_secs(60));
        command
    }

    fn lease(&self) -> Command {
        self.lease_with(&self.alice)
    }

    /// `lease up OFFERING` as alice; the lease id.
    fn up(&self, offering: &str) -> String {
        common::stdout_of(self.lease().args(["up", offering, "--for", "5m"]))
            .trim()
            .to_owned()
    }

    /// `lease shell ID -- sh -c SCRIPT` as alice: its stdout.
    fn run(&self, id: &str, script: &str) -> String {
        common::stdout_of(self.lease().args(["shell", id, "--", "sh", "-c", script]))
    }

    fn client(&self, token: &str) -> Client {
        Client::new(&self.server.url(), Some(token.to_owned())).expect("client")
    }
}

/// Deterministic pseudo-random bytes (xorshift), incompressible enough.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        bytes.extend_from_slice(&seed.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// Every file under `root` (relative path, contents), sorted.
fn tree(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(root).expect("under root").to_path_buf();
                files.push((relative, std::fs::read(&path).expect("read")));
            }
        }
    }
    files.sort();
    files
}

fn failure_of(command: &mut Command) -> String {
    let output = command.output().expect("run lease");
    assert!(!output.status.success(), "succeeded: {output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn cp_without_a_server_says_it_needs_one() {
    let output = common::lease()
        .env_remove("LEASE_SERVER")
        .args(["cp", "./x", "abc:/tmp"])
        .output()
        .expect("run lease");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("--server"), "{error}");
}

#[test]
fn cp_round_trips_files_and_trees_and_refuses_what_it_must() {
    let Some(fixture) = Fixture::start() else {
        return;
    };
    let id = fixture.up("busybox");
    let local = TempDir::new("lease-files-local");

    // A 3 MiB file up and back, byte for byte; the lease sees the same sum.
    let big = noise(3 * 1024 * 1024 + 123, 7);
    let source = local.path().join("big.bin");
    std::fs::write(&source, &big).expect("write");
    let started = std::time::Instant::now();
    let remote = format!("{id}:/tmp/big.bin");
    fixture
        .lease()
        .args(["cp", &source.display().to_string(), &remote])
        .assert()
        .success();
    let back = local.path().join("back.bin");
    fixture
        .lease()
        .args(["cp", &remote, &back.display().to_string()])
        .assert()
        .success();
    eprintln!("3 MiB up and down in {:?}", started.elapsed());
    assert!(
        std::fs::read(&back).expect("read back") == big,
        "the file changed on the way"
    );
    let size = fixture.run(&id, "wc -c < /tmp/big.bin");
    assert_eq!(size.trim(), big.len().to_string());

    // A tree (nested, an empty file, a space in a name) into an existing
    // directory, and back into another one.
    let tree_root = local.path().join("proj");
    std::fs::create_dir_all(tree_root.join("src/deep")).expect("mkdir");
    std::fs::write(tree_root.join("README"), b"hello\n").expect("write");
    std::fs::write(tree_root.join("src/a b.txt"), noise(200_000, 3)).expect("write");
    std::fs::write(tree_root.join("src/deep/empty"), b"").expect("write");
    std::fs::write(tree_root.join("src/deep/data"), noise(1024 * 1024, 5)).expect("write");
    fixture
        .lease()
        .args([
            "cp",
            &tree_root.display().to_string(),
            &format!("{id}:/tmp"),
        ])
        .assert()
        .success();
    let listed = fixture.run(&id, "cd /tmp/proj && find . -type f | sort");
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        [
            "./README",
            "./src/a b.txt",
            "./src/deep/data",
            "./src/deep/empty"
        ],
        "{listed}"
    );
    let into = local.path().join("into");
    std::fs::create_dir(&into).expect("mkdir");
    fixture
        .lease()
        .args([
            "cp",
            &format!("{id}:/tmp/proj"),
            &into.display().to_string(),
        ])
        .assert()
        .success();
    assert_eq!(tree(&into.join("proj")), tree(&tree_root));

    // Over the upload limit: refused, and nothing of it is left.
    let huge = local.path().join("huge.bin");
    std::fs::write(&huge, noise(MAX_UPLOAD as usize + 1024 * 1024, 11)).expect("write");
    let error = failure_of(fixture.lease().args([
        "cp",
        &huge.display().to_string(),
        &format!("{id}:/tmp/huge.bin"),
    ]));
    eprintln!("over the limit: {error}");
    assert!(error.contains("413") && error.contains("limit"), "{error}");
    let left = fixture.run(&id, "ls -A /tmp");
    assert!(
        !left.contains("huge") && !left.contains(".lease-upload"),
        "{left}"
    );

    // A missing path, on both sides of the API.
    let error = failure_of(fixture.lease().args([
        "cp",
        &format!("{id}:/tmp/nope"),
        &local.path().join("x").display().to_string(),
    ]));
    assert!(error.contains("does not exist"), "{error}");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let alice = fixture.client(&fixture.alice);
        let bob = fixture.client(&fixture.bob);
        let empty = || futures::stream::empty::<std::io::Result<bytes::Bytes>>();
        let error = alice.download(&id, "/tmp/nope").await.expect_err("missing");
        assert_eq!(
            (error.status(), error.code()),
            (Some(404), Some("path_not_found"))
        );
        let error = alice
            .upload(&id, "/nope", empty())
            .await
            .expect_err("missing dir");
        assert_eq!(
            (error.status(), error.code()),
            (Some(404), Some("path_not_found"))
        );
        // Hostile paths: 400 before anything runs.
        for bad in ["tmp", "/tmp/../etc", "/tmp/./x", "/", "/tmp\0x"] {
            let error = alice.download(&id, bad).await.expect_err(bad);
            assert_eq!(
                (error.status(), error.code()),
                (Some(400), Some("invalid_path")),
                "{bad:?}"
            );
            let error = alice.upload(&id, bad, empty()).await.expect_err(bad);
            assert_eq!(
                (error.status(), error.code()),
                (Some(400), Some("invalid_path")),
                "{bad:?}"
            );
        }
        // Another owner: 404 on both routes, as for a lease that does not exist.
        let error = bob.download(&id, "/tmp/big.bin").await.expect_err("bob");
        assert_eq!(
            (error.status(), error.code()),
            (Some(404), Some("not_found"))
        );
        let error = bob.upload(&id, "/tmp", empty()).await.expect_err("bob");
        assert_eq!(
            (error.status(), error.code()),
            (Some(404), Some("not_found"))
        );
        // /tmp now holds more than the download limit (4 MiB): refused up front.
        let error = alice.download(&id, "/tmp").await.expect_err("too large");
        assert_eq!(
            (error.status(), error.code()),
            (Some(413), Some("too_large")),
            "{error}"
        );
        // Not a directory to unpack into.
        let error = alice
            .upload(&id, "/tmp/big.bin", empty())
            .await
            .expect_err("file");
        assert_eq!(
            (error.status(), error.code()),
            (Some(403), Some("path_not_allowed"))
        );
    });

    // A read-only lease (non-root user): /tmp works, anywhere else is
    // refused with the reason.
    let sandboxed = fixture.up("sandboxed");
    let note = local.path().join("note.txt");
    std::fs::write(&note, b"scratch\n").expect("write");
    fixture
        .lease()
        .args([
            "cp",
            &note.display().to_string(),
            &format!("{sandboxed}:/tmp/"),
        ])
        .assert()
        .success();
    let owner = fixture.run(&sandboxed, "cat /tmp/note.txt; stat -c %u /tmp/note.txt");
    assert_eq!(
        owner, "scratch\n1000\n",
        "the file belongs to the lease's user"
    );
    let error = failure_of(fixture.lease().args([
        "cp",
        &note.display().to_string(),
        &format!("{sandboxed}:/etc/"),
    ]));
    eprintln!("read-only: {error}");
    assert!(
        error.contains("403") && error.contains("read-only"),
        "{error}"
    );
    let fetched = local.path().join("fetched.txt");
    fixture
        .lease()
        .args([
            "cp",
            &format!("{sandboxed}:/tmp/note.txt"),
            &fetched.display().to_string(),
        ])
        .assert()
        .success();
    assert_eq!(std::fs::read(&fetched).expect("read"), b"scratch\n");
}
