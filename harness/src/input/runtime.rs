//! Runtimes: who runs a job's inferences. bench's own kernels, or a peer
//! measured beside them in the same run, on the same target, model and
//! input: TFLite Micro with its reference kernels or with CMSIS-NN, built
//! from the peers' snapshot (`harness/src/build/tflm/`), LiteRT on the host
//! (PyPI `ai-edge-litert`), the Larq Compute Engine's interpreter on the
//! host (PyPI `larq-compute-engine`), or a firmware the user names (a `[[dut]]`), each
//! driven through the MLPerf Tiny DUT protocol.

use crate::build::tflm::Kernels;
use crate::input::target::{RunnerKind, Target};

/// A runtime a suite can name in `[suite] runtimes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Runtime {
    /// bench's kernels and firmware.
    Bench,
    /// bench's firmware built to answer the MLPerf Tiny DUT protocol
    /// (feature `eembc`), driven like the peers.
    BenchDut,
    /// TFLite Micro.
    Tflm(Kernels),
    /// LiteRT, or the Larq Compute Engine's TFLite interpreter, in a
    /// Python process on the host.
    Litert(LitertKernels),
    /// The suite's `[[dut]]` of this index: a firmware ELF of the user's
    /// that speaks the MLPerf Tiny DUT protocol.
    Dut(usize),
}

/// Which TFLite interpreter runs in the host's Python process, and its kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LitertKernels {
    /// LiteRT's default resolver: the graph goes to the XNNPACK delegate.
    Xnnpack,
    /// LiteRT's reference kernels (`BUILTIN_REF`), the ones TFLite-exact means.
    Reference,
    /// The Larq Compute Engine's interpreter (PyPI `larq-compute-engine`):
    /// TFLite's built-in kernels with LCE's binary operators (`LceBconv2d`,
    /// `LceQuantize`, `LceBMaxPool2d`), the runtime Larq models are
    /// converted for.
    Lce,
}

impl Runtime {
    /// Every built-in runtime, as suites name them.
    pub const NAMES: [&'static str; 7] = [
        "bench",
        "bench-dut",
        "tflm",
        "tflm-cmsis-nn",
        "litert",
        "litert-ref",
        "lce",
    ];

    /// The built-in runtime named `name`.
    pub fn parse(name: &str) -> Option<Runtime> {
        match name {
            "bench" => Some(Runtime::Bench),
            "bench-dut" => Some(Runtime::BenchDut),
            "tflm" => Some(Runtime::Tflm(Kernels::Reference)),
            "tflm-cmsis-nn" => Some(Runtime::Tflm(Kernels::CmsisNn)),
            "litert" => Some(Runtime::Litert(LitertKernels::Xnnpack)),
            "litert-ref" => Some(Runtime::Litert(LitertKernels::Reference)),
            "lce" => Some(Runtime::Litert(LitertKernels::Lce)),
            _ => None,
        }
    }

