//! Printing results: aligned tables for people, JSON for scripts.
//!
//! Everything goes through [`print`], which turns a closed stdout (`| head`)
//! into [`CliError::BrokenPipe`] instead of the panic `println!` would give.

use std::io::{self, Write};

use chrono::{DateTime, Local, Utc};
use lease_core::{Lease, LeaseManager, Money};
use lease_http::wire::LeaseJson;
use serde::Serialize;

use crate::duration::compact;
use crate::error::CliError;

/// Characters of a lease id's random part shown in tables (like Docker's 12).
pub const SHORT_ID: usize = 12;

/// Writes `text` (and a newline) to stdout.
pub fn print(text: &str) -> Result<(), CliError> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .map_err(stdout_error)
}

/// Writes raw bytes to stdout and flushes.
pub fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(stdout_error)
}

/// Writes raw bytes to stderr and flushes (errors ignored: nowhere to report them).
pub fn write_stderr(bytes: &[u8]) {
    let mut stderr = io::stderr().lock();
    let _ = stderr.write_all(bytes).and_then(|()| stderr.flush());
}

/// A note for people on stderr (never mixed into results on stdout).
pub fn note(text: &str) {
    write_stderr(format!("{text}\n").as_bytes());
}

fn stdout_error(error: io::Error) -> CliError {
    if error.kind() == io::ErrorKind::BrokenPipe {
        CliError::BrokenPipe
    } else {
        CliError::io("cannot write to stdout", error)
    }
}

/// Prints a value as pretty JSON.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::io("cannot encode JSON", io::Error::other(e)))?;
    print(&text)
}

/// A lease in the lease-server's JSON shape, with pull progress if known here.
pub fn lease_json(manager: &LeaseManager, lease: &Lease) -> LeaseJson {
    LeaseJson::new(
        lease,
        manager.clock().now(),
        manager.pull_progress(&lease.id),
    )
}

/// Left-aligned columns separated by three spaces.
#[derive(Debug)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&'static str]) -> Self {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, without a trailing newline.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(width) = widths.get_mut(i) {
                    *width = (*width).max(cell.chars().count());
                }
            }
        }
        let line = |cells: Vec<&str>| {
            let last = cells.len().saturating_sub(1);
            let mut text = String::new();
            for (i, cell) in cells.into_iter().enumerate() {
                text.push_str(cell);
                if i < last {
                    let pad = widths[i].saturating_sub(cell.chars().count()) + 3;
                    text.extend(std::iter::repeat_n(' ', pad));
                }
            }
            text
        };
        let mut lines = vec![line(self.headers.clone())];
        for row in &self.rows {
            lines.push(line(row.iter().map(String::as_str).collect()));
        }
        lines.join("\n")
    }

    /// Prints the table.
    pub fn print(&self) -> Result<(), CliError> {
        print(&self.render())
    }
}

/// Key/value lines, keys aligned: the table form of one record.
pub fn print_fields(fields: &[(&str, String)]) -> Result<(), CliError> {
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let text: Vec<String> = fields
        .iter()
        .map(|(key, value)| format!("{key:<width$}  {value}"))
        .collect();
    print(&text.join("\n"))
}

/// An amount as `$0.000333333` (exact, trailing zeros dropped).
pub fn dollars(amount: Money) -> String {
    format!("${amount}")
}

/// A time in the local zone, to the second.
pub fn local_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Time left on a lease at `now`, or `-` once it has ended.
pub fn expires_in(lease: &Lease, now: DateTime<Utc>) -> String {
    if lease.ended_at.is_some() || !lease.status.is_live() {
        "-".to_owned()
    } else if lease.expires_at <= now {
        "expired".to_owned()
    } else {
        compact(lease.expires_in(now))
    }
}

/// The table form of one lease.
pub fn print_lease_fields(manager: &LeaseManager, lease: &Lease) -> Result<(), CliError> {
    let now = manager.clock().now();
    let mut fields = vec![
        ("ID", lease.id.to_string()),
        ("OFFERING", lease.offering.clone()),
        ("STATUS", lease.status.to_string()),
        ("OWNER", lease.owner.clone()),
        (
            "COST",
            format!(
                "{} ({} at {}/h)",
                dollars(lease.estimated_cost),
                crate::duration::minutes_text(
                    u32::try_from(lease.booked_minutes()).unwrap_or(u32::MAX)
                ),
                dollars(lease.hourly_rate)
            ),
        ),
        ("ACCRUED", dollars(lease.accrued_cost(now))),
        ("CREATED", local_time(lease.created_at)),
        (
            "EXPIRES",
            match expires_in(lease, now) {
                left if left.starts_with(|c: char| c.is_ascii_digit()) => {
                    format!("{} (in {left})", local_time(lease.expires_at))
                }
                other => format!("{} ({other})", local_time(lease.expires_at)),
            },
        ),
    ];
    if let Some(container) = &lease.container_id {
        fields.push(("CONTAINER", container.chars().take(12).collect()));
    }
    if let Some(ended) = lease.ended_at {
        let reason = lease
            .end_reason
            .map(|r| format!(" ({})", format!("{r:?}").to_lowercase()))
            .unwrap_or_default();
        fields.push(("ENDED", format!("{}{reason}", local_time(ended))));
    }
    if let Some(cost) = lease.final_cost {
        fields.push(("FINAL COST", dollars(cost)));
    }
    if let Some(error) = &lease.error {
        fields.push(("ERROR", error.clone()));
    }
    if let Some(progress) = manager.pull_progress(&lease.id) {
        fields.push(("PULL", progress.status));
    }
    print_fields(&fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let mut table = Table::new(&["ID", "STATUS"]);
        table.row(vec!["abc".into(), "running".into()]);
        table.row(vec!["abcdefgh".into(), "x".into()]);
        assert_eq!(
            table.render(),
            "ID         STATUS\nabc        running\nabcdefgh   x"
        );
    }

    #[test]
    fn dollars_are_exact() {
        assert_eq!(dollars(Money::from_nanos(333_333)), "$0.000333333");
        assert_eq!(dollars(Money::from_nanos(80_000_000)), "$0.08");
    }
}
