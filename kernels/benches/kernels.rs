//! Host throughput of the kernels: int8 dense and conv in MAC/s and binary
//! dense in binary-op/s at every instruction-set level this machine has
//! (portable, then AVX2 and AVX-512 on x86-64), binary conv, and int4 and
//! sparse (50% and 90%) in dense-equivalent MAC/s so they compare directly
//! with dense int8; float32 convolutions in MAC/s at every level; and the machine's population-count peak in bits/s, the
//! ceiling binary dense is measured against.
//! `cargo bench -p bench-kernels`; the measured table is in the crate README.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kernels::binary::{self, BinaryOutput, BinaryPadding};
use kernels::geometry::{ConvGeometry, Padding, Shape};
use kernels::int8::{self, DenseGeometry};
use kernels::quant::quantize_multiplier;
use kernels::{int4, sparse};

mod common;
use common::{bytes, prune, prune_blocks, signs, stage};

const DENSE: DenseGeometry = DenseGeometry {
    batch: 1,
    in_features: 1024,
    out_features: 256,
};

fn conv_geometry() -> ConvGeometry {
    ConvGeometry::new(
        Shape::new(1, 16, 16, 32),
        32,
        (3, 3),
        (1, 1),
        (1, 1),
        Padding::Same,
    )
}

/// Nominal MACs of a conv (every tap, padded ones included, as MLPerf Tiny counts them).
fn conv_macs(g: &ConvGeometry) -> u64 {
    g.output.pixels().unwrap() as u64 * g.depth() as u64 * g.output.c as u64
}

