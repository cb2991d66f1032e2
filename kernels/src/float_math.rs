//! `expf`, `logf` and `tanhf` computed as LiteRT's float reference kernels
//! get them on Linux, so float LOGISTIC, TANH, SOFTMAX and LOG_SOFTMAX
//! equal LiteRT bit for bit on every target.
//!
//! TFLite's reference kernels call `std::exp`, `std::log` and `std::tanh`,
//! so a float result depends on the C library under them. The reference
//! here is glibc 2.36 on x86-64 with FMA (Debian 12, where the goldens are
//! made): `expf` and `logf` are Arm's optimized-routines algorithms
//! (glibc's `e_expf.c` and `e_logf.c`; tables and polynomials computed in
//! double precision) in the variant glibc selects on FMA hardware, which
//! fuses every `a * b + c`; `tanhf` is fdlibm's, through fdlibm's
//! `expm1f`, in single precision. Double-precision arithmetic and `fma`
//! are IEEE operations, exact in software too, so a Cortex-M0 gets the
//! same bits as the host. Each function was compared with the machine's
//! glibc over every finite `f32`: no difference (`scripts/check-float-math.sh`
//! repeats that check). The `libm` crate's own `expf`, `expm1f` and
//! `tanhf` are FreeBSD's and musl's, which differ in the last bit.

/// `x * y + z` rounded once, as glibc's FMA build computes `x * y + z`.
#[inline(always)]
fn fused(x: f64, y: f64, z: f64) -> f64 {
    libm::fma(x, y, z)
}

/// `2^(i/32)` with `i << 47` subtracted from its bits (glibc's
/// `__exp2f_data.tab`): adding `k << 47` gives `2^(k/32)`.
const EXP2_TABLE: [u64; 32] = [
    0x3ff0000000000000,
    0x3fefd9b0d3158574,
    0x3fefb5586cf9890f,
    0x3fef9301d0125b51,
    0x3fef72b83c7d517b,
    0x3fef54873168b9aa,
    0x3fef387a6e756238,
    0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715,
    0x3feef1a7373aa9cb,
    0x3feedea64c123422,
    0x3feece086061892d,
    0x3feebfdad5362a27,
    0x3feeb42b569d4f82,
    0x3feeab07dd485429,
    0x3feea47eb03a5585,
    0x3feea09e667f3bcd,
    0x3fee9f75e8ec5f74,
    0x3feea11473eb0187,
    0x3feea589994cce13,
    0x3feeace5422aa0db,
    0x3feeb737b0cdc5e5,
    0x3feec49182a3f090,
    0x3feed503b23e255d,
    0x3feee89f995ad3ad,
    0x3feeff76f2fb5e47,
    0x3fef199bdd85529c,
    0x3fef3720dcef9069,
    0x3fef5818dcfba487,
    0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da,
    0x3fefd0765b6e4540,
];

/// `e^x`, as glibc's `expf`.
pub fn expf(x: f32) -> f32 {
    const TABLE_BITS: u32 = 5;
    const N: f64 = (1 << TABLE_BITS) as f64;
    let top12 = |v: f32| v.to_bits() >> 20;
    let abstop = top12(x) & 0x7ff;
    if abstop >= top12(88.0) {
        // |x| >= 88, or NaN.
        if x == f32::NEG_INFINITY {
            return 0.0;
        }
        if abstop >= top12(f32::INFINITY) {
            return x + x;
        }
        if x > f32::from_bits(0x42b1_7217) {
            return f32::INFINITY;
        }
        if x < f32::from_bits(0xc2cf_f1b4) {
            return 0.0;
        }
    }
    let inv_ln2_n = f64::from_bits(0x3ff7_1547_652b_82fe) * N;
    let shift = f64::from_bits(0x4338_0000_0000_0000);
    let poly = [
        f64::from_bits(0x3fac_6af8_4b91_2394) / (N * N * N),
        f64::from_bits(0x3fce_bfce_50fa_c4f3) / (N * N),
        f64::from_bits(0x3fe6_2e42_ff0c_52d6) / N,
    ];
    let xd = f64::from(x);
    // x * N / ln2 = k + r, k an integer, |r| <= 1/2; k in the low bits of kd.
    let kd = fused(inv_ln2_n, xd, shift);
    let ki = kd.to_bits();
    let kd = kd - shift;
    let r = fused(inv_ln2_n, xd, -kd);
    // e^x = 2^(k/N) * 2^(r/N) ~= s * (C0 r^3 + C1 r^2 + C2 r + 1).
    let t = EXP2_TABLE[(ki % 32) as usize].wrapping_add(ki << (52 - TABLE_BITS));
    let s = f64::from_bits(t);
    let z = fused(poly[0], r, poly[1]);
    let r2 = r * r;
    let y = fused(poly[2], r, 1.0);
    let y = fused(z, r2, y);
    (y * s) as f32
}

