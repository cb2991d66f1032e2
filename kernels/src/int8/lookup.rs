//! Elementwise int8 operators as a 256-entry table: the host computes each
//! output with the operator's exact TFLite arithmetic for every possible
//! input byte, so the device only indexes (RELU and its bounded kinds,
//! LEAKY_RELU, LOGISTIC, TANH: one kernel, exact on every target).

use crate::error::{expect_len, KernelError};

/// Entries of a table: one per int8 value, indexed by `x as u8`.
pub const TABLE_LEN: usize = 256;

/// Checks a lookup's arguments.
pub fn check(table: usize, input: usize, output: usize) -> Result<(), KernelError> {
    expect_len("lookup table", table, TABLE_LEN)?;
    expect_len("lookup output", output, input)
}

/// `out[i] = table[x[i] as u8]`.
pub fn lookup(table: &[i8], x: &[i8], out: &mut [i8]) -> Result<(), KernelError> {
    check(table.len(), x.len(), out.len())?;
    let table: &[i8; TABLE_LEN] = table.try_into().expect("checked length");
    for (y, &v) in out.iter_mut().zip(x) {
        *y = table[v as u8 as usize];
    }
    Ok(())
}
