//! An in-memory [`ContainerRuntime`] for engine scenarios, with injectable
//! latency and failures, that records every call.
//!
//! It honours the port's contract: containers are scoped by the namespace
//! label, creation is idempotent by name, removal is idempotent, and a
//! container of another namespace is reported as `NotManaged` and left alone.
//! An exec prints its command line and its extra environment, one line
//! each; with stdin it then behaves as `cat` until its input is closed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::sync::Notify;

use crate::clock::{Clock, SystemClock};
use crate::error::RuntimeError;
use crate::files::{ArchiveInput, ArchiveOut, CopyReport, PathKind, check_container_path};
use crate::runtime::{
    ContainerInfo, ContainerRuntime, ContainerSpec, ExecChunk, ExecRequest, ExecSession, LogLine,
    LogOptions, LogSource, LogStream, ProgressFn, PullProgress, labels,
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

#[derive(Debug, Default)]
struct State {
    containers: BTreeMap<String, ContainerInfo>,
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
    /// Archives copied in, by (container id, directory).
    archives: BTreeMap<(String, String), Vec<u8>>,
}

/// The fake runtime. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct FakeRuntime {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    release_hung: Notify,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        FakeRuntime::new(Arc::new(SystemClock))
    }
}

fn injected(operation: &str) -> RuntimeError {
    RuntimeError::operation(operation, "injected failure")
}

impl FakeRuntime {
    /// A fake that timestamps removals with `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        FakeRuntime {
            state: Mutex::new(State::default()),
            clock,
            release_hung: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
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
        self.release_hung.notify_waiters();
    }

    /// Adds a container directly (an orphan, a foreign one, …).
    pub fn insert_container(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
        running: bool,
    ) -> String {
        let mut state = self.state();
        state.next_id += 1;
        let id = format!("fake{:012}", state.next_id);
        let info = container_info(&id, name, labels, running);
        state.containers.insert(id.clone(), info);
        id
    }

    /// Stops a container (it stays, not running, exit code 137).
    pub fn stop_container(&self, id_or_name: &str) {
        let mut state = self.state();
        if let Some(key) = find(&state.containers, id_or_name) {
            if let Some(info) = state.containers.get_mut(&key) {
                info.running = false;
                info.state = "exited".into();
                info.exit_code = Some(137);
            }
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
        self.state().containers.values().cloned().collect()
    }

    /// Containers present in `namespace`.
    pub fn containers_in(&self, namespace: &str) -> Vec<ContainerInfo> {
        self.containers()
            .into_iter()
            .filter(|c| in_namespace(c, namespace))
            .collect()
    }

    /// Calls to `create_and_start`.
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
}

fn container_info(
    id: &str,
    name: &str,
    labels: BTreeMap<String, String>,
    running: bool,
) -> ContainerInfo {
    ContainerInfo {
        id: id.to_owned(),
        name: name.to_owned(),
        running,
        state: if running {
            "running".into()
        } else {
            "created".into()
        },
        exit_code: None,
        labels,
        address: None,
    }
}

fn find(containers: &BTreeMap<String, ContainerInfo>, id_or_name: &str) -> Option<String> {
    containers
        .values()
        .find(|c| c.id == id_or_name || c.name == id_or_name)
        .map(|c| c.id.clone())
}

impl FakeRuntime {
    /// A container of `namespace`, or `NotFound`.
    async fn require(
        &self,
        namespace: &str,
        container: &str,
    ) -> Result<ContainerInfo, RuntimeError> {
        self.inspect(namespace, container)
            .await?
            .ok_or_else(|| RuntimeError::NotFound {
                container: container.into(),
            })
    }
}

fn in_namespace(container: &ContainerInfo, namespace: &str) -> bool {
    container.labels.get(labels::NAMESPACE).map(String::as_str) == Some(namespace)
}

#[async_trait]
impl ContainerRuntime for FakeRuntime {
    async fn ping(&self) -> Result<(), RuntimeError> {
        self.check_available()
    }

    async fn ensure_image(
        &self,
        image: &str,
        progress: ProgressFn<'_>,
    ) -> Result<(), RuntimeError> {
        self.check_available()?;
        if self.state().missing_images.iter().any(|m| m == image) {
            return Err(RuntimeError::ImageUnavailable {
                image: image.into(),
                source: "no registry (fake)".into(),
            });
        }
        progress(PullProgress {
            layers_total: 1,
            layers_done: 1,
            status: "present".into(),
            ..PullProgress::default()
        });
        Ok(())
    }

