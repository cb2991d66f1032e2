//! Target files (`targets/<name>.toml`): what a target is (triple, CPU,
//! clock, memory), how its device program is built and run, how telemetry
//! comes back and what energy figure it can give. Board knowledge lives in
//! these files, not in code.

use crate::input::diag::{did_you_mean, Diagnostic, Diagnostics, Source};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// How a target's device program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunnerKind {
    /// An optimized process on this machine.
    Host,
    /// An emulated board under QEMU.
    Qemu,
    /// A real board through a debug probe.
    ProbeRs,
}

impl RunnerKind {
    /// The name as target files write it.
    pub fn name(self) -> &'static str {
        match self {
            RunnerKind::Host => "host",
            RunnerKind::Qemu => "qemu",
            RunnerKind::ProbeRs => "probe-rs",
        }
    }
}

/// How telemetry comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkKind {
    /// The process's stdin and stdout.
    Stdio,
    /// A serial port (QEMU's PTY or a board's UART).
    Serial,
    /// A SEGGER RTT channel through the probe.
    Rtt,
}

impl LinkKind {
    /// The name as target files write it.
    pub fn name(self) -> &'static str {
        match self {
            LinkKind::Stdio => "stdio",
            LinkKind::Serial => "serial",
            LinkKind::Rtt => "rtt",
        }
    }
}

/// What a tick means on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClockSource {
    /// Host monotonic clock, nanoseconds.
    HostClock,
    /// SysTick (24 bits).
    Systick,
    /// A 32-bit board timer at the system clock (e.g. the CMSDK APB timer).
    Timer,
    /// DWT cycle counter.
    DwtCyccnt,
    /// RISC-V `mcycle` / `minstret`.
    Mcycle,
}

impl ClockSource {
    /// The name as target files write it.
    pub fn name(self) -> &'static str {
        match self {
            ClockSource::HostClock => "host-clock",
            ClockSource::Systick => "systick",
            ClockSource::Timer => "timer",
            ClockSource::DwtCyccnt => "dwt-cyccnt",
            ClockSource::Mcycle => "mcycle",
        }
    }
}

/// A memory region of the target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// Region name as in the linker script (FLASH, RAM, ...).
    pub name: String,
    /// Start address.
    pub origin: u64,
    /// Bytes.
    pub length: u64,
}

/// `[build]`: the device program.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// Cargo package of the device program.
    pub package: String,
    /// Cargo features to enable.
    #[serde(default)]
    pub features: Vec<String>,
    /// Extra `RUSTFLAGS` (e.g. `-C target-cpu=cortex-m4`).
    #[serde(default)]
    pub rustflags: Vec<String>,
    /// The package's manifest, relative to the bench workspace, when it is
    /// a workspace of its own (board firmware, which builds per model).
    pub manifest: Option<PathBuf>,
    /// Build-time settings of the board (e.g. `BENCH_UART_BASE`), passed as
    /// environment variables.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Bytes at the top of RAM kept for the stack: a build whose static
    /// data leaves less does not fit. The default, 3 KiB, is above the
    /// deepest stack measured by painting for the zoo models (2.75 KiB).
    #[serde(default = "default_stack_bytes")]
    pub stack_bytes: u64,
}

fn default_stack_bytes() -> u64 {
    3072
}

/// `[run.qemu]`: an emulated board.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Qemu {
    /// QEMU system binary, e.g. `qemu-system-arm`.
    pub binary: String,
    /// `-machine`.
    pub machine: String,
    /// `-cpu`, if not the machine's default.
    pub cpu: Option<String>,
    /// `-icount shift=N`: one instruction is `2^N` ns of virtual time.
    pub icount_shift: u32,
}

/// `[run.probe]`: a real board.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Probe {
    /// probe-rs chip name (`bench probes --chips NAME` lists the known ones).
    pub chip: String,
    /// Which probe, as `VID:PID:SERIAL` (`bench probes` shows them), when several are attached.
    pub probe: Option<String>,
    /// Serial port of a UART link, when telemetry does not use RTT.
    pub port: Option<String>,
    /// SWD/JTAG clock in kHz, if not the probe's default.
    pub speed_khz: Option<u32>,
    /// Attach with the reset line held (chips that sleep or remap their debug pins).
    #[serde(default)]
    pub connect_under_reset: bool,
    /// Let probe-rs erase the whole chip when it is locked (read-out or
    /// access port protection, e.g. a factory-new nRF52840 revision 3):
    /// without it such a chip is refused, because the erase loses everything on it.
    #[serde(default)]
    pub allow_erase_all: bool,
}

