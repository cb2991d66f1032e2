//! Row-fused segments: partial execution across layers. A run of
//! row-local layers (convolutions, depthwise convolutions, pooling, ADD)
//! is executed a band of its last layer's output rows at a time, and every
//! tensor made and read inside the run is kept only as the rows its
//! readers still need: a line buffer, not a whole tensor. Only the
//! segment's inputs and its output are whole in memory, and no row is
//! computed twice (MCUNetV2 runs its first stage by patches and computes
//! the overlaps again; a line buffer keeps them instead).
//!
//! The schedule is a pure function of the layers' row geometry, so the
//! memory planner (which sizes each line buffer, [`Segment::line_rows`])
//! and the executor (which runs the bands, [`Segment::next_band`] and
//! [`Segment::release`]) follow the same steps.

/// Layers one segment may hold (the executor keeps its state on the
/// stack, which a 16 KiB board has little of).
pub const MAX_LAYERS: usize = 12;
/// Tensors one segment may touch: each layer's output and a few inputs.
pub const MAX_TENSORS: usize = MAX_LAYERS + 8;

/// How a layer's output rows depend on its input rows: output row `y`
/// reads input rows `y * stride - pad_top` to `y * stride - pad_top + span`
/// (clipped to the image).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowMap {
    stride: u32,
    pad_top: u32,
    span: u32,
    /// The layer may write its output rows exactly over the input rows
    /// it reads (the executor adds over an operand a scratch at a time).
    over_input: bool,
}

impl RowMap {
    /// Row `y` of the output reads row `y` of each input (QUANTIZE, a
    /// lookup table).
    pub const ELEMENTWISE: RowMap = RowMap {
        stride: 1,
        pad_top: 0,
        span: 1,
        over_input: false,
    };

    /// An ADD: element by element, and its sum may go exactly over an
    /// operand.
    pub const ADD: RowMap = RowMap {
        over_input: true,
        ..RowMap::ELEMENTWISE
    };

    /// The rows of a convolution or pooling window.
    pub fn window(w: &crate::geometry::Window) -> RowMap {
        RowMap {
            over_input: false,
            stride: w.stride_h.max(1),
            pad_top: w.pad_top,
            span: (w.kernel_h.max(1) - 1)
                .saturating_mul(w.dilation_h.max(1))
                .saturating_add(1),
        }
    }

    /// The first input row output row `y` reads (0 in the padding).
    pub fn first_input_row(&self, y: u32) -> u32 {
        y.saturating_mul(self.stride).saturating_sub(self.pad_top)
    }

    /// The input rows output rows `start..end` read, clipped to `in_rows`.
    pub fn input_rows(&self, (start, end): (u32, u32), in_rows: u32) -> (u32, u32) {
        let first = self.first_input_row(start).min(in_rows);
        let last = (end.max(1) - 1)
            .saturating_mul(self.stride)
            .saturating_add(self.span)
            .saturating_sub(self.pad_top)
            .min(in_rows);
        (first, last.max(first))
    }

    /// Rows of padding above a band of output rows starting at `y`.
    pub fn band_pad_top(&self, y: u32) -> u32 {
        self.pad_top.saturating_sub(y.saturating_mul(self.stride))
    }
}

/// A tensor as a segment sees it: rows of `row_bytes` bytes, named by a
/// `key` the caller chooses (a tensor id, an arena offset).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TensorRows {
    /// The caller's name for the tensor.
    pub key: u32,
    /// Image rows.
    pub rows: u32,
    /// Bytes of one row.
    pub row_bytes: u32,
}

#[derive(Clone, Copy, Debug, Default)]
struct LayerRows {
    inputs: [Option<u8>; 2],
    output: u8,
    map: RowMap,
}

/// Why a run of layers cannot be a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// More layers or tensors than a segment holds.
    TooLarge,
    /// A tensor named twice with different rows.
    Inconsistent,
    /// A layer writes a tensor an earlier layer read or wrote.
    Rewritten,
    /// A tensor made inside is read by no later layer, the output is read
    /// inside, a tensor has no rows, or there are no layers.
    Shape,
}

