//! Whole jobs on an emulated board, through the real cross-build, QEMU and
//! its serial PTY: the device's output must equal the host reference byte
//! for byte, and instruction counts must repeat exactly.

mod common;

use harness::device::runner::{self, JobInput};
use harness::input::target;
use harness::model::prepare::{self, Calibration, Recipe, Scheme};
use harness::model::zoo;
use harness::telemetry::icount;
use std::time::Duration;

fn int8_recipe() -> Recipe {
    Recipe {
        scheme: Scheme::Int8 { per_channel: true },
        overrides: Vec::new(),
        pruning: None,
        exits: None,
        weight_seed: 1,
        calibration: Calibration::Synthetic(4, 1),
        input_seed: 7,
        memory: Default::default(),
    }
}

/// A target, a model prepared for it, the model's blob and the firmware with it built in.
type Firmware = (
    target::Target,
    prepare::Prepared,
    std::path::PathBuf,
    std::path::PathBuf,
);

/// A zoo model in int8, its blob in `dir`, and qemu-m4 firmware with it built in.
fn qemu_m4_firmware(model: &str, dir: &std::path::Path) -> Firmware {
    firmware("qemu-m4", model, dir)
}

/// A zoo model in int8, its blob in `dir`, and the target's firmware with it built in.
fn firmware(target: &str, model: &str, dir: &std::path::Path) -> Firmware {
    firmware_of(target, &zoo::build(model).unwrap(), dir)
}

/// A graph in int8, its blob in `dir`, and the target's firmware with it built in.
fn firmware_of(
    target: &str,
    graph: &harness::model::graph::Graph,
    dir: &std::path::Path,
) -> Firmware {
    let target = target::load(&target::targets_dir(), target).unwrap();
    let prepared = prepare::prepare(graph, &int8_recipe()).unwrap();
    let blob = dir.join(format!("{}-int8.blob", graph.name));
    std::fs::write(&blob, prepared.lowered.blob.as_bytes()).unwrap();
    let elf = harness::build::firmware::build_firmware(&target, &blob).unwrap();
    (target, prepared, blob, elf)
}

