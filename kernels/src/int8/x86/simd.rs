//! The building blocks the x86 int8 kernels are written in, one
//! implementation per instruction-set level: a vector of 32-bit output
//! lanes, how gathered inputs and packed weights are stored, the
//! multiply-accumulate, and the requantization of a vector of sums.

use super::gemm::{Layout, P};
use super::requantize::Requantize;
use crate::quant::Requant;
use core::arch::x86_64::*;

/// One requantization per lane, in the vectors [`Simd::requantize`] reads
/// (see [`Requantize`] for each term).
#[derive(Clone, Copy)]
pub(super) struct Terms<V> {
    pub multiplier: V,
    pub odd_multiplier: V,
    /// `None` when no lane shifts left.
    pub left: Option<V>,
    pub right: V,
    pub mask: V,
    pub half: V,
}

impl<V: Copy> Terms<V> {
    /// The same multiplier in every lane, shifted left by `extra_left` first.
    #[inline(always)]
    pub unsafe fn uniform<S: Simd<V = V>>(r: Requant, extra_left: i32) -> Self {
        let right = (-r.shift).max(0);
        let mask = ((1u64 << right) - 1) as i32;
        let left = r.shift.max(0) + extra_left;
        Terms {
            multiplier: S::splat(r.multiplier),
            odd_multiplier: S::splat(r.multiplier),
            left: (left > 0).then(|| S::splat(left)),
            right: S::splat(right),
            mask: S::splat(mask),
            half: S::splat(mask >> 1),
        }
    }
}

/// One SIMD level. Every method is `unsafe`: the caller guarantees the
/// CPU has the level's features and that pointers cover what is read or
/// written.
pub(super) trait Simd {
    /// Output channels per vector.
    const LANES: usize;
    /// Depth values per multiply-accumulate step (per 32-bit lane).
    const STEP: usize;
    /// A gathered input value.
    type X: Copy;
    /// A packed weight.
    type W: Copy;
    /// A vector of `LANES` 32-bit lanes.
    type V: Copy;

    /// Input value `x` as gathered for a stage with input offset `offset`.
    fn x(x: i8, offset: i32) -> Self::X;
    /// The gathered value of a tap in the padding (contributes nothing).
    fn pad(offset: i32) -> Self::X;
    /// A weight as packed.
    fn w(w: i8) -> Self::W;
    /// Whether packed weights can hold `w + filter_offset` (legacy uint8
    /// weights with a zero point, up to 255 in magnitude): 16-bit weights
    /// can, VNNI's bytes cannot.
    const HOLDS_WEIGHT_OFFSET: bool;
    /// Packed weight `w` plus `offset` (where
    /// [`HOLDS_WEIGHT_OFFSET`](Self::HOLDS_WEIGHT_OFFSET)).
    fn offset_weight(w: Self::W, offset: i32) -> Self::W;
    /// What the sums of gathered values lack against `sum(w * (x +
    /// offset))`, per unit of a filter's weight sum.
    fn correction(offset: i32) -> i32;

