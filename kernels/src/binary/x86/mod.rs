//! x86-64 population counts for the binary kernels, chosen at run time
//! like the int8 ones ([`crate::x86::select`]): AVX-512 VPOPCNTDQ counts
//! 512 bits per instruction, eight rows sharing each load of the field;
//! the AVX2 level counts short rows several to a vector by nibble tables
//! (VPSHUFB) and longer ones 64 bits per POPCNT (which every AVX2 processor
//! has; the baseline x86-64 build cannot assume it).
#![allow(unsafe_code)]

use crate::x86::{selected, Isa};
use core::arch::x86_64::*;

mod forms512;
mod tiles;
pub(crate) use tiles::conv2d;

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
        // Rows of one, two or four words share 256-bit vectors faster than
        // one row's words fill a 512-bit one.
        Isa::Avx512 if matches!(n, 1 | 2 | 4) => unsafe { count_rows_avx2(field, rows, pops) },
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

/// Rows laid out `lanes` to a vector, one 32-bit lane each: word `w` of
/// rows `lanes * g..lanes * (g + 1)` at `words[(g * n + w) * lanes..]`,
/// rows past the last zero. Each word of a field is then broadcast once and
/// counted against a vector of rows by one XOR and one count, instead of
/// row by row: the rows are read once per field either way, but the
/// field's words serve every lane. The AVX2 level takes rows of 3 or 5 to
/// [`MAX_LANE_WORDS`] words, eight lanes counted by nibble tables (rows of
/// 1, 2 or 4 words already share vectors in [`short_rows`]); the AVX-512
/// level takes rows of 1 to [`MAX_LANE_WORDS`] words, sixteen lanes
/// counted by VPOPCNTD.
pub(crate) struct LaneRows {
    n: usize,
    lanes: usize,
    words: std::vec::Vec<u32>,
}

/// Whether the selected level has vector output transforms
/// ([`emit_int8`], [`LaneRows::count_emit`]).
pub(crate) fn transforms_in_vectors() -> bool {
    selected() != Isa::Portable
}

impl LaneRows {
    /// The lane layout of `rows` (`n` words each), if the selected level
    /// counts that way.
    pub(crate) fn new(rows: &[u32], n: usize) -> Option<LaneRows> {
        let whole = n > 0 && rows.len().is_multiple_of(n);
        let lanes = match selected() {
            Isa::Avx512 if (1..=MAX_LANE_WORDS).contains(&n) => 16,
            Isa::Avx2 if (3..=MAX_LANE_WORDS).contains(&n) && n != 4 => 8,
            _ => return None,
        };
        whole.then(|| LaneRows::laid_out(rows, n, lanes))
    }

    /// The layout of `rows` in `lanes` lanes, whatever the level.
    fn laid_out(rows: &[u32], n: usize, lanes: usize) -> LaneRows {
        let groups = (rows.len() / n).div_ceil(lanes);
        let mut words = std::vec![0u32; groups * n * lanes];
        // Group by group (no division per word: layers relay their filters
        // at every call).
        let group_words = words.chunks_exact_mut(n * lanes);
        for (group, rows) in group_words.zip(rows.chunks(n * lanes)) {
            for (lane, row) in rows.chunks_exact(n).enumerate() {
                for (w, &word) in row.iter().enumerate() {
                    group[w * lanes + lane] = word;
                }
            }
        }
        LaneRows { n, lanes, words }
    }

