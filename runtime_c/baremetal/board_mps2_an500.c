/* QEMU mps2-an500 board layer: semihosting console output, CMSDK TIMER0, stack
 * painting and semihosting exit.
 *
 * Why no stdio: newlib printf (and rdimon's file layer) link malloc, and the
 * generated model must be shown to run without a heap. Everything printed
 * here goes to the host's stdout through semihosting SYS_OPEN(":tt")/SYS_WRITE
 * (QEMU sends SYS_WRITE0 to stderr), formatted by board_console.c. */
#include <stddef.h>
#include <stdint.h>

#include "board.h"

/* ---- semihosting ------------------------------------------------------ */
#define SYS_OPEN 0x01u
#define SYS_WRITE 0x05u
#define SYS_WRITE0 0x04u
#define SYS_EXIT 0x18u
#define SYS_EXIT_EXTENDED 0x20u
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u

static int32_t semihost(uint32_t op, const void *arg) {
  register uint32_t r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return (int32_t)r0;
}

/* ---- console output (formatting: board_console.c) ------------------------- */
static int32_t g_stdout = -2; /* -2: not opened yet, -1: open failed */

/* ":tt" opened for writing (mode 4, "w") is the host's stdout. */
static int32_t console_handle(void) {
  if (g_stdout == -2) {
    static const char tt[] = ":tt";
    const uint32_t args[3] = {(uint32_t)(uintptr_t)tt, 4u, (uint32_t)(sizeof tt - 1u)};
    g_stdout = semihost(SYS_OPEN, args);
    if (g_stdout < 0) g_stdout = -1;
  }
  return g_stdout;
}

void board_console_write(const char *s, uint32_t n) {
  int32_t fd = console_handle();
  if (fd >= 0) {
    const uint32_t args[3] = {(uint32_t)fd, (uint32_t)(uintptr_t)s, n};
    (void)semihost(SYS_WRITE, args);
  } else { /* SYS_WRITE0 takes a NUL-terminated string (QEMU sends it to stderr) */
    char line[129];
    uint32_t i;
    for (i = 0u; i < n && i < 128u; i++) line[i] = s[i];
    line[i] = '\0';
    (void)semihost(SYS_WRITE0, line);
  }
}

/* ---- CMSDK APB TIMER0: 32-bit down counter at 25 MHz ------------------- */
#define T0_CTRL (*(volatile uint32_t *)0x40000000u)
#define T0_VALUE (*(volatile uint32_t *)0x40000004u)
#define T0_RELOAD (*(volatile uint32_t *)0x40000008u)

void board_timer_start(void) {
  T0_CTRL = 0u;
  T0_RELOAD = 0xFFFFFFFFu;
  T0_VALUE = 0xFFFFFFFFu;
  T0_CTRL = 1u; /* enable, internal clock, no interrupt */
}

uint32_t board_timer_ticks(void) { return 0xFFFFFFFFu - T0_VALUE; }

/* ---- stack high-water mark -------------------------------------------- */
/* From mps2_an500.ld: free RAM starts at __stack_paint_start__ (end of .bss)
 * and the stack grows down from __StackTop; __StackLimit..__StackTop is the
 * reservation the link is checked against. */
extern uint32_t __stack_paint_start__[];
extern uint32_t __StackLimit[];
extern uint32_t __StackTop[];

static uint32_t current_sp(void) {
  uint32_t sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  return sp;
}

/* Runs before main with almost nothing on the stack; writing below its own
 * SP is safe because nothing else (no interrupts are enabled) lives there. */
void board_stack_paint(void) {
  volatile uint32_t *p = __stack_paint_start__;
  volatile uint32_t *end = (volatile uint32_t *)(current_sp() & ~3u);
  while (p < end) *p++ = BOARD_STACK_PAINT;
}

uint32_t board_stack_used(void) {
  const volatile uint32_t *p = __stack_paint_start__;
  const volatile uint32_t *top = __StackTop;
  while (p < top && *p == BOARD_STACK_PAINT) ++p;
  return (uint32_t)((uintptr_t)top - (uintptr_t)p);
}

uint32_t board_stack_reserved(void) {
  return (uint32_t)((uintptr_t)__StackTop - (uintptr_t)__StackLimit);
}

uint32_t board_stack_depth_now(void) {
  return (uint32_t)((uintptr_t)__StackTop - (uintptr_t)current_sp());
}

/* ---- exit ------------------------------------------------------------- */
void board_exit(int rc) {
  board_flush();
  if (rc == 0) {
    /* AArch32 SYS_EXIT takes the reason code itself in r1; QEMU exits 0. */
    (void)semihost(SYS_EXIT, (const void *)ADP_STOPPED_APPLICATION_EXIT);
  } else {
    const uint32_t args[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)rc};
    (void)semihost(SYS_EXIT_EXTENDED, args);
  }
  for (;;) {
  }
}
