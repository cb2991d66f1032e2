//! Runtimes: who runs a job's inferences. bench's own kernels, or a peer
//! measured beside them in the same run, on the same target, model and
//! input: TFLite Micro with its reference kernels or with CMSIS-NN, built
//! from the peers' snapshot (`harness/src/build/tflm/`) and driven through
//! the MLPerf Tiny DUT protocol.

use crate::build::tflm::Kernels;

/// A runtime a suite can name in `[suite] runtimes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Runtime {
    /// bench's kernels and firmware.
    Bench,
    /// TFLite Micro.
    Tflm(Kernels),
}

impl Runtime {
    /// Every runtime, as suites name them.
    pub const NAMES: [&'static str; 3] = ["bench", "tflm", "tflm-cmsis-nn"];

    /// The runtime named `name`.
    pub fn parse(name: &str) -> Option<Runtime> {
        match name {
            "bench" => Some(Runtime::Bench),
            "tflm" => Some(Runtime::Tflm(Kernels::Reference)),
            "tflm-cmsis-nn" => Some(Runtime::Tflm(Kernels::CmsisNn)),
            _ => None,
        }
    }

    /// Its name in suites, job ids and the `runtime` column.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Bench => "bench",
            Runtime::Tflm(k) => k.runtime(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_to_its_runtime() {
        for name in Runtime::NAMES {
            assert_eq!(Runtime::parse(name).map(Runtime::name), Some(name));
        }
        assert_eq!(Runtime::parse("tflite"), None);
    }
}
