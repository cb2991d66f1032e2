//! The float convolution: filters packed in blocks of [`BLOCK`] output
//! channels, `PIXELS` output pixels' sums of one block in registers, every
//! lane adding its own products in TFLite's order.

use core::array;
use std::borrow::Cow;
use std::vec::Vec;

use super::vector::{Clamp, F32s};
use super::Range;
use crate::geometry::ConvGeometry;

/// Output channels of one packed filter block (two AVX2 vectors, one
/// AVX-512 vector).
pub(super) const BLOCK: usize = 16;

/// `values` padded with zeros to whole blocks of `BLOCK` (bias, or zeros).
pub(super) fn padded(values: Option<&[f32]>, n: usize) -> Vec<f32> {
    let mut out = std::vec![0f32; n.div_ceil(BLOCK) * BLOCK];
    if let Some(values) = values {
        out[..n].copy_from_slice(values);
    }
    out
}

/// A filter packed for the kernel, and whether its weights are all finite
/// (which [`Padded`] needs).
pub(super) struct Packed {
    weights: Vec<f32>,
    finite: bool,
}

impl Packed {
    /// The filter `[oc][depth]` as blocks of `BLOCK` output channels, each
    /// `[depth][BLOCK]`, the channels past `oc` zero.
    fn new(filter: &[f32], oc: usize, depth: usize) -> Packed {
        let blocks = oc.div_ceil(BLOCK);
        let mut weights = std::vec![0f32; blocks * depth * BLOCK];
        for (o, row) in filter.chunks_exact(depth).enumerate().take(oc) {
            let block = &mut weights[(o / BLOCK) * depth * BLOCK..][..depth * BLOCK];
            for (k, &w) in row.iter().enumerate() {
                block[k * BLOCK + o % BLOCK] = w;
            }
        }
        let finite = filter.iter().all(|w| w.is_finite());
        Packed { weights, finite }
    }
}

/// The float filters of prepared models, packed once (packing and the
/// finiteness check took a third of a call of ResNet-8's 8x8x64 layer);
/// found by address as [`crate::int8::x86::prepare`]'s are.
pub mod prepared {
    use super::{Packed, BLOCK};
    use crate::geometry::ConvGeometry;
    use crate::model::Model;
    use crate::x86::Copies;

    /// A filter's address and length, and the geometry it is packed for.
    type Key = ((usize, usize), ConvGeometry);

    static PACKED: Copies<Key, Packed> = Copies::new();

    fn key(g: &ConvGeometry, filter: &[f32]) -> Key {
        ((filter.as_ptr() as usize, filter.len()), *g)
    }

    /// Packs the float filters of `model`'s convolutions (and of dense
    /// layers over enough rows to run as one); returns how many.
    pub fn prepare(model: &Model<'static>) -> usize {
        let mut count = 0;
        for (g, filter) in model.f32_filters() {
            let (oc, depth) = (g.output.c as usize, g.depth());
            if filter.len() == oc * depth && oc.div_ceil(BLOCK).checked_mul(depth * BLOCK).is_some()
            {
                PACKED.get_or_make(key(&g, filter), || Packed::new(filter, oc, depth));
                count += 1;
            }
        }
        count
    }

    /// Packs one `'static` filter of a convolution of geometry `g` as
    /// [`prepare`] packs a model's (for benchmarks of single layers).
    pub fn prepare_filter(g: &ConvGeometry, filter: &'static [f32]) {
        let (oc, depth) = (g.output.c as usize, g.depth());
        if filter.len() == oc * depth {
            PACKED.get_or_make(key(g, filter), || Packed::new(filter, oc, depth));
        }
    }

    /// The packing of `filter` for `g`, if a prepared model's.
    pub(in crate::float::x86) fn find(g: &ConvGeometry, filter: &[f32]) -> Option<&'static Packed> {
        PACKED.find(&key(g, filter))
    }
}