/// Writes `suite` into `dir`, runs it with `bench run` (targets from
/// `targets`, if given), and returns the exit code and the stored rows.
fn run_suite(
    dir: &std::path::Path,
    suite: &str,
    targets: Option<&std::path::Path>,
) -> (Option<i32>, Vec<harness::results::store::Row>) {
    let path = dir.join("s.toml");
    std::fs::write(&path, suite).unwrap();
    let out = dir.join("r");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_bench"));
    command.args([
        "run",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    if let Some(t) = targets {
        command.env("BENCH_TARGETS", t);
    }
    let o = command.output().unwrap();
    eprintln!("{}", String::from_utf8_lossy(&o.stderr));
    (
        o.status.code(),
        harness::results::store::read_rows(&run_dir(dir)).unwrap(),
    )
}

/// The one run directory `run_suite` wrote under `dir`.
fn run_dir(dir: &std::path::Path) -> std::path::PathBuf {
    let suite_dir = std::fs::read_dir(dir.join("r"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::read_dir(suite_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

/// Writes a copy of qemu-m4 named `name` into `dir`, its text changed by `edit`.
fn m4_copy(dir: &std::path::Path, name: &str, edit: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(target::targets_dir().join("qemu-m4.toml"))
        .unwrap()
        .replace("name = \"qemu-m4\"", &format!("name = \"{name}\""));
    std::fs::write(dir.join(format!("{name}.toml")), edit(text)).unwrap();
}

/// A suite running `models` in int8 on `targets`, two repetitions, no warm-up.
fn int8_suite(targets: &[&str], models: &[&str]) -> String {
    let quoted: Vec<String> = targets.iter().map(|t| format!("{t:?}")).collect();
    let models: String = models
        .iter()
        .map(|m| format!("[[model]]\nzoo = {m:?}\n\n"))
        .collect();
    format!(
        "[suite]\nname = \"s\"\ntargets = [{}]\nwarmup = 0\nrepetitions = 2\n\n{models}[[variant]]\nname = \"int8\"\nquant = {{ scheme = \"int8\" }}\n",
        quoted.join(", ")
    )
}

#[test]
fn ds_cnn_int8_on_qemu_m4_matches_the_host_and_repeats_its_counts_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (target, prepared, blob, elf) = qemu_m4_firmware("ds-cnn", dir.path());
    // Built once: the same inputs give the cached ELF without running cargo.
    assert_eq!(
        harness::build::firmware::build_firmware(&target, &blob).unwrap(),
        elf
    );
    let (reference, _) = prepare::reference(&prepared, &[]).unwrap();
    let job = JobInput {
        blob: &blob,
        input: &prepared.input,
        thresholds: &[],
        warmup: 1,
        repetitions: 3,
        timeout: Duration::from_secs(120),
        profile: false,
        icount_shift: Some(7),
        clock_hz: None,
    };
    let first = runner::run(&target, &elf, &job).unwrap();
    let second = runner::run(&target, &elf, &job).unwrap();
    assert_eq!(
        first.output, reference,
        "device output differs from the host reference"
    );
    assert_eq!(first.clock, protocol::Clock::Cycles);
    assert_eq!(first.ticks_per_second, 25_000_000);
    assert!(first.ticks.iter().all(|&t| t > 0));
    // Every inference of the same input takes the same instructions, in one run and across runs.
    let shift = target.run.qemu.as_ref().unwrap().icount_shift;
    let instructions = |ticks: &[u64]| {
        ticks
            .iter()
            .map(|&t| icount::instructions(t, 25_000_000, shift))
            .collect::<Vec<_>>()
    };
    let counts = instructions(&first.ticks);
    assert!(
        counts.windows(2).all(|w| w[0] == w[1]),
        "{:?} from ticks {:?}",
        counts,
        first.ticks
    );
    assert_eq!(counts, instructions(&second.ticks));
    assert!(
        first.stack_peak.is_some_and(|s| s > 0 && s < 64 * 1024),
        "{:?}",
        first.stack_peak
    );
    eprintln!(
        "ds-cnn int8 on qemu-m4: {} instructions per inference, stack {:?}",
        counts[0], first.stack_peak
    );
}

#[test]
fn bench_run_on_qemu_m4_stores_exact_instruction_counts_labelled_as_such() {
    let dir = tempfile::tempdir().unwrap();
    // bench-dut: the same firmware answering the MLPerf Tiny DUT protocol.
    let suite = "[suite]\nname = \"emulated\"\ntargets = [\"qemu-m4\"]\nruntimes = [\"bench\", \"bench-dut\"]\nwarmup = 1\nrepetitions = 4\n\n[[model]]\nzoo = \"autoencoder\"\n\n[[variant]]\nname = \"int8\"\nquant = { scheme = \"int8\" }\n";
    let (code, rows) = run_suite(dir.path(), suite, None);
    assert_eq!(code, Some(0));
    let r = &rows[0];
    let dut = &rows[1];
    assert_eq!(
        (dut.job.as_deref(), dut.status.as_deref()),
        (Some("autoencoder/int8/qemu-m4/bench-dut"), Some("ok"))
    );
    assert_eq!(dut.output_matches_reference, Some(true));
    assert!(dut
        .latency_source
        .as_deref()
        .unwrap()
        .contains("MLPerf Tiny DUT timestamps, one inference per window"));
    // The window also copies the input in, and its timestamps are whole
    // microseconds (7.8 instructions): within 0.5% of the exact count.
    let (exact, windowed) = (r.latency_median.unwrap(), dut.latency_median.unwrap());
    assert!(
        windowed >= exact - 8.0 && windowed < exact * 1.005,
        "{windowed} vs {exact}"
    );
    assert_eq!(
        (
            r.status.as_deref(),
            r.latency_unit.as_deref(),
            r.latency_source.as_deref()
        ),
        (Some("ok"), Some("instructions"), Some("QEMU icount"))
    );
    assert_eq!(r.output_matches_reference, Some(true));
    // Exact counts: no spread at all.
    assert_eq!(
        (r.latency_min, r.latency_max, r.latency_mad),
        (r.latency_median, r.latency_median, Some(0.0)),
        "{r:?}"
    );
    // The manifest names the emulator and hashes the firmware built for this model.
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir(dir.path()).join("manifest.json")).unwrap(),
    )
    .unwrap();
    let m4 = &manifest["targets"][0];
    assert!(
        m4["emulator"]
            .as_str()
            .unwrap()
            .starts_with("QEMU emulator version "),
        "{m4}"
    );
    assert_eq!(
        (
            m4["device_programs"][0]["model"].as_str(),
            m4["device_programs"][0]["sha256"].as_str().map(str::len)
        ),
        (Some("autoencoder/int8"), Some(64))
    );
    // Cycles estimated from the blocks QEMU ran (Cortex-M4 timings, the
    // L4R5's flash), more than the instructions.
    let (instructions, cycles) = (r.latency_median.unwrap(), r.cycles_estimated.unwrap());
    assert!(
        cycles > 1.1 * instructions && cycles < 3.0 * instructions,
        "{r:?}"
    );
    assert!(
        r.cycles_source
            .as_deref()
            .unwrap()
            .starts_with("cortex-m4 timings"),
        "{r:?}"
    );
    // Energy: the current per MHz calibrated on MLPerf Tiny's published
    // L4R5 energies, at 1.8 V, over the estimated cycles.
    let source = r.energy_source.as_deref().unwrap();
    assert!(
        source.starts_with("model: 188.2 uA/MHz x 1.8 V, calibrated on MLPerf Tiny v0.5"),
        "{source}"
    );
    assert!(
        source.contains("cycles estimated from QEMU's blocks by cortex-m4 timings"),
        "{source}"
    );
    let calibration = harness::telemetry::calibration::Calibration::load(
        &harness::workspace_root().join("targets/calibration"),
        "mlperf-tiny-v0.5-nucleo-l4r5zi",
    )
    .unwrap();
    let expected = calibration.ua_per_mhz() * 1.8 * cycles * 1e-6;
    assert!(
        (r.energy_uj.unwrap() - expected).abs() < 1e-9 * expected,
        "{r:?}"
    );
}

/// `size -A` (binutils), an ELF reader independent of bench: static SRAM
/// is `.data`, `.bss` and `.uninit`; flash every other section with an
/// address, except the runtime's stack and heap reservations.
fn size_tool(elf: &std::path::Path) -> (u64, u64) {
    let (flash, sram, _) = size_tool_text(elf);
    (flash, sram)
}

/// [`size_tool`]'s flash and SRAM, and the `.text` section's size.
fn size_tool_text(elf: &std::path::Path) -> (u64, u64, u64) {
    let out = std::process::Command::new("size")
        .arg("-A")
        .arg(elf)
        .output()
        .expect("binutils size");
    let (mut flash, mut sram, mut text) = (0, 0, 0);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [name, size, addr] = f[..] else { continue };
        let (Ok(size), Ok(addr)) = (size.parse::<u64>(), addr.parse::<u64>()) else {
            continue;
        };
        match name {
            ".data" => {
                flash += size;
                sram += size;
            }
            ".bss" | ".uninit" => sram += size,
            ".stack" | ".heap" => {}
            ".text" => {
                flash += size;
                text = size;
            }
            _ if addr != 0 || name == ".vector_table" => flash += size,
            _ => {}
        }
    }
    (flash, sram, text)
}

/// One whole job on a target: the device output equals the host reference,
/// every inference and a second run give the same instruction count, and
/// the memory figures equal `size`'s. Returns the count and the stack peak.
fn whole_job(target_name: &str, model: &str) -> (u64, u32) {
    whole_job_of(target_name, &zoo::build(model).unwrap())
}

/// [`whole_job`] of any graph.
fn whole_job_of(target_name: &str, graph: &harness::model::graph::Graph) -> (u64, u32) {
    let model = &graph.name;
    let dir = tempfile::tempdir().unwrap();
    let (target, prepared, blob, elf) = firmware_of(target_name, graph, dir.path());
    let (reference, _) = prepare::reference(&prepared, &[]).unwrap();
    let job = JobInput {
        blob: &blob,
        input: &prepared.input,
        thresholds: &[],
        warmup: 1,
        repetitions: 3,
        timeout: Duration::from_secs(120),
        profile: false,
        icount_shift: target.run.qemu.as_ref().map(|q| q.icount_shift),
        clock_hz: None,
    };
    let first = runner::run(&target, &elf, &job).unwrap();
    let second = runner::run(&target, &elf, &job).unwrap();
    assert_eq!(
        first.output, reference,
        "{target_name}: device output differs from the host reference"
    );
    let shift = target.run.qemu.as_ref().unwrap().icount_shift;
    let instructions = |m: &runner::Measurement| -> Vec<u64> {
        match m.clock {
            protocol::Clock::Cycles => m
                .ticks
                .iter()
                .map(|&t| icount::instructions(t, m.ticks_per_second, shift))
                .collect(),
            protocol::Clock::Instructions => m.ticks.clone(),
            protocol::Clock::HostNanos => panic!("{target_name} reports host time"),
        }
    };
    let counts = instructions(&first);
    assert!(
        counts[0] > 0 && counts.windows(2).all(|w| w[0] == w[1]),
        "{target_name}: {counts:?} from ticks {:?}",
        first.ticks
    );
    assert_eq!(
        counts,
        instructions(&second),
        "{target_name}: the second run counts differently"
    );
    let memory = harness::telemetry::elf::static_memory(&elf).unwrap();
    assert_eq!(
        (memory.flash, memory.sram),
        size_tool(&elf),
        "{target_name}"
    );
    let stack = first.stack_peak.unwrap();
    assert!(
        stack > 0 && stack < target.build.stack_bytes as u32,
        "{target_name}: stack {stack}"
    );
    eprintln!(
        "{model} int8 on {target_name}: {} instructions per inference, stack {stack} B, {memory:?}",
        counts[0]
    );
    (counts[0], stack)
}

#[test]
fn a_whole_job_on_armv6m_qemu_m0_matches_the_host_and_repeats_exactly() {
    whole_job("qemu-m0", "micro-speech");
}

/// Layers of the shapes that take every branch of the Helium kernels
/// (`kernels/src/int8/arm_mve`) and the ones they hand back: receptive
/// fields whose depth is not a multiple of 16 (tail-predicated loops),
/// filter counts past one run of 64 and not a multiple of 4, depthwise
/// layers over 16 + 8 channels, over more than 64 channels, and over
/// channel counts they leave to the DSP and portable kernels, strided and
/// padded windows, a field deeper than the gathered column, dense layers
/// and an ADD of 2,520 elements (not a multiple of 16). No activations, so that a wrong value anywhere reaches the
/// output.
fn helium_shapes() -> harness::model::graph::Graph {
    use harness::model::graph::{GraphBuilder, Win};
    use kernels::geometry::{Activation::None as Linear, Shape};
    let mut b = GraphBuilder::new("helium-shapes", Shape::new(1, 12, 11, 3));
    let x = b.conv("conv3x3", 0, 24, Win::same((3, 3)), Linear);
    let x = b.depthwise("dw24", x, Win::same((3, 3)).stride(2), Linear);
    let x = b.conv("pw70", x, 70, Win::same((1, 1)), Linear);
    let x = b.depthwise("dw70", x, Win::same((3, 3)), Linear);
    let y = b.conv("pw70-branch", x, 70, Win::same((1, 1)), Linear);
    let x = b.add("add70", x, y, Linear);
    let x = b.conv("pw80-stride2", x, 80, Win::same((1, 1)).stride(2), Linear);
    let x = b.depthwise("dw80-5x5", x, Win::same((5, 5)), Linear);
    let x = b.conv("deep3x3", x, 16, Win::same((3, 3)), Linear);
    let x = b.conv("conv2x2", x, 13, Win::valid((2, 2)), Linear);
    let x = b.flatten("flatten", x);
    let x = b.dense("fc37", x, 37, Linear);
    let y = b.dense("fc5", x, 5, Linear);
    b.finish(y)
}

#[test]
fn layers_of_every_shape_on_helium_qemu_m55_match_the_host_and_repeat_exactly() {
    whole_job_of("qemu-m55", &helium_shapes());
}

#[test]
fn a_whole_job_on_riscv_qemu_rv32_matches_the_host_and_repeats_exactly() {
    whole_job("qemu-rv32", "micro-speech");
}

#[test]
fn elf_memory_figures_equal_what_binutils_size_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (_, prepared, _, elf) = qemu_m4_firmware("autoencoder", dir.path());
    let memory = harness::telemetry::elf::static_memory(&elf).unwrap();
    assert_eq!(
        (memory.flash, memory.sram, memory.code),
        size_tool_text(&elf)
    );
    // The blob is in flash, the arena in static SRAM.
    assert!(
        memory.flash > prepared.lowered.blob.as_bytes().len() as u64
            && memory.sram > prepared.lowered.arena_bytes as u64,
        "{memory:?}"
    );
}

#[test]
fn a_model_too_large_for_the_board_does_not_fit_and_the_others_still_run() {
    let dir = tempfile::tempdir().unwrap();
    // qemu-m4 with 16 KiB of RAM: DS-CNN int8's 16,000-byte arena cannot fit beside the firmware.
    m4_copy(dir.path(), "small-m4", |text| {
        let ram = text.find("name = \"RAM\"").unwrap();
        format!(
            "{}{}",
            &text[..ram],
            text[ram..].replacen("length = 4_194_304", "length = 16_384", 1)
        )
    });
    let (code, rows) = run_suite(
        dir.path(),
        &int8_suite(&["small-m4"], &["ds-cnn", "autoencoder"]),
        Some(dir.path()),
    );
    assert_eq!(code, Some(3));
    let status = |model: &str| {
        rows.iter()
            .find(|r| r.model.as_deref() == Some(model))
            .map(|r| {
                (
                    r.status.clone().unwrap(),
                    r.error.clone().unwrap_or_default(),
                )
            })
            .unwrap()
    };
    let (ds, why) = status("ds-cnn");
    assert_eq!(ds, "failed");
    // What it needs is its static data, as the same firmware on the full board shows, plus the stack reserve.
    let (target, _, _, elf) = qemu_m4_firmware("ds-cnn", dir.path());
    let stack = target.build.stack_bytes;
    let needs = harness::telemetry::elf::static_memory(&elf).unwrap().sram + stack;
    // And what partial execution would save: DS-CNN's arena 16,000 -> 8,064 bytes.
    let partial = needs - 7_936;
    assert_eq!(
        why,
        format!("failed to build bench-firmware-mcu for small-m4: does not fit: RAM needs {needs} bytes (a {stack}-byte stack included), has 16384; with memory = \"partial\" the arena is 8064 bytes (7936 fewer): RAM would need {partial}, still {} bytes short (its row scratch, 2048 bytes, is on the stack)", partial - 16_384)
    );
    assert_eq!(status("autoencoder").0, "ok");
}

/// `bench infer MODEL --target TARGET --input INPUT --output OUTPUT`, which
/// must succeed; its standard output.
fn infer(
    model: &std::path::Path,
    target: &str,
    input: &std::path::Path,
    output: &std::path::Path,
) -> String {
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["infer", &path(model), "--target", target])
        .args(["--input", &path(input), "--output", &path(output)])
        .output()
        .unwrap();
    common::ok(&o);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn read_npy<T: npyz::Deserialize>(p: &std::path::Path) -> Vec<T> {
    npyz::NpyFile::new(std::fs::File::open(p).unwrap())
        .unwrap()
        .into_vec::<T>()
        .unwrap()
}

#[test]
fn bench_infer_on_qemu_m4_reproduces_the_tflite_reference_outputs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (model, golden) = (
        root.join("../models/mlperf-tiny/kws_ref_model.tflite"),
        root.join("tests/golden/kws_ref_model"),
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.npy");
    let stdout = infer(&model, "qemu-m4", &golden.join("inputs.npy"), &out);
    assert!(
        stdout.contains("24 inputs on qemu-m4; outputs [24, 12]"),
        "{stdout}"
    );
    assert_eq!(
        read_npy::<i8>(&out),
        read_npy::<i8>(&golden.join("outputs.npy")),
        "emulated Cortex-M4 outputs differ from LiteRT's"
    );
}

/// TensorFlow's 16x8 export (models/exported) on the Cortex-M55: the int16
/// kernels, and the float QUANTIZE in front of them, which LLVM once
/// miscompiled for MVE (see `kernels::float::round_to_i32`), against LiteRT.
#[test]
fn bench_infer_of_a_16x8_model_on_qemu_m55_reproduces_litert() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = root.join("../models/exported/kws_dscnn_int16x8.tflite");
    let golden = root.join("tests/golden/public/kws_dscnn_int16x8");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.npy");
    let stdout = infer(&model, "qemu-m55", &golden.join("inputs.npy"), &out);
    assert!(
        stdout.contains("16 of 16 equal to the host reference"),
        "{stdout}"
    );
    let read = read_npy::<f32>;
    let (got, want) = (read(&out), read(&golden.join("outputs.npy")));
    assert_eq!(got.len(), 16 * 12);
    // Bit for bit: the same int16 outputs dequantized by the same float product.
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&got),
        bits(&want),
        "emulated Cortex-M55 outputs differ from LiteRT's"
    );
}

