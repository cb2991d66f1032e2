//! AVX-512 binary convolution by tiles of output pixels and filters, as
//! LCE's BGEMM tiles its outputs: four pixels of an output row against 32
//! filters (two vectors of sixteen lanes, one filter a lane), so that each
//! load of the filters serves four pixels and each broadcast word of a
//! pixel serves 32 filters, eight sums in registers.
//!
//! The input is copied once into a padded image (padding as clear bits,
//! +1), so that every window, at the border too, is read at fixed offsets
//! from its origin without building a receptive field per pixel (which,
//! with the call per pixel around it, took three quarters of the time of
//! BinaryNet's 3x3 layers). Zero padding takes the padded taps' counts off
//! afterwards, from each filter's count per tap.

use super::{emit16, LaneRows};
use crate::binary::{BinaryOutput, BinaryPadding};
use crate::geometry::ConvGeometry;
use crate::x86::{selected, Isa};
use core::arch::x86_64::*;
use std::vec::Vec;

/// Output pixels counted together.
const PIXELS: usize = 4;
/// Lanes of a vector: filters counted by one instruction.
const LANES: usize = 16;

/// [`crate::binary::conv2d`] for whole words of channels on the AVX-512
/// level; `false` (nothing written) leaves the layer to the other paths.
/// Lengths are the caller's to check.
pub(crate) fn conv2d(
    g: &ConvGeometry,
    padding: BinaryPadding,
    input: &[u32],
    filter: &[u32],
    output: &mut BinaryOutput,
) -> bool {
    if selected() != Isa::Avx512 || !g.input.c.is_multiple_of(32) {
        return false;
    }
    // A window mostly in its padding (a huge dilation or padding, as only
    // a corrupted model has) would make the padded copy far larger than
    // the input: those go tap by tap, which skips the padding.
    let (hp, wp) = padded_size(g);
    let words = (g.input.n as usize)
        .saturating_mul(hp)
        .saturating_mul(wp)
        .saturating_mul(g.input.c as usize / 32);
    if words
        > input
            .len()
            .saturating_mul(4)
            .saturating_add(MAX_PADDING_WORDS)
    {
        return false;
    }
    let layer = Layer::new(g, padding, input, filter, (hp, wp));
    // SAFETY: the AVX-512 level (F, BW, VL, VPOPCNTDQ) is selected only on
    // CPUs that have it; every offset read is inside the padded image (see
    // `Layer::new`) and every output written is checked per pixel.
    unsafe { layer.run(g, output) };
    true
}

/// Words of padding the padded copy may add beyond four times the input.
const MAX_PADDING_WORDS: usize = 1 << 16;

/// Rows and columns of the padded copy: from the first window's origin
/// (-pad) to the last tap any window reads, or the input's end if that is
/// further.
fn padded_size(g: &ConvGeometry) -> (usize, usize) {
    let w = &g.window;
    let extent =
        |pad: u32, last: i32, size: u32| pad as usize + (last + 1).max(size as i32) as usize;
    (
        extent(w.pad_top, w.in_y(g.output.h - 1, w.kernel_h - 1), g.input.h),
        extent(
            w.pad_left,
            w.in_x(g.output.w - 1, w.kernel_w - 1),
            g.input.w,
        ),
    )
}

/// A layer's filters in lanes and its input padded, made once per call.
struct Layer {
    /// Words of a window: taps times words per pixel.
    n: usize,
    /// Word `j` of filters `16 g..16 g + 16` at `(g * n + j) * 16`, an even
    /// number of groups (the filters past the last zero).
    lanes: Vec<u32>,
    /// Each filter's count of set bits at each tap, `(g * taps + t) * 16`,
    /// for zero padding.
    tap_counts: Vec<u32>,
    /// The input with its padding, `[N, Hp, Wp, words]`.
    padded: Vec<u32>,
    /// Padded width, in pixels, and padded height.
    wp: usize,
    hp: usize,
    /// Offset of each window word from the window's origin.
    offsets: Vec<usize>,
    padding: BinaryPadding,
    /// The output rows and columns whose windows lie inside the input:
    /// only the others have padded taps to leave out.
    inside: (core::ops::Range<u32>, core::ops::Range<u32>),
}

