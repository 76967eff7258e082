//! An in-memory [`ContainerRuntime`] for engine scenarios, with injectable
//! latency, failures and slow placement, that records every call.
//!
//! It honours the port's contract and passes the
//! [runtime conformance suite](super::runtime_conformance): it is scoped to
//! one namespace (runtimes of other namespaces over the same containers:
//! [`FakeRuntime::in_namespace`]), adds the managed and namespace labels,
//! creation is idempotent by name, removal is idempotent, and a container
//! of another namespace is invisible to `status` and `list_managed` and
//! `NotManaged` to everything else.
//!
//! Commands: a container's command and an exec's command of the form
//! `sh -c SCRIPT` run as the [few statements the fake knows](super::fake_shell)
//! (a container's echoes are its logs; a script that ends without a
//! `sleep` leaves an exited container). Any other exec prints its command
//! line and its extra environment, one line each, and with stdin then
//! behaves as `cat` until its input is closed; any other container logs
//! three lines `<name> line N`. Files copied in are unpacked into an
//! in-memory tree (where `/` and `/tmp` exist) and copied out as tar.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::sync::Notify;

use super::fake_files::FileTree;
use super::fake_shell::{Ending, Script};
use crate::clock::{Clock, SystemClock};
use crate::error::RuntimeError;
use crate::files::{ArchiveInput, ArchiveOut, CopyReport, check_container_path};
use crate::runtime::{
    ContainerInfo, ContainerRuntime, ContainerSpec, ExecChunk, ExecControl, ExecRequest,
    ExecSession, LogLine, LogOptions, LogSource, LogStream, ProgressSender, PullProgress,
    RuntimeCapabilities, UnitState, labels,
};

/// One recorded removal of an existing container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removal {
    /// The container's name.
    pub name: String,
    /// The lease id label.
    pub lease_id: Option<String>,
    /// When (by the fake's clock) the removal was asked for.
    pub at: DateTime<Utc>,
}

/// How the next created containers get placed (see
/// [`FakeRuntime::place_next_creates`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Pending (with `reason`) for this many status polls, then running.
    PendingFor {
        /// Status polls that still see it pending.
        polls: u32,
        /// The pending reason reported.
        reason: String,
    },
    /// Pending with `reason` for ever.
    Stuck {
        /// The pending reason reported.
        reason: String,
    },
    /// Failed with `reason` at once.
    Fails {
        /// The runtime's reason.
        reason: String,
    },
}

/// A container and what the fake keeps of it.
#[derive(Debug)]
struct Unit {
    info: ContainerInfo,
    /// Status polls left before it runs (`u32::MAX`: never).
    pending_polls: u32,
    /// Its logs, from its command.
    logs: Vec<LogLine>,
    /// Files copied in.
    files: FileTree,
}

#[derive(Debug, Default)]
struct State {
    containers: BTreeMap<String, Unit>,
    next_id: u64,
    create_calls: usize,
    remove_calls: usize,
    removals: Vec<Removal>,
    fail_creates: usize,
    fail_removes: usize,
    unavailable: bool,
    missing_images: Vec<String>,
    create_latency: Duration,
    remove_latency: Duration,
    hang_creates: bool,
    placement: Option<(Placement, usize)>,
}

/// What runtimes of every namespace over the same containers share.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    release_hung: Notify,
}

/// The fake runtime, scoped to one namespace. Cheap to share behind an
/// `Arc`; [`FakeRuntime::in_namespace`] gives another namespace's view of
/// the same containers.
#[derive(Debug)]
pub struct FakeRuntime {
    namespace: String,
    shared: Arc<Shared>,
}

impl Default for FakeRuntime {
    /// Namespace `default`, on the system clock.
    fn default() -> Self {
        FakeRuntime::new("default", Arc::new(SystemClock))
    }
}

fn injected(operation: &str) -> RuntimeError {
    RuntimeError::operation(operation, "injected failure")
}

