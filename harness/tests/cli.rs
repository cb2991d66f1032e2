//! End-to-end tests of the real `bench` binary: runs that store rows, and
//! bad input that gets one clear message and never a panic.

mod common;

use common::only_run;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bench(args: &[&str], targets: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bench"));
    cmd.args(args);
    if let Some(dir) = targets {
        cmd.env("BENCH_TARGETS", dir);
    }
    cmd.output().expect("bench starts")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const SMALL: &str = r#"[suite]
name = "small"
warmup = 2
repetitions = 7

[[model]]
zoo = "autoencoder"

[[variant]]
name = "int8"
quant = { scheme = "int8" }

[[variant]]
name = "binary"
quant = { scheme = "binary" }

[[variant]]
name = "exit"
quant = { scheme = "float32" }
exits = { at = ["dense4"], measure = "margin", thresholds = [0.0, 1.0] }
"#;

/// The latency source of a host job: the host clock, and the kernels the
/// host device program chose for this CPU.
fn host_source() -> String {
    #[cfg(target_arch = "x86_64")]
    let kernels = kernels::x86::Isa::best_available().name();
    #[cfg(not(target_arch = "x86_64"))]
    let kernels = "portable";
    format!("host clock, {kernels} kernels")
}

#[test]
fn run_stores_one_row_per_job_and_show_renders_them() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write(dir.path(), "small.toml", SMALL);
    let out = dir.path().join("results");
    let o = bench(
        &[
            "run",
            suite.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let runs: Vec<PathBuf> = std::fs::read_dir(out.join("small"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1);
    let rows = harness::results::store::read_rows(&runs[0]).unwrap();
    let jobs: Vec<&str> = rows.iter().map(|r| r.job.as_deref().unwrap()).collect();
    assert_eq!(
        jobs,
        [
            "autoencoder/int8/host",
            "autoencoder/binary/host",
            "autoencoder/exit@0/host",
            "autoencoder/exit@1/host"
        ]
    );
    for r in &rows {
        assert_eq!(r.status.as_deref(), Some("ok"), "{r:?}");
        assert!(r.latency_median.unwrap() > 0.0 && r.latency_min.unwrap() > 0.0);
        assert_eq!(
            (r.latency_n, r.latency_unit.as_deref()),
            (Some(7), Some("ns"))
        );
        assert_eq!(r.latency_source.as_deref(), Some(host_source().as_str()));
        assert_eq!(
            (
                r.arena_source.as_deref(),
                r.counts_source.as_deref(),
                r.model_bytes_source.as_deref()
            ),
            (Some("planner"), Some("model"), Some("blob"))
        );
        assert_eq!(r.output_matches_reference, Some(true), "{r:?}");
    }
    // Autoencoder: 264,192 MACs; binary keeps dense1 and output int8 (640x128 + 128x640).
    assert_eq!(rows[0].macs, Some(264_192));
    assert_eq!(
        (rows[1].macs, rows[1].binary_ops),
        (Some(2 * 81_920), Some(264_192 - 2 * 81_920))
    );
    // Margin >= 0 always exits at the head; margin >= 1 never does.
    assert_eq!(rows[2].exit_counts.as_deref(), Some("head0:7 final:0"));
    assert_eq!(rows[3].exit_counts.as_deref(), Some("head0:0 final:7"));
    // The CSV holds the same rows; the manifest says where they came from.
    let csv = std::fs::read_to_string(runs[0].join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + rows.len());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runs[0].join("manifest.json")).unwrap())
            .unwrap();
    for key in [
        "git_commit",
        "rustc",
        "host",
        "suite",
        "targets",
        "started",
        "finished",
    ] {
        assert!(!manifest[key].is_null(), "manifest lacks {key}");
    }
    assert_eq!(manifest["suite"]["sha256"].as_str().unwrap().len(), 64);
    // The commit is the source's when the run started (read once, then).
    let head = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(head) = head {
        assert_eq!(manifest["git_commit"].as_str(), Some(head.as_str()));
    }
    let host = &manifest["targets"][0];
    assert_eq!(
        (
            host["device_programs"][0]["model"].is_null(),
            host["device_programs"][0]["sha256"].as_str().map(str::len)
        ),
        (true, Some(64))
    );
    let shown = bench(&["show", runs[0].to_str().unwrap(), "--format", "md"], None);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("| autoencoder | exit @1 "), "{text}");
    assert!(
        text.contains(&format!(
            "host latency: {} (ns), median ± MAD of 7 runs after 2 warm-up",
            host_source()
        )),
        "{text}"
    );
}

