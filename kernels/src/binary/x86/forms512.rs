//! The AVX-512 output forms of sixteen channels' counts, each a struct
//! holding its constants, so that a loop over a layer chooses its form
//! once ([`super::tiles`]) and a single call ([`super::emit16`]) builds
//! the one it is given.

use super::{affine16, dots16, round16, words16};
use core::arch::x86_64::*;

/// An output form: sixteen channels' counts `pops` (the first `len`
/// real) as channels `c..` of output pixel `pixel` (of `channels`), at
/// element `at` of an output of values, `dot = k - 2 pop`.
pub(in crate::binary::x86) trait Emit {
    unsafe fn emit<const GUARD: bool>(
        &mut self,
        at_c_len: (usize, usize, usize),
        pixel_channels: (usize, usize),
        k: i32,
        pops: __m512i,
    );
}

pub(in crate::binary::x86) struct Int8<'a, 'o> {
    m: &'a [f32],
    b: &'a [f32],
    zero_point: __m512i,
    clamp: (__m512i, __m512i),
    out: &'o mut [i8],
}

impl<'a, 'o> Int8<'a, 'o> {
    #[inline(always)]
    pub(in crate::binary::x86) unsafe fn new(
        m: &'a [f32],
        b: &'a [f32],
        zero_point: i32,
        clamp: crate::int8::Clamp,
        out: &'o mut [i8],
    ) -> Self {
        Int8 {
            m,
            b,
            zero_point: _mm512_set1_epi32(zero_point),
            clamp: (_mm512_set1_epi32(clamp.min), _mm512_set1_epi32(clamp.max)),
            out,
        }
    }
}

impl Emit for Int8<'_, '_> {
    /// [`crate::binary::int8_value`] of sixteen values: `m * dot + b`
    /// rounded, the zero point added and clamped; without `GUARD` (a layer
    /// whose outputs are all finite and within +-1e9, as the tiles check)
    /// NaN and overflow are not looked for.
    #[inline(always)]
    unsafe fn emit<const GUARD: bool>(
        &mut self,
        (at, c, len): (usize, usize, usize),
        _: (usize, usize),
        k: i32,
        pops: __m512i,
    ) {
        let mask = words16(len);
        let r = round16::<GUARD>(affine16(k, pops, (self.m, self.b), c, mask));
        let (lo, hi) = self.clamp;
        let q = _mm512_min_epi32(
            hi,
            _mm512_max_epi32(lo, _mm512_add_epi32(r, self.zero_point)),
        );
        // Narrowed in a register, then stored: VPMOVDB to memory is
        // microcoded on AMD's Zen 4.
        let out = self.out[at..][..len].as_mut_ptr();
        _mm_mask_storeu_epi8(out, mask, _mm512_cvtepi32_epi8(q));
    }
}

pub(in crate::binary::x86) struct Float<'a, 'o> {
    m: &'a [f32],
    b: &'a [f32],
    range: (__m512, __m512),
    out: &'o mut [f32],
}

impl<'a, 'o> Float<'a, 'o> {
    #[inline(always)]
    pub(in crate::binary::x86) unsafe fn new(
        m: &'a [f32],
        b: &'a [f32],
        range: crate::float::Range,
        out: &'o mut [f32],
    ) -> Self {
        Float {
            m,
            b,
            range: (_mm512_set1_ps(range.0), _mm512_set1_ps(range.1)),
            out,
        }
    }
}

impl Emit for Float<'_, '_> {
    #[inline(always)]
    unsafe fn emit<const GUARD: bool>(
        &mut self,
        (at, c, len): (usize, usize, usize),
        _: (usize, usize),
        k: i32,
        pops: __m512i,
    ) {
        let mask = words16(len);
        let y = affine16(k, pops, (self.m, self.b), c, mask);
        // MAXPS(lo, y) keeps y unless lo > y, as `y < lo` in f32::clamp.
        let (lo, hi) = self.range;
        let y = _mm512_min_ps(hi, _mm512_max_ps(lo, y));
        _mm512_mask_storeu_ps(self.out[at..][..len].as_mut_ptr(), mask, y);
    }
}

pub(in crate::binary::x86) struct Bits<'a, 'o> {
    pub(in crate::binary::x86) thresholds: &'a [i32],
    pub(in crate::binary::x86) out: &'o mut [u32],
}

impl Emit for Bits<'_, '_> {
    #[inline(always)]
    unsafe fn emit<const GUARD: bool>(
        &mut self,
        (_, c, len): (usize, usize, usize),
        (pixel, channels): (usize, usize),
        k: i32,
        pops: __m512i,
    ) {
        let mask = words16(len);
        let t = _mm512_maskz_loadu_epi32(mask, self.thresholds[c..][..len].as_ptr().cast());
        let below = _mm512_mask_cmpgt_epi32_mask(mask, t, dots16(k, pops));
        // A group never straddles a word: the callers' groups start at
        // multiples of 16 or of a power-of-two block of filters.
        debug_assert!(c % 32 + len <= 32);
        let words = crate::binary::words(channels);
        self.out[pixel * words + c / 32] |= (below as u32) << (c % 32);
    }
}

pub(in crate::binary::x86) struct Dots<'o> {
    pub(in crate::binary::x86) out: &'o mut [i32],
}

impl Emit for Dots<'_> {
    #[inline(always)]
    unsafe fn emit<const GUARD: bool>(
        &mut self,
        (at, _, len): (usize, usize, usize),
        _: (usize, usize),
        k: i32,
        pops: __m512i,
    ) {
        let out = self.out[at..][..len].as_mut_ptr();
        _mm512_mask_storeu_epi32(out.cast(), words16(len), dots16(k, pops));
    }
}