/// `[run]`: how the device program runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// host, qemu or probe-rs.
    pub runner: RunnerKind,
    /// Seconds a job may take; overrides the suite's timeout when smaller.
    pub timeout: Option<u64>,
    /// QEMU settings.
    pub qemu: Option<Qemu>,
    /// Probe settings.
    pub probe: Option<Probe>,
}

/// `[telemetry]`: the link and the clock.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    /// stdio, serial or rtt.
    pub link: LinkKind,
    /// What ticks are.
    pub clock: ClockSource,
}

/// `[energy]`: where energy figures come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Energy {
    /// A datasheet model: active current per MHz.
    pub model_ua_per_mhz: Option<f64>,
    /// Supply voltage of the model.
    pub model_volts: Option<f64>,
    /// Where the model's figures come from (chip, document, operating point).
    pub model_source: Option<String>,
    /// Core cycles per emulated instruction the model assumes where the
    /// target has no cycle model (default 1).
    pub model_cycles_per_instruction: Option<f64>,
    /// Published measurements of this chip the current per MHz is
    /// calibrated on: `targets/calibration/<name>.toml`. Overrides
    /// `model-ua-per-mhz`, which then stays as the datasheet's figure.
    pub calibration: Option<String>,
    /// The calibration, read when the target file loads.
    #[serde(skip)]
    pub calibrated: Option<crate::telemetry::calibration::Calibration>,
}

/// `[target]`: identity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetMeta {
    /// Name (the file stem).
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Rust target triple; `host` means this machine's.
    pub triple: String,
    /// CPU name.
    pub cpu: String,
    /// Core clock in Hz, where fixed.
    pub clock_hz: Option<u64>,
}

/// A target file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Identity.
    pub target: TargetMeta,
    /// Memory regions (empty for the host).
    #[serde(default)]
    pub memory: Vec<Memory>,
    /// Device program.
    pub build: Build,
    /// How it runs.
    pub run: Run,
    /// Telemetry.
    pub telemetry: Telemetry,
    /// Energy.
    pub energy: Option<Energy>,
    /// Cycles estimated from what QEMU executed: the core's timings and the
    /// board's flash costs.
    #[serde(rename = "cycle-model")]
    pub cycles: Option<crate::telemetry::cycles::BoardCycles>,
    /// An energy meter on a serial port.
    pub meter: Option<crate::device::meter::MeterSpec>,
    /// The file it came from.
    #[serde(skip)]
    pub path: PathBuf,
    /// The file's text (hashed into the manifest).
    #[serde(skip)]
    pub text: String,
}

/// The directory of target files: `$BENCH_TARGETS`, else `targets/` of this workspace.
pub fn targets_dir() -> PathBuf {
    std::env::var_os("BENCH_TARGETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("targets"))
}

/// Names of the target files in `dir`, sorted.
pub fn available(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.path()
                .file_name()?
                .to_str()?
                .strip_suffix(".toml")
                .map(String::from)
        })
        .collect();
    names.sort();
    names
}

/// Reads and checks `dir/<name>.toml`.
pub fn load(dir: &Path, name: &str) -> Result<Target, Diagnostics> {
    if let Some(problem) = crate::input::diag::name_problem(name) {
        return Err(Diagnostics(vec![Diagnostic {
            file: dir.into(),
            line: 0,
            column: 0,
            message: format!("target {problem}"),
            help: None,
        }]));
    }
    let path = dir.join(format!("{name}.toml"));
    let one = |message: String, help: Option<String>| {
        Diagnostics(vec![Diagnostic {
            file: path.clone(),
            line: 0,
            column: 0,
            message,
            help,
        }])
    };
    if !path.is_file() {
        let names = available(dir);
        let help = did_you_mean(name, names.iter().map(String::as_str));
        return Err(one(
            format!(
                "unknown target `{name}`: no such file (targets here: {})",
                names.join(", ")
            ),
            help,
        ));
    }
    let text = crate::input::files::read_to_string(&path)
        .map_err(|e| one(format!("failed to read the target file: {e}"), None))?;
    parse(&path, name, text)
}

