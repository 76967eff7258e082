//! `lease up`: rent a container and wait until it runs (or `--detach`).

use std::io::BufRead;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use lease_core::error::error_chain;
use lease_core::{Lease, LeaseId, LeaseManager};
use lease_http::wire::LeaseJson;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::cli::{Output, UpArgs};
use crate::commands::interrupt_token;
use crate::context::{Context, Docker, StoreSpec};
use crate::duration::compact;
use crate::error::CliError;
use crate::lifetime::{Over, until_over};
use crate::output::{dollars, lease_json, local_time, note, print, print_json};
use crate::provisioning::{check_offering, provision, wait_until_running};
use crate::removal::remove_now;
use crate::watcher::{self, Watching};

/// Grace for provisioning tasks still in flight when a command ends.
const SHORT_GRACE: Duration = Duration::from_secs(5);
/// What `up` says when a background reaper watches a SQLite store.
const BACKGROUND_REAPER_NOTE: &str =
    "  a background reaper removes the container when the lease expires (no lease-server needed)";

/// `lease up`.
pub async fn up(context: &Context, args: UpArgs) -> Result<ExitCode, CliError> {
    if args.background_child {
        return background_child(context, &args).await;
    }
    if args.detach {
        context.require_shared_store("up --detach")?;
    }
    check_offering(&context.catalog()?, &args.offering)?;
    if args.detach {
        return detach(context, &args).await;
    }
    let manager = context.manager(Docker::Needed).await?;
    let cancel = interrupt_token();
    let lease = provision(context, &manager, &args.offering, args.minutes).await?;
    let watching = watcher::ensure(context);
    let running = match wait_until_running(&manager, lease.clone(), &cancel).await {
        Ok(running) => running,
        Err(error) => {
            // Nothing left behind: the lease goes to history (with its
            // error, for `lease status`), its container (if any) is removed.
            if let Err(cleanup) = remove_now(&manager, &lease.id).await {
                note(&format!("lease: {}", error_chain(&cleanup)));
            }
            manager.shutdown(SHORT_GRACE).await;
            return Err(error);
        }
    };
    report_running(context, &manager, &running, watching)?;
    if context.is_memory() {
        return hold(&manager, &running, &cancel).await;
    }
    manager.shutdown(SHORT_GRACE).await;
    Ok(ExitCode::SUCCESS)
}

fn report_running(
    context: &Context,
    manager: &LeaseManager,
    lease: &Lease,
    watching: Watching,
) -> Result<(), CliError> {
    match context.output() {
        Output::Json => print_json(&lease_json(manager, lease)),
        Output::Table => {
            let now = manager.clock().now();
            print(&lease.id.to_string())?;
            note(&format!(
                "{} is running: {} booked until {} (in {})",
                lease.offering,
                dollars(lease.estimated_cost),
                local_time(lease.expires_at),
                compact(lease.expires_in(now))
            ));
            if watching == Watching::Yes {
                note(BACKGROUND_REAPER_NOTE);
            }
            if !context.is_memory() {
                note(&format!(
                    "  lease shell {short}    lease extend {short} 30m    lease rm {short}",
                    short = lease.id.short(12)
                ));
            }
            Ok(())
        }
    }
}