fn dense_int8(c: &mut Criterion) {
    let (k, n) = (DENSE.in_features as usize, DENSE.out_features as usize);
    let requant = vec![quantize_multiplier(0.0007); n];
    let (x, w) = (bytes(k, 1), bytes(k * n, 2));
    let mut out = vec![0i8; n];
    let mut group = c.benchmark_group("dense 1024x256");
    group.throughput(Throughput::Elements((k * n) as u64));
    for level in levels() {
        select(level);
        group.bench_function(BenchmarkId::new("int8", level), |b| {
            b.iter(|| {
                int8::fully_connected(&DENSE, &stage(&requant), black_box(&x), &w, None, &mut out)
                    .unwrap()
            })
        });
    }
    select("portable");

    let w4: Vec<i8> = w.iter().map(|v| v >> 4).collect();
    let mut packed = vec![0u8; n * int4::row_bytes(k)];
    int4::pack(&w4, k, &mut packed).unwrap();
    group.bench_function("int4", |b| {
        b.iter(|| {
            int4::fully_connected(
                &DENSE,
                &stage(&requant),
                black_box(&x),
                &packed,
                None,
                &mut out,
            )
            .unwrap()
        })
    });

    for density in [50, 10] {
        let (rp, entries) = sparse::Csr::dense_layer(&prune(&w, density), k).unwrap();
        let csr = sparse::Csr {
            row_ptr: &rp,
            entries: &entries,
        };
        let id = BenchmarkId::new("sparse", format!("{}% sparse", 100 - density));
        group.bench_function(id, |b| {
            b.iter(|| {
                sparse::fully_connected(
                    &DENSE,
                    &stage(&requant),
                    black_box(&x),
                    &csr,
                    None,
                    &mut out,
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

fn conv_int8(c: &mut Criterion) {
    conv_group(c, "conv 16x16x32 3x3 to 32", conv_geometry());
    // DS-CNN's pointwise layers (KWS): 25x5 pixels, 64 to 64 channels.
    let pointwise = ConvGeometry::new(
        Shape::new(1, 25, 5, 64),
        64,
        (1, 1),
        (1, 1),
        (1, 1),
        Padding::Valid,
    );
    conv_group(c, "pointwise 25x5x64 to 64", pointwise);
    // A first layer over RGB (BinaryNet's, the MLPerf Tiny IC ResNet's).
    let rgb = ConvGeometry::new(
        Shape::new(1, 32, 32, 3),
        32,
        (3, 3),
        (1, 1),
        (1, 1),
        Padding::Same,
    );
    conv_group(c, "conv 32x32x3 3x3 to 32", rgb);
}

/// DS-CNN's depthwise layers (KWS): 3x3 over 25x5 pixels of 64 channels.
fn depthwise_int8(c: &mut Criterion) {
    let g = ConvGeometry::new(
        Shape::new(1, 25, 5, 64),
        64,
        (3, 3),
        (1, 1),
        (1, 1),
        Padding::Same,
    );
    let oc = g.output.c as usize;
    let requant = vec![quantize_multiplier(0.0007); oc];
    let (x, w) = (bytes(g.input.elements().unwrap(), 5), bytes(9 * oc, 6));
    let mut out = vec![0i8; g.output.elements().unwrap()];
    let mut group = c.benchmark_group("depthwise 25x5x64 3x3");
    group.throughput(Throughput::Elements(
        g.output.elements().unwrap() as u64 * 9,
    ));
    for level in levels() {
        select(level);
        group.bench_function(BenchmarkId::new("int8", level), |b| {
            b.iter(|| {
                let x = black_box(&x);
                int8::depthwise_conv2d(&g, 1, &stage(&requant), x, &w, None, &mut out).unwrap()
            })
        });
    }
    select("portable");
    group.finish();
}

/// One convolution in int8, int4, sparse at 50% and 80% zeros and, if
/// its field is whole blocks, 1x4 block-sparse at 50% and 80%, each at every
/// instruction-set level the CPU has.
fn conv_group(c: &mut Criterion, name: &str, g: ConvGeometry) {
    let oc = g.output.c as usize;
    let requant = vec![quantize_multiplier(0.0007); oc];
    let (x, w) = (
        bytes(g.input.elements().unwrap(), 3),
        bytes(oc * g.depth(), 4),
    );
    let mut out = vec![0i8; g.output.elements().unwrap()];
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(conv_macs(&g)));
    let w4: Vec<i8> = w.iter().map(|v| v >> 4).collect();
    let mut packed = vec![0u8; oc * int4::row_bytes(g.depth())];
    int4::pack(&w4, g.depth(), &mut packed).unwrap();
    let sparse: Vec<_> = [50, 20]
        .into_iter()
        .map(|density| (density, sparse::Csr::conv(&prune(&w, density), &g).unwrap()))
        .collect();
    let blocks: Vec<_> = [50, 20]
        .into_iter()
        .filter(|_| g.depth().is_multiple_of(4))
        .map(|density| {
            let packed = sparse::blocks::Blocks::pack(&prune_blocks(&w, density), g.depth());
            (density, packed.unwrap())
        })
        .collect();
    for level in levels() {
        select(level);
        group.bench_function(BenchmarkId::new("int8", level), |b| {
            b.iter(|| {
                int8::conv2d(&g, &stage(&requant), black_box(&x), &w, None, &mut out).unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("int4", level), |b| {
            b.iter(|| {
                int4::conv2d(&g, &stage(&requant), black_box(&x), &packed, None, &mut out).unwrap()
            })
        });
        for (density, (rp, entries)) in &sparse {
            let csr = sparse::Csr {
                row_ptr: rp,
                entries,
            };
            let id = BenchmarkId::new(format!("sparse {}%", 100 - density), level);
            group.bench_function(id, |b| {
                b.iter(|| {
                    sparse::conv2d(&g, &stage(&requant), black_box(&x), &csr, None, &mut out)
                        .unwrap()
                })
            });
        }
        for (density, (rp, entries)) in &blocks {
            let w = sparse::blocks::Blocks {
                row_ptr: rp,
                entries,
            };
            let id = BenchmarkId::new(format!("blocks {}%", 100 - density), level);
            group.bench_function(id, |b| {
                b.iter(|| {
                    let x = black_box(&x);
                    sparse::blocks::conv2d(&g, &stage(&requant), x, &w, None, &mut out).unwrap()
                })
            });
        }
    }
    select("portable");
    group.finish();
}

/// The instruction-set levels this machine runs the kernels at: the
/// portable kernels, then each x86 level the CPU has (selected for the
/// whole process while its benchmarks run).
fn levels() -> Vec<&'static str> {
    #[cfg(target_arch = "x86_64")]
    return kernels::x86::Isa::ALL
        .into_iter()
        .filter(|isa| isa.is_available())
        .map(|isa| isa.name())
        .collect();
    #[cfg(not(target_arch = "x86_64"))]
    return vec!["portable"];
}

/// Selects the level named `name` (see [`levels`]).
fn select(name: &str) {
    #[cfg(target_arch = "x86_64")]
    if let Some(isa) = kernels::x86::Isa::ALL
        .into_iter()
        .find(|isa| isa.name() == name)
    {
        kernels::x86::select(isa);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = name;
}

/// float32 convolutions at every level (`float::conv2d` dispatches on the
/// selected one), in MAC/s: ResNet-8's (MLPerf Tiny IC) 3x3 layers at its
/// three widths, and DS-CNN's depthwise layer.
fn float_layers(c: &mut Criterion) {
    let same = Padding::Same;
    let shapes = [
        (
            "conv 32x32x16 3x3 to 16",
            Shape::new(1, 32, 32, 16),
            16,
            false,
        ),
        (
            "conv 16x16x32 3x3 to 32",
            Shape::new(1, 16, 16, 32),
            32,
            false,
        ),
        ("conv 8x8x64 3x3 to 64", Shape::new(1, 8, 8, 64), 64, false),
        ("depthwise 25x5x64 3x3", Shape::new(1, 25, 5, 64), 64, true),
    ];
    let mut group = c.benchmark_group("float32 layers");
    for (name, input, oc, depthwise) in shapes {
        let g = ConvGeometry::new(input, oc, (3, 3), (1, 1), (1, 1), same);
        let floats = |n: usize, seed| -> Vec<f32> {
            bytes(n, seed)
                .iter()
                .map(|&v| f32::from(v) / 64.0)
                .collect()
        };
        let x = floats(g.input.elements().unwrap(), 1);
        let per_filter = if depthwise { 9 } else { g.depth() };
        let w = floats(oc as usize * per_filter, 2);
        let bias = floats(oc as usize, 3);
        let mut out = vec![0f32; g.output.elements().unwrap()];
        group.throughput(Throughput::Elements(
            conv_macs(&g) / if depthwise { u64::from(oc) } else { 1 },
        ));
        for level in levels() {
            select(level);
            group.bench_function(BenchmarkId::new(name, level), |b| {
                b.iter(|| {
                    let act = (0.0, f32::INFINITY);
                    if depthwise {
                        kernels::float::depthwise_conv2d(&g, 1, &x, &w, Some(&bias), act, &mut out)
                    } else {
                        kernels::float::conv2d(&g, &x, &w, Some(&bias), act, &mut out)
                    }
                    .unwrap();
                    black_box(&out);
                })
            });
        }
    }
    select("portable");
    group.finish();
}

fn binary_layers(c: &mut Criterion) {
    let g = DenseGeometry {
        batch: 1,
        in_features: 4096,
        out_features: 512,
    };
    let (k, n) = (g.in_features as usize, g.out_features as usize);
    let (x, w) = (signs(k, k, 5), signs(k * n, k, 6));
    let mut dots = vec![0i32; n];
    let mut group = c.benchmark_group("binary");
    group.throughput(Throughput::Elements((k * n) as u64));
    for level in levels() {
        select(level);
        let id = BenchmarkId::new("dense 4096x512", level);
        group.bench_function(id, |b| {
            b.iter(|| {
                binary::fully_connected(&g, black_box(&x), &w, BinaryOutput::Dots(&mut dots))
                    .unwrap()
            })
        });
    }
    select("portable");

    // BinaryNet's 3x3 layers, and DS-CNN's pointwise ones (64-bit fields).
    let shapes = [
        ("conv 32x32x32 3x3 to 32", Shape::new(1, 32, 32, 32), 32, 3),
        (
            "conv 16x16x128 3x3 to 128",
            Shape::new(1, 16, 16, 128),
            128,
            3,
        ),
        ("pointwise 25x5x64 to 64", Shape::new(1, 25, 5, 64), 64, 1),
    ];
    for (name, input, oc, k) in shapes {
        let cg = ConvGeometry::new(input, oc, (k, k), (1, 1), (1, 1), Padding::Same);
        binary_conv(&mut group, name, cg);
    }
    group.finish();
}

/// One binary convolution writing packed bits, at every level.
fn binary_conv(
    group: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>,
    name: &str,
    cg: ConvGeometry,
) {
    let (ic, oc) = (cg.input.c as usize, cg.output.c as usize);
    let (x, w) = (
        signs(cg.input.elements().unwrap(), ic, 7),
        signs(oc * cg.depth(), ic, 8),
    );
    let thresholds = vec![0i32; oc];
    let mut bits = vec![0u32; cg.output.pixels().unwrap() * binary::words(oc)];
    group.throughput(Throughput::Elements(
        cg.output.pixels().unwrap() as u64 * cg.depth() as u64 * oc as u64,
    ));
    for level in levels() {
        select(level);
        group.bench_function(BenchmarkId::new(format!("{name}, bits out"), level), |b| {
            b.iter(|| {
                binary::conv2d(
                    &cg,
                    BinaryPadding::One,
                    black_box(&x),
                    &w,
                    BinaryOutput::Bits {
                        thresholds: &thresholds,
                        out: &mut bits,
                    },
                )
                .unwrap()
            })
        });
        // Int8 out, as before an int8 layer (DS-CNN's depthwise ones).
        let (multiplier, bias) = (vec![0.37f32; oc], vec![-3.5f32; oc]);
        let mut out = vec![0i8; cg.output.pixels().unwrap() * oc];
        group.bench_function(BenchmarkId::new(format!("{name}, int8 out"), level), |b| {
            b.iter(|| {
                let output = BinaryOutput::Int8 {
                    multiplier: &multiplier,
                    bias: &bias,
                    zero_point: -4,
                    clamp: int8::Clamp::FULL,
                    out: &mut out,
                };
                binary::conv2d(&cg, BinaryPadding::One, black_box(&x), &w, output).unwrap()
            })
        });
    }
    select("portable");
}

/// The machine's population-count peak, the ceiling of any binary
/// kernel: the count of a buffer that stays in the L1 cache (16 KiB), one
/// load, one count and one add per word or vector, eight accumulators.
/// Throughput in bits counted.
#[cfg(target_arch = "x86_64")]
fn popcount_peak(c: &mut Criterion) {
    use std::arch::x86_64::*;

    #[target_feature(enable = "popcnt")]
    unsafe fn popcnt64(data: &[u64]) -> u64 {
        let mut acc = [0u64; 8];
        for chunk in data.chunks_exact(8) {
            for (a, &v) in acc.iter_mut().zip(chunk) {
                *a += _popcnt64(v as i64) as u64;
            }
        }
        acc.iter().sum()
    }

    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    unsafe fn vpopcntq(data: &[u64]) -> u64 {
        let mut acc = [_mm512_setzero_si512(); 8];
        for chunk in data.chunks_exact(64) {
            for (i, a) in acc.iter_mut().enumerate() {
                let v = _mm512_loadu_si512(chunk.as_ptr().add(8 * i).cast());
                *a = _mm512_add_epi64(*a, _mm512_popcnt_epi64(v));
            }
        }
        acc.iter().map(|&a| _mm512_reduce_add_epi64(a) as u64).sum()
    }

    let data: Vec<u64> = bytes(16384, 9)
        .chunks_exact(8)
        .map(|b| b.iter().fold(0u64, |w, &v| w << 8 | v as u8 as u64))
        .collect();
    let mut group = c.benchmark_group("popcount peak");
    group.throughput(Throughput::Elements(data.len() as u64 * 64));
    if kernels::x86::Isa::Avx2.is_available() {
        // SAFETY: the CPU has POPCNT (part of the AVX2 level).
        group.bench_function("popcnt r64, 16 KiB in L1", |b| {
            b.iter(|| unsafe { popcnt64(black_box(&data)) })
        });
    }
    if kernels::x86::Isa::Avx512.is_available() {
        // SAFETY: the CPU has AVX-512 VPOPCNTDQ.
        group.bench_function("vpopcntq zmm, 16 KiB in L1", |b| {
            b.iter(|| unsafe { vpopcntq(black_box(&data)) })
        });
    }
    group.finish();
}

#[cfg(not(target_arch = "x86_64"))]
fn popcount_peak(_: &mut Criterion) {}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = dense_int8, conv_int8, depthwise_int8, float_layers, binary_layers, popcount_peak
}
criterion_main!(benches);
