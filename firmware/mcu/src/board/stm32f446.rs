//! ST STM32F446 (NUCLEO-F446RE, Cortex-M4F): 180 MHz from the ST-LINK's
//! 8 MHz clock output (HSE bypass, the board's default solder bridges)
//! through the PLL, set up by `stm32f4xx-hal`, which also turns on the
//! regulator's over-drive that 180 MHz needs. The reported clock is the
//! one the HAL configured.

use super::dwt::Dwt;
use super::marker::{Line, Stm32};
use super::rtt::Rtt;
use stm32f4xx_hal::{pac, prelude::*, rcc::Config};

/// The link.
pub type Port = Rtt;
/// The core cycle counter.
pub type Clock = Dwt;
/// GPIO ports from 0x4002_0000, clocks in RCC_AHB1ENR.
pub type Marker = Line<Stm32<0x4002_3830, 0x4002_0000>>;

/// Sets the clock tree up and starts the link, the counter and the marker.
pub fn init() -> (Port, Clock, Marker) {
    let p = pac::Peripherals::take().expect("peripherals taken once");
    let rcc = p.RCC.freeze(
        Config::hse(8.MHz())
            .bypass_hse_oscillator()
            .sysclk(180.MHz()),
    );
    let hz = rcc.clocks.sysclk().raw();
    (Rtt::init(), Dwt::init(hz), Marker::init(hz))
}
