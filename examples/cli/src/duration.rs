//! Human durations: `90m`, `2h`, `1h30m` in, `1h29m` out.

use std::time::Duration;

/// Parses a booking length into whole minutes (at least one).
pub fn parse_minutes(text: &str) -> Result<u32, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("a duration is required, e.g. 90m, 2h or 1h30m".to_owned());
    }
    if trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{trimmed}` has no unit: write {trimmed}m for minutes or {trimmed}h for hours"
        ));
    }
    let duration = humantime::parse_duration(trimmed).map_err(|error| {
        format!("`{trimmed}` is not a duration ({error}); write e.g. 90m, 2h or 1h30m")
    })?;
    whole_minutes(trimmed, duration)
}

fn whole_minutes(text: &str, duration: Duration) -> Result<u32, String> {
    if duration.subsec_nanos() != 0 || !duration.as_secs().is_multiple_of(60) {
        return Err(format!(
            "`{text}` is not a whole number of minutes; leases are booked by the minute"
        ));
    }
    let minutes = duration.as_secs() / 60;
    if minutes == 0 {
        return Err(format!("`{text}` is too short: book at least 1m"));
    }
    u32::try_from(minutes).map_err(|_| format!("`{text}` is too long"))
}

/// A compact duration for tables: `45s`, `2m05s`, `1h59m`, `3d4h`.
pub fn compact(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let (days, hours, minutes, secs) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
        seconds % 60,
    );
    if days > 0 {
        format!("{days}d{hours}h")
    } else if hours > 0 {
        format!("{hours}h{minutes:02}m")
    } else if minutes > 0 {
        format!("{minutes}m{secs:02}s")
    } else {
        format!("{secs}s")
    }
}

/// Whole minutes as people write them: `2m`, `2h`, `1h30m`.
pub fn minutes_text(minutes: u32) -> String {
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_human_durations() {
        assert_eq!(parse_minutes("90m"), Ok(90));
        assert_eq!(parse_minutes("2h"), Ok(120));
        assert_eq!(parse_minutes("1h30m"), Ok(90));
        assert_eq!(parse_minutes("1h 30m"), Ok(90));
        assert_eq!(parse_minutes("120s"), Ok(2));
    }

    #[test]
    fn refuses_bad_durations() {
        for bad in [
            "",
            "abc",
            "90",
            "-5m",
            "1.5h5s",
            "0m",
            "90s",
            "2x",
            "99999999999h",
        ] {
            assert!(parse_minutes(bad).is_err(), "{bad}");
        }
        assert!(
            parse_minutes("90s")
                .unwrap_err()
                .contains("whole number of minutes")
        );
        assert!(parse_minutes("90").unwrap_err().contains("no unit"));
    }

    #[test]
    fn prints_compactly() {
        assert_eq!(compact(45), "45s");
        assert_eq!(compact(125), "2m05s");
        assert_eq!(compact(7140), "1h59m");
        assert_eq!(compact(-3), "0s");
        assert_eq!(compact(90_000), "1d1h");
        assert_eq!(minutes_text(2), "2m");
        assert_eq!(minutes_text(120), "2h");
        assert_eq!(minutes_text(90), "1h30m");
    }
}
