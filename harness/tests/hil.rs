//! Hardware-in-the-loop tests, ignored unless asked for (they show as
//! ignored in every other run): with boards attached, name them (target
//! names, comma-separated) and run the ignored tests,
//! `BENCH_HIL=nucleo-l4r5zi,pico cargo test --test hil -- --ignored`.
//! With `BENCH_HIL_METER=1` the named boards' target files must have a
//! `[meter]` whose marker is wired, and energy is checked too.
//!
//! Each board runs the boards suite (KWS and the autoencoder in int8)
//! through its probe: flash, RTT, cycles, stack painted and read back. The
//! job itself checks the output bit for bit against the host reference and
//! the configured clock against the target file.

use std::process::Command;

/// The boards `BENCH_HIL` names; running these tests without naming any is an error.
fn named_boards() -> Vec<String> {
    let boards: Vec<String> = std::env::var("BENCH_HIL")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    assert!(
        !boards.is_empty(),
        "BENCH_HIL names no attached board: set BENCH_HIL=<target>,..."
    );
    boards
}

#[test]
#[ignore = "needs attached boards: BENCH_HIL=<targets> cargo test --test hil -- --ignored"]
fn every_named_board_runs_the_boards_suite_bit_exact_with_cycle_counts_and_a_stack_peak() {
    let boards = named_boards();
    let suite = harness::workspace_root().join("suites/boards.toml");
    for board in boards {
        let out = tempfile::tempdir().unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_bench"))
            .args(["run", suite.to_str().unwrap(), "--target", &board, "--out"])
            .arg(out.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{board}: {stderr}");
        let run_dir = std::fs::read_dir(out.path().join("boards"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let rows = harness::results::store::read_rows(&run_dir).unwrap();
        assert_eq!(rows.len(), 2, "{board}");
        for row in rows {
            assert_eq!(row.status.as_deref(), Some("ok"), "{board}: {row:?}");
            assert_eq!(
                row.latency_unit.as_deref(),
                Some("cycles"),
                "{board}: {row:?}"
            );
            assert!(row.latency_median.unwrap() > 10_000.0, "{board}: {row:?}");
            let stack = row.stack_bytes.unwrap();
            assert!(stack > 256 && stack < 16_384, "{board}: stack {stack}");
            if std::env::var_os("BENCH_HIL_METER").is_some() {
                assert!(
                    row.energy_source.as_deref().unwrap().starts_with("meter"),
                    "{board}: {row:?}"
                );
                assert!(row.energy_uj.unwrap() > 0.0, "{board}: {row:?}");
            }
        }
    }
}

#[test]
#[ignore = "needs attached boards: BENCH_HIL=<targets> cargo test --test hil -- --ignored"]
fn bench_probes_lists_every_named_board_s_probe() {
    let boards = named_boards();
    let o = Command::new(env!("CARGO_BIN_EXE_bench"))
        .arg("probes")
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.contains(':'))
        .count();
    // Each board brings its own probe.
    assert!(
        listed >= boards.len(),
        "{boards:?}, bench probes: {}",
        String::from_utf8_lossy(&o.stdout)
    );
}
