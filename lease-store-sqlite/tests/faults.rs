//! Storage faults on a small tmpfs of our own: a full disk fails writes
//! with `Unavailable`, leaves nothing half-written and recovers once space
//! is back; a read-only file system is a clear error at open.
//!
//! Mounting needs root (CAP_SYS_ADMIN). Without it the tests print why and
//! pass; under `CI=true` they fail instead.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{Duration, Utc};
use lease_core::testing::conformance::{finished, sample_lease};
use lease_core::{Admission, LeaseStore, Money, StoreError};
use lease_store_sqlite::{OpenError, SqliteStore, SqliteStoreConfig};

/// A tmpfs mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// A tmpfs of `size` (`mount -o size=…`), or `None` (with the reason
    /// printed) where mounting is not allowed.
    fn mount(options: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .output();
        match output {
            Ok(output) if output.status.success() => Some(Tmpfs { dir }),
            other => {
                let reason = format!("cannot mount a tmpfs ({other:?}); needs root");
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true: {reason}"
                );
                eprintln!("skipping: {reason}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.path())
            .status()
            .expect("mount runs");
        assert!(status.success(), "remount {options}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Fills the file system at `dir` with `filler` until it is full.
fn fill(filler: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(filler).expect("filler");
    let block = vec![0x5a_u8; 16 * 1024];
    while file.write_all(&block).is_ok() {}
    let _ = file.write_all(&block[..512]);
    let _ = file.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_cleanly_and_recovers() {
    let Some(tmpfs) = Tmpfs::mount("size=4m") else {
        return;
    };
    let path = tmpfs.path().join("leases.db");
    let store = SqliteStore::open(SqliteStoreConfig::new(&path))
        .await
        .expect("open on the tmpfs");
    let mut kept = Vec::new();
    for _ in 0..20 {
        let lease = store
            .insert(
                &sample_lease("disk", Duration::hours(1)),
                &Admission::default(),
            )
            .await
            .expect("insert");
        kept.push(lease);
    }
    let filler: PathBuf = tmpfs.path().join("filler");
    fill(&filler);

    // Write until the disk refuses: every refusal is Unavailable, and
    // the refused lease is not there afterwards.
    let mut refused = None;
    for _ in 0..10_000 {
        let lease = sample_lease("disk", Duration::hours(1));
        match store.insert(&lease, &Admission::default()).await {
            Ok(stored) => kept.push(stored),
            Err(StoreError::Unavailable(source)) => {
                let chain = lease_core::error::error_chain(&StoreError::Unavailable(source));
                assert!(chain.contains("full"), "{chain}");
                refused = Some(lease);
                break;
            }
            Err(other) => panic!("a full disk must be Unavailable, got {other:?}"),
        }
    }
    let refused = refused.expect("the disk filled up");
    // A finish (history + usage) on a full disk fails whole.
    let done = finished(&kept[0], Utc::now(), Money::from_nanos(9));
    match store.finish(&done).await {
        Err(StoreError::Unavailable(_)) => {
            assert_eq!(store.usage("disk").await.expect("usage").ended_count, 0);
            assert_eq!(store.get(&kept[0].id).await.expect("still active"), kept[0]);
        }
        Ok(_) => {} // a checkpoint may have freed a page for it
        Err(other) => panic!("{other:?}"),
    }
    assert!(matches!(
        store.get(&refused.id).await,
        Err(StoreError::NotFound(_))
    ));

    // Space is back: the same store works again, nothing was lost.
    std::fs::remove_file(&filler).expect("free the space");
    store
        .insert(&refused, &Admission::default())
        .await
        .expect("insert after recovery");
    for lease in &kept {
        assert_eq!(&store.get(&lease.id).await.expect("kept").id, &lease.id);
    }
    drop(store);
    let store = SqliteStore::open(SqliteStoreConfig::new(&path))
        .await
        .expect("reopen passes the integrity check");
    assert_eq!(store.get(&refused.id).await.expect("kept").id, refused.id);
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_file_system_is_a_clear_error_at_open() {
    let Some(tmpfs) = Tmpfs::mount("size=4m") else {
        return;
    };
    let path = tmpfs.path().join("state/leases.db");
    let lease = {
        let store = SqliteStore::open(SqliteStoreConfig::new(&path))
            .await
            .expect("open");
        store
            .insert(
                &sample_lease("ro", Duration::hours(1)),
                &Admission::default(),
            )
            .await
            .expect("insert")
    };
    tmpfs.remount("ro");
    let error = SqliteStore::open(SqliteStoreConfig::new(&path))
        .await
        .expect_err("a read-only file system");
    let message = lease_core::error::error_chain(&error);
    println!("read-only file system: {message}");
    assert!(
        matches!(error, OpenError::Open { .. } | OpenError::Setup { .. }),
        "{error:?}"
    );
    assert!(message.contains(&path.display().to_string()), "{message}");
    let fresh = SqliteStore::open(SqliteStoreConfig::new(tmpfs.path().join("new/leases.db")))
        .await
        .expect_err("no directory can be made");
    assert!(
        matches!(fresh, OpenError::CreateDirectory { .. }),
        "{fresh:?}"
    );

    tmpfs.remount("rw");
    let store = SqliteStore::open(SqliteStoreConfig::new(&path))
        .await
        .expect("writable again");
    assert_eq!(store.get(&lease.id).await.expect("kept"), lease);
}