/// A segment: its layers in execution order, the last one's output its
/// output (the sink, written whole).
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    tensors: [TensorRows; MAX_TENSORS],
    made_by: [Option<u8>; MAX_TENSORS],
    tensor_count: usize,
    layers: [LayerRows; MAX_LAYERS],
    layer_count: usize,
    band: u32,
}

/// Rows each tensor of a segment holds while it runs: `lo[t]..hi[t]`, the
/// first held row at the start of its buffer.
#[derive(Clone, Copy, Debug)]
pub struct Held {
    /// First row held.
    pub lo: [u32; MAX_TENSORS],
    /// One past the last row held (computed so far).
    pub hi: [u32; MAX_TENSORS],
}

/// The output rows `(start, end)` each layer computes in one band.
pub type Band = [(u32, u32); MAX_LAYERS];

impl Segment {
    /// An empty segment whose bands are `band` output rows.
    pub fn new(band: u32) -> Self {
        Segment {
            tensors: [TensorRows::default(); MAX_TENSORS],
            made_by: [None; MAX_TENSORS],
            tensor_count: 0,
            layers: [LayerRows::default(); MAX_LAYERS],
            layer_count: 0,
            band: band.max(1),
        }
    }

    /// The tensor an input names: the latest one with its key, or a new
    /// input of the segment.
    fn index(&mut self, t: TensorRows) -> Result<u8, Invalid> {
        match self.tensors().iter().rposition(|s| s.key == t.key) {
            Some(i) if self.tensors[i] == t => Ok(i as u8),
            Some(_) => Err(Invalid::Inconsistent),
            None => self.add(t),
        }
    }

    fn add(&mut self, t: TensorRows) -> Result<u8, Invalid> {
        if self.tensor_count == MAX_TENSORS {
            return Err(Invalid::TooLarge);
        }
        if t.rows == 0 || t.row_bytes == 0 {
            return Err(Invalid::Shape);
        }
        self.tensors[self.tensor_count] = t;
        self.tensor_count += 1;
        Ok(self.tensor_count as u8 - 1)
    }

    /// Appends a layer reading `inputs` and writing `output`, its rows
    /// related by `map`. The output is a new tensor; its key may be an
    /// input's (an arena offset, when the output lies over that input as
    /// its rows die), never that of a tensor made inside the segment.
    pub fn push(
        &mut self,
        inputs: [Option<TensorRows>; 2],
        output: TensorRows,
        map: RowMap,
    ) -> Result<(), Invalid> {
        if self.layer_count == MAX_LAYERS {
            return Err(Invalid::TooLarge);
        }
        let made = |(i, t): (usize, &TensorRows)| t.key == output.key && self.made_by[i].is_some();
        if self.tensors().iter().enumerate().any(made) {
            return Err(Invalid::Rewritten);
        }
        let mut ids = [None; 2];
        for (id, t) in ids.iter_mut().zip(inputs) {
            *id = t.map(|t| self.index(t)).transpose()?;
        }
        let out = self.add(output)?;
        self.made_by[out as usize] = Some(self.layer_count as u8);
        self.layers[self.layer_count] = LayerRows {
            inputs: ids,
            output: out,
            map,
        };
        self.layer_count += 1;
        Ok(())
    }

    /// The tensors, in order of first use.
    pub fn tensors(&self) -> &[TensorRows] {
        &self.tensors[..self.tensor_count]
    }

    fn layers(&self) -> &[LayerRows] {
        &self.layers[..self.layer_count]
    }

    /// The output tensor (the last layer's), by index in [`tensors`](Self::tensors).
    pub fn sink(&self) -> usize {
        self.layers[self.layer_count.max(1) - 1].output as usize
    }

    /// Whether tensor `t` is made and read inside the segment (held as a
    /// line buffer rather than whole).
    pub fn is_internal(&self, t: usize) -> bool {
        self.made_by[t].is_some() && t != self.sink()
    }