    /// All lanes zero.
    unsafe fn zero() -> Self::V;
    /// `LANES * STEP` packed weights.
    unsafe fn load(w: *const Self::W) -> Self::V;
    /// `STEP` gathered values, repeated in every lane.
    unsafe fn broadcast(x: *const Self::X) -> Self::V;
    /// `acc + sum over each lane's STEP products of x and w`.
    unsafe fn madd(acc: Self::V, x: Self::V, w: Self::V) -> Self::V;
    /// `n <= LANES` int8 values widened to 32-bit lanes, plus `offset`
    /// (lanes past `n` hold `offset`).
    unsafe fn widen(p: *const i8, n: usize, offset: i32) -> Self::V;
    /// Lane-wise `acc + a * b` of 32-bit lanes that hold 16-bit values
    /// (inputs plus offsets, weights: the depthwise kernels' products): one
    /// 16-bit multiply-add (VPMADDWD, VPDPWSSD) with `b`'s high halves
    /// cleared, where a 32-bit multiply takes two micro-operations.
    unsafe fn mul_add(acc: Self::V, a: Self::V, b: Self::V) -> Self::V;
    /// Converts `src` to gathered values at `dst` (as [`x`](Self::x), vectorized).
    unsafe fn convert(src: &[i8], offset: i32, dst: *mut Self::X);
    /// Packs one vector of weights: `STEP` values from depth `k` of each
    /// of the `n <= LANES` rows `depth` apart from `rows` (zero past `n`),
    /// to `out`. Four bytes from `k` must lie inside every row.
    unsafe fn pack_step(rows: *const i8, depth: usize, k: usize, n: usize, out: *mut Self::W);
    /// [`gemm::tile`](super::gemm::tile) compiled once, out of line, for
    /// this level (its register allocation does not depend on the caller).
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile(
        bases: &[*const Self::X; P],
        layout: Layout,
        packed: &[Self::W],
        r: &Requantize,
        n: usize,
        out: *mut i8,
        oc: usize,
        pixels: usize,
    );
    /// `sum(w_j[i] * (x[i] + offset))` for `i < k`, for four rows `w_j`
    /// of int8 weights and one gathered input `x` (`k` values, then the
    /// padding value up to a whole 64 of them). Weight bytes up to `end`
    /// may be read past a row's `k` (they meet the padding, whose products
    /// are zero); none past `end`.
    unsafe fn dot4(
        x: *const Self::X,
        w: [*const i8; 4],
        k: usize,
        offset: i32,
        end: *const i8,
    ) -> [i32; 4];
    /// Every lane `v`.
    unsafe fn splat(v: i32) -> Self::V;
    /// `LANES` 32-bit values.
    unsafe fn load32(p: *const i32) -> Self::V;
    /// Stores `LANES` 32-bit values.
    unsafe fn store32(v: Self::V, p: *mut i32);
    /// Lane-wise 32-bit addition.
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// TFLite's double-rounding requantization of every lane (see
    /// [`crate::quant::multiply_by_quantized_multiplier`]): shifted left,
    /// the doubling high multiply by `multiplier` (never `i32::MIN`), the
    /// rounding right shift.
    #[inline(always)]
    unsafe fn requantize(x: Self::V, t: &Terms<Self::V>) -> Self::V {
        let x = match t.left {
            Some(left) => Self::shift_left(x, left),
            None => x,
        };
        Self::rounding_shift(Self::high_mul(x, t), t)
    }
    /// gemmlowp's doubling high multiply `(x * M + 2^30) >> 31` of every
    /// lane by its multiplier, per 64-bit half.
    unsafe fn high_mul(x: Self::V, t: &Terms<Self::V>) -> Self::V;
    /// Shifts every lane right by its `t.right`, rounding to nearest with
    /// ties away from zero (gemmlowp `RoundingDivideByPOT`).
    unsafe fn rounding_shift(x: Self::V, t: &Terms<Self::V>) -> Self::V;
    /// Lane-wise shift left by each lane's count.
    unsafe fn shift_left(x: Self::V, count: Self::V) -> Self::V;
    /// Lane-wise arithmetic shift right by each lane's count.
    unsafe fn shift_right(x: Self::V, count: Self::V) -> Self::V;
    /// Lane-wise low 32 bits of the product.
    unsafe fn mul_low(a: Self::V, b: Self::V) -> Self::V;
    /// Adds `offset`, clamps to `min..=max` and stores the first `n` lanes as int8.
    unsafe fn store_i8(y: Self::V, offset: i32, min: i32, max: i32, n: usize, out: *mut i8);

    /// The requantization of chunk channels `first..first + LANES`: their
    /// biases and terms, loaded once for every pixel's sums.
    #[inline(always)]
    unsafe fn channels(p: &Requantize, first: usize) -> (Self::V, Terms<Self::V>) {
        let at = |a: &[i32]| Self::load32(a.as_ptr().add(first));
        let terms = Terms {
            multiplier: at(&p.multiplier),
            odd_multiplier: at(&p.odd_multiplier),
            left: p.shifts_left.then(|| at(&p.left)),
            right: at(&p.right),
            mask: at(&p.mask),
            half: at(&p.half),
        };
        (at(&p.bias), terms)
    }