/// A layer's input with its window's padding written out as zeros, so
/// that every output pixel reads all of its taps at fixed offsets from its
/// window's first element.
///
/// A padded tap adds `0 * w`, a zero, to a sum that started at +0: the
/// sum is unchanged (it is never -0, as a round-to-nearest sum of +0 and
/// anything is -0 only when both are), so the outputs keep the portable
/// kernels' bits. That fails only where `w` is infinite or NaN (`0 * w` is
/// NaN), so a padded copy is only for weights that are all finite.
pub(super) struct Padded<'a> {
    /// The (padded) input, NHWC.
    pub data: Cow<'a, [f32]>,
    /// Elements per padded row and per padded image.
    row: usize,
    image: usize,
    /// Rows above and columns left of the input that were added.
    top: usize,
    left: usize,
}

impl<'a> Padded<'a> {
    /// `input`, copied with zeros around it if any window reaches outside
    /// and the weights are all `finite`. `None` when a copy is needed but the
    /// weights are not finite, or the copy would be out of proportion to
    /// the layer (a padding of thousands around a small input, which the
    /// portable kernels skip instead).
    pub(super) fn new(g: &ConvGeometry, input: &'a [f32], finite: bool) -> Option<Self> {
        let w = &g.window;
        let (ih, iw, c) = (g.input.h as usize, g.input.w as usize, g.input.c as usize);
        let reach = |last_in: i32, size: usize| (last_in + 1 - size as i32).max(0) as usize;
        let top = w.pad_top as usize;
        let left = w.pad_left as usize;
        let bottom = reach(w.in_y(g.output.h - 1, w.kernel_h - 1), ih);
        let right = reach(w.in_x(g.output.w - 1, w.kernel_w - 1), iw);
        let (ph, pw) = (top + ih + bottom, left + iw + right);
        let data = if ph == ih && pw == iw {
            Cow::Borrowed(input)
        } else {
            let elements = g.input.n as usize * ph * pw * c;
            let layer = input.len() + g.output.elements().unwrap_or(0);
            if elements > 4 * layer + 65_536 || !finite {
                return None;
            }
            let mut data = std::vec![0f32; elements];
            for (image, padded) in input
                .chunks_exact(ih * iw * c)
                .zip(data.chunks_exact_mut(ph * pw * c))
            {
                for (y, row) in image.chunks_exact(iw * c).enumerate() {
                    padded[((top + y) * pw + left) * c..][..iw * c].copy_from_slice(row);
                }
            }
            Cow::Owned(data)
        };
        Some(Padded {
            data,
            row: pw * c,
            image: ph * pw * c,
            top,
            left,
        })
    }

    /// Each tap's offset from its window's first element, in tap order.
    pub(super) fn tap_offsets(&self, g: &ConvGeometry) -> Vec<usize> {
        let w = &g.window;
        let c = g.input.c as usize;
        (0..w.kernel_h)
            .flat_map(|ky| (0..w.kernel_w).map(move |kx| (ky, kx)))
            .map(|(ky, kx)| {
                (ky * w.dilation_h) as usize * self.row + (kx * w.dilation_w) as usize * c
            })
            .collect()
    }

    /// The first element of output pixel `pixel`'s window (pixels counted
    /// in NHWC order).
    #[inline(always)]
    pub(super) fn window_origin(&self, g: &ConvGeometry, pixel: usize) -> usize {
        let (oh, ow) = (g.output.h as usize, g.output.w as usize);
        let (b, rest) = (pixel / (oh * ow), pixel % (oh * ow));
        self.origin_at(g, (b as u32, (rest / ow) as u32, (rest % ow) as u32))
    }

    /// The first element of the window of output pixel `(b, oy, ox)`.
    #[inline(always)]
    pub(super) fn origin_at(&self, g: &ConvGeometry, (b, oy, ox): (u32, u32, u32)) -> usize {
        let w = &g.window;
        let y = (w.in_y(oy, 0) + self.top as i32) as usize;
        let x = (w.in_x(ox, 0) + self.left as i32) as usize;
        b as usize * self.image + y * self.row + x * g.input.c as usize
    }
}