    /// Checks the structure: every tensor made inside but the output is
    /// read by a later layer, and the output by none.
    pub fn check(&self) -> Result<(), Invalid> {
        if self.layer_count == 0 {
            return Err(Invalid::Shape);
        }
        for t in 0..self.tensor_count {
            let readers = self
                .layers()
                .iter()
                .filter(|l| l.inputs.contains(&Some(t as u8)))
                .count();
            let ok = match self.made_by[t] {
                _ if t == self.sink() => readers == 0,
                Some(_) => readers > 0,
                None => true,
            };
            if !ok {
                return Err(Invalid::Shape);
            }
        }
        Ok(())
    }

    /// The rows held before the first band: the inputs whole, nothing made.
    pub fn start(&self) -> Held {
        let mut held = Held {
            lo: [0; MAX_TENSORS],
            hi: [0; MAX_TENSORS],
        };
        for (t, rows) in self.tensors().iter().enumerate() {
            if self.made_by[t].is_none() {
                held.hi[t] = rows.rows;
            }
        }
        held
    }

    /// The output rows each layer computes in the next band (the next
    /// `band` rows of the sink and whatever they need that is not held
    /// yet), or `None` once the output is complete.
    pub fn next_band(&self, held: &Held) -> Option<Band> {
        let sink = self.sink();
        let rows = self.tensors[sink].rows;
        if held.hi[sink] >= rows {
            return None;
        }
        let mut target = [0u32; MAX_TENSORS];
        target[sink] = held.hi[sink].saturating_add(self.band).min(rows);
        let mut band = [(0, 0); MAX_LAYERS];
        // Readers come after their writers: back to front, each layer's
        // target is final when it is reached.
        for (i, layer) in self.layers().iter().enumerate().rev() {
            let out = layer.output as usize;
            let (start, end) = (held.hi[out], target[out]);
            if end <= start {
                continue;
            }
            band[i] = (start, end);
            for &t in layer.inputs.iter().flatten() {
                let t = t as usize;
                let need = layer.map.input_rows((start, end), self.tensors[t].rows);
                target[t] = target[t].max(need.1);
            }
        }
        Some(band)
    }

    /// After a band: drops the rows of each line buffer no later band
    /// reads (those before the first row any reader's next output row
    /// reads); the held rows stay at the start of the buffer, so the
    /// caller moves rows `held.lo` (new) to `held.hi` of each internal
    /// tensor down by the returned count of rows.
    pub fn release(&self, held: &mut Held) -> [u32; MAX_TENSORS] {
        let mut dropped = [0; MAX_TENSORS];
        for (t, dropped) in dropped.iter_mut().enumerate().take(self.tensor_count) {
            if self.is_internal(t) {
                let keep_from = self.first_read(held, t).clamp(held.lo[t], held.hi[t]);
                *dropped = keep_from - held.lo[t];
                held.lo[t] = keep_from;
            }
        }
        dropped
    }

    /// The first row of tensor `t` a later band may read: the least of
    /// the first rows its readers' next output rows read (every row once
    /// they are done).
    fn first_read(&self, held: &Held, t: usize) -> u32 {
        self.layers()
            .iter()
            .filter(|l| l.inputs.contains(&Some(t as u8)))
            .map(|l| {
                let out = l.output as usize;
                if held.hi[out] >= self.tensors[out].rows {
                    self.tensors[t].rows
                } else {
                    l.map.first_input_row(held.hi[out])
                }
            })
            .min()
            .unwrap_or(self.tensors[t].rows)
    }

    /// Records that layer `i` computed its rows of `band`.
    pub fn computed(&self, held: &mut Held, band: &Band, i: usize) {
        let out = self.layers[i].output as usize;
        held.hi[out] = held.hi[out].max(band[i].1);
    }

    /// The input rows layer `i` reads to compute `rows` of its output.
    pub fn input_rows(&self, i: usize, input: usize, rows: (u32, u32)) -> (u32, u32) {
        self.layers[i]
            .map
            .input_rows(rows, self.tensors[input].rows)
    }

    /// Rows of padding above layer `i`'s band of output rows from `y`.
    pub fn band_pad_top(&self, i: usize, y: u32) -> u32 {
        self.layers[i].map.band_pad_top(y)
    }

