//! Finding a lease from what was typed: a full id, or a unique start of one
//! (as `lease ls` shows: the random part, with or without `container-`).

use lease_core::id::LEASE_ID_PREFIX;
use lease_core::{HistoryQuery, Lease, LeaseError, LeaseId, LeaseManager, ListQuery};

use crate::error::CliError;
use crate::output::SHORT_ID;

/// Where to look for an id prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Active leases only.
    Active,
    /// Active and ended leases.
    WithHistory,
}

/// The lease `text` names among `owner`'s leases.
pub async fn find(
    manager: &LeaseManager,
    owner: &str,
    text: &str,
    scope: Scope,
) -> Result<Lease, CliError> {
    let text = text.trim();
    if let Ok(id) = text.parse::<LeaseId>() {
        return match manager.get(&id).await {
            Ok(lease) if lease.owner == owner => Ok(lease),
            Ok(lease) => Err(CliError::OtherOwner {
                id: id.to_string(),
                owner: lease.owner,
            }),
            Err(LeaseError::NotFound(_)) => Err(CliError::UnknownLease(text.to_owned())),
            Err(other) => Err(other.into()),
        };
    }
    let prefix = id_prefix(text)?;
    let matches_prefix =
        |lease: &Lease| lease.id.as_str()[LEASE_ID_PREFIX.len()..].starts_with(prefix);
    let mut found: Vec<Lease> = manager
        .list_all(&ListQuery::owner(owner))
        .await?
        .into_iter()
        .filter(|lease| matches_prefix(lease))
        .collect();
    if found.is_empty() && scope == Scope::WithHistory {
        found = history(manager, owner)
            .await?
            .into_iter()
            .filter(|lease| matches_prefix(lease))
            .collect();
    }
    choose(text, found, |lease| lease.id.short(SHORT_ID + 4).to_owned())
}

/// The random part `text` starts with (`container-` taken off), if it can
/// be the start of a lease id.
pub fn id_prefix(text: &str) -> Result<&str, CliError> {
    let prefix = text.strip_prefix(LEASE_ID_PREFIX).unwrap_or(text);
    let valid = !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(prefix)
    } else {
        Err(CliError::UnknownLease(text.to_owned()))
    }
}

/// The one lease among those `text` matched.
pub fn choose<T>(
    text: &str,
    mut found: Vec<T>,
    short: impl Fn(&T) -> String,
) -> Result<T, CliError> {
    match found.len() {
        0 => Err(CliError::UnknownLease(text.to_owned())),
        1 => Ok(found.remove(0)),
        _ => Err(CliError::AmbiguousLease {
            prefix: text.to_owned(),
            matches: found.iter().map(short).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// Every ended lease of `owner` still in history, newest first.
pub async fn history(manager: &LeaseManager, owner: &str) -> Result<Vec<Lease>, CliError> {
    let query = HistoryQuery {
        owner: Some(owner.to_owned()),
        ..HistoryQuery::default()
    };
    Ok(manager.history_all(&query).await?)
}
