//! Benchmarks of the Redis store (being written).

fn main() {}
