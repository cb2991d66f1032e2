//! Core cycles estimated from what QEMU executed.
//!
//! Under QEMU `-icount` the count is of instructions, exact and repeatable,
//! but a Cortex-M4 takes two cycles for a load, 1 + N for a load of N
//! registers, and refills its pipeline after every taken branch; a board
//! adds flash wait states. bench's QEMU plugin (`harness/qemu-plugin`)
//! records, between the firmware's timing markers, how often each block
//! ran, how often it left by a taken branch, and how many of its loads read
//! flash. This module prices that with the core's documented timings
//! (`targets/cores/<core>.toml`, from the core's TRM) and the board's flash
//! costs (the target file's `[cycle-model]`): an estimate, reported beside the
//! exact instruction count, never in its place.

use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A core's instruction timings: `targets/cores/<name>.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoreTimings {
    /// Identity and the refill.
    pub core: Core,
    /// Instructions that take other than one cycle.
    #[serde(rename = "class", default)]
    pub classes: Vec<Class>,
}

/// `[core]` of a timings file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Core {
    /// The file's stem, e.g. `cortex-m4`.
    pub name: String,
    /// The document the figures come from.
    pub source: String,
    /// Cycles a taken branch, call or return adds (P).
    pub refill: f64,
}

/// A class of instructions with one timing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Class {
    /// What they are.
    pub name: String,
    /// Base mnemonics (no condition, width or type suffix).
    pub mnemonics: Vec<String>,
    /// Cycles of one.
    pub cycles: f64,
    /// Cycles added per register (word) of a register list.
    #[serde(default)]
    pub per_register: f64,
    /// Cycles when it follows another of its class (pipelined loads and stores).
    pub after_load_store: Option<f64>,
}

/// A board's flash costs: the target file's `[cycle-model]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BoardCycles {
    /// The core's timings file (`targets/cores/<core>.toml`).
    pub core: String,
    /// Wait states of one flash read at the board's clock.
    #[serde(default)]
    pub flash_wait_states: f64,
    /// Bytes one flash read returns: data streamed from flash (weights)
    /// costs the wait states once per this many bytes.
    #[serde(default = "one_word")]
    pub flash_read_bytes: f64,
    /// Extra cycles per taken branch for fetching its target from flash
    /// (0 where an instruction cache and prefetch hide it).
    #[serde(default)]
    pub flash_branch_cycles: f64,
    /// Why these figures (the chip, its wait states, its caches).
    #[serde(default)]
    pub source: String,
    /// The core's timings, read when the target file loads.
    #[serde(skip)]
    pub timings: Option<CoreTimings>,
}

fn one_word() -> f64 {
    4.0
}

impl CoreTimings {
    /// Reads `dir/<name>.toml`; errors name the file.
    pub fn load(dir: &Path, name: &str) -> Result<CoreTimings, String> {
        let path = dir.join(format!("{name}.toml"));
        let text = crate::input::files::read_to_string(&path)
            .map_err(|e| format!("failed to read core timings {}: {e}", path.display()))?;
        let t: CoreTimings = toml::from_str(&text)
            .map_err(|e| format!("failed to parse core timings {}: {e}", path.display()))?;
        if t.core.name != name {
            return Err(format!(
                "core timings {} say name = \"{}\"",
                path.display(),
                t.core.name
            ));
        }
        Ok(t)
    }

    fn lookup(&self) -> HashMap<&str, &Class> {
        self.classes
            .iter()
            .flat_map(|c| c.mnemonics.iter().map(move |m| (m.as_str(), c)))
            .collect()
    }
}

/// Condition codes a Thumb mnemonic may carry inside an IT block.
const CONDITIONS: [&str; 16] = [
    "eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le",
];

