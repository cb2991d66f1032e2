/* The CMSDK UART and 32-bit timer of Arm's MPS2 and MPS2+ FPGA images
 * (AN385, AN386, AN500, AN505), at the addresses the target file gives
 * (BENCH_UART_BASE, BENCH_TIMER_BASE), as bench's own firmware drives them
 * (firmware/mcu/src/board/cmsdk_uart.rs, cmsdk_timer.rs). */
#include <stdint.h>

#define REG(base, offset) (*(volatile uint32_t *)((base) + (offset)))
#define UART_DATA REG(BENCH_UART_BASE, 0x00)
#define UART_STATE REG(BENCH_UART_BASE, 0x04) /* bit 0 TX full, bit 1 RX full */
#define UART_CTRL REG(BENCH_UART_BASE, 0x08)  /* bit 0 TX enable, bit 1 RX enable */
#define UART_BAUDDIV REG(BENCH_UART_BASE, 0x10)
#define TIMER_CTRL REG(BENCH_TIMER_BASE, 0x00)
#define TIMER_VALUE REG(BENCH_TIMER_BASE, 0x04)
#define TIMER_RELOAD REG(BENCH_TIMER_BASE, 0x08)

void board_init(void) {
    UART_BAUDDIV = 16;
    UART_CTRL = 3;
    TIMER_RELOAD = 0xFFFFFFFFu;
    TIMER_VALUE = 0xFFFFFFFFu;
    TIMER_CTRL = 1; /* enable, system clock, no interrupt */
}

void board_putc(char c) {
    while (UART_STATE & 1u) {
    }
    UART_DATA = (uint8_t)c;
}

char board_getc(void) {
    while (!(UART_STATE & 2u)) {
    }
    return (char)(UART_DATA & 0xFFu);
}

/* Ticks of the system clock since board_init, counting up (the timer
 * counts down from 2^32 - 1 and wraps after 2^32 ticks). */
uint32_t board_ticks(void) { return 0xFFFFFFFFu - TIMER_VALUE; }

void board_fault(const char *what) {
    static const char prefix[] = "e-[";
    for (const char *p = prefix; *p; ++p) board_putc(*p);
    for (const char *p = what; *p; ++p) board_putc(*p);
    board_putc(']');
    board_putc('\r');
    board_putc('\n');
    for (;;) {
    }
}
