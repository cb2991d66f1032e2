//! What comes back from a device: its tick counts as emulated
//! instructions, their statistics, its static memory from the ELF, and
//! energy from the target's datasheet model.

pub mod calibration;
pub mod cycles;
pub mod elf;
pub mod energy;
pub mod icount;
pub mod stats;
