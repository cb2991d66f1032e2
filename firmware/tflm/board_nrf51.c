/* The UART0 and TIMER0 of the Nordic nRF51 (BBC micro:bit, QEMU
 * `microbit`), at the addresses the target file gives (BENCH_UART_BASE,
 * BENCH_TIMER_BASE), as bench's own firmware drives them
 * (firmware/mcu/src/board/nrf51.rs, after the nRF51 Reference Manual):
 * UART0 polled at 115,200 baud, TIMER0 a free-running 32-bit timer at the
 * 16 MHz clock, read through its CAPTURE task. */
#include <stdint.h>

#define REG(base, offset) (*(volatile uint32_t *)((base) + (offset)))
#define UART_STARTRX REG(BENCH_UART_BASE, 0x000)
#define UART_STARTTX REG(BENCH_UART_BASE, 0x008)
#define UART_RXDRDY REG(BENCH_UART_BASE, 0x108)
#define UART_TXDRDY REG(BENCH_UART_BASE, 0x11C)
#define UART_ENABLE REG(BENCH_UART_BASE, 0x500)
#define UART_RXD REG(BENCH_UART_BASE, 0x518)
#define UART_TXD REG(BENCH_UART_BASE, 0x51C)
#define UART_BAUDRATE REG(BENCH_UART_BASE, 0x524)
#define TIMER_START REG(BENCH_TIMER_BASE, 0x000)
#define TIMER_CLEAR REG(BENCH_TIMER_BASE, 0x00C)
#define TIMER_CAPTURE0 REG(BENCH_TIMER_BASE, 0x040)
#define TIMER_MODE REG(BENCH_TIMER_BASE, 0x504)
#define TIMER_BITMODE REG(BENCH_TIMER_BASE, 0x508)
#define TIMER_PRESCALER REG(BENCH_TIMER_BASE, 0x510)
#define TIMER_CC0 REG(BENCH_TIMER_BASE, 0x540)

void board_init(void) {
    UART_BAUDRATE = 0x01D7E000u; /* 115,200 baud */
    UART_ENABLE = 4;
    UART_STARTTX = 1;
    UART_STARTRX = 1;
    TIMER_MODE = 0;     /* timer, not counter */
    TIMER_BITMODE = 3;  /* 32 bits */
    TIMER_PRESCALER = 0;
    TIMER_CLEAR = 1;
    TIMER_START = 1;
}

/* Ticks of the 16 MHz clock since board_init (wraps after 2^32). */
uint32_t board_ticks(void) {
    TIMER_CAPTURE0 = 1;
    return TIMER_CC0;
}

void board_putc(char c) {
    UART_TXD = (uint8_t)c;
    while (!UART_TXDRDY) {
    }
    UART_TXDRDY = 0;
}

char board_getc(void) {
    while (!UART_RXDRDY) {
    }
    /* Clear the event before reading: the read raises it again while more
     * bytes wait. */
    UART_RXDRDY = 0;
    return (char)(UART_RXD & 0xFFu);
}
