//! The runtime against the real Docker engine: round trip, labels, limits
//! and hardening, idempotent create and remove, logs, exec, namespace
//! scoping, and a pull that cannot succeed.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::CreateContainerOptionsBuilder;
use common::{TestDocker, raw_exists, raw_list, spec_in};
use futures::{StreamExt, TryStreamExt};
use lease_core::runtime::{ExecRequest, LogOptions, LogSource, PullProgress, labels};
use lease_core::{ContainerRuntime, RuntimeError};
use lease_docker::hardening::ADDED_CAPABILITIES;
use lease_testkit::docker::NamespaceGuard;
use lease_testkit::{IMAGE, random_namespace};
use tokio::io::AsyncWriteExt;

const KEEP_ALIVE: &[&str] = &["sleep", "infinity"];

#[tokio::test]
async fn round_trip_with_labels_limits_and_hardening() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let spec = test.spec(KEEP_ALIVE);
    let id = test
        .runtime
        .create_and_start(&spec)
        .await
        .expect("create and start");

    let info = test
        .runtime
        .inspect(&test.namespace, &id)
        .await
        .unwrap()
        .expect("exists");
    assert!(info.running, "{info:?}");
    assert_eq!(info.state, "running");
    assert_eq!(info.name, spec.name);
    assert_eq!(info.exit_code, None);
    assert_eq!(
        info.lease_id()
            .map(lease_core::runtime::BelongsTo::Lease)
            .as_ref(),
        Some(&spec.belongs_to)
    );
    // By name, too.
    assert_eq!(
        test.runtime
            .inspect(&test.namespace, &spec.name)
            .await
            .unwrap()
            .unwrap()
            .id,
        id
    );

    // What `docker inspect` shows.
    let raw = test.raw.inspect_container(&id, None).await.unwrap();
    let raw_labels = raw.config.as_ref().and_then(|c| c.labels.clone()).unwrap();
    for (key, value) in &spec.labels {
        assert_eq!(raw_labels.get(key), Some(value), "label {key}");
    }
    for key in [
        labels::MANAGED,
        labels::NAMESPACE,
        labels::LEASE_ID,
        labels::OWNER,
        labels::EXPIRES_AT,
    ] {
        assert!(raw_labels.contains_key(key), "invariant 1 label {key}");
    }
    assert_eq!(
        raw.config.as_ref().and_then(|c| c.cmd.clone()).unwrap(),
        ["sleep", "infinity"]
    );
    let host = raw.host_config.unwrap();
    assert_eq!(host.memory, Some(64 << 20));
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert_eq!(host.pids_limit, Some(64));
    assert_eq!(host.privileged, Some(false));
    assert_eq!(host.init, Some(true));
    assert_eq!(host.cap_drop.unwrap(), ["ALL"]);
    let mut cap_add = host.cap_add.unwrap();
    cap_add.sort();
    let mut expected: Vec<String> = ADDED_CAPABILITIES.iter().map(|c| (*c).to_owned()).collect();
    expected.sort();
    assert_eq!(cap_add, expected);
    assert!(
        host.security_opt
            .unwrap()
            .iter()
            .any(|o| o.starts_with("no-new-privileges"))
    );
    assert!(host.binds.unwrap_or_default().is_empty());
    assert!(raw.mounts.unwrap_or_default().is_empty(), "no mounts");

    // …and what the process inside actually gets: only the added
    // capabilities (CHOWN 0, DAC_OVERRIDE 1, FOWNER 3, SETGID 6, SETUID 7)
    // and no_new_privs.
    let status = exec_output(&test, &id, &["cat", "/proc/self/status"]).await;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(field("CapEff:"), "00000000000000cb", "{status}");
    assert_eq!(field("CapBnd:"), "00000000000000cb", "{status}");
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");

    test.runtime
        .remove(&test.namespace, &id)
        .await
        .expect("remove");
    assert!(
        test.runtime
            .inspect(&test.namespace, &id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!raw_exists(&test.raw, &id).await);
    // Removing twice, and removing by name, are fine.
    test.runtime
        .remove(&test.namespace, &id)
        .await
        .expect("remove twice");
    test.runtime
        .remove(&test.namespace, &spec.name)
        .await
        .expect("remove by name after removal");
}

