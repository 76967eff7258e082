//! Several stores and several processes on one file: claims and
//! compare-and-set hold across them, and a process killed with SIGKILL in
//! the middle of writing loses nothing it acknowledged.
//!
//! The child processes are this test binary run again on one `#[ignore]`d
//! test, `child`, told its role by environment variables.

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use lease_core::testing::conformance::{finished, sample_lease};
use lease_core::{Admission, HistoryQuery, LeaseId, LeaseStore, Money, Status, StoreError};
use lease_store_sqlite::{SqliteStore, SqliteStoreConfig, Synchronous};

const ROLE: &str = "LEASE_SQLITE_TEST_ROLE";
const DATABASE: &str = "LEASE_SQLITE_TEST_DB";
const SYNCHRONOUS: &str = "LEASE_SQLITE_TEST_SYNCHRONOUS";
const LONG_CLAIM: StdDuration = StdDuration::from_secs(3600);

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(SqliteStoreConfig::new(path))
        .await
        .expect("open the shared database")
}

/// Inserts `count` leases of `owner` that are due.
async fn insert_due(store: &SqliteStore, owner: &str, count: i64) -> HashSet<LeaseId> {
    let mut ids = HashSet::new();
    for n in 0..count {
        let lease = sample_lease(owner, Duration::minutes(-1) - Duration::milliseconds(n));
        ids.insert(
            store
                .insert(&lease, &Admission::default())
                .await
                .expect("insert")
                .id,
        );
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_claim_each_lease_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("leases.db");
    let stores = [Arc::new(open(&path).await), Arc::new(open(&path).await)];
    let inserted = insert_due(&stores[0], "shared", 1000).await;

    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = Arc::clone(&stores[n % 2]);
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .claim_expired(Utc::now(), 25, LONG_CLAIM)
                    .await
                    .expect("claim");
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|lease| lease.id));
            }
        }));
    }
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.expect("claimer"));
    }
    let unique: HashSet<_> = claimed.iter().cloned().collect();
    assert_eq!(claimed.len(), 1000, "{} distinct", unique.len());
    assert_eq!(unique, inserted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_let_one_racing_update_win() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("leases.db");
    let stores = [Arc::new(open(&path).await), Arc::new(open(&path).await)];
    for _round in 0..10 {
        let lease = stores[0]
            .insert(
                &sample_lease("race", Duration::hours(1)),
                &Admission::default(),
            )
            .await
            .expect("insert");
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let mut tasks = Vec::new();
        for n in 0..8u32 {
            let store = Arc::clone(&stores[n as usize % 2]);
            let barrier = Arc::clone(&barrier);
            let mut mine = lease.clone();
            mine.provision_attempts = n + 1;
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                store.update(&mine, &Admission::default()).await
            }));
        }
        let mut winners = 0;
        for task in tasks {
            match task.await.expect("updater") {
                Ok(_) => winners += 1,
                Err(StoreError::Conflict { .. }) => {}
                Err(other) => panic!("expected Ok or Conflict: {other:?}"),
            }
        }
        assert_eq!(winners, 1, "exactly one racing update wins across stores");
    }
}

/// The file whose appearance starts the claimers.
fn go_file(database: &Path) -> std::path::PathBuf {
    database.with_extension("go")
}

/// Runs this test binary as a child in `role` on `path`.
fn spawn_child(role: &str, path: &Path, synchronous: &str) -> std::process::Child {
    Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--exact",
            "child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .env(DATABASE, path)
        .env(SYNCHRONOUS, synchronous)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start a child process")
}