/// `1/c` and `ln(c)` for the centres `c` of 16 subintervals of
/// `[0x3f330000, 2 * 0x3f330000]` (glibc's `__logf_data.tab`).
const LOG_TABLE: [(u64, u64); 16] = [
    (0x3ff661ec79f8f3be, 0xbfd57bf7808caade),
    (0x3ff571ed4aaf883d, 0xbfd2bef0a7c06ddb),
    (0x3ff49539f0f010b0, 0xbfd01eae7f513a67),
    (0x3ff3c995b0b80385, 0xbfcb31d8a68224e9),
    (0x3ff30d190c8864a5, 0xbfc6574f0ac07758),
    (0x3ff25e227b0b8ea0, 0xbfc1aa2bc79c8100),
    (0x3ff1bb4a4a1a343f, 0xbfba4e76ce8c0e5e),
    (0x3ff12358f08ae5ba, 0xbfb1973c5a611ccc),
    (0x3ff0953f419900a7, 0xbfa252f438e10c1e),
    (0x3ff0000000000000, 0x0000000000000000),
    (0x3fee608cfd9a47ac, 0x3faaa5aa5df25984),
    (0x3feca4b31f026aa0, 0x3fbc5e53aa362eb4),
    (0x3feb2036576afce6, 0x3fc526e57720db08),
    (0x3fe9c2d163a1aa2d, 0x3fcbc2860d224770),
    (0x3fe886e6037841ed, 0x3fd1058bc8a07ee1),
    (0x3fe767dcf5534862, 0x3fd4043057b6ee09),
];

/// `ln(x)`, as glibc's `logf`.
pub fn logf(x: f32) -> f32 {
    const OFF: u32 = 0x3f33_0000;
    let mut ix = x.to_bits();
    if ix == 0x3f80_0000 {
        return 0.0;
    }
    if ix.wrapping_sub(0x0080_0000) >= 0x7f80_0000 - 0x0080_0000 {
        // Zero, subnormal, negative, infinite or NaN.
        if ix << 1 == 0 {
            return f32::NEG_INFINITY;
        }
        if ix == 0x7f80_0000 {
            return x;
        }
        if ix & 0x8000_0000 != 0 || ix << 1 >= 0xff00_0000 {
            return f32::NAN;
        }
        // Subnormal: normalize.
        ix = (x * f32::from_bits(0x4b00_0000))
            .to_bits()
            .wrapping_sub(23 << 23);
    }
    let ln2 = f64::from_bits(0x3fe6_2e42_fefa_39ef);
    let poly = [
        f64::from_bits(0xbfd0_0ea3_48b8_8334),
        f64::from_bits(0x3fd5_575b_0be0_0b6a),
        f64::from_bits(0xbfdf_fffe_f20a_4123),
    ];
    // x = 2^k z, z in [OFF, 2 OFF] and exact; c near the centre of z's subinterval.
    let tmp = ix.wrapping_sub(OFF);
    let (invc, logc) = LOG_TABLE[((tmp >> 19) % 16) as usize];
    let (invc, logc) = (f64::from_bits(invc), f64::from_bits(logc));
    let k = (tmp as i32) >> 23;
    let z = f64::from(f32::from_bits(ix.wrapping_sub(tmp & (0x1ff << 23))));
    // ln(x) = log1p(z/c - 1) + ln(c) + k ln2.
    let r = fused(z, invc, -1.0);
    let y0 = fused(f64::from(k), ln2, logc);
    let r2 = r * r;
    let y = fused(poly[1], r, poly[2]);
    let y = fused(poly[0], r2, y);
    fused(y, r2, y0 + r) as f32
}

