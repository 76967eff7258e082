//! Active leases: insert, compare-and-set, listing, claims.
//!
//! Every function runs on a store thread with its connection. The writes
//! run inside the writer's `BEGIN IMMEDIATE` transaction (each in its own
//! savepoint, see [`crate::worker`]), so each is atomic across the
//! processes sharing the file.

use chrono::{DateTime, Utc};
use lease_core::store::{ListQuery, Page};
use lease_core::{Admission, Lease, LeaseId, StoreError};
use rusqlite::{Connection, ErrorCode, OptionalExtension, ToSql, params};

use crate::codec::{self, COLUMNS, PLACEHOLDERS};
use crate::error::{During, store_error};
use lease_core::cursor;

/// Inserts `lease` if `admission` lets it in (checked in the same
/// transaction, see [`crate::admission`]).
pub(crate) fn insert(
    transaction: &Connection,
    lease: &Lease,
    admission: &Admission,
) -> Result<Lease, StoreError> {
    let stored = Lease {
        revision: 1,
        ..lease.clone()
    };
    let in_history = transaction
        .prepare_cached("SELECT 1 FROM finished WHERE id = ?1")
        .and_then(|mut statement| statement.exists([stored.id.as_str()]))
        .during("insert a lease")?;
    let in_active = transaction
        .prepare_cached("SELECT 1 FROM active WHERE id = ?1")
        .and_then(|mut statement| statement.exists([stored.id.as_str()]))
        .during("insert a lease")?;
    if in_history || in_active {
        return Err(StoreError::AlreadyExists(stored.id));
    }
    crate::admission::check_insert(transaction, &stored, admission)?;
    let mut values = codec::params(&stored, 1).during("insert a lease")?;
    values.push(Box::new(codec::due_nanos(&stored)));
    let inserted = transaction
        .prepare_cached(&format!(
            "INSERT INTO active ({COLUMNS}, due_at, claimed_until, claimable_at) \
             VALUES ({PLACEHOLDERS}, ?21, NULL, ?21)"
        ))
        .and_then(|mut statement| statement.execute(rusqlite::params_from_iter(values)));
    match inserted {
        Ok(_) => {}
        Err(error) if error.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
            return Err(StoreError::AlreadyExists(stored.id));
        }
        Err(error) => return Err(store_error("insert a lease", error)),
    }
    Ok(stored)
}

/// The active lease `id`, or else a finished one that ended at or after
/// `cutoff` (nanoseconds): one statement, so one snapshot.
pub(crate) fn get(connection: &Connection, id: &LeaseId, cutoff: i64) -> Result<Lease, StoreError> {
    connection
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM active WHERE id = ?1 \
             UNION ALL SELECT {COLUMNS} FROM finished WHERE id = ?1 AND ended_key >= ?2 \
             LIMIT 1"
        ))
        .and_then(|mut statement| {
            statement
                .query_row(params![id.as_str(), cutoff], codec::from_row)
                .optional()
        })
        .during("get a lease")?
        .ok_or_else(|| StoreError::NotFound(id.clone()))
}

/// Inside a write transaction: the active lease `lease.id` has revision
/// `lease.revision`, else `NotFound` / `Conflict`.
pub(crate) fn check_revision(
    transaction: &Connection,
    lease: &Lease,
    operation: &'static str,
) -> Result<(), StoreError> {
    let stored: Option<i64> = transaction
        .prepare_cached("SELECT revision FROM active WHERE id = ?1")
        .and_then(|mut statement| {
            statement
                .query_row([lease.id.as_str()], |row| row.get(0))
                .optional()
        })
        .during(operation)?;
    match stored {
        None => Err(StoreError::NotFound(lease.id.clone())),
        Some(revision) if u64::try_from(revision).ok() == Some(lease.revision) => Ok(()),
        Some(_) => Err(StoreError::Conflict {
            id: lease.id.clone(),
            expected: lease.revision,
        }),
    }
}

/// What [`update`] reads of the stored lease before writing.
struct Stored {
    seq: i64,
    revision: i64,
    owner: String,
    created_at: i64,
    due_at: i64,
}

/// Compare-and-set of the active lease, refused if it raises the charge
/// over the daily spend `admission` allows.
pub(crate) fn update(
    transaction: &Connection,
    lease: &Lease,
    admission: &Admission,
) -> Result<Lease, StoreError> {
    const OPERATION: &str = "update a lease";
    let stored = Lease {
        revision: lease.revision.saturating_add(1),
        ..lease.clone()
    };
    let current = transaction
        .prepare_cached("SELECT seq, revision, owner, created_at, due_at FROM active WHERE id = ?1")
        .and_then(|mut statement| {
            statement
                .query_row([lease.id.as_str()], |row| {
                    Ok(Stored {
                        seq: row.get(0)?,
                        revision: row.get(1)?,
                        owner: row.get(2)?,
                        created_at: row.get(3)?,
                        due_at: row.get(4)?,
                    })
                })
                .optional()
        })
        .during(OPERATION)?
        .ok_or_else(|| StoreError::NotFound(lease.id.clone()))?;
    if u64::try_from(current.revision).ok() != Some(lease.revision) {
        return Err(StoreError::Conflict {
            id: lease.id.clone(),
            expected: lease.revision,
        });
    }
    crate::admission::check_update(transaction, lease, admission)?;
    let due = codec::due_nanos(&stored);
    // Indexed columns are written only when they change, so the usual
    // update (status, container, error) writes the row's page alone.
    let mut sql = String::from(
        "UPDATE active SET offering = ?3, container_id = ?4, status = ?5, \
         expires_at = ?7, ended_at = ?8, end_reason = ?9, hourly_rate = ?10, \
         estimated_cost = ?11, final_cost = ?12, error = ?13, provision_attempts = ?14, \
         removal_failures = ?15, revision = ?16, nano_cpus = ?17, memory_mb = ?18, \
         running_at = ?19, finished_at = ?20",
    );
    if current.owner != stored.owner
        || codec::nanos(stored.created_at).ok() != Some(current.created_at)
    {
        sql.push_str(", owner = ?2, created_at = ?6");
    }
    if current.due_at != due {
        // The claim stays: the lease is claimable at max(new due time, claim end).
        sql.push_str(", due_at = ?21, claimable_at = MAX(?21, COALESCE(claimed_until, ?21))");
    }
    sql.push_str(" WHERE seq = ?22");
    let mut values = codec::params(&stored, stored.revision).during(OPERATION)?;
    values.push(Box::new(due));
    values.push(Box::new(current.seq));
    transaction
        .prepare_cached(&sql)
        .and_then(|mut statement| statement.execute(rusqlite::params_from_iter(values)))
        .during(OPERATION)?;
    Ok(stored)
}

