//! The board firmware is built for exactly one board: a build with no
//! `board-*` feature, or two, stops in its build script with a message
//! saying so, instead of a firmware with a missing or doubled board module.

use std::process::Command;

fn build_with(features: &[&str]) -> (bool, String) {
    let root = harness::workspace_root();
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&root).args([
        "build",
        "--release",
        "--manifest-path",
        "firmware/mcu/Cargo.toml",
        "--target",
        "thumbv7em-none-eabihf",
    ]);
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    let out = cmd.env("BENCH_BOARD", "test").output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_firmware_build_needs_exactly_one_board_feature() {
    let expected = "bench-firmware-mcu is built for exactly one board feature (`--features board-<name>`, as the target file's [build] features give it); got";
    let (ok, stderr) = build_with(&[]);
    assert!(
        !ok && stderr.contains(&format!("{expected} none")),
        "{stderr}"
    );
    let (ok, stderr) = build_with(&["board-cmsdk", "board-nrf51"]);
    assert!(!ok && stderr.contains(expected), "{stderr}");
    assert!(
        stderr.contains("cmsdk") && stderr.contains("nrf51"),
        "{stderr}"
    );
}