/// A copy of qemu-m4 named `name`, with extra firmware features and a short timeout.
fn faulty_target(dir: &std::path::Path, name: &str, feature: Option<&str>) {
    m4_copy(dir, name, |mut text| {
        if let Some(f) = feature {
            text = text.replace(
                "features = [\"board-cmsdk\"]",
                &format!("features = [\"board-cmsdk\", \"{f}\"]"),
            );
        }
        text.replace("timeout = 120", "timeout = 5")
    });
}

#[test]
fn a_panicking_and_a_hanging_firmware_fail_their_jobs_with_the_reason_and_the_rest_run() {
    let dir = tempfile::tempdir().unwrap();
    faulty_target(dir.path(), "good-m4", None);
    faulty_target(dir.path(), "panic-m4", Some("fault-panic"));
    faulty_target(dir.path(), "hang-m4", Some("fault-hang"));
    let (code, rows) = run_suite(
        dir.path(),
        &int8_suite(&["panic-m4", "hang-m4", "good-m4"], &["autoencoder"]),
        Some(dir.path()),
    );
    assert_eq!(code, Some(3));
    let row = |t: &str| {
        rows.iter()
            .find(|r| r.target.as_deref() == Some(t))
            .unwrap()
    };
    let (panicked, hung, good) = (row("panic-m4"), row("hang-m4"), row("good-m4"));
    assert_eq!(
        panicked.error.as_deref(),
        Some("failed on the device: firmware panicked: injected fault (feature fault-panic)")
    );
    let hang_error = hung.error.clone().unwrap();
    // Silent since the session started: not a job that needed more time.
    assert!(
        hang_error.starts_with(
            "failed to finish within 5 s: the device stopped answering: nothing for the last 5."
        ),
        "{hang_error}"
    );
    assert!(hang_error.contains(" s (nothing received"), "{hang_error}");
    assert_eq!(
        (good.status.as_deref(), good.output_matches_reference),
        (Some("ok"), Some(true))
    );
}

