//! Compiling and linking with `arm-none-eabi-gcc` as TFLM's makefiles do
//! for `TARGET=cortex_m_generic` (`targets/cortex_m_generic_makefile.inc`,
//! the Makefile's `COMMON_FLAGS`, `ext_libs/cmsis_nn.inc`): `-Os` for the
//! core, `-O2` for kernels and CMSIS-NN, `KERNELS_OPTIMIZED_FOR_SPEED`, and
//! `NDEBUG` (the `release_with_logs` build type: without it TFLM's
//! `TFLITE_DCHECK`s run in every inner loop of the reference kernels).

use super::sources::{Isa, Kernels, LibrarySources};
use crate::input::target::Target;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const NO_IF_CONVERSION: &str = "-fno-if-conversion2";
const ARM_INSTALL: &str = "apt-get install --no-install-recommends gcc-arm-none-eabi libstdc++-arm-none-eabi-newlib (scripts/setup.sh does it)";
const RISCV_INSTALL: &str = "apt-get install --no-install-recommends gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf libstdc++-arm-none-eabi-newlib (scripts/setup.sh does it)";
/// Where Debian's `libstdc++-arm-none-eabi-newlib` keeps the C++ library's
/// headers, by GCC version.
const NEWLIB_CXX_HEADERS: &str = "/usr/include/newlib/c++";

/// A Cortex-M core as TFLM's `cortex_m_generic` target names it.
struct Core {
    /// `-mcpu`.
    gcc_cpu: &'static str,
    /// `-mfloat-abi`.
    float_abi: &'static str,
    /// The CMSIS device (`ARMCM4`): its header and define.
    device: &'static str,
    /// TFLM's `CPU_<core>` define.
    core: &'static str,
}

fn core_of(cpu: &str) -> Result<Core, String> {
    let (gcc_cpu, float_abi, device, core) = match cpu {
        "cortex-m0" => ("cortex-m0", "soft", "ARMCM0", "M0"),
        "cortex-m0plus" => ("cortex-m0plus", "soft", "ARMCM0plus", "M0plus"),
        "cortex-m3" => ("cortex-m3", "soft", "ARMCM3", "M3"),
        "cortex-m4" => ("cortex-m4", "hard", "ARMCM4", "M4"),
        "cortex-m7" => ("cortex-m7", "hard", "ARMCM7", "M7"),
        "cortex-m33" => ("cortex-m33", "hard", "ARMCM33", "M33"),
        "cortex-m55" => ("cortex-m55", "hard", "ARMCM55", "M55"),
        other => {
            return Err(format!(
                "TFLite Micro's cortex_m_generic target has no core {other}"
            ))
        }
    };
    Ok(Core {
        gcc_cpu,
        float_abi,
        device,
        core,
    })
}

/// The compiler and flags of one target and kernel set.
pub struct Toolchain {
    /// The tools' prefix (`arm-none-eabi-`).
    prefix: &'static str,
    /// The instruction set, which picks TFLM's platform files and bench's
    /// start-up.
    pub isa: Isa,
    /// Flags of every C and C++ compilation (core, defines, includes).
    common: Vec<String>,
    /// Flags of C++ compilations only.
    cxx: Vec<String>,
    /// The machine flags (`-mcpu`, `-march`, the ABI), for the link too.
    machine: Vec<String>,
    /// The link's own flags (the C library).
    link: Vec<String>,
    /// The driver that links: `g++` where a C++ library exists, else `gcc`
    /// (the DUT then defines the few C++ runtime symbols TFLM needs).
    linker: &'static str,
    /// `gcc --version`'s first line.
    version: String,
    /// The command that installs the toolchain.
    install: &'static str,
}

