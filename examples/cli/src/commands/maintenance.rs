//! `lease reap` and `lease reconcile`: the engine's background work run in
//! the foreground, for operators and cron jobs.

use std::process::ExitCode;
use std::time::Duration;

use lease_core::{EventKind, LeaseManager, ReapReport, ReconcileAction, ReconcileReport};
use lease_http::wire::LeaseJson;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use crate::cli::{Output, ReapArgs, ReconcileArgs};
use crate::commands::interrupt_token;
use crate::context::{Context, Docker};
use crate::error::CliError;
use crate::output::{
    SHORT_ID, Table, dollars, lease_json, local_time, note, print, print_fields, print_json,
};
use crate::reconcile_plan::plan;

/// Grace for provisioning restarted by a reconciliation pass.
const RETRY_GRACE: Duration = Duration::from_secs(120);

#[derive(Serialize)]
struct ReapJson {
    claimed: usize,
    finished: usize,
    failed: usize,
    skipped: usize,
}

impl From<ReapReport> for ReapJson {
    fn from(r: ReapReport) -> Self {
        ReapJson {
            claimed: r.claimed,
            finished: r.finished,
            failed: r.failed,
            skipped: r.skipped,
        }
    }
}

/// One `reap --watch` line as JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReapEventJson {
    event: &'static str,
    at: String,
    lateness_ms: Option<i64>,
    lease: LeaseJson,
}

/// `lease reap`.
pub async fn reap(context: &Context, args: ReapArgs) -> Result<ExitCode, CliError> {
    context.require_shared_store("reap")?;
    if args.until_idle {
        return crate::watcher::run_until_idle(context).await;
    }
    let manager = context.manager(Docker::Needed).await?;
    if args.watch {
        return watch(context, &manager).await;
    }
    let report = manager.reap_once().await?;
    match context.output() {
        Output::Json => print_json(&ReapJson::from(report))?,
        Output::Table => print_fields(&[
            ("CLAIMED", report.claimed.to_string()),
            ("REMOVED", report.finished.to_string()),
            ("FAILED", report.failed.to_string()),
            ("SKIPPED", report.skipped.to_string()),
        ])?,
    }
    manager.shutdown(Duration::from_secs(5)).await;
    Ok(if report.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `lease reap --watch`: the reaper loop until Ctrl-C, one line per lease
/// reaped (or failing).
async fn watch(context: &Context, manager: &LeaseManager) -> Result<ExitCode, CliError> {
    let interrupt = interrupt_token();
    let mut events = manager.subscribe();
    let reaper = {
        let manager = manager.clone();
        let stop = interrupt.clone();
        tokio::spawn(async move { manager.run_reaper(stop).await })
    };
    note(&format!(
        "reaping namespace `{}` until Ctrl-C",
        manager.config().namespace
    ));
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            () = interrupt.cancelled() => break,
        };
        let event = match event {
            Ok(event) => event,
            Err(RecvError::Lagged(missed)) => {
                note(&format!("lease: {missed} events missed"));
                continue;
            }
            Err(RecvError::Closed) => break,
        };
        if !matches!(event.kind, EventKind::Deleted | EventKind::ReapFailed) {
            continue;
        }
        match context.output() {
            Output::Json => {
                let line = ReapEventJson {
                    event: event.kind.as_str(),
                    at: lease_http::wire::time_text(event.at),
                    lateness_ms: event.lateness_ms,
                    lease: lease_json(manager, &event.lease),
                };
                let text = serde_json::to_string(&line)
                    .map_err(|e| CliError::io("cannot encode JSON", std::io::Error::other(e)))?;
                print(&text)?;
            }
            Output::Table => {
                let lease = &event.lease;
                let text = match event.kind {
                    EventKind::Deleted => format!(
                        "{}  removed {} ({}, {}){}",
                        local_time(event.at),
                        lease.id.short(SHORT_ID),
                        lease.owner,
                        dollars(lease.final_cost.unwrap_or_default()),
                        event
                            .lateness_ms
                            .map(|ms| format!(", {ms} ms after due"))
                            .unwrap_or_default()
                    ),
                    _ => format!(
                        "{}  removal failed {}: {}",
                        local_time(event.at),
                        lease.id.short(SHORT_ID),
                        lease.error.as_deref().unwrap_or("unknown error")
                    ),
                };
                print(&text)?;
            }
        }
    }
    interrupt.cancel();
    let _ = reaper.await;
    manager.shutdown(Duration::from_secs(5)).await;
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReconcileJson {
    orphans_removed: usize,
    adopted: usize,
    exited: usize,
    retried: usize,
    timed_out: usize,
}

impl From<ReconcileReport> for ReconcileJson {
    fn from(r: ReconcileReport) -> Self {
        ReconcileJson {
            orphans_removed: r.orphans_removed,
            adopted: r.adopted,
            exited: r.exited,
            retried: r.retried,
            timed_out: r.timed_out,
        }
    }
}

/// `lease reconcile`.
pub async fn reconcile(context: &Context, args: ReconcileArgs) -> Result<ExitCode, CliError> {
    context.require_shared_store("reconcile")?;
    let manager = context.manager(Docker::Needed).await?;
    if args.dry_run {
        let planned = plan(&manager).await?;
        match context.output() {
            Output::Json => print_json(&planned)?,
            Output::Table => {
                let mut table = Table::new(&["WOULD", "LEASE", "CONTAINER", "WHY"]);
                for item in &planned {
                    let short = |id: &String| {
                        id.strip_prefix("container-")
                            .unwrap_or(id)
                            .chars()
                            .take(SHORT_ID)
                            .collect::<String>()
                    };
                    table.row(vec![
                        action_text(item.action).to_owned(),
                        item.lease_id.as_ref().map_or_else(|| "-".to_owned(), short),
                        item.container.clone().unwrap_or_else(|| "-".to_owned()),
                        item.reason.clone(),
                    ]);
                }
                table.print()?;
                if planned.is_empty() {
                    note("nothing to do: the store and Docker agree");
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = manager.reconcile_once().await?;
    match context.output() {
        Output::Json => print_json(&ReconcileJson::from(report))?,
        Output::Table => print_fields(&[
            ("ORPHANS REMOVED", report.orphans_removed.to_string()),
            ("ADOPTED", report.adopted.to_string()),
            ("EXITED", report.exited.to_string()),
            ("RETRIED", report.retried.to_string()),
            ("TIMED OUT", report.timed_out.to_string()),
        ])?,
    }
    if report.retried > 0 {
        note(&format!(
            "waiting for {} restarted provisioning(s) to finish",
            report.retried
        ));
    }
    manager.shutdown(RETRY_GRACE).await;
    Ok(ExitCode::SUCCESS)
}

fn action_text(action: ReconcileAction) -> &'static str {
    match action {
        ReconcileAction::RemoveContainer => "remove container",
        ReconcileAction::Adopt => "adopt",
        ReconcileAction::MarkExited => "mark exited",
        ReconcileAction::RetryProvisioning => "retry provisioning",
        ReconcileAction::TimeOut => "mark error (timed out)",
        ReconcileAction::DropPoolSlot => "drop pool slot",
    }
}
