//! The inner loops of the sparse kernels on DSP cores: four output
//! pixels' dot products over one output channel's entries (unstructured),
//! and over one row's blocks of four weights (block-sparse), four widened
//! pixels at a time or one.

use crate::sparse::blocks::Blocks;
use core::arch::asm;

/// One entry of the loop below: its word, its input's address, and a byte
/// load and SMLABB for each of the four pixels (`step` and `3 * step`
/// apart in registers, `2 * step` as the first shifted).
macro_rules! entry_step {
    () => {
        concat!(
            "ldr {e}, [{p}], #4\n",
            "add {a}, {x}, {e}, lsr #16\n",
            "ldrsb {t}, [{a}]\n",
            "smlabb {a0}, {e}, {t}, {a0}\n",
            "ldrsb {t}, [{a}, {s1}]\n",
            "smlabb {a1}, {e}, {t}, {a1}\n",
            "ldrsb {t}, [{a}, {s1}, lsl #1]\n",
            "smlabb {a2}, {e}, {t}, {a2}\n",
            "ldrsb {t}, [{a}, {s3}]\n",
            "smlabb {a3}, {e}, {t}, {a3}\n",
        )
    };
}
pub(crate) use entry_step;

/// `$steps` when bit `$bit` of the bytes left from `{p}` to `{end}`
/// (counted in `{$scratch}`) is set, then label `$label`.
macro_rules! when_count_bit {
    ($scratch:literal, $bit:literal, $label:literal, $($steps:expr),+) => {
        concat!(
            "sub {", $scratch, "}, {end}, {p}\n",
            "tst {", $scratch, "}, #", $bit, "\n",
            "beq ", $label, "f\n",
            $($steps,)+
            $label, ":\n",
        )
    };
}

pub(crate) use when_count_bit;

/// `$steps` a loop turn from `{p}` to `{end}`, none if `{p}` is there.
macro_rules! loop_to_end {
    ($($steps:expr),+) => {
        concat!(
            "cmp {p}, {end}\n",
            "beq 4f\n",
            "2:\n",
            $($steps,)+
            "cmp {p}, {end}\n",
            "bne 2b\n",
            "4:\n",
        )
    };
}

pub(crate) use loop_to_end;

/// The gather loops' walk from `{p}` to `{end}` over entries: an odd
/// first entry on its own, then two per turn, `$step` each.
macro_rules! odd_then_pairs {
    ($step:ident) => {
        odd_then_pairs!($step, "e", "4")
    };
    // Entries of `$bytes` bytes, the count's parity tested in `{$scratch}`.
    ($step:ident, $scratch:literal, $bytes:literal) => {
        concat!(
            $crate::int8::arm_dsp::sparse::when_count_bit!($scratch, $bytes, "3", $step!()),
            $crate::int8::arm_dsp::sparse::loop_to_end!($step!(), $step!()),
        )
    };
}
pub(crate) use odd_then_pairs;

/// As [`odd_then_pairs`] with four `$step`s a loop turn: a first odd
/// entry, then a first pair, on their own (entries of `$bytes` bytes, the
/// count tested in `{$scratch}`, again after the odd step, which may use it).
macro_rules! odd_pair_then_quads {
    ($step:ident, $scratch:literal, $bytes:literal, $pair:literal) => {
        concat!(
            when_count_bit!($scratch, $bytes, "3", $step!()),
            when_count_bit!($scratch, $pair, "5", $step!(), $step!()),
            loop_to_end!($step!(), $step!(), $step!(), $step!()),
        )
    };
}

/// `init[j] + sum(weight(e) * x[j * step + offset(e)])` for the four windows
/// `j` of `x`, over `entries` (see `crate::sparse`): per entry one word
/// load, one address, and a byte load and SMLABB per pixel (the weight is
/// the entry's low half as it is), two entries per loop turn after an odd
/// one; nothing outside the loop but the test of the count's parity.
///
/// # Safety
/// `x + 3 * step + offset(e)` must lie inside one allocation for every entry.
#[inline(always)]
#[allow(unsafe_code)]
pub unsafe fn gather_dots4(entries: &[u32], x: *const i8, step: usize, init: [i32; 4]) -> [i32; 4] {
    let [mut a0, mut a1, mut a2, mut a3] = init;
    let end = entries.as_ptr().add(entries.len());
    // SAFETY: the caller keeps every load inside `x`'s allocation; the
    // loop reads `entries` from its start to `end`, an odd first entry on
    // its own, then pairs.
    asm!(
        odd_then_pairs!(entry_step),
        p = inout(reg) entries.as_ptr() => _,
        end = in(reg) end,
        x = in(reg) x,
        s1 = in(reg) step,
        s3 = in(reg) 3 * step,
        e = out(reg) _,
        a = out(reg) _,
        t = out(reg) _,
        a0 = inout(reg) a0,
        a1 = inout(reg) a1,
        a2 = inout(reg) a2,
        a3 = inout(reg) a3,
        options(nostack, readonly),
    );
    [a0, a1, a2, a3]
}

