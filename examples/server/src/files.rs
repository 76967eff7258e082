//! The flags of file copies (for the router's [`lease_http::FilesConfig`]).

use clap::Args;
use lease_http::FilesConfig;

/// File copy limits.
#[derive(Debug, Args)]
pub struct FilesArgs {
    /// Largest upload into a lease (`lease cp` to a lease, the page's
    /// upload), e.g. `1GiB`, `200MiB`, `4096` (bytes). Bigger ones are
    /// refused with 413 and nothing is written.
    #[arg(long, env = "LEASE_MAX_UPLOAD", value_parser = parse_size, default_value = "1GiB")]
    pub max_upload: u64,

    /// Largest download out of a lease (a file or a directory tree), as
    /// `--max-upload`. Bigger ones are refused with 413.
    #[arg(long, env = "LEASE_MAX_DOWNLOAD", value_parser = parse_size, default_value = "1GiB")]
    pub max_download: u64,
}

/// A size: a number of bytes with an optional `KiB`, `MiB`, `GiB` (or `K`,
/// `M`, `G`, also powers of 1024) suffix; at least 1.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. 1GiB, 200MiB, 4096)"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1024,
        "m" | "mib" | "mb" => 1024 * 1024,
        "g" | "gib" | "gb" => 1024 * 1024 * 1024,
        other => return Err(format!("unknown size unit `{other}` (KiB, MiB, GiB)")),
    };
    let bytes = number
        .checked_mul(factor)
        .ok_or_else(|| format!("`{text}` is too large"))?;
    if bytes == 0 {
        return Err("must be at least 1 byte".to_owned());
    }
    Ok(bytes)
}

impl FilesArgs {
    /// The router's file copy limits.
    pub fn config(&self) -> FilesConfig {
        FilesConfig {
            max_upload: self.max_upload,
            max_download: self.max_download,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("2MiB"), Ok(2 * 1024 * 1024));
        assert_eq!(parse_size("1GiB"), Ok(1024 * 1024 * 1024));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1TiB").is_err());
        assert!(parse_size("MiB").is_err());
    }
}
