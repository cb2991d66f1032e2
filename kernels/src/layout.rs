//! Operators that only move elements: PAD and TRANSPOSE, for any element
//! size (int8 and float32 alike; the executor passes the tensor's bytes and
//! its element width). They are exact by construction: every output element
//! is a copy of an input element or the pad value.
//!
//! Shapes are the 4-D NHWC view every tensor has here; a lower-rank TFLite
//! tensor maps into it with its axes in order (the importer's mapping), so
//! a permutation or a padding of any rank up to 4 is one of these.

use crate::error::{ensure, expect_len, KernelError};
use crate::geometry::Shape;

fn dims(s: Shape) -> [usize; 4] {
    [s.n as usize, s.h as usize, s.w as usize, s.c as usize]
}

/// Input and output slices hold their shapes' elements of `elem` bytes
/// (the executor's error names the operator).
fn check_lens(
    (input, output): (Shape, Shape),
    elem: usize,
    in_len: usize,
    out_len: usize,
) -> Result<(), KernelError> {
    expect_len(
        "input",
        in_len,
        input.elements().unwrap_or(usize::MAX) * elem,
    )?;
    expect_len(
        "output",
        out_len,
        output.elements().unwrap_or(usize::MAX) * elem,
    )
}

/// Where a copy whose every axis steps by a constant (TRANSPOSE, SLICE)
/// reads: output element `[a, b, c, d]` is input element `base + a *
/// step[0] + b * step[1] + c * step[2] + d * step[3]` (steps may be
/// negative; every element read lies inside the input).
#[derive(Clone, Copy)]
struct Affine {
    base: isize,
    step: [isize; 4],
}

/// Fills `out` (extents `o`) in order from `x` as `a` says. Elements of
/// a size known at compile time move as one load and one store; a size
/// known only at run time made a call to memcpy per element (4.4 ns each
/// on the host: a 224 x 224 x 3 transpose took as long as a
/// convolution). One copy per size, shared by the operators, keeps the
/// firmware small.
fn copy_affine(o: [usize; 4], elem: usize, x: &[u8], out: &mut [u8], a: Affine) {
    match elem {
        1 => copy_affine_of::<1>(o, x, out, a),
        2 => copy_affine_of::<2>(o, x, out, a),
        4 => copy_affine_of::<4>(o, x, out, a),
        _ => copy_by_axes(o, elem, x, out, |k, j| {
            (if k == 0 { a.base } else { 0 } + j as isize * a.step[k]) as usize
        }),
    }
}

/// [`copy_affine`] for elements of `N` bytes.
fn copy_affine_of<const N: usize>(o: [usize; 4], x: &[u8], out: &mut [u8], a: Affine) {
    let mut dst = out.chunks_exact_mut(N);
    let s = a.step;
    for i0 in 0..o[0] as isize {
        for i1 in 0..o[1] as isize {
            for i2 in 0..o[2] as isize {
                let row = a.base + i0 * s[0] + i1 * s[1] + i2 * s[2];
                for (i3, dst) in (0..o[3] as isize).zip(&mut dst) {
                    let src = (row + i3 * s[3]) as usize * N;
                    dst.copy_from_slice(&x[src..src + N]);
                }
            }
        }
    }
}

/// Fills `out` (extents `o`) in order: output element `[a, b, c, d]` is the
/// input element at byte offset `(at(0, a) + at(1, b) + at(2, c) + at(3, d)) * elem`,
/// `at(k, j)` giving the input element offset of index `j` on output axis `k`
/// (and the partial sums wrapping where a term is negative).
fn copy_by_axes(
    o: [usize; 4],
    elem: usize,
    x: &[u8],
    out: &mut [u8],
    at: impl Fn(usize, usize) -> usize,
) {
    let mut dst = 0;
    for a in 0..o[0] {
        for b in 0..o[1] {
            for c in 0..o[2] {
                let base = at(0, a).wrapping_add(at(1, b)).wrapping_add(at(2, c));
                for d in 0..o[3] {
                    let src = base.wrapping_add(at(3, d)) * elem;
                    out[dst..dst + elem].copy_from_slice(&x[src..src + elem]);
                    dst += elem;
                }
            }
        }
    }
}