/// Flags of TFLM's makefile for every target.
const TFLM_FLAGS: [&str; 14] = [
    "-fno-unwind-tables",
    "-fno-asynchronous-unwind-tables",
    "-ffunction-sections",
    "-fdata-sections",
    "-fmessage-length=0",
    "-fomit-frame-pointer",
    "-funsigned-char",
    "-DTF_LITE_STATIC_MEMORY",
    "-DTF_LITE_DISABLE_X86_NEON",
    "-DTF_LITE_MCU_DEBUG_LOG",
    "-DKERNELS_OPTIMIZED_FOR_SPEED",
    "-DNDEBUG",
    // The first hunk of TFLM's flatbuffers.patch, as a define.
    "-DFLATBUFFERS_LOCALE_INDEPENDENT=0",
    "-w",
];

impl Toolchain {
    /// The toolchain for `target`, or why there is none.
    pub fn for_target(
        target: &Target,
        kernels: Kernels,
        peers: &Path,
    ) -> Result<Toolchain, String> {
        let mut toolchain = match target.target.triple.split('-').next() {
            Some(arch) if arch.starts_with("thumb") => Self::cortex_m(&target.target.cpu, kernels)?,
            Some(arch) if arch.starts_with("riscv32") && kernels == Kernels::Reference => {
                Self::riscv32(arch)?
            }
            Some(arch) if arch.starts_with("riscv32") => {
                return Err(
                    "CMSIS-NN is Arm's: on RISC-V, TFLM runs its reference kernels (runtime tflm)"
                        .into(),
                )
            }
            _ => {
                return Err(format!(
                    "bench builds TFLite Micro for Cortex-M and RV32 targets, not {}",
                    target.target.triple
                ))
            }
        };
        let gcc = format!("{}gcc", toolchain.prefix);
        let version = Command::new(&gcc).arg("--version").output().map_err(|e| {
            format!(
                "failed to start {gcc} ({e}); install it: {}",
                toolchain.install
            )
        })?;
        toolchain.version = String::from_utf8_lossy(&version.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        let mut includes = vec![
            "tflite-micro".to_string(),
            "flatbuffers/include".into(),
            "gemmlowp".into(),
            "ruy".into(),
            "mlperf-tiny/benchmark".into(),
        ];
        if toolchain.isa == Isa::Arm {
            let device = core_of(&target.target.cpu)?.device;
            includes.extend([
                "cmsis-nn".into(),
                "cmsis-nn/Include".into(),
                "cmsis-6/CMSIS/Core/Include".into(),
                format!("cortex-dfp/Device/{device}/Include"),
            ]);
        }
        toolchain.common.extend(
            includes
                .iter()
                .map(|i| format!("-I{}", peers.join(i).display())),
        );
        Ok(toolchain)
    }

    /// `arm-none-eabi-gcc` as TFLM's `cortex_m_generic` target drives it.
    fn cortex_m(cpu: &str, kernels: Kernels) -> Result<Toolchain, String> {
        let core = core_of(cpu)?;
        let mut machine = vec![
            format!("-mcpu={}", core.gcc_cpu),
            "-mthumb".into(),
            format!("-mfloat-abi={}", core.float_abi),
        ];
        if core.float_abi == "hard" {
            machine.push("-mfpu=auto".into());
        }
        let mut common: Vec<String> = TFLM_FLAGS.map(String::from).to_vec();
        common.push("-mlittle-endian".into());
        common.extend(machine.iter().cloned());
        common.push(format!("-DCPU_{}=1", core.core));
        common.push(format!(
            "-DCMSIS_DEVICE_ARM_CORTEX_M_XX_HEADER_FILE=\"{}.h\"",
            core.device
        ));
        common.push(format!("-D{}", core.device));
        if core.core == "M55" {
            common.push("-DARM_MODEL_USE_PMU_COUNTERS".into());
        }
        if kernels == Kernels::CmsisNn {
            common.extend(
                [
                    "-DCMSIS_NN",
                    "-DARM_NN_ENABLE_F16=0",
                    "-DARM_NN_ENABLE_F32=0",
                ]
                .map(String::from),
            );
        }
        Ok(Toolchain {
            prefix: "arm-none-eabi-",
            isa: Isa::Arm,
            common,
            cxx: Vec::new(),
            machine,
            link: vec!["--specs=nosys.specs".into()],
            linker: "g++",
            version: String::new(),
            install: ARM_INSTALL,
        })
    }

    /// `riscv64-unknown-elf-gcc` with TFLM's `riscv32_generic` flags and
    /// Debian's picolibc. Debian ships no C++ library for this compiler, so
    /// the headers of its Arm build (`libstdc++-arm-none-eabi-newlib`, the
    /// same GCC release) stand in: TFLM uses only header templates of it, and
    /// their Arm-specific parts are behind `__ARM_EABI__`.
    fn riscv32(arch: &str) -> Result<Toolchain, String> {
        let march = format!("rv32{}", arch.trim_start_matches("riscv32"));
        let machine = vec![
            format!("-march={march}"),
            "-mabi=ilp32".into(),
            "-mcmodel=medany".into(),
        ];
        let cxx_headers = newlib_cxx_headers()?;
        let mut common: Vec<String> = TFLM_FLAGS.map(String::from).to_vec();
        common.extend(machine.iter().cloned());
        common.extend(
            [
                "--specs=picolibc.specs",
                "-mexplicit-relocs",
                "-fno-builtin-printf",
                "-fno-delete-null-pointer-checks",
                "-DTF_LITE_USE_GLOBAL_CMATH_FUNCTIONS",
            ]
            .map(String::from),
        );
        let mut cxx: Vec<String> = [
            "-fpermissive",
            "-fno-use-cxa-atexit",
            "-DTF_LITE_USE_GLOBAL_MIN",
            "-DTF_LITE_USE_GLOBAL_MAX",
        ]
        .map(String::from)
        .to_vec();
        for dir in [cxx_headers.clone(), cxx_headers.join("arm-none-eabi")] {
            cxx.push("-isystem".into());
            cxx.push(dir.display().to_string());
        }
        Ok(Toolchain {
            prefix: "riscv64-unknown-elf-",
            isa: Isa::RiscV,
            common,
            cxx,
            machine,
            // TFLM's riscv32_generic links without relaxation, which
            // produced wrong code; bench's start-up replaces picolibc's crt0.
            link: ["--specs=picolibc.specs", "-nostartfiles", "-mno-relax"]
                .map(String::from)
                .to_vec(),
            linker: "gcc",
            version: String::new(),
            install: RISCV_INSTALL,
        })
    }

    /// The tool `name` of this toolchain (`gcc`, `g++`, `ar`).
    fn tool(&self, name: &str) -> Command {
        Command::new(format!("{}{name}", self.prefix))
    }

    /// Runs `cmd`; a failure carries the end of its diagnostics.
    fn run(&self, mut cmd: Command, what: &str) -> Result<(), String> {
        let out = cmd.output().map_err(|e| {
            format!(
                "failed to {what}: {e}; install the toolchain: {}",
                self.install
            )
        })?;
        if out.status.success() {
            return Ok(());
        }
        let diagnostics = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = diagnostics.lines().rev().take(20).collect();
        Err(format!(
            "failed to {what}:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    }

    /// What identifies this toolchain's output, for cache keys.
    pub fn fingerprint(&self) -> String {
        format!("{}\n{}", self.version, self.common.join(" "))
    }

    /// Compiles `sources` into `objects` and archives them as `library`.
    pub fn compile_library(
        &self,
        sources: &LibrarySources,
        objects: &Path,
        library: &Path,
    ) -> Result<(), String> {
        std::fs::create_dir_all(objects)
            .map_err(|e| format!("failed to create {}: {e}", objects.display()))?;
        let mut jobs = Vec::new();
        for (group, level) in [
            (&sources.core, "-Os"),
            (&sources.kernels, "-O2"),
            (&sources.third_party, "-O2"),
        ] {
            for source in group.iter() {
                let object = objects.join(format!("{}-{}.o", jobs.len(), stem(source)));
                jobs.push((source.clone(), level, object));
            }
        }
        self.compile_with(&jobs, &[])?;
        let _ = std::fs::remove_file(library);
        let mut ar = self.tool("ar");
        ar.arg("rcs")
            .arg(library)
            .args(jobs.iter().map(|(_, _, o)| o));
        self.run(ar, "archive the TFLM library")
    }

    /// Compiles and links the firmware of `app` against `library` as `elf`.
    pub fn link_firmware(
        &self,
        target: &Target,
        app: &App,
        library: &Path,
        elf: &Path,
    ) -> Result<(), String> {
        let work =
            tempfile::tempdir().map_err(|e| format!("failed to create a build directory: {e}"))?;
        let dir = work.path();
        let write = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text).map_err(|e| format!("failed to write {name}: {e}"))
        };
        write("bench_ops.h", app.ops)?;
        let model = app
            .model
            .canonicalize()
            .map_err(|e| format!("failed to read {}: {e}", app.model.display()))?;
        write(
            "bench_model.S",
            &format!(
                "  .section .rodata.bench_model, \"a\"\n  .balign 16\n  .global bench_model\nbench_model:\n  .incbin \"{}\"\n",
                model.display()
            ),
        )?;
        let layout = Layout::of(target)?;
        write("link.ld", &layout.linker_script(self.isa))?;
        let board = Board::of(target)?;
        let mut defines = board.defines;
        defines.extend([
            format!("-DBENCH_HEAP_BYTES={}u", layout.heap_bytes()),
            format!("-DTH_MODEL_VERSION=\"{}\"", app.model_name),
            format!("-DBENCH_INPUT_BYTES={}u", app.input_bytes.max(1)),
            format!("-I{}", dir.display()),
            // bench's api/submitter_implemented.h before the reference's.
            format!("-iquote{}", app.firmware.display()),
        ]);
        let api = self
            .common
            .iter()
            .find_map(|f| {
                f.strip_prefix("-I")
                    .filter(|p| p.ends_with("mlperf-tiny/benchmark"))
            })
            .map(PathBuf::from)
            .ok_or("no MLPerf Tiny include directory")?;
        let sources = [
            app.firmware.join("startup.c"),
            app.firmware.join(board.source),
            app.firmware.join("submitter.cc"),
            api.join("api/internally_implemented.cpp"),
            dir.join("bench_model.S"),
        ];
        let jobs: Vec<_> = sources
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), "-Os", dir.join(format!("{i}-{}.o", stem(s)))))
            .collect();
        // The arena takes what RAM the rest leaves: a first link with three
        // quarters of it says by how much a small board's RAM overflows, and
        // the second gives the arena that much less.
        let mut arena = layout.arena_bytes();
        loop {
            let mut with_arena = defines.clone();
            with_arena.push(format!("-DBENCH_ARENA_BYTES={arena}u"));
            // compile_one keeps finished objects: these depend on the arena.
            for (_, _, object) in &jobs {
                let _ = std::fs::remove_file(object);
            }
            self.compile_with(&jobs, &with_arena)?;
            let linked = self.link(&jobs, &dir.join("link.ld"), library, elf);
            let Err(error) = linked else {
                return Ok(());
            };
            let over = ram_overflow(&error).filter(|_| arena == layout.arena_bytes());
            match over.map(|bytes| arena.checked_sub((bytes + 15) & !15)) {
                Some(Some(smaller)) if smaller > 0 => arena = smaller,
                _ => return Err(error),
            }
        }
    }

    /// Links the compiled firmware.
    fn link(
        &self,
        jobs: &[(PathBuf, &str, PathBuf)],
        script: &Path,
        library: &Path,
        elf: &Path,
    ) -> Result<(), String> {
        let mut link = self.tool(self.linker);
        link.args(&self.machine)
            .arg(format!("-T{}", script.display()))
            .args(&self.link)
            .args(["-Wl,--gc-sections", "-Wl,--no-warn-rwx-segments"])
            .args(jobs.iter().map(|(_, _, o)| o))
            .arg(library)
            .arg("-lm")
            .arg("-o")
            .arg(elf);
        self.run(link, "link the TFLM firmware")
    }

    /// Runs the compilations on every core; the first failure is returned.
    fn compile_with(
        &self,
        jobs: &[(PathBuf, &str, PathBuf)],
        extra: &[String],
    ) -> Result<(), String> {
        let next = AtomicUsize::new(0);
        let failure = Mutex::new(None);
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((source, level, object)) = jobs.get(i) else {
                        break;
                    };
                    if failure.lock().map_or(true, |f| f.is_some()) {
                        break;
                    }
                    if let Err(e) = self.compile_one(source, level, object, extra) {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                    }
                });
            }
        });
        match failure.into_inner() {
            Ok(None) => Ok(()),
            Ok(Some(e)) => Err(e),
            Err(_) => Err("a compiler thread panicked".into()),
        }
    }

    fn compile_one(
        &self,
        source: &Path,
        level: &str,
        object: &Path,
        extra: &[String],
    ) -> Result<(), String> {
        // The objects' folder is named by the library's cache key, and an
        // object appears only once complete: a rebuild after a failure
        // compiles only what is missing.
        if object.is_file() {
            return Ok(());
        }
        let partial = object.with_extension("o.part");
        let cxx = source.extension().is_some_and(|e| e == "cc" || e == "cpp");
        let mut cmd = self.tool(if cxx { "g++" } else { "gcc" });
        if cxx {
            cmd.args([
                "-std=c++17",
                "-fno-rtti",
                "-fno-exceptions",
                "-fno-threadsafe-statics",
            ])
            .args(&self.cxx);
        } else if source.extension().is_some_and(|e| e == "c") {
            cmd.arg("-std=c17");
        }
        cmd.args(&self.common)
            .args(extra)
            .arg(level)
            .arg("-c")
            .arg(source)
            .arg("-o")
            .arg(&partial);
        let compiled = self
            .run(cmd, &format!("compile {}", source.display()))
            .and_then(|()| {
                std::fs::rename(&partial, object)
                    .map_err(|e| format!("failed to keep {}: {e}", object.display()))
            });
        match compiled {
            // GCC 12 with Helium (MVE) if-converts a VFP conversion into an
            // IT block, and binutils reads `vcvtne` as MVE's `vcvtn`: such a
            // file (resize_nearest_neighbor.cc for the M55) compiles again
            // without that pass; every other file keeps TFLM's flags.
            Err(e)
                if e.contains("Error: syntax error -- `vcvt")
                    && !extra.iter().any(|f| f == NO_IF_CONVERSION) =>
            {
                let mut extra = extra.to_vec();
                extra.push(NO_IF_CONVERSION.into());
                self.compile_one(source, level, object, &extra)
            }
            other => other,
        }
    }
}

