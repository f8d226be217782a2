/* Board layer for the bare-metal harness on QEMU mps2-an500 (Cortex-M7).
 *
 * Why it exists: the harness must print, time and exit without newlib stdio
 * (printf/rdimon pull in malloc), so console output goes straight to ARM
 * semihosting and numbers are formatted by hand here. */
#ifndef MAMBA_TVM_BOARD_H_
#define MAMBA_TVM_BOARD_H_

#include <stdint.h>

/* CMSDK TIMER0 is clocked at 25 MHz of QEMU virtual time. Under
 * `-icount shift=0` one instruction takes 1 ns, so one tick = 40 instructions. */
#define BOARD_TIMER_HZ 25000000u
#define BOARD_INSTRUCTIONS_PER_TICK 40u

/* Written over free RAM at boot; the first word that no longer holds it marks
 * the deepest point the stack reached. */
#define BOARD_STACK_PAINT 0xA5C3A5C3u

/* Exit code used when a fault handler ends the run. */
#define BOARD_FAULT_EXIT_CODE 3

/* Console: buffered, flushed on '\n' and on board_flush()/board_exit(). */
void board_putc(char c);
void board_puts(const char *s);
void board_put_u32(uint32_t v);           /* decimal */
void board_put_i32(int32_t v);            /* decimal, with '-' */
void board_put_hex32(uint32_t v);         /* exactly 8 lowercase hex digits */
void board_flush(void);

/* Free-running timer: board_timer_ticks() = ticks since board_timer_start(). */
void board_timer_start(void);
uint32_t board_timer_ticks(void);

/* Stack high-water mark (bytes below the initial SP that were ever written). */
void board_stack_paint(void);             /* called once from Reset_Handler */
uint32_t board_stack_used(void);
uint32_t board_stack_reserved(void);      /* the .stack reservation from the .ld */
uint32_t board_stack_depth_now(void);     /* initial SP - current SP */

/* Ends the QEMU process with `rc` as its exit status (semihosting). */
void board_exit(int rc) __attribute__((noreturn));

#endif /* MAMBA_TVM_BOARD_H_ */
