//! Tensor shapes (NHWC) and sliding-window geometry shared by every kernel.

use crate::error::{ensure, KernelError};
use serde::{Deserialize, Serialize};

/// Largest extent of any dimension or window parameter. It keeps every
/// coordinate computation inside `i32`, on 32-bit targets too.
pub const MAX_EXTENT: u32 = 1 << 14;

/// Largest dot-product length of an int8 kernel: `255 * 128 * MAX_DEPTH`
/// still fits an `i32` accumulator.
pub const MAX_DEPTH: usize = 65_535;

/// A tensor shape in NHWC order. Dense layers use `[batch, 1, 1, features]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shape {
    /// Batch.
    pub n: u32,
    /// Height.
    pub h: u32,
    /// Width.
    pub w: u32,
    /// Channels.
    pub c: u32,
}

impl Shape {
    /// A shape from its four extents.
    pub const fn new(n: u32, h: u32, w: u32, c: u32) -> Self {
        Self { n, h, w, c }
    }

    /// A `[batch, features]` shape for dense layers.
    pub const fn flat(n: u32, features: u32) -> Self {
        Self {
            n,
            h: 1,
            w: 1,
            c: features,
        }
    }

    /// Number of pixels (`n * h * w`), or `None` on overflow.
    pub fn pixels(&self) -> Option<usize> {
        (self.n as usize)
            .checked_mul(self.h as usize)?
            .checked_mul(self.w as usize)
    }

    /// Number of elements, or `None` on overflow.
    pub fn elements(&self) -> Option<usize> {
        self.pixels()?.checked_mul(self.c as usize)
    }

    /// Elements per batch item (`h * w * c`).
    pub fn features(&self) -> usize {
        self.h as usize * self.w as usize * self.c as usize
    }

    /// Checks every extent is in `1..=MAX_EXTENT`.
    pub fn check(&self) -> Result<(), KernelError> {
        let ok = [self.n, self.h, self.w, self.c]
            .iter()
            .all(|&d| (1..=MAX_EXTENT).contains(&d));
        ensure(ok, "shape: every extent must be in 1..=16384")
    }
}

/// How a convolution or pool pads its input: TFLite's two schemes, or
/// explicit amounts (ONNX `pads`, a TFLite PAD folded into the convolution
/// after it). Padded taps are skipped, which is padding with zero (or the
/// input zero point), and never counted in an average.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Padding {
    /// Output size `ceil(in / stride)`, padding split with the extra on the bottom/right.
    Same,
    /// No padding: output size `ceil((in - effective_kernel + 1) / stride)`.
    Valid,
    /// These many rows above and below, columns left and right.
    Explicit {
        /// Rows above the input.
        top: u32,
        /// Rows below it.
        bottom: u32,
        /// Columns left of it.
        left: u32,
        /// Columns right of it.
        right: u32,
    },
}

impl Padding {
    /// The padding along the rows (height).
    pub fn rows(self) -> AxisPadding {
        match self {
            Padding::Same => AxisPadding::Same,
            Padding::Valid => AxisPadding::Valid,
            Padding::Explicit { top, bottom, .. } => AxisPadding::Explicit(top, bottom),
        }
    }

    /// The padding along the columns (width).
    pub fn cols(self) -> AxisPadding {
        match self {
            Padding::Same => AxisPadding::Same,
            Padding::Valid => AxisPadding::Valid,
            Padding::Explicit { left, right, .. } => AxisPadding::Explicit(left, right),
        }
    }

    /// The explicit amounts this padding adds on an `input` (height,
    /// width) for the given window.
    pub fn explicit(
        self,
        input: (u32, u32),
        kernel: (u32, u32),
        stride: (u32, u32),
        dilation: (u32, u32),
    ) -> Padding {
        let amounts = |input, kernel, stride, dilation, axis: AxisPadding| {
            let (out, before) = output_extent(input, kernel, stride, dilation, axis);
            let reach = i64::from(out.saturating_sub(1)) * i64::from(stride.max(1))
                + effective_kernel(kernel, dilation);
            (before, (reach - before as i64 - input as i64).max(0) as u32)
        };
        let (top, bottom) = amounts(input.0, kernel.0, stride.0, dilation.0, self.rows());
        let (left, right) = amounts(input.1, kernel.1, stride.1, dilation.1, self.cols());
        Padding::Explicit {
            top,
            bottom,
            left,
            right,
        }
    }
}

