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

/// bench's own host output for `input` (the int8 input of the `.tflite`).
fn bench_host_output(model: &Path, input: &[u8]) -> Vec<u8> {
    use npyz::WriterBuilder;
    let graph = harness::model::tflite::load(model).unwrap();
    let shape = graph.tensors[graph.input].shape;
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    let mut file = std::fs::File::create(&x).unwrap();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[1, shape.h.into(), shape.w.into(), shape.c.into()])
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
    let model = "models/mlperf-tiny/kws_ref_model.tflite";
    tflm_runs(target, kernels, model, arena, instructions);
}

/// Builds TFLM with `kernels` for `target` with `model` (relative to the
/// workspace), runs it on the LCG input through the DUT protocol and checks
/// the arena, the instructions per inference (within 1%) and the output
/// bytes (bench's).
fn tflm_runs(target: &str, kernels: Kernels, model: &str, arena: u64, instructions: f64) {
    assert!(
        std::env::var_os(tflm::PEERS_ENV).is_some(),
        "{} names no peers' snapshot",
        tflm::PEERS_ENV
    );
    let root = harness::workspace_root();
    let target = target::load(&target::targets_dir(), target).unwrap();
    let model = root.join(model);
    let elf = tflm::build(&target, kernels, &model).unwrap();
    let qemu = target.run.qemu.as_ref().unwrap();
    let link = QemuLink::spawn(qemu_command(qemu, &elf, None), Duration::from_secs(30)).unwrap();
    let mut dut = Dut::new(link, Duration::from_secs(120));
    let start = dut.start().unwrap();
    let used: u64 = start
        .iter()
        .find_map(|l| l.strip_prefix("m-arena-used-bytes-"))
        .expect("the firmware reports its arena")
        .parse()
        .unwrap();
    assert_eq!(used, arena, "{start:?}");
    let name = model.file_stem().unwrap().to_string_lossy().into_owned();
    assert_eq!(dut.model().unwrap(), name);
    let bytes = std::fs::read(&model).unwrap();
    let input = lcg_input(harness::model::tflite::input_bytes(&bytes).unwrap());
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
    // The painted stack: TFLM's interpreter and kernels use a few KiB.
    let stack = window.stack_bytes.expect("the firmware reports its stack");
    eprintln!("stack peak {stack} bytes");
    assert!((512..16 * 1024).contains(&stack), "{stack} bytes of stack");
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

#[test]
#[ignore = "needs BENCH_PEERS_DIR and minutes to build TFLM: scripts/peers-check.sh"]
fn tflm_reference_kernels_run_the_magic_wand_on_the_16_kib_rv32_board() {
    // The count is this snapshot's with Debian's riscv64-unknown-elf-gcc
    // 12.2 and picolibc 1.8 (no independent RV32 count exists).
    let model = "models/public/arduino_magic_wand.tflite";
    tflm_runs("qemu-rv32", Kernels::Reference, model, 9_180, 8_047_000.0);
}

/// Runs `bench run` on `suite` (written to a temporary directory) and
/// returns the rows, keyed by job id.
fn run_suite(suite: &str) -> std::collections::BTreeMap<String, harness::results::store::Row> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("suite.toml");
    std::fs::write(&file, suite).unwrap();
    let out = dir.path().join("r");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "run",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let run = std::fs::read_dir(out.join("s"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    harness::results::store::read_rows(&run)
        .unwrap()
        .into_iter()
        .map(|r| (r.job.clone().unwrap(), r))
        .collect()
}

#[test]
#[ignore = "needs BENCH_PEERS_DIR and minutes to build TFLM: scripts/peers-check.sh"]
fn a_dut_runtime_on_the_tflm_firmware_gives_the_figures_of_the_tflm_runtime() {
    let root = harness::workspace_root();
    let target = target::load(&target::targets_dir(), "qemu-m4").unwrap();
    let model = root.join("models/mlperf-tiny/kws_ref_model.tflite");
    // The firmware the built-in runtime builds, named as a user's own ELF.
    let elf = tflm::build(&target, Kernels::CmsisNn, &model).unwrap();
    let rows = run_suite(&format!(
        "[suite]\nname = \"s\"\ntargets = [\"qemu-m4\"]\nruntimes = [\"tflm-cmsis-nn\", \"vendor\"]\nwarmup = 1\nrepetitions = 3\n\n[[model]]\nname = \"kws\"\nsource = {{ tflite = \"{}\" }}\n\n[[variant]]\nname = \"as-imported\"\n\n[[dut]]\nname = \"vendor\"\nelf = {{ kws = \"{}\" }}\n",
        model.display(),
        elf.display()
    ));
    let (built, named) = (
        &rows["kws/as-imported/qemu-m4/tflm-cmsis-nn"],
        &rows["kws/as-imported/qemu-m4/vendor"],
    );
    assert_eq!(named.runtime.as_deref(), Some("vendor"));
    for row in [built, named] {
        assert_eq!(row.status.as_deref(), Some("ok"), "{:?}", row.error);
        assert_eq!(row.output_matches_reference, Some(true));
    }
    // The timestamps are whole microseconds of the emulated clock (7.8
    // instructions at -icount shift=7), and where an inference starts within
    // a microsecond depends on how long the firmware polled its UART: two
    // runs of one firmware agree to one microsecond step.
    let step: f64 = 1000.0 / 128.0;
    for (a, b) in [
        (named.latency_median, built.latency_median),
        (named.latency_min, built.latency_min),
    ] {
        assert!(
            (a.unwrap() - b.unwrap()).abs() <= step.ceil(),
            "{a:?} vs {b:?}"
        );
    }
    assert!((built.latency_median.unwrap() / 7_697_205.0 - 1.0).abs() < 0.01);
    assert_eq!(named.arena_bytes, Some(22_820));
    assert_eq!(named.arena_bytes, built.arena_bytes);
    assert_eq!(named.flash_bytes, built.flash_bytes);
    assert_eq!(named.code_bytes, built.code_bytes);
    assert_eq!(named.output_crc32, built.output_crc32);
}

#[test]
#[ignore = "needs a Python with ai-edge-litert (BENCH_LITERT=1 scripts/setup.sh): scripts/peers-check.sh"]
fn litert_runs_on_the_host_through_the_dut_protocol_and_its_reference_kernels_match_bench() {
    let root = harness::workspace_root();
    let rows = run_suite(&format!(
        "[suite]\nname = \"s\"\nruntimes = [\"bench\", \"litert\", \"litert-ref\"]\nwarmup = 2\nrepetitions = 5\n\n[[model]]\nname = \"kws\"\nsource = {{ tflite = \"{}\" }}\n\n[[variant]]\nname = \"as-imported\"\n",
        root.join("models/mlperf-tiny/kws_ref_model.tflite").display()
    ));
    let reference = &rows["kws/as-imported/host/litert-ref"];
    assert_eq!(
        reference.status.as_deref(),
        Some("ok"),
        "{:?}",
        reference.error
    );
    // TFLite's reference kernels: bench's host reference byte for byte.
    assert_eq!(reference.output_matches_reference, Some(true));
    assert_eq!(
        reference.output_crc32,
        rows["kws/as-imported/host"].output_crc32
    );
    let xnnpack = &rows["kws/as-imported/host/litert"];
    assert_eq!(xnnpack.status.as_deref(), Some("ok"), "{:?}", xnnpack.error);
    assert_eq!(xnnpack.latency_n, Some(5));
    assert_eq!(xnnpack.latency_unit.as_deref(), Some("ns"));
    assert!(xnnpack
        .latency_source
        .as_deref()
        .unwrap()
        .contains("XNNPACK"));
}

#[test]
#[ignore = "needs a Python 3.11 with larq-compute-engine (BENCH_LCE=1 scripts/setup.sh): scripts/peers-check.sh"]
fn lce_runs_a_larq_network_on_the_host_beside_bench() {
    let root = harness::workspace_root();
    let rows = run_suite(&format!(
        "[suite]\nname = \"s\"\nruntimes = [\"bench\", \"lce\"]\nwarmup = 1\nrepetitions = 3\n\n[[model]]\nname = \"dscnn\"\nsource = {{ tflite = \"{}\" }}\n\n[[variant]]\nname = \"as-imported\"\n",
        root.join("models/byo/larq_dscnn_kws.tflite").display()
    ));
    let lce = &rows["dscnn/as-imported/host/lce"];
    assert_eq!(lce.status.as_deref(), Some("ok"), "{:?}", lce.error);
    assert_eq!(lce.latency_n, Some(3));
    assert_eq!(lce.latency_unit.as_deref(), Some("ns"));
    assert!(lce
        .latency_source
        .as_deref()
        .unwrap()
        .contains("Larq Compute Engine"));
    // LCE's float kernels sum in their own order: its outputs are compared
    // and may differ in the last bits (the bring-your-own test bounds them
    // against LCE's goldens); bench's own job stays bit-exact.
    assert!(lce.output_matches_reference.is_some());
    assert_eq!(
        rows["dscnn/as-imported/host"].output_matches_reference,
        Some(true)
    );
}
