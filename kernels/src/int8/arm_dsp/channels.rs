//! Every output channel of a group of four pixels in one loop of assembly,
//! for the sparse kernels (`crate::sparse`): per channel the four sums
//! over its entries from its starting value, their requantization
//! ([`RoundingDown`](crate::quant::RoundingDown)'s form), the output offset
//! and clamp, and the four stores. The inner loop over entries needs twelve
//! registers, all a core has for assembly, so the loop over channels keeps
//! its cursors in a frame on the stack; compiled from Rust around the
//! entries' assembly, the same loop spilled and reloaded about twenty
//! values a channel (KWS at 80% zeros on qemu-m4: 90 instructions a
//! channel and group besides the entries, against 60 here).

#![allow(unsafe_code)]
use super::requant::round_down;
use super::sparse::{entry_step, odd_then_pairs, quad_entry_at};
use crate::int8::OutputStage;
use crate::quant::Requant;
use core::arch::asm;

/// What the loop reads, in the order of its stack frame.
#[repr(C)]
pub(crate) struct Channels {
    /// `row_ptr[1]`: where each channel's entries end, channel by channel.
    pub ends: *const u32,
    /// The entries (`crate::sparse::entry`).
    pub entries: *const u32,
    /// Each channel's starting value (bias plus the offset's term).
    pub starts: *const i32,
    /// Each channel's multiplier (double rounding).
    pub requant: *const Requant,
    /// The first pixel's value of the first channel; the other pixels'
    /// rows follow `channels` apart.
    pub out: *mut i8,
    /// `out + channels`: where the loop stops.
    pub out_end: *mut i8,
    /// Channels per pixel, and three times that.
    pub channels: usize,
    pub channels3: usize,
    /// The gathered input ([`gather`]: the first window; [`quad`]: the
    /// quad's words channel by channel) and, gathering, the step between
    /// windows and three times that.
    pub x: *const i8,
    pub step: usize,
    pub step3: usize,
    /// Output offset and clamp.
    pub offset: i32,
    pub min: i32,
    pub max: i32,
}

impl Channels {
    /// A frame for `count` channels whose first pixel's values start at
    /// `out` (the other three pixels' rows `channels` apart), `starts` and
    /// `requant` one per channel, the stage's output offset and clamp; the
    /// input's fields (`ends`, `entries`, `x`, `step`, `step3`) are left
    /// empty for the caller.
    pub(crate) fn new(
        stage: &OutputStage,
        (starts, requant): (&[i32], &[Requant]),
        out: &mut [i8],
        count: usize,
        channels: usize,
    ) -> Self {
        Channels {
            ends: core::ptr::null(),
            entries: core::ptr::null(),
            starts: starts.as_ptr(),
            requant: requant.as_ptr(),
            out: out.as_mut_ptr(),
            out_end: out[count..].as_mut_ptr(),
            channels,
            channels3: 3 * channels,
            x: core::ptr::null(),
            step: 0,
            step3: 0,
            offset: stage.output_offset,
            min: stage.act_min,
            max: stage.act_max,
        }
    }
}

/// Bytes of the stack frame: [`Channels`], rounded to eight.
const FRAME: usize = 56;
const _: () = assert!(core::mem::size_of::<Channels>() == FRAME);