/// Runs the small suite with `extra` arguments in `dir`; its run directory.
fn small_run(dir: &Path, extra: &[&str]) -> PathBuf {
    let suite = write(dir, "small.toml", SMALL);
    let out = dir.join("results");
    let args = [
        "run",
        suite.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let o = bench(&[&args[..], extra].concat(), None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    only_run(&out.join("small"))
}

#[test]
fn profile_stores_every_layer_of_every_job_and_show_renders_them() {
    let dir = tempfile::tempdir().unwrap();
    let run = small_run(dir.path(), &["--profile"]);
    let layers = harness::results::store::read_layers(&run).unwrap();
    let of = |job: &str| {
        layers
            .iter()
            .filter(|l| l.job.as_deref() == Some(job))
            .map(|l| l.layer.clone().unwrap())
            .collect::<Vec<_>>()
    };
    let dense: Vec<String> = (1..=9)
        .map(|i| format!("dense{i}"))
        .chain(["output".to_string()])
        .collect();
    assert_eq!(of("autoencoder/int8/host"), dense);
    // Threshold 0 leaves at the head after dense4: the profile stops there.
    assert_eq!(
        of("autoencoder/exit@0/host"),
        ["dense1", "dense2", "dense3", "dense4", "exit1.fc", "head0"]
    );
    assert_eq!(of("autoencoder/exit@1/host").len(), 12);
    for l in &layers {
        assert!(
            l.count.unwrap() > 0.0 && l.unit.as_deref() == Some("ns"),
            "{l:?}"
        );
        assert_eq!(
            l.source.as_deref(),
            Some(format!("{}, median of 9 profiled inferences", host_source()).as_str())
        );
    }
    assert_eq!(
        std::fs::read_to_string(run.join("layers.csv"))
            .unwrap()
            .lines()
            .count(),
        1 + layers.len()
    );
    let shown = bench(&["show", run.to_str().unwrap(), "--format", "md"], None);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("per-layer profile of autoencoder/binary/host")
            && text.contains("| 0  | dense1 "),
        "{text}"
    );
    // The same profiles as one table, each variant's layers against int8's.
    let args = ["report", run.to_str().unwrap(), "--layers"];
    let o = bench(
        &[
            &args[..],
            &["--relative-to", "variant=int8", "--format", "csv"],
        ]
        .concat(),
        None,
    );
    let table = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let header = table.lines().next().unwrap();
    assert!(header.starts_with("model,target,layer,"), "{table}");
    assert!(
        header.contains("binary (x)") && header.contains("int8 (x)"),
        "{table}"
    );
    let dense1 = table
        .lines()
        .find(|l| l.starts_with("autoencoder,host,dense1,"))
        .unwrap();
    assert!(dense1.contains(",1.00"), "{table}");
}

#[test]
fn layer_reports_need_profiled_runs() {
    let dir = tempfile::tempdir().unwrap();
    let run = small_run(dir.path(), &["--only", "autoencoder/int8/*"]);
    let o = bench(&["report", run.to_str().unwrap(), "--layers"], None);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains(
            "--layers: no profiled operators in these runs; run `bench run --profile` first"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_failed_job_is_stored_with_its_reason_and_the_rest_run() {
    let dir = tempfile::tempdir().unwrap();
    // A second target whose device program cannot be built: its jobs fail, the host's run.
    let targets = dir.path().join("targets");
    std::fs::create_dir(&targets).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets/host.toml"),
        targets.join("host.toml"),
    )
    .unwrap();
    let broken = std::fs::read_to_string(targets.join("host.toml"))
        .unwrap()
        .replace("name = \"host\"", "name = \"broken\"")
        .replace("bench-firmware-host", "no-such-package");
    write(&targets, "broken.toml", &broken);
    let suite = write(
        dir.path(),
        "s.toml",
        &SMALL.replace(
            "repetitions = 7",
            "repetitions = 3\ntargets = [\"host\", \"broken\"]",
        ),
    );
    let out = dir.path().join("results");
    let o = bench(
        &[
            "run",
            suite.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--only",
            "*/int8/*",
        ],
        Some(&targets),
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 of 2 jobs failed"), "{}", stderr(&o));
    let rows = harness::results::store::read_rows(&only_run(&out.join("small"))).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].job.as_deref(), rows[0].status.as_deref()),
        (Some("autoencoder/int8/host"), Some("ok"))
    );
    assert_eq!(
        (rows[1].job.as_deref(), rows[1].status.as_deref()),
        (Some("autoencoder/int8/broken"), Some("failed"))
    );
    assert!(
        rows[1]
            .error
            .as_deref()
            .unwrap()
            .starts_with("failed to build no-such-package for "),
        "{:?}",
        rows[1].error
    );
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("FAILED autoencoder/int8/broken: failed to build no-such-package"),
        "{table}"
    );
}

