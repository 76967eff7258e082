//! Reaching what runs in a lease: its container's TCP ports.
//!
//! [`reach`] is the one way in: it checks the caller may use the lease
//! (404 otherwise), that the lease runs (409 `not_running`) and the port
//! (400 `invalid_port`), finds the container's address on the namespace's
//! network and connects with a short timeout (502 `upstream_unreachable`
//! when nothing listens, never a hang). Every connection it hands out comes
//! with the lease's end token ([`reach::Reached::ended`]), cancelled when
//! the lease ends (deleted, expired, exited) or the server stops: holders
//! close their connections then.

pub(crate) mod reach;

pub(crate) use reach::{LeaseEnds, Reached, connect, parse_port};