impl Layer {
    fn new(
        g: &ConvGeometry,
        padding: BinaryPadding,
        input: &[u32],
        filter: &[u32],
        (hp, wp): (usize, usize),
    ) -> Self {
        let (w, wpc) = (&g.window, g.input.c as usize / 32);
        let (taps, oc) = (w.taps(), g.output.c as usize);
        let n = taps * wpc;
        // The tiles read groups in pairs: an odd last group gets a zero twin.
        let groups = oc.div_ceil(2 * LANES) * 2;
        let mut lanes = LaneRows::laid_out(filter, n, LANES).words;
        lanes.resize(groups * n * LANES, 0);
        // Only zero padding needs them.
        let mut tap_counts = Vec::new();
        if padding == BinaryPadding::Zero {
            tap_counts = std::vec![0u32; groups * taps * LANES];
            for (j, words) in lanes.chunks_exact(LANES).enumerate() {
                let (group, t) = (j / n, j % n / wpc);
                let counts = &mut tap_counts[(group * taps + t) * LANES..][..LANES];
                for (count, word) in counts.iter_mut().zip(words) {
                    *count += word.count_ones();
                }
            }
        }
        let (h, iw) = (g.input.h as usize, g.input.w as usize);
        let mut padded = std::vec![0u32; g.input.n as usize * hp * wp * wpc];
        for (b, image) in input.chunks_exact(h * iw * wpc).enumerate() {
            for (y, row) in image.chunks_exact(iw * wpc).enumerate() {
                let at = ((b * hp + y + w.pad_top as usize) * wp + w.pad_left as usize) * wpc;
                padded[at..][..row.len()].copy_from_slice(row);
            }
        }
        let mut offsets = Vec::with_capacity(n);
        for ky in 0..w.kernel_h as usize {
            for kx in 0..w.kernel_w as usize {
                let origin = (ky * w.dilation_h as usize * wp + kx * w.dilation_w as usize) * wpc;
                offsets.extend((0..wpc).map(|c| origin + c));
            }
        }
        Layer {
            n,
            lanes,
            tap_counts,
            padded,
            wp,
            hp,
            offsets,
            padding,
            inside: g.inside_windows(),
        }
    }

