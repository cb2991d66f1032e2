//! Compiling and linking with `arm-none-eabi-gcc` as TFLM's makefiles do
//! for `TARGET=cortex_m_generic` (`targets/cortex_m_generic_makefile.inc`,
//! the Makefile's `COMMON_FLAGS`, `ext_libs/cmsis_nn.inc`): `-Os` for the
//! core, `-O2` for kernels and CMSIS-NN, `KERNELS_OPTIMIZED_FOR_SPEED`, and
//! `NDEBUG` (the `release_with_logs` build type: without it TFLM's
//! `TFLITE_DCHECK`s run in every inner loop of the reference kernels).

use super::sources::{Kernels, LibrarySources};
use crate::input::target::Target;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const GCC: &str = "arm-none-eabi-gcc";
const GXX: &str = "arm-none-eabi-g++";
const AR: &str = "arm-none-eabi-ar";
const NO_IF_CONVERSION: &str = "-fno-if-conversion2";
const INSTALL: &str = "apt-get install --no-install-recommends gcc-arm-none-eabi libstdc++-arm-none-eabi-newlib (scripts/setup.sh does it)";

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
    /// Flags of every C and C++ compilation (core, defines, includes).
    common: Vec<String>,
    /// `-mcpu` and `-mfloat-abi`, for the link too.
    machine: Vec<String>,
    /// `arm-none-eabi-gcc --version`'s first line.
    version: String,
}