    /// Requantizes the sums of `n <= LANES` channels starting at chunk
    /// channel `first` (whose [`channels`](Self::channels) are `bias` and
    /// `terms`) and stores them as int8 at `out`.
    #[inline(always)]
    unsafe fn finish_with(
        acc: Self::V,
        (bias, terms): &(Self::V, Terms<Self::V>),
        p: &Requantize,
        first: usize,
        n: usize,
        out: *mut i8,
    ) {
        let x = Self::add(acc, *bias);
        if !p.vector {
            let mut sums = [0i32; 16];
            Self::store32(x, sums.as_mut_ptr());
            return p.finish_scalar(&sums[..n], first, out);
        }
        Self::store_i8(
            Self::requantize(x, terms),
            p.output_offset,
            p.min,
            p.max,
            n,
            out,
        )
    }

    /// [`finish_with`](Self::finish_with) for one vector of sums.
    #[inline(always)]
    unsafe fn finish(acc: Self::V, p: &Requantize, first: usize, n: usize, out: *mut i8) {
        Self::finish_with(acc, &Self::channels(p, first), p, first, n, out)
    }
}

/// AVX2: 8 lanes; inputs widened to 16 bits with the offset added
/// (padding is 0), weights to 16 bits, and VPMADDWD multiplies and adds
/// two depth values per lane (exact: |x + offset| <= 255, |w| <= 128).
#[derive(Clone, Copy)]
pub(super) struct Avx2;

/// AVX-512 with VNNI: 16 lanes; inputs as unsigned bytes `x + 128`,
/// weights as they are, and VPDPBUSD multiplies and adds four depth values
/// per lane. The sum then lacks `(offset - 128) * sum(w)`, added with the
/// bias; a padded tap holds `128 - offset`, whose products that term
/// cancels.
#[derive(Clone, Copy)]
pub(super) struct Avx512;

impl Simd for Avx2 {
    #[target_feature(enable = "avx2")]
    #[inline(never)]
    unsafe fn tile(
        bases: &[*const Self::X; P],
        layout: Layout,
        packed: &[Self::W],
        r: &Requantize,
        n: usize,
        out: *mut i8,
        oc: usize,
        pixels: usize,
    ) {
        super::gemm::tile::<Self>(bases, layout, packed, r, n, out, oc, pixels)
    }

    const LANES: usize = 8;
    const STEP: usize = 2;
    type X = i16;
    type W = i16;
    type V = __m256i;

    #[inline(always)]
    fn x(x: i8, offset: i32) -> i16 {
        (x as i32 + offset) as i16
    }

    #[inline(always)]
    fn pad(_offset: i32) -> i16 {
        0
    }

    #[inline(always)]
    fn w(w: i8) -> i16 {
        w as i16
    }

    const HOLDS_WEIGHT_OFFSET: bool = true;

    #[inline(always)]
    fn offset_weight(w: i16, offset: i32) -> i16 {
        (w as i32 + offset) as i16
    }

    #[inline(always)]
    fn correction(_offset: i32) -> i32 {
        0
    }

    #[inline(always)]
    unsafe fn zero() -> __m256i {
        _mm256_setzero_si256()
    }

    #[inline(always)]
    unsafe fn load(w: *const i16) -> __m256i {
        _mm256_loadu_si256(w.cast())
    }

    #[inline(always)]
    unsafe fn broadcast(x: *const i16) -> __m256i {
        _mm256_set1_epi32(x.cast::<i32>().read_unaligned())
    }

    #[inline(always)]
    unsafe fn madd(acc: __m256i, x: __m256i, w: __m256i) -> __m256i {
        _mm256_add_epi32(acc, _mm256_madd_epi16(x, w))
    }

    #[inline(always)]
    unsafe fn widen(p: *const i8, n: usize, offset: i32) -> __m256i {
        let bytes = if n == 8 {
            _mm_loadl_epi64(p.cast())
        } else {
            _mm_cvtsi64_si128(read_partial(p.cast(), n) as i64)
        };
        _mm256_add_epi32(_mm256_cvtepi8_epi32(bytes), _mm256_set1_epi32(offset))
    }

