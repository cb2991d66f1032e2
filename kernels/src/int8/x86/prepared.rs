//! Filters packed once per model, before its runs (the preparation step
//! of TFLite Micro and XNNPACK), instead of at every call.
//!
//! A convolution looks its filter up by address. That is sound because
//! only filters of a `'static` model are packed: memory that is never
//! freed and never changes cannot hold other weights later.

use super::gemm::{weight_sums, Plan};
use super::simd::{Avx2, Avx512, Simd};
use crate::geometry::ConvGeometry;
use crate::model::Model;
use crate::x86::{selected, Isa};
use core::mem::MaybeUninit;
use std::boxed::Box;
use std::sync::{Arc, RwLock};
use std::vec::Vec;

/// One filter packed for one level and plan.
pub(super) struct Packed {
    /// Address and length of the filter it was packed from.
    filter: (usize, usize),
    /// The filter's shape (kernel height and width, input and output
    /// channels): equal weights of two shapes may share one address (the
    /// blob stores equal constants once) but not one packing.
    shape: [u32; 4],
    isa: Isa,
    plan: Plan,
    /// The weight offset added to every packed weight (legacy uint8 weights).
    weight_offset: i32,
    /// The packed weights, in words so that any weight type is aligned.
    words: Box<[u32]>,
    elements: usize,
    /// Each output channel's weight sum.
    pub sums: Box<[i32]>,
}

impl Packed {
    /// Packs `filter` plus `weight_offset` for convolutions of geometry
    /// `g` at level `S` (named `isa`).
    ///
    /// # Safety
    /// The CPU must have `S`'s features.
    #[inline(always)]
    pub unsafe fn new<S: Simd>(
        g: &ConvGeometry,
        filter: &[i8],
        weight_offset: i32,
        isa: Isa,
    ) -> Packed {
        let plan = Plan::new::<S>(g);
        let elements = plan.packed_len::<S>(g);
        let mut words =
            std::vec![0u32; (elements * size_of::<S::W>()).div_ceil(4)].into_boxed_slice();
        let buffer = core::slice::from_raw_parts_mut(
            words.as_mut_ptr().cast::<MaybeUninit<S::W>>(),
            elements,
        );
        plan.pack_all::<S>(g, filter, weight_offset, buffer);
        let sums = weight_sums(filter, g.depth()).collect();
        Packed {
            filter: (filter.as_ptr() as usize, filter.len()),
            shape: filter_shape(g),
            isa,
            plan,
            weight_offset,
            words,
            elements,
            sums,
        }
    }

    /// The packed weights, as level `S` reads them.
    pub fn weights<S: Simd>(&self) -> &[S::W] {
        // SAFETY: `words` holds `elements` weights of this level's type,
        // written by `new` and aligned (words are at least as aligned).
        #[allow(unsafe_code)]
        unsafe {
            core::slice::from_raw_parts(self.words.as_ptr().cast(), self.elements)
        }
    }
}

/// Every packed filter of every prepared model.
static PACKED: RwLock<Vec<Arc<Packed>>> = RwLock::new(Vec::new());

/// Packs the filters of `model`'s int8 convolutions and dense layers that
/// the selected level's kernels take, so that its runs use them as
/// packed, its int4 filters (unpacked once to int8 first) and the sparse
/// and block-sparse ones its dense kernels run faster (written out dense
/// first); returns
/// how many it packed. Nothing is done at the portable level.
pub fn prepare(model: &Model<'static>) -> usize {
    let isa = selected();
    if isa == Isa::Portable {
        return 0;
    }
    // int4 filters are unpacked once, then packed like the int8 ones.
    let int4 = model.int4_filters().map(|(g, filter)| {
        let unpacked = crate::int4::prepared::unpack(filter, g.output.c as usize, g.depth());
        (g, unpacked)
    });
    // Sparse filters the dense kernels run faster are written out dense
    // once, then packed likewise; the others get their pairs made.
    let dense = model
        .sparse_filters()
        .filter_map(|(g, filter, dense)| Some((g, dense_or_pairs(&g, &filter, dense)?)));
    // Sparse depthwise filters are written out dense for the vector
    // depthwise kernels, which take them as they are (not packed).
    for (g, filter) in model.sparse_depthwise_filters() {
        crate::sparse::depthwise::prepared::densify(&g, &filter);
    }
    // Block filters left sparse are checked once, not at every call.
    for (g, w) in model.block_filters() {
        crate::sparse::blocks::prepared::check_once(&g, &w);
    }
    let dense_blocks = model
        .block_filters()
        .filter(|(g, w)| crate::sparse::blocks::prefers_dense(g, w))
        .filter_map(|(g, w)| Some((g, crate::sparse::blocks::prepared::densify(&g, &w)?)));
    let packed: Vec<Arc<Packed>> = int4
        .chain(dense)
        .chain(dense_blocks)
        .map(|(g, filter)| (g, filter, 0))
        .chain(model.int8_filters())
        .filter_map(|(g, filter, weight_offset)| pack(isa, &g, filter, weight_offset))
        .map(Arc::new)
        .collect();
    let count = packed.len();
    PACKED
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .extend(packed);
    count
}