/// The SysTick extension of the M0+ boards (the Pico), read at its worst
/// moment: the firmware's `check-systick` boot check masks interrupts until
/// the counter wraps, reads with the wrap's exception pending, and panics if
/// that read is not just before the one after the exception ran. On QEMU's
/// Cortex-M0 the job only succeeds if the check passed.
#[test]
fn a_systick_read_with_its_wrap_pending_is_not_a_wrap_low() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(target::targets_dir().join("qemu-m0.toml"))
        .unwrap()
        .replace("name = \"qemu-m0\"", "name = \"systick-m0\"")
        .replace(
            "features = [\"board-nrf51\"]",
            "features = [\"board-nrf51\", \"check-systick\"]",
        );
    std::fs::write(dir.path().join("systick-m0.toml"), text).unwrap();
    let (code, rows) = run_suite(
        dir.path(),
        &int8_suite(&["systick-m0"], &["micro-speech"]),
        Some(dir.path()),
    );
    let row = &rows[0];
    assert_eq!(
        (code, row.status.as_deref(), row.error.as_deref()),
        (Some(0), Some("ok"), None)
    );
}

#[test]
fn a_target_file_with_the_wrong_clock_frequency_fails_calibration() {
    let dir = tempfile::tempdir().unwrap();
    // The MPS2 timer runs at 25 MHz; a file claiming 20 MHz (clock_hz, which
    // the firmware is built with) would scale every count by 1.25.
    m4_copy(dir.path(), "slow-m4", |text| {
        text.replace("clock_hz = 25_000_000", "clock_hz = 20_000_000")
    });
    let (code, rows) = run_suite(
        dir.path(),
        &int8_suite(&["slow-m4"], &["autoencoder"]),
        Some(dir.path()),
    );
    assert_eq!(code, Some(3));
    assert_eq!(
        rows[0].error.as_deref(),
        Some("failed to calibrate the device's clock: the device says 20000000 ticks per second, which at -icount shift=7 is 2.560 ticks per instruction; it counted 3.200, so its clock runs at about 25.0 MHz")
    );
}

