//! HTTP benchmarks (work in progress).
fn main() {}
