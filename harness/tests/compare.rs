//! `bench compare`: two stored runs, matched job by job, with the exit code
//! a CI job gates on.

use harness::results::store::{self, Row};
use std::path::Path;
use std::process::Output;

fn row(job: &str, unit: &str, source: &str, median: f64, mad: f64) -> Row {
    Row {
        run_id: Some("r".into()),
        job: Some(job.into()),
        status: Some("ok".into()),
        latency_median: Some(median),
        latency_mad: Some(mad),
        latency_unit: Some(unit.into()),
        latency_source: Some(source.into()),
        arena_bytes: Some(16_000),
        model_bytes: Some(29_648),
        accuracy: Some(0.98),
        ..Row::default()
    }
}

fn board(job: &str, instructions: f64) -> Row {
    Row {
        flash_bytes: Some(150_000),
        sram_bytes: Some(20_000),
        energy_uj: Some(instructions * 0.0363e-3),
        energy_source: Some("model: 110 uA/MHz x 3.3 V".into()),
        ..row(job, "instructions", "QEMU icount", instructions, 0.0)
    }
}

fn baseline() -> Vec<Row> {
    vec![
        board("kws/int8/qemu-m4", 1_000_000.0),
        row("kws/int8/host", "ns", "host clock", 100_000.0, 1_000.0),
    ]
}

/// Stores both runs and runs `bench compare` on them.
fn compare(
    dir: &Path,
    baseline: &[Row],
    current: &[Row],
    args: &[&str],
) -> (Option<i32>, String, String) {
    let (b, c) = (dir.join("baseline"), dir.join("current"));
    for (d, rows) in [(&b, baseline), (&c, current)] {
        std::fs::create_dir_all(d).unwrap();
        store::write_rows(d, rows).unwrap();
    }
    let o: Output = std::process::Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "compare",
            b.to_str().unwrap(),
            c.to_str().unwrap(),
            "--format",
            "md",
        ])
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn identical_runs_pass() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = compare(dir.path(), &baseline(), &baseline(), &[]);
    assert_eq!(code, Some(0));
    assert!(
        out.starts_with("0 regressed, 0 improved, 0 changed within the threshold, 11 the same;"),
        "{out}"
    );
}