    #[inline(always)]
    unsafe fn mul_add(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        let low = _mm256_and_si256(b, _mm256_set1_epi32(0xffff));
        _mm256_add_epi32(acc, _mm256_madd_epi16(a, low))
    }

    #[inline(always)]
    unsafe fn convert(src: &[i8], offset: i32, dst: *mut i16) {
        let mut i = 0;
        let off = _mm256_set1_epi16(offset as i16);
        while i + 16 <= src.len() {
            let v = _mm256_cvtepi8_epi16(_mm_loadu_si128(src.as_ptr().add(i).cast()));
            _mm256_storeu_si256(dst.add(i).cast(), _mm256_add_epi16(v, off));
            i += 16;
        }
        for (k, &x) in src.iter().enumerate().skip(i) {
            dst.add(k).write(Self::x(x, offset));
        }
    }

    #[inline(always)]
    unsafe fn pack_step(rows: *const i8, depth: usize, k: usize, n: usize, out: *mut i16) {
        let index = _mm256_mullo_epi32(
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            _mm256_set1_epi32(depth as i32),
        );
        let valid = _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        );
        let v = _mm256_mask_i32gather_epi32::<1>(
            _mm256_setzero_si256(),
            rows.add(k).cast(),
            index,
            valid,
        );
        // Bytes 0 and 1 of each lane, sign-extended into its two halves.
        let low = _mm256_srli_epi32::<16>(_mm256_slli_epi32::<16>(_mm256_srai_epi32::<24>(
            _mm256_slli_epi32::<24>(v),
        )));
        let high = _mm256_slli_epi32::<16>(_mm256_srai_epi32::<24>(_mm256_slli_epi32::<16>(v)));
        _mm256_storeu_si256(out.cast(), _mm256_or_si256(low, high));
    }

    #[inline(always)]
    unsafe fn dot4(
        x: *const i16,
        w: [*const i8; 4],
        k: usize,
        _offset: i32,
        end: *const i8,
    ) -> [i32; 4] {
        let mut acc = [_mm256_setzero_si256(); 4];
        for c in (0..k).step_by(16) {
            let xv = _mm256_loadu_si256(x.add(c).cast());
            for (acc, &w) in acc.iter_mut().zip(&w) {
                // A row's last bytes: the next row's first ones may come
                // too (they meet zeros), short of the weights' end.
                let bytes = if k - c >= 16 || (end as usize).wrapping_sub(w as usize) >= c + 16 {
                    _mm_loadu_si128(w.add(c).cast())
                } else {
                    let mut tail = [0i8; 16];
                    core::ptr::copy_nonoverlapping(w.add(c), tail.as_mut_ptr(), k - c);
                    _mm_loadu_si128(tail.as_ptr().cast())
                };
                *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(xv, _mm256_cvtepi8_epi16(bytes)));
            }
        }
        let mut four = [0i32; 4];
        _mm_storeu_si128(four.as_mut_ptr().cast(), sum4_avx2(acc));
        four
    }

    #[inline(always)]
    unsafe fn splat(v: i32) -> __m256i {
        _mm256_set1_epi32(v)
    }

    #[inline(always)]
    unsafe fn load32(p: *const i32) -> __m256i {
        _mm256_loadu_si256(p.cast())
    }

    #[inline(always)]
    unsafe fn store32(v: __m256i, p: *mut i32) {
        _mm256_storeu_si256(p.cast(), v)
    }

    #[inline(always)]
    unsafe fn add(a: __m256i, b: __m256i) -> __m256i {
        _mm256_add_epi32(a, b)
    }

    #[inline(always)]
    unsafe fn high_mul(x: __m256i, t: &Terms<__m256i>) -> __m256i {
        let nudge = _mm256_set1_epi64x(1 << 30);
        let even =
            _mm256_srli_epi64::<31>(_mm256_add_epi64(_mm256_mul_epi32(x, t.multiplier), nudge));
        let odd = _mm256_mul_epi32(_mm256_srli_epi64::<32>(x), t.odd_multiplier);
        let odd = _mm256_slli_epi64::<1>(_mm256_add_epi64(odd, nudge));
        _mm256_blend_epi32::<0b1010_1010>(even, odd)
    }

    #[inline(always)]
    unsafe fn rounding_shift(x: __m256i, t: &Terms<__m256i>) -> __m256i {
        let threshold = _mm256_sub_epi32(t.half, _mm256_srai_epi32::<31>(x));
        let above = _mm256_cmpgt_epi32(_mm256_and_si256(x, t.mask), threshold);
        _mm256_sub_epi32(_mm256_srav_epi32(x, t.right), above)
    }

    #[inline(always)]
    unsafe fn shift_left(x: __m256i, count: __m256i) -> __m256i {
        _mm256_sllv_epi32(x, count)
    }

    #[inline(always)]
    unsafe fn shift_right(x: __m256i, count: __m256i) -> __m256i {
        _mm256_srav_epi32(x, count)
    }

    #[inline(always)]
    unsafe fn mul_low(a: __m256i, b: __m256i) -> __m256i {
        _mm256_mullo_epi32(a, b)
    }

    #[inline(always)]
    unsafe fn store_i8(y: __m256i, offset: i32, min: i32, max: i32, n: usize, out: *mut i8) {
        let y = _mm256_add_epi32(y, _mm256_set1_epi32(offset));
        // The packs saturate: a clamp to all of int8 is theirs.
        let y = if (min, max) == (-128, 127) {
            y
        } else {
            _mm256_min_epi32(
                _mm256_max_epi32(y, _mm256_set1_epi32(min)),
                _mm256_set1_epi32(max),
            )
        };
        let words = _mm_packs_epi32(_mm256_castsi256_si128(y), _mm256_extracti128_si256::<1>(y));
        let bytes = _mm_packs_epi16(words, words);
        if n == 8 {
            _mm_storel_epi64(out.cast(), bytes);
        } else {
            write_partial(_mm_cvtsi128_si64(bytes) as u64, out.cast(), n);
        }
    }
}