/// The output shape of padding `input` by `before` and `after` elements per axis.
pub fn padded(input: Shape, before: [u32; 4], after: [u32; 4]) -> Option<Shape> {
    let d = [input.n, input.h, input.w, input.c];
    let mut out = [0u32; 4];
    for k in 0..4 {
        out[k] = d[k].checked_add(before[k])?.checked_add(after[k])?;
    }
    Some(Shape::new(out[0], out[1], out[2], out[3]))
}

/// Checks PAD's arguments: `output` is `input` grown by `before` on each
/// axis (the rest after), the value is one element, the slices fit.
pub fn check_pad(
    input: Shape,
    output: Shape,
    before: [u32; 4],
    elem: usize,
    value: &[u8],
    in_len: usize,
    out_len: usize,
) -> Result<(), KernelError> {
    let (i, o) = (dims(input), dims(output));
    ensure(
        (0..4).all(|k| o[k] >= i[k] && (o[k] - i[k]) >= before[k] as usize),
        "pad: the output must hold the input and its leading padding on every axis",
    )?;
    ensure(value.len() == elem, "pad: the value must be one element")?;
    check_lens((input, output), elem, in_len, out_len)
}

/// PAD / PADV2: `output` is `value` everywhere but the box at `before`,
/// which holds `input`. `elem` is the element width in bytes.
pub fn pad(
    input: Shape,
    output: Shape,
    before: [u32; 4],
    elem: usize,
    value: &[u8],
    x: &[u8],
    out: &mut [u8],
) -> Result<(), KernelError> {
    check_pad(input, output, before, elem, value, x.len(), out.len())?;
    for chunk in out.chunks_exact_mut(elem) {
        chunk.copy_from_slice(value);
    }
    copy_box(input, output, before, elem, x, out);
    Ok(())
}

/// Checks INSERT's arguments: `input` fits inside `output` at `before`.
pub fn check_insert(
    input: Shape,
    output: Shape,
    before: [u32; 4],
    elem: usize,
    in_len: usize,
    out_len: usize,
) -> Result<(), KernelError> {
    check_pad(
        input,
        output,
        before,
        elem,
        &[0; 4][..elem.min(4)],
        in_len,
        out_len,
    )
}

/// Copies `input` into the box of `output` at `before`, leaving the rest of
/// `output` as it is: one part of a CONCATENATION or PACK, whose other
/// parts other operators write.
pub fn insert(
    input: Shape,
    output: Shape,
    before: [u32; 4],
    elem: usize,
    x: &[u8],
    out: &mut [u8],
) -> Result<(), KernelError> {
    check_insert(input, output, before, elem, x.len(), out.len())?;
    copy_box(input, output, before, elem, x, out);
    Ok(())
}

/// Copies `x` (shape `input`) into `out` (shape `output`) at `before`.
fn copy_box(input: Shape, output: Shape, before: [u32; 4], elem: usize, x: &[u8], out: &mut [u8]) {
    let (i, o) = (dims(input), dims(output));
    let b = before.map(|v| v as usize);
    // Whole rows of channels are contiguous on both sides.
    let row = i[3] * elem;
    for n in 0..i[0] {
        for h in 0..i[1] {
            for w in 0..i[2] {
                let src = ((n * i[1] + h) * i[2] + w) * row;
                let dst = ((((n + b[0]) * o[1] + h + b[1]) * o[2] + w + b[2]) * o[3] + b[3]) * elem;
                out[dst..dst + row].copy_from_slice(&x[src..src + row]);
            }
        }
    }
}

/// The output shape of permuting `input`'s axes: output axis `k` is input axis `perm[k]`.
pub fn permuted(input: Shape, perm: [u8; 4]) -> Shape {
    let d = [input.n, input.h, input.w, input.c];
    let p = perm.map(|k| d[(k & 3) as usize]);
    Shape::new(p[0], p[1], p[2], p[3])
}

/// Checks TRANSPOSE's arguments: `perm` is a permutation of 0..4 and `output` its shape.
pub fn check_transpose(
    input: Shape,
    output: Shape,
    perm: [u8; 4],
    elem: usize,
    in_len: usize,
    out_len: usize,
) -> Result<(), KernelError> {
    let mut seen = [false; 4];
    for &k in &perm {
        ensure(
            k < 4 && !seen[k as usize],
            "transpose: perm must be a permutation of 0..4",
        )?;
        seen[k as usize] = true;
    }
    ensure(
        permuted(input, perm) == output,
        "transpose: the output shape must be the input's, permuted",
    )?;
    expect_len(
        "transpose input",
        in_len,
        input.elements().unwrap_or(usize::MAX) * elem,
    )?;
    expect_len("transpose output", out_len, in_len)
}