#[test]
fn a_clock_that_does_not_advance_fails_the_job_instead_of_reporting_numbers() {
    let dir = tempfile::tempdir().unwrap();
    // The "timer" is plain RAM: its value register reads back what was written, forever.
    m4_copy(dir.path(), "stuck-m4", |text| {
        text.replace(
            "BENCH_TIMER_BASE = \"0x40000000\"",
            "BENCH_TIMER_BASE = \"0x20200000\"",
        )
    });
    let (code, rows) = run_suite(
        dir.path(),
        &int8_suite(&["stuck-m4"], &["autoencoder"]),
        Some(dir.path()),
    );
    assert_eq!(code, Some(3));
    assert_eq!(
        rows[0].error.as_deref(),
        Some("failed to calibrate the device's clock: it did not advance over 400000 instructions (is the timer in the target file right?)")
    );
}

/// A link that flips one bit in every 50th byte the device sends.
struct Corrupting<L: harness::device::link::Link> {
    inner: L,
    seen: usize,
}

impl<L: harness::device::link::Link> harness::device::link::Link for Corrupting<L> {
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.inner.send(bytes)
    }
    fn recv(&mut self, timeout: Duration) -> std::io::Result<Option<Vec<u8>>> {
        let chunk = self.inner.recv(timeout)?;
        Ok(chunk.map(|mut c| {
            for b in c.iter_mut() {
                self.seen += 1;
                if self.seen.is_multiple_of(50) {
                    *b ^= 0x04;
                }
            }
            c
        }))
    }
    fn stop(&mut self) -> String {
        self.inner.stop()
    }
}

