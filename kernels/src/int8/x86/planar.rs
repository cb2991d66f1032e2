//! The input of a stride-1 convolution laid out once for the sparse
//! kernel, so that it reads receptive fields in place instead of
//! gathering and transposing every pixel's field for every group of
//! pixels (nine times each input value for a 3x3 window).
//!
//! The padded input (the span of every window, [`ConvGeometry::window_span`])
//! is widened to 16 bits with the input offset added (padding 0, the zero
//! point) and stored channel by channel: value `c` of padded position `q`
//! (row-major over the padded rows of every image) at `c * plane + q`. A
//! field element `(ky, kx, c)` of the output at position `q` (output row
//! `oy`, column `ox`: `q = oy * columns + ox`) is then `c * plane + ky *
//! columns + kx` values past position `q`'s, for every output alike: the
//! values of consecutive outputs are consecutive. The kernel computes
//! every position of a row, the last `kernel_w - 1` of which are not
//! outputs ([`Layout::output_pixels`]), and a group of outputs is one
//! offset into the image.
//!
//! (The block kernel's quads laid out so, four channels side by side, ran
//! slower than its gathered fields: its aligned loads became loads across
//! cache lines.)

use super::sparse::transpose16;
use crate::geometry::ConvGeometry;
use core::arch::x86_64::*;
use std::vec::Vec;

/// Values widened and transposed at a time: sixteen pixels of sixteen
/// channels (channels past the last sixteen one by one).
const SIXTEEN: usize = 16;

/// Where [`Planar`] puts a layer's values, from its geometry alone (so
/// that a prepared filter's offsets hold for every call).
#[derive(Clone, Copy)]
pub(super) struct Layout {
    /// Padded rows per image and columns.
    rows: usize,
    columns: usize,
    /// Positions per channel group: every image's, plus a group's worth
    /// for the reads of the last group past the last output.
    plane: usize,
    ic: usize,
    kernel_w: usize,
    depth: usize,
    output: (usize, usize, usize),
}

impl Layout {
    /// The layout of `g` (which [`fits`](Self::fits)).
    pub(super) fn new(g: &ConvGeometry) -> Layout {
        debug_assert!(Self::fits(g));
        Self::new_unchecked(g)
    }

    fn new_unchecked(g: &ConvGeometry) -> Layout {
        let (rows, columns) = g.window_span();
        let n = g.output.n as usize;
        Layout {
            rows,
            columns,
            plane: n * rows * columns + super::sparse::GROUP,
            ic: g.input.c as usize,
            kernel_w: g.window.kernel_w as usize,
            depth: g.depth(),
            output: (n, g.output.h as usize, g.output.w as usize),
        }
    }

    /// Whether `g` is laid out so: a stride-1 window wider than one pixel
    /// over at least sixteen input pixels (the widening's unit), its values'
    /// offsets within 32 bits, and at most 15% more positions computed
    /// than there are outputs (the columns past a row's last output and
    /// the last group's rest: a 3x3 window over 8 columns computes 96
    /// positions for 64 outputs, and the kernels then run no faster than
    /// over gathered fields; over 16 or 32 columns 288 for 256 and 1,088
    /// for 1,024, and at a fifth of the weights kept they took 0.87 and
    /// 0.81 of the gathered fields' time, AMD EPYC, AVX2).
    pub(super) fn fits(g: &ConvGeometry) -> bool {
        let w = &g.window;
        let (Some(outputs), Some(inputs)) = (g.output.pixels(), g.input.pixels()) else {
            return false;
        };
        let fits = (w.stride_h, w.stride_w, w.dilation_h, w.dilation_w) == (1, 1, 1, 1)
            && !g.single_pixel_windows()
            && outputs > 0
            && inputs >= SIXTEEN;
        if !fits {
            return false;
        }
        let (rows, columns) = g.window_span();
        let group = super::sparse::GROUP;
        let values = (g.output.n as usize * rows * columns + group).checked_mul(g.input.c as usize);
        let layout = Layout::new_unchecked(g);
        let computed = layout.positions().div_ceil(group) * group;
        values.is_some_and(|v| v <= u32::MAX as usize) && computed * 20 <= outputs * 23
    }

    /// Positions the kernels compute: up to the last output's.
    pub(super) fn positions(&self) -> usize {
        let (n, h, w) = self.output;
        ((n - 1) * self.rows + h - 1) * self.columns + w
    }

    /// Values from a position's to each field element (`[kh, kw,
    /// ic]` order) of the window there, counted on without a division.
    pub(super) fn elements(&self) -> Vec<u32> {
        let taps = self.depth / self.ic;
        let mut all = Vec::with_capacity(self.depth);
        for tap in 0..taps {
            let (ky, kx) = (tap / self.kernel_w, tap % self.kernel_w);
            for c in 0..self.ic {
                all.push((c * self.plane + ky * self.columns + kx) as u32);
            }
        }
        all
    }

    /// The output pixels of positions `first..first + N`, where they are
    /// outputs: divided out once, then counted on.
    pub(super) fn output_pixels<const N: usize>(&self, first: usize) -> [Option<usize>; N] {
        let (n, h, w) = self.output;
        let (row, mut x) = (first / self.columns, first % self.columns);
        let (mut b, mut y) = (row / self.rows, row % self.rows);
        core::array::from_fn(|_| {
            let pixel = (b < n && y < h && x < w).then_some((b * h + y) * w + x);
            x += 1;
            if x == self.columns {
                x = 0;
                y += 1;
                if y == self.rows {
                    y = 0;
                    b += 1;
                }
            }
            pixel
        })
    }
}

