//! The one compare-and-set primitive every change to a stored lease goes
//! through.
//!
//! A change reads the lease (or starts from a copy already in hand), lets
//! the caller decide — write it changed, finish it into history, leave it,
//! or fail — and writes it with the store's compare-and-set on the
//! revision. When someone else wrote in between, it reads again and asks
//! again, up to [`CAS_ATTEMPTS`] times; after that it reports a conflict
//! naming the revision it last read.

use std::future::Future;

use crate::admission::Admission;
use crate::error::{LeaseError, StoreError};
use crate::id::LeaseId;
use crate::lease::Lease;
use crate::store::LeaseStore;

/// Compare-and-set attempts before a concurrent-update conflict is reported.
pub(crate) const CAS_ATTEMPTS: usize = 8;

/// What the caller decided about the lease it was shown.
#[derive(Debug)]
pub(crate) enum Step<T> {
    /// Store this (changed) lease with [`LeaseStore::update`].
    Update(Lease),
    /// Store it with [`LeaseStore::finish`]: moves it into history.
    Finish(Lease),
    /// Write nothing; the change ends with [`Outcome::Left`].
    Leave(T),
}

/// How a change ended.
#[derive(Debug)]
pub(crate) enum Outcome<T> {
    /// The write went through: the lease as stored (boxed: a lease is far
    /// larger than the other variants).
    Written(Box<Lease>),
    /// The caller chose to leave the lease as it was.
    Left(T),
    /// The write found no active lease: it was finished (or removed)
    /// meanwhile.
    Gone,
}

/// One compare-and-set change of the lease `id`.
pub(crate) struct CompareAndSet<'a> {
    store: &'a dyn LeaseStore,
    id: &'a LeaseId,
    read: Option<Lease>,
    attempts: usize,
    admission: Admission,
}

impl<'a> CompareAndSet<'a> {
    /// A change of `id` that starts by reading it from `store`.
    pub(crate) fn new(store: &'a dyn LeaseStore, id: &'a LeaseId) -> Self {
        CompareAndSet {
            store,
            id,
            read: None,
            attempts: CAS_ATTEMPTS,
            admission: Admission::default(),
        }
    }

    /// Starts from `lease`, a copy already read (a claimed lease), instead
    /// of reading first; later attempts read the store.
    pub(crate) fn starting_from(mut self, lease: Lease) -> Self {
        self.read = Some(lease);
        self
    }

    /// Gives up after `attempts` writes (at least one) instead of
    /// [`CAS_ATTEMPTS`].
    pub(crate) fn attempts(mut self, attempts: usize) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Checks `admission` with every [`Step::Update`] write (see
    /// [`LeaseStore::update`]) instead of no limit: a refusal ends the
    /// change with [`LeaseError::Store`]`(`[`StoreError::LimitReached`]`)`.
    pub(crate) fn admission(mut self, admission: Admission) -> Self {
        self.admission = admission;
        self
    }

    /// Runs the change: `decide` sees the lease as read and says what to do
    /// with it. A `get` that finds nothing is [`LeaseError::NotFound`]; a
    /// write that finds nothing is [`Outcome::Gone`]; running out of
    /// attempts is a [`StoreError::Conflict`] naming the revision last read.
    pub(crate) async fn run<T, F, Fut>(self, mut decide: F) -> Result<Outcome<T>, LeaseError>
    where
        F: FnMut(Lease) -> Fut,
        Fut: Future<Output = Result<Step<T>, LeaseError>>,
    {
        let mut read = self.read;
        let mut last_revision = 0;
        for _ in 0..self.attempts {
            let lease = match read.take() {
                Some(lease) => lease,
                None => self.store.get(self.id).await?,
            };
            last_revision = lease.revision;
            let written = match decide(lease).await? {
                Step::Leave(value) => return Ok(Outcome::Left(value)),
                Step::Update(lease) => self.store.update(&lease, &self.admission).await,
                Step::Finish(lease) => self.store.finish(&lease).await,
            };
            match written {
                Ok(stored) => return Ok(Outcome::Written(Box::new(stored))),
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound(_)) => return Ok(Outcome::Gone),
                Err(other) => return Err(other.into()),
            }
        }
        Err(LeaseError::Store(StoreError::Conflict {
            id: self.id.clone(),
            expected: last_revision,
        }))
    }

    /// [`CompareAndSet::run`] with a `decide` that needs no waiting.
    pub(crate) async fn apply<T>(
        self,
        mut decide: impl FnMut(Lease) -> Result<Step<T>, LeaseError>,
    ) -> Result<Outcome<T>, LeaseError> {
        self.run(|lease| std::future::ready(decide(lease))).await
    }
}

/// Whether `error` is a compare-and-set that ran out of attempts.
pub(crate) fn is_conflict(error: &LeaseError) -> bool {
    matches!(error, LeaseError::Store(StoreError::Conflict { .. }))
}
