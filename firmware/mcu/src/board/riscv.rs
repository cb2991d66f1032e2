//! RISC-V: riscv-rt's start code, the stack pointer, and the exit through
//! semihosting.

#[riscv_rt::entry]
fn main() -> ! {
    super::start()
}

/// The current stack pointer.
pub fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: reads a register, touches nothing.
    unsafe { core::arch::asm!("mv {}, sp", out(reg) sp) };
    sp
}

/// Ends the program (QEMU exits with this status through semihosting).
pub fn exit(code: i32) -> ! {
    let status = if code == 0 {
        riscv_semihosting::debug::EXIT_SUCCESS
    } else {
        riscv_semihosting::debug::EXIT_FAILURE
    };
    riscv_semihosting::debug::exit(status);
    loop {
        riscv::asm::wfi();
    }
}