    /// The segment's tensors by index: layer `i`'s inputs and output.
    pub fn layer_tensors(&self, i: usize) -> ([Option<usize>; 2], usize) {
        let l = &self.layers[i];
        (l.inputs.map(|t| t.map(usize::from)), usize::from(l.output))
    }

    /// The rows each tensor's buffer must hold: a line buffer's most rows
    /// held at once for an internal tensor, every row for the inputs and
    /// the output. Runs the bands without computing anything; an error if
    /// a band would read rows no longer held (a malformed segment).
    pub fn line_rows(&self) -> Result<[u32; MAX_TENSORS], Invalid> {
        self.check()?;
        let mut most = [0; MAX_TENSORS];
        for (t, rows) in self.tensors().iter().enumerate() {
            if !self.is_internal(t) {
                most[t] = rows.rows;
            }
        }
        let mut held = self.start();
        while let Some(band) = self.next_band(&held) {
            for i in 0..self.layer_count {
                if band[i].1 <= band[i].0 {
                    continue;
                }
                let (inputs, _) = self.layer_tensors(i);
                for t in inputs.into_iter().flatten() {
                    let (from, to) = self.input_rows(i, t, band[i]);
                    if from < held.lo[t] || to > held.hi[t] {
                        return Err(Invalid::Shape);
                    }
                }
                self.computed(&mut held, &band, i);
            }
            for (t, most) in most.iter_mut().enumerate().take(self.tensor_count) {
                if self.is_internal(t) {
                    *most = (*most).max(held.hi[t] - held.lo[t]);
                }
            }
            self.release(&mut held);
        }
        Ok(most)
    }

    /// Runs the bands for an output placed over input `x`: `band` sees
    /// each band's output rows written, the first row of `x` a later band
    /// reads, and the rows of `x` the last layer reads in this band (after
    /// every other layer of the band has read its rows). `false` if `x` is
    /// not an input of a well-formed segment.
    fn overlap_bands(
        &self,
        x: usize,
        mut band: impl FnMut((u32, u32), u32, Option<((u32, u32), bool)>),
    ) -> bool {
        if x >= self.tensor_count || self.made_by[x].is_some() || self.check().is_err() {
            return false;
        }
        let (sink, last) = (self.sink(), self.layer_count - 1);
        let mut held = self.start();
        while let Some(rows) = self.next_band(&held) {
            let before = held.hi[sink];
            for i in 0..self.layer_count {
                if rows[i].1 > rows[i].0 {
                    self.computed(&mut held, &rows, i);
                }
            }
            // Rows the last layer reads, unless it may write exactly over them.
            let own = self.layers[last].inputs.contains(&Some(x as u8)).then(|| {
                (
                    self.input_rows(last, x, rows[last]),
                    self.layers[last].map.over_input,
                )
            });
            band((before, held.hi[sink]), self.first_read(&held, x), own);
            self.release(&mut held);
        }
        true
    }

    /// Whether the output may start `offset` bytes past the start of
    /// input `x` (negative: before it): each band writes its rows only over
    /// rows of `x` no later band reads, and over the rows the last layer
    /// reads in that band only exactly (an ADD in place). An output made
    /// from a larger input can so take the input's bytes as they die.
    pub fn overlap_allowed(&self, x: usize, offset: i64) -> bool {
        let Some(&TensorRows {
            rows, row_bytes, ..
        }) = self.tensors().get(x)
        else {
            return false;
        };
        let x_row = i64::from(row_bytes);
        let sink_row = i64::from(self.tensors[self.sink()].row_bytes);
        let mut ok = offset % 4 == 0;
        let well_formed = self.overlap_bands(x, |written, later, own| {
            let written = (
                offset + i64::from(written.0) * sink_row,
                offset + i64::from(written.1) * sink_row,
            );
            let clear = |(from, to): (u32, u32)| {
                written.1 <= i64::from(from) * x_row || i64::from(to) * x_row <= written.0
            };
            let exact = |(from, to): (u32, u32)| {
                (i64::from(from) * x_row, i64::from(to) * x_row) == written
            };
            let own_clear = |(own, over): ((u32, u32), bool)| (over && exact(own)) || clear(own);
            ok &= clear((later, rows)) && own.is_none_or(own_clear);
        });
        ok && well_formed
    }

