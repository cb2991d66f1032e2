//! `popcount(a XOR b)` over streams of packed signs, the inner loop of every
//! binary kernel.
//!
//! Where the target has a population-count instruction (x86 `popcnt`,
//! AArch64, RISC-V Zbb) each word is counted by it. The others (Cortex-M,
//! RV32IMAC) count by SWAR, but not word by word as `count_ones` would:
//! two words are reduced together to byte counts (at most 16 per byte),
//! which add up in one accumulator for 15 pairs before the four bytes are
//! summed, so a pair costs 15 ALU instructions on Thumb-2 instead of two
//! full population counts. On x86-64 the AVX-512 and POPCNT counts of
//! `super::x86` take over once selected at run time.

/// `popcount(a[i] XOR b[i])` summed over `i`; the slices have equal length.
#[inline(always)]
pub fn xor_popcount(a: &[u32], b: &[u32]) -> u32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(any(
        target_feature = "popcnt",
        target_arch = "aarch64",
        target_feature = "zbb"
    ))]
    return by_instruction(a, b);
    #[cfg(not(any(
        target_feature = "popcnt",
        target_arch = "aarch64",
        target_feature = "zbb"
    )))]
    return by_pairs(a, b);
}

/// The same rows (a layer's filters) counted against one field after
/// another (every pixel's receptive field): where the selected x86 level
/// counts them faster from a copy laid out for it, that copy is made once
/// here instead of at every field.
pub struct RowCounter<'a> {
    rows: &'a [u32],
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    lanes: Option<super::x86::LaneRows>,
}

impl<'a> RowCounter<'a> {
    /// Rows of `n` words each, one after another in `rows`.
    pub fn new(rows: &'a [u32], n: usize) -> Self {
        #[cfg(not(all(target_arch = "x86_64", feature = "std")))]
        let _ = n;
        RowCounter {
            rows,
            #[cfg(all(target_arch = "x86_64", feature = "std"))]
            lanes: super::x86::LaneRows::new(rows, n),
        }
    }

    /// Counts rows `0..rows` against `field` and emits them as channels
    /// `first..` of output pixel `pixel` (of `channels`) in one pass, where
    /// the selected level can (`false`: count and emit block by block).
    #[inline(always)]
    pub(crate) fn count_emit(
        &self,
        field: &[u32],
        rows: usize,
        k: i32,
        at: (usize, usize, usize),
        output: &mut super::BinaryOutput,
    ) -> bool {
        #[cfg(all(target_arch = "x86_64", feature = "std"))]
        if let Some(lanes) = &self.lanes {
            return lanes.count_emit(field, rows, k, at, output);
        }
        let _ = (field, rows, k, at, output);
        false
    }

    /// [`count_rows`] of rows `first..first + pops.len()` against `field`;
    /// `first` is a multiple of 16.
    #[inline(always)]
    pub fn count(&self, field: &[u32], first: usize, pops: &mut [u32]) {
        #[cfg(all(target_arch = "x86_64", feature = "std"))]
        if let Some(lanes) = &self.lanes {
            return lanes.count(field, first, pops);
        }
        let n = field.len();
        count_rows(field, &self.rows[first * n..][..pops.len() * n], pops);
    }
}

/// `pops[r] = popcount(field XOR row r)` for the rows of `field.len()`
/// words in `rows`. Common receptive-field lengths get a copy of the loop
/// with the length fixed, which the compiler unrolls: a loop that must
/// handle any length costs more in set-up than two words cost to count.
pub fn count_rows(field: &[u32], rows: &[u32], pops: &mut [u32]) {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if super::x86::count_rows(field, rows, pops) {
        return;
    }
    match field.len() {
        1 => count_fixed::<1>(field, rows, pops),
        2 => count_fixed::<2>(field, rows, pops),
        3 => count_fixed::<3>(field, rows, pops),
        4 => count_fixed::<4>(field, rows, pops),
        5 => count_fixed::<5>(field, rows, pops),
        9 => count_fixed::<9>(field, rows, pops),
        18 => count_fixed::<18>(field, rows, pops),
        n => {
            for (pop, row) in pops.iter_mut().zip(rows.chunks_exact(n)) {
                *pop = xor_popcount(field, row);
            }
        }
    }
}

#[inline(never)]
fn count_fixed<const N: usize>(field: &[u32], rows: &[u32], pops: &mut [u32]) {
    let Ok(field) = <&[u32; N]>::try_from(field) else {
        return;
    };
    for (pop, row) in pops.iter_mut().zip(rows.chunks_exact(N)) {
        if let Ok(row) = <&[u32; N]>::try_from(row) {
            *pop = xor_popcount(field, row);
        }
    }
}

