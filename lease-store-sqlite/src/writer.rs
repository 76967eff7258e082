//! The writer: one thread owning the write connection, fed by a channel,
//! committing the writes waiting in its queue together (group commit).
//!
//! With `synchronous=FULL` every commit waits for the disk (about a
//! millisecond or more); one commit per write would cap the store at that
//! rate, and requests would queue behind each other's disk syncs. So the
//! writer takes every write already queued (up to [`MAX_BATCH`]), runs them
//! in one `BEGIN IMMEDIATE` transaction, each inside its own savepoint, and
//! commits once:
//!
//! - a write that fails (a conflict, a full disk) rolls back to its
//!   savepoint and answers its error; the others are unaffected;
//! - every write is answered only **after** the commit succeeded, so an
//!   acknowledged write is on disk; if the commit fails, every write of the
//!   batch answers that error and none of them happened;
//! - if SQLite rolls the whole transaction back on its own (it may on a full
//!   disk or an I/O error), the writes already run answer that error and the
//!   rest go into the next batch: none is reported failed that happened.
//!
//! Reads sent to the writer (no read pool, `ping`) run between batches,
//! outside any transaction.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use lease_core::StoreError;
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::error::{shared_store_error, worker_gone};

/// Most writes committed together.
pub(crate) const MAX_BATCH: usize = 128;

/// A write waiting for its turn: run it, or fail it without running.
trait Write: Send {
    /// Runs the write inside the open transaction.
    fn run(self: Box<Self>, connection: &Connection) -> Box<dyn Outcome>;
    /// Answers `error` without running.
    fn fail(self: Box<Self>, error: StoreError);
}

/// A write that ran, waiting for the commit to answer.
trait Outcome: Send {
    /// Whether the write itself succeeded.
    fn succeeded(&self) -> bool;
    /// Answers the caller: the write's own result if the commit went
    /// through (or the write failed anyway), else the commit's error.
    fn answer(self: Box<Self>, commit: Result<(), &Arc<rusqlite::Error>>);
}

struct Pending<T, F> {
    job: F,
    answer: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Write for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, connection: &Connection) -> Box<dyn Outcome> {
        let Pending { job, answer } = *self;
        Box::new(Ran {
            result: job(connection),
            answer,
        })
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.answer.send(Err(error));
    }
}

struct Ran<T> {
    result: Result<T, StoreError>,
    answer: oneshot::Sender<Result<T, StoreError>>,
}

impl<T: Send + 'static> Outcome for Ran<T> {
    fn succeeded(&self) -> bool {
        self.result.is_ok()
    }

    fn answer(self: Box<Self>, commit: Result<(), &Arc<rusqlite::Error>>) {
        let Ran { result, answer } = *self;
        let result = match (result, commit) {
            (Ok(_), Err(error)) => Err(shared_store_error("commit writes", Arc::clone(error))),
            (result, _) => result,
        };
        // The caller may have gone (its request was cancelled).
        let _ = answer.send(result);
    }
}

/// A read on the write connection, outside any transaction.
type Read = Box<dyn FnOnce(&mut Connection) + Send>;

enum Request {
    Read(Read),
    Write(Box<dyn Write>),
}

/// The writer thread and its queue.
pub(crate) struct Writer {
    /// `None` once shutting down (dropping it stops the thread).
    queue: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread with `connection`.
    pub(crate) fn spawn(connection: Connection) -> std::io::Result<Writer> {
        let (queue, requests) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("lease-sqlite-writer".to_owned())
            .spawn(move || serve(connection, &requests))?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    fn send(&self, request: Request) -> Result<(), StoreError> {
        self.queue
            .as_ref()
            .ok_or_else(worker_gone)?
            .send(request)
            .map_err(|_| worker_gone())
    }

    /// Runs `job` inside a write transaction (see the module docs) and
    /// answers once it is committed.
    pub(crate) async fn write<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        self.send(Request::Write(Box::new(Pending { job, answer })))?;
        answered.await.map_err(|_| worker_gone())?
    }