/// Each bad suite, and the exact first line of the message it gets.
#[test]
fn bad_suites_get_one_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, String, &str); 13] = [
        ("unknown key", SMALL.replace("warmup = 2", "warmpu = 2"), "s.toml:3:1: unknown field `warmpu`, expected one of `name`, `description`, `targets`, `runtimes`, `warmup`, `repetitions`, `timeout`\n  help: did you mean `warmup`?"),
        ("wrong type", SMALL.replace("repetitions = 7", "repetitions = \"seven\""), "s.toml:4:15: invalid type: string \"seven\", expected u32"),
        ("missing model", SMALL.replace("name = \"binary\"", "name = \"binary\"\nmodels = [\"autoencodr\"]"), "s.toml:15:11: variant `binary` names model `autoencodr`, which the suite does not define\n  help: did you mean `autoencoder`?"),
        ("unknown zoo model", SMALL.replace("zoo = \"autoencoder\"", "zoo = \"resnet-8\""), "s.toml:7:7: unknown zoo model `resnet-8`; the zoo has ds-cnn, resnet8, mobilenet-v1-0.25, autoencoder, micro-speech, dnn-kws, binarynet-cifar\n  help: did you mean `resnet8`?"),
        ("threshold out of range", SMALL.replace("thresholds = [0.0, 1.0]", "thresholds = [0.0, 1.5]"), "s.toml:20:67: threshold 1.5 is outside [0, 1.0000], the range of margin for 640 classes"),
        ("duplicate variant", SMALL.replace("name = \"binary\"", "name = \"int8\""), "s.toml:14:8: duplicate variant name `int8`"),
        ("pruning ratio 1.0", SMALL.replace("quant = { scheme = \"binary\" }", "quant = { scheme = \"int8\" }\nprune = { method = \"channels\", ratio = 1.0 }"), "s.toml:16:40: ratio = 1 is outside [0, 1): 1.0 would remove everything"),
        ("unknown layer", SMALL.replace("at = [\"dense4\"]", "at = [\"dense44\"]"), "s.toml:20:17: exits.at: model `autoencoder` has no layer `dense44`\n  help: did you mean `dense4`?"),
        ("unknown runtime", SMALL.replace("warmup = 2", "warmup = 2\nruntimes = [\"bench\", \"tflm-cmsis\"]"), "s.toml:4:22: unknown runtime `tflm-cmsis`; bench runs bench, bench-dut, tflm, tflm-cmsis-nn, litert, litert-ref, lce, or a [[dut]] the suite names\n  help: did you mean `tflm-cmsis-nn`?"),
        ("missing dut firmware", SMALL.replace("warmup = 2", "warmup = 2\nruntimes = [\"bench\", \"vendor\"]") + "\n[[dut]]\nname = \"vendor\"\nelf = \"vendor.elf\"\n", "s.toml:25:7: [[dut]] `vendor`: no such firmware file vendor.elf"),
        ("dut named like a built-in", SMALL.replace("warmup = 2", "warmup = 2\nruntimes = [\"bench\", \"tflm\"]") + "\n[[dut]]\nname = \"tflm\"\nelf = \"s.toml\"\n", "s.toml:24:8: runtime `tflm` is already defined: a [[dut]] needs a name of its own"),
        ("dut firmware for an unknown model", SMALL.to_string() + "\n[[dut]]\nname = \"vendor\"\nelf = { autoencoder = \"s.toml\", kws = \"s.toml\" }\n", "s.toml:24:7: [[dut]] `vendor` names an ELF for model `kws`, which the suite does not have"),
        ("empty suite", "[suite]\nname = \"empty\"\n".into(), "s.toml: the suite has no [[model]]: add at least one, e.g. [[model]] zoo = \"ds-cnn\""),
    ];
    for (what, text, expected) in cases {
        let suite = write(dir.path(), "s.toml", &text);
        let out = dir.path().join("r");
        for args in [
            vec!["validate", suite.to_str().unwrap()],
            vec![
                "run",
                suite.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
        ] {
            let o = bench(&args, None);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{what}: {err}");
            let first = err.strip_prefix("error: ").unwrap_or(&err);
            let shown = first.replace(&format!("{}/", dir.path().display()), "");
            assert!(
                shown.starts_with(expected),
                "{what}:\n{shown}\nexpected:\n{expected}"
            );
            assert!(!err.contains("panicked"), "{what}: {err}");
        }
    }
    assert!(
        !dir.path().join("r").exists(),
        "invalid suites must not create a run"
    );
}

