//! Real boards without the boards: every board target's chip is one
//! probe-rs knows and its memory map lies inside the chip's; its firmware
//! cross-builds and passes the ELF checks (vector table at the flash
//! origin, sections inside flash and RAM, RTT control block, the clock it
//! was built for); and with no probe attached each board job fails with
//! one message naming the chip and how to list probes, while the host
//! column of the same suite runs.
//!
//! With `BENCH_HIL` naming attached boards this machine is a lab: see
//! `tests/hil.rs` instead; the no-probe check is skipped here.

use harness::input::target::{self, RunnerKind, Target};
use std::process::Command;

/// The board target files (runner probe-rs).
fn boards() -> Vec<Target> {
    let dir = target::targets_dir();
    target::available(&dir)
        .iter()
        .map(|n| target::load(&dir, n).expect("target files load"))
        .filter(|t| t.run.runner == RunnerKind::ProbeRs)
        .collect()
}

#[test]
fn the_five_boards_of_the_issue_are_targets() {
    let names: Vec<String> = boards().iter().map(|t| t.target.name.clone()).collect();
    assert_eq!(
        names,
        [
            "nrf52840-dk",
            "nucleo-f446re",
            "nucleo-h743zi",
            "nucleo-l4r5zi",
            "pico"
        ]
    );
    let clocks: Vec<(String, Option<u64>)> = boards()
        .iter()
        .map(|t| {
            (
                t.run.probe.as_ref().unwrap().chip.clone(),
                t.target.clock_hz,
            )
        })
        .collect();
    assert_eq!(
        clocks,
        [
            ("nRF52840_xxAA".to_string(), Some(64_000_000)),
            ("STM32F446RE".to_string(), Some(180_000_000)),
            ("STM32H743ZI".to_string(), Some(400_000_000)),
            ("STM32L4R5ZI".to_string(), Some(120_000_000)),
            ("RP2040".to_string(), Some(125_000_000)),
        ]
    );
}

#[cfg(feature = "probe-rs")]
#[test]
fn every_board_memory_region_lies_inside_its_chip_as_probe_rs_describes_it() {
    for board in boards() {
        let chip = &board.run.probe.as_ref().unwrap().chip;
        let mut map = harness::device::probe::chip_memory(chip, &board.target.name)
            .unwrap_or_else(|e| panic!("{e}"));
        // Flash banks one after the other (the H743's two) are one region to the linker.
        map.sort_by_key(|&(_, start, _)| start);
        map.dedup_by(|next, prev| {
            let joins = next.0 == prev.0 && next.1 == prev.2;
            if joins {
                prev.2 = next.2;
            }
            joins
        });
        for region in &board.memory {
            let ram = region.name == "RAM";
            let end = region.origin + region.length;
            let inside = map.iter().any(|&(is_ram, start, stop)| {
                is_ram == ram && region.origin >= start && end <= stop
            });
            assert!(
                inside,
                "{}: {} {:#x}..{end:#x} is not inside {chip}'s {} ({map:x?})",
                board.target.name,
                region.name,
                region.origin,
                if ram { "RAM" } else { "flash" }
            );
        }
    }
    let e = harness::device::probe::chip_memory("STM32L4R5", "t")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "failed to find the chip `STM32L4R5` in probe-rs's chip list (target file t); close names: \
         STM32L4R5AG, STM32L4R5AI, STM32L4R5QG, STM32L4R5QI, STM32L4R5VG, STM32L4R5VI, STM32L4R5ZG, STM32L4R5ZI"
    );
}

#[test]
fn every_board_firmware_builds_checks_out_and_without_a_probe_fails_clearly_while_the_host_runs() {
    let hil = std::env::var("BENCH_HIL").unwrap_or_default();
    let out = tempfile::tempdir().unwrap();
    let suite = harness::workspace_root().join("suites/boards.toml");
    let o = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["run", suite.to_str().unwrap(), "--only", "ad/*", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    let run_dir = std::fs::read_dir(out.path().join("boards"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let rows = harness::results::store::read_rows(&run_dir).unwrap();
    let status = |target: &str| {
        rows.iter()
            .find(|r| r.target.as_deref() == Some(target))
            .map(|r| {
                (
                    r.status.clone().unwrap(),
                    r.error.clone().unwrap_or_default(),
                )
            })
    };
    assert_eq!(status("host").unwrap().0, "ok", "{stderr}");
    for board in boards() {
        let name = &board.target.name;
        let chip = &board.run.probe.as_ref().unwrap().chip;
        let (state, error) = status(name).unwrap();
        // The firmware was built and its ELF checked before the run: a build or layout error would be the job's error.
        let row = rows
            .iter()
            .find(|r| r.target.as_deref() == Some(name))
            .unwrap();
        assert!(
            row.flash_bytes.unwrap() > 10_000 && row.sram_bytes.unwrap() > 1_000,
            "{name}: {row:?}"
        );
        if hil.split(',').any(|b| b == name) {
            continue;
        }
        assert_eq!(state, "failed");
        assert_eq!(
            error,
            format!("failed to find a debug probe for {chip} (target {name}): none is attached; plug the board's probe in, and run `bench probes` to list what this machine sees")
        );
        // The cached ELF: at the flash origin, inside the map, RTT, the documented clock.
        let cache = harness::workspace_root().join("target/bench-firmware");
        let elf = std::fs::read_dir(&cache)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{name}-"))
            })
            .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
            .unwrap();
        let layout = harness::telemetry::elf::check_layout(&elf, &board.memory).unwrap();
        let flash = board.memory.iter().find(|m| m.name == "FLASH").unwrap();
        assert_eq!(
            layout,
            harness::telemetry::elf::Layout {
                start: flash.origin,
                clock_hz: board.target.clock_hz,
                rtt: true
            },
            "{name}"
        );
        let symbols = harness::device::probe::symbols(&elf).unwrap();
        let ram = board.memory.iter().find(|m| m.name == "RAM").unwrap();
        let stack = symbols.stack.unwrap();
        assert_eq!(stack.top, ram.origin + ram.length, "{name}");
        assert!(
            symbols.rtt.unwrap() >= ram.origin && symbols.rtt.unwrap() < stack.low,
            "{name}: RTT in static RAM"
        );
    }
    assert_eq!(
        o.status.code(),
        Some(harness::exit::JOBS_FAILED as i32),
        "{stderr}"
    );
}
