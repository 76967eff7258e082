//! The flags of shell sessions (for the router's [`lease_http::ShellConfig`]).

use std::time::Duration;

use clap::Args;
use lease_http::ShellConfig;

/// Shell session settings.
#[derive(Debug, Args)]
pub struct ShellArgs {
    /// Most shell sessions running at once on one lease (at least 1).
    #[arg(long, env = "LEASE_MAX_SESSIONS_PER_LEASE", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_sessions_per_lease: u32,

    /// Most shell sessions one caller (token owner) may have running at
    /// once over all leases (at least 1).
    #[arg(long, env = "LEASE_MAX_SESSIONS_PER_OWNER", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_sessions_per_owner: u32,

    /// A shell session nobody is attached to for this long is ended and
    /// its processes killed (a dropped connection can re-attach within it;
    /// 60s or more recommended).
    #[arg(long, env = "LEASE_SHELL_DETACH_TIMEOUT", value_parser = positive_duration, default_value = "120s")]
    pub shell_detach_timeout: humantime::Duration,

    /// The server pings attached shell sockets this often, so an idle
    /// terminal is never cut by an idle timeout or a proxy.
    #[arg(long, env = "LEASE_SHELL_KEEPALIVE", value_parser = positive_duration, default_value = "20s")]
    pub shell_keepalive: humantime::Duration,
}

/// A duration longer than zero.
fn positive_duration(text: &str) -> Result<humantime::Duration, String> {
    let duration: humantime::Duration = text.parse().map_err(|e| format!("{e}"))?;
    if duration.is_zero() {
        return Err("must be longer than 0 (e.g. 20s)".to_owned());
    }
    Ok(duration)
}

impl ShellArgs {
    /// The router's shell settings.
    pub fn config(&self) -> ShellConfig {
        let detach: Duration = self.shell_detach_timeout.into();
        ShellConfig::default()
            .max_sessions_per_lease(self.max_sessions_per_lease)
            .max_sessions_per_owner(self.max_sessions_per_owner)
            .detach_timeout(detach)
            .keepalive(self.shell_keepalive.into())
    }
}