/// The class of a disassembled instruction (`ldrbeq.w r0, [r1]`), found by
/// its mnemonic without width or type suffix, then without a condition
/// code, a flag-setting `s`, or both.
fn class_of<'a>(mnemonic: &str, classes: &HashMap<&str, &'a Class>) -> Option<&'a Class> {
    let base = mnemonic.split('.').next().unwrap_or(mnemonic);
    let strip_condition = |m: &str| -> Option<String> {
        let (head, tail) = m.split_at(m.len().checked_sub(2)?);
        CONDITIONS.contains(&tail).then(|| head.to_string())
    };
    let strip_s = |m: &str| m.strip_suffix('s').map(str::to_string);
    let mut candidates = vec![base.to_string()];
    candidates.extend(strip_condition(base));
    candidates.extend(strip_s(base));
    if let Some(c) = strip_condition(base) {
        candidates.extend(strip_s(&c));
    }
    candidates
        .iter()
        .find_map(|m| classes.get(m.as_str()).copied())
}

/// Registers (words) in a register list: `{r4, r5, lr}` is 3, `{r4-r7}` 4,
/// `{d8-d9}` 4 (two words each).
fn list_words(operands: &str) -> f64 {
    let (Some(open), Some(close)) = (operands.find('{'), operands.find('}')) else {
        return 0.0;
    };
    operands[open + 1..close]
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| {
            let words = if r.starts_with('d') { 2.0 } else { 1.0 };
            let number = |s: &str| {
                s.trim_start_matches(|c: char| c.is_ascii_alphabetic())
                    .parse::<f64>()
                    .ok()
            };
            match r.split_once('-') {
                Some((lo, hi)) => match (number(lo), number(hi)) {
                    (Some(lo), Some(hi)) if hi >= lo => (hi - lo + 1.0) * words,
                    _ => words,
                },
                None => words,
            }
        })
        .sum()
}

/// One block of the plugin's report.
#[derive(Debug, Default)]
struct Block {
    execs: f64,
    taken: f64,
    flash_bytes: f64,
    /// Cycles of one pass through its instructions.
    cycles: f64,
    instructions: f64,
}

/// The estimate for one window (one timed inference).
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Estimated core cycles per window.
    pub cycles: f64,
    /// Instructions QEMU executed per window (the ticks plus the clock's
    /// own reads and the markers).
    pub instructions: f64,
    /// How many windows the report covered.
    pub windows: u64,
    /// What the estimate is made of: e.g. `cortex-m4 timings (Arm ...);
    /// 12% loads from flash at 2.5 cycles`.
    pub source: String,
}

