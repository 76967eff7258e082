//! The host-capacity flags: how their values are written and read.
//!
//! - `--max-leases N`: active leases of all owners together, at least 1.
//! - `--max-cpus 4.5`: CPUs the active leases may reserve together, an
//!   exact decimal (nine places at most), kept in nano-CPUs like the
//!   catalog's `cpus`.
//! - `--max-memory 16GiB`: memory they may reserve together: a whole number
//!   of MiB (`2048`, `2048MiB`) or of GiB/TiB, decimals allowed when the
//!   result is whole MiB (`1.5GiB` = 1536 MiB). Suffixes are
//!   case-insensitive; `M`/`G`/`T` mean the same binary units.
//!
//! Each defaults to no limit; the offerings' `cpus` and `memory_mb` are what
//! a lease counts.

use lease_core::money::parse_nanos;

/// Nano-CPUs in one CPU.
const NANOS_PER_CPU: i128 = 1_000_000_000;

/// Reads `--max-cpus`: a decimal above zero, in nano-CPUs.
pub fn parse_cpus(text: &str) -> Result<i64, String> {
    let nanos = parse_nanos(text).map_err(|error| format!("--max-cpus: {error}"))?;
    if nanos <= 0 {
        return Err(format!("--max-cpus: `{text}` must be above zero"));
    }
    Ok(nanos)
}

/// Reads `--max-memory`: MiB, or a size with a binary unit, in MiB.
pub fn parse_memory_mb(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let mib_per_unit: i128 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "m" | "mib" => 1,
        "g" | "gib" => 1024,
        "t" | "tib" => 1024 * 1024,
        other => {
            return Err(format!(
                "--max-memory: unknown unit `{other}` in `{text}` (use MiB, GiB or TiB)"
            ));
        }
    };
    let nanos =
        parse_nanos(number.trim()).map_err(|error| format!("--max-memory: `{text}`: {error}"))?;
    let scaled = i128::from(nanos) * mib_per_unit;
    if scaled <= 0 {
        return Err(format!("--max-memory: `{text}` must be above zero"));
    }
    if scaled % NANOS_PER_CPU != 0 {
        return Err(format!(
            "--max-memory: `{text}` is not a whole number of MiB"
        ));
    }
    u64::try_from(scaled / NANOS_PER_CPU)
        .map_err(|_| format!("--max-memory: `{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_are_exact_decimals_above_zero() {
        assert_eq!(parse_cpus("4.5"), Ok(4_500_000_000));
        assert_eq!(parse_cpus("0.000000001"), Ok(1));
        assert_eq!(parse_cpus(" 16 "), Ok(16_000_000_000));
        for bad in ["0", "-1", "abc", "", "0.0000000001", "1e400", "NaN", "4,5"] {
            assert!(parse_cpus(bad).is_err(), "`{bad}` must be refused");
        }
        assert!(parse_cpus("-2").unwrap_err().contains("above zero"));
    }

    #[test]
    fn memory_takes_mib_or_binary_units() {
        assert_eq!(parse_memory_mb("2048"), Ok(2048));
        assert_eq!(parse_memory_mb("2048MiB"), Ok(2048));
        assert_eq!(parse_memory_mb("16GiB"), Ok(16 * 1024));
        assert_eq!(parse_memory_mb("16 gib"), Ok(16 * 1024));
        assert_eq!(parse_memory_mb("1.5G"), Ok(1536));
        assert_eq!(parse_memory_mb("1TiB"), Ok(1024 * 1024));
        for bad in [
            "0",
            "-1GiB",
            "1.5",
            "16GB",
            "16KiB",
            "GiB",
            "",
            "1.0000001GiB",
            "x",
            "99999999999999TiB",
        ] {
            assert!(parse_memory_mb(bad).is_err(), "`{bad}` must be refused");
        }
        assert!(
            parse_memory_mb("16GB")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(
            parse_memory_mb("1.5")
                .unwrap_err()
                .contains("whole number of MiB")
        );
    }
}
