//! What every Cortex-M board shares: stack painting, semihosting exit, and
//! the panic handler that reports the panic to the harness before exiting.

/// Ends the program (QEMU exits with this status through semihosting).
pub fn exit(code: i32) -> ! {
    let status = if code == 0 { cortex_m_semihosting::debug::EXIT_SUCCESS } else { cortex_m_semihosting::debug::EXIT_FAILURE };
    cortex_m_semihosting::debug::exit(status);
    loop {
        cortex_m::asm::wfi();
    }
}

/// The byte every unused stack word holds after painting.
const PAINT: u32 = 0xC0DE_C0DE;

extern "C" {
    /// End of `.bss` and `.data` in RAM: the lowest address the stack may reach.
    static mut __sheap: u32;
    /// Top of the stack.
    static _stack_start: u32;
}

/// Fills the unused stack, from the end of static data up to 256 bytes
/// below the current stack pointer, with a pattern.
pub fn paint_stack() {
    let low = core::ptr::addr_of_mut!(__sheap) as usize;
    let high = cortex_m::register::msp::read() as usize - 256;
    let mut p = low;
    while p < high {
        // SAFETY: the words between the static data and the live stack belong to nobody.
        unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
}

/// Bytes of stack used so far: from the top of the stack down to the
/// lowest word no longer holding the pattern.
pub fn stack_peak() -> Option<u32> {
    let low = core::ptr::addr_of_mut!(__sheap) as usize;
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let mut p = low;
    // SAFETY: reads of stack memory below the live frames.
    while p < top && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    Some((top - p) as u32)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    super::report_panic(info);
    exit(101)
}
