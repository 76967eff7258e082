//! Docker, seen directly (the `docker` CLI), never through the product:
//! the containers of a test namespace with their labels, and its event
//! stream. Everything here filters on the test's own namespace label.
//! Readiness and cleanup are `lease-testkit`'s, re-exported.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

pub use lease_testkit::docker::{NamespaceGuard, docker_ready, remove_namespace};
use lease_testkit::labels::{EXPIRES_AT, LEASE_ID, NAMESPACE};

/// One container of a namespace, as `docker ps -a` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    /// The Docker id (short).
    pub id: String,
    /// The name.
    pub name: String,
    /// The lease-id label (empty if missing).
    pub lease_id: String,
    /// `running`, `exited`, `created`, …
    pub state: String,
    /// The expires-at label (full precision, as set at creation; an
    /// extension does not update it).
    pub expires_at: Option<SystemTime>,
}

/// Every container (running or not) labelled with `namespace`.
pub fn containers_of(namespace: &str) -> Vec<Container> {
    let output = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &format!("label={NAMESPACE}={namespace}"),
            "--format",
            &format!(
                "{{{{.ID}}}}\t{{{{.Names}}}}\t{{{{.Label \"{LEASE_ID}\"}}}}\t{{{{.State}}}}\t{{{{.Label \"{EXPIRES_AT}\"}}}}"
            ),
        ])
        .output()
        .expect("run docker ps");
    assert!(
        output.status.success(),
        "docker ps failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut fields = line.split('\t').map(str::to_owned);
            Container {
                id: fields.next().unwrap_or_default(),
                name: fields.next().unwrap_or_default(),
                lease_id: fields.next().unwrap_or_default(),
                state: fields.next().unwrap_or_default(),
                expires_at: fields.next().and_then(|text| parse_time(&text)),
            }
        })
        .collect()
}

/// One container event of the namespace.
#[derive(Clone, Debug)]
pub struct Event {
    /// `create`, `start`, `kill`, `die`, `destroy`, …
    pub action: String,
    /// The Docker container id.
    pub container_id: String,
    /// The lease-id label (empty if missing).
    pub lease_id: String,
    /// When Docker says it happened.
    pub time: SystemTime,
}

/// Reads `docker events` for one namespace's containers in the background
/// (from one second before it was started, so nothing is missed). Stops
/// the reader on drop.
pub struct EventWatcher {
    child: Option<Child>,
    events: Arc<Mutex<Vec<Event>>>,
}

impl EventWatcher {
    /// Starts watching `namespace`'s container events.
    pub fn start(namespace: &str) -> EventWatcher {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs().saturating_sub(1))
            .unwrap_or(0);
        let mut child = Command::new("docker")
            .args([
                "events",
                "--since",
                &since.to_string(),
                "--filter",
                "type=container",
                "--filter",
                &format!("label={NAMESPACE}={namespace}"),
                "--format",
                "{{json .}}",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn docker events");
        let stdout = child.stdout.take().expect("docker events stdout");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(event) = parse_event(&line) {
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push(event);
                }
            }
        });
        EventWatcher {
            child: Some(child),
            events,
        }
    }

    /// Every event seen so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Events with `action` so far.
    pub fn with_action(&self, action: &str) -> Vec<Event> {
        self.events()
            .into_iter()
            .filter(|e| e.action == action)
            .collect()
    }

    /// `destroy` events per lease id.
    pub fn destroy_counts(&self) -> HashMap<String, usize> {
        count_by_lease(&self.with_action("destroy"))
    }

    /// `create` events per lease id.
    pub fn create_counts(&self) -> HashMap<String, usize> {
        count_by_lease(&self.with_action("create"))
    }

    /// The first `destroy` time per lease id.
    pub fn destroy_times(&self) -> HashMap<String, SystemTime> {
        let mut times = HashMap::new();
        for event in self.with_action("destroy") {
            times
                .entry(event.lease_id)
                .and_modify(|t: &mut SystemTime| *t = (*t).min(event.time))
                .or_insert(event.time);
        }
        times
    }

    /// Waits until `done(events so far)` holds, `limit` at most; returns
    /// whether it did.
    pub fn wait_until(&self, limit: Duration, done: impl Fn(&[Event]) -> bool) -> bool {
        crate::wait_for(limit, Duration::from_millis(100), || {
            done(&self.events()).then_some(())
        })
        .is_some()
    }
}

impl Drop for EventWatcher {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An RFC 3339 time as a `SystemTime`.
pub fn parse_time(text: &str) -> Option<SystemTime> {
    let time = chrono::DateTime::parse_from_rfc3339(text.trim()).ok()?;
    let nanos = u64::try_from(time.timestamp_nanos_opt()?).ok()?;
    Some(UNIX_EPOCH + Duration::from_nanos(nanos))
}

fn count_by_lease(events: &[Event]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for event in events {
        *counts.entry(event.lease_id.clone()).or_insert(0) += 1;
    }
    counts
}

fn parse_event(line: &str) -> Option<Event> {
    let value: Value = serde_json::from_str(line).ok()?;
    let action = value
        .get("Action")
        .or_else(|| value.get("status"))?
        .as_str()?
        .to_owned();
    let actor = value.get("Actor")?;
    let container_id = actor.get("ID")?.as_str()?.to_owned();
    let lease_id = actor
        .get("Attributes")
        .and_then(|a| a.get(LEASE_ID))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let nanos = value.get("timeNano").and_then(Value::as_u64);
    let time = match nanos {
        Some(n) => UNIX_EPOCH + Duration::from_nanos(n),
        None => UNIX_EPOCH + Duration::from_secs(value.get("time")?.as_u64()?),
    };
    Some(Event {
        action,
        container_id,
        lease_id,
        time,
    })
}
