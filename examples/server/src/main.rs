//! ContainerLease server (work in progress).
fn main() {}
