//! TFLite Micro built by bench from the peers' snapshot (`BENCH_PEERS_DIR`)
//! and driven through the MLPerf Tiny DUT protocol under QEMU. Building TFLM
//! takes about three minutes a kernel set on two cores, so these tests are
//! ignored by default and run by `scripts/peers-check.sh`.

use harness::build::tflm::{self, Kernels};
use harness::device::dut::Dut;
use harness::device::link::{Link, QemuLink};
use harness::device::runner::qemu_command;
use harness::input::target;
use std::path::Path;
use std::time::Duration;

/// The MLPerf Tiny KWS input of the snapshot's README: x0 = 0x12345678,
/// x = 1664525 x + 1013904223, byte = x >> 24.
fn lcg_input(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect()
}

/// bench's own host output for `input` (int8 `[1, 49, 10, 1]`).
fn bench_host_output(model: &Path, input: &[u8]) -> Vec<u8> {
    use npyz::WriterBuilder;
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    let mut file = std::fs::File::create(&x).unwrap();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[1, 49, 10, 1])
        .writer(&mut file)
        .begin_nd()
        .unwrap();
    w.extend(input.iter().map(|&b| b as i8)).unwrap();
    w.finish().unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "infer",
            model.to_str().unwrap(),
            "--input",
            x.to_str().unwrap(),
        ])
        .args(["--output", y.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out: Vec<i8> = npyz::NpyFile::new(std::fs::File::open(&y).unwrap())
        .unwrap()
        .into_vec()
        .unwrap();
    out.into_iter().map(|v| v as u8).collect()
}

/// Builds TFLM with `kernels` for `target`, runs KWS through the DUT
/// protocol and checks the arena, the instructions per inference (the
/// snapshot README's counts, within 1%) and the output bytes (bench's).
fn kws_on(target: &str, kernels: Kernels, arena: u64, instructions: f64) {
    assert!(
        std::env::var_os(tflm::PEERS_ENV).is_some(),
        "{} names no peers' snapshot",
        tflm::PEERS_ENV
    );
    let root = harness::workspace_root();
    let target = target::load(&target::targets_dir(), target).unwrap();
    let model = root.join("models/mlperf-tiny/kws_ref_model.tflite");
    let elf = tflm::build(&target, kernels, &model).unwrap();
    let qemu = target.run.qemu.as_ref().unwrap();
    let link = QemuLink::spawn(qemu_command(qemu, &elf), Duration::from_secs(30)).unwrap();
    let mut dut = Dut::new(link, Duration::from_secs(120));
    let start = dut.start().unwrap();
    let used: u64 = start
        .iter()
        .find_map(|l| l.strip_prefix("m-arena-used-bytes-"))
        .expect("the firmware reports its arena")
        .parse()
        .unwrap();
    assert_eq!(used, arena, "{start:?}");
    assert_eq!(dut.model().unwrap(), "kws_ref_model");
    let input = lcg_input(490);
    dut.load(&input).unwrap();
    let window = dut.infer(10, 1).unwrap();
    // -icount shift=N: one instruction is 2^N ns of the device's clock.
    let ns = f64::from(1u32 << qemu.icount_shift);
    let per_inference = window.micros as f64 * 1000.0 / ns / 10.0;
    eprintln!(
        "{} on {}: {per_inference:.0} instructions per inference, arena {used}",
        kernels.runtime(),
        target.target.name
    );
    assert!(
        (per_inference / instructions - 1.0).abs() < 0.01,
        "{per_inference} instructions, expected {instructions} within 1%"
    );
    let bytes = window
        .result_bytes
        .expect("bench's DUT sends its output bytes");
    assert_eq!(bytes, [bench_host_output(&model, &input)]);
    dut.link().stop();
}

#[test]
#[ignore = "needs BENCH_PEERS_DIR and minutes to build TFLM: scripts/peers-check.sh"]
fn tflm_with_cmsis_nn_runs_kws_on_qemu_m4_as_measured_independently() {
    kws_on("qemu-m4", Kernels::CmsisNn, 22_820, 7_697_000.0);
}

#[test]
#[ignore = "needs BENCH_PEERS_DIR and minutes to build TFLM: scripts/peers-check.sh"]
fn tflm_reference_kernels_run_kws_on_qemu_m4_as_measured_independently() {
    kws_on("qemu-m4", Kernels::Reference, 22_772, 43_041_000.0);
}

#[test]
#[ignore = "needs BENCH_PEERS_DIR and minutes to build TFLM: scripts/peers-check.sh"]
fn tflm_with_cmsis_nn_runs_kws_on_qemu_m55_with_helium_as_measured_independently() {
    kws_on("qemu-m55", Kernels::CmsisNn, 27_348, 1_812_000.0);
}