#[test]
fn bytes_corrupted_between_the_pty_and_the_harness_are_a_protocol_error_never_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let (target, prepared, blob, elf) = qemu_m4_firmware("autoencoder", dir.path());
    let qemu = runner::qemu_command(target.run.qemu.as_ref().unwrap(), &elf, None);
    let link = harness::device::link::QemuLink::spawn(qemu, Duration::from_secs(30)).unwrap();
    let mut session = harness::device::session::Session::new(
        Corrupting {
            inner: link,
            seen: 0,
        },
        Duration::from_secs(30),
    );
    let job = JobInput {
        blob: &blob,
        input: &prepared.input,
        thresholds: &[],
        warmup: 0,
        repetitions: 20,
        timeout: Duration::from_secs(30),
        profile: false,
        icount_shift: None,
        clock_hz: None,
    };
    let err = session.measure(&job).unwrap_err().to_string();
    assert!(
        err.starts_with("failed to follow the protocol: while waiting for")
            && err.contains("checksum"),
        "{err}"
    );
}

#[test]
fn a_profiled_inference_counts_every_layer_exactly_and_adds_up_to_the_timed_one() {
    let dir = tempfile::tempdir().unwrap();
    let (target, prepared, blob, elf) = qemu_m4_firmware("ds-cnn", dir.path());
    let job = JobInput {
        blob: &blob,
        input: &prepared.input,
        thresholds: &[],
        warmup: 0,
        repetitions: 2,
        timeout: Duration::from_secs(120),
        profile: true,
        icount_shift: Some(7),
        clock_hz: None,
    };
    let (first, second) = (
        runner::run(&target, &elf, &job).unwrap(),
        runner::run(&target, &elf, &job).unwrap(),
    );
    let labels =
        harness::model::lower::op_labels(&prepared.graph, prepared.lowered.blob.as_bytes());
    let names: Vec<&str> = first
        .layers
        .iter()
        .map(|&(op, _)| labels[op as usize].0.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "conv1", "dw1", "pw1", "dw2", "pw2", "dw3", "pw3", "dw4", "pw4", "pool", "flatten",
            "fc", "softmax"
        ]
    );
    // Timer ticks per layer, as instructions: exact, so the same in both runs (the
    // raw ticks may differ by one, with the timer's phase after each message).
    let shift = target.run.qemu.as_ref().unwrap().icount_shift;
    let instructions = |t: u64| icount::instructions(t, first.ticks_per_second, shift);
    let counts = |m: &runner::Measurement| {
        m.layers
            .iter()
            .map(|&(op, t)| (op, instructions(t)))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        counts(&first),
        counts(&second),
        "per-layer instructions differ between runs"
    );
    // Their sum is the whole inference but for the executor's own steps
    // between layers and the profiler's clock reads. The whole is timed in
    // a run without the profiler: the compiler builds that loop apart from
    // the profiled one, so the two may differ by a few instructions either
    // way (5 of 5.9 million once), never by a thousandth.
    let layers: u64 = first.layers.iter().map(|&(_, t)| instructions(t)).sum();
    let whole = instructions(first.ticks[0]);
    assert!(
        whole.abs_diff(layers) < whole / 1000,
        "layers {layers}, whole inference {whole}"
    );
}

#[test]
fn a_finished_job_ends_qemu_through_the_firmware_with_status_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (target, prepared, blob, elf) = qemu_m4_firmware("autoencoder", dir.path());
    let qemu = runner::qemu_command(target.run.qemu.as_ref().unwrap(), &elf, None);
    let mut session = harness::device::session::Session::new(
        harness::device::link::QemuLink::spawn(qemu, Duration::from_secs(30)).unwrap(),
        Duration::from_secs(30),
    );
    let job = JobInput {
        blob: &blob,
        input: &prepared.input,
        thresholds: &[],
        warmup: 0,
        repetitions: 1,
        timeout: Duration::from_secs(30),
        profile: false,
        icount_shift: Some(7),
        clock_hz: None,
    };
    session.measure(&job).unwrap();
    let mut link = session.stop();
    harness::device::link::Link::stop(&mut link);
    assert!(
        link.exit_status().is_some_and(|s| s.success()),
        "{:?}",
        link.exit_status()
    );
}

