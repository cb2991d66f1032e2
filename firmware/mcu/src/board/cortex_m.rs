//! Cortex-M: cortex-m-rt's reset handler, the main stack pointer, and the
//! exit through semihosting (QEMU ends with the status; on a board with a
//! debugger attached, the debugger sees it).

#[cortex_m_rt::entry]
fn main() -> ! {
    super::start()
}

/// The current stack pointer.
pub fn stack_pointer() -> usize {
    cortex_m::register::msp::read() as usize
}

/// Ends the program (QEMU exits with this status through semihosting).
pub fn exit(code: i32) -> ! {
    let status = if code == 0 { cortex_m_semihosting::debug::EXIT_SUCCESS } else { cortex_m_semihosting::debug::EXIT_FAILURE };
    cortex_m_semihosting::debug::exit(status);
    loop {
        cortex_m::asm::wfi();
    }
}
