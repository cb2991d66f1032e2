//! Running a device program and talking to it: child processes, runners
//! (host, QEMU, probe), links (stdio, serial, semihosting), probe sessions,
//! power meters, and the MLPerf Tiny DUT protocol peers speak.

pub mod dut;
pub mod link;
pub mod meter;
pub mod probe;
pub mod process;
pub mod runner;
pub mod session;