/// The `n < 8` bytes at `p` as the low bytes of a word (the rest zero):
/// by a four-, a two- and a one-byte load as `n` has them, where copying
/// a run of a run-time length is a call (and took most of a depthwise
/// layer over four channels).
#[inline(always)]
unsafe fn read_partial(p: *const u8, n: usize) -> u64 {
    debug_assert!(n < 8);
    let mut word = 0u64;
    let mut at = 0;
    if n & 4 != 0 {
        word = p.cast::<u32>().read_unaligned() as u64;
        at = 4;
    }
    if n & 2 != 0 {
        word |= (p.add(at).cast::<u16>().read_unaligned() as u64) << (8 * at);
        at += 2;
    }
    if n & 1 != 0 {
        word |= (p.add(at).read() as u64) << (8 * at);
    }
    word
}

/// The low `n < 8` bytes of `word` to `p`, as [`read_partial`] reads them.
#[inline(always)]
unsafe fn write_partial(word: u64, p: *mut u8, n: usize) {
    debug_assert!(n < 8);
    let mut at = 0;
    if n & 4 != 0 {
        p.cast::<u32>().write_unaligned(word as u32);
        at = 4;
    }
    if n & 2 != 0 {
        p.add(at)
            .cast::<u16>()
            .write_unaligned((word >> (8 * at)) as u16);
        at += 2;
    }
    if n & 1 != 0 {
        p.add(at).write((word >> (8 * at)) as u8);
    }
}

/// The lane sums of four vectors, in one: three horizontal additions
/// and one of the halves, where reducing each alone takes six steps.
#[inline(always)]
pub(super) unsafe fn sum4_avx2(acc: [__m256i; 4]) -> __m128i {
    let pairs = _mm256_hadd_epi32(
        _mm256_hadd_epi32(acc[0], acc[1]),
        _mm256_hadd_epi32(acc[2], acc[3]),
    );
    _mm_add_epi32(
        _mm256_castsi256_si128(pairs),
        _mm256_extracti128_si256::<1>(pairs),
    )
}

/// A mask of the first `n` of 16 lanes.
#[inline(always)]
fn lanes16(n: usize) -> u16 {
    ((1u32 << n) - 1) as u16
}

