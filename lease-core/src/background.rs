//! Running the engine's background loops: the [`LeaseManager`] methods
//! that start the reaper and the reconciler or run one pass of either.

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::LeaseError;
use crate::manager::LeaseManager;
use crate::reaper::ReapReport;
use crate::reconcile_plan::ReconcilePlan;
use crate::reconciler::ReconcileReport;

/// The reaper, reconciler and warm-pool loops started by [`LeaseManager::start`].
#[derive(Debug)]
pub struct BackgroundTasks {
    /// The reaper loop.
    pub reaper: JoinHandle<()>,
    /// The reconciler loop.
    pub reconciler: JoinHandle<()>,
    /// The warm-pool filler loop (ends at once when no offering has a
    /// pool).
    pub pools: JoinHandle<()>,
}

impl BackgroundTasks {
    /// Waits for the loops to stop (after their token is cancelled).
    pub async fn join(self) {
        let _ = self.reaper.await;
        let _ = self.reconciler.await;
        let _ = self.pools.await;
    }
}

impl LeaseManager {
    /// Spawns the reaper and the reconciler (which runs once at once, then
    /// periodically) on the current tokio runtime. They stop when `shutdown`
    /// is cancelled or [`LeaseManager::shutdown`] is called.
    pub fn start(&self, shutdown: CancellationToken) -> BackgroundTasks {
        let reaper = {
            let manager = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { manager.run_reaper(shutdown).await })
        };
        let reconciler = {
            let manager = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { manager.run_reconciler(shutdown).await })
        };
        let pools = {
            let manager = self.clone();
            tokio::spawn(async move { manager.run_pools(shutdown).await })
        };
        BackgroundTasks {
            reaper,
            reconciler,
            pools,
        }
    }

    /// Runs the reaper until `shutdown` is cancelled: it sleeps until the
    /// earliest due lease (or the sweep interval) and is woken early when a
    /// lease is created, extended or deleted.
    pub async fn run_reaper(&self, shutdown: CancellationToken) {
        self.inner.reaper.run(self.stopped(shutdown)).await;
    }

    /// Claims every due lease (in batches) and reaps them, removing their
    /// containers concurrently up to the configured bound.
    pub async fn reap_once(&self) -> Result<ReapReport, LeaseError> {
        self.inner.reaper.reap_once().await
    }

    /// Runs the reconciler now and then every `reconcile_interval` until
    /// `shutdown` is cancelled — sooner when a pending lease that no task of
    /// this process provisions (one left by a crashed process) becomes due
    /// for a retry (`stuck_pending_after`), so a crash delays it by that,
    /// not by a whole interval.
    pub async fn run_reconciler(&self, shutdown: CancellationToken) {
        self.inner
            .reconciler
            .run(self, self.stopped(shutdown))
            .await;
    }

    /// Keeps every offering's warm pool at its size until `shutdown` is
    /// cancelled: fills now, then after every take and every
    /// `pool_check_interval`. Returns at once when no offering has a pool.
    pub async fn run_pools(&self, shutdown: CancellationToken) {
        self.run_pool_filler(self.stopped(shutdown)).await;
    }

    /// Completes when `shutdown` is cancelled or the manager shuts down.
    async fn stopped(&self, shutdown: CancellationToken) {
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = self.inner.shutdown.cancelled() => {}
        }
    }

    /// One reconciliation pass.
    pub async fn reconcile_once(&self) -> Result<ReconcileReport, LeaseError> {
        Ok(self.inner.reconciler.pass(self).await?.0)
    }

    /// What a reconciliation pass would change now, without changing
    /// anything. [`LeaseManager::reconcile_once`] applies such a plan.
    pub async fn reconcile_plan(&self) -> Result<ReconcilePlan, LeaseError> {
        self.inner.reconciler.plan(self).await
    }
}