#[test]
fn a_planted_ten_percent_regression_fails_with_its_job_and_figure() {
    let dir = tempfile::tempdir().unwrap();
    let mut current = baseline();
    current[0] = board("kws/int8/qemu-m4", 1_100_000.0);
    let (code, out, err) = compare(dir.path(), &baseline(), &current, &[]);
    assert_eq!(code, Some(4), "{out}{err}");
    let expected = "\
| job              | figure         | baseline      | current       | change  | verdict   |
|------------------|----------------|---------------|---------------|---------|-----------|
| kws/int8/qemu-m4 | energy_uj      | 36.3 uJ       | 39.9 uJ       | +10.00% | REGRESSED |
| kws/int8/qemu-m4 | latency_median | 1.000 M instr | 1.100 M instr | +10.00% | REGRESSED |

- 2 regressed, 0 improved, 0 changed within the threshold, 9 the same;";
    assert!(out.starts_with(expected), "{out}");
    assert!(
        err.contains("current regressed against ") && err.contains("(threshold 3%)"),
        "{err}"
    );
    // With a 15% threshold the same change is reported, and passes.
    let (code, out, _) = compare(dir.path(), &baseline(), &current, &["--threshold", "15"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("| kws/int8/qemu-m4 | latency_median | 1.000 M instr | 1.100 M instr | +10.00% | changed |"), "{out}");
}

#[test]
fn exact_counts_report_any_change_and_timings_only_past_their_noise() {
    let dir = tempfile::tempdir().unwrap();
    // One emulated instruction more: reported, not a regression.
    let mut current = baseline();
    current[0] = board("kws/int8/qemu-m4", 1_000_001.0);
    let (code, out, _) = compare(dir.path(), &baseline(), &current, &[]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("| latency_median | 1.000 M instr | 1.000 M instr | +0.0001% | changed |"),
        "{out}"
    );
    // The host 10% slower, but its runs spread by 20 us: within the noise.
    let mut noisy = baseline();
    noisy[1] = row("kws/int8/host", "ns", "host clock", 100_000.0, 20_000.0);
    let mut slower = noisy.clone();
    slower[1].latency_median = Some(110_000.0);
    let (code, out, _) = compare(dir.path(), &noisy, &slower, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with("0 regressed, 0 improved, 0 changed"),
        "{out}"
    );
    // The same 10% with a spread of 1 us: a regression.
    let mut current = baseline();
    current[1].latency_median = Some(110_000.0);
    let (code, out, _) = compare(dir.path(), &baseline(), &current, &[]);
    assert_eq!(code, Some(4));
    assert!(
        out.contains(
            "| kws/int8/host | latency_median | 100.0 us | 110.0 us | +10.00% | REGRESSED |"
        ),
        "{out}"
    );
    // Accuracy is better higher: a drop past the threshold regresses.
    let mut current = baseline();
    current[1].accuracy = Some(0.90);
    let (code, out, _) = compare(dir.path(), &baseline(), &current, &[]);
    assert_eq!(code, Some(4));
    assert!(
        out.contains("| kws/int8/host | accuracy | 98.0%    | 90.0%   | -8.16% | REGRESSED |"),
        "{out}"
    );
}

#[test]
fn new_missing_and_failed_jobs_are_reported_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut current = vec![
        baseline()[0].clone(),
        row("kws/binary/host", "ns", "host clock", 50_000.0, 500.0),
    ];
    let (code, out, _) = compare(dir.path(), &baseline(), &current, &[]);
    assert_eq!(code, Some(4), "a missing job fails the comparison");
    assert!(
        out.contains("MISSING: kws/int8/host is in the baseline, not in the current run"),
        "{out}"
    );
    assert!(
        out.contains("new: kws/binary/host is not in the baseline"),
        "{out}"
    );
    current[0].status = Some("failed".into());
    current[0].error = Some("failed to finish within 5 s".into());
    current.push(baseline()[1].clone());
    let (code, out, _) = compare(dir.path(), &baseline(), &current, &[]);
    assert_eq!(code, Some(4));
    assert!(
        out.contains(
            "FAILED now, ok in the baseline: kws/int8/qemu-m4: failed to finish within 5 s"
        ),
        "{out}"
    );
    // A run directory that is not one is an input error.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["compare", "/nonexistent", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("failed to open /nonexistent/results.parquet"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The workflow compares against `ci/baselines/mcu-emulated`: that baseline
/// must be a run of the suite file the workflow runs, with every job of it.
#[test]
fn the_committed_ci_baseline_is_a_run_of_the_suite_the_workflow_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let workflow = std::fs::read_to_string(root.join(".github/workflows/bench.yml")).unwrap();
    assert!(
        workflow.contains("SUITE: suites/mcu-emulated.toml")
            && workflow.contains("compare ci/baselines/mcu-emulated ")
    );
    let baseline = root.join("ci/baselines/mcu-emulated");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(baseline.join("manifest.json")).unwrap())
            .unwrap();
    let suite = std::fs::read(root.join("suites/mcu-emulated.toml")).unwrap();
    assert_eq!(
        manifest["suite"]["sha256"].as_str(),
        Some(harness::results::manifest::sha256(&suite).as_str()),
        "suites/mcu-emulated.toml changed: run it and replace ci/baselines/mcu-emulated"
    );
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "validate",
            root.join("suites/mcu-emulated.toml").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let planned: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .skip(1)
        .map(|l| l.trim().to_string())
        .collect();
    let stored: Vec<String> = store::read_rows(&baseline)
        .unwrap()
        .into_iter()
        .map(|r| r.job.unwrap())
        .collect();
    assert_eq!(stored, planned);
}