/// `out[r] = table[r * (K + 1) + popcount(field XOR row r)]` for the rows
/// of `field.len()` words in `rows`, `K + 1 = table.len() / out.len()`: a
/// binary layer's int8 outputs looked up by count, counted and written in
/// one pass (no block of counts stored and read back).
pub fn count_lookup(field: &[u32], rows: &[u32], table: &[i8], out: &mut [i8]) {
    let stride = table.len() / out.len().max(1);
    match field.len() {
        1 => lookup_fixed::<1>(field, rows, table, stride, out),
        #[cfg(arm_dsp)]
        2 if stride > 64 => {
            if let Ok(field) = <&[u32; 2]>::try_from(field) {
                super::arm_dsp::lookup2(field, rows, table, stride, out);
            }
        }
        2 => lookup_fixed::<2>(field, rows, table, stride, out),
        3 => lookup_fixed::<3>(field, rows, table, stride, out),
        4 => lookup_fixed::<4>(field, rows, table, stride, out),
        n => {
            let rows = rows.chunks_exact(n).zip(table.chunks_exact(stride));
            for (y, (row, outputs)) in out.iter_mut().zip(rows) {
                *y = outputs[xor_popcount(field, row) as usize];
            }
        }
    }
}

#[inline(never)]
fn lookup_fixed<const N: usize>(
    field: &[u32],
    rows: &[u32],
    table: &[i8],
    stride: usize,
    out: &mut [i8],
) {
    let Ok(field) = <&[u32; N]>::try_from(field) else {
        return;
    };
    let rows = rows.chunks_exact(N).zip(table.chunks_exact(stride));
    for (y, (row, outputs)) in out.iter_mut().zip(rows) {
        if let Ok(row) = <&[u32; N]>::try_from(row) {
            *y = outputs[xor_popcount(field, row) as usize];
        }
    }
}

/// Word by word with the target's `count_ones`.
#[inline(always)]
pub fn by_instruction(a: &[u32], b: &[u32]) -> u32 {
    a.iter().zip(b).map(|(a, b)| (a ^ b).count_ones()).sum()
}

const M1: u32 = 0x5555_5555;
const M2: u32 = 0x3333_3333;
const M4: u32 = 0x0f0f_0f0f;
const M8: u32 = 0x00ff_00ff;
/// Pairs whose byte counts (at most 16 each) fit one byte accumulator.
const PAIRS_PER_ACCUMULATOR: usize = 15;

/// The population counts of two words, as four byte counts of at most 16.
#[inline(always)]
fn pair_bytes(x: u32, y: u32) -> u32 {
    let x = x - ((x >> 1) & M1);
    let y = y - ((y >> 1) & M1);
    // 4-bit fields of at most 8: two words' 2-bit counts added.
    let s = (x & M2) + ((x >> 2) & M2) + (y & M2) + ((y >> 2) & M2);
    (s & M4) + ((s >> 4) & M4)
}

/// The sum of the four bytes of `acc`.
#[inline(always)]
fn sum_bytes(acc: u32) -> u32 {
    let halves = (acc & M8) + ((acc >> 8) & M8);
    (halves & 0xffff) + (halves >> 16)
}

/// By SWAR, two words at a time, for targets without a popcount instruction.
#[inline(always)]
pub fn by_pairs(a: &[u32], b: &[u32]) -> u32 {
    let pairs = a.chunks_exact(2).zip(b.chunks_exact(2));
    let (mut total, mut acc, mut room) = (0, 0, PAIRS_PER_ACCUMULATOR);
    for (pa, pb) in pairs {
        acc += pair_bytes(pa[0] ^ pb[0], pa[1] ^ pb[1]);
        room -= 1;
        if room == 0 {
            total += sum_bytes(acc);
            (acc, room) = (0, PAIRS_PER_ACCUMULATOR);
        }
    }
    if a.len() % 2 == 1 {
        // One word's byte counts are at most 8: 15 * 16 + 8 still fits.
        let last = a.len() - 1;
        acc += pair_bytes(a[last] ^ b[last], 0);
    }
    if a.len() <= 7 {
        // At most 224 bits: the bytes' sum fits the top byte of a product.
        return acc.wrapping_mul(0x0101_0101) >> 24;
    }
    total + sum_bytes(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_count_like_the_instruction() {
        // Every length up to three accumulators and a half, all-ones words
        // (the largest byte counts) and a xorshift sequence.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u32
        };
        for len in 0..=(PAIRS_PER_ACCUMULATOR * 2 * 3 + 3) {
            let ones = std::vec![u32::MAX; len];
            let zeros = std::vec![0u32; len];
            assert_eq!(by_pairs(&ones, &zeros), 32 * len as u32);
            let a: std::vec::Vec<u32> = (0..len).map(|_| next()).collect();
            let b: std::vec::Vec<u32> = (0..len).map(|_| next()).collect();
            assert_eq!(by_pairs(&a, &b), by_instruction(&a, &b), "length {len}");
        }
    }
}
