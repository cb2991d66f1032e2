//! Helium depthwise convolution for one input channel per output channel,
//! 16 (or 8) channels per block: each tap's inputs and weights are loaded
//! widened to 16-bit lanes (VLDRB.S16), VMULLB/VMULLT multiply the even
//! and odd lanes into 32-bit products, and four accumulators (even and
//! odd channels of two halves) add them. A tap in the padding reads a row
//! of `-offset` values, so every window has all its taps and the input
//! offset's term, `offset * sum(w)` over the window, joins the bias in
//! each channel's starting value once per call, as for convolutions.
//! The accumulators hold channels in even/odd order; gathers and
//! scatters (offsets 0, 8, 16, 24 bytes) put them back in channel order.

#![allow(unsafe_code)]
use super::dot::{RunSums, RUN};
use super::requant::RowRequant;
use crate::geometry::ConvGeometry;
use crate::int8::OutputStage;
use core::arch::asm;

/// Windows of at most this many taps take this path (7x7 and smaller).
pub(crate) const MAX_TAPS: usize = 49;

/// Byte offsets of the lanes of one accumulator in a row of `i32`s: every
/// second channel.
static LANE_OFFSETS: [u32; 4] = [0, 8, 16, 24];

/// The whole layer, if it fits this path (depth multiplier 1, channels a
/// multiple of 8, at most [`MAX_TAPS`] taps); `false`, with nothing
/// written, otherwise. The caller checked the lengths.
pub(crate) fn depthwise(
    g: &ConvGeometry,
    stage: &OutputStage,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> bool {
    let (ic, c) = (g.input.c as usize, g.output.c as usize);
    let taps = g.window.taps();
    if ic != c || !c.is_multiple_of(8) || taps > MAX_TAPS {
        return false;
    }
    let pad_row = [(-stage.input_offset) as i8; RUN];
    let mut run = RunSums::new();
    // Each tap's input row as a byte offset from the window's first
    // element: `inside` for a window wholly inside the input (the same
    // for every such window), `rows` for one reaching into the padding,
    // whose taps there point at the pad row.
    let mut rows = [0usize; MAX_TAPS];
    let mut inside = [0usize; MAX_TAPS];
    let w = &g.window;
    for ky in 0..w.kernel_h {
        for kx in 0..w.kernel_w {
            let pixel =
                (ky * w.dilation_h) as usize * g.input.w as usize + (kx * w.dilation_w) as usize;
            inside[(ky * w.kernel_w + kx) as usize] = pixel * ic;
        }
    }
    let (inside_rows, inside_columns) = g.inside_windows();
    for first in (0..c).step_by(RUN) {
        let count = RUN.min(c - first);
        for (k, b) in run.base[..count].iter_mut().enumerate() {
            let ch = first + k;
            let w: i32 = (0..taps).map(|t| filter[t * c + ch] as i32).sum();
            let bias = bias.map_or(0, |b| b[ch]);
            *b = bias.wrapping_add(stage.input_offset.wrapping_mul(w));
        }
        let requant = RowRequant::new(stage, first, count);
        // Without -128 among the run's weights, every product is at most
        // 128 * 127 in size, so two taps' products add up in 16 bits.
        let pairs = (0..taps).all(|t| !filter[t * c + first..][..count].contains(&i8::MIN));
        g.for_each_output_pixel(|pixel, b, oy, ox| {
            // The window's first input element for the run's first
            // channel (an address outside the input, maybe, for a window
            // in the padding: the sums wrap).
            let origin = (input.as_ptr() as usize)
                .wrapping_add(g.padded_origin((b, oy, ox)))
                .wrapping_add(first);
            let list = if inside_rows.contains(&oy) && inside_columns.contains(&ox) {
                &inside[..taps]
            } else {
                // The same offsets, those of taps in the padding replaced
                // by the pad row's.
                let pad = (pad_row.as_ptr() as usize).wrapping_sub(origin);
                // `for_each_window_tap` would work out every tap's input
                // index too: 13,000 instructions more on KWS's qemu-m55 run.
                let (y0, x0) = (w.in_y(oy, 0), w.in_x(ox, 0));
                let mut tap = 0;
                for ky in 0..w.kernel_h {
                    let iy = y0 + (ky * w.dilation_h) as i32;
                    let row_inside = iy >= 0 && iy < g.input.h as i32;
                    for kx in 0..w.kernel_w {
                        let ix = x0 + (kx * w.dilation_w) as i32;
                        let inside_input = row_inside && ix >= 0 && ix < g.input.w as i32;
                        rows[tap] = if inside_input { inside[tap] } else { pad };
                        tap += 1;
                    }
                }
                &rows[..taps]
            };
            // SAFETY: every `origin + list[t]` is an input row (or the pad
            // row) holding the run's `count` channels from `first`, the
            // taps' weights are `c` apart from `filter[first..]`, and the
            // blocks' channels lie inside both.
            unsafe {
                if pairs && count.is_multiple_of(16) {
                    sum_blocks_by_tap_pairs(
                        list,
                        origin,
                        filter[first..].as_ptr(),
                        c,
                        count,
                        &mut run,
                    )
                } else {
                    sum_blocks(list, origin, filter[first..].as_ptr(), c, count, &mut run)
                }
            };
            let out = &mut output[pixel * c + first..][..count];
            requant.apply(&run.sums[..count], out);
        });
    }
    true
}

/// One tap's products for eight channels (from byte `$at` of the tap's
/// row in r1 and of its weights in r3), widened to 16 bits and added into
/// `$even` and `$odd`, the accumulators of its even and odd channels.
macro_rules! eight_channels {
    ($at:literal, $even:literal, $odd:literal) => {
        concat!(
            "vldrb.s16 q4, [r1",
            $at,
            "]\n",
            "vldrb.s16 q5, [r3",
            $at,
            "]\n",
            "vmullb.s16 q6, q4, q5\n",
            "vadd.i32 ",
            $even,
            ", ",
            $even,
            ", q6\n",
            "vmullt.s16 q6, q4, q5\n",
            "vadd.i32 ",
            $odd,
            ", ",
            $odd,
            ", q6",
        )
    };
}

/// `run.sums[k] = run.base[k] + sum over taps t of x_t[k] * w[t * c + k]`
/// for the run's `count` channels, where `x_t = add + list[t]`: blocks
/// of 16 channels in one loop, then a last block of 8.
///
/// # Safety
/// Every `add + list[t]` must be valid for `count` reads, and `weights`
/// for `(list.len() - 1) * c + count`.
unsafe fn sum_blocks(
    list: &[usize],
    add: usize,
    weights: *const i8,
    c: usize,
    count: usize,
    run: &mut RunSums,
) {
    debug_assert!(count.is_multiple_of(8) && count <= RUN && !list.is_empty());
    let blocks = count / 16;
    let sums = run.sums.as_mut_ptr();
    if blocks > 0 {
        // SAFETY: the caller's, for `blocks` blocks of 16 channels; the
        // starting values are read 256 bytes after the sums (`RunSums`).
        // q0-q7 are clobbered (the compiler saves q4-q7, callee-saved);
        // LR is the loop counter. The widening loads take low registers
        // only: r1 holds the tap's row, r3 its weights.
        unsafe {
            asm!(
                "vldrw.32 q7, [r1]",
                "2:",
                "add r1, {sums}, #256",
                "vldrw.32 q0, [r1, q7]",
                "adds r1, #4",
                "vldrw.32 q1, [r1, q7]",
                "adds r1, #28",
                "vldrw.32 q2, [r1, q7]",
                "adds r1, #4",
                "vldrw.32 q3, [r1, q7]",
                "mov {cur}, {list}",
                "mov r3, {wstart}",
                "dls lr, {taps}",
                "3:",
                "ldr r1, [{cur}], #4",
                "add r1, {add}",
                eight_channels!("", "q0", "q1"),
                eight_channels!(", #8", "q2", "q3"),
                "add r3, {c}",
                "le lr, 3b",
                "vstrw.32 q0, [{sums}, q7]",
                "add r1, {sums}, #4",
                "vstrw.32 q1, [r1, q7]",
                "adds r1, #28",
                "vstrw.32 q2, [r1, q7]",
                "adds r1, #4",
                "vstrw.32 q3, [r1, q7]",
                "adds {sums}, #64",
                "adds {add}, #16",
                "adds {wstart}, #16",
                "subs {blocks}, #1",
                "bne 2b",
                inout("r1") LANE_OFFSETS.as_ptr() => _,
                out("r3") _,
                sums = inout(reg) sums => _,
                list = in(reg) list.as_ptr(),
                cur = out(reg) _,
                taps = in(reg) list.len(),
                add = inout(reg) add => _,
                wstart = inout(reg) weights => _,
                c = in(reg) c,
                blocks = inout(reg) blocks => _,
                out("lr") _,
                out("d0") _, out("d1") _, out("d2") _, out("d3") _,
                out("d4") _, out("d5") _, out("d6") _, out("d7") _,
                out("d8") _, out("d9") _, out("d10") _, out("d11") _,
                out("d12") _, out("d13") _, out("d14") _, out("d15") _,
                options(nostack),
            );
        }
    }
    if count % 16 == 8 {
        let done = blocks * 16;
        // SAFETY: as above, for the last 8 channels (the first half of a
        // block's registers), `done` channels on.
        unsafe {
            asm!(
                "vldrw.32 q7, [r1]",
                "add r1, {sums}, #256",
                "vldrw.32 q0, [r1, q7]",
                "adds r1, #4",
                "vldrw.32 q1, [r1, q7]",
                "dls lr, {taps}",
                "2:",
                "ldr r1, [{list}], #4",
                "add r1, {add}",
                eight_channels!("", "q0", "q1"),
                "add r3, {c}",
                "le lr, 2b",
                "vstrw.32 q0, [{sums}, q7]",
                "add r1, {sums}, #4",
                "vstrw.32 q1, [r1, q7]",
                inout("r1") LANE_OFFSETS.as_ptr() => _,
                inout("r3") weights.add(done) => _,
                sums = in(reg) sums.add(done),
                list = inout(reg) list.as_ptr() => _,
                taps = in(reg) list.len(),
                add = in(reg) add + done,
                c = in(reg) c,
                out("lr") _,
                out("d0") _, out("d1") _, out("d2") _, out("d3") _,
                out("d4") _, out("d5") _, out("d6") _, out("d7") _,
                out("d8") _, out("d9") _, out("d10") _, out("d11") _,
                out("d12") _, out("d13") _, out("d14") _, out("d15") _,
                options(nostack),
            );
        }
    }
}

/// Byte offsets of the lanes of one accumulator of
/// [`sum_blocks_by_tap_pairs`] in a row of `i32`s: every fourth channel.
static QUARTER_OFFSETS: [u32; 4] = [0, 16, 32, 48];

/// Adds the 16-bit sums of q6 (even channels) and q7 (odd channels),
/// widened, into the accumulators q0-q3 (channels 0, 2, 1 and 3 mod 4).
macro_rules! widen_into_accumulators {
    () => {
        concat!(
            "vmovlb.s16 q4, q6\n",
            "vadd.i32 q0, q0, q4\n",
            "vmovlt.s16 q4, q6\n",
            "vadd.i32 q1, q1, q4\n",
            "vmovlb.s16 q4, q7\n",
            "vadd.i32 q2, q2, q4\n",
            "vmovlt.s16 q4, q7\n",
            "vadd.i32 q3, q3, q4",
        )
    };
}

/// [`sum_blocks`] for weights without -128, 16 channels a block: two taps'
/// int8 products (VMULLB.S8/VMULLT.S8, at most 128 * 127 each) are added
/// in 16-bit lanes before they are widened into the accumulators, which
/// then hold every fourth channel (from 0, 2, 1 and 3). An odd last tap
/// is widened alone.
///
/// # Safety
/// As for [`sum_blocks`], with `count` a multiple of 16.
unsafe fn sum_blocks_by_tap_pairs(
    list: &[usize],
    add: usize,
    weights: *const i8,
    c: usize,
    count: usize,
    run: &mut RunSums,
) {
    debug_assert!(count.is_multiple_of(16) && count <= RUN && !list.is_empty());
    // SAFETY: the caller's, for `count / 16` blocks of 16 channels; the
    // starting values are read 256 bytes after the sums (`RunSums`).
    // q0-q7 are clobbered (the compiler saves q4-q7, callee-saved); LR is
    // the loop counter; r1 and r2 hold the taps' rows, r3 their weights.
    unsafe {
        asm!(
            "2:",
            "movw r1, :lower16:{offsets}",
            "movt r1, :upper16:{offsets}",
            "vldrw.32 q4, [r1]",
            "add r1, {sums}, #256",
            "vldrw.32 q0, [r1, q4]",
            "adds r1, #8",
            "vldrw.32 q1, [r1, q4]",
            "subs r1, #4",
            "vldrw.32 q2, [r1, q4]",
            "adds r1, #8",
            "vldrw.32 q3, [r1, q4]",
            "mov {cur}, {list}",
            "mov r3, {wstart}",
            "lsrs lr, {taps}, #1",
            "wls lr, lr, 4f",
            "3:",
            "ldr r1, [{cur}], #4",
            "add r1, {add}",
            "ldr r2, [{cur}], #4",
            "add r2, {add}",
            "vldrb.8 q4, [r1]",
            "vldrb.8 q5, [r3]",
            "vmullb.s8 q6, q4, q5",
            "vmullt.s8 q7, q4, q5",
            "add r3, {c}",
            "vldrb.8 q4, [r2]",
            "vldrb.8 q5, [r3]",
            "vmullb.s8 q4, q4, q5",
            "vadd.i16 q6, q6, q4",
            "vldrb.8 q4, [r2]",
            "vmullt.s8 q4, q4, q5",
            "vadd.i16 q7, q7, q4",
            "add r3, {c}",
            widen_into_accumulators!(),
            "le lr, 3b",
            "4:",
            "tst {taps}, #1",
            "beq 5f",
            "ldr r1, [{cur}]",
            "add r1, {add}",
            "vldrb.8 q4, [r1]",
            "vldrb.8 q5, [r3]",
            "vmullb.s8 q6, q4, q5",
            "vmullt.s8 q7, q4, q5",
            widen_into_accumulators!(),
            "5:",
            "movw r1, :lower16:{offsets}",
            "movt r1, :upper16:{offsets}",
            "vldrw.32 q4, [r1]",
            "vstrw.32 q0, [{sums}, q4]",
            "add r1, {sums}, #8",
            "vstrw.32 q1, [r1, q4]",
            "subs r1, #4",
            "vstrw.32 q2, [r1, q4]",
            "adds r1, #8",
            "vstrw.32 q3, [r1, q4]",
            "adds {sums}, #64",
            "adds {add}, #16",
            "adds {wstart}, #16",
            "subs {blocks}, #1",
            "bne 2b",
            offsets = sym QUARTER_OFFSETS,
            out("r1") _,
            out("r2") _,
            out("r3") _,
            sums = inout(reg) run.sums.as_mut_ptr() => _,
            list = in(reg) list.as_ptr(),
            cur = out(reg) _,
            taps = in(reg) list.len(),
            add = inout(reg) add => _,
            wstart = inout(reg) weights => _,
            c = in(reg) c,
            blocks = inout(reg) count / 16 => _,
            out("lr") _,
            out("d0") _, out("d1") _, out("d2") _, out("d3") _,
            out("d4") _, out("d5") _, out("d6") _, out("d7") _,
            out("d8") _, out("d9") _, out("d10") _, out("d11") _,
            out("d12") _, out("d13") _, out("d14") _, out("d15") _,
            options(nostack),
        );
    }
}