/// How a window pads its input along one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AxisPadding {
    /// TFLite's SAME.
    Same,
    /// None.
    Valid,
    /// These many before and after the input.
    Explicit(u32, u32),
}

/// A fused activation, as TFLite names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// No clamp beyond the type's range.
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `min(max(x, -1), 1)`.
    ReluN1To1,
}

impl Activation {
    /// The float clamp range of this activation.
    pub fn range_f32(self) -> (f32, f32) {
        match self {
            Activation::None => (f32::NEG_INFINITY, f32::INFINITY),
            Activation::Relu => (0.0, f32::INFINITY),
            Activation::Relu6 => (0.0, 6.0),
            Activation::ReluN1To1 => (-1.0, 1.0),
        }
    }
}

/// The extent a dilated kernel covers: `(kernel - 1) * dilation + 1`.
fn effective_kernel(kernel: u32, dilation: u32) -> i64 {
    i64::from(kernel.max(1) - 1) * i64::from(dilation.max(1)) + 1
}

/// Output extent and leading padding along one axis (TFLite `ComputePaddingHeightWidth`).
pub fn output_extent(
    input: u32,
    kernel: u32,
    stride: u32,
    dilation: u32,
    padding: AxisPadding,
) -> (u32, u32) {
    // Saturated: an absurd window gives no output rather than a panic.
    let effective = u32::try_from(effective_kernel(kernel, dilation)).unwrap_or(u32::MAX);
    let stride = stride.max(1);
    let out = match padding {
        AxisPadding::Same => input.div_ceil(stride),
        AxisPadding::Valid => input.saturating_add(stride).saturating_sub(effective) / stride,
        AxisPadding::Explicit(before, after) => {
            input
                .saturating_add(before)
                .saturating_add(after)
                .saturating_add(stride)
                .saturating_sub(effective)
                / stride
        }
    };
    if let AxisPadding::Explicit(before, _) = padding {
        return (out, before);
    }
    let needed = i64::from(out.saturating_sub(1)) * i64::from(stride) + i64::from(effective)
        - i64::from(input);
    (out, (needed.max(0) / 2) as u32)
}

/// A sliding window: kernel size, stride, dilation and leading padding.
/// Taps that fall outside the input are skipped (TFLite semantics, which
/// equals padding with the input zero point).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Kernel height.
    pub kernel_h: u32,
    /// Kernel width.
    pub kernel_w: u32,
    /// Vertical stride.
    pub stride_h: u32,
    /// Horizontal stride.
    pub stride_w: u32,
    /// Vertical dilation.
    pub dilation_h: u32,
    /// Horizontal dilation.
    pub dilation_w: u32,
    /// Rows of padding above the input.
    pub pad_top: u32,
    /// Columns of padding left of the input.
    pub pad_left: u32,
}

impl Window {
    /// A window and the output height and width it produces on an `in_h x in_w` input.
    pub fn new(
        kernel: (u32, u32),
        stride: (u32, u32),
        dilation: (u32, u32),
        padding: Padding,
        input: (u32, u32),
    ) -> (Self, (u32, u32)) {
        let rows = padding.rows();
        let (out_h, pad_top) = output_extent(input.0, kernel.0, stride.0, dilation.0, rows);
        let cols = padding.cols();
        let (out_w, pad_left) = output_extent(input.1, kernel.1, stride.1, dilation.1, cols);
        let window = Self {
            kernel_h: kernel.0,
            kernel_w: kernel.1,
            stride_h: stride.0,
            stride_w: stride.1,
            dilation_h: dilation.0,
            dilation_w: dilation.1,
            pad_top,
            pad_left,
        };
        (window, (out_h, out_w))
    }

