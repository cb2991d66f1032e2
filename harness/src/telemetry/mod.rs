//! What comes back from a device: the statistics of its tick counts.

pub mod stats;
