/* RPC firmware for QEMU's Xtensa sim (de233_fpu, an LX7 with FPU): serves the generated
 * model to a host over semihosting (transport_xtensa_semihost.c; the sim has no UART).
 *
 * Timing: the core's ICOUNT register, one tick per instruction retired (window spill
 * handlers included), exact and repeatable from run to run: the unit is "instructions",
 * not cycles (QEMU models no pipeline or memory timing), and timer_hz is 0 (not a clock).
 * ICOUNT restarts at 0 before every run (before_run), so it cannot wrap inside one.
 *
 * The model side (buffers, sequence or streaming run, the profiling hooks compiled in by
 * -DTVMGEN_DEFAULT_PROFILE) is rpc_model.c, shared with the other firmwares. */
#include <stdint.h>

#include "board.h"
#include "rpc_model.h"
#include "rpc_server.h"
#include "rpc_transport.h"

#ifndef RPC_TRANSPORT_SEMIHOST
#error "the Xtensa sim has no UART: build with -DRPC_TRANSPORT_SEMIHOST"
#endif

static struct rpc_server g_server;

/* Read inline (not board_timer_ticks()) so that each profiling hook costs one call. */
uint32_t rpc_model_ticks(void) {
  uint32_t v;
  __asm__ volatile("rsr %0, icount" : "=r"(v));
  return v;
}

int main(void) {
  struct rpc_transport io;
  struct rpc_target target;

  rpc_model_target(&target);
  target.before_run = board_timer_start;
  target.timer_hz = 0u;
  target.units_per_tick = 1u;
  target.unit = RPC_UNIT_INSTRUCTIONS;

  rpc_transport_xtensa_semihost_init(&io);
  board_timer_start(); /* sets ICOUNTLEVEL: counting from here */
  rpc_server_init(&g_server, &io, &target);
  rpc_server_run(&g_server); /* returns when the host closes the pipe */
  return 0;
}
