//! Board support, chosen by cargo feature: each board module gives a UART
//! ([`device::Port`]), a timer ([`device::Clock`]), an exit, and stack
//! painting; `NAME` is what the firmware reports in its hello.

#[cfg(feature = "board-cmsdk")]
mod cmsdk;
#[cfg(feature = "board-cmsdk")]
pub use cmsdk::*;

#[cfg(feature = "board-cmsdk")]
mod cortex_m_common;
#[cfg(feature = "board-cmsdk")]
pub use cortex_m_common::*;