/// Checks the target file `text` of target `name`, read from `path`.
pub fn parse(path: &Path, name: &str, text: String) -> Result<Target, Diagnostics> {
    let src = Source { path, text: &text };
    let mut target: Target =
        toml::from_str(&text).map_err(|e| Diagnostics(vec![src.from_toml(&e)]))?;
    let mut errors = check::all(&target, &src);
    if let Some(msg) = marker_mismatch(&target) {
        errors.push(src.error(crate::input::diag::span_of(&text, &["meter"]), msg));
    }
    if target.target.name != name {
        errors.push(src.error(
            crate::input::diag::span_of(&text, &["target", "name"]),
            format!(
                "the file says name = \"{}\" but is named {name}.toml",
                target.target.name
            ),
        ));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    errors.extend(resolve_data(&mut target, dir, &src));
    if !errors.is_empty() {
        return Err(Diagnostics(errors));
    }
    target.path = path.into();
    target.text = text;
    Ok(target)
}

/// The directory of data files `sub` (`calibration`, `cores`) holding
/// `name`: beside the target file, else bench's own `targets/`, so a target
/// file kept elsewhere can still name the ones bench ships.
fn data_dir(dir: &Path, sub: &str, name: &str) -> Result<PathBuf, String> {
    if let Some(problem) = crate::input::diag::name_problem(name) {
        return Err(format!("the {sub} file {problem}"));
    }
    let beside = dir.join(sub);
    if beside.join(format!("{name}.toml")).is_file() {
        return Ok(beside);
    }
    let shipped = crate::workspace_root().join("targets").join(sub);
    if shipped.join(format!("{name}.toml")).is_file() {
        Ok(shipped)
    } else {
        Ok(beside)
    }
}

/// Reads the data files a target file names (its energy calibration, its
/// core's timings); an error points at the naming key.
fn resolve_data(target: &mut Target, dir: &Path, src: &Source) -> Vec<Diagnostic> {
    use crate::input::diag::span_of;
    use crate::telemetry::{calibration, cycles};
    let mut errors = Vec::new();
    if let Some(e) = target.energy.as_mut() {
        if let Some(name) = e.calibration.clone() {
            let loaded = data_dir(dir, "calibration", &name)
                .and_then(|d| calibration::Calibration::load(&d, &name));
            match loaded {
                Ok(c) => e.calibrated = Some(c),
                Err(msg) => {
                    errors.push(src.error(span_of(src.text, &["energy", "calibration"]), msg))
                }
            }
        } else if e.model_ua_per_mhz.is_none() {
            errors.push(src.error(
                span_of(src.text, &["energy"]),
                "[energy] needs model-ua-per-mhz (a datasheet figure) or calibration (published measurements)",
            ));
        }
        if e.model_volts.is_none() {
            errors.push(src.error(
                span_of(src.text, &["energy"]),
                "[energy] needs model-volts, the supply the chip runs at",
            ));
        }
    }
    if let Some(c) = target.cycles.as_mut() {
        if target.run.runner != RunnerKind::Qemu {
            errors.push(src.error(
                span_of(src.text, &["cycle-model"]),
                "[cycle-model] estimates cycles from what QEMU executed; this target does not run under QEMU",
            ));
        }
        let loaded =
            data_dir(dir, "cores", &c.core).and_then(|d| cycles::CoreTimings::load(&d, &c.core));
        match loaded {
            Ok(t) => c.timings = Some(t),
            Err(msg) => errors.push(src.error(span_of(src.text, &["cycle-model", "core"]), msg)),
        }
    }
    errors
}

/// The checks of a parsed target file: every setting must be possible and
/// apply to its runner; each error points at the key.
mod check {
    use super::*;
    use crate::input::diag::span_of;

    /// Every problem of `t`, read from `src`.
    pub fn all(t: &Target, src: &Source) -> Vec<Diagnostic> {
        let mut errors = Vec::new();
        let mut at = |path: &[&str], message: String| {
            errors.push(src.error(span_of(src.text, path), message))
        };
        runner(t, &mut at);
        clock(t, &mut at);
        energy(t, &mut at);
        memory(t, &mut at);
        errors
    }

    type At<'a> = dyn FnMut(&[&str], String) + 'a;

    fn runner(t: &Target, at: &mut At) {
        let (kind, link) = (t.run.runner, t.telemetry.link);
        match kind {
            RunnerKind::Qemu if t.run.qemu.is_none() => at(
                &["run", "runner"],
                "runner = \"qemu\" needs a [run.qemu] table".into(),
            ),
            RunnerKind::ProbeRs if t.run.probe.is_none() => at(
                &["run", "runner"],
                "runner = \"probe-rs\" needs a [run.probe] table".into(),
            ),
            _ => {}
        }
        if kind != RunnerKind::Qemu && t.run.qemu.is_some() {
            at(
                &["run", "qemu"],
                format!(
                    "[run.qemu] applies to runner = \"qemu\", not \"{}\": remove it",
                    kind.name()
                ),
            );
        }
        if kind != RunnerKind::ProbeRs && t.run.probe.is_some() {
            at(
                &["run", "probe"],
                format!(
                    "[run.probe] applies to runner = \"probe-rs\", not \"{}\": remove it",
                    kind.name()
                ),
            );
        }
        let allowed: &[LinkKind] = match kind {
            RunnerKind::Host => &[LinkKind::Stdio],
            RunnerKind::Qemu => &[LinkKind::Serial],
            RunnerKind::ProbeRs => &[LinkKind::Rtt, LinkKind::Serial],
        };
        if !allowed.contains(&link) {
            let takes: Vec<String> = allowed
                .iter()
                .map(|l| format!("\"{}\"", l.name()))
                .collect();
            at(
                &["telemetry", "link"],
                format!(
                    "link = \"{}\" cannot carry runner = \"{}\"'s telemetry; it takes {}",
                    link.name(),
                    kind.name(),
                    takes.join(" or ")
                ),
            );
        }
        if kind == RunnerKind::ProbeRs
            && link == LinkKind::Serial
            && t.run.probe.as_ref().is_some_and(|p| p.port.is_none())
        {
            at(
                &["run", "probe"],
                "link = \"serial\" needs the board's UART as port = \"/dev/tty...\" in [run.probe]"
                    .into(),
            );
        }
        if let Some(timeout) = t
            .run
            .timeout
            .filter(|s| !(1..=crate::input::suite::MAX_TIMEOUT_SECONDS).contains(s))
        {
            at(
                &["run", "timeout"],
                format!(
                    "timeout = {timeout} is outside 1..={} seconds",
                    crate::input::suite::MAX_TIMEOUT_SECONDS
                ),
            );
        }
    }

    /// The most a core clock can be: 10 GHz.
    const MAX_CLOCK_HZ: u64 = 10_000_000_000;

    fn clock(t: &Target, at: &mut At) {
        let hz = t.target.clock_hz;
        if let Some(hz) = hz.filter(|hz| !(1..=MAX_CLOCK_HZ).contains(hz)) {
            at(
                &["target", "clock_hz"],
                format!("clock_hz = {hz} is outside 1..={MAX_CLOCK_HZ}"),
            );
            return;
        }
        // The firmware's clock and CPU are derived from [target]: a second copy could disagree.
        if t.build.env.contains_key("BENCH_CORE_HZ") {
            let why = "bench sets BENCH_CORE_HZ from [target] clock_hz; remove it here";
            at(&["build", "env", "BENCH_CORE_HZ"], why.into());
        }
        if t.passes_cpu() && t.build.rustflags.iter().any(|f| f.contains("target-cpu")) {
            let why = "bench passes -C target-cpu from [target] cpu; remove it here";
            at(&["build", "rustflags"], why.into());
        }
        let counts_ticks = matches!(
            t.telemetry.clock,
            ClockSource::Timer | ClockSource::Systick | ClockSource::DwtCyccnt
        );
        if counts_ticks && hz.is_none() && t.run.runner != RunnerKind::Host {
            at(
                &["telemetry", "clock"],
                format!(
                    "clock = \"{}\" counts ticks of the core clock: [target] needs clock_hz",
                    t.telemetry.clock.name()
                ),
            );
        }
        let Some(qemu) = &t.run.qemu else { return };
        if qemu.icount_shift > 10 {
            at(
                &["run", "qemu", "icount_shift"],
                format!(
                    "icount_shift = {} is outside QEMU's 0..=10",
                    qemu.icount_shift
                ),
            );
            return;
        }
        // A board timer stands for exact instruction counts only when a tick is at most half an instruction.
        if let (true, Some(hz)) = (counts_ticks, hz) {
            if !crate::telemetry::icount::is_exact(hz, qemu.icount_shift) {
                let least = (0..=10).find(|&s| crate::telemetry::icount::is_exact(hz, s));
                let per =
                    1.0 / crate::telemetry::icount::ticks_per_instruction(hz, qemu.icount_shift);
                let fix = least.map_or(
                    "no shift up to 10 makes it exact: use a faster timer".into(),
                    |s| format!("use icount_shift >= {s}"),
                );
                at(
                    &["run", "qemu", "icount_shift"],
                    format!(
                        "icount_shift = {} with a {hz} Hz timer counts one tick per {per:.2} instructions, so counts would not be exact; {fix}",
                        qemu.icount_shift
                    ),
                );
            }
        }
    }

    fn energy(t: &Target, at: &mut At) {
        let Some(e) = &t.energy else { return };
        for (key, value) in [
            ("model-ua-per-mhz", e.model_ua_per_mhz),
            ("model-volts", e.model_volts),
            (
                "model-cycles-per-instruction",
                e.model_cycles_per_instruction,
            ),
        ] {
            if let Some(v) = value.filter(|v| !(v.is_finite() && *v > 0.0 && *v < 1e9)) {
                at(
                    &["energy", key],
                    format!("{key} = {v} is not a positive finite number"),
                );
            }
        }
    }

    fn memory(t: &Target, at: &mut At) {
        if t.run.runner == RunnerKind::Host {
            if !t.memory.is_empty() {
                at(
                    &["memory"],
                    "[[memory]] describes a board; the host target has none".into(),
                );
            }
            return;
        }
        for needed in ["FLASH", "RAM"] {
            if !t.memory.iter().any(|m| m.name == needed) {
                at(
                    &["target"],
                    format!("a board needs a [[memory]] region named {needed}"),
                );
            }
        }
        let top = if t.target.triple.starts_with("thumb") || t.target.triple.starts_with("riscv32")
        {
            1u64 << 32
        } else {
            u64::MAX
        };
        for (i, m) in t.memory.iter().enumerate() {
            let index = i.to_string();
            let place = ["memory", index.as_str(), "name"];
            if !m.name.starts_with(|c: char| c.is_ascii_alphabetic())
                || !m
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                at(&place, format!("memory region name {:?} is not a linker region name (letters, digits, '_')", m.name));
            }
            if t.memory[..i].iter().any(|o| o.name == m.name) {
                at(&place, format!("memory region {} is given twice", m.name));
            }
            let end = m.origin.checked_add(m.length).filter(|&e| e <= top);
            match end {
                _ if m.length == 0 => at(
                    &["memory", index.as_str(), "length"],
                    format!("memory region {} has length 0", m.name),
                ),
                None => at(
                    &["memory", index.as_str(), "length"],
                    format!(
                        "memory region {} ends past the address space ({:#x} + {})",
                        m.name, m.origin, m.length
                    ),
                ),
                Some(end) => {
                    if let Some(o) = t.memory[..i]
                        .iter()
                        .find(|o| o.origin < end && m.origin < o.origin.saturating_add(o.length))
                    {
                        at(
                            &["memory", index.as_str(), "origin"],
                            format!("memory region {} overlaps {}", m.name, o.name),
                        );
                    }
                }
            }
        }
        if let Some(ram) = t.memory.iter().find(|m| m.name == "RAM") {
            if t.build.stack_bytes == 0 || t.build.stack_bytes >= ram.length {
                at(
                    &["build", "stack_bytes"],
                    format!(
                        "stack_bytes = {} must be more than 0 and less than RAM ({} bytes)",
                        t.build.stack_bytes, ram.length
                    ),
                );
            }
        }
    }
}

