//! Running a device program and talking to it: child processes, runners
//! (host, QEMU, probe), links (stdio, serial, semihosting), probe sessions
//! and power meters.

pub mod dut;
pub mod link;
pub mod meter;
pub mod probe;
pub mod process;
pub mod runner;
pub mod session;
