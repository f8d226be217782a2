/* QEMU Xtensa sim (de233_fpu, an LX7 with FPU) board layer: C start-up, semihosting
 * console and exit, the ICOUNT instruction counter, stack painting, fault report.
 *
 * Semihosting on Xtensa is the `simcall` instruction (QEMU -semihosting): a2 = call
 * number, a3.. = arguments, result in a2. llvm-mc 22 does not know the mnemonic, so it is
 * emitted as its encoding (0x005100). Calls: exit 1, read 3, write 4 (POSIX-like, on the
 * host's file descriptors: 0 and 1 are QEMU's stdin and stdout).
 *
 * Counting: ICOUNT counts instructions retired while CINTLEVEL < ICOUNTLEVEL. With
 * ICOUNTLEVEL 15 the window overflow/underflow handlers count too (they are part of what
 * the code costs on this core). Exact and repeatable, unlike CCOUNT, which follows
 * QEMU's virtual clock. When ICOUNT wraps to 0 the core takes a debug exception, so
 * board_timer_start() restarts it for every measured run. */
#include <stdint.h>

#include "board.h"

#define SIMCALL_EXIT 1
#define SIMCALL_WRITE 4
#define HOST_STDOUT 1

int32_t board_simcall(int32_t nr, int32_t a, int32_t b, int32_t c);
void board_start(void) __attribute__((noreturn));
void board_fault(uint32_t cause, uint32_t pc, uint32_t vaddr, uint32_t vector) __attribute__((noreturn));

extern int main(void);

/* Used by the RPC semihosting transport too (transport_xtensa_semihost.c). */
int32_t board_simcall(int32_t nr, int32_t a, int32_t b, int32_t c) {
  register int32_t a2 __asm__("a2") = nr;
  register int32_t a3 __asm__("a3") = a;
  register int32_t a4 __asm__("a4") = b;
  register int32_t a5 __asm__("a5") = c;
  __asm__ volatile(".byte 0x00, 0x51, 0x00" /* simcall */ : "+r"(a2), "+r"(a3) : "r"(a4), "r"(a5) : "memory");
  return a2;
}

void board_console_write(const char *s, uint32_t n) {
  (void)board_simcall(SIMCALL_WRITE, HOST_STDOUT, (int32_t)(uintptr_t)s, (int32_t)n);
}

void board_exit(int rc) {
  board_flush();
  (void)board_simcall(SIMCALL_EXIT, rc, 0, 0); /* QEMU exits with rc */
  for (;;) {
  }
}

/* ---- ICOUNT ------------------------------------------------------------------------ */
void board_timer_start(void) {
  uint32_t zero = 0u, level = 15u;
  __asm__ volatile("wsr %0, icount\n\twsr %1, icountlevel\n\tisync" : : "r"(zero), "r"(level) : "memory");
}

uint32_t board_timer_ticks(void) {
  uint32_t v;
  __asm__ volatile("rsr %0, icount" : "=r"(v));
  return v;
}

/* ---- stack high-water mark --------------------------------------------------------- */
/* From xtensa_sim.ld: free RAM starts at __stack_paint_start__ (end of .bss) and the stack
 * grows down from __StackTop; __StackLimit..__StackTop is the reservation. Window spills
 * write below the stack pointer of the frame being called, so they are measured too. */
extern uint32_t __stack_paint_start__[];
extern uint32_t __StackLimit[];
extern uint32_t __StackTop[];
extern uint32_t _sbss[], _ebss[];

static uint32_t current_sp(void) {
  uint32_t sp;
  __asm__ volatile("mov %0, a1" : "=r"(sp));
  return sp;
}

/* Runs before main; nothing else writes below its stack pointer (no interrupts). */
void board_stack_paint(void) {
  volatile uint32_t *p = __stack_paint_start__;
  volatile uint32_t *end = (volatile uint32_t *)((current_sp() & ~15u) - 64u); /* keep clear of own spills */
  while (p < end) *p++ = BOARD_STACK_PAINT;
}

uint32_t board_stack_used(void) {
  const volatile uint32_t *p = __stack_paint_start__;
  const volatile uint32_t *top = __StackTop;
  while (p < top && *p == BOARD_STACK_PAINT) ++p;
  return (uint32_t)((uintptr_t)top - (uintptr_t)p);
}

uint32_t board_stack_reserved(void) { return (uint32_t)((uintptr_t)__StackTop - (uintptr_t)__StackLimit); }

uint32_t board_stack_depth_now(void) { return (uint32_t)((uintptr_t)__StackTop - (uintptr_t)current_sp()); }

/* ---- start-up and faults ----------------------------------------------------------- */
/* Called by _start (startup_lx7.s) with the stack, vectors and FPU set up. QEMU loads .data
 * where it runs, so only .bss needs clearing. */
void board_start(void) {
  uint32_t *p;
  for (p = _sbss; p < _ebss; p++) *p = 0u;
  board_stack_paint();
  board_exit(main());
}

/* Called by startup_lx7.s for any exception it does not handle. Prints in hex only: decimal
 * needs a division, which code built for a richer ISA (MUL32_HIGH) may do with the very
 * instruction that faulted. A fault while reporting one exits at once with 128 + cause. */
void board_fault(uint32_t cause, uint32_t pc, uint32_t vaddr, uint32_t vector) {
  static volatile uint32_t faulting;
  if (faulting != 0u) (void)board_simcall(SIMCALL_EXIT, (int32_t)(128u + (cause & 0x3fu)), 0, 0);
  faulting = 1u;
  board_flush();
  board_puts("FAULT vector=0x");
  board_put_hex32(vector);
  board_puts(" exccause=0x");
  board_put_hex32(cause);
  board_puts(" pc=");
  board_put_hex32(pc);
  board_puts(" excvaddr=");
  board_put_hex32(vaddr);
  board_putc('\n');
  board_exit(BOARD_FAULT_EXIT_CODE);
}