/// TRANSPOSE: output element `[a, b, c, d]` is the input element whose
/// index along axis `perm[k]` is the output's index along axis `k`.
pub fn transpose(
    input: Shape,
    output: Shape,
    perm: [u8; 4],
    elem: usize,
    x: &[u8],
    out: &mut [u8],
) -> Result<(), KernelError> {
    check_transpose(input, output, perm, elem, x.len(), out.len())?;
    let i = dims(input);
    let strides = [i[1] * i[2] * i[3], i[2] * i[3], i[3], 1];
    // The input stride of each output axis.
    let s = perm.map(|k| strides[k as usize]);
    let step = s.map(|s| s as isize);
    copy_affine(dims(output), elem, x, out, Affine { base: 0, step });
    Ok(())
}

/// Checks SLICE's arguments: every element the output reads, from `begin`
/// stepping by `stride` on each axis, lies inside the input.
pub fn check_slice(
    input: Shape,
    output: Shape,
    begin: [u32; 4],
    stride: [i32; 4],
    elem: usize,
    in_len: usize,
    out_len: usize,
) -> Result<(), KernelError> {
    let (i, o) = (dims(input), dims(output));
    let inside = (0..4).all(|k| {
        let last = i64::from(begin[k]) + (o[k] as i64 - 1) * i64::from(stride[k]);
        (begin[k] as usize) < i[k] && (0..i[k] as i64).contains(&last) && stride[k] != 0
    });
    ensure(inside, "slice: the output reads outside the input")?;
    check_lens((input, output), elem, in_len, out_len)
}

/// SLICE and STRIDED_SLICE: output element `o` on each axis is input
/// element `begin + o * stride` (strides may be negative).
pub fn slice(
    input: Shape,
    output: Shape,
    begin: [u32; 4],
    stride: [i32; 4],
    elem: usize,
    x: &[u8],
    out: &mut [u8],
) -> Result<(), KernelError> {
    check_slice(input, output, begin, stride, elem, x.len(), out.len())?;
    let i = dims(input);
    let strides = [i[1] * i[2] * i[3], i[2] * i[3], i[3], 1];
    let base = (0..4)
        .map(|k| begin[k] as isize * strides[k] as isize)
        .sum();
    let step = core::array::from_fn(|k| stride[k] as isize * strides[k] as isize);
    copy_affine(dims(output), elem, x, out, Affine { base, step });
    Ok(())
}

/// Checks REMAP's arguments: on each axis with a table, the table has the
/// output's extent and indexes inside the input; on the others the extents agree.
pub fn check_remap(
    input: Shape,
    output: Shape,
    maps: [Option<&[u32]>; 4],
    elem: usize,
    in_len: usize,
    out_len: usize,
) -> Result<(), KernelError> {
    let (i, o) = (dims(input), dims(output));
    let ok = (0..4).all(|k| match maps[k] {
        Some(m) => m.len() == o[k] && m.iter().all(|&v| (v as usize) < i[k]),
        None => i[k] == o[k],
    });
    ensure(ok, "remap: a table does not fit the input and output")?;
    check_lens((input, output), elem, in_len, out_len)
}

/// GATHER along an axis and RESIZE_NEAREST_NEIGHBOR: output element
/// `[a, b, c, d]` is input element `[m0(a), m1(b), m2(c), m3(d)]`, each `mk`
/// the axis's table or the identity.
pub fn remap(
    input: Shape,
    output: Shape,
    maps: [Option<&[u32]>; 4],
    elem: usize,
    x: &[u8],
    out: &mut [u8],
) -> Result<(), KernelError> {
    check_remap(input, output, maps, elem, x.len(), out.len())?;
    let i = dims(input);
    let strides = [i[1] * i[2] * i[3], i[2] * i[3], i[3], 1];
    copy_by_axes(dims(output), elem, x, out, |k, j| {
        maps[k].map_or(j, |m| m[j] as usize) * strides[k]
    });
    Ok(())
}

