//! `lease`: ContainerLease on the command line.
fn main() {}