/// The board file of `firmware/tflm/` a target's firmware drives, and what
/// it is compiled with.
struct Board {
    source: &'static str,
    defines: Vec<String>,
}

impl Board {
    /// The board of `target`, by the board feature its own firmware builds
    /// with, or why bench's TFLM firmware has none.
    fn of(target: &Target) -> Result<Board, String> {
        let has = |feature: &str| target.build.features.iter().any(|f| f == feature);
        let env = |name: &str| {
            target.build.env.get(name).ok_or(format!(
                "target {} gives no {name} in [build] env",
                target.target.name
            ))
        };
        let (source, clock_hz) = if has("board-sifive-e") {
            // minstret counts instructions; under QEMU with -icount shift=N
            // an instruction is 2^N ns of virtual time, the clock the DUT's
            // microseconds are in.
            let shift = target.run.qemu.as_ref().map_or(0, |q| q.icount_shift);
            ("board_sifive_e.c", 1_000_000_000u64 >> shift)
        } else if has("board-cmsdk") || has("board-sse300") || has("board-nrf51") {
            let clock = target
                .target
                .clock_hz
                .ok_or("the target names no clock_hz")?;
            let source = if has("board-nrf51") {
                "board_nrf51.c"
            } else {
                "board_mps.c"
            };
            (source, clock)
        } else {
            return Err("bench's TFLM firmware drives the CMSDK UART of Arm's MPS2 and MPS3 images, the nRF51's UART0 and the FE310's UART0 only (qemu-m0, qemu-m3, qemu-m4, qemu-m7, qemu-m33, qemu-m55, qemu-rv32)".into());
        };
        let mut defines = vec![
            format!("-DBENCH_UART_BASE={}u", env("BENCH_UART_BASE")?),
            format!("-DBENCH_CLOCK_HZ={clock_hz}u"),
        ];
        if source != "board_sifive_e.c" {
            defines.push(format!("-DBENCH_TIMER_BASE={}u", env("BENCH_TIMER_BASE")?));
        }
        if has("board-sse300") {
            defines.push("-DBENCH_BOARD_SSE300".into());
        }
        Ok(Board { source, defines })
    }
}

