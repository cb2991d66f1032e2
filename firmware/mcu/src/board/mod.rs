//! Board support, chosen by cargo feature. A board gives the firmware a
//! link to the harness ([`device::Port`]), a clock ([`device::Clock`]) and
//! a marker line for energy meters ([`device::Marker`]); the architecture
//! module gives the entry point, the stack pointer and the exit. Stack
//! painting and panic reporting are the same everywhere.
//!
//! Emulated boards talk over a UART and count with a board timer; real
//! boards talk over RTT through the debug probe, count core cycles, and
//! have their clock tree set up by their family's HAL or PAC.

mod config;
mod mmio;

#[cfg(any(feature = "board-cmsdk", feature = "board-sse300"))]
mod cmsdk_uart;
#[cfg(any(feature = "board-cmsdk", feature = "board-sse300"))]
use cmsdk_uart::Uart;

#[cfg(feature = "board-cmsdk")]
mod cmsdk_timer;
#[cfg(feature = "board-cmsdk")]
use cmsdk_timer::Timer;

#[cfg(feature = "board-sse300")]
mod sse_counter;
#[cfg(feature = "board-sse300")]
use sse_counter::Timer;

#[cfg(feature = "board-nrf51")]
mod nrf51;
#[cfg(feature = "board-nrf51")]
use nrf51::{Timer, Uart};

#[cfg(feature = "board-sifive-e")]
mod sifive_e;
#[cfg(feature = "board-sifive-e")]
use sifive_e::{Timer, Uart};

#[cfg(all(feature = "rtt", not(armv6m)))]
mod dwt;
#[cfg(feature = "rtt")]
mod marker;
#[cfg(feature = "rtt")]
mod rtt;
#[cfg(all(armv6m, any(feature = "board-rp2040", feature = "check-systick")))]
mod systick;

#[cfg(feature = "board-stm32l4r5")]
mod stm32l4r5;
#[cfg(feature = "board-stm32l4r5")]
use stm32l4r5 as chip;

#[cfg(feature = "board-stm32f446")]
mod stm32f446;
#[cfg(feature = "board-stm32f446")]
use stm32f446 as chip;

#[cfg(feature = "board-stm32h743")]
mod stm32h743;
#[cfg(feature = "board-stm32h743")]
use stm32h743 as chip;

#[cfg(feature = "board-nrf52840")]
mod nrf52840;
#[cfg(feature = "board-nrf52840")]
use nrf52840 as chip;

#[cfg(feature = "board-rp2040")]
mod rp2040;
#[cfg(feature = "board-rp2040")]
use rp2040 as chip;

#[cfg(feature = "cortex-m")]
mod cortex_m;
#[cfg(feature = "cortex-m")]
pub use cortex_m::exit;
#[cfg(feature = "cortex-m")]
use cortex_m::stack_pointer;

#[cfg(feature = "riscv")]
mod riscv;
#[cfg(feature = "riscv")]
pub use riscv::exit;
#[cfg(feature = "riscv")]
use riscv::stack_pointer;

use core::fmt::Write;

/// The clock the board's timer counts at, in Hz, as the target file
/// configured it (0: the board counts instructions). Kept in the ELF under
/// this name, so the harness can check and record what a firmware was built for.
#[no_mangle]
#[used]
pub static BENCH_CLOCK_HZ: u64 = match option_env!("BENCH_CORE_HZ") {
    Some(hz) => config::parse_dec(hz),
    None => 0,
};

/// Board name reported in the hello (the target's name).
pub const NAME: &str = env!("BENCH_BOARD");

/// An emulated board: its UART, its timer, no marker.
#[cfg(not(feature = "rtt"))]
mod emulated {
    /// The link to the harness.
    pub type Port = super::Uart;
    /// The time base.
    pub type Clock = super::Timer;
    /// The meter line (none under emulation).
    pub type Marker = device::NoMarker;

    /// The UART and the timer, started.
    pub fn init() -> (Port, Clock, Marker) {
        (super::Uart::init(), super::Timer::init(), device::NoMarker)
    }

    /// Writes a last report (a panic) to the UART.
    pub fn report(bytes: &[u8]) {
        device::Port::write_all(&mut super::Uart::init(), bytes);
    }
}
#[cfg(not(feature = "rtt"))]
use emulated as chip;

#[cfg(feature = "rtt")]
/// Writes a last report (a panic) to the RTT up channel.
fn report(bytes: &[u8]) {
    rtt::report(bytes);
}
#[cfg(not(feature = "rtt"))]
use chip::report;

pub use chip::{Clock, Marker, Port};

/// Sets up the board and serves; the architecture's entry point calls it.
fn start() -> ! {
    #[cfg(feature = "check-systick")]
    systick::check_a_pending_wrap(config::parse_dec(env!("BENCH_CORE_HZ")) as u32);
    let (port, clock, marker) = chip::init();
    crate::run(port, clock, marker)
}

/// The word every unused stack word holds after painting.
const PAINT: u32 = 0xC0DE_C0DE;

extern "C" {
    /// End of `.bss` and `.data` in RAM (cortex-m-rt and riscv-rt both
    /// define it): the lowest address the stack may reach.
    static mut __sheap: u32;
    /// Top of the stack.
    static _stack_start: u32;
}

/// Fills the unused stack, from the end of static data up to 256 bytes
/// below the current stack pointer, with a pattern.
pub fn paint_stack() {
    let low = core::ptr::addr_of_mut!(__sheap) as usize;
    let high = stack_pointer() - 256;
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

/// Sends the panic message to the harness as an error frame, then stays
/// there until the harness stops the emulator or board. It does not exit:
/// an exiting QEMU closes its PTY, and the hang-up discards whatever the
/// harness had not read yet, so under load the report arrived cut short.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    struct Line([u8; 160], usize);
    impl Write for Line {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for &b in s.as_bytes() {
                if self.1 < self.0.len() {
                    self.0[self.1] = b;
                    self.1 += 1;
                }
            }
            Ok(())
        }
    }
    let mut line = Line([0; 160], 0);
    let _ = write!(line, "firmware panicked: {}", info.message());
    let text = core::str::from_utf8(&line.0[..line.1]).unwrap_or("firmware panicked");
    let (mut scratch, mut frame) = ([0u8; 200], [0u8; protocol::frame_len(200)]);
    if let Ok(n) = protocol::encode(&protocol::Response::Error(text), &mut scratch, &mut frame) {
        // A partial frame from before the panic ends at this delimiter.
        report(&[0]);
        report(&frame[..n]);
    }
    loop {
        core::hint::spin_loop();
    }
}