    /// A 1x1 window with stride 1 and no padding.
    pub const fn pointwise() -> Self {
        Self {
            kernel_h: 1,
            kernel_w: 1,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 0,
            pad_left: 0,
        }
    }

    /// Number of taps (`kernel_h * kernel_w`).
    pub fn taps(&self) -> usize {
        self.kernel_h as usize * self.kernel_w as usize
    }

    /// Checks every parameter is in range.
    pub fn check(&self) -> Result<(), KernelError> {
        let positive = [
            self.kernel_h,
            self.kernel_w,
            self.stride_h,
            self.stride_w,
            self.dilation_h,
            self.dilation_w,
        ];
        ensure(
            positive.iter().all(|&v| (1..=MAX_EXTENT).contains(&v)),
            "window: kernel, stride and dilation must be in 1..=16384",
        )?;
        ensure(
            self.pad_top <= MAX_EXTENT && self.pad_left <= MAX_EXTENT,
            "window: padding must be at most 16384",
        )
    }

    /// Input row of output row `oy` at kernel row `ky` (may be outside the input).
    #[inline(always)]
    pub fn in_y(&self, oy: u32, ky: u32) -> i32 {
        (oy * self.stride_h + ky * self.dilation_h) as i32 - self.pad_top as i32
    }

    /// Input column of output column `ox` at kernel column `kx` (may be outside the input).
    #[inline(always)]
    pub fn in_x(&self, ox: u32, kx: u32) -> i32 {
        (ox * self.stride_w + kx * self.dilation_w) as i32 - self.pad_left as i32
    }
}

/// Input shape, output shape and window of a convolution or pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvGeometry {
    /// Input shape (NHWC).
    pub input: Shape,
    /// Output shape (NHWC).
    pub output: Shape,
    /// The sliding window.
    pub window: Window,
}

impl ConvGeometry {
    /// The geometry of a convolution with `out_channels` outputs.
    pub fn new(
        input: Shape,
        out_channels: u32,
        kernel: (u32, u32),
        stride: (u32, u32),
        dilation: (u32, u32),
        padding: Padding,
    ) -> Self {
        let (window, (oh, ow)) = Window::new(kernel, stride, dilation, padding, (input.h, input.w));
        Self {
            input,
            output: Shape::new(input.n, oh, ow, out_channels),
            window,
        }
    }

    /// Checks shapes and window, and that batch sizes agree.
    pub fn check(&self) -> Result<(), KernelError> {
        self.input.check()?;
        self.output.check()?;
        self.window.check()?;
        ensure(
            self.input.n == self.output.n,
            "geometry: input and output batch differ",
        )
    }

    /// Checks the geometry and the element counts of the input and output.
    pub fn check_io(&self, input: usize, output: usize) -> Result<(), KernelError> {
        self.check()?;
        crate::error::expect_len("input", input, self.input.elements().unwrap_or(usize::MAX))?;
        crate::error::expect_len(
            "output",
            output,
            self.output.elements().unwrap_or(usize::MAX),
        )
    }

    /// [`ConvGeometry::check_io`], plus the dot-product length limit of a
    /// dense (not depthwise) int8 convolution.
    pub fn check_conv_io(&self, input: usize, output: usize) -> Result<(), KernelError> {
        ensure(
            self.depth() <= MAX_DEPTH,
            "convolution depth: kernel_h * kernel_w * in_channels must be at most 65535",
        )?;
        self.check_io(input, output)
    }

    /// [`ConvGeometry::check_io`], plus the depthwise rule: output channels
    /// are input channels times `multiplier`.
    pub fn check_depthwise_io(
        &self,
        multiplier: u32,
        input: usize,
        output: usize,
    ) -> Result<(), KernelError> {
        ensure(
            multiplier >= 1 && self.output.c == self.input.c.saturating_mul(multiplier),
            "depth multiplier: output channels must equal input channels x multiplier",
        )?;
        self.check_io(input, output)
    }

