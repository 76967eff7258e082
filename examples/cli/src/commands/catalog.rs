//! `lease prices` and `lease completions`: no store, no Docker.

use std::process::ExitCode;

use clap::CommandFactory;
use lease_core::{Money, pricing};
use serde::Serialize;

use crate::cli::{Cli, CompletionsArgs, Output, PricesArgs};
use crate::context::Context;
use crate::duration::minutes_text;
use crate::error::CliError;
use crate::output::{Table, dollars, print_json, write_stdout};

/// One offering's prices, as JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PriceJson<'a> {
    image_type: &'a str,
    image: &'a str,
    hourly_rate: Money,
    cpus: f64,
    memory_mb: u32,
    minutes: u32,
    cost: Money,
    default_minutes: u32,
    max_minutes: u32,
}

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
    match context.output() {
        Output::Json => print_json(&rows)?,
        Output::Table => {
            let mut table = Table::new(&[
                "OFFERING", "IMAGE", "PER HOUR", "CPUS", "MEMORY", "FOR", "COST",
            ]);
            for row in &rows {
                table.row(vec![
                    row.image_type.to_owned(),
                    row.image.to_owned(),
                    dollars(row.hourly_rate),
                    row.cpus.to_string(),
                    format!("{} MiB", row.memory_mb),
                    minutes_text(row.minutes),
                    dollars(row.cost),
                ]);
            }
            table.print()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `lease completions`.
pub fn completions(args: CompletionsArgs) -> Result<ExitCode, CliError> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "lease", &mut script);
    write_stdout(&script)?;
    Ok(ExitCode::SUCCESS)
}
