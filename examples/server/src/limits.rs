//! The flags that keep the server up under hostile clients: connection
//! limits (for [`lease_http::serve`]) and per-caller limits (for the
//! router's [`lease_http::Limits`]). A cap of 0 means no cap.

use std::num::NonZeroU32;

use clap::Args;
use lease_http::{Limits, RateLimit, ServeConfig};

/// Connection and per-caller limits.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// A request whose headers have not all arrived after this is cut; an
    /// idle keep-alive connection is closed after it too.
    #[arg(long, env = "LEASE_HEADER_READ_TIMEOUT", value_parser = positive_duration, default_value = "10s")]
    pub header_read_timeout: humantime::Duration,

    /// A connection on which no byte moves either way for this long is
    /// closed (this also ends a stream whose client stopped reading).
    #[arg(long, env = "LEASE_IDLE_TIMEOUT", value_parser = positive_duration, default_value = "60s")]
    pub idle_timeout: humantime::Duration,

    /// A request (not a stream) not answered after this gets 503
    /// `request_timeout`.
    #[arg(long, env = "LEASE_REQUEST_TIMEOUT", value_parser = positive_duration, default_value = "30s")]
    pub request_timeout: humantime::Duration,

    /// Most connections open at once; more are closed at accept (0: no cap).
    #[arg(long, env = "LEASE_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Most connections open at once from one client IP, the TCP peer:
    /// behind a reverse proxy that is the proxy, so raise it or set 0 there.
    #[arg(long, env = "LEASE_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,

    /// Most streams (event streams, log WebSockets) one caller may hold
    /// open: per token owner, per client IP without tokens (0: no cap).
    #[arg(long, env = "LEASE_MAX_STREAMS_PER_CALLER", default_value_t = 32)]
    pub max_streams_per_caller: u32,

    /// Sustained POST/DELETE requests per second per caller (per token
    /// owner; per client IP without tokens); over it, 429 `rate_limited`
    /// with Retry-After (0: no rate limit).
    #[arg(long, env = "LEASE_RATE_LIMIT", default_value_t = 10)]
    pub rate_limit: u32,

    /// POST/DELETE requests a caller may send at once on top of the rate.
    #[arg(long, env = "LEASE_RATE_LIMIT_BURST", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_burst: u32,
}

/// A duration longer than zero (a zero timeout would cut every request).
fn positive_duration(text: &str) -> Result<humantime::Duration, String> {
    let duration: humantime::Duration = text.parse().map_err(|e| format!("{e}"))?;
    if duration.is_zero() {
        return Err("must be longer than 0 (e.g. 10s)".to_owned());
    }
    Ok(duration)
}

impl LimitArgs {
    /// The connection limits of `lease_http::serve`.
    pub fn serve_config(&self) -> ServeConfig {
        ServeConfig::default()
            .header_read_timeout(self.header_read_timeout.into())
            .idle_timeout(self.idle_timeout.into())
            .max_connections((self.max_connections > 0).then_some(self.max_connections))
            .max_connections_per_ip(
                (self.max_connections_per_ip > 0).then_some(self.max_connections_per_ip),
            )
    }

    /// The router's per-caller limits.
    pub fn limits(&self) -> Limits {
        let rate = NonZeroU32::new(self.rate_limit).map(|per_second| RateLimit {
            per_second,
            burst: NonZeroU32::new(self.rate_limit_burst).unwrap_or(NonZeroU32::MIN),
        });
        Limits::default()
            .request_timeout(self.request_timeout.into())
            .rate(rate)
            .max_streams_per_caller(
                (self.max_streams_per_caller > 0).then_some(self.max_streams_per_caller),
            )
    }
}
