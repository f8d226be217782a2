/* RPC firmware for QEMU mps2-an500: serves the generated model to a host over
 * one transport, chosen at build time:
 *   -DRPC_TRANSPORT_UART      CMSDK UART0 (QEMU -serial tcp:..., or the board's UART)
 *   -DRPC_TRANSPORT_SEMIHOST  semihosting stdin/stdout (QEMU -serial none, stdio pipes)
 *
 * Timing: CMSDK TIMER0 at 25 MHz of virtual time. Under QEMU -icount shift=0 one
 * instruction takes 1 ns, so a tick is 40 instructions: the unit is reported as
 * "instructions" (QEMU models no pipeline or caches; they are not cycles).
 *
 * The model side (buffers, sequence or streaming run, the profiling hooks compiled in
 * by -DTVMGEN_DEFAULT_PROFILE) is rpc_model.c, shared with the Zephyr app; this file
 * adds only the mps2 timer, the tick alignment and the transport. */
#include <stdint.h>

#include "board.h"
#include "rpc_model.h"
#include "rpc_server.h"
#include "rpc_transport.h"

#define TIMER0_HZ 25000000u
#define INSTRUCTIONS_PER_TICK 40u /* 1 ns per instruction under -icount shift=0 */
#define UART0_BASE 0x40004000u
#define UART0_BAUDDIV 16u
#define TIMER0_VALUE (*(volatile uint32_t *)0x40000004u) /* down counter */
#define ALIGN_MAX_ITERATIONS 64u

static struct rpc_server g_server;

/* The timer of every RUN and of the profiling hooks in rpc_model.c: the same reading as
 * board_timer_ticks(), done here so that each hook costs one call, not two. */
uint32_t rpc_model_ticks(void) { return 0xFFFFFFFFu - TIMER0_VALUE; }

/* Reading a 40-instruction tick quantizes each reading by up to one tick, and where the
 * error falls depends on the phase of the instruction stream against the tick grid, so
 * two identical runs could read per-call ticks a few ticks apart. Under -icount shift=0
 * (1 instruction = 1 ns) this loop takes exactly 41 instructions per iteration: each
 * read lands 1 ns later in its tick than the previous one, and the read that sees the
 * counter move by 2 sits exactly on a tick edge. Every run then starts at the same phase
 * and reads the same ticks. On real hardware it is only a short bounded delay. */
static void align_to_timer_tick(void) {
  uint32_t prev, cur, diff, left = ALIGN_MAX_ITERATIONS;
  __asm__ volatile(
      "ldr %[prev], [%[value]]\n\t"
      "1:\n\t"
      ".rept 34\n\tnop\n\t.endr\n\t"
      "ldr %[cur], [%[value]]\n\t"
      "subs %[diff], %[prev], %[cur]\n\t"
      "mov %[prev], %[cur]\n\t"
      "subs %[left], %[left], #1\n\t"
      "beq 2f\n\t"
      "cmp %[diff], #2\n\t"
      "bne 1b\n\t"
      "2:\n\t"
      : [prev] "=&r"(prev), [cur] "=&r"(cur), [diff] "=&r"(diff), [left] "+r"(left)
      : [value] "r"(&TIMER0_VALUE)
      : "cc", "memory");
}

int main(void) {
  struct rpc_transport io;
  struct rpc_target target;

  rpc_model_target(&target);
  target.before_run = align_to_timer_tick;
  target.timer_hz = TIMER0_HZ;
  target.units_per_tick = INSTRUCTIONS_PER_TICK;
  target.unit = RPC_UNIT_INSTRUCTIONS;

#if defined(RPC_TRANSPORT_UART)
  rpc_transport_cmsdk_uart_init(&io, UART0_BASE, UART0_BAUDDIV);
#elif defined(RPC_TRANSPORT_SEMIHOST)
  if (rpc_transport_semihost_init(&io) != 0) {
    board_puts("FAULT semihosting :tt could not be opened\n");
    return 2;
  }
#else
#error "define RPC_TRANSPORT_UART or RPC_TRANSPORT_SEMIHOST"
#endif

  board_timer_start(); /* free-running from here: differences are taken mod 2^32 */
  rpc_server_init(&g_server, &io, &target);
  rpc_server_run(&g_server); /* returns when the host closes the link (semihosting EOF) */
  return 0;
}
