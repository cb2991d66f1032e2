//! Convolutions whose output overwrites their own input, as TinyEngine runs
//! depthwise layers: the memory planner gives such a layer's output the
//! input's bytes when nothing reads the input afterwards, and the executor
//! runs it a band of output rows at a time into a small scratch buffer,
//! writing each row back once no row still to compute reads the input
//! bytes under it. A 1x1 convolution with no more output than input
//! channels, and a depthwise layer whose rows fit the scratch a few at a
//! time, then need one buffer instead of two.
//!
//! The schedule is a pure function of the geometry, so the planner (which
//! decides whether a layer may run in place) and the executor (which runs
//! it) follow the same steps.

use crate::geometry::{ConvGeometry, Shape};
use core::ops::Range;

/// Bytes of the scratch buffer a convolution in place computes its rows
/// into (on the stack of the executor).
pub const SCRATCH_BYTES: usize = 2048;

/// How a convolution's output rows are computed and written back in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowSchedule {
    /// Bytes of one input row (`w x c x element`).
    pub in_row_bytes: usize,
    /// Bytes of one output row.
    pub out_row_bytes: usize,
    /// Output rows.
    pub rows: u32,
    /// Rows are single pixels: a 1x1 convolution with unit stride and no
    /// padding reads nothing but its own pixel, so its bands may be any
    /// run of pixels (whole groups for the kernels' pixel blocks) rather
    /// than of image rows.
    pub pixels: bool,
    /// Input rows.
    input_rows: u32,
    stride: u32,
    pad_top: u32,
    /// Input rows one output row's window spans.
    span: u32,
}

/// One step of a schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Compute output rows `rows` into the scratch, after the rows pending there.
    Compute {
        /// The output rows.
        rows: Range<u32>,
    },
    /// Write the first `rows.len()` pending rows back to their place.
    WriteBack {
        /// The output rows.
        rows: Range<u32>,
    },
}

impl RowSchedule {
    /// The schedule of `g` with elements of `in_elem` and `out_elem` bytes,
    /// if it can run in place: one image, every output row reading at least
    /// one input row, and never more rows pending than the scratch holds.
    pub fn of(g: &ConvGeometry, in_elem: usize, out_elem: usize) -> Option<RowSchedule> {
        let w = g.window;
        let pixels = (
            w.kernel_h, w.kernel_w, w.stride_h, w.stride_w, w.pad_top, w.pad_left,
        ) == (1, 1, 1, 1, 0, 0)
            && (g.input.h, g.input.w) == (g.output.h, g.output.w);
        // A row of pixels, or one pixel.
        let width = |s: Shape| if pixels { 1 } else { s.w as usize };
        let row = |s: Shape, elem: usize| width(s) * (s.c as usize) * elem;
        let rows = |s: Shape| if pixels { s.h * s.w } else { s.h };
        let s = RowSchedule {
            in_row_bytes: row(g.input, in_elem),
            out_row_bytes: row(g.output, out_elem),
            rows: rows(g.output),
            pixels,
            input_rows: rows(g.input),
            stride: w.stride_h,
            pad_top: w.pad_top,
            span: (w.kernel_h - 1) * w.dilation_h + 1,
        };
        let fits = g.input.n == 1
            && g.output.n == 1
            && s.out_row_bytes > 0
            && s.out_row_bytes <= SCRATCH_BYTES
            && (0..s.rows).all(|y| !s.input_band(y..y + 1).is_empty());
        (fits && s.steps().all(|step| step.is_some())).then_some(s)
    }

    /// The first input row output row `y`'s window covers (0 in the padding).
    fn first_input_row(&self, y: u32) -> u32 {
        (y * self.stride).saturating_sub(self.pad_top)
    }

    /// The input rows output rows `rows` read, clipped to the image.
    pub fn input_band(&self, rows: Range<u32>) -> Range<u32> {
        let start = self.first_input_row(rows.start);
        let end = ((rows.end - 1) * self.stride + self.span)
            .saturating_sub(self.pad_top)
            .min(self.input_rows);
        start..end.max(start)
    }

    /// Rows of padding above the band of output rows starting at `y`.
    pub fn band_pad_top(&self, y: u32) -> u32 {
        self.pad_top.saturating_sub(y * self.stride)
    }

    /// The output rows below `next` (the next row to compute) that may be
    /// written back: their bytes end before the first input byte row
    /// `next` and every later row read.
    fn writable_below(&self, next: u32) -> u32 {
        if next >= self.rows {
            return self.rows;
        }
        let needed_from = self.first_input_row(next) as usize * self.in_row_bytes;
        (needed_from / self.out_row_bytes).min(next as usize) as u32
    }