/// `e^x - 1`, as glibc's (fdlibm's) `expm1f`.
pub fn expm1f(x: f32) -> f32 {
    const LN2_HI: f32 = f32::from_bits(0x3f31_7180);
    const LN2_LO: f32 = f32::from_bits(0x3717_f7d1);
    const INV_LN2: f32 = f32::from_bits(0x3fb8_aa3b);
    const Q: [f32; 5] = [
        f32::from_bits(0xbd08_8889),
        f32::from_bits(0x3ad0_0d01),
        f32::from_bits(0xb8a6_70cd),
        f32::from_bits(0x3686_7e54),
        f32::from_bits(0xb457_edbb),
    ];
    let negative = x.is_sign_negative();
    let hx = x.to_bits() & 0x7fff_ffff;
    if hx >= 0x4195_b844 {
        // |x| >= 27 ln2.
        if hx >= 0x42b1_7218 {
            if hx > 0x7f80_0000 {
                return x + x;
            }
            if hx == 0x7f80_0000 {
                return if negative { -1.0 } else { x };
            }
            if x > f32::from_bits(0x42b1_7180) {
                return f32::INFINITY;
            }
        }
        if negative {
            return 1e-30 - 1.0;
        }
    }
    // Reduce: x = k ln2 + (hi - lo), c the rounding error of hi - lo.
    let (k, x, c) = if hx > 0x3eb1_7218 {
        let (k, hi, lo) = if hx < 0x3f85_1592 {
            if negative {
                (-1, x + LN2_HI, -LN2_LO)
            } else {
                (1, x - LN2_HI, LN2_LO)
            }
        } else {
            let k = (INV_LN2 * x + if negative { -0.5 } else { 0.5 }) as i32;
            let t = k as f32;
            (k, x - t * LN2_HI, t * LN2_LO)
        };
        let reduced = hi - lo;
        (k, reduced, (hi - reduced) - lo)
    } else if hx < 0x3300_0000 {
        return x;
    } else {
        (0, x, 0.0)
    };
    let hfx = 0.5 * x;
    let hxs = x * hfx;
    let r1 = 1.0 + hxs * (Q[0] + hxs * (Q[1] + hxs * (Q[2] + hxs * (Q[3] + hxs * Q[4]))));
    let t = 3.0 - r1 * hfx;
    let e = hxs * ((r1 - t) / (6.0 - x * t));
    if k == 0 {
        return x - (x * e - hxs);
    }
    let e = (x * (e - c) - c) - hxs;
    if k == -1 {
        return 0.5 * (x - e) - 0.5;
    }
    if k == 1 {
        return if x < -0.25 {
            -2.0 * (e - (x + 0.5))
        } else {
            1.0 + 2.0 * (x - e)
        };
    }
    // Add k to the exponent of y.
    let times_2k = |y: f32| f32::from_bits((y.to_bits() as i32).wrapping_add(k << 23) as u32);
    if k <= -2 || k > 56 {
        return times_2k(1.0 - (e - x)) - 1.0;
    }
    if k < 23 {
        let one_minus_2_neg_k = f32::from_bits(0x3f80_0000 - (0x0100_0000 >> k));
        times_2k(one_minus_2_neg_k - (e - x))
    } else {
        let two_neg_k = f32::from_bits(((0x7f - k) << 23) as u32);
        times_2k(x - (e + two_neg_k) + 1.0)
    }
}

