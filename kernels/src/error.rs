//! The one error type every kernel returns when its arguments do not fit.

/// Why a kernel refused its arguments. Kernels check every slice length and
/// parameter before touching data, so bad input is an error, never a panic.
/// Worded as a cause: the loader and executor say what failed around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// A slice does not have the length the shapes call for.
    #[error("{what} holds {actual} elements, expected {expected}")]
    Length {
        /// Which argument.
        what: &'static str,
        /// Length implied by the shapes.
        expected: usize,
        /// Length given.
        actual: usize,
    },
    /// A parameter is outside the range the kernel is defined for.
    #[error("invalid {what}")]
    Param {
        /// Which parameter, and why.
        what: &'static str,
    },
}

/// Checks that `actual == expected`.
#[inline]
pub fn expect_len(what: &'static str, actual: usize, expected: usize) -> Result<(), KernelError> {
    if actual == expected {
        Ok(())
    } else {
        Err(KernelError::Length {
            what,
            expected,
            actual,
        })
    }
}

/// Fails with `what` unless `ok`.
#[inline]
pub fn ensure(ok: bool, what: &'static str) -> Result<(), KernelError> {
    if ok {
        Ok(())
    } else {
        Err(KernelError::Param { what })
    }
}
