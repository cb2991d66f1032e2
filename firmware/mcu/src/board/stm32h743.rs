//! ST STM32H743 (NUCLEO-H743ZI, Cortex-M7): 400 MHz core clock (the
//! rating at voltage scale 1) from the ST-LINK's 8 MHz clock output (HSE
//! bypass) through PLL1, set up by `stm32h7xx-hal`, with the instruction
//! and data caches on, as every speed figure for this core assumes. RAM is
//! the DTCM (0x2000_0000, not cached), so the probe reads the RTT
//! buffers as the core wrote them. The reported clock is the one the HAL
//! configured.

use super::dwt::Dwt;
use super::marker::{Line, Stm32};
use super::rtt::Rtt;
use stm32h7xx_hal::{pac, prelude::*};

/// The link.
pub type Port = Rtt;
/// The core cycle counter.
pub type Clock = Dwt;
/// GPIO ports from 0x5802_0000, clocks in RCC_AHB4ENR.
pub type Marker = Line<Stm32<0x5802_44E0, 0x5802_0000>>;

/// Sets the clock tree and caches up and starts the link, the counter and the marker.
pub fn init() -> (Port, Clock, Marker) {
    let p = pac::Peripherals::take().expect("peripherals taken once");
    let mut core = cortex_m::Peripherals::take().expect("core peripherals taken once");
    let pwrcfg = p.PWR.constrain().freeze();
    let ccdr = p
        .RCC
        .constrain()
        .use_hse(8.MHz())
        .bypass_hse()
        .sys_ck(400.MHz())
        .freeze(pwrcfg, &p.SYSCFG);
    core.SCB.enable_icache();
    core.SCB.enable_dcache(&mut core.CPUID);
    let hz = ccdr.clocks.c_ck().raw();
    (Rtt::init(), Dwt::init(hz), Marker::init(hz))
}
