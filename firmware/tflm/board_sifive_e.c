/* UART0 of the SiFive FE310 (HiFive1, QEMU `sifive_e`) at the address the
 * target file gives (BENCH_UART_BASE), and the `minstret` counter for time,
 * as bench's own firmware drives them (firmware/mcu/src/board/sifive_e.rs,
 * after the FE310-G000 manual). Under QEMU with -icount, minstret counts
 * exactly the instructions the core retired; the harness gives the DUT
 * BENCH_CLOCK_HZ as instructions per second of virtual time, so its
 * microseconds convert back to instructions. */
#include <stdint.h>

#define REG(base, offset) (*(volatile uint32_t *)((base) + (offset)))
#define UART_TXDATA REG(BENCH_UART_BASE, 0x00) /* bit 31: the FIFO is full */
#define UART_RXDATA REG(BENCH_UART_BASE, 0x04) /* bit 31: no byte was received */
#define UART_TXCTRL REG(BENCH_UART_BASE, 0x08)
#define UART_RXCTRL REG(BENCH_UART_BASE, 0x0C)
#define UART_FLAG 0x80000000u

void board_init(void) {
    UART_TXCTRL = 1; /* txen */
    UART_RXCTRL = 1; /* rxen */
}

/* The low half of minstret: the DUT widens wraps itself (submitter.cc). */
uint32_t board_ticks(void) {
    uint32_t count;
    /* Binutils 2.40 wants Zicsr named, which the ISA spec the Rust triple
     * follows counts in `i`; -march keeps rv32imac for picolibc's multilib. */
    __asm volatile(".option push\n\t.option arch, +zicsr\n\tcsrr %0, minstret\n\t.option pop"
                   : "=r"(count));
    return count;
}

void board_putc(char c) {
    while (UART_TXDATA & UART_FLAG) {
    }
    UART_TXDATA = (uint8_t)c;
}

char board_getc(void) {
    uint32_t word;
    /* Reading RXDATA takes the byte, so the word read is the one kept. */
    do {
        word = UART_RXDATA;
    } while (word & UART_FLAG);
    return (char)(word & 0xFFu);
}
