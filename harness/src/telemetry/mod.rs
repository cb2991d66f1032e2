//! What comes back from a device: its tick counts as emulated
//! instructions, their statistics, and its static memory from the ELF.

pub mod elf;
pub mod icount;
pub mod stats;
