//! The CLI's sign-in: a loopback redirect (`/auth/cli`) or a device code
//! (`/auth/device`), each ending in a personal token for `lease`.

/// One-time codes and device codes in progress (server memory).
#[derive(Debug, Default)]
pub(crate) struct CliLogins {}
