//! Finding a lease on the server from what was typed: a full id, or a
//! unique start of one (as `lease ls` shows), like the local lookup.

use lease_client::wire::LeaseJson;
use lease_core::LeaseId;

use crate::error::CliError;
use crate::lookup::{Scope, choose, id_prefix};
use crate::output::{SHORT_ID, short_id};
use crate::remote::Remote;

/// The caller's lease `text` names (an admin's: `--owner`'s, or anyone's).
pub async fn find(remote: &Remote, text: &str, scope: Scope) -> Result<LeaseJson, CliError> {
    let text = text.trim();
    let client = &remote.client;
    let owner = remote.owner.as_deref();
    if text.parse::<LeaseId>().is_ok() {
        return match client.status(text).await {
            Ok(lease) => Ok(lease),
            Err(error) if error.is_not_found() => Err(CliError::UnknownLease(text.to_owned())),
            Err(error) => Err(remote.error(error)),
        };
    }
    let prefix = id_prefix(text)?;
    let matches_prefix = |lease: &LeaseJson| short_id(&lease.id, usize::MAX).starts_with(prefix);
    let mut found: Vec<LeaseJson> = client
        .list(owner)
        .await
        .map_err(|e| remote.error(e))?
        .into_iter()
        .filter(|lease| matches_prefix(lease))
        .collect();
    if found.is_empty() && scope == Scope::WithHistory {
        found = client
            .history(owner)
            .await
            .map_err(|e| remote.error(e))?
            .into_iter()
            .filter(|lease| matches_prefix(lease))
            .collect();
    }
    choose(text, found, |lease| short_id(&lease.id, SHORT_ID + 4))
}
