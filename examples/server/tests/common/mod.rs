//! Helpers shared by the test binaries of lease-server.

pub mod browser;
