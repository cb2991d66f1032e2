//! The link of a real board: one SEGGER RTT up channel (device to harness)
//! and one down channel (harness to device), in RAM, read and written by
//! the debug probe while the core runs. The control block is the
//! `_SEGGER_RTT` symbol the harness finds in the ELF.

use rtt_target::{ChannelMode, DownChannel, UpChannel};

/// The RTT channels.
pub struct Rtt {
    up: UpChannel,
    down: DownChannel,
}

impl Rtt {
    /// Sets up the control block. The up channel blocks when full: a frame
    /// is never dropped, the harness drains it.
    pub fn init() -> Self {
        let channels = rtt_target::rtt_init! {
            up: { 0: { size: 1024, mode: ChannelMode::BlockIfFull, name: "bench" } }
            down: { 0: { size: 512, name: "bench" } }
        };
        Rtt {
            up: channels.up.0,
            down: channels.down.0,
        }
    }
}

impl device::Port for Rtt {
    fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        loop {
            let n = self.down.read(buf);
            if n > 0 {
                return Some(n);
            }
        }
    }

    fn write_all(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = self.up.write(rest);
            rest = &rest[n..];
        }
    }
}

/// Writes a last report (a panic) to the up channel.
pub fn report(bytes: &[u8]) {
    // SAFETY: called from the panic handler only; nothing else runs after it.
    if let Some(mut up) = unsafe { UpChannel::conjure(0) } {
        up.set_mode(ChannelMode::BlockIfFull);
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = up.write(rest);
            rest = &rest[n..];
        }
    }
}
