//! Arm MPS2/MPS3 boards (CMSDK APB UART0 and APB timer): mps2-an385 (M3),
//! mps2-an386 (M4), mps2-an500 (M7), mps2-an505 (M33), mps3-an547 (M55).
//! The addresses and the clock are the board's; the target file gives them
//! as `BENCH_UART_BASE`, `BENCH_TIMER_BASE` and `BENCH_CORE_HZ` at build time.
//!
//! The clock is the 32-bit APB timer, read without interrupts: SysTick is
//! only 24 bits, and the exception that counts its wraps adds instructions
//! that depend on the phase, which would break exact counts under QEMU.

use core::fmt::Write;

/// Board name reported in the hello.
pub const NAME: &str = env!("BENCH_BOARD");

/// UART0 base address.
const UART: usize = parse_hex(env!("BENCH_UART_BASE"));
/// TIMER0 base address.
const TIMER: usize = parse_hex(env!("BENCH_TIMER_BASE"));
/// Core clock in Hz.
const CORE_HZ: u64 = parse_dec(env!("BENCH_CORE_HZ"));

const fn parse_hex(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = if b.len() > 2 && b[0] == b'0' && (b[1] == b'x' || b[1] == b'X') { 2 } else { 0 };
    let mut v = 0usize;
    while i < b.len() {
        let d = match b[i] {
            c @ b'0'..=b'9' => c - b'0',
            c @ b'a'..=b'f' => c - b'a' + 10,
            c @ b'A'..=b'F' => c - b'A' + 10,
            b'_' => {
                i += 1;
                continue;
            }
            _ => panic!("BENCH_UART_BASE or BENCH_TIMER_BASE is not hexadecimal"),
        };
        v = v * 16 + d as usize;
        i += 1;
    }
    v
}

const fn parse_dec(s: &str) -> u64 {
    let b = s.as_bytes();
    let mut v = 0u64;
    let mut i = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "BENCH_CORE_HZ is not a decimal number");
        v = v * 10 + (b[i] - b'0') as u64;
        i += 1;
    }
    v
}

const DATA: usize = UART;
const STATE: usize = UART + 0x4;
const CTRL: usize = UART + 0x8;
const BAUDDIV: usize = UART + 0x10;
const TX_FULL: u32 = 1;
const RX_FULL: u32 = 2;

/// CMSDK APB UART.
pub struct Uart;

impl Uart {
    fn init() -> Self {
        // SAFETY: the UART's registers, at the board's documented address.
        unsafe {
            core::ptr::write_volatile(BAUDDIV as *mut u32, 16);
            core::ptr::write_volatile(CTRL as *mut u32, 0b11); // TX and RX enabled
        }
        Uart
    }

    fn put(&mut self, byte: u8) {
        // SAFETY: as in `init`.
        unsafe {
            while core::ptr::read_volatile(STATE as *const u32) & TX_FULL != 0 {}
            core::ptr::write_volatile(DATA as *mut u32, byte as u32);
        }
    }
}

impl device::Port for Uart {
    fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        let mut n = 0;
        // SAFETY: as in `init`.
        unsafe {
            while core::ptr::read_volatile(STATE as *const u32) & RX_FULL == 0 {}
            while n < buf.len() && core::ptr::read_volatile(STATE as *const u32) & RX_FULL != 0 {
                buf[n] = core::ptr::read_volatile(DATA as *const u32) as u8;
                n += 1;
            }
        }
        Some(n)
    }

    fn write_all(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.put(b);
        }
    }
}

/// CMSDK APB timer 0, free-running down from `u32::MAX` at the APB clock.
pub struct Timer {
    start: u32,
}

const TIMER_CTRL: usize = TIMER;
const TIMER_VALUE: usize = TIMER + 0x4;
const TIMER_RELOAD: usize = TIMER + 0x8;

impl Timer {
    fn init() -> Self {
        // SAFETY: the timer's registers, at the board's documented address.
        unsafe {
            core::ptr::write_volatile(TIMER_CTRL as *mut u32, 0);
            core::ptr::write_volatile(TIMER_RELOAD as *mut u32, u32::MAX);
            core::ptr::write_volatile(TIMER_VALUE as *mut u32, u32::MAX);
            core::ptr::write_volatile(TIMER_CTRL as *mut u32, 1); // enabled, no interrupt
        }
        Timer { start: 0 }
    }

    fn value() -> u32 {
        // SAFETY: as in `init`.
        unsafe { core::ptr::read_volatile(TIMER_VALUE as *const u32) }
    }
}

impl device::Clock for Timer {
    const KIND: protocol::Clock = protocol::Clock::Cycles;

    fn ticks_per_second(&self) -> u64 {
        CORE_HZ
    }

    fn start(&mut self) {
        self.start = Self::value();
    }

    fn elapsed(&mut self) -> u64 {
        // Counting down; one wrap (2^32 ticks, minutes of board time) at most.
        self.start.wrapping_sub(Self::value()) as u64
    }
}

/// The board's peripherals the firmware uses.
pub struct Board {
    uart: Option<Uart>,
    clock: Option<Timer>,
}

impl Board {
    /// The UART and the clock, taken once.
    pub fn split(&mut self) -> (Uart, Timer) {
        (self.uart.take().expect("split once"), self.clock.take().expect("split once"))
    }
}

#[cortex_m_rt::entry]
fn main() -> ! {
    let mut board = Board { uart: Some(Uart::init()), clock: Some(Timer::init()) };
    crate::run(&mut board)
}

/// Sends the panic message to the harness as an error frame.
pub fn report_panic(info: &core::panic::PanicInfo) {
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
    let (mut scratch, mut frame) = ([0u8; 200], [0u8; 220]);
    let mut uart = Uart::init();
    if let Ok(n) = protocol::encode(&protocol::Response::Error(text), &mut scratch, &mut frame) {
        // A partial frame from before the panic ends at this delimiter.
        device::Port::write_all(&mut uart, &[0]);
        device::Port::write_all(&mut uart, &frame[..n]);
    }
}