    /// Counts rows `first..first + pops.len()` (`first` a multiple of 16)
    /// against `field`.
    #[inline(always)]
    pub(crate) fn count(&self, field: &[u32], first: usize, pops: &mut [u32]) {
        let lanes = self.lanes;
        assert!(field.len() == self.n && first.is_multiple_of(lanes));
        assert!((first + pops.len()).div_ceil(lanes) * self.n * lanes <= self.words.len());
        // SAFETY: laid out in 16 lanes only when AVX-512 is the selected
        // level, in 8 only when AVX2 is (so the CPU has it); every group
        // read lies inside `words` (asserted above).
        unsafe {
            if lanes == 16 {
                self.count_avx512(field, first, pops)
            } else {
                self.count_avx2(field, first, pops)
            }
        }
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

    /// Two groups of sixteen rows a turn where there are two, so that each
    /// broadcast word serves 32 rows and two sums are in flight.
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    unsafe fn count_avx512(&self, field: &[u32], first: usize, pops: &mut [u32]) {
        self.each_sums16(field, first, pops.len(), |i, len, sums| {
            let out = pops.as_mut_ptr().add(i);
            _mm512_mask_storeu_epi32(out.cast(), words16(len), sums);
        });
    }

    /// The counts of rows `first..first + rows` against `field`, sixteen
    /// rows a vector: `f(i, len, counts)` for rows `first + i..` (`len`
    /// of the sixteen lanes real). Two groups a turn where there are two,
    /// so that each broadcast word serves 32 rows and two sums are in flight.
    #[inline(always)]
    unsafe fn each_sums16(
        &self,
        field: &[u32],
        first: usize,
        rows: usize,
        mut f: impl FnMut(usize, usize, __m512i),
    ) {
        let n = self.n;
        let group = |g: usize| self.words.as_ptr().add((first / 16 + g) * n * 16);
        for i in (0..rows).step_by(32) {
            let (a, len) = (group(i / 16), rows - i);
            let (mut sa, mut sb) = (_mm512_setzero_si512(), _mm512_setzero_si512());
            if len > 16 {
                let b = group(i / 16 + 1);
                for (w, &word) in field.iter().enumerate() {
                    let f = _mm512_set1_epi32(word as i32);
                    let ra = _mm512_loadu_si512(a.add(w * 16).cast());
                    let rb = _mm512_loadu_si512(b.add(w * 16).cast());
                    sa = _mm512_add_epi32(sa, _mm512_popcnt_epi32(_mm512_xor_si512(ra, f)));
                    sb = _mm512_add_epi32(sb, _mm512_popcnt_epi32(_mm512_xor_si512(rb, f)));
                }
                f(i, 16, sa);
                f(i + 16, (len - 16).min(16), sb);
            } else {
                for (w, &word) in field.iter().enumerate() {
                    let f = _mm512_set1_epi32(word as i32);
                    let ra = _mm512_loadu_si512(a.add(w * 16).cast());
                    sa = _mm512_add_epi32(sa, _mm512_popcnt_epi32(_mm512_xor_si512(ra, f)));
                }
                f(i, len, sa);
            }
        }
    }

    /// Counts rows `0..rows` against `field` and emits them at once as
    /// channels `first..first + rows` of output pixel `pixel` (of
    /// `channels`), `dot = k - 2 pop`, the counts never leaving the
    /// registers: the whole pixel in one call, where counting into a
    /// buffer and emitting it block by block spent more on the calls and
    /// the round trip than on the counts (DS-CNN's binary pointwise layer).
    /// `false` when the rows are not laid out for AVX-512 (the caller
    /// counts them the other way).
    pub(crate) fn count_emit(
        &self,
        field: &[u32],
        rows: usize,
        k: i32,
        at: (usize, usize, usize),
        output: &mut super::BinaryOutput,
    ) -> bool {
        if self.lanes != 16 {
            return false;
        }
        assert!(field.len() == self.n && rows.div_ceil(16) * self.n * 16 <= self.words.len());
        assert!(at.2 + rows <= at.1);
        // SAFETY: laid out in 16 lanes only when AVX-512 (F, BW, VL,
        // VPOPCNTDQ) is the selected level; every group read lies inside
        // `words` (asserted), and `emit16` checks what it writes.
        unsafe { self.emit_counts(field, rows, k, at, output) };
        true
    }

    /// [`Self::count_emit`] once its layout is checked. The float and
    /// int8 transforms go over counts in a buffer ([`Self::each_counted16`]).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vpopcntdq")]
    unsafe fn emit_counts(
        &self,
        field: &[u32],
        rows: usize,
        k: i32,
        (pixel, channels, first): (usize, usize, usize),
        output: &mut super::BinaryOutput,
    ) {
        use super::BinaryOutput as Out;
        let transforms = matches!(output, Out::Float { .. } | Out::Int8 { .. });
        let emit = |i: usize, len: usize, pops: __m512i| {
            emit16(output, (pixel, channels, first + i), len, k, pops)
        };
        if transforms {
            self.each_counted16(field, rows, emit)
        } else {
            self.each_sums16(field, 0, rows, emit)
        }
    }

    /// [`Self::each_sums16`] over rows `0..rows` in two loops, for the
    /// float transforms: up to [`COUNTED`] rows counted into a buffer, then
    /// `f` over them. Interleaving a long transform with long counts (3x3
    /// windows over 128 channels: 36 words) ran 30% slower than this.
    #[inline(always)]
    unsafe fn each_counted16(
        &self,
        field: &[u32],
        rows: usize,
        mut f: impl FnMut(usize, usize, __m512i),
    ) {
        #[repr(align(64))]
        struct Counts([u32; COUNTED]);
        let mut counts = Counts([0; COUNTED]);
        for first in (0..rows).step_by(COUNTED) {
            let n = COUNTED.min(rows - first);
            let at = counts.0.as_mut_ptr();
            self.each_sums16(field, first, n, |i, _, pops| {
                _mm512_store_si512(at.add(i).cast(), pops)
            });
            for i in (0..n).step_by(16) {
                f(
                    first + i,
                    (n - i).min(16),
                    _mm512_load_si512(at.add(i).cast()),
                );
            }
        }
    }
}

/// Emits sixteen channels' counts `pops` (the first `len` real) as
/// channels `c..` of output pixel `pixel` (of `channels`), `dot = k - 2
/// pop`, in whichever form `output` takes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
unsafe fn emit16(
    output: &mut super::BinaryOutput,
    (pixel, channels, c): (usize, usize, usize),
    len: usize,
    k: i32,
    pops: __m512i,
) {
    use super::BinaryOutput as Out;
    use forms512::{Bits, Dots, Emit, Float, Int8};
    let place = ((pixel * channels + c, c, len), (pixel, channels));
    match output {
        Out::Dots(out) => Dots { out }.emit::<true>(place.0, place.1, k, pops),
        Out::Float {
            multiplier,
            bias,
            range,
            out,
        } => Float::new(multiplier, bias, *range, out).emit::<true>(place.0, place.1, k, pops),
        Out::Int8 {
            multiplier,
            bias,
            zero_point,
            clamp,
            out,
        } => Int8::new(multiplier, bias, *zero_point, *clamp, out)
            .emit::<true>(place.0, place.1, k, pops),
        Out::Bits { thresholds, out } => {
            Bits { thresholds, out }.emit::<true>(place.0, place.1, k, pops)
        }
    }
}

/// Rows counted before their float transforms run (a multiple of 32).
const COUNTED: usize = 128;

/// `k - 2 pop` of sixteen counts.
#[inline(always)]
pub(super) unsafe fn dots16(k: i32, pops: __m512i) -> __m512i {
    _mm512_sub_epi32(_mm512_set1_epi32(k), _mm512_slli_epi32::<1>(pops))
}

/// `dot * m + b` (multiply and add never fused, as the portable
/// transform) for channels `i..` of `m` and `b`, the lanes of `mask`.
#[inline(always)]
pub(super) unsafe fn affine16(
    k: i32,
    pops: __m512i,
    (m, b): (&[f32], &[f32]),
    i: usize,
    mask: u16,
) -> __m512 {
    let m = _mm512_maskz_loadu_ps(mask, m.as_ptr().add(i));
    let b = _mm512_maskz_loadu_ps(mask, b.as_ptr().add(i));
    _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(dots16(k, pops)), m), b)
}