    /// Length of the per-output-channel dot product of a dense convolution.
    pub fn depth(&self) -> usize {
        self.window.taps() * self.input.c as usize
    }

    /// Visits every output pixel in NHWC order: `f(pixel index, batch, oy, ox)`.
    #[inline(always)]
    pub fn for_each_output_pixel(&self, mut f: impl FnMut(usize, u32, u32, u32)) {
        let mut pixel = 0;
        for b in 0..self.output.n {
            for oy in 0..self.output.h {
                for ox in 0..self.output.w {
                    f(pixel, b, oy, ox);
                    pixel += 1;
                }
            }
        }
    }

    /// Visits the in-bounds taps of output pixel `(b, oy, ox)`:
    /// `f(tap index ky * kernel_w + kx, input pixel index)`. Taps in the
    /// padding are skipped.
    #[inline(always)]
    pub fn for_each_tap(&self, b: u32, oy: u32, ox: u32, mut f: impl FnMut(usize, usize)) {
        let w = &self.window;
        for ky in 0..w.kernel_h {
            let iy = w.in_y(oy, ky);
            if iy < 0 || iy >= self.input.h as i32 {
                continue;
            }
            for kx in 0..w.kernel_w {
                let ix = w.in_x(ox, kx);
                if ix < 0 || ix >= self.input.w as i32 {
                    continue;
                }
                let pixel = (b as usize * self.input.h as usize + iy as usize)
                    * self.input.w as usize
                    + ix as usize;
                f((ky * w.kernel_w + kx) as usize, pixel);
            }
        }
    }

    /// Visits every tap of output pixel `(b, oy, ox)`'s window in tap order:
    /// `f(tap index, Some(input pixel index))` inside the input,
    /// `f(tap index, None)` in the padding.
    #[inline(always)]
    pub fn for_each_window_tap(
        &self,
        b: u32,
        oy: u32,
        ox: u32,
        mut f: impl FnMut(usize, Option<usize>),
    ) {
        let w = &self.window;
        for ky in 0..w.kernel_h {
            let iy = w.in_y(oy, ky);
            let row_inside = iy >= 0 && iy < self.input.h as i32;
            for kx in 0..w.kernel_w {
                let ix = w.in_x(ox, kx);
                let tap = (ky * w.kernel_w + kx) as usize;
                if row_inside && ix >= 0 && ix < self.input.w as i32 {
                    f(
                        tap,
                        Some(
                            (b as usize * self.input.h as usize + iy as usize)
                                * self.input.w as usize
                                + ix as usize,
                        ),
                    );
                } else {
                    f(tap, None);
                }
            }
        }
    }

    /// Whether every window is one pixel inside the input (a 1x1 window
    /// at any stride, no padding read): strided pointwise convolutions
    /// (ResNet's shortcuts) can read their rows in place as stride-1 ones
    /// do, at [`padded_origin`](Self::padded_origin).
    pub fn single_pixel_windows(&self) -> bool {
        let w = &self.window;
        let (oh, ow) = (self.output.h, self.output.w);
        (w.kernel_h, w.kernel_w, w.pad_top, w.pad_left) == (1, 1, 0, 0)
            && oh > 0
            && ow > 0
            && (oh - 1) * w.stride_h < self.input.h
            && (ow - 1) * w.stride_w < self.input.w
    }

    /// The rows and columns the windows cover, from the first window's
    /// first tap to the last window's last (padding included): the size
    /// of a padded copy of the input that holds every window.
    pub fn window_span(&self) -> (usize, usize) {
        let w = &self.window;
        let span = |outputs: u32, stride: u32, kernel: u32, dilation: u32| {
            (outputs as usize - 1) * stride as usize + (kernel as usize - 1) * dilation as usize + 1
        };
        (
            span(self.output.h, w.stride_h, w.kernel_h, w.dilation_h),
            span(self.output.w, w.stride_w, w.kernel_w, w.dilation_w),
        )
    }

