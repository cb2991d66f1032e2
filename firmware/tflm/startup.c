/* Reset and vector table of bench's TFLite Micro firmware for an Arm
 * Cortex-M board: copy .data, clear .bss, turn on the FPU (and Helium) if
 * the core has one, run the C++ constructors, then main. The symbols come
 * from the linker script bench writes for the target (link.ld). */
#include <stdint.h>

extern uint32_t __stack_top, __data_load, __data_start, __data_end, __bss_start, __bss_end;
extern void __libc_init_array(void);
extern int main(void);
extern void board_fault(const char *what);

void Reset_Handler(void);

static void hard_fault(void) { board_fault("hard fault"); }
static void other_fault(void) { board_fault("fault or unexpected interrupt"); }

__attribute__((section(".vectors"), used)) void (*const bench_vectors[16])(void) = {
    (void (*)(void))&__stack_top, Reset_Handler, other_fault, hard_fault,
    other_fault, other_fault, other_fault, 0, 0, 0, 0,
    other_fault, other_fault, 0, other_fault, other_fault,
};

void Reset_Handler(void) {
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    /* CPACR: full access to coprocessors 10 and 11 (FPU and MVE). */
    *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20;
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
    const uint32_t *from = &__data_load;
    for (uint32_t *to = &__data_start; to < &__data_end;) *to++ = *from++;
    for (uint32_t *to = &__bss_start; to < &__bss_end;) *to++ = 0;
    __libc_init_array();
    main();
    for (;;) {
    }
}