/// The trained digits fixture swept on the host and qemu-m4: the cost a
/// sweep predicts from per-exit device costs and host exit decisions must
/// match the cost measured with the threshold set on the device.
#[test]
fn an_exit_sweep_on_qemu_m4_predicts_the_measured_mean_cost_within_2_percent() {
    use harness::results::store::{ExitRow, SweepRow};
    let dir = tempfile::tempdir().unwrap();
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/digits");
    let models = models.display();
    let suite = format!(
        r#"[suite]
name = "s"
targets = ["host", "qemu-m4"]
warmup = 0
repetitions = 3

[[dataset]]
name = "test"
path = "{models}/digits-test.npz"
limit = 60

[[dataset]]
name = "train"
path = "{models}/digits-train.npz"

[[model]]
name = "digits"
source = {{ onnx = "{models}/digits-float.onnx" }}
dataset = "test"

[[variant]]
name = "exits"
quant = {{ scheme = "int8", calibration = {{ dataset = "train", samples = 64 }} }}
exits = {{ range = {{ from = 0.0, to = 1.0, step = 0.25 }}, validate = 24 }}
"#
    );
    let (code, rows) = run_suite(dir.path(), &suite, None);
    assert_eq!(code, Some(0));
    assert_eq!(rows.len(), 2, "a sweep is one job per target");
    let run = run_dir(dir.path());
    let sweep: Vec<SweepRow> = harness::results::store::read_table(&run).unwrap();
    let exits: Vec<ExitRow> = harness::results::store::read_table(&run).unwrap();
    let m4: Vec<&SweepRow> = sweep
        .iter()
        .filter(|r| r.target.as_deref() == Some("qemu-m4"))
        .collect();
    assert_eq!(
        m4.iter().map(|r| r.threshold.unwrap()).collect::<Vec<_>>(),
        [0.0, 0.25, 0.5, 0.75, 1.0]
    );
    for r in &m4 {
        assert_eq!(
            (r.validated_samples, r.samples, r.cost_unit.as_deref()),
            (Some(24), Some(60), Some("instructions"))
        );
        let (predicted, measured) = (
            r.predicted_subset_cost.unwrap(),
            r.measured_subset_cost.unwrap(),
        );
        assert!(
            (measured / predicted - 1.0).abs() < 0.02,
            "threshold {:?}: predicted {predicted}, measured {measured}",
            r.threshold
        );
        assert_eq!(r.cost_error, Some(measured / predicted - 1.0));
    }
    // Threshold 0: everything leaves at the first head; 1: nothing leaves early.
    assert_eq!(m4[0].exit_rates.as_deref(), Some("1.0000 0.0000 0.0000"));
    assert_eq!(m4[4].exit_rates.as_deref(), Some("0.0000 0.0000 1.0000"));
    let costs: Vec<f64> = exits
        .iter()
        .filter(|e| e.target.as_deref() == Some("qemu-m4"))
        .map(|e| e.cost.unwrap())
        .collect();
    assert_eq!(costs.len(), 3);
    assert!(costs[0] < costs[1] && costs[1] < costs[2], "{costs:?}");
    assert_eq!(
        (m4[0].mean_cost, m4[4].mean_cost),
        (Some(costs[0]), Some(costs[2]))
    );
    assert_eq!(m4[4].full_cost, Some(costs[2]));
    // The host has no exact counts: it predicts, it does not validate.
    assert!(sweep
        .iter()
        .filter(|r| r.target.as_deref() == Some("host"))
        .all(|r| r.validated_samples.is_none() && r.mean_cost.is_some()));
    // Plots of the run: one accuracy-vs-cost chart per target, the SRAM chart and the model's memory timeline, as PNG and SVG.
    let plots: Vec<String> = harness::report::plot::existing(&run)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        plots,
        [
            "accuracy-vs-cost-host.png",
            "accuracy-vs-cost-host.svg",
            "accuracy-vs-cost-qemu-m4.png",
            "accuracy-vs-cost-qemu-m4.svg",
            "accuracy-vs-sram.png",
            "accuracy-vs-sram.svg",
            "memory-digits.png",
            "memory-digits.svg"
        ]
    );
    let png = std::fs::read(run.join("plots/accuracy-vs-cost-qemu-m4.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(
        (
            u32::from_be_bytes(png[16..20].try_into().unwrap()),
            u32::from_be_bytes(png[20..24].try_into().unwrap())
        ),
        (960, 640)
    );
    let svg = std::fs::read_to_string(run.join("plots/accuracy-vs-cost-qemu-m4.svg")).unwrap();
    assert!(
        svg.contains("accuracy vs mean cost per inference on qemu-m4")
            && svg.contains("Pareto front")
    );
    // bench show prints the sweep table, its summary and the plots.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["show", run.to_str().unwrap(), "--format", "md"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(shown.contains("threshold sweep of digits/exits (max-softmax, exit decisions from the host reference on test, 60 samples)"), "{shown}");
    assert!(
        shown.contains("qemu-m4: largest saving within 1.0% of the no-exit accuracy"),
        "{shown}"
    );
    assert!(
        shown.contains("plots/accuracy-vs-cost-qemu-m4.svg"),
        "{shown}"
    );
}

