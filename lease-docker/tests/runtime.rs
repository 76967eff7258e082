//! What is Docker's own in the runtime, against the real Docker engine:
//! hardening as `docker inspect` and the process see it, references the
//! engine would misread, a retried create restarting a stopped container,
//! following logs until the container stops, exec environment, terminal
//! size and raw terminal output, unlabelled containers left alone, a pull
//! that cannot succeed, and a command that cannot run. What every runtime
//! must do is in the conformance suite (`tests/conformance.rs`).

mod common;

use std::time::Duration;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::CreateContainerOptionsBuilder;
use common::{TestDocker, raw_exists, raw_list};
use futures::{StreamExt, TryStreamExt};
use lease_core::runtime::{ExecRequest, LogOptions, LogSource, UnitState, labels};
use lease_core::{ContainerRuntime, RuntimeError};
use lease_docker::hardening::ADDED_CAPABILITIES;
use lease_testkit::IMAGE;

const KEEP_ALIVE: &[&str] = &["sleep", "infinity"];

#[tokio::test]
async fn hardening_is_what_docker_and_the_process_see() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let spec = test.spec(KEEP_ALIVE);
    let id = test.runtime.create(&spec).await.expect("create");

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

    test.runtime.remove(&id).await.expect("remove");
    assert!(!raw_exists(&test.raw, &id).await);
}

#[tokio::test]
async fn references_the_engine_would_misread_are_refused() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    test.runtime
        .remove("0123456789abcdef0123")
        .await
        .expect("an unknown id counts as removed");
    for bad in ["../images/busybox", "a/b", "-a"] {
        let removed = test.runtime.remove(bad).await;
        assert!(
            matches!(removed, Err(RuntimeError::Invalid(_))),
            "{bad}: {removed:?}"
        );
        let status = test.runtime.status(bad).await;
        assert!(
            matches!(status, Err(RuntimeError::Invalid(_))),
            "{bad}: {status:?}"
        );
    }
}

#[tokio::test]
async fn a_retried_create_starts_a_stopped_container() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let spec = test.spec(KEEP_ALIVE);
    let first = test.runtime.create(&spec).await.unwrap();

    // A retried provisioning finds its stopped container and starts it again.
    test.raw.stop_container(&first, None).await.unwrap();
    let stopped = test.runtime.status(&first).await.unwrap().unwrap();
    assert!(
        matches!(stopped.state, UnitState::Exited { code: Some(_) }),
        "{stopped:?}"
    );
    let again = test.runtime.create(&spec).await.unwrap();
    assert_eq!(again, first);
    assert!(
        test.runtime
            .status(&first)
            .await
            .unwrap()
            .unwrap()
            .running()
    );
    assert_eq!(
        raw_list(&test.raw, &test.namespace).await,
        std::slice::from_ref(&first)
    );
}

#[tokio::test]
async fn logs_follow_until_the_container_stops() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let spec = test.spec(&[
        "sh",
        "-c",
        "echo one; echo two >&2; echo three; sleep 1; echo four; echo five >&2",
    ]);
    let id = test.runtime.create(&spec).await.unwrap();

    // Follow until the container stops.
    let follow = LogOptions {
        follow: true,
        tail: None,
    };
    let stream = test.runtime.logs(&id, follow).await.unwrap();
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

    // It has stopped: its status has its exit code.
    let info = test.runtime.status(&id).await.unwrap().unwrap();
    assert_eq!(info.state, UnitState::Exited { code: Some(0) });

    // Tail of what is already written (stdout and stderr are copied by
    // separate pipes, so the last two lines may come in either order).
    let tail = LogOptions {
        follow: false,
        tail: Some(2),
    };
    let last: Vec<_> = test
        .runtime
        .logs(&id, tail)
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

