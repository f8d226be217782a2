/* Cortex-M7 startup for QEMU mps2-an500: vector table, FPU enable, C runtime
 * init, stack painting, main(), semihosting exit.
 *
 * Why hand-written: -nostartfiles keeps newlib's crt0 (and the rdimon
 * heap/stdio setup it brings) out, so the ELF holds only what the model needs.
 * Faults print a FAULT line and exit non-zero instead of hanging QEMU until
 * the host's timeout. */
#include <stdint.h>

#include "board.h"

extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[];
extern uint32_t __StackTop[];
extern void (*__preinit_array_start[])(void);
extern void (*__preinit_array_end[])(void);
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);

extern int main(void);

void Reset_Handler(void) __attribute__((noreturn));
void Default_Handler(void);
void Fault_Handler(void) __attribute__((naked));
void fault_report(const uint32_t *frame, uint32_t exc_return) __attribute__((noreturn, used));

typedef void (*vector_t)(void);

/* Core exceptions only: the harness enables no peripheral interrupts. */
__attribute__((section(".isr_vector"), used)) const vector_t g_vectors[16] = {
    (vector_t)(uintptr_t)__StackTop, /* initial MSP */
    Reset_Handler,
    Default_Handler, /* NMI */
    Fault_Handler,   /* HardFault */
    Fault_Handler,   /* MemManage */
    Fault_Handler,   /* BusFault */
    Fault_Handler,   /* UsageFault */
    0, 0, 0, 0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMonitor */
    0,
    Default_Handler, /* PendSV */
    Default_Handler, /* SysTick */
};

void Reset_Handler(void) {
  uint32_t *src;
  uint32_t *dst;
  uint32_t i, n;

  /* CP10/CP11 full access, so hard-float code may run. */
  *(volatile uint32_t *)0xE000ED88u |= (0xFu << 20);
  __asm__ volatile("dsb\n\tisb" ::: "memory");

  for (src = _sidata, dst = _sdata; dst < _edata;) *dst++ = *src++;
  for (dst = _sbss; dst < _ebss;) *dst++ = 0u;

  board_stack_paint();

  n = (uint32_t)(__preinit_array_end - __preinit_array_start);
  for (i = 0u; i < n; i++) __preinit_array_start[i]();
  n = (uint32_t)(__init_array_end - __init_array_start);
  for (i = 0u; i < n; i++) __init_array_start[i]();

  board_exit(main());
}

void Default_Handler(void) {
  board_puts("FAULT unexpected-exception\n");
  board_exit(BOARD_FAULT_EXIT_CODE);
}

/* Pick the stack the exception frame was pushed on, then report in C. */
void Fault_Handler(void) {
  __asm__ volatile(
      "tst lr, #4\n\t"
      "ite eq\n\t"
      "mrseq r0, msp\n\t"
      "mrsne r0, psp\n\t"
      "mov r1, lr\n\t"
      "b fault_report\n\t");
}

void fault_report(const uint32_t *frame, uint32_t exc_return) {
  uint32_t ipsr;
  __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
  board_puts("FAULT exc=");
  board_put_u32(ipsr & 0x1FFu);
  board_puts(" pc=");
  board_put_hex32(frame[6]);
  board_puts(" lr=");
  board_put_hex32(frame[5]);
  board_puts(" cfsr=");
  board_put_hex32(*(volatile uint32_t *)0xE000ED28u);
  board_puts(" hfsr=");
  board_put_hex32(*(volatile uint32_t *)0xE000ED2Cu);
  board_puts(" exc_return=");
  board_put_hex32(exc_return);
  board_putc('\n');
  board_exit(BOARD_FAULT_EXIT_CODE);
}
