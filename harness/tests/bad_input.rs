//! The bad-input catalogue: every broken file, name, number and setting a
//! hostile trial found, run through the real `bench` binary. Each gets one
//! readable message (checked to the letter, the temporary directory's path
//! left out), its documented exit code, no panic, and nothing written
//! outside the results directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const BASE: &str =
    "[suite]\nname = \"bad\"\nwarmup = 1\nrepetitions = 2\n\n[[model]]\nzoo = \"autoencoder\"\n\n[[variant]]\nname = \"int8\"\nquant = { scheme = \"int8\" }\n";

/// Every file under `dir`, except the results directory `out`.
fn files(dir: &Path, out: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.starts_with(out) {
                continue;
            }
            if path.is_dir() {
                stack.push(path.clone());
            }
            found.insert(path);
        }
    }
    found
}

fn write_npy(path: &Path, shape: &[u64], values: &[f32], trailing: &[u8]) {
    use npyz::WriterBuilder;
    let mut bytes = Vec::new();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut bytes)
        .begin_nd()
        .unwrap();
    w.extend(values.iter().copied()).unwrap();
    w.finish().unwrap();
    bytes.extend_from_slice(trailing);
    std::fs::write(path, bytes).unwrap();
}

/// A `.npy` whose header claims `shape` (any text) over a few bytes of data.
fn write_npy_header(path: &Path, shape: &str) {
    let mut text = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + text.len() + 1) % 64 != 0 {
        text.push(' ');
    }
    text.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((text.len() as u16).to_le_bytes());
    bytes.extend(text.as_bytes());
    bytes.extend([0u8; 64]);
    std::fs::write(path, bytes).unwrap();
}