/// Packs one `'static` int8 filter of a convolution of geometry `g` as
/// [`prepare`] packs a model's, so that a convolution outside a model
/// (a benchmark's int8 baseline) runs as a prepared model's does; whether
/// the selected level's kernels take it.
pub fn prepare_filter(g: &ConvGeometry, filter: &'static [i8]) -> bool {
    let Some(packed) = pack(selected(), g, filter, 0) else {
        return false;
    };
    PACKED
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .push(Arc::new(packed));
    true
}

/// Prepares one `'static` sparse filter of a convolution of geometry `g`
/// as [`prepare`] does a model's, so that a benchmark's sparse kernel runs
/// as a prepared model's does.
pub fn prepare_sparse_filter(g: &ConvGeometry, filter: &crate::sparse::Csr<'static>) {
    if selected() == Isa::Portable {
        return;
    }
    if let Some(dense) = dense_or_pairs(g, filter, false) {
        prepare_filter(g, dense);
    }
}

/// A sparse filter's dense copy, to pack, where it is stored as a dense
/// layer or the selected level's dense kernels run it faster; otherwise
/// `None`, its pairs of non-zeros made once for the sparse kernel.
fn dense_or_pairs(
    g: &ConvGeometry,
    filter: &crate::sparse::Csr<'static>,
    dense: bool,
) -> Option<&'static [i8]> {
    if dense || crate::sparse::prefers_dense(g, filter) {
        return crate::sparse::prepared::densify(g, filter);
    }
    super::sparse::prepare(g, filter);
    None
}

/// `filter` plus `weight_offset` packed for level `isa` (AVX2's where
/// there is an offset: VNNI's bytes cannot hold one), if its kernels take `g`.
fn pack(isa: Isa, g: &ConvGeometry, filter: &[i8], weight_offset: i32) -> Option<Packed> {
    if filter.len() != g.output.c as usize * g.depth() {
        return None;
    }
    let isa = super::level_for(isa, weight_offset);
    // SAFETY: a level is selected only once the CPU is known to have it
    // (and AVX-512 machines have AVX2).
    match isa {
        Isa::Avx512 if super::gemm_fits::<Avx512>(g) => {
            Some(unsafe { super::avx512::pack_unchecked(g, filter, weight_offset) })
        }
        Isa::Avx2 if super::gemm_fits::<Avx2>(g) => {
            Some(unsafe { super::avx2::pack_unchecked(g, filter, weight_offset) })
        }
        _ => None,
    }
}

/// The packing of `filter` plus `weight_offset` for `isa` and `plan`, if a
/// prepared model holds it.
pub(super) fn find(
    g: &ConvGeometry,
    filter: &[i8],
    weight_offset: i32,
    isa: Isa,
    plan: Plan,
) -> Option<Arc<Packed>> {
    let key = (filter.as_ptr() as usize, filter.len());
    let shape = filter_shape(g);
    let packed = PACKED.read().unwrap_or_else(|e| e.into_inner());
    packed
        .iter()
        .find(|p| {
            p.filter == key
                && p.shape == shape
                && p.weight_offset == weight_offset
                && p.isa == isa
                && p.plan == plan
        })
        .cloned()
}

fn filter_shape(g: &ConvGeometry) -> [u32; 4] {
    let w = &g.window;
    [w.kernel_h, w.kernel_w, g.input.c, g.output.c]
}

/// The two levels' weight types are what [`Packed::weights`] casts to.
const _: () =
    assert!(align_of::<<Avx2 as Simd>::W>() <= 4 && align_of::<<Avx512 as Simd>::W>() <= 4);