/// The float convolution over `V` vectors, `VECS` of them making a block
/// and `PIXELS` pixels at a time (lengths checked by the caller). Falls
/// back to the portable kernel where [`Padded::new`] declines.
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub(super) unsafe fn conv2d<V: F32s, const VECS: usize, const PIXELS: usize>(
    g: &ConvGeometry,
    input: &[f32],
    filter: &[f32],
    bias: Option<&[f32]>,
    act: Range,
    output: &mut [f32],
) {
    debug_assert_eq!(VECS * V::LANES, BLOCK);
    let (oc, depth) = (g.output.c as usize, g.depth());
    let made;
    let packed = match prepared::find(g, filter) {
        Some(packed) => packed,
        None => {
            made = Packed::new(filter, oc, depth);
            &made
        }
    };
    let Some(source) = Padded::new(g, input, packed.finite) else {
        return crate::float::portable::conv2d(g, input, filter, bias, act, output);
    };
    let packed = &packed.weights;
    let bias = padded(bias, oc);
    let conv = Conv::<V> {
        ic: g.input.c as usize,
        oc,
        depth,
        packed,
        bias: &bias,
        clamp: Clamp::new(act),
        input: &source.data,
        offsets: &source.tap_offsets(g),
    };
    let pixels = g.output.pixels().unwrap_or(0);
    let origin = |pixel| source.window_origin(g, pixel);
    // Groups of PIXELS, the last one overlapping the one before (its
    // pixels are computed twice, to the same bits); small layers by fewer.
    if pixels >= PIXELS {
        conv.groups::<VECS, PIXELS>(pixels, origin, output);
    } else if pixels >= 4 {
        conv.groups::<VECS, 4>(pixels, origin, output);
    } else {
        conv.groups::<VECS, 1>(pixels, origin, output);
    }
}

/// One convolution's packed operands.
struct Conv<'a, V> {
    ic: usize,
    oc: usize,
    depth: usize,
    packed: &'a [f32],
    bias: &'a [f32],
    clamp: Clamp<V>,
    input: &'a [f32],
    offsets: &'a [usize],
}

impl<V: F32s> Conv<'_, V> {
    /// Every one of `pixels` outputs, `P` at a time (`pixels >= P`).
    #[inline(always)]
    unsafe fn groups<const VECS: usize, const P: usize>(
        &self,
        pixels: usize,
        origin: impl Fn(usize) -> usize,
        output: &mut [f32],
    ) {
        let mut next = 0;
        while next < pixels {
            let first = next.min(pixels - P);
            let origins: [usize; P] = array::from_fn(|p| origin(first + p));
            self.pixels::<VECS, P>(origins, &mut output[first * self.oc..][..P * self.oc]);
            next = first + P;
        }
    }

    /// `P` pixels whose windows start at input elements `origins`; their
    /// outputs one after the other in `out`.
    #[inline(always)]
    unsafe fn pixels<const VECS: usize, const P: usize>(
        &self,
        origins: [usize; P],
        out: &mut [f32],
    ) {
        let input = self.input.as_ptr();
        for block in 0..self.oc.div_ceil(BLOCK) {
            let mut weights = self.packed.as_ptr().add(block * self.depth * BLOCK);
            let mut acc = [[V::zero(); VECS]; P];
            for &offset in self.offsets {
                let x = origins.map(|origin| input.add(origin + offset));
                for c in 0..self.ic {
                    let w: [V; VECS] = array::from_fn(|v| V::load(weights.add(v * V::LANES)));
                    weights = weights.add(BLOCK);
                    for (sums, x) in acc.iter_mut().zip(&x) {
                        let value = V::broadcast(x.add(c));
                        for (sum, &w) in sums.iter_mut().zip(&w) {
                            *sum = sum.mul_add(value, w);
                        }
                    }
                }
            }
            for (p, sums) in acc.iter().enumerate() {
                self.finish(block, sums, &mut out[p * self.oc..][..self.oc]);
            }
        }
    }

    /// Adds the bias, clamps and stores block `block`'s channels of one pixel.
    #[inline(always)]
    unsafe fn finish(&self, block: usize, sums: &[V], out: &mut [f32]) {
        for (v, &sum) in sums.iter().enumerate() {
            let first = block * BLOCK + v * V::LANES;
            if first >= self.oc {
                break;
            }
            let bias = V::load(self.bias.as_ptr().add(first));
            let lanes = (self.oc - first).min(V::LANES);
            self.clamp
                .finish(sum, bias)
                .store_first(out.as_mut_ptr().add(first), lanes);
        }
    }
}
