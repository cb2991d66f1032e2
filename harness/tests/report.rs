//! `bench report` on a committed stored run (`tests/fixtures/report-run`, the
//! early-exit suite on host, qemu-m4 and qemu-rv32): the Markdown and LaTeX
//! output must equal the golden files byte for byte. `BENCH_BLESS=1`
//! rewrites the goldens after an intended change.

mod common;

use std::path::{Path, PathBuf};

fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn check(golden: &str, args: &[&str]) {
    let run = here().join("fixtures/report-run");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_bench"))
        .arg("report")
        .arg(&run)
        .args(args)
        .output()
        .unwrap();
    common::ok(&o);
    let out = String::from_utf8(o.stdout).unwrap();
    let path = here().join("golden/report").join(golden);
    if std::env::var_os("BENCH_BLESS").is_some() {
        std::fs::write(&path, &out).unwrap();
    }
    assert_eq!(
        out,
        std::fs::read_to_string(&path).unwrap(),
        "{golden} differs; rerun with BENCH_BLESS=1 if the change is intended"
    );
}

#[test]
fn latency_by_target_in_markdown() {
    check("latency.md", &["--format", "md"]);
}

#[test]
fn flash_by_variant_in_latex_with_the_best_of_each_row_in_bold() {
    check(
        "flash.tex",
        &[
            "--rows",
            "model,target",
            "--cols",
            "variant",
            "--metric",
            "flash_bytes",
            "--format",
            "latex",
        ],
    );
}

#[test]
fn speed_up_over_float32_on_every_target() {
    check(
        "speedup.md",
        &[
            "--rows",
            "model,target",
            "--cols",
            "variant",
            "--relative-to",
            "variant=float32",
            "--format",
            "md",
        ],
    );
    check(
        "speedup.tex",
        &[
            "--rows",
            "model,target",
            "--cols",
            "variant",
            "--relative-to",
            "variant=float32",
            "--format",
            "latex",
        ],
    );
}

#[test]
fn relative_to_a_target_keeps_only_the_targets_counted_in_its_unit() {
    // The host's nanoseconds cannot be divided by qemu-m4's instructions: that column goes.
    check(
        "relative-target.md",
        &["--relative-to", "target=qemu-m4", "--format", "md"],
    );
}

#[test]
fn mixed_units_and_unknown_names_are_refused() {
    let run = here().join("fixtures/report-run");
    for (args, expected) in [
        (
            vec!["--rows", "model", "--cols", "variant"],
            "error: the cell (digits) x (int8-exits) would average latency_median in ns with latency_median in instructions: add `target` to --rows or --cols",
        ),
        (vec!["--metric", "speed"], "error: --metric speed: not a figure bench reports; one of latency_median,"),
        (vec!["--rows", "modle"], "error: no column `modle` in the results; see docs/results.md"),
        (vec!["--relative-to", "variant=int4"], "error: --relative-to variant=int4: `variant` is not one of the --cols (target)"),
    ] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_bench")).arg("report").arg(&run).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.starts_with(expected), "{err}\nexpected: {expected}");
    }
}