    async fn create_and_start(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let (latency, hang) = {
            let mut state = self.state();
            state.create_calls += 1;
            (state.create_latency, state.hang_creates)
        };
        if hang {
            self.release_hung.notified().await;
        }
        tokio::time::sleep(latency).await;
        self.check_available()?;
        let mut state = self.state();
        if state.fail_creates > 0 {
            state.fail_creates -= 1;
            return Err(injected("create container"));
        }
        if spec.labels.get(labels::NAMESPACE) != Some(&spec.namespace)
            || spec.labels.get(labels::MANAGED).map(String::as_str) != Some("true")
        {
            return Err(RuntimeError::Invalid(
                "spec lacks the managed and namespace labels".into(),
            ));
        }
        if let Some(existing) = find(&state.containers, &spec.name) {
            return Ok(existing);
        }
        state.next_id += 1;
        let id = format!("fake{:012}", state.next_id);
        let info = container_info(&id, &spec.name, spec.labels.clone(), true);
        state.containers.insert(id.clone(), info);
        Ok(id)
    }

    async fn remove(&self, namespace: &str, container: &str) -> Result<(), RuntimeError> {
        let latency = {
            let mut state = self.state();
            state.remove_calls += 1;
            state.remove_latency
        };
        tokio::time::sleep(latency).await;
        self.check_available()?;
        let at = self.clock.now();
        let mut state = self.state();
        if state.fail_removes > 0 {
            state.fail_removes -= 1;
            return Err(injected("remove container"));
        }
        let Some(key) = find(&state.containers, container) else {
            return Ok(());
        };
        let Some(info) = state.containers.get(&key).cloned() else {
            return Ok(());
        };
        if !in_namespace(&info, namespace) {
            return Err(RuntimeError::NotManaged {
                container: container.into(),
                namespace: namespace.into(),
            });
        }
        state.containers.remove(&key);
        state.removals.push(Removal {
            name: info.name.clone(),
            lease_id: info.labels.get(labels::LEASE_ID).cloned(),
            at,
        });
        Ok(())
    }

    async fn inspect(
        &self,
        namespace: &str,
        container: &str,
    ) -> Result<Option<ContainerInfo>, RuntimeError> {
        self.check_available()?;
        let state = self.state();
        let Some(info) =
            find(&state.containers, container).and_then(|key| state.containers.get(&key).cloned())
        else {
            return Ok(None);
        };
        if !in_namespace(&info, namespace) {
            return Err(RuntimeError::NotManaged {
                container: container.into(),
                namespace: namespace.into(),
            });
        }
        Ok(Some(info))
    }

    async fn logs(
        &self,
        namespace: &str,
        container: &str,
        options: LogOptions,
    ) -> Result<LogStream, RuntimeError> {
        let info =
            self.inspect(namespace, container)
                .await?
                .ok_or_else(|| RuntimeError::NotFound {
                    container: container.into(),
                })?;
        let mut lines: Vec<LogLine> = (1..=3)
            .map(|n| LogLine {
                source: LogSource::Stdout,
                text: format!("{} line {n}", info.name),
            })
            .collect();
        if let Some(tail) = options.tail {
            let skip = lines.len().saturating_sub(tail as usize);
            lines.drain(..skip);
        }
        Ok(futures::stream::iter(lines.into_iter().map(Ok)).boxed())
    }

    async fn exec(
        &self,
        namespace: &str,
        container: &str,
        request: ExecRequest,
    ) -> Result<ExecSession, RuntimeError> {
        self.inspect(namespace, container)
            .await?
            .ok_or_else(|| RuntimeError::NotFound {
                container: container.into(),
            })?;
        let mut text = format!("{}\n", request.command.join(" "));
        // The environment asked for is echoed too, so a test can see it was passed.
        for entry in &request.env {
            text.push_str(entry);
            text.push('\n');
        }
        let chunk = ExecChunk {
            source: LogSource::Stdout,
            bytes: text.into_bytes(),
        };
        let head = futures::stream::iter([Ok(chunk)]);
        if !request.stdin {
            return Ok(ExecSession {
                id: "fake-exec".into(),
                output: head.boxed(),
                input: None,
            });
        }
        // With stdin, the fake is `cat`: what is written comes back as
        // output, and the output ends when the input is closed.
        let (input, reader) = tokio::io::duplex(64 * 1024);
        let echoed = futures::stream::unfold(reader, |mut reader| async move {
            let mut buffer = vec![0; 8192];
            match tokio::io::AsyncReadExt::read(&mut reader, &mut buffer).await {
                Ok(0) | Err(_) => None,
                Ok(read) => {
                    buffer.truncate(read);
                    let chunk = ExecChunk {
                        source: LogSource::Stdout,
                        bytes: buffer,
                    };
                    Some((Ok(chunk), reader))
                }
            }
        });
        Ok(ExecSession {
            id: "fake-exec".into(),
            output: head.chain(echoed).boxed(),
            input: Some(Box::pin(input)),
        })
    }