#[tokio::test]
async fn remove_of_an_unknown_container_is_fine() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let unknown = lease_core::runtime::container_name(&lease_core::LeaseId::generate());
    test.runtime
        .remove(&test.namespace, &unknown)
        .await
        .expect("unknown name");
    test.runtime
        .remove(&test.namespace, "0123456789abcdef0123")
        .await
        .expect("unknown id");
    assert!(
        test.runtime
            .inspect(&test.namespace, &unknown)
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        test.runtime
            .logs(&test.namespace, &unknown, LogOptions::default())
            .await,
        Err(RuntimeError::NotFound { .. })
    ));
    let bad = test
        .runtime
        .remove(&test.namespace, "../images/busybox")
        .await;
    assert!(matches!(bad, Err(RuntimeError::Invalid(_))), "{bad:?}");
}

#[tokio::test]
async fn create_is_idempotent_by_name() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let spec = test.spec(KEEP_ALIVE);
    let first = test.runtime.create_and_start(&spec).await.unwrap();
    let second = test.runtime.create_and_start(&spec).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(
        raw_list(&test.raw, &test.namespace).await,
        std::slice::from_ref(&first)
    );

    // A retried provisioning finds its stopped container and starts it again.
    test.raw.stop_container(&first, None).await.unwrap();
    let stopped = test
        .runtime
        .inspect(&test.namespace, &first)
        .await
        .unwrap()
        .unwrap();
    assert!(!stopped.running);
    assert_eq!(stopped.state, "exited");
    assert!(stopped.exit_code.is_some());
    let third = test.runtime.create_and_start(&spec).await.unwrap();
    assert_eq!(third, first);
    assert!(
        test.runtime
            .inspect(&test.namespace, &first)
            .await
            .unwrap()
            .unwrap()
            .running
    );
}

#[tokio::test]
async fn specs_without_our_labels_are_refused() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let mut unmanaged = test.spec(KEEP_ALIVE);
    unmanaged.labels.remove(labels::MANAGED);
    assert!(matches!(
        test.runtime.create_and_start(&unmanaged).await,
        Err(RuntimeError::Invalid(_))
    ));
    let mut elsewhere = test.spec(KEEP_ALIVE);
    elsewhere
        .labels
        .insert(labels::NAMESPACE.to_owned(), random_namespace());
    assert!(matches!(
        test.runtime.create_and_start(&elsewhere).await,
        Err(RuntimeError::Invalid(_))
    ));
    assert!(raw_list(&test.raw, &test.namespace).await.is_empty());
}

#[tokio::test]
async fn logs_stream_the_lines_a_container_printed() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let spec = test.spec(&[
        "sh",
        "-c",
        "echo one; echo two >&2; echo three; sleep 1; echo four; echo five >&2",
    ]);
    let id = test.runtime.create_and_start(&spec).await.unwrap();

    // Follow until the container stops.
    let follow = LogOptions {
        follow: true,
        tail: None,
    };
    let stream = test
        .runtime
        .logs(&test.namespace, &id, follow)
        .await
        .unwrap();
    let lines: Vec<_> =
        tokio::time::timeout(Duration::from_secs(20), stream.try_collect::<Vec<_>>())
            .await
            .expect("follow ends when the container stops")
            .unwrap();
    let stdout: Vec<&str> = lines
        .iter()
        .filter(|l| l.source == LogSource::Stdout)
        .map(|l| l.text.as_str())
        .collect();
    let stderr: Vec<&str> = lines
        .iter()
        .filter(|l| l.source == LogSource::Stderr)
        .map(|l| l.text.as_str())
        .collect();
    assert_eq!(stdout, ["one", "three", "four"]);
    assert_eq!(stderr, ["two", "five"]);

    // It has stopped: inspect reports its exit code.
    let info = test
        .runtime
        .inspect(&test.namespace, &id)
        .await
        .unwrap()
        .unwrap();
    assert!(!info.running);
    assert_eq!(info.exit_code, Some(0));

    // Tail of what is already written (stdout and stderr are copied by
    // separate pipes, so the last two lines may come in either order).
    let tail = LogOptions {
        follow: false,
        tail: Some(2),
    };
    let last: Vec<_> = test
        .runtime
        .logs(&test.namespace, &id, tail)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut last: Vec<(LogSource, &str)> =
        last.iter().map(|l| (l.source, l.text.as_str())).collect();
    last.sort_by_key(|(_, text)| text.to_owned());
    assert_eq!(
        last,
        [(LogSource::Stderr, "five"), (LogSource::Stdout, "four")]
    );
}