#[tokio::test]
async fn exec_environment_terminal_size_and_raw_terminal_output() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let id = test.runtime.create(&test.spec(KEEP_ALIVE)).await.unwrap();

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
    let session = test.runtime.exec(&id, request).await.unwrap();
    let chunks: Vec<_> = session.output.try_collect().await.unwrap();
    let text: Vec<u8> = chunks.into_iter().flat_map(|c| c.bytes).collect();
    assert_eq!(text, b"hi there\n");
    let request = ExecRequest {
        command: vec!["true".into()],
        env: vec!["=no key".into()],
        ..ExecRequest::default()
    };
    assert!(matches!(
        test.runtime.exec(&id, request).await,
        Err(RuntimeError::Invalid(_))
    ));

    // A terminal of the asked size, resizable.
    let request = ExecRequest {
        command: vec!["sh".into(), "-c".into(), "sleep 0.5; stty size".into()],
        tty: true,
        size: Some((100, 30)),
        ..ExecRequest::default()
    };
    let session = test.runtime.exec(&id, request).await.unwrap();
    session.control.resize(120, 40).await.expect("resize");
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
    let mut session = test.runtime.exec(&id, request).await.unwrap();
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

    let empty = test.runtime.exec(&id, ExecRequest::default()).await;
    assert!(matches!(empty, Err(RuntimeError::Invalid(_))));
}

#[tokio::test]
async fn unlabelled_containers_are_never_listed_or_touched() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    let a = test.runtime.create(&test.spec(KEEP_ALIVE)).await.unwrap();
    let b = test.runtime.create(&test.spec(&["true"])).await.unwrap();

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
        .list_managed()
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

    // Nothing unlabelled is touched.
    for foreign in [unlabelled.as_str(), name.as_str()] {
        assert!(matches!(test.runtime.status(foreign).await, Ok(None)));
        assert!(matches!(
            test.runtime.remove(foreign).await,
            Err(RuntimeError::NotManaged { .. })
        ));
        assert!(matches!(
            test.runtime.logs(foreign, LogOptions::default()).await,
            Err(RuntimeError::NotManaged { .. })
        ));
        let exec = ExecRequest {
            command: vec!["true".into()],
            ..ExecRequest::default()
        };
        assert!(matches!(
            test.runtime.exec(foreign, exec).await,
            Err(RuntimeError::NotManaged { .. })
        ));
        assert!(
            raw_exists(&test.raw, foreign).await,
            "{foreign} still exists"
        );
    }
    let still_running = test.raw.inspect_container(&unlabelled, None).await.unwrap();
    assert_eq!(still_running.state.and_then(|s| s.running), Some(true));
}

#[tokio::test]
async fn a_pull_that_cannot_succeed_fails_clearly_and_leaves_nothing() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    // The local image needs no pull and reports no progress.
    let (progress, mut reports) = tokio::sync::mpsc::unbounded_channel();
    test.runtime
        .ensure_image(IMAGE, progress.clone())
        .await
        .expect("local image");
    assert!(reports.try_recv().is_err(), "no progress for a local image");

    // No registry here: the pull fails, naming the image and the engine's reason.
    let missing = format!("containerlease-test/not-here-{}:never", test.namespace);
    let started = std::time::Instant::now();
    let error = test
        .runtime
        .ensure_image(&missing, progress)
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
    let create = test.runtime.create(&spec).await;
    assert!(
        matches!(create, Err(RuntimeError::ImageUnavailable { .. })),
        "{create:?}"
    );
    assert!(test.raw.inspect_image(&missing).await.is_err(), "no image");
    assert!(
        raw_list(&test.raw, &test.namespace).await.is_empty(),
        "no container"
    );
    assert!(test.runtime.list_managed().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_command_that_cannot_run_shows_as_exited() {
    let Some(test) = TestDocker::start().await else {
        return;
    };
    // The init process starts, so the start succeeds; the command then
    // fails and the container exits with 127, which inspect and list report.
    let spec = test.spec(&["/no/such/program"]);
    let id = test.runtime.create(&spec).await.expect("init starts");
    let mut info = test.runtime.status(&id).await.unwrap().unwrap();
    for _ in 0..100 {
        if !info.running() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        info = test.runtime.status(&id).await.unwrap().unwrap();
    }
    assert_eq!(info.state, UnitState::Exited { code: Some(127) });
    let listed = test.runtime.list_managed().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, UnitState::Exited { code: Some(127) });
    test.runtime.remove(&id).await.unwrap();
    assert!(raw_list(&test.raw, &test.namespace).await.is_empty());
}