/// Prices a plugin report with `board`'s timings.
pub fn estimate(report: &str, board: &BoardCycles) -> Result<Estimate, String> {
    let timings = board
        .timings
        .as_ref()
        .ok_or_else(|| format!("core timings `{}` were not loaded", board.core))?;
    let classes = timings.lookup();
    let mut lines = report.lines();
    if lines.next() != Some("bench-qemu-plugin 1") {
        return Err("the QEMU plugin's report does not start with `bench-qemu-plugin 1`".into());
    }
    let windows: u64 = lines
        .next()
        .and_then(|l| l.strip_prefix("windows "))
        .and_then(|n| n.parse().ok())
        .ok_or("the QEMU plugin's report has no `windows N` line")?;
    if windows == 0 {
        return Err("the QEMU plugin saw no timed inference (no call of bench_timed_begin)".into());
    }
    let mut blocks: Vec<Block> = Vec::new();
    let mut previous: Option<&Class> = None;
    for (n, line) in lines.enumerate() {
        let bad = || format!("line {} of the QEMU plugin's report: `{line}`", n + 3);
        if let Some(counts) = line.strip_prefix("block ") {
            let fields: Vec<&str> = counts.split_whitespace().collect();
            let [_, "execs", execs, "taken", taken, "flash-bytes", loads] = fields[..] else {
                return Err(bad());
            };
            let number = |s: &str| s.parse::<f64>().map_err(|_| bad());
            blocks.push(Block {
                execs: number(execs)?,
                taken: number(taken)?,
                flash_bytes: number(loads)?,
                ..Block::default()
            });
            previous = None;
            continue;
        }
        let block = blocks.last_mut().ok_or_else(bad)?;
        // "  0x1234 2 ldr r0, [r1, #4]"
        let mut parts = line.trim_start().splitn(3, ' ');
        let (_, _, text) = (parts.next(), parts.next(), parts.next().ok_or_else(bad)?);
        let (mnemonic, operands) = text.split_once(' ').unwrap_or((text, ""));
        let class = class_of(&mnemonic.to_ascii_lowercase(), &classes);
        block.cycles += match class {
            Some(c) => {
                let pipelined = c
                    .after_load_store
                    .filter(|_| previous.is_some_and(|p| p == c));
                pipelined.unwrap_or(c.cycles) + c.per_register * list_words(operands)
            }
            None => 1.0,
        };
        block.instructions += 1.0;
        previous = class;
    }
    let sum = |f: &dyn Fn(&Block) -> f64| blocks.iter().map(f).sum::<f64>();
    let instructions = sum(&|b| b.execs * b.instructions);
    let flash_bytes = sum(&|b| b.flash_bytes);
    let taken = sum(&|b| b.taken);
    let flash_reads = flash_bytes / board.flash_read_bytes;
    let cycles = sum(&|b| b.execs * b.cycles)
        + taken * (timings.core.refill + board.flash_branch_cycles)
        + flash_reads * board.flash_wait_states;
    let per_window = |v: f64| v / windows as f64;
    let mut source = format!("{} timings ({})", timings.core.name, timings.core.source);
    if board.flash_wait_states > 0.0 || board.flash_branch_cycles > 0.0 {
        source += &format!(
            "; flash: {} wait states per {}-byte read of data, {} per taken branch ({})",
            board.flash_wait_states,
            board.flash_read_bytes,
            board.flash_branch_cycles,
            board.source
        );
    }
    Ok(Estimate {
        cycles: per_window(cycles),
        instructions: per_window(instructions),
        windows,
        source,
    })
}

/// The plugin for one QEMU run of a program: where it writes, and what it
/// watches.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginRun {
    /// The plugin's shared library.
    pub library: PathBuf,
    /// Where it writes its report (in the run directory).
    pub report: PathBuf,
    begin: u64,
    end: u64,
    flash: Option<(u64, u64)>,
    /// Windows to count: the timed inferences (a sweep's runs come after).
    windows: Option<u32>,
}

