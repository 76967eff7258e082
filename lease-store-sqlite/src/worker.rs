//! Threads that own SQLite connections, fed by channels, so that no
//! blocking SQLite call runs on a tokio worker thread.
//!
//! A [`Worker`] is the read pool: one or more threads, each with its own
//! connection and its own queue; a job goes to the first idle thread (else
//! the least loaded) and the caller awaits its answer. One queue per thread
//! (rather than one shared queue behind a lock) keeps a job to at most one
//! thread wake-up, and none when it follows another at once (see
//! [`LINGER`]). Writes go to [`crate::writer`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lease_core::StoreError;
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::error::worker_gone;

/// A job: runs on a worker thread with that thread's connection.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// One thread's queue and how many jobs it holds (queued or running).
struct Queue {
    jobs: Sender<Job>,
    load: Arc<AtomicUsize>,
}

/// Threads owning connections, each taking jobs from its own queue.
pub(crate) struct Worker {
    /// One queue per thread; emptied when shutting down (which stops them).
    queues: Vec<Queue>,
    threads: Vec<JoinHandle<()>>,
}

impl Worker {
    /// One thread per connection, named `name-<n>`.
    pub(crate) fn spawn(name: &str, connections: Vec<Connection>) -> std::io::Result<Worker> {
        let mut worker = Worker {
            queues: Vec::with_capacity(connections.len()),
            threads: Vec::with_capacity(connections.len()),
        };
        for (n, connection) in connections.into_iter().enumerate() {
            let (queue, jobs) = mpsc::channel::<Job>();
            let load = Arc::new(AtomicUsize::new(0));
            let thread = std::thread::Builder::new()
                .name(format!("{name}-{n}"))
                .spawn(move || serve(connection, &jobs))?;
            worker.queues.push(Queue { jobs: queue, load });
            worker.threads.push(thread);
        }
        Ok(worker)
    }

    /// Runs `job` on one of the threads and returns its answer.
    pub(crate) async fn run<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        // The first idle thread (the one most likely still polling after
        // its last job), else the least loaded.
        let queue = self
            .queues
            .iter()
            .find(|queue| queue.load.load(Ordering::Acquire) == 0)
            .or_else(|| {
                self.queues
                    .iter()
                    .min_by_key(|queue| queue.load.load(Ordering::Acquire))
            })
            .ok_or_else(worker_gone)?;
        let (answer, answered) = oneshot::channel();
        let taken = Taken::new(Arc::clone(&queue.load));
        let job: Job = Box::new(move |connection| {
            let result = job(connection);
            // Idle again before the caller hears back, so that its next job
            // comes here, where the thread is still polling.
            drop(taken);
            // The caller may have gone (its request was cancelled).
            let _ = answer.send(result);
        });
        queue.jobs.send(job).map_err(|_| worker_gone())?;
        answered.await.map_err(|_| worker_gone())?
    }
}

/// How long a thread polls its queue after a job before it sleeps: a job
/// that follows at once (the next read of a busy caller) then needs no
/// thread wake-up, which in a virtual machine costs tens of microseconds.
pub(crate) const LINGER: Duration = Duration::from_micros(30);

/// The next job: from a short poll right after the last one, else by
/// sleeping until one comes. `None` once the queue has closed.
pub(crate) fn next<T>(jobs: &Receiver<T>) -> Option<T> {
    let polling = Instant::now();
    loop {
        match jobs.try_recv() {
            Ok(job) => return Some(job),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) if polling.elapsed() < LINGER => std::hint::spin_loop(),
            Err(TryRecvError::Empty) => return jobs.recv().ok(),
        }
    }
}

/// One job counted in a queue's load, until dropped (also when the job
/// panics or is never run).
struct Taken(Arc<AtomicUsize>);

impl Taken {
    fn new(load: Arc<AtomicUsize>) -> Taken {
        load.fetch_add(1, Ordering::AcqRel);
        Taken(load)
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A thread's loop: run jobs until the queue closes.
fn serve(mut connection: Connection, jobs: &Receiver<Job>) {
    while let Some(job) = next(jobs) {
        // A job that panics loses its answer (its caller sees the store
        // unavailable, its transaction rolls back) but not the thread.
        let run = std::panic::AssertUnwindSafe(|| job(&mut connection));
        if std::panic::catch_unwind(run).is_err() {
            tracing::error!("a SQLite store job panicked");
        }
    }
    // The store was dropped: the connection closes here.
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.queues.clear();
        // Wait for the connections to close, so that the file is complete
        // (WAL checkpointed) when the store is gone.
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
