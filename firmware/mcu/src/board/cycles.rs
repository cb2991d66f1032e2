//! Core cycle counters of real Cortex-M boards, at the core clock the
//! chip module configured: the DWT cycle counter (Armv7-M and later), and
//! SysTick on Armv6-M (Cortex-M0/M0+, no DWT counter), whose 24 bits are
//! extended by counting its wraps in its exception.

/// The DWT cycle counter (32 bits: wraps after 2^32 cycles, 10.7 s at 400 MHz).
#[cfg(not(armv6m))]
pub struct Dwt {
    hz: u64,
    start: u32,
}

#[cfg(not(armv6m))]
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

#[cfg(not(armv6m))]
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

/// SysTick wraps seen by its exception.
#[cfg(armv6m)]
static mut WRAPS: u32 = 0;

#[cfg(armv6m)]
#[cortex_m_rt::exception]
fn SysTick() {
    // SAFETY: single core; the only writer, read by `Systick::now` with a retry.
    unsafe {
        core::ptr::write_volatile(
            core::ptr::addr_of_mut!(WRAPS),
            core::ptr::read_volatile(core::ptr::addr_of!(WRAPS)) + 1,
        )
    };
}

/// SysTick at the core clock, counting down from 2^24 - 1, extended by its wraps.
/// The exception costs a few dozen cycles every 2^24 cycles (under 3 ppm).
#[cfg(armv6m)]
pub struct Systick {
    hz: u64,
    start: u64,
}

#[cfg(armv6m)]
const RELOAD: u32 = 0x00FF_FFFF;

#[cfg(armv6m)]
impl Systick {
    /// Starts SysTick at the core clock with its wrap exception; `hz` is the core clock.
    pub fn init(hz: u32) -> Self {
        // SAFETY: the firmware is the only user of the core peripherals.
        let mut core = unsafe { cortex_m::Peripherals::steal() };
        core.SYST
            .set_clock_source(cortex_m::peripheral::syst::SystClkSource::Core);
        core.SYST.set_reload(RELOAD);
        core.SYST.clear_current();
        core.SYST.enable_interrupt();
        core.SYST.enable_counter();
        Systick {
            hz: u64::from(hz),
            start: 0,
        }
    }

    /// Cycles since `init`.
    fn now() -> u64 {
        loop {
            // SAFETY: a word read of a counter only the exception writes.
            let before = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(WRAPS)) };
            let value = cortex_m::peripheral::SYST::get_current();
            // SAFETY: as above.
            let after = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(WRAPS)) };
            // A wrap between the two reads: read again.
            if before == after {
                return u64::from(before) * u64::from(RELOAD + 1) + u64::from(RELOAD - value);
            }
        }
    }
}

#[cfg(armv6m)]
impl device::Clock for Systick {
    const KIND: protocol::Clock = protocol::Clock::Cycles;

    fn ticks_per_second(&self) -> u64 {
        self.hz
    }

    fn start(&mut self) {
        self.start = Self::now();
    }

    fn elapsed(&mut self) -> u64 {
        Self::now() - self.start
    }
}