    /// Its name in suites, job ids and the `runtime` column; a `[[dut]]`'s
    /// name is the suite's (`Suite::runtime_name`).
    pub fn builtin_name(self) -> Option<&'static str> {
        match self {
            Runtime::Bench => Some("bench"),
            Runtime::BenchDut => Some("bench-dut"),
            Runtime::Tflm(k) => Some(k.runtime()),
            Runtime::Litert(LitertKernels::Xnnpack) => Some("litert"),
            Runtime::Litert(LitertKernels::Reference) => Some("litert-ref"),
            Runtime::Litert(LitertKernels::Lce) => Some("lce"),
            Runtime::Dut(_) => None,
        }
    }

    /// Whether it can run on `target`, or why not: a property of the
    /// runtime's kind, so the plan leaves such pairs out and says so.
    pub fn runs_on(self, target: &Target) -> Result<(), &'static str> {
        let runner = target.run.runner;
        let cortex_m = target.target.triple.starts_with("thumb");
        let rv32 = target.target.triple.starts_with("riscv32");
        match self {
            Runtime::Bench => Ok(()),
            Runtime::Tflm(_) if runner == RunnerKind::Qemu && cortex_m => Ok(()),
            Runtime::Tflm(Kernels::Reference) if runner == RunnerKind::Qemu && rv32 => Ok(()),
            Runtime::Tflm(Kernels::CmsisNn) if rv32 => {
                Err("CMSIS-NN is Arm's: on RISC-V, TFLM runs its reference kernels (runtime tflm)")
            }
            Runtime::Tflm(_) => {
                Err("runs on emulated Cortex-M and RV32 targets (QEMU) only for now")
            }
            Runtime::Litert(_) if runner == RunnerKind::Host => Ok(()),
            Runtime::Litert(_) => Err("runs on the host target only"),
            Runtime::Dut(_) | Runtime::BenchDut if runner == RunnerKind::Qemu => Ok(()),
            // A board's firmware speaks the protocol over its UART.
            Runtime::Dut(_) if runner == RunnerKind::ProbeRs => {
                match target.run.probe.as_ref().and_then(|p| p.port.as_ref()) {
                    Some(_) => Ok(()),
                    None => Err(
                        "runs on a board over its UART: the target file names no [run.probe] port",
                    ),
                }
            }
            Runtime::Dut(_) => Err("runs on emulated targets and boards with a UART port"),
            Runtime::BenchDut => Err("runs on emulated targets (QEMU) only for now"),
        }
    }

    /// Whether it runs the model file as it is, not bench's prepared
    /// variant (every runtime but bench's own).
    pub fn runs_model_file(self) -> bool {
        !matches!(self, Runtime::Bench | Runtime::BenchDut)
    }

    /// Whether its output must equal TFLite's reference kernels byte for
    /// byte, so that a job whose output differs fails: bench's kernels, and
    /// LiteRT's reference kernels, which are that reference. A peer's
    /// output is compared and the table says when it differs, but its
    /// figures stand: XNNPACK requantizes its own way, TFLM's reference
    /// LSTM rounds differently from LiteRT's, a user's firmware is what it is.
    pub fn bit_exact(self) -> bool {
        matches!(
            self,
            Runtime::Bench | Runtime::BenchDut | Runtime::Litert(LitertKernels::Reference)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_to_its_runtime() {
        for name in Runtime::NAMES {
            assert_eq!(
                Runtime::parse(name).and_then(Runtime::builtin_name),
                Some(name)
            );
        }
        assert_eq!(Runtime::parse("tflite"), None);
        assert_eq!(Runtime::Dut(0).builtin_name(), None);
    }

    #[test]
    fn each_runtime_runs_where_its_kind_can() {
        let load =
            |name| crate::input::target::load(&crate::input::target::targets_dir(), name).unwrap();
        let (host, m4, m0, rv32) = (
            load("host"),
            load("qemu-m4"),
            load("qemu-m0"),
            load("qemu-rv32"),
        );
        let mut board = load("nucleo-l4r5zi");
        let tflm = Runtime::Tflm(Kernels::CmsisNn);
        let litert = Runtime::Litert(LitertKernels::Xnnpack);
        assert!(tflm.runs_on(&m4).is_ok() && tflm.runs_on(&m0).is_ok());
        assert!(tflm.runs_on(&host).is_err() && tflm.runs_on(&board).is_err());
        // CMSIS-NN is Arm's; TFLM's reference kernels build for RV32 too.
        assert!(tflm.runs_on(&rv32).is_err());
        assert!(Runtime::Tflm(Kernels::Reference).runs_on(&rv32).is_ok());
        assert!(litert.runs_on(&host).is_ok() && litert.runs_on(&m4).is_err());
        assert!(
            Runtime::BenchDut.runs_on(&m4).is_ok() && Runtime::BenchDut.runs_on(&board).is_err()
        );
        // A user's firmware on a board speaks over the board's UART.
        assert_eq!(
            Runtime::Dut(0).runs_on(&board),
            Err("runs on a board over its UART: the target file names no [run.probe] port")
        );
        board.run.probe.as_mut().unwrap().port = Some("/dev/ttyACM0".into());
        assert_eq!(Runtime::Dut(0).runs_on(&board), Ok(()));
        assert!(Runtime::Dut(0).runs_on(&host).is_err());
    }
}
