//! Printing results: aligned tables for people, JSON for scripts.
//!
//! Everything goes through [`print`], which turns a closed stdout (`| head`)
//! into [`CliError::BrokenPipe`] instead of the panic `println!` would give.

use std::io::{self, Write};

use chrono::{DateTime, Local, Utc};
use lease_core::id::LEASE_ID_PREFIX;
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

/// The first `len` characters of a lease id's random part (the whole id
/// if it is not a lease id).
pub fn short_id(id: &str, len: usize) -> String {
    let random = id.strip_prefix(LEASE_ID_PREFIX).unwrap_or(id);
    random.chars().take(len).collect()
}

/// Whether a lease (as JSON) is pending or running.
fn is_live(lease: &LeaseJson) -> bool {
    matches!(lease.status.as_str(), "pending" | "running")
}

/// Time left on a lease, or `-` once it has ended.
pub fn expires_in(lease: &LeaseJson) -> String {
    if lease.ended_at.is_some() || !is_live(lease) {
        "-".to_owned()
    } else if lease.expires_in <= 0 {
        "expired".to_owned()
    } else {
        compact(lease.expires_in)
    }
}

/// An RFC 3339 time of the API in the local zone (as given if it does not parse).
pub fn local_time_text(text: &str) -> String {
    DateTime::parse_from_rfc3339(text)
        .map_or_else(|_| text.to_owned(), |at| local_time(at.to_utc()))
}

/// The table of leases `lease ls` prints.
pub fn lease_table(leases: &[LeaseJson]) -> Table {
    let mut table = Table::new(&["ID", "IMAGE", "STATUS", "COST", "ACCRUED", "EXPIRES IN"]);
    for lease in leases {
        table.row(vec![
            short_id(&lease.id, SHORT_ID),
            lease.image_type.clone(),
            lease.status.clone(),
            dollars(lease.cost),
            dollars(lease.accrued_cost),
            expires_in(lease),
        ]);
    }
    table
}

/// The table form of one lease.
pub fn print_lease_fields(lease: &LeaseJson) -> Result<(), CliError> {
    let mut fields = vec![
        ("ID", lease.id.clone()),
        ("OFFERING", lease.image_type.clone()),
        ("STATUS", lease.status.clone()),
        ("OWNER", lease.owner.clone()),
        (
            "COST",
            format!(
                "{} ({} at {}/h)",
                dollars(lease.cost),
                crate::duration::minutes_text(
                    u32::try_from(lease.duration_minutes).unwrap_or(u32::MAX)
                ),
                dollars(lease.hourly_rate)
            ),
        ),
        ("ACCRUED", dollars(lease.accrued_cost)),
        ("CREATED", local_time_text(&lease.created_at)),
        (
            "EXPIRES",
            match expires_in(lease) {
                left if left.starts_with(|c: char| c.is_ascii_digit()) => {
                    format!("{} (in {left})", local_time_text(&lease.expiry_at))
                }
                other => format!("{} ({other})", local_time_text(&lease.expiry_at)),
            },
        ),
    ];
    if let Some(container) = &lease.docker_id {
        fields.push(("CONTAINER", container.chars().take(12).collect()));
    }
    if let Some(ended) = &lease.ended_at {
        let reason = lease
            .end_reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        fields.push(("ENDED", format!("{}{reason}", local_time_text(ended))));
    }
    if let Some(cost) = lease.final_cost {
        fields.push(("FINAL COST", dollars(cost)));
    }
    if let Some(error) = &lease.error {
        fields.push(("ERROR", error.clone()));
    }
    if let Some(progress) = &lease.pull_progress {
        fields.push(("PULL", progress.status.clone()));
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