    /// The padded image's word where the window of `(b, oy, ox)` starts.
    fn origin(&self, g: &ConvGeometry, (b, oy, ox): (usize, usize, usize)) -> usize {
        let w = &g.window;
        let (y, x) = (oy * w.stride_h as usize, ox * w.stride_w as usize);
        ((b * self.hp + y) * self.wp + x) * (g.input.c as usize / 32)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vpopcntdq")]
    unsafe fn run(&self, g: &ConvGeometry, output: &mut BinaryOutput) {
        let (oh, ow, oc) = (
            g.output.h as usize,
            g.output.w as usize,
            g.output.c as usize,
        );
        // The last word any window reads lies inside the padded image: the
        // last window's origin plus the last offset.
        let last = (g.output.n as usize - 1, oh - 1, ow - 1);
        assert!(self.origin(g, last) + self.offsets[self.n - 1] < self.padded.len());
        for b in 0..g.output.n as usize {
            for oy in 0..oh {
                let mut ox = 0;
                while ox < ow {
                    let tile = (ow - ox).min(PIXELS);
                    let origins: [usize; PIXELS] =
                        core::array::from_fn(|p| self.origin(g, (b, oy, ox + p.min(tile - 1))));
                    for first in (0..oc).step_by(2 * LANES) {
                        let pops = self.count_tile(&origins, first / LANES);
                        for (p, pops) in pops.iter().enumerate().take(tile) {
                            let at = (b, oy, ox + p);
                            self.emit_pixel(g, at, first, *pops, output);
                        }
                    }
                    ox += tile;
                }
            }
        }
    }

    /// The counts of filter groups `group` and `group + 1` against the
    /// windows at `origins`.
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    #[inline]
    unsafe fn count_tile(&self, origins: &[usize; PIXELS], group: usize) -> [[__m512i; 2]; PIXELS] {
        let rows = self.lanes.as_ptr().add(group * self.n * LANES);
        let next = rows.add(self.n * LANES);
        let image = self.padded.as_ptr();
        let mut sums = [[_mm512_setzero_si512(); 2]; PIXELS];
        for (j, &offset) in self.offsets.iter().enumerate() {
            let a = _mm512_loadu_si512(rows.add(j * LANES).cast());
            let b = _mm512_loadu_si512(next.add(j * LANES).cast());
            for (sum, &origin) in sums.iter_mut().zip(origins) {
                let word = _mm512_set1_epi32(*image.add(origin + offset) as i32);
                sum[0] = _mm512_add_epi32(sum[0], _mm512_popcnt_epi32(_mm512_xor_si512(a, word)));
                sum[1] = _mm512_add_epi32(sum[1], _mm512_popcnt_epi32(_mm512_xor_si512(b, word)));
            }
        }
        sums
    }

    /// Emits channels `first..first + 32` (those that exist) of output
    /// pixel `at` from their counts over the padded window.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vpopcntdq")]
    #[inline]
    unsafe fn emit_pixel(
        &self,
        g: &ConvGeometry,
        (b, oy, ox): (usize, usize, usize),
        first: usize,
        mut pops: [__m512i; 2],
        output: &mut BinaryOutput,
    ) {
        let (ic, oc) = (g.input.c as usize, g.output.c as usize);
        let mut k = g.window.taps() * ic;
        if self.padding == BinaryPadding::Zero && self.reaches_padding((oy, ox)) {
            k = self.leave_out_padding(g, (oy, ox), first / LANES, &mut pops);
        }
        let pixel = (b * g.output.h as usize + oy) * g.output.w as usize + ox;
        for (half, &pops) in pops.iter().enumerate() {
            let c = first + half * LANES;
            if c < oc {
                emit16(output, (pixel, oc, c), (oc - c).min(LANES), k as i32, pops);
            }
        }
    }

    /// Whether window `(oy, ox)` has taps outside the input.
    fn reaches_padding(&self, (oy, ox): (usize, usize)) -> bool {
        let (rows, columns) = &self.inside;
        !rows.contains(&(oy as u32)) || !columns.contains(&(ox as u32))
    }

    /// Takes the taps of window `(oy, ox)` outside the input off the counts
    /// of groups `group` and `group + 1` (the clear bits there counted each
    /// filter's own bits) and returns the bits left in the window.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn leave_out_padding(
        &self,
        g: &ConvGeometry,
        (oy, ox): (usize, usize),
        group: usize,
        pops: &mut [__m512i; 2],
    ) -> usize {
        let (w, taps) = (&g.window, g.window.taps());
        let mut inside = 0;
        for ky in 0..w.kernel_h {
            let iy = w.in_y(oy as u32, ky);
            for kx in 0..w.kernel_w {
                let ix = w.in_x(ox as u32, kx);
                if (0..g.input.h as i32).contains(&iy) && (0..g.input.w as i32).contains(&ix) {
                    inside += 1;
                    continue;
                }
                let t = (ky * w.kernel_w + kx) as usize;
                for (half, pops) in pops.iter_mut().enumerate() {
                    let counts =
                        self.tap_counts[((group + half) * taps + t) * LANES..][..LANES].as_ptr();
                    *pops = _mm512_sub_epi32(*pops, _mm512_loadu_si512(counts.cast()));
                }
            }
        }
        inside * g.input.c as usize
    }
}
