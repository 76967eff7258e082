//! Fake container runtime (being written).