    /// The largest offset, at most 0 and a multiple of 4, at which the
    /// output may start against input `x` ([`overlap_allowed`](Self::overlap_allowed)).
    pub fn overlap_offset(&self, x: usize) -> Option<i64> {
        if self.overlap_allowed(x, 0) {
            return Some(0);
        }
        // Each band's rows must end before every byte of `x` still read.
        let x_row = i64::from(self.tensors().get(x)?.row_bytes);
        let sink_row = i64::from(self.tensors[self.sink()].row_bytes);
        let mut limit = 0i64;
        self.overlap_bands(x, |written, later, own| {
            let live = own.map_or(later, |((first, _), _)| first.min(later));
            limit = limit.min(i64::from(live) * x_row - i64::from(written.1) * sink_row);
        });
        let offset = limit.div_euclid(4) * 4;
        self.overlap_allowed(x, offset).then_some(offset)
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::geometry::{Padding, Window};

    fn rows(key: u32, rows: u32, row_bytes: u32) -> TensorRows {
        TensorRows {
            key,
            rows,
            row_bytes,
        }
    }

    fn conv(k: u32, s: u32, in_h: u32) -> RowMap {
        let (w, _) = Window::new((k, k), (s, s), (1, 1), Padding::Same, (in_h, in_h));
        RowMap::window(&w)
    }

    /// A ResNet block: x -> conv 3x3 -> y -> conv 3x3 -> z; out = x + z.
    fn residual_block() -> Segment {
        let (x, y, z, out) = (
            rows(0, 32, 512),
            rows(1, 32, 512),
            rows(2, 32, 512),
            rows(3, 32, 512),
        );
        let mut s = Segment::new(1);
        s.push([Some(x), None], y, conv(3, 1, 32)).unwrap();
        s.push([Some(y), None], z, conv(3, 1, 32)).unwrap();
        s.push([Some(x), Some(z)], out, RowMap::ADD).unwrap();
        s
    }

    #[test]
    fn a_residual_block_holds_a_few_rows_of_its_inner_tensors() {
        let s = residual_block();
        let most = s.line_rows().unwrap();
        // x and the output whole; y: the next row of z reads three rows of
        // y, computed one ahead; z: one row.
        assert_eq!(&most[..4], &[32, 3, 1, 32]);
        // The first band computes y rows 0..2, z row 0, output row 0.
        let held = s.start();
        let band = s.next_band(&held).unwrap();
        assert_eq!(&band[..3], &[(0, 2), (0, 1), (0, 1)]);
    }

    #[test]
    fn bands_compute_every_row_once_and_read_only_held_rows() {
        // Stride 2 then a 5x5 and a skip read by a lagging ADD.
        let (a, b, c, d, e) = (
            rows(0, 40, 8),
            rows(1, 20, 8),
            rows(2, 20, 8),
            rows(3, 20, 8),
            rows(4, 20, 8),
        );
        let mut s = Segment::new(2);
        s.push([Some(a), None], b, conv(3, 2, 40)).unwrap();
        s.push([Some(b), None], c, conv(5, 1, 20)).unwrap();
        s.push([Some(c), None], d, conv(1, 1, 20)).unwrap();
        s.push([Some(b), Some(d)], e, RowMap::ADD).unwrap();
        let most = s.line_rows().unwrap();
        let mut computed = [0u32; MAX_LAYERS];
        let mut held = s.start();
        while let Some(band) = s.next_band(&held) {
            for (i, rows) in band.iter().enumerate().take(4) {
                assert_eq!(
                    rows.0,
                    computed[i].min(rows.1),
                    "layer {i} computes from where it stopped"
                );
                computed[i] = computed[i].max(rows.1);
                s.computed(&mut held, &band, i);
            }
            for (t, most) in most.iter().enumerate().take(5) {
                assert!(held.hi[t] - held.lo[t] <= *most);
            }
            s.release(&mut held);
        }
        assert_eq!(&computed[..4], &[20, 20, 20, 20]);
        // b is held from the row the ADD reads next to the 5x5's window
        // two rows further, a band of two ahead: six rows; c and d a band.
        assert_eq!(&most[..5], &[40, 6, 2, 2, 20]);
    }

    #[test]
    fn an_output_may_take_the_rows_of_an_input_as_they_die() {
        // Two stride-2 3x3 convolutions, 32x32x3 -> 16x16x16 -> 8x8x32 (a
        // magic wand's first layers): input rows of 96 bytes, output rows
        // of 256. Band b computes rows to 2b + 3 of the first convolution,
        // so later bands read the input from row 4b + 6: 96 (4b + 6) bytes
        // in, past the 256 (b + 1) the output has written.
        let (x, y, out) = (rows(0, 32, 96), rows(1, 16, 256), rows(2, 8, 256));
        let mut s = Segment::new(1);
        s.push([Some(x), None], y, conv(3, 2, 32)).unwrap();
        s.push([Some(y), None], out, conv(3, 2, 16)).unwrap();
        assert_eq!(s.overlap_offset(0), Some(0));
        assert!(s.overlap_allowed(0, 0) && s.overlap_allowed(0, -256));
        // Its first row written at byte 1024 would clobber input rows the
        // second band reads (from row 6, byte 576).
        assert!(s.overlap_allowed(0, 256) && !s.overlap_allowed(0, 1024));
        // Not an input; not a word apart.
        assert_eq!(s.overlap_offset(1), None);
        assert!(!s.overlap_allowed(0, -2));
        // A residual block: the ADD writes each row exactly over the input
        // row it reads, which nothing reads later.
        let block = residual_block();
        assert_eq!(block.overlap_offset(0), Some(0));
        assert!(!block.overlap_allowed(0, -256) && block.overlap_allowed(0, -512));
        // A 1x1 widening 8 -> 16 bytes a row reads row b as it writes row
        // b: the written rows must end before it, d + 16 (b + 1) <= 8 b up
        // to b = 7.
        let mut widen = Segment::new(1);
        widen
            .push([Some(rows(0, 8, 8)), None], rows(1, 8, 16), conv(1, 1, 8))
            .unwrap();
        assert_eq!(widen.overlap_offset(0), Some(-72));
        // A lookup table reads row b as it writes row b but does not run
        // in place (only an ADD does): one row before.
        let mut lookup = Segment::new(1);
        lookup
            .push(
                [Some(rows(0, 8, 8)), None],
                rows(1, 8, 8),
                RowMap::ELEMENTWISE,
            )
            .unwrap();
        assert!(!lookup.overlap_allowed(0, 0));
        assert_eq!(lookup.overlap_offset(0), Some(-8));
    }

    #[test]
    fn malformed_segments_are_refused() {
        let (x, y) = (rows(0, 8, 8), rows(1, 8, 8));
        let mut s = Segment::new(1);
        s.push([Some(x), None], y, RowMap::ELEMENTWISE).unwrap();
        // Writing a tensor made inside.
        assert_eq!(
            s.push([Some(x), None], y, RowMap::ELEMENTWISE),
            Err(Invalid::Rewritten)
        );
        // An output over an input (its key) is a tensor of its own: the
        // next layer reads it, not the input.
        let mut over = Segment::new(1);
        over.push([Some(x), None], y, RowMap::ELEMENTWISE).unwrap();
        over.push([Some(y), None], x, RowMap::ELEMENTWISE).unwrap();
        assert_eq!(over.tensors().len(), 3);
        assert_eq!((over.sink(), over.check()), (2, Ok(())));
        // The same key with other rows.
        assert_eq!(
            s.push(
                [Some(rows(1, 9, 8)), None],
                rows(2, 8, 8),
                RowMap::ELEMENTWISE
            ),
            Err(Invalid::Inconsistent)
        );
        // A tensor made inside and read by nothing later.
        let mut t = Segment::new(1);
        t.push([Some(x), None], y, RowMap::ELEMENTWISE).unwrap();
        t.push([Some(x), None], rows(2, 8, 8), RowMap::ELEMENTWISE)
            .unwrap();
        assert_eq!(t.check(), Err(Invalid::Shape));
    }
}
