//! The error a `bench` command ends with. Each kind carries its exit code
//! (`exit`), so `main` prints the error (with its causes) and exits with
//! that code; no call site picks a code itself.

use crate::exit;
use std::path::PathBuf;

/// Why a `bench` command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The input is not usable (arguments, a model, a file of inputs, a
    /// stored run that cannot be read); nothing ran.
    #[error("{0}")]
    Invalid(String),
    /// Suite or target files, every problem at its file, line and column.
    #[error(transparent)]
    Diagnostics(#[from] crate::input::diag::Diagnostics),
    /// bench itself failed (the store, a work directory, an output file).
    #[error("failed to {action}")]
    Internal {
        /// What bench was doing, as in "failed to ...".
        action: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The result store, while a run was writing it.
    #[error(transparent)]
    Store(#[from] crate::results::store::StoreError),
    /// Some jobs failed; the others ran and are stored.
    #[error("{failed} of {total} jobs failed")]
    JobsFailed {
        /// Jobs that failed.
        failed: usize,
        /// Jobs run.
        total: usize,
    },
    /// `bench infer`: the device failed or its outputs differ from the host's.
    #[error("{0}")]
    DeviceFailed(String),
    /// `bench compare`: the current run is worse than the baseline.
    #[error("{} regressed against {} (threshold {threshold}%)", current.display(), baseline.display())]
    Regressed {
        /// The baseline run.
        baseline: PathBuf,
        /// The run judged.
        current: PathBuf,
        /// The threshold, in percent.
        threshold: f64,
    },
    /// A signal stopped the run; what ran is stored and the rest can be resumed.
    #[error(
        "stopped by a signal with {stored} of {total} jobs stored; finish the run with: bench run {} --resume {}",
        suite.display(),
        dir.display()
    )]
    Interrupted {
        /// Jobs stored.
        stored: usize,
        /// Jobs planned.
        total: usize,
        /// The suite file.
        suite: PathBuf,
        /// The run directory.
        dir: PathBuf,
    },
}

impl BenchError {
    /// An unusable input, described by `message`.
    pub fn invalid(message: impl std::fmt::Display) -> Self {
        BenchError::Invalid(message.to_string())
    }

    /// bench failed `action` ("create a work directory") because of `source`.
    pub fn internal(
        action: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        BenchError::Internal {
            action: action.into(),
            source: source.into(),
        }
    }

    /// The process exit code this error ends `bench` with.
    pub fn exit_code(&self) -> u8 {
        match self {
            BenchError::Invalid(_) | BenchError::Diagnostics(_) => exit::INVALID_INPUT,
            BenchError::Internal { .. } | BenchError::Store(_) => exit::INTERNAL,
            BenchError::JobsFailed { .. } | BenchError::DeviceFailed(_) => exit::JOBS_FAILED,
            BenchError::Regressed { .. } => exit::REGRESSED,
            BenchError::Interrupted { .. } => crate::device::process::INTERRUPTED_EXIT,
        }
    }

    /// The message with its causes: `failed to X: because: because`.
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            out += &format!(": {cause}");
            source = cause.source();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_documented_exit_code_and_causes_are_chained() {
        let io = std::io::Error::other("disk full");
        let e = BenchError::internal("create a work directory", io);
        assert_eq!(
            (e.exit_code(), e.report()),
            (1, "failed to create a work directory: disk full".into())
        );
        assert_eq!(BenchError::invalid("x").exit_code(), 2);
        assert_eq!(
            BenchError::JobsFailed {
                failed: 1,
                total: 3
            }
            .to_string(),
            "1 of 3 jobs failed"
        );
        assert_eq!(
            BenchError::JobsFailed {
                failed: 1,
                total: 3
            }
            .exit_code(),
            3
        );
        let regressed = BenchError::Regressed {
            baseline: "a".into(),
            current: "b".into(),
            threshold: 3.0,
        };
        assert_eq!(
            (regressed.exit_code(), regressed.to_string()),
            (4, "b regressed against a (threshold 3%)".into())
        );
        let stopped = BenchError::Interrupted {
            stored: 2,
            total: 5,
            suite: "s.toml".into(),
            dir: "r/x".into(),
        };
        assert_eq!(stopped.exit_code(), 130);
        assert_eq!(
            stopped.to_string(),
            "stopped by a signal with 2 of 5 jobs stored; finish the run with: bench run s.toml --resume r/x"
        );
    }
}
