//! The runtime conformance suite: what every [`ContainerRuntime`] must do.
//!
//! Each case is a plain `pub async fn` that takes a [`RuntimeFixture`] (a
//! fresh runtime on a fresh, unique namespace, a second runtime of another
//! fresh namespace over the same backend, and an image) and panics (with a
//! message saying what broke) when the runtime misbehaves. A runtime crate
//! runs all of them, directly and through `Arc<dyn ContainerRuntime>`, with
//! one line in its tests:
//!
//! ```rust,ignore
//! lease_core::runtime_conformance_tests!(FakeRuntime, async {
//!     Some(lease_core::testing::runtime_conformance::RuntimeFixture::new(
//!         runtime, other, "busybox",
//!     ))
//! });
//! ```
//!
//! The second argument is evaluated once per test and yields
//! `Option<RuntimeFixture<Runtime>>`; `None` means "the backend is not
//! there, skip" (the factory prints why, and fails instead under
//! `CI=true`). The macro needs `tokio` (with `macros` and
//! `rt-multi-thread`) among the caller's dev-dependencies.
//!
//! Every case removes what it created, and after each case (passed or
//! failed) the runner removes whatever both namespaces still list, then
//! drops the fixture's [guards](RuntimeFixture::guard) (a Docker test's
//! namespace guard, say). Optional abilities are skipped only when the
//! runtime declares it lacks them ([`RuntimeCapabilities`]), and then the
//! case checks that it refuses them honestly.
//!
//! Cases are the `pub async fn`s generic over `<R: ContainerRuntime`;
//! public helpers are generic over `T` instead, which keeps them out of the
//! list check.
//!
//! The image must have `sh` with `echo`, `cat`, `read` and `sleep` (and
//! `tar` where the runtime copies files through it): every command the
//! cases run is `sh -c` of those, which the fake runtime understands too.

use std::any::Any;
use std::collections::BTreeSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::io::AsyncWriteExt;

use crate::error::RuntimeError;
use crate::files::PathKind;
use crate::id::LeaseId;
use crate::runtime::{
    BelongsTo, Confinement, ContainerInfo, ContainerRuntime, ContainerSpec, ExecRequest,
    ExecSession, Limits, LogOptions, LogSource, UnitState, container_name, labels,
};

/// How long a case may run before it fails.
pub const CASE_TIME_LIMIT: Duration = Duration::from_secs(180);
/// How long a created unit may take to run (placement, image on a node).
pub const RUN_WITHIN: Duration = Duration::from_secs(90);
/// How long a finished exec may take to report its exit code, or logs to
/// show lines already written.
const SETTLE_WITHIN: Duration = Duration::from_secs(15);
/// Pause between two polls.
const POLL: Duration = Duration::from_millis(50);

/// What one case gets: a fresh runtime on a fresh, unique namespace, a
/// runtime of another fresh namespace over the same backend, an image, and
/// anything to drop when the case is over.
pub struct RuntimeFixture<R: ?Sized> {
    /// The runtime under test.
    pub runtime: Arc<R>,
    /// The same backend, scoped to another namespace.
    pub other: Arc<R>,
    /// An image with `sh`, `echo`, `cat`, `read` and `sleep`.
    pub image: String,
    guards: Vec<Box<dyn Any + Send + Sync>>,
}

impl<R: ?Sized> std::fmt::Debug for RuntimeFixture<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeFixture")
            .field("image", &self.image)
            .finish_non_exhaustive()
    }
}

impl<R: ContainerRuntime + ?Sized> RuntimeFixture<R> {
    /// A fixture; `runtime` and `other` must be scoped to two different
    /// namespaces nothing else uses.
    ///
    /// # Panics
    ///
    /// When both have the same namespace.
    pub fn new(runtime: Arc<R>, other: Arc<R>, image: impl Into<String>) -> Self {
        assert_ne!(
            runtime.namespace(),
            other.namespace(),
            "the fixture's two runtimes need two namespaces"
        );
        RuntimeFixture {
            runtime,
            other,
            image: image.into(),
            guards: Vec::new(),
        }
    }

    /// Keeps `guard` until the case is over and its units are removed,
    /// then drops it (a cleanup guard that also works when a case panics).
    pub fn guard(mut self, guard: impl Any + Send + Sync) -> Self {
        self.guards.push(Box::new(guard));
        self
    }
}

