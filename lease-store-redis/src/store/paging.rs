//! Paging over the store's lex-ordered indexes: active leases (oldest
//! created first, ties by id ascending) and history (newest ended first,
//! ties by id descending).
//!
//! Index members are `<time key>:<id>`; a cursor is the last member a page
//! returned. A page reads its index in chunks of one more than the page
//! size with `page.lua`, which returns each member with its record in one
//! step, and skips members whose record is gone, so the last page carries no
//! cursor.

use lease_core::store::Page;
use lease_core::{Lease, StoreError};

use super::RedisStore;
use crate::keys::member_id;
use crate::record::decode;

/// Which index a page is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Index {
    /// Active leases, oldest created first, from their lease hashes.
    Active,
    /// Finished leases, newest ended first, from their history records.
    /// Entries that ended before the server's now − retention, and members
    /// whose record expired, are pruned from the index as it is read.
    History,
}

impl Index {
    /// What a failed read was doing, for the error.
    fn operation(self) -> &'static str {
        match self {
            Index::Active => "list leases",
            Index::History => "list history",
        }
    }
}

impl RedisStore {
    /// One page of at most `limit` leases of `index` (all owners' or
    /// `owner`'s), after `cursor`, keeping those for which `keep` holds.
    pub(super) async fn read_page(
        &self,
        index: Index,
        owner: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
        keep: impl Fn(&Lease) -> bool,
    ) -> Result<Page<Lease>, StoreError> {
        let k = &self.keys;
        // The index; where its records live (`records` + id) and in which
        // hash field; the direction and where a walk starts; how long
        // history is kept.
        let (key, records, field, order, open_end, retention_ms) = match index {
            Index::Active => {
                let key = owner.map_or_else(|| k.active(), |owner| k.owner(owner));
                (key, k.lease(""), "data", "asc", "-", 0)
            }
            Index::History => {
                let key = owner.map_or_else(|| k.ended(), |owner| k.ended_by(owner));
                (key, k.history(""), "", "desc", "+", self.retention_ms)
            }
        };
        let chunk = limit + 1;
        let mut start = cursor.map_or_else(|| open_end.to_owned(), |c| format!("({c}"));
        let mut items = Vec::with_capacity(limit.min(64));
        let mut last_member = None;
        loop {
            let args = (order, &start, chunk, &records, field, retention_ms);
            let entries: Vec<(String, Option<Vec<u8>>)> = self
                .link
                .run_script(index.operation(), &self.scripts.page, &key, args)
                .await?;
            let full_chunk = entries.len() == chunk;
            let next_start = entries.last().map(|(member, _)| format!("({member}"));
            for (member, data) in entries {
                let (Some(data), Some(id)) = (data, member_id(&member)) else {
                    continue;
                };
                let lease = decode(format!("{records}{id}"), &data, id)?;
                if !keep(&lease) {
                    continue;
                }
                if items.len() == limit {
                    return Ok(Page {
                        items,
                        next_cursor: last_member,
                    });
                }
                items.push(lease);
                last_member = Some(member);
            }
            match next_start {
                Some(next) if full_chunk => start = next,
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