/// A real board's marker must be driven the way its meter reads it: a
/// level for a PPK2 logic input, pulses for the LPM01A's D7 trigger.
fn marker_mismatch(target: &Target) -> Option<String> {
    use crate::device::meter::MeterKind;
    let meter = target.meter.as_ref()?;
    let (kind, wanted) = match meter.kind {
        MeterKind::Ppk2 => ("ppk2", "level"),
        MeterKind::Lpm01a => ("lpm01a", "pulse"),
    };
    let env = &target.build.env;
    match (env.get("BENCH_MARKER_PORT"), env.get("BENCH_MARKER_MODE").map(String::as_str)) {
        (None, _) if target.run.runner == RunnerKind::ProbeRs => Some(format!(
            "[meter] needs a marker pin the firmware drives: set BENCH_MARKER_PORT and BENCH_MARKER_PIN in [build] env, with BENCH_MARKER_MODE = \"{wanted}\""
        )),
        (Some(_), mode) if mode != Some(wanted) => {
            Some(format!("[meter] kind = \"{kind}\" reads the marker as a {wanted}: set BENCH_MARKER_MODE = \"{wanted}\" in [build] env"))
        }
        _ => None,
    }
}

impl Target {
    /// The Rust triple to build for.
    pub fn triple(&self) -> String {
        if self.target.triple == "host" {
            host_triple()
        } else {
            self.target.triple.clone()
        }
    }