/// One entry of [`gather_dots2`]: its word, its input's address, and a
/// byte load and SMLABB for each of the two pixels (`step` apart).
macro_rules! entry_step2 {
    () => {
        concat!(
            "ldr {e}, [{p}], #4\n",
            "add {a}, {x}, {e}, lsr #16\n",
            "ldrsb {t}, [{a}]\n",
            "smlabb {a0}, {e}, {t}, {a0}\n",
            "ldrsb {t}, [{a}, {s1}]\n",
            "smlabb {a1}, {e}, {t}, {a1}\n",
        )
    };
}

/// [`gather_dots4`] for two windows: 6 instructions per entry.
///
/// # Safety
/// `x + step + offset(e)` must lie inside one allocation for every entry.
#[inline(always)]
#[allow(unsafe_code)]
pub unsafe fn gather_dots2(entries: &[u32], x: *const i8, step: usize, init: [i32; 2]) -> [i32; 2] {
    let [mut a0, mut a1] = init;
    let end = entries.as_ptr().add(entries.len());
    // SAFETY: as gather_dots4.
    asm!(
        odd_then_pairs!(entry_step2),
        p = inout(reg) entries.as_ptr() => _,
        end = in(reg) end,
        x = in(reg) x,
        s1 = in(reg) step,
        e = out(reg) _,
        a = out(reg) _,
        t = out(reg) _,
        a0 = inout(reg) a0,
        a1 = inout(reg) a1,
        options(nostack, readonly),
    );
    [a0, a1]
}

/// The weight words of one block: its offset and weights loaded, the
/// weights split into the even and odd pairs SXTB16 makes.
macro_rules! block_weights {
    () => {
        concat!(
            "ldrd {q}, {w}, [{p}], #8\n",
            "sxtb16 {w0}, {w}\n",
            "sxtb16 {w}, {w}, ror #8\n",
        )
    };
}

/// One block of [`block_dots4`]: its weights, then per pixel one LDRD of
/// the widened inputs and two SMLADs.
macro_rules! block_step4 {
    () => {
        concat!(
            block_weights!(),
            // Offset 4q: the group of eight words (32 bytes) at wide + 32q.
            "add {q}, {wide}, {q}, lsl #3\n",
            "ldrd {t0}, {t1}, [{q}]\n",
            "smlad {a0}, {w0}, {t0}, {a0}\n",
            "smlad {a0}, {w}, {t1}, {a0}\n",
            "ldrd {t0}, {t1}, [{q}, #8]\n",
            "smlad {a1}, {w0}, {t0}, {a1}\n",
            "smlad {a1}, {w}, {t1}, {a1}\n",
            "ldrd {t0}, {t1}, [{q}, #16]\n",
            "smlad {a2}, {w0}, {t0}, {a2}\n",
            "smlad {a2}, {w}, {t1}, {a2}\n",
            "ldrd {t0}, {t1}, [{q}, #24]\n",
            "smlad {a3}, {w0}, {t0}, {a3}\n",
            "smlad {a3}, {w}, {t1}, {a3}\n",
        )
    };
}

/// `sum(w * x)` over a block-sparse row's blocks, from `p` to `end` (see
/// `crate::sparse::blocks`: pairs of an offset word and a word of four
/// weights), for the four pixels of a widened quad buffer `wide` (see
/// [`super::dot::widen_quad`]: eight words per four columns, the offset
/// added): per block one LDRD of its words, two SXTB16, and per pixel one
/// LDRD and two SMLADs, 16 instructions for 16 multiply-accumulates (four
/// blocks a loop turn after the first odd one and pair).
///
/// # Safety
/// `p..end` must be whole blocks of one allocation, each block's offset
/// a multiple of four below `4 * wide.len() / 8`.
#[inline(always)]
#[allow(unsafe_code)]
pub unsafe fn block_dots4(p: *const u32, end: *const u32, wide: &[u32]) -> [i32; 4] {
    let (mut a0, mut a1, mut a2, mut a3) = (0i32, 0i32, 0i32, 0i32);
    // SAFETY: the caller keeps every block inside `wide`; the loop reads
    // from `p` to `end`.
    asm!(
        odd_pair_then_quads!(block_step4, "q", "8", "16"),
        p = inout(reg) p => _,
        end = in(reg) end,
        wide = in(reg) wide.as_ptr(),
        q = out(reg) _,
        w = out(reg) _,
        w0 = out(reg) _,
        t0 = out(reg) _,
        t1 = out(reg) _,
        a0 = inout(reg) a0,
        a1 = inout(reg) a1,
        a2 = inout(reg) a2,
        a3 = inout(reg) a3,
        options(nostack, readonly),
    );
    [a0, a1, a2, a3]
}

