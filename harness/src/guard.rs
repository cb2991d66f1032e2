//! The boundary with third-party parsers that can panic on damaged input
//! (npyz, zip, polars' Parquet reader) and offer no fallible path for it: a
//! panic inside becomes an error naming the crate, and its message is kept
//! off the terminal, so bad input gets one readable error, never exit 101.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

/// How many [`catching`] calls are under way. Process-wide, not per thread:
/// polars reads on rayon's worker threads, whose panics come back to the
/// caller, and must not print either.
static CATCHING: AtomicUsize = AtomicUsize::new(0);

/// Runs `f`; a panic inside it becomes `Err("<library> failed on this input: <panic message>")`.
pub fn catching<T>(library: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    static QUIET_HOOK: Once = Once::new();
    QUIET_HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CATCHING.load(Ordering::SeqCst) == 0 {
                default(info);
            }
        }));
    });
    CATCHING.fetch_add(1, Ordering::SeqCst);
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.fetch_sub(1, Ordering::SeqCst);
    result.map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        format!("{library} failed on this input ({message})")
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_becomes_an_error_naming_the_library() {
        assert_eq!(super::catching("lib", || 7), Ok(7));
        let err = super::catching("lib", || -> u8 { panic!("index out of bounds") }).unwrap_err();
        assert_eq!(err, "lib failed on this input (index out of bounds)");
        let v: Vec<u8> = Vec::new();
        let err = super::catching("lib", || v[3]).unwrap_err();
        assert!(
            err.starts_with("lib failed on this input (index out of bounds"),
            "{err}"
        );
    }
}