    /// Whether the build is told [`TargetMeta::cpu`] as `-C target-cpu`: Arm
    /// cores, whose names rustc and the file share (RISC-V builds keep the
    /// triple's baseline; the host's kernels pick their ISA at run time).
    pub fn passes_cpu(&self) -> bool {
        self.target.triple.starts_with("thumb")
    }

    /// The `RUSTFLAGS` and environment of the device program's build, the
    /// board facts given once in `[target]` included.
    pub fn build_settings(&self) -> (Vec<String>, Vec<(String, String)>) {
        let mut rustflags = Vec::new();
        if self.passes_cpu() {
            rustflags.extend(["-C".to_string(), format!("target-cpu={}", self.target.cpu)]);
        }
        rustflags.extend(self.build.rustflags.iter().cloned());
        let mut env: Vec<(String, String)> = self
            .build
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(hz) = self.target.clock_hz {
            env.push(("BENCH_CORE_HZ".into(), hz.to_string()));
        }
        env.sort();
        (rustflags, env)
    }

    /// Whether the device program has the model built in (board firmware),
    /// so that it is built once per model rather than once per target.
    pub fn builds_per_model(&self) -> bool {
        self.run.runner != RunnerKind::Host
    }

    /// The job deadline: the suite's, or the target's if smaller.
    pub fn timeout(&self, suite_timeout: u64) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.run
                .timeout
                .map_or(suite_timeout, |t| t.min(suite_timeout)),
        )
    }
}