/// [`block_dots4`] of rows `first..first + sums.len()` of `w` into
/// `sums`: the rows' blocks follow one another, so each row's end is the
/// next one's start.
///
/// # Safety
/// `w` must have passed [`Blocks::check`] for columns that `wide` holds.
#[inline(always)]
#[allow(unsafe_code)]
pub unsafe fn block_rows4(w: &Blocks, first: usize, wide: &[u32], sums: &mut [[i32; 4]]) {
    let ends = &w.row_ptr[first..=first + sums.len()];
    let entries = w.entries.as_ptr();
    // `check` keeps the row pointers rising up to the entries' end.
    let mut p = entries.add(2 * ends[0] as usize);
    for (s, &end) in sums.iter_mut().zip(&ends[1..]) {
        let end = entries.add(2 * end as usize);
        *s = block_dots4(p, end, wide);
        p = end;
    }
}

/// `sum(w * (x + offset))` over a block-sparse row's blocks for one input
/// row `x` (its bytes as they are): per block one LDRD of its words, a
/// word of `x`, four SXTB16, two SADD16 (the offset, in both halves of
/// `offsets`) and two SMLADs.
///
/// # Safety
/// Every block's offset plus four must lie inside `x`'s allocation.
#[inline(always)]
#[allow(unsafe_code)]
pub unsafe fn block_dot1(row: &[u32], x: *const i8, offsets: u32) -> i32 {
    if row.is_empty() {
        return 0;
    }
    let mut acc = 0i32;
    let end = row.as_ptr().add(row.len());
    // SAFETY: as `block_dots4`, the caller keeping every word inside `x`.
    asm!(
        "2:",
        block_weights!(),
        "ldr {t}, [{x}, {q}]",
        "sxtb16 {t0}, {t}",
        "sxtb16 {t}, {t}, ror #8",
        "sadd16 {t0}, {t0}, {off}",
        "sadd16 {t}, {t}, {off}",
        "smlad {a}, {w0}, {t0}, {a}",
        "smlad {a}, {w}, {t}, {a}",
        "cmp {p}, {end}",
        "bne 2b",
        p = inout(reg) row.as_ptr() => _,
        end = in(reg) end,
        x = in(reg) x,
        off = in(reg) offsets,
        q = out(reg) _,
        w = out(reg) _,
        w0 = out(reg) _,
        t = out(reg) _,
        t0 = out(reg) _,
        a = inout(reg) acc,
        options(nostack, readonly),
    );
    acc
}

/// One entry of [`quad_dots4`]: its word, the word of its channel's four
/// pixels (at four times its offset), widened to two pairs, and one
/// 16 x 16 multiply per pixel by the entry's low half (the weight). The
/// quad's address is in the named register (`"quad"` here; the channel
/// loop of `super::channels` keeps it in another).
macro_rules! quad_entry_at {
    ($quad:literal) => {
        concat!(
            "ldr {e}, [{p}], #4\n",
            "lsr {a}, {e}, #16\n",
            "ldr {x}, [{",
            $quad,
            "}, {a}, lsl #2]\n",
            "sxtb16 {t}, {x}\n",
            "smlabb {a0}, {t}, {e}, {a0}\n",
            "smlatb {a2}, {t}, {e}, {a2}\n",
            "sxtb16 {x}, {x}, ror #8\n",
            "smlabb {a1}, {x}, {e}, {a1}\n",
            "smlatb {a3}, {x}, {e}, {a3}\n",
        )
    };
}
pub(crate) use quad_entry_at;

/// [`quad_entry_at`] with the quad in `{quad}`.
macro_rules! quad_entry_step {
    () => {
        quad_entry_at!("quad")
    };
}

/// `init[j] + sum(weight(e) * quad[4 * offset(e) + j])` for the four
/// pixels `j` of a quad of input rows laid out channel by channel (the
/// four pixels' bytes of each channel in one word, see
/// `crate::sparse::pointwise`): per entry one word of four inputs, 9
/// instructions for four multiply-accumulates (2.25 a product, against
/// [`gather_dots4`]'s 2.75 from rows apart); two entries per loop turn
/// after an odd one.
///
/// # Safety
/// `quad + 4 * offset(e) + 3` must lie inside one allocation for every entry.
#[inline(always)]
#[allow(unsafe_code)]
pub unsafe fn quad_dots4(entries: &[u32], quad: *const u32, init: [i32; 4]) -> [i32; 4] {
    let [mut a0, mut a1, mut a2, mut a3] = init;
    let end = entries.as_ptr().add(entries.len());
    // SAFETY: the caller keeps every word inside `quad`'s allocation; the
    // loop reads `entries` from its start to `end`.
    asm!(
        odd_then_pairs!(quad_entry_step),
        p = inout(reg) entries.as_ptr() => _,
        end = in(reg) end,
        quad = in(reg) quad,
        e = out(reg) _,
        a = out(reg) _,
        x = out(reg) _,
        t = out(reg) _,
        a0 = inout(reg) a0,
        a1 = inout(reg) a1,
        a2 = inout(reg) a2,
        a3 = inout(reg) a3,
        options(nostack, readonly),
    );
    [a0, a1, a2, a3]
}
