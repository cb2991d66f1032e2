//! Each low-precision convolution against int8 of the same shape on this
//! host, timed in turn (int8, then every variant, round after round) so
//! that a slow spell of a shared machine falls on all of them alike:
//! criterion times one kernel after the other, and on a virtual machine
//! its figures drift more between kernels than the kernels differ. The
//! shapes are the MLPerf Tiny models' layers (DS-CNN's first and pointwise
//! layers, ResNet-8's 3x3 ones and strided shortcuts); variants are unstructured sparsity (CSR,
//! half and four fifths of the weights zeroed) and 1x4 blocks (a quarter,
//! half and four fifths), at the best instruction-set level this machine
//! has; and, where the input channels are whole words, binary (int8 out
//! and packed bits out).
//!
//! The int8 baseline runs its filter packed once, and the sparse and
//! block variants are prepared, as in a prepared model: a layer the dense
//! kernel runs faster (`prefers_dense`) then runs dense, as in a model.
//!
//! `cargo bench -p bench-kernels --bench ratios [-- ROUNDS] [WORD...]`
//! (only the shapes whose names hold a WORD): per shape,
//! each variant's median time and its ratio to int8's (fastest rounds'
//! ratio, then medians').

use kernels::binary::{self, BinaryOutput, BinaryPadding};
use kernels::geometry::{ConvGeometry, Padding, Shape};
use kernels::int8;
use kernels::quant::quantize_multiplier;
use kernels::sparse::{self, blocks::Blocks, Csr};
use std::hint::black_box;
use std::time::Instant;

mod common;
use common::{bytes, prune, prune_blocks, signs, stage};

/// Calls per timing, and rounds when not given.
const CALLS: usize = 5;
const ROUNDS: usize = 300;

/// One variant: its name and one call of its kernel.
type Kernel = (String, Box<dyn FnMut(&mut [i8])>);

fn shapes() -> Vec<(&'static str, ConvGeometry)> {
    let conv = |name, (h, w, c), oc, k: (u32, u32), s, padding| {
        let g = ConvGeometry::new(Shape::new(1, h, w, c), oc, k, (s, s), (1, 1), padding);
        (name, g)
    };
    vec![
        conv(
            "DS-CNN conv1 49x10x1 10x4/2 to 64",
            (49, 10, 1),
            64,
            (10, 4),
            2,
            Padding::Same,
        ),
        conv(
            "DS-CNN pointwise 25x5x64 to 64",
            (25, 5, 64),
            64,
            (1, 1),
            1,
            Padding::Valid,
        ),
        conv(
            "ResNet-8 conv1 32x32x3 3x3 to 16",
            (32, 32, 3),
            16,
            (3, 3),
            1,
            Padding::Same,
        ),
        conv(
            "ResNet-8 32x32x16 3x3 to 16",
            (32, 32, 16),
            16,
            (3, 3),
            1,
            Padding::Same,
        ),
        conv(
            "ResNet-8 16x16x32 3x3 to 32",
            (16, 16, 32),
            32,
            (3, 3),
            1,
            Padding::Same,
        ),
        conv(
            "ResNet-8 8x8x64 3x3 to 64",
            (8, 8, 64),
            64,
            (3, 3),
            1,
            Padding::Same,
        ),
        conv(
            "ResNet-8 shortcut 32x32x16 1x1/2 to 32",
            (32, 32, 16),
            32,
            (1, 1),
            2,
            Padding::Same,
        ),
        conv(
            "ResNet-8 shortcut 16x16x32 1x1/2 to 64",
            (16, 16, 32),
            64,
            (1, 1),
            2,
            Padding::Same,
        ),
    ]
}

