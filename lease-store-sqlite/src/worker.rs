//! Threads that own SQLite connections, fed by a channel, so that no
//! blocking SQLite call runs on a tokio worker thread.
//!
//! A [`Worker`] is one or more threads, each with its own connection, that
//! take jobs from one queue; the caller awaits the job's answer. The writer
//! is a worker of one thread (SQLite allows one writer at a time anyway);
//! the read pool a worker of a few.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use lease_core::StoreError;
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::error::worker_gone;

/// A job: runs on a worker thread with that thread's connection.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Threads owning connections, taking jobs from one queue.
pub(crate) struct Worker {
    /// `None` once shutting down (dropping it stops the threads).
    jobs: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Worker {
    /// One thread per connection, named `name-<n>`.
    pub(crate) fn spawn(name: &str, connections: Vec<Connection>) -> std::io::Result<Worker> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let mut worker = Worker {
            jobs: Some(jobs),
            threads: Vec::with_capacity(connections.len()),
        };
        for (n, connection) in connections.into_iter().enumerate() {
            let queue = Arc::clone(&queue);
            let thread = std::thread::Builder::new()
                .name(format!("{name}-{n}"))
                .spawn(move || serve(connection, &queue))?;
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
        self.jobs
            .as_ref()
            .ok_or_else(worker_gone)?
            .send(job)
            .map_err(|_| worker_gone())?;
        answered.await.map_err(|_| worker_gone())?
    }
}

/// A thread's loop: take the next job while the queue is open.
fn serve(mut connection: Connection, queue: &Mutex<Receiver<Job>>) {
    loop {
        // Hold the lock only to take a job, not while running it.
        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        match next {
            Ok(job) => {
                // A job that panics loses its answer (its caller sees the
                // store unavailable, its transaction rolls back) but not
                // the thread.
                let run = std::panic::AssertUnwindSafe(|| job(&mut connection));
                if std::panic::catch_unwind(run).is_err() {
                    tracing::error!("a SQLite store job panicked");
                }
            }
            Err(_) => return, // the store was dropped: close the connection
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.jobs = None;
        // Wait for the connections to close, so that the file is complete
        // (WAL checkpointed) when the store is gone.
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
