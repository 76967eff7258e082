//! Renting a container and watching it come up: a spinner with the image
//! pull's progress until the lease is running (or failed).

use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use lease_core::runtime::PullProgress;
use lease_core::{Catalog, Lease, LeaseManager, ProvisionRequest, Status};
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::error::CliError;

/// How often the store is read while waiting.
const POLL: Duration = Duration::from_millis(200);

/// Fails with the catalog's keys unless it has `offering` (checked before
/// anything is connected, so a typo is reported at once).
pub fn check_offering(catalog: &Catalog, offering: &str) -> Result<(), CliError> {
    if catalog.get(offering).is_some() {
        return Ok(());
    }
    Err(CliError::UnknownOffering {
        offering: offering.to_owned(),
        known: catalog.keys().collect::<Vec<_>>().join(", "),
    })
}

/// Checks the offering, then stores a pending lease (its container is
/// provisioned in the background by this process).
pub async fn provision(
    context: &Context,
    manager: &LeaseManager,
    offering: &str,
    minutes: Option<u32>,
) -> Result<Lease, CliError> {
    check_offering(manager.catalog(), offering)?;
    let mut request = ProvisionRequest::new(context.owner.clone(), offering);
    request.minutes = minutes;
    Ok(manager.provision(request).await?)
}

pub fn spinner(offering: &str, short: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{elapsed}]") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(100));
    bar.set_message(format!("{offering} {short}: waiting"));
    bar
}

pub fn progress_text(image: &str, progress: Option<PullProgress>) -> String {
    match progress {
        Some(p) if p.layers_total > 0 => {
            let bytes = if p.bytes_total > 0 {
                format!(
                    ", {}/{}",
                    HumanBytes(p.bytes_done),
                    HumanBytes(p.bytes_total)
                )
            } else {
                String::new()
            };
            format!(
                "pulling {image}: {}/{} layers{bytes}",
                p.layers_done, p.layers_total
            )
        }
        Some(p) if !p.status.is_empty() => format!("{image}: {}", p.status),
        _ => format!("starting {image}"),
    }
}

/// Waits until the lease is running, showing progress on stderr (the
/// spinner hides itself when stderr is not a terminal). A lease that fails
/// or ends first is an error; `cancel` stops the wait with
/// [`CliError::Interrupted`].
pub async fn wait_until_running(
    manager: &LeaseManager,
    lease: Lease,
    cancel: &CancellationToken,
) -> Result<Lease, CliError> {
    let image = manager
        .catalog()
        .get(&lease.offering)
        .map_or_else(|| lease.offering.clone(), |o| o.image.clone());
    let bar = spinner(&lease.offering, lease.id.short(12));
    let mut events = manager.subscribe();
    let id = lease.id.clone();
    let outcome = loop {
        let current = match manager.get(&id).await {
            Ok(current) => current,
            Err(error) => break Err(error.into()),
        };
        match current.status {
            Status::Running => break Ok(current),
            Status::Pending => {
                bar.set_message(progress_text(&image, manager.pull_progress(&id)));
            }
            status => {
                break Err(CliError::NotRunning {
                    id: id.to_string(),
                    status,
                    error: current.error,
                });
            }
        }
        tokio::select! {
            // Woken early by this process's provisioning task.
            _ = events.recv() => {}
            () = tokio::time::sleep(POLL) => {}
            () = cancel.cancelled() => break Err(CliError::Interrupted),
        }
    };
    bar.finish_and_clear();
    outcome
}
