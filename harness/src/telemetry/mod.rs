//! What comes back from a device: its tick counts as emulated
//! instructions, and their statistics.

pub mod icount;
pub mod stats;