    /// The positions `(b, oy, ox)` of output pixels `first`, `first + 1`,
    /// ...: divided out once, then counted on.
    pub fn output_positions(&self, first: usize) -> impl Iterator<Item = (u32, u32, u32)> {
        let (oh, ow) = (self.output.h.max(1), self.output.w.max(1));
        let p = first as u32;
        let mut at = (p / (oh * ow), p / ow % oh, p % ow);
        core::iter::from_fn(move || {
            let here = at;
            at.2 += 1;
            if at.2 == ow {
                at.2 = 0;
                at.1 += 1;
                if at.1 == oh {
                    at.1 = 0;
                    at.0 += 1;
                }
            }
            Some(here)
        })
    }

    /// The output rows and columns whose windows lie inside the input
    /// vertically and horizontally (each a run: the windows move one way).
    #[inline(always)]
    pub fn inside_windows(&self) -> (core::ops::Range<u32>, core::ops::Range<u32>) {
        let w = &self.window;
        let run = |n: u32, inside: &dyn Fn(u32) -> bool| {
            let first = (0..n).find(|&i| inside(i)).unwrap_or(n);
            first..(first..n).find(|&i| !inside(i)).unwrap_or(n)
        };
        let rows = run(self.output.h, &|oy| {
            w.in_y(oy, 0) >= 0 && w.in_y(oy, w.kernel_h - 1) < self.input.h as i32
        });
        let columns = run(self.output.w, &|ox| {
            w.in_x(ox, 0) >= 0 && w.in_x(ox, w.kernel_w - 1) < self.input.w as i32
        });
        (rows, columns)
    }

    /// The input element where the window of `(b, oy, ox)` starts, wrapping
    /// below zero where it starts in the padding, so that its taps inside the
    /// input land inside it.
    #[inline(always)]
    pub fn padded_origin(&self, (b, oy, ox): (u32, u32, u32)) -> usize {
        let (w, i) = (&self.window, &self.input);
        let row = ((b * i.h) as usize).wrapping_add(w.in_y(oy, 0) as usize);
        (row.wrapping_mul(i.w as usize)
            .wrapping_add(w.in_x(ox, 0) as usize))
        .wrapping_mul(i.c as usize)
    }