/// What bench adds to TFLM to make a firmware.
pub struct App<'a> {
    /// `firmware/tflm`: startup, board and the DUT.
    pub firmware: &'a Path,
    /// The `.tflite` compiled in.
    pub model: &'a Path,
    /// The generated `bench_ops.h`.
    pub ops: &'a str,
    /// The DUT's model name.
    pub model_name: &'a str,
    /// The model's input bytes: the size of the DUT's `db` buffer.
    pub input_bytes: usize,
}

/// Where code, data, the arena and the stack go on the target.
pub(super) struct Layout {
    flash: (u64, u64),
    ram: (u64, u64),
}

impl Layout {
    fn of(target: &Target) -> Result<Layout, String> {
        let region = |name: &str| {
            target
                .memory
                .iter()
                .find(|m| m.name == name)
                .map(|m| (m.origin, m.length))
                .ok_or(format!("the target has no {name} memory region"))
        };
        Ok(Layout {
            flash: region("FLASH")?,
            ram: region("RAM")?,
        })
    }

    /// The tensor arena at first: three quarters of RAM, or all but 256
    /// KiB of a large one (MobileNetV2's 2.4 MB on the MPS2 boards' 4 MiB),
    /// the rest for the stack, `.data`, `.bss` and newlib's heap; a board
    /// whose RAM that overflows gets the arena smaller by the overflow.
    fn arena_bytes(&self) -> u64 {
        (self.ram.1 / 4 * 3).max(self.ram.1.saturating_sub(256 << 10)) & !15
    }

