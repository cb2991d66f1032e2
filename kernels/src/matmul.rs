//! BATCH_MATMUL (TFLite's reference `BatchMatMul`): `out[p, q] = a[p, q] x
//! b[p, q]` over two batch axes that broadcast as NumPy's do, each operand
//! stored as its matrix or (`adj`) its transpose. int8 sums
//! `(a - zp_a)(b - zp_b)` in int32 and requantizes once; float32 sums its
//! products from zero in depth order, as the reference does.
//!
//! Operands and output are viewed as `[b0, b1, rows, cols]` (NHWC `n, h, w,
//! c`): `a` is `[.., M, K]` (`[.., K, M]` when `adj_x`), `b` is `[.., K, N]`
//! (`[.., N, K]` when `adj_y`), the output `[.., M, N]`.

use crate::error::{ensure, expect_len, KernelError};
use crate::geometry::Shape;
use crate::quant::{multiply_by_quantized_multiplier, Requant};
use serde::{Deserialize, Serialize};

/// The integer parameters of an int8 BATCH_MATMUL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatMulInt8 {
    /// `-zero_point` of the first operand.
    pub a_offset: i32,
    /// `-zero_point` of the second operand.
    pub b_offset: i32,
    /// The output's zero point.
    pub output_offset: i32,
    /// `s_a * s_b / s_out`.
    pub requant: Requant,
}

/// Which operands are stored transposed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjoint {
    /// The first operand is stored `[K, M]`.
    pub x: bool,
    /// The second operand is stored `[N, K]`.
    pub y: bool,
}

/// The product's sizes and each operand's element strides.
struct Plan {
    m: usize,
    n: usize,
    k: usize,
    /// `(row, depth)` strides of `a`; `(depth, column)` strides of `b`.
    a_strides: (usize, usize),
    b_strides: (usize, usize),
}

/// Checks the views against each other and the slice lengths.
pub fn check(
    (a, b, o): (Shape, Shape, Shape),
    adj: Adjoint,
    lens: [usize; 3],
) -> Result<(), KernelError> {
    plan(a, b, o, adj)?;
    let n = |s: Shape| s.elements().unwrap_or(usize::MAX);
    expect_len("first operand", lens[0], n(a))?;
    expect_len("second operand", lens[1], n(b))?;
    expect_len("output", lens[2], n(o))
}

fn plan(a: Shape, b: Shape, o: Shape, adj: Adjoint) -> Result<Plan, KernelError> {
    let (m, k) = if adj.x { (a.c, a.w) } else { (a.w, a.c) };
    let (kb, n) = if adj.y { (b.c, b.w) } else { (b.w, b.c) };
    let batch_ok = |x: u32, y: u32, out: u32| (x == out || x == 1) && (y == out || y == 1);
    ensure(
        k == kb && m == o.w && n == o.c && batch_ok(a.n, b.n, o.n) && batch_ok(a.h, b.h, o.h),
        "batch matmul: operand and output views do not match",
    )?;
    let (m, n, k) = (m as usize, n as usize, k as usize);
    Ok(Plan {
        m,
        n,
        k,
        a_strides: if adj.x { (1, m) } else { (k, 1) },
        b_strides: if adj.y { (1, k) } else { (n, 1) },
    })
}

/// Calls `dot(out, (a, a_step), (b, b_step), depth)` for every output
/// element: its index, where its row of `a` and its column of `b` start
/// and how they step, and the dot product's length. Batch axes broadcast.
fn each_dot(
    (a, b, o): (Shape, Shape, Shape),
    adj: Adjoint,
    mut dot: impl FnMut(usize, (usize, usize), (usize, usize), usize),
) -> Result<(), KernelError> {
    let plan = plan(a, b, o, adj)?;
    let ((ar, ak), (bk, bc)) = (plan.a_strides, plan.b_strides);
    let matrix = |s: Shape| (s.w * s.c) as usize;
    for p in 0..o.n {
        for q in 0..o.h {
            let at = |s: Shape| {
                let (p, q) = (if s.n == 1 { 0 } else { p }, if s.h == 1 { 0 } else { q });
                (p * s.h + q) as usize * matrix(s)
            };
            let (o0, a0, b0) = (at(o), at(a), at(b));
            for i in 0..plan.m {
                for j in 0..plan.n {
                    dot(
                        o0 + i * plan.n + j,
                        (a0 + i * ar, ak),
                        (b0 + j * bc, bk),
                        plan.k,
                    );
                }
            }
        }
    }
    Ok(())
}

/// int8 BATCH_MATMUL of `x` (viewed as `a`) and `y` (as `b`) into `out`.
pub fn batch_matmul_i8(
    p: &MatMulInt8,
    views: (Shape, Shape, Shape),
    adj: Adjoint,
    x: &[i8],
    y: &[i8],
    out: &mut [i8],
) -> Result<(), KernelError> {
    check(views, adj, [x.len(), y.len(), out.len()])?;
    ensure(
        p.requant.is_valid(),
        "batch matmul: output shift must be in -31..=31",
    )?;
    let (m, s) = (p.requant.multiplier, p.requant.shift);
    each_dot(views, adj, |o, (a, sa), (b, sb), depth| {
        let total = (0..depth).fold(0i32, |t, d| {
            let va = i32::from(x[a + d * sa]) + p.a_offset;
            let vb = i32::from(y[b + d * sb]) + p.b_offset;
            t.wrapping_add(va * vb)
        });
        let v = multiply_by_quantized_multiplier(total, m, s).wrapping_add(p.output_offset);
        out[o] = v.clamp(-128, 127) as i8;
    })
}

/// float32 BATCH_MATMUL of `x` (viewed as `a`) and `y` (as `b`) into `out`.
pub fn batch_matmul_f32(
    views: (Shape, Shape, Shape),
    adj: Adjoint,
    x: &[f32],
    y: &[f32],
    out: &mut [f32],
) -> Result<(), KernelError> {
    check(views, adj, [x.len(), y.len(), out.len()])?;
    each_dot(views, adj, |o, (a, sa), (b, sb), depth| {
        // From zero, in depth order, as TFLite's reference sums.
        let mut total = 0.0f32;
        for d in 0..depth {
            total += x[a + d * sa] * y[b + d * sb];
        }
        out[o] = total;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_product_of_transposed_and_broadcast_operands_is_the_matrix_product() {
        // a: one [2, 3] matrix stored transposed ([3, 2]); b: two [3, 1].
        let a = [1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0];
        let b = [1.0f32, 0.0, -1.0, 2.0, 2.0, 2.0];
        let mut out = [0.0f32; 4];
        let views = (
            Shape::new(1, 1, 3, 2),
            Shape::new(2, 1, 3, 1),
            Shape::new(2, 1, 2, 1),
        );
        let adj = Adjoint { x: true, y: false };
        batch_matmul_f32(views, adj, &a, &b, &mut out).unwrap();
        // [[1,2,3],[4,5,6]] x [1,0,-1] = [-2, -2]; x [2,2,2] = [12, 30].
        assert_eq!(out, [-2.0, -2.0, 12.0, 30.0]);
    }
}
