//! `lease prices` and `lease completions`: no store, no Docker.

use std::process::ExitCode;

use clap::CommandFactory;
use lease_core::pricing;

use crate::cli::{Cli, CompletionsArgs, PricesArgs};
use crate::commands::shapes::{PriceJson, print_prices};
use crate::context::Context;
use crate::error::CliError;
use crate::output::write_stdout;

/// `lease prices`.
pub fn prices(context: &Context, args: PricesArgs) -> Result<ExitCode, CliError> {
    let catalog = context.catalog()?;
    let rows: Vec<PriceJson<'_>> = catalog
        .offerings()
        .map(|offering| {
            let minutes = args.minutes.unwrap_or(offering.default_minutes);
            PriceJson {
                image_type: &offering.key,
                image: &offering.image,
                hourly_rate: offering.hourly_rate,
                cpus: offering.cpus(),
                memory_mb: offering.memory_mb,
                minutes,
                cost: pricing::estimate(offering.hourly_rate, minutes),
                default_minutes: offering.default_minutes,
                max_minutes: offering.max_minutes,
            }
        })
        .collect();
    print_prices(context.output(), &rows)?;
    Ok(ExitCode::SUCCESS)
}

/// `lease completions`.
pub fn completions(args: CompletionsArgs) -> Result<ExitCode, CliError> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "lease", &mut script);
    write_stdout(&script)?;
    Ok(ExitCode::SUCCESS)
}
