//! Helium requantization of a row of accumulators, four output channels
//! per vector, equal to [`OutputStage::finish`] with double rounding:
//!
//! - `x << max(shift, 0)` (VSHL by a vector of shifts),
//! - gemmlowp's saturating rounding doubling high multiply, which is
//!   exactly VQRDMULH (both round half up: `(2ab + 2^31) >> 32`, and
//!   saturate only `i32::MIN * i32::MIN`),
//! - gemmlowp's rounding divide by `2^right`, ties away from zero: VRSHL
//!   rounds ties up, so negative values first lose one (saturating), as
//!   CMSIS-NN's `arm_divide_by_power_of_two_mve` does,
//! - the output offset, the clamp, and a narrowing store (VSTRB.32).
//!
//! The multipliers and shifts are [`Requant`]s side by side in memory;
//! VLD20/VLD21 split four of them into a vector of each.

#![allow(unsafe_code)]
use crate::int8::OutputStage;
use crate::quant::{Requant, Rounding};
use core::arch::asm;

/// Output channels per vector.
const LANES: usize = 4;

/// The loop over `$vectors` vectors of four channels; q2 holds their
/// multipliers and q3 their shifts, `$setup` runs once, `$left` applies
/// the left shifts and
/// `$right` leaves minus the right shifts in q3. q1 then holds -1 where
/// the value is negative and shifts right (gemmlowp's rounding of ties
/// away from zero).
macro_rules! requantize_vectors {
    ($setup:literal, $left:literal, $right:literal, $sums:expr, $req:expr, $out:expr, $vectors:expr, $stage:expr) => {
        asm!(
            $setup,
            "vdup.32 q5, {min}",
            "vdup.32 q6, {max}",
            "dls lr, {vectors}",
            "2:",
            "vldrw.32 q0, [{sums}], #16",
            "vld20.32 {{q2, q3}}, [{req}]",
            "vld21.32 {{q2, q3}}, [{req}]!",
            $left,
            "vqrdmulh.s32 q0, q0, q2",
            $right,
            "vand q1, q0, q3",
            "vshr.s32 q1, q1, #31",
            "vqadd.s32 q0, q0, q1",
            "vrshl.s32 q0, q0, q3",
            "vadd.i32 q0, q0, {offset}",
            "vmax.s32 q0, q0, q5",
            "vmin.s32 q0, q0, q6",
            "vstrb.32 q0, [r1], #4",
            "le lr, 2b",
            sums = inout(reg) $sums.as_ptr() => _,
            req = inout(reg) $req.as_ptr() => _,
            inout("r1") $out.as_mut_ptr() => _,
            vectors = in(reg) $vectors,
            offset = in(reg) $stage.output_offset,
            min = in(reg) $stage.act_min,
            max = in(reg) $stage.act_max,
            out("lr") _,
            out("d0") _, out("d1") _, out("d2") _, out("d3") _,
            out("d4") _, out("d5") _, out("d6") _, out("d7") _,
            out("d8") _, out("d9") _, out("d10") _, out("d11") _,
            out("d12") _, out("d13") _,
            options(nostack, preserves_flags),
        )
    };
}

/// The requantization of a run of output channels, for every pixel.
pub(crate) struct RowRequant<'a> {
    stage: &'a OutputStage<'a>,
    requant: &'a [Requant],
    /// Every multiplier shifts right only (a real multiplier below one
    /// half, the usual case): the left shift's two instructions go.
    right_only: bool,
}

impl<'a> RowRequant<'a> {
    /// Output channels `first..first + count` of `stage`.
    pub(crate) fn new(stage: &'a OutputStage<'a>, first: usize, count: usize) -> Self {
        let requant = &stage.requant[first..][..count];
        Self {
            stage,
            requant,
            right_only: requant.iter().all(|r| r.shift <= 0),
        }
    }

    /// `out[c] = stage.finish(sums[c], first + c)` for the run's channels.
    pub(crate) fn apply(&self, sums: &[i32], out: &mut [i8]) {
        let (stage, requant) = (self.stage, self.requant);
        let n = out.len();
        assert!(sums.len() >= n && requant.len() >= n);
        let vectors = if stage.rounding == Rounding::Double {
            n / LANES
        } else {
            0
        };
        // SAFETY: `vectors` iterations read 4 sums (16 bytes) and 4
        // requants (32 bytes) and write 4 bytes each, inside the slices
        // (`vectors * 4 <= n`); q0-q6 are declared clobbered; LR is the
        // loop counter; the narrowing store takes a low register (r1).
        if vectors > 0 && self.right_only {
            // The shifts are at most zero: minus the right shifts as they are.
            unsafe { requantize_vectors!("", "", "", sums, requant, out, vectors, stage) };
        } else if vectors > 0 {
            // q1: the left shifts, then q3: minus the right shifts.
            unsafe {
                requantize_vectors!(
                    "vmov.i32 q4, #0",
                    "vmax.s32 q1, q3, q4\nvshl.s32 q0, q0, q1",
                    "vmin.s32 q3, q3, q4",
                    sums,
                    requant,
                    out,
                    vectors,
                    stage
                )
            };
        }
        for c in vectors * LANES..n {
            out[c] = stage.saturate(
                crate::quant::ChannelRequant::new(requant[c], stage.rounding).apply(sums[c]),
            );
        }
    }
}
