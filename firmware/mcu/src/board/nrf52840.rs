//! Nordic nRF52840 (nRF52840-DK, Cortex-M4F): the CPU runs at the fixed
//! 64 MHz of HFCLK; `nrf52840-hal` switches HFCLK to the external 32 MHz
//! crystal for an accurate clock.

use super::dwt::Dwt;
use super::marker::{Line, Nrf};
use super::rtt::Rtt;
use nrf52840_hal::{clocks::Clocks, pac};

/// The link.
pub type Port = Rtt;
/// The core cycle counter.
pub type Clock = Dwt;
/// nRF GPIO.
pub type Marker = Line<Nrf>;

/// The CPU clock (product specification, section "CPU": 64 MHz).
const CPU_HZ: u32 = 64_000_000;

/// Starts the crystal and the link, the counter and the marker.
pub fn init() -> (Port, Clock, Marker) {
    let p = pac::Peripherals::take().expect("peripherals taken once");
    // The crystal keeps running after the handle is gone (it has no Drop).
    let _clocks = Clocks::new(p.CLOCK).enable_ext_hfosc();
    (Rtt::init(), Dwt::init(CPU_HZ), Marker::init(CPU_HZ))
}
