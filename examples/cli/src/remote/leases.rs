//! `up`, `ls`, `status`, `extend`, `rm`, `usage` and `prices` through a
//! lease-server.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lease_client::ClientError;
use lease_client::wire::{LeaseJson, PullProgressJson, UsageJson};
use lease_core::error::error_chain;
use lease_core::runtime::PullProgress;
use lease_core::{Status, Usage, pricing};
use tokio_util::sync::CancellationToken;

use crate::cli::{ExtendArgs, IdArgs, LsArgs, Output, PricesArgs, RmArgs, UpArgs, UsageArgs};
use crate::commands::interrupt_token;
use crate::commands::shapes::{PriceJson, UsageRow, print_prices, print_usage};
use crate::duration::{compact, minutes_text};
use crate::error::CliError;
use crate::lookup::Scope;
use crate::output::{
    SHORT_ID, dollars, lease_table, local_time_text, note, print, print_json, print_lease_fields,
    short_id,
};
use crate::provisioning::{progress_text, spinner};
use crate::remote::Remote;
use crate::remote::lookup::find;
use crate::removal::REMOVAL_WAIT;

/// How often a lease is read while waiting for it.
const POLL: Duration = Duration::from_millis(250);

/// `lease up` through the server: it provisions; this waits (unless `--detach`).
pub async fn up(remote: &Remote, args: UpArgs) -> Result<ExitCode, CliError> {
    let lease = provision(remote, &args.offering, args.minutes).await?;
    if args.detach {
        report_detached(remote, &lease)?;
        return Ok(ExitCode::SUCCESS);
    }
    let cancel = interrupt_token();
    let running = match wait_until_running(remote, lease.clone(), &cancel).await {
        Ok(running) => running,
        Err(error) => {
            // Nothing left behind: the server removes what was started.
            if let Err(cleanup) = remote.client.delete(&lease.id).await {
                note(&format!("lease: {}", error_chain(&cleanup)));
            }
            return Err(error);
        }
    };
    match remote.output {
        Output::Json => print_json(&running)?,
        Output::Table => {
            print(&running.id)?;
            note(&format!(
                "{} is running: {} booked until {} (in {})",
                running.image_type,
                dollars(running.cost),
                local_time_text(&running.expiry_at),
                compact(running.expires_in)
            ));
            note(&format!(
                "  lease shell {short}    lease extend {short} 30m    lease rm {short}",
                short = short_id(&running.id, SHORT_ID)
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report_detached(remote: &Remote, lease: &LeaseJson) -> Result<(), CliError> {
    match remote.output {
        Output::Json => print_json(lease),
        Output::Table => {
            print(&lease.id)?;
            note(&format!(
                "{} is {}: {} booked until {}; it comes up in the background (`lease status {}`)",
                lease.image_type,
                lease.status,
                dollars(lease.cost),
                local_time_text(&lease.expiry_at),
                short_id(&lease.id, SHORT_ID)
            ));
            Ok(())
        }
    }
}

/// Asks the server for a lease; an unknown offering is reported as the
/// local command does, with the server's catalog.
pub async fn provision(
    remote: &Remote,
    offering: &str,
    minutes: Option<u32>,
) -> Result<LeaseJson, CliError> {
    match remote.client.provision(offering, minutes).await {
        Ok(lease) => Ok(lease),
        Err(ClientError::Api {
            status: 422,
            field: Some(field),
            message,
            ..
        }) if field == "imageType" => match remote.client.catalog().await {
            Ok(catalog) => Err(CliError::UnknownOffering {
                offering: offering.to_owned(),
                known: catalog
                    .offerings
                    .iter()
                    .map(|o| o.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
            Err(_) => Err(CliError::Usage(message)),
        },
        Err(error) => Err(remote.error(error)),
    }
}

fn pull_progress(json: Option<PullProgressJson>) -> Option<PullProgress> {
    json.map(|p| PullProgress {
        layers_total: p.layers_total,
        layers_done: p.layers_done,
        bytes_done: p.bytes_done,
        bytes_total: p.bytes_total,
        status: p.status,
    })
}

/// Polls the lease until it runs, showing pull progress on stderr. A lease
/// that fails or ends first is an error; so is `cancel`.
pub async fn wait_until_running(
    remote: &Remote,
    lease: LeaseJson,
    cancel: &CancellationToken,
) -> Result<LeaseJson, CliError> {
    let bar = spinner(&lease.image_type, &short_id(&lease.id, SHORT_ID));
    let outcome = loop {
        let current = match remote.client.status(&lease.id).await {
            Ok(current) => current,
            Err(error) => break Err(remote.error(error)),
        };
        match current.status.parse::<Status>() {
            Ok(Status::Running) => break Ok(current),
            Ok(Status::Pending) => {
                bar.set_message(progress_text(
                    &current.image_type,
                    pull_progress(current.pull_progress),
                ));
            }
            Ok(status) => {
                break Err(CliError::NotRunning {
                    id: current.id,
                    status,
                    error: current.error,
                });
            }
            Err(_) => {
                break Err(CliError::Partial(format!(
                    "the server reports an unknown status `{}`",
                    current.status
                )));
            }
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = cancel.cancelled() => break Err(CliError::Interrupted),
        }
    };
    bar.finish_and_clear();
    outcome
}

/// `lease ls`.
pub async fn ls(remote: &Remote, args: LsArgs) -> Result<ExitCode, CliError> {
    let owner = remote.owner.as_deref();
    let mut leases = remote
        .client
        .list(owner)
        .await
        .map_err(|e| remote.error(e))?;
    if args.all {
        leases.extend(
            remote
                .client
                .history(owner)
                .await
                .map_err(|e| remote.error(e))?,
        );
    }
    match remote.output {
        Output::Json => print_json(&leases)?,
        Output::Table => lease_table(&leases).print()?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `lease status`.
pub async fn status(remote: &Remote, args: IdArgs) -> Result<ExitCode, CliError> {
    let lease = find(remote, &args.id, Scope::WithHistory).await?;
    match remote.output {
        Output::Json => print_json(&lease)?,
        Output::Table => print_lease_fields(&lease)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `lease extend`.
pub async fn extend(remote: &Remote, args: ExtendArgs) -> Result<ExitCode, CliError> {
    let lease = find(remote, &args.id, Scope::Active).await?;
    let extended = remote
        .client
        .extend(&lease.id, args.minutes)
        .await
        .map_err(|e| remote.error(e))?;
    match remote.output {
        Output::Json => print_json(&extended)?,
        Output::Table => print(&format!(
            "{} extended by {}: expires {} (in {}), cost {}",
            extended.id,
            minutes_text(args.minutes),
            local_time_text(&extended.expiry_at),
            compact(extended.expires_in),
            dollars(extended.cost)
        ))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `lease rm`: ends each lease and waits until the server has removed its container.
pub async fn rm(remote: &Remote, args: RmArgs) -> Result<ExitCode, CliError> {
    let mut removed = Vec::new();
    let mut failed = 0usize;
    for text in &args.ids {
        let outcome = match find(remote, text, Scope::WithHistory).await {
            Ok(lease) if lease.status == "deleted" => Ok(lease),
            Ok(lease) => remove_now(remote, &lease.id).await,
            Err(error) => Err(error),
        };
        match outcome {
            Ok(lease) => {
                if remote.output == Output::Table {
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
    if remote.output == Output::Json {
        print_json(&removed)?;
    }
    if failed > 0 {
        return Err(CliError::Partial(format!(
            "{failed} of {} leases could not be removed",
            args.ids.len()
        )));
    }
    Ok(ExitCode::SUCCESS)
}

/// Ends lease `id` and waits (at most [`REMOVAL_WAIT`]) until the server
/// reports it `deleted` (its container removed, the lease in history).
pub async fn remove_now(remote: &Remote, id: &str) -> Result<LeaseJson, CliError> {
    let mut lease = remote
        .client
        .delete(id)
        .await
        .map_err(|e| remote.error(e))?;
    let deadline = Instant::now() + REMOVAL_WAIT;
    while lease.status != "deleted" {
        if Instant::now() >= deadline {
            let why = lease
                .error
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default();
            return Err(CliError::Partial(format!(
                "lease {id} is ending but its container is not removed yet{why}; \
                 the lease-server will finish the job"
            )));
        }
        tokio::time::sleep(POLL).await;
        lease = remote
            .client
            .status(id)
            .await
            .map_err(|e| remote.error(e))?;
    }
    Ok(lease)
}

fn usage_row(json: UsageJson) -> UsageRow {
    UsageRow {
        owner: json.owner,
        usage: Usage {
            active: json.active_leases,
            live: json.live_leases,
            accrued: json.accrued_cost,
            estimated: json.estimated_cost,
            ended_count: json.ended_leases,
            ended_cost: json.ended_cost,
            total_spend: json.total_spend,
        },
    }
}

/// `lease usage`: the caller's (or `--owner`'s); with `--all` every owner
/// the caller can see (an admin: everyone).
pub async fn usage(remote: &Remote, args: UsageArgs) -> Result<ExitCode, CliError> {
    let client = &remote.client;
    let rows = if args.all {
        let mut owners: BTreeSet<String> = client
            .list(None)
            .await
            .map_err(|e| remote.error(e))?
            .into_iter()
            .map(|lease| lease.owner)
            .collect();
        owners.extend(
            client
                .history(None)
                .await
                .map_err(|e| remote.error(e))?
                .into_iter()
                .map(|lease| lease.owner),
        );
        if owners.is_empty() {
            // Nothing active or in history: still show the caller.
            let own = client.usage(None).await.map_err(|e| remote.error(e))?;
            owners.insert(own.owner);
        }
        let mut rows = Vec::with_capacity(owners.len());
        for owner in owners {
            let json = client
                .usage(Some(&owner))
                .await
                .map_err(|e| remote.error(e))?;
            rows.push(usage_row(json));
        }
        rows
    } else {
        let json = client
            .usage(remote.owner.as_deref())
            .await
            .map_err(|e| remote.error(e))?;
        vec![usage_row(json)]
    };
    print_usage(remote.output, &rows)?;
    Ok(ExitCode::SUCCESS)
}

/// `lease prices`: the server's catalog (its lifetimes capped by its limits).
pub async fn prices(remote: &Remote, args: PricesArgs) -> Result<ExitCode, CliError> {
    let catalog = remote.client.catalog().await.map_err(|e| remote.error(e))?;
    let rows: Vec<PriceJson<'_>> = catalog
        .offerings
        .iter()
        .map(|offering| {
            let minutes = args.minutes.unwrap_or(offering.default_minutes);
            PriceJson {
                image_type: &offering.key,
                image: &offering.image,
                hourly_rate: offering.hourly_rate,
                cpus: offering.cpus,
                memory_mb: offering.memory_mb,
                minutes,
                cost: pricing::estimate(offering.hourly_rate, minutes),
                default_minutes: offering.default_minutes,
                max_minutes: offering.max_minutes,
            }
        })
        .collect();
    print_prices(remote.output, &rows)?;
    Ok(ExitCode::SUCCESS)
}