/// The lines a child printed that start with `tag`, as lease ids.
fn tagged(lines: &[String], tag: &str) -> Vec<LeaseId> {
    // The test harness may print its `test child ... ` on the same line.
    lines
        .iter()
        .filter_map(|line| line.find(tag).map(|at| &line[at + tag.len()..]))
        .map(|id| id.trim().parse().expect("a lease id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_claim_each_lease_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("leases.db");
    let inserted = insert_due(&open(&path).await, "processes", 600).await;

    let children = [
        spawn_child("claimer", &path, "full"),
        spawn_child("claimer", &path, "full"),
    ];
    // Both open the file, then start claiming together.
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    std::fs::write(go_file(&path), b"go").expect("start the claimers");
    let mut claimed = Vec::new();
    for child in children {
        let output = child.wait_with_output().expect("child output");
        assert!(output.status.success(), "claimer failed: {output:?}");
        let lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        let mine = tagged(&lines, "claimed ");
        println!("a claimer process claimed {} leases", mine.len());
        claimed.extend(mine);
    }
    let unique: BTreeSet<_> = claimed.iter().cloned().collect();
    assert_eq!(claimed.len(), 600, "{} distinct", unique.len());
    assert_eq!(unique, inserted.into_iter().collect());
}

/// Kills a writing child (eight tasks writing at once) with SIGKILL after
/// 300 acknowledged finishes, then checks that everything acknowledged is there and that history and
/// usage agree (each finish whole or absent).
async fn kill_nine_loses_nothing_acknowledged(synchronous: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("leases.db");
    drop(open(&path).await); // created before the child races to it
    let mut writer = spawn_child("writer", &path, synchronous);
    let stdout = writer.stdout.take().expect("piped");
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("a line");
        lines.push(line);
        if tagged(&lines, "finished ").len() >= 300 {
            break;
        }
    }
    writer.kill().expect("SIGKILL");
    writer.wait().expect("reaped");

    let inserted = tagged(&lines, "inserted ");
    let finished_ids = tagged(&lines, "finished ");
    assert!(inserted.len() > 300, "the child wrote: {}", lines.len());
    let store = open(&path).await; // passes the integrity check
    for id in &inserted {
        store
            .get(id)
            .await
            .expect("an acknowledged insert survives SIGKILL");
    }
    for id in &finished_ids {
        let lease = store
            .get(id)
            .await
            .expect("an acknowledged finish survives");
        assert_eq!(lease.status, Status::Deleted, "{id}");
    }
    let mut in_history = 0u64;
    let mut query = HistoryQuery {
        owner: Some("crash".into()),
        ..HistoryQuery::default()
    };
    loop {
        let page = store.history(&query).await.expect("history");
        in_history += page.items.len() as u64;
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    let usage = store.usage("crash").await.expect("usage");
    assert!(in_history >= finished_ids.len() as u64);
    assert_eq!(
        usage.ended_count, in_history,
        "usage and history change in one transaction"
    );
    assert_eq!(usage.ended_cost, Money::from_nanos(3 * in_history as i64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_mid_write_loses_nothing_acknowledged_synchronous_full() {
    kill_nine_loses_nothing_acknowledged("full").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_mid_write_loses_nothing_acknowledged_synchronous_normal() {
    kill_nine_loses_nothing_acknowledged("normal").await;
}

/// The child processes' side: does nothing unless started by a test above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of the tests above, started with --ignored"]
async fn child() {
    let (Ok(role), Some(path)) = (std::env::var(ROLE), std::env::var_os(DATABASE)) else {
        return;
    };
    let synchronous = match std::env::var(SYNCHRONOUS).as_deref() {
        Ok("normal") => Synchronous::Normal,
        _ => Synchronous::Full,
    };
    let store = SqliteStore::open(SqliteStoreConfig::new(&path).synchronous(synchronous))
        .await
        .expect("child opens the database");
    match role.as_str() {
        "claimer" => loop {
            while !go_file(Path::new(&path)).exists() {
                tokio::time::sleep(StdDuration::from_millis(5)).await;
            }
            let batch = store
                .claim_expired(Utc::now(), 10, LONG_CLAIM)
                .await
                .expect("claim");
            if batch.is_empty() {
                return;
            }
            for lease in batch {
                println!("claimed {}", lease.id);
            }
        },
        "writer" => {
            // Eight tasks at once, so that the writer commits them in
            // batches: a batch is acknowledged only once it is on disk.
            let store = Arc::new(store);
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let store = Arc::clone(&store);
                tasks.push(tokio::spawn(async move {
                    let mut previous = None;
                    // Far more than the test waits for: it kills us first.
                    for _ in 0..1_000_000 {
                        let lease = store
                            .insert(
                                &sample_lease("crash", Duration::hours(1)),
                                &Admission::default(),
                            )
                            .await
                            .expect("insert");
                        println!("inserted {}", lease.id);
                        if let Some(earlier) = previous.replace(lease) {
                            let done = finished(&earlier, Utc::now(), Money::from_nanos(3));
                            store.finish(&done).await.expect("finish");
                            println!("finished {}", earlier.id);
                        }
                    }
                }));
            }
            for task in tasks {
                task.await.expect("writer task");
            }
        }
        other => panic!("unknown role {other}"),
    }
}