/// The loop over channels: `$start` leaves a channel's four sums in
/// `{a0}`..`{a3}` (and may use every register but `{p}`; see
/// [`entries_start`] and [`sums_start`]), `$clamp` the output offset and
/// clamp of `{a0}`..`{a3}`.
macro_rules! channel_loop {
    ($start:expr, $clamp:expr) => {
        concat!(
            // The frame: `Channels` copied below the stack pointer.
            "sub sp, sp, #56\n",
            "movs {t}, #0\n",
            "1:\n",
            "ldr {a}, [{e}, {t}]\n",
            "str {a}, [sp, {t}]\n",
            "adds {t}, #4\n",
            "cmp {t}, #56\n",
            "bne 1b\n",
            "5:\n",
            $start,
            // Its multiplier `m` in {x} and shift in {s3}.
            "ldr {t}, [sp, #12]\n",
            "ldrd {x}, {s3}, [{t}], #8\n",
            "str {t}, [sp, #12]\n",
            "cmp {s3}, #0\n",
            "bge 6f\n",
            // A right shift: `down` in {s3}, `2^(down+1) + 1` in {s1}.
            "mvn {s3}, {s3}\n",
            "movs {s1}, #2\n",
            "lsl {s1}, {s1}, {s3}\n",
            "adds {s1}, #1\n",
            round_down!("a0", "e", "a", "t", "x", "s1", "s3"),
            round_down!("a1", "e", "a", "t", "x", "s1", "s3"),
            round_down!("a2", "e", "a", "t", "x", "s1", "s3"),
            round_down!("a3", "e", "a", "t", "x", "s1", "s3"),
            "b 7f\n",
            // A left shift (a multiplier of one half or more), then the
            // doubling high multiply alone.
            "6:\n",
            shift_left!("a0"),
            shift_left!("a1"),
            shift_left!("a2"),
            shift_left!("a3"),
            "7:\n",
            "ldr {t}, [sp, #44]\n",
            "add {a0}, {a0}, {t}\n",
            "add {a1}, {a1}, {t}\n",
            "add {a2}, {a2}, {t}\n",
            "add {a3}, {a3}, {t}\n",
            $clamp,
            // The four pixels' values, `channels` apart.
            "ldr {t}, [sp, #16]\n",
            "ldr {x}, [sp, #24]\n",
            "ldr {s1}, [sp, #28]\n",
            "strb {a1}, [{t}, {x}]\n",
            "strb {a2}, [{t}, {x}, lsl #1]\n",
            "strb {a3}, [{t}, {s1}]\n",
            "strb {a0}, [{t}], #1\n",
            "str {t}, [sp, #16]\n",
            "ldr {x}, [sp, #20]\n",
            "cmp {t}, {x}\n",
            "bne 5b\n",
            "add sp, sp, #56\n",
        )
    };
}

/// The sparse kernels' start of a channel: its end of entries and its
/// starting value (`starts`), then `$entries`, the entries' loop from
/// `{p}` to `{end}` into `{a0}`..`{a3}` after `$reload` has put its
/// input's registers back.
macro_rules! entries_start {
    ($entries:expr, $reload:expr) => {
        concat!(
            "ldr {t}, [sp, #0]\n",
            "ldr {e}, [{t}], #4\n",
            "str {t}, [sp, #0]\n",
            "ldr {t}, [sp, #4]\n",
            "add {end}, {t}, {e}, lsl #2\n",
            "ldr {t}, [sp, #8]\n",
            "ldr {a0}, [{t}], #4\n",
            "str {t}, [sp, #8]\n",
            "mov {a1}, {a0}\n",
            "mov {a2}, {a0}\n",
            "mov {a3}, {a0}\n",
            $reload,
            $entries,
        )
    };
}

/// A dense quad's start of a channel (see [`sums`]): its starting value
/// (`starts`, the bias) plus its four sums (`entries` walks the
/// `[i32; 4]` of each channel).
macro_rules! sums_start {
    () => {
        concat!(
            "ldr {t}, [sp, #8]\n",
            "ldr {a3}, [{t}], #4\n",
            "str {t}, [sp, #8]\n",
            "ldr {t}, [sp, #4]\n",
            "ldrd {x}, {e}, [{t}], #8\n",
            "add {a0}, {a3}, {x}\n",
            "add {a1}, {a3}, {e}\n",
            "ldrd {x}, {e}, [{t}], #8\n",
            "add {a2}, {a3}, {x}\n",
            "add {a3}, {a3}, {e}\n",
            "str {t}, [sp, #4]\n",
        )
    };
}

/// `(({a} << {s3}) * {x} + 2^30) >> 31` (gemmlowp's doubling high
/// multiply of the shifted value; its one saturating case needs a
/// multiplier of -2^31, which a valid one never is).
macro_rules! shift_left {
    ($a:literal) => {
        concat!(
            "lsl {",
            $a,
            "}, {",
            $a,
            "}, {s3}\n",
            "mov {e}, #0x40000000\n",
            "mov {a}, #0\n",
            "smlal {e}, {a}, {",
            $a,
            "}, {x}\n",
            "lsr {e}, {e}, #31\n",
            "orr {",
            $a,
            "}, {e}, {a}, lsl #1\n",
        )
    };
}

/// Int8's whole range: one SSAT a value.
macro_rules! clamp_full {
    () => {
        concat!(
            "ssat {a0}, #8, {a0}\n",
            "ssat {a1}, #8, {a1}\n",
            "ssat {a2}, #8, {a2}\n",
            "ssat {a3}, #8, {a3}\n",
        )
    };
}

