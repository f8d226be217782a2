/* RPC firmware for QEMU mps2-an500: serves the generated model to a host over
 * one transport, chosen at build time:
 *   -DRPC_TRANSPORT_UART      CMSDK UART0 (QEMU -serial tcp:..., or the board's UART)
 *   -DRPC_TRANSPORT_SEMIHOST  semihosting stdin/stdout (QEMU -serial none, stdio pipes)
 *
 * Timing: CMSDK TIMER0 at 25 MHz of virtual time. Under QEMU -icount shift=0 one
 * instruction takes 1 ns, so a tick is 40 instructions: the unit is reported as
 * "instructions" (QEMU models no pipeline or caches; they are not cycles).
 *
 * Profiling: only with -DTVMGEN_DEFAULT_PROFILE (on the model sources too) does
 * model.c call the hooks below around each kernel call; each call's ticks are
 * then read from the same timer as the whole run, so the per-call ticks add up
 * to the run's ticks less the hooks' own few instructions per call. Without the
 * define the hooks compile to nothing in model.c, this file defines none, and
 * PROFILE replies UNSUPPORTED: the plain build pays nothing for profiling. */
#include <stddef.h>
#include <stdint.h>

#include "board.h"
#include "model.h"
#include "rpc_model_info.h"
#include "rpc_server.h"
#include "rpc_transport.h"

#define UART0_BASE 0x40004000u
#define UART0_BAUDDIV 16u
#define TIMER0_VALUE (*(volatile uint32_t *)0x40000004u) /* down counter */
#define ALIGN_MAX_ITERATIONS 64u

static const uint32_t k_input_shape[RPC_INPUT_NDIM] = RPC_INPUT_SHAPE;
static const uint32_t k_output_shape[RPC_OUTPUT_NDIM] = RPC_OUTPUT_SHAPE;

/* rpc_model_info.h must describe this model.h. */
typedef char rpc_output_matches_model[(RPC_OUTPUT_ELEMENTS == TVMGEN_DEFAULT_OUTPUT_SIZE) ? 1 : -1];

static float g_input[RPC_INPUT_ELEMENTS];
static float g_output[TVMGEN_DEFAULT_OUTPUT_SIZE];
static struct rpc_server g_server;

#ifdef TVMGEN_DEFAULT_FRAME_SIZE
/* A streaming model (init/step/finish): RUN feeds the T frames of the input. */
typedef char rpc_input_is_whole_frames[(RPC_INPUT_ELEMENTS % TVMGEN_DEFAULT_FRAME_SIZE == 0) ? 1 : -1];
static struct tvmgen_default_state g_state;

static int32_t run_model(void) {
  struct tvmgen_default_outputs outputs;
  uint32_t t;
  outputs.output = g_output;
  tvmgen_default_init(&g_state);
  for (t = 0u; t < (uint32_t)(RPC_INPUT_ELEMENTS / TVMGEN_DEFAULT_FRAME_SIZE); t++) {
    int32_t rc = tvmgen_default_step(g_input + t * TVMGEN_DEFAULT_FRAME_SIZE, &g_state);
    if (rc != 0) return rc;
  }
  return tvmgen_default_finish(&g_state, &outputs);
}
#else
typedef char rpc_input_matches_model[(RPC_INPUT_ELEMENTS == TVMGEN_DEFAULT_INPUT_SIZE) ? 1 : -1];

static int32_t run_model(void) {
  struct tvmgen_default_inputs inputs;
  struct tvmgen_default_outputs outputs;
  inputs.input = g_input;
  outputs.output = g_output;
  return tvmgen_default_run(&inputs, &outputs);
}
#endif

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

#ifdef TVMGEN_DEFAULT_PROFILE
/* Accumulated: a time-step fused model calls its step kernels once per step. */
static uint32_t g_call_ticks[TVMGEN_DEFAULT_NUM_CALLS];
static uint32_t g_call_counts[TVMGEN_DEFAULT_NUM_CALLS];
static uint32_t g_call_start;

void tvmgen_default_profile_begin(int32_t call);
void tvmgen_default_profile_end(int32_t call);

void tvmgen_default_profile_begin(int32_t call) {
  (void)call;
  g_call_start = board_timer_ticks();
}

void tvmgen_default_profile_end(int32_t call) {
  uint32_t now = board_timer_ticks();
  if (call >= 0 && call < (int32_t)TVMGEN_DEFAULT_NUM_CALLS) {
    g_call_ticks[call] += now - g_call_start;
    g_call_counts[call] += 1u;
  }
}
#define CALL_TICKS g_call_ticks
#define CALL_COUNTS g_call_counts
#else
#define CALL_TICKS NULL
#define CALL_COUNTS NULL
#endif

int main(void) {
  struct rpc_transport io;
  struct rpc_target target;

  target.model_name = RPC_MODEL_NAME;
  target.input = g_input;
  target.input_count = RPC_INPUT_ELEMENTS;
  target.input_shape = k_input_shape;
  target.input_ndim = RPC_INPUT_NDIM;
  target.output = g_output;
  target.output_count = TVMGEN_DEFAULT_OUTPUT_SIZE;
  target.output_shape = k_output_shape;
  target.output_ndim = RPC_OUTPUT_NDIM;
  target.arena_bytes = TVMGEN_DEFAULT_WORKSPACE_SIZE;
  target.num_calls = TVMGEN_DEFAULT_NUM_CALLS;
  target.call_names = tvmgen_default_call_names;
  target.run = run_model;
  target.call_ticks = CALL_TICKS;
  target.call_counts = CALL_COUNTS;
  target.ticks = board_timer_ticks;
  target.before_run = align_to_timer_tick;
  target.timer_hz = BOARD_TIMER_HZ;
  target.units_per_tick = BOARD_INSTRUCTIONS_PER_TICK;
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
