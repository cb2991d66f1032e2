/* The CMSDK UART of Arm's MPS2 and MPS3 FPGA images and their clock, at
 * the addresses the target file gives (BENCH_UART_BASE, BENCH_TIMER_BASE),
 * as bench's own firmware drives them (firmware/mcu/src/board/): the CMSDK
 * 32-bit timer of the MPS2 images (AN385, AN386, AN500, AN505), or, with
 * BENCH_BOARD_SSE300, the 64-bit system counter of the SSE-300 (MPS3
 * AN547, Cortex-M55), which has no CMSDK timer. Both count the main clock. */
#include <stdint.h>

#define REG(base, offset) (*(volatile uint32_t *)((base) + (offset)))
#define UART_DATA REG(BENCH_UART_BASE, 0x00)
#define UART_STATE REG(BENCH_UART_BASE, 0x04) /* bit 0 TX full, bit 1 RX full */
#define UART_CTRL REG(BENCH_UART_BASE, 0x08)  /* bit 0 TX enable, bit 1 RX enable */
#define UART_BAUDDIV REG(BENCH_UART_BASE, 0x10)
#if defined(BENCH_BOARD_SSE300)
#define COUNTER_CNTCR REG(BENCH_TIMER_BASE, 0x00)
#define COUNTER_CNTCV_LO REG(BENCH_TIMER_BASE, 0x08)

static void clock_init(void) { COUNTER_CNTCR = 1; /* CNTCR.EN */ }

/* The low half: the DUT widens wraps itself (submitter.cc). */
uint32_t board_ticks(void) { return COUNTER_CNTCV_LO; }
#else
#define TIMER_CTRL REG(BENCH_TIMER_BASE, 0x00)
#define TIMER_VALUE REG(BENCH_TIMER_BASE, 0x04)
#define TIMER_RELOAD REG(BENCH_TIMER_BASE, 0x08)

static void clock_init(void) {
    TIMER_RELOAD = 0xFFFFFFFFu;
    TIMER_VALUE = 0xFFFFFFFFu;
    TIMER_CTRL = 1; /* enable, system clock, no interrupt */
}

/* Ticks of the system clock since board_init, counting up (the timer
 * counts down from 2^32 - 1 and wraps after 2^32 ticks). */
uint32_t board_ticks(void) { return 0xFFFFFFFFu - TIMER_VALUE; }
#endif

void board_init(void) {
    UART_BAUDDIV = 16;
    UART_CTRL = 3;
    clock_init();
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
