//! The core cycle counter of real Armv7-M and later boards, at the core
//! clock the chip module configured: the DWT cycle counter. (Armv6-M has
//! none: the M0+ boards count with SysTick, `systick.rs`.)

/// The DWT cycle counter (32 bits: wraps after 2^32 cycles, 10.7 s at 400 MHz).
pub struct Dwt {
    hz: u64,
    start: u32,
}

impl Dwt {
    /// Enables tracing and the cycle counter; `hz` is the core clock.
    pub fn init(hz: u32) -> Self {
        // SAFETY: the firmware is the only user of the core peripherals.
        let mut core = unsafe { cortex_m::Peripherals::steal() };
        core.DCB.enable_trace();
        // Cortex-M7 locks the DWT until its lock access register is written.
        cortex_m::peripheral::DWT::unlock();
        core.DWT.enable_cycle_counter();
        Dwt {
            hz: u64::from(hz),
            start: 0,
        }
    }
}

impl device::Clock for Dwt {
    const KIND: protocol::Clock = protocol::Clock::Cycles;

    fn ticks_per_second(&self) -> u64 {
        self.hz
    }

    fn start(&mut self) {
        self.start = cortex_m::peripheral::DWT::cycle_count();
    }

    fn elapsed(&mut self) -> u64 {
        u64::from(cortex_m::peripheral::DWT::cycle_count().wrapping_sub(self.start))
    }
}
