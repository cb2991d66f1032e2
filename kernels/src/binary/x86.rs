//! x86-64 population counts for the binary kernels, chosen at run time
//! like the int8 ones ([`crate::x86::select`]): AVX-512 VPOPCNTDQ counts
//! 512 bits per instruction, eight rows sharing each load of the field;
//! the AVX2 level counts 64 bits per POPCNT (which every AVX2 processor
//! has; the baseline x86-64 build cannot assume it).
#![allow(unsafe_code)]

use crate::x86::{selected, Isa};
use core::arch::x86_64::*;

/// [`super::popcount::count_rows`] with the selected level, if any;
/// `false` leaves it to the portable count.
pub(crate) fn count_rows(field: &[u32], rows: &[u32], pops: &mut [u32]) -> bool {
    let n = field.len();
    if n == 0 || rows.len() < pops.len() * n {
        return false;
    }
    // SAFETY: a level is selected only once the CPU is known to have it;
    // every row read lies inside `rows` (checked above).
    match selected() {
        Isa::Avx512 => unsafe { count_rows_avx512(field, rows, pops) },
        Isa::Avx2 => unsafe { count_rows_popcnt(field, rows, pops) },
        Isa::Portable => return false,
    }
    true
}

/// Word pairs as `u64`, by POPCNT, with an odd last word alone.
#[target_feature(enable = "popcnt")]
unsafe fn count_rows_popcnt(field: &[u32], rows: &[u32], pops: &mut [u32]) {
    let n = field.len();
    for (r, pop) in pops.iter_mut().enumerate() {
        let row = rows.as_ptr().add(r * n);
        let mut count = 0;
        let mut i = 0;
        while i + 2 <= n {
            let a = field.as_ptr().add(i).cast::<u64>().read_unaligned();
            let b = row.add(i).cast::<u64>().read_unaligned();
            count += _popcnt64((a ^ b) as i64) as u32;
            i += 2;
        }
        if i < n {
            count += (field[i] ^ *row.add(i)).count_ones();
        }
        *pop = count;
    }
}

/// The first `n` of 16 words.
#[inline(always)]
fn words16(n: usize) -> u16 {
    if n >= 16 {
        u16::MAX
    } else {
        ((1u32 << n) - 1) as u16
    }
}

/// Rows counted together, sharing each load of the field.
const GROUP: usize = 8;

/// 512 bits per VPOPCNTQ; rows [`GROUP`] at a time, each load of the
/// field serving all; counts summed per row in 64-bit lanes.
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
unsafe fn count_rows_avx512(field: &[u32], rows: &[u32], pops: &mut [u32]) {
    let n = field.len();
    let count = |acc: __m512i| _mm512_reduce_add_epi64(acc) as u32;
    let mut r = 0;
    while r + GROUP <= pops.len() {
        let mut acc = [_mm512_setzero_si512(); GROUP];
        for c in (0..n).step_by(16) {
            let m = words16(n - c);
            let x = _mm512_maskz_loadu_epi32(m, field.as_ptr().add(c).cast());
            for (j, acc) in acc.iter_mut().enumerate() {
                let w = _mm512_maskz_loadu_epi32(m, rows.as_ptr().add((r + j) * n + c).cast());
                *acc = _mm512_add_epi64(*acc, _mm512_popcnt_epi64(_mm512_xor_si512(x, w)));
            }
        }
        for (j, &acc) in acc.iter().enumerate() {
            pops[r + j] = count(acc);
        }
        r += GROUP;
    }
    while r < pops.len() {
        let mut acc = _mm512_setzero_si512();
        for c in (0..n).step_by(16) {
            let m = words16(n - c);
            let x = _mm512_maskz_loadu_epi32(m, field.as_ptr().add(c).cast());
            let w = _mm512_maskz_loadu_epi32(m, rows.as_ptr().add(r * n + c).cast());
            acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(x, w)));
        }
        pops[r] = count(acc);
        r += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Every level this CPU has counts like `count_ones`, for fields of 1
    /// to 70 words (whole and partial vectors) and 0 to 19 rows (groups of
    /// eight and the rest).
    #[test]
    fn every_level_counts_like_count_ones() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u32
        };
        for n in 1..=70 {
            for count in 0..=19 {
                let field: Vec<u32> = (0..n).map(|_| next()).collect();
                let rows: Vec<u32> = (0..n * count).map(|_| next()).collect();
                let want: Vec<u32> = rows
                    .chunks_exact(n)
                    .map(|r| {
                        r.iter()
                            .zip(&field)
                            .map(|(a, b)| (a ^ b).count_ones())
                            .sum()
                    })
                    .collect();
                if Isa::Avx2.is_available() {
                    let mut got = std::vec![0; count];
                    unsafe { count_rows_popcnt(&field, &rows, &mut got) };
                    assert_eq!(got, want, "popcnt, {n} words, {count} rows");
                }
                if Isa::Avx512.is_available() {
                    let mut got = std::vec![0; count];
                    unsafe { count_rows_avx512(&field, &rows, &mut got) };
                    assert_eq!(got, want, "avx512, {n} words, {count} rows");
                }
            }
        }
    }
}
