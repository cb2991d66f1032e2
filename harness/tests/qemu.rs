//! Whole jobs on an emulated board, through the real cross-build, QEMU and
//! its serial PTY: the device's output must equal the host reference byte
//! for byte, and instruction counts must repeat exactly.

use harness::model::prepare::{self, Recipe, Scheme};
use harness::model::zoo;
use harness::runner::{self, JobInput};
use harness::target;
use harness::telemetry::icount;
use std::time::Duration;

fn int8_recipe() -> Recipe {
    Recipe { scheme: Scheme::Int8 { per_channel: true }, overrides: Vec::new(), pruning: None, exits: None, weight_seed: 1, calibration: (4, 1), input_seed: 7 }
}

#[test]
fn ds_cnn_int8_on_qemu_m4_matches_the_host_and_repeats_its_counts_exactly() {
    let target = target::load(&target::targets_dir(), "qemu-m4").unwrap();
    let prepared = prepare::prepare(&zoo::build("ds-cnn").unwrap(), &int8_recipe()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let blob = dir.path().join("ds-cnn-int8.blob");
    std::fs::write(&blob, prepared.lowered.blob.as_bytes()).unwrap();
    let elf = harness::build::build_firmware(&target, &blob).unwrap();
    // Built once: the same inputs give the cached ELF without running cargo.
    assert_eq!(harness::build::build_firmware(&target, &blob).unwrap(), elf);
    let (reference, _) = prepare::reference(&prepared, &[]).unwrap();
    let job = JobInput { blob: &blob, input: &prepared.input, thresholds: &[], warmup: 1, repetitions: 3, timeout: Duration::from_secs(120) };
    let first = runner::run(&target, &elf, &job).unwrap();
    let second = runner::run(&target, &elf, &job).unwrap();
    assert_eq!(first.output, reference, "device output differs from the host reference");
    assert_eq!(first.clock, protocol::Clock::Cycles);
    assert_eq!(first.ticks_per_second, 25_000_000);
    assert!(first.ticks.iter().all(|&t| t > 0));
    // Every inference of the same input takes the same instructions, in one run and across runs.
    let shift = target.run.qemu.as_ref().unwrap().icount_shift;
    let instructions = |ticks: &[u64]| ticks.iter().map(|&t| icount::instructions(t, 25_000_000, shift)).collect::<Vec<_>>();
    let counts = instructions(&first.ticks);
    assert!(counts.windows(2).all(|w| w[0] == w[1]), "{:?} from ticks {:?}", counts, first.ticks);
    assert_eq!(counts, instructions(&second.ticks));
    assert!(first.stack_peak.is_some_and(|s| s > 0 && s < 64 * 1024), "{:?}", first.stack_peak);
    eprintln!("ds-cnn int8 on qemu-m4: {} instructions per inference, stack {:?}", counts[0], first.stack_peak);
}

#[test]
fn bench_run_on_qemu_m4_stores_exact_instruction_counts_labelled_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("s.toml");
    std::fs::write(
        &suite,
        "[suite]\nname = \"emulated\"\ntargets = [\"qemu-m4\"]\nwarmup = 1\nrepetitions = 4\n\n[[model]]\nzoo = \"autoencoder\"\n\n[[variant]]\nname = \"int8\"\nquant = { scheme = \"int8\" }\n",
    )
    .unwrap();
    let out = dir.path().join("r");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_bench")).args(["run", suite.to_str().unwrap(), "--out", out.to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let run_dir = std::fs::read_dir(out.join("emulated")).unwrap().next().unwrap().unwrap().path();
    let rows = harness::store::read_rows(&run_dir).unwrap();
    let r = &rows[0];
    assert_eq!((r.status.as_deref(), r.latency_unit.as_deref(), r.latency_source.as_deref()), (Some("ok"), Some("instructions"), Some("QEMU icount")));
    assert_eq!(r.output_matches_reference, Some(true));
    // Exact counts: no spread at all.
    assert_eq!((r.latency_min, r.latency_max, r.latency_mad), (r.latency_median, r.latency_median, Some(0.0)), "{r:?}");
}
