//! x86-64 population counts for the binary kernels, chosen at run time
//! like the int8 ones ([`crate::x86::select`]): AVX-512 VPOPCNTDQ counts
//! 512 bits per instruction, eight rows sharing each load of the field;
//! the AVX2 level counts short rows several to a vector by nibble tables
//! (VPSHUFB) and longer ones 64 bits per POPCNT (which every AVX2 processor
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
        Isa::Avx2 => unsafe { count_rows_avx2(field, rows, pops) },
        Isa::Portable => return false,
    }
    true
}

/// The population count of every byte of `v` (the nibble table of
/// W. Mula's method: two VPSHUFB per 32 bytes).
#[inline(always)]
unsafe fn byte_counts(v: __m256i) -> __m256i {
    let table = _mm256_setr_epi8(
        0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3,
        3, 4,
    );
    let low = _mm256_set1_epi8(0x0f);
    let lo = _mm256_shuffle_epi8(table, _mm256_and_si256(v, low));
    let hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16::<4>(v), low));
    _mm256_add_epi8(lo, hi)
}

/// AVX2 counts: rows of one, two or four words are counted eight, four or
/// two to a vector (the field repeated across it), each row's byte counts
/// summed by VPSADBW (or VPMADDUBSW and VPMADDWD for one word): DS-CNN's
/// binary pointwise layers (64-bit fields) take half the time they take by
/// POPCNT. Longer rows, and the rows left over, go by POPCNT, which counts
/// BinaryNet's 36-word fields faster than nibble tables do (233 against
/// 310 us for the benchmark's 3x3 layer).
#[target_feature(enable = "avx2,popcnt")]
unsafe fn count_rows_avx2(field: &[u32], rows: &[u32], pops: &mut [u32]) {
    let n = field.len();
    let done = match n {
        1 | 2 | 4 => short_rows(field, rows, pops),
        _ => 0,
    };
    count_rows_popcnt(field, &rows[done * n..], &mut pops[done..]);
}

/// Rows of `n` = 1, 2 or 4 words, `8 / n` per vector; returns how many it
/// counted (whole vectors).
#[inline(always)]
unsafe fn short_rows(field: &[u32], rows: &[u32], pops: &mut [u32]) -> usize {
    let n = field.len();
    // Shifts, not divisions by a length only known here.
    let per = 8 >> n.trailing_zeros();
    let f = match n {
        1 => _mm256_set1_epi32(field[0] as i32),
        2 => _mm256_set1_epi64x(field.as_ptr().cast::<i64>().read_unaligned()),
        _ => _mm256_broadcastsi128_si256(_mm_loadu_si128(field.as_ptr().cast())),
    };
    let whole = pops.len() & !(per - 1);
    for r in (0..whole).step_by(per) {
        let v = _mm256_loadu_si256(rows.as_ptr().add(r * n).cast());
        let counts = byte_counts(_mm256_xor_si256(v, f));
        let out = pops.as_mut_ptr().add(r);
        if n == 1 {
            let pairs = _mm256_maddubs_epi16(counts, _mm256_set1_epi8(1));
            let words = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
            _mm256_storeu_si256(out.cast(), words);
            continue;
        }
        // One 64-bit sum per 8 bytes (below 2^32: their low halves are
        // the counts); a row of four words is two of them.
        let sums = _mm256_sad_epu8(counts, _mm256_setzero_si256());
        if n == 2 {
            let low = _mm256_permutevar8x32_epi32(sums, _mm256_setr_epi32(0, 2, 4, 6, 0, 0, 0, 0));
            _mm_storeu_si128(out.cast(), _mm256_castsi256_si128(low));
        } else {
            let rows = _mm256_add_epi64(sums, _mm256_srli_si256::<8>(sums));
            let low = _mm256_permutevar8x32_epi32(rows, _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0));
            _mm_storel_epi64(out.cast(), _mm256_castsi256_si128(low));
        }
    }
    whole
}

/// The longest rows [`LaneRows`] takes: 3x3 windows over 256 channels.
const MAX_LANE_WORDS: usize = 72;

/// Rows laid out eight to a vector, one 32-bit lane each: word `w` of rows
/// `8g..8g + 8` at `words[(g * n + w) * 8..]`, rows past the last zero.
/// Each word of a field is then broadcast once and counted against eight
/// rows by one XOR and one nibble-table count, instead of row by row: the
/// rows are read once per field either way, but the field's words serve
/// eight rows each. For the AVX2 level and rows of 3 or 5 to
/// [`MAX_LANE_WORDS`] words (rows of 1, 2 or 4 words already share
/// vectors in [`short_rows`]).
pub(crate) struct LaneRows {
    n: usize,
    words: std::vec::Vec<u32>,
}