/// With the memory store the lease exists only in this process: keep it
/// until it expires or Ctrl-C, then remove the container.
async fn hold(
    manager: &LeaseManager,
    lease: &Lease,
    cancel: &CancellationToken,
) -> Result<ExitCode, CliError> {
    note(
        "memory store: the lease lives in this process — holding it until it expires; \
         Ctrl-C ends it now (leave out --store memory to keep leases after exit)",
    );
    let over = tokio::select! {
        over = until_over(manager, &lease.id) => over,
        () = cancel.cancelled() => Over::Interrupted,
    };
    let ended = remove_now(manager, &lease.id).await;
    manager.shutdown(SHORT_GRACE).await;
    let ended = ended?;
    note(&format!(
        "lease {} ended ({}); container removed; cost {}",
        lease.id,
        match over {
            Over::Expired => "expired".to_owned(),
            Over::Interrupted => "interrupted".to_owned(),
            Over::Ended(status) => status.to_string(),
        },
        dollars(ended.final_cost.unwrap_or_default())
    ));
    Ok(if over == Over::Interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// What the background half of `--detach` tells the foreground half: one JSON line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum ChildReport {
    Lease {
        lease: Box<LeaseJson>,
        /// Whether a background reaper watches the (SQLite) store.
        #[serde(default)]
        reaper: bool,
    },
    Error(String),
}

/// The foreground half of `--detach`: starts a copy of this program in its
/// own process group to provision the lease, prints the pending lease it
/// reports and returns, leaving it to bring the container up.
async fn detach(context: &Context, args: &UpArgs) -> Result<ExitCode, CliError> {
    let store = match &context.store {
        StoreSpec::Memory => {
            return Err(CliError::NeedsSharedStore {
                command: "up --detach",
            });
        }
        StoreSpec::Sqlite(config) => {
            let db = std::path::absolute(config.path())
                .map_err(|e| CliError::io("cannot resolve the database path", e))?;
            watcher::child_store_url(&context.store_url, &db)
        }
        StoreSpec::Redis(url) | StoreSpec::Postgres(url) => url.clone(),
    };
    let exe = std::env::current_exe().map_err(|e| CliError::io("cannot find this program", e))?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("up")
        .arg(&args.offering)
        .arg("--background-child");
    if let Some(minutes) = args.minutes {
        command.arg("--for").arg(format!("{minutes}m"));
    }
    // Settings go through the environment, so a Redis or PostgreSQL password stays out of `ps`.
    let global = &context.args;
    command
        .env("LEASE_STORE", store)
        .env("LEASE_REDIS_PREFIX", context.redis_prefix())
        .env("LEASE_NAMESPACE", &global.namespace)
        .env("LEASE_OWNER", &context.owner)
        .env("LEASE_OUTPUT", "json")
        .env("LEASE_MAX_MINUTES", global.max_minutes.to_string())
        .env(
            "LEASE_MAX_LEASES_PER_OWNER",
            global.max_leases_per_owner.to_string(),
        )
        .env_remove("LEASE_MAX_DAILY_SPEND")
        .env_remove("LEASE_CATALOG");
    if let Some(spend) = global.max_daily_spend {
        command.env("LEASE_MAX_DAILY_SPEND", spend.to_string());
    }
    if let Some(path) = &global.catalog {
        command.env("LEASE_CATALOG", path);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    #[cfg(unix)]
    {
        // Out of our process group: Ctrl-C here does not stop it.
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let line = tokio::task::spawn_blocking(move || -> Result<String, CliError> {
        let mut child = command
            .spawn()
            .map_err(|e| CliError::io("cannot start the background provisioner", e))?;
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .map_err(|e| CliError::io("cannot read from the background provisioner", e))?;
        }
        if line.trim().is_empty() {
            // It ended without reporting: collect it and say so.
            let status = child
                .wait()
                .map_err(|e| CliError::io("background provisioner", e))?;
            return Err(CliError::Partial(format!(
                "the background provisioner ended without a lease ({status})"
            )));
        }
        Ok(line)
    })
    .await
    .map_err(|e| CliError::io("background provisioner", std::io::Error::other(e)))??;
    match serde_json::from_str::<ChildReport>(line.trim()) {
        Ok(ChildReport::Lease { lease, reaper }) => {
            match context.output() {
                Output::Json => print_json(&lease)?,
                Output::Table => {
                    print(&lease.id)?;
                    let expiry = chrono::DateTime::parse_from_rfc3339(&lease.expiry_at)
                        .map_or_else(|_| lease.expiry_at.clone(), |at| local_time(at.to_utc()));
                    let short = lease
                        .id
                        .parse::<LeaseId>()
                        .map_or_else(|_| lease.id.clone(), |id| id.short(12).to_owned());
                    note(&format!(
                        "{} is {}: {} booked until {expiry}; it comes up in the background (`lease status {short}`)",
                        lease.image_type,
                        lease.status,
                        dollars(lease.cost),
                    ));
                    if reaper {
                        note(BACKGROUND_REAPER_NOTE);
                    } else if matches!(context.store, StoreSpec::Sqlite(_)) {
                        note(
                            "lease: no background reaper could be started; run `lease reap --watch` \
                             (or a lease-server on this file) to remove the container at expiry",
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(ChildReport::Error(message)) => Err(CliError::Partial(message)),
        Err(error) => Err(CliError::Partial(format!(
            "the background provisioner said something unexpected: {error}"
        ))),
    }
}

/// The background half of `--detach`: provisions, reports the pending lease
/// on stdout, then stays until the provisioning task has recorded its
/// outcome (running or error) in the store.
async fn background_child(context: &Context, args: &UpArgs) -> Result<ExitCode, CliError> {
    let started = async {
        let manager = context.manager(Docker::Needed).await?;
        let lease = provision(context, &manager, &args.offering, args.minutes).await?;
        Ok::<_, CliError>((manager, lease))
    }
    .await;
    match started {
        Ok((manager, lease)) => {
            let reaper = watcher::ensure(context) == Watching::Yes;
            let report = ChildReport::Lease {
                lease: Box::new(lease_json(&manager, &lease)),
                reaper,
            };
            let line = serde_json::to_string(&report)
                .map_err(|e| CliError::io("cannot encode JSON", std::io::Error::other(e)))?;
            // The foreground half may be gone by the time provisioning ends: ignore stdout errors.
            let _ = print(&line);
            let grace = manager.config().provision_timeout + Duration::from_secs(30);
            manager.shutdown(grace).await;
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            let report = ChildReport::Error(error_chain(&error));
            if let Ok(line) = serde_json::to_string(&report) {
                let _ = print(&line);
            }
            Ok(ExitCode::from(1))
        }
    }
}