/// Whether `qemu` loads the plugin at `library`, asked once per binary: a
/// QEMU built without plugins, or one whose plugin API is newer than the
/// plugin's, says so here rather than failing every job's start.
fn loads_in(qemu: &str, library: &Path) -> Result<(), String> {
    static ASKED: std::sync::Mutex<Vec<(String, Result<(), String>)>> =
        std::sync::Mutex::new(Vec::new());
    let mut asked = ASKED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, answer)) = asked.iter().find(|(q, _)| q == qemu) {
        return answer.clone();
    }
    // An argument the plugin refuses: QEMU loads it, it declines, QEMU exits.
    let out = std::process::Command::new(qemu)
        .args([
            "-machine", "none", "-display", "none", "-monitor", "none", "-plugin",
        ])
        .arg(format!(
            "file={},probe=1",
            library.display().to_string().replace(',', ",,")
        ))
        .stdin(std::process::Stdio::null())
        .output();
    let answer = match out {
        Ok(out)
            if String::from_utf8_lossy(&out.stderr)
                .contains("qemu_plugin_install returned error code") =>
        {
            Ok(())
        }
        Ok(out) => Err(format!(
            "{qemu} does not load bench's cycle plugin: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("failed to run {qemu}: {e}")),
    };
    asked.push((qemu.to_string(), answer.clone()));
    answer
}

/// The symbols the firmware calls around each timed inference.
const MARKERS: [&str; 2] = ["bench_timed_begin", "bench_timed_end"];

impl PluginRun {
    /// The plugin for running `elf` on `target`, if the target estimates
    /// cycles; its report goes to `report`.
    pub fn for_program(
        target: &crate::input::target::Target,
        elf: &Path,
        report: PathBuf,
        windows: Option<u32>,
    ) -> Result<Option<PluginRun>, String> {
        if target.cycles.is_none() {
            return Ok(None);
        }
        let found = super::elf::symbol_addresses(elf, &MARKERS)?;
        let (Some(begin), Some(end)) = (found[0], found[1]) else {
            return Err(format!(
                "failed to estimate cycles: {} has no {} and {} symbols to count between",
                elf.display(),
                MARKERS[0],
                MARKERS[1]
            ));
        };
        let flash = target
            .memory
            .iter()
            .find(|r| r.name == "FLASH")
            .map(|r| (r.origin, r.origin + r.length));
        let library = crate::build::qemu_plugin::library()?;
        if let Some(qemu) = &target.run.qemu {
            loads_in(&qemu.binary, &library)?;
        }
        if let Some(dir) = report.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("failed to create {}: {e}", dir.display()))?;
        }
        // A report left by an earlier attempt must not pass for this run's.
        let _ = std::fs::remove_file(&report);
        Ok(Some(PluginRun {
            library,
            report,
            begin,
            end,
            flash,
            windows,
        }))
    }

    /// QEMU's `-plugin` argument (commas in paths doubled, as QEMU's option
    /// syntax escapes them).
    pub fn qemu_arg(&self) -> String {
        let path = |p: &Path| p.display().to_string().replace(',', ",,");
        let mut arg = format!(
            "file={},begin={:#x},end={:#x},out={}",
            path(&self.library),
            self.begin,
            self.end,
            path(&self.report)
        );
        if let Some((lo, hi)) = self.flash {
            arg += &format!(",flash={lo:#x}-{hi:#x}");
        }
        if let Some(n) = self.windows {
            arg += &format!(",windows={n}");
        }
        arg
    }

    /// The estimate from the report QEMU's plugin wrote when it exited.
    pub fn estimate(&self, board: &BoardCycles) -> Result<Estimate, String> {
        let report = std::fs::read_to_string(&self.report).map_err(|e| {
            format!(
                "failed to read the QEMU cycle plugin's report {}: {e} (QEMU must exit by itself for the plugin to write it)",
                self.report.display()
            )
        })?;
        estimate(&report, board)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m4(flash_wait_states: f64, flash_branch_cycles: f64) -> BoardCycles {
        let dir = crate::workspace_root().join("targets/cores");
        BoardCycles {
            core: "cortex-m4".into(),
            flash_wait_states,
            flash_read_bytes: 8.0,
            flash_branch_cycles,
            source: "a board".into(),
            timings: Some(CoreTimings::load(&dir, "cortex-m4").unwrap()),
        }
    }

    #[test]
    fn every_core_timing_file_loads() {
        let dir = crate::workspace_root().join("targets/cores");
        for name in ["cortex-m0", "cortex-m3", "cortex-m4"] {
            let t = CoreTimings::load(&dir, name).unwrap();
            assert!(t.core.refill >= 1.0 && !t.classes.is_empty(), "{name}");
        }
        let e = CoreTimings::load(&dir, "cortex-m99").unwrap_err();
        assert!(
            e.starts_with("failed to read core timings") && e.contains("cortex-m99.toml"),
            "{e}"
        );
    }

    #[test]
    fn mnemonics_find_their_class_through_suffixes() {
        let t = m4(0.0, 0.0).timings.unwrap();
        let classes = t.lookup();
        let name = |m: &str| class_of(m, &classes).map(|c| c.name.as_str());
        assert_eq!(name("ldr"), Some("load/store"));
        assert_eq!(name("ldrbeq"), Some("load/store"));
        assert_eq!(name("ldr.w"), Some("load/store"));
        assert_eq!(name("vldr"), Some("load/store"));
        assert_eq!(name("ldrd"), Some("load/store double"));
        assert_eq!(name("pop.w"), Some("load/store multiple"));
        assert_eq!(name("vmla.f32"), Some("float multiply-accumulate"));
        assert_eq!(name("udiv"), Some("divide"));
        assert_eq!(name("smlad"), None);
        assert_eq!(name("adds"), None);
        assert_eq!(name("bls"), None);
        assert_eq!(list_words("{r4, r5, r6, lr}"), 4.0);
        assert_eq!(list_words("r0!, {r4-r7, pc}"), 5.0);
        assert_eq!(list_words("{d8, d9}"), 4.0);
        assert_eq!(list_words("{s16-s31}"), 16.0);
        assert_eq!(list_words("r0, [r1]"), 0.0);
    }

    /// A loop of four loads (pipelined: 2 + 1 + 1 + 1), a SMLAD and a
    /// branch back, run 10 times over 2 windows, 8 times taken, reading 80
    /// bytes from flash; its entry block pushes 3 registers (1 + 3) and is
    /// left by a taken call each time.
    const REPORT: &str = "bench-qemu-plugin 1\nwindows 2\n\
        block 0x100 execs 2 taken 2 flash-bytes 0\n  0x100 2 push {r4, r5, lr}\n  0x102 4 bl #0x200\n\
        block 0x200 execs 10 taken 8 flash-bytes 80\n  0x200 4 ldr.w r0, [r1], #4\n  0x204 4 ldr.w r2, [r3], #4\n  0x208 2 ldr r4, [r5]\n  0x20a 2 ldrh r6, [r5, #2]\n  0x20c 4 smlad r7, r0, r2, r7\n  0x210 2 bne #0x200\n";

    #[test]
    fn a_report_is_priced_with_the_cores_timings_and_the_boards_flash() {
        let e = estimate(REPORT, &m4(0.0, 0.0)).unwrap();
        // entry: 2 x (4 + 1) = 10; loop: 10 x (5 + 1 + 1) = 70; taken: 10 x P = 20.
        assert_eq!(e.windows, 2);
        assert_eq!(e.instructions, (2.0 * 2.0 + 10.0 * 6.0) / 2.0);
        assert_eq!(e.cycles, (10.0 + 70.0 + 20.0) / 2.0);
        assert_eq!(
            e.source,
            "cortex-m4 timings (Arm Cortex-M4 TRM r0p1, Table 3-1 and the FPU instruction table)"
        );
        // 80 bytes from flash are 10 reads of 8 at 5 wait states; 10 taken branches at 1 more.
        let e = estimate(REPORT, &m4(5.0, 1.0)).unwrap();
        assert_eq!(e.cycles, (100.0 + 50.0 + 10.0) / 2.0);
        assert!(
            e.source.ends_with(
                "; flash: 5 wait states per 8-byte read of data, 1 per taken branch (a board)"
            ),
            "{}",
            e.source
        );
    }

    #[test]
    fn a_qemu_that_does_not_load_the_plugin_is_named_with_what_it_said() {
        let library = Path::new("/nonexistent/libbench_qemu_plugin.so");
        let e = loads_in("false", library).unwrap_err();
        assert_eq!(e, "false does not load bench's cycle plugin: ");
        let e = loads_in("/nonexistent/qemu-system-arm", library).unwrap_err();
        assert!(
            e.starts_with("failed to run /nonexistent/qemu-system-arm: "),
            "{e}"
        );
    }

    #[test]
    fn a_bad_report_is_refused_with_its_line() {
        let board = m4(0.0, 0.0);
        let e = estimate("something else\n", &board).unwrap_err();
        assert!(e.contains("does not start with"), "{e}");
        let e = estimate("bench-qemu-plugin 1\nwindows 0\n", &board).unwrap_err();
        assert!(e.contains("no timed inference"), "{e}");
        let e = estimate(
            "bench-qemu-plugin 1\nwindows 1\nblock 0x10 execs x taken 0 flash-bytes 0\n",
            &board,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "line 3 of the QEMU plugin's report: `block 0x10 execs x taken 0 flash-bytes 0`"
        );
        let e = estimate("bench-qemu-plugin 1\nwindows 1\n  0x10 2 nop\n", &board).unwrap_err();
        assert!(e.starts_with("line 3 of"), "{e}");
    }
}