    async fn exec_resize(
        &self,
        _namespace: &str,
        _exec_id: &str,
        _columns: u16,
        _rows: u16,
    ) -> Result<(), RuntimeError> {
        self.check_available()
    }

    async fn exec_exit_code(
        &self,
        _namespace: &str,
        _exec_id: &str,
    ) -> Result<Option<i64>, RuntimeError> {
        self.check_available()?;
        Ok(Some(0))
    }

    /// The archive last copied into `path` of this container, as it came
    /// (the fake keeps archives whole; it unpacks nothing).
    async fn copy_from(
        &self,
        namespace: &str,
        container: &str,
        path: &str,
    ) -> Result<ArchiveOut, RuntimeError> {
        let path = check_container_path(path)?;
        let info = self.require(namespace, container).await?;
        let archive = self
            .state()
            .archives
            .get(&(info.id.clone(), path.to_owned()))
            .cloned()
            .ok_or_else(|| RuntimeError::PathNotFound {
                path: path.to_owned(),
            })?;
        Ok(ArchiveOut {
            kind: PathKind::Directory,
            size: archive.len() as u64,
            archive: futures::stream::iter([Ok(archive)]).boxed(),
        })
    }

    /// Keeps the whole archive, under `dir`, once it has fully arrived.
    async fn copy_to(
        &self,
        namespace: &str,
        container: &str,
        dir: &str,
        mut archive: ArchiveInput,
    ) -> Result<CopyReport, RuntimeError> {
        let dir = check_container_path(dir)?.to_owned();
        let info = self.require(namespace, container).await?;
        let mut bytes = Vec::new();
        while let Some(chunk) = archive.next().await {
            let chunk =
                chunk.map_err(|error| RuntimeError::operation("receive the archive", error))?;
            bytes.extend_from_slice(&chunk);
        }
        let archive_bytes = bytes.len() as u64;
        self.state().archives.insert((info.id, dir), bytes);
        Ok(CopyReport { archive_bytes })
    }

    async fn list_managed(&self, namespace: &str) -> Result<Vec<ContainerInfo>, RuntimeError> {
        self.check_available()?;
        Ok(self.containers_in(namespace))
    }
}

#[cfg(test)]
mod copy_tests {
    use super::*;
    use crate::id::LeaseId;
    use crate::runtime::{ContainerSpec, Limits};

    fn spec(namespace: &str) -> ContainerSpec {
        let lease_id = LeaseId::generate();
        let labels = BTreeMap::from([
            (labels::MANAGED.to_owned(), "true".to_owned()),
            (labels::NAMESPACE.to_owned(), namespace.to_owned()),
        ]);
        ContainerSpec {
            name: crate::runtime::container_name(&lease_id),
            belongs_to: crate::runtime::BelongsTo::Lease(lease_id),
            namespace: namespace.to_owned(),
            image: "busybox".to_owned(),
            command: vec!["sleep".to_owned()],
            labels,
            limits: Limits {
                nano_cpus: 1,
                memory_bytes: 1,
                pids: 1,
            },
            confinement: Default::default(),
        }
    }

    #[tokio::test]
    async fn archives_copied_in_come_back_and_stay_in_their_namespace() {
        let runtime = FakeRuntime::new(Arc::new(SystemClock));
        let id = runtime.create_and_start(&spec("ns")).await.expect("create");
        let input = futures::stream::iter([Ok(b"tar".to_vec()), Ok(b" bytes".to_vec())]).boxed();
        let report = runtime
            .copy_to("ns", &id, "/tmp/", input)
            .await
            .expect("copy in");
        assert_eq!(report.archive_bytes, 9);
        let out = runtime
            .copy_from("ns", &id, "/tmp")
            .await
            .expect("copy out");
        let bytes: Vec<Vec<u8>> = out
            .archive
            .map(|chunk| chunk.expect("chunk"))
            .collect()
            .await;
        assert_eq!(bytes.concat(), b"tar bytes");
        assert!(matches!(
            runtime.copy_from("ns", &id, "/etc").await,
            Err(RuntimeError::PathNotFound { .. })
        ));
        assert!(matches!(
            runtime.copy_from("other", &id, "/tmp").await,
            Err(RuntimeError::NotManaged { .. })
        ));
        assert!(matches!(
            runtime.copy_from("ns", &id, "tmp/../x").await,
            Err(RuntimeError::Invalid(_))
        ));
        let aborted = futures::stream::iter([Err("cut".into())]).boxed();
        assert!(runtime.copy_to("ns", &id, "/var", aborted).await.is_err());
        assert!(matches!(
            runtime.copy_from("ns", &id, "/var").await,
            Err(RuntimeError::PathNotFound { .. })
        ));
    }
}