    /// Visits the in-bounds taps of output pixel `(b, oy, ox)` by runs
    /// that lie next to each other in the input (one per kernel row when
    /// the horizontal dilation is 1, else one per tap): `f(first tap index,
    /// first input pixel index, taps in the run)`, in tap order, as
    /// [`for_each_tap`](Self::for_each_tap) would visit them.
    #[inline(always)]
    pub fn for_each_tap_run(
        &self,
        b: u32,
        oy: u32,
        ox: u32,
        mut f: impl FnMut(usize, usize, usize),
    ) {
        let w = &self.window;
        if w.dilation_w != 1 {
            return self.for_each_tap(b, oy, ox, |tap, pixel| f(tap, pixel, 1));
        }
        // The columns of the kernel that fall inside the input.
        let x0 = w.in_x(ox, 0);
        let first = (-x0).max(0) as u32;
        let end = (self.input.w as i32 - x0).clamp(0, w.kernel_w as i32) as u32;
        if first >= end {
            return;
        }
        for ky in 0..w.kernel_h {
            let iy = w.in_y(oy, ky);
            if iy < 0 || iy >= self.input.h as i32 {
                continue;
            }
            let pixel = (b as usize * self.input.h as usize + iy as usize) * self.input.w as usize
                + (x0 + first as i32) as usize;
            f(
                (ky * w.kernel_w + first) as usize,
                pixel,
                (end - first) as usize,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_runs_cover_exactly_the_taps_one_by_one() {
        for (kernel, stride, dilation, pad) in [
            ((3, 3), (1, 1), (1, 1), (1, 1)),
            ((10, 4), (2, 2), (1, 1), (4, 1)),
            ((3, 3), (2, 1), (2, 2), (2, 2)),
            ((5, 2), (1, 3), (1, 1), (0, 0)),
        ] {
            let window = Window {
                kernel_h: kernel.0,
                kernel_w: kernel.1,
                stride_h: stride.0,
                stride_w: stride.1,
                dilation_h: dilation.0,
                dilation_w: dilation.1,
                pad_top: pad.0,
                pad_left: pad.1,
            };
            let g = ConvGeometry {
                input: Shape {
                    n: 2,
                    h: 7,
                    w: 6,
                    c: 3,
                },
                output: Shape {
                    n: 2,
                    h: 5,
                    w: 4,
                    c: 2,
                },
                window,
            };
            g.for_each_output_pixel(|_, b, oy, ox| {
                let mut one_by_one = std::vec::Vec::new();
                g.for_each_tap(b, oy, ox, |tap, pixel| one_by_one.push((tap, pixel)));
                let mut by_runs = std::vec::Vec::new();
                g.for_each_tap_run(b, oy, ox, |tap, pixel, count| {
                    by_runs.extend((0..count).map(|k| (tap + k, pixel + k)))
                });
                assert_eq!(by_runs, one_by_one, "{window:?} at ({b}, {oy}, {ox})");
            });
        }
    }

    #[test]
    fn tflite_padding_arithmetic() {
        // SAME, 3x3 stride 1 on 10: out 10, pad 1.
        assert_eq!(output_extent(10, 3, 1, 1, AxisPadding::Same), (10, 1));
        // SAME, 3x3 stride 2 on 32: out 16, total pad 1 -> top 0 (extra at the bottom).
        assert_eq!(output_extent(32, 3, 2, 1, AxisPadding::Same), (16, 0));
        // SAME, 10x4 stride 2 on 49 (KWS first conv): out 25, needed 9 -> 4.
        assert_eq!(output_extent(49, 10, 2, 1, AxisPadding::Same), (25, 4));
        // VALID, 3x3 stride 1 on 10: 8; dilation 2 makes the kernel 5 wide: 6.
        assert_eq!(output_extent(10, 3, 1, 1, AxisPadding::Valid), (8, 0));
        assert_eq!(output_extent(10, 3, 1, 2, AxisPadding::Valid), (6, 0));
        // VALID with a kernel larger than the input gives an empty output.
        assert_eq!(output_extent(2, 3, 1, 1, AxisPadding::Valid).0, 0);
    }

    #[test]
    fn explicit_padding_arithmetic() {
        // PyTorch's padding=1 on a 3x3 stride-2 conv over 32: 16 outputs,
        // one row above (SAME would put none there).
        assert_eq!(
            output_extent(32, 3, 2, 1, AxisPadding::Explicit(1, 1)),
            (16, 1)
        );
        // Only after: the same as VALID over 33.
        assert_eq!(
            output_extent(32, 3, 2, 1, AxisPadding::Explicit(0, 1)),
            (16, 0)
        );
        // Padding wider than the kernel: outputs that see only padding.
        assert_eq!(
            output_extent(4, 1, 1, 1, AxisPadding::Explicit(2, 3)),
            (9, 2)
        );
        // SAME and VALID as explicit amounts give the same windows.
        let same = Padding::Same.explicit((49, 10), (10, 4), (2, 2), (1, 1));
        assert_eq!(
            same,
            Padding::Explicit {
                top: 4,
                bottom: 5,
                left: 1,
                right: 1
            }
        );
        for padding in [Padding::Same, Padding::Valid] {
            for (input, k, s, d) in [(49, 10, 2, 1), (32, 3, 2, 1), (7, 3, 1, 2), (5, 5, 3, 1)] {
                let e = padding.explicit((input, input), (k, k), (s, s), (d, d));
                assert_eq!(
                    Window::new((k, k), (s, s), (d, d), padding, (input, input)),
                    Window::new((k, k), (s, s), (d, d), e, (input, input)),
                    "{padding:?} {input} {k} {s} {d}"
                );
            }
        }
    }
}
