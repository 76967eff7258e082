//! `lease ls`, `status`, `extend`, `rm` and `usage`: reading and changing
//! leases in the shared store.

use std::collections::BTreeSet;
use std::process::ExitCode;

use lease_core::error::error_chain;
use lease_core::{HistoryQuery, Lease, LeaseManager, ListQuery, Status};

use crate::cli::{ExtendArgs, IdArgs, LsArgs, Output, RmArgs, UsageArgs};
use crate::commands::shapes::{UsageRow, print_usage};
use crate::context::{Context, Docker};
use crate::duration::{compact, minutes_text};
use crate::error::CliError;
use crate::lookup::{Scope, find, history};
use crate::output::{
    dollars, lease_json, lease_table, local_time, note, print, print_json, print_lease_fields,
};
use crate::removal::remove_now;

/// `lease ls`.
pub async fn ls(context: &Context, args: LsArgs) -> Result<ExitCode, CliError> {
    context.require_shared_store("ls")?;
    let manager = context.manager(Docker::NotNeeded).await?;
    let mut leases = manager.list_all(&ListQuery::owner(&context.owner)).await?;
    if args.all {
        leases.extend(history(&manager, &context.owner).await?);
    }
    // One shape for both forms (and for remote mode, which gets it from the server).
    let json: Vec<_> = leases.iter().map(|l| lease_json(&manager, l)).collect();
    match context.output() {
        Output::Json => print_json(&json)?,
        Output::Table => lease_table(&json).print()?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `lease status`.
pub async fn status(context: &Context, args: IdArgs) -> Result<ExitCode, CliError> {
    context.require_shared_store("status")?;
    let manager = context.manager(Docker::NotNeeded).await?;
    let lease = find(&manager, &context.owner, &args.id, Scope::WithHistory).await?;
    match context.output() {
        Output::Json => print_json(&lease_json(&manager, &lease))?,
        Output::Table => print_lease_fields(&lease_json(&manager, &lease))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `lease extend`.
pub async fn extend(context: &Context, args: ExtendArgs) -> Result<ExitCode, CliError> {
    context.require_shared_store("extend")?;
    let manager = context.manager(Docker::NotNeeded).await?;
    let lease = find(&manager, &context.owner, &args.id, Scope::Active).await?;
    let extended = manager.extend(&lease.id, args.minutes).await?;
    match context.output() {
        Output::Json => print_json(&lease_json(&manager, &extended))?,
        Output::Table => {
            let now = manager.clock().now();
            print(&format!(
                "{} extended by {}: expires {} (in {}), cost {}",
                extended.id,
                minutes_text(args.minutes),
                local_time(extended.expires_at),
                compact(extended.expires_in(now)),
                dollars(extended.estimated_cost)
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `lease rm`: ends each lease and waits until its container is removed.
pub async fn rm(context: &Context, args: RmArgs) -> Result<ExitCode, CliError> {
    context.require_shared_store("rm")?;
    let manager = context.manager(Docker::Needed).await?;
    let mut removed = Vec::new();
    let mut failed = 0usize;
    for text in &args.ids {
        match remove_one(context, &manager, text).await {
            Ok(lease) => {
                if context.output() == Output::Table {
                    print(&format!(
                        "{} removed (cost {})",
                        lease.id,
                        dollars(lease.final_cost.unwrap_or_default())
                    ))?;
                }
                removed.push(lease);
            }
            Err(CliError::BrokenPipe) => return Err(CliError::BrokenPipe),
            Err(error) => {
                failed += 1;
                note(&format!("lease: {text}: {}", error_chain(&error)));
            }
        }
    }
    if context.output() == Output::Json {
        let json: Vec<_> = removed.iter().map(|l| lease_json(&manager, l)).collect();
        print_json(&json)?;
    }
    manager.shutdown(std::time::Duration::from_secs(5)).await;
    if failed > 0 {
        return Err(CliError::Partial(format!(
            "{failed} of {} leases could not be removed",
            args.ids.len()
        )));
    }
    Ok(ExitCode::SUCCESS)
}

async fn remove_one(
    context: &Context,
    manager: &LeaseManager,
    text: &str,
) -> Result<Lease, CliError> {
    let lease = find(manager, &context.owner, text, Scope::WithHistory).await?;
    if lease.status == Status::Deleted {
        return Ok(lease);
    }
    remove_now(manager, &lease.id).await
}

/// `lease usage`: one row per owner; JSON is always an array.
pub async fn usage(context: &Context, args: UsageArgs) -> Result<ExitCode, CliError> {
    context.require_shared_store("usage")?;
    let manager = context.manager(Docker::NotNeeded).await?;
    let owners = if args.all {
        all_owners(&manager).await?
    } else {
        vec![context.owner.clone()]
    };
    let mut rows = Vec::with_capacity(owners.len());
    for owner in owners {
        let usage = manager.usage(&owner).await?;
        rows.push(UsageRow { owner, usage });
    }
    print_usage(context.output(), &rows)?;
    Ok(ExitCode::SUCCESS)
}

/// Every owner with an active lease or one still in history, sorted.
async fn all_owners(manager: &LeaseManager) -> Result<Vec<String>, CliError> {
    let mut owners: BTreeSet<String> = manager
        .list_all(&ListQuery::default())
        .await?
        .into_iter()
        .map(|lease| lease.owner)
        .collect();
    let history = manager.history_all(&HistoryQuery::default()).await?;
    owners.extend(history.into_iter().map(|lease| lease.owner));
    Ok(owners.into_iter().collect())
}