impl LaneRows {
    /// The lane layout of `rows` (`n` words each), if the selected level
    /// counts that way.
    pub(crate) fn new(rows: &[u32], n: usize) -> Option<LaneRows> {
        let takes = (3..=MAX_LANE_WORDS).contains(&n) && n != 4;
        (selected() == Isa::Avx2 && takes && rows.len().is_multiple_of(n))
            .then(|| LaneRows::laid_out(rows, n))
    }

    /// The lane layout of `rows`, whatever the level.
    fn laid_out(rows: &[u32], n: usize) -> LaneRows {
        let groups = (rows.len() / n).div_ceil(8);
        let mut words = std::vec![0u32; groups * n * 8];
        for (r, row) in rows.chunks_exact(n).enumerate() {
            for (w, &word) in row.iter().enumerate() {
                words[((r / 8) * n + w) * 8 + r % 8] = word;
            }
        }
        LaneRows { n, words }
    }

    /// Counts rows `first..first + pops.len()` (`first` a multiple of 8)
    /// against `field`.
    #[inline(always)]
    pub(crate) fn count(&self, field: &[u32], first: usize, pops: &mut [u32]) {
        assert!(field.len() == self.n && first.is_multiple_of(8));
        assert!((first + pops.len()).div_ceil(8) * self.n * 8 <= self.words.len());
        // SAFETY: built only when AVX2 is the selected level (so the CPU
        // has it); every group read lies inside `words` (asserted above).
        unsafe { self.count_avx2(field, first, pops) }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn count_avx2(&self, field: &[u32], first: usize, pops: &mut [u32]) {
        let n = self.n;
        for (i, out) in pops.chunks_mut(8).enumerate() {
            let group = self.words.as_ptr().add((first / 8 + i) * n * 8);
            let mut sums = _mm256_setzero_si256();
            // Byte counts add up to 8 per word: 31 words before they are
            // widened into the 32-bit sums.
            for (chunk, words) in field.chunks(31).enumerate() {
                let mut bytes = _mm256_setzero_si256();
                for (w, &word) in words.iter().enumerate() {
                    let rows = _mm256_loadu_si256(group.add((chunk * 31 + w) * 8).cast());
                    let x = _mm256_xor_si256(rows, _mm256_set1_epi32(word as i32));
                    bytes = _mm256_add_epi8(bytes, byte_counts(x));
                }
                let pairs = _mm256_maddubs_epi16(bytes, _mm256_set1_epi8(1));
                sums = _mm256_add_epi32(sums, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
            }
            if out.len() == 8 {
                _mm256_storeu_si256(out.as_mut_ptr().cast(), sums);
            } else {
                let mut lanes = [0u32; 8];
                _mm256_storeu_si256(lanes.as_mut_ptr().cast(), sums);
                out.copy_from_slice(&lanes[..out.len()]);
            }
        }
    }
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

/// The float output transform of [`super::BinaryOutput::Float`] for one
/// block of channels, eight per AVX2 vector; `false` leaves it to the
/// portable loop. The same multiply and add (never fused) and a clamp
/// ordered as `f32::clamp` compares, so every value is the portable one.
pub(crate) fn emit_f32(
    k: i32,
    pops: &[u32],
    m: &[f32],
    b: &[f32],
    range: crate::float::Range,
    out: &mut [f32],
) -> bool {
    let n = pops.len();
    if n < 8 || selected() == Isa::Portable || (m.len(), b.len(), out.len()) != (n, n, n) {
        return false;
    }
    // SAFETY: AVX2 is selected only on CPUs that have it; lengths checked above.
    unsafe { emit_f32_avx2(k, pops, m, b, range, out) };
    true
}

#[target_feature(enable = "avx2")]
unsafe fn emit_f32_avx2(
    k: i32,
    pops: &[u32],
    m: &[f32],
    b: &[f32],
    range: crate::float::Range,
    out: &mut [f32],
) {
    let n = pops.len();
    let (lo, hi) = (_mm256_set1_ps(range.0), _mm256_set1_ps(range.1));
    let mut i = 0;
    while i + 8 <= n {
        let y = transform(k, pops, m, b, i);
        // MAXPS(lo, y) keeps y unless lo > y, as `y < lo` in f32::clamp.
        let y = _mm256_min_ps(hi, _mm256_max_ps(lo, y));
        _mm256_storeu_ps(out.as_mut_ptr().add(i), y);
        i += 8;
    }
    for j in i..n {
        out[j] = super::f32_value(k - 2 * pops[j] as i32, m[j], b[j], range);
    }
}

/// The int8 output transform of [`super::BinaryOutput::Int8`] for one block
/// of channels, eight per AVX2 vector; `false` leaves it to the portable
/// loop. Rounds half away from zero as [`crate::float::round_to_i32`] does,
/// so every value is the portable one.
pub(crate) fn emit_int8(
    k: i32,
    pops: &[u32],
    (m, b): (&[f32], &[f32]),
    zero_point: i32,
    clamp: crate::int8::Clamp,
    out: &mut [i8],
) -> bool {
    let n = pops.len();
    if n < 8 || selected() == Isa::Portable || (m.len(), b.len(), out.len()) != (n, n, n) {
        return false;
    }
    // SAFETY: AVX2 is selected only on CPUs that have it; lengths checked above.
    unsafe { emit_int8_avx2(k, pops, (m, b), zero_point, clamp, out) };
    true
}

#[target_feature(enable = "avx2")]
unsafe fn emit_int8_avx2(
    k: i32,
    pops: &[u32],
    (m, b): (&[f32], &[f32]),
    zero_point: i32,
    clamp: crate::int8::Clamp,
    out: &mut [i8],
) {
    let n = pops.len();
    // Beyond +-1e9 the int8 clamp decides alone, as the portable
    // saturating conversion lets it; NaN converts to 0 there too.
    let (lo, hi) = (_mm256_set1_ps(-1.0e9), _mm256_set1_ps(1.0e9));
    let (half, minus_half) = (_mm256_set1_ps(0.5), _mm256_set1_ps(-0.5));
    let zp = _mm256_set1_epi32(zero_point);
    let (cmin, cmax) = (_mm256_set1_epi32(clamp.min), _mm256_set1_epi32(clamp.max));
    let mut i = 0;
    while i + 8 <= n {
        let y = transform(k, pops, m, b, i);
        let y = _mm256_and_ps(y, _mm256_cmp_ps(y, y, _CMP_ORD_Q));
        let y = _mm256_min_ps(hi, _mm256_max_ps(lo, y));
        let t = _mm256_cvttps_epi32(y);
        let f = _mm256_sub_ps(y, _mm256_cvtepi32_ps(t));
        // Comparison masks are -1 where they hold: t + [f >= 0.5] - [f <= -0.5].
        let up = _mm256_castps_si256(_mm256_cmp_ps(f, half, _CMP_GE_OQ));
        let down = _mm256_castps_si256(_mm256_cmp_ps(f, minus_half, _CMP_LE_OQ));
        let r = _mm256_add_epi32(_mm256_sub_epi32(t, up), down);
        let q = _mm256_min_epi32(cmax, _mm256_max_epi32(cmin, _mm256_add_epi32(r, zp)));
        // Two packs leave lanes 0-3 in bytes 0-3 and lanes 4-7 in bytes 16-19.
        let p = _mm256_packs_epi16(_mm256_packs_epi32(q, q), _mm256_setzero_si256());
        let low = _mm256_extract_epi32::<0>(p) as u32 as u64;
        let high = _mm256_extract_epi32::<4>(p) as u32 as u64;
        out.as_mut_ptr()
            .add(i)
            .cast::<u64>()
            .write_unaligned(low | high << 32);
        i += 8;
    }
    for j in i..n {
        out[j] = super::int8_value(k - 2 * pops[j] as i32, m[j], b[j], zero_point, clamp);
    }
}

/// The packed output word of a block of 32 channels, bit `i` set where
/// `k - 2 * pops[i] < thresholds[i]`, eight channels per AVX2 compare;
/// `None` (for the portable loop) for shorter blocks or no AVX2.
pub(crate) fn sign_bits(k: i32, pops: &[u32], thresholds: &[i32]) -> Option<u32> {
    if pops.len() != 32 || thresholds.len() != 32 || selected() == Isa::Portable {
        return None;
    }
    // SAFETY: AVX2 is selected only on CPUs that have it; lengths checked above.
    Some(unsafe { sign_bits_avx2(k, pops, thresholds) })
}

#[target_feature(enable = "avx2")]
unsafe fn sign_bits_avx2(k: i32, pops: &[u32], thresholds: &[i32]) -> u32 {
    let mut word = 0u32;
    for i in (0..32).step_by(8) {
        let pop = _mm256_loadu_si256(pops.as_ptr().add(i).cast());
        let dot = _mm256_sub_epi32(_mm256_set1_epi32(k), _mm256_slli_epi32::<1>(pop));
        let t = _mm256_loadu_si256(thresholds.as_ptr().add(i).cast());
        let below = _mm256_castsi256_ps(_mm256_cmpgt_epi32(t, dot));
        word |= (_mm256_movemask_ps(below) as u32) << i;
    }
    word
}

/// `dot * m + b` for channels `i..i + 8`, `dot = k - 2 pop`.
#[inline(always)]
unsafe fn transform(k: i32, pops: &[u32], m: &[f32], b: &[f32], i: usize) -> __m256 {
    let pop = _mm256_loadu_si256(pops.as_ptr().add(i).cast());
    let dot = _mm256_sub_epi32(_mm256_set1_epi32(k), _mm256_slli_epi32::<1>(pop));
    let y = _mm256_mul_ps(_mm256_cvtepi32_ps(dot), _mm256_loadu_ps(m.as_ptr().add(i)));
    _mm256_add_ps(y, _mm256_loadu_ps(b.as_ptr().add(i)))
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
        for n in 1..=MAX_LANE_WORDS {
            for count in 0..=19 {
                let field: Vec<u32> = (0..n).map(|_| next()).collect();
                let mut rows: Vec<u32> = (0..n * count).map(|_| next()).collect();
                if count % 3 == 1 {
                    // Every bit differs: the largest counts, 32 per word.
                    rows = rows
                        .chunks(n)
                        .flat_map(|_| field.iter().map(|f| !f))
                        .collect();
                }
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
                    let mut got = std::vec![0; count];
                    unsafe { count_rows_avx2(&field, &rows, &mut got) };
                    assert_eq!(got, want, "avx2, {n} words, {count} rows");
                    if n >= 3 && n != 4 {
                        let lanes = LaneRows::laid_out(&rows, n);
                        for first in (0..count).step_by(8) {
                            let mut got = std::vec![0; count - first];
                            unsafe { lanes.count_avx2(&field, first, &mut got) };
                            assert_eq!(got, want[first..], "lanes, {n} words, rows {first}..");
                        }
                    }
                }
                if Isa::Avx512.is_available() {
                    let mut got = std::vec![0; count];
                    unsafe { count_rows_avx512(&field, &rows, &mut got) };
                    assert_eq!(got, want, "avx512, {n} words, {count} rows");
                }
            }
        }
    }

    /// The AVX2 output transforms give the portable values bit for bit:
    /// blocks of 1 to 32 channels (whole vectors and the rest), multipliers
    /// from tiny to huge (so values beyond the int32 range and the int8
    /// clamp), ties of the rounding, zero multipliers (signed zeros at a
    /// ReLU's clamp), infinities and NaN.
    #[test]
    fn avx2_output_transforms_equal_the_portable_ones() {
        if !Isa::Avx2.is_available() {
            return;
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let special = [
            0.0,
            -0.0,
            0.5,
            -0.5,
            2.5,
            1e-30,
            1e30,
            f32::INFINITY,
            f32::NAN,
        ];
        let mut value = |scale: f32| -> f32 {
            let r = next();
            match r % 8 {
                0 => special[(r >> 8) as usize % special.len()],
                _ => ((r >> 16) as u32 as f32 / u32::MAX as f32 - 0.5) * scale,
            }
        };
        for case in 0..4000 {
            let n = 1 + case % 32;
            let k = 1 + (case * 7) % 700;
            let scale = [0.01, 1.0, 100.0, 1e7][case % 4];
            let pops: std::vec::Vec<u32> =
                (0..n).map(|i| ((i * 37 + case) % (k + 1)) as u32).collect();
            let m: std::vec::Vec<f32> = (0..n).map(|_| value(scale)).collect();
            let b: std::vec::Vec<f32> = (0..n).map(|_| value(scale * 10.0)).collect();
            let dot = |j: usize| k as i32 - 2 * pops[j] as i32;
            let clamp = crate::int8::Clamp {
                min: -128 + (case % 3) as i32 * 100,
                max: 127,
            };
            let zp = (case % 11) as i32 - 5;
            let mut got = std::vec![0i8; n];
            unsafe { emit_int8_avx2(k as i32, &pops, (&m, &b), zp, clamp, &mut got) };
            for j in 0..n {
                let want = crate::binary::int8_value(dot(j), m[j], b[j], zp, clamp);
                assert_eq!(
                    got[j],
                    want,
                    "int8, case {case}, channel {j}: {} * {} + {}",
                    dot(j),
                    m[j],
                    b[j]
                );
            }
            let range = [(f32::NEG_INFINITY, f32::INFINITY), (0.0, 6.0), (-1.0, 1.0)][case % 3];
            let mut got = std::vec![0f32; n];
            unsafe { emit_f32_avx2(k as i32, &pops, &m, &b, range, &mut got) };
            for j in 0..n {
                let want = crate::binary::f32_value(dot(j), m[j], b[j], range);
                assert_eq!(
                    got[j].to_bits(),
                    want.to_bits(),
                    "f32, case {case}, channel {j}"
                );
            }
        }
    }
}