    /// The steps, in order; `None` where the scratch is full and no pending
    /// row may be written back (the geometry cannot run in place).
    pub fn steps(&self) -> impl Iterator<Item = Option<Step>> + '_ {
        let capacity = (SCRATCH_BYTES / self.out_row_bytes.max(1)) as u32;
        let (mut computed, mut written, mut stuck) = (0u32, 0u32, false);
        core::iter::from_fn(move || {
            if stuck || written == self.rows {
                return None;
            }
            let writable = self.writable_below(computed).max(written);
            if writable > written {
                let rows = written..writable;
                written = writable;
                return Some(Some(Step::WriteBack { rows }));
            }
            let room = capacity - (computed - written);
            if room == 0 || computed == self.rows {
                stuck = true;
                return Some(None);
            }
            let rows = computed..(computed + room).min(self.rows);
            computed = rows.end;
            Some(Some(Step::Compute { rows }))
        })
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::geometry::Padding;

    fn geometry(
        h: u32,
        w: u32,
        c: u32,
        out_c: u32,
        k: u32,
        s: u32,
        padding: Padding,
    ) -> ConvGeometry {
        ConvGeometry::new(
            Shape::new(1, h, w, c),
            out_c,
            (k, k),
            (s, s),
            (1, 1),
            padding,
        )
    }

    #[test]
    fn a_ds_cnn_depthwise_layer_computes_rows_ahead_and_writes_back_behind() {
        // 25 x 5 x 64, 3x3, same padding: 320-byte rows, 6 fit the 2 KiB scratch.
        let s = RowSchedule::of(&geometry(25, 5, 64, 64, 3, 1, Padding::Same), 1, 1).unwrap();
        assert!(!s.pixels);
        let steps: std::vec::Vec<Step> = s.steps().map(Option::unwrap).collect();
        let (c, w) = (
            |rows| Step::Compute { rows },
            |rows| Step::WriteBack { rows },
        );
        // Row 6 reads input rows 5..8: rows 0..5 (bytes 0..1600) are free.
        assert_eq!(
            steps,
            [
                c(0..6),
                w(0..5),
                c(6..11),
                w(5..10),
                c(11..16),
                w(10..15),
                c(16..21),
                w(15..20),
                c(21..25),
                w(20..25)
            ]
        );
        assert_eq!(s.input_band(0..6), 0..7);
        assert_eq!(s.band_pad_top(0), 1);
        assert_eq!(s.input_band(6..11), 5..12);
        assert_eq!(s.band_pad_top(6), 0);
        assert_eq!(s.input_band(21..25), 20..25);
    }

    #[test]
    fn a_pointwise_layer_runs_by_pixels_a_scratch_full_at_a_time() {
        let s = RowSchedule::of(&geometry(25, 5, 64, 64, 1, 1, Padding::Valid), 1, 1).unwrap();
        assert!(s.pixels);
        assert_eq!((s.rows, s.out_row_bytes), (125, 64));
        let steps: std::vec::Vec<Step> = s.steps().map(Option::unwrap).collect();
        let (c, w) = (
            |rows| Step::Compute { rows },
            |rows| Step::WriteBack { rows },
        );
        assert_eq!(
            steps,
            [
                c(0..32),
                w(0..32),
                c(32..64),
                w(32..64),
                c(64..96),
                w(64..96),
                c(96..125),
                w(96..125)
            ]
        );
    }

    #[test]
    fn which_geometries_run_in_place() {
        // 1x1 with as many or fewer output channels: each row writes over itself.
        assert!(RowSchedule::of(&geometry(25, 5, 64, 64, 1, 1, Padding::Valid), 1, 1).is_some());
        assert!(RowSchedule::of(&geometry(25, 5, 64, 32, 1, 1, Padding::Valid), 1, 1).is_some());
        // More output channels than input: the first row's output covers input not yet read.
        assert!(RowSchedule::of(&geometry(25, 5, 32, 64, 1, 1, Padding::Valid), 1, 1).is_none());
        // A row wider than the scratch.
        assert!(RowSchedule::of(&geometry(8, 48, 48, 48, 3, 1, Padding::Same), 1, 1).is_none());
        // Stride 2 shrinks the output: in place.
        assert!(RowSchedule::of(&geometry(16, 4, 32, 32, 3, 2, Padding::Same), 1, 1).is_some());
        // int8 in, int16 out doubles the row: the output overtakes the input.
        assert!(RowSchedule::of(&geometry(25, 5, 64, 64, 1, 1, Padding::Valid), 1, 2).is_none());
        // Two images.
        let two = ConvGeometry::new(
            Shape::new(2, 4, 4, 8),
            8,
            (1, 1),
            (1, 1),
            (1, 1),
            Padding::Valid,
        );
        assert!(RowSchedule::of(&two, 1, 1).is_none());
    }
}
