//! Threads that own SQLite connections, fed by channels, so that no
//! blocking SQLite call runs on a tokio worker thread.
//!
//! A [`Worker`] is the read pool: one or more threads, each with its own
//! connection and its own queue; jobs go to the threads in turn and the
//! caller awaits the job's answer. One queue per thread (rather than one
//! shared queue behind a lock) keeps a job to one thread wake-up. Writes go
//! to [`crate::writer`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use lease_core::StoreError;
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::error::worker_gone;

/// A job: runs on a worker thread with that thread's connection.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Threads owning connections, each taking jobs from its own queue.
pub(crate) struct Worker {
    /// One queue per thread; emptied when shutting down (which stops them).
    queues: Vec<Sender<Job>>,
    /// Which queue gets the next job.
    next: AtomicUsize,
    threads: Vec<JoinHandle<()>>,
}

impl Worker {
    /// One thread per connection, named `name-<n>`.
    pub(crate) fn spawn(name: &str, connections: Vec<Connection>) -> std::io::Result<Worker> {
        let mut worker = Worker {
            queues: Vec::with_capacity(connections.len()),
            next: AtomicUsize::new(0),
            threads: Vec::with_capacity(connections.len()),
        };
        for (n, connection) in connections.into_iter().enumerate() {
            let (queue, jobs) = mpsc::channel::<Job>();
            let thread = std::thread::Builder::new()
                .name(format!("{name}-{n}"))
                .spawn(move || serve(connection, &jobs))?;
            worker.queues.push(queue);
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
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |connection| {
            // The caller may have gone (its request was cancelled): the
            // job's transaction is complete either way.
            let _ = answer.send(job(connection));
        });
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let queue = match self.queues.len() {
            0 => return Err(worker_gone()),
            n => &self.queues[turn % n],
        };
        queue.send(job).map_err(|_| worker_gone())?;
        answered.await.map_err(|_| worker_gone())?
    }
}

/// A thread's loop: run jobs until the queue closes.
fn serve(mut connection: Connection, jobs: &Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
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
