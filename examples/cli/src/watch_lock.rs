//! The lock that makes one background reaper per SQLite file and namespace:
//! an exclusive advisory lock on `<db>.reaper-<namespace>.lock`, held by the
//! watcher for as long as it watches, released by the OS when it exits
//! (however it exits). The file itself stays: removing it while another
//! process opens it would let two watchers lock two different files.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::CliError;

/// The lock file of the watcher of database `db` (an absolute, canonical
/// path, so every spelling of the same file finds the same lock) and
/// `namespace` (validated: letters, digits and `-` only).
pub fn lock_path(db: &Path, namespace: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(format!(".reaper-{namespace}.lock"));
    PathBuf::from(name)
}

/// A held watcher lock; dropping it releases the lock.
#[derive(Debug)]
pub struct WatchLock {
    file: File,
}

impl WatchLock {
    /// Takes the lock at `path` if nobody holds it (`None` if somebody
    /// does), and writes this process's id into the file for people and
    /// tests who want to find the watcher.
    pub fn try_acquire(path: &Path) -> Result<Option<WatchLock>, CliError> {
        let Some(mut file) = try_lock(path)? else {
            return Ok(None);
        };
        // The pid is a hint only; failing to write it does not matter.
        let written = file
            .set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        if let Err(error) = written {
            tracing::debug!(path = %path.display(), %error, "cannot write the watcher's pid");
        }
        Ok(Some(WatchLock { file }))
    }

    /// Whether some process holds the lock at `path` now.
    pub fn is_held(path: &Path) -> Result<bool, CliError> {
        // Taken and at once released (the file is closed on return).
        Ok(try_lock(path)?.is_none())
    }
}

impl Drop for WatchLock {
    fn drop(&mut self) {
        // Closing the file releases the lock as well; unlocking first makes
        // the moment explicit.
        if let Err(error) = self.file.unlock() {
            tracing::debug!(%error, "cannot unlock the watcher lock");
        }
    }
}

/// Opens (creating it if needed, never truncating) and tries to lock `path`.
fn try_lock(path: &Path) -> Result<Option<File>, CliError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| CliError::io(format!("cannot open {}", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => {
            Err(CliError::io(format!("cannot lock {}", path.display()), e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_lock_after_the_database_and_namespace() {
        assert_eq!(
            lock_path(Path::new("/state/leases.db"), "dev-1"),
            PathBuf::from("/state/leases.db.reaper-dev-1.lock")
        );
    }

    #[test]
    fn one_holder_at_a_time() {
        let dir = std::env::temp_dir().join(format!(
            "lease-cli-watch-lock-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = lock_path(&dir.join("leases.db"), "default");
        assert!(!WatchLock::is_held(&path).expect("probe"));
        let held = WatchLock::try_acquire(&path)
            .expect("lock")
            .expect("free at first");
        assert!(WatchLock::is_held(&path).expect("probe"));
        assert!(WatchLock::try_acquire(&path).expect("lock").is_none());
        let pid = std::fs::read_to_string(&path).expect("pid");
        assert_eq!(pid.trim(), std::process::id().to_string());
        drop(held);
        assert!(!WatchLock::is_held(&path).expect("probe"));
        assert!(WatchLock::try_acquire(&path).expect("lock").is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