/// A layer's input in its [`Layout`].
pub(super) struct Planar {
    image: Vec<i16>,
    layout: Layout,
}

impl Planar {
    /// `input` in `layout` (`g`'s), `offset` added to every value.
    ///
    /// # Safety
    /// The CPU must have AVX2; `input` must be `g`'s.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn new(
        g: &ConvGeometry,
        layout: Layout,
        input: &[i8],
        offset: i32,
    ) -> Planar {
        let ic = layout.ic;
        let mut planar = Planar {
            image: std::vec![0i16; ic * layout.plane],
            layout,
        };
        let pixels = g.input.pixels().unwrap_or(0);
        let mut tail = std::vec![0i8; (SIXTEEN + 1) * ic];
        // Sixteen pixels at a time; the last sixteen end at the last pixel
        // (writing some again, the same values).
        for first in (0..pixels).step_by(SIXTEEN) {
            let first = first.min(pixels - SIXTEEN);
            let runs = layout.runs(g, first);
            let pixels = &input[first * ic..(first + SIXTEEN) * ic];
            let whole = ic / SIXTEEN * SIXTEEN;
            for block in (0..whole).step_by(SIXTEEN) {
                planar.channels(pixels.as_ptr().add(block), block, SIXTEEN, &runs, offset);
            }
            if whole < ic {
                // The channels past the last sixteen (a first layer's
                // three) read from a copy with room for a whole sixteen
                // past the last pixel's.
                tail[..pixels.len()].copy_from_slice(pixels);
                let at = tail.as_ptr().add(whole);
                planar.channels(at, whole, ic - whole, &runs, offset);
            }
        }
        planar
    }

    /// `count` (at most sixteen) channels from `block` of the sixteen
    /// pixels at `at` (`ic` apart, sixteen bytes readable at each), one
    /// channel per vector, to their runs.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn channels(
        &mut self,
        at: *const i8,
        block: usize,
        count: usize,
        runs: &Runs,
        offset: i32,
    ) {
        let (ic, plane) = (self.layout.ic, self.layout.plane);
        let mut rows = [_mm_setzero_si128(); SIXTEEN];
        for (p, row) in rows.iter_mut().enumerate() {
            *row = _mm_loadu_si128(at.add(p * ic).cast());
        }
        let offset = _mm256_set1_epi16(offset as i16);
        let values = self.image.as_mut_ptr().add(block * plane);
        let columns = transpose16(rows);
        let columns = columns.into_iter().take(count);
        if let [(0, SIXTEEN, position)] = runs.runs[..runs.len] {
            // Sixteen pixels of one row, as most are: one store each.
            for (c, v) in columns.enumerate() {
                let wide = _mm256_add_epi16(_mm256_cvtepi8_epi16(v), offset);
                _mm256_storeu_si256(values.add(c * plane + position).cast(), wide);
            }
            return;
        }
        for (c, v) in columns.enumerate() {
            let wide = _mm256_add_epi16(_mm256_cvtepi8_epi16(v), offset);
            for &(lane, len, position) in runs.iter() {
                store_lanes(wide, lane, len, values.add(c * plane + position));
            }
        }
    }

    /// The value of position `q`'s channel 0: field element `k` of the
    /// window there is [`Layout::elements`]`()[k]` values on.
    pub(super) fn at(&self, q: usize) -> *const i16 {
        debug_assert!(q < self.layout.plane);
        // SAFETY: within the image (`q` below a plane).
        unsafe { self.image.as_ptr().add(q) }
    }
}

impl Layout {
    /// The runs of input pixels `first..first + 16` that lie in one
    /// padded row: `(first lane, lanes, padded position)`; pixels outside
    /// every window have none.
    fn runs(&self, g: &ConvGeometry, first: usize) -> Runs {
        let (i, w) = (&g.input, &g.window);
        let (ih, iw) = (i.h as usize, i.w as usize);
        let mut runs = Runs::default();
        let mut lane = 0;
        while lane < SIXTEEN {
            let p = first + lane;
            let (b, iy, ix) = (p / (ih * iw), p / iw % ih, p % iw);
            let in_row = (iw - ix).min(SIXTEEN - lane);
            let (y, x) = (iy + w.pad_top as usize, ix + w.pad_left as usize);
            // Rows and columns past the windows' span are never read.
            let len = in_row.min(self.columns.saturating_sub(x));
            if y < self.rows && len > 0 {
                runs.push((lane, len, (b * self.rows + y) * self.columns + x));
            }
            lane += in_row;
        }
        runs
    }
}

/// A block of sixteen pixels' runs (at most one per pixel).
#[derive(Default)]
struct Runs {
    runs: [(usize, usize, usize); SIXTEEN],
    len: usize,
}

impl Runs {
    fn push(&mut self, run: (usize, usize, usize)) {
        self.runs[self.len] = run;
        self.len += 1;
    }

    fn iter(&self) -> core::slice::Iter<'_, (usize, usize, usize)> {
        self.runs[..self.len].iter()
    }
}

/// Lanes `lane..lane + len` of `v` to `to`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store_lanes(v: __m256i, lane: usize, len: usize, to: *mut i16) {
    match (lane, len) {
        (0, 16) => _mm256_storeu_si256(to.cast(), v),
        (0, 8) => _mm_storeu_si128(to.cast(), _mm256_castsi256_si128(v)),
        (8, 8) => _mm_storeu_si128(to.cast(), _mm256_extracti128_si256::<1>(v)),
        _ => {
            let mut all = [0i16; SIXTEEN];
            _mm256_storeu_si256(all.as_mut_ptr().cast(), v);
            core::ptr::copy_nonoverlapping(all.as_ptr().add(lane), to, len);
        }
    }
}