/// GATHER of rows of a constant `table` (`[outer, extent, inner]`,
/// `inner` bytes per row) by indices read at run time into `out`
/// (`[outer, indices, inner]`). An index outside `0..extent` is an error,
/// as TFLite's GATHER returns one.
pub fn gather(
    table: &[u8],
    (outer, extent, inner): (usize, usize, usize),
    indices: &[i32],
    out: &mut [u8],
) -> Result<(), KernelError> {
    expect_len("gather table", table.len(), outer * extent * inner)?;
    expect_len("output", out.len(), outer * indices.len() * inner)?;
    let rows = out.chunks_exact_mut(inner.max(1));
    let picks = (0..outer).flat_map(|o| indices.iter().map(move |&i| (o, i)));
    for (row, (o, i)) in rows.zip(picks) {
        let i = usize::try_from(i)
            .ok()
            .filter(|&i| i < extent)
            .ok_or(KernelError::Param {
                what: "gather: an index is outside its axis",
            })?;
        row.copy_from_slice(&table[(o * extent + i) * inner..][..inner]);
    }
    Ok(())
}

/// The output shape of reducing `input` over the axes set in `axes` (kept as extent 1).
pub fn reduced(input: Shape, axes: [bool; 4]) -> Shape {
    let d = dims(input);
    let r = |k: usize| if axes[k] { 1 } else { d[k] as u32 };
    Shape::new(r(0), r(1), r(2), r(3))
}

/// A reduction over `axes`: for each output element in order, folds the
/// input elements that reduce into it, in the order TFLite adds them
/// (increasing input index), from `init` with `add`, and hands the result
/// to `store` with the output index.
pub(crate) fn reduce<A: Copy>(
    input: Shape,
    axes: [bool; 4],
    init: A,
    mut add: impl FnMut(A, usize) -> A,
    mut store: impl FnMut(usize, A),
) {
    let d = dims(input);
    let o = dims(reduced(input, axes));
    let strides = [d[1] * d[2] * d[3], d[2] * d[3], d[3], 1];
    let span = |k: usize, at: usize| if axes[k] { 0..d[k] } else { at..at + 1 };
    let mut dst = 0;
    for on in 0..o[0] {
        for oh in 0..o[1] {
            for ow in 0..o[2] {
                for oc in 0..o[3] {
                    let mut acc = init;
                    for n in span(0, on) {
                        for h in span(1, oh) {
                            for w in span(2, ow) {
                                let row = n * strides[0] + h * strides[1] + w * strides[2];
                                for c in span(3, oc) {
                                    acc = add(acc, row + c);
                                }
                            }
                        }
                    }
                    store(dst, acc);
                    dst += 1;
                }
            }
        }
    }
}

