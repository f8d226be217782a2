/* Board layer for the bare-metal harness: QEMU mps2-an500 (Cortex-M7,
 * board_mps2_an500.c) and QEMU's Xtensa sim with the de233_fpu LX7 core
 * (board_xtensa_sim.c).
 *
 * Why it exists: the harness must print, time and exit without a C library's
 * stdio (newlib's printf pulls in malloc; the LX7 has no C library at all), so
 * console output goes straight to semihosting and numbers are formatted by hand
 * (board_console.c, shared by both boards). */
#ifndef MAMBA_TVM_BOARD_H_
#define MAMBA_TVM_BOARD_H_

#include <stdint.h>

/* Written over free RAM at boot; the first word that no longer holds it marks
 * the deepest point the stack reached. */
#define BOARD_STACK_PAINT 0xA5C3A5C3u

/* Exit code used when a fault handler ends the run. */
#define BOARD_FAULT_EXIT_CODE 3

/* Console (board_console.c): buffered, flushed on '\n' and on board_flush()/board_exit(). */
void board_putc(char c);
void board_puts(const char *s);
void board_put_u32(uint32_t v);           /* decimal */
void board_put_i32(int32_t v);            /* decimal, with '-' */
void board_put_hex32(uint32_t v);         /* exactly 8 lowercase hex digits */
void board_flush(void);

/* Provided by each board: writes n bytes to the host's stdout (semihosting). */
void board_console_write(const char *s, uint32_t n);

/* Free-running counter: board_timer_ticks() = ticks since board_timer_start().
 * mps2-an500: CMSDK TIMER0 at 25 MHz of QEMU virtual time; under -icount shift=0
 * one instruction takes 1 ns, so a tick is 40 instructions. Xtensa sim: the ICOUNT
 * register, one tick per instruction retired. */
void board_timer_start(void);
uint32_t board_timer_ticks(void);

/* Stack high-water mark (bytes below the initial SP that were ever written). */
void board_stack_paint(void);             /* called once at reset, before main */
uint32_t board_stack_used(void);
uint32_t board_stack_reserved(void);      /* the .stack reservation from the .ld */
uint32_t board_stack_depth_now(void);     /* initial SP - current SP */

/* Ends the QEMU process with `rc` as its exit status (semihosting). */
void board_exit(int rc) __attribute__((noreturn));

#endif /* MAMBA_TVM_BOARD_H_ */
