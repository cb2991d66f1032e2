//! Binary convolution by tiles of output pixels and filters, as LCE's
//! BGEMM tiles its outputs: four pixels of an output row against two
//! vectors of filters (one filter a lane), so that each load of the
//! filters serves four pixels and each broadcast word of a pixel serves
//! every filter of the tile, eight sums in registers. AVX-512 counts
//! sixteen filters a vector by VPOPCNTD ([`avx512`]); AVX2 eight, by
//! nibble tables into byte sums ([`avx2`]).
//!
//! The input is copied once into a padded image (padding as clear bits,
//! +1), so that every window, at the border too, is read at fixed offsets
//! from its origin without building a receptive field per pixel (which,
//! with the call per pixel around it, took three quarters of the time of
//! BinaryNet's 3x3 layers on AVX-512, and two thirds of DS-CNN's binary
//! pointwise layers on AVX2). Zero padding takes the padded taps' counts
//! off afterwards, from each filter's count per tap.

use super::LaneRows;
use crate::binary::{BinaryOutput, BinaryPadding};
use crate::geometry::ConvGeometry;
use crate::x86::{selected, Isa};
use std::vec::Vec;

mod avx2;
mod avx512;

/// Output pixels counted together.
const PIXELS: usize = 4;

/// [`crate::binary::conv2d`] for whole words of channels on the AVX-512
/// and AVX2 levels; `false` (nothing written) leaves the layer to the
/// other paths. Lengths are the caller's to check.
pub(crate) fn conv2d(
    g: &ConvGeometry,
    padding: BinaryPadding,
    input: &[u32],
    filter: &[u32],
    output: &mut BinaryOutput,
) -> bool {
    let lanes = match selected() {
        Isa::Avx512 => 16,
        Isa::Avx2 => 8,
        Isa::Portable => return false,
    };
    if !g.input.c.is_multiple_of(32) {
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
    let layer = Layer::new(g, padding, input, filter, (hp, wp), lanes);
    // The last word any window reads lies inside the padded image: the
    // last window's origin plus the last offset.
    let last = (
        g.output.n as usize - 1,
        g.output.h as usize - 1,
        g.output.w as usize - 1,
    );
    assert!(layer.origin(g, last) + layer.offsets[layer.n - 1] < layer.padded.len());
    // SAFETY: a level is selected only on CPUs that have it (AVX-512: F,
    // BW, VL, VPOPCNTDQ); every offset read is inside the padded image
    // (asserted above) and every output written is checked per pixel.
    unsafe {
        match lanes {
            16 => avx512::run(&layer, g, output),
            _ => avx2::run(&layer, g, output),
        }
    }
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
    /// Filters a vector: 16 (AVX-512) or 8 (AVX2).
    width: usize,
    /// Word `j` of filters `width g..width (g + 1)` at `(g * n + j) *
    /// width`, an even number of groups (the filters past the last zero).
    lanes: Vec<u32>,
    /// Each filter's count of set bits at each tap, `(g * taps + t) *
    /// width`, for zero padding.
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
        width: usize,
    ) -> Self {
        let (w, wpc) = (&g.window, g.input.c as usize / 32);
        let (taps, oc) = (w.taps(), g.output.c as usize);
        let n = taps * wpc;
        // The tiles read groups in pairs: an odd last group gets a zero twin.
        let groups = oc.div_ceil(2 * width) * 2;
        let mut lanes = LaneRows::laid_out(filter, n, width).words;
        lanes.resize(groups * n * width, 0);
        // Only zero padding needs them.
        let mut tap_counts = Vec::new();
        if padding == BinaryPadding::Zero {
            tap_counts = std::vec![0u32; groups * taps * width];
            for (j, words) in lanes.chunks_exact(width).enumerate() {
                let (group, t) = (j / n, j % n / wpc);
                let counts = &mut tap_counts[(group * taps + t) * width..][..width];
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
            width,
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

    /// Whether window `(oy, ox)` has taps outside the input.
    fn reaches_padding(&self, (oy, ox): (usize, usize)) -> bool {
        let (rows, columns) = &self.inside;
        !rows.contains(&(oy as u32)) || !columns.contains(&(ox as u32))
    }

    /// Calls `f(t)` for each tap `t` of window `(oy, ox)` outside the
    /// input, whose clear bits counted each filter's own bits there (zero
    /// padding leaves them out: [`Self::tap_counts`] of `t`), and returns
    /// the bits left in the window.
    #[inline(always)]
    fn padded_taps(
        &self,
        g: &ConvGeometry,
        (oy, ox): (usize, usize),
        mut f: impl FnMut(usize),
    ) -> usize {
        let w = &g.window;
        let mut inside = 0;
        for ky in 0..w.kernel_h {
            let iy = w.in_y(oy as u32, ky);
            for kx in 0..w.kernel_w {
                let ix = w.in_x(ox as u32, kx);
                if (0..g.input.h as i32).contains(&iy) && (0..g.input.w as i32).contains(&ix) {
                    inside += 1;
                } else {
                    f((ky * w.kernel_w + kx) as usize);
                }
            }
        }
        inside * g.input.c as usize
    }

    /// The counts to take off filter group `group` for tap `t`.
    #[inline(always)]
    fn tap_counts(&self, g: &ConvGeometry, group: usize, t: usize) -> *const u32 {
        let at = (group * g.window.taps() + t) * self.width;
        self.tap_counts[at..][..self.width].as_ptr()
    }

    /// Every tile of the layer: `T`'s counts of each pair of filter
    /// groups against [`PIXELS`] consecutive output pixels (across rows:
    /// DS-CNN's rows of five pixels would leave most of a second tile
    /// empty), then `emit(at, first, sums)` for each pixel `at = (b, oy,
    /// ox)` of the tile.
    #[inline(always)]
    unsafe fn each_tile<T: Tiles>(
        &self,
        g: &ConvGeometry,
        mut emit: impl FnMut((usize, usize, usize), usize, T::Sums),
    ) {
        let (oc, pixels) = (g.output.c as usize, g.output.pixels().unwrap_or(0));
        let mut positions = g
            .output_positions(0)
            .map(|(b, oy, ox)| (b as usize, oy as usize, ox as usize));
        for start in (0..pixels).step_by(PIXELS) {
            let tile = (pixels - start).min(PIXELS);
            let mut at = [(0, 0, 0); PIXELS];
            for (slot, position) in at.iter_mut().zip(&mut positions).take(tile) {
                *slot = position;
            }
            // Past the last pixel, the last one again (counted, not emitted).
            let origins: [usize; PIXELS] =
                core::array::from_fn(|p| self.origin(g, at[p.min(tile - 1)]));
            for first in (0..oc).step_by(2 * self.width) {
                let sums = T::count(self, &origins, first / self.width);
                for (&at, sums) in at.iter().zip(sums).take(tile) {
                    emit(at, first, sums);
                }
            }
        }
    }

    /// The output pixel of `(b, oy, ox)` and the bits its window counts:
    /// under zero padding, `sub(t)` takes each tap `t` outside the input off
    /// the counts (its clear bits counted each filter's own bits there).
    #[inline(always)]
    fn counted_pixel(
        &self,
        g: &ConvGeometry,
        (b, oy, ox): (usize, usize, usize),
        sub: impl FnMut(usize),
    ) -> (usize, i32) {
        let mut k = g.window.taps() * g.input.c as usize;
        if self.padding == BinaryPadding::Zero && self.reaches_padding((oy, ox)) {
            k = self.padded_taps(g, (oy, ox), sub);
        }
        let pixel = (b * g.output.h as usize + oy) * g.output.w as usize + ox;
        (pixel, k as i32)
    }
}

/// One level's count of a tile: two vectors of filters against
/// [`PIXELS`] windows.
trait Tiles {
    /// The two vectors of counts of one pixel.
    type Sums;

    /// The counts of filter groups `group` and `group + 1` against the
    /// windows at `origins`.
    unsafe fn count(layer: &Layer, origins: &[usize; PIXELS], group: usize)
        -> [Self::Sums; PIXELS];
}

/// Whether every int8 output of a layer (`k` bits a window) is finite and
/// within +-1e9 before rounding, whatever the counts: the transform then
/// needs no guard against NaN and overflow.
pub(super) fn tame(m: &[f32], b: &[f32], k: usize) -> bool {
    m.iter()
        .zip(b)
        .all(|(m, b)| m.is_finite() && b.is_finite() && m.abs() * k as f32 + b.abs() < 1.0e8)
}
