//! Result shapes shared by the local and the remote commands, so both
//! print the same table and the same JSON.

use lease_core::{Money, Usage};
use serde::Serialize;

use crate::cli::Output;
use crate::duration::minutes_text;
use crate::error::CliError;
use crate::output::{Table, dollars, print_json};

/// One offering's prices, as JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceJson<'a> {
    /// The offering's key.
    pub image_type: &'a str,
    /// Its image.
    pub image: &'a str,
    /// Price per hour.
    pub hourly_rate: Money,
    /// CPU limit.
    pub cpus: f64,
    /// Memory limit in MiB.
    pub memory_mb: u32,
    /// The booking priced.
    pub minutes: u32,
    /// What that booking costs.
    pub cost: Money,
    /// Booking when none is asked for.
    pub default_minutes: u32,
    /// Longest lifetime.
    pub max_minutes: u32,
}

/// Prints `lease prices`.
pub fn print_prices(output: Output, rows: &[PriceJson<'_>]) -> Result<(), CliError> {
    match output {
        Output::Json => print_json(rows),
        Output::Table => {
            let mut table = Table::new(&[
                "OFFERING", "IMAGE", "PER HOUR", "CPUS", "MEMORY", "FOR", "COST",
            ]);
            for row in rows {
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
            table.print()
        }
    }
}

/// One owner's `lease usage` (JSON: the owner and the usage's fields).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageRow {
    /// Whose.
    pub owner: String,
    /// Spend and counts.
    #[serde(flatten)]
    pub usage: Usage,
}

/// Prints `lease usage`: one row per owner; JSON is always an array.
pub fn print_usage(output: Output, rows: &[UsageRow]) -> Result<(), CliError> {
    match output {
        Output::Json => print_json(rows),
        Output::Table => {
            let mut table = Table::new(&[
                "OWNER",
                "ACTIVE",
                "LIVE",
                "ACCRUED",
                "BOOKED",
                "ENDED",
                "ENDED COST",
                "TOTAL SPEND",
            ]);
            for UsageRow { owner, usage } in rows {
                table.row(vec![
                    owner.clone(),
                    usage.active.to_string(),
                    usage.live.to_string(),
                    dollars(usage.accrued),
                    dollars(usage.estimated),
                    usage.ended_count.to_string(),
                    dollars(usage.ended_cost),
                    dollars(usage.total_spend),
                ]);
            }
            table.print()
        }
    }
}