/// Runs a command and returns its stdout, asserting exit code 0.
async fn exec_output(test: &TestDocker, container: &str, command: &[&str]) -> String {
    let ran = test.run(container, command).await;
    assert_eq!(ran.code, 0, "{command:?}: {ran:?}");
    ran.stdout
}

/// Waits for an exec's exit code.
async fn exit_code(test: &TestDocker, exec_id: &str) -> i64 {
    test.exit_code(exec_id).await
}

#[tokio::test]
async fn exec_runs_commands_with_output_stdin_and_a_terminal() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let id = test
        .runtime
        .create_and_start(&test.spec(KEEP_ALIVE))
        .await
        .unwrap();

    assert_eq!(
        exec_output(&test, &id, &["echo", "hello", "world"]).await,
        "hello world\n"
    );

    // Extra environment reaches the command; a malformed entry is refused.
    let request = ExecRequest {
        command: vec!["sh".into(), "-c".into(), "echo \"$GREETING\"".into()],
        env: vec!["GREETING=hi there".into()],
        ..ExecRequest::default()
    };
    let session = test
        .runtime
        .exec(&test.namespace, &id, request)
        .await
        .unwrap();
    let chunks: Vec<_> = session.output.try_collect().await.unwrap();
    let text: Vec<u8> = chunks.into_iter().flat_map(|c| c.bytes).collect();
    assert_eq!(text, b"hi there\n");
    let request = ExecRequest {
        command: vec!["true".into()],
        env: vec!["=no key".into()],
        ..ExecRequest::default()
    };
    assert!(matches!(
        test.runtime.exec(&test.namespace, &id, request).await,
        Err(RuntimeError::Invalid(_))
    ));

    // stderr is tagged, and the exit code comes back.
    let request = ExecRequest {
        command: vec!["sh".into(), "-c".into(), "echo oops >&2; exit 3".into()],
        ..ExecRequest::default()
    };
    let session = test
        .runtime
        .exec(&test.namespace, &id, request)
        .await
        .unwrap();
    let chunks: Vec<_> = session.output.try_collect().await.unwrap();
    assert!(
        chunks
            .iter()
            .any(|c| c.source == LogSource::Stderr && c.bytes.starts_with(b"oops")),
        "{chunks:?}"
    );
    assert_eq!(exit_code(&test, &session.id).await, 3);

    // Standard input.
    let request = ExecRequest {
        command: vec!["cat".into()],
        stdin: true,
        ..ExecRequest::default()
    };
    let mut session = test
        .runtime
        .exec(&test.namespace, &id, request)
        .await
        .unwrap();
    let mut input = session.input.take().expect("stdin requested");
    input.write_all(b"ping\n").await.unwrap();
    input.shutdown().await.unwrap();
    let mut echoed = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), session.output.next())
        .await
        .unwrap()
    {
        echoed.extend(chunk.unwrap().bytes);
        if echoed.ends_with(b"ping\n") {
            break;
        }
    }
    assert_eq!(echoed, b"ping\n");
    drop(input);

    // A terminal of the asked size, resizable.
    let request = ExecRequest {
        command: vec!["sh".into(), "-c".into(), "sleep 0.5; stty size".into()],
        tty: true,
        size: Some((100, 30)),
        ..ExecRequest::default()
    };
    let session = test
        .runtime
        .exec(&test.namespace, &id, request)
        .await
        .unwrap();
    test.runtime
        .exec_resize(&test.namespace, &session.id, 120, 40)
        .await
        .expect("resize");
    // The same exec seen from another deployment's namespace is not ours.
    let foreign = test
        .runtime
        .exec_resize("someone-else", &session.id, 80, 24)
        .await;
    assert!(
        matches!(&foreign, Err(RuntimeError::NotManaged { namespace, .. }) if namespace == "someone-else"),
        "{foreign:?}"
    );
    let foreign = test
        .runtime
        .exec_exit_code("someone-else", &session.id)
        .await;
    assert!(
        matches!(foreign, Err(RuntimeError::NotManaged { .. })),
        "{foreign:?}"
    );
    let chunks: Vec<_> = session.output.try_collect().await.unwrap();
    let text: String = chunks
        .iter()
        .map(|c| String::from_utf8_lossy(&c.bytes).into_owned())
        .collect();
    assert!(chunks.iter().all(|c| c.source == LogSource::Stdout));
    assert_eq!(text.trim(), "40 120", "{text:?}");

    // A terminal's output is raw: output that starts with bytes 0, 1 or 2
    // (which stream headers start with without a terminal) comes through
    // whole, and at once, not when more output arrives.
    let request = ExecRequest {
        command: vec![
            "sh".into(),
            "-c".into(),
            r"sleep 0.5; printf '\001\002\003\004\005\006\007\010hi'; sleep 30".into(),
        ],
        tty: true,
        ..ExecRequest::default()
    };
    let mut session = test
        .runtime
        .exec(&test.namespace, &id, request)
        .await
        .unwrap();
    let mut raw = Vec::new();
    while !raw.ends_with(b"hi") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), session.output.next())
            .await
            .expect("the output in time, not held back")
            .expect("output")
            .unwrap();
        raw.extend(chunk.bytes);
    }
    assert_eq!(raw, b"\x01\x02\x03\x04\x05\x06\x07\x08hi");
    drop(session);

    let unknown = test
        .runtime
        .exec_exit_code(&test.namespace, &"ab".repeat(32))
        .await;
    assert!(
        matches!(unknown, Err(RuntimeError::NotFound { .. })),
        "{unknown:?}"
    );
    let empty = test
        .runtime
        .exec(&test.namespace, &id, ExecRequest::default())
        .await;
    assert!(matches!(empty, Err(RuntimeError::Invalid(_))));
}

