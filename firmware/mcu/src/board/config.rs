//! Board settings the target file passes at build time as environment
//! variables (`BENCH_UART_BASE = "0x40004000"`), parsed at compile time.

/// A hexadecimal address such as `0x4000_4000`.
pub const fn parse_hex(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = if b.len() > 2 && b[0] == b'0' && (b[1] == b'x' || b[1] == b'X') {
        2
    } else {
        0
    };
    let mut v = 0usize;
    while i < b.len() {
        let d = match b[i] {
            c @ b'0'..=b'9' => c - b'0',
            c @ b'a'..=b'f' => c - b'a' + 10,
            c @ b'A'..=b'F' => c - b'A' + 10,
            b'_' => {
                i += 1;
                continue;
            }
            _ => panic!("a BENCH_*_BASE setting is not hexadecimal"),
        };
        v = v * 16 + d as usize;
        i += 1;
    }
    v
}

/// A decimal number such as `25000000`.
pub const fn parse_dec(s: &str) -> u64 {
    let b = s.as_bytes();
    let mut v = 0u64;
    let mut i = 0;
    while i < b.len() {
        assert!(
            b[i].is_ascii_digit(),
            "BENCH_CORE_HZ is not a decimal number"
        );
        v = v * 10 + (b[i] - b'0') as u64;
        i += 1;
    }
    v
}
