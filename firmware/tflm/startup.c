/* Reset of bench's TFLite Micro firmware for a Cortex-M or RV32 board:
 * on Arm the vector table, on RV32 the entry at the start of flash that
 * sets the stack and global pointers and the trap vector; then copy .data,
 * clear .bss, turn on the FPU (and Helium) if the core has one, paint the
 * stack, run the C++ constructors, then main. The symbols come from the
 * linker script bench writes for the target (link.ld).
 *
 * The stack is everything between the end of .bss and the top of RAM:
 * newlib's heap (printf's floats allocate) gets a fixed block in .bss
 * instead of growing into that space from below (`_sbrk` here), so the
 * lowest word no longer holding the paint is the stack's peak exactly
 * (`board_stack_peak`, which the DUT reports after each window). */
#include <stddef.h>
#include <stdint.h>

extern uint32_t __stack_top, __data_load, __data_start, __data_end, __bss_start, __bss_end;
extern void __libc_init_array(void);
extern int main(void);
extern void board_putc(char c);

#define PAINT 0xDEADC0DEu

#ifndef BENCH_HEAP_BYTES
#define BENCH_HEAP_BYTES 4096
#endif

void Reset_Handler(void);

/* An error line of the protocol, on a line of its own whatever was being
 * printed, then a halt: the harness reads the reason and stops waiting. */
void board_fault(const char *what) {
    static const char prefix[] = "\r\ne-[";
    for (const char *p = prefix; *p; ++p) board_putc(*p);
    for (const char *p = what; *p; ++p) board_putc(*p);
    board_putc(']');
    board_putc('\r');
    board_putc('\n');
    for (;;) {
    }
}

#if defined(__arm__)
static void hard_fault(void) { board_fault("hard fault"); }
static void other_fault(void) { board_fault("fault or unexpected interrupt"); }

__attribute__((section(".vectors"), used)) void (*const bench_vectors[16])(void) = {
    (void (*)(void))&__stack_top, Reset_Handler, other_fault, hard_fault,
    other_fault, other_fault, other_fault, 0, 0, 0, 0,
    other_fault, other_fault, 0, other_fault, other_fault,
};
#elif defined(__riscv)
/* Every exception and interrupt lands here (mtvec in direct mode, which
 * needs a 4-byte aligned address). */
__attribute__((aligned(4), used)) static void trap(void) {
    board_fault("trap (exception or unexpected interrupt)");
}

__attribute__((section(".text.reset"), naked, used)) void _start(void) {
    __asm volatile(
        ".option push\n\t.option norelax\n\t"
        "la gp, __global_pointer$\n\t"
        ".option pop\n\t"
        "la sp, __stack_top\n\t"
        /* picolibc keeps errno thread-local: one thread, one block. */
        "la tp, __tls_base\n\t"
        "la t0, trap\n\t"
        ".option arch, +zicsr\n\t" /* binutils 2.40 wants it named */
        "csrw mtvec, t0\n\t"
        "j Reset_Handler");
}
#endif

static uint8_t heap[BENCH_HEAP_BYTES] __attribute__((aligned(8)));
static size_t heap_used;

/* newlib's allocator asks here: a fixed block, never the stack's space. */
void *_sbrk(ptrdiff_t increment) {
    if (increment < 0 || heap_used + (size_t)increment > sizeof heap) {
        board_fault("newlib's heap is full (BENCH_HEAP_BYTES)");
    }
    void *block = heap + heap_used;
    heap_used += (size_t)increment;
    return block;
}

/* Bytes of stack used so far: from the top down to the lowest word that no
 * longer holds the paint. */
uint32_t board_stack_peak(void) {
    const uint32_t *word = &__bss_end;
    while (word < &__stack_top && *word == PAINT) ++word;
    return (uint32_t)((uintptr_t)&__stack_top - (uintptr_t)word);
}

/* Paints from the end of .bss up to just below this function's frame (the
 * words above it are in use). Out of line, so its frame is its own. */
__attribute__((noinline)) static void paint_stack(void) {
    uint32_t here;
    for (uint32_t *to = &__bss_end; to < &here - 16;) *to++ = PAINT;
}

void Reset_Handler(void) {
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    /* CPACR: full access to coprocessors 10 and 11 (FPU and MVE). */
    *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20;
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
    const uint32_t *from = &__data_load;
    for (uint32_t *to = &__data_start; to < &__data_end;) *to++ = *from++;
    for (uint32_t *to = &__bss_start; to < &__bss_end;) *to++ = 0;
    paint_stack();
    __libc_init_array();
    main();
    for (;;) {
    }
}