#[tokio::test]
async fn list_managed_sees_only_this_namespace() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let other_namespace = random_namespace();
    let other_guard = NamespaceGuard::new(&other_namespace);

    let a = test
        .runtime
        .create_and_start(&test.spec(KEEP_ALIVE))
        .await
        .unwrap();
    let b = test
        .runtime
        .create_and_start(&test.spec(&["true"]))
        .await
        .unwrap();
    let other = test
        .runtime
        .create_and_start(&spec_in(&other_namespace, KEEP_ALIVE))
        .await
        .unwrap();

    // An unlabelled container beside them, made with the raw client.
    let name = format!("containerlease-unlabelled-{}", test.namespace);
    let options = CreateContainerOptionsBuilder::new().name(&name).build();
    let body = ContainerCreateBody {
        image: Some(IMAGE.to_owned()),
        cmd: Some(vec!["sleep".into(), "infinity".into()]),
        ..ContainerCreateBody::default()
    };
    let unlabelled = test
        .raw
        .create_container(Some(options), body)
        .await
        .unwrap()
        .id;
    test.guard.also_remove(&unlabelled);
    test.raw.start_container(&unlabelled, None).await.unwrap();

    let mut listed: Vec<String> = test
        .runtime
        .list_managed(&test.namespace)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    listed.sort();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(
        listed, expected,
        "stopped containers included, others excluded"
    );
    let others = test.runtime.list_managed(&other_namespace).await.unwrap();
    assert_eq!(
        others.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [other.as_str()]
    );
    assert!(others[0].running);

    // Nothing outside the namespace is touched.
    for foreign in [unlabelled.as_str(), name.as_str(), other.as_str()] {
        let ns = test.namespace.as_str();
        assert!(matches!(
            test.runtime.inspect(ns, foreign).await,
            Err(RuntimeError::NotManaged { .. })
        ));
        assert!(matches!(
            test.runtime.remove(ns, foreign).await,
            Err(RuntimeError::NotManaged { .. })
        ));
        assert!(matches!(
            test.runtime.logs(ns, foreign, LogOptions::default()).await,
            Err(RuntimeError::NotManaged { .. })
        ));
        let exec = ExecRequest {
            command: vec!["true".into()],
            ..ExecRequest::default()
        };
        assert!(matches!(
            test.runtime.exec(ns, foreign, exec).await,
            Err(RuntimeError::NotManaged { .. })
        ));
        assert!(
            raw_exists(&test.raw, foreign).await,
            "{foreign} still exists"
        );
    }
    let still_running = test.raw.inspect_container(&unlabelled, None).await.unwrap();
    assert_eq!(still_running.state.and_then(|s| s.running), Some(true));
    drop(other_guard);
}