    /// newlib's heap: its first `printf` of a float allocates the reentrancy
    /// state and `dtoa`'s big integers, more than 1 KiB: 4 KiB, a quarter of
    /// a 16 KiB board's RAM.
    fn heap_bytes(&self) -> u64 {
        (self.ram.1 / 4).min(4096) & !7
    }

    /// RAM kept free for the stack above `.bss`: an eighth of RAM, at
    /// least 2 KiB and at most 64 KiB.
    fn stack_bytes(&self) -> u64 {
        (self.ram.1 / 8).clamp(2048, 64 << 10) & !7
    }

    /// The script: on Arm the vector table comes first in flash, on RV32
    /// the reset code (the FE310's mask ROM jumps to the start of flash),
    /// and RV32's small-data sections get the global pointer.
    fn linker_script(&self, isa: Isa) -> String {
        let entry = match isa {
            Isa::Arm => "Reset_Handler",
            Isa::RiscV => "_start",
        };
        format!(
            r#"/* Generated by bench for a TFLite Micro firmware. */
MEMORY
{{
  FLASH (rx) : ORIGIN = {:#x}, LENGTH = {:#x}
  RAM (rwx) : ORIGIN = {:#x}, LENGTH = {:#x}
}}
ENTRY({entry})
SECTIONS
{{
  .text :
  {{
    KEEP(*(.vectors))
    KEEP(*(.text.reset))
    *(.text*)
    KEEP(*(.init))
    KEEP(*(.fini))
    *(.rodata*)
    *(.srodata*)
    . = ALIGN(4);
    __preinit_array_start = .;
    KEEP(*(.preinit_array))
    __preinit_array_end = .;
    __init_array_start = .;
    KEEP(*(SORT(.init_array.*)))
    KEEP(*(.init_array))
    __init_array_end = .;
    __fini_array_start = .;
    KEEP(*(.fini_array))
    __fini_array_end = .;
  }} > FLASH
  .ARM.exidx : {{ *(.ARM.exidx*) }} > FLASH
  .data : ALIGN(4)
  {{
    __data_start = .;
    *(.data*)
    __global_pointer$ = . + 0x800;
    *(.sdata*)
    . = ALIGN(4);
  }} > RAM AT > FLASH
  /* Thread-local data (picolibc's errno on RV32) of the one thread, whose
     block the thread pointer holds: .tdata is copied with .data, .tbss is
     cleared with .bss. */
  .tdata : ALIGN(4)
  {{
    __tls_base = .;
    *(.tdata .tdata.*)
    . = ALIGN(4);
    __data_end = .;
  }} > RAM AT > FLASH
  .tbss : ALIGN(4) {{ *(.tbss .tbss.*) }} > RAM
  __data_load = LOADADDR(.data);
  ASSERT(LOADADDR(.tdata) - LOADADDR(.data) == ADDR(.tdata) - ADDR(.data), ".data and .tdata must be copied as one block")
  .bss (NOLOAD) : ALIGN(4)
  {{
    __bss_start = .;
    . = MAX(., ADDR(.tbss) + SIZEOF(.tbss));
    *(.sbss*)
    *(.bss*)
    *(COMMON)
    . = ALIGN(4);
    __bss_end = .;
  }} > RAM
  /* Room kept for the stack, so that static data that leaves less fails to link. */
  .stack_reserve (NOLOAD) : ALIGN(8)
  {{
    . += {:#x};
  }} > RAM
  end = .;
  __stack_top = ORIGIN(RAM) + LENGTH(RAM);
}}
"#,
            self.flash.0,
            self.flash.1,
            self.ram.0,
            self.ram.1,
            self.stack_bytes()
        )
    }
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// By how many bytes the linker found RAM overflowed (`region `RAM'
/// overflowed by N bytes`), if that is why it failed.
fn ram_overflow(error: &str) -> Option<u64> {
    error.lines().find_map(|l| {
        l.split_once("region `RAM' overflowed by ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    })
}

/// The C++ library's headers of Debian's `libstdc++-arm-none-eabi-newlib`
/// (`/usr/include/newlib/c++/12.2.1`).
fn newlib_cxx_headers() -> Result<PathBuf, String> {
    let missing =
        || format!("no C++ library headers in {NEWLIB_CXX_HEADERS}: install them: {RISCV_INSTALL}");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(NEWLIB_CXX_HEADERS)
        .map_err(|_| missing())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("arm-none-eabi").is_dir())
        .collect();
    versions.sort();
    versions.pop().ok_or_else(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ram_overflow_is_read_from_the_linkers_words() {
        let ld = "failed to link the TFLM firmware:\n/usr/bin/ld: fw.elf section `.bss' will not fit in region `RAM'\n/usr/bin/ld: region `RAM' overflowed by 6168 bytes\ncollect2: error: ld returned 1 exit status";
        assert_eq!(ram_overflow(ld), Some(6168));
        let flash = "/usr/bin/ld: region `FLASH' overflowed by 189484 bytes";
        assert_eq!(ram_overflow(flash), None);
    }
}