    /// Runs `job` on the write connection outside any transaction.
    pub(crate) async fn read<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        self.send(Request::Read(Box::new(move |connection| {
            let _ = answer.send(job(connection));
        })))?;
        answered.await.map_err(|_| worker_gone())?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.queue = None;
        // Wait for the connection to close, so that the file is complete
        // (WAL checkpointed) when the store is gone.
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread's loop.
fn serve(mut connection: Connection, requests: &Receiver<Request>) {
    // Writes taken from the channel but not run yet, in order.
    let mut waiting: VecDeque<Request> = VecDeque::new();
    loop {
        let first = match waiting.pop_front() {
            Some(request) => request,
            None => match crate::worker::next(requests) {
                Some(request) => request,
                None => return, // the store was dropped
            },
        };
        match first {
            Request::Read(read) => guarded(|| read(&mut connection)),
            Request::Write(write) => {
                let mut batch = vec![write];
                while batch.len() < MAX_BATCH {
                    match waiting.pop_front().or_else(|| requests.try_recv().ok()) {
                        Some(Request::Write(write)) => batch.push(write),
                        Some(read) => {
                            // Reads see only committed writes: after this batch.
                            waiting.push_front(read);
                            break;
                        }
                        None => break,
                    }
                }
                let not_run = commit(&connection, batch);
                for write in not_run.into_iter().rev() {
                    waiting.push_front(Request::Write(write));
                }
            }
        }
    }
}

/// Runs `work`, keeping the thread alive if it panics (its caller sees the
/// store unavailable: its answer channel is dropped).
fn guarded(work: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).is_err() {
        tracing::error!("a SQLite store job panicked");
    }
}

/// Runs `batch` in one transaction and answers each write. Returns the
/// writes it did not run (SQLite ended the transaction early).
fn commit(connection: &Connection, batch: Vec<Box<dyn Write>>) -> Vec<Box<dyn Write>> {
    if let Err(error) = connection.execute_batch("BEGIN IMMEDIATE") {
        let error = Arc::new(error);
        for write in batch {
            write.fail(shared_store_error("begin a write", Arc::clone(&error)));
        }
        return Vec::new();
    }
    let mut ran: Vec<Box<dyn Outcome>> = Vec::with_capacity(batch.len());
    let mut writes = batch.into_iter();
    let mut ended_early = None;
    for write in writes.by_ref() {
        if let Err(error) = connection.execute_batch("SAVEPOINT write") {
            write.fail(shared_store_error("begin a write", Arc::new(error)));
            continue;
        }
        let mut outcome = None;
        guarded(|| outcome = Some(write.run(connection)));
        let kept = outcome.as_ref().is_some_and(|outcome| outcome.succeeded());
        let end = if kept {
            "RELEASE write"
        } else {
            "ROLLBACK TO write; RELEASE write"
        };
        if connection.is_autocommit() {
            // SQLite rolled the whole transaction back (full disk, I/O
            // error): nothing of this batch happened.
            ended_early = Some(outcome);
            break;
        }
        if let Err(error) = connection.execute_batch(end) {
            ended_early = Some(outcome);
            tracing::warn!(error = %error, "cannot end a write's savepoint");
            break;
        }
        ran.extend(outcome);
    }
    if let Some(last) = ended_early {
        let error = Arc::new(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
            Some("the write transaction was rolled back".to_owned()),
        ));
        if !connection.is_autocommit() {
            let _ = connection.execute_batch("ROLLBACK");
        }
        for outcome in ran.into_iter().chain(last) {
            outcome.answer(Err(&error));
        }
        return writes.collect();
    }
    let committed = connection.execute_batch("COMMIT").map_err(Arc::new);
    if committed.is_err() && !connection.is_autocommit() {
        let _ = connection.execute_batch("ROLLBACK");
    }
    for outcome in ran {
        outcome.answer(committed.as_ref().map(|_| ()));
    }
    Vec::new()
}