/// int8, then CSR at half and a fifth kept and (fields of whole blocks)
/// 1x4 blocks at three quarters, half and a fifth kept.
fn kernels(g: ConvGeometry) -> Vec<Kernel> {
    let oc = g.output.c as usize;
    let requant = vec![quantize_multiplier(0.0007); oc];
    let x = bytes(g.input.elements().unwrap(), 3);
    let w = bytes(oc * g.depth(), 4);
    let mut all: Vec<Kernel> = Vec::new();
    // The int8 baseline's filter packed once, as a prepared model's is.
    let ws: &'static [i8] = w.clone().leak();
    #[cfg(target_arch = "x86_64")]
    kernels::int8::x86::prepare_filter(&g, ws);
    let (rq, xs) = (requant.clone(), x.clone());
    all.push((
        "int8".into(),
        Box::new(move |out| int8::conv2d(&g, &stage(&rq), black_box(&xs), ws, None, out).unwrap()),
    ));
    for density in [50, 20] {
        let (row_ptr, entries) = Csr::conv(&prune(&w, density), &g).unwrap();
        let csr = Csr {
            row_ptr: row_ptr.leak(),
            entries: entries.leak(),
        };
        // Prepared as a model's: its pairs made once, or written out
        // dense and packed where the dense kernel is the faster.
        #[cfg(target_arch = "x86_64")]
        kernels::int8::x86::prepare_sparse_filter(&g, &csr);
        let (rq, xs) = (requant.clone(), x.clone());
        all.push((
            format!("csr {}%", 100 - density),
            Box::new(move |out| {
                sparse::conv2d(&g, &stage(&rq), black_box(&xs), &csr, None, out).unwrap()
            }),
        ));
    }
    for density in [75, 50, 20]
        .into_iter()
        .filter(|_| g.depth().is_multiple_of(4))
    {
        let (row_ptr, entries) = Blocks::pack(&prune_blocks(&w, density), g.depth()).unwrap();
        let blocks = Blocks {
            row_ptr: row_ptr.leak(),
            entries: entries.leak(),
        };
        // Prepared as a model's: checked once, or written out dense and
        // packed where the dense kernel is the faster.
        #[cfg(target_arch = "x86_64")]
        if sparse::blocks::prefers_dense(&g, &blocks) {
            let dense = sparse::blocks::prepared::densify(&g, &blocks).unwrap();
            kernels::int8::x86::prepare_filter(&g, dense);
        } else {
            sparse::blocks::prepared::check_once(&g, &blocks);
        }
        let (rq, xs) = (requant.clone(), x.clone());
        all.push((
            format!("blocks {}%", 100 - density),
            Box::new(move |out| {
                sparse::blocks::conv2d(&g, &stage(&rq), black_box(&xs), &blocks, None, out).unwrap()
            }),
        ));
    }
    if g.input.c.is_multiple_of(32) {
        all.extend(binary_kernels(g));
    }
    all
}

/// Binary convolutions of the same shape (whole words of channels): int8
/// out, as before an int8 layer (DS-CNN's depthwise ones), and packed bits
/// out, as between binary layers.
fn binary_kernels(g: ConvGeometry) -> Vec<Kernel> {
    let (ic, oc) = (g.input.c as usize, g.output.c as usize);
    let x = signs(g.input.elements().unwrap(), ic, 7);
    let w = signs(oc * g.depth(), ic, 8);
    let (multiplier, bias) = (vec![0.37f32; oc], vec![-3.5f32; oc]);
    let thresholds = vec![0i32; oc];
    let mut bits = vec![0u32; g.output.pixels().unwrap() * binary::words(oc)];
    let (xs, ws) = (x.clone(), w.clone());
    vec![
        (
            "binary int8".into(),
            Box::new(move |out: &mut [i8]| {
                let output = BinaryOutput::Int8 {
                    multiplier: &multiplier,
                    bias: &bias,
                    zero_point: -4,
                    clamp: int8::Clamp::FULL,
                    out,
                };
                binary::conv2d(&g, BinaryPadding::One, black_box(&x), &w, output).unwrap()
            }),
        ),
        (
            "binary bits".into(),
            Box::new(move |_: &mut [i8]| {
                let output = BinaryOutput::Bits {
                    thresholds: &thresholds,
                    out: &mut bits,
                };
                binary::conv2d(&g, BinaryPadding::One, black_box(&xs), &ws, output).unwrap()
            }),
        ),
    ]
}

/// The fastest and the median of `times`.
fn fastest_and_median(times: &mut [f64]) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    (times[0], times[times.len() / 2])
}

fn main() {
    // `cargo bench` passes `--bench`; a number is the rounds, other words
    // pick the shapes whose names hold them.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rounds = args.iter().find_map(|a| a.parse().ok()).unwrap_or(ROUNDS);
    let words: Vec<&String> = args
        .iter()
        .filter(|a| a.parse::<usize>().is_err())
        .collect();
    #[cfg(target_arch = "x86_64")]
    {
        use kernels::x86::{select, Isa};
        let best = Isa::ALL.into_iter().rfind(|isa| isa.is_available());
        select(best.unwrap_or(Isa::Portable));
        println!("level: {}", kernels::x86::selected().name());
    }
    let picked = |name: &str| words.is_empty() || words.iter().any(|w| name.contains(w.as_str()));
    for (name, g) in shapes().into_iter().filter(|(name, _)| picked(name)) {
        let mut all = kernels(g);
        let mut out = vec![0i8; g.output.elements().unwrap()];
        let mut times = vec![Vec::with_capacity(rounds); all.len()];
        for _ in 0..rounds {
            for ((_, kernel), times) in all.iter_mut().zip(&mut times) {
                let start = Instant::now();
                for _ in 0..CALLS {
                    kernel(&mut out);
                }
                times.push(start.elapsed().as_secs_f64() * 1e6 / CALLS as f64);
            }
        }
        let stats: Vec<_> = times.iter_mut().map(|t| fastest_and_median(t)).collect();
        println!("{name}");
        for ((variant, _), (fastest, median)) in all.iter().zip(&stats) {
            let (base_fastest, base_median) = stats[0];
            println!(
                "  {variant:<11} {median:9.1} us  {:.2} (fastest) {:.2} (median)",
                fastest / base_fastest,
                median / base_median
            );
        }
    }
}