impl Toolchain {
    /// The toolchain for `target`, or why there is none.
    pub fn for_target(
        target: &Target,
        kernels: Kernels,
        peers: &Path,
    ) -> Result<Toolchain, String> {
        let core = core_of(&target.target.cpu)?;
        let version = Command::new(GCC)
            .arg("--version")
            .output()
            .map_err(|e| format!("failed to start {GCC} ({e}); install it: {INSTALL}"))?;
        let version = String::from_utf8_lossy(&version.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        let mut machine = vec![
            format!("-mcpu={}", core.gcc_cpu),
            "-mthumb".into(),
            format!("-mfloat-abi={}", core.float_abi),
        ];
        if core.float_abi == "hard" {
            machine.push("-mfpu=auto".into());
        }
        let mut common: Vec<String> = [
            "-fno-unwind-tables",
            "-fno-asynchronous-unwind-tables",
            "-ffunction-sections",
            "-fdata-sections",
            "-fmessage-length=0",
            "-fomit-frame-pointer",
            "-funsigned-char",
            "-mlittle-endian",
            "-DTF_LITE_STATIC_MEMORY",
            "-DTF_LITE_DISABLE_X86_NEON",
            "-DTF_LITE_MCU_DEBUG_LOG",
            "-DKERNELS_OPTIMIZED_FOR_SPEED",
            "-DNDEBUG",
            // The first hunk of TFLM's flatbuffers.patch, as a define.
            "-DFLATBUFFERS_LOCALE_INDEPENDENT=0",
            "-w",
        ]
        .map(String::from)
        .to_vec();
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
        let includes = [
            "tflite-micro".to_string(),
            "flatbuffers/include".into(),
            "gemmlowp".into(),
            "ruy".into(),
            "cmsis-nn".into(),
            "cmsis-nn/Include".into(),
            "cmsis-6/CMSIS/Core/Include".into(),
            format!("cortex-dfp/Device/{}/Include", core.device),
            "mlperf-tiny/benchmark".into(),
        ];
        common.extend(
            includes
                .iter()
                .map(|i| format!("-I{}", peers.join(i).display())),
        );
        Ok(Toolchain {
            common,
            machine,
            version,
        })
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
        let mut ar = Command::new(AR);
        ar.arg("rcs")
            .arg(library)
            .args(jobs.iter().map(|(_, _, o)| o));
        run(ar, "archive the TFLM library")
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
        write("link.ld", &layout.linker_script())?;
        let has = |feature: &str| target.build.features.iter().any(|f| f == feature);
        let board = target
            .build
            .env
            .get("BENCH_UART_BASE")
            .zip(target.build.env.get("BENCH_TIMER_BASE"))
            .filter(|_| has("board-cmsdk") || has("board-sse300") || has("board-nrf51"))
            .ok_or("bench's TFLM firmware drives the CMSDK UART of Arm's MPS2 and MPS3 images and the nRF51's UART0 only (qemu-m0, qemu-m3, qemu-m4, qemu-m7, qemu-m33, qemu-m55)")?;
        let clock = target
            .target
            .clock_hz
            .ok_or("the target names no clock_hz")?;
        let mut defines = vec![
            format!("-DBENCH_UART_BASE={}u", board.0),
            format!("-DBENCH_TIMER_BASE={}u", board.1),
            format!("-DBENCH_CLOCK_HZ={clock}u"),
            format!("-DBENCH_HEAP_BYTES={}u", layout.heap_bytes()),
            format!("-DTH_MODEL_VERSION=\"{}\"", app.model_name),
            format!("-DBENCH_INPUT_BYTES={}u", app.input_bytes.max(1)),
            format!("-I{}", dir.display()),
            // bench's api/submitter_implemented.h before the reference's.
            format!("-iquote{}", app.firmware.display()),
        ];
        if has("board-sse300") {
            defines.push("-DBENCH_BOARD_SSE300".into());
        }
        let api = self
            .common
            .iter()
            .find_map(|f| {
                f.strip_prefix("-I")
                    .filter(|p| p.ends_with("mlperf-tiny/benchmark"))
            })
            .map(PathBuf::from)
            .ok_or("no MLPerf Tiny include directory")?;
        let board_source = if has("board-nrf51") {
            "board_nrf51.c"
        } else {
            "board_mps.c"
        };
        let sources = [
            app.firmware.join("startup.c"),
            app.firmware.join(board_source),
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
        let mut link = Command::new(GXX);
        link.args(&self.machine)
            .arg(format!("-T{}", script.display()))
            .args([
                "--specs=nosys.specs",
                "-Wl,--gc-sections",
                "-Wl,--no-warn-rwx-segments",
            ])
            .args(jobs.iter().map(|(_, _, o)| o))
            .arg(library)
            .arg("-lm")
            .arg("-o")
            .arg(elf);
        run(link, "link the TFLM firmware")
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
        let mut cmd = Command::new(if cxx { GXX } else { GCC });
        if cxx {
            cmd.args([
                "-std=c++17",
                "-fno-rtti",
                "-fno-exceptions",
                "-fno-threadsafe-statics",
            ]);
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
        let compiled = run(cmd, &format!("compile {}", source.display())).and_then(|()| {
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

    fn linker_script(&self) -> String {
        format!(
            r#"/* Generated by bench for a TFLite Micro firmware. */
MEMORY
{{
  FLASH (rx) : ORIGIN = {:#x}, LENGTH = {:#x}
  RAM (rwx) : ORIGIN = {:#x}, LENGTH = {:#x}
}}
ENTRY(Reset_Handler)
SECTIONS
{{
  .text :
  {{
    KEEP(*(.vectors))
    *(.text*)
    KEEP(*(.init))
    KEEP(*(.fini))
    *(.rodata*)
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
    . = ALIGN(4);
    __data_end = .;
  }} > RAM AT > FLASH
  __data_load = LOADADDR(.data);
  .bss (NOLOAD) : ALIGN(4)
  {{
    __bss_start = .;
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

/// Runs `cmd`; a failure carries the end of its diagnostics.
/// By how many bytes the linker found RAM overflowed (`region `RAM'
/// overflowed by N bytes`), if that is why it failed.
fn ram_overflow(error: &str) -> Option<u64> {
    error.lines().find_map(|l| {
        l.split_once("region `RAM' overflowed by ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    })
}

fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("failed to {what}: {e}; install the toolchain: {INSTALL}"))?;
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
