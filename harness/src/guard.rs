//! The boundary with third-party parsers that can panic on damaged input
//! (npyz, zip, polars' Parquet reader) and offer no fallible path for it: a
//! panic inside becomes an error naming the crate, and its message is kept
//! off the terminal, so bad input gets one readable error, never exit 101.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Whether this thread is inside [`catching`], whose panics are expected.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`; a panic inside it becomes `Err("<library> failed on this input: <panic message>")`.
pub fn catching<T>(library: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    static QUIET_HOOK: Once = Once::new();
    QUIET_HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !CATCHING.with(Cell::get) {
                default(info);
            }
        }));
    });
    let outer = CATCHING.with(|c| c.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(outer));
    result.map_err(|payload| {
        let message = payload.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| payload.downcast_ref::<String>().cloned()).unwrap_or_default();
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
        assert!(err.starts_with("lib failed on this input (index out of bounds"), "{err}");
    }
}