impl Simd for Avx512 {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline(never)]
    unsafe fn tile(
        bases: &[*const Self::X; P],
        layout: Layout,
        packed: &[Self::W],
        r: &Requantize,
        n: usize,
        out: *mut i8,
        oc: usize,
        pixels: usize,
    ) {
        super::gemm::tile::<Self>(bases, layout, packed, r, n, out, oc, pixels)
    }

    const LANES: usize = 16;
    const STEP: usize = 4;
    type X = u8;
    type W = i8;
    type V = __m512i;

    #[inline(always)]
    fn x(x: i8, _offset: i32) -> u8 {
        x as u8 ^ 0x80
    }

    #[inline(always)]
    fn pad(offset: i32) -> u8 {
        (128 - offset) as u8
    }

    #[inline(always)]
    fn w(w: i8) -> i8 {
        w
    }

    const HOLDS_WEIGHT_OFFSET: bool = false;

    #[inline(always)]
    fn offset_weight(w: i8, offset: i32) -> i8 {
        debug_assert_eq!(offset, 0, "VNNI's packed bytes hold no weight offset");
        w
    }

    #[inline(always)]
    fn correction(offset: i32) -> i32 {
        offset - 128
    }

    #[inline(always)]
    unsafe fn zero() -> __m512i {
        _mm512_setzero_si512()
    }

    #[inline(always)]
    unsafe fn load(w: *const i8) -> __m512i {
        _mm512_loadu_si512(w.cast())
    }

    #[inline(always)]
    unsafe fn broadcast(x: *const u8) -> __m512i {
        _mm512_set1_epi32(x.cast::<i32>().read_unaligned())
    }

    #[inline(always)]
    unsafe fn madd(acc: __m512i, x: __m512i, w: __m512i) -> __m512i {
        _mm512_dpbusd_epi32(acc, x, w)
    }

    #[inline(always)]
    unsafe fn widen(p: *const i8, n: usize, offset: i32) -> __m512i {
        let bytes = if n == 16 {
            _mm_loadu_si128(p.cast())
        } else {
            _mm_maskz_loadu_epi8(lanes16(n), p)
        };
        _mm512_add_epi32(_mm512_cvtepi8_epi32(bytes), _mm512_set1_epi32(offset))
    }

    #[inline(always)]
    unsafe fn mul_add(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
        _mm512_dpwssd_epi32(acc, a, _mm512_and_si512(b, _mm512_set1_epi32(0xffff)))
    }

    #[inline(always)]
    unsafe fn convert(src: &[i8], _offset: i32, dst: *mut u8) {
        let flip = _mm512_set1_epi8(-128);
        let mut i = 0;
        while i < src.len() {
            let n = (src.len() - i).min(64);
            let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
            let v = _mm512_maskz_loadu_epi8(mask, src.as_ptr().add(i));
            _mm512_mask_storeu_epi8(dst.add(i).cast(), mask, _mm512_xor_si512(v, flip));
            i += n;
        }
    }

    #[inline(always)]
    unsafe fn pack_step(rows: *const i8, depth: usize, k: usize, n: usize, out: *mut i8) {
        let index = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(depth as i32),
        );
        let v = _mm512_mask_i32gather_epi32::<1>(
            _mm512_setzero_si512(),
            lanes16(n),
            index,
            rows.add(k).cast(),
        );
        _mm512_storeu_si512(out.cast(), v);
    }

    #[inline(always)]
    unsafe fn dot4(
        x: *const u8,
        w: [*const i8; 4],
        k: usize,
        offset: i32,
        _end: *const i8,
    ) -> [i32; 4] {
        // The weights' sums (for the correction of `x + 128`) by a second
        // VPDPBUSD against ones.
        let ones = _mm512_set1_epi8(1);
        let mut acc = [_mm512_setzero_si512(); 4];
        let mut sums = [_mm512_setzero_si512(); 4];
        for c in (0..k).step_by(64) {
            let m = if k - c >= 64 {
                u64::MAX
            } else {
                (1u64 << (k - c)) - 1
            };
            let xv = _mm512_loadu_si512(x.add(c).cast());
            for j in 0..4 {
                let wv = _mm512_maskz_loadu_epi8(m, w[j].add(c));
                acc[j] = _mm512_dpbusd_epi32(acc[j], xv, wv);
                sums[j] = _mm512_dpbusd_epi32(sums[j], ones, wv);
            }
        }
        // Each row's lanes corrected, halved to 256 bits, and the four
        // rows summed together (eight separate reductions took longer than
        // a 128-value row's products; lane sums wrap as the scalar ones).
        let correction = _mm512_set1_epi32(offset.wrapping_sub(128));
        let half: [__m256i; 4] = core::array::from_fn(|j| {
            let v = _mm512_add_epi32(acc[j], _mm512_mullo_epi32(sums[j], correction));
            _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v))
        });
        let mut four = [0i32; 4];
        _mm_storeu_si128(four.as_mut_ptr().cast(), sum4_avx2(half));
        four
    }

    #[inline(always)]
    unsafe fn splat(v: i32) -> __m512i {
        _mm512_set1_epi32(v)
    }

    #[inline(always)]
    unsafe fn load32(p: *const i32) -> __m512i {
        _mm512_loadu_si512(p.cast())
    }

    #[inline(always)]
    unsafe fn store32(v: __m512i, p: *mut i32) {
        _mm512_storeu_si512(p.cast(), v)
    }

    #[inline(always)]
    unsafe fn add(a: __m512i, b: __m512i) -> __m512i {
        _mm512_add_epi32(a, b)
    }

    #[inline(always)]
    unsafe fn high_mul(x: __m512i, t: &Terms<__m512i>) -> __m512i {
        let nudge = _mm512_set1_epi64(1 << 30);
        let even =
            _mm512_srli_epi64::<31>(_mm512_add_epi64(_mm512_mul_epi32(x, t.multiplier), nudge));
        let odd = _mm512_mul_epi32(_mm512_srli_epi64::<32>(x), t.odd_multiplier);
        let odd = _mm512_slli_epi64::<1>(_mm512_add_epi64(odd, nudge));
        _mm512_mask_blend_epi32(0b1010_1010_1010_1010, even, odd)
    }

    #[inline(always)]
    unsafe fn rounding_shift(x: __m512i, t: &Terms<__m512i>) -> __m512i {
        let threshold = _mm512_sub_epi32(t.half, _mm512_srai_epi32::<31>(x));
        let above = _mm512_cmpgt_epi32_mask(_mm512_and_si512(x, t.mask), threshold);
        let y = _mm512_srav_epi32(x, t.right);
        _mm512_mask_add_epi32(y, above, y, _mm512_set1_epi32(1))
    }

    #[inline(always)]
    unsafe fn shift_left(x: __m512i, count: __m512i) -> __m512i {
        _mm512_sllv_epi32(x, count)
    }

    #[inline(always)]
    unsafe fn shift_right(x: __m512i, count: __m512i) -> __m512i {
        _mm512_srav_epi32(x, count)
    }

    #[inline(always)]
    unsafe fn mul_low(a: __m512i, b: __m512i) -> __m512i {
        _mm512_mullo_epi32(a, b)
    }

    #[inline(always)]
    unsafe fn store_i8(y: __m512i, offset: i32, min: i32, max: i32, n: usize, out: *mut i8) {
        let y = _mm512_add_epi32(y, _mm512_set1_epi32(offset));
        // To a register, then stored: the narrowing store to memory is
        // much slower on Zen 4. A clamp to all of int8 is the saturating
        // narrowing's own.
        let bytes = if (min, max) == (-128, 127) {
            _mm512_cvtsepi32_epi8(y)
        } else {
            _mm512_cvtepi32_epi8(_mm512_min_epi32(
                _mm512_max_epi32(y, _mm512_set1_epi32(min)),
                _mm512_set1_epi32(max),
            ))
        };
        if n == 16 {
            _mm_storeu_si128(out.cast(), bytes);
        } else {
            _mm_mask_storeu_epi8(out, lanes16(n), bytes);
        }
    }
}