impl<R: ContainerRuntime> RuntimeFixture<R> {
    /// The same fixture over `Arc<dyn ContainerRuntime>`.
    pub fn into_dyn(self) -> RuntimeFixture<dyn ContainerRuntime> {
        RuntimeFixture {
            runtime: self.runtime,
            other: self.other,
            image: self.image,
            guards: self.guards,
        }
    }
}

/// Runs one case with a time limit; then, whether it passed or not,
/// removes every unit both namespaces list and drops the guards; then
/// fails as the case did.
pub async fn run_case<R, F, Fut>(name: &str, fixture: RuntimeFixture<R>, case: F)
where
    R: ContainerRuntime + ?Sized,
    F: FnOnce(RuntimeFixture<R>) -> Fut,
    Fut: Future<Output = ()>,
{
    let runtimes = [fixture.runtime.clone(), fixture.other.clone()];
    let RuntimeFixture {
        runtime,
        other,
        image,
        guards,
    } = fixture;
    let case = case(RuntimeFixture {
        runtime,
        other,
        image,
        guards: Vec::new(),
    });
    let outcome = AssertUnwindSafe(tokio::time::timeout(CASE_TIME_LIMIT, case))
        .catch_unwind()
        .await;
    for runtime in runtimes {
        remove_all(runtime.as_ref()).await;
    }
    drop(guards);
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(_elapsed)) => {
            panic!("runtime conformance case `{name}` did not finish within {CASE_TIME_LIMIT:?}")
        }
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Removes every unit `runtime` lists, reporting (not failing on) errors.
async fn remove_all<T: ContainerRuntime + ?Sized>(runtime: &T) {
    let units = match runtime.list_managed().await {
        Ok(units) => units,
        Err(error) => {
            eprintln!(
                "cleanup of namespace {}: cannot list: {}",
                runtime.namespace(),
                error.chain()
            );
            return;
        }
    };
    for unit in units {
        if let Err(error) = runtime.remove(&unit.id).await {
            eprintln!("cleanup: cannot remove {}: {}", unit.id, error.chain());
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `sh -c script`.
pub fn sh(script: &str) -> Vec<String> {
    vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()]
}

/// The keep-alive command the cases' units run after their script.
const KEEP_ALIVE: &str = "exec sleep 600";

/// A lease's spec on the fixture's image running `script` then sleeping,
/// with the labels the engine gives a lease (the managed and namespace
/// labels are the runtime's to add).
pub fn lease_spec<R: ?Sized>(fixture: &RuntimeFixture<R>, script: &str) -> ContainerSpec {
    let id = LeaseId::generate();
    let now = chrono::Utc::now();
    let labels = [
        (labels::LEASE_ID, id.to_string()),
        (labels::OWNER, "conformance".to_owned()),
        (labels::CREATED_AT, now.to_rfc3339()),
        (
            labels::EXPIRES_AT,
            (now + chrono::Duration::minutes(10)).to_rfc3339(),
        ),
        (labels::IMAGE_TYPE, "conformance".to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    let command = if script.is_empty() {
        sh(KEEP_ALIVE)
    } else {
        sh(&format!("{script}; {KEEP_ALIVE}"))
    };
    ContainerSpec {
        name: container_name(&id),
        belongs_to: BelongsTo::Lease(id),
        image: fixture.image.clone(),
        command,
        labels,
        limits: Limits {
            nano_cpus: 500_000_000,
            memory_bytes: 96 << 20,
            pids: 64,
        },
        confinement: Confinement::default(),
    }
}

/// Waits until `unit` runs; panics on a failed, exited or vanished unit
/// or after [`RUN_WITHIN`].
pub async fn wait_running<T: ContainerRuntime + ?Sized>(runtime: &T, unit: &str) -> ContainerInfo {
    let deadline = tokio::time::Instant::now() + RUN_WITHIN;
    loop {
        let info = runtime
            .status(unit)
            .await
            .unwrap_or_else(|error| panic!("status of {unit}: {}", error.chain()))
            .unwrap_or_else(|| panic!("unit {unit} vanished before running"));
        match &info.state {
            UnitState::Running => return info,
            UnitState::Pending { .. } => {}
            other => panic!("unit {unit} did not come to run: {other}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "unit {unit} still {} after {RUN_WITHIN:?}",
            info.state
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Creates the unit of `spec` and waits until it runs; its id.
pub async fn create_running<T: ContainerRuntime + ?Sized>(
    runtime: &T,
    spec: &ContainerSpec,
) -> String {
    let id = runtime
        .create(spec)
        .await
        .unwrap_or_else(|error| panic!("create {}: {}", spec.name, error.chain()));
    wait_running(runtime, &id).await;
    id
}

/// The ids `runtime` lists.
async fn listed<T: ContainerRuntime + ?Sized>(runtime: &T) -> BTreeSet<String> {
    runtime
        .list_managed()
        .await
        .unwrap_or_else(|error| panic!("list_managed: {}", error.chain()))
        .into_iter()
        .map(|unit| unit.id)
        .collect()
}

/// What an exec wrote, by stream, and its exit code.
#[derive(Debug, Default)]
pub struct ExecResult {
    /// Standard output (everything, with a terminal).
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// The exit code, once reported.
    pub code: Option<i64>,
}

/// Reads a session's output to its end, then waits for its exit code.
pub async fn finish_exec(mut session: ExecSession) -> ExecResult {
    let mut result = ExecResult::default();
    while let Some(chunk) = session.output.next().await {
        let chunk = chunk.unwrap_or_else(|error| panic!("exec output: {}", error.chain()));
        let text = String::from_utf8_lossy(&chunk.bytes);
        match chunk.source {
            LogSource::Stdout => result.stdout.push_str(&text),
            LogSource::Stderr => result.stderr.push_str(&text),
        }
    }
    result.code = exit_code(&session).await;
    result
}

/// The session's exit code, waited for up to [`SETTLE_WITHIN`].
async fn exit_code(session: &ExecSession) -> Option<i64> {
    let deadline = tokio::time::Instant::now() + SETTLE_WITHIN;
    loop {
        let code = session
            .control
            .exit_code()
            .await
            .unwrap_or_else(|error| panic!("exec exit code: {}", error.chain()));
        if code.is_some() || tokio::time::Instant::now() >= deadline {
            return code;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A command without a terminal or input.
fn command(script: &str) -> ExecRequest {
    ExecRequest {
        command: sh(script),
        ..ExecRequest::default()
    }
}

/// Whether `error` says the unit is not this runtime's (or not there for it).
fn refused_as_foreign(error: &RuntimeError) -> bool {
    matches!(
        error,
        RuntimeError::NotManaged { .. } | RuntimeError::NotFound { .. }
    )
}

// ---------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------

/// A created unit comes to run; `status` finds it by id and by name, with
/// its name.
pub async fn created_unit_comes_to_run<R: ContainerRuntime + ?Sized>(fx: RuntimeFixture<R>) {
    let spec = lease_spec(&fx, "");
    let id = create_running(fx.runtime.as_ref(), &spec).await;
    let by_name = fx
        .runtime
        .status(&spec.name)
        .await
        .expect("status by name")
        .expect("found by name");
    assert_eq!(by_name.id, id, "status by name is the unit create returned");
    assert_eq!(by_name.name, spec.name);
    assert!(by_name.running());
    fx.runtime.remove(&id).await.expect("remove");
}

/// Creating the same spec twice gives the same unit, and one unit.
pub async fn create_is_idempotent_by_name<R: ContainerRuntime + ?Sized>(fx: RuntimeFixture<R>) {
    let spec = lease_spec(&fx, "");
    let first = create_running(fx.runtime.as_ref(), &spec).await;
    let second = fx.runtime.create(&spec).await.expect("second create");
    assert_eq!(first, second, "a retried create returns the same unit");
    wait_running(fx.runtime.as_ref(), &second).await;
    let named: Vec<ContainerInfo> = fx
        .runtime
        .list_managed()
        .await
        .expect("list")
        .into_iter()
        .filter(|unit| unit.name == spec.name)
        .collect();
    assert_eq!(named.len(), 1, "one unit named {}: {named:?}", spec.name);
    fx.runtime.remove(&first).await.expect("remove");
}

/// A removed unit is gone when `remove` returns: no status (by id or
/// name), not listed; removing it again, or something that never existed,
/// is fine.
pub async fn remove_is_idempotent_and_leaves_nothing<R: ContainerRuntime + ?Sized>(
    fx: RuntimeFixture<R>,
) {
    let spec = lease_spec(&fx, "");
    let id = create_running(fx.runtime.as_ref(), &spec).await;
    fx.runtime.remove(&id).await.expect("remove");
    assert!(
        fx.runtime.status(&id).await.expect("status").is_none(),
        "status of a removed unit by id"
    );
    assert!(
        fx.runtime
            .status(&spec.name)
            .await
            .expect("status")
            .is_none(),
        "status of a removed unit by name"
    );
    assert!(
        !listed(fx.runtime.as_ref()).await.contains(&id),
        "a removed unit is listed"
    );
    fx.runtime.remove(&id).await.expect("second remove");
    fx.runtime.remove(&spec.name).await.expect("remove by name");
    let never = container_name(&LeaseId::generate());
    fx.runtime.remove(&never).await.expect("remove of nothing");
    assert!(fx.runtime.status(&never).await.expect("status").is_none());
}

/// The unit carries the spec's labels and the runtime's managed and
/// namespace labels, in `status` and in listings.
pub async fn labels_are_present<R: ContainerRuntime + ?Sized>(fx: RuntimeFixture<R>) {
    let spec = lease_spec(&fx, "");
    let id = create_running(fx.runtime.as_ref(), &spec).await;
    let expected = spec.unit_labels(fx.runtime.namespace()).expect("labels");
    let status = fx
        .runtime
        .status(&id)
        .await
        .expect("status")
        .expect("found");
    let listing = fx
        .runtime
        .list_managed()
        .await
        .expect("list")
        .into_iter()
        .find(|unit| unit.id == id)
        .expect("listed");
    for (what, info) in [("status", &status), ("listing", &listing)] {
        for (key, value) in &expected {
            assert_eq!(info.labels.get(key), Some(value), "{what}: label {key}");
        }
        assert_eq!(
            info.lease_id().as_ref(),
            Some(match &spec.belongs_to {
                BelongsTo::Lease(lease) => lease,
                BelongsTo::PoolSlot(_) => unreachable!("a lease spec"),
            })
        );
    }
    assert_eq!(
        status.labels.get(labels::MANAGED).map(String::as_str),
        Some("true")
    );
    assert_eq!(
        status.labels.get(labels::NAMESPACE).map(String::as_str),
        Some(fx.runtime.namespace())
    );
    fx.runtime.remove(&id).await.expect("remove");
}

/// A spec that claims another namespace (or not to be managed) is refused
/// and creates nothing: where a unit belongs is the runtime's to say.
pub async fn a_spec_cannot_choose_its_namespace<R: ContainerRuntime + ?Sized>(
    fx: RuntimeFixture<R>,
) {
    let mut foreign = lease_spec(&fx, "");
    foreign.labels.insert(
        labels::NAMESPACE.to_owned(),
        fx.other.namespace().to_owned(),
    );
    let mut unmanaged = lease_spec(&fx, "");
    unmanaged
        .labels
        .insert(labels::MANAGED.to_owned(), "false".to_owned());
    for spec in [foreign, unmanaged] {
        match fx.runtime.create(&spec).await {
            Err(RuntimeError::Invalid(_)) => {}
            other => panic!("a spec with labels {:?} gave {other:?}", spec.labels),
        }
    }
    assert!(listed(fx.runtime.as_ref()).await.is_empty());
    assert!(listed(fx.other.as_ref()).await.is_empty());
}

/// The spec's limits are applied, as far as the runtime reports them
/// ([`RuntimeCapabilities::reports_limits`](crate::runtime::RuntimeCapabilities::reports_limits)).
pub async fn limits_are_applied_where_reported<R: ContainerRuntime + ?Sized>(
    fx: RuntimeFixture<R>,
) {
    let spec = lease_spec(&fx, "");
    let id = create_running(fx.runtime.as_ref(), &spec).await;
    let status = fx
        .runtime
        .status(&id)
        .await
        .expect("status")
        .expect("found");
    if fx.runtime.capabilities().reports_limits {
        assert_eq!(status.limits, Some(spec.limits), "limits as reported");
    } else {
        eprintln!(
            "limits_are_applied_where_reported: this runtime declares it does not report limits"
        );
        assert_eq!(status.limits, None, "limits reported though not declared");
    }
    fx.runtime.remove(&id).await.expect("remove");
}

/// Logs: what the command printed, tagged stdout/stderr in order, and the
/// last `tail` lines (written after a pause: stdout and stderr may be
/// copied by separate pipes, so their order to each other is not kept).
pub async fn logs_tell_streams_apart_and_tail<R: ContainerRuntime + ?Sized>(fx: RuntimeFixture<R>) {
    let spec = lease_spec(
        &fx,
        "echo out-1; echo err-1 >&2; sleep 1; echo out-2; echo out-3",
    );
    let id = create_running(fx.runtime.as_ref(), &spec).await;
    let read = |tail: Option<u32>| {
        let runtime = fx.runtime.clone();
        let id = id.clone();
        async move {
            let options = LogOptions {
                follow: false,
                tail,
            };
            let stream = runtime.logs(&id, options).await.expect("logs");
            stream
                .map(|line| line.expect("log line"))
                .map(|line| (line.source, line.text))
                .collect::<Vec<_>>()
                .await
        }
    };
    let deadline = tokio::time::Instant::now() + SETTLE_WITHIN;
    let all = loop {
        let lines = read(None).await;
        if lines.len() >= 4 || tokio::time::Instant::now() >= deadline {
            break lines;
        }
        tokio::time::sleep(POLL).await;
    };
    let of = |source: LogSource| -> Vec<&str> {
        all.iter()
            .filter(|(s, _)| *s == source)
            .map(|(_, text)| text.as_str())
            .collect()
    };
    assert_eq!(
        of(LogSource::Stdout),
        ["out-1", "out-2", "out-3"],
        "stdout lines: {all:?}"
    );
    assert_eq!(of(LogSource::Stderr), ["err-1"], "stderr lines: {all:?}");
    assert_eq!(
        read(Some(2)).await,
        [
            (LogSource::Stdout, "out-2".to_owned()),
            (LogSource::Stdout, "out-3".to_owned())
        ],
        "the last two lines"
    );
    fx.runtime.remove(&id).await.expect("remove");
}

/// An exec without a terminal: its stdout and stderr apart, and its exit
/// code.
pub async fn exec_without_tty_gives_streams_and_exit_code<R: ContainerRuntime + ?Sized>(
    fx: RuntimeFixture<R>,
) {
    let id = create_running(fx.runtime.as_ref(), &lease_spec(&fx, "")).await;
    let session = fx
        .runtime
        .exec(&id, command("echo exec-out; echo exec-err >&2; exit 3"))
        .await
        .expect("exec");
    assert!(session.input.is_none(), "no input asked for");
    let result = finish_exec(session).await;
    assert_eq!(result.stdout, "exec-out\n", "{result:?}");
    assert_eq!(result.stderr, "exec-err\n", "{result:?}");
    assert_eq!(result.code, Some(3), "{result:?}");
    fx.runtime.remove(&id).await.expect("remove");
}

/// An exec with a terminal and input: resizing is accepted while it
/// runs, what is typed reaches it, its output comes (all on stdout), and
/// its exit code.
pub async fn exec_with_tty_accepts_resize_and_input<R: ContainerRuntime + ?Sized>(
    fx: RuntimeFixture<R>,
) {
    let id = create_running(fx.runtime.as_ref(), &lease_spec(&fx, "")).await;
    let request = ExecRequest {
        command: sh("read line; echo got-$line"),
        tty: true,
        stdin: true,
        size: Some((80, 24)),
        env: Vec::new(),
    };
    let mut session = fx.runtime.exec(&id, request).await.expect("exec");
    session
        .control
        .resize(120, 40)
        .await
        .expect("resize of a running exec's terminal");
    let control = session.control.clone();
    let mut input = session.input.take().expect("input asked for");
    input.write_all(b"typed\n").await.expect("type");
    input.flush().await.expect("flush");
    let result = finish_exec(session).await;
    drop(input);
    assert!(result.stdout.contains("got-typed"), "{result:?}");
    assert!(
        result.stderr.is_empty(),
        "a terminal has one stream: {result:?}"
    );
    assert_eq!(result.code, Some(0), "{result:?}");
    assert_eq!(control.exit_code().await.expect("exit code"), Some(0));
    fx.runtime.remove(&id).await.expect("remove");
}

/// An exec's input reaches the command, and closing it ends the input.
pub async fn exec_stdin_reaches_the_command<R: ContainerRuntime + ?Sized>(fx: RuntimeFixture<R>) {
    let id = create_running(fx.runtime.as_ref(), &lease_spec(&fx, "")).await;
    let request = ExecRequest {
        command: sh("cat"),
        stdin: true,
        ..ExecRequest::default()
    };
    let mut session = fx.runtime.exec(&id, request).await.expect("exec");
    let mut input = session.input.take().expect("input asked for");
    let writer = async move {
        input.write_all(b"one\ntwo\n").await.expect("write");
        input.shutdown().await.expect("close input");
    };
    let (result, ()) = tokio::join!(finish_exec(session), writer);
    assert_eq!(result.stdout, "one\ntwo\n", "{result:?}");
    assert_eq!(result.code, Some(0), "{result:?}");
    fx.runtime.remove(&id).await.expect("remove");
}

/// A unit of namespace A is invisible to a runtime of namespace B: no
/// status, not listed, and B's remove, logs, exec and create of the same
/// name leave it alone (refused as not B's).
pub async fn other_namespaces_units_are_untouchable<R: ContainerRuntime + ?Sized>(
    fx: RuntimeFixture<R>,
) {
    let spec = lease_spec(&fx, "");
    let id = create_running(fx.runtime.as_ref(), &spec).await;
    let other = fx.other.as_ref();
    for reference in [id.as_str(), spec.name.as_str()] {
        match other.status(reference).await {
            Ok(None) | Err(RuntimeError::NotManaged { .. }) => {}
            answer => panic!("status of another namespace's {reference}: {answer:?}"),
        }
        match other.remove(reference).await {
            Ok(()) | Err(RuntimeError::NotManaged { .. }) => {}
            Err(error) => panic!("remove of another namespace's unit: {}", error.chain()),
        }
        match other.logs(reference, LogOptions::default()).await {
            Err(error) if refused_as_foreign(&error) => {}
            Err(error) => panic!("logs of another namespace's unit: {}", error.chain()),
            Ok(_) => panic!("logs of another namespace's unit {reference} were given"),
        }
        match other.exec(reference, command("echo hi")).await {
            Err(error) if refused_as_foreign(&error) => {}
            Err(error) => panic!("exec in another namespace's unit: {}", error.chain()),
            Ok(_) => panic!("exec in another namespace's unit {reference} started"),
        }
    }
    assert!(
        !listed(other).await.contains(&id),
        "listed by another namespace"
    );
    match other.create(&spec).await {
        Err(_) => {}
        Ok(unit) => assert_ne!(unit, id, "another namespace's create adopted the unit"),
    }
    let after = wait_running(fx.runtime.as_ref(), &id).await;
    assert_eq!(
        after.labels.get(labels::NAMESPACE).map(String::as_str),
        Some(fx.runtime.namespace())
    );
    fx.runtime.remove(&id).await.expect("remove");
}

/// `list_managed` lists exactly the namespace's units, and each runtime
/// its own.
pub async fn list_managed_lists_exactly_the_namespace<R: ContainerRuntime + ?Sized>(
    fx: RuntimeFixture<R>,
) {
    assert!(
        listed(fx.runtime.as_ref()).await.is_empty(),
        "a fresh namespace is empty"
    );
    let a1 = create_running(fx.runtime.as_ref(), &lease_spec(&fx, "")).await;
    let a2 = create_running(fx.runtime.as_ref(), &lease_spec(&fx, "")).await;
    let b1 = create_running(fx.other.as_ref(), &lease_spec(&fx, "")).await;
    assert_eq!(
        listed(fx.runtime.as_ref()).await,
        BTreeSet::from([a1.clone(), a2.clone()])
    );
    assert_eq!(
        listed(fx.other.as_ref()).await,
        BTreeSet::from([b1.clone()])
    );
    for (runtime, unit) in [(&fx.runtime, &a1), (&fx.runtime, &a2), (&fx.other, &b1)] {
        runtime.remove(unit).await.expect("remove");
    }
    assert!(listed(fx.runtime.as_ref()).await.is_empty());
    assert!(listed(fx.other.as_ref()).await.is_empty());
}

/// Files copied in come back out (where the runtime copies files; one
/// that declares it cannot refuses with `Invalid`).
pub async fn files_round_trip_where_supported<R: ContainerRuntime + ?Sized>(fx: RuntimeFixture<R>) {
    let id = create_running(fx.runtime.as_ref(), &lease_spec(&fx, "")).await;
    let archive = conformance_archive();
    let input = futures::stream::iter([Ok(archive.clone())]).boxed();
    if !fx.runtime.capabilities().copy_files {
        eprintln!("files_round_trip_where_supported: this runtime declares it cannot copy files");
        assert!(matches!(
            fx.runtime.copy_to(&id, "/tmp", input).await,
            Err(RuntimeError::Invalid(_))
        ));
        assert!(matches!(
            fx.runtime.copy_from(&id, "/tmp").await,
            Err(RuntimeError::Invalid(_))
        ));
        fx.runtime.remove(&id).await.expect("remove");
        return;
    }
    let report = fx
        .runtime
        .copy_to(&id, "/tmp", input)
        .await
        .expect("copy in");
    assert_eq!(report.archive_bytes, archive.len() as u64);
    let dir = read_archive(fx.runtime.as_ref(), &id, "/tmp/conformance").await;
    assert_eq!(dir.0, PathKind::Directory);
    assert_eq!(
        dir.1.get("conformance/hello.txt").map(Vec::as_slice),
        Some(&b"hello, runtime\n"[..]),
        "entries: {:?}",
        dir.1.keys().collect::<Vec<_>>()
    );
    let file = read_archive(fx.runtime.as_ref(), &id, "/tmp/conformance/hello.txt").await;
    assert_eq!(file.0, PathKind::File);
    assert_eq!(
        file.1.get("hello.txt").map(Vec::as_slice),
        Some(&b"hello, runtime\n"[..])
    );
    assert!(matches!(
        fx.runtime.copy_from(&id, "/tmp/conformance/missing").await,
        Err(RuntimeError::PathNotFound { .. })
    ));
    let nowhere = futures::stream::iter([Ok(conformance_archive())]).boxed();
    assert!(matches!(
        fx.runtime.copy_to(&id, "/tmp/no-such-dir", nowhere).await,
        Err(RuntimeError::PathNotFound { .. })
    ));
    fx.runtime.remove(&id).await.expect("remove");
}

/// A tar archive of `conformance/hello.txt`.
fn conformance_archive() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let content = b"hello, runtime\n";
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    builder
        .append_data(&mut dir, "conformance", &[][..])
        .expect("tar dir");
    let mut file = tar::Header::new_gnu();
    file.set_mode(0o644);
    file.set_size(content.len() as u64);
    builder
        .append_data(&mut file, "conformance/hello.txt", &content[..])
        .expect("tar file");
    builder.into_inner().expect("tar")
}

/// Copies `path` out of `unit`: its kind and its files by archive path.
async fn read_archive<R: ContainerRuntime + ?Sized>(
    runtime: &R,
    unit: &str,
    path: &str,
) -> (PathKind, std::collections::BTreeMap<String, Vec<u8>>) {
    let out = runtime
        .copy_from(unit, path)
        .await
        .unwrap_or_else(|error| panic!("copy {path} out: {}", error.chain()));
    let chunks: Vec<Vec<u8>> = out
        .archive
        .map(|chunk| chunk.unwrap_or_else(|error| panic!("archive of {path}: {}", error.chain())))
        .collect()
        .await;
    let bytes = chunks.concat();
    let mut files = std::collections::BTreeMap::new();
    let mut archive = tar::Archive::new(&bytes[..]);
    for entry in archive.entries().expect("a tar archive") {
        let mut entry = entry.expect("tar entry");
        if entry.header().entry_type().is_dir() {
            continue;
        }
        let name = entry
            .path()
            .expect("entry path")
            .to_string_lossy()
            .into_owned();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).expect("entry content");
        files.insert(name.trim_start_matches("./").to_owned(), content);
    }
    (out.kind, files)
}

/// `status` of a unit that never existed is `None`, and acting on it is
/// `NotFound`.
pub async fn unknown_units_are_absent<R: ContainerRuntime + ?Sized>(fx: RuntimeFixture<R>) {
    let never = container_name(&LeaseId::generate());
    assert!(fx.runtime.status(&never).await.expect("status").is_none());
    match fx.runtime.logs(&never, LogOptions::default()).await {
        Err(RuntimeError::NotFound { .. }) => {}
        Err(error) => panic!("logs of nothing: {}", error.chain()),
        Ok(_) => panic!("logs of a unit that never existed"),
    }
    match fx.runtime.exec(&never, command("echo hi")).await {
        Err(RuntimeError::NotFound { .. }) => {}
        Err(error) => panic!("exec in nothing: {}", error.chain()),
        Ok(_) => panic!("exec in a unit that never existed"),
    }
}

/// Runs the whole runtime conformance suite, as `#[tokio::test]`s in two
/// modules: `runtime_direct` (with `Arc<Runtime>`) and `runtime_dynamic`
/// (with `Arc<dyn ContainerRuntime>`).
///
/// ```rust,ignore
/// lease_core::runtime_conformance_tests!(DockerRuntime, async { common::fixture().await });
/// ```
///
/// The first argument is the runtime type, the second an expression
/// (usually an `async` block) yielding `Option<RuntimeFixture<Runtime>>`,
/// evaluated once per test for fresh namespaces; `None` skips the test.
#[macro_export]
macro_rules! runtime_conformance_tests {
    ($runtime:ty, $factory:expr $(,)?) => {
        $crate::__runtime_conformance_cases!(@module runtime_direct, $runtime, $factory;);
        $crate::__runtime_conformance_cases!(@module runtime_dynamic, $runtime, $factory;);
    };
}

/// Implementation detail of [`runtime_conformance_tests!`]: the one list of
/// cases; a unit test of this file checks it names every `pub async fn`
/// case above, so a new case cannot be left out.
#[doc(hidden)]
#[macro_export]
macro_rules! __runtime_conformance_cases {
    ($($prefix:tt)*) => {
        $crate::__runtime_conformance_module! { $($prefix)*
            created_unit_comes_to_run,
            create_is_idempotent_by_name,
            remove_is_idempotent_and_leaves_nothing,
            labels_are_present,
            a_spec_cannot_choose_its_namespace,
            limits_are_applied_where_reported,
            logs_tell_streams_apart_and_tail,
            exec_without_tty_gives_streams_and_exit_code,
            exec_with_tty_accepts_resize_and_input,
            exec_stdin_reaches_the_command,
            other_namespaces_units_are_untouchable,
            list_managed_lists_exactly_the_namespace,
            files_round_trip_where_supported,
            unknown_units_are_absent,
        }
    };
}

/// Implementation detail of [`runtime_conformance_tests!`]: what is made
/// of the list of cases (a test module, or the names).
#[doc(hidden)]
#[macro_export]
macro_rules! __runtime_conformance_module {
    (@names; $($case:ident),* $(,)?) => {
        [$(::core::stringify!($case)),*]
    };
    (@module $mode:ident, $runtime:ty, $factory:expr; $($case:ident),* $(,)?) => {
        mod $mode {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let fixture: ::core::option::Option<
                        $crate::testing::runtime_conformance::RuntimeFixture<$runtime>,
                    > = $factory.await;
                    let ::core::option::Option::Some(fixture) = fixture else { return };
                    $crate::__runtime_conformance_module!(@run $mode, fixture, $case);
                }
            )*
        }
    };
    (@run runtime_direct, $fixture:ident, $case:ident) => {
        $crate::testing::runtime_conformance::run_case(
            ::core::stringify!($case),
            $fixture,
            $crate::testing::runtime_conformance::$case,
        )
        .await
    };
    (@run runtime_dynamic, $fixture:ident, $case:ident) => {
        $crate::testing::runtime_conformance::run_case(
            ::core::stringify!($case),
            $fixture.into_dyn(),
            $crate::testing::runtime_conformance::$case,
        )
        .await
    };
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::RuntimeFixture;
    use crate::testing::fake_runtime::FakeRuntime;

    /// Every case defined in this file is in the macro's list, once, and
    /// the list names nothing else.
    #[test]
    fn the_macro_runs_every_case() {
        crate::testing::conformance::assert_every_case_listed_once(
            include_str!("runtime_conformance.rs"),
            "<R: ContainerRuntime",
            &crate::__runtime_conformance_cases!(@names;),
        );
    }

    /// The fake runtime passes the suite.
    async fn fake() -> Option<RuntimeFixture<FakeRuntime>> {
        let runtime = FakeRuntime::new("conformance-a", Arc::new(crate::SystemClock));
        let other = runtime.in_namespace("conformance-b");
        Some(RuntimeFixture::new(
            Arc::new(runtime),
            Arc::new(other),
            "busybox",
        ))
    }

    crate::runtime_conformance_tests!(FakeRuntime, fake());
}