/// This machine's Rust triple, from `rustc -vV`.
pub fn host_triple() -> String {
    let out = std::process::Command::new("rustc").arg("-vV").output().ok();
    out.and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("host: ").map(String::from))
        })
        .unwrap_or_else(|| "x86_64-unknown-linux-gnu".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board_with_meter(kind: &str, mode: &str) -> Result<Target, Diagnostics> {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(targets_dir().join("nucleo-l4r5zi.toml")).unwrap();
        let text = text.replace(
            "BENCH_MARKER_MODE = \"level\"",
            &format!("BENCH_MARKER_MODE = \"{mode}\""),
        );
        let text = format!("{text}\n[meter]\nkind = \"{kind}\"\nport = \"/dev/ttyACM0\"\n");
        std::fs::write(dir.path().join("nucleo-l4r5zi.toml"), text).unwrap();
        load(dir.path(), "nucleo-l4r5zi")
    }

    #[test]
    fn a_target_reads_the_calibration_and_core_timings_it_names_and_points_at_a_missing_one() {
        let t = load(&targets_dir(), "qemu-m4").unwrap();
        let energy = t.energy.unwrap();
        assert_eq!(
            energy.calibrated.unwrap().name,
            "mlperf-tiny-v0.5-nucleo-l4r5zi"
        );
        assert_eq!(t.cycles.unwrap().timings.unwrap().core.name, "cortex-m4");
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(targets_dir().join("qemu-m4.toml"))
            .unwrap()
            .replace("mlperf-tiny-v0.5-nucleo-l4r5zi", "no-such-calibration")
            .replace("core = \"cortex-m4\"", "core = \"../cores/cortex-m4\"");
        std::fs::write(dir.path().join("qemu-m4.toml"), &text).unwrap();
        let errors = load(dir.path(), "qemu-m4").unwrap_err().0;
        let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0]
                .message
                .starts_with("failed to read energy calibration"),
            "{}",
            errors[0].message
        );
        assert_eq!(errors[0].line, line_of("no-such-calibration"));
        assert!(
            errors[1]
                .message
                .starts_with("the cores file \"../cores/cortex-m4\" is not a usable name"),
            "{}",
            errors[1].message
        );
        assert_eq!(errors[1].line, line_of("../cores/cortex-m4"));
    }

    #[test]
    fn a_meter_needs_the_marker_mode_it_reads() {
        assert!(board_with_meter("ppk2", "level").is_ok());
        assert!(board_with_meter("lpm01a", "pulse").is_ok());
        let e = board_with_meter("lpm01a", "level")
            .unwrap_err()
            .0
            .remove(0)
            .message;
        assert_eq!(e, "[meter] kind = \"lpm01a\" reads the marker as a pulse: set BENCH_MARKER_MODE = \"pulse\" in [build] env");
        let e = board_with_meter("ppk2", "pulse")
            .unwrap_err()
            .0
            .remove(0)
            .message;
        assert_eq!(e, "[meter] kind = \"ppk2\" reads the marker as a level: set BENCH_MARKER_MODE = \"level\" in [build] env");
    }
}
