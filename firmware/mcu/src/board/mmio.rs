//! Peripheral registers: 32-bit volatile reads and writes at the addresses
//! the target file gives each board.

/// Writes `value` to the register at `address`.
#[inline(always)]
pub fn write(address: usize, value: u32) {
    // SAFETY: every caller passes a peripheral register of its board, at the
    // address the board's documentation (through the target file) gives.
    unsafe { core::ptr::write_volatile(address as *mut u32, value) }
}

/// Reads the register at `address`.
#[inline(always)]
#[cfg_attr(
    feature = "board-rp2040",
    allow(dead_code, reason = "the board only writes registers")
)]
pub fn read(address: usize) -> u32 {
    // SAFETY: as in `write`.
    unsafe { core::ptr::read_volatile(address as *const u32) }
}