/// `y` clamped to `range` as `f32::clamp` compares: VMAXPS(lo, y) keeps
/// y unless lo > y.
#[inline(always)]
unsafe fn clamp16(y: __m512, range: crate::float::Range) -> __m512 {
    let (lo, hi) = (_mm512_set1_ps(range.0), _mm512_set1_ps(range.1));
    _mm512_min_ps(hi, _mm512_max_ps(lo, y))
}

/// [`super::int8_value`] of sixteen values: rounded half away from zero as
/// [`crate::float::round_to_i32`] does, the zero point added and clamped.
#[inline(always)]
unsafe fn int8_16(y: __m512, zero_point: i32, clamp: crate::int8::Clamp) -> __m512i {
    let (cmin, cmax) = (_mm512_set1_epi32(clamp.min), _mm512_set1_epi32(clamp.max));
    let r = _mm512_add_epi32(round16::<true>(y), _mm512_set1_epi32(zero_point));
    _mm512_min_epi32(cmax, _mm512_max_epi32(cmin, r))
}

/// Sixteen values rounded half away from zero as
/// [`crate::float::round_to_i32`] does; with `GUARD`, NaN becomes 0 and
/// values beyond +-1e9 are held there (the int8 clamp then decides alone),
/// without it the caller knows none is.
#[inline(always)]
pub(super) unsafe fn round16<const GUARD: bool>(y: __m512) -> __m512i {
    let y = if GUARD {
        let (lo, hi) = (_mm512_set1_ps(-1.0e9), _mm512_set1_ps(1.0e9));
        let y = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_ORD_Q>(y, y), y);
        _mm512_min_ps(hi, _mm512_max_ps(lo, y))
    } else {
        y
    };
    let sign = _mm512_and_si512(_mm512_castps_si512(y), _mm512_set1_epi32(i32::MIN));
    let nudge = _mm512_or_si512(sign, _mm512_castps_si512(_mm512_set1_ps(HALF_BELOW)));
    _mm512_cvttps_epi32(_mm512_add_ps(y, _mm512_castsi512_ps(nudge)))
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
pub(super) fn words16(n: usize) -> u16 {
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

/// [`super::pack_i8`] of whole words (`input` 32 values per word of
/// `output`), one AVX2 compare and byte mask per word; `false` leaves it
/// to the portable loop.
pub(crate) fn pack_i8(input: &[i8], zero_point: i32, output: &mut [u32]) -> bool {
    if selected() == Isa::Portable || input.len() != output.len() * 32 {
        return false;
    }
    // SAFETY: AVX2 is selected only on CPUs that have it (AVX-512 ones
    // too); lengths checked above.
    unsafe { pack_i8_avx2(input, zero_point, output) };
    true
}

#[target_feature(enable = "avx2")]
unsafe fn pack_i8_avx2(input: &[i8], zero_point: i32, output: &mut [u32]) {
    // `x < zero_point` for int8 x, with the zero point brought into int8's
    // range: below -128 nothing is less, above 127 everything is.
    if zero_point > 127 {
        output.fill(u32::MAX);
        return;
    }
    let zp = _mm256_set1_epi8(zero_point.max(-128) as i8);
    for (i, word) in output.iter_mut().enumerate() {
        let x = _mm256_loadu_si256(input.as_ptr().add(i * 32).cast());
        *word = _mm256_movemask_epi8(_mm256_cmpgt_epi8(zp, x)) as u32;
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
    // SAFETY: a level is selected only on CPUs that have it (AVX-512
    // ones have AVX2 too); lengths checked above.
    unsafe {
        let done = match selected() {
            Isa::Avx512 => emit_f32_avx512(k, pops, m, b, range, out),
            _ => 0,
        };
        emit_f32_avx2(
            k,
            &pops[done..],
            &m[done..],
            &b[done..],
            range,
            &mut out[done..],
        );
    }
    true
}

/// [`emit_f32_avx2`] sixteen channels a vector; returns how many it wrote
/// (whole vectors), the rest left to the AVX2 loop.
#[target_feature(enable = "avx512f")]
unsafe fn emit_f32_avx512(
    k: i32,
    pops: &[u32],
    m: &[f32],
    b: &[f32],
    range: crate::float::Range,
    out: &mut [f32],
) -> usize {
    let whole = pops.len() & !15;
    for i in (0..whole).step_by(16) {
        let y = clamp16(transform16(k, pops, m, b, i), range);
        _mm512_storeu_ps(out.as_mut_ptr().add(i), y);
    }
    whole
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
    // SAFETY: a level is selected only on CPUs that have it (AVX-512
    // ones have AVX2 too); lengths checked above.
    unsafe {
        let done = match selected() {
            Isa::Avx512 => emit_int8_avx512(k, pops, (m, b), zero_point, clamp, out),
            _ => 0,
        };
        let (pops, m, b) = (&pops[done..], &m[done..], &b[done..]);
        emit_int8_avx2(k, pops, (m, b), zero_point, clamp, &mut out[done..]);
    }
    true
}

use crate::float::HALF_BELOW;

/// [`emit_int8_avx2`] sixteen channels a vector; returns how many it wrote
/// (whole vectors), the rest left to the AVX2 loop.
#[target_feature(enable = "avx512f")]
unsafe fn emit_int8_avx512(
    k: i32,
    pops: &[u32],
    (m, b): (&[f32], &[f32]),
    zero_point: i32,
    clamp: crate::int8::Clamp,
    out: &mut [i8],
) -> usize {
    let whole = pops.len() & !15;
    for i in (0..whole).step_by(16) {
        let q = int8_16(transform16(k, pops, m, b, i), zero_point, clamp);
        _mm_storeu_si128(out.as_mut_ptr().add(i).cast(), _mm512_cvtepi32_epi8(q));
    }
    whole
}

/// `dot * m + b` for channels `i..i + 16`, `dot = k - 2 pop`.
#[inline(always)]
unsafe fn transform16(k: i32, pops: &[u32], m: &[f32], b: &[f32], i: usize) -> __m512 {
    let pop = _mm512_loadu_si512(pops.as_ptr().add(i).cast());
    let dot = _mm512_sub_epi32(_mm512_set1_epi32(k), _mm512_slli_epi32::<1>(pop));
    let y = _mm512_mul_ps(_mm512_cvtepi32_ps(dot), _mm512_loadu_ps(m.as_ptr().add(i)));
    _mm512_add_ps(y, _mm512_loadu_ps(b.as_ptr().add(i)))
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
    let mut i = 0;
    while i + 8 <= n {
        let q = int8_8(transform(k, pops, m, b, i), zero_point, clamp);
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

/// [`super::int8_value`] of eight values: rounded half away from zero as
/// [`crate::float::round_to_i32`] does, the zero point added and clamped.
#[inline(always)]
unsafe fn int8_8(y: __m256, zero_point: i32, clamp: crate::int8::Clamp) -> __m256i {
    let (cmin, cmax) = (_mm256_set1_epi32(clamp.min), _mm256_set1_epi32(clamp.max));
    let r = _mm256_add_epi32(round8::<true>(y), _mm256_set1_epi32(zero_point));
    _mm256_min_epi32(cmax, _mm256_max_epi32(cmin, r))
}

/// Eight values rounded half away from zero as
/// [`crate::float::round_to_i32`] does; with `GUARD`, NaN as 0 and values
/// beyond +-1e9 held there, where the int8 clamp decides alone as the
/// portable saturating conversion lets it (without, the values must be
/// finite and within that range).
#[inline(always)]
unsafe fn round8<const GUARD: bool>(y: __m256) -> __m256i {
    let y = if GUARD {
        let y = _mm256_and_ps(y, _mm256_cmp_ps(y, y, _CMP_ORD_Q));
        _mm256_min_ps(
            _mm256_set1_ps(1.0e9),
            _mm256_max_ps(_mm256_set1_ps(-1.0e9), y),
        )
    } else {
        y
    };
    let nudge = _mm256_or_ps(
        _mm256_and_ps(y, _mm256_set1_ps(-0.0)),
        _mm256_set1_ps(HALF_BELOW),
    );
    _mm256_cvttps_epi32(_mm256_add_ps(y, nudge))
}

/// The packed output word of a block of 32 channels, bit `i` set where
/// `k - 2 * pops[i] < thresholds[i]`, eight channels per AVX2 compare;
/// `None` (for the portable loop) for shorter blocks or no AVX2.
pub(crate) fn sign_bits(k: i32, pops: &[u32], thresholds: &[i32]) -> Option<u32> {
    if pops.len() != 32 || thresholds.len() != 32 || selected() == Isa::Portable {
        return None;
    }
    // SAFETY: a level is selected only on CPUs that have it; lengths
    // checked above.
    Some(unsafe {
        match selected() {
            Isa::Avx512 => sign_bits_avx512(k, pops, thresholds),
            _ => sign_bits_avx2(k, pops, thresholds),
        }
    })
}

/// [`sign_bits_avx2`] sixteen channels per compare, straight to a mask.
#[target_feature(enable = "avx512f")]
unsafe fn sign_bits_avx512(k: i32, pops: &[u32], thresholds: &[i32]) -> u32 {
    let half = |i: usize| {
        let pop = _mm512_loadu_si512(pops.as_ptr().add(i).cast());
        let dot = _mm512_sub_epi32(_mm512_set1_epi32(k), _mm512_slli_epi32::<1>(pop));
        let t = _mm512_loadu_si512(thresholds.as_ptr().add(i).cast());
        _mm512_cmpgt_epi32_mask(t, dot) as u32
    };
    half(0) | half(16) << 16
}

#[target_feature(enable = "avx2")]
unsafe fn sign_bits_avx2(k: i32, pops: &[u32], thresholds: &[i32]) -> u32 {
    let mut word = 0u32;
    for i in (0..32).step_by(8) {
        let pop = _mm256_loadu_si256(pops.as_ptr().add(i).cast());
        word |= signs8(k, pop, thresholds.as_ptr().add(i)) << i;
    }
    word
}

/// The sign bits of eight counts against the eight thresholds at `t`: bit
/// `i` set where `k - 2 pops[i] < t[i]`.
#[inline(always)]
unsafe fn signs8(k: i32, pops: __m256i, t: *const i32) -> u32 {
    let t = _mm256_loadu_si256(t.cast());
    let below = _mm256_castsi256_ps(_mm256_cmpgt_epi32(t, dots8(k, pops)));
    _mm256_movemask_ps(below) as u32
}

/// `dot * m + b` for channels `i..i + 8`, `dot = k - 2 pop`.
#[inline(always)]
unsafe fn transform(k: i32, pops: &[u32], m: &[f32], b: &[f32], i: usize) -> __m256 {
    let pop = _mm256_loadu_si256(pops.as_ptr().add(i).cast());
    affine8(k, pop, m.as_ptr().add(i), b.as_ptr().add(i))
}

/// `dot * m + b` (multiply and add never fused, as the portable
/// transform) of eight counts against the eight channels at `m` and `b`.
#[inline(always)]
unsafe fn affine8(k: i32, pops: __m256i, m: *const f32, b: *const f32) -> __m256 {
    let y = _mm256_mul_ps(_mm256_cvtepi32_ps(dots8(k, pops)), _mm256_loadu_ps(m));
    _mm256_add_ps(y, _mm256_loadu_ps(b))
}

/// `k - 2 pop` of eight counts.
#[inline(always)]
unsafe fn dots8(k: i32, pops: __m256i) -> __m256i {
    _mm256_sub_epi32(_mm256_set1_epi32(k), _mm256_slli_epi32::<1>(pops))
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
                        let lanes = LaneRows::laid_out(&rows, n, 8);
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
                    let lanes = LaneRows::laid_out(&rows, n, 16);
                    for first in (0..count).step_by(16) {
                        let mut got = std::vec![0; count - first];
                        unsafe { lanes.count_avx512(&field, first, &mut got) };
                        assert_eq!(got, want[first..], "16 lanes, {n} words, rows {first}..");
                    }
                }
            }
        }
    }

    /// The AVX2 sign packing sets the bits the portable one does, for
    /// every zero point from below int8's range to above it.
    #[test]
    fn avx2_packing_equals_the_portable_one() {
        if !Isa::Avx2.is_available() {
            return;
        }
        let input: Vec<i8> = (0..32 * 20).map(|i| (i * 37 % 256) as u8 as i8).collect();
        for zero_point in [-300, -129, -128, -127, -1, 0, 1, 5, 126, 127, 128, 400] {
            let mut want = std::vec![0u32; 20];
            let negative = |&x: &i8| (x as i32) < zero_point;
            let whole = |word: &[i8; 32]| super::super::pack_word(word, &negative);
            super::super::pack(&input, 64, &mut want, negative, whole).unwrap();
            let mut got = std::vec![0u32; 20];
            unsafe { pack_i8_avx2(&input, zero_point, &mut got) };
            assert_eq!(got, want, "zero point {zero_point}");
        }
    }

    /// The AVX2 and AVX-512 output transforms give the portable values bit for bit:
    /// blocks of 1 to 32 channels (whole vectors and the rest), multipliers
    /// from tiny to huge (so values beyond the int32 range and the int8
    /// clamp), ties of the rounding, zero multipliers (signed zeros at a
    /// ReLU's clamp), infinities and NaN.
    #[test]
    fn vector_output_transforms_equal_the_portable_ones() {
        let levels = [Isa::Avx2, Isa::Avx512].map(|isa| (isa, isa.is_available()));
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
            let n = 1 + case % 40;
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
            for (isa, _) in levels.iter().filter(|(_, available)| *available) {
                let mut got = std::vec![0i8; n];
                unsafe {
                    let done = match isa {
                        Isa::Avx512 => {
                            emit_int8_avx512(k as i32, &pops, (&m, &b), zp, clamp, &mut got)
                        }
                        _ => 0,
                    };
                    let (pops, m, b) = (&pops[done..], &m[done..], &b[done..]);
                    emit_int8_avx2(k as i32, pops, (m, b), zp, clamp, &mut got[done..]);
                }
                for j in 0..n {
                    let want = crate::binary::int8_value(dot(j), m[j], b[j], zp, clamp);
                    assert_eq!(
                        got[j],
                        want,
                        "int8, {isa:?}, case {case}, channel {j}: {} * {} + {}",
                        dot(j),
                        m[j],
                        b[j]
                    );
                }
                let range = [(f32::NEG_INFINITY, f32::INFINITY), (0.0, 6.0), (-1.0, 1.0)][case % 3];
                let mut got = std::vec![0f32; n];
                unsafe {
                    let done = match isa {
                        Isa::Avx512 => emit_f32_avx512(k as i32, &pops, &m, &b, range, &mut got),
                        _ => 0,
                    };
                    let (pops, m, b) = (&pops[done..], &m[done..], &b[done..]);
                    emit_f32_avx2(k as i32, pops, m, b, range, &mut got[done..]);
                }
                for j in 0..n {
                    let want = crate::binary::f32_value(dot(j), m[j], b[j], range);
                    assert_eq!(
                        got[j].to_bits(),
                        want.to_bits(),
                        "f32, {isa:?}, case {case}, channel {j}"
                    );
                }
                if n == 32 {
                    let t: std::vec::Vec<i32> =
                        (0..32).map(|j| dot(j) + (j as i32 % 3) - 1).collect();
                    let want = (0..32).fold(0u32, |w, j| w | u32::from(dot(j) < t[j]) << j);
                    let got = match isa {
                        Isa::Avx512 => unsafe { sign_bits_avx512(k as i32, &pops, &t) },
                        _ => unsafe { sign_bits_avx2(k as i32, &pops, &t) },
                    };
                    assert_eq!(got, want, "sign bits, {isa:?}, case {case}");
                }
            }
        }
    }
}