/// `status IN (…)` for the query's statuses (names of our own enum, so
/// safe to write into the SQL text).
fn status_filter(query: &ListQuery) -> String {
    if query.statuses.is_empty() {
        return String::new();
    }
    let names: Vec<String> = query
        .statuses
        .iter()
        .map(|status| format!("'{}'", status.as_str()))
        .collect();
    format!(" AND status IN ({})", names.join(", "))
}

pub(crate) fn list(connection: &Connection, query: &ListQuery) -> Result<Page<Lease>, StoreError> {
    let after = query.cursor.as_deref().map(cursor::decode).transpose()?;
    let limit = query.effective_limit();
    let mut sql = format!("SELECT {COLUMNS} FROM active WHERE 1");
    let mut values: Vec<Box<dyn ToSql>> = Vec::new();
    if let Some(owner) = &query.owner {
        values.push(Box::new(owner.clone()));
        sql.push_str(&format!(" AND owner = ?{}", values.len()));
    }
    if let Some((at, id)) = after {
        values.push(Box::new(at));
        values.push(Box::new(id.as_str().to_owned()));
        sql.push_str(&format!(
            " AND (created_at, id) > (?{}, ?{})",
            values.len() - 1,
            values.len()
        ));
    }
    sql.push_str(&status_filter(query));
    // One more than a page, to know whether another page follows.
    values.push(Box::new(i64::try_from(limit + 1).unwrap_or(i64::MAX)));
    sql.push_str(&format!(" ORDER BY created_at, id LIMIT ?{}", values.len()));
    let items = select(connection, &sql, values, "list leases")?;
    Ok(page(items, limit, |lease| {
        cursor::encode(codec::saturating_nanos(lease.created_at), &lease.id)
    }))
}

/// The leases a `SELECT {COLUMNS} …` with these parameters returns; a
/// failure is reported as `operation`.
pub(crate) fn select(
    connection: &Connection,
    sql: &str,
    values: Vec<Box<dyn ToSql>>,
    operation: &'static str,
) -> Result<Vec<Lease>, StoreError> {
    connection
        .prepare_cached(sql)
        .and_then(|mut statement| {
            statement
                .query_map(rusqlite::params_from_iter(values), codec::from_row)?
                .collect::<rusqlite::Result<Vec<Lease>>>()
        })
        .during(operation)
}

/// The first `limit` of `items` (which may hold one more), with a cursor
/// made by `key` from the last item when more follow.
pub(crate) fn page(
    mut items: Vec<Lease>,
    limit: usize,
    key: impl Fn(&Lease) -> String,
) -> Page<Lease> {
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = if more { items.last().map(key) } else { None };
    Page { items, next_cursor }
}

pub(crate) fn claim(
    transaction: &Connection,
    now: i64,
    limit: usize,
    claimed_until: i64,
) -> Result<Vec<Lease>, StoreError> {
    const OPERATION: &str = "claim due leases";
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut claimed = transaction
        .prepare_cached(&format!(
            "UPDATE active SET claimed_until = ?2, claimable_at = MAX(due_at, ?2) \
             WHERE seq IN (SELECT seq FROM active WHERE claimable_at <= ?1 \
                           ORDER BY claimable_at LIMIT ?3) \
             RETURNING {COLUMNS}"
        ))
        .and_then(|mut statement| {
            statement
                .query_map(
                    params![now, claimed_until, i64::try_from(limit).unwrap_or(i64::MAX)],
                    codec::from_row,
                )?
                .collect::<rusqlite::Result<Vec<Lease>>>()
        })
        .during(OPERATION)?;
    claimed.sort_by(|a, b| (a.due_at(), &a.id).cmp(&(b.due_at(), &b.id)));
    Ok(claimed)
}

pub(crate) fn release(
    transaction: &Connection,
    id: &LeaseId,
    retry_at: i64,
) -> Result<(), StoreError> {
    const OPERATION: &str = "release a claim";
    let changed = transaction
        .prepare_cached(
            "UPDATE active SET claimed_until = ?2, claimable_at = MAX(due_at, ?2) WHERE id = ?1",
        )
        .and_then(|mut statement| statement.execute(params![id.as_str(), retry_at]))
        .during(OPERATION)?;
    if changed == 0 {
        return Err(StoreError::NotFound(id.clone()));
    }
    Ok(())
}

pub(crate) fn next_due(connection: &Connection) -> Result<Option<DateTime<Utc>>, StoreError> {
    let earliest: Option<i64> = connection
        .prepare_cached("SELECT min(claimable_at) FROM active")
        .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
        .during("find the next due lease")?;
    Ok(earliest.map(codec::time))
}