/// A target file that names an energy meter which is not plugged in: its
/// jobs fail saying which meter and port, the other targets run.
#[test]
fn a_named_but_absent_meter_fails_its_target_with_the_port_and_the_rest_run() {
    let dir = tempfile::tempdir().unwrap();
    m4_copy(dir.path(), "metered-m4", |text| {
        text + "\n[meter]\nkind = \"ppk2\"\nport = \"/dev/bench-no-such-ppk2\"\nmarker = 3\n"
    });
    m4_copy(dir.path(), "plain-m4", |text| text);
    let (code, rows) = run_suite(
        dir.path(),
        &int8_suite(&["metered-m4", "plain-m4"], &["autoencoder"]),
        Some(dir.path()),
    );
    assert_eq!(code, Some(3));
    let row = |t: &str| {
        rows.iter()
            .find(|r| r.target.as_deref() == Some(t))
            .unwrap()
    };
    let error = row("metered-m4").error.clone().unwrap();
    assert!(
        error.starts_with("failed to open the PPK2 on /dev/bench-no-such-ppk2: ")
            && error.ends_with(
                "is it plugged in, and does [meter] port in the target file name its serial port?"
            ),
        "{error}"
    );
    assert_eq!(row("plain-m4").status.as_deref(), Some("ok"));
}

/// Every firmware is checked after linking: it starts at the origin of
/// FLASH, every section and load address lies in the target's memory, and
/// the clock it was built for is in the ELF (and the manifest).
#[test]
fn firmware_elfs_start_at_flash_and_record_their_clock() {
    use harness::telemetry::elf::{check_layout, Layout};
    let dir = tempfile::tempdir().unwrap();
    let (m4, _, _, m4_elf) = firmware("qemu-m4", "autoencoder", dir.path());
    assert_eq!(
        check_layout(&m4_elf, &m4.memory).unwrap(),
        Layout {
            start: 0,
            clock_hz: Some(25_000_000),
            rtt: false
        }
    );
    let (rv32, _, _, rv32_elf) = firmware("qemu-rv32", "autoencoder", dir.path());
    assert_eq!(
        check_layout(&rv32_elf, &rv32.memory).unwrap(),
        Layout {
            start: 0x2040_0000,
            clock_hz: Some(0),
            rtt: false
        }
    );
    // The same ELF against a memory map it was not linked for.
    let mut moved = m4.memory.clone();
    moved
        .iter_mut()
        .filter(|r| r.name == "FLASH")
        .for_each(|r| r.origin = 0x0800_0000);
    let err = check_layout(&m4_elf, &moved).unwrap_err();
    assert!(err.starts_with("section .vector_table (0x0, 1024 bytes) lies outside every memory region of the target"), "{err}");
    let mut small = m4.memory.clone();
    small
        .iter_mut()
        .filter(|r| r.name == "RAM")
        .for_each(|r| r.length = 1024);
    assert!(check_layout(&m4_elf, &small)
        .unwrap_err()
        .contains("lies outside every memory region"));
}

/// A firmware's size must not depend on where bench or cargo's home is:
/// the source paths it embeds (panic locations) are remapped to fixed names.
#[test]
fn a_firmware_embeds_no_path_of_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, _, elf) = firmware("qemu-m4", "autoencoder", dir.path());
    let bytes = std::fs::read(&elf).unwrap();
    let root = harness::workspace_root().display().to_string();
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(!contains(&root), "{} embeds {root}", elf.display());
    assert!(
        contains("/bench/kernels/src/"),
        "{} embeds no remapped kernel path",
        elf.display()
    );
}

/// The cycle plugin counts exactly what the timed inferences executed (the
/// board's tick count plus the clock's read and the markers: a few dozen
/// instructions), once per timed inference, and prices it with the core's
/// timings: a Cortex-M4 takes more cycles than instructions (loads, taken
/// branches, flash wait states), and less than three per instruction.
#[test]
fn the_cycle_plugin_counts_each_timed_inference_and_prices_it() {
    use harness::telemetry::cycles::PluginRun;
    let dir = tempfile::tempdir().unwrap();
    let (target, prepared, blob, elf) = qemu_m4_firmware("autoencoder", dir.path());
    let report = dir.path().join("cycles.txt");
    let plugin = PluginRun::for_program(&target, &elf, report.clone(), Some(3))
        .unwrap()
        .expect("qemu-m4 has a cycle model");
    let job = JobInput {
        blob: &blob,
        input: &prepared.input,
        thresholds: &[],
        warmup: 2,
        repetitions: 3,
        timeout: Duration::from_secs(120),
        profile: false,
        icount_shift: Some(7),
        clock_hz: None,
    };
    let mut session = runner::connect(&target, &elf, &blob, job.timeout, Some(&plugin)).unwrap();
    let result = session.measure(&job);
    let m = session.close(result).unwrap();
    let ticks = icount::instructions(m.ticks[0], m.ticks_per_second, 7);
    let board = target.cycles.as_ref().unwrap();
    let e = plugin.estimate(board).unwrap();
    // Only the timed inferences, not the warm-up ones.
    assert_eq!(e.windows, 3);
    let extra = e.instructions - ticks as f64;
    assert!(
        (0.0..100.0).contains(&extra),
        "{} counted, {ticks} ticked",
        e.instructions
    );
    assert!(
        e.cycles > 1.1 * e.instructions && e.cycles < 3.0 * e.instructions,
        "{e:?}"
    );
    assert!(std::fs::read_to_string(&report)
        .unwrap()
        .starts_with("bench-qemu-plugin 1\nwindows 3\n"));
}