/// `tanh(x)`, as glibc's (fdlibm's) `tanhf`.
pub fn tanhf(x: f32) -> f32 {
    let ix = x.to_bits() & 0x7fff_ffff;
    if ix >= 0x7f80_0000 {
        return if x.is_sign_negative() {
            1.0 / x - 1.0
        } else {
            1.0 / x + 1.0
        };
    }
    let z = if ix < 0x41b0_0000 {
        // |x| < 22.
        if ix == 0 {
            return x;
        }
        if ix < 0x2400_0000 {
            return x * (1.0 + x);
        }
        let a = f32::from_bits(ix);
        if ix >= 0x3f80_0000 {
            1.0 - 2.0 / (expm1f(2.0 * a) + 2.0)
        } else {
            let t = expm1f(-2.0 * a);
            -t / (t + 2.0)
        }
    } else {
        1.0 - 1e-30
    };
    if x.is_sign_negative() {
        -z
    } else {
        z
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bits glibc 2.36 gave on x86-64 with FMA (Rust's `f32::exp`, `ln`,
    /// `tanh` and `exp_m1` call it, when the input is not a constant LLVM
    /// folds: its folding computes in double and rounds once), for inputs in every branch: overflow,
    /// underflow to subnormal and zero, subnormal logf input, tanh's
    /// tiny, |x| < 1, |x| >= 1 and saturated ranges, expm1's k = 0, +-1,
    /// < 23, >= 23 and > 56 reductions.
    #[test]
    fn agrees_with_glibc_on_branch_samples() {
        type Case = (fn(f32) -> f32, u32, u32);
        let cases: &[Case] = &[
            (expf, 0x00000000, 0x3f800000),
            (expf, 0x80000000, 0x3f800000),
            (expf, 0x3f800000, 0x402df854),
            (expf, 0xbf800000, 0x3ebc5ab2),
            (expf, 0x3f000000, 0x3fd3094c),
            (expf, 0x3162c637, 0x3f800000),
            (expf, 0xc0300000, 0x3d82ec9c),
            (expf, 0x41266666, 0x47005b9d),
            (expf, 0x42afcccd, 0x7ee0dcae),
            (expf, 0x42b1999a, 0x7f800000),
            (expf, 0xc2af0000, 0x006cb2bc),
            (expf, 0xc2cf0000, 0x00000001),
            (expf, 0xc2d10000, 0x00000000),
            (expf, 0xc1100000, 0x39016791),
            (expf, 0x4184cccd, 0x4b771043),
            (logf, 0x3f800000, 0x00000000),
            (logf, 0x40000000, 0x3f317218),
            (logf, 0x3f000000, 0xbf317218),
            (logf, 0x3dcccccd, 0xc0135d8e),
            (logf, 0x40490fd0, 0x3f92867c),
            (logf, 0x7149f2ca, 0x428a27b5),
            (logf, 0x000116c2, 0xc2b834f2),
            (logf, 0x3bd4fdf4, 0xc0a12687),
            (logf, 0x3f3ae148, 0xbea121c3),
            (logf, 0x3fa66666, 0x3e86549b),
            (logf, 0x47f1205a, 0x413b940e),
            (logf, 0x00800000, 0xc2aeac50),
            (tanhf, 0x1e3ce508, 0x1e3ce508),
            (tanhf, 0x3e99999a, 0x3e9526ed),
            (tanhf, 0xbe99999a, 0xbe9526ed),
            (tanhf, 0x3f7d70a4, 0x3f41e27e),
            (tanhf, 0x3f800000, 0x3f42f7d6),
            (tanhf, 0xbfd9999a, 0xbf6f76f8),
            (tanhf, 0x40a00000, 0x3f7ffa0d),
            (tanhf, 0x4114cccd, 0x3f800000),
            (tanhf, 0x41af3333, 0x3f800000),
            (tanhf, 0x41c80000, 0x3f800000),
            (tanhf, 0xbc4985f0, 0xbc498356),
            (expm1f, 0x3089705f, 0x3089705f),
            (expm1f, 0x3dcccccd, 0x3dd763da),
            (expm1f, 0x3ecccccd, 0x3efbd072),
            (expm1f, 0x3f19999a, 0x3f527662),
            (expm1f, 0x3f800000, 0x3fdbf0a8),
            (expm1f, 0xbf19999a, 0xbee7022a),
            (expm1f, 0x40400000, 0x4198af2e),
            (expm1f, 0x41a00000, 0x4de75844),
            (expm1f, 0x42200000, 0x5c51106a),
            (expm1f, 0x42700000, 0x6abcede5),
            (expm1f, 0xbe4ccccd, 0xbe399ea5),
            (expm1f, 0xbfc00000, 0xbf46e0f1),
            (expm1f, 0xc1a00000, 0xbf800000),
            (expm1f, 0xc2480000, 0xbf800000),
            (expm1f, 0x42c80000, 0x7f800000),
        ];
        for &(f, x, want) in cases {
            assert_eq!(f(f32::from_bits(x)).to_bits(), want, "{x:#x}");
        }
    }
}
