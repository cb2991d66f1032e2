//! Cortex-M: cortex-m-rt's reset handler, the main stack pointer, and the
//! exit: through semihosting under QEMU (it ends with the status); a real
//! board idles, and the harness detaches its probe.

#[cortex_m_rt::entry]
fn main() -> ! {
    super::start()
}

/// The current stack pointer.
pub fn stack_pointer() -> usize {
    cortex_m::register::msp::read() as usize
}

/// Ends the program (QEMU exits with this status through semihosting; a
/// semihosting call on a board without a debugger that serves it would fault).
pub fn exit(code: i32) -> ! {
    #[cfg(not(feature = "rtt"))]
    {
        let status = if code == 0 {
            cortex_m_semihosting::debug::EXIT_SUCCESS
        } else {
            cortex_m_semihosting::debug::EXIT_FAILURE
        };
        cortex_m_semihosting::debug::exit(status);
    }
    #[cfg(feature = "rtt")]
    let _ = code;
    loop {
        cortex_m::asm::wfi();
    }
}
