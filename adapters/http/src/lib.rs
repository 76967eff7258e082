//! ContainerLease HTTP adapter (work in progress).
#![forbid(unsafe_code)]
