//! Compares `kernels::float_math` with this machine's C library over every
//! finite `f32` (Rust's `f32::exp`, `ln`, `tanh` and `exp_m1` call it).
//! Zero differences against glibc 2.36 on x86-64 with FMA (the machine the
//! goldens come from) is what the module claims; run it through
//! `scripts/check-float-math.sh`, about two minutes in release.

use kernels::float_math::{expf, expm1f, logf, tanhf};

/// A name, bench's function and the C library's.
type Pair = (&'static str, fn(f32) -> f32, fn(f32) -> f32);

fn main() {
    let functions: [Pair; 4] = [
        ("expf", expf, f32::exp),
        ("logf", logf, f32::ln),
        ("expm1f", expm1f, f32::exp_m1),
        ("tanhf", tanhf, f32::tanh),
    ];
    let mut differ = 0u64;
    for (name, ours, libc) in functions {
        let (mut count, mut first) = (0u64, None);
        for bits in 0..=u32::MAX {
            let x = f32::from_bits(bits);
            if x.is_nan() {
                continue;
            }
            let x = std::hint::black_box(x);
            let (a, b) = (ours(x), libc(x));
            if a.to_bits() != b.to_bits() && !(a.is_nan() && b.is_nan()) {
                count += 1;
                first.get_or_insert((x, a, b));
            }
        }
        match first {
            None => println!("{name}: equal on every finite f32"),
            Some((x, a, b)) => {
                println!("{name}: {count} differences, first {name}({x:e}) = {a:e}, libc {b:e}")
            }
        }
        differ += count;
    }
    std::process::exit(i32::from(differ > 0));
}
