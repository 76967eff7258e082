//! Paging over the store's lex-ordered indexes: active leases (oldest
//! created first) and history (newest ended first).
//!
//! Index members are `<time key>:<id>`; a cursor is the last member a page
//! returned. A page reads its index in chunks of one more than the page
//! size, fetches the records of each chunk in one round trip and skips
//! members whose record is gone, so the last page carries no cursor.

use lease_core::store::Page;
use lease_core::{Lease, StoreError};

use super::RedisStore;
use crate::keys::member_id;
use crate::link::Conn;

/// Which index a page is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Index {
    /// Active leases, oldest created first; a member whose lease hash is
    /// gone finished between the two reads and is skipped.
    Active,
    /// Finished leases, newest ended first; a member whose record expired
    /// (retention) is skipped and removed from the index.
    History,
}

impl Index {
    /// The range command, where a walk starts without a cursor and where
    /// it ends.
    fn walk(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Index::Active => ("ZRANGEBYLEX", "-", "+"),
            Index::History => ("ZREVRANGEBYLEX", "+", "-"),
        }
    }

    /// What a failed read was doing, for the error.
    fn operation(self) -> &'static str {
        match self {
            Index::Active => "list leases",
            Index::History => "list history",
        }
    }
}

impl RedisStore {
    /// One page of at most `limit` leases of the sorted set `key` (an
    /// `index`), after `cursor`, keeping those for which `keep` holds.
    pub(super) async fn read_page(
        &self,
        index: Index,
        key: &str,
        cursor: Option<&str>,
        limit: usize,
        keep: impl Fn(&Lease) -> bool,
    ) -> Result<Page<Lease>, StoreError> {
        let (command, open_end, far_end) = index.walk();
        let chunk = limit + 1;
        let mut start = cursor.map_or_else(|| open_end.to_owned(), |c| format!("({c}"));
        let mut items = Vec::with_capacity(limit.min(64));
        let mut last_member = None;
        let Conn {
            generation,
            manager: mut conn,
        } = self.link.get().await?;
        loop {
            let members: Vec<String> = redis::cmd(command)
                .arg(key)
                .arg(&start)
                .arg(far_end)
                .arg("LIMIT")
                .arg(0)
                .arg(chunk)
                .query_async(&mut conn)
                .await
                .map_err(|error| self.link.fail(generation, index.operation(), error))?;
            let entries: Vec<(&String, &str)> = members
                .iter()
                .filter_map(|member| member_id(member).map(|id| (member, id)))
                .collect();
            let ids: Vec<&str> = entries.iter().map(|(_, id)| *id).collect();
            let records = self.fetch_records(&ids, index == Index::History).await?;
            let mut gone = Vec::new();
            let mut full = false;
            for ((member, id), data) in entries.into_iter().zip(records) {
                let Some(data) = data else {
                    gone.push(member);
                    continue;
                };
                let record_key = match index {
                    Index::Active => self.keys.lease(id),
                    Index::History => self.keys.history(id),
                };
                let lease = self.decode(record_key, &data, Some(id))?;
                if !keep(&lease) {
                    continue;
                }
                if items.len() == limit {
                    full = true;
                    break;
                }
                items.push(lease);
                last_member = Some(member.clone());
            }
            if index == Index::History && !gone.is_empty() {
                let _: u64 = redis::cmd("ZREM")
                    .arg(key)
                    .arg(&gone)
                    .query_async(&mut conn)
                    .await
                    .map_err(|error| self.link.fail(generation, "prune history", error))?;
            }
            if full {
                return Ok(Page {
                    items,
                    next_cursor: last_member,
                });
            }
            match members.last() {
                Some(last) if members.len() == chunk => start = format!("({last}"),
                _ => {
                    return Ok(Page {
                        items,
                        next_cursor: None,
                    });
                }
            }
        }
    }
}