#[test]
fn missing_target_and_missing_file_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write(
        dir.path(),
        "s.toml",
        &SMALL.replace("repetitions = 7", "repetitions = 7\ntargets = [\"hots\"]"),
    );
    let o = bench(&["validate", suite.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("unknown target `hots`: no such file (targets here: host, nrf52840-dk, nucleo-f446re, nucleo-h743zi, nucleo-l4r5zi, pico, qemu-m0, qemu-m3, qemu-m33, qemu-m4, qemu-m55, qemu-m7, qemu-rv32)")
            && err.contains("help: did you mean `host`?"),
        "{err}"
    );
    let o = bench(&["run", "no/such/suite.toml"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with(
            "error: no/such/suite.toml: failed to read the suite: No such file or directory"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn list_shows_targets_and_models() {
    let o = bench(&["list", "models"], None);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("ds-cnn")
            && text.contains("2,656,768 MACs")
            && text.contains("39,160,320 MACs")
            && !text.contains("binary ops"),
        "{text}"
    );
    let o = bench(&["list", "targets"], None);
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("host "),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// The worked example in docs/suite.md is a valid suite with the jobs it says.
#[test]
fn documented_example_validates() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/suite.md"))
            .unwrap();
    let example = doc
        .split("```toml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let suite = write(dir.path(), "example.toml", example);
    let o = bench(&["validate", suite.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("1 models, 8 variants, 1 targets, 10 jobs")
            && text.contains("  kws/exits@0.8/host"),
        "{text}"
    );
}

fn kws_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/mlperf-tiny/kws_ref_model.tflite")
}

/// A suite over one imported model, with these variants.
fn imported_suite(model: &Path, variants: &str) -> String {
    format!(
        "[suite]\nname = \"imported\"\nwarmup = 1\nrepetitions = 3\n\n[[model]]\nname = \"kws\"\nsource = {{ tflite = \"{}\" }}\n\n{variants}",
        model.display()
    )
}

#[test]
fn imported_model_runs_every_variant_axis_it_supports() {
    let dir = tempfile::tempdir().unwrap();
    let variants = r#"[[variant]]
name = "as-is"

[[variant]]
name = "float32"
quant = { scheme = "float32" }

[[variant]]
name = "int4"
quant = { scheme = "int4" }

[[variant]]
name = "sparse"
prune = { method = "magnitude", sparsity = 0.8 }

[[variant]]
name = "exit"
exits = { at = ["conv_2d_4"], thresholds = [0.5] }
"#;
    let suite = write(
        dir.path(),
        "s.toml",
        &imported_suite(&kws_model(), variants),
    );
    let out = dir.path().join("r");
    let o = bench(
        &[
            "run",
            suite.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    let table = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{table}{}", stderr(&o));
    for id in ["as-is", "float32", "int4", "sparse", "exit"] {
        assert!(
            table.contains(&format!("│ kws   ┆ {id}")),
            "{id} missing:\n{table}"
        );
    }
    assert!(table.contains("2,656,768"), "{table}");
}

#[test]
fn imported_model_errors_name_the_suite_line_and_the_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(kws_model()).unwrap();
    let truncated = write(dir.path(), "truncated.tflite", "");
    std::fs::write(&truncated, &bytes[..2000]).unwrap();
    let as_is = "[[variant]]\nname = \"as-is\"\n";
    let cases = [
        (
            imported_suite(&truncated, as_is),
            "s.toml:8:10: failed to import truncated.tflite: not a valid TFLite flatbuffer (".to_string(),
        ),
        (
            imported_suite(&dir.path().join("missing.tflite"), as_is),
            "s.toml:8:10: failed to read missing.tflite: No such file or directory".to_string(),
        ),
        (
            imported_suite(&kws_model(), "[[variant]]\nname = \"pruned\"\nprune = { method = \"channels\", ratio = 0.5 }\n"),
            "s.toml:11:8: variant `pruned`: failed to prepare the model: model 'kws_ref_model' is an imported int8 model: channel pruning changes the activation ranges".to_string(),
        ),
        (
            imported_suite(&kws_model(), "[[variant]]\nname = \"pt\"\nquant = { scheme = \"int8\", granularity = \"per-tensor\" }\n"),
            "s.toml:11:8: variant `pt`: failed to prepare the model: model 'kws_ref_model' is an imported int8 model: its weight granularity is fixed".to_string(),
        ),
        (
            imported_suite(&kws_model(), "[[variant]]\nname = \"e\"\nexits = { at = [\"conv2d_4\"], thresholds = [0.5] }\n"),
            "s.toml:12:17: exits.at: model `kws_ref_model` has no layer `conv2d_4`\n  help: did you mean `conv_2d_4`?".to_string(),
        ),
    ];
    for (text, expected) in cases {
        let suite = write(dir.path(), "s.toml", &text);
        let o = bench(&["validate", suite.to_str().unwrap()], None);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        let shown = err
            .strip_prefix("error: ")
            .unwrap_or(&err)
            .replace(&format!("{}/", dir.path().display()), "");
        let shown = shown.replace(&format!("{}/", kws_model().parent().unwrap().display()), "");
        assert!(
            shown.starts_with(&expected),
            "{shown}\nexpected:\n{expected}"
        );
    }
}

/// Writes an int8 array of `shape` in .npy format with numpy's header layout.
fn write_npy_i8(path: &Path, shape: &[u64], values: &[i8]) {
    use npyz::WriterBuilder;
    let mut file = std::fs::File::create(path).unwrap();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut file)
        .begin_nd()
        .unwrap();
    w.extend(values.iter().copied()).unwrap();
    w.finish().unwrap();
}

#[test]
fn infer_reproduces_the_tflite_goldens_and_refuses_wrong_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/kws_ref_model");
    let out = dir.path().join("out.npy");
    let model = kws_model();
    let o = bench(
        &[
            "infer",
            model.to_str().unwrap(),
            "--input",
            golden.join("inputs.npy").to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("24 inputs on host; outputs [24, 12] written to"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let read = |p: &Path| {
        let npy = npyz::NpyFile::new(std::fs::File::open(p).unwrap()).unwrap();
        (npy.shape().to_vec(), npy.into_vec::<i8>().unwrap())
    };
    assert_eq!(read(&out), read(&golden.join("outputs.npy")));

    // Extents of 1 may be left out ([N, 49, 10] is the same layout), but
    // other axes may not be swapped.
    let squeezed = dir.path().join("squeezed.npy");
    write_npy_i8(&squeezed, &[2, 49, 10], &[0; 980]);
    let o = bench(
        &[
            "infer",
            model.to_str().unwrap(),
            "--input",
            squeezed.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let wrong = dir.path().join("wrong.npy");
    write_npy_i8(&wrong, &[2, 10, 49], &[0; 980]);
    let o = bench(
        &[
            "infer",
            model.to_str().unwrap(),
            "--input",
            wrong.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o).replace(&format!("{}/", dir.path().display()), "");
    assert_eq!(
        err.trim_end(),
        "error: wrong.npy holds int8 [2, 10, 49]; the model input 'input_1' is int8 [49, 10, 1]: give int8 [N, 49, 10, 1] (or exactly [49, 10, 1] for one input)"
    );
    let o = bench(
        &[
            "infer",
            "ds-cnn",
            "--input",
            golden.join("inputs.npy").to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o)
            .contains("holds int8 [24, 49, 10, 1]; the model input 'input' is float32 [49, 10, 1]"),
        "{}",
        stderr(&o)
    );
}

/// Asking the host device program for kernels it does not have fails the
/// job with its own words, and the run goes on to store the failure.
#[test]
fn an_unknown_host_kernel_level_is_a_clear_job_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let suite = write(dir.path(), "small.toml", SMALL);
    let o = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "run",
            suite.to_str().unwrap(),
            "--only",
            "autoencoder/int8/host",
            "--out",
            out.to_str().unwrap(),
        ])
        .env("BENCH_HOST_ISA", "sse9")
        .output()
        .unwrap();
    let runs: Vec<PathBuf> = std::fs::read_dir(out.join("small"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let rows = harness::results::store::read_rows(&runs[0]).unwrap();
    assert_eq!(rows.len(), 1, "{}", stderr(&o));
    assert_eq!(rows[0].status.as_deref(), Some("failed"));
    let error = rows[0].error.as_deref().unwrap();
    assert!(error.contains("failed to select kernels: BENCH_HOST_ISA=sse9 is not one of portable, avx2, avx512-vnni"), "{error}");
}

/// A suite that names peer runtimes: each variant gets a job per runtime,
/// the peers' ids end in the runtime, and a peer that cannot run a job
/// (no snapshot of its sources; a variant that changes the model) fails
/// that job with the reason while bench's jobs run.
#[test]
fn peer_runtimes_are_jobs_of_their_own_that_fail_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/mlperf-tiny/kws_ref_model.tflite");
    let suite = write(
        dir.path(),
        "peers.toml",
        &format!(
            "[suite]\nname = \"peers\"\ntargets = [\"host\", \"qemu-m4\"]\nruntimes = [\"bench\", \"tflm-cmsis-nn\", \"litert\"]\nwarmup = 1\nrepetitions = 2\n\n[[model]]\nname = \"kws\"\nsource = {{ tflite = \"{}\" }}\n\n[[variant]]\nname = \"as-imported\"\n\n[[variant]]\nname = \"float32\"\nquant = {{ scheme = \"float32\" }}\n",
            model.display()
        ),
    );
    let o = bench(&["validate", suite.to_str().unwrap()], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let listed = String::from_utf8_lossy(&o.stdout).into_owned();
    let ids: Vec<&str> = listed.lines().skip(1).map(str::trim).collect();
    // Each runtime where its kind runs: TFLM on QEMU, LiteRT on the host.
    assert_eq!(
        ids,
        [
            "kws/as-imported/host",
            "kws/as-imported/host/litert",
            "kws/float32/host",
            "kws/float32/host/litert",
            "kws/as-imported/qemu-m4",
            "kws/as-imported/qemu-m4/tflm-cmsis-nn",
            "kws/float32/qemu-m4",
            "kws/float32/qemu-m4/tflm-cmsis-nn"
        ]
    );
    assert_eq!(
        stderr(&o),
        "note: tflm-cmsis-nn runs on emulated Cortex-M and RV32 targets (QEMU) only for now: no jobs on host\nnote: litert runs on the host target only: no jobs on qemu-m4\n"
    );
    let out = dir.path().join("r");
    let o = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "run",
            suite.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            // bench's own firmware for the M4 is other tests' business.
            "--only",
            "{*/host,*/host/*,*/qemu-m4/tflm-cmsis-nn}",
        ])
        .env_remove("BENCH_PEERS_DIR")
        .env("BENCH_PYTHON", dir.path().join("no-python"))
        .output()
        .unwrap();
    let err = stderr(&o);
    // Exit code 3: jobs failed.
    assert_eq!(o.status.code(), Some(3), "{err}");
    let rows = harness::results::store::read_rows(&only_run(&out.join("peers"))).unwrap();
    let by_id = |id: &str| rows.iter().find(|r| r.job.as_deref() == Some(id)).unwrap();
    for id in ["kws/as-imported/host", "kws/float32/host"] {
        assert_eq!(by_id(id).status.as_deref(), Some("ok"), "{id}");
        assert_eq!(by_id(id).runtime.as_deref(), Some("bench"));
    }
    let missing = by_id("kws/as-imported/qemu-m4/tflm-cmsis-nn");
    assert_eq!(missing.runtime.as_deref(), Some("tflm-cmsis-nn"));
    assert_eq!(missing.status.as_deref(), Some("failed"));
    assert!(
        missing
            .error
            .as_deref()
            .unwrap()
            .starts_with("failed to build tflm-cmsis-nn for qemu-m4: BENCH_PEERS_DIR is not set"),
        "{:?}",
        missing.error
    );
    let changed = by_id("kws/float32/qemu-m4/tflm-cmsis-nn");
    assert_eq!(
        changed.error.as_deref(),
        Some("tflm-cmsis-nn runs the model as it is: variant `float32` of `kws` changes it (quant, prune, exits or a memory schedule); only a variant without them runs on tflm-cmsis-nn")
    );
    // No Python: the job says how to install LiteRT.
    let litert = by_id("kws/as-imported/host/litert").error.clone().unwrap();
    assert!(
        litert.starts_with("failed to start ")
            && litert.contains("no-python for LiteRT: No such file or directory")
            && litert.ends_with("set BENCH_PYTHON to a Python that has them"),
        "{litert}"
    );
}

/// A device that breaks the MLPerf Tiny DUT protocol in each way a real one
/// can (a scripted DUT standing in for LiteRT's process) fails its own job
/// with what went wrong; bench's job beside it runs.
#[test]
fn a_dut_that_breaks_the_protocol_fails_its_job_with_what_went_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/mlperf-tiny/kws_ref_model.tflite");
    let scripted = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scripted-dut.sh");
    let suite = write(
        dir.path(),
        "dut.toml",
        &format!(
            "[suite]\nname = \"dut\"\nruntimes = [\"bench\", \"litert\"]\nwarmup = 0\nrepetitions = 2\ntimeout = 3\n\n[[model]]\nname = \"kws\"\nsource = {{ tflite = \"{}\" }}\n\n[[variant]]\nname = \"as-imported\"\n",
            model.display()
        ),
    );
    let cases: [(&str, &[&str], &str); 5] = [
        ("silent", &[], "failed to get m-ready after `start-up` within 3 s; the device said: m-timestamp-mode-performance | m-lap-us-0 | m-init-done"),
        ("short-load", &[], "failed to read the device's answer to `db`: no m-load-done after the last bytes"),
        ("garbage", &[], "failed to read the device's answer to `infer 1 0`: a timestamp is not a number of microseconds (invalid digit found in string)"),
        ("reset", &[], "failed to read the device's answer to `infer 1 0`: the second timestamp (100 us) is before the first (900000 us): the device's clock wrapped or reset"),
        ("short-window", &["--mlperf", "--only", "*/litert"], "window 1 of 5 lasted 9.000 s by the device's clock (6 inferences): MLPerf Tiny's run rules need at least 10 s; the device's clock or its inference time changed since the first timing"),
    ];
    // Runs the suite against the scripted DUT in `mode`; returns the exit code and rows.
    let run = |mode: &str, flags: &[&str]| {
        let out = dir.path().join(mode);
        let o = Command::new(env!("CARGO_BIN_EXE_bench"))
            .args([
                "run",
                suite.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ])
            .args(flags)
            .env("BENCH_PYTHON", &scripted)
            .env("BENCH_SCRIPTED_DUT", mode)
            .output()
            .unwrap();
        let rows = harness::results::store::read_rows(&only_run(&out.join("dut"))).unwrap();
        (o.status.code(), rows, stderr(&o))
    };
    for (mode, flags, expected) in cases {
        let (code, rows, err) = run(mode, flags);
        assert_eq!(code, Some(3), "{mode}: {err}");
        let of = |runtime: &str| rows.iter().find(|r| r.runtime.as_deref() == Some(runtime));
        // bench's job beside it runs (under --mlperf it would take 50 s: left out).
        if let Some(bench) = of("bench") {
            assert_eq!(bench.status.as_deref(), Some("ok"), "{mode}: bench's job");
        }
        let dut = of("litert").unwrap();
        assert_eq!(
            (dut.status.as_deref(), dut.error.as_deref()),
            (Some("failed"), Some(expected)),
            "{mode}"
        );
    }
    // A device that keeps the protocol: 100 us per inference, in windows
    // of 105 (10 ms with 5% to spare after a first timing of 10).
    let (code, rows, err) = run("good", &[]);
    assert_eq!(code, Some(0), "{err}");
    let good = &rows[1];
    assert_eq!(good.latency_median, Some(100_000.0));
    assert_eq!(good.latency_n, Some(2));
    assert!(good
        .latency_source
        .as_deref()
        .unwrap()
        .ends_with("MLPerf Tiny DUT windows of 105 inferences (at least 10 ms each), the mean inference of each"));
    // Zero bytes are not KWS's output: XNNPACK's is compared, not required.
    assert_eq!(good.output_matches_reference, Some(false));
}

/// The bring-your-own suite plans its PyTorch exports, and says that their
/// NCHW data is transposed at the boundary.
#[test]
fn bring_your_own_suite_notes_the_nchw_boundary() {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/bring-your-own.toml");
    let o = bench(&["validate", suite.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("14 models, 22 variants, 2 targets, 44 jobs"),
        "{text}"
    );
    assert!(
        stderr(&o).contains("note: model `cnn-qdq` is NCHW: its inputs (dataset samples too) are read as [3, 16, 16] and transposed once to bench's NHWC at the input"),
        "{}",
        stderr(&o)
    );
}