impl FakeRuntime {
    /// A fake for `namespace` that timestamps removals with `clock`.
    pub fn new(namespace: &str, clock: Arc<dyn Clock>) -> Self {
        FakeRuntime {
            namespace: namespace.to_owned(),
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                clock,
                release_hung: Notify::new(),
            }),
        }
    }

    /// A runtime of `namespace` over the same containers (and injected
    /// failures) as this one.
    pub fn in_namespace(&self, namespace: &str) -> FakeRuntime {
        FakeRuntime {
            namespace: namespace.to_owned(),
            shared: self.shared.clone(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The next `count` creations fail.
    pub fn fail_next_creates(&self, count: usize) {
        self.state().fail_creates = count;
    }

    /// The next `count` removals (of anything) fail.
    pub fn fail_next_removes(&self, count: usize) {
        self.state().fail_removes = count;
    }

    /// The next `count` containers created are placed as `placement` says
    /// (as a cluster that has to find a node would).
    pub fn place_next_creates(&self, placement: Placement, count: usize) {
        self.state().placement = Some((placement, count));
    }

    /// Every call fails with `Unavailable` while set.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.state().unavailable = unavailable;
    }

    /// `ensure_image` of `image` fails as if it could not be pulled.
    pub fn set_image_missing(&self, image: &str) {
        self.state().missing_images.push(image.to_owned());
    }

    /// Creations wait this long (real time) before answering.
    pub fn set_create_latency(&self, latency: Duration) {
        self.state().create_latency = latency;
    }

    /// Removals wait this long (real time) before answering.
    pub fn set_remove_latency(&self, latency: Duration) {
        self.state().remove_latency = latency;
    }

    /// Creations hang until [`FakeRuntime::release_hung_creates`].
    pub fn hang_creates(&self, hang: bool) {
        self.state().hang_creates = hang;
    }

    /// Lets hung creations go on.
    pub fn release_hung_creates(&self) {
        self.state().hang_creates = false;
        self.shared.release_hung.notify_waiters();
    }

    /// Adds a container directly, with exactly `labels` (an orphan, a
    /// foreign one, …).
    pub fn insert_container(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
        running: bool,
    ) -> String {
        let state = if running {
            UnitState::Running
        } else {
            UnitState::Pending {
                reason: Some("created".into()),
            }
        };
        let mut guard = self.state();
        guard.next_id += 1;
        let id = format!("fake{:012}", guard.next_id);
        let info = container_info(&id, name, labels, state, None);
        guard.containers.insert(id.clone(), unit(info, Vec::new()));
        id
    }

    /// Stops a container (it stays, exited with code 137).
    pub fn stop_container(&self, id_or_name: &str) {
        let mut state = self.state();
        if let Some(key) = find(&state.containers, id_or_name)
            && let Some(unit) = state.containers.get_mut(&key)
        {
            unit.info.state = UnitState::Exited { code: Some(137) };
            unit.pending_polls = 0;
        }
    }

    /// Makes a container vanish without a recorded removal.
    pub fn vanish(&self, id_or_name: &str) {
        let mut state = self.state();
        if let Some(key) = find(&state.containers, id_or_name) {
            state.containers.remove(&key);
        }
    }

    /// All containers present, any namespace.
    pub fn containers(&self) -> Vec<ContainerInfo> {
        self.state()
            .containers
            .values()
            .map(|unit| unit.info.clone())
            .collect()
    }

    /// Containers present in `namespace`.
    pub fn containers_in(&self, namespace: &str) -> Vec<ContainerInfo> {
        self.containers()
            .into_iter()
            .filter(|c| in_namespace(c, namespace))
            .collect()
    }

    /// Calls to `create`.
    pub fn create_calls(&self) -> usize {
        self.state().create_calls
    }

    /// Calls to `remove`, failed and idempotent ones included.
    pub fn remove_calls(&self) -> usize {
        self.state().remove_calls
    }

    /// Removals that actually removed a container.
    pub fn removals(&self) -> Vec<Removal> {
        self.state().removals.clone()
    }

    /// How many times a container of each lease id was actually removed.
    pub fn removals_by_lease(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for removal in self.removals() {
            *counts
                .entry(removal.lease_id.unwrap_or_default())
                .or_insert(0) += 1;
        }
        counts
    }

    fn check_available(&self) -> Result<(), RuntimeError> {
        if self.state().unavailable {
            return Err(RuntimeError::Unavailable {
                endpoint: "fake://runtime".into(),
                source: "injected outage".into(),
            });
        }
        Ok(())
    }

    /// The key of a container of this namespace: `NotFound` when there is
    /// none, `NotManaged` when it is another namespace's.
    fn ours(&self, state: &State, container: &str) -> Result<String, RuntimeError> {
        let key = find(&state.containers, container).ok_or_else(|| RuntimeError::NotFound {
            container: container.into(),
        })?;
        match state.containers.get(&key) {
            Some(unit) if in_namespace(&unit.info, &self.namespace) => Ok(key),
            Some(_) => Err(RuntimeError::NotManaged {
                container: container.into(),
                namespace: self.namespace.clone(),
            }),
            None => Err(RuntimeError::NotFound {
                container: container.into(),
            }),
        }
    }

    /// A running container of this namespace's key.
    fn running(&self, container: &str) -> Result<String, RuntimeError> {
        self.check_available()?;
        let state = self.state();
        let key = self.ours(&state, container)?;
        match state.containers.get(&key) {
            Some(unit) if unit.info.running() => Ok(key),
            _ => Err(RuntimeError::operation(
                "exec",
                format!("container {container} is not running"),
            )),
        }
    }

    /// Waits as injected before a creation.
    async fn before_create(&self) {
        let (latency, hang) = {
            let mut state = self.state();
            state.create_calls += 1;
            (state.create_latency, state.hang_creates)
        };
        if hang {
            self.shared.release_hung.notified().await;
        }
        tokio::time::sleep(latency).await;
    }
}

fn unit(info: ContainerInfo, logs: Vec<LogLine>) -> Unit {
    Unit {
        info,
        pending_polls: 0,
        logs,
        files: FileTree::default(),
    }
}

fn container_info(
    id: &str,
    name: &str,
    labels: BTreeMap<String, String>,
    state: UnitState,
    limits: Option<crate::runtime::Limits>,
) -> ContainerInfo {
    ContainerInfo {
        id: id.to_owned(),
        name: name.to_owned(),
        state,
        labels,
        address: None,
        limits,
    }
}

fn find(containers: &BTreeMap<String, Unit>, id_or_name: &str) -> Option<String> {
    containers
        .values()
        .find(|unit| unit.info.id == id_or_name || unit.info.name == id_or_name)
        .map(|unit| unit.info.id.clone())
}

fn in_namespace(container: &ContainerInfo, namespace: &str) -> bool {
    container.labels.get(labels::NAMESPACE).map(String::as_str) == Some(namespace)
}

/// A new container's logs and state from its command.
fn run_command(name: &str, command: &[String]) -> (Vec<LogLine>, UnitState) {
    let Some(script) = Script::of(command) else {
        let lines = (1..=3)
            .map(|n| LogLine {
                source: LogSource::Stdout,
                text: format!("{name} line {n}"),
            })
            .collect();
        return (lines, UnitState::Running);
    };
    let (lines, ending) = script.run_without_input();
    let lines = lines
        .into_iter()
        .map(|(source, text)| LogLine { source, text })
        .collect();
    let state = match ending {
        Ending::KeptRunning => UnitState::Running,
        Ending::Exited(code) => UnitState::Exited { code: Some(code) },
    };
    (lines, state)
}

/// The state and pending polls of a new container under `placement`.
fn placed(state: UnitState, placement: Option<Placement>) -> (UnitState, u32) {
    match placement {
        None => (state, 0),
        Some(Placement::PendingFor { polls, reason }) => (
            UnitState::Pending {
                reason: Some(reason),
            },
            polls,
        ),
        Some(Placement::Stuck { reason }) => (
            UnitState::Pending {
                reason: Some(reason),
            },
            u32::MAX,
        ),
        Some(Placement::Fails { reason }) => (UnitState::Failed { reason }, 0),
    }
}

/// The control of a fake exec.
#[derive(Debug, Default)]
struct FakeExec {
    exit_code: Mutex<Option<i64>>,
    size: Mutex<Option<(u16, u16)>>,
}

#[async_trait]
impl ExecControl for FakeExec {
    async fn resize(&self, columns: u16, rows: u16) -> Result<(), RuntimeError> {
        *self.size.lock().unwrap_or_else(|p| p.into_inner()) = Some((columns, rows));
        Ok(())
    }

    async fn exit_code(&self) -> Result<Option<i64>, RuntimeError> {
        Ok(*self.exit_code.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Runs an exec in a task: its output comes through the returned stream,
/// which ends after the exit code is set.
fn spawn_exec(
    request: ExecRequest,
    input: tokio::io::DuplexStream,
    control: Arc<FakeExec>,
) -> futures::stream::BoxStream<'static, Result<ExecChunk, RuntimeError>> {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<ExecChunk>();
    tokio::spawn(async move {
        let emit = |source, bytes| {
            // The output may have been dropped: the exec runs on regardless.
            let _ = sender.send(ExecChunk { source, bytes });
        };
        let code = match Script::of(&request.command) {
            Some(script) => script.run(input, request.tty, emit).await,
            None => {
                let mut text = format!("{}\n", request.command.join(" "));
                // The environment asked for is echoed too, so a test can see it was passed.
                for entry in &request.env {
                    text.push_str(entry);
                    text.push('\n');
                }
                emit(LogSource::Stdout, text.into_bytes());
                if request.stdin {
                    let cat = Script::of(&["sh".into(), "-c".into(), "cat".into()]);
                    if let Some(cat) = cat {
                        cat.run(input, false, emit).await;
                    }
                }
                0
            }
        };
        *control.exit_code.lock().unwrap_or_else(|p| p.into_inner()) = Some(code);
        drop(sender);
    });
    futures::stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.recv().await?;
        Some((Ok(chunk), receiver))
    })
    .boxed()
}

#[async_trait]
impl ContainerRuntime for FakeRuntime {
    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn capabilities(&self) -> RuntimeCapabilities {
        RuntimeCapabilities {
            copy_files: true,
            reports_limits: true,
        }
    }

    async fn ping(&self) -> Result<(), RuntimeError> {
        self.check_available()
    }

    async fn ensure_image(
        &self,
        image: &str,
        progress: ProgressSender,
    ) -> Result<(), RuntimeError> {
        self.check_available()?;
        if self.state().missing_images.iter().any(|m| m == image) {
            return Err(RuntimeError::ImageUnavailable {
                image: image.into(),
                source: "no registry (fake)".into(),
            });
        }
        // A receiver that went away does not care.
        let _ = progress.send(PullProgress {
            layers_total: 1,
            layers_done: 1,
            status: "present".into(),
            ..PullProgress::default()
        });
        Ok(())
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        self.before_create().await;
        self.check_available()?;
        let labels = spec.unit_labels(&self.namespace)?;
        let mut state = self.state();
        if state.fail_creates > 0 {
            state.fail_creates -= 1;
            return Err(injected("create container"));
        }
        if let Some(key) = find(&state.containers, &spec.name) {
            return match state.containers.get(&key) {
                Some(unit) if in_namespace(&unit.info, &self.namespace) => Ok(key),
                _ => Err(RuntimeError::NotManaged {
                    container: spec.name.clone(),
                    namespace: self.namespace.clone(),
                }),
            };
        }
        let placement = match state.placement.take() {
            Some((placement, count)) => {
                if count > 1 {
                    state.placement = Some((placement.clone(), count - 1));
                }
                Some(placement)
            }
            None => None,
        };
        state.next_id += 1;
        let id = format!("fake{:012}", state.next_id);
        let (logs, ran) = run_command(&spec.name, &spec.command);
        let (unit_state, pending_polls) = placed(ran, placement);
        let info = container_info(&id, &spec.name, labels, unit_state, Some(spec.limits));
        let mut new = unit(info, logs);
        new.pending_polls = pending_polls;
        state.containers.insert(id.clone(), new);
        Ok(id)
    }

    async fn status(&self, container: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        self.check_available()?;
        let mut state = self.state();
        let Some(key) = find(&state.containers, container) else {
            return Ok(None);
        };
        let Some(unit) = state.containers.get_mut(&key) else {
            return Ok(None);
        };
        if !in_namespace(&unit.info, &self.namespace) {
            return Ok(None);
        }
        if matches!(unit.info.state, UnitState::Pending { .. }) && unit.pending_polls != u32::MAX {
            if unit.pending_polls == 0 {
                unit.info.state = UnitState::Running;
            } else {
                unit.pending_polls -= 1;
            }
        }
        Ok(Some(unit.info.clone()))
    }

    async fn remove(&self, container: &str) -> Result<(), RuntimeError> {
        let latency = {
            let mut state = self.state();
            state.remove_calls += 1;
            state.remove_latency
        };
        tokio::time::sleep(latency).await;
        self.check_available()?;
        let at = self.shared.clock.now();
        let mut state = self.state();
        if state.fail_removes > 0 {
            state.fail_removes -= 1;
            return Err(injected("remove container"));
        }
        let key = match self.ours(&state, container) {
            Ok(key) => key,
            Err(RuntimeError::NotFound { .. }) => return Ok(()),
            Err(other) => return Err(other),
        };
        if let Some(unit) = state.containers.remove(&key) {
            state.removals.push(Removal {
                name: unit.info.name.clone(),
                lease_id: unit.info.labels.get(labels::LEASE_ID).cloned(),
                at,
            });
        }
        Ok(())
    }

    async fn logs(&self, container: &str, options: LogOptions) -> Result<LogStream, RuntimeError> {
        self.check_available()?;
        let mut lines = {
            let state = self.state();
            let key = self.ours(&state, container)?;
            state
                .containers
                .get(&key)
                .map(|unit| unit.logs.clone())
                .unwrap_or_default()
        };
        if let Some(tail) = options.tail {
            let skip = lines.len().saturating_sub(tail as usize);
            lines.drain(..skip);
        }
        Ok(futures::stream::iter(lines.into_iter().map(Ok)).boxed())
    }

    async fn exec(
        &self,
        container: &str,
        request: ExecRequest,
    ) -> Result<ExecSession, RuntimeError> {
        if request.command.is_empty() {
            return Err(RuntimeError::Invalid("exec command is empty".to_owned()));
        }
        self.running(container)?;
        let control = Arc::new(FakeExec::default());
        if let Some(size) = request.size {
            *control.size.lock().unwrap_or_else(|p| p.into_inner()) = Some(size);
        }
        let (writer, reader) = tokio::io::duplex(64 * 1024);
        let stdin = request.stdin;
        // Without stdin the command sees its input closed at once.
        let input = stdin.then_some(writer);
        let output = spawn_exec(request, reader, control.clone());
        Ok(ExecSession {
            output,
            input: input.map(|writer| Box::pin(writer) as _),
            control,
        })
    }

    async fn copy_from(&self, container: &str, path: &str) -> Result<ArchiveOut, RuntimeError> {
        let path = check_container_path(path)?;
        self.check_available()?;
        let state = self.state();
        let key = self.ours(&state, container)?;
        let unit = state
            .containers
            .get(&key)
            .ok_or_else(|| RuntimeError::NotFound {
                container: container.into(),
            })?;
        unit.files.archive(path)
    }

    async fn copy_to(
        &self,
        container: &str,
        dir: &str,
        mut archive: ArchiveInput,
    ) -> Result<CopyReport, RuntimeError> {
        let dir = check_container_path(dir)?.to_owned();
        self.check_available()?;
        {
            let state = self.state();
            let key = self.ours(&state, container)?;
            if let Some(unit) = state.containers.get(&key) {
                unit.files.check_dir(&dir)?;
            }
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = archive.next().await {
            let chunk =
                chunk.map_err(|error| RuntimeError::operation("receive the archive", error))?;
            bytes.extend_from_slice(&chunk);
        }
        let archive_bytes = bytes.len() as u64;
        let mut state = self.state();
        let key = self.ours(&state, container)?;
        if let Some(unit) = state.containers.get_mut(&key) {
            unit.files.unpack(&dir, &bytes)?;
        }
        Ok(CopyReport { archive_bytes })
    }

    async fn list_managed(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        self.check_available()?;
        Ok(self.containers_in(&self.namespace))
    }
}