/// The int32 sums (wrapping) of a reduction over `axes` that keeps the
/// channel axis (`axes[3]` false), handed to `store` with each output
/// index: a block of channels at a time over contiguous runs of the
/// input, where [`reduce`] walks each output's elements a row apart.
/// Integer sums do not depend on the order of their terms, so they equal
/// `reduce`'s (a global average pool: 2.7 ns an element the other way).
pub(crate) fn sum_channels<T: Copy + Into<i32>>(
    input: Shape,
    axes: [bool; 4],
    x: &[T],
    mut store: impl FnMut(usize, i32),
) {
    // 256 bytes of stack: boards with 16 KiB of RAM run MEAN too.
    const BLOCK: usize = 64;
    debug_assert!(!axes[3], "sum_channels keeps the channel axis");
    let d = dims(input);
    let o = dims(reduced(input, axes));
    let strides = [d[1] * d[2] * d[3], d[2] * d[3], d[3]];
    let span = |k: usize, at: usize| if axes[k] { 0..d[k] } else { at..at + 1 };
    for on in 0..o[0] {
        for oh in 0..o[1] {
            for ow in 0..o[2] {
                let first_out = ((on * o[1] + oh) * o[2] + ow) * o[3];
                for start in (0..d[3]).step_by(BLOCK) {
                    let len = BLOCK.min(d[3] - start);
                    let mut sums = [0i32; BLOCK];
                    for n in span(0, on) {
                        for h in span(1, oh) {
                            for w in span(2, ow) {
                                let row = n * strides[0] + h * strides[1] + w * strides[2];
                                let run = &x[row + start..][..len];
                                for (sum, &v) in sums.iter_mut().zip(run) {
                                    *sum = sum.wrapping_add(v.into());
                                }
                            }
                        }
                    }
                    for (i, &sum) in sums[..len].iter().enumerate() {
                        store(first_out + start + i, sum);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_copies_the_rows_its_indices_name_and_refuses_others() {
        // A [2, 3, 2]-byte table gathered along its middle axis by [2, 0, 2].
        let table: [u8; 12] = [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15];
        let mut out = [0u8; 12];
        gather(&table, (2, 3, 2), &[2, 0, 2], &mut out).unwrap();
        assert_eq!(out, [4, 5, 0, 1, 4, 5, 14, 15, 10, 11, 14, 15]);
        assert!(gather(&table, (2, 3, 2), &[3, 0, 2], &mut out).is_err());
        assert!(gather(&table, (2, 3, 2), &[-1, 0, 2], &mut out).is_err());
        assert!(gather(&table, (2, 3, 2), &[0, 0], &mut out).is_err());
    }

    #[test]
    fn channel_sums_equal_the_reduction_in_tflites_order() {
        // Shapes past a block of 64 channels, every subset of n, h and w
        // reduced, values at the ends of int8 (so the sums wrap nowhere
        // but differ by any missed or repeated term).
        let mut seed = 0x9e37_79b9_u32;
        let mut next = move |m: u32| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed % m
        };
        for _ in 0..200 {
            let input = Shape::new(1 + next(2), 1 + next(5), 1 + next(5), 1 + next(200));
            let axes = [next(2) == 1, next(2) == 1, next(2) == 1, false];
            let x: std::vec::Vec<i8> = (0..input.elements().unwrap())
                .map(|_| [-128, 127, 1][next(3) as usize])
                .collect();
            let outputs = reduced(input, axes).elements().unwrap();
            let (mut want, mut got) = (std::vec![0i32; outputs], std::vec![0i32; outputs]);
            reduce(
                input,
                axes,
                0i32,
                |s, i| s.wrapping_add(x[i].into()),
                |o, s| want[o] = s,
            );
            sum_channels(input, axes, &x, |o, s| got[o] = s);
            assert_eq!(got, want, "{input:?} over {axes:?}");
        }
    }

    #[test]
    fn pad_puts_the_input_in_its_box_and_the_value_around_it() {
        let x: [u8; 4] = [1, 2, 3, 4]; // [1, 2, 2, 1]
        let (input, before, after) = (Shape::new(1, 2, 2, 1), [0, 1, 0, 0], [0, 0, 1, 1]);
        let output = padded(input, before, after).unwrap();
        assert_eq!(output, Shape::new(1, 3, 3, 2));
        let mut out = [0u8; 18];
        pad(input, output, before, 1, &[9], &x, &mut out).unwrap();
        assert_eq!(out, [9, 9, 9, 9, 9, 9, 1, 9, 2, 9, 9, 9, 3, 9, 4, 9, 9, 9]);
    }

    #[test]
    fn transpose_nchw_to_nhwc_and_back_is_the_identity() {
        let nchw = Shape::new(1, 3, 2, 4);
        let x: [u8; 24] = core::array::from_fn(|i| i as u8);
        let nhwc = permuted(nchw, [0, 2, 3, 1]);
        assert_eq!(nhwc, Shape::new(1, 2, 4, 3));
        let mut y = [0u8; 24];
        transpose(nchw, nhwc, [0, 2, 3, 1], 1, &x, &mut y).unwrap();
        // NHWC [0, h, w, c] = NCHW [0, c, h, w] = c * 8 + h * 4 + w.
        assert_eq!(y[..6], [0, 8, 16, 1, 9, 17]);
        let mut back = [0u8; 24];
        transpose(nhwc, nchw, [0, 3, 1, 2], 1, &y, &mut back).unwrap();
        assert_eq!(back, x);
        assert!(transpose(nchw, nhwc, [0, 2, 2, 1], 1, &x, &mut y).is_err());
    }

    #[test]
    fn a_reduction_folds_each_output_s_inputs_in_input_order() {
        // [1, 2, 3, 1] over H: outputs [x0 + x3, x1 + x4, x2 + x5].
        let mut sums = [(0usize, 0usize); 3];
        reduce(
            Shape::new(1, 2, 3, 1),
            [false, true, false, false],
            (0, 0),
            |(count, last), i| {
                assert!(count == 0 || i > last);
                (count + 1, i)
            },
            |o, acc| sums[o] = acc,
        );
        assert_eq!(sums, [(2, 3), (2, 4), (2, 5)]);
    }
}
