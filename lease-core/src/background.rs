//! Running the engine's background loops.

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::manager::LeaseManager;

/// The reaper and reconciler loops started by [`LeaseManager::start`].
#[derive(Debug)]
pub struct BackgroundTasks {
    /// The reaper loop.
    pub reaper: JoinHandle<()>,
    /// The reconciler loop.
    pub reconciler: JoinHandle<()>,
}

impl BackgroundTasks {
    /// Waits for both loops to stop (after their token is cancelled).
    pub async fn join(self) {
        let _ = self.reaper.await;
        let _ = self.reconciler.await;
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
            tokio::spawn(async move { manager.run_reconciler(shutdown).await })
        };
        BackgroundTasks { reaper, reconciler }
    }
}