struct Case {
    what: &'static str,
    /// Files to write into the work directory: (name, text).
    files: Vec<(&'static str, String)>,
    args: Vec<&'static str>,
    code: i32,
    message: &'static str,
}

fn suite(edit: impl Fn(&str) -> String) -> Vec<(&'static str, String)> {
    vec![("s.toml", edit(BASE))]
}

fn catalogue() -> Vec<Case> {
    let validate = || vec!["validate", "s.toml"];
    let with = |what, files, code, message| Case {
        what,
        files,
        args: validate(),
        code,
        message,
    };
    vec![
        with("suite named ..", suite(|s| s.replace("name = \"bad\"", "name = \"..\"")), 2, "s.toml:2:8: suite name: \"..\" is not a usable name: names are 1 to 64 letters, digits, '-', '_' or '.', starting with a letter, digit or '_' (they name files of the run)"),
        with("model name escaping the run", suite(|s| s.replace("zoo = \"autoencoder\"", "zoo = \"autoencoder\"\nname = \"../../../../esc-model\"")), 2, "s.toml:8:8: model name: \"../../../../esc-model\" is not a usable name"),
        with("absolute model name", suite(|s| s.replace("zoo = \"autoencoder\"", "zoo = \"autoencoder\"\nname = \"/tmp/x\"")), 2, "s.toml:8:8: model name: \"/tmp/x\" is not a usable name"),
        with("empty model name", suite(|s| s.replace("zoo = \"autoencoder\"", "zoo = \"autoencoder\"\nname = \"\"")), 2, "s.toml:8:8: model name: \"\" is not a usable name"),
        with("model name with a newline", suite(|s| s.replace("zoo = \"autoencoder\"", "zoo = \"autoencoder\"\nname = \"a\\nb\"")), 2, "s.toml:8:8: model name: \"a\\nb\" is not a usable name"),
        with("variant name with a slash", suite(|s| s.replace("name = \"int8\"", "name = \"a/b\"")), 2, "s.toml:10:8: variant name: \"a/b\" is not a usable name"),
        with("target listed twice", suite(|s| s.replace("repetitions = 2", "repetitions = 2\ntargets = [\"host\", \"host\"]")), 2, "s.toml:5:20: target `host` is listed twice: each job id must be unique"),
        with("no targets", suite(|s| s.replace("repetitions = 2", "repetitions = 2\ntargets = []")), 2, "s.toml:5:11: [suite] targets = [] names no target: list at least one, or leave the key out to run on the host"),
        with("target name escaping targets/", suite(|s| s.replace("repetitions = 2", "repetitions = 2\ntargets = [\"../x\"]")), 2, "s.toml:5:12: target: \"../x\" is not a usable name"),
        with("timeout overflowing Instant", suite(|s| s.replace("repetitions = 2", "repetitions = 2\ntimeout = 9223372036854775807")), 2, "s.toml:5:11: timeout (seconds) = 9223372036854775807 is outside 1..=604800"),
        with("repetitions past the bound", suite(|s| s.replace("repetitions = 2", "repetitions = 4000000000")), 2, "s.toml:4:15: repetitions = 4000000000 is outside 1..=1000000"),
        with("zero calibration samples", suite(|s| s.replace("scheme = \"int8\" }", "scheme = \"int8\", calibration = { samples = 0 } }")), 2, "s.toml:11:54: calibration samples = 0 is outside 1..=10000"),
        with("calibration that would run for hours", suite(|s| s.replace("scheme = \"int8\" }", "scheme = \"int8\", calibration = { samples = 100000000 } }")), 2, "s.toml:11:54: calibration samples = 100000000 is outside 1..=10000"),
        with("keep on int8", suite(|s| s.replace("scheme = \"int8\" }", "scheme = \"int8\", keep = [\"dense1\"] }")), 2, "s.toml:11:36: quant.keep names the layers a binary scheme keeps in int8; it does not apply here: remove it or use scheme = \"binary\""),
        with("sparsity with channel pruning", suite(|s| s.replace("scheme = \"int8\" }", "scheme = \"int8\" }\nprune = { method = \"channels\", ratio = 0.5, sparsity = 0.5 }")), 2, "s.toml:12:20: method = \"channels\" does not take sparsity, block and sparse-kernels (the other methods' keys): remove it, or change the method"),
        with("block pruning without a block", suite(|s| s.replace("scheme = \"int8\" }", "scheme = \"int8\" }\nprune = { method = \"block\", sparsity = 0.5 }")), 2, "s.toml:12:20: block pruning needs `block = [output channels, inputs]`, e.g. [1, 4]"),
        with("a block of one weight", suite(|s| s.replace("scheme = \"int8\" }", "scheme = \"int8\" }\nprune = { method = \"block\", block = [1, 1], sparsity = 0.5 }")), 2, "s.toml:12:37: block = [1, 1] zeroes single weights: use method = \"magnitude\""),
        with("a block of three sizes", suite(|s| s.replace("scheme = \"int8\" }", "scheme = \"int8\" }\nprune = { method = \"block\", block = [1, 4, 2], sparsity = 0.5 }")), 2, "s.toml:12:37: block = [1, 4, 2]: give [output channels, inputs], two sizes of at least 1"),
        with("a block of size 0", suite(|s| s.replace("scheme = \"int8\" }", "scheme = \"int8\" }\nprune = { method = \"block\", block = [0, 4], sparsity = 0.5 }")), 2, "s.toml:12:37: block = [0, 4]: give [output channels, inputs], two sizes of at least 1"),
        with("a block on magnitude pruning", suite(|s| s.replace("scheme = \"int8\" }", "scheme = \"int8\" }\nprune = { method = \"magnitude\", block = [1, 4], sparsity = 0.5 }")), 2, "s.toml:12:20: method = \"magnitude\" does not take ratio, objective or block (channel and block pruning's keys): remove it, or change the method"),
        with("a memory objective on magnitude pruning", suite(|s| s.replace("scheme = \"int8\" }", "scheme = \"int8\" }\nprune = { method = \"magnitude\", sparsity = 0.5, objective = \"peak-sram\" }")), 2, "s.toml:12:20: method = \"magnitude\" does not take ratio, objective or block (channel and block pruning's keys): remove it, or change the method"),
        with("block pruning without a sparsity", suite(|s| s.replace("scheme = \"int8\" }", "scheme = \"int8\" }\nprune = { method = \"block\", block = [1, 4] }")), 2, "s.toml:12:20: this pruning method needs `sparsity`, a fraction in [0, 1)"),
        with("the same exit layer twice", suite(|s| s.replace("scheme = \"int8\" }", "scheme = \"float32\" }\nexits = { at = [\"dense4\", \"dense4\"], thresholds = [0.5] }")), 2, "s.toml:12:27: exits.at names layer `dense4` twice: one head per layer"),
        with("the same threshold twice", suite(|s| s.replace("scheme = \"int8\" }", "scheme = \"float32\" }\nexits = { at = [\"dense4\"], thresholds = [0.5, 0.5] }")), 2, "s.toml:12:47: threshold 0.5 is listed twice: each job id must be unique"),
        with("a tflite key on an ONNX file", suite(|s| s.replace("zoo = \"autoencoder\"", "source = { tflite = \"m.onnx\" }")).into_iter().chain([("m.onnx", String::from("\u{8}\u{7}\u{12}\u{4}onnx"))]).collect(), 2, "s.toml:7:10: failed to import m.onnx: it is declared `tflite` but is not a TFLite flatbuffer (no TFL3 identifier at byte 4); for an ONNX model write onnx = \"...\""),
        with("a dataset limit of 0", suite(|s| format!("{}\n[[dataset]]\nname = \"d\"\npath = \"x.npy\"\nlimit = 0\n", s.replace("zoo = \"autoencoder\"", "zoo = \"autoencoder\"\ndataset = \"d\""))), 2, "s.toml:17:9: limit = 0 keeps no sample: give at least 1, or leave the key out to use them all"),
        with("a .npy header with a huge shape", suite(|s| format!("{}\n[[dataset]]\nname = \"d\"\npath = \"huge.npy\"\n", s.replace("zoo = \"autoencoder\"", "zoo = \"autoencoder\"\ndataset = \"d\""))), 2, "s.toml:16:8: failed to read dataset `d` from huge.npy: its shape (18446744073709551615, 49, 10, 1) has more elements than any file can hold"),
        with("trailing bytes after .npy data", suite(|s| format!("{}\n[[dataset]]\nname = \"d\"\npath = \"trail.npy\"\n", s.replace("zoo = \"autoencoder\"", "zoo = \"autoencoder\"\ndataset = \"d\""))), 2, "s.toml:16:8: failed to read dataset `d` from trail.npy: it has 4 bytes after the data that shape [3, 640] of <f4 describes (7680 bytes)"),
        with("a FIFO as the model", suite(|s| s.replace("zoo = \"autoencoder\"", "source = { tflite = \"fifo.tflite\" }")), 2, "s.toml:7:10: failed to read fifo.tflite: it is not a regular file (a FIFO, socket or device)"),
        Case { what: "--target twice", files: suite(|s| s.to_string()), args: vec!["run", "s.toml", "--target", "host", "--target", "host", "--out", "out"], code: 2, message: "--target host is given twice: each job id must be unique" },
        Case { what: "infer: huge .npy shape", files: vec![], args: vec!["infer", "autoencoder", "--input", "huge.npy", "--output", "out/o.npy"], code: 2, message: "failed to read huge.npy: its shape (18446744073709551615, 49, 10, 1) has more elements than any file can hold" },
        Case { what: "infer: trailing bytes", files: vec![], args: vec!["infer", "autoencoder", "--input", "trail.npy", "--output", "out/o.npy"], code: 2, message: "failed to read trail.npy: it has 4 bytes after the data that shape [3, 640] of <f4 describes (7680 bytes)" },
        Case { what: "infer: a FIFO as input", files: vec![], args: vec!["infer", "autoencoder", "--input", "fifo.tflite", "--output", "out/o.npy"], code: 2, message: "failed to read fifo.tflite: it is not a regular file (a FIFO, socket or device)" },
        Case { what: "infer: unwritable output", files: vec![], args: vec!["infer", "autoencoder", "--input", "x.npy", "--output", "no/such/dir/o.npy"], code: 1, message: "failed to create no/such/dir/o.npy (nothing ran): No such file or directory (os error 2)" },
        Case { what: "infer: timeout past the bound", files: vec![], args: vec!["infer", "autoencoder", "--input", "x.npy", "--output", "out/o.npy", "--timeout", "9223372036854775807"], code: 2, message: "invalid value '9223372036854775807' for '--timeout <TIMEOUT>': 9223372036854775807 is not in 1..=604800" },
        Case { what: "compare: NaN threshold", files: vec![], args: vec!["compare", "out/a", "out/b", "--threshold", "nan"], code: 2, message: "invalid value 'nan' for '--threshold <THRESHOLD>': `nan` is not a finite number >= 0" },
        Case { what: "compare: negative threshold", files: vec![], args: vec!["compare", "out/a", "out/b", "--threshold=-1"], code: 2, message: "invalid value '-1' for '--threshold <THRESHOLD>': `-1` is not a finite number >= 0" },
        Case { what: "show: not a run", files: vec![], args: vec!["show", "."], code: 2, message: "failed to read .: it has no manifest.json; is it a run directory?" },
        Case { what: "show: corrupt manifest", files: vec![("run/manifest.json", "{ not json".into()), ("run/results.parquet", "PAR1".into())], args: vec!["show", "run"], code: 2, message: "failed to read run/manifest.json: it is corrupt (key must be a string at line 1 column 3)" },
    ]
}

#[test]
fn every_bad_input_gets_its_message_and_exit_code_and_writes_nothing_outside() {
    for case in catalogue() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_npy(&root.join("x.npy"), &[3, 640], &[0.5; 1920], &[]);
        write_npy(&root.join("trail.npy"), &[3, 640], &[0.5; 1920], b"junk");
        write_npy_header(&root.join("huge.npy"), "(18446744073709551615, 49, 10, 1)");
        assert!(Command::new("mkfifo")
            .arg(root.join("fifo.tflite"))
            .status()
            .unwrap()
            .success());
        for (name, text) in &case.files {
            let path = root.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let out = root.join("out");
        std::fs::create_dir_all(&out).unwrap();
        let before = files(root, &out);
        let o = Command::new(env!("CARGO_BIN_EXE_bench"))
            .args(&case.args)
            .current_dir(root)
            .output()
            .unwrap();
        let stderr =
            String::from_utf8_lossy(&o.stderr).replace(&format!("{}/", root.display()), "");
        assert!(!stderr.contains("panicked"), "{}: {stderr}", case.what);
        assert_eq!(o.status.code(), Some(case.code), "{}: {stderr}", case.what);
        let first = stderr.strip_prefix("error: ").unwrap_or(&stderr);
        assert!(
            first.starts_with(case.message),
            "{}:\n{first}\nexpected:\n{}",
            case.what,
            case.message
        );
        assert_eq!(
            files(root, &out),
            before,
            "{}: wrote outside the results directory",
            case.what
        );
    }
}

/// A copy of `targets/qemu-m4.toml` named `t`, with `from` replaced by `to`, in `dir/targets/`.
fn broken_board(dir: &Path, from: &str, to: &str) -> PathBuf {
    let text = std::fs::read_to_string(harness::input::target::targets_dir().join("qemu-m4.toml"))
        .unwrap();
    assert!(text.contains(from), "qemu-m4.toml has no `{from}`");
    let targets = dir.join("targets");
    std::fs::create_dir_all(&targets).unwrap();
    std::fs::write(
        targets.join("t.toml"),
        text.replace("name = \"qemu-m4\"", "name = \"t\"")
            .replace(from, to),
    )
    .unwrap();
    std::fs::write(
        dir.join("s.toml"),
        BASE.replace("repetitions = 2", "repetitions = 2\ntargets = [\"t\"]"),
    )
    .unwrap();
    targets
}

#[test]
fn broken_target_files_fail_validate_at_their_key() {
    let cases: [(&str, &str, &str, &str); 18] = [
        ("rtt under QEMU", "link = \"serial\"", "link = \"rtt\"", "targets/t.toml:43:8: link = \"rtt\" cannot carry runner = \"qemu\"'s telemetry; it takes \"serial\""),
        ("clock 0", "clock_hz = 25_000_000", "clock_hz = 0", "targets/t.toml:10:12: clock_hz = 0 is outside 1..=10000000000"),
        ("clock u64::MAX", "clock_hz = 25_000_000", "clock_hz = 18446744073709551615", "targets/t.toml:10:12: clock_hz = 18446744073709551615 is outside 1..=10000000000"),
        ("clock missing", "clock_hz = 25_000_000", "", "targets/t.toml:44:9: clock = \"timer\" counts ticks of the core clock: [target] needs clock_hz"),
        ("clock given twice", "BENCH_TIMER_BASE = \"0x40000000\"", "BENCH_TIMER_BASE = \"0x40000000\", BENCH_CORE_HZ = \"25000000\"", "targets/t.toml:30:90: bench sets BENCH_CORE_HZ from [target] clock_hz; remove it here"),
        ("cpu given twice", "manifest = ", "rustflags = [\"-C\", \"target-cpu=cortex-m7\"]\nmanifest = ", "targets/t.toml:28:13: bench passes -C target-cpu from [target] cpu; remove it here"),
        ("inexact icount", "icount_shift = 7", "icount_shift = 0", "targets/t.toml:40:16: icount_shift = 0 with a 25000000 Hz timer counts one tick per 40.00 instructions, so counts would not be exact; use icount_shift >= 7"),
        ("icount past QEMU's", "icount_shift = 7", "icount_shift = 11", "targets/t.toml:40:16: icount_shift = 11 is outside QEMU's 0..=10"),
        ("negative energy", "model-ua-per-mhz = 110.0", "model-ua-per-mhz = -110.0", "targets/t.toml:70:20: model-ua-per-mhz = -110 is not a positive finite number"),
        ("NaN energy", "model-volts = 1.8", "model-volts = nan", "targets/t.toml:71:15: model-volts = NaN is not a positive finite number"),
        ("no RAM", "name = \"RAM\"", "name = \"SRAM\"", "targets/t.toml:5:1: a board needs a [[memory]] region named RAM"),
        ("overlapping regions", "origin = 0x2000_0000", "origin = 0x0000_1000", "targets/t.toml:19:10: memory region RAM overlaps FLASH"),
        ("past the address space", "origin = 0x2000_0000", "origin = 0xFFFF_0000", "targets/t.toml:20:10: memory region RAM ends past the address space (0xffff0000 + 4194304)"),
        ("empty regions", "length = 4_194_304", "length = 0", "targets/t.toml:15:10: memory region FLASH has length 0\ntargets/t.toml:20:10: memory region RAM has length 0\ntargets/t.toml:27:15: stack_bytes = 12288 must be more than 0 and less than RAM (0 bytes)"),
        ("stack larger than RAM", "stack_bytes = 12288", "stack_bytes = 99999999", "targets/t.toml:27:15: stack_bytes = 99999999 must be more than 0 and less than RAM (4194304 bytes)"),
        ("timeout past the bound", "timeout = 120", "timeout = 9223372036854775807", "targets/t.toml:34:11: timeout = 9223372036854775807 is outside 1..=604800 seconds"),
        ("probe table under QEMU", "[telemetry]", "[run.probe]\nchip = \"x\"\n\n[telemetry]", "targets/t.toml:42:1: [run.probe] applies to runner = \"probe-rs\", not \"qemu\": remove it"),
        ("misspelt key", "icount_shift = 7", "icount_shfit = 7", "targets/t.toml:40:1: unknown field `icount_shfit`, expected one of `binary`, `machine`, `cpu`, `icount_shift`\n  help: did you mean `icount_shift`?"),
    ];
    for (what, from, to, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        broken_board(dir.path(), from, to);
        let o = Command::new(env!("CARGO_BIN_EXE_bench"))
            .args(["validate", "s.toml"])
            .env("BENCH_TARGETS", "targets")
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{what}: {stderr}");
        assert_eq!(
            stderr.strip_prefix("error: ").unwrap_or(&stderr).trim_end(),
            expected,
            "{what}"
        );
    }
}

/// QEMU that is not there, or that exits at once, is a failed job that names it.
#[test]
fn a_missing_or_failing_qemu_is_a_job_error_that_names_it() {
    let cases = [
        (
            "binary = \"qemu-system-arm\"",
            "binary = \"qemu-system-nonexistent\"",
            "failed to start qemu-system-nonexistent: No such file or directory (os error 2) (not installed? scripts/setup.sh installs QEMU)",
        ),
        (
            "machine = \"mps2-an386\"",
            "machine = \"no-such-machine\"",
            "failed to start qemu-system-arm: QEMU exited (exit status: 1) before it opened a serial PTY: qemu-system-arm: unsupported machine type",
        ),
    ];
    for (from, to, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        broken_board(dir.path(), from, to);
        let o = Command::new(env!("CARGO_BIN_EXE_bench"))
            .args(["run", "s.toml", "--out", "out"])
            .env("BENCH_TARGETS", "targets")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(3),
            "{to}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let run = std::fs::read_dir(dir.path().join("out/bad"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .unwrap();
        let rows = harness::results::store::read_rows(&run).unwrap();
        assert_eq!(rows.len(), 1);
        let error = rows[0].error.clone().unwrap_or_default();
        // "exited ... before": seen when QEMU ended, not after the 120 s job timeout ("did not open ... within").
        assert!(error.starts_with(expected), "{to}: {error}");
    }
}