#[tokio::test]
async fn a_pull_that_cannot_succeed_fails_clearly_and_leaves_nothing() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    // The local image needs no pull and reports no progress.
    let calls = AtomicUsize::new(0);
    let count = |_: PullProgress| {
        calls.fetch_add(1, Ordering::Relaxed);
    };
    test.runtime
        .ensure_image(IMAGE, &count)
        .await
        .expect("local image");
    assert_eq!(calls.load(Ordering::Relaxed), 0);

    // No registry here: the pull fails, naming the image and the engine's reason.
    let missing = format!("containerlease-test/not-here-{}:never", test.namespace);
    let started = std::time::Instant::now();
    let error = test
        .runtime
        .ensure_image(&missing, &count)
        .await
        .expect_err("no registry");
    let chain = error.chain();
    match &error {
        RuntimeError::ImageUnavailable { image, .. } => assert_eq!(image, &missing),
        other => panic!("expected ImageUnavailable, got {other:?}"),
    }
    assert!(
        chain.contains(&missing) && chain.contains("cannot pull image"),
        "{chain}"
    );
    eprintln!("pull failed after {:?}: {chain}", started.elapsed());

    // Creating from it fails the same way, and nothing is left behind.
    let mut spec = test.spec(KEEP_ALIVE);
    spec.image = missing.clone();
    let create = test.runtime.create_and_start(&spec).await;
    assert!(
        matches!(create, Err(RuntimeError::ImageUnavailable { .. })),
        "{create:?}"
    );
    assert!(test.raw.inspect_image(&missing).await.is_err(), "no image");
    assert!(
        raw_list(&test.raw, &test.namespace).await.is_empty(),
        "no container"
    );
    assert!(
        test.runtime
            .list_managed(&test.namespace)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_command_that_cannot_run_shows_as_exited() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    // The init process starts, so the start succeeds; the command then
    // fails and the container exits with 127, which inspect and list report.
    let spec = test.spec(&["/no/such/program"]);
    let id = test
        .runtime
        .create_and_start(&spec)
        .await
        .expect("init starts");
    let mut info = test
        .runtime
        .inspect(&test.namespace, &id)
        .await
        .unwrap()
        .unwrap();
    for _ in 0..100 {
        if !info.running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        info = test
            .runtime
            .inspect(&test.namespace, &id)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(
        (info.running, info.state.as_str(), info.exit_code),
        (false, "exited", Some(127))
    );
    let listed = test.runtime.list_managed(&test.namespace).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].state.as_str(), listed[0].exit_code),
        ("exited", Some(127))
    );
    test.runtime.remove(&test.namespace, &id).await.unwrap();
    assert!(raw_list(&test.raw, &test.namespace).await.is_empty());
}