/// One value into `[{x}, {s1}]`.
macro_rules! clamp_one {
    ($a:literal) => {
        concat!(
            "cmp {",
            $a,
            "}, {x}\n",
            "it lt\n",
            "movlt {",
            $a,
            "}, {x}\n",
            "cmp {",
            $a,
            "}, {s1}\n",
            "it gt\n",
            "movgt {",
            $a,
            "}, {s1}\n",
        )
    };
}

/// The stage's own range.
macro_rules! clamp_range {
    () => {
        concat!(
            "ldr {x}, [sp, #48]\n",
            "ldr {s1}, [sp, #52]\n",
            clamp_one!("a0"),
            clamp_one!("a1"),
            clamp_one!("a2"),
            clamp_one!("a3"),
        )
    };
}

/// The window loads of the gathered windows: the first's address, `step`
/// and three times that back in registers after the requantization.
macro_rules! reload_gather {
    () => {
        concat!(
            "ldr {x}, [sp, #32]\n",
            "ldr {s1}, [sp, #36]\n",
            "ldr {s3}, [sp, #40]\n",
        )
    };
}

/// The quad's words: their address only.
macro_rules! reload_quad {
    () => {
        "ldr {s1}, [sp, #32]\n"
    };
}

/// One entry over a quad laid out channel by channel (as
/// [`quad_dots4`](super::sparse::quad_dots4)), the quad at `{s1}`.
macro_rules! quad_step {
    () => {
        quad_entry_at!("s1")
    };
}

/// The channel loop's assembly (`$template`) with the operands every
/// form shares (the frame in `{e}`, nine more registers) and the start's
/// own (`$operands`).
macro_rules! channel_loop_asm {
    ($template:expr, $c:expr, $($operands:tt)*) => {
        asm!(
            $template,
            e = inout(reg) $c as *const Channels => _,
            x = out(reg) _,
            s1 = out(reg) _,
            s3 = out(reg) _,
            a = out(reg) _,
            t = out(reg) _,
            a0 = out(reg) _,
            a1 = out(reg) _,
            a2 = out(reg) _,
            a3 = out(reg) _,
            $($operands)*
        )
    };
}

/// The loop's assembly for one form of input and of clamp.
macro_rules! channel_asm {
    ($c:ident, $step:ident, $reload:ident, $clamp:ident) => {
        channel_loop_asm!(
            channel_loop!(entries_start!(odd_then_pairs!($step), $reload!()), $clamp!()),
            $c,
            p = inout(reg) $c.entries.add(*$c.ends.sub(1) as usize) => _,
            end = out(reg) _,
        )
    };
}

/// The loop for one form of input, both forms of clamp.
macro_rules! channels_fn {
    ($(#[$doc:meta])* $name:ident, $step:ident, $reload:ident) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// Every pointer of `c` must cover what the loop reads and writes
        /// for `c.channels` channels (at least one), their entries inside
        /// the input.
        #[inline(always)]
        pub(crate) unsafe fn $name<const FULL: bool>(c: &Channels) {
            // SAFETY: the caller's pointers cover every access; the loop
            // restores the stack pointer it moves.
            match FULL {
                true => channel_asm!(c, $step, $reload, clamp_full),
                false => channel_asm!(c, $step, $reload, clamp_range),
            }
        }
    };
}

channels_fn!(
    /// The channels over four windows gathered side by side, `step`
    /// apart (`crate::sparse::depthwise`): a byte load and SMLABB a pixel
    /// and entry.
    gather,
    entry_step,
    reload_gather
);

channels_fn!(
    /// The channels over a quad of input rows laid out channel by channel
    /// (`crate::sparse::pointwise`): one word of four pixels an entry.
    quad,
    quad_step,
    reload_quad
);

/// The requantization of a dense quad's sums (`super::conv`): `c.entries`
/// the channels' `[i32; 4]` sums, `c.starts` their biases, the rest as
/// for the sparse loops (`ends`, `x`, `step` and `step3` unused).
///
/// # Safety
/// Every pointer of `c` must cover what the loop reads and writes for
/// `c.channels` channels (at least one).
#[inline(always)]
pub(crate) unsafe fn sums<const FULL: bool>(c: &Channels) {
    macro_rules! sums_asm {
        ($clamp:ident) => {
            channel_loop_asm!(channel_loop!(sums_start!(), $clamp!()), c,)
        };
    }
    // SAFETY: the caller's pointers cover every access; the loop restores
    // the stack pointer it moves.
    match FULL {
        true => sums_asm!(clamp_full),
        false => sums_asm!(clamp_range),
    }
}
